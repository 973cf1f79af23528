//! The kind's options as the configuration gives them: defaults, ranges, and the forecast's
//! constraints, each error naming its field.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::{Forecast, Method, RequiredTaskManagers};
use crate::model::capacity::Targets;
use crate::signals::kinds::options::{
    duration, from_fields, restart_hold, FieldError, RestartHoldSection,
};
use crate::signals::kinds::SignalKind;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Options {
    restart_hold: Option<RestartHoldSection>,
    window: Option<String>,
    target_utilization: Option<f64>,
    utilization_min: Option<f64>,
    utilization_max: Option<f64>,
    catch_up_duration: Option<String>,
    restart_time: Option<String>,
    backlog_threshold: Option<String>,
    slots_per_task_manager: Option<u32>,
    min_task_managers: Option<u32>,
    max_task_managers: Option<u32>,
    max_parallelism: Option<u32>,
    forecast: Option<ForecastSection>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ForecastSection {
    lead: Option<String>,
    method: Option<Method>,
    season: Option<String>,
}

pub const DEFAULT_WINDOW: Duration = Duration::from_secs(300);

pub(super) fn parse(
    m: serde_yaml::Mapping,
    path: &dyn Fn(&str) -> String,
) -> Result<Arc<dyn SignalKind>, FieldError> {
    let o: Options = from_fields(m, path)?;
    let fraction = |v: Option<f64>, default: f64, field: &str| -> Result<f64, FieldError> {
        match v {
            None => Ok(default),
            Some(x) if x > 0.0 && x <= 1.0 => Ok(x),
            Some(x) => Err((
                path(field),
                format!("expected a fraction in (0, 1], got {x}"),
            )),
        }
    };
    let utilization = fraction(o.target_utilization, 0.7, "targetUtilization")?;
    let utilization_min = match o.utilization_min {
        None => 0.4,
        Some(x) if (0.0..=utilization).contains(&x) => x,
        Some(x) => {
            return Err((
                path("utilizationMin"),
                format!("expected 0 to targetUtilization ({utilization}), got {x}"),
            ))
        }
    };
    let utilization_max = match o.utilization_max {
        None => 1.0,
        Some(x) if x >= utilization => x,
        Some(x) => {
            return Err((
                path("utilizationMax"),
                format!("expected at least targetUtilization ({utilization}), got {x}"),
            ))
        }
    };
    let positive = |v: Option<u32>, field: &str| -> Result<Option<f64>, FieldError> {
        match v {
            Some(0) => Err((path(field), "must be at least 1".into())),
            v => Ok(v.map(f64::from)),
        }
    };
    let min_task_managers = positive(o.min_task_managers, "minTaskManagers")?.unwrap_or(1.0);
    let max_task_managers = positive(o.max_task_managers, "maxTaskManagers")?;
    if max_task_managers.is_some_and(|m| m < min_task_managers) {
        return Err((
            path("maxTaskManagers"),
            "must be at least minTaskManagers".into(),
        ));
    }
    let window = duration(o.window.as_deref(), DEFAULT_WINDOW, "window", path)?;
    let forecast = match o.forecast {
        None => None,
        Some(f) => {
            let lead = duration(
                f.lead.as_deref(),
                Duration::from_secs(120),
                "forecast.lead",
                path,
            )?;
            let season = duration(
                f.season.as_deref(),
                Duration::from_secs(86_400),
                "forecast.season",
                path,
            )?;
            if season <= lead + window {
                return Err((
                    path("forecast.season"),
                    "must be longer than forecast.lead plus window".into(),
                ));
            }
            Some(Forecast {
                lead,
                method: f.method.unwrap_or(Method::Trend),
                season,
            })
        }
    };
    Ok(Arc::new(RequiredTaskManagers {
        hold: restart_hold(o.restart_hold, path)?,
        window,
        targets: Targets {
            utilization,
            utilization_min,
            utilization_max,
            catch_up_seconds: duration(
                o.catch_up_duration.as_deref(),
                Duration::from_secs(600),
                "catchUpDuration",
                path,
            )?
            .as_secs_f64(),
            restart_seconds: duration(
                o.restart_time.as_deref(),
                Duration::from_secs(90),
                "restartTime",
                path,
            )?
            .as_secs_f64(),
            backlog_threshold_seconds: duration(
                o.backlog_threshold.as_deref(),
                Duration::from_secs(300),
                "backlogThreshold",
                path,
            )?
            .as_secs_f64(),
            min_task_managers,
            max_task_managers,
            max_parallelism: positive(o.max_parallelism, "maxParallelism")?,
        },
        slots: positive(o.slots_per_task_manager, "slotsPerTaskManager")?,
        forecast,
    }))
}
