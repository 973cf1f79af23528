//! Monitoring the server itself: ServiceMonitor, /metrics RBAC and alerts.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Monitoring the server itself.
// ---------------------------------------------------------------------------------------------

/// Runs promtool with `args` in `dir`, failing with its output.
pub(crate) fn promtool(dir: &Path, args: &[&str]) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ServiceMonitor reaches the port of the server's Service, and Prometheus' ServiceAccount
/// may read the non-resource path the server authorizes its /metrics as.
pub(crate) fn scrape_errors(server: &Inventory, monitoring: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
    for sm in &monitoring.service_monitors {
        let what = format!("ServiceMonitor {}", name(&sm.metadata));
        let namespaces = sm
            .spec
            .namespace_selector
            .as_ref()
            .map(|n| n.match_names.clone())
            .unwrap_or_else(|| vec![ns(&sm.metadata)]);
        let services: Vec<&Service> = server
            .services
            .iter()
            .filter(|s| {
                namespaces.contains(&ns(&s.metadata))
                    && selects(&sm.spec.selector, &labels_of(&Some(s.metadata.clone())))
            })
            .collect();
        if services.is_empty() {
            errors.push(format!("{what}: selects no Service of the server"));
        }
        for e in &sm.spec.endpoints {
            let named = services.iter().all(|s| {
                s.spec
                    .iter()
                    .flat_map(|s| s.ports.iter().flatten())
                    .any(|p| p.name.as_deref() == Some(e.port.as_str()))
            });
            if !named
                || e.scheme.as_deref() != Some("https")
                || e.path.as_deref() != Some("/metrics")
            {
                errors.push(format!(
                    "{what}: endpoint {} must be https /metrics on a named Service port",
                    e.port
                ));
            }
        }
    }
    let may_scrape = monitoring.cluster_role_bindings.iter().any(|b| {
        b.subjects
            .iter()
            .flatten()
            .any(|s| s.kind == "ServiceAccount")
            && monitoring
                .cluster_roles
                .iter()
                .filter(|r| name(&r.metadata) == b.role_ref.name)
                .flat_map(|r| r.rules.iter().flatten())
                .any(|r| {
                    r.non_resource_urls
                        .iter()
                        .flatten()
                        .any(|u| u == "/metrics")
                        && r.verbs.iter().any(|v| v == "get")
                })
    });
    if !may_scrape {
        errors.push("no ServiceAccount is granted get on the non-resource URL /metrics".into());
    }
    errors
}

