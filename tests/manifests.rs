//! The files a cluster admin applies: manifests/ (kustomize base, components and overlays, the
//! Flink Reactive Mode cluster, the Prometheus scrape jobs), hpa-examples/, the Grafana dashboard
//! and the Dockerfile, read the way the tools that consume them read them.
//!
//! - Every YAML document is parsed into its k8s-openapi type and serialized back. k8s-openapi
//!   ignores fields it does not know, so a misspelt or misplaced field vanishes in the round
//!   trip and is reported, as the API server's strict field validation would.
//! - Cross-references are checked on what kustomize renders: `kubectl kustomize` when kubectl is
//!   installed, else a reading of the kustomization files (resources, components, generators;
//!   patches are then not applied and the checks that need them are left out).
//! - The server's configuration goes through `check-config`; the Flink configuration is checked
//!   against the configuration keys of the Flink release the manifests run, listed from its
//!   jars by scripts/flink-config-keys.sh.
//! - With Prometheus installed, the scrape jobs run against a real Flink 1.20.5 scrape, and the
//!   server answers every example HPA's metric and the README's `kubectl get --raw` commands.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flink_hpa_bridge::config::{Api, Config, SignalSpec, SignalType};
use flink_hpa_bridge::promql::{flink_label_value, is_valid_label_name, Translation};
use flink_hpa_bridge::quantity::parse_milli;
use flink_hpa_bridge::selector::Selector;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PodTemplateSpec, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_flink-hpa-bridge");
/// The annotation by which cert-manager's cainjector fills an APIService's caBundle.
const INJECT_CA: &str = "cert-manager.io/inject-ca-from";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn rel(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every file under `dir` whose name ends in one of `exts`, sorted.
fn files_under(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
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
fn yaml_documents(text: &str, origin: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}")))
        .filter(|v| !v.is_null())
        .collect()
}

fn command_works(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn has_kubectl() -> bool {
    command_works("kubectl", &["version", "--client"])
}

// ---------------------------------------------------------------------------------------------
// Strict parsing: k8s-openapi types plus a round trip that catches the fields they drop.
// ---------------------------------------------------------------------------------------------

/// Paths of `original` that are missing from `back` or read differently.
fn lost_fields(original: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
    match original {
        Value::Object(map) => {
            for (key, value) in map {
                let p = format!("{path}.{key}");
                match back.get(key) {
                    Some(b) => lost_fields(value, b, &p, out),
                    None => out.push(format!("{p}: unknown field")),
                }
            }
        }
        Value::Array(items) => {
            for (i, value) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                match back.get(i) {
                    Some(b) => lost_fields(value, b, &p, out),
                    None => out.push(format!("{p}: dropped")),
                }
            }
        }
        scalar if scalar != back => out.push(format!("{path}: {scalar} read as {back}")),
        _ => {}
    }
}

fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    lost_fields(doc, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(typed)
    } else {
        Err(lost.join("; "))
    }
}

/// cert-manager's resources have no k8s-openapi types: these cover the fields the manifests
/// use, and refuse any other.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertManagerObject<S> {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: S,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IssuerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    self_signed: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ca: Option<CaIssuer>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CaIssuer {
    secret_name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct CertificateSpec {
    secret_name: String,
    issuer_ref: IssuerRef,
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    private_key: Option<PrivateKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    usages: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct IssuerRef {
    kind: String,
    name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrivateKey {
    algorithm: String,
    size: u32,
}

type Issuer = CertManagerObject<IssuerSpec>;
type Certificate = CertManagerObject<CertificateSpec>;

/// Go durations as cert-manager reads them: hours, minutes, seconds.
fn is_go_duration(s: &str) -> bool {
    regex::Regex::new(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$")
        .expect("regex")
        .is_match(s)
}

impl Certificate {
    fn validate(&self) -> Result<(), String> {
        let s = &self.spec;
        for d in [&s.duration, &s.renew_before].into_iter().flatten() {
            if !is_go_duration(d) {
                return Err(format!("{d:?} is not a duration cert-manager reads"));
            }
        }
        if let Some(k) = &s.private_key {
            let ok = match k.algorithm.as_str() {
                "ECDSA" => [256, 384, 521].contains(&k.size),
                "RSA" => k.size >= 2048,
                "Ed25519" => true,
                _ => false,
            };
            if !ok {
                return Err(format!(
                    "privateKey {} {} is not valid",
                    k.algorithm, k.size
                ));
            }
        }
        // cert-manager's KeyUsage values that a serving certificate may carry.
        const USAGES: [&str; 4] = [
            "server auth",
            "client auth",
            "digital signature",
            "key encipherment",
        ];
        if let Some(u) = s.usages.iter().find(|u| !USAGES.contains(&u.as_str())) {
            return Err(format!("unknown usage {u:?}"));
        }
        Ok(())
    }
}

/// The objects of one rendered set, typed.
#[derive(Default)]
struct Inventory {
    namespaces: Vec<Namespace>,
    service_accounts: Vec<ServiceAccount>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    services: Vec<Service>,
    deployments: Vec<Deployment>,
    jobs: Vec<Job>,
    pdbs: Vec<PodDisruptionBudget>,
    network_policies: Vec<NetworkPolicy>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    api_services: Vec<APIService>,
    hpas: Vec<HorizontalPodAutoscaler>,
    issuers: Vec<Issuer>,
    certificates: Vec<Certificate>,
}

impl Inventory {
    fn from_documents(docs: &[(String, Value)]) -> Result<Self, Vec<String>> {
        let mut inv = Inventory::default();
        let errors: Vec<String> = docs
            .iter()
            .filter_map(|(origin, doc)| {
                inv.add(doc).err().map(|e| {
                    let name = doc["metadata"]["name"].as_str().unwrap_or("?");
                    format!(
                        "{origin}: {} {name}: {e}",
                        doc["kind"].as_str().unwrap_or("?")
                    )
                })
            })
            .collect();
        if errors.is_empty() {
            Ok(inv)
        } else {
            Err(errors)
        }
    }

    fn add(&mut self, doc: &Value) -> Result<(), String> {
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        match (api_version, kind) {
            ("v1", "Namespace") => self.namespaces.push(strict(doc)?),
            ("v1", "ServiceAccount") => self.service_accounts.push(strict(doc)?),
            ("v1", "ConfigMap") => self.config_maps.push(strict(doc)?),
            ("v1", "Secret") => {
                // kustomize wraps base64 data in lines; the API server's decoder skips the
                // line breaks, k8s-openapi's does not.
                let mut doc = doc.clone();
                if let Some(data) = doc.get_mut("data").and_then(Value::as_object_mut) {
                    for v in data.values_mut() {
                        if let Some(s) = v.as_str() {
                            *v = Value::String(s.split_whitespace().collect());
                        }
                    }
                }
                self.secrets.push(strict(&doc)?)
            }
            ("v1", "Service") => self.services.push(strict(doc)?),
            ("apps/v1", "Deployment") => self.deployments.push(strict(doc)?),
            ("batch/v1", "Job") => self.jobs.push(strict(doc)?),
            ("policy/v1", "PodDisruptionBudget") => self.pdbs.push(strict(doc)?),
            ("networking.k8s.io/v1", "NetworkPolicy") => self.network_policies.push(strict(doc)?),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                self.cluster_roles.push(strict(doc)?)
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                self.cluster_role_bindings.push(strict(doc)?)
            }
            ("rbac.authorization.k8s.io/v1", "Role") => self.roles.push(strict(doc)?),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                self.role_bindings.push(strict(doc)?)
            }
            ("apiregistration.k8s.io/v1", "APIService") => self.api_services.push(strict(doc)?),
            ("autoscaling/v2", "HorizontalPodAutoscaler") => self.hpas.push(strict(doc)?),
            ("cert-manager.io/v1", "Issuer") => self
                .issuers
                .push(serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?),
            ("cert-manager.io/v1", "Certificate") => {
                let c: Certificate =
                    serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
                c.validate()?;
                self.certificates.push(c);
            }
            _ => {
                return Err(format!(
                    "{api_version} {kind} is not a kind these manifests are expected to hold"
                ))
            }
        }
        Ok(())
    }

    /// Pod templates of the workloads, with their namespace and a name for messages.
    fn pod_templates(&self) -> Vec<(String, String, &PodTemplateSpec)> {
        let deployments = self.deployments.iter().map(|d| {
            (
                ns(&d.metadata),
                format!("Deployment {}", name(&d.metadata)),
                &d.spec.template,
            )
        });
        let jobs = self.jobs.iter().filter_map(|j| {
            Some((
                ns(&j.metadata),
                format!("Job {}", name(&j.metadata)),
                &j.spec.as_ref()?.template,
            ))
        });
        deployments.chain(jobs).collect()
    }

    fn deployment(&self, namespace: &str, n: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| ns(&d.metadata) == namespace && name(&d.metadata) == n)
    }

    fn config_map(&self, namespace: &str, n: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| ns(&c.metadata) == namespace && name(&c.metadata) == n)
    }
}

