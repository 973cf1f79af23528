//! The binary as a user runs it: check-config, serve refusing bad input, query, and the demo.

mod common;

use std::process::Command;

use common::*;
use flink_hpa_bridge::fixtures::exporter::FlinkTask;

const BIN: &str = env!("CARGO_BIN_EXE_flink-hpa-bridge");

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run binary");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_config_accepts_a_good_file_and_names_the_field_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "prometheus:\n  url: http://prometheus:9090\nsignals:\n  - name: orders_rate\n    type: promql\n    api: external\n    query: sum(rate(orders_total{<<matchers>>}[1m]))\n").unwrap();
    let (code, out, _) = run(&["check-config", good.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with(&format!("{}: OK\n", good.display())),
        "{out}"
    );
    assert!(
        out.contains("orders_rate") && out.contains("flink_busy_time_max"),
        "{out}"
    );

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "signals:\n  - name: x\n    type: flinkKafkaLagSeconds\n    rateWindow: fast\n",
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.contains(&format!(
            "{}: signals[0].rateWindow: expected a duration such as 30s, 2m or 1h, got \"fast\"",
            bad.display()
        )),
        "{err}"
    );
    // serve refuses the same file at start, before listening.
    let (code, _, err) = run(&[
        "serve",
        "--config",
        bad.to_str().unwrap(),
        "--prometheus-url",
        "http://x:9090",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("signals[0].rateWindow"), "{err}");
    let (code, _, err) = run(&["serve", "--secure-port", "0"]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "no Prometheus URL: pass --prometheus-url or set prometheus.url in the config file"
        ),
        "{err}"
    );
    let (code, _, err) = run(&["check-config", "/nonexistent.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("/nonexistent.yaml: cannot read"), "{err}");
}

#[tokio::test]
async fn query_shows_promql_samples_and_what_the_hpa_gets() {
    let bed = bed();
    let ns = unique("query");
    let mut rng = Rng::new();
    let v = rng.value(1.0, 999.0);
    bed.store.set(
        &ns,
        vec![FlinkTask::single(&ns, "orders-enrich").series("busyTimeMsPerSecond", v)],
    );
    wait_scraped(
        &format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{ns}\"}}"),
        1,
    )
    .await;
    let url = bed.prometheus_url.clone();
    let ns2 = ns.clone();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&[
            "query",
            "flink_busy_time_max",
            "-n",
            &ns2,
            "-l",
            "job_name=orders-enrich",
            "--prometheus-url",
            &url,
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");
    // One grouped query serves every HPA of the signal; the request's groups are picked in memory.
    assert!(out.contains(
        "label_replace(max by (namespace, job_name, task_id, task_name) (flink_taskmanager_job_task_busyTimeMsPerSecond{} >= 0 < +Inf), \"bridge_part\", \"value\", \"\", \"\")"
    ), "{out}");
    assert!(out.contains(&format!("This request's groups, selected in memory: {{namespace=\"{ns}\",job_name=\"orders_enrich\"}}")), "{out}");
    assert!(out.contains("Samples for this request: 3 (of "), "{out}");
    assert!(
        out.contains("What the HPA would receive (HTTP 200):"),
        "{out}"
    );
    assert!(
        out.contains(&format!("\"value\": \"{}\"", quantity(v))),
        "{out}"
    );

    // An error is shown as the Status the HPA would get, and the exit code says so.
    let url = bed.prometheus_url.clone();
    let (code, out, _) = tokio::task::spawn_blocking(move || {
        run(&[
            "query",
            "flink_busy_time_max",
            "-n",
            &ns,
            "-l",
            "job_name=nope",
            "--prometheus-url",
            &url,
        ])
    })
    .await
    .unwrap();
    assert_eq!(code, 2);
    assert!(
        out.contains("What the HPA would receive (HTTP 404):")
            && out.contains("\"kind\": \"Status\""),
        "{out}"
    );
}

/// An HPA that reacts at once (no `behavior`: no scale-up window), so the closed loop shows
/// a decision within a test's time.
const FAST_HPA: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: fast, namespace: flink}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: flink-taskmanager}
  minReplicas: 1
  maxReplicas: 8
  metrics:
    - type: External
      external:
        metric:
          name: flink_required_taskmanagers
          selector: {matchLabels: {job_name: orders-enrich}}
        target: {type: AverageValue, averageValue: "1"}
"#;

