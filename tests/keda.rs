//! The KEDA external scaler: a real tonic client over real TLS (mutual, with a CA made here)
//! against servers fed by the shared bed's real Prometheus. Every value is checked against
//! what the same server's HTTP external metrics API answers for the same selector.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use common::*;
use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::fixtures::exporter::{FlinkTask, Series};
use flink_hpa_bridge::keda::proto::external_scaler_client::ExternalScalerClient;
use flink_hpa_bridge::keda::proto::{GetMetricsRequest, ScaledObjectRef};
use flink_hpa_bridge::keda::GrpcOptions;
use flink_hpa_bridge::server::{self, StartOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tonic::transport::{Channel, Endpoint};
use tonic::Code;

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(cn: &str) -> Self {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, cn);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Self {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    /// Certificate and key PEM for a client, as KEDA's tlsClientCert/tlsClientKey hold them.
    fn client(&self, cn: &str) -> (String, String) {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

struct Scaler {
    addr: SocketAddr,
    http: common::Server,
}

struct KedaBed {
    /// Fed by the bed's Prometheus.
    main: Scaler,
    /// Prometheus unreachable.
    down: Scaler,
    good: (String, String),
    rogue: (String, String),
}

static KEDA: OnceLock<KedaBed> = OnceLock::new();

fn keda() -> &'static KedaBed {
    KEDA.get_or_init(|| {
        let prom = bed().prometheus_url.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let ca = Ca::new("keda-clients");
                let dir = tempfile::tempdir().expect("tempdir");
                let ca_file = dir.path().join("ca.pem");
                std::fs::write(&ca_file, ca.issuer.pem()).expect("write CA");
                let main = start(&prom, &ca_file).await;
                let down = start("http://127.0.0.1:9", &ca_file).await;
                let good = ca.client("keda-operator");
                let rogue = Ca::new("someone-else").client("keda-operator");
                tx.send(KedaBed {
                    main,
                    down,
                    good,
                    rogue,
                })
                .expect("send");
                std::future::pending::<()>().await;
                drop(dir);
            });
        });
        rx.recv().expect("KEDA bed failed to start")
    })
}

async fn start(prometheus_url: &str, ca_file: &std::path::Path) -> Scaler {
    let mut cfg = Config::from_yaml(EXTRA_SIGNALS, "test config").expect("config");
    cfg.prometheus.url = Some(prometheus_url.to_string());
    cfg.prometheus.timeout = Duration::from_secs(5);
    cfg.server.bind_address = "127.0.0.1".into();
    cfg.server.secure_port = 0;
    let mut grpc = GrpcOptions::new(0, Some(ca_file.to_path_buf()));
    grpc.stream_interval = Duration::from_millis(300);
    let running = server::start(
        &cfg,
        StartOptions {
            grpc: Some(grpc),
            ..Default::default()
        },
    )
    .await
    .expect("server start");
    let s = Scaler {
        addr: running.grpc_addr.expect("gRPC address"),
        http: common::Server {
            addr: running.addr,
            cert_pem: running.generated_cert_pem.clone().expect("cert"),
        },
    };
    std::mem::forget(running);
    s
}

/// A tonic channel over rustls (ring), trusting only the server's certificate, presenting
/// `identity` when given.
async fn channel(s: &Scaler, identity: Option<&(String, String)>) -> Result<Channel, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_slice_iter(s.http.cert_pem.as_bytes()) {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    let mut cfg = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert.as_bytes())
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
    let addr = s.addr;
    Endpoint::from_shared(format!("http://localhost:{}", addr.port()))
        .unwrap()
        .timeout(Duration::from_secs(20))
        .connect_with_connector(tower::service_fn(move |_uri| {
            let connector = connector.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(addr).await?;
                let tls = connector
                    .connect(ServerName::try_from("localhost").unwrap(), tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        }))
        .await
        .map_err(|e| format!("{e:?}"))
}

async fn client(s: &Scaler) -> ExternalScalerClient<Channel> {
    ExternalScalerClient::new(channel(s, Some(&keda().good)).await.expect("connect"))
}

