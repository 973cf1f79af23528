//! `flink-hpa-bridge convert-adapter-config`: prometheus-adapter rules in, `promql` signals out,
//! checked by loading the output as this server's configuration.

use std::process::Command;

use flink_hpa_bridge::config::Config;

fn run(file: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_flink-hpa-bridge"))
        .args(["convert-adapter-config", file])
        .output()
        .expect("run")
}

#[test]
fn adapter_rules_become_promql_signals_or_say_why_not() {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/adapter/config.yaml"
    );
    let out = run(fixture);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).expect("UTF-8");
    // The output is a configuration this server loads as it is.
    let cfg = Config::from_yaml(&format!("builtinSignals: false\n{yaml}"), "converted")
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let mut names: Vec<&str> = cfg.signals.iter().map(|s| s.name.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "app_queue_length",
            "http_requests_per_second",
            "kafka_lag",
            "queue_messages_ready"
        ],
        "{yaml}"
    );
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).expect("YAML");
    let by_name = |n: &str| {
        doc["signals"]
            .as_sequence()
            .unwrap()
            .iter()
            .find(|s| s["name"].as_str() == Some(n))
            .unwrap_or_else(|| panic!("{n}"))
            .clone()
    };
    let s = by_name("http_requests_per_second");
    assert_eq!(s["api"].as_str(), Some("custom"));
    assert_eq!(s["resource"].as_str(), Some("pods"));
    assert_eq!(s["namespaced"].as_bool(), Some(true));
    assert_eq!(
        s["query"].as_str(),
        Some("sum(rate(http_requests_total{<<matchers>>}[2m])) by (pod)")
    );
    let s = by_name("app_queue_length");
    assert_eq!(s["resource"].as_str(), Some("deployments.apps"));
    assert_eq!(s["resourceLabel"].as_str(), Some("deployment"));
    assert_eq!(s["namespaceLabel"].as_str(), Some("kube_namespace"));
    assert_eq!(
        s["query"].as_str(),
        Some("max(app_queue_length{<<matchers>>}) by (deployment)")
    );
    let s = by_name("kafka_lag");
    assert_eq!(s["api"].as_str(), Some("external"));
    assert_eq!(s["namespaced"].as_bool(), Some(false));
    assert_eq!(
        s["query"].as_str(),
        Some("sum(kafka_consumergroup_lag{<<matchers>>}) by (topic)")
    );
    let s = by_name("queue_messages_ready");
    assert_eq!(s["namespaced"].as_bool(), Some(true));
    assert_eq!(
        s["query"].as_str(),
        Some("sum(queue_messages_ready{<<matchers>>}) by (namespace)")
    );
    // Each rule that cannot be expressed is named with its reason.
    for (rule, why) in [
        ("rules[2]", "__name__ pattern"),
        ("rules[3]", "resources.template"),
        ("rules[4]", "no <<.LabelMatchers>>"),
        ("externalRules[2]", "<<range"),
        ("resourceRules", "metrics-server"),
    ] {
        let at = yaml
            .find(&format!("# {rule}"))
            .unwrap_or_else(|| panic!("{rule} not mentioned:\n{yaml}"));
        let block = &yaml[at..];
        let end = block[1..]
            .find("\n# rules")
            .or(block[1..].find("\n# external"))
            .map_or(block.len(), |e| e + 1);
        assert!(
            block[..end].contains("NOT CONVERTED") && block[..end].contains(why),
            "{rule}: {why} expected in:\n{}",
            &block[..end]
        );
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("5 rule(s) not converted"));
}

#[test]
fn unreadable_input_fails() {
    let out = run("/nonexistent/adapter.yaml");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/adapter.yaml"));
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("bad.yaml");
    std::fs::write(&f, "rules: {not: [a list").unwrap();
    let out = run(f.to_str().unwrap());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad.yaml"));
}