#[test]
fn demo_closes_the_loop_on_a_machine_with_nothing_running() {
    let dir = tempfile::tempdir().unwrap();
    let hpa = dir.path().join("fast.yaml");
    std::fs::write(&hpa, FAST_HPA).unwrap();
    let out_dir = dir.path().join("out");
    let (code, out, err) = run(&[
        "demo",
        "--secure-port",
        "0",
        "--hpa",
        hpa.to_str().unwrap(),
        "--workload",
        "step",
        "--peak",
        "4000",
        "--period",
        "40s",
        "--duration",
        "45s",
        "--sync-period",
        "5s",
        "--scrape-interval",
        "1s",
        "--out",
        out_dir.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    let syncs: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("time"))
        .skip(1)
        .take_while(|l| !l.is_empty())
        .collect();
    assert!(syncs.len() >= 7, "{out}");
    // The job runs on one TaskManager at 1,000 records/s, its capacity; at 10 s the load steps
    // to 4,000 records/s and the backlog grows. The HPA reads the required count over HTTPS
    // and scales up (by at most 4 pods per sync without a `behavior`), and the job rescales.
    assert!(syncs[0].contains("1 → 1"), "{out}");
    assert!(
        syncs
            .iter()
            .any(|l| l.contains("1 → ") && !l.contains("1 → 1") && l.contains("scale up")),
        "{out}"
    );
    for l in &syncs {
        assert!(!l.contains("request failed"), "{l}\n{out}");
    }
    for f in ["timeline.csv", "summary.json", "plot.png"] {
        assert!(out_dir.join(f).is_file(), "{f} missing\n{out}");
    }
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(
        summary["max_taskmanagers"].as_u64().unwrap() >= 2,
        "{summary}"
    );
    assert!(summary["rescales"].as_u64().unwrap() >= 1, "{summary}");
}

#[test]
fn demo_refuses_a_missing_hpa_before_starting_anything() {
    let started = std::time::Instant::now();
    let (code, _, err) = run(&["demo", "--secure-port", "0", "--hpa", "no-such-hpa.yaml"]);
    assert_ne!(code, 0);
    assert!(err.contains("no-such-hpa.yaml"), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
}

/// `serve` with `args` after the common ones must exit non-zero at once, saying `says`.
fn serve_refuses(args: &[&str], says: &[&str]) {
    let mut all = vec![
        "serve",
        "--insecure-skip-auth",
        "--prometheus-url",
        "http://127.0.0.1:1",
        "--bind-address",
        "127.0.0.1",
    ];
    all.extend_from_slice(args);
    let started = std::time::Instant::now();
    let (code, _, err) = run(&all);
    assert_ne!(code, 0, "{all:?} started\n{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    for s in says {
        assert!(err.contains(s), "{s:?} not in\n{err}");
    }
}

#[test]
fn a_certificate_and_a_key_that_do_not_match_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
    let cert = dir.path().join("tls.crt");
    let key = dir.path().join("other.key");
    std::fs::write(&cert, a.cert.pem()).unwrap();
    std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
    serve_refuses(
        &[
            "--secure-port",
            "0",
            "--tls-cert-file",
            cert.to_str().unwrap(),
            "--tls-private-key-file",
            key.to_str().unwrap(),
        ],
        &[
            "other.key is not the private key of",
            "public keys differ",
            "--tls-private-key-file",
        ],
    );
}

#[test]
fn missing_referenced_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing-ca.crt");
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(
        &cfg,
        format!(
            "prometheus:\n  url: http://prometheus:9090\n  caFile: {}\n",
            missing.display()
        ),
    )
    .unwrap();
    let (code, _, err) = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("prometheus.caFile")
            && err.contains("missing-ca.crt")
            && err.contains("fix the path"),
        "{err}"
    );
    serve_refuses(
        &["--config", cfg.to_str().unwrap(), "--secure-port", "0"],
        &["prometheus.caFile", "missing-ca.crt"],
    );
    serve_refuses(
        &[
            "--secure-port",
            "0",
            "--tls-cert-file",
            "/nonexistent/tls.crt",
            "--tls-private-key-file",
            "/nonexistent/tls.key",
        ],
        &["--tls-cert-file", "/nonexistent/tls.crt"],
    );
    serve_refuses(
        &[
            "--secure-port",
            "0",
            "--client-ca-file",
            "/nonexistent/ca.crt",
        ],
        &["--client-ca-file", "/nonexistent/ca.crt"],
    );
}

#[test]
fn an_implausible_resource_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(&cfg, "prometheus:\n  url: http://prometheus:9090\nsignals:\n  - name: busy_pod\n    type: promql\n    api: custom\n    resource: pod\n    query: max by (pod) (busy{<<matchers>>})\n").unwrap();
    let (code, _, err) = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("signals[name=busy_pod].resource") && err.contains("e.g. pods"),
        "{err}"
    );
}

#[test]
fn a_taken_port_names_the_flag_to_change() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    serve_refuses(
        &["--secure-port", &port],
        &["cannot listen on", "--secure-port"],
    );
    let (code, _, err) = run(&["demo", "--secure-port", &port, "--duration", "1"]);
    assert_ne!(code, 0);
    assert!(err.contains("--secure-port"), "{err}");
    // Refused before the demo started its children.
    assert!(!err.contains("Prometheus"), "{err}");
}

#[test]
fn an_unusable_kubeconfig_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let kc = dir.path().join("kubeconfig");
    std::fs::write(&kc, "this: is: not: a kubeconfig").unwrap();
    serve_refuses(
        &["--secure-port", "0", "--kubeconfig", kc.to_str().unwrap()],
        &["--kubeconfig", "kubeconfig"],
    );
    serve_refuses(
        &[
            "--secure-port",
            "0",
            "--kubeconfig",
            "/nonexistent/kubeconfig",
        ],
        &["--kubeconfig /nonexistent/kubeconfig"],
    );
}