/// A ScaledObject reference as KEDA sends it: KEDA's own keys included.
fn object(ns: &str, pairs: &[(&str, &str)]) -> ScaledObjectRef {
    let mut md: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    md.insert(
        "scalerAddress".into(),
        "flink-hpa-bridge-grpc.flink:7443".into(),
    );
    md.insert("enableTLS".into(), "true".into());
    md.insert("unsafeSsl".into(), "false".into());
    ScaledObjectRef {
        name: "orders-enrich".into(),
        namespace: ns.into(),
        scaler_metadata: md,
    }
}

fn ext(ns: &str, metric: &str, selector: &str) -> String {
    format!(
        "/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/{metric}?labelSelector={}",
        urlencode(selector)
    )
}

/// The HTTP API's items summed, as the HPA sums an external metric's items, in milli.
fn http_milli(body: &serde_json::Value) -> i64 {
    body["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| flink_hpa_bridge::quantity::parse_milli(i["value"].as_str().unwrap()).unwrap())
        .sum()
}

async fn grpc_value(c: &mut ExternalScalerClient<Channel>, obj: &ScaledObjectRef) -> f64 {
    let r = c
        .get_metrics(GetMetricsRequest {
            scaled_object_ref: Some(obj.clone()),
            metric_name: "ignored".into(),
        })
        .await
        .expect("GetMetrics")
        .into_inner();
    assert_eq!(r.metric_values.len(), 1);
    r.metric_values[0].metric_value_float
}

#[tokio::test]
async fn values_equal_the_http_api_and_is_active_follows_its_rule() {
    let bed = bed();
    let k = keda();
    let mut c = client(&k.main).await;
    let ns = unique("keda");
    let mut rng = Rng::new();
    let busy = rng.value(100.0, 900.0);
    let (x, y) = (rng.value(1.0, 500.0), rng.value(1.0, 500.0));
    let group = format!("g-{ns}");
    let lag = |topic: &str, partition: &str, v: f64| {
        Series::new(
            "kafka_consumergroup_lag",
            &[
                ("consumergroup", group.as_str()),
                ("topic", topic),
                ("partition", partition),
            ],
            v,
        )
    };
    bed.store.set(
        &ns,
        vec![
            FlinkTask::single(&ns, "orders-enrich").series("busyTimeMsPerSecond", busy),
            FlinkTask::single(&ns, "idle-job").series("busyTimeMsPerSecond", 0.0),
            lag("t1", "0", x),
            lag("t1", "1", y),
            lag("t2", "0", y),
        ],
    );
    let http = k.main.http.client();
    for (metric, selector, md) in [
        (
            "flink_busy_time_max",
            "job_name=orders-enrich",
            vec![("job_name", "orders-enrich")],
        ),
        (
            "topic_lag",
            &*format!("consumergroup={group}"),
            vec![("consumergroup", group.as_str())],
        ),
    ] {
        let body = http.get_ok(&ext(&ns, metric, selector)).await;
        let mut pairs = vec![("metric", metric), ("target", "2.5")];
        pairs.extend(md);
        let obj = object(&ns, &pairs);
        let v = grpc_value(&mut c, &obj).await;
        // Both from the same cache entry: equal to the milli the HTTP API rounds to.
        assert_eq!(
            flink_hpa_bridge::quantity::to_milli(v).unwrap(),
            http_milli(&body),
            "{metric}: gRPC {v}, HTTP {body}"
        );
        assert!(v > 0.0);
        assert!(c.is_active(obj.clone()).await.unwrap().into_inner().result);
        let spec = c.get_metric_spec(obj).await.unwrap().into_inner();
        assert_eq!(spec.metric_specs.len(), 1);
        assert_eq!(spec.metric_specs[0].metric_name, metric);
        assert_eq!(spec.metric_specs[0].target_size_float, 2.5);
        assert_eq!(spec.metric_specs[0].target_size, 3);
    }
    // The topic_lag value is the sum over both topics, as the HPA sums the items.
    let obj = object(
        &ns,
        &[("metric", "topic_lag"), ("consumergroup", group.as_str())],
    );
    let v = grpc_value(&mut c, &obj).await;
    assert!((v - (x + 2.0 * y)).abs() < 1e-6, "{v} vs {}", x + 2.0 * y);

    // A value of 0 is a value, and inactive (the rule: active above 0).
    let idle = object(
        &ns,
        &[("metric", "flink_busy_time_max"), ("job_name", "idle-job")],
    );
    http.get_ok(&ext(&ns, "flink_busy_time_max", "job_name=idle-job"))
        .await;
    assert_eq!(grpc_value(&mut c, &idle).await, 0.0);
    assert!(!c.is_active(idle).await.unwrap().into_inner().result);
    // activationThreshold moves the line.
    let high = object(
        &ns,
        &[
            ("metric", "flink_busy_time_max"),
            ("job_name", "orders-enrich"),
            ("activationThreshold", "1000"),
        ],
    );
    assert!(!c.is_active(high).await.unwrap().into_inner().result);

    // StreamIsActive: the current answer at once, then new ones as the data changes.
    let obj = object(
        &ns,
        &[
            ("metric", "flink_busy_time_max"),
            ("job_name", "orders-enrich"),
        ],
    );
    let mut stream = c.stream_is_active(obj).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("first message");
    assert!(first.result);
    bed.store.set(
        &ns,
        vec![FlinkTask::single(&ns, "orders-enrich").series("busyTimeMsPerSecond", 0.0)],
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("a message within 5 s")
            .expect("stream")
            .expect("open stream");
        if !m.result {
            break;
        }
        assert!(Instant::now() < deadline, "never became inactive");
    }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("an answer where an error was due: {v:?}"),
        Err(s) => s.code(),
    }
}

