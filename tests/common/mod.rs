//! Shared test bed: one exporter, one real Prometheus scraping it every second, and servers
//! with the configurations the tests need, all on loopback. Started once per test binary on a
//! runtime of its own, since every `#[tokio::test]` has its own runtime.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::exporter::{self, Series, Store};
use flink_hpa_bridge::local_prometheus::LocalPrometheus;
use flink_hpa_bridge::server::{self, StartOptions};
use serde_json::Value;

pub struct Server {
    pub addr: SocketAddr,
    pub cert_pem: String,
}

pub struct Bed {
    pub store: Store,
    pub prometheus_url: String,
    /// Built-in signals plus the extra test signals below.
    pub main: Server,
    /// Same signals, Prometheus URL pointing at a closed port.
    pub down: Server,
}

/// Extra signals the tests exercise next to the built-ins.
pub const EXTRA_SIGNALS: &str = r#"
server:
  # Authentication and authorization have their own tests.
  auth: {insecureSkipAuth: true}
cache:
  # Short, so tests see new data within a second.
  refreshInterval: 1s
signals:
  - name: topic_lag
    type: promql
    api: external
    namespaced: false
    query: sum by (topic) (kafka_consumergroup_lag{<<matchers>>} >= 0)
  - name: tm_records_in
    type: promql
    api: custom
    resource: pods
    query: sum by (pod) (flink_taskmanager_job_task_numRecordsInPerSecond{<<matchers>>})
  - name: broken_query
    type: promql
    api: external
    query: sum(rate(flink_taskmanager_job_task_busyTimeMsPerSecond{<<matchers>>}))
  - name: busy_strict
    type: flinkBusyTimeMax
    maxAge: 30s
  - name: busy_or_zero
    type: flinkBusyTimeMax
    maxAge: 30s
    onMissing: zero
    onNaN: zero
    onStale: zero
    onNegative: 1000
  - name: lag_seconds_capped
    type: flinkKafkaLagSeconds
    zeroRateSeconds: 3600
  - name: busy_short_hold
    type: flinkBusyTimeMax
    restartHold: {warmUp: 60s, maxHold: 2s}
  - name: pravega_short
    type: pravegaStreamSegments
    lookback: 3s
  - name: pravega_forgets
    type: pravegaStreamSegments
    lookback: 3s
    rememberFor: 6s
  - name: required_short
    type: flinkRequiredTaskManagers
    window: 10s
    restartHold: {warmUp: 10s, maxHold: 60s}
"#;

static BED: OnceLock<Bed> = OnceLock::new();

pub fn bed() -> &'static Bed {
    BED.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("test runtime");
            rt.block_on(async move {
                let store = Store::default();
                let exporter_addr = exporter::spawn(Arc::new(store.clone()))
                    .await
                    .expect("exporter");
                let prom = LocalPrometheus::start(&[exporter_addr], Duration::from_secs(1))
                    .await
                    .expect("Prometheus must be installed (apt-get install -y prometheus)");
                let main = start_server(&prom.url).await;
                let down = start_server("http://127.0.0.1:9").await;
                tx.send(Bed {
                    store,
                    prometheus_url: prom.url.clone(),
                    main,
                    down,
                })
                .expect("send bed");
                // Keep Prometheus and the servers alive for the whole test binary.
                std::future::pending::<()>().await;
                drop(prom);
            });
        });
        rx.recv().expect("test bed failed to start")
    })
}

async fn start_server(prometheus_url: &str) -> Server {
    let mut cfg = Config::from_yaml(EXTRA_SIGNALS, "test config").expect("test config");
    cfg.prometheus.url = Some(prometheus_url.to_string());
    cfg.prometheus.timeout = Duration::from_secs(5);
    cfg.server.bind_address = "127.0.0.1".into();
    cfg.server.secure_port = 0;
    let running = server::start(&cfg, StartOptions::default())
        .await
        .expect("server start");
    let server = Server {
        addr: running.addr,
        cert_pem: running.generated_cert_pem.clone().expect("generated cert"),
    };
    // Leak the handle: the server lives as long as the test binary.
    std::mem::forget(running);
    server
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A namespace (and scenario key) of its own for each test.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id() % 10_000,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Small deterministic generator; the seed is printed so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new() -> Self {
        let seed = std::env::var("TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(42)
                    | 1
            });
        eprintln!("TEST_SEED={seed}");
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A value in [lo, hi) with two decimals.
    pub fn value(&mut self, lo: f64, hi: f64) -> f64 {
        let x = (self.next() % 1_000_000) as f64 / 1_000_000.0;
        ((lo + x * (hi - lo)) * 100.0).round() / 100.0
    }

    pub fn int(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
}

pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Value,
}

