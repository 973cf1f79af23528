//! `flink-hpa-bridge demo`: a working setup on one machine with nothing running.
//!
//! Starts the synthetic Flink job exporter, a real Prometheus scraping it, and the server, then
//! reads every built-in signal over HTTPS the way the HPA does and prints what it would see.

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::commands::Overrides;
use crate::config::Config;
use crate::fixtures::exporter::{self, LiveJob, SyntheticJob};
use crate::fixtures::local_prometheus::LocalPrometheus;
use crate::server::{self, StartOptions};

pub const DEMO_NAMESPACE: &str = "flink-demo";
pub const DEMO_JOB: &str = "orders-enrich";

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub secure_port: u16,
    pub refresh: Duration,
    /// Stop after this long; run until Ctrl-C when `None`.
    pub duration: Option<Duration>,
    pub scrape_interval: Duration,
}

/// The requests the demo makes: (what, path).
pub fn demo_requests() -> Vec<(&'static str, String)> {
    let ext = |metric: &str, sel: &str| {
        format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{DEMO_NAMESPACE}/{metric}?labelSelector={sel}")
    };
    vec![
        ("busiest subtask, ms/s", ext("flink_busy_time_max", "job_name%3Dorders-enrich")),
        ("Kafka backlog (Flink pendingRecords)", ext("flink_kafka_lag_records", "job_name%3Dorders-enrich")),
        ("Kafka backlog (kafka_exporter)", ext("flink_kafka_lag_records", "consumergroup%3Dorders-enrich%2Ctopic%3Dorders")),
        ("Kafka lag in seconds", ext("flink_kafka_lag_seconds", "job_name%3Dorders-enrich")),
        ("Pravega stream segments", ext("pravega_stream_segments", "scope%3Dexamples%2Cstream%3Dorders")),
        (
            "busy time per TaskManager pod",
            format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{DEMO_NAMESPACE}/pods/%2A/flink_taskmanager_busy_time?labelSelector=app%3Dflink%2Ccomponent%3Dtaskmanager"),
        ),
    ]
}

/// Sum of the items' values as the HPA reads them (it sums external items; for pods it
/// averages, shown per pod here).
fn summarize(body: &Value) -> String {
    if body["kind"] == "Status" {
        return format!(
            "error {}: {}",
            body["code"],
            body["message"].as_str().unwrap_or("")
        );
    }
    let items = body["items"].as_array().cloned().unwrap_or_default();
    let parts: Vec<String> = items
        .iter()
        .map(|i| {
            let v = i["value"].as_str().unwrap_or("?");
            match i["describedObject"]["name"].as_str() {
                Some(pod) => format!("{pod}={v}"),
                None => v.to_string(),
            }
        })
        .collect();
    if parts.is_empty() {
        "no items".into()
    } else {
        parts.join("  ")
    }
}

pub async fn run(opts: DemoOptions, out: &mut (impl Write + Send)) -> anyhow::Result<()> {
    // Before any child process starts: a taken port would otherwise be found only after
    // Prometheus' first scrape.
    if opts.secure_port != 0 {
        if let Err(e) = std::net::TcpListener::bind(("127.0.0.1", opts.secure_port)) {
            anyhow::bail!(
                "cannot listen on 127.0.0.1:{}: {e}; pass --secure-port with a free port (0 picks one)",
                opts.secure_port
            );
        }
    }
    let mut job = SyntheticJob::new(DEMO_NAMESPACE, DEMO_JOB);
    // A five-minute load cycle that peaks above the job's capacity, so backlog builds and drains.
    job.period_seconds = 300.0;
    // Start shortly before the peak so the backlog shows within the first minutes.
    job.elapsed = 40.0;
    let live = Arc::new(LiveJob::new(job));
    let exporter_addr = exporter::spawn(live.clone()).await?;
    writeln!(
        out,
        "synthetic Flink job exporter: http://{exporter_addr}/metrics"
    )?;

    let prom = LocalPrometheus::start(&[exporter_addr], opts.scrape_interval).await?;
    writeln!(
        out,
        "Prometheus: {} (scraping every {:?})",
        prom.url, opts.scrape_interval
    )?;
    prom.wait_for_first_scrape(Duration::from_secs(30)).await?;

    let mut cfg: Config = crate::commands::effective_config(
        None,
        &Overrides {
            prometheus_url: Some(prom.url.clone()),
            secure_port: Some(opts.secure_port),
            bind_address: Some("127.0.0.1".into()),
            ..Default::default()
        },
    )?;
    // Local and loopback only: nothing to authenticate against.
    cfg.server.auth.insecure_skip_auth = true;
    let running = server::start(&cfg, StartOptions::default()).await?;
    let base = format!("https://localhost:{}", running.addr.port());
    writeln!(out, "flink-hpa-bridge: {base} (self-signed certificate)")?;
    writeln!(
        out,
        "try: kubectl get --raw '/apis/external.metrics.k8s.io/v1beta1/namespaces/{DEMO_NAMESPACE}/flink_busy_time_max?labelSelector=job_name%3Dorders-enrich' --server https://127.0.0.1:{} --insecure-skip-tls-verify --token unused\n",
        running.addr.port()
    )?;

    let mut client = reqwest::Client::builder()
        .resolve("localhost", running.addr)
        .timeout(Duration::from_secs(10));
    if let Some(pem) = &running.generated_cert_pem {
        client = client.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes())?);
    }
    let client = client.build()?;

    let started = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    loop {
        let model = live.snapshot();
        writeln!(
            out,
            "t={:>4.0}s  model: {} TaskManagers × {} slots, arrivals {:.0} rec/s, processing {:.0} rec/s, backlog {:.0} records",
            started.elapsed().as_secs_f64(),
            model.task_managers,
            model.slots_per_task_manager,
            model.arrival_rate(),
            model.processing_rate(),
            model.backlog
        )?;
        for (what, path) in demo_requests() {
            let line = match client.get(format!("{base}{path}")).send().await {
                Ok(resp) => match resp.json::<Value>().await {
                    Ok(body) => summarize(&body),
                    Err(e) => format!("unreadable answer: {e}"),
                },
                Err(e) => format!("request failed: {e}"),
            };
            writeln!(out, "  {what:<38} {line}")?;
        }
        writeln!(out)?;
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break;
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.refresh) => {}
            _ = &mut ctrl_c => break,
        }
    }
    running.stop().await;
    prom.stop().await;
    Ok(())
}
