//! A test and demo exporter: serves the series a Flink job in Reactive Mode, kafka_exporter and
//! the Pravega controller expose, under their real names and labels, in the text format Flink's
//! Prometheus reporter writes (simpleclient style, trailing comma in label sets).
//!
//! [`SyntheticJob`] models a job under a slowly varying load; [`Store`] holds whatever series a
//! test puts in it. Both are served by [`serve`].

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::fmt::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

/// One exported series.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    /// Explicit sample time in milliseconds; `None` lets Prometheus stamp the scrape time.
    pub timestamp_ms: Option<i64>,
}

impl Series {
    pub fn new(name: &str, labels: &[(&str, &str)], value: f64) -> Self {
        Self {
            name: name.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value,
            timestamp_ms: None,
        }
    }

    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }
}

/// Flink's reporter filter for label values: anything outside `[a-zA-Z0-9:_]` becomes `_`.
pub fn flink_value(v: &str) -> String {
    crate::promql::flink_label_value(v)
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Java's Double.toString style, as the reporter writes it: `4.0`, `1326.75`.
        format!("{v:?}")
    }
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders series in the Prometheus text format, grouped by name with HELP and TYPE lines.
pub fn render(series: &[Series]) -> String {
    let mut by_name: BTreeMap<&str, Vec<&Series>> = BTreeMap::new();
    for s in series {
        by_name.entry(&s.name).or_default().push(s);
    }
    let mut out = String::new();
    for (name, list) in by_name {
        let _ = writeln!(out, "# HELP {name} {name}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        for s in list {
            out.push_str(name);
            out.push('{');
            for (k, v) in &s.labels {
                let _ = write!(out, "{k}=\"{}\",", escape_label_value(v));
            }
            out.push('}');
            let _ = write!(out, " {}", format_value(s.value));
            if let Some(ts) = s.timestamp_ms {
                let _ = write!(out, " {ts}");
            }
            out.push('\n');
        }
    }
    out
}

/// Series that tests set and replace at will, grouped under scenario names so that tests
/// sharing one exporter do not see each other's data.
#[derive(Clone, Default)]
pub struct Store {
    inner: Arc<Mutex<BTreeMap<String, Vec<Series>>>>,
}

impl Store {
    pub fn set(&self, scenario: &str, series: Vec<Series>) {
        self.lock().insert(scenario.to_string(), series);
    }

    pub fn remove(&self, scenario: &str) {
        self.lock().remove(scenario);
    }

    pub fn all(&self) -> Vec<Series> {
        self.lock().values().flatten().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Series>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Something that produces the series for one scrape.
pub trait Source: Send + Sync + 'static {
    fn series(&self) -> Vec<Series>;
}

impl Source for Store {
    fn series(&self) -> Vec<Series> {
        self.all()
    }
}

/// Serves `source` at `/metrics` over plain HTTP until the task is dropped.
pub async fn serve(listener: TcpListener, source: Arc<dyn Source>) -> std::io::Result<()> {
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let source = source.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4",
                    )],
                    render(&source.series()),
                )
            }
        }),
    );
    axum::serve(listener, app).await
}

/// Binds a loopback port and serves `source` in the background.
pub async fn spawn(source: Arc<dyn Source>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, source).await {
            tracing::warn!(error = %e, "exporter stopped");
        }
    });
    Ok(addr)
}

/// Label sets Flink's reporter puts on task and operator series.
pub struct FlinkTask<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub job_name: &'a str,
    pub job_id: &'a str,
    pub task_name: &'a str,
    pub task_id: &'a str,
    pub subtask_index: usize,
    pub tm_id: &'a str,
}

impl<'a> FlinkTask<'a> {
    /// Subtask 0 of a task `enrich` on pod `tm-0`: the smallest job there is, for tests.
    pub fn single(namespace: &'a str, job_name: &'a str) -> Self {
        Self {
            namespace,
            pod: "tm-0",
            job_name,
            job_id: "j",
            task_name: "enrich",
            task_id: "t",
            subtask_index: 0,
            tm_id: "tm-0",
        }
    }