#[tokio::test]
async fn errors_are_errors_never_a_zero() {
    let k = keda();
    let mut c = client(&k.main).await;
    let ns = unique("keda-err");
    let get = |obj: ScaledObjectRef| GetMetricsRequest {
        scaled_object_ref: Some(obj),
        metric_name: String::new(),
    };
    // Unknown metric.
    let r = c
        .get_metrics(get(object(&ns, &[("metric", "no_such_metric")])))
        .await;
    assert_eq!(code(r), Code::NotFound);
    let r = c
        .get_metric_spec(object(
            &ns,
            &[("metric", "no_such_metric"), ("target", "1")],
        ))
        .await;
    assert_eq!(code(r), Code::NotFound);
    // A custom (pods) metric is not an external one.
    let r = c
        .get_metrics(get(object(&ns, &[("metric", "tm_records_in")])))
        .await;
    assert_eq!(code(r), Code::NotFound);
    // No series match: the HTTP API says 404 too.
    let sel = "job_name=nothing-here";
    let r = c
        .get_metrics(get(object(
            &ns,
            &[
                ("metric", "flink_busy_time_max"),
                ("job_name", "nothing-here"),
            ],
        )))
        .await;
    assert_eq!(code(r), Code::NotFound);
    assert_eq!(
        k.main
            .http
            .client()
            .get(&ext(&ns, "flink_busy_time_max", sel))
            .await
            .status,
        404
    );
    // Bad metadata.
    let r = c.get_metrics(get(object(&ns, &[("target", "1")]))).await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c
        .get_metric_spec(object(&ns, &[("metric", "flink_busy_time_max")]))
        .await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c
        .get_metric_spec(object(
            &ns,
            &[("metric", "flink_busy_time_max"), ("target", "zero")],
        ))
        .await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c
        .get_metrics(get(object(
            &ns,
            &[("metric", "flink_busy_time_max"), ("job_name", "a,b")],
        )))
        .await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c
        .is_active(ScaledObjectRef {
            namespace: String::new(),
            ..object(&ns, &[("metric", "flink_busy_time_max")])
        })
        .await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c.stream_is_active(object(&ns, &[])).await;
    assert_eq!(code(r), Code::InvalidArgument);
    let r = c
        .stream_metric_spec(object(&ns, &[("metric", "flink_busy_time_max")]))
        .await;
    assert_eq!(code(r), Code::Unimplemented);
    // A query Prometheus refuses: the server's fault, as the HTTP API's 500.
    let r = c
        .get_metrics(get(object(&ns, &[("metric", "broken_query")])))
        .await;
    assert_eq!(code(r), Code::Internal);

    // Prometheus unreachable: Unavailable, for GetMetrics, IsActive and the stream.
    let mut down = client(&k.down).await;
    let obj = object(
        &ns,
        &[
            ("metric", "flink_busy_time_max"),
            ("job_name", "orders-enrich"),
        ],
    );
    let r = down.get_metrics(get(obj.clone())).await;
    assert_eq!(code(r), Code::Unavailable);
    let r = down.is_active(obj.clone()).await;
    assert_eq!(code(r), Code::Unavailable);
    let mut s = down.stream_is_active(obj).await.unwrap().into_inner();
    let e = s.message().await.expect_err("the stream carries the error");
    assert_eq!(e.code(), Code::Unavailable);
}

