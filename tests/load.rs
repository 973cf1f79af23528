//! Many HPAs, one query: Prometheus' load does not grow with the number of HPAs polling a
//! signal. Counted from the server's own metrics and from Prometheus' own request counter.

mod common;

use std::time::{Duration, Instant};

use common::*;
use flink_hpa_bridge::fixtures::exporter::FlinkTask;

/// Query API requests Prometheus has served, from its own `/metrics`.
async fn prometheus_query_requests(url: &str) -> f64 {
    flink_hpa_bridge::fixtures::local_prometheus::query_requests(url)
        .await
        .unwrap()
}

fn own_counter(metrics: &str, signal: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.starts_with("flink_hpa_bridge_prometheus_queries_total{")
                && l.contains(&format!("signal=\"{signal}\""))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn a_hundred_hpas_cost_one_query_per_refresh() {
    let bed = bed();
    let ns = unique("many");
    let jobs: Vec<String> = (0..100).map(|i| format!("job-{i}")).collect();
    let mut series = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        for s in 0..2 {
            let pod = format!("tm-{j}-{s}");
            series.push(
                FlinkTask {
                    namespace: &ns,
                    pod: &pod,
                    job_name: job,
                    job_id: "j",
                    task_name: "enrich",
                    task_id: "t",
                    subtask_index: s,
                    tm_id: &pod,
                }
                .series("busyTimeMsPerSecond", (j * 10 + s) as f64),
            );
        }
    }
    bed.store.set(&ns, series);
    let client = bed.main.client();
    let path = |job: &str| {
        format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/flink_busy_time_max?labelSelector=job_name%3D{job}")
    };
    client.get_ok(&path("job-99")).await;
    client.wait_for(&path("job-0"), |r| r.status == 200).await;

    let before_own = own_counter(
        client.get("/metrics").await.body.as_str().unwrap(),
        "flink_busy_time_max",
    );
    let before_prom = prometheus_query_requests(&bed.prometheus_url).await;
    let window = Duration::from_secs(5);
    let started = Instant::now();
    let mut hpas = Vec::new();
    for (j, job) in jobs.iter().enumerate() {
        let client = bed.main.client();
        let p = path(job);
        hpas.push(tokio::spawn(async move {
            let mut polls = 0;
            while started.elapsed() < window {
                let r = client.get(&p).await;
                assert_eq!(r.status, 200, "{p}: {}", r.body);
                assert_eq!(
                    r.body["items"][0]["value"],
                    serde_json::json!(quantity((j * 10 + 1) as f64))
                );
                polls += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            polls
        }));
    }
    let mut polls = 0;
    for h in hpas {
        polls += h.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let own = own_counter(
        client.get("/metrics").await.body.as_str().unwrap(),
        "flink_busy_time_max",
    ) - before_own;
    let prom = prometheus_query_requests(&bed.prometheus_url).await - before_prom;
    eprintln!("{polls} polls by 100 HPAs in {elapsed:.1}s: {own} busy-time queries counted here, {prom} query requests counted by Prometheus");
    // Enough polls that one query per refresh is far fewer than one per poll; how many a
    // loaded machine manages in 5 s is a benchmark's business, not this test's.
    assert!(polls >= 300, "{polls}");
    // Refresh interval 1 s: about one query per second for the signal, whatever the number of
    // HPAs; Prometheus also sees the one job-state query per second that the restart hold
    // shares between all Flink signals.
    let bound = elapsed.ceil() + 2.0;
    assert!(own <= bound, "{own} queries for {polls} polls");
    assert!(
        prom <= 2.0 * bound,
        "Prometheus saw {prom} queries for {polls} polls"
    );
}
