//! Grouped queries over the series cap are sent in shards against a real Prometheus, and
//! every job's answer is the one a single query gives.

use std::sync::Arc;
use std::time::Duration;

use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::fixtures::exporter::{self, Store};
use flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus;
use flink_hpa_bridge::fixtures::platform;
use flink_hpa_bridge::metrics::Metrics;
use flink_hpa_bridge::prometheus;
use flink_hpa_bridge::provider::{ExternalRequest, MetricsProvider};
use flink_hpa_bridge::selector::Selector;
use flink_hpa_bridge::signals::{Request, Signals};

const JOBS: usize = 12;

fn signals(url: &str, extra: &str) -> Signals {
    let config = Config::from_yaml(
        &format!("prometheus: {{url: \"{url}\"{extra}}}\ncache: {{refreshInterval: 1s}}\n"),
        "test.yaml",
    )
    .expect("config");
    let client = prometheus::Client::new(&config.prometheus).expect("client");
    Signals::new(&config, client, None, Metrics::new())
}

/// A real Prometheus that has scraped the synthetic platform's first `jobs` jobs once.
async fn scraped_platform(jobs: usize) -> LocalPrometheus {
    let store = Store::default();
    store.set(
        "platform",
        (0..jobs).flat_map(platform::job_series).collect(),
    );
    let addr = exporter::spawn(Arc::new(store)).await.expect("exporter");
    let prom = LocalPrometheus::start(&[addr], Duration::from_secs(1))
        .await
        .expect("prometheus");
    prom.wait_for_first_scrape(Duration::from_secs(30))
        .await
        .expect("first scrape");
    prom
}

/// A Prometheus client of our own, to ask what a query gives without the server.
fn direct_client(url: &str, extra: &str) -> prometheus::Client {
    let config = Config::from_yaml(
        &format!("prometheus: {{url: \"{url}\"{extra}}}\n"),
        "t.yaml",
    )
    .expect("config");
    prometheus::Client::new(&config.prometheus).expect("client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_queries_over_the_cap_are_sharded_by_job() {
    let prom = scraped_platform(JOBS).await;

    // 12 jobs × 8 vertices × 3 parts with samples (value, newest, subtasks): 288 series in
    // one grouped answer, 24 per job.
    let capped = signals(&prom.url, ", maxSeries: 100");
    let whole = signals(&prom.url, "");
    for j in 0..JOBS {
        let req = ExternalRequest {
            namespace: platform::namespace(j),
            metric: "flink_busy_time_max".into(),
            selector: Selector::parse(&format!("job_name={}", platform::job_name(j)))
                .expect("selector"),
        };
        let a = capped.external(&req).await.expect("sharded answer");
        let b = whole.external(&req).await.expect("single answer");
        assert_eq!(a.len(), 1, "{req:?}");
        assert_eq!(
            (a[0].value, &a[0].labels),
            (b[0].value, &b[0].labels),
            "{req:?}"
        );
    }
    // Without sharding, the capped server's grouped query is refused outright.
    let direct = direct_client(&prom.url, ", maxSeries: 100");
    let grouped = capped
        .planned_promql(
            "flink_busy_time_max",
            &Request {
                namespace: Some(platform::namespace(7)),
                series: Selector::parse("job_name=job-7").expect("selector"),
                objects: None,
            },
        )
        .expect("known signal")
        .expect("planned");
    assert!(matches!(
        direct.instant(&grouped).await,
        Err(prometheus::PromError::TooManySeries(n, 100)) if n > 100
    ));
}

/// Requests whose selectors name labels outside a signal's grouping (a TaskManager, a subtask)
/// share one query grouped by those labels too, and each gets what a query of its own gives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_on_other_labels_share_one_query_and_answer_as_their_own() {
    let prom = scraped_platform(4).await;
    let direct = direct_client(&prom.url, "");
    let s = signals(&prom.url, "");
    // Job 3 runs at parallelism 48 on two pods: its subtasks alternate between them.
    let (j, ns) = (3, platform::namespace(3));
    let tm = |i: usize| format!("flink_taskmanager_{j}_{i}");
    let cases = [
        (
            format!("job_name=job-{j},tm_id!={}", tm(0)),
            format!("tm_id!=\"{}\"", tm(0)),
        ),
        (
            format!("job_name=job-{j},tm_id!={}", tm(1)),
            format!("tm_id!=\"{}\"", tm(1)),
        ),
        (
            format!("job_name=job-{j},tm_id in ({})", tm(1)),
            format!("tm_id=\"{}\"", tm(1)),
        ),
        (
            format!("job_name=job-{j},subtask_index notin (0,1,2),task_name=stage_3"),
            "subtask_index!~\"0|1|2\",task_name=\"stage_3\"".into(),
        ),
    ];
    let mut queries = Vec::new();
    for (selector, matchers) in &cases {
        let req = ExternalRequest {
            namespace: ns.clone(),
            metric: "flink_busy_time_max".into(),
            selector: Selector::parse(selector).expect("selector"),
        };
        let got = s.external(&req).await.expect("answer");
        let own = direct
            .instant(&format!(
                "max(flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{ns}\",job_name=\"job_{j}\",{matchers}}} >= 0 < +Inf)"
            ))
            .await
            .expect("own query");
        assert_eq!(got.len(), 1, "{selector}");
        assert_eq!(own.samples.len(), 1, "{selector}");
        assert_eq!(got[0].value, own.samples[0].value, "{selector}");
        queries.push(
            s.planned_promql(
                "flink_busy_time_max",
                &Request {
                    namespace: Some(ns.clone()),
                    series: req.selector.clone(),
                    objects: None,
                },
            )
            .expect("known signal")
            .expect("planned"),
        );
    }
    // The answers differ, the query does not: one for the TaskManager filters, one grouped by
    // subtask and task name too.
    assert_eq!(queries[0], queries[1]);
    assert_eq!(queries[1], queries[2]);
    assert_ne!(queries[2], queries[3]);
    assert!(
        queries[0].contains("tm_id") && !queries[0].contains("tm_id!="),
        "{}",
        queries[0]
    );
}
