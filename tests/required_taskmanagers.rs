//! `flink_required_taskmanagers` and `flink_kafka_lag_growth` against a real Prometheus
//! scraping counters and gauges the way Flink 1.20 exports them, with values drawn at random
//! and the expected answer worked out here by hand from the drawn numbers.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use flink_hpa_bridge::fixtures::exporter::{FlinkTask, Series, Store};
use serde_json::json;

fn ext(ns: &str, metric: &str, selector: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector={}",
        urlencode(selector)
    )
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// A two-vertex job (Kafka source → enrich), every vertex at parallelism `p`, two slots per
/// TaskManager.
#[derive(Debug, Clone, Copy)]
struct Job {
    p: usize,
    /// Records/s the sources consume.
    consumed: f64,
    busy_source: f64,
    busy_enrich: f64,
    /// Backlog at `t0`, and its growth in records/s.
    backlog: f64,
    growth: f64,
    t0: f64,
    /// When the job (last) entered RUNNING, and its restarts so far.
    started: f64,
    restarts: f64,
}

const JOB: &str = "orders-enrich";

impl Job {
    fn backlog_at(&self, t: f64) -> f64 {
        self.backlog + self.growth * (t - self.t0)
    }

    /// The series a scrape at `t` returns, stamped with `t`. Counters restart from 0 when
    /// the job does.
    fn series(&self, ns: &str, t: f64) -> Vec<Series> {
        let ms = (t * 1000.0) as i64;
        let up = t - self.started;
        let mut out = job_state_of(ns, JOB, up * 1000.0, self.restarts);
        let p = self.p as f64;
        for i in 0..self.p {
            let tm = format!("tm-{}", i / 2);
            let task = |name: &'static str, id: &'static str| FlinkTask {
                namespace: ns,
                pod: &tm,
                job_name: JOB,
                job_id: "j",
                task_name: name,
                task_id: id,
                subtask_index: i,
                tm_id: &tm,
            };
            let source_task = task("Source: orders", "src");
            out.push(source_task.series("busyTimeMsPerSecond", self.busy_source * 1000.0));
            out.push(source_task.series("accumulateBusyTimeMs", self.busy_source * 1000.0 * up));
            // A source task's own records-in is 0: its records come from outside the job.
            out.push(source_task.series("numRecordsIn", 0.0));
            let per = self.consumed / p;
            for m in ["numRecordsInPerSecond", "numRecordsOutPerSecond"] {
                out.push(source_task.operator_series("Source: orders", "src", m, per));
            }
            out.push(source_task.operator_series(
                "Source: orders",
                "src",
                "pendingRecords",
                self.backlog_at(t) / p,
            ));
            let enrich = task("enrich", "enr");
            out.push(enrich.series("busyTimeMsPerSecond", self.busy_enrich * 1000.0));
            out.push(enrich.series("accumulateBusyTimeMs", self.busy_enrich * 1000.0 * up));
            out.push(enrich.series("numRecordsIn", per * up));
        }
        out.into_iter().map(|s| s.at(ms)).collect()
    }

    /// The answer worked out by hand, with the signal's defaults (target utilization 0.7,
    /// band 0.4–1.0, catch-up 10 min, restart 90 s, backlog threshold 5 min) and the backlog
    /// as it stands at `t`.
    fn expected(&self, t: f64) -> f64 {
        let p = self.p as f64;
        let arrivals = self.consumed + self.growth;
        let backlog = self.backlog_at(t);
        let capacity = arrivals / 0.7 + backlog / 600.0 + arrivals * 90.0 / 600.0;
        // Both vertices see every consumed record: their true rates are consumed / busy.
        let need = |busy: f64| (p * capacity / (self.consumed / busy)).ceil();
        let (bottleneck_busy, required) = if need(self.busy_enrich) >= need(self.busy_source) {
            (self.busy_enrich, need(self.busy_enrich))
        } else {
            (self.busy_source, need(self.busy_source))
        };
        let utilization = (arrivals + backlog / 600.0) / (self.consumed / bottleneck_busy);
        let current = p / 2.0;
        let draining = backlog / arrivals > 300.0;
        if (0.4..=1.0).contains(&utilization) && !draining {
            return current;
        }
        let answer = (required / 2.0).ceil();
        if draining && answer < current {
            current
        } else {
            answer.max(1.0)
        }
    }
}

