//! The manifests' objects, typed: k8s-openapi types read strictly, and the custom resources
//! they use; every YAML document under manifests/ and hpa-examples/ parses into its type.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Strict parsing: k8s-openapi types plus a round trip that catches the fields they drop.
// ---------------------------------------------------------------------------------------------

/// Paths of `original` that are missing from `back` or read differently.
pub(crate) fn lost_fields(original: &Value, back: &Value, path: &str, out: &mut Vec<String>) {
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

pub(crate) fn strict<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<T, String> {
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

/// cert-manager's and prometheus-operator's resources have no k8s-openapi types: these cover
/// the fields the manifests use, and refuse any other.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CertManagerObject<S> {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    pub(crate) metadata: ObjectMeta,
    pub(crate) spec: S,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IssuerSpec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) self_signed: Option<BTreeMap<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ca: Option<CaIssuer>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CaIssuer {
    pub(crate) secret_name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct CertificateSpec {
    pub(crate) secret_name: String,
    pub(crate) issuer_ref: IssuerRef,
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub(crate) is_ca: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) duration: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) renew_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) private_key: Option<PrivateKey>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) usages: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct IssuerRef {
    pub(crate) kind: String,
    pub(crate) name: String,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PrivateKey {
    pub(crate) algorithm: String,
    pub(crate) size: u32,
}

/// prometheus-operator's ServiceMonitor, the fields the manifests use.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct ServiceMonitorSpec {
    pub(crate) selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) namespace_selector: Option<NamespaceSelector>,
    pub(crate) endpoints: Vec<MonitorEndpoint>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct NamespaceSelector {
    #[serde(default)]
    pub(crate) match_names: Vec<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MonitorEndpoint {
    pub(crate) port: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) bearer_token_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) tls_config: Option<MonitorTls>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MonitorTls {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) insecure_skip_verify: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_file: Option<String>,
}

/// prometheus-operator's PrometheusRule: `spec` is a Prometheus rules file.
#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PrometheusRuleSpec {
    pub(crate) groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RuleGroup {
    pub(crate) name: String,
    pub(crate) rules: Vec<Rule>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) record: Option<String>,
    pub(crate) expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    pub(crate) for_: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
}

pub(crate) type ServiceMonitor = CertManagerObject<ServiceMonitorSpec>;
pub(crate) type PrometheusRule = CertManagerObject<PrometheusRuleSpec>;
pub(crate) type Issuer = CertManagerObject<IssuerSpec>;
pub(crate) type Certificate = CertManagerObject<CertificateSpec>;

/// Go durations as cert-manager reads them: hours, minutes, seconds.
pub(crate) fn is_go_duration(s: &str) -> bool {
    regex::Regex::new(r"^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$")
        .expect("regex")
        .is_match(s)
}

impl Certificate {
    pub(crate) fn validate(&self) -> Result<(), String> {
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
pub(crate) struct Inventory {
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) service_accounts: Vec<ServiceAccount>,
    pub(crate) config_maps: Vec<ConfigMap>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) services: Vec<Service>,
    pub(crate) deployments: Vec<Deployment>,
    pub(crate) jobs: Vec<Job>,
    pub(crate) pdbs: Vec<PodDisruptionBudget>,
    pub(crate) network_policies: Vec<NetworkPolicy>,
    pub(crate) cluster_roles: Vec<ClusterRole>,
    pub(crate) cluster_role_bindings: Vec<ClusterRoleBinding>,
    pub(crate) roles: Vec<Role>,
    pub(crate) role_bindings: Vec<RoleBinding>,
    pub(crate) api_services: Vec<APIService>,
    pub(crate) hpas: Vec<HorizontalPodAutoscaler>,
    pub(crate) issuers: Vec<Issuer>,
    pub(crate) certificates: Vec<Certificate>,
    pub(crate) service_monitors: Vec<ServiceMonitor>,
    pub(crate) prometheus_rules: Vec<PrometheusRule>,
}

impl Inventory {
    pub(crate) fn from_documents(docs: &[(String, Value)]) -> Result<Self, Vec<String>> {
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

    pub(crate) fn add(&mut self, doc: &Value) -> Result<(), String> {
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
            ("monitoring.coreos.com/v1", "ServiceMonitor") => self
                .service_monitors
                .push(serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?),
            ("monitoring.coreos.com/v1", "PrometheusRule") => self
                .prometheus_rules
                .push(serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?),
            _ => {
                return Err(format!(
                    "{api_version} {kind} is not a kind these manifests are expected to hold"
                ))
            }
        }
        Ok(())
    }

    /// Pod templates of the workloads, with their namespace and a name for messages.
    pub(crate) fn pod_templates(&self) -> Vec<(String, String, &PodTemplateSpec)> {
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

    pub(crate) fn deployment(&self, namespace: &str, n: &str) -> Option<&Deployment> {
        self.deployments
            .iter()
            .find(|d| ns(&d.metadata) == namespace && name(&d.metadata) == n)
    }

    pub(crate) fn config_map(&self, namespace: &str, n: &str) -> Option<&ConfigMap> {
        self.config_maps
            .iter()
            .find(|c| ns(&c.metadata) == namespace && name(&c.metadata) == n)
    }
}

pub(crate) fn name(m: &ObjectMeta) -> String {
    m.name.clone().unwrap_or_default()
}

pub(crate) fn ns(m: &ObjectMeta) -> String {
    m.namespace.clone().unwrap_or_default()
}

pub(crate) fn labels_of(m: &Option<ObjectMeta>) -> BTreeMap<String, String> {
    m.as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

pub(crate) fn annotations_of(m: &Option<ObjectMeta>) -> BTreeMap<String, String> {
    m.as_ref()
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

/// The string form of a label selector, as the HPA sends it.
pub(crate) fn selector_string(s: &LabelSelector) -> String {
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

pub(crate) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    Selector::parse(&selector_string(selector))
        .unwrap_or_else(|e| panic!("selector {selector:?}: {e}"))
        .matches(labels)
}

/// YAML files that are not Kubernetes objects; each has a test of its own below.
pub(crate) const CONFIG_FILES: [&str; 4] = [
    "manifests/base/flink-hpa-bridge.yaml",
    "manifests/flink/config.yaml",
    "manifests/monitoring/scrape-config.yaml",
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
