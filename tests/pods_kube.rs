//! `pods/*` requests resolved through a watched pod cache. The Kubernetes API server is the
//! one part faked here (no API server can run on the test machine); kube-rs talks to it over
//! HTTP exactly as it would to a real one (metadata-only list, then watch).

mod common;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::Query;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use common::*;
use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::fixtures::exporter::FlinkTask;
use flink_hpa_bridge::pods::KubePods;
use flink_hpa_bridge::server::{self, StartOptions};
use serde_json::{json, Value};
use tokio::sync::broadcast;

fn pod(ns: &str, name: &str, labels: Value, rv: u64) -> Value {
    json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata",
           "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": rv.to_string()}})
}

#[derive(serde::Deserialize)]
struct ListParams {
    watch: Option<String>,
}

#[tokio::test]
async fn pod_selector_is_resolved_against_the_pod_cache() {
    let bed = bed();
    let ns = unique("kube");
    let tm = json!({"app": "flink", "component": "taskmanager"});
    let initial = vec![
        pod(&ns, "tm-a", tm.clone(), 1),
        pod(&ns, "tm-b", tm.clone(), 2),
        pod(
            &ns,
            "jm-0",
            json!({"app": "flink", "component": "jobmanager"}),
            3,
        ),
        pod("elsewhere", "tm-z", tm.clone(), 4),
    ];
    let (events, _) = broadcast::channel::<Value>(16);
    let events_tx = events.clone();
    let list = Arc::new(initial);
    let app = Router::new().route(
        "/api/v1/pods",
        get(move |Query(p): Query<ListParams>| {
            let list = list.clone();
            let events = events_tx.clone();
            async move {
                if p.watch.as_deref() == Some("true") {
                    watch_body(&events).into_response()
                } else {
                    axum::Json(
                        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
                        "metadata": {"resourceVersion": "10"}, "items": *list}),
                    )
                    .into_response()
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let kube_config = kube::Config::new(format!("http://{api_addr}").parse().unwrap());
    let client = kube::Client::try_from(kube_config).unwrap();

    // Series carry no pod labels: only the pod cache can tell TaskManagers apart. tm-gone is a
    // deleted pod whose series Prometheus still holds.
    let mut series = Vec::new();
    for (i, name) in ["tm-a", "tm-b", "jm-0", "tm-gone", "tm-c"]
        .iter()
        .enumerate()
    {
        let t = FlinkTask {
            namespace: &ns,
            pod: name,
            job_name: "orders-enrich",
            job_id: "j",
            task_name: "enrich",
            task_id: "t",
            subtask_index: i,
            tm_id: name,
        };
        let mut s = t.series("busyTimeMsPerSecond", 100.0 * (i + 1) as f64);
        s.labels.retain(|(k, _)| k != "app" && k != "component");
        series.push(s);
    }
    bed.store.set(&ns, series);

    let mut cfg = Config::default();
    cfg.prometheus.url = Some(bed.prometheus_url.clone());
    cfg.server.bind_address = "127.0.0.1".into();
    cfg.server.secure_port = 0;
    cfg.cache.refresh_interval = Some(Duration::from_secs(1));
    cfg.server.auth.insecure_skip_auth = true;
    let running = server::start(
        &cfg,
        StartOptions {
            pods: Some(KubePods::start(client)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let srv = Server {
        addr: running.addr,
        cert_pem: running.generated_cert_pem.clone().unwrap(),
    };
    let client = srv.client();
    let path = format!(
        "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/flink_taskmanager_busy_time?labelSelector={}",
        urlencode("app=flink,component=taskmanager")
    );
    let names = |b: &Value| -> Vec<(String, String)> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                (
                    i["describedObject"]["name"].as_str().unwrap().to_string(),
                    i["value"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let body = client.get_ok(&path).await;
    assert_eq!(
        names(&body),
        vec![("tm-a".into(), "100".into()), ("tm-b".into(), "200".into())]
    );

    // A TaskManager added by the Deployment appears through the watch.
    events
        .send(json!({"type": "ADDED", "object": pod(&ns, "tm-c", tm.clone(), 11)}))
        .unwrap();
    let r = client
        .wait_for(&path, |r| {
            r.status == 200 && r.body["items"].as_array().is_some_and(|a| a.len() == 3)
        })
        .await;
    assert_eq!(
        names(&r.body).last().unwrap(),
        &("tm-c".to_string(), "500".to_string())
    );

    // A selector no pod matches.
    let r = client
        .get(&format!("/apis/custom.metrics.k8s.io/v1beta2/namespaces/{ns}/pods/*/flink_taskmanager_busy_time?labelSelector=app%3Dnone"))
        .await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["message"],
        "flink_taskmanager_busy_time: no pods match the label selector"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    running.stop().await;
}
