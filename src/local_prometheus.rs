//! A real Prometheus server run as a child process on a loopback port, scraping given
//! targets. Used by the demo and the integration tests.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

#[derive(Debug, thiserror::Error)]
pub enum LocalPrometheusError {
    #[error("cannot start {bin}: {source} (install it with: apt-get install -y prometheus, or set PROMETHEUS_BIN)")]
    Spawn {
        bin: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("Prometheus did not become ready within {0:?}; its log: {1}")]
    NotReady(Duration, String),
}

pub struct LocalPrometheus {
    child: Child,
    pub url: String,
    pub port: u16,
    dir: tempfile::TempDir,
}

fn spawn(dir: &std::path::Path, port: u16) -> Result<Child, LocalPrometheusError> {
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    let bin = binary();
    let mut cmd = Command::new(&bin);
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches only the child's own state.
    unsafe {
        // Test binaries and the demo can end without running destructors; the kernel then
        // stops Prometheus with them instead of leaving it running.
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.arg(format!(
        "--config.file={}",
        dir.join("prometheus.yml").display()
    ))
    .arg(format!(
        "--storage.tsdb.path={}",
        dir.join("data").display()
    ))
    .arg(format!("--web.listen-address=127.0.0.1:{port}"))
    .arg("--log.level=warn")
    .stdout(Stdio::null())
    .stderr(Stdio::from(log))
    .kill_on_drop(true)
    .spawn()
    .map_err(|source| LocalPrometheusError::Spawn { bin, source })
}

/// The Prometheus binary: `$PROMETHEUS_BIN`, else `prometheus` on the PATH.
pub fn binary() -> String {
    std::env::var("PROMETHEUS_BIN").unwrap_or_else(|_| "prometheus".to_string())
}

fn free_port() -> std::io::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

impl LocalPrometheus {
    /// Starts Prometheus scraping `targets` (their `/metrics`) every `scrape_interval`, keeping
    /// the labels the targets export (`honor_labels`), and waits until it is ready.
    pub async fn start(
        targets: &[SocketAddr],
        scrape_interval: Duration,
    ) -> Result<Self, LocalPrometheusError> {
        let mut dir = tempfile::Builder::new()
            .prefix("flink-hpa-bridge-prom")
            .tempdir()?;
        let interval = format!("{}ms", scrape_interval.as_millis().max(100));
        let target_list = targets
            .iter()
            .map(|t| format!("'{t}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let config = format!(
            "global:\n  scrape_interval: {interval}\n  scrape_timeout: {interval}\n  evaluation_interval: {interval}\nscrape_configs:\n  - job_name: exporters\n    honor_labels: true\n    static_configs:\n      - targets: [{target_list}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config)?;
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let child = spawn(dir.path(), port)?;
            let mut me = Self {
                child,
                url: format!("http://127.0.0.1:{port}"),
                port,
                dir,
            };
            if me.wait_ready(Duration::from_secs(30)).await {
                return Ok(me);
            }
            let _ = me.child.kill().await;
            last_log =
                std::fs::read_to_string(me.dir.path().join("prometheus.log")).unwrap_or_default();
            dir = me.dir;
        }
        Err(LocalPrometheusError::NotReady(
            Duration::from_secs(30),
            last_log,
        ))
    }

    /// Stops the server abruptly (SIGKILL), as a crash or an evicted pod would.
    pub async fn kill(&mut self) {
        let _ = self.child.kill().await;
    }

    /// Starts it again on the same port with the same data, as after a restart.
    pub async fn restart(&mut self) -> Result<(), LocalPrometheusError> {
        let _ = self.child.kill().await;
        for _ in 0..50 {
            // The port may take a moment to be free again.
            self.child = spawn(self.dir.path(), self.port)?;
            if self.wait_ready(Duration::from_secs(30)).await {
                return Ok(());
            }
            let _ = self.child.kill().await;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(LocalPrometheusError::NotReady(
            Duration::from_secs(30),
            "restart failed".into(),
        ))
    }

    async fn wait_ready(&mut self, limit: Duration) -> bool {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if let Ok(r) = client.get(format!("{}/-/ready", self.url)).send().await {
                if r.status().is_success() {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        false
    }

    /// Waits until every target has been scraped once (`up == 1`).
    pub async fn wait_for_first_scrape(&self, limit: Duration) -> Result<(), LocalPrometheusError> {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            let answer = client
                .post(format!("{}/api/v1/query", self.url))
                .form(&[("query", "min(up) == 1")])
                .send()
                .await;
            if let Ok(r) = answer {
                if let Ok(v) = r.json::<serde_json::Value>().await {
                    if v["data"]["result"]
                        .as_array()
                        .is_some_and(|a| !a.is_empty())
                    {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Err(LocalPrometheusError::NotReady(
            limit,
            "no successful scrape of the targets".into(),
        ))
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the server (SIGKILL) and waits for it to exit.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Query API requests a Prometheus server has answered so far, from its own `/metrics`
/// (`prometheus_http_requests_total{handler="/api/v1/query"}`): how benchmarks and tests count
/// the load this server puts on it.
pub async fn query_requests(url: &str) -> Result<f64, reqwest::Error> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    Ok(text
        .lines()
        .filter(|l| {
            l.starts_with("prometheus_http_requests_total{")
                && l.contains("handler=\"/api/v1/query\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
