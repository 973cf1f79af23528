use std::sync::Arc;

use super::parse::parse;
use super::*;
use crate::model::hold::HoldScaling;
use crate::signals::kinds::options::FieldError;

fn parsed(yaml: &str) -> Result<Arc<dyn SignalKind>, FieldError> {
    let m: serde_yaml::Mapping = serde_yaml::from_str(yaml).unwrap_or_default();
    parse(m, &|f| format!("signals[0].{f}"))
}

#[test]
fn options_have_the_documented_defaults() {
    let k = parsed("{}").unwrap();
    let o = k.options();
    assert_eq!(o["window"], "5m");
    assert_eq!(o["targetUtilization"], 0.7);
    assert_eq!(o["utilizationMin"], 0.4);
    assert_eq!(o["utilizationMax"], 1.0);
    assert_eq!(o["catchUpDuration"], "10m");
    assert_eq!(o["restartTime"], "1m 30s");
    assert_eq!(o["backlogThreshold"], "5m");
    assert_eq!(o["minTaskManagers"], 1.0);
    assert!(o["forecast"].is_null());
    // The warm-up covers the window: a 5m window is never read across a restart.
    let hold = k.hold().unwrap();
    assert_eq!(hold.timing.warm_up, Duration::from_secs(300));
    assert_eq!(hold.scaling, HoldScaling::Absolute);
}

#[test]
fn bad_options_name_their_field() {
    for (yaml, field, text) in [
        ("{targetUtilization: 1.5}", "targetUtilization", "fraction"),
        (
            "{utilizationMin: 0.8}",
            "utilizationMin",
            "targetUtilization",
        ),
        (
            "{utilizationMax: 0.5}",
            "utilizationMax",
            "targetUtilization",
        ),
        ("{minTaskManagers: 0}", "minTaskManagers", "at least 1"),
        (
            "{minTaskManagers: 4, maxTaskManagers: 2}",
            "maxTaskManagers",
            "minTaskManagers",
        ),
        (
            "{forecast: {lead: 2m, season: 5m}}",
            "forecast.season",
            "longer",
        ),
    ] {
        let (path, msg) = parsed(yaml).unwrap_err();
        assert_eq!(path, format!("signals[0].{field}"), "{yaml}");
        assert!(msg.contains(text), "{yaml}: {msg}");
    }
}

#[test]
fn a_forecast_adds_its_query_parts() {
    let k = parsed("{forecast: {lead: 2m, method: seasonal, season: 1h}}").unwrap();
    let parts = k.parts(Source::Flink, &[], "namespace, job_name");
    let forecast = parts.iter().find(|p| p.name == FORECAST).unwrap();
    assert!(
        forecast.expr.contains("predict_linear("),
        "{}",
        forecast.expr
    );
    assert!(forecast.expr.contains("[5m], 120)"), "{}", forecast.expr);
    let seasonal = parts.iter().find(|p| p.name == SEASONAL).unwrap();
    assert!(
        seasonal.expr.contains("[5m] offset 58m"),
        "{}",
        seasonal.expr
    );
    let plain = parsed("{}").unwrap();
    assert!(plain
        .parts(Source::Flink, &[], "job_name")
        .iter()
        .all(|p| p.name != FORECAST && p.name != SEASONAL));
}
