//! The built-in and configured signals against a real Prometheus, over real HTTPS, with data
//! generated per run.

mod common;

use common::*;
use flink_hpa_bridge::fixtures::exporter::{FlinkTask, Series};
use serde_json::json;

const JOB: &str = "orders-enrich";

fn task<'a>(
    ns: &'a str,
    pod: &'a str,
    job: &'a str,
    name: &'a str,
    subtask: usize,
) -> FlinkTask<'a> {
    FlinkTask {
        namespace: ns,
        pod,
        job_name: job,
        job_id: "62b6ab75a23413780e94899d0ba1c305",
        task_name: name,
        task_id: "674df9b0384c0348e0b9d1034a44c46c",
        subtask_index: subtask,
        tm_id: pod,
    }
}

fn ext(ns: &str, metric: &str, selector: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector={}",
        urlencode(selector)
    )
}

/// Waits for data at `path`, then checks the exact list the HPA receives: one item with these
/// labels and this value, stamped with a recent sample time.
async fn expect_one(
    client: &Client,
    path: &str,
    metric: &str,
    labels: serde_json::Value,
    value: f64,
) {
    let body = client.get_ok(path).await;
    let ts = recent_timestamp(&body["items"][0]["timestamp"]);
    assert_eq!(
        body,
        external_list(
            metric,
            vec![json!({"metricLabels": labels, "timestamp": ts, "value": quantity(value)})]
        )
    );
}

