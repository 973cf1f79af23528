//! The example HPAs against the signals the server serves, and the shipped server configuration.

use crate::*;

// ---------------------------------------------------------------------------------------------
// HPAs against the signals the server serves.
// ---------------------------------------------------------------------------------------------

pub(crate) fn server_config() -> Config {
    let path = repo().join("manifests/base/flink-hpa-bridge.yaml");
    Config::from_yaml(&read(&path), &rel(&path)).unwrap_or_else(|e| panic!("{e}"))
}

pub(crate) fn hpa_examples() -> Vec<(String, HorizontalPodAutoscaler)> {
    files_under(&repo().join("hpa-examples"), &["yaml", "yml"])
        .into_iter()
        .flat_map(|path| {
            let origin = rel(&path);
            yaml_documents(&read(&path), &origin)
                .into_iter()
                .map(move |d| (origin.clone(), strict(&d).unwrap_or_else(|e| panic!("{e}"))))
        })
        .collect()
}

/// Selector keys each signal reads (README, "The signals"); a selector uses the keys of one
/// alternative. Another key would still become a valid PromQL matcher, and match no series.
pub(crate) fn selector_keys(kind: SignalType) -> Option<&'static [&'static [&'static str]]> {
    match kind {
        SignalType::FlinkBusyTimeMax | SignalType::FlinkTaskManagerBusyTime => {
            Some(&[&["job_name", "task_name"]])
        }
        SignalType::FlinkKafkaLagRecords | SignalType::FlinkKafkaLagSeconds => {
            Some(&[&["job_name"], &["consumergroup", "topic"]])
        }
        SignalType::PravegaStreamSegments => Some(&[&["scope", "stream"]]),
        _ => None,
    }
}

