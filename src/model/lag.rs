//! Lag in seconds: how long the current consumption rate takes to consume the backlog.
//!
//! This is not the time to drain the backlog: new records keep arriving, so draining takes
//! longer unless consumption outpaces arrivals. It is the backlog expressed in seconds of
//! the job's present throughput.

/// Why a source has no lag in seconds.
#[derive(Debug, Clone, PartialEq)]
pub enum LagError {
    /// A backlog, but nothing consumed: the lag is unbounded.
    ZeroRate { backlog: f64 },
    /// No consumption-rate series at all.
    NoRate,
}

/// Seconds to consume `backlog` records at `rate` records/s. A zero backlog is 0 s whatever
/// the rate; a backlog with a zero rate is `zero_rate_seconds` when configured, else an error.
pub fn seconds_to_consume(
    backlog: f64,
    rate: Option<f64>,
    zero_rate_seconds: Option<f64>,
) -> Result<f64, LagError> {
    if backlog <= 0.0 {
        return Ok(0.0);
    }
    match rate {
        Some(r) if r > 0.0 => Ok(backlog / r),
        Some(_) => zero_rate_seconds.ok_or(LagError::ZeroRate { backlog }),
        None => Err(LagError::NoRate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backlog_over_rate() {
        // 90,000 records at 1,500 records/s: 60 s.
        assert_eq!(seconds_to_consume(90_000.0, Some(1_500.0), None), Ok(60.0));
    }

    #[test]
    fn no_backlog_is_zero_seconds_even_without_a_rate() {
        assert_eq!(seconds_to_consume(0.0, Some(0.0), None), Ok(0.0));
        assert_eq!(seconds_to_consume(0.0, None, None), Ok(0.0));
    }

    #[test]
    fn a_stalled_source_is_an_error_unless_a_value_is_configured() {
        assert_eq!(
            seconds_to_consume(1_234.0, Some(0.0), None),
            Err(LagError::ZeroRate { backlog: 1_234.0 })
        );
        assert_eq!(
            seconds_to_consume(1_234.0, Some(0.0), Some(3_600.0)),
            Ok(3_600.0)
        );
        assert_eq!(
            seconds_to_consume(1.0, None, Some(3_600.0)),
            Err(LagError::NoRate)
        );
    }
}