fn name(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

fn ns(m: &ObjectMeta) -> String {
    m.namespace.clone().unwrap_or_default()
}

fn labels_of(m: &Option<ObjectMeta>) -> BTreeMap<String, String> {
    m.as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn annotations_of(m: &Option<ObjectMeta>) -> BTreeMap<String, String> {
    m.as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

/// The string form of a label selector, as the HPA sends it.
fn selector_string(s: &LabelSelector) -> String {
    let mut parts: Vec<String> = s
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    for e in s.match_expressions.iter().flatten() {
        let values = e.values.clone().unwrap_or_default().join(",");
        parts.push(match e.operator.as_str() {
            "In" => format!("{} in ({values})", e.key),
            "NotIn" => format!("{} notin ({values})", e.key),
            "Exists" => e.key.clone(),
            "DoesNotExist" => format!("!{}", e.key),
            other => panic!("unknown selector operator {other}"),
        });
    }
    parts.join(",")
}

fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::parse(&selector_string(selector))
        .unwrap_or_else(|e| panic!("selector {selector:?}: {e}"))
        .matches(labels)
}

// ---------------------------------------------------------------------------------------------
// Kustomize: kubectl's rendering, and a reading of the kustomization files without it.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Kustomization {
    api_version: String,
    kind: String,
    #[serde(default)]
    resources: Vec<String>,
    #[serde(default)]
    components: Vec<String>,
    namespace: Option<String>,
    #[serde(default)]
    config_map_generator: Vec<Generator>,
    #[serde(default)]
    secret_generator: Vec<Generator>,
    #[serde(default)]
    patches: Vec<KustomizePatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Generator {
    name: String,
    namespace: Option<String>,
    #[serde(default)]
    files: Vec<String>,
    options: Option<GeneratorOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct GeneratorOptions {
    #[serde(default)]
    disable_name_suffix_hash: bool,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KustomizePatch {
    target: Option<Value>,
    patch: Option<String>,
    path: Option<String>,
}

fn kustomization(dir: &Path) -> Kustomization {
    let file = dir.join("kustomization.yaml");
    let k: Kustomization =
        serde_yaml::from_str(&read(&file)).unwrap_or_else(|e| panic!("{}: {e}", rel(&file)));
    let expected = match k.kind.as_str() {
        "Kustomization" => "kustomize.config.k8s.io/v1beta1",
        "Component" => "kustomize.config.k8s.io/v1alpha1",
        other => panic!("{}: unknown kind {other}", rel(&file)),
    };
    assert_eq!(k.api_version, expected, "{}", rel(&file));
    for p in &k.patches {
        assert!(
            p.patch.is_some() != p.path.is_some() && p.target.is_some(),
            "{}: a patch needs a target and exactly one of patch and path",
            rel(&file)
        );
    }
    k
}

/// Kinds without a namespace, which kustomize's `namespace:` leaves alone.
fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "APIService"
    )
}

/// What kustomize would render for `dir`, read from the kustomization files: resources,
/// components and generators, without patches. Generated names carry no hash.
fn render_offline(dir: &Path) -> Vec<(String, Value)> {
    let k = kustomization(dir);
    let mut docs = Vec::new();
    for entry in k.resources.iter().chain(&k.components) {
        let path = dir.join(entry);
        assert!(path.exists(), "{}: {entry} does not exist", rel(dir));
        if path.is_dir() {
            docs.extend(render_offline(&path));
        } else {
            let origin = rel(&path);
            docs.extend(
                yaml_documents(&read(&path), &origin)
                    .into_iter()
                    .map(|d| (origin.clone(), d)),
            );
        }
    }
    let generators = k
        .config_map_generator
        .iter()
        .map(|g| ("ConfigMap", g))
        .chain(k.secret_generator.iter().map(|g| ("Secret", g)));
    for (kind, g) in generators {
        let mut data = serde_json::Map::new();
        for f in &g.files {
            let (key, file) = f.split_once('=').unwrap_or((f.as_str(), f.as_str()));
            let key = Path::new(key)
                .file_name()
                .expect("file name")
                .to_string_lossy();
            data.insert(key.to_string(), Value::String(read(&dir.join(file))));
        }
        let labels = g.options.as_ref().map(|o| o.labels.clone());
        let mut doc = json!({
            "apiVersion": "v1",
            "kind": kind,
            "metadata": {"name": g.name, "labels": labels.unwrap_or_default()},
        });
        if let Some(n) = &g.namespace {
            doc["metadata"]["namespace"] = json!(n);
        }
        // stringData: the Secret's content in clear, as kustomize's data is in base64.
        doc[if kind == "Secret" {
            "stringData"
        } else {
            "data"
        }] = Value::Object(data);
        // kustomize appends a hash of the content to the name unless told not to.
        let hashed = !g
            .options
            .as_ref()
            .is_some_and(|o| o.disable_name_suffix_hash);
        let origin = format!(
            "{} (generated{})",
            rel(dir),
            if hashed { ", hashed" } else { "" }
        );
        docs.push((origin, doc));
    }
    if let Some(namespace) = &k.namespace {
        for (_, doc) in &mut docs {
            if !cluster_scoped(doc["kind"].as_str().unwrap_or_default()) {
                doc["metadata"]["namespace"] = json!(namespace);
            }
        }
    }
    docs
}

fn render_kubectl(dir: &Path) -> Result<Vec<(String, Value)>, String> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let origin = format!("kubectl kustomize {}", rel(dir));
    Ok(
        yaml_documents(&String::from_utf8_lossy(&out.stdout), &origin)
            .into_iter()
            .map(|d| (origin.clone(), d))
            .collect(),
    )
}

/// The rendering of `dir`, and whether patches were applied (kubectl) or not.
fn render(dir: &Path) -> (Vec<(String, Value)>, bool) {
    if has_kubectl() {
        let docs =
            render_kubectl(dir).unwrap_or_else(|e| panic!("kubectl kustomize {}: {e}", rel(dir)));
        (docs, true)
    } else {
        (render_offline(dir), false)
    }
}

fn inventory(dir: &Path) -> (Inventory, bool) {
    let (docs, patched) = render(dir);
    let inv = Inventory::from_documents(&docs)
        .unwrap_or_else(|e| panic!("{}:\n  {}", rel(dir), e.join("\n  ")));
    (inv, patched)
}

/// Every directory holding a kustomization (not a component), the ones users apply.
fn kustomizations() -> Vec<PathBuf> {
    files_under(&repo().join("manifests"), &["yaml"])
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .map(|p| p.parent().expect("parent").to_path_buf())
        .filter(|d| kustomization(d).kind == "Kustomization")
        .collect()
}

fn overlays() -> Vec<PathBuf> {
    let dir = repo().join("manifests/overlays");
    let mut out: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("manifests/overlays")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("kustomization.yaml").exists())
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no overlays in manifests/overlays");
    out
}

// ---------------------------------------------------------------------------------------------
// Cross-references within a rendered set.
// ---------------------------------------------------------------------------------------------

fn containers(t: &PodTemplateSpec) -> Vec<&Container> {
    t.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .collect()
}

fn container_ports(c: &Container) -> Vec<(Option<String>, i32)> {
    c.ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.container_port))
        .collect()
}

/// The number a port reference resolves to in a container, if it does.
fn resolve_port(c: &Container, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::Int(n) => container_ports(c).iter().any(|(_, p)| p == n).then_some(*n),
        IntOrString::String(s) => container_ports(c)
            .into_iter()
            .find(|(n, _)| n.as_deref() == Some(s.as_str()))
            .map(|(_, p)| p),
    }
}