    /// Labels of a `flink_taskmanager_job_task_*` series, plus what Kubernetes pod scraping
    /// adds: `namespace`, `pod`, and the TaskManager pod's own labels (`app`, `component`).
    pub fn labels(&self) -> Vec<(String, String)> {
        let idx = self.subtask_index.to_string();
        let attempt = format!("{}_{}_{}_0", self.job_id, self.task_id, idx);
        vec![
            ("job_id".into(), self.job_id.into()),
            ("task_id".into(), self.task_id.into()),
            ("task_attempt_id".into(), attempt),
            ("host".into(), flink_value(self.pod)),
            ("task_name".into(), flink_value(self.task_name)),
            ("task_attempt_num".into(), "0".into()),
            ("job_name".into(), flink_value(self.job_name)),
            ("tm_id".into(), flink_value(self.tm_id)),
            ("subtask_index".into(), idx),
            ("namespace".into(), self.namespace.into()),
            ("pod".into(), self.pod.into()),
            ("app".into(), "flink".into()),
            ("component".into(), "taskmanager".into()),
        ]
    }

    pub fn series(&self, metric: &str, value: f64) -> Series {
        Series {
            name: format!("flink_taskmanager_job_task_{metric}"),
            labels: self.labels(),
            value,
            timestamp_ms: None,
        }
    }

    /// An operator-scope series (`flink_taskmanager_job_task_operator_*`).
    pub fn operator_series(
        &self,
        operator_name: &str,
        operator_id: &str,
        metric: &str,
        value: f64,
    ) -> Series {
        let mut labels = self.labels();
        labels.insert(4, ("operator_id".into(), operator_id.into()));
        labels.insert(5, ("operator_name".into(), flink_value(operator_name)));
        Series {
            name: format!("flink_taskmanager_job_task_operator_{metric}"),
            labels,
            value,
            timestamp_ms: None,
        }
    }
}

/// A Flink job in Reactive Mode under a load that varies slowly over time.
///
/// Parallelism is `task_managers × slots`. Records arrive at `base_rate × (1 + 0.6 sin(2πt/period))`
/// per second; each subtask of the `enrich` operator handles `subtask_capacity` records per
/// second at full busy time. What cannot be processed piles up as Kafka backlog.
#[derive(Debug, Clone)]
pub struct SyntheticJob {
    pub namespace: String,
    pub job_name: String,
    pub task_managers: usize,
    pub slots_per_task_manager: usize,
    pub base_rate: f64,
    pub period_seconds: f64,
    pub subtask_capacity: f64,
    pub kafka_topic: String,
    pub kafka_partitions: usize,
    pub pravega_scope: String,
    pub pravega_stream: String,
    /// Records of Kafka backlog; evolves with [`SyntheticJob::advance`].
    pub backlog: f64,
    /// Consumer-group committed offset total, for kafka_exporter's view.
    pub committed: f64,
    pub elapsed: f64,
    /// Model time at which the job last entered RUNNING (a rescale restarts it).
    pub running_since: f64,
}

const JOB_ID: &str = "62b6ab75a23413780e94899d0ba1c305";
const SOURCE_TASK_ID: &str = "e5a72f353fc1e6bbf3bd96a41384998c";
const ENRICH_TASK_ID: &str = "674df9b0384c0348e0b9d1034a44c46c";
const SINK_TASK_ID: &str = "96eed58e350a66c179f06330f5425345";
const SINK_OPERATOR_ID: &str = "2e588ce1c86a9d46e2e85186773ce4fd";

impl SyntheticJob {
    pub fn new(namespace: &str, job_name: &str) -> Self {
        Self {
            namespace: namespace.to_string(),
            job_name: job_name.to_string(),
            task_managers: 2,
            slots_per_task_manager: 2,
            base_rate: 6000.0,
            period_seconds: 600.0,
            subtask_capacity: 2000.0,
            kafka_topic: "orders".into(),
            kafka_partitions: 8,
            pravega_scope: "examples".into(),
            pravega_stream: "orders".into(),
            backlog: 0.0,
            committed: 1_000_000.0,
            elapsed: 0.0,
            // Running for ten minutes already, past any warm-up.
            running_since: -600.0,
        }
    }

    pub fn parallelism(&self) -> usize {
        (self.task_managers * self.slots_per_task_manager).max(1)
    }

    pub fn arrival_rate(&self) -> f64 {
        let phase = 2.0 * PI * self.elapsed / self.period_seconds.max(1.0);
        (self.base_rate * (1.0 + 0.6 * phase.sin())).max(0.0)
    }

    fn capacity(&self) -> f64 {
        self.parallelism() as f64 * self.subtask_capacity
    }

    /// Records per second the job processes now: the arrivals plus backlog, up to capacity.
    pub fn processing_rate(&self) -> f64 {
        let wanted = self.arrival_rate()
            + if self.backlog > 0.0 {
                self.backlog
            } else {
                0.0
            };
        wanted.min(self.capacity())
    }