#[tokio::test]
async fn mutual_tls_refuses_clients_without_a_certificate_from_the_ca() {
    let k = keda();
    let ns = unique("keda-mtls");
    let obj = object(&ns, &[("metric", "no_such_metric")]);
    // With the CA's certificate the call reaches the service (and gets its NotFound).
    let mut good = client(&k.main).await;
    assert_eq!(
        good.is_active(obj.clone()).await.unwrap_err().code(),
        Code::NotFound
    );
    for (who, identity) in [("no certificate", None), ("another CA", Some(&k.rogue))] {
        // The handshake may fail at connect or at the first call (TLS 1.3 checks the client
        // certificate after the client thinks it is done); either way no answer comes.
        match channel(&k.main, identity).await {
            Err(_) => {}
            Ok(ch) => {
                let r = ExternalScalerClient::new(ch).is_active(obj.clone()).await;
                let e = r.expect_err(who);
                // A transport failure (Unavailable, Cancelled, Unknown as the timing goes);
                // never the service's own answer.
                assert_ne!(e.code(), Code::NotFound, "{who} reached the service");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// keda-examples/ and the "KEDA owns the external API" overlay.
// ---------------------------------------------------------------------------------------------

use serde_json::Value;
use std::path::{Path, PathBuf};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            let v: serde_yaml::Value = serde::Deserialize::deserialize(d).expect("YAML");
            serde_json::to_value(v).expect("JSON")
        })
        .filter(|v| !v.is_null())
        .collect()
}

/// Checks `doc` against an OpenAPI v3 structural schema as the API server would: types,
/// int32 ranges, required fields, and fields the schema does not know (which the API server
/// would silently drop: a typo there is a setting that never applies).
fn validate(schema: &Value, doc: &Value, path: &str, errors: &mut Vec<String>) {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        if !(doc.is_string() || doc.is_i64() || doc.is_u64()) {
            errors.push(format!("{path}: integer or string expected"));
        }
        return;
    }
    match schema.get("type").and_then(|t| t.as_str()) {
        Some("object") => {
            let Some(obj) = doc.as_object() else {
                errors.push(format!("{path}: object expected, got {doc}"));
                return;
            };
            for r in schema["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !obj.contains_key(r) {
                    errors.push(format!("{path}: required field {r} missing"));
                }
            }
            let props = schema.get("properties").and_then(|p| p.as_object());
            let additional = schema.get("additionalProperties");
            for (k, v) in obj {
                let sub = format!("{path}.{k}");
                match (props.and_then(|p| p.get(k)), additional) {
                    (Some(s), _) => validate(s, v, &sub, errors),
                    (None, Some(s)) if s.is_object() => validate(s, v, &sub, errors),
                    (None, _) if props.is_none() && additional.is_none() => {}
                    (None, _) => errors.push(format!("{sub}: unknown field")),
                }
            }
        }
        Some("array") => match doc.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    validate(&schema["items"], v, &format!("{path}[{i}]"), errors);
                }
            }
            None => errors.push(format!("{path}: array expected")),
        },
        Some("string") if !doc.is_string() => {
            errors.push(format!("{path}: string expected, got {doc}"));
        }
        Some("boolean") if !doc.is_boolean() => {
            errors.push(format!("{path}: boolean expected"));
        }
        Some("integer") => match doc.as_i64() {
            Some(n) => {
                if schema.get("format").and_then(|f| f.as_str()) == Some("int32")
                    && i32::try_from(n).is_err()
                {
                    errors.push(format!("{path}: {n} is not an int32"));
                }
            }
            None => errors.push(format!("{path}: integer expected, got {doc}")),
        },
        _ => {}
    }
}

