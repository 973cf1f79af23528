//! Routes, discovery and errors of the HTTPS API, read with a real HTTPS client and, where the
//! machine has it, with `kubectl get --raw`.

mod common;

use common::*;
use serde_json::json;

const EXTERNAL: [&str; 14] = [
    "busy_or_zero",
    "busy_short_hold",
    "busy_strict",
    "broken_query",
    "flink_busy_time_max",
    "flink_kafka_lag_records",
    "flink_kafka_lag_growth",
    "flink_kafka_lag_seconds",
    "flink_required_taskmanagers",
    "lag_seconds_capped",
    "pravega_forgets",
    "pravega_short",
    "pravega_stream_segments",
    "required_short",
];

fn status(code: u16, reason: &str, message: &str) -> serde_json::Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

#[tokio::test]
async fn discovery_lists_every_served_metric() {
    let client = bed().main.client();
    let r = client.get("/apis/external.metrics.k8s.io/v1beta1").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.content_type, "application/json");
    let mut names: Vec<&str> = EXTERNAL.into_iter().chain(["topic_lag"]).collect();
    names.sort();
    let resources: Vec<_> = names
        .iter()
        .map(|n| json!({"name": n, "singularName": "", "namespaced": true, "kind": "ExternalMetricValueList", "verbs": ["get"]}))
        .collect();
    assert_eq!(
        r.body,
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "external.metrics.k8s.io/v1beta1", "resources": resources})
    );
    for version in ["v1beta1", "v1beta2"] {
        let r = client
            .get(&format!("/apis/custom.metrics.k8s.io/{version}"))
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.body,
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": format!("custom.metrics.k8s.io/{version}"), "resources": [
                {"name": "pods/flink_taskmanager_busy_time", "singularName": "", "namespaced": true, "kind": "MetricValueList", "verbs": ["get"]},
                {"name": "pods/tm_records_in", "singularName": "", "namespaced": true, "kind": "MetricValueList", "verbs": ["get"]},
            ]})
        );
    }
}

#[tokio::test]
async fn groups_openapi_and_health() {
    let client = bed().main.client();
    let gv = |g: &str, v: &str| json!({"groupVersion": format!("{g}/{v}"), "version": v});
    let custom = json!({"name": "custom.metrics.k8s.io",
        "versions": [gv("custom.metrics.k8s.io", "v1beta2"), gv("custom.metrics.k8s.io", "v1beta1")],
        "preferredVersion": gv("custom.metrics.k8s.io", "v1beta2")});
    let external = json!({"name": "external.metrics.k8s.io",
        "versions": [gv("external.metrics.k8s.io", "v1beta1")],
        "preferredVersion": gv("external.metrics.k8s.io", "v1beta1")});
    let r = client.get("/apis").await;
    assert_eq!(
        r.body,
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [custom, external]})
    );
    let r = client.get("/apis/custom.metrics.k8s.io").await;
    let mut want = custom.clone();
    want["kind"] = json!("APIGroup");
    want["apiVersion"] = json!("v1");
    assert_eq!(r.body, want);

    let r = client.get("/openapi/v2").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["swagger"], "2.0");
    assert_eq!(r.body["info"]["title"], "flink-hpa-bridge");
    assert!(r.body["paths"].as_object().is_some_and(|p| !p.is_empty()));
    let r = client.get("/openapi/v3").await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body,
        status(
            404,
            "NotFound",
            "the server could not find the requested resource /openapi/v3"
        )
    );

    for path in ["/healthz", "/livez", "/readyz"] {
        let r = client.get(path).await;
        assert_eq!((r.status, r.body.as_str()), (200, Some("ok")), "{path}");
    }
}

#[tokio::test]
async fn json_whatever_the_accept_header_says() {
    let client = bed().main.client();
    for accept in [
        "application/vnd.kubernetes.protobuf, */*",
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "text/html",
    ] {
        let r = client
            .request(
                reqwest::Method::GET,
                "/apis/external.metrics.k8s.io/v1beta1",
                &[("accept", accept)],
            )
            .await;
        assert_eq!(
            (r.status, r.content_type.as_str()),
            (200, "application/json"),
            "{accept}"
        );
    }
}