fn external_list(metric: &str, items: Vec<serde_json::Value>) -> serde_json::Value {
    let items: Vec<_> = items
        .into_iter()
        .map(|mut i| {
            i["metricName"] = json!(metric);
            i
        })
        .collect();
    json!({
        "kind": "ExternalMetricValueList",
        "apiVersion": "external.metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    })
}

#[tokio::test]
async fn busy_time_max_is_the_busiest_non_nan_subtask_of_the_job() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("busy");
    let other_ns = unique("busy-other");
    let mut rng = Rng::new();
    let mut series = Vec::new();
    let mut expected = f64::MIN;
    for i in 0..6 {
        let v = rng.value(0.0, 990.0);
        expected = expected.max(v);
        let pod = format!("tm-{}", i % 3);
        series.push(task(&ns, &pod, JOB, "enrich", i).series("busyTimeMsPerSecond", v));
    }
    // A subtask whose busy time is not measurable: ignored, not a zero.
    series
        .push(task(&ns, "tm-0", JOB, "Source: orders", 0).series("busyTimeMsPerSecond", f64::NAN));
    // Another job in the namespace and the same job in another namespace: not this HPA's.
    series.push(task(&ns, "tm-9", "billing", "enrich", 0).series("busyTimeMsPerSecond", 1000.0));
    bed.store.set(&ns, series);
    bed.store.set(
        &other_ns,
        vec![task(&other_ns, "tm-0", JOB, "enrich", 0).series("busyTimeMsPerSecond", 1000.0)],
    );

    expect_one(
        &client,
        &ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"),
        "flink_busy_time_max",
        json!({"job_name": "orders_enrich"}),
        expected,
    )
    .await;
    // The label value as Flink exports it works too, and `==` / `in` mean the same.
    for sel in [
        "job_name=orders_enrich",
        "job_name==orders-enrich",
        "job_name in (orders-enrich)",
    ] {
        let b = client.get_ok(&ext(&ns, "flink_busy_time_max", sel)).await;
        assert_eq!(b["items"][0]["value"], json!(quantity(expected)), "{sel}");
    }
    // Narrowed to one task by task_name.
    let b = client
        .get_ok(&ext(
            &ns,
            "flink_busy_time_max",
            "job_name=orders-enrich,task_name=enrich",
        ))
        .await;
    assert_eq!(b["items"][0]["value"], json!(quantity(expected)));
    // Without a job: the namespace's busiest subtask over all jobs, one item.
    let b = client.get_ok(&ext(&ns, "flink_busy_time_max", "")).await;
    assert_eq!(b["items"].as_array().unwrap().len(), 1);
    assert_eq!(b["items"][0]["value"], json!("1k"));
    assert_eq!(b["items"][0]["metricLabels"], json!({}));
}

#[tokio::test]
async fn busy_time_all_nan_empty_and_stale_are_errors_never_zero() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("nan");
    bed.store.set(
        &ns,
        vec![
            task(&ns, "tm-0", JOB, "enrich", 0).series("busyTimeMsPerSecond", f64::NAN),
            task(&ns, "tm-1", JOB, "enrich", 1).series("busyTimeMsPerSecond", f64::NAN),
        ],
    );
    wait_scraped(
        &format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{ns}\"}}"),
        2,
    )
    .await;
    // The grouped result in the cache catches up within a refresh interval.
    let r = client
        .wait_for(
            &ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["reason"], "ServiceUnavailable");
    assert_eq!(
        r.body["message"],
        "flink_busy_time_max: every sample is NaN for {job_name=orders_enrich}"
    );

    // No series at all.
    let r = client
        .get(&ext(&ns, "flink_busy_time_max", "job_name=no-such-job"))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
               "message": format!("flink_busy_time_max: no series match {{namespace=\"{ns}\",job_name=\"no_such_job\"}} (query: max by (namespace, job_name, task_id, task_name) (flink_taskmanager_job_task_busyTimeMsPerSecond{{}} >= 0 < +Inf))"),
               "reason":"NotFound","code":404})
    );

    // Stale: the newest sample is 60 s old and busy_strict allows 30 s.
    let stale_ns = unique("stale");
    let old = (jiff::Timestamp::now().as_millisecond()) - 60_000;
    bed.store.set(
        &stale_ns,
        vec![task(&stale_ns, "tm-0", JOB, "enrich", 0)
            .series("busyTimeMsPerSecond", 640.0)
            .at(old)],
    );
    wait_scraped(
        &format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{stale_ns}\"}}"),
        1,
    )
    .await;
    let r = client
        .wait_for(
            &ext(&stale_ns, "busy_strict", "job_name=orders-enrich"),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("busy_strict: the newest sample is ")
            && msg.ends_with("s old, older than maxAge 30s for {job_name=orders_enrich}"),
        "{msg}"
    );
    // The default maxAge (2m) accepts the same data.
    let b = client
        .get_ok(&ext(
            &stale_ns,
            "flink_busy_time_max",
            "job_name=orders-enrich",
        ))
        .await;
    assert_eq!(b["items"][0]["value"], "640");

    // A negative or infinite sample is bad data, not a value to aggregate.
    let bad_ns = unique("bad");
    bed.store.set(
        &bad_ns,
        vec![
            task(&bad_ns, "tm-0", JOB, "enrich", 0).series("busyTimeMsPerSecond", 300.0),
            task(&bad_ns, "tm-0", JOB, "enrich", 1).series("busyTimeMsPerSecond", -5.0),
            task(&bad_ns, "tm-1", "other", "enrich", 0)
                .series("busyTimeMsPerSecond", f64::INFINITY),
        ],
    );
    let r = client
        .wait_for(
            &ext(&bad_ns, "flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str().unwrap()),
        (
            503,
            "flink_busy_time_max: 1 samples are negative for {job_name=orders_enrich}"
        )
    );
    let r = client
        .wait_for(
            &ext(&bad_ns, "flink_busy_time_max", "job_name=other"),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(
        (r.status, r.body["message"].as_str().unwrap()),
        (
            503,
            "flink_busy_time_max: 1 samples are infinite for {job_name=other}"
        )
    );
    // onNegative: 1000 says what this signal reports instead.
    let b = client
        .get_ok(&ext(&bad_ns, "busy_or_zero", "job_name=orders-enrich"))
        .await;
    assert_eq!(b["items"][0]["value"], "1k");

    // onMissing/onNaN/onStale: zero turn each of these into an explicit 0, only when configured.
    for (ns, sel) in [
        (&ns, "job_name=orders-enrich"),
        (&ns, "job_name=no-such-job"),
        (&stale_ns, "job_name=orders-enrich"),
    ] {
        let b = client.get_ok(&ext(ns, "busy_or_zero", sel)).await;
        assert_eq!(b["items"][0]["value"], "0", "{sel}");
        assert_eq!(b["items"].as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn kafka_lag_records_from_pending_records_and_from_kafka_exporter() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("lag");
    let group = unique("group");
    let mut rng = Rng::new();
    let mut series = Vec::new();
    let mut pending = 0.0;
    for i in 0..4 {
        let v = rng.int(0, 50_000) as f64;
        pending += v;
        let pod = format!("tm-{}", i / 2);
        series.push(task(&ns, &pod, JOB, "Source: orders", i).operator_series(
            "Source: orders",
            "op1",
            "pendingRecords",
            v,
        ));
    }
    let mut exporter_lag = 0.0;
    let parts = rng.int(2, 6);
    for p in 0..parts {
        let v = rng.int(0, 100_000) as f64;
        exporter_lag += v;
        series.push(Series::new(
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", &group),
                ("topic", "orders"),
                ("partition", &p.to_string()),
            ],
            v,
        ));
    }
    // A partition without a committed offset reports -1: not a negative backlog.
    series.push(Series::new(
        "kafka_consumergroup_lag",
        &[
            ("consumergroup", &group),
            ("topic", "orders"),
            ("partition", "99"),
        ],
        -1.0,
    ));
    // Another topic of the same group.
    series.push(Series::new(
        "kafka_consumergroup_lag",
        &[
            ("consumergroup", &group),
            ("topic", "audit"),
            ("partition", "0"),
        ],
        7.0,
    ));
    bed.store.set(&ns, series);

    expect_one(
        &client,
        &ext(&ns, "flink_kafka_lag_records", "job_name=orders-enrich"),
        "flink_kafka_lag_records",
        json!({"job_name": "orders_enrich"}),
        pending,
    )
    .await;

    expect_one(
        &client,
        &ext(
            &ns,
            "flink_kafka_lag_records",
            &format!("consumergroup={group},topic=orders"),
        ),
        "flink_kafka_lag_records",
        json!({"consumergroup": group, "topic": "orders"}),
        exporter_lag,
    )
    .await;
    // The whole group: one item per topic, which the HPA sums.
    let b = client
        .get_ok(&ext(
            &ns,
            "flink_kafka_lag_records",
            &format!("consumergroup={group}"),
        ))
        .await;
    let values: Vec<_> = b["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["metricLabels"]["topic"].clone(), i["value"].clone()))
        .collect();
    assert_eq!(
        values,
        vec![
            (json!("audit"), json!("7")),
            (json!("orders"), json!(quantity(exporter_lag)))
        ]
    );
}

#[tokio::test]
async fn kafka_lag_seconds_is_backlog_over_consumption_rate() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("lagsec");
    let mut rng = Rng::new();
    let mut backlog = 0.0;
    let mut rate = 0.0;
    let mut series = Vec::new();
    for i in 0..3 {
        let b = rng.int(1_000, 90_000) as f64;
        let r = rng.value(100.0, 5_000.0);
        backlog += b;
        rate += r;
        let t = task(&ns, "tm-0", JOB, "Source: orders", i);
        series.push(t.operator_series("Source: orders", "op1", "pendingRecords", b));
        series.push(t.operator_series("Source: orders", "op1", "numRecordsOutPerSecond", r));
        // Downstream operators' output rates are not consumption.
        let w = task(&ns, "tm-0", JOB, "enrich", i);
        series.push(w.operator_series("enrich", "op2", "numRecordsOutPerSecond", 1e6));
    }
    bed.store.set(&ns, series);
    expect_one(
        &client,
        &ext(&ns, "flink_kafka_lag_seconds", "job_name=orders-enrich"),
        "flink_kafka_lag_seconds",
        json!({"job_name": "orders_enrich"}),
        backlog / rate,
    )
    .await;

    // Zero backlog is zero seconds, whatever the rate.
    let idle = unique("lagsec-idle");
    let t = task(&idle, "tm-0", JOB, "Source: orders", 0);
    bed.store.set(
        &idle,
        vec![
            t.operator_series("Source: orders", "op1", "pendingRecords", 0.0),
            t.operator_series("Source: orders", "op1", "numRecordsOutPerSecond", 0.0),
        ],
    );
    let b = client
        .get_ok(&ext(
            &idle,
            "flink_kafka_lag_seconds",
            "job_name=orders-enrich",
        ))
        .await;
    assert_eq!(b["items"][0]["value"], "0");

    // A backlog with no consumption: undefined, so an error; or the configured value.
    let stalled = unique("lagsec-stalled");
    let t = task(&stalled, "tm-0", JOB, "Source: orders", 0);
    bed.store.set(
        &stalled,
        vec![
            t.operator_series("Source: orders", "op1", "pendingRecords", 1234.0),
            t.operator_series("Source: orders", "op1", "numRecordsOutPerSecond", 0.0),
        ],
    );
    let r = client
        .wait_for(
            &ext(
                &stalled,
                "flink_kafka_lag_seconds",
                "job_name=orders-enrich",
            ),
            |r| r.status != 404,
        )
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(
        r.body["message"],
        "flink_kafka_lag_seconds: backlog of 1234 records for {job_name=orders_enrich} but a consumption rate of 0: lag in seconds is undefined (set zeroRateSeconds to report a fixed value)"
    );
    let b = client
        .get_ok(&ext(
            &stalled,
            "lag_seconds_capped",
            "job_name=orders-enrich",
        ))
        .await;
    assert_eq!(b["items"][0]["value"], "3600");
}

#[tokio::test]
async fn pravega_segments_per_stream_and_the_last_known_value_survives() {
    let bed = bed();
    let client = bed.main.client();
    let scope = unique("scope");
    let mut rng = Rng::new();
    let a = rng.int(1, 40) as f64;
    let b = rng.int(1, 40) as f64;
    bed.store.set(
        &scope,
        vec![
            Series::new(
                "pravega_controller_segments_count",
                &[("scope", &scope), ("stream", "orders")],
                a,
            ),
            Series::new(
                "pravega_controller_segments_count",
                &[("scope", &scope), ("stream", "audit")],
                b,
            ),
        ],
    );
    // The HPA's namespace is not the controller's: the signal does not filter by namespace.
    expect_one(
        &client,
        &ext(
            "flink",
            "pravega_stream_segments",
            &format!("scope={scope},stream=orders"),
        ),
        "pravega_stream_segments",
        json!({"scope": scope, "stream": "orders"}),
        a,
    )
    .await;
    // A whole scope: one item per stream, summed by the HPA.
    let body = client
        .get_ok(&ext(
            "flink",
            "pravega_stream_segments",
            &format!("scope={scope}"),
        ))
        .await;
    let total: i64 = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total as f64, a + b);

    // pravega_short looks back only 3 s: once the gauge vanishes, it answers from memory.
    let sel = format!("scope={scope},stream=audit");
    let first = client.get_ok(&ext("flink", "pravega_short", &sel)).await;
    assert_eq!(first["items"][0]["value"], json!(quantity(b)));
    bed.store.remove(&scope);
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let after = client.get(&ext("flink", "pravega_short", &sel)).await;
    assert_eq!(after.status, 200, "{}", after.body);
    assert_eq!(after.body["items"][0]["value"], json!(quantity(b)));
    // The default signal (1h lookback) still finds it in Prometheus.
    let after = client
        .get(&ext("flink", "pravega_stream_segments", &sel))
        .await;
    assert_eq!(after.body["items"][0]["value"], json!(quantity(b)));
    // Never seen: an error.
    let r = client
        .get(&ext("flink", "pravega_short", "scope=never,stream=seen"))
        .await;
    assert_eq!(r.status, 404);
}

fn pods_path(version: &str, ns: &str, name: &str, metric: &str, query: &str) -> String {
    format!("/apis/custom.metrics.k8s.io/{version}/namespaces/{ns}/pods/{name}/{metric}{query}")
}

#[tokio::test]
async fn taskmanager_busy_time_per_pod_each_pod_once() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("pods");
    let mut rng = Rng::new();
    let mut series = Vec::new();
    let mut expected = std::collections::BTreeMap::new();
    for tm in 0..3 {
        let pod = format!("flink-taskmanager-7d9c-{tm}");
        let mut max = f64::MIN;
        for slot in 0..2 {
            let v = rng.value(0.0, 1000.0);
            max = max.max(v);
            series.push(
                task(&ns, &pod, JOB, "enrich", tm * 2 + slot).series("busyTimeMsPerSecond", v),
            );
        }
        expected.insert(pod, max);
    }
    // The JobManager pod carries other labels; the HPA's pod selector leaves it out.
    let mut jm = Series::new(
        "flink_taskmanager_job_task_busyTimeMsPerSecond",
        &[
            ("namespace", &ns),
            ("pod", "flink-jobmanager-0"),
            ("job_name", "orders_enrich"),
            ("app", "flink"),
            ("component", "jobmanager"),
        ],
        999.0,
    );
    jm.labels.push(("task_name".into(), "x".into()));
    series.push(jm);
    bed.store.set(&ns, series);

    let q = format!(
        "?labelSelector={}",
        urlencode("app=flink,component=taskmanager")
    );
    let body = client
        .get_ok(&pods_path(
            "v1beta2",
            &ns,
            "*",
            "flink_taskmanager_busy_time",
            &q,
        ))
        .await;
    let items = body["items"].as_array().unwrap();
    assert_eq!(items.len(), 3, "{body}");
    let ts = recent_timestamp(&items[0]["timestamp"]);
    let want: Vec<_> = expected
        .iter()
        .map(|(pod, v)| json!({
            "describedObject": {"kind": "Pod", "namespace": ns, "name": pod, "apiVersion": "v1"},
            "metric": {"name": "flink_taskmanager_busy_time", "selector": null},
            "timestamp": ts,
            "value": quantity(*v),
        }))
        .collect();
    assert_eq!(
        body,
        json!({"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2", "metadata": {}, "items": want})
    );

    // v1beta1 shape, `%2A` for `*`, and a metricLabelSelector narrowing the series.
    let q = format!(
        "?labelSelector={}&metricLabelSelector={}",
        urlencode("component=taskmanager"),
        urlencode("task_name=enrich")
    );
    let body = client
        .get_ok(&pods_path(
            "v1beta1",
            &ns,
            "%2A",
            "flink_taskmanager_busy_time",
            &q,
        ))
        .await;
    let first = &body["items"][0];
    let (pod, v) = expected.iter().next().unwrap();
    assert_eq!(body["apiVersion"], "custom.metrics.k8s.io/v1beta1");
    assert_eq!(
        first,
        &json!({
            "describedObject": {"kind": "Pod", "namespace": ns, "name": pod, "apiVersion": "v1"},
            "metricName": "flink_taskmanager_busy_time",
            "timestamp": first["timestamp"],
            "value": quantity(*v),
            "selector": {"matchExpressions": [{"key": "task_name", "operator": "In", "values": ["enrich"]}]},
        })
    );

    // One named pod: exactly one item.
    let body = client
        .get_ok(&pods_path(
            "v1beta2",
            &ns,
            pod,
            "flink_taskmanager_busy_time",
            "",
        ))
        .await;
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["describedObject"]["name"], json!(pod));
    let r = client
        .get(&pods_path(
            "v1beta2",
            &ns,
            "flink-taskmanager-7d9c-9",
            "flink_taskmanager_busy_time",
            "",
        ))
        .await;
    assert_eq!(r.status, 404);
    // The metric describes pods only.
    let r = client.get(&format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/deployments.apps/flink-taskmanager/flink_taskmanager_busy_time")).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["message"],
        "the server could not find the metric flink_taskmanager_busy_time for deployments.apps"
    );
}

