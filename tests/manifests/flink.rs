//! The Flink cluster: configuration keys of the Flink release it runs, and the pods that run it.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Flink.
// ---------------------------------------------------------------------------------------------

pub(crate) fn flatten(prefix: &str, v: &serde_yaml::Value, out: &mut BTreeMap<String, String>) {
    match v {
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let k = k.as_str().expect("string keys");
                let key = if prefix.is_empty() {
                    k.to_string()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        serde_yaml::Value::String(s) => {
            out.insert(prefix.to_string(), s.clone());
        }
        serde_yaml::Value::Number(n) => {
            out.insert(prefix.to_string(), n.to_string());
        }
        serde_yaml::Value::Bool(b) => {
            out.insert(prefix.to_string(), b.to_string());
        }
        other => panic!("{prefix}: unexpected value {other:?}"),
    }
}

/// manifests/flink/config.yaml with nested keys flattened, as Flink reads it.
pub(crate) fn flink_config() -> BTreeMap<String, String> {
    let path = repo().join("manifests/flink/config.yaml");
    let v: serde_yaml::Value =
        serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    out
}

/// The configuration keys of one Flink release: key -> (type, status).
pub(crate) struct FlinkKeys(BTreeMap<String, (String, String)>);

impl FlinkKeys {
    pub(crate) fn load(version: &str) -> Self {
        let path = repo().join(format!("tests/data/flink-{version}-config-keys.tsv"));
        assert!(
            path.exists(),
            "{} missing: run scripts/flink-config-keys.sh {version}",
            rel(&path)
        );
        let keys = read(&path)
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let f: Vec<&str> = l.split('\t').collect();
                assert_eq!(f.len(), 3, "{l}");
                (f[0].to_string(), (f[1].to_string(), f[2].to_string()))
            })
            .collect();
        FlinkKeys(keys)
    }

    /// The key's entry, also through templates such as metrics.reporter.<name>.port. The
    /// catch-all metrics.reporter.<name>.<parameter> is left out: it would accept any typo.
    pub(crate) fn find(&self, key: &str) -> Option<&(String, String)> {
        self.0.get(key).or_else(|| {
            self.0.iter().find_map(|(template, entry)| {
                if !template.contains("<name>") || template.contains("<parameter>") {
                    return None;
                }
                let pattern = format!("^{}$", regex::escape(template).replace("<name>", "[^.]+"));
                regex::Regex::new(&pattern)
                    .expect("regex")
                    .is_match(key)
                    .then_some(entry)
            })
        })
    }

    pub(crate) fn check(&self, key: &str, value: &str) -> Result<(), String> {
        let (kind, status) = self
            .find(key)
            .ok_or_else(|| format!("{key}: no such key"))?;
        if status == "deprecated" {
            return Err(format!("{key}: deprecated"));
        }
        let re = |p: &str| regex::Regex::new(p).expect("regex").is_match(value.trim());
        let ok = match kind.as_str() {
            "Integer" | "Long" => value.trim().parse::<i64>().is_ok(),
            "Float" | "Double" => value.trim().parse::<f64>().is_ok(),
            "Boolean" => re("^(?i)(true|false)$"),
            // TimeUtils.parseDuration: a number, optionally a unit.
            "Duration" => re(
                r"^[0-9]+\s*(d|day|days|h|hour|hours|min|m|minute|minutes|s|sec|secs|second|seconds|ms|milli|millis|millisecond|milliseconds|us|micro|micros|microsecond|microseconds|ns|nano|nanos|nanosecond|nanoseconds)?$",
            ),
            // MemorySize.parse: a number, optionally a unit.
            "MemorySize" => re(
                r"^(?i)[0-9]+\s*(b|bytes|k|kb|kibibytes|m|mb|mebibytes|g|gb|gibibytes|t|tb|tebibytes)?$",
            ),
            enumeration if enumeration.starts_with("enum:") => enumeration[5..]
                .split('|')
                .any(|v| v.eq_ignore_ascii_case(value.trim())),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(format!("{key}: {value:?} is not a {kind}"))
        }
    }
}

/// Bytes of a Flink memory size (binary units: 1728m is 1728 MiB).
pub(crate) fn flink_bytes(s: &str) -> u64 {
    let caps = regex::Regex::new(r"^(?i)([0-9]+)\s*([kmgt]?)b?$")
        .expect("regex")
        .captures(s.trim())
        .unwrap_or_else(|| panic!("{s}"));
    let n: u64 = caps[1].parse().expect("number");
    n << (10
        * "_kmgt"
            .find(caps[2].to_ascii_lowercase().as_str())
            .filter(|i| *i > 0)
            .unwrap_or(0))
}