    /// Moves the model forward by `dt` seconds.
    pub fn advance(&mut self, dt: f64) {
        let arrivals = self.arrival_rate() * dt;
        let processed = (self.processing_rate() * dt).min(self.backlog + arrivals);
        self.backlog = (self.backlog + arrivals - processed).max(0.0);
        self.committed += processed;
        self.elapsed += dt;
    }

    /// Busy time of the enrich subtasks in ms per second.
    pub fn busy_time(&self) -> f64 {
        (self.processing_rate() / self.capacity() * 1000.0).clamp(0.0, 1000.0)
    }

    /// TaskManager pod names as a Deployment names them.
    pub fn pod_name(&self, tm: usize) -> String {
        format!("flink-taskmanager-5d8f7c9b4-tm{tm:03}")
    }

    /// Segments the Pravega stream would have split into for the current rate, at 2,000
    /// events/s per segment.
    pub fn pravega_segments(&self) -> f64 {
        (self.arrival_rate() / 2000.0).ceil().max(1.0)
    }

    pub fn series(&self) -> Vec<Series> {
        let p = self.parallelism();
        let ns = self.namespace.as_str();
        let job = flink_value(&self.job_name);
        let busy = self.busy_time();
        let rate = self.processing_rate();
        let mut out = Vec::new();
        for subtask in 0..p {
            let tm = subtask / self.slots_per_task_manager.max(1);
            let pod = self.pod_name(tm);
            let tm_id = format!("{pod}:6122-{:06x}", tm * 7919 + 4099);
            let task = |name: &'static str, id: &'static str| FlinkTask {
                namespace: ns,
                pod: &pod,
                job_name: &self.job_name,
                job_id: JOB_ID,
                task_name: name,
                task_id: id,
                subtask_index: subtask,
                tm_id: &tm_id,
            };
            // Busy time varies a little between subtasks, as with real key skew.
            let skew = 1.0 - 0.04 * (subtask as f64);
            let source = task("Source: orders", SOURCE_TASK_ID);
            out.push(source.series("busyTimeMsPerSecond", (busy * 0.3).round()));
            out.push(source.series("numRecordsInPerSecond", 0.0));
            out.push(source.operator_series(
                "Source: orders",
                SOURCE_TASK_ID,
                "numRecordsOutPerSecond",
                rate / p as f64,
            ));
            out.push(source.operator_series(
                "Source: orders",
                SOURCE_TASK_ID,
                "pendingRecords",
                (self.backlog / p as f64).round(),
            ));
            let enrich = task("enrich", ENRICH_TASK_ID);
            out.push(enrich.series(
                "busyTimeMsPerSecond",
                (busy * skew).round().clamp(0.0, 1000.0),
            ));
            out.push(enrich.series("numRecordsInPerSecond", rate / p as f64));
            out.push(enrich.operator_series(
                "enrich",
                ENRICH_TASK_ID,
                "numRecordsOutPerSecond",
                rate / p as f64,
            ));
            let sink = task("sink: Writer", SINK_TASK_ID);
            out.push(sink.series("busyTimeMsPerSecond", (busy * 0.1).round()));
            out.push(sink.operator_series(
                "sink: Writer",
                SINK_OPERATOR_ID,
                "numRecordsOutPerSecond",
                0.0,
            ));
        }
        let jm = |name: &str, value: f64| Series {
            name: format!("flink_jobmanager_job_{name}"),
            labels: vec![
                ("job_id".into(), JOB_ID.into()),
                ("host".into(), "flink_jobmanager".into()),
                ("job_name".into(), job.clone()),
                ("namespace".into(), ns.into()),
                ("pod".into(), "flink-jobmanager-0".into()),
            ],
            value,
            timestamp_ms: None,
        };
        let running_ms = ((self.elapsed - self.running_since) * 1000.0).round();
        out.push(jm("runningTime", running_ms));
        out.push(jm("uptime", running_ms));
        out.push(jm("numRestarts", 0.0));
        let jm_global = |name: &str, value: f64| Series {
            name: format!("flink_jobmanager_{name}"),
            labels: vec![
                ("host".into(), "flink_jobmanager".into()),
                ("namespace".into(), ns.into()),
                ("pod".into(), "flink-jobmanager-0".into()),
            ],
            value,
            timestamp_ms: None,
        };
        out.push(jm_global(
            "numRegisteredTaskManagers",
            self.task_managers as f64,
        ));
        out.push(jm_global("taskSlotsTotal", p as f64));
        out.push(jm_global("taskSlotsAvailable", 0.0));

        // kafka_exporter, in the Kafka namespace: lag per partition of the job's group.
        let group = self.job_name.as_str();
        let parts = self.kafka_partitions.max(1);
        for partition in 0..parts {
            let pl = partition.to_string();
            let labels = |extra: bool| {
                let mut l = vec![
                    ("consumergroup".to_string(), group.to_string()),
                    ("partition".to_string(), pl.clone()),
                    ("topic".to_string(), self.kafka_topic.clone()),
                ];
                if !extra {
                    l.remove(0);
                }
                l
            };
            out.push(Series {
                name: "kafka_consumergroup_lag".into(),
                labels: labels(true),
                value: (self.backlog / parts as f64).round(),
                timestamp_ms: None,
            });
            out.push(Series {
                name: "kafka_consumergroup_current_offset".into(),
                labels: labels(true),
                value: (self.committed / parts as f64).round(),
                timestamp_ms: None,
            });
            out.push(Series {
                name: "kafka_topic_partition_current_offset".into(),
                labels: labels(false),
                value: ((self.committed + self.backlog) / parts as f64).round(),
                timestamp_ms: None,
            });
        }
        out.push(Series::new(
            "kafka_consumergroup_lag_sum",
            &[("consumergroup", group), ("topic", &self.kafka_topic)],
            self.backlog.round(),
        ));
        out.push(Series::new(
            "pravega_controller_segments_count",
            &[
                ("scope", &self.pravega_scope),
                ("stream", &self.pravega_stream),
            ],
            self.pravega_segments(),
        ));
        out
    }
}