impl Server {
    /// A real HTTPS client that trusts only this server's generated certificate.
    pub fn client(&self) -> Client {
        let cert = reqwest::Certificate::from_pem(self.cert_pem.as_bytes()).expect("cert");
        let http = reqwest::Client::builder()
            .add_root_certificate(cert)
            .resolve("localhost", self.addr)
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        Client {
            http,
            base: format!("https://localhost:{}", self.addr.port()),
        }
    }
}

impl Client {
    pub async fn get(&self, path: &str) -> Reply {
        self.request(reqwest::Method::GET, path, &[]).await
    }

    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let text = resp.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Reply {
            status,
            content_type,
            body,
        }
    }

    /// Polls `path` until it answers 200 (data scraped), or fails after 20 s.
    pub async fn get_ok(&self, path: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(path).await;
            if r.status == 200 {
                return r.body;
            }
            if Instant::now() > deadline {
                panic!("{path} never answered 200; last: {} {}", r.status, r.body);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Polls until `check` accepts the reply, or fails after 20 s.
    pub async fn wait_for(&self, path: &str, check: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let r = self.get(path).await;
            if check(&r) {
                return r;
            }
            if Instant::now() > deadline {
                panic!("{path}: condition never met; last: {} {}", r.status, r.body);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// The JobManager's job series: running time (ms) and restart count of `job` in `ns`.
pub fn job_state_of(ns: &str, job: &str, running_ms: f64, restarts: f64) -> Vec<Series> {
    let job = exporter::flink_value(job);
    let labels = [
        ("namespace", ns),
        ("job_name", job.as_str()),
        ("job_id", "j"),
        ("host", "jm"),
    ];
    vec![
        Series::new("flink_jobmanager_job_runningTime", &labels, running_ms),
        Series::new("flink_jobmanager_job_numRestarts", &labels, restarts),
    ]
}

/// Waits until Prometheus returns at least `n` series for `selector`.
pub async fn wait_scraped(selector: &str, n: usize) {
    let url = format!("{}/api/v1/query", bed().prometheus_url);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = client
            .post(&url)
            .form(&[("query", selector)])
            .send()
            .await
            .ok();
        if let Some(r) = got {
            if let Ok(v) = r.json::<Value>().await {
                if v["data"]["result"].as_array().map_or(0, |a| a.len()) >= n {
                    return;
                }
            }
        }
        if Instant::now() > deadline {
            panic!("Prometheus never returned {n} series for {selector}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Checks a timestamp is RFC 3339 UTC whole seconds and recent; returns it.
pub fn recent_timestamp(v: &Value) -> String {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("timestamp is not a string: {v}"));
    assert!(s.len() == 20 && s.ends_with('Z'), "bad timestamp {s}");
    let t: jiff::Timestamp = s.parse().expect("RFC 3339");
    let age = jiff::Timestamp::now().as_second() - t.as_second();
    assert!((-5..120).contains(&age), "timestamp {s} is {age}s old");
    s.to_string()
}

/// The quantity the server must emit for `v`: milli, rounded up.
pub fn quantity(v: f64) -> String {
    flink_hpa_bridge::quantity::format(v).expect("finite")
}

pub fn series(store: &Store, scenario: &str, s: Vec<Series>) {
    store.set(scenario, s);
}

pub fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A Kubernetes watch response for a fake API server: each event sent on `events`, one JSON
/// object per line, as it happens.
pub fn watch_body(events: &tokio::sync::broadcast::Sender<Value>) -> axum::body::Body {
    let rx = events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let ev = rx.recv().await.ok()?;
        Some((Ok::<_, std::io::Error>(format!("{ev}\n")), rx))
    });
    axum::body::Body::from_stream(stream)
}
