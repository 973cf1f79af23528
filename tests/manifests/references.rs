//! Every kustomization renders a set whose references resolve; the server's Deployment and RBAC;
//! each overlay states which APIServices it registers.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Cross-references within a rendered set.
// ---------------------------------------------------------------------------------------------

pub(crate) fn containers(t: &PodTemplateSpec) -> Vec<&Container> {
    t.spec
        .iter()
        .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
        .collect()
}

pub(crate) fn container_ports(c: &Container) -> Vec<(Option<String>, i32)> {
    c.ports
        .iter()
        .flatten()
        .map(|p| (p.name.clone(), p.container_port))
        .collect()
}

/// The number a port reference resolves to in a container, if it does.
pub(crate) fn resolve_port(c: &Container, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::Int(n) => container_ports(c).iter().any(|(_, p)| p == n).then_some(*n),
        IntOrString::String(s) => container_ports(c)
            .into_iter()
            .find(|(n, _)| n.as_deref() == Some(s.as_str()))
            .map(|(_, p)| p),
    }
}

/// The value of `--flag value` or `--flag=value` in a container's arguments.
pub(crate) fn arg_value(c: &Container, flag: &str) -> Option<String> {
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
pub(crate) const CERT_KEYS: [&str; 3] = ["tls.crt", "tls.key", "ca.crt"];

/// Follows a file path in a container to the ConfigMap or Secret key behind it. Returns the
/// content when it is a ConfigMap's.
pub(crate) fn file_behind(
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
pub(crate) fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
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
pub(crate) fn cluster_rules_of<'a>(
    inv: &'a Inventory,
    namespace: &str,
    sa: &str,
) -> Vec<&'a PolicyRule> {
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
pub(crate) const BUILTIN_CLUSTER_ROLES: [&str; 1] = ["system:auth-delegator"];
pub(crate) const BUILTIN_ROLES: [(&str, &str); 1] =
    [("kube-system", "extension-apiserver-authentication-reader")];
/// ServiceAccounts made by Kubernetes itself and, for manifests/monitoring, by the Prometheus
/// installation the scrape RBAC is bound to (kube-prometheus-stack's).
pub(crate) const BUILTIN_SERVICE_ACCOUNTS: [(&str, &str); 2] = [
    ("kube-system", "horizontal-pod-autoscaler"),
    ("monitoring", "kube-prometheus-stack-prometheus"),
];

pub(crate) fn cross_references(inv: &Inventory, patched: bool) -> Vec<String> {
    [
        binding_errors(inv),
        workload_errors(inv),
        service_errors(inv),
        pdb_and_network_policy_errors(inv),
        api_service_errors(inv, patched),
        certificate_errors(inv),
    ]
    .concat()
}

/// Is there a ServiceAccount `namespace/n`, in the set or made by Kubernetes?
pub(crate) fn sa_exists(inv: &Inventory, namespace: &str, n: &str) -> bool {
    inv.service_accounts
        .iter()
        .any(|s| ns(&s.metadata) == namespace && name(&s.metadata) == n)
        || BUILTIN_SERVICE_ACCOUNTS.contains(&(namespace, n))
}

/// Bindings: every role and ServiceAccount they name exists.
fn binding_errors(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
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
            if s.kind == "ServiceAccount" && !sa_exists(inv, &subject_ns, &s.name) {
                errors.push(format!(
                    "{what}: ServiceAccount {subject_ns}/{} does not exist",
                    s.name
                ));
            }
        }
    }
    errors
}

