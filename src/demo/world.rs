//! The simulated Flink job running on the wall clock: the model the simulator steps, shared
//! between the exporter Prometheus scrapes and the loop that advances it and applies the
//! HPA's decisions.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::fixtures::exporter::{Series, Source};
use crate::sim::FlinkJob;

#[derive(Clone)]
pub struct LiveJob {
    job: Arc<Mutex<FlinkJob>>,
}

impl LiveJob {
    pub fn new(job: FlinkJob) -> Self {
        Self {
            job: Arc::new(Mutex::new(job)),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, FlinkJob> {
        self.job.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Source for LiveJob {
    /// The model stamps its series with simulated time; here Prometheus stamps the scrape
    /// time, as it does for Flink's reporter, and so marks vanished series stale at once
    /// (series with explicit timestamps are never marked stale).
    fn series(&self) -> Vec<Series> {
        let mut series = self.lock().series();
        for s in &mut series {
            s.timestamp_ms = None;
        }
        series
    }
}
