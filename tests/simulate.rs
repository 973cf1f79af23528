//! `simulate` end to end (files, a summary that adds up, TaskManagers following the load) and
//! `replay` over a real Prometheus fed with backfilled history.

#[path = "support/backfill.rs"]
mod backfill;

use std::collections::BTreeMap;

use flink_hpa_bridge::hpa::controller::Reading;
use flink_hpa_bridge::simulate::replay::{self, ReplayOptions};
use flink_hpa_bridge::simulate::{self, SimulateOptions};

fn read_csv(path: &std::path::Path) -> Vec<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines = text.lines();
    let header: Vec<String> = lines.next().unwrap().split(',').map(String::from).collect();
    lines
        .map(|l| {
            // The leading numeric columns hold no quotes or commas.
            header
                .iter()
                .cloned()
                .zip(l.split(',').map(String::from))
                .collect()
        })
        .collect()
}

fn f(row: &BTreeMap<String, String>, k: &str) -> f64 {
    row[k].parse().unwrap_or(f64::NAN)
}

#[test]
fn a_short_sine_scales_up_and_down_and_the_summary_matches_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let opts = SimulateOptions {
        hpa: "hpa-examples/busy-time.yaml".into(),
        // An hour's sine: the example's scale-up and scale-down windows (180 s, 600 s) are
        // meant for loads that change over hours, not minutes.
        duration_seconds: 4200.0,
        period_seconds: 3600.0,
        out: dir.path().to_path_buf(),
        ..SimulateOptions::default()
    };
    let mut printed = Vec::new();
    let report = simulate::simulate(&opts, &mut printed).unwrap();
    let printed = String::from_utf8(printed).unwrap();
    assert!(printed.contains("TaskManager-seconds"), "{printed}");

    let png = std::fs::read(dir.path().join("plot.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(
        png.len() > 20_000,
        "a plot with content: {} bytes",
        png.len()
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("summary.json")).unwrap()).unwrap();
    let rows = read_csv(&dir.path().join("timeline.csv"));
    // One row per 15 s HPA sync.
    assert_eq!(rows.len(), 280);
    assert_eq!(summary["syncs"], 280);

    // TaskManager-seconds: what the HPA leaves running from each sync to the next.
    let mut tm_s = 0.0;
    for (i, r) in rows.iter().enumerate() {
        let next = rows
            .get(i + 1)
            .map(|n| f(n, "time_seconds"))
            .unwrap_or(4200.0);
        tm_s += f(r, "desired_replicas") * (next - f(r, "time_seconds"));
    }
    let reported = summary["taskmanager_seconds"].as_f64().unwrap();
    assert!((tm_s - reported).abs() < 1e-6, "{tm_s} vs {reported}");
    assert_eq!(reported, report.summary.taskmanager_seconds);
    // The oracle by hand: Σ ceil(rate / 1000) over the 1 s steps.
    let mut oracle = 0.0;
    for s in 0..4200 {
        let rate = 3000.0 * (1.0 - (2.0 * std::f64::consts::PI * s as f64 / 3600.0).cos());
        oracle += (rate / 1000.0).ceil().max(1.0);
    }
    assert_eq!(
        summary["oracle_taskmanager_seconds"].as_f64().unwrap(),
        oracle
    );
    let max_tm = rows
        .iter()
        .map(|r| f(r, "task_managers"))
        .fold(0.0, f64::max);
    assert_eq!(summary["max_taskmanagers"].as_f64().unwrap(), max_tm);
    let max_lag = rows.iter().map(|r| f(r, "lag_seconds")).fold(0.0, f64::max);
    assert!(summary["max_lag_seconds"].as_f64().unwrap() >= max_lag);
    // Replica changes in the timeline are the HPA's scale events.
    let changes = rows
        .windows(2)
        .filter(|w| f(&w[0], "desired_replicas") != f(&w[1], "task_managers"))
        .count();
    assert_eq!(changes, 0, "each sync starts from the previous decision");
    let decisions = rows
        .iter()
        .filter(|r| f(r, "desired_replicas") != f(r, "task_managers"))
        .count() as u64;
    assert_eq!(summary["hpa_scale_events"].as_u64().unwrap(), decisions);

    // The HPA follows the load: 1 TaskManager at the start, at least 5 at the 6,000 rec/s
    // peak (6 keep up at 1,000 rec/s each), fewer again at the end.
    assert_eq!(f(&rows[0], "task_managers"), 1.0);
    let at_peak = rows
        .iter()
        .find(|r| f(r, "time_seconds") == 1980.0)
        .unwrap();
    assert!(f(at_peak, "task_managers") >= 5.0, "{at_peak:?}");
    let last = rows.last().unwrap();
    assert!(f(last, "task_managers") < f(at_peak, "task_managers"));
    // The busy time it read is in ms/s, and read at most syncs.
    let read: Vec<f64> = rows
        .iter()
        .map(|r| f(r, "flink_busy_time_max"))
        .filter(|v| v.is_finite())
        .collect();
    assert!(read.len() > 100, "{} readings", read.len());
    assert!(read.iter().all(|v| (0.0..=1000.0).contains(v)));
    assert!(read.iter().any(|v| *v > 700.0));
}

