//! Signals around rescales, restarts, fresh jobs and quiet sources, against a real
//! Prometheus scraping series shaped as Flink 1.20 exports them.

mod common;

use common::*;
use flink_hpa_bridge::fixtures::exporter::{FlinkTask, Series};
use serde_json::json;

fn ext(ns: &str, metric: &str, selector: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector={}",
        urlencode(selector)
    )
}

/// Subtask `i` of vertex `task_id` (named `name`) of job `job` in `ns`.
fn subtask<'a>(
    ns: &'a str,
    job: &'a str,
    name: &'a str,
    task_id: &'a str,
    i: usize,
) -> FlinkTask<'a> {
    FlinkTask {
        namespace: ns,
        pod: "tm-0",
        job_name: job,
        job_id: "j",
        task_name: name,
        task_id,
        subtask_index: i,
        tm_id: "tm-0",
    }
}

/// A job `job` whose `enrich` vertex runs one subtask per busy value.
fn busy_job(ns: &str, job: &str, busy: &[f64]) -> Vec<Series> {
    busy.iter()
        .enumerate()
        .map(|(i, b)| subtask(ns, job, "enrich", "e", i).series("busyTimeMsPerSecond", *b))
        .collect()
}

/// Job `orders-enrich` in `ns`: one busy task and the JobManager's job series.
fn one_task_job(bed: &Bed, ns: &str, busy: f64, running_ms: f64, restarts: f64) {
    let mut s = job_state_of(ns, "orders-enrich", running_ms, restarts);
    s.extend(busy_job(ns, "orders-enrich", &[busy]));
    bed.store.set(ns, s);
}

/// Job `orders-enrich` in a new namespace, running at 500 ms/s, once `busy_short_hold`
/// (`maxHold` 2 s) serves it: the namespace and the request's path.
async fn served_at_500_with_a_short_hold(name: &str) -> (String, String) {
    let bed = bed();
    let ns = unique(name);
    let path = ext(&ns, "busy_short_hold", "job_name=orders-enrich");
    one_task_job(bed, &ns, 500.0, 600_000.0, 0.0);
    bed.main
        .client()
        .wait_for(&path, |r| r.status == 200 && value(r) == "500")
        .await;
    (ns, path)
}

/// Waits until Prometheus holds `count` restarts for the job in `ns`.
async fn restarts_scraped(ns: &str, count: u32) {
    wait_scraped(
        &format!("flink_jobmanager_job_numRestarts{{namespace=\"{ns}\"}} == {count}"),
        1,
    )
    .await;
}

fn value(r: &Reply) -> serde_json::Value {
    r.body["items"][0]["value"].clone()
}

#[tokio::test]
async fn a_held_busy_time_is_moved_to_the_new_parallelism() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("rescale");
    let path = ext(&ns, "flink_busy_time_max", "job_name=orders-enrich");
    let set = |busy: &[f64], running_ms: f64, restarts: f64| {
        let mut s = job_state_of(&ns, "orders-enrich", running_ms, restarts);
        s.extend(busy_job(&ns, "orders-enrich", busy));
        bed.store.set(&ns, s);
    };
    // Two subtasks, the busiest at 900 ms/s.
    set(&[900.0, 800.0], 600_000.0, 0.0);
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "900")
        .await;
    // Scale-up 2 → 3: the job restarts; its new subtasks read 1000 while they initialise.
    // The same load on three subtasks is 900 × 2/3 = 600, not 900 (which an HPA with a Value
    // target would turn into 3 × 900/600… ≈ N′²/N replicas).
    set(&[1000.0, 1000.0, 1000.0], 3_000.0, 1.0);
    let r = client
        .wait_for(&path, |r| r.status == 200 && value(r) != "900")
        .await;
    assert_eq!(value(&r), json!("600"), "{}", r.body);
    // Warm again at 3 subtasks, 300 ms/s.
    set(&[300.0, 250.0, 200.0], 600_000.0, 1.0);
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "300")
        .await;
    // Scale-down 3 → 1: 300 × 3/1 = 900.
    set(&[1000.0], 2_000.0, 2.0);
    let r = client
        .wait_for(&path, |r| r.status == 200 && value(r) != "300")
        .await;
    assert_eq!(value(&r), json!("900"), "{}", r.body);
}

