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

#[test]
fn demo_runs_on_a_machine_with_nothing_running() {
    let (code, out, err) = run(&[
        "demo",
        "--secure-port",
        "0",
        "--duration",
        "4",
        "--refresh",
        "2",
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    // The first reading comes after Prometheus' first scrape: every signal has a value.
    let first: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("t="))
        .skip(1)
        .take(6)
        .collect();
    assert_eq!(first.len(), 6, "{out}");
    for line in first {
        assert!(
            !line.contains("error") && !line.contains("failed"),
            "{line}\n{out}"
        );
    }
    assert!(out.contains("flink-taskmanager-5d8f7c9b4-tm000="), "{out}");
}