/// The value of `--flag value` or `--flag=value` in a container's arguments.
fn arg_value(c: &Container, flag: &str) -> Option<String> {
    let args = c.args.clone().unwrap_or_default();
    args.iter().enumerate().find_map(|(i, a)| {
        if a == flag {
            args.get(i + 1).cloned()
        } else {
            a.strip_prefix(&format!("{flag}=")).map(str::to_string)
        }
    })
}

/// Keys cert-manager writes into a Certificate's Secret.
const CERT_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// Follows a file path in a container to the ConfigMap or Secret key behind it. Returns the
/// content when it is a ConfigMap's.
fn file_behind(
    inv: &Inventory,
    namespace: &str,
    t: &PodTemplateSpec,
    c: &Container,
    path: &str,
) -> Result<Option<String>, String> {
    let mount = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/'))))
        .max_by_key(|m| m.mount_path.len())
        .ok_or_else(|| format!("{path} is not under any volume mount of {}", c.name))?;
    let inner = &path[mount.mount_path.trim_end_matches('/').len() + 1..];
    let volume = t
        .spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .find(|v| v.name == mount.name)
        .ok_or_else(|| format!("volume {} is not defined", mount.name))?;
    let key_for = |items: &Option<Vec<k8s_openapi::api::core::v1::KeyToPath>>| match items {
        Some(items) => items
            .iter()
            .find(|i| i.path == inner)
            .map(|i| i.key.clone())
            .ok_or_else(|| format!("{path}: volume {} has no item {inner}", volume.name)),
        None => Ok(inner.to_string()),
    };
    if let Some(cm) = &volume.config_map {
        let key = key_for(&cm.items)?;
        let map = inv
            .config_map(namespace, &cm.name)
            .ok_or_else(|| format!("ConfigMap {namespace}/{} does not exist", cm.name))?;
        let data = map.data.clone().unwrap_or_default();
        return data
            .get(&key)
            .cloned()
            .map(Some)
            .ok_or_else(|| format!("ConfigMap {} has no key {key}", cm.name));
    }
    if let Some(secret) = &volume.secret {
        let key = key_for(&secret.items)?;
        let secret_name = secret.secret_name.clone().unwrap_or_default();
        let from_certificate = inv
            .certificates
            .iter()
            .any(|c| ns(&c.metadata) == namespace && c.spec.secret_name == secret_name);
        if !from_certificate || !CERT_KEYS.contains(&key.as_str()) {
            return Err(format!(
                "{path}: Secret {secret_name} key {key} is made by nothing in this set"
            ));
        }
        return Ok(None);
    }
    Err(format!(
        "{path}: volume {} is neither a ConfigMap nor a Secret",
        volume.name
    ))
}

/// Does some rule grant `verb` on `resource` of API group `group`?
fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    let has = |list: &Option<Vec<String>>, want: &str| {
        list.iter().flatten().any(|x| x == want || x == "*")
    };
    rules.iter().any(|r| {
        has(&r.api_groups, group)
            && has(&r.resources, resource)
            && r.verbs.iter().any(|v| v == verb || v == "*")
    })
}

/// Rules bound cluster-wide to the ServiceAccount `namespace/sa`.
fn cluster_rules_of<'a>(inv: &'a Inventory, namespace: &str, sa: &str) -> Vec<&'a PolicyRule> {
    inv.cluster_role_bindings
        .iter()
        .filter(|b| {
            b.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == sa
                    && s.namespace.as_deref() == Some(namespace)
            })
        })
        .filter_map(|b| {
            inv.cluster_roles
                .iter()
                .find(|r| name(&r.metadata) == b.role_ref.name)
        })
        .flat_map(|r| r.rules.iter().flatten())
        .collect()
}

/// Objects that Kubernetes itself provides, which bindings may refer to.
const BUILTIN_CLUSTER_ROLES: [&str; 1] = ["system:auth-delegator"];
const BUILTIN_ROLES: [(&str, &str); 1] =
    [("kube-system", "extension-apiserver-authentication-reader")];
const BUILTIN_SERVICE_ACCOUNTS: [(&str, &str); 1] = [("kube-system", "horizontal-pod-autoscaler")];