/// Bytes of a Kubernetes memory quantity.
pub(crate) fn quantity_bytes(s: &str) -> u64 {
    let caps = regex::Regex::new(r"^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$")
        .expect("regex")
        .captures(s)
        .unwrap_or_else(|| panic!("{s}"));
    let n: u64 = caps[1].parse().expect("number");
    n * match caps.get(2).map(|m| m.as_str()) {
        None => 1,
        Some("Ki") => 1 << 10,
        Some("Mi") => 1 << 20,
        Some("Gi") => 1 << 30,
        Some("Ti") => 1 << 40,
        Some("k") => 1_000,
        Some("M") => 1_000_000,
        Some("G") => 1_000_000_000,
        Some(_) => 1_000_000_000_000,
    }
}

/// Flink's duration syntax as milliseconds, for the heartbeat comparison.
pub(crate) fn flink_millis(s: &str) -> u64 {
    let caps = regex::Regex::new(r"^([0-9]+)\s*([a-z]*)$")
        .expect("regex")
        .captures(s.trim())
        .unwrap_or_else(|| panic!("{s}"));
    let n: u64 = caps[1].parse().expect("number");
    n * match &caps[2] {
        "" | "ms" => 1,
        "s" => 1000,
        "min" | "m" => 60_000,
        other => panic!("unit {other}"),
    }
}

/// The Flink pods: (role from the entrypoint argument, namespace, template).
pub(crate) fn flink_pods(inv: &Inventory) -> Vec<(String, String, &PodTemplateSpec)> {
    inv.pod_templates()
        .into_iter()
        .filter_map(|(namespace, _, t)| {
            let role = t
                .spec
                .as_ref()?
                .containers
                .first()?
                .args
                .as_ref()?
                .first()?
                .clone();
            Some((role, namespace, t))
        })
        .collect()
}

#[test]
fn flink_configuration_uses_keys_of_the_flink_version_it_runs() {
    let (inv, _) = inventory(&repo().join("manifests/flink"));
    let pods = flink_pods(&inv);
    let images: BTreeSet<String> = pods
        .iter()
        .flat_map(|(_, _, t)| containers(t))
        .filter_map(|c| c.image.clone())
        .collect();
    let versions: BTreeSet<&str> = images
        .iter()
        .map(|i| {
            let tag = i
                .strip_prefix("flink:")
                .unwrap_or_else(|| panic!("{i}: not the official Flink image"));
            tag.split('-').next().expect("version")
        })
        .collect();
    let [version] = versions.into_iter().collect::<Vec<_>>()[..] else {
        panic!("the Flink pods run different versions: {images:?}");
    };
    let keys = FlinkKeys::load(version);
    let conf = flink_config();
    let errors: Vec<String> = conf
        .iter()
        .filter_map(|(k, v)| keys.check(k, v).err())
        .collect();
    assert!(
        errors.is_empty(),
        "manifests/flink/config.yaml against Flink {version}:\n  {}",
        errors.join("\n  ")
    );

    // The checker refuses a misspelt key, a bad value, a deprecated key and an unknown mode.
    assert!(keys.check("heartbeat.timeout.ms", "8000").is_err());
    assert!(keys.check("heartbeat.timeout", "8 parsecs").is_err());
    assert!(keys.check("state.checkpoints.dir", "s3://b/c").is_err());
    assert!(keys.check("scheduler-mode", "elastic").is_err());
    assert!(keys.check("metrics.reporter.prom.prot", "9249").is_err());
    assert!(keys.check("metrics.reporter.prom.port", "9249").is_ok());

    let get = |k: &str| {
        conf.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("config.yaml sets no {k}"))
    };
    assert_eq!(get("scheduler-mode").to_lowercase(), "reactive");
    get("execution.checkpointing.interval");
    // A killed or hung TaskManager stalls the job for about the heartbeat timeout; Flink's 50 s
    // default turns every such loss into a long stall. Flink refuses a timeout below the interval.
    let (interval, timeout) = (
        flink_millis(&get("heartbeat.interval")),
        flink_millis(&get("heartbeat.timeout")),
    );
    assert!(
        interval <= timeout && timeout < 50_000,
        "heartbeat {interval} ms / {timeout} ms"
    );
    // The configuration replaces the image's, whose JVM flags Java 17 needs.
    let shipped = read(&repo().join(format!("tests/data/flink-{version}-java-opts.txt")));
    assert_eq!(
        get("env.java.opts.all").trim(),
        shipped.trim(),
        "env.java.opts.all differs from Flink {version}'s"
    );

    let roles = check_flink_pods(&inv, &conf);
    assert_eq!(
        roles,
        BTreeSet::from(["standalone-job".to_string(), "taskmanager".to_string()])
    );

    check_jobmanager_service_and_taskmanagers(&inv, &conf);
}

