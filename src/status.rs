//! Errors answered as a Kubernetes `metav1.Status`, shared by the API handlers and the
//! authentication layer (which must not depend on the handlers).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};

use crate::provider::MetricError;

/// An error answered as a Kubernetes `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    fn reason(&self) -> &'static str {
        match self.code.as_u16() {
            400 => "BadRequest",
            401 => "Unauthorized",
            403 => "Forbidden",
            404 => "NotFound",
            405 => "MethodNotAllowed",
            413 => "RequestEntityTooLarge",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        }
    }

    pub fn body(&self) -> Value {
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason(),
            "code": self.code.as_u16(),
        })
    }
}

impl From<MetricError> for ApiError {
    fn from(e: MetricError) -> Self {
        let code = match &e {
            MetricError::UnknownMetric { .. } | MetricError::NoData(_) => StatusCode::NOT_FOUND,
            MetricError::BadRequest(_) => StatusCode::BAD_REQUEST,
            MetricError::Unusable(_) | MetricError::BackendUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            MetricError::BackendFailed(_) => StatusCode::INTERNAL_SERVER_ERROR,
            MetricError::Backend { unavailable, .. } => {
                if *unavailable {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                }
            }
            MetricError::Pods(_) => StatusCode::SERVICE_UNAVAILABLE,
        };
        Self::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    /// The error rides along in the response's extensions, so layers (the failure log) read
    /// the message without parsing the body.
    fn into_response(self) -> Response {
        let mut resp = json_response(self.code, &self.body());
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Always `application/json`, whatever the client's `Accept` asked for: client-go decodes by
/// the response's content type, and a 406 would fail the HPA.
pub fn json_response<T: Serialize + ?Sized>(code: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_shape() {
        let e = ApiError::not_found("the server could not find the metric x for pods");
        assert_eq!(
            e.body(),
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",
                   "message":"the server could not find the metric x for pods","reason":"NotFound","code":404})
        );
    }
}