fn cross_references(inv: &Inventory, patched: bool) -> Vec<String> {
    let mut errors = Vec::new();
    let sa_exists = |namespace: &str, n: &str| {
        inv.service_accounts
            .iter()
            .any(|s| ns(&s.metadata) == namespace && name(&s.metadata) == n)
            || BUILTIN_SERVICE_ACCOUNTS.contains(&(namespace, n))
    };

    // Bindings: every role and ServiceAccount they name exists.
    let binding_subjects = inv
        .cluster_role_bindings
        .iter()
        .map(|b| {
            (
                format!("ClusterRoleBinding {}", name(&b.metadata)),
                String::new(),
                &b.role_ref,
                &b.subjects,
            )
        })
        .chain(inv.role_bindings.iter().map(|b| {
            (
                format!("RoleBinding {}", name(&b.metadata)),
                ns(&b.metadata),
                &b.role_ref,
                &b.subjects,
            )
        }));
    for (what, namespace, role, subjects) in binding_subjects {
        let role_ok = match role.kind.as_str() {
            "ClusterRole" => {
                inv.cluster_roles
                    .iter()
                    .any(|r| name(&r.metadata) == role.name)
                    || BUILTIN_CLUSTER_ROLES.contains(&role.name.as_str())
            }
            "Role" => {
                inv.roles
                    .iter()
                    .any(|r| ns(&r.metadata) == namespace && name(&r.metadata) == role.name)
                    || BUILTIN_ROLES.contains(&(namespace.as_str(), role.name.as_str()))
            }
            _ => false,
        };
        if !role_ok {
            errors.push(format!(
                "{what}: {} {} does not exist",
                role.kind, role.name
            ));
        }
        for s in subjects.iter().flatten() {
            let subject_ns = s.namespace.clone().unwrap_or_default();
            if s.kind == "ServiceAccount" && !sa_exists(&subject_ns, &s.name) {
                errors.push(format!(
                    "{what}: ServiceAccount {subject_ns}/{} does not exist",
                    s.name
                ));
            }
        }
    }

    // Workloads: selectors, ServiceAccounts, volumes, mounts, probe ports.
    for d in &inv.deployments {
        let spec = &d.spec;
        if !selects(&spec.selector, &labels_of(&spec.template.metadata)) {
            errors.push(format!(
                "Deployment {}: its selector does not select its pods",
                name(&d.metadata)
            ));
        }
    }
    for (namespace, what, t) in inv.pod_templates() {
        let spec = t.spec.as_ref().expect("pod spec");
        if let Some(sa) = &spec.service_account_name {
            if !sa_exists(&namespace, sa) {
                errors.push(format!(
                    "{what}: ServiceAccount {namespace}/{sa} does not exist"
                ));
            }
        }
        let volumes: BTreeSet<&str> = spec
            .volumes
            .iter()
            .flatten()
            .map(|v| v.name.as_str())
            .collect();
        for v in spec.volumes.iter().flatten() {
            if let Some(cm) = &v.config_map {
                match inv.config_map(&namespace, &cm.name) {
                    None => errors.push(format!(
                        "{what}: ConfigMap {namespace}/{} does not exist",
                        cm.name
                    )),
                    Some(map) => {
                        let data = map.data.clone().unwrap_or_default();
                        for item in cm.items.iter().flatten() {
                            if !data.contains_key(&item.key) {
                                errors.push(format!(
                                    "{what}: ConfigMap {} has no key {}",
                                    cm.name, item.key
                                ));
                            }
                        }
                    }
                }
            }
            if let Some(secret) = &v.secret {
                let secret_name = secret.secret_name.clone().unwrap_or_default();
                let certificate = inv
                    .certificates
                    .iter()
                    .any(|c| ns(&c.metadata) == namespace && c.spec.secret_name == secret_name);
                let secret_obj = inv
                    .secrets
                    .iter()
                    .any(|s| ns(&s.metadata) == namespace && name(&s.metadata) == secret_name);
                if !certificate && !secret_obj {
                    errors.push(format!(
                        "{what}: Secret {namespace}/{secret_name} is made by nothing in this set"
                    ));
                }
                if certificate {
                    for item in secret.items.iter().flatten() {
                        if !CERT_KEYS.contains(&item.key.as_str()) {
                            errors.push(format!(
                                "{what}: a certificate Secret has no key {}",
                                item.key
                            ));
                        }
                    }
                }
            }
        }
        for c in containers(t) {
            let mounts: Vec<&str> = c
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.mount_path.trim_end_matches('/'))
                .collect();
            for m in c.volume_mounts.iter().flatten() {
                if !volumes.contains(m.name.as_str()) {
                    errors.push(format!(
                        "{what}: container {} mounts undefined volume {}",
                        c.name, m.name
                    ));
                }
                // ConfigMap and Secret volumes are mounted read-only: the runtime cannot create
                // the mount point of a volume nested inside one, and the container fails.
                if let Some(parent) = mounts
                    .iter()
                    .find(|p| m.mount_path.starts_with(&format!("{p}/")))
                {
                    errors.push(format!(
                        "{what}: container {} mounts {} inside {parent}",
                        c.name, m.mount_path
                    ));
                }
            }
            let probes = [&c.liveness_probe, &c.readiness_probe, &c.startup_probe];
            for p in probes.into_iter().flatten() {
                let port = p
                    .http_get
                    .as_ref()
                    .map(|h| &h.port)
                    .or(p.tcp_socket.as_ref().map(|t| &t.port));
                if let Some(port) = port {
                    if resolve_port(c, port).is_none() {
                        errors.push(format!(
                            "{what}: container {} probes port {port:?} it does not declare",
                            c.name
                        ));
                    }
                }
            }
        }
    }

    // Services reach the ports of the pods they select.
    for s in &inv.services {
        let spec = s.spec.as_ref().expect("Service spec");
        let selector = spec.selector.clone().unwrap_or_default();
        let backends: Vec<&PodTemplateSpec> = inv
            .pod_templates()
            .into_iter()
            .filter(|(n, _, t)| {
                *n == ns(&s.metadata) && {
                    let labels = labels_of(&t.metadata);
                    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
                }
            })
            .map(|(_, _, t)| t)
            .collect();
        if backends.is_empty() {
            errors.push(format!("Service {}: selects no pods", name(&s.metadata)));
        }
        for p in spec.ports.iter().flatten() {
            let target = p.target_port.clone().unwrap_or(IntOrString::Int(p.port));
            for t in &backends {
                if !containers(t)
                    .iter()
                    .any(|c| resolve_port(c, &target).is_some())
                {
                    errors.push(format!(
                        "Service {}: target port {target:?} is on no container",
                        name(&s.metadata)
                    ));
                }
            }
        }
    }

    // Disruption budgets and network policies apply to pods that exist.
    for p in &inv.pdbs {
        let spec = p.spec.as_ref().expect("PDB spec");
        let selector = spec.selector.clone().unwrap_or_default();
        let targets: Vec<&Deployment> = inv
            .deployments
            .iter()
            .filter(|d| {
                ns(&d.metadata) == ns(&p.metadata)
                    && selects(&selector, &labels_of(&d.spec.template.metadata))
            })
            .collect();
        if targets.is_empty() {
            errors.push(format!(
                "PodDisruptionBudget {}: selects no Deployment",
                name(&p.metadata)
            ));
        }
        if let Some(IntOrString::Int(min)) = spec.min_available {
            for d in targets {
                let replicas = d.spec.replicas.unwrap_or(1);
                // minAvailable equal to the replica count would block every node drain.
                if replicas <= min {
                    errors.push(format!(
                        "PodDisruptionBudget {}: minAvailable {min} leaves no disruption to {} replicas",
                        name(&p.metadata),
                        replicas
                    ));
                }
            }
        }
    }
    for np in &inv.network_policies {
        let selector = np
            .spec
            .as_ref()
            .and_then(|s| s.pod_selector.clone())
            .unwrap_or_default();
        if !inv
            .pod_templates()
            .iter()
            .any(|(n, _, t)| *n == ns(&np.metadata) && selects(&selector, &labels_of(&t.metadata)))
        {
            errors.push(format!(
                "NetworkPolicy {}: selects no pods",
                name(&np.metadata)
            ));
        }
    }

    // APIServices: name, Service and port, and (once patches are applied) one trust setting.
    let priority = |n: &str| {
        inv.api_services
            .iter()
            .find(|a| name(&a.metadata) == n)
            .and_then(|a| a.spec.as_ref())
            .map(|s| s.version_priority)
    };
    if let (Some(v1), Some(v2)) = (
        priority("v1beta1.custom.metrics.k8s.io"),
        priority("v1beta2.custom.metrics.k8s.io"),
    ) {
        // The highest versionPriority is the group's preferred version, which the HPA reads.
        if v2 <= v1 {
            errors
                .push("v1beta2.custom.metrics.k8s.io must have the higher versionPriority".into());
        }
    }
    for a in &inv.api_services {
        let what = format!("APIService {}", name(&a.metadata));
        let spec = a.spec.as_ref().expect("APIService spec");
        let group = spec.group.clone().unwrap_or_default();
        let version = spec.version.clone().unwrap_or_default();
        if name(&a.metadata) != format!("{version}.{group}") {
            errors.push(format!("{what}: the name must be {version}.{group}"));
        }
        let Some(svc_ref) = &spec.service else {
            errors.push(format!("{what}: no service"));
            continue;
        };
        let svc_ns = svc_ref.namespace.clone().unwrap_or_default();
        let svc_name = svc_ref.name.clone().unwrap_or_default();
        let port = svc_ref.port.unwrap_or(443);
        match inv
            .services
            .iter()
            .find(|s| ns(&s.metadata) == svc_ns && name(&s.metadata) == svc_name)
        {
            None => errors.push(format!(
                "{what}: Service {svc_ns}/{svc_name} does not exist"
            )),
            Some(s) => {
                let ports = s
                    .spec
                    .as_ref()
                    .and_then(|s| s.ports.clone())
                    .unwrap_or_default();
                if !ports.iter().any(|p| p.port == port) {
                    errors.push(format!("{what}: Service {svc_name} has no port {port}"));
                }
            }
        }
        let skip = spec.insecure_skip_tls_verify == Some(true);
        let bundle = spec.ca_bundle.as_ref().is_some_and(|b| !b.0.is_empty());
        let inject = annotations_of(&Some(a.metadata.clone()))
            .get(INJECT_CA)
            .cloned();
        if patched
            && [skip, bundle, inject.is_some()]
                .iter()
                .filter(|x| **x)
                .count()
                != 1
        {
            errors.push(format!(
                "{what}: needs exactly one of insecureSkipTLSVerify, caBundle and {INJECT_CA}"
            ));
        }
        if let Some(inject) = inject {
            let Some((cert_ns, cert_name)) = inject.split_once('/') else {
                errors.push(format!(
                    "{what}: {INJECT_CA} must be <namespace>/<certificate>"
                ));
                continue;
            };
            match inv
                .certificates
                .iter()
                .find(|c| ns(&c.metadata) == cert_ns && name(&c.metadata) == cert_name)
            {
                None => errors.push(format!("{what}: Certificate {inject} does not exist")),
                Some(c) => {
                    // The aggregator verifies the serving certificate for this name.
                    let host = format!("{svc_name}.{svc_ns}.svc");
                    if !c.spec.dns_names.contains(&host) {
                        errors.push(format!(
                            "{what}: Certificate {inject} is not valid for {host}"
                        ));
                    }
                    let served = backend_deployments(inv, &svc_ns, &svc_name)
                        .iter()
                        .all(|d| {
                            let t = &d.spec.template;
                            t.spec.iter().flat_map(|s| &s.containers).all(|ct| {
                                arg_value(ct, "--tls-cert-file").is_some_and(|f| {
                                    file_behind(inv, &svc_ns, t, ct, &f).is_ok()
                                        && t.spec
                                            .iter()
                                            .flat_map(|s| s.volumes.iter().flatten())
                                            .any(|v| {
                                                v.secret
                                                    .as_ref()
                                                    .and_then(|s| s.secret_name.as_deref())
                                                    == Some(c.spec.secret_name.as_str())
                                            })
                                })
                            })
                        });
                    if !served {
                        errors.push(format!(
                            "{what}: the pods behind it do not serve the certificate of {inject}"
                        ));
                    }
                }
            }
        }
    }
    for c in &inv.certificates {
        let issuer = &c.spec.issuer_ref;
        if issuer.kind != "Issuer"
            || !inv
                .issuers
                .iter()
                .any(|i| ns(&i.metadata) == ns(&c.metadata) && name(&i.metadata) == issuer.name)
        {
            errors.push(format!(
                "Certificate {}: issuer {} does not exist",
                name(&c.metadata),
                issuer.name
            ));
        }
    }
    for i in &inv.issuers {
        if let Some(ca) = &i.spec.ca {
            if !inv.certificates.iter().any(|c| {
                ns(&c.metadata) == ns(&i.metadata)
                    && c.spec.secret_name == ca.secret_name
                    && c.spec.is_ca == Some(true)
            }) {
                errors.push(format!(
                    "Issuer {}: no CA Certificate writes {}",
                    name(&i.metadata),
                    ca.secret_name
                ));
            }
        }
    }
    errors
}