#[test]
fn help_version_and_completions() {
    let (code, out, _) = run(&["serve", "--help"]);
    assert_eq!(code, 0);
    for flag in [
        "--kubeconfig",
        "--authentication-kubeconfig",
        "--authorization-kubeconfig",
        "--log-format",
        "--secure-port",
    ] {
        assert!(out.contains(flag), "{flag} not in\n{out}");
    }
    let (_, out, _) = run(&["query", "--help"]);
    assert!(
        out.contains("flink_busy_time_max") && out.contains("flink_kafka_lag_records"),
        "{out}"
    );
    let (code, out, _) = run(&["--version"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("flink-hpa-bridge ") && out.contains("(commit "),
        "{out}"
    );
    for shell in ["bash", "zsh", "fish"] {
        let (code, out, _) = run(&["completions", shell]);
        assert_eq!(code, 0);
        assert!(out.contains("check-config"), "{shell}: {out}");
    }
}

/// Reads `child`'s stderr as JSON log lines until `done` says it has seen enough.
fn json_lines_until(
    child: &mut std::process::Child,
    mut done: impl FnMut(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    use std::io::BufRead;
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !done(&seen) {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => seen.push(
                serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}")),
            ),
            Err(_) => break,
        }
    }
    seen
}

#[tokio::test]
async fn starts_with_prometheus_unreachable_and_says_so() {
    // A port nothing listens on: connections are refused at once.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", dead.local_addr().unwrap().port());
    drop(dead);
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--log-format",
            "json",
            "--insecure-skip-auth",
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            "0",
            "--prometheus-url",
            &url,
        ])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let msg = |l: &serde_json::Value| l["message"].as_str().unwrap_or("").to_string();
    let lines = json_lines_until(&mut child, |ls| {
        ls.iter().any(|l| msg(l).starts_with("serving"))
            && ls
                .iter()
                .any(|l| msg(l).contains("Prometheus cannot be reached"))
    });
    let warning = lines
        .iter()
        .find(|l| msg(l).contains("Prometheus cannot be reached"));
    let serving = lines.iter().find(|l| msg(l).starts_with("serving"));
    let (Some(warning), Some(serving)) = (warning, serving) else {
        let _ = child.kill();
        panic!("{lines:#?}");
    };
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["url"], url.as_str());
    assert!(
        warning["error"].as_str().unwrap_or("").len() > 3,
        "{warning}"
    );
    let addr: std::net::SocketAddr = serving["address"].as_str().unwrap().parse().unwrap();
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let base = format!("https://127.0.0.1:{}", addr.port());
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("flink_hpa_bridge_prometheus_up 0"),
        "{metrics}"
    );
    let r = http
        .get(format!(
            "{base}/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_promql_template_that_does_not_parse_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    // One closing parenthesis short.
    std::fs::write(&cfg, "prometheus:\n  url: http://prometheus:9090\nsignals:\n  - name: orders_rate\n    type: promql\n    api: external\n    query: sum(rate(orders_total{<<matchers>>}[1m])\n").unwrap();
    let (code, _, err) = run(&["check-config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("signals[name=orders_rate].query")
            && err.contains("does not parse")
            && err.contains("sum(rate(orders_total{"),
        "{err}"
    );
    serve_refuses(
        &["--config", cfg.to_str().unwrap(), "--secure-port", "0"],
        &["signals[name=orders_rate].query"],
    );
}

#[tokio::test]
async fn check_config_with_a_prometheus_shows_what_each_signal_serves() {
    let bed = bed();
    let ns = unique("checkcfg");
    bed.store.set(
        &ns,
        vec![FlinkTask::single(&ns, "orders-enrich").series("busyTimeMsPerSecond", 500.0)],
    );
    wait_scraped(
        &format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{ns}\"}}"),
        1,
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("cfg.yaml");
    std::fs::write(&cfg, "builtinSignals: true\n").unwrap();
    let url = bed.prometheus_url.clone();
    let path = cfg.to_str().unwrap().to_string();
    let (code, out, err) = tokio::task::spawn_blocking(move || {
        run(&["check-config", &path, "--prometheus-url", &url])
    })
    .await
    .unwrap();
    assert!(out.contains(": OK"), "{out}{err}");
    assert!(out.contains("Asking http://127.0.0.1:"), "{out}");
    // The busy time signal has a value (across namespaces: the busiest job of that name),
    // shown with its labels and its PromQL.
    let busy: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("  flink_busy_time_max: "))
        .take(3)
        .collect();
    assert!(busy.len() == 3 && busy[0].ends_with("value(s)"), "{out}");
    assert!(
        busy[1].starts_with("    {job_name=\"orders_enrich\"} "),
        "{out}"
    );
    assert!(
        busy[2].starts_with("    PromQL: label_replace(max by (namespace, job_name"),
        "{out}"
    );
    // Pravega has no series here: said, and the exit code says a signal has no value.
    assert!(out.contains("pravega_stream_segments: HTTP 404"), "{out}");
    assert_eq!(code, 2, "{out}{err}");
}