#[tokio::test]
async fn promql_rules_get_the_selector_as_matchers() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("rules");
    let group = unique("g");
    let mut rng = Rng::new();
    let (x, y) = (rng.int(1, 1000) as f64, rng.int(1, 1000) as f64);
    bed.store.set(
        &ns,
        vec![
            Series::new(
                "kafka_consumergroup_lag",
                &[
                    ("consumergroup", &group),
                    ("topic", "t1"),
                    ("partition", "0"),
                ],
                x,
            ),
            Series::new(
                "kafka_consumergroup_lag",
                &[
                    ("consumergroup", &group),
                    ("topic", "t1"),
                    ("partition", "1"),
                ],
                y,
            ),
            Series::new(
                "kafka_consumergroup_lag",
                &[
                    ("consumergroup", &group),
                    ("topic", "t2"),
                    ("partition", "0"),
                ],
                y,
            ),
            task(&ns, "tm-a", JOB, "enrich", 0).series("numRecordsInPerSecond", x),
            task(&ns, "tm-a", JOB, "enrich", 1).series("numRecordsInPerSecond", y),
        ],
    );
    let b = client
        .get_ok(&ext(&ns, "topic_lag", &format!("consumergroup={group}")))
        .await;
    let ts = b["items"][0]["timestamp"].clone();
    assert_eq!(
        b["items"],
        json!([
            {"metricName": "topic_lag", "metricLabels": {"topic": "t1"}, "timestamp": ts, "value": quantity(x + y)},
            {"metricName": "topic_lag", "metricLabels": {"topic": "t2"}, "timestamp": ts, "value": quantity(y)},
        ])
    );
    let b = client
        .get_ok(&pods_path(
            "v1beta2",
            &ns,
            "*",
            "tm_records_in",
            &format!("?labelSelector={}", urlencode("app=flink")),
        ))
        .await;
    assert_eq!(b["items"][0]["describedObject"]["name"], "tm-a");
    assert_eq!(b["items"][0]["value"], json!(quantity(x + y)));
    // A query Prometheus refuses is the server's fault: 500, with Prometheus' reason.
    let r = client.get(&ext(&ns, "broken_query", "")).await;
    assert_eq!(r.status, 500, "{}", r.body);
    assert_eq!(r.body["reason"], "InternalError");
    assert!(
        r.body["message"].as_str().unwrap().contains("bad_data"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn selectors_cannot_change_the_query() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("inject");
    bed.store.set(
        &ns,
        vec![task(&ns, "tm-0", JOB, "enrich", 0).series("busyTimeMsPerSecond", 500.0)],
    );
    client
        .get_ok(&ext(&ns, "flink_busy_time_max", "job_name=orders-enrich"))
        .await;
    // Regex metacharacters are literals; quotes and braces stay inside the string. Each of
    // these either selects nothing (404) or is refused as a selector (400); none reads data or
    // breaks the query (500).
    for sel in [
        "job_name in (.*,x)",
        "job_name in (orders_enrich|x,y)",
        "job_name=orders_enrich\"}",
        "job_name=orders_enrich\"}or{job_name=~\".*",
        "job_name=x\\",
        "task_name notin (.*,enrich)",
    ] {
        let r = client.get(&ext(&ns, "flink_busy_time_max", sel)).await;
        assert!(
            matches!(r.status, 400 | 404),
            "{sel}: {} {}",
            r.status,
            r.body
        );
    }
    // notin with literal values still matches what it should.
    let b = client
        .get_ok(&ext(&ns, "flink_busy_time_max", "task_name notin (.*,x)"))
        .await;
    assert_eq!(b["items"][0]["value"], "500");
    // What cannot be a matcher is a 400, before any query.
    for (sel, msg) in [
        ("app.kubernetes.io/name=x", "label selector key \"app.kubernetes.io/name\" is not a valid Prometheus label name; map it to one in the signal's `labels`"),
        ("namespace=kube-system", "label selector key \"namespace\" is reserved: it is set from the request path"),
        ("job_name>3", "label selector operator in \"job_name>3\" has no PromQL label matcher equivalent"),
    ] {
        let r = client.get(&ext(&ns, "flink_busy_time_max", sel)).await;
        assert_eq!(r.status, 400, "{sel}");
        assert_eq!(r.body["message"], msg);
    }
}

#[tokio::test]
async fn prometheus_down_is_a_503_that_says_so() {
    let bed = bed();
    let client = bed.down.client();
    let r = client
        .get(&ext("flink", "flink_busy_time_max", "job_name=x"))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.body["reason"], "ServiceUnavailable");
    let msg = r.body["message"].as_str().unwrap();
    assert!(
        msg.starts_with("flink_busy_time_max: Prometheus at http://127.0.0.1:9 is unreachable"),
        "{msg}"
    );
    // Discovery does not depend on Prometheus.
    let r = client.get("/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(r.status, 200);
}

fn job_state(ns: &str, running_ms: f64, restarts: f64) -> Vec<Series> {
    job_state_of(ns, JOB, running_ms, restarts)
}

#[tokio::test]
async fn a_restarting_job_holds_its_last_good_value_for_a_bounded_time() {
    let bed = bed();
    let client = bed.main.client();
    let ns = unique("restart");
    let busy = |v: f64| task(&ns, "tm-0", JOB, "enrich", 0).series("busyTimeMsPerSecond", v);
    let set = |v: f64, running_ms: f64, restarts: f64| {
        let mut s = job_state(&ns, running_ms, restarts);
        s.push(busy(v));
        bed.store.set(&ns, s);
    };
    let path = |metric: &str, sel: &str| ext(&ns, metric, sel);
    set(500.0, 600_000.0, 0.0);
    for m in ["flink_busy_time_max", "busy_short_hold"] {
        client
            .wait_for(&path(m, "job_name=orders-enrich"), |r| {
                r.status == 200 && r.body["items"][0]["value"] == "500"
            })
            .await;
    }

    // A rescale: the job restarts, busy time drops to 0 while it restores.
    set(0.0, 4_000.0, 1.0);
    wait_scraped(
        &format!("flink_jobmanager_job_runningTime{{namespace=\"{ns}\"}} < 60000"),
        1,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let r = client
        .get(&path("flink_busy_time_max", "job_name=orders-enrich"))
        .await;
    assert_eq!(
        (r.status, r.body["items"][0]["value"].clone()),
        (200, json!("500")),
        "held: {}",
        r.body
    );
    // A request never answered before has nothing to hold: an error, not the transient 0.
    let r = client
        .get(&path("flink_busy_time_max", "job_name in (orders-enrich)"))
        .await;
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(
        r.body["message"]
            .as_str()
            .unwrap()
            .contains("job orders_enrich is restarting or warming up"),
        "{}",
        r.body
    );
    // The hold is bounded: past maxHold (2 s here) the data speaks again.
    client
        .wait_for(&path("busy_short_hold", "job_name=orders-enrich"), |r| {
            r.status == 200 && r.body["items"][0]["value"] == "0"
        })
        .await;

    // Running again past the warm-up: the real value.
    set(0.0, 120_000.0, 1.0);
    client
        .wait_for(
            &path("flink_busy_time_max", "job_name=orders-enrich"),
            |r| r.status == 200 && r.body["items"][0]["value"] == "0",
        )
        .await;
}