/// The Deployments whose pods a Service selects.
fn backend_deployments<'a>(
    inv: &'a Inventory,
    namespace: &str,
    service: &str,
) -> Vec<&'a Deployment> {
    let Some(s) = inv
        .services
        .iter()
        .find(|s| ns(&s.metadata) == namespace && name(&s.metadata) == service)
    else {
        return Vec::new();
    };
    let selector = s
        .spec
        .as_ref()
        .and_then(|s| s.selector.clone())
        .unwrap_or_default();
    inv.deployments
        .iter()
        .filter(|d| {
            let labels = labels_of(&d.spec.template.metadata);
            ns(&d.metadata) == namespace && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
        })
        .collect()
}

/// What issue 4 asks of the server's own Deployment, and the RBAC it needs.
fn server_checks(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
    let services: BTreeSet<(String, String)> = inv
        .api_services
        .iter()
        .filter_map(|a| a.spec.as_ref()?.service.as_ref())
        .map(|s| {
            (
                s.namespace.clone().unwrap_or_default(),
                s.name.clone().unwrap_or_default(),
            )
        })
        .collect();
    let services: Vec<(String, String)> = services.into_iter().collect();
    let [(svc_ns, svc_name)] = &services[..] else {
        return vec!["the APIServices should all point at one Service".into()];
    };
    let (svc_ns, svc_name) = (svc_ns.clone(), svc_name.clone());
    let backends = backend_deployments(inv, &svc_ns, &svc_name);
    let [d] = backends[..] else {
        return vec![format!(
            "Service {svc_name} should select exactly one Deployment"
        )];
    };
    let what = format!("Deployment {}", name(&d.metadata));
    let spec = &d.spec;
    if spec.replicas != Some(2) {
        errors.push(format!(
            "{what}: 2 replicas, so that one can go while the other serves"
        ));
    }
    let t = &spec.template;
    let pod = t.spec.as_ref().expect("pod spec");
    let pod_labels = labels_of(&t.metadata);
    let anti = pod
        .affinity
        .as_ref()
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .is_some_and(|a| {
            let preferred = a
                .preferred_during_scheduling_ignored_during_execution
                .iter()
                .flatten()
                .map(|w| &w.pod_affinity_term);
            let required = a
                .required_during_scheduling_ignored_during_execution
                .iter()
                .flatten();
            preferred.chain(required).any(|term| {
                term.topology_key == "kubernetes.io/hostname"
                    && term
                        .label_selector
                        .as_ref()
                        .is_some_and(|s| selects(s, &pod_labels))
            })
        });
    if !anti {
        errors.push(format!(
            "{what}: no anti-affinity spreading the replicas over nodes"
        ));
    }
    let [c] = &pod.containers[..] else {
        return vec![format!("{what}: one container expected")];
    };
    let version = env!("CARGO_PKG_VERSION");
    if !c
        .image
        .as_deref()
        .is_some_and(|i| i.ends_with(&format!(":{version}")))
    {
        errors.push(format!(
            "{what}: the image tag should be the crate version {version}"
        ));
    }
    for (probe, path) in [
        (&c.liveness_probe, "/livez"),
        (&c.readiness_probe, "/readyz"),
    ] {
        let ok = probe
            .as_ref()
            .and_then(|p| p.http_get.as_ref())
            .is_some_and(|h| {
                h.path.as_deref() == Some(path) && h.scheme.as_deref() == Some("HTTPS")
            });
        if !ok {
            errors.push(format!("{what}: needs an HTTPS probe on {path}"));
        }
    }
    let sc = c.security_context.clone().unwrap_or_default();
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    if sc.read_only_root_filesystem != Some(true)
        || sc.allow_privilege_escalation != Some(false)
        || !(sc.run_as_non_root == Some(true) || pod_sc.run_as_non_root == Some(true))
    {
        errors.push(format!(
            "{what}: read-only root, non-root, no privilege escalation"
        ));
    }
    if c.resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .is_none()
    {
        errors.push(format!("{what}: resource requests"));
    }
    // The port the Service sends to is the one the server listens on.
    let svc = inv
        .services
        .iter()
        .find(|s| ns(&s.metadata) == svc_ns && name(&s.metadata) == svc_name)
        .expect("service");
    let target = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default()
        .iter()
        .find_map(|p| p.target_port.clone())
        .and_then(|t| resolve_port(c, &t));
    let listen = arg_value(c, "--secure-port")
        .and_then(|p| p.parse::<i32>().ok())
        .unwrap_or(6443);
    if target != Some(listen) {
        errors.push(format!(
            "{what}: listens on {listen}, the Service sends to {target:?}"
        ));
    }
    // The API server must be let in on that port.
    let admitted = inv.network_policies.iter().any(|np| {
        let Some(s) = &np.spec else { return false };
        ns(&np.metadata) == svc_ns
            && s.pod_selector
                .as_ref()
                .is_some_and(|sel| selects(sel, &pod_labels))
            && s.ingress.iter().flatten().any(|rule| {
                rule.ports
                    .iter()
                    .flatten()
                    .any(|p| p.port.as_ref().and_then(|port| resolve_port(c, port)) == Some(listen))
            })
    });
    if !admitted {
        errors.push(format!("{what}: no NetworkPolicy admits port {listen}"));
    }
    if !inv.pdbs.iter().any(|p| {
        ns(&p.metadata) == svc_ns
            && p.spec
                .as_ref()
                .and_then(|s| s.selector.as_ref())
                .is_some_and(|s| selects(s, &pod_labels))
    }) {
        errors.push(format!("{what}: no PodDisruptionBudget"));
    }
    // The configuration file it is given is in the ConfigMap, and valid.
    match arg_value(c, "--config") {
        None => errors.push(format!("{what}: no --config")),
        Some(path) => match file_behind(inv, &svc_ns, t, c, &path) {
            Ok(Some(text)) => {
                match Config::from_yaml(&text, &path) {
                    Err(e) => errors.push(format!("{what}: {e}")),
                    Ok(cfg) => {
                        // The kubelet kills the pod after its grace period, cutting off the
                        // requests the server is still finishing.
                        let grace = pod.termination_grace_period_seconds.unwrap_or(30);
                        let drain = cfg.server.shutdown_grace_period.as_secs();
                        if u64::try_from(grace).unwrap_or(0) <= drain {
                            errors.push(format!(
                                "{what}: terminationGracePeriodSeconds {grace} does not cover the server's {drain} s shutdown"
                            ));
                        }
                    }
                }
            }
            Ok(None) => errors.push(format!("{what}: {path} should come from a ConfigMap")),
            Err(e) => errors.push(format!("{what}: {e}")),
        },
    }
    // RBAC: delegated authentication and authorization, the pod cache, the HPA's access.
    let sa = pod
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    let subject_is_server = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount"
                && s.name == sa
                && s.namespace.as_deref() == Some(svc_ns.as_str())
        })
    };
    if !inv
        .cluster_role_bindings
        .iter()
        .any(|b| b.role_ref.name == "system:auth-delegator" && subject_is_server(&b.subjects))
    {
        errors.push("no system:auth-delegator ClusterRoleBinding for the server".into());
    }
    if !inv.role_bindings.iter().any(|b| {
        ns(&b.metadata) == "kube-system"
            && b.role_ref.kind == "Role"
            && b.role_ref.name == "extension-apiserver-authentication-reader"
            && subject_is_server(&b.subjects)
    }) {
        errors
            .push("no extension-apiserver-authentication-reader RoleBinding in kube-system".into());
    }
    let server_rules: Vec<PolicyRule> = cluster_rules_of(inv, &svc_ns, &sa)
        .into_iter()
        .cloned()
        .collect();
    for verb in ["get", "list", "watch"] {
        if !grants(&server_rules, "", "pods", verb) {
            errors.push(format!("the server may not {verb} pods (pod cache)"));
        }
    }
    let hpa_rules: Vec<PolicyRule> =
        cluster_rules_of(inv, "kube-system", "horizontal-pod-autoscaler")
            .into_iter()
            .cloned()
            .collect();
    for group in ["custom.metrics.k8s.io", "external.metrics.k8s.io"] {
        for verb in ["get", "list"] {
            if !grants(&hpa_rules, group, "flink_busy_time_max", verb) {
                errors.push(format!("the HPA controller may not {verb} {group}"));
            }
        }
    }
    errors
}

