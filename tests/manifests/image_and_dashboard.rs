//! The Dockerfile and the Grafana dashboard.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Dockerfile and dashboard.
// ---------------------------------------------------------------------------------------------

#[test]
fn dockerfile_builds_a_nonroot_distroless_image_of_this_version() {
    let text = read(&repo().join("Dockerfile"));
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .collect();
    let froms: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert!(froms.len() >= 2, "multi-stage build expected");
    let last: &str = froms.last().expect("FROM");
    assert!(
        last.contains("distroless") && last.contains(":nonroot"),
        "final stage: {last}"
    );
    let after_last: Vec<&&str> = lines.iter().skip_while(|l| **l != last).collect();
    assert!(
        after_last
            .iter()
            .any(|l| **l == "USER nonroot" || **l == "USER 65532"),
        "non-root user"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cargo build --release --locked")),
        "build from Cargo.lock"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        lines.contains(&format!("ARG VERSION={version}").as_str()),
        "ARG VERSION must default to {version}"
    );

    // The build context keeps what cargo needs: the manifest, the sources, and every target
    // Cargo.toml declares by name (cargo refuses a manifest whose declared targets are
    // missing), which the dependency layer must also copy before its first build.
    let ignored: Vec<String> = read(&repo().join(".dockerignore"))
        .lines()
        .map(|l| l.trim().trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let first_build = lines
        .iter()
        .position(|l| l.contains("cargo build"))
        .expect("cargo build");
    let copied_early: Vec<&str> = lines[..first_build]
        .iter()
        .filter_map(|l| l.strip_prefix("COPY "))
        .flat_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words[..words.len() - 1].to_vec()
        })
        .collect();
    let mut needed = vec![
        "Cargo.toml".to_string(),
        "Cargo.lock".to_string(),
        "src".to_string(),
    ];
    needed.extend(declared_targets(&read(&repo().join("Cargo.toml"))));
    for path in &needed {
        assert!(
            !ignored
                .iter()
                .any(|i| path == i || path.starts_with(&format!("{i}/")) || i == "*"),
            ".dockerignore drops {path}"
        );
        if path != "src" && !path.starts_with("src/") {
            assert!(
                copied_early
                    .iter()
                    .any(|c| path == c || path.starts_with(&format!("{c}/"))),
                "the dependency layer of the Dockerfile does not copy {path}"
            );
        }
    }
}

/// Files of the targets Cargo.toml declares in [[bin]], [[bench]], [[test]] and [[example]]
/// sections, at their path or cargo's default one.
pub(crate) fn declared_targets(manifest: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut section: Option<(&str, Option<String>, Option<String>)> = None;
    let flush = |s: Option<(&str, Option<String>, Option<String>)>, out: &mut Vec<String>| {
        if let Some((kind, name, path)) = s {
            let dir = match kind {
                "bin" => "src/bin",
                "bench" => "benches",
                "test" => "tests",
                _ => "examples",
            };
            out.push(path.unwrap_or_else(|| format!("{dir}/{}.rs", name.expect("target name"))));
        }
    };
    let value = |l: &str| {
        l.split_once('=')
            .map(|(_, v)| v.trim().trim_matches('"').to_string())
    };
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            flush(section.take(), &mut out);
            section = match line {
                "[[bin]]" => Some(("bin", None, None)),
                "[[bench]]" => Some(("bench", None, None)),
                "[[test]]" => Some(("test", None, None)),
                "[[example]]" => Some(("example", None, None)),
                _ => None,
            };
        } else if let Some((_, name, path)) = section.as_mut() {
            if line.starts_with("name") {
                *name = value(line);
            } else if line.starts_with("path") {
                *path = value(line);
            }
        }
    }
    flush(section, &mut out);
    out
}
/// Series the dashboard may name besides Flink's (which must be in the real scrape), with
/// their exporters.
pub(crate) const OTHER_SERIES: [&str; 4] = [
    "kafka_consumergroup_lag",                              // kafka_exporter
    "pravega_controller_segments_count",                    // Pravega controller
    "kube_deployment_status_replicas",                      // kube-state-metrics
    "kube_horizontalpodautoscaler_status_desired_replicas", // kube-state-metrics
];