/// Checks a metric selector as the server reads it for `spec`: keys the signal knows, and a
/// translation into PromQL matchers that the server accepts.
pub(crate) fn check_series_selector(spec: &SignalSpec, selector: &str) -> Result<(), String> {
    let parsed = Selector::parse(selector).map_err(|e| e.to_string())?;
    let keys: BTreeSet<&str> = parsed
        .requirements()
        .iter()
        .map(|r| r.key.as_str())
        .collect();
    if let Some(alternatives) = selector_keys(spec.kind) {
        if !alternatives
            .iter()
            .any(|a| keys.iter().all(|k| a.contains(k)))
        {
            return Err(format!(
                "keys {keys:?} are not among those {} reads: {alternatives:?}",
                spec.name
            ));
        }
    }
    let namespace_label = [spec.namespace_label.as_str()];
    let translation = Translation {
        rename: Some(&spec.labels),
        flink_values: spec.flink_label_values,
        reserved: if spec.namespaced {
            &namespace_label
        } else {
            &[]
        },
    };
    translation
        .matchers(&parsed)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// A rescale's restart, measured on Flink 1.20.5 with the manifests' heartbeat settings (10 to
/// 30 s), before the scheduler's resource-stabilization-timeout is added.
pub(crate) const RESTART_SECONDS: u64 = 30;
/// The window of Flink's MeterView rates (numRecords*PerSecond): for this long after a restart
/// they read low, and with them the lag in seconds high.
pub(crate) const FLINK_RATE_WINDOW_SECONDS: u64 = 60;

/// The time after a rescale before the Flink signals mean anything again: the restart, the
/// scheduler's wait for more TaskManagers, Flink's rate window and one scrape.
pub(crate) fn restart_and_warm_up_seconds(conf: &BTreeMap<String, String>) -> u64 {
    let stabilization = conf
        .get("jobmanager.adaptive-scheduler.resource-stabilization-timeout")
        .map_or(0, |v| flink_millis(v) / 1000);
    let scrape: Vec<Value> = serde_yaml::from_str(&read(
        &repo().join("manifests/prometheus/scrape-configs.yaml"),
    ))
    .expect("scrape-configs.yaml");
    let interval = scrape
        .iter()
        .find(|j| j["job_name"] == "flink-pods")
        .and_then(|j| j["scrape_interval"].as_str())
        .map_or(60_000, flink_millis)
        / 1000;
    RESTART_SECONDS + stabilization + FLINK_RATE_WINDOW_SECONDS + interval
}

/// An HPA's scale-up against Reactive Mode: on a signal that a restart disturbs (every Flink
/// signal; a Pravega segment count is not), a rise must outlast a restart and its warm-up, and
/// no scale-up step may come sooner than Flink's scaling-interval.min lets it act. A signal
/// whose server holds its last answer unchanged through the restart and a warm-up at least as
/// long needs no window of the HPA for it: what the HPA reads then was computed before.
pub(crate) fn scale_up_errors(
    what: &str,
    up: &k8s_openapi::api::autoscaling::v2::HPAScalingRules,
    metrics: &[k8s_openapi::api::autoscaling::v2::MetricSpec],
    conf: &BTreeMap<String, String>,
    cfg: &Config,
) -> Vec<String> {
    let mut errors = Vec::new();
    let warm_up = restart_and_warm_up_seconds(conf);
    let held = |name: &str| {
        cfg.signals.iter().any(|s| {
            s.name == name
                && s.handler.hold().is_some_and(|h| {
                    h.scaling == flink_hpa_bridge::model::hold::HoldScaling::Absolute
                        && h.timing.warm_up.as_secs() >= warm_up
                })
        })
    };
    let disturbed = metrics.iter().any(|m| {
        let name = m
            .external
            .as_ref()
            .map(|e| e.metric.name.as_str())
            .or(m.pods.as_ref().map(|p| p.metric.name.as_str()));
        name.is_some_and(|n| n != "pravega_stream_segments" && !held(n))
    });
    let window = u64::try_from(up.stabilization_window_seconds.unwrap_or(0)).unwrap_or(0);
    if disturbed && window < warm_up {
        errors.push(format!(
            "{what}: scale-up window {window} s is shorter than a restart and its warm-up ({warm_up} s)"
        ));
    }
    let cooldown = conf
        .get("jobmanager.adaptive-scheduler.scaling-interval.min")
        .map_or(30_000, |v| flink_millis(v))
        / 1000;
    for p in up.policies.iter().flatten() {
        if u64::try_from(p.period_seconds).unwrap_or(0) < cooldown {
            errors.push(format!(
                "{what}: a scale-up policy period of {} s is shorter than Flink's scaling-interval.min ({cooldown} s)",
                p.period_seconds
            ));
        }
    }
    errors
}

/// One metric of an example HPA against the signal the server serves under its name: the API
/// and resource it is served on, its target, and the selectors the server would receive.
fn metric_errors(
    what: &str,
    cfg: &Config,
    m: &k8s_openapi::api::autoscaling::v2::MetricSpec,
    deployment: &Deployment,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut errors = Vec::new();
    let (source, api) = match m.type_.as_str() {
        "External" => (
            m.external.as_ref().map(|e| (&e.metric, &e.target)),
            Api::External,
        ),
        "Pods" => (m.pods.as_ref().map(|p| (&p.metric, &p.target)), Api::Custom),
        other => {
            errors.push(format!(
                "{what}: metric type {other} is not served by flink-hpa-bridge"
            ));
            return errors;
        }
    };
    let Some((metric, target)) = source else {
        errors.push(format!("{what}: {} metric without its source", m.type_));
        return errors;
    };
    let what = format!("{what}: {}", metric.name);
    let Some(signal) = cfg.signals.iter().find(|s| s.name == metric.name) else {
        errors.push(format!("{what}: not a metric the configuration serves"));
        return errors;
    };
    if signal.api() != api || (api == Api::Custom && signal.resource() != "pods") {
        errors.push(format!(
            "{what}: served as {:?} {}, not as this HPA asks",
            signal.api(),
            signal.resource()
        ));
        return errors;
    }
    used.insert(metric.name.clone());
    let quantity = match (target.type_.as_str(), api) {
        ("Value", Api::External) => target.value.as_ref(),
        ("AverageValue", _) => target.average_value.as_ref(),
        (t, _) => {
            errors.push(format!("{what}: target type {t} does not apply"));
            return errors;
        }
    };
    if quantity.is_none_or(|q| parse_milli(&q.0).is_none_or(|v| v <= 0)) {
        errors.push(format!("{what}: the target is not a positive quantity"));
    }
    let selector = metric
        .selector
        .as_ref()
        .map(selector_string)
        .unwrap_or_default();
    if let Err(e) = check_series_selector(signal, &selector) {
        errors.push(format!("{what}: selector {selector:?}: {e}"));
    }
    if api == Api::Custom {
        // The HPA sends the Deployment's pod selector. With pods.source: labels the
        // server matches it against series labels, which the scrape config's labelmap
        // copies from the pods: the keys must survive as Prometheus label names.
        let pods = selector_string(&deployment.spec.selector);
        let parsed = Selector::parse(&pods).expect("pod selector");
        let reserved = [signal.namespace_label.as_str(), signal.object_label()];
        let t = Translation {
            rename: Some(&signal.labels),
            flink_values: false,
            reserved: &reserved,
        };
        if let Err(e) = t.matchers(&parsed) {
            errors.push(format!("{what}: pod selector {pods:?}: {e}"));
        }
    }
    errors
}

#[test]
fn hpa_examples_scale_the_taskmanagers_on_metrics_the_server_serves() {
    let cfg = server_config();
    let (flink, _) = inventory(&repo().join("manifests/flink"));
    let conf = flink_config();
    let setting = |k: &str| -> i64 {
        conf.get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("manifests/flink/config.yaml: {k} missing or not a number"))
    };
    // TaskManagers beyond this get no slot's worth of work in Reactive Mode.
    let useful_taskmanagers =
        setting("pipeline.max-parallelism") / setting("taskmanager.numberOfTaskSlots");
    let mut errors = Vec::new();
    let mut used = BTreeSet::new();
    let mut names = BTreeSet::new();
    let mut combined = false;
    let hpas = hpa_examples();
    for (file, hpa) in &hpas {
        let what = format!("{file}: HPA {}", name(&hpa.metadata));
        let namespace = ns(&hpa.metadata);
        if !names.insert((namespace.clone(), name(&hpa.metadata))) {
            errors.push(format!("{what}: name used twice"));
        }
        let spec = &hpa.spec;
        let target = &spec.scale_target_ref;
        let deployment = (target.kind == "Deployment"
            && target.api_version.as_deref() == Some("apps/v1"))
        .then(|| flink.deployment(&namespace, &target.name))
        .flatten();
        let Some(deployment) = deployment else {
            errors.push(format!(
                "{what}: scales {} {namespace}/{}, which manifests/flink does not define",
                target.kind, target.name
            ));
            continue;
        };
        if !deployment
            .spec
            .template
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .any(|c| {
                c.args
                    .as_ref()
                    .is_some_and(|a| a.first().map(String::as_str) == Some("taskmanager"))
            })
        {
            errors.push(format!("{what}: {} does not run TaskManagers", target.name));
        }
        let min = spec.min_replicas.unwrap_or(1);
        if min < 1 || min > spec.max_replicas || i64::from(spec.max_replicas) > useful_taskmanagers
        {
            errors.push(format!(
                "{what}: replicas {min}..{} must lie within 1..{useful_taskmanagers} (max parallelism / slots)",
                spec.max_replicas
            ));
        }
        // Every rescale restarts the job: the defaults (scale down after 300 s by up to 100 %
        // of the pods every 15 s, scale up by 4 pods or 100 % every 15 s) would restart it far
        // too often.
        let behavior = spec.behavior.clone().unwrap_or_default();
        let down = behavior.scale_down.unwrap_or_default();
        let up = behavior.scale_up.unwrap_or_default();
        if down.stabilization_window_seconds.unwrap_or(0) < 300
            || down.policies.as_ref().is_none_or(|p| p.is_empty())
            || up.policies.as_ref().is_none_or(|p| p.is_empty())
        {
            errors.push(format!("{what}: behavior needs rate-limit policies both ways and a scale-down window of at least 300 s"));
        }
        let metrics = spec.metrics.clone().unwrap_or_default();
        errors.extend(scale_up_errors(&what, &up, &metrics, &conf, &cfg));
        combined |= metrics.len() > 1;
        if metrics.is_empty() {
            errors.push(format!("{what}: no metrics"));
        }
        for m in &metrics {
            errors.extend(metric_errors(&what, &cfg, m, deployment, &mut used));
        }
    }
    for s in &cfg.signals {
        if !used.contains(&s.name) {
            errors.push(format!("no example HPA uses {}", s.name));
        }
    }
    if !combined {
        errors.push("no example HPA combines several metrics".into());
    }
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));

    // The selector check rejects what the server would not find or accept.
    let busy = cfg
        .signals
        .iter()
        .find(|s| s.name == "flink_busy_time_max")
        .expect("built-in");
    assert!(check_series_selector(busy, "job_name=orders-enrich").is_ok());
    assert!(check_series_selector(busy, "jobname=orders-enrich").is_err());
    assert!(check_series_selector(busy, "namespace=flink").is_err());

    // The behavior check refuses the HPA defaults' quick scale-up on a Flink signal (no window,
    // a step every 15 s), and accepts no window on a segment count, which restarts do not move.
    let metric = |name: &str| {
        serde_json::from_value::<k8s_openapi::api::autoscaling::v2::MetricSpec>(json!({
            "type": "External",
            "external": {"metric": {"name": name}, "target": {"type": "Value", "value": "1"}},
        }))
        .expect("metric")
    };
    let quick: k8s_openapi::api::autoscaling::v2::HPAScalingRules = serde_json::from_value(
        json!({"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15}]}),
    )
    .expect("rules");
    let conf = flink_config();
    assert_eq!(
        scale_up_errors("t", &quick, &[metric("flink_busy_time_max")], &conf, &cfg).len(),
        2
    );
    // Required TaskManagers are held unchanged for their 5 min window after a restart: no
    // window needed, only the period.
    assert_eq!(
        scale_up_errors(
            "t",
            &quick,
            &[metric("flink_required_taskmanagers")],
            &conf,
            &cfg
        )
        .len(),
        1
    );
    let unhurried: k8s_openapi::api::autoscaling::v2::HPAScalingRules = serde_json::from_value(
        json!({"stabilizationWindowSeconds": 0, "policies": [{"type": "Pods", "value": 4, "periodSeconds": 60}]}),
    )
    .expect("rules");
    assert!(scale_up_errors(
        "t",
        &unhurried,
        &[metric("pravega_stream_segments")],
        &conf,
        &cfg
    )
    .is_empty());
}

#[test]
fn server_configuration_passes_check_config() {
    let path = repo().join("manifests/base/flink-hpa-bridge.yaml");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&path)
        .output()
        .expect("run check-config");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(": OK"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let served: BTreeSet<String> = server_config()
        .signals
        .into_iter()
        .map(|s| s.name)
        .collect();
    let builtin: BTreeSet<String> = Config::default()
        .signals
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        served.is_superset(&builtin),
        "the shipped configuration drops built-in signals"
    );

    // A copy with a misspelt field is refused, naming it: the check above can fail.
    let dir = tempfile::tempdir().expect("tempdir");
    let broken = dir.path().join("broken.yaml");
    std::fs::write(
        &broken,
        read(&path).replace("  timeout: 10s", "  timout: 10s"),
    )
    .expect("write");
    let out = Command::new(BIN)
        .arg("check-config")
        .arg(&broken)
        .output()
        .expect("run check-config");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("timout"), "{all}");
}