#[tokio::test]
async fn a_failed_evaluation_does_not_disable_the_next_hold() {
    // maxHold 2 s: a hold that started at the first restart is long over by the second.
    let (ns, path) = served_at_500_with_a_short_hold("failed-eval").await;
    let bed = bed();
    let client = bed.main.client();
    let set = |busy: f64, running_ms: f64, restarts: f64| {
        one_task_job(bed, &ns, busy, running_ms, restarts)
    };
    set(0.0, 3_000.0, 1.0);
    // The restart must be seen (and its runningTime reset with it) before the job warms
    // again: a rise of the restart count whose runningTime never reset is a restart still
    // under way.
    restarts_scraped(&ns, 1).await;
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "500")
        .await;
    // Warm again, but the data is unusable (every sample NaN): an error, nothing stored.
    set(f64::NAN, 600_000.0, 1.0);
    client.wait_for(&path, |r| r.status == 503).await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    // A second restart: the last good value is held again.
    set(0.0, 3_000.0, 2.0);
    restarts_scraped(&ns, 2).await;
    let r = client.wait_for(&path, |r| r.status != 503).await;
    assert_eq!((r.status, value(&r)), (200, json!("500")), "{}", r.body);
}

#[tokio::test]
async fn a_hold_that_ran_out_does_not_keep_the_next_restart_from_holding() {
    // maxHold 2 s. The job restarts twice and is never seen running in between (an HPA that
    // polls less often than the job restarts): the second restart holds again.
    let (ns, path) = served_at_500_with_a_short_hold("next-restart").await;
    let bed = bed();
    let client = bed.main.client();
    let set = |busy: f64, running_ms: f64, restarts: f64| {
        one_task_job(bed, &ns, busy, running_ms, restarts)
    };
    set(0.0, 3_000.0, 1.0);
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "500")
        .await;
    // The hold runs out: the job's own reading is served.
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "0")
        .await;
    set(0.0, 2_000.0, 2.0);
    restarts_scraped(&ns, 2).await;
    let r = client
        .wait_for(&path, |r| r.status == 200 && value(r) == "500")
        .await;
    assert_eq!(value(&r), json!("500"), "{}", r.body);
}

#[tokio::test]
async fn a_request_holds_only_for_its_own_job() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("two-jobs");
    // `subtask_index` is not a label the grouped query keeps: this request gets a query of
    // its own, whose groups carry no namespace or job to pick job states by.
    let a_path = ext(&ns, "flink_busy_time_max", "job_name=job-a,subtask_index=0");
    let set = |a: f64, b_running_ms: f64| {
        let mut s = job_state_of(&ns, "job-a", 600_000.0, 0.0);
        s.extend(job_state_of(&ns, "job-b", b_running_ms, 0.0));
        s.extend(busy_job(&ns, "job-a", &[a]));
        s.extend(busy_job(&ns, "job-b", &[100.0]));
        bed.store.set(&ns, s);
    };
    set(400.0, 600_000.0);
    client
        .wait_for(&a_path, |r| r.status == 200 && value(r) == "400")
        .await;
    // Job B restarts; job A's load changes and is served as it is.
    set(700.0, 3_000.0);
    client
        .wait_for(&a_path, |r| r.status == 200 && value(r) == "700")
        .await;
}