/// (kind, namespace, name) of each object, with kustomize's name hash taken off generated ones.
fn identities(
    docs: &[(String, Value)],
    generated: &BTreeSet<String>,
) -> BTreeSet<(String, String, String)> {
    docs.iter()
        .map(|(_, d)| {
            let kind = d["kind"].as_str().unwrap_or_default().to_string();
            let mut n = d["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            if let Some(base) = generated.iter().find(|g| n.starts_with(&format!("{g}-"))) {
                n = base.clone();
            }
            (
                kind,
                d["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                n,
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

/// YAML files that are not Kubernetes objects; each has a test of its own below.
const CONFIG_FILES: [&str; 3] = [
    "manifests/base/flink-hpa-bridge.yaml",
    "manifests/flink/config.yaml",
    "manifests/prometheus/scrape-configs.yaml",
];

#[test]
fn every_yaml_document_parses_into_its_kubernetes_type() {
    let mut errors = Vec::new();
    let mut objects = 0;
    let files = files_under(&repo().join("manifests"), &["yaml", "yml"])
        .into_iter()
        .chain(files_under(&repo().join("hpa-examples"), &["yaml", "yml"]));
    for path in files {
        let origin = rel(&path);
        if CONFIG_FILES.contains(&origin.as_str()) {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "kustomization.yaml") {
            kustomization(path.parent().expect("parent"));
            continue;
        }
        let docs = yaml_documents(&read(&path), &origin);
        if docs.is_empty() {
            errors.push(format!("{origin}: no document"));
        }
        for doc in docs {
            if doc.get("apiVersion").is_none() || doc.get("kind").is_none() {
                errors.push(format!(
                    "{origin}: not a Kubernetes object and not a known config file"
                ));
                continue;
            }
            objects += 1;
            if let Err(e) = Inventory::from_documents(&[(origin.clone(), doc)]) {
                errors.extend(e);
            }
        }
    }
    assert!(errors.is_empty(), "\n  {}", errors.join("\n  "));
    assert!(objects > 20, "only {objects} objects found");

    // The same check on a Deployment with a misspelt field and a misplaced one: both must be
    // reported, or the check above proves nothing.
    let bad = yaml_documents(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 2\n  \
         selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n    \
         spec:\n      containers:\n        - name: c\n          image: i\n          \
         readOnlyRootFilesystem: true\n",
        "inline",
    );
    let e = Inventory::from_documents(&[("inline".into(), bad[0].clone())])
        .err()
        .expect("unknown fields must be reported")
        .join(" ");
    assert!(e.contains(".spec.replica:"), "{e}");
    assert!(e.contains("containers[0].readOnlyRootFilesystem"), "{e}");
}

#[test]
fn every_kustomization_builds_and_references_what_it_renders() {
    let kubectl = has_kubectl();
    if !kubectl {
        eprintln!("kubectl not installed: kustomizations read without it, patches not applied");
    }
    for dir in kustomizations() {
        let (docs, patched) = render(&dir);
        assert!(!docs.is_empty(), "{}: renders nothing", rel(&dir));
        if patched {
            // The reading without kubectl, which CI machines without kubectl rely on, must
            // find the same objects kubectl renders.
            let offline = render_offline(&dir);
            let generated: BTreeSet<String> = offline
                .iter()
                .filter(|(o, _)| o.ends_with(", hashed)"))
                .map(|(_, d)| {
                    d["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string()
                })
                .collect();
            assert_eq!(
                identities(&offline, &generated),
                identities(&docs, &generated),
                "{}: the offline reading differs from kubectl kustomize",
                rel(&dir)
            );
        }
        let inv = Inventory::from_documents(&docs)
            .unwrap_or_else(|e| panic!("{}:\n  {}", rel(&dir), e.join("\n  ")));
        let errors = cross_references(&inv, patched);
        assert!(
            errors.is_empty(),
            "{}:\n  {}",
            rel(&dir),
            errors.join("\n  ")
        );
    }

    // The overlays: the server's Deployment as issue 4 asks, and the variants it names.
    let mut without_external = false;
    let mut insecure = false;
    let mut verified = false;
    for dir in overlays() {
        let (inv, patched) = inventory(&dir);
        let errors = server_checks(&inv);
        assert!(
            errors.is_empty(),
            "{}:\n  {}",
            rel(&dir),
            errors.join("\n  ")
        );
        let names: BTreeSet<String> = inv.api_services.iter().map(|a| name(&a.metadata)).collect();
        // The per-pod signal needs the preferred custom metrics version everywhere.
        assert!(
            names.contains("v1beta2.custom.metrics.k8s.io"),
            "{}",
            rel(&dir)
        );
        without_external |= !names.contains("v1beta1.external.metrics.k8s.io");
        for a in &inv.api_services {
            insecure |= a.spec.as_ref().and_then(|s| s.insecure_skip_tls_verify) == Some(true);
            verified |= annotations_of(&Some(a.metadata.clone())).contains_key(INJECT_CA);
        }
        if !patched {
            insecure = true;
            verified = true;
        }
    }
    assert!(
        without_external,
        "no overlay leaves the external metrics slot to another adapter"
    );
    assert!(insecure, "no overlay with insecureSkipTLSVerify");
    assert!(verified, "no overlay with a cert-manager caBundle");
}

// ---------------------------------------------------------------------------------------------
// HPAs against the signals the server serves.
// ---------------------------------------------------------------------------------------------

fn server_config() -> Config {
    let path = repo().join("manifests/base/flink-hpa-bridge.yaml");
    Config::from_yaml(&read(&path), &rel(&path)).unwrap_or_else(|e| panic!("{e}"))
}

fn hpa_examples() -> Vec<(String, HorizontalPodAutoscaler)> {
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
fn selector_keys(kind: SignalType) -> Option<&'static [&'static [&'static str]]> {
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
fn check_series_selector(spec: &SignalSpec, selector: &str) -> Result<(), String> {
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
        combined |= metrics.len() > 1;
        if metrics.is_empty() {
            errors.push(format!("{what}: no metrics"));
        }
        for m in &metrics {
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
                    continue;
                }
            };
            let Some((metric, target)) = source else {
                errors.push(format!("{what}: {} metric without its source", m.type_));
                continue;
            };
            let what = format!("{what}: {}", metric.name);
            let Some(signal) = cfg.signals.iter().find(|s| s.name == metric.name) else {
                errors.push(format!("{what}: not a metric the configuration serves"));
                continue;
            };
            if signal.api() != api || (api == Api::Custom && signal.resource() != "pods") {
                errors.push(format!(
                    "{what}: served as {:?} {}, not as this HPA asks",
                    signal.api(),
                    signal.resource()
                ));
                continue;
            }
            used.insert(metric.name.clone());
            let quantity = match (target.type_.as_str(), api) {
                ("Value", Api::External) => target.value.as_ref(),
                ("AverageValue", _) => target.average_value.as_ref(),
                (t, _) => {
                    errors.push(format!("{what}: target type {t} does not apply"));
                    continue;
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

// ---------------------------------------------------------------------------------------------
// Flink.
// ---------------------------------------------------------------------------------------------

fn flatten(prefix: &str, v: &serde_yaml::Value, out: &mut BTreeMap<String, String>) {
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
fn flink_config() -> BTreeMap<String, String> {
    let path = repo().join("manifests/flink/config.yaml");
    let v: serde_yaml::Value =
        serde_yaml::from_str(&read(&path)).unwrap_or_else(|e| panic!("{}: {e}", rel(&path)));
    let mut out = BTreeMap::new();
    flatten("", &v, &mut out);
    out
}

/// The configuration keys of one Flink release: key -> (type, status).
struct FlinkKeys(BTreeMap<String, (String, String)>);

impl FlinkKeys {
    fn load(version: &str) -> Self {
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
    fn find(&self, key: &str) -> Option<&(String, String)> {
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

    fn check(&self, key: &str, value: &str) -> Result<(), String> {
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
fn flink_bytes(s: &str) -> u64 {
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
fn quantity_bytes(s: &str) -> u64 {
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
fn flink_millis(s: &str) -> u64 {
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
fn flink_pods(inv: &Inventory) -> Vec<(String, String, &PodTemplateSpec)> {
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

    let port = get("metrics.reporter.prom.port");
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
            file_behind(&inv, namespace, t, main, &format!("/opt/flink/conf/{file}"))
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
            Some(get("jobmanager.rpc.address")),
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
            limit >= flink_bytes(&get(size_key)),
            "{what}: memory limit below {size_key}"
        );
        assert!(
            container_ports(main)
                .iter()
                .any(|(_, p)| p.to_string() == get(rpc_key)),
            "{what}: {rpc_key} not declared as a container port"
        );
    }
    assert_eq!(
        roles,
        BTreeSet::from(["standalone-job".to_string(), "taskmanager".to_string()])
    );

    // TaskManagers reach the JobManager's RPC and blob ports through the named Service.
    let address = get("jobmanager.rpc.address");
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
            svc_ports.iter().any(|p| p.to_string() == get(k)),
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
fn declared_targets(manifest: &str) -> Vec<String> {
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
const OTHER_SERIES: [&str; 4] = [
    "kafka_consumergroup_lag",                              // kafka_exporter
    "pravega_controller_segments_count",                    // Pravega controller
    "kube_deployment_status_replicas",                      // kube-state-metrics
    "kube_horizontalpodautoscaler_status_desired_replicas", // kube-state-metrics
];

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
                    scrape.contains(&format!("\n{n}{{")) || OTHER_SERIES.contains(&n),
                    "panel {title:?}: {n} is no series Flink 1.20.5 or the listed exporters export"
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

// ---------------------------------------------------------------------------------------------
// End to end: the scrape jobs on a real Flink scrape, the server on what they collect.
// ---------------------------------------------------------------------------------------------

/// Serves `body` at any path on a loopback port, for as long as the test process lives.
fn serve_text(body: String) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("address").port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(body.as_bytes());
        }
    });
    port
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("address")
        .port()
}

/// A child process, killed when the test ends however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The sections of the real scrape's second capture (one JobManager, the TaskManager running
/// the source, the other TaskManagers), keyed by their header line.
fn scrape_sections() -> Vec<(String, String)> {
    let text = read(&repo().join("tests/data/flink-1.20.5-scrape.txt"));
    let part_b = &text[text.find("# PART B").expect("PART B")..];
    let mut sections: Vec<(String, String)> = Vec::new();
    for line in part_b.lines() {
        if line.starts_with("# =====") {
            sections.push((line.to_string(), String::new()));
        } else if let Some((_, body)) = sections.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    sections
}

/// Prometheus' name for a Kubernetes label or annotation key in discovery labels.
fn sd_name(key: &str) -> String {
    key.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

/// A static target standing in for a discovered pod: the discovery labels Prometheus'
/// kubernetes_sd_configs (role pod) gives it, from the pod template.
fn pod_target(t: &PodTemplateSpec, namespace: &str, pod: &str, phase: &str, port: u16) -> Value {
    let mut labels = serde_json::Map::new();
    labels.insert("__meta_kubernetes_namespace".into(), json!(namespace));
    labels.insert("__meta_kubernetes_pod_name".into(), json!(pod));
    labels.insert("__meta_kubernetes_pod_ip".into(), json!("127.0.0.1"));
    labels.insert("__meta_kubernetes_pod_phase".into(), json!(phase));
    for (k, v) in labels_of(&t.metadata) {
        labels.insert(
            format!("__meta_kubernetes_pod_label_{}", sd_name(&k)),
            json!(v),
        );
    }
    for (k, v) in annotations_of(&t.metadata) {
        // The reporter listens on a loopback port of the test's choosing, not on the pod's.
        let v = if k == "prometheus.io/port" {
            port.to_string()
        } else {
            v
        };
        labels.insert(
            format!("__meta_kubernetes_pod_annotation_{}", sd_name(&k)),
            json!(v),
        );
    }
    json!({"targets": ["discovered:1"], "labels": labels})
}

async fn prom_query(client: &reqwest::Client, url: &str, q: &str) -> Vec<Value> {
    let r = client
        .post(format!("{url}/api/v1/query"))
        .form(&[("query", q)])
        .send()
        .await
        .and_then(|r| r.error_for_status());
    match r {
        Ok(r) => r
            .json::<Value>()
            .await
            .map(|v| v["data"]["result"].as_array().cloned().unwrap_or_default())
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

/// The `kubectl get --raw` paths of README.md's "Install on a cluster" section.
fn readme_raw_paths() -> Vec<String> {
    let readme = read(&repo().join("README.md"));
    let start = readme
        .find("## Install on a cluster")
        .expect("README.md: no \"Install on a cluster\" section");
    let section = &readme[start..];
    let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
    let raw = regex::Regex::new(r"kubectl get --raw '?([^'\s|]+)'?").expect("regex");
    raw.captures_iter(&section[..end])
        .map(|c| c[1].to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn scraped_flink_series_answer_every_example_hpa() {
    let prometheus = flink_hpa_bridge::fixtures::local_prometheus::binary();
    if !command_works(&prometheus, &["--version"]) {
        eprintln!("{prometheus} not installed: scrape jobs not run");
        return;
    }
    let (flink, _) = inventory(&repo().join("manifests/flink"));
    let hpas = hpa_examples();
    let label_values = |key: &str| -> BTreeSet<String> {
        hpas.iter()
            .flat_map(|(_, h)| h.spec.metrics.clone().unwrap_or_default())
            .filter_map(|m| m.external.map(|e| e.metric).or(m.pods.map(|p| p.metric)))
            .filter_map(|m| m.selector?.match_labels?.get(key).cloned())
            .collect()
    };

    // Targets: the real JobManager and TaskManager scrapes, with the job renamed to each job
    // the examples select; kafka_exporter and Pravega controller series; and two pods that
    // must not be scraped, serving a canary series.
    let sections = scrape_sections();
    let section = |header: &str| -> String {
        let body = sections
            .iter()
            .find(|(h, _)| h.contains(header))
            .unwrap_or_else(|| panic!("scrape section {header:?}"))
            .1
            .clone();
        label_values("job_name")
            .iter()
            .map(|j| {
                body.replace(
                    "job_name=\"loadjob\"",
                    &format!("job_name=\"{}\"", flink_label_value(j)),
                )
            })
            .collect()
    };
    let jm_port = serve_text(section("JobManager"));
    let tm_ports = [
        serve_text(section("TaskManager hosting the source")),
        serve_text(section("other TaskManagers")),
    ];
    let kafka_port = serve_text(
        "kafka_consumergroup_lag{consumergroup=\"orders-enrich\",partition=\"0\",topic=\"orders\"} 1200\n\
         kafka_consumergroup_lag{consumergroup=\"orders-enrich\",partition=\"1\",topic=\"orders\"} -1\n\
         kafka_consumergroup_current_offset{consumergroup=\"orders-enrich\",partition=\"0\",topic=\"orders\"} 5000\n"
            .to_string(),
    );
    let segments: String = label_values("scope")
        .iter()
        .flat_map(|scope| {
            label_values("stream")
                .into_iter()
                .map(move |s| (scope.clone(), s))
        })
        .map(|(scope, stream)| {
            format!(
                "pravega_controller_segments_count{{scope=\"{scope}\",stream=\"{stream}\"}} 3\n"
            )
        })
        .collect();
    let pravega_port = serve_text(segments);
    let canary_port = serve_text("should_not_be_scraped 1\n".to_string());

    let pods = flink_pods(&flink);
    let template = |role: &str| {
        pods.iter()
            .find(|(r, _, _)| r == role)
            .map(|(_, n, t)| (n.clone(), *t))
            .unwrap_or_else(|| panic!("no {role} pod"))
    };
    let (jm_ns, jm) = template("standalone-job");
    let (tm_ns, tm) = template("taskmanager");
    let tm_pods = [
        "flink-taskmanager-5d8f7c9b4-tm000",
        "flink-taskmanager-5d8f7c9b4-tm001",
    ];
    let mut unannotated = tm.clone();
    if let Some(m) = unannotated.metadata.as_mut() {
        m.annotations = Some(BTreeMap::from([(
            "prometheus.io/port".to_string(),
            canary_port.to_string(),
        )]));
    }
    let pod_targets = vec![
        pod_target(jm, &jm_ns, "flink-jobmanager-x7k2p", "Running", jm_port),
        pod_target(tm, &tm_ns, tm_pods[0], "Running", tm_ports[0]),
        pod_target(tm, &tm_ns, tm_pods[1], "Running", tm_ports[1]),
        pod_target(
            tm,
            &tm_ns,
            "flink-taskmanager-5d8f7c9b4-done0",
            "Succeeded",
            canary_port,
        ),
        pod_target(
            &unannotated,
            &tm_ns,
            "flink-taskmanager-5d8f7c9b4-nope0",
            "Running",
            canary_port,
        ),
    ];
    let endpoint = |port_name: &str, port: u16| {
        json!({"targets": [format!("127.0.0.1:{port}")], "labels": {
            "__meta_kubernetes_namespace": "pravega",
            "__meta_kubernetes_service_name": "pravega-pravega-controller",
            "__meta_kubernetes_pod_name": "pravega-pravega-controller-0",
            "__meta_kubernetes_endpoint_port_name": port_name,
        }})
    };

    // The scrape jobs as shipped, with discovery replaced by the targets above (and scraping
    // every second so the test need not wait).
    let path = repo().join("manifests/prometheus/scrape-configs.yaml");
    let jobs: Vec<Value> = serde_yaml::from_str(&read(&path)).expect("scrape-configs.yaml");
    let mut static_jobs = 0;
    let jobs: Vec<Value> = jobs
        .into_iter()
        .map(|mut job| {
            job["scrape_interval"] = json!("1s");
            job["scrape_timeout"] = json!("1s");
            let job_map = job.as_object_mut().expect("job");
            if let Some(sd) = job_map.remove("kubernetes_sd_configs") {
                let targets = match sd[0]["role"].as_str() {
                    Some("pod") => pod_targets.clone(),
                    Some("endpoints") => vec![
                        endpoint("rest", pravega_port),
                        endpoint("grpc", canary_port),
                    ],
                    other => panic!("no stand-in for kubernetes_sd_configs role {other:?}"),
                };
                job_map.insert("static_configs".into(), Value::Array(targets));
            } else {
                static_jobs += 1;
                job_map.insert(
                    "static_configs".into(),
                    json!([{"targets": [format!("127.0.0.1:{kafka_port}")]}]),
                );
            }
            job
        })
        .collect();
    assert_eq!(static_jobs, 1, "one static job expected (kafka_exporter)");
    let dir = tempfile::tempdir().expect("tempdir");
    let config = json!({"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}, "scrape_configs": jobs});
    std::fs::write(
        dir.path().join("prometheus.yml"),
        serde_yaml::to_string(&config).expect("yaml"),
    )
    .expect("write");
    let prom_port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let _prom = Killed(
        Command::new(&prometheus)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    let client = reqwest::Client::new();

    // Five targets up: the JobManager, two TaskManagers, kafka_exporter, one controller.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let up = prom_query(&client, &prom_url, "count(up == 1)").await;
        if up.first().and_then(|r| r["value"][1].as_str()) == Some("5") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "targets not up; Prometheus log:\n{}\ntargets: {:?}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default(),
            prom_query(&client, &prom_url, "up").await
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Give every target a second scrape so that all series have arrived.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        prom_query(&client, &prom_url, "should_not_be_scraped")
            .await
            .is_empty(),
        "a completed or unannotated pod was scraped"
    );
    assert!(
        prom_query(&client, &prom_url, "count(up)")
            .await
            .first()
            .and_then(|r| r["value"][1].as_str())
            == Some("5"),
        "the relabelling kept a target it should drop (a completed pod, an unannotated pod, a \
         controller port other than rest)"
    );

    // The labels the signals need: namespace, pod, and the pod's own labels.
    let pod_labels: String = labels_of(&tm.metadata)
        .iter()
        .map(|(k, v)| format!(",{k}=\"{v}\""))
        .collect();
    for pod in tm_pods {
        let q = format!("flink_taskmanager_job_task_busyTimeMsPerSecond{{namespace=\"{tm_ns}\",pod=\"{pod}\"{pod_labels}}}");
        assert!(
            !prom_query(&client, &prom_url, &q).await.is_empty(),
            "no series {q}"
        );
    }

    // The server, configured as shipped but matching pod selectors against series labels
    // (there is no Kubernetes API here) and, where the build has it, without authentication.
    let mut test_cfg: serde_yaml::Value =
        serde_yaml::from_str(&read(&repo().join("manifests/base/flink-hpa-bridge.yaml")))
            .expect("config");
    test_cfg["pods"]["source"] = "labels".into();
    let mut without_auth = test_cfg.clone();
    without_auth["server"]["auth"]["insecureSkipAuth"] = true.into();
    if Config::from_yaml(&serde_yaml::to_string(&without_auth).expect("yaml"), "test").is_ok() {
        test_cfg = without_auth;
    }
    let cfg_path = dir.path().join("flink-hpa-bridge.yaml");
    std::fs::write(&cfg_path, serde_yaml::to_string(&test_cfg).expect("yaml")).expect("write");

    let query = |metric: &str, namespace: &str, selector: &str, metric_selector: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args([
            "query",
            metric,
            "-n",
            namespace,
            "-l",
            selector,
            "--prometheus-url",
            &prom_url,
            "--config",
        ])
        .arg(&cfg_path);
        if let Some(ms) = metric_selector {
            cmd.args(["--metric-selector", ms]);
        }
        let out = cmd.output().expect("run query");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success() && text.contains("(HTTP 200)"), text)
    };
    let mut errors = Vec::new();
    for (file, hpa) in &hpas {
        let namespace = ns(&hpa.metadata);
        let deployment = flink
            .deployment(&namespace, &hpa.spec.scale_target_ref.name)
            .expect("target");
        for m in hpa.spec.metrics.clone().unwrap_or_default() {
            let (metric, pods_selector) = match (&m.external, &m.pods) {
                (Some(e), _) => (e.metric.clone(), None),
                (_, Some(p)) => (
                    p.metric.clone(),
                    Some(selector_string(&deployment.spec.selector)),
                ),
                _ => continue,
            };
            let series = metric
                .selector
                .as_ref()
                .map(selector_string)
                .unwrap_or_default();
            let (ok, text) = match &pods_selector {
                None => query(&metric.name, &namespace, &series, None),
                Some(pods) => query(&metric.name, &namespace, pods, Some(&series)),
            };
            if !ok || (pods_selector.is_some() && !tm_pods.iter().all(|p| text.contains(p))) {
                errors.push(format!("{file}: {} answers no value:\n{text}", metric.name));
            }
        }
    }
    // kafka_exporter, the alternative source the lag examples describe.
    let (ok, text) = query(
        "flink_kafka_lag_records",
        "flink",
        "consumergroup=orders-enrich,topic=orders",
        None,
    );
    if !ok {
        errors.push(format!(
            "flink_kafka_lag_records from kafka_exporter:\n{text}"
        ));
    }
    assert!(errors.is_empty(), "\n{}", errors.join("\n"));

    // README's `kubectl get --raw` commands, against the server directly: the paths the
    // aggregator forwards unchanged.
    if !has_kubectl() {
        eprintln!("kubectl not installed: README's kubectl get --raw commands not run");
        return;
    }
    let paths = readme_raw_paths();
    assert!(
        !paths.is_empty(),
        "README.md's install section has no kubectl get --raw command"
    );
    let port = free_port();
    let _server = Killed(
        Command::new(BIN)
            .args([
                "serve",
                "--prometheus-url",
                &prom_url,
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                &port.to_string(),
                "--config",
            ])
            .arg(&cfg_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start server"),
    );
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !https
        .get(format!("https://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "server not ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for path in paths {
        let out = Command::new("kubectl")
            .args([
                "get",
                "--raw",
                &path,
                "--server",
                &format!("https://127.0.0.1:{port}"),
                "--insecure-skip-tls-verify",
                "--token",
                "unused",
            ])
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("kubectl");
        let body: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let answered = body["items"].as_array().is_some_and(|i| !i.is_empty())
            || body["resources"].as_array().is_some_and(|r| !r.is_empty());
        assert!(
            out.status.success() && answered,
            "kubectl get --raw {path}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