/// A [`SyntheticJob`] that advances with wall-clock time on every scrape.
pub struct LiveJob {
    job: Mutex<(SyntheticJob, std::time::Instant)>,
}

impl LiveJob {
    pub fn new(job: SyntheticJob) -> Self {
        Self {
            job: Mutex::new((job, std::time::Instant::now())),
        }
    }

    /// A copy of the model as of now.
    pub fn snapshot(&self) -> SyntheticJob {
        let mut g = self.job.lock().unwrap_or_else(|p| p.into_inner());
        let dt = g.1.elapsed().as_secs_f64();
        g.1 = std::time::Instant::now();
        g.0.advance(dt);
        g.0.clone()
    }

    /// Changes the number of TaskManagers, as a scaler would.
    pub fn set_task_managers(&self, n: usize) {
        let mut g = self.job.lock().unwrap_or_else(|p| p.into_inner());
        g.0.task_managers = n.max(1);
    }
}

impl Source for LiveJob {
    fn series(&self) -> Vec<Series> {
        self.snapshot().series()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_flinks_reporter() {
        let text = render(&[
            Series::new(
                "flink_x",
                &[("job_name", "a"), ("task_name", "Source:_s")],
                4.0,
            ),
            Series::new("flink_x", &[("job_name", "b")], f64::NAN).at(1_700_000_000_000),
        ]);
        assert_eq!(
            text,
            "# HELP flink_x flink_x\n# TYPE flink_x gauge\nflink_x{job_name=\"a\",task_name=\"Source:_s\",} 4.0\nflink_x{job_name=\"b\",} NaN 1700000000000\n"
        );
    }

    #[test]
    fn backlog_builds_when_arrivals_exceed_capacity_and_drains_after() {
        let mut job = SyntheticJob::new("flink", "orders-enrich");
        job.task_managers = 1;
        job.slots_per_task_manager = 1;
        job.base_rate = 4000.0;
        job.period_seconds = 1e9;
        for _ in 0..10 {
            job.advance(1.0);
        }
        assert!(job.backlog > 15_000.0, "backlog {}", job.backlog);
        assert_eq!(job.busy_time(), 1000.0);
        job.task_managers = 4;
        for _ in 0..60 {
            job.advance(1.0);
        }
        assert_eq!(job.backlog, 0.0);
        assert!(job.busy_time() < 600.0);
    }

    #[test]
    fn series_carry_flinks_names_and_labels() {
        let job = SyntheticJob::new("flink", "orders-enrich");
        let s = job.series();
        let busy: Vec<_> = s
            .iter()
            .filter(|s| s.name == "flink_taskmanager_job_task_busyTimeMsPerSecond")
            .collect();
        assert_eq!(busy.len(), 3 * job.parallelism());
        assert!(busy[0]
            .labels
            .iter()
            .any(|(k, v)| k == "job_name" && v == "orders_enrich"));
        let src = s
            .iter()
            .find(|s| s.name == "flink_taskmanager_job_task_operator_pendingRecords")
            .unwrap();
        assert!(src
            .labels
            .iter()
            .any(|(k, v)| k == "operator_name" && v == "Source:_orders"));
    }
}
