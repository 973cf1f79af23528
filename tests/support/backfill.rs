//! History for tests against a real Prometheus: the Flink job model through two rescales,
//! kafka_exporter and Pravega series, written as OpenMetrics and backfilled into a local
//! Prometheus with `promtool tsdb create-blocks-from openmetrics`.

#![allow(dead_code)]

use std::collections::BTreeMap;

use flink_hpa_bridge::fixtures::exporter::Series;
use flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus;
use flink_hpa_bridge::sim::{FlinkJob, JobConfig};

type Labels = BTreeMap<String, String>;

fn sample(name: &str, pairs: &[(&str, &str)], v: f64, ts_ms: i64) -> Series {
    let mut s = Series::new(name, pairs, v);
    s.timestamp_ms = Some(ts_ms);
    s
}

/// 30 minutes of history ending 30 minutes ago, one scrape every 5 s.
pub fn history(start_ms: i64) -> Vec<Series> {
    let mut job = FlinkJob::new(
        JobConfig {
            start_unix_ms: start_ms,
            capacity_per_slot: 500.0,
            ..JobConfig::default()
        },
        3,
    );
    let mut out = Vec::new();
    let mut offset = 1_000_000.0;
    for step in 0..1800 {
        let t = step as f64;
        if step == 600 {
            job.set_replicas(5);
        }
        if step == 1200 {
            job.set_replicas(2);
        }
        if step % 5 == 0 {
            out.extend(job.series());
            let ts = start_ms + step * 1000;
            // kafka_exporter: two partitions, one without a committed offset (-1) for a
            // while, a counter reset of the offset at 900 s (the exporter restarted).
            offset += 2500.0 + 500.0 * (t / 60.0).sin();
            let off = if step >= 900 {
                offset - 1_000_000.0
            } else {
                offset
            };
            let g = [("consumergroup", "g1"), ("topic", "orders")];
            out.push(sample(
                "kafka_consumergroup_current_offset",
                &[g[0], g[1], ("partition", "0")],
                off,
                ts,
            ));
            out.push(sample(
                "kafka_consumergroup_lag",
                &[g[0], g[1], ("partition", "0")],
                (4000.0 * (t / 300.0).sin()).round(),
                ts,
            ));
            out.push(sample(
                "kafka_consumergroup_lag",
                &[g[0], g[1], ("partition", "1")],
                if step < 300 { -1.0 } else { (t / 10.0).round() },
                ts,
            ));
            // Pravega reports its segment gauge only now and then.
            if step % 600 < 30 {
                out.push(sample(
                    "pravega_controller_segments_count",
                    &[("scope", "s"), ("stream", "x")],
                    (3 + step / 600) as f64,
                    ts,
                ));
            }
        }
        job.advance(1.0, 2500.0 + 2000.0 * (t / 200.0).sin());
    }
    out
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// OpenMetrics text with every sample timestamped, series grouped by metric name.
pub fn openmetrics(series: &[Series]) -> String {
    let mut by: BTreeMap<(String, Labels), Vec<(i64, f64)>> = BTreeMap::new();
    for s in series {
        let l: Labels = s.labels.iter().cloned().collect();
        by.entry((s.name.clone(), l))
            .or_default()
            .push((s.timestamp_ms.unwrap_or(0), s.value));
    }
    let mut out = String::new();
    for ((name, labels), points) in by {
        let l = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect::<Vec<_>>()
            .join(",");
        for (t, v) in points {
            let v = if v.is_nan() {
                "NaN".to_string()
            } else {
                format!("{v}")
            };
            out.push_str(&format!("{name}{{{l}}} {v} {}.{:03}\n", t / 1000, t % 1000));
        }
    }
    out.push_str("# EOF\n");
    out
}

/// A Prometheus serving `series` from backfilled blocks (no scrape targets).
pub async fn prometheus_with(series: &[Series]) -> LocalPrometheus {
    let mut prom = LocalPrometheus::start(&[], std::time::Duration::from_secs(5))
        .await
        .expect("prometheus starts");
    prom.kill().await;
    let work = tempfile::tempdir().unwrap();
    let om = work.path().join("history.om");
    std::fs::write(&om, openmetrics(series)).unwrap();
    let blocks = work.path().join("blocks");
    let status = std::process::Command::new("promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&om)
        .arg(&blocks)
        .output()
        .expect("promtool runs");
    assert!(
        status.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&status.stderr)
    );
    let data = prom.data_dir();
    std::fs::create_dir_all(&data).unwrap();
    for b in std::fs::read_dir(&blocks).unwrap() {
        let b = b.unwrap();
        std::fs::rename(b.path(), data.join(b.file_name())).unwrap();
    }
    prom.restart().await.expect("prometheus restarts");
    prom
}

/// Whole seconds, an hour ago: inside the default retention, outside the head block.
pub fn start_ms() -> i64 {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    (now_ms / 1000 - 3600) * 1000
}