#[tokio::test]
async fn a_job_younger_than_the_warm_up_is_not_served_its_first_readings() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("fresh");
    // Running for 90 s: Flink's 60 s meters are full, but tasks deployed and restored within
    // this time; the default warm-up (120 s) still covers it.
    let mut s = job_state_of(&ns, "orders-enrich", 90_000.0, 0.0);
    s.extend(busy_job(&ns, "orders-enrich", &[1000.0]));
    bed.store.set(&ns, s);
    let r = client
        .wait_for(
            &ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("running for less than 2m"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn a_vertex_at_its_maximum_parallelism_does_not_decide_busy_time() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("capped");
    let mut s = job_state_of(&ns, "orders-enrich", 600_000.0, 0.0);
    // The source runs 2 subtasks (its maxParallelism) and is saturated; the job runs at 4.
    for i in 0..2 {
        s.push(
            subtask(&ns, "orders-enrich", "Source: orders", "s", i)
                .series("busyTimeMsPerSecond", 1000.0),
        );
    }
    s.extend(busy_job(
        &ns,
        "orders-enrich",
        &[410.0, 520.0, 630.0, 480.0],
    ));
    bed.store.set(&ns, s);
    let r = client
        .wait_for(
            &ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status == 200,
        )
        .await;
    assert_eq!(value(&r), json!("630"), "{}", r.body);
}

#[tokio::test]
async fn lag_seconds_is_the_worst_source_at_its_records_in_rate() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("worst-source");
    let mut s = job_state_of(&ns, "orders-enrich", 600_000.0, 0.0);
    // Source 1: 1,000 records behind, consuming 50 records/s by its records-in meter (its
    // records-out is higher: it also emits side output) → 20 s.
    let s1 = subtask(&ns, "orders-enrich", "Source: orders", "s1", 0);
    s.push(s1.operator_series("Source: orders", "o1", "pendingRecords", 1_000.0));
    s.push(s1.operator_series("Source: orders", "o1", "numRecordsInPerSecond", 50.0));
    s.push(s1.operator_series("Source: orders", "o1", "numRecordsOutPerSecond", 100.0));
    // Source 2: 9,000 behind at 9,000 records/s (records-in reads 0, as FLIP-27 sources
    // report it; records-out counts) → 1 s.
    let s2 = subtask(&ns, "orders-enrich", "Source: clicks", "s2", 0);
    s.push(s2.operator_series("Source: clicks", "o2", "pendingRecords", 9_000.0));
    s.push(s2.operator_series("Source: clicks", "o2", "numRecordsInPerSecond", 0.0));
    s.push(s2.operator_series("Source: clicks", "o2", "numRecordsOutPerSecond", 9_000.0));
    bed.store.set(&ns, s);
    // Σbacklog / Σrate would say 10,000 / 9,050 ≈ 1.1 s: the slow source hides.
    let r = client
        .wait_for(
            &ext(&ns, "flink_kafka_lag_seconds", "job_name=orders-enrich"),
            |r| r.status == 200,
        )
        .await;
    assert_eq!(value(&r), json!("20"), "{}", r.body);
    assert_eq!(
        r.body["items"][0]["metricLabels"],
        json!({"job_name": "orders_enrich"})
    );
}

#[tokio::test]
async fn a_quiet_source_has_no_backlog_once_the_job_runs() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("quiet");
    let set = |running_ms: f64| {
        let mut s = job_state_of(&ns, "orders-enrich", running_ms, 1.0);
        let t = subtask(&ns, "orders-enrich", "Source: orders", "s", 0);
        // No pendingRecords: the reader has fetched nothing since the restart.
        s.push(t.operator_series("Source: orders", "o", "numRecordsInPerSecond", 0.0));
        s.push(t.operator_series("Source: orders", "o", "numRecordsOutPerSecond", 0.0));
        s.push(t.series("busyTimeMsPerSecond", 0.0));
        bed.store.set(&ns, s);
    };
    // Still warming up: nothing to say yet (and nothing held): an error, not 0.
    set(5_000.0);
    for m in ["flink_kafka_lag_records", "flink_kafka_lag_seconds"] {
        let r = client
            .wait_for(&ext(&ns, m, "job_name=orders-enrich"), |r| r.status != 404)
            .await;
        assert_eq!(r.status, 503, "{m}: {}", r.body);
    }
    // Running, consuming nothing, no backlog series: no backlog.
    set(600_000.0);
    for m in ["flink_kafka_lag_records", "flink_kafka_lag_seconds"] {
        let r = client
            .wait_for(&ext(&ns, m, "job_name=orders-enrich"), |r| r.status == 200)
            .await;
        assert_eq!(value(&r), json!("0"), "{m}: {}", r.body);
    }
}