/// Keeps the store fed with `job`'s series, stamped with the wall clock, every 250 ms.
fn feed(store: Store, ns: String, job: std::sync::Arc<std::sync::Mutex<Job>>) {
    tokio::spawn(async move {
        loop {
            let j = *job.lock().unwrap_or_else(|e| e.into_inner());
            store.set(&ns, j.series(&ns, now()));
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    });
}

/// Waits until `ns`'s series are scraped, then for a full 10 s window of them: a rate over a
/// window the series only partly covers reads low.
async fn window_filled(ns: &str) {
    wait_scraped(
        &format!("flink_taskmanager_job_task_accumulateBusyTimeMs{{namespace=\"{ns}\"}}"),
        1,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(11)).await;
}

/// A job whose answer is the same for any backlog the test will see in its first two
/// minutes, so the evaluation time does not matter.
fn draw(rng: &mut Rng, t0: f64) -> Job {
    loop {
        let job = Job {
            p: 2 * rng.int(1, 4) as usize,
            consumed: rng.value(800.0, 4_000.0).round(),
            busy_source: rng.value(0.05, 0.3),
            busy_enrich: rng.value(0.5, 0.97),
            backlog: rng.value(0.0, 200_000.0).round(),
            growth: rng.value(0.0, 1_500.0).round(),
            t0,
            started: t0 - 3_600.0,
            restarts: 0.0,
        };
        let a = job.expected(t0);
        if a == job.expected(t0 + 120.0) && a == job.expected(t0 - 5.0) {
            return job;
        }
    }
}

fn number(r: &Reply) -> f64 {
    let v = r.body["items"][0]["value"].as_str().unwrap_or_default();
    v.trim_end_matches('m')
        .parse::<f64>()
        .map(|x| if v.ends_with('m') { x / 1000.0 } else { x })
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn required_taskmanagers_match_a_hand_computation_on_random_jobs() {
    let bed = bed();
    let client = bed.main.client();
    let mut rng = Rng::new();
    // Three jobs at once, each in a namespace of its own, so they share one wait.
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let ns = unique("required");
        let job = draw(&mut rng, now());
        feed(
            bed.store.clone(),
            ns.clone(),
            std::sync::Arc::new(std::sync::Mutex::new(job)),
        );
        jobs.push((ns, job));
    }
    for (ns, _) in &jobs {
        wait_scraped(
            &format!("flink_taskmanager_job_task_accumulateBusyTimeMs{{namespace=\"{ns}\"}}"),
            1,
        )
        .await;
    }
    // The 10 s window must hold only samples of these jobs.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for (round, (ns, job)) in jobs.iter().enumerate() {
        let expected = job.expected(now());
        let path = ext(ns, "required_short", &format!("job_name={JOB}"));
        let r = client.wait_for(&path, |r| r.status == 200).await;
        assert_eq!(
            number(&r),
            expected,
            "job {round}: {job:?} served {}",
            r.body
        );
        assert_eq!(
            r.body["items"][0]["metricLabels"],
            json!({"job_name": "orders_enrich"})
        );
        // The backlog growth, from the same series, over the built-in 5 min window.
        let r = client
            .wait_for(
                &ext(ns, "flink_kafka_lag_growth", &format!("job_name={JOB}")),
                |r| r.status == 200,
            )
            .await;
        let growth = number(&r);
        assert!(
            (growth - job.growth).abs() <= 0.01 * job.growth.abs().max(1.0) + 0.002,
            "job {round}: growth {growth}, drawn {}",
            job.growth
        );
    }
}

