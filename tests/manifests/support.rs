//! Shared helpers and the imports every suite uses.

pub(crate) use std::collections::{BTreeMap, BTreeSet};
pub(crate) use std::io::{Read, Write};
pub(crate) use std::net::TcpListener;
pub(crate) use std::path::{Path, PathBuf};
pub(crate) use std::process::{Child, Command, Stdio};
pub(crate) use std::time::{Duration, Instant};

pub(crate) use flink_hpa_bridge::config::{Api, Config, SignalSpec, SignalType};
pub(crate) use flink_hpa_bridge::promql::{flink_label_value, is_valid_label_name, Translation};
pub(crate) use flink_hpa_bridge::quantity::parse_milli;
pub(crate) use flink_hpa_bridge::selector::Selector;
pub(crate) use k8s_openapi::api::apps::v1::Deployment;
pub(crate) use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
pub(crate) use k8s_openapi::api::batch::v1::Job;
pub(crate) use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodTemplateSpec, Secret, Service, ServiceAccount,
};
pub(crate) use k8s_openapi::api::networking::v1::NetworkPolicy;
pub(crate) use k8s_openapi::api::policy::v1::PodDisruptionBudget;
pub(crate) use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding,
};
pub(crate) use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
pub(crate) use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
pub(crate) use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
pub(crate) use serde::de::DeserializeOwned;
pub(crate) use serde::{Deserialize, Serialize};
pub(crate) use serde_json::{json, Value};

pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_flink-hpa-bridge");
/// The annotation by which cert-manager's cainjector fills an APIService's caBundle.
pub(crate) const INJECT_CA: &str = "cert-manager.io/inject-ca-from";

pub(crate) fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub(crate) fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every file under `dir` whose name ends in one of `exts`, sorted.
pub(crate) fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if exts
                .iter()
                .any(|e| path.to_string_lossy().ends_with(&format!(".{e}")))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// The YAML documents of a file (or of kustomize's output), as JSON values.
pub(crate) fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

pub(crate) fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub(crate) fn has_kubectl() -> bool {
    command_works("kubectl", &["version", "--client"])
}