#[test]
fn monitoring_scrapes_the_server_and_alerts_on_the_metrics_it_exposes() {
    let dir = repo().join("manifests/monitoring");
    let (monitoring, _) = inventory(&dir);
    let (server, _) = inventory(&repo().join("manifests/overlays/default"));
    let errors = scrape_errors(&server, &monitoring);
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));
    // Without the binding, or with the ServiceMonitor on a port the Service lacks, the check
    // says so.
    let (mut unbound, _) = inventory(&dir);
    unbound.cluster_role_bindings.clear();
    unbound.service_monitors[0].spec.endpoints[0].port = "metrics".into();
    assert_eq!(scrape_errors(&server, &unbound).len(), 2);

    // The alerts read the server's own metrics and the scrape job's `up`, whose job label is
    // the Service's name under a ServiceMonitor and the job name of the plain scrape job.
    let [rule] = &monitoring.prometheus_rules[..] else {
        panic!("manifests/monitoring: one PrometheusRule expected");
    };
    let exprs: Vec<&str> = rule
        .spec
        .groups
        .iter()
        .flat_map(|g| &g.rules)
        .map(|r| r.expr.as_str())
        .collect();
    let plain: Vec<Value> =
        serde_yaml::from_str(&read(&dir.join("scrape-config.yaml"))).expect("scrape-config.yaml");
    let service = server
        .services
        .iter()
        .find(|s| name(&s.metadata) == "flink-hpa-bridge")
        .expect("the server's Service");
    let job = format!("up{{job=\"{}\"}}", name(&service.metadata));
    assert!(exprs.iter().any(|e| e.contains(&job)), "no alert on {job}");
    assert_eq!(plain[0]["job_name"], json!(name(&service.metadata)));
    for needed in [
        "flink_hpa_bridge_prometheus_up",
        "flink_hpa_bridge_prometheus_queries_total",
        "flink_hpa_bridge_served_value_age_seconds",
    ] {
        assert!(
            exprs.iter().any(|e| e.contains(needed)),
            "no alert on {needed}"
        );
    }

    if !command_works("promtool", &["--version"]) {
        eprintln!("promtool not installed: alert rules not checked");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        tmp.path().join("rules.yaml"),
        serde_yaml::to_string(&rule.spec).expect("yaml"),
    )
    .expect("write");
    promtool(tmp.path(), &["check", "rules", "rules.yaml"]);
    // The alerts fire on the series they are meant for, and not on healthy ones. promtool
    // compares annotations too; the unit tests check labels, so the rules go without them.
    let mut bare: Value = serde_json::to_value(&rule.spec).expect("rules");
    for g in bare["groups"].as_array_mut().expect("groups") {
        for r in g["rules"].as_array_mut().expect("rules") {
            r.as_object_mut().expect("rule").remove("annotations");
        }
    }
    std::fs::write(
        tmp.path().join("rules.yaml"),
        serde_yaml::to_string(&bare).expect("yaml"),
    )
    .expect("write");
    std::fs::write(tmp.path().join("tests.yaml"), ALERT_TESTS).expect("write");
    promtool(tmp.path(), &["test", "rules", "tests.yaml"]);

    // Last, as it names the metric that goes missing when the server renames one.
    let mentioned = regex::Regex::new(r"\b(flink_hpa_bridge_[a-z_]+)").expect("regex");
    for e in &exprs {
        for m in mentioned.captures_iter(e) {
            assert!(
                served_by_the_server(&m[1]),
                "alert expression {e:?}: the server exposes no {}",
                &m[1]
            );
        }
    }
}

/// promtool unit tests of the alerts: series as the server exposes them, and the alerts
/// expected (none for the healthy series).
pub(crate) const ALERT_TESTS: &str = r#"
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'flink_hpa_bridge_prometheus_up{namespace="flink-hpa-bridge",pod="a"}'
        values: '1 1 0x10'
      - series: 'flink_hpa_bridge_prometheus_up{namespace="flink-hpa-bridge",pod="b"}'
        values: '1x12'
      - series: 'flink_hpa_bridge_prometheus_queries_total{namespace="flink-hpa-bridge",signal="flink_busy_time_max",outcome="ok"}'
        values: '0+8x40'
      - series: 'flink_hpa_bridge_prometheus_queries_total{namespace="flink-hpa-bridge",signal="flink_busy_time_max",outcome="error"}'
        values: '0+2x40'
      - series: 'flink_hpa_bridge_prometheus_queries_total{namespace="flink-hpa-bridge",signal="pravega_stream_segments",outcome="ok"}'
        values: '0+4x40'
      - series: 'flink_hpa_bridge_http_requests_total{namespace="flink-hpa-bridge",route="external",code="200"}'
        values: '0+10x40'
      - series: 'flink_hpa_bridge_http_requests_total{namespace="flink-hpa-bridge",route="external",code="503"}'
        values: '0+0x40'
    alert_rule_test:
      - eval_time: 9m
        alertname: FlinkHpaBridgePrometheusUnreachable
        exp_alerts:
          - exp_labels: {severity: critical, namespace: flink-hpa-bridge, pod: a}
      - eval_time: 3m
        alertname: FlinkHpaBridgePrometheusUnreachable
        exp_alerts: []
      - eval_time: 40m
        alertname: FlinkHpaBridgeSignalQueryErrors
        exp_alerts:
          - exp_labels: {severity: warning, namespace: flink-hpa-bridge, signal: flink_busy_time_max}
      - eval_time: 40m
        alertname: FlinkHpaBridgeMetricErrors
        exp_alerts: []
"#;