/// A job that has run for an hour but whose series Prometheus has held for only part of the
/// window (Prometheus, or its scrape of the job, started lately) gets the same answer as with
/// a full window. Worked by hand with the defaults: arrivals 2,000 records/s, backlog 200,000;
/// enrich at busy 0.97 has TPR 2,000 / 0.97 = 2,061.9 records/s; utilization
/// (2,000 + 200,000 / 600) / 2,061.9 = 1.13, above the band; capacity
/// 2,000 / 0.7 + 333.3 + 2,000 × 90 / 600 = 3,490.5; P_req = ceil(2 × 3,490.5 / 2,061.9) = 4
/// subtasks = 2 TaskManagers. A rate() of the counters over a half-covered window reads their
/// input as half of what the sources consume, putting enrich inside the band at 1.
#[tokio::test]
async fn series_younger_than_the_window_read_their_true_rates() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("required-fresh");
    let t0 = now();
    let job = Job {
        p: 2,
        consumed: 2_000.0,
        busy_source: 0.1,
        busy_enrich: 0.97,
        backlog: 200_000.0,
        growth: 0.0,
        t0,
        started: t0 - 3_600.0,
        restarts: 0.0,
    };
    assert_eq!(job.expected(t0), 2.0);
    feed(
        bed.store.clone(),
        ns.clone(),
        std::sync::Arc::new(std::sync::Mutex::new(job)),
    );
    wait_scraped(
        &format!("flink_taskmanager_job_task_accumulateBusyTimeMs{{namespace=\"{ns}\"}}"),
        3,
    )
    .await;
    // Well inside the 10 s window: at most about half of it holds samples.
    let r = client
        .wait_for(
            &ext(&ns, "required_short", &format!("job_name={JOB}")),
            |r| r.status == 200,
        )
        .await;
    assert_eq!(number(&r), 2.0, "{}", r.body);
}