/// The names of the server's own metrics, as src/metrics.rs defines them (counter, gauge and
/// histogram names under the registry's flink_hpa_bridge_ prefix).
pub(crate) fn server_metric_names() -> BTreeSet<String> {
    let source = read(&repo().join("src/metrics.rs"));
    let names: BTreeSet<String> = regex::Regex::new(r#"::new\(\s*"([a-z_]+)""#)
        .expect("regex")
        .captures_iter(&source)
        .map(|c| format!("flink_hpa_bridge_{}", &c[1]))
        .collect();
    assert!(
        names.contains("flink_hpa_bridge_http_requests_total"),
        "src/metrics.rs: metric definitions not found"
    );
    names
}

/// Is `series` one the server exports: a metric of src/metrics.rs, or a histogram's series?
pub(crate) fn served_by_the_server(series: &str) -> bool {
    let names = server_metric_names();
    names.contains(series)
        || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
            series
                .strip_suffix(suffix)
                .is_some_and(|base| names.contains(base))
        })
}

#[test]
fn dashboard_shows_every_signal_next_to_the_taskmanager_count() {
    let path = repo().join("dashboards/flink-hpa-bridge.json");
    let dash: Value = serde_json::from_str(&read(&path)).expect("dashboard JSON");
    let panels = dash["panels"].as_array().expect("panels");
    let scrape = read(&repo().join("tests/data/flink-1.20.5-scrape.txt"));
    let series =
        regex::Regex::new(r"\b((flink|kafka|pravega|kube)_[A-Za-z0-9_]+)\b").expect("regex");
    let variables: BTreeSet<String> = dash["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| v["name"].as_str().expect("name").to_string())
        .collect();
    let variable = regex::Regex::new(r"\$([A-Za-z_]+)").expect("regex");
    let mut exprs = Vec::new();
    for p in panels {
        let title = p["title"].as_str().expect("title");
        let targets = p["targets"].as_array().expect("targets");
        let panel_exprs: Vec<&str> = targets
            .iter()
            .map(|t| t["expr"].as_str().expect("expr"))
            .collect();
        assert!(
            panel_exprs
                .iter()
                .any(|e| e.contains("flink_jobmanager_numRegisteredTaskManagers")),
            "panel {title:?}: no TaskManager count"
        );
        for e in panel_exprs {
            for m in series.captures_iter(e) {
                let n = &m[1];
                assert!(
                    scrape.contains(&format!("\n{n}{{"))
                        || OTHER_SERIES.contains(&n)
                        || served_by_the_server(n),
                    "panel {title:?}: {n} is no series Flink 1.20.5, the listed exporters or the server export"
                );
            }
            for v in variable.captures_iter(e) {
                assert!(
                    v[1].starts_with("__") || variables.contains(&v[1]),
                    "panel {title:?}: undefined ${}",
                    &v[1]
                );
            }
            exprs.push(e.to_string());
        }
    }
    for s in server_config().signals {
        assert!(
            panels
                .iter()
                .any(|p| p["title"].as_str().is_some_and(|t| t.contains(&s.name))),
            "no panel for {}",
            s.name
        );
    }

    // The expressions parse as PromQL, with the variables as Grafana fills them in.
    if !command_works("promtool", &["--version"]) {
        eprintln!("promtool not installed: dashboard PromQL not parsed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let rules: Vec<Value> = exprs
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let e = e
                .replace("$__rate_interval", "1m")
                .replace("$namespace", "flink")
                .replace("$deployment", "flink-taskmanager")
                .replace("$job", ".*")
                .replace("$hpa", ".*");
            json!({"record": format!("dashboard:expr_{i}"), "expr": e})
        })
        .collect();
    let file = dir.path().join("rules.yaml");
    std::fs::write(
        &file,
        serde_yaml::to_string(&json!({"groups": [{"name": "dashboard", "rules": rules}]}))
            .expect("yaml"),
    )
    .expect("write");
    let out = Command::new("promtool")
        .arg("check")
        .arg("rules")
        .arg(&file)
        .output()
        .expect("promtool");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