/// A setting of manifests/flink/config.yaml that must be there.
fn setting(conf: &BTreeMap<String, String>, k: &str) -> String {
    conf.get(k)
        .cloned()
        .unwrap_or_else(|| panic!("config.yaml sets no {k}"))
}

/// Each Flink pod: scraped on the reporter's port, its configuration mounted, the same RPC
/// address as the configuration, a memory limit covering Flink's process size. Returns the roles.
fn check_flink_pods(inv: &Inventory, conf: &BTreeMap<String, String>) -> BTreeSet<String> {
    let pods = flink_pods(inv);
    let port = setting(conf, "metrics.reporter.prom.port");
    let mut roles = BTreeSet::new();
    for (role, namespace, t) in &pods {
        let what = format!("Flink {role} pod");
        roles.insert(role.clone());
        let annotations = annotations_of(&t.metadata);
        assert_eq!(
            annotations.get("prometheus.io/scrape").map(String::as_str),
            Some("true"),
            "{what}"
        );
        assert_eq!(
            annotations.get("prometheus.io/port"),
            Some(&port),
            "{what}: scrape port is not the reporter's"
        );
        let main = &t.spec.as_ref().expect("spec").containers[0];
        assert!(
            container_ports(main)
                .iter()
                .any(|(_, p)| p.to_string() == port),
            "{what}: reporter port {port} not declared"
        );
        // The conf directory holds exactly these files, so Flink's scripts find both.
        for file in ["config.yaml", "log4j-console.properties"] {
            file_behind(inv, namespace, t, main, &format!("/opt/flink/conf/{file}"))
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
        let env_address = main
            .env
            .iter()
            .flatten()
            .find(|e| e.name == "JOB_MANAGER_RPC_ADDRESS")
            .and_then(|e| e.value.clone());
        assert_eq!(
            env_address,
            Some(setting(conf, "jobmanager.rpc.address")),
            "{what}: the entrypoint would write another address"
        );
        let (size_key, rpc_key) = match role.as_str() {
            "standalone-job" => ("jobmanager.memory.process.size", "jobmanager.rpc.port"),
            "taskmanager" => ("taskmanager.memory.process.size", "taskmanager.rpc.port"),
            other => panic!("unknown Flink role {other}"),
        };
        let limit = main
            .resources
            .as_ref()
            .and_then(|r| r.limits.as_ref())
            .and_then(|l| l.get("memory"))
            .map(|q| quantity_bytes(&q.0))
            .unwrap_or_else(|| panic!("{what}: no memory limit"));
        assert!(
            limit >= flink_bytes(&setting(conf, size_key)),
            "{what}: memory limit below {size_key}"
        );
        assert!(
            container_ports(main)
                .iter()
                .any(|(_, p)| p.to_string() == setting(conf, rpc_key)),
            "{what}: {rpc_key} not declared as a container port"
        );
    }
    roles
}

/// TaskManagers reach the JobManager through its Service, and the HPA owns their count.
fn check_jobmanager_service_and_taskmanagers(inv: &Inventory, conf: &BTreeMap<String, String>) {
    let pods = flink_pods(inv);
    let address = setting(conf, "jobmanager.rpc.address");
    let svc = inv
        .services
        .iter()
        .find(|s| name(&s.metadata) == address)
        .unwrap_or_else(|| panic!("no Service {address}"));
    let svc_ports: Vec<i32> = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    for k in ["jobmanager.rpc.port", "blob.server.port", "rest.port"] {
        assert!(
            svc_ports.iter().any(|p| p.to_string() == setting(conf, k)),
            "Service {address} lacks {k}"
        );
    }
    let selector = svc
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    let jm_labels = pods
        .iter()
        .find(|(r, _, _)| r == "standalone-job")
        .map(|(_, _, t)| labels_of(&t.metadata))
        .expect("JobManager");
    assert!(
        selector.iter().all(|(k, v)| jm_labels.get(k) == Some(v)),
        "Service {address} does not select the JobManager"
    );

    // The HPA owns the TaskManager count: a replicas field would reset it on every apply.
    let tm = inv
        .deployments
        .iter()
        .find(|d| {
            d.spec
                .template
                .spec
                .iter()
                .flat_map(|s| &s.containers)
                .any(|c| c.args.as_ref().is_some_and(|a| a[0] == "taskmanager"))
        })
        .expect("TaskManager Deployment");
    assert_eq!(
        tm.spec.replicas, None,
        "the TaskManager Deployment must leave replicas to the HPA"
    );
    for key in tm
        .spec
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, _)| k)
    {
        assert!(
            is_valid_label_name(key),
            "TaskManager label {key} would be renamed by labelmap"
        );
    }
}
