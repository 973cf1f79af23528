//! The task metrics of one execution attempt: totals and busy-time windows, and Flink's
//! `MeterView`, whose first minute under-reads.

use std::collections::VecDeque;

/// MeterView (flink-metrics-core): the counter sampled every 5 s into a ring of
/// 60/5 + 1 values that starts at zeros, rate = (newest − oldest) / 60 — so a meter under-reads
/// for its first minute.
#[derive(Debug, Clone)]
pub(super) struct Meter {
    samples: VecDeque<f64>,
}

pub(super) const METER_UPDATE_SECONDS: f64 = 5.0;
pub(super) const METER_SPAN_SECONDS: f64 = 60.0;

impl Meter {
    pub(super) fn new() -> Self {
        let n = (METER_SPAN_SECONDS / METER_UPDATE_SECONDS) as usize + 1;
        Self {
            samples: std::iter::repeat_n(0.0, n).collect(),
        }
    }
    pub(super) fn update(&mut self, count: f64) {
        self.samples.pop_front();
        self.samples.push_back(count);
    }
    pub(super) fn rate(&self) -> f64 {
        let first = self.samples.front().copied().unwrap_or(0.0);
        let last = self.samples.back().copied().unwrap_or(0.0);
        (last - first) / METER_SPAN_SECONDS
    }
}

/// Per-vertex totals of the current execution attempt (reset on every restart, as task
/// metrics are re-registered with the new attempt).
#[derive(Debug, Clone)]
pub(super) struct Attempt {
    pub(super) records: f64,
    pub(super) source_busy_ms: f64,
    pub(super) work_busy_ms: f64,
    /// (step length, source busy ms, work busy ms, source back-pressured ms) of the last 60 s.
    pub(super) window: VecDeque<(f64, f64, f64, f64)>,
    pub(super) meter: Meter,
    pub(super) next_meter_update: f64,
}

impl Attempt {
    pub(super) fn new(t: f64) -> Self {
        Self {
            records: 0.0,
            source_busy_ms: 0.0,
            work_busy_ms: 0.0,
            window: VecDeque::new(),
            meter: Meter::new(),
            next_meter_update: t + METER_UPDATE_SECONDS,
        }
    }
}
