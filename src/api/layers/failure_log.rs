//! One log line for each failed metric answer, so that "why is my HPA not scaling?" is
//! answered by the server's log: who asked, for which metric, namespace and selector, and the
//! Status message the HPA got. The same (metric, namespace, selector, status) is logged at
//! most once per interval, and the number of distinct requests remembered is bounded, so a
//! flood cannot fill a disk.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::Uri;
use axum::response::Response;

use crate::auth::Caller;
use crate::path::RequestPath;
use crate::status::ApiError;

/// Default interval between two lines about the same failing request.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
/// Most distinct failing requests remembered; past it, new ones are not logged until old
/// ones expire.
const MAX_REMEMBERED: usize = 10_000;

/// Which failures were logged when.
pub struct FailureLog {
    interval: Duration,
    logged: Mutex<HashMap<String, Instant>>,
}

impl FailureLog {
    pub fn new(interval: Duration) -> Arc<Self> {
        Arc::new(Self {
            interval,
            logged: Mutex::default(),
        })
    }

    /// Whether a failure with `key` should be logged at `now`, remembering it if so.
    pub fn should_log(&self, key: &str, now: Instant) -> bool {
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(at) = logged.get(key) {
            if now.duration_since(*at) < self.interval {
                return false;
            }
        }
        if logged.len() >= MAX_REMEMBERED && !logged.contains_key(key) {
            let interval = self.interval;
            logged.retain(|_, at| now.duration_since(*at) < interval);
            if logged.len() >= MAX_REMEMBERED {
                return false;
            }
        }
        logged.insert(key.to_string(), now);
        true
    }
}

/// What a metric request was about, read from its path and query string as received (the
/// request may have failed because they do not parse).
#[derive(Debug, PartialEq, Eq)]
struct About {
    metric: String,
    namespace: String,
    selector: String,
}

fn about(path: &RequestPath, query: Option<&str>) -> About {
    let rest = path.api().map(|a| a.rest).unwrap_or_default();
    let namespace = match rest {
        [ns_kw, ns, _, ..] if ns_kw == "namespaces" => ns.clone(),
        _ => String::new(),
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
        .unwrap_or_else(|_| vec![("query".into(), query.unwrap_or("").to_string())]);
    let selector = pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    About {
        metric: rest.last().cloned().unwrap_or_default(),
        namespace,
        selector,
    }
}

/// Logs `resp` if it is a failure not logged about within the interval.
pub fn record(log: &FailureLog, path: &RequestPath, caller: &Caller, uri: &Uri, resp: &Response) {
    let code = resp.status();
    if code.is_success() {
        return;
    }
    let a = about(path, uri.query());
    let key = format!(
        "{}|{}|{}|{}",
        a.metric,
        a.namespace,
        a.selector,
        code.as_u16()
    );
    if log.should_log(&key, Instant::now()) {
        let message = resp
            .extensions()
            .get::<ApiError>()
            .map(|e| e.message.as_str())
            .unwrap_or("");
        tracing::warn!(
            caller = %caller,
            metric = %a.metric,
            namespace = %a.namespace,
            selector = %a.selector,
            code = code.as_u16(),
            status = message,
            "metric request failed (the same request is logged again after {}s at the earliest)",
            log.interval.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn once_per_interval_per_key() {
        let log = FailureLog::new(Duration::from_secs(60));
        let t0 = Instant::now();
        assert!(log.should_log("a", t0));
        assert!(!log.should_log("a", t0 + Duration::from_secs(59)));
        assert!(log.should_log("b", t0 + Duration::from_secs(59)));
        assert!(log.should_log("a", t0 + Duration::from_secs(60)));
    }

    #[test]
    fn what_a_request_was_about() {
        let p = RequestPath::parse("/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/m");
        assert_eq!(
            about(&p, Some("labelSelector=job_name%3Dorders")),
            About {
                metric: "m".into(),
                namespace: "flink".into(),
                selector: "labelSelector=job_name=orders".into()
            }
        );
        let p = RequestPath::parse("/apis/custom.metrics.k8s.io/v1beta2/nodes/n1/m");
        assert_eq!(about(&p, None).namespace, "");
    }

    /// Collects what is logged.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_failing_request_is_logged_once_with_its_status_message() {
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let log = FailureLog::new(Duration::from_secs(60));
        let caller = Caller("system:serviceaccount:kube-system:horizontal-pod-autoscaler".into());
        let not_found = axum::response::IntoResponse::into_response(ApiError::not_found(
            "no series of flink_busy_time_max match job_name=\"nope\"",
        ));
        let ask = |sel: &str| {
            let uri: Uri = format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max?labelSelector={sel}"
            )
            .parse()
            .unwrap();
            let path = RequestPath::parse(uri.path());
            record(&log, &path, &caller, &uri, &not_found);
        };
        for _ in 0..3 {
            ask("job_name%3Dnope");
        }
        ask("job_name%3Dother");
        let ok = axum::response::IntoResponse::into_response("fine");
        let uri: Uri = "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/m"
            .parse()
            .unwrap();
        record(&log, &RequestPath::parse(uri.path()), &caller, &uri, &ok);
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        let first = lines[0];
        for part in [
            "WARN",
            "caller=system:serviceaccount:kube-system:horizontal-pod-autoscaler",
            "metric=flink_busy_time_max",
            "namespace=flink",
            "selector=labelSelector=job_name=nope",
            "code=404",
            "status=\"no series of flink_busy_time_max match job_name=\\\"nope\\\"\"",
        ] {
            assert!(first.contains(part), "{part} not in {first}");
        }
        assert!(
            lines[1].contains("selector=labelSelector=job_name=other"),
            "{}",
            lines[1]
        );
    }
}
