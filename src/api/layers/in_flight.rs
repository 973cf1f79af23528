//! Refuses a request with 429 when `max` are already in flight, rather than queueing it: the
//! HPA retries on its next sync, and a queue would only add latency to every answer.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::status::ApiError;

/// At most so many requests in flight.
pub struct Limit(Semaphore);

impl Limit {
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self(Semaphore::new(max)))
    }

    /// A place among those in flight, given back when dropped; or the 429 to answer with.
    pub fn enter(&self) -> Result<SemaphorePermit<'_>, ApiError> {
        self.0.try_acquire().map_err(|_| {
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many requests in flight; retry later",
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_past_the_limit_is_refused_until_a_place_is_given_back() {
        let limit = Limit::new(1);
        let first = limit.enter().unwrap();
        let refused = limit.enter().unwrap_err();
        assert_eq!(refused.code, StatusCode::TOO_MANY_REQUESTS);
        drop(first);
        assert!(limit.enter().is_ok());
    }
}