#[tokio::test]
async fn kafka_exporter_lag_read_between_two_offsets_is_clamped_at_zero() {
    let bed = bed();
    let client = bed.main.client();
    let group = unique("group");
    let lag = |partition: &str, v: f64| {
        Series::new(
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", group.as_str()),
                ("topic", "orders"),
                ("partition", partition),
            ],
            v,
        )
    };
    // Partition 1 committed between kafka_exporter's two reads: -2 is no backlog.
    bed.store.set(
        &group,
        vec![lag("0", 120.0), lag("1", -2.0), lag("2", -1.0)],
    );
    let r = client
        .wait_for(
            &ext(
                "flink",
                "flink_kafka_lag_records",
                &format!("consumergroup={group}"),
            ),
            |r| r.status == 200,
        )
        .await;
    assert_eq!(value(&r), json!("120"), "{}", r.body);
}

#[tokio::test]
async fn pravega_prefers_the_series_reported_now_and_forgets_after_a_bound() {
    let bed = bed();
    let client = bed.main.client();
    let scope = unique("pscope");
    let count = |controller: &str, v: f64| {
        Series::new(
            "pravega_controller_segments_count",
            &[
                ("scope", scope.as_str()),
                ("stream", "orders"),
                ("pod", controller),
            ],
            v,
        )
    };
    let path = |m: &str| ext("flink", m, &format!("scope={scope},stream=orders"));
    // Before a controller restart: 8 segments.
    bed.store.set(&scope, vec![count("controller-0", 8.0)]);
    client
        .wait_for(&path("pravega_stream_segments"), |r| value(r) == "8")
        .await;
    // The new controller reports 4 after a merge; the old series is still within the lookback.
    bed.store.set(&scope, vec![count("controller-1", 4.0)]);
    client
        .wait_for(&path("pravega_stream_segments"), |r| value(r) == "4")
        .await;

    // pravega_forgets: lookback 3 s, remembered for 6 s after that.
    client
        .wait_for(&path("pravega_forgets"), |r| value(r) == "4")
        .await;
    bed.store.remove(&scope);
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    let r = client.get(&path("pravega_forgets")).await;
    assert_eq!((r.status, value(&r)), (200, json!("4")), "{}", r.body);
    client
        .wait_for(&path("pravega_forgets"), |r| r.status == 404)
        .await;
}

#[tokio::test]
async fn a_job_without_jobmanager_series_is_reported() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("no-jm");
    bed.store.set(&ns, busy_job(&ns, "orders-enrich", &[321.0]));
    client
        .wait_for(
            &ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status == 200 && value(r) == "321",
        )
        .await;
    let r = client.get("/metrics").await;
    let text = r.body.as_str().unwrap_or("").to_string();
    let line = text
        .lines()
        .find(|l| {
            l.starts_with(
                "flink_hpa_bridge_job_state_missing_total{signal=\"flink_busy_time_max\"}",
            )
        })
        .unwrap_or_else(|| panic!("no job_state_missing metric:\n{text}"));
    let n: f64 = line
        .rsplit(' ')
        .next()
        .unwrap_or("0")
        .parse()
        .unwrap_or(0.0);
    assert!(n >= 1.0, "{line}");
}

#[tokio::test]
async fn a_restart_count_that_rises_before_running_time_resets_holds() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("restarting");
    let path = ext(&ns, "flink_busy_time_max", "job_name=orders-enrich");
    let set = |busy: f64, running_ms: f64, restarts: f64| {
        let mut s = job_state_of(&ns, "orders-enrich", running_ms, restarts);
        s.extend(busy_job(&ns, "orders-enrich", &[busy, busy]));
        bed.store.set(&ns, s);
    };
    set(400.0, 600_000.0, 0.0);
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "400")
        .await;
    // Flink 1.20 while RESTARTING: numRestarts has risen, runningTime still counts the old
    // attempt, and the new tasks read 1000 ms/s while they initialise.
    set(1000.0, 610_000.0, 1.0);
    restarts_scraped(&ns, 1).await;
    let until = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while std::time::Instant::now() < until {
        let r = client.get(&path).await;
        assert_eq!((r.status, value(&r)), (200, json!("400")), "{}", r.body);
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // RUNNING again (runningTime restarted), then warm: the data speaks again.
    set(1000.0, 2_000.0, 1.0);
    wait_scraped(
        &format!("flink_jobmanager_job_runningTime{{namespace=\"{ns}\"}} < 10000"),
        1,
    )
    .await;
    set(700.0, 600_000.0, 1.0);
    client
        .wait_for(&path, |r| r.status == 200 && value(r) == "700")
        .await;
}
