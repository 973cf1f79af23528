//! The in-memory PromQL backend against a real Prometheus: the same generated history (the
//! Flink job model through two rescales, kafka_exporter and Pravega series) is backfilled into
//! Prometheus with `promtool tsdb create-blocks-from openmetrics` and loaded into the memory
//! store; every query the signal kinds emit, and a set of queries exercising the evaluator's
//! other constructs, must give the same answer at many evaluation times.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use flink_hpa_bridge::backend::{MemoryBackend, QueryBackend};
use flink_hpa_bridge::config::{Config, PrometheusSettings};
use flink_hpa_bridge::fixtures::exporter::Series;
use flink_hpa_bridge::prometheus::{self, PromError, QueryResult, RangeResult, Sample};
use flink_hpa_bridge::selector::Selector;
use flink_hpa_bridge::signals::{Mode, Objects, Request, Signals};

#[path = "support/backfill.rs"]
mod backfill;

use backfill::history;

type Labels = BTreeMap<String, String>;

/// Records every query sent through it.
struct Recording {
    inner: Arc<MemoryBackend>,
    queries: Mutex<Vec<String>>,
}

#[async_trait]
impl QueryBackend for Recording {
    async fn instant(&self, query: &str, time: Option<f64>) -> Result<QueryResult, PromError> {
        if let Ok(mut q) = self.queries.lock() {
            q.push(query.to_string());
        }
        self.inner.instant(query, time).await
    }
    async fn range(&self, q: &str, s: f64, e: f64, st: f64) -> Result<RangeResult, PromError> {
        self.inner.range(q, s, e, st).await
    }
    fn accepts_warnings(&self) -> bool {
        false
    }
    fn describe(&self) -> String {
        "recording".into()
    }
    fn now(&self) -> f64 {
        self.inner.now()
    }
}

fn labels_of(s: &Series) -> Labels {
    let mut l: Labels = s.labels.iter().cloned().collect();
    l.insert("__name__".into(), s.name.clone());
    l
}

fn as_map(samples: &[Sample]) -> BTreeMap<Labels, f64> {
    samples
        .iter()
        .map(|s| (s.labels.clone(), s.value))
        .collect()
}

fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

