//! Benchmark helpers driven by `bench/run.sh`; loopback only, every loop bounded.
//!
//! - `env`: a synthetic cluster's series (many jobs and TaskManager pods) and a real
//!   Prometheus scraping them; writes the Prometheus URL to a file and runs until killed.
//! - `ready`: time from process start to `/readyz` = 200, over several starts.
//! - `hpas`: N simulated HPAs polling a signal; counts the queries Prometheus served.
//! - `keys`: requests with N distinct selectors, then the server's resident memory.
//! - `soak`: mixed valid and invalid requests while Prometheus is killed and restarted.
//! - `platform`: the scale benchmark's synthetic platform (`bench/scale.sh`) and a real
//!   Prometheus scraping it; writes the Prometheus URL to a file and runs until killed.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_hpa_bridge::fixtures::exporter::{self, FlinkTask, Series, Store};
use flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn num(args: &[String], name: &str, default: u64) -> u64 {
    arg(args, name)
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Resident memory of process `pid`, KiB, from /proc.
fn rss_kib(pid: &str) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `/proc/PID/status` figure in KiB (`VmRSS:`, `RssAnon:`, `RssFile:`), 0 when unreadable.
fn status_kib(pid: &str, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

/// `jobs` jobs in namespace `bench`, spread over `pods` TaskManager pods (2 subtasks each).
fn cluster(jobs: usize, pods: usize) -> Vec<Series> {
    let mut out = Vec::new();
    for p in 0..pods {
        let pod = format!("flink-taskmanager-bench-{p:04}");
        let job = format!("job-{}", p % jobs.max(1));
        for s in 0..2 {
            let t = FlinkTask {
                namespace: "bench",
                pod: &pod,
                job_name: &job,
                job_id: "62b6ab75a23413780e94899d0ba1c305",
                task_name: "enrich",
                task_id: "674df9b0384c0348e0b9d1034a44c46c",
                subtask_index: s,
                tm_id: &pod,
            };
            out.push(t.series("busyTimeMsPerSecond", ((p * 37 + s * 11) % 1000) as f64));
            out.push(t.operator_series("Source: orders", "op", "pendingRecords", (p * 100) as f64));
            out.push(t.operator_series("Source: orders", "op", "numRecordsOutPerSecond", 500.0));
        }
    }
    out
}

async fn env(args: &[String]) {
    let jobs = num(args, "--jobs", 100) as usize;
    let pods = num(args, "--pods", 200) as usize;
    let out =
        PathBuf::from(arg(args, "--out").unwrap_or_else(|| "/tmp/bench-prometheus-url".into()));
    let store = Store::default();
    store.set("cluster", cluster(jobs, pods));
    let addr = exporter::spawn(Arc::new(store)).await.expect("exporter");
    let prom = LocalPrometheus::start(&[addr], Duration::from_secs(5))
        .await
        .expect("prometheus");
    prom.wait_for_first_scrape(Duration::from_secs(30))
        .await
        .expect("first scrape");
    std::fs::write(&out, &prom.url).expect("write url");
    eprintln!(
        "prometheus {} scraping {} series",
        prom.url,
        jobs.max(pods) * 6
    );
    // Until killed; a stop signal ends the process and, with it, Prometheus.
    let _ = tokio::signal::ctrl_c().await;
    prom.stop().await;
}

async fn ready(args: &[String]) {
    let bin = arg(args, "--bin").unwrap_or_else(|| "target/release/flink-hpa-bridge".into());
    let prom = arg(args, "--prometheus-url").expect("--prometheus-url");
    let runs = num(args, "--runs", 10);
    let port = num(args, "--port", 18443);
    let config = arg(args, "--config");
    let c = client();
    let mut times = Vec::new();
    for _ in 0..runs {
        let started = Instant::now();
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.args([
            "serve",
            "--prometheus-url",
            &prom,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
        ]);
        if let Some(c) = &config {
            cmd.args(["--config", c]);
        }
        let mut child = cmd
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn server");
        let url = format!("https://127.0.0.1:{port}/readyz");
        let deadline = started + Duration::from_secs(10);
        let elapsed = loop {
            if let Ok(r) = c.get(&url).send().await {
                if r.status().as_u16() == 200 {
                    break started.elapsed();
                }
            }
            assert!(Instant::now() < deadline, "not ready within 10 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        times.push(elapsed.as_secs_f64() * 1000.0);
        let _ = child.kill().await;
        let _ = child.wait().await;
    }
    times.sort_by(|a, b| a.total_cmp(b));
    println!(
        "ready_ms runs={} min={:.1} median={:.1} max={:.1}",
        times.len(),
        times[0],
        times[times.len() / 2],
        times[times.len() - 1]
    );
}

async fn prometheus_queries(prom: &str) -> f64 {
    flink_hpa_bridge::fixtures::local_prometheus::query_requests(prom)
        .await
        .expect("prometheus metrics")
}

async fn hpas(args: &[String]) {
    let server = arg(args, "--server").expect("--server");
    let prom = arg(args, "--prometheus-url").expect("--prometheus-url");
    let n = num(args, "--hpas", 10) as usize;
    let same = arg(args, "--jobs").as_deref() == Some("same");
    let seconds = num(args, "--seconds", 30);
    let poll_ms = num(args, "--poll-ms", 1000);
    let refresh = num(args, "--refresh-seconds", 5) as f64;
    let c = client();
    // Warm up: the first poll of each key fills the cache.
    let path = |i: usize| {
        let job = if same { 0 } else { i % 100 };
        format!("{server}/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name%3Djob-{job}")
    };
    for i in 0..n {
        let _ = c.get(path(i)).send().await;
    }
    let before = prometheus_queries(&prom).await;
    let started = Instant::now();
    let window = Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = c.clone();
        let url = path(i);
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            while started.elapsed() < window {
                match c.get(&url).send().await {
                    Ok(r) if r.status().is_success() => ok += 1,
                    _ => failed += 1,
                }
                tokio::time::sleep(Duration::from_millis(poll_ms)).await;
            }
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        let (o, f) = t.await.unwrap_or((0, 0));
        ok += o;
        failed += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let queries = prometheus_queries(&prom).await - before;
    println!(
        "hpas={n} jobs={} polls_ok={ok} polls_failed={failed} seconds={elapsed:.1} prometheus_queries={queries} per_refresh_interval={:.2}",
        if same { "same" } else { "different" },
        queries / (elapsed / refresh)
    );
}

async fn keys(args: &[String]) {
    let server = arg(args, "--server").expect("--server");
    let pid = arg(args, "--pid").expect("--pid");
    let n = num(args, "--count", 10_000);
    let metric = arg(args, "--metric").unwrap_or_else(|| "flink_busy_time_max".into());
    let c = client();
    let before = rss_kib(&pid);
    let anon_before = status_kib(&pid, "RssAnon:");
    let started = Instant::now();
    // Distinct selectors that name a label outside the signal's grouping: for a signal whose
    // parts re-aggregate exactly they share one query per job, otherwise each is its own
    // cache entry.
    let sem = Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for i in 0..n {
        let c = c.clone();
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        let url = format!("{server}/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/{metric}?labelSelector=job_name%3Djob-{},host!%3Dh{i}", i % 100);
        tasks.push(tokio::spawn(async move {
            let ok = c
                .get(&url)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            drop(permit);
            ok
        }));
    }
    let mut codes = std::collections::BTreeMap::new();
    for t in tasks {
        *codes.entry(t.await.unwrap_or(0)).or_insert(0u64) += 1;
    }
    let metrics = c
        .get(format!("{server}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    let entries = metrics
        .lines()
        .find(|l| l.starts_with("flink_hpa_bridge_cache_entries "))
        .unwrap_or("")
        .to_string();
    let seconds = started.elapsed().as_secs_f64();
    let after = rss_kib(&pid);
    let anon_after = status_kib(&pid, "RssAnon:");
    // Code pages of the binary (RssFile) are resident before the first key: the growth is
    // anonymous memory, what the keys cost.
    let per_key = (anon_after.saturating_sub(anon_before) * 1024) / n.max(1);
    println!(
        "metric={metric} keys={n} seconds={seconds:.1} codes={codes:?} rss_before_kib={before} rss_after_kib={after} anon_before_kib={anon_before} anon_after_kib={anon_after} file_kib={} bytes_per_key={per_key} {entries}",
        status_kib(&pid, "RssFile:")
    );
}

/// Mixed valid and invalid requests against the server binary while Prometheus is killed and
/// restarted; reports answers by kind, the server's memory over time, and panics.
async fn soak(args: &[String]) {
    let bin = arg(args, "--bin").unwrap_or_else(|| "target/release/flink-hpa-bridge".into());
    let seconds = num(args, "--seconds", 60);
    let workers = num(args, "--workers", 8) as usize;
    let restart_every = num(args, "--restart-every", 15);
    let port = num(args, "--port", 18450);
    let store = Store::default();
    store.set("cluster", cluster(20, 40));
    let addr = exporter::spawn(Arc::new(store)).await.expect("exporter");
    let mut prom = LocalPrometheus::start(&[addr], Duration::from_secs(1))
        .await
        .expect("prometheus");
    prom.wait_for_first_scrape(Duration::from_secs(30))
        .await
        .expect("first scrape");
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("soak.yaml");
    std::fs::write(
        &cfg,
        "server: {auth: {insecureSkipAuth: true}}\ncache: {refreshInterval: 2s, maxEntries: 2000}\npods: {source: labels}\nprometheus: {timeout: 2s}\n",
    )
    .expect("config");
    let log = dir.path().join("server.log");
    let mut server = tokio::process::Command::new(&bin)
        .args([
            "serve",
            "--config",
            cfg.to_str().unwrap_or_default(),
            "--prometheus-url",
            &prom.url,
        ])
        .args([
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &port.to_string(),
        ])
        .env("RUST_LOG", "warn")
        .stderr(std::fs::File::create(&log).expect("log file"))
        .kill_on_drop(true)
        .spawn()
        .expect("server");
    let pid = server.id().unwrap_or(0).to_string();
    let base = format!("https://127.0.0.1:{port}");
    let c = client();
    for _ in 0..100 {
        if c.get(format!("{base}/readyz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<(&str, String)> = vec![
        ("external", "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name%3Djob-3".into()),
        ("lag", "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_kafka_lag_records?labelSelector=job_name%3Djob-5".into()),
        ("pods", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench/pods/*/flink_taskmanager_busy_time?labelSelector=app%3Dflink".into()),
        ("discovery", "/apis/custom.metrics.k8s.io/v1beta2".into()),
        ("unknown-metric", "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/no_such_metric".into()),
        ("bad-selector", "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name+in+%28".into()),
        ("injection", "/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name%3Dx%22%7Dor%7Bjob_name%3D~%22.%2A".into()),
        ("malformed-path", "/apis/custom.metrics.k8s.io/v1beta2/namespaces/bench".into()),
    ];
    let started = Instant::now();
    let window = Duration::from_secs(seconds);
    let counts = Arc::new(std::sync::Mutex::new(std::collections::BTreeMap::<
        (String, u16),
        u64,
    >::new()));
    let zeros = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let c = c.clone();
        let kinds = kinds.clone();
        let base = base.clone();
        let counts = counts.clone();
        let zeros = zeros.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            let mut j = w;
            while started.elapsed() < window {
                i += 1;
                // Every 4th request: a selector never seen before (bounded by the cache).
                let (kind, path) = if i % 4 == 0 {
                    ("random-selector".to_string(), format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/bench/flink_busy_time_max?labelSelector=job_name%3Djob-{},host!%3Dr{i}", i % 20))
                } else {
                    j += 1;
                    let (k, p) = &kinds[j % kinds.len()];
                    (k.to_string(), p.clone())
                };
                let code = match c.get(format!("{base}{path}")).send().await {
                    Ok(r) => {
                        let code = r.status().as_u16();
                        if let Ok(v) = r.json::<serde_json::Value>().await {
                            for item in v["items"].as_array().into_iter().flatten() {
                                // The cluster's values are never 0 except pod 0's first subtask.
                                if item["value"] == "0" && kind == "external" {
                                    zeros.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                }
                            }
                        }
                        code
                    }
                    Err(_) => 0,
                };
                *counts.lock().unwrap_or_else(|p| p.into_inner()).entry((kind, code)).or_insert(0) += 1;
            }
        }));
    }
    let mut memory = Vec::new();
    let mut next_restart = Duration::from_secs(restart_every);
    while started.elapsed() < window {
        tokio::time::sleep(Duration::from_secs(2)).await;
        memory.push((started.elapsed().as_secs(), rss_kib(&pid)));
        if started.elapsed() >= next_restart {
            prom.kill().await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            let _ = prom.restart().await;
            next_restart += Duration::from_secs(restart_every);
        }
    }
    for t in tasks {
        let _ = t.await;
    }
    let alive = server.try_wait().ok().flatten().is_none();
    let _ = server.kill().await;
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let panics = log_text.matches("panicked").count();
    let total: u64 = counts
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .sum();
    println!("soak seconds={seconds} workers={workers} requests={total} prometheus_restarts_every={restart_every}s server_alive={alive} panics={panics} zero_values_served={}", zeros.load(std::sync::atomic::Ordering::Relaxed));
    for ((kind, code), n) in counts.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        println!("  {kind:<16} {code} {n}");
    }
    println!("  rss_kib over time (s, KiB): {memory:?}");
    prom.stop().await;
}

async fn platform(args: &[String]) {
    use flink_hpa_bridge::fixtures::platform;
    let jobs = num(args, "--jobs", 10) as usize;
    let shards = num(args, "--shards", 4).max(1) as usize;
    let scrape = Duration::from_secs(num(args, "--scrape-seconds", 15));
    let out =
        PathBuf::from(arg(args, "--out").unwrap_or_else(|| "/tmp/bench-prometheus-url".into()));
    let mut targets = Vec::new();
    let mut total = 0;
    for shard in 0..shards {
        let (body, series) = platform::shard_text(jobs, shard, shards);
        total += series;
        eprintln!("shard {shard}: {series} series, {} bytes", body.len());
        targets.push(platform::spawn(body).await.expect("exporter"));
    }
    let prom = LocalPrometheus::start(&targets, scrape)
        .await
        .expect("prometheus");
    prom.wait_for_first_scrape(Duration::from_secs(120))
        .await
        .expect("first scrape");
    std::fs::write(&out, &prom.url).expect("write url");
    eprintln!(
        "prometheus {} scraping {total} series of {jobs} jobs from {shards} exporters",
        prom.url
    );
    let _ = tokio::signal::ctrl_c().await;
    prom.stop().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("env") => env(&args).await,
        Some("ready") => ready(&args).await,
        Some("hpas") => hpas(&args).await,
        Some("keys") => keys(&args).await,
        Some("soak") => soak(&args).await,
        Some("platform") => platform(&args).await,
        _ => eprintln!(
            "usage: bench env|ready|hpas|keys|soak|platform [options] (see bench/run.sh, bench/scale.sh)"
        ),
    }
}