fn scaled_object_schema() -> Value {
    let crd = documents(&repo().join("tests/data/keda.sh_scaledobjects.yaml"));
    let [crd] = &crd[..] else {
        panic!("one CRD expected")
    };
    assert_eq!(crd["spec"]["names"]["kind"], "ScaledObject");
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let v = versions
        .iter()
        .find(|v| v["name"] == "v1alpha1")
        .expect("v1alpha1");
    v["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn the_schema_walk_catches_what_the_api_server_would() {
    let schema = scaled_object_schema();
    let good = serde_json::json!({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"name": "tm"}, "maxReplicaCount": 4,
                 "triggers": [{"type": "external", "metadata": {"metric": "m", "target": "1"}}]}
    });
    let mut errors = Vec::new();
    validate(&schema, &good, "", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    for (bad, what) in [
        (
            serde_json::json!({"scaleTargetRef": {"name": "tm"}}),
            "required field triggers",
        ),
        (
            serde_json::json!({"scaleTargetRef": {"name": "tm"}, "triggers": [{"type": "external", "metadata": {"target": 1}}]}),
            "string expected",
        ),
        (
            serde_json::json!({"scaleTargetRef": {"name": "tm"}, "triggers": [], "maxReplicas": 3}),
            "spec.maxReplicas: unknown field",
        ),
        (
            serde_json::json!({"scaleTargetRef": {"name": "tm"}, "triggers": [], "pollingInterval": 4294967296u64}),
            "is not an int32",
        ),
        (
            serde_json::json!({"scaleTargetRef": {"name": "tm"}, "triggers": [], "pollingInterval": "15"}),
            "integer expected",
        ),
    ] {
        let mut doc = good.clone();
        doc["spec"] = bad;
        let mut errors = Vec::new();
        validate(&schema, &doc, "", &mut errors);
        assert!(
            errors.iter().any(|e| e.contains(what)),
            "{what} not reported: {errors:?}"
        );
    }
}

fn example_files() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(repo().join("keda-examples"))
        .expect("keda-examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    out.sort();
    out
}

/// The rendered "KEDA owns the external API" overlay.
fn keda_overlay() -> Option<Vec<Value>> {
    let out = std::process::Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo().join("manifests/overlays/keda"))
        .output()
        .ok()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("out.yaml");
    std::fs::write(&f, &out.stdout).expect("write");
    Some(documents(&f))
}

