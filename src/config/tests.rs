use super::*;

fn err(yaml: &str) -> String {
    Config::from_yaml(yaml, "c.yaml").unwrap_err().to_string()
}

#[test]
fn empty_file_gives_the_builtins() {
    let c = Config::from_yaml("", "c.yaml").unwrap();
    let names: Vec<_> = c.signals.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, BUILTIN_SIGNALS.map(|(n, _)| n));
    assert!(
        !c.signals[3].namespaced,
        "pravega series live in another namespace"
    );
}

#[test]
fn full_file_parses_and_overrides_a_builtin() {
    let c = Config::from_yaml(
        r#"
prometheus:
  url: https://thanos.example:9091
  timeout: 3s
  headers: {X-Scope-OrgID: team-a}
server: {securePort: 8443}
pods: {source: labels}
signals:
  - name: flink_busy_time_max
    type: flinkBusyTimeMax
    maxAge: 45s
    labels: {app: job_name}
  - name: orders_rate
    type: promql
    api: external
    query: sum(rate(orders_total{<<matchers>>}[1m]))
"#,
        "c.yaml",
    )
    .unwrap();
    assert_eq!(c.prometheus.timeout, Duration::from_secs(3));
    assert_eq!(c.server.secure_port, 8443);
    assert_eq!(c.pod_source, PodSource::Labels);
    assert_eq!(c.signals.len(), BUILTIN_SIGNALS.len() + 1);
    assert_eq!(c.signals[0].max_age, Some(Duration::from_secs(45)));
    assert_eq!(c.signals[BUILTIN_SIGNALS.len()].api(), Api::External);
}

#[test]
fn errors_name_file_and_field() {
    assert_eq!(
        err("prometheus: {url: 'ftp://x'}"),
        r#"c.yaml: prometheus.url: expected an http:// or https:// URL, got "ftp://x""#
    );
    assert_eq!(
        err("signals: [{name: a, type: flinkBusyTimeMax, maxAge: soon}]"),
        r#"c.yaml: signals[0].maxAge: expected a duration such as 30s, 2m or 1h, got "soon""#
    );
    assert_eq!(
        err("signals: [{name: a, type: flinkBusyTimeMax, podLabel: pod}]"),
        "c.yaml: signals[0].podLabel: not used by type flinkBusyTimeMax; only by flinkTaskManagerBusyTime"
    );
    assert_eq!(
        err("signals: [{name: a-b, type: promql}]"),
        r#"c.yaml: signals[0].name: "a-b" must match [a-zA-Z_:][a-zA-Z0-9_:]* (it becomes a URL path segment)"#
    );
    assert!(
        err("signals: [{name: a, type: promql, api: external, query: 'up'}]")
            .starts_with("c.yaml: signals[0].query: must contain <<matchers>>")
    );
    assert!(err("signals: [{name: a, type: promql, api: external, query: 'x{<<matchers>>}'}, {name: a, type: flinkBusyTimeMax}]")
        .contains("signals[1].name: \"a\" is defined twice"));
    assert!(err("builtinSignals: false").contains("signals: no signals"));
    assert_eq!(
        err("signals: [{name: a, type: flinkBusyTimeMax, onNaN: maybe}]"),
        r#"c.yaml: signals[0].onNaN: expected error, zero or a number, got "maybe""#
    );
}

#[test]
fn unknown_fields_and_types_are_refused_with_their_path() {
    let e = err("prometheus:\n  urll: http://x\n");
    assert!(
        e.starts_with("c.yaml: prometheus: unknown field `urll`"),
        "{e}"
    );
    let e = err("signals:\n  - name: a\n    type: busy\n");
    assert!(
        e.starts_with("c.yaml: signals[0].type: unknown variant `busy`"),
        "{e}"
    );
}

#[test]
fn a_signal_without_type_is_told_every_kind() {
    let e = err("signals:\n  - name: x\n");
    for kind in [
        "flinkRequiredTaskManagers",
        "flinkKafkaLagGrowth",
        "flinkBusyTimeMax",
        "promql",
    ] {
        assert!(e.contains(kind), "{kind} not in {e}");
    }
}

#[test]
fn the_remembered_answers_have_a_bound_of_their_own() {
    let c = Config::from_yaml("cache: {maxEntries: 50, maxRemembered: 7}", "c.yaml").unwrap();
    assert_eq!((c.cache.max_entries, c.cache.max_remembered), (50, 7));
    let d = Config::from_yaml("", "c.yaml").unwrap();
    assert_eq!(d.cache.max_remembered, DEFAULT_REMEMBERED);
    let e = err("cache: {maxRemembered: 0}");
    assert!(
        e.contains("c.yaml") && e.contains("cache.maxRemembered"),
        "{e}"
    );
}
