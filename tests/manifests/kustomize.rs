//! Kustomize: kubectl's rendering, and a reading of the kustomization files without it.

use crate::*;

// ---------------------------------------------------------------------------------------------
// Kustomize: kubectl's rendering, and a reading of the kustomization files without it.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Kustomization {
    pub(crate) api_version: String,
    pub(crate) kind: String,
    #[serde(default)]
    pub(crate) resources: Vec<String>,
    #[serde(default)]
    pub(crate) components: Vec<String>,
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) config_map_generator: Vec<Generator>,
    #[serde(default)]
    pub(crate) secret_generator: Vec<Generator>,
    #[serde(default)]
    pub(crate) patches: Vec<KustomizePatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct Generator {
    pub(crate) name: String,
    pub(crate) namespace: Option<String>,
    #[serde(default)]
    pub(crate) files: Vec<String>,
    pub(crate) options: Option<GeneratorOptions>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct GeneratorOptions {
    #[serde(default)]
    pub(crate) disable_name_suffix_hash: bool,
    #[serde(default)]
    pub(crate) labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct KustomizePatch {
    pub(crate) target: Option<Value>,
    pub(crate) patch: Option<String>,
    pub(crate) path: Option<String>,
}

pub(crate) fn kustomization(dir: &Path) -> Kustomization {
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
pub(crate) fn cluster_scoped(kind: &str) -> bool {
    matches!(
        kind,
        "Namespace" | "ClusterRole" | "ClusterRoleBinding" | "APIService"
    )
}

/// What kustomize would render for `dir`, read from the kustomization files: resources,
/// components and generators, without patches. Generated names carry no hash.
pub(crate) fn render_offline(dir: &Path) -> Vec<(String, Value)> {
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

pub(crate) fn render_kubectl(dir: &Path) -> Result<Vec<(String, Value)>, String> {
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
pub(crate) fn render(dir: &Path) -> (Vec<(String, Value)>, bool) {
    if has_kubectl() {
        let docs =
            render_kubectl(dir).unwrap_or_else(|e| panic!("kubectl kustomize {}: {e}", rel(dir)));
        (docs, true)
    } else {
        (render_offline(dir), false)
    }
}

pub(crate) fn inventory(dir: &Path) -> (Inventory, bool) {
    let (docs, patched) = render(dir);
    let inv = Inventory::from_documents(&docs)
        .unwrap_or_else(|e| panic!("{}:\n  {}", rel(dir), e.join("\n  ")));
    (inv, patched)
}

/// Every directory holding a kustomization (not a component), the ones users apply.
pub(crate) fn kustomizations() -> Vec<PathBuf> {
    files_under(&repo().join("manifests"), &["yaml"])
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == "kustomization.yaml"))
        .map(|p| p.parent().expect("parent").to_path_buf())
        .filter(|d| kustomization(d).kind == "Kustomization")
        .collect()
}

pub(crate) fn overlays() -> Vec<PathBuf> {
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
