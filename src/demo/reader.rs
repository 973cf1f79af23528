//! The HPA controller's metric reads, over HTTPS against a running server: the request it
//! sends for each metric of an HPA (`pkg/controller/podautoscaler/metrics/client.go`, the
//! external and custom metrics clients) and how it reads the answer — an External metric's
//! items summed, a Pods metric one value per pod, a `Status` an error.

use serde_json::Value;

use crate::hpa::controller::{MetricReading, Reading};
use crate::simulate::MetricRequest;

/// A request's query parameters: `labelSelector`, `metricLabelSelector`.
pub type Query = Vec<(&'static str, String)>;

/// The path and query of `request` on the aggregated APIs.
pub fn path_of(request: &MetricRequest) -> Result<(String, Query), String> {
    match request {
        MetricRequest::External(r) => Ok((
            format!(
                "/apis/external.metrics.k8s.io/v1beta1/namespaces/{}/{}",
                r.namespace, r.metric
            ),
            non_empty("labelSelector", r.selector.to_string()),
        )),
        MetricRequest::Pods(r) => {
            let mut query = non_empty("labelSelector", r.selector.to_string());
            query.extend(non_empty(
                "metricLabelSelector",
                r.metric_selector.to_string(),
            ));
            Ok((
                format!(
                    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/{}/pods/%2A/{}",
                    r.namespace.as_deref().unwrap_or("default"),
                    r.metric
                ),
                query,
            ))
        }
        MetricRequest::Unsupported(name) => Err(format!(
            "{name}: only External and Pods metrics are read by the demo"
        )),
    }
}

fn non_empty(key: &'static str, value: String) -> Query {
    if value.is_empty() {
        Vec::new()
    } else {
        vec![(key, value)]
    }
}

/// One read: what the HPA gets, and how old the newest sample behind it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Read {
    pub reading: MetricReading,
    /// Seconds between the newest item's timestamp and `now`.
    pub age_seconds: Option<f64>,
}

/// Reads a metrics API answer (`ExternalMetricValueList`, `MetricValueList` or `Status`) as
/// the controller does, at Unix time `now`.
pub fn read_answer(request: &MetricRequest, body: &Value, now: f64) -> Read {
    let fail = |message: String| Read {
        reading: Err(message),
        age_seconds: None,
    };
    if body["kind"] == "Status" {
        return fail(format!(
            "{} {}: {}",
            body["code"],
            body["reason"].as_str().unwrap_or(""),
            body["message"].as_str().unwrap_or("")
        ));
    }
    let Some(items) = body["items"].as_array() else {
        return fail("the answer has no items".into());
    };
    let mut values = Vec::with_capacity(items.len());
    let mut newest: Option<f64> = None;
    for item in items {
        let Some(q) = item["value"].as_str() else {
            return fail("an item has no value".into());
        };
        let Some(milli) = crate::quantity::parse_milli(q) else {
            return fail(format!("unreadable quantity {q:?}"));
        };
        let name = item["describedObject"]["name"]
            .as_str()
            .unwrap_or("")
            .to_string();
        values.push((name, milli as f64 / 1000.0));
        if let Some(t) = item["timestamp"]
            .as_str()
            .and_then(|t| t.parse::<jiff::Timestamp>().ok())
        {
            let t = t.as_second() as f64;
            newest = Some(newest.map_or(t, |n: f64| n.max(t)));
        }
    }
    // The controller treats an empty list as an error for both kinds ("no metrics returned").
    if values.is_empty() {
        return fail("no metrics returned".into());
    }
    let reading = match request {
        MetricRequest::Pods(_) => Reading::PerPod(values),
        _ => Reading::Value(values.iter().map(|(_, v)| v).sum()),
    };
    Read {
        reading: Ok(reading),
        age_seconds: newest.map(|t| (now - t).max(0.0)),
    }
}