#[test]
fn keda_examples_are_valid_scaled_objects_for_signals_the_server_serves() {
    use flink_hpa_bridge::keda::metadata::Trigger;
    use flink_hpa_bridge::provider::{MetricTarget, MetricsProvider};
    let schema = scaled_object_schema();
    let cfg_path = repo().join("manifests/base/flink-hpa-bridge.yaml");
    let cfg = Config::from_yaml(&std::fs::read_to_string(&cfg_path).unwrap(), "base config")
        .expect("base config");
    // The signals as the server builds them; nothing is queried.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let served = rt.block_on(async {
        let prom = flink_hpa_bridge::prometheus::Client::new(&cfg.prometheus).expect("client");
        flink_hpa_bridge::signals::Signals::new(
            &cfg,
            prom,
            None,
            flink_hpa_bridge::metrics::Metrics::new(),
        )
        .metrics()
    });
    let mut auths = std::collections::BTreeMap::new();
    let mut scaled = Vec::new();
    for path in example_files() {
        for doc in documents(&path) {
            let origin = format!("{}", path.display());
            match doc["kind"].as_str() {
                Some("ScaledObject") => scaled.push((origin, doc)),
                Some("TriggerAuthentication") => {
                    auths.insert(doc["metadata"]["name"].as_str().unwrap().to_string(), doc);
                }
                other => panic!("{origin}: unexpected kind {other:?}"),
            }
        }
    }
    let mut metrics = std::collections::BTreeSet::new();
    for (origin, doc) in &scaled {
        assert_eq!(doc["apiVersion"], "keda.sh/v1alpha1", "{origin}");
        let mut errors = Vec::new();
        validate(&schema, doc, "", &mut errors);
        assert!(errors.is_empty(), "{origin}: {errors:?}");
        for t in doc["spec"]["triggers"].as_array().unwrap() {
            assert!(
                t["type"] == "external" || t["type"] == "external-push",
                "{origin}"
            );
            let md: HashMap<String, String> =
                serde_json::from_value(t["metadata"].clone()).expect("string map");
            let trigger = Trigger::parse(&md).unwrap_or_else(|e| panic!("{origin}: {e}"));
            assert!(trigger.target.is_some(), "{origin}: no target");
            assert!(
                served
                    .iter()
                    .any(|m| m.name == trigger.metric && m.target == MetricTarget::External),
                "{origin}: {} is not an external metric of the base configuration",
                trigger.metric
            );
            metrics.insert(trigger.metric.clone());
            assert_eq!(
                md["scalerAddress"], "flink-hpa-bridge.flink-hpa-bridge.svc:7443",
                "{origin}"
            );
            let auth = t["authenticationRef"]["name"].as_str().expect("auth ref");
            let a = auths
                .get(auth)
                .unwrap_or_else(|| panic!("{origin}: no TriggerAuthentication {auth}"));
            assert_eq!(a["metadata"]["namespace"], doc["metadata"]["namespace"]);
            let params: std::collections::BTreeSet<&str> = a["spec"]["secretTargetRef"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["parameter"].as_str().unwrap())
                .collect();
            assert_eq!(
                params,
                ["caCert", "tlsClientCert", "tlsClientKey"].into(),
                "{origin}"
            );
        }
    }
    for m in [
        "flink_required_taskmanagers",
        "flink_kafka_lag_seconds",
        "flink_busy_time_max",
    ] {
        assert!(metrics.contains(m), "no example for {m}");
    }

    // The overlay the examples point at: the Service carries the gRPC port under the name the
    // serving certificate has, the server is started with it and with a client CA, no external
    // APIService, and KEDA's client certificate is the Secret the TriggerAuthentication reads.
    let Some(docs) = keda_overlay() else {
        eprintln!("kubectl not installed: the overlay is not rendered");
        return;
    };
    let kind = |k: &'static str| docs.iter().filter(move |d| d["kind"] == k);
    assert!(kind("APIService").all(|a| a["metadata"]["name"] != "v1beta1.external.metrics.k8s.io"));
    assert!(kind("APIService").any(|a| a["metadata"]["name"] == "v1beta2.custom.metrics.k8s.io"));
    let svc = kind("Service")
        .find(|s| s["metadata"]["name"] == "flink-hpa-bridge")
        .expect("Service");
    assert_eq!(svc["metadata"]["namespace"], "flink-hpa-bridge");
    let grpc = svc["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "grpc")
        .expect("grpc port");
    assert_eq!(grpc["port"], 7443);
    let serving = kind("Certificate")
        .find(|c| c["metadata"]["name"] == "flink-hpa-bridge-serving")
        .expect("serving certificate");
    assert!(serving["spec"]["dnsNames"]
        .as_array()
        .unwrap()
        .contains(&Value::from("flink-hpa-bridge.flink-hpa-bridge.svc")));
    let d = kind("Deployment").next().expect("Deployment");
    let c = &d["spec"]["template"]["spec"]["containers"][0];
    let port = c["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == grpc["targetPort"])
        .expect("container port named by the Service's targetPort");
    assert_eq!(port["containerPort"], 7443);
    let args: Vec<&str> = c["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(args.contains(&"--grpc-port=7443"), "{args:?}");
    let ca = args
        .iter()
        .find_map(|a| a.strip_prefix("--grpc-client-ca-file="))
        .expect("a client CA: mutual TLS");
    let mount = c["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| ca.starts_with(m["mountPath"].as_str().unwrap()))
        .expect("the CA file is mounted");
    let volume = d["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("volume");
    let ca_secret = volume["secret"]["secretName"].as_str().expect("a Secret");
    let ca_cert = kind("Certificate")
        .find(|c| c["spec"]["secretName"] == ca_secret)
        .expect("the CA's Certificate");
    assert_eq!(ca_cert["spec"]["isCA"], true);
    let client = kind("Certificate")
        .find(|c| c["spec"]["secretName"] == "flink-hpa-bridge-keda-client")
        .expect("KEDA's client certificate");
    assert!(client["spec"]["usages"]
        .as_array()
        .unwrap()
        .contains(&Value::from("client auth")));
    // Signed by the issuer backed by that CA.
    let issuer = kind("Issuer")
        .find(|i| i["metadata"]["name"] == client["spec"]["issuerRef"]["name"])
        .expect("issuer");
    assert_eq!(issuer["spec"]["ca"]["secretName"], ca_secret);
    for a in auths.values() {
        for p in a["spec"]["secretTargetRef"].as_array().unwrap() {
            assert_eq!(p["name"], "flink-hpa-bridge-keda-client");
        }
    }
}
