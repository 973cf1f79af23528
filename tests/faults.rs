//! Prometheus failing: killed and restarted, slow, answering errors or warnings. A real
//! Prometheus of this test's own, and a small proxy in front of it that can delay or break
//! answers. Whatever happens, no response ever carries a value the data did not have.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::post;
use axum::Router;
use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::fixtures::exporter::{self, FlinkTask, Store};
use flink_hpa_bridge::fixtures::local_prometheus::LocalPrometheus;
use flink_hpa_bridge::server::{self, StartOptions};
use serde_json::Value;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Pass,
    Delay(u64),
    Fail,
    Warn,
    /// Prometheus 2.48–2.53: an info annotation among the warnings.
    InfoInWarnings,
    /// Prometheus 2.54 and 3.x: info annotations in their own field.
    InfosField,
}

#[derive(Clone)]
struct Proxy {
    upstream: String,
    mode: Arc<Mutex<Mode>>,
}

async fn forward(State(p): State<Proxy>, body: Bytes) -> axum::response::Response {
    let mode = *p.mode.lock().unwrap();
    match mode {
        Mode::Fail => {
            return (
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                r#"{"status":"error","errorType":"unavailable","error":"injected failure"}"#,
            )
                .into_response()
        }
        Mode::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
        _ => {}
    }
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/query", p.upstream))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await;
    let Ok(r) = r else {
        return (axum::http::StatusCode::BAD_GATEWAY, "upstream down").into_response();
    };
    let status = r.status();
    let mut v: Value = r.json().await.unwrap_or(Value::Null);
    const INFO: &str = "PromQL info: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: \"flink_taskmanager_job_task_busyTimeMsPerSecond\" (1:9)";
    match mode {
        Mode::Warn => {
            v["warnings"] =
                serde_json::json!(["partial response: store 10.0.0.7:10901 unavailable"]);
        }
        Mode::InfoInWarnings => v["warnings"] = serde_json::json!([INFO]),
        Mode::InfosField => v["infos"] = serde_json::json!([INFO]),
        _ => {}
    }
    (
        axum::http::StatusCode::from_u16(status.as_u16()).unwrap(),
        axum::Json(v),
    )
        .into_response()
}

struct Client {
    http: reqwest::Client,
    base: String,
    /// Every value ever served, to check none was invented.
    seen: Arc<Mutex<Vec<String>>>,
}

impl Client {
    async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let body: Value = r.json().await.unwrap();
        if let Some(items) = body["items"].as_array() {
            for i in items {
                self.seen
                    .lock()
                    .unwrap()
                    .push(i["value"].as_str().unwrap_or("?").to_string());
            }
        }
        (code, body)
    }

    /// Polls until `want` accepts the answer; returns it. Bounded at 30 s.
    async fn until(&self, path: &str, want: impl Fn(u16, &Value) -> bool) -> (u16, Value) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (code, body) = self.get(path).await;
            if want(code, &body) {
                return (code, body);
            }
            assert!(
                Instant::now() < deadline,
                "{path}: last answer {code} {body}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

async fn start_server(prometheus_url: &str) -> Client {
    let mut cfg = Config::default();
    cfg.prometheus.url = Some(prometheus_url.to_string());
    cfg.prometheus.timeout = Duration::from_secs(2);
    cfg.cache.refresh_interval = Some(Duration::from_secs(1));
    cfg.server.bind_address = "127.0.0.1".into();
    cfg.server.secure_port = 0;
    cfg.server.auth.insecure_skip_auth = true;
    let running = server::start(&cfg, StartOptions::default()).await.unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(running.generated_cert_pem.clone().unwrap().as_bytes())
                .unwrap(),
        )
        .resolve("localhost", running.addr)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://localhost:{}", running.addr.port());
    std::mem::forget(running);
    Client {
        http,
        base,
        seen: Arc::default(),
    }
}

const PATH: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/faults/flink_busy_time_max?labelSelector=job_name%3Dorders-enrich";

#[tokio::test]
async fn prometheus_failures_give_clear_errors_and_recovery_without_restart() {
    let store = Store::default();
    store.set(
        "s",
        vec![FlinkTask::single("faults", "orders-enrich").series("busyTimeMsPerSecond", 612.0)],
    );
    let exporter_addr = exporter::spawn(Arc::new(store)).await.unwrap();
    let mut prom = LocalPrometheus::start(&[exporter_addr], Duration::from_secs(1))
        .await
        .unwrap();
    prom.wait_for_first_scrape(Duration::from_secs(30))
        .await
        .unwrap();

    let proxy = Proxy {
        upstream: prom.url.clone(),
        mode: Arc::new(Mutex::new(Mode::Pass)),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/api/v1/query", post(forward))
        .with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let direct = start_server(&prom.url).await;
    let through = start_server(&proxy_url).await;
    let healthy = |code: u16, b: &Value| code == 200 && b["items"][0]["value"] == "612";
    direct.until(PATH, healthy).await;
    through.until(PATH, healthy).await;

    // Slow: past the 2 s timeout, a 503 that says so (after the cached value ages out).
    *proxy.mode.lock().unwrap() = Mode::Delay(3000);
    let (_, body) = through.until(PATH, |code, _| code == 503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(msg.contains("did not answer within 2s"), "{msg}");
    // Errors from Prometheus: 503, with its reason.
    *proxy.mode.lock().unwrap() = Mode::Fail;
    let (_, body) = through
        .until(PATH, |code, b| {
            code == 503
                && b["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("injected failure")
        })
        .await;
    assert_eq!(body["reason"], "ServiceUnavailable");
    // Warnings (a partial answer from Thanos or Cortex): refused.
    *proxy.mode.lock().unwrap() = Mode::Warn;
    let (_, body) = through
        .until(PATH, |code, b| {
            code == 503
                && b["message"]
                    .as_str()
                    .unwrap_or("")
                    .contains("may be partial")
        })
        .await;
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("store 10.0.0.7:10901 unavailable"));
    // Healthy again: recovered without a restart.
    *proxy.mode.lock().unwrap() = Mode::Pass;
    through.until(PATH, healthy).await;
    // Info annotations say nothing is missing: served, in either version's shape. Each is
    // answered fresh after the mode changes (the cache refreshes every second).
    for info in [Mode::InfoInWarnings, Mode::InfosField] {
        *proxy.mode.lock().unwrap() = info;
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let (code, body) = through.get(PATH).await;
        assert_eq!(code, 200, "{info:?}: {body}");
    }
    *proxy.mode.lock().unwrap() = Mode::Pass;

    // Prometheus killed: unreachable, 503.
    prom.kill().await;
    let (_, body) = direct.until(PATH, |code, _| code == 503).await;
    let msg = body["message"].as_str().unwrap();
    assert!(
        msg.contains(&format!("Prometheus at {} is unreachable", prom.url)),
        "{msg}"
    );
    // Back, with its data: served again.
    prom.restart().await.unwrap();
    direct.until(PATH, healthy).await;

    for c in [&direct, &through] {
        let seen = c.seen.lock().unwrap();
        assert!(!seen.is_empty());
        assert!(seen.iter().all(|v| v == "612"), "values served: {seen:?}");
    }
    prom.stop().await;
}