/// Reads every metric of an HPA from the server at `base` (`https://host:port`).
pub async fn read_all(
    client: &reqwest::Client,
    base: &str,
    requests: &[MetricRequest],
    now: f64,
) -> Vec<Read> {
    let mut out = Vec::with_capacity(requests.len());
    for r in requests {
        let read = match path_of(r) {
            Err(e) => Read {
                reading: Err(e),
                age_seconds: None,
            },
            Ok((path, query)) => {
                match client
                    .get(format!("{base}{path}"))
                    .query(&query)
                    .send()
                    .await
                {
                    Err(e) => Read {
                        reading: Err(format!("request failed: {e}")),
                        age_seconds: None,
                    },
                    Ok(resp) => match resp.json::<Value>().await {
                        Ok(body) => read_answer(r, &body, now),
                        Err(e) => Read {
                            reading: Err(format!("unreadable answer: {e}")),
                            age_seconds: None,
                        },
                    },
                }
            }
        };
        out.push(read);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{CustomRequest, ExternalRequest, ObjectName};
    use crate::selector::Selector;
    use serde_json::json;

    fn external() -> MetricRequest {
        MetricRequest::External(ExternalRequest {
            namespace: "flink".into(),
            metric: "flink_busy_time_max".into(),
            selector: Selector::parse("job_name=orders").unwrap(),
        })
    }

    fn pods() -> MetricRequest {
        MetricRequest::Pods(CustomRequest {
            namespace: Some("flink".into()),
            resource: "pods".into(),
            name: ObjectName::All,
            metric: "flink_taskmanager_busy_time".into(),
            selector: Selector::everything(),
            metric_selector: Selector::parse("job_name=orders").unwrap(),
        })
    }

    #[test]
    fn requests_are_the_ones_the_controller_sends() {
        let (p, q) = path_of(&external()).unwrap();
        assert_eq!(
            p,
            "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max"
        );
        assert_eq!(q, vec![("labelSelector", "job_name=orders".to_string())]);
        let (p, q) = path_of(&pods()).unwrap();
        assert_eq!(
            p,
            "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/%2A/flink_taskmanager_busy_time"
        );
        assert_eq!(
            q,
            vec![("metricLabelSelector", "job_name=orders".to_string())]
        );
        assert!(path_of(&MetricRequest::Unsupported("x".into())).is_err());
    }

    #[test]
    fn external_items_are_summed_and_aged_by_the_newest() {
        let body = json!({"kind": "ExternalMetricValueList", "items": [
            {"metricName": "m", "value": "1500m", "timestamp": "2026-12-04T10:00:00Z"},
            {"metricName": "m", "value": "2", "timestamp": "2026-12-04T10:00:10Z"},
        ]});
        // 2026-12-04T10:00:10Z is 1796378410.
        let r = read_answer(&external(), &body, 1_796_378_414.0);
        assert_eq!(r.reading, Ok(Reading::Value(3.5)));
        assert_eq!(r.age_seconds, Some(4.0));
    }

    #[test]
    fn pods_items_stay_per_pod() {
        let body = json!({"kind": "MetricValueList", "items": [
            {"describedObject": {"kind": "Pod", "name": "tm-1"}, "value": "700", "timestamp": "2026-12-04T10:00:10Z"},
            {"describedObject": {"kind": "Pod", "name": "tm-2"}, "value": "1k", "timestamp": "2026-12-04T10:00:10Z"},
        ]});
        let r = read_answer(&pods(), &body, 1_796_378_410.0);
        assert_eq!(
            r.reading,
            Ok(Reading::PerPod(vec![
                ("tm-1".into(), 700.0),
                ("tm-2".into(), 1000.0)
            ]))
        );
    }

    #[test]
    fn a_status_or_an_empty_list_is_an_error_never_a_zero() {
        let status = json!({"kind": "Status", "code": 503, "reason": "ServiceUnavailable",
            "message": "job orders is restarting"});
        let r = read_answer(&external(), &status, 0.0);
        assert_eq!(
            r.reading,
            Err("503 ServiceUnavailable: job orders is restarting".into())
        );
        let empty = json!({"kind": "ExternalMetricValueList", "items": []});
        assert!(read_answer(&external(), &empty, 0.0).reading.is_err());
        let bad = json!({"kind": "ExternalMetricValueList", "items": [{"value": "NaN"}]});
        assert!(read_answer(&external(), &bad, 0.0).reading.is_err());
    }
}