#[test]
fn the_cli_runs_a_step_and_refuses_a_bad_duration() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_flink-hpa-bridge");
    let out = std::process::Command::new(bin)
        .args([
            "simulate",
            "--hpa",
            "hpa-examples/kafka-lag-seconds.yaml",
            "--workload",
            "step",
            "--duration",
            "10m",
            "--period",
            "20m",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("oracle"), "{stdout}");
    for f in ["timeline.csv", "summary.json", "plot.png"] {
        assert!(dir.path().join(f).is_file(), "{f}");
    }
    let rows = read_csv(&dir.path().join("timeline.csv"));
    assert_eq!(rows.len(), 40);
    // The step to 6,000 rec/s at 5 min: the lag signal makes the HPA add TaskManagers.
    assert!(rows
        .iter()
        .any(|r| f(r, "desired_replicas") > f(r, "task_managers")));
    let bad = std::process::Command::new(bin)
        .args([
            "simulate",
            "--hpa",
            "hpa-examples/busy-time.yaml",
            "--duration",
            "soon",
        ])
        .output()
        .unwrap();
    assert!(!bad.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_reads_the_history_at_each_sync_and_decides() {
    let start_ms = backfill::start_ms();
    let series = backfill::history(start_ms);
    let prom = backfill::prometheus_with(&series).await;
    let dir = tempfile::tempdir().unwrap();
    let hpa = dir.path().join("hpa.yaml");
    std::fs::write(
        &hpa,
        r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: replayed, namespace: flink}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: flink-taskmanager}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - type: External
      external:
        metric: {name: flink_busy_time_max, selector: {matchLabels: {job_name: orders-enrich}}}
        target: {type: Value, value: "700"}
    - type: External
      external:
        metric: {name: flink_kafka_lag_records, selector: {matchLabels: {job_name: orders-enrich}}}
        target: {type: AverageValue, averageValue: "100k"}
"#,
    )
    .unwrap();
    let from = start_ms as f64 / 1000.0 + 120.0;
    let to = from + 1500.0;
    let opts = ReplayOptions {
        prometheus_url: prom.url.clone(),
        hpa,
        from,
        to,
        step_seconds: 15.0,
        config: None,
        out: dir.path().join("out"),
    };
    let r = replay::run(&opts).await.unwrap();
    assert_eq!(r.rows.len(), 101);

    // At each sync the busy time read is the 'enrich' vertex's busiest subtask in the
    // history at that time (away from the rescales at 600 s and 1200 s: for up to the
    // restart hold's 300 s after a restart, the signal may serve a remembered value).
    let busy = |t_ms: i64| -> Option<f64> {
        let newest = series
            .iter()
            .filter(|s| {
                s.name == "flink_taskmanager_job_task_busyTimeMsPerSecond"
                    && s.timestamp_ms.unwrap() <= t_ms
            })
            .map(|s| s.timestamp_ms.unwrap())
            .max()?;
        series
            .iter()
            .filter(|s| {
                s.name == "flink_taskmanager_job_task_busyTimeMsPerSecond"
                    && s.timestamp_ms == Some(newest)
                    && s.labels
                        .iter()
                        .any(|(k, v)| k == "task_name" && v == "enrich")
            })
            .map(|s| s.value)
            .reduce(f64::max)
    };
    let mut checked = 0;
    for row in &r.rows {
        let t = start_ms as f64 / 1000.0 + 120.0 + row.t;
        let since_start = t - start_ms as f64 / 1000.0;
        let near_rescale = [600.0, 1200.0]
            .iter()
            .any(|r| since_start > r - 30.0 && since_start < r + 420.0);
        if near_rescale {
            continue;
        }
        let want = busy((t * 1000.0) as i64).unwrap();
        match &row.readings[0] {
            Ok(Reading::Value(v)) => assert_eq!(*v, want, "at {since_start} s"),
            other => panic!("at {since_start} s: {other:?}"),
        }
        checked += 1;
    }
    assert!(checked > 30, "{checked}");
    // The backlog column comes from the history too.
    assert!(r.rows.iter().any(|row| row.backlog > 0.0));
    // The model starts from the TaskManagers the job had, then follows its own decisions.
    assert_eq!(r.rows[0].task_managers, 3);
    for w in r.rows.windows(2) {
        assert_eq!(w[1].task_managers as i32, w[0].desired_replicas);
    }
    assert!(
        r.rows
            .iter()
            .any(|row| row.desired_replicas as usize != row.task_managers),
        "the HPA never changed its mind over a load from 500 to 4,500 rec/s"
    );
    let tm_s: f64 = r
        .rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            let next = r.rows.get(i + 1).map(|n| n.t).unwrap_or(to - from);
            row.desired_replicas as f64 * (next - row.t)
        })
        .sum();
    assert!((tm_s - r.report.summary.taskmanager_seconds).abs() < 1e-6);

    // The command writes the same files.
    let mut out = Vec::new();
    replay::replay(&opts, &mut out).await.unwrap();
    for f in ["timeline.csv", "summary.json", "plot.png"] {
        assert!(dir.path().join("out").join(f).is_file(), "{f}");
    }
    prom.stop().await;
}