const EXTRA: &[&str] = &[
    "rate(kafka_consumergroup_current_offset[2m])",
    "increase(kafka_consumergroup_current_offset[5m])",
    "delta(kafka_consumergroup_lag[3m])",
    "deriv(kafka_consumergroup_lag[2m])",
    "predict_linear(kafka_consumergroup_lag[5m], 600)",
    "irate(kafka_consumergroup_current_offset[1m])",
    "rate(pravega_controller_segments_count[15m])",
    "increase(flink_taskmanager_job_task_numRecordsOut[3m])",
    "rate(flink_taskmanager_job_task_operator_numRecordsIn[10m])",
    "deriv(flink_taskmanager_job_task_operator_pendingRecords[4m])",
    "avg_over_time(flink_taskmanager_job_task_busyTimeMsPerSecond[1m])",
    "max_over_time(flink_taskmanager_job_task_operator_pendingRecords[2m])",
    "min_over_time(kafka_consumergroup_lag[2m])",
    "count_over_time(flink_taskmanager_job_task_busyTimeMsPerSecond[1m])",
    "last_over_time(pravega_controller_segments_count[10m])",
    "sum_over_time(kafka_consumergroup_lag[1m])",
    "stddev_over_time(kafka_consumergroup_lag[2m])",
    "changes(pravega_controller_segments_count[30m])",
    "resets(kafka_consumergroup_current_offset[30m])",
    "kafka_consumergroup_lag offset 3m",
    "rate(kafka_consumergroup_current_offset[2m] offset 1m)",
    "avg by (task_name) (flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "sum without (partition) (kafka_consumergroup_lag)",
    "count without (subtask_index, task_attempt_id, host, tm_id, pod) (flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "stddev by (task_id) (flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "quantile by (task_id) (0.9, flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "group by (pod) (flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "flink_taskmanager_job_task_busyTimeMsPerSecond > bool 500",
    "1000 - flink_taskmanager_job_task_busyTimeMsPerSecond",
    "-kafka_consumergroup_lag",
    "kafka_consumergroup_lag / on (consumergroup, topic, partition) kafka_consumergroup_current_offset",
    "kafka_consumergroup_lag * ignoring (partition) group_left sum by (consumergroup, topic) (kafka_consumergroup_lag)",
    "sum by (consumergroup, topic) (kafka_consumergroup_lag) / on (consumergroup, topic) group_right sum by (consumergroup, topic, partition) (kafka_consumergroup_current_offset)",
    "kafka_consumergroup_lag unless kafka_consumergroup_lag < 0",
    "kafka_consumergroup_lag and on (partition) kafka_consumergroup_current_offset > 0",
    "max by (job_name) (flink_taskmanager_job_task_busyTimeMsPerSecond) >= on (job_name) group_left max by (job_name) (flink_taskmanager_job_task_busyTimeMsPerSecond)",
    "clamp(kafka_consumergroup_lag, 0, 100)",
    "clamp_max(kafka_consumergroup_lag, 50)",
    "round(kafka_consumergroup_lag / 7, 0.5)",
    "ceil(kafka_consumergroup_lag / 7) + floor(kafka_consumergroup_lag / 7)",
    "sqrt(abs(kafka_consumergroup_lag))",
    "timestamp(kafka_consumergroup_lag)",
    "timestamp(kafka_consumergroup_lag > 0)",
    "time() - max(timestamp(flink_jobmanager_job_runningTime))",
    "scalar(max(pravega_controller_segments_count)) * 2",
    "vector(1) or absent(nonexistent_metric{a=\"b\"})",
    "absent(nonexistent_metric{a=\"b\"})",
    "label_replace(kafka_consumergroup_lag, \"p\", \"part-$1\", \"partition\", \"(.*)\")",
    "sum by (job_name) (flink_taskmanager_job_task_busyTimeMsPerSecond{task_name=~\"Source.*\"})",
    "flink_taskmanager_job_task_busyTimeMsPerSecond{task_name!~\"Source.*\",subtask_index!=\"0\"}",
    "2 ^ 3 % 5",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_backend_answers_as_prometheus_does() {
    let start_ms = backfill::start_ms();
    let series = history(start_ms);

    let prom = backfill::prometheus_with(&series).await;
    let client = prometheus::Client::new(&PrometheusSettings {
        url: Some(prom.url.clone()),
        ..Config::default().prometheus
    })
    .unwrap();

    // The memory store: the same samples.
    let memory = Arc::new(MemoryBackend::new("memory"));
    memory.with_store(|st| {
        let mut sorted: Vec<&Series> = series.iter().collect();
        sorted.sort_by_key(|s| s.timestamp_ms);
        for s in sorted {
            st.append(labels_of(s), s.timestamp_ms.unwrap(), s.value)
                .unwrap();
        }
    });

    // Every query the signal kinds emit, for the requests an HPA makes.
    let config = Config::from_yaml(
        r#"
prometheus: {url: "http://127.0.0.1:1"}
cache: {refreshInterval: "off"}
signals:
  - {name: topic_lag, type: promql, api: external, namespaced: false, query: 'sum by (topic) (kafka_consumergroup_lag{<<matchers>>} >= 0)'}
  - {name: tm_records_in, type: promql, api: custom, resource: pods, query: 'sum by (pod) (rate(flink_taskmanager_job_task_numRecordsIn{<<matchers>>}[1m]))'}
"#,
        "test",
    )
    .unwrap();
    let mut config_all = Config::default();
    config_all.signals.extend(config.signals.clone());
    config_all.cache.refresh_interval = None;
    let recording = Arc::new(Recording {
        inner: memory.clone(),
        queries: Mutex::new(Vec::new()),
    });
    let signals = Signals::with_backend(
        &config_all,
        recording.clone(),
        None,
        flink_hpa_bridge::metrics::Metrics::new(),
    );
    memory.set_now((start_ms + 700_000) as f64 / 1000.0);
    let sel = |s: &str| Selector::parse(s).unwrap();
    let ext = |s: &str| Request {
        namespace: Some("flink".into()),
        series: sel(s),
        objects: None,
    };
    for spec in config_all.signals.clone() {
        let reqs = match spec.resource() {
            "pods" => vec![
                Request {
                    namespace: Some("flink".into()),
                    series: sel(""),
                    objects: Some(Objects::All(sel(""))),
                },
                Request {
                    namespace: Some("flink".into()),
                    series: sel("task_name=enrich"),
                    objects: Some(Objects::All(sel(""))),
                },
            ],
            _ => vec![
                ext("job_name=orders-enrich"),
                ext("job_name=orders-enrich,task_name=enrich"),
                ext("job_name in (a,orders-enrich)"),
                ext("consumergroup=g1"),
                ext("topic=orders"),
                ext("scope=s,stream=x"),
                ext(""),
            ],
        };
        for r in reqs {
            let _ = signals.evaluate(&spec.name, &r, Mode::Serve).await;
        }
    }
    let mut queries = recording.queries.lock().unwrap().clone();
    queries.sort();
    queries.dedup();
    assert!(
        queries.len() >= 10,
        "the signal kinds emitted only {queries:?}"
    );
    for must in [
        "label_replace(",
        "timestamp(",
        "rate(",
        "last_over_time(",
        " or ",
    ] {
        assert!(
            queries.iter().any(|q| q.contains(must)),
            "no emitted query uses {must}"
        );
    }
    queries.extend(EXTRA.iter().map(|s| s.to_string()));

    // Evaluation times: across the history, at and around the rescales, and past its end
    // (stale data within and beyond the 5 min lookback).
    let mut times: Vec<i64> = (0..=2400)
        .step_by(97)
        .map(|s| start_ms + s * 1000)
        .collect();
    times.extend(
        [
            600_000, 602_500, 615_000, 1_200_000, 1_203_000, 2_099_000, 2_100_000, 2_101_000,
        ]
        .iter()
        .map(|d| start_ms + d),
    );
    let mut compared = 0;
    let mut non_empty = 0;
    for q in &queries {
        for &t in &times {
            let at = t as f64 / 1000.0;
            let want = client.instant_at(q, Some(at)).await;
            let got = memory.eval_instant(q, at);
            match (want, got) {
                (Ok(w), Ok(g)) => {
                    let (w, g) = (as_map(&w.samples), as_map(&g));
                    assert_eq!(
                        w.keys().collect::<Vec<_>>(),
                        g.keys().collect::<Vec<_>>(),
                        "label sets differ for {q} at {at}"
                    );
                    for (k, wv) in &w {
                        assert!(
                            same(*wv, g[k]),
                            "{q} at {at} for {k:?}: Prometheus {wv}, memory {}",
                            g[k]
                        );
                    }
                    compared += 1;
                    if !w.is_empty() {
                        non_empty += 1;
                    }
                }
                (Err(e), Err(_)) => {
                    // Both refuse (e.g. duplicate series after matching): fine.
                    let _ = e;
                }
                (w, g) => panic!("{q} at {at}: Prometheus {w:?}, memory {g:?}"),
            }
        }
    }
    assert!(compared > 1000, "{compared} comparisons");
    assert!(
        non_empty > compared / 2,
        "{non_empty} of {compared} non-empty"
    );

    // A range query gives the instant answers at each step.
    let r = memory
        .range(
            "sum(rate(kafka_consumergroup_current_offset[2m]))",
            (start_ms + 600_000) as f64 / 1000.0,
            (start_ms + 900_000) as f64 / 1000.0,
            30.0,
        )
        .await
        .unwrap();
    let w = client
        .range(
            "sum(rate(kafka_consumergroup_current_offset[2m]))",
            (start_ms + 600_000) as f64 / 1000.0,
            (start_ms + 900_000) as f64 / 1000.0,
            30.0,
        )
        .await
        .unwrap();
    assert_eq!(r.series.len(), 1);
    assert_eq!(r.series[0].points.len(), w.series[0].points.len());
    for (a, b) in r.series[0].points.iter().zip(&w.series[0].points) {
        assert!(a.0 == b.0 && same(a.1, b.1), "{a:?} vs {b:?}");
    }

    // What the evaluator does not implement is an error, never a number.
    for q in [
        "topk(1, kafka_consumergroup_lag)",
        "max_over_time(kafka_consumergroup_lag[5m:1m])",
        "histogram_quantile(0.9, kafka_consumergroup_lag)",
        "kafka_consumergroup_lag @ 100",
    ] {
        assert!(
            memory
                .eval_instant(q, (start_ms + 700_000) as f64 / 1000.0)
                .is_err(),
            "{q} answered"
        );
    }
    prom.stop().await;
}