#[tokio::test]
async fn a_restart_holds_the_count_until_the_window_holds_only_new_data() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("required-restart");
    let t0 = now();
    // 3,000 records/s consumed, a growing backlog, enrich saturated at parallelism 4: the
    // job needs more than it has. R = 3,800; C = 5,428.6 + L/600 + 570; TPR = 3,157.9;
    // P_req = ceil(4 × C / TPR) = ceil(7.66 … 7.81) = 8 over the test's backlogs: 4.
    let job = Job {
        p: 4,
        consumed: 3_000.0,
        busy_source: 0.1,
        busy_enrich: 0.95,
        backlog: 30_000.0,
        growth: 800.0,
        t0,
        started: t0 - 3_600.0,
        restarts: 0.0,
    };
    let before = job.expected(t0);
    assert_eq!(before, job.expected(t0 + 90.0));
    let shared = std::sync::Arc::new(std::sync::Mutex::new(job));
    feed(bed.store.clone(), ns.clone(), shared.clone());
    let path = ext(&ns, "required_short", &format!("job_name={JOB}"));
    window_filled(&ns).await;
    let r = client.wait_for(&path, |r| r.status == 200).await;
    assert_eq!(number(&r), before, "{}", r.body);

    // Rescaled to 8: the job restarts, its counters start again from 0 and the enrich
    // vertex reads 1000 ms/s while its tasks initialise. A count read from that would be
    // a restart spike; the held count stands instead.
    let restarted = now();
    {
        let mut j = shared.lock().unwrap_or_else(|e| e.into_inner());
        j.p = 8;
        j.busy_enrich = 1.0;
        j.consumed = 50.0;
        j.started = restarted;
        j.restarts = 1.0;
    }
    let mut held = 0;
    while now() - restarted < 8.0 {
        let r = client.get(&path).await;
        if r.status == 200 {
            assert_eq!(number(&r), before, "during the restart: {}", r.body);
            held += 1;
        } else {
            assert_eq!(r.status, 503, "{}", r.body);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(held > 0, "the count was never held");

    // The first attempt failed and the job restarted once more, now settled at 8 with a
    // light load: once the window holds only this attempt's samples, the new data speaks.
    let settled = {
        let mut j = shared.lock().unwrap_or_else(|e| e.into_inner());
        j.busy_enrich = 0.2;
        j.busy_source = 0.05;
        j.consumed = 2_000.0;
        j.growth = -5.0;
        j.backlog = 1_000.0;
        j.t0 = now();
        j.started = now();
        j.restarts = 2.0;
        *j
    };
    let after = settled.expected(now());
    assert_eq!(after, settled.expected(now() + 60.0));
    assert!(after < 4.0, "the light load should need fewer: {after}");
    let r = client
        .wait_for(&path, |r| r.status == 200 && number(r) != before)
        .await;
    assert_eq!(number(&r), after, "{}", r.body);
}

#[tokio::test]
async fn a_job_younger_than_the_window_gets_no_number() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("required-young");
    let t0 = now();
    let job = Job {
        p: 2,
        consumed: 1_000.0,
        busy_source: 0.1,
        busy_enrich: 0.5,
        backlog: 0.0,
        growth: 0.0,
        t0,
        // Running for 4 s: under the 10 s window, never answered before.
        started: t0 - 4.0,
        restarts: 0.0,
    };
    let shared = std::sync::Arc::new(std::sync::Mutex::new(job));
    feed(bed.store.clone(), ns.clone(), shared);
    let r = client
        .wait_for(
            &ext(&ns, "required_short", &format!("job_name={JOB}")),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("running for less than"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_stalled_source_is_an_error_and_an_idle_one_the_minimum() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("required-stall");
    let t0 = now();
    let job = Job {
        p: 4,
        consumed: 0.0,
        busy_source: 0.0,
        busy_enrich: 0.0,
        backlog: 5_000.0,
        growth: 0.0,
        t0,
        started: t0 - 3_600.0,
        restarts: 0.0,
    };
    let shared = std::sync::Arc::new(std::sync::Mutex::new(job));
    feed(bed.store.clone(), ns.clone(), shared.clone());
    let path = ext(&ns, "required_short", &format!("job_name={JOB}"));
    let r = client.wait_for(&path, |r| r.status != 404).await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap_or("").contains("stalled"),
        "{}",
        r.body
    );
    shared.lock().unwrap_or_else(|e| e.into_inner()).backlog = 0.0;
    let r = client.wait_for(&path, |r| r.status == 200).await;
    assert_eq!(number(&r), 1.0, "{}", r.body);
}

/// The README's worked example, fed to a real Prometheus and read back with
/// `query --explain`.
#[tokio::test]
async fn explain_reproduces_the_readme_example() {
    let bed = bed();
    let ns = unique("required-explain");
    let t0 = now();
    let job = Job {
        p: 4,
        consumed: 2_000.0,
        busy_source: 0.3,
        busy_enrich: 1.0,
        backlog: 60_000.0,
        growth: 500.0,
        t0,
        started: t0 - 3_600.0,
        restarts: 0.0,
    };
    feed(
        bed.store.clone(),
        ns.clone(),
        std::sync::Arc::new(std::sync::Mutex::new(job)),
    );
    window_filled(&ns).await;
    let mut cfg = flink_hpa_bridge::config::Config::from_yaml(
        "signals:\n  - name: required_short\n    type: flinkRequiredTaskManagers\n    window: 10s\n",
        "explain.yaml",
    )
    .expect("config");
    cfg.prometheus.url = Some(bed.prometheus_url.clone());
    let args = flink_hpa_bridge::commands::QueryArgs {
        metric: "required_short".into(),
        namespace: ns.clone(),
        selector: format!("job_name={JOB}"),
        metric_selector: String::new(),
        name: None,
        explain: true,
    };
    let mut out = Vec::new();
    let ok = flink_hpa_bridge::commands::query(&cfg, &args, &mut out)
        .await
        .expect("query");
    let text = String::from_utf8_lossy(&out);
    assert!(ok, "{text}");
    // Rates read from counters carry the scrape timing in their last digit: 2000.0 may read
    // 1999.9 or 2000.1.
    for pattern in [
        r"sources consume S = 2000\.0 records/s",
        r"growing dL/dt = (499\.[89]|500\.[012]) records/s",
        r"arrival rate R = max\(0, S \+ dL/dt\) = (2499\.[89]|2500\.[012]) records/s",
        r"TaskManagers now 2, slots per TaskManager 2 \(subtasks / TaskManagers\)",
        r"vertex enrich \[enr\]:\n    P = 4, busy = 1\.000, input = (1999\.[89]|2000\.[012]) records/s, true processing rate TPR = input / busy = (1999\.[89]|2000\.[012]) records/s",
        r"vertex Source:_orders \[src\]:\n    P = 4, busy = 0\.300, input = 2000\.0 records/s, true processing rate TPR = input / busy = 666[4-9]\.[0-9] records/s",
        r"enrich[^\n]*\n[^\n]*\n[^\n]*\n    utilization now = 1\.3[0-9]+, P_req = ceil\(P × C / TPR\) = 9\n",
        r"P_req = ceil\(P × C / TPR\) = 3\n",
        r"decision: bottleneck enrich \[enr\]: ceil\(9 / 2\) = 5 TaskManagers",
        r"result: 5 TaskManagers",
        r#""value": "5""#,
    ] {
        let re = regex::Regex::new(pattern).expect("pattern");
        assert!(re.is_match(&text), "missing {pattern:?} in:\n{text}");
    }
}

/// One series' samples for an OpenMetrics backfill.
struct History {
    name: String,
    labels: String,
    samples: Vec<(f64, f64)>,
}

/// Backfills `history` into a fresh Prometheus with `promtool tsdb create-blocks-from
/// openmetrics` and returns it running on those blocks.
async fn backfilled(
    history: Vec<History>,
) -> flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus {
    use std::fmt::Write as _;
    let mut prom = flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus::start(
        &[],
        Duration::from_secs(5),
    )
    .await
    .expect("Prometheus must be installed (apt-get install -y prometheus)");
    let mut by_family: std::collections::BTreeMap<String, Vec<History>> = Default::default();
    for h in history {
        by_family.entry(h.name.clone()).or_default().push(h);
    }
    let mut text = String::new();
    for (name, series) in &by_family {
        let _ = writeln!(text, "# TYPE {name} gauge");
        for s in series {
            for (t, v) in &s.samples {
                let _ = writeln!(text, "{name}{{{}}} {v} {t:.3}", s.labels);
            }
        }
    }
    text.push_str("# EOF\n");
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("history.om");
    std::fs::write(&file, text).expect("write history");
    let promtool = std::env::var("PROMTOOL_BIN").unwrap_or_else(|_| "promtool".into());
    let out = std::process::Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics", "-q"])
        .arg(&file)
        .arg(prom.data_dir())
        .output()
        .expect("promtool must be installed with Prometheus");
    assert!(
        out.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    prom.restart()
        .await
        .expect("Prometheus restarts on the blocks");
    prom
}

/// A day's pattern shortened to an hour: 70 to 50 minutes ago the job ran 6 subtasks at 3,000
/// records/s; then it was scaled to 2 subtasks (1 TaskManager), and now consumes 1,000 records/s
/// at 50 % busy — inside the band. One season (1h) ago, 2 minutes ahead, the load was 3,000:
/// the seasonal forecast sizes for that before it comes back.
#[tokio::test]
async fn a_seasonal_forecast_sizes_for_last_seasons_load_ahead_of_it() {
    let now = now();
    let (start, rescaled) = (now - 70.0 * 60.0, now - 50.0 * 60.0);
    let step = 15.0;
    let times: Vec<f64> = (0..)
        .map(|i| start + step * i as f64)
        .take_while(|t| *t <= now - 5.0)
        .collect();
    let base = |ns: &str| format!("namespace=\"{ns}\",job_name=\"orders_enrich\",job_id=\"j\"");
    let ns = "seasonal";
    let mut history = Vec::new();
    // Per subtask: 500 records/s in both phases (3,000 over 6, then 1,000 over 2); enrich is
    // 50 % busy, the source 5 %. Counters count from the attempt's start.
    for (from, to, p) in [(start, rescaled, 6usize), (rescaled, now, 2usize)] {
        let attempt = if p == 6 { 0 } else { 1 };
        let span: Vec<f64> = times
            .iter()
            .copied()
            .filter(|t| *t >= from && *t < to)
            .collect();
        for i in 0..p {
            let tm = format!("tm_{}", i / 2);
            for (task, id, busy) in [("Source:_orders", "src", 0.05), ("enrich", "enr", 0.5)] {
                let labels = format!(
                    "{},task_name=\"{task}\",task_id=\"{id}\",subtask_index=\"{i}\",task_attempt_num=\"{attempt}\",tm_id=\"{tm}\"",
                    base(ns)
                );
                let series = |name: &str, f: &dyn Fn(f64) -> f64| History {
                    name: format!("flink_taskmanager_job_task_{name}"),
                    labels: labels.clone(),
                    samples: span.iter().map(|t| (*t, f(*t))).collect(),
                };
                history.push(series("busyTimeMsPerSecond", &|_| busy * 1000.0));
                history.push(series("accumulateBusyTimeMs", &|t| {
                    busy * 1000.0 * (t - from)
                }));
                let records_in = if id == "enr" { 500.0 } else { 0.0 };
                history.push(series("numRecordsIn", &|t| records_in * (t - from)));
                if id == "src" {
                    let op =
                        format!("{labels},operator_name=\"Source:_orders\",operator_id=\"src\"");
                    for name in ["numRecordsInPerSecond", "numRecordsOutPerSecond"] {
                        history.push(History {
                            name: format!("flink_taskmanager_job_task_operator_{name}"),
                            labels: op.clone(),
                            samples: span.iter().map(|t| (*t, 500.0)).collect(),
                        });
                    }
                    history.push(History {
                        name: "flink_taskmanager_job_task_operator_pendingRecords".into(),
                        labels: op.clone(),
                        samples: span.iter().map(|t| (*t, 0.0)).collect(),
                    });
                }
            }
        }
    }
    for (name, f) in [
        (
            "runningTime",
            &(|t: f64| 1000.0 * (t - if t < rescaled { start } else { rescaled }))
                as &dyn Fn(f64) -> f64,
        ),
        ("numRestarts", &|t: f64| {
            if t < rescaled {
                0.0
            } else {
                1.0
            }
        }),
    ] {
        history.push(History {
            name: format!("flink_jobmanager_job_{name}"),
            labels: base(ns),
            samples: times.iter().map(|t| (*t, f(*t))).collect(),
        });
    }
    let prom = backfilled(history).await;

    let mut cfg = flink_hpa_bridge::config::Config::from_yaml(
        "signals:
  - name: required_plain
    type: flinkRequiredTaskManagers
  - name: required_seasonal
    type: flinkRequiredTaskManagers
    forecast: {lead: 2m, method: seasonal, season: 1h}
  - name: required_trend
    type: flinkRequiredTaskManagers
    forecast: {lead: 2m, method: trend}
",
        "seasonal.yaml",
    )
    .expect("config");
    cfg.prometheus.url = Some(prom.url.clone());
    let ask = |metric: &str| {
        let cfg = cfg.clone();
        let metric = metric.to_string();
        async move {
            let args = flink_hpa_bridge::commands::QueryArgs {
                metric,
                namespace: ns.into(),
                selector: "job_name=orders-enrich".into(),
                metric_selector: String::new(),
                name: None,
                explain: true,
            };
            let mut out = Vec::new();
            let ok = flink_hpa_bridge::commands::query(&cfg, &args, &mut out)
                .await
                .expect("query");
            let text = String::from_utf8_lossy(&out).to_string();
            assert!(ok, "{text}");
            text
        }
    };
    // Without a forecast: 1,000 records/s at 50 % busy on 2 subtasks is utilization 0.5,
    // inside the band: keep the 1 TaskManager.
    let plain = ask("required_plain").await;
    assert!(plain.contains("\"value\": \"1\""), "{plain}");
    assert!(plain.contains("inside the band"), "{plain}");
    // A linear trend of a flat rate foresees the same.
    let trend = ask("required_trend").await;
    assert!(trend.contains("\"value\": \"1\""), "{trend}");
    // Seasonal: the rate one season ago, 2 minutes ahead, was 3,000. Enrich: TPR = 1,000/0.5
    // = 2,000; C = 3,000/0.7 + 0 + 3,000 × 90/600 = 4,735.7; P_req = ceil(2 × 4,735.7/2,000)
    // = 5; utilization 3,000/2,000 = 1.5 is outside the band: ceil(5 / 2) = 3 TaskManagers.
    let seasonal = ask("required_seasonal").await;
    assert!(seasonal.contains("\"value\": \"3\""), "{seasonal}");
    assert!(
        seasonal.contains(
            "arrival rate R = max(0, S + dL/dt) = 3000.0 records/s (forecast 2m ahead, seasonal)"
        ),
        "{seasonal}"
    );
    assert!(
        seasonal.contains("P_req = ceil(P × C / TPR) = 5"),
        "{seasonal}"
    );
    prom.stop().await;
}
