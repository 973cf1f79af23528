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
use flink_hpa_bridge::exporter::{FlinkTask, Series};
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
                assert!(
                    matches!(e.code(), Code::Unavailable | Code::Unknown | Code::Internal),
                    "{who}: {e:?}"
                );
                assert_ne!(e.code(), Code::NotFound, "{who} reached the service");
            }
        }
    }
}
