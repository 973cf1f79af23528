//! Arrival-rate workloads (records per second as a function of seconds) and the oracle.

use std::f64::consts::PI;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum WorkloadError {
    #[error("workload CSV line {line}: {message}")]
    Csv { line: usize, message: String },
    #[error("workload CSV has no data rows")]
    Empty,
    #[error("unknown workload {0:?} (sine, step, spike or a CSV file)")]
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Workload {
    /// `peak/2 × (1 − cos(2πt/period))`: 0 at t = 0, `peak` at half a period.
    Sine { period: f64, peak: f64 },
    /// `before` until `at`, then `after`.
    Step { before: f64, after: f64, at: f64 },
    /// `base`, with `peak` during `[at, at + duration)`.
    Spike {
        base: f64,
        peak: f64,
        at: f64,
        duration: f64,
    },
    /// Points `(seconds, rate)` sorted by time; linear in between, held outside.
    Points(Vec<(f64, f64)>),
}

/// The built-in workloads by name. `period` and `peak` shape each: the sine of the seed
/// blog post (0 → `peak` → 0 over `period`); a step from `peak/4` to `peak` at `period/4`; a
/// spike to `peak` over a `peak/4` base during `period/12` starting at `period/4`.
pub fn workload(kind: &str, period: f64, peak: f64) -> Result<Workload, WorkloadError> {
    match kind {
        "sine" => Ok(Workload::Sine { period, peak }),
        "step" => Ok(Workload::Step {
            before: peak / 4.0,
            after: peak,
            at: period / 4.0,
        }),
        "spike" => Ok(Workload::Spike {
            base: peak / 4.0,
            peak,
            at: period / 4.0,
            duration: period / 12.0,
        }),
        other => Err(WorkloadError::Unknown(other.to_string())),
    }
}

/// The seed workload: a 1 h sine between 0 and 6,000 records/s.
pub fn seed_sine() -> Workload {
    Workload::Sine {
        period: 3600.0,
        peak: 6000.0,
    }
}

impl Workload {
    pub fn rate(&self, t: f64) -> f64 {
        match self {
            Workload::Sine { period, peak } => {
                (peak / 2.0 * (1.0 - (2.0 * PI * t / period.max(1e-9)).cos())).max(0.0)
            }
            Workload::Step { before, after, at } => {
                if t < *at {
                    *before
                } else {
                    *after
                }
            }
            Workload::Spike {
                base,
                peak,
                at,
                duration,
            } => {
                if t >= *at && t < at + duration {
                    *peak
                } else {
                    *base
                }
            }
            Workload::Points(p) => {
                let Some(first) = p.first() else {
                    return 0.0;
                };
                if t <= first.0 {
                    return first.1;
                }
                for w in p.windows(2) {
                    let ((t0, r0), (t1, r1)) = (w[0], w[1]);
                    if t <= t1 {
                        if t1 <= t0 {
                            return r1;
                        }
                        return r0 + (r1 - r0) * (t - t0) / (t1 - t0);
                    }
                }
                p.last().map(|x| x.1).unwrap_or(0.0)
            }
        }
    }

    /// Reads `seconds,records_per_second` lines; a first line that is not numeric is a header;
    /// `#` starts a comment.
    pub fn from_csv(text: &str) -> Result<Self, WorkloadError> {
        let mut points = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut cols = line.split(',').map(str::trim);
            let (a, b) = (cols.next().unwrap_or(""), cols.next().unwrap_or(""));
            let (Ok(t), Ok(r)) = (a.parse::<f64>(), b.parse::<f64>()) else {
                if points.is_empty() && a.parse::<f64>().is_err() {
                    continue; // header
                }
                return Err(WorkloadError::Csv {
                    line: i + 1,
                    message: format!("expected `seconds,rate`, got {line:?}"),
                });
            };
            if !t.is_finite() || !r.is_finite() || r < 0.0 {
                return Err(WorkloadError::Csv {
                    line: i + 1,
                    message: "time and rate must be finite, rate ≥ 0".into(),
                });
            }
            if let Some(&(prev, _)) = points.last() {
                if t < prev {
                    return Err(WorkloadError::Csv {
                        line: i + 1,
                        message: "times must not decrease".into(),
                    });
                }
            }
            points.push((t, r));
        }
        if points.is_empty() {
            return Err(WorkloadError::Empty);
        }
        Ok(Workload::Points(points))
    }
}

/// The least TaskManagers that keep up with `rate` with no restart cost: at least one, since a
/// job needs one to run at all.
pub fn oracle_task_managers(rate: f64, capacity_per_task_manager: f64) -> u32 {
    ((rate / capacity_per_task_manager).ceil().max(1.0)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sine_runs_from_zero_to_peak_and_back() {
        let w = seed_sine();
        assert_eq!(w.rate(0.0), 0.0);
        assert!((w.rate(1800.0) - 6000.0).abs() < 1e-9);
        // Quarter period: 3000 × (1 − cos(π/2)) = 3000.
        assert!((w.rate(900.0) - 3000.0).abs() < 1e-9);
        assert!(w.rate(3600.0).abs() < 1e-9);
    }

    #[test]
    fn named_workloads() {
        let s = workload("step", 400.0, 4000.0).unwrap();
        assert_eq!((s.rate(99.0), s.rate(100.0)), (1000.0, 4000.0));
        let p = workload("spike", 1200.0, 4000.0).unwrap();
        assert_eq!(
            (p.rate(299.0), p.rate(300.0), p.rate(399.0), p.rate(400.0)),
            (1000.0, 4000.0, 4000.0, 1000.0)
        );
        assert!(workload("saw", 1.0, 1.0).is_err());
    }

    #[test]
    fn csv_interpolates_and_holds() {
        let w = Workload::from_csv("seconds,rate\n0,1000\n60,4000 # ramp\n\n120,4000\n").unwrap();
        assert_eq!(w.rate(-5.0), 1000.0);
        assert_eq!(w.rate(30.0), 2500.0);
        assert_eq!(w.rate(500.0), 4000.0);
        assert!(matches!(
            Workload::from_csv("0,1\n10,x\n"),
            Err(WorkloadError::Csv { line: 2, .. })
        ));
        assert!(Workload::from_csv("10,1\n5,1\n").is_err());
        assert_eq!(Workload::from_csv("t,r\n"), Err(WorkloadError::Empty));
    }

    #[test]
    fn oracle_is_ceil_of_load_over_capacity_at_least_one() {
        assert_eq!(oracle_task_managers(0.0, 1000.0), 1);
        assert_eq!(oracle_task_managers(1000.0, 1000.0), 1);
        assert_eq!(oracle_task_managers(1000.5, 1000.0), 2);
        assert_eq!(oracle_task_managers(6000.0, 1000.0), 6);
    }
}
