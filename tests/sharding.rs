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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_queries_over_the_cap_are_sharded_by_job() {
    let store = Store::default();
    store.set(
        "platform",
        (0..JOBS).flat_map(platform::job_series).collect(),
    );
    let addr = exporter::spawn(Arc::new(store)).await.expect("exporter");
    let prom = LocalPrometheus::start(&[addr], Duration::from_secs(1))
        .await
        .expect("prometheus");
    prom.wait_for_first_scrape(Duration::from_secs(30))
        .await
        .expect("first scrape");

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
    let direct = prometheus::Client::new(
        &Config::from_yaml(
            &format!("prometheus: {{url: \"{}\", maxSeries: 100}}\n", prom.url),
            "t.yaml",
        )
        .expect("config")
        .prometheus,
    )
    .expect("client");
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