#[tokio::test]
async fn every_bad_request_gets_a_status() {
    let client = bed().main.client();
    let cases: Vec<(&str, u16, &str, String)> = vec![
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/no_such_metric", 404, "NotFound",
            "the server could not find the metric no_such_metric for external metrics".into()),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/*/no_such_metric", 404, "NotFound",
            "the server could not find the metric no_such_metric for pods".into()),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/metrics/flink_busy_time_max", 404, "NotFound",
            "the server could not find the metric flink_busy_time_max for namespaces".into()),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_taskmanager_busy_time", 404, "NotFound",
            "the server could not find the metric flink_taskmanager_busy_time for external metrics".into()),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max?labelSelector=job_name+in+%28a", 400, "BadRequest",
            "labelSelector: invalid label selector \"job_name in (a\": expected ')' but the selector ended".into()),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/*/flink_taskmanager_busy_time?metricLabelSelector=%3Dx", 400, "BadRequest",
            "metricLabelSelector: invalid label selector \"=x\": expected a label key but found '='".into()),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink", 400, "BadRequest",
            "malformed external metrics path /apis/external.metrics.k8s.io/v1beta1/namespaces/flink: expected /apis/external.metrics.k8s.io/v1beta1/namespaces/<namespace>/<metric>".into()),
        ("/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink", 400, "BadRequest",
            "malformed custom metrics path /apis/custom.metrics.k8s.io/v1beta2/namespaces/flink: expected namespaces/<ns>/<resource>/<name|*>/<metric>, <resource>/<name|*>/<metric> or namespaces/<ns>/metrics/<metric>".into()),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/Bad_NS/flink_busy_time_max", 400, "BadRequest",
            "invalid namespace name \"Bad_NS\"".into()),
        ("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/bad-metric", 400, "BadRequest",
            "invalid metric name \"bad-metric\"".into()),
        ("/apis/external.metrics.k8s.io/v1beta2/namespaces/flink/flink_busy_time_max", 404, "NotFound",
            "the server could not find the requested resource: external.metrics.k8s.io/v1beta2 is not served (served: v1beta1)".into()),
        ("/apis/custom.metrics.k8s.io/v1", 404, "NotFound",
            "the server could not find the requested resource: custom.metrics.k8s.io/v1 is not served (served: v1beta2, v1beta1)".into()),
        ("/apis/metrics.k8s.io", 404, "NotFound",
            "the server could not find the requested resource /apis/metrics.k8s.io".into()),
        ("/nowhere", 404, "NotFound", "the server could not find the requested resource /nowhere".into()),
    ];
    for (path, code, reason, message) in cases {
        let r = client.get(path).await;
        assert_eq!(r.content_type, "application/json", "{path}");
        assert_eq!(r.body, status(code, reason, &message), "{path}");
        assert_eq!(r.status, code, "{path}");
    }
    let r = client
        .request(
            reqwest::Method::POST,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max",
            &[],
        )
        .await;
    assert_eq!(
        r.body,
        status(405, "MethodNotAllowed", "POST is not supported on /apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max: the metrics APIs are read-only")
    );
}

#[tokio::test]
async fn kubectl_get_raw_reads_the_api() {
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl not installed: skipped");
        return;
    };
    assert!(out.status.success());
    let bed = bed();
    let ns = unique("kubectl");
    bed.store.set(
        &ns,
        vec![
            flink_hpa_bridge::exporter::FlinkTask::single(&ns, "orders-enrich")
                .series("busyTimeMsPerSecond", 321.0),
        ],
    );
    let path = format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/flink_busy_time_max?labelSelector=job_name%3Dorders-enrich");
    bed.main.client().get_ok(&path).await;
    let server = format!("https://127.0.0.1:{}", bed.main.addr.port());
    let kubectl = |path: &str| {
        let home = tempfile::tempdir().expect("tempdir");
        std::process::Command::new("kubectl")
            // A token only so kubectl does not prompt for credentials; the server ignores it.
            .args([
                "get",
                "--raw",
                path,
                "--server",
                &server,
                "--insecure-skip-tls-verify",
                "--token",
                "unused",
            ])
            .env("HOME", home.path())
            .env("KUBECONFIG", home.path().join("none"))
            .output()
            .expect("kubectl")
    };
    let out = kubectl(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(body["items"][0]["value"], "321");
    let out = kubectl("/apis/custom.metrics.k8s.io/v1beta2");
    assert!(out.status.success());
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        body["resources"][0]["name"],
        "pods/flink_taskmanager_busy_time"
    );
    // kubectl shows the Status message of an error.
    let out = kubectl(&format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/no_such_metric"
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("the server could not find the metric no_such_metric"));
}

#[tokio::test]
async fn own_metrics_are_served() {
    let client = bed().main.client();
    client.get("/apis/external.metrics.k8s.io/v1beta1").await;
    client
        .get("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/no_such_metric")
        .await;
    client.get("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max?labelSelector=job_name%3Dx").await;
    let r = client.get("/metrics").await;
    assert_eq!(r.status, 200);
    let text = r.body.as_str().unwrap();
    for needle in [
        "flink_hpa_bridge_http_requests_total{code=\"200\",route=\"discovery\"}",
        "flink_hpa_bridge_http_requests_total{code=\"404\",route=\"external\"}",
        "flink_hpa_bridge_http_request_duration_seconds_bucket{route=\"external\",le=\"0.001\"}",
        "flink_hpa_bridge_http_requests_in_flight 1",
        "flink_hpa_bridge_prometheus_queries_total{outcome=\"ok\",signal=\"flink_busy_time_max\"}",
        "flink_hpa_bridge_prometheus_query_duration_seconds_count{signal=\"flink_busy_time_max\"}",
        "flink_hpa_bridge_cache_lookups_total{result=\"miss\"}",
        "flink_hpa_bridge_cache_entries ",
        "flink_hpa_bridge_cache_evictions_total ",
        "flink_hpa_bridge_served_value_age_seconds_bucket",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}
