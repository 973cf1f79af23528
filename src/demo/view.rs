//! The demo's terminal view: one line per HPA sync, in the units a Flink operator reads
//! (records/s, ms/s, seconds, TaskManagers), not as Kubernetes quantities.

use super::reader::Read;
use crate::hpa::controller::Reading;
use crate::sim::Row;

pub const HEADER: &str =
    "  time  load rec/s  capacity   backlog      lag  TaskManagers  what the HPA read (age)              why";

/// `1234567.8` → `1,234,568`.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return "-".into();
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

/// Minutes and seconds: `2:05`, `61:40`.
pub fn clock(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    format!("{}:{:02}", s / 60, s % 60)
}

fn seconds(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} s")
    } else if v < 600.0 {
        format!("{v:.0} s")
    } else {
        format!("{:.0} min", v / 60.0)
    }
}

/// The unit a built-in signal's value is in, by its name.
pub fn unit_of(metric: &str) -> &'static str {
    if metric.contains("busy_time") {
        " ms/s"
    } else if metric.ends_with("lag_seconds") {
        " s"
    } else if metric.ends_with("lag_records") {
        " records"
    } else if metric.ends_with("lag_growth") {
        " records/s"
    } else if metric.ends_with("required_taskmanagers") {
        " TaskManagers"
    } else if metric.ends_with("segments") {
        " segments"
    } else {
        ""
    }
}

fn value(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        thousands(v)
    } else {
        format!("{v:.2}")
    }
}

/// One metric read: `flink_busy_time_max 812 ms/s (3 s)`, a Pods metric as its average.
pub fn reading(metric: &str, read: &Read) -> String {
    let age = read
        .age_seconds
        .map(|a| format!(" ({a:.0} s)"))
        .unwrap_or_default();
    match &read.reading {
        Ok(Reading::Value(v)) => {
            let unit = match unit_of(metric) {
                " TaskManagers" if *v == 1.0 => " TaskManager",
                u => u,
            };
            format!("{metric} {}{unit}{age}", value(*v))
        }
        Ok(Reading::PerPod(pods)) => {
            let avg = pods.iter().map(|p| p.1).sum::<f64>() / pods.len().max(1) as f64;
            format!(
                "{metric} {}{} avg of {} pods{age}",
                value(avg),
                unit_of(metric),
                pods.len()
            )
        }
        Err(e) => format!("{metric}: no value ({})", shorten(e, 90)),
    }
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}

/// Why the count is what it is, from the controller's conditions in `row.reason`.
pub fn why(row: &Row) -> String {
    let now = row.task_managers as i32;
    let parts: Vec<&str> = row.reason.split("; ").collect();
    if parts.len() != 3 {
        // A blocked sync: the reason is the controller's error text.
        return format!("kept: {}", shorten(&row.reason, 70));
    }
    let (able, limited) = (parts[1], parts[2]);
    let limit = match limited {
        "DesiredWithinRange" => String::new(),
        l => format!(" ({l})"),
    };
    if row.desired_replicas > now {
        format!("scale up{limit}")
    } else if row.desired_replicas < now {
        format!("scale down{limit}")
    } else {
        match able {
            "ScaleUpStabilized" => "waiting: scale-up window".into(),
            "ScaleDownStabilized" => "waiting: scale-down window".into(),
            "ReadyForNewScale" | "SucceededRescale" => format!("steady{limit}"),
            other => format!("{other}{limit}"),
        }
    }
}

/// The line for one sync.
pub fn line(t: f64, row: &Row, names: &[String], reads: &[Read]) -> String {
    let job = if row.capacity > 0.0 {
        format!("{:>9}", thousands(row.capacity))
    } else {
        "restarting".to_string()
    };
    let tms = format!("{} → {}", row.task_managers, row.desired_replicas);
    let read = names
        .iter()
        .zip(reads)
        .map(|(n, r)| reading(n, r))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "{:>6}  {:>10}  {job:>9}  {:>8}  {:>7}  {tms:^12}  {read:<36}  {}",
        clock(t),
        thousands(row.arrival_rate),
        thousands(row.backlog),
        seconds(row.lag_seconds),
        why(row)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(tms: usize, desired: i32, reason: &str) -> Row {
        Row {
            t: 0.0,
            arrival_rate: 2500.4,
            capacity: 2000.0,
            task_managers: tms,
            registered_task_managers: tms,
            parallelism: tms * 2,
            backlog: 12345.6,
            lag_seconds: 4.94,
            readings: vec![],
            desired_replicas: desired,
            reason: reason.into(),
        }
    }

    #[test]
    fn numbers_read_like_a_person_writes_them() {
        assert_eq!(thousands(1234567.8), "1,234,568");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(-1500.0), "-1,500");
        assert_eq!(thousands(f64::NAN), "-");
        assert_eq!(clock(125.0), "2:05");
        assert_eq!(clock(3700.0), "61:40");
    }

    #[test]
    fn readings_carry_units_and_age() {
        let r = Read {
            reading: Ok(Reading::Value(812.0)),
            age_seconds: Some(3.2),
        };
        assert_eq!(
            reading("flink_busy_time_max", &r),
            "flink_busy_time_max 812 ms/s (3 s)"
        );
        let one = Read {
            reading: Ok(Reading::Value(1.0)),
            age_seconds: Some(0.0),
        };
        assert_eq!(
            reading("flink_required_taskmanagers", &one),
            "flink_required_taskmanagers 1 TaskManager (0 s)"
        );
        let p = Read {
            reading: Ok(Reading::PerPod(vec![
                ("a".into(), 600.0),
                ("b".into(), 800.0),
            ])),
            age_seconds: None,
        };
        assert_eq!(
            reading("flink_taskmanager_busy_time", &p),
            "flink_taskmanager_busy_time 700 ms/s avg of 2 pods"
        );
        let e = Read {
            reading: Err("503 ServiceUnavailable: restarting".into()),
            age_seconds: None,
        };
        assert_eq!(
            reading("flink_required_taskmanagers", &e),
            "flink_required_taskmanagers: no value (503 ServiceUnavailable: restarting)"
        );
    }

    #[test]
    fn why_names_the_direction_and_the_rule_that_held_it() {
        assert_eq!(
            why(&row(1, 3, "m; SucceededRescale; ScaleUpLimit")),
            "scale up (ScaleUpLimit)"
        );
        assert_eq!(
            why(&row(3, 3, "m; ScaleDownStabilized; DesiredWithinRange")),
            "waiting: scale-down window"
        );
        assert_eq!(
            why(&row(3, 2, "m; SucceededRescale; DesiredWithinRange")),
            "scale down"
        );
        assert!(why(&row(3, 3, "invalid metrics (1 invalid out of 1)")).starts_with("kept: "));
    }

    #[test]
    fn a_line_shows_load_capacity_backlog_and_the_decision() {
        let l = line(
            75.0,
            &row(1, 2, "m; SucceededRescale; DesiredWithinRange"),
            &["flink_required_taskmanagers".into()],
            &[Read {
                reading: Ok(Reading::Value(2.0)),
                age_seconds: Some(4.0),
            }],
        );
        for part in [
            "1:15",
            "2,500",
            "2,000",
            "12,346",
            "4.9 s",
            "1 → 2",
            "flink_required_taskmanagers 2 TaskManagers (4 s)",
            "scale up",
        ] {
            assert!(l.contains(part), "{part:?} not in {l:?}");
        }
    }
}