/// Workloads: selectors, ServiceAccounts, volumes, mounts, probe ports.
fn workload_errors(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
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
            if !sa_exists(inv, &namespace, sa) {
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
    errors
}

/// Services reach the ports of the pods they select.
fn service_errors(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
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
    errors
}

/// Disruption budgets and network policies apply to pods that exist.
fn pdb_and_network_policy_errors(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
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
    errors
}

/// APIServices: name, Service and port, and (once patches are applied) one trust setting.
fn api_service_errors(inv: &Inventory, patched: bool) -> Vec<String> {
    let mut errors = Vec::new();
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
    errors
}

/// cert-manager: every Certificate's issuer exists, and every CA issuer's Secret is made by a
/// CA Certificate.
fn certificate_errors(inv: &Inventory) -> Vec<String> {
    let mut errors = Vec::new();
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
pub(crate) fn backend_deployments<'a>(
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
pub(crate) fn server_checks(inv: &Inventory) -> Vec<String> {
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
    let mut errors = deployment_errors(inv, &svc_ns, &svc_name, d);
    let pod = d.spec.template.spec.as_ref().expect("pod spec");
    let sa = pod
        .service_account_name
        .clone()
        .unwrap_or_else(|| "default".into());
    errors.extend(server_rbac_errors(inv, &svc_ns, &sa));
    errors
}

/// The server's Deployment behind Service `svc_ns/svc_name`: replicas spread over nodes, one
/// hardened container of this version with HTTPS probes, reached on its port by the Service
/// and the API server, a disruption budget, and a valid configuration file.
fn deployment_errors(inv: &Inventory, svc_ns: &str, svc_name: &str, d: &Deployment) -> Vec<String> {
    let mut errors = Vec::new();
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
    errors.extend(config_file_errors(inv, svc_ns, &what, t, c));
    errors
}

/// The configuration file the server is given is in its ConfigMap, valid, and drains within the
/// pod's termination grace period.
fn config_file_errors(
    inv: &Inventory,
    svc_ns: &str,
    what: &str,
    t: &PodTemplateSpec,
    c: &Container,
) -> Vec<String> {
    let mut errors = Vec::new();
    let pod = t.spec.as_ref().expect("pod spec");
    match arg_value(c, "--config") {
        None => errors.push(format!("{what}: no --config")),
        Some(path) => match file_behind(inv, svc_ns, t, c, &path) {
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
    errors
}

/// RBAC: delegated authentication and authorization, the pod cache, the HPA's access.
fn server_rbac_errors(inv: &Inventory, svc_ns: &str, sa: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let subject_is_server = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| {
            s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(svc_ns)
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
    let server_rules: Vec<PolicyRule> = cluster_rules_of(inv, svc_ns, sa)
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
pub(crate) fn identities(
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

/// The three group-versions a metrics adapter can own, one backend each per cluster.
pub(crate) const API_SERVICES: [&str; 3] = [
    "v1beta1.external.metrics.k8s.io",
    "v1beta1.custom.metrics.k8s.io",
    "v1beta2.custom.metrics.k8s.io",
];

/// What an overlay's kustomization.yaml says it does with each APIService, from its comment
/// lines `#   <name>: registered` or `#   <name>: not registered`.
pub(crate) fn stated_apiservice_choices(dir: &Path) -> BTreeMap<String, bool> {
    let line =
        regex::Regex::new(r"(?m)^#\s+(v1beta[12]\.[a-z0-9.]+):\s+(registered|not registered)\s*$")
            .expect("regex");
    line.captures_iter(&read(&dir.join("kustomization.yaml")))
        .map(|c| (c[1].to_string(), &c[2] == "registered"))
        .collect()
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
        // Where the custom metrics group is registered, the preferred version the HPA reads
        // must be among it (the per-pod signal needs it).
        assert!(
            names.contains("v1beta2.custom.metrics.k8s.io")
                || !names.contains("v1beta1.custom.metrics.k8s.io"),
            "{}",
            rel(&dir)
        );
        assert_eq!(
            stated_apiservice_choices(&dir),
            API_SERVICES
                .iter()
                .map(|a| (a.to_string(), names.contains(*a)))
                .collect::<BTreeMap<_, _>>(),
            "{}: the comment must state, for each APIService, what the overlay registers",
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
