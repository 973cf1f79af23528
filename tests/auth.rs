//! Authentication and authorization. Certificates are made here; the Kubernetes API server is
//! the one part faked (no API server can run on the test machine): it answers
//! SubjectAccessReview and TokenReview, serves the authentication ConfigMap, and records what
//! the server sent so the exact attributes can be checked.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use common::*;
use flink_hpa_bridge::config::Config;
use flink_hpa_bridge::server::{self, StartOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use serde_json::{json, Value};
use tokio::sync::broadcast;

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

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A client certificate and key, PEM, as reqwest's Identity wants them.
    fn client(&self, cn: &str, orgs: &[&str]) -> reqwest::Identity {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        reqwest::Identity::from_pem(format!("{}{}", cert.pem(), key.serialize_pem()).as_bytes())
            .unwrap()
    }
}

#[derive(Clone, Default)]
struct FakeApi {
    reviews: Arc<Mutex<Vec<Value>>>,
    tokens: Arc<Mutex<Vec<String>>>,
}

fn configmap(ca_pem: &str, allowed: &[&str]) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
    "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system", "resourceVersion": "1"},
    "data": {
        "requestheader-client-ca-file": ca_pem,
        "requestheader-allowed-names": serde_json::to_string(allowed).unwrap(),
        "requestheader-username-headers": "[\"X-Remote-User\"]",
        "requestheader-group-headers": "[\"X-Remote-Group\"]",
        "requestheader-extra-headers-prefix": "[\"X-Remote-Extra-\"]",
    }})
}

#[derive(serde::Deserialize)]
struct Watch {
    watch: Option<String>,
}

async fn start_fake_api(
    api: FakeApi,
    initial: Value,
    events: broadcast::Sender<Value>,
) -> kube::Client {
    let sar = |State(api): State<FakeApi>, Json(body): Json<Value>| async move {
        api.reviews.lock().unwrap().push(body["spec"].clone());
        let user = body["spec"]["user"].as_str().unwrap_or("");
        let (allowed, reason) = match user {
            "alice" | "bob" => (true, ""),
            _ => (false, "no RBAC policy matched"),
        };
        Json(
            json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": body["spec"],
                    "status": {"allowed": allowed, "reason": reason}}),
        )
    };
    let tokenreview = |State(api): State<FakeApi>, Json(body): Json<Value>| async move {
        let token = body["spec"]["token"].as_str().unwrap_or("").to_string();
        api.tokens.lock().unwrap().push(token.clone());
        let status = if token == "good-token" {
            json!({"authenticated": true, "user": {"username": "bob", "groups": ["dev"]}})
        } else {
            json!({"authenticated": false})
        };
        Json(
            json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": body["spec"], "status": status}),
        )
    };
    let cms = move |Query(w): Query<Watch>| {
        let initial = initial.clone();
        let events = events.clone();
        async move {
            if w.watch.as_deref() == Some("true") {
                watch_body(&events).into_response()
            } else {
                Json(json!({"apiVersion": "v1", "kind": "ConfigMapList", "metadata": {"resourceVersion": "1"}, "items": [initial]}))
                    .into_response()
            }
        }
    };
    let app = Router::new()
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(sar),
        )
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(tokenreview),
        )
        .route("/api/v1/namespaces/kube-system/configmaps", get(cms))
        .with_state(api);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    kube::Client::try_from(kube::Config::new(format!("http://{addr}").parse().unwrap())).unwrap()
}

struct Srv {
    addr: std::net::SocketAddr,
    cert: String,
}

impl Srv {
    fn client(&self, identity: Option<reqwest::Identity>) -> reqwest::Client {
        let mut b = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.cert.as_bytes()).unwrap())
            .resolve("localhost", self.addr)
            .timeout(Duration::from_secs(10));
        if let Some(i) = identity {
            b = b.identity(i);
        }
        b.build().unwrap()
    }

    async fn get(&self, c: &reqwest::Client, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
        let mut req = c.get(format!("https://localhost:{}{path}", self.addr.port()));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().await.unwrap();
        let code = r.status().as_u16();
        let text = r.text().await.unwrap();
        (
            code,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

async fn start(cfg: Config, kube: Option<kube::Client>) -> Srv {
    let running = server::start(
        &cfg,
        StartOptions {
            kube,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let srv = Srv {
        addr: running.addr,
        cert: running.generated_cert_pem.clone().unwrap(),
    };
    std::mem::forget(running);
    srv
}

fn base_config() -> Config {
    let mut cfg = Config::default();
    cfg.prometheus.url = Some(bed().prometheus_url.clone());
    cfg.server.bind_address = "127.0.0.1".into();
    cfg.server.secure_port = 0;
    cfg
}

const EXTERNAL: &str = "/apis/external.metrics.k8s.io/v1beta1/namespaces/flink/flink_busy_time_max?labelSelector=job_name%3Dx";
const CUSTOM: &str =
    "/apis/custom.metrics.k8s.io/v1beta2/namespaces/flink/pods/%2A/flink_taskmanager_busy_time";

#[tokio::test]
async fn delegated_authentication_and_authorization() {
    let front_ca = Ca::new("front-proxy-ca");
    let other_ca = Ca::new("untrusted-ca");
    let api = FakeApi::default();
    let (events, _) = broadcast::channel(4);
    let kube = start_fake_api(
        api.clone(),
        configmap(&front_ca.pem(), &["front-proxy-client"]),
        events.clone(),
    )
    .await;
    let srv = start(base_config(), Some(kube)).await;

    let proxy = srv.client(Some(front_ca.client("front-proxy-client", &[])));
    let no_cert = srv.client(None);
    let untrusted = srv.client(Some(other_ca.client("front-proxy-client", &[])));
    let wrong_cn = srv.client(Some(front_ca.client("someone-else", &[])));
    let as_alice = [
        ("X-Remote-User", "alice"),
        ("X-Remote-Group", "flink-admins"),
        ("X-Remote-Extra-Acme.com%2Fproject", "p1"),
    ];

    // Probes need nothing.
    assert_eq!(srv.get(&no_cert, "/readyz", &[]).await.0, 200);

    // The ConfigMap is read through a watch: wait until the front proxy is trusted.
    let masters = [
        ("X-Remote-User", "system:kube-aggregator"),
        ("X-Remote-Group", "system:masters"),
    ];
    let mut tries = 0;
    while srv
        .get(&proxy, "/apis/external.metrics.k8s.io/v1beta1", &masters)
        .await
        .0
        == 401
    {
        tries += 1;
        assert!(tries < 100, "front proxy never trusted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Only the real front proxy's headers count.
    for (who, client) in [
        ("no certificate", &no_cert),
        ("untrusted CA", &untrusted),
        ("wrong CN", &wrong_cn),
    ] {
        let (code, body) = srv.get(client, EXTERNAL, &as_alice).await;
        assert_eq!(code, 401, "{who}");
        assert_eq!(
            body,
            json!({"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}),
            "{who}"
        );
    }
    assert!(
        api.reviews.lock().unwrap().is_empty(),
        "no review for unauthenticated requests"
    );

    // alice through the front proxy: a SubjectAccessReview with exactly these attributes.
    let (code, _) = srv.get(&proxy, EXTERNAL, &as_alice).await;
    assert_ne!(code, 401);
    assert_ne!(code, 403);
    let (code, _) = srv.get(&proxy, CUSTOM, &as_alice).await;
    assert!(code != 401 && code != 403, "{code}");
    let (code, _) = srv
        .get(&proxy, "/apis/custom.metrics.k8s.io/v1beta2", &as_alice)
        .await;
    assert_eq!(code, 200);
    let reviews = api.reviews.lock().unwrap().clone();
    let user = json!({"user": "alice", "groups": ["flink-admins", "system:authenticated"], "extra": {"acme.com/project": ["p1"]}});
    let with = |attrs: Value| {
        let mut v = user.clone();
        for (k, val) in attrs.as_object().unwrap() {
            v[k] = val.clone();
        }
        v
    };
    assert_eq!(
        reviews,
        vec![
            with(
                json!({"resourceAttributes": {"verb": "list", "namespace": "flink", "group": "external.metrics.k8s.io", "version": "v1beta1", "resource": "flink_busy_time_max"}})
            ),
            with(
                json!({"resourceAttributes": {"verb": "get", "namespace": "flink", "group": "custom.metrics.k8s.io", "version": "v1beta2", "resource": "pods", "subresource": "flink_taskmanager_busy_time", "name": "*"}})
            ),
            with(
                json!({"nonResourceAttributes": {"verb": "get", "path": "/apis/custom.metrics.k8s.io/v1beta2"}})
            ),
        ]
    );
    // Decisions are cached: the same request again asks nothing.
    srv.get(&proxy, EXTERNAL, &as_alice).await;
    assert_eq!(api.reviews.lock().unwrap().len(), 3);

    // Denied by the API server: 403 naming who and what.
    let (code, body) = srv
        .get(&proxy, EXTERNAL, &[("X-Remote-User", "carol")])
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "User \"carol\" cannot list resource \"flink_busy_time_max\" in API group \"external.metrics.k8s.io\" in the namespace \"flink\": no RBAC policy matched"
    );
    assert_eq!(body["reason"], "Forbidden");

    // The aggregator's availability probe: system:masters, no review needed.
    let before = api.reviews.lock().unwrap().len();
    assert_eq!(
        srv.get(&proxy, "/apis/external.metrics.k8s.io/v1beta1", &masters)
            .await
            .0,
        200
    );
    assert_eq!(api.reviews.lock().unwrap().len(), before);

    // Bearer tokens go through TokenReview.
    let (code, _) = srv
        .get(
            &no_cert,
            "/apis/external.metrics.k8s.io/v1beta1",
            &[("Authorization", "Bearer good-token")],
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = srv
        .get(
            &no_cert,
            "/apis/external.metrics.k8s.io/v1beta1",
            &[("Authorization", "Bearer bad-token")],
        )
        .await;
    assert_eq!(code, 401);
    assert_eq!(
        *api.tokens.lock().unwrap(),
        vec!["good-token".to_string(), "bad-token".to_string()]
    );
    let last = api.reviews.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last["user"], "bob");
    assert_eq!(last["groups"], json!(["dev", "system:authenticated"]));

    // The ConfigMap changes: the proxy's CN is no longer allowed, without a restart.
    events
        .send(json!({"type": "MODIFIED", "object": configmap(&front_ca.pem(), &["another-proxy"])}))
        .unwrap();
    let mut tries = 0;
    while srv
        .get(&proxy, "/apis/external.metrics.k8s.io/v1beta1", &masters)
        .await
        .0
        != 401
    {
        tries += 1;
        assert!(tries < 100, "ConfigMap change not followed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_a_kubernetes_api_only_system_masters_is_served() {
    let front_ca = Ca::new("front-proxy-ca");
    let client_ca = Ca::new("client-ca");
    let dir = tempfile::tempdir().unwrap();
    let rh = dir.path().join("front-proxy-ca.crt");
    let cc = dir.path().join("client-ca.crt");
    std::fs::write(&rh, front_ca.pem()).unwrap();
    std::fs::write(&cc, client_ca.pem()).unwrap();
    let mut cfg = base_config();
    cfg.server.auth.requestheader_client_ca_file = Some(rh);
    cfg.server.auth.requestheader_allowed_names = vec!["front-proxy-client".into()];
    cfg.server.auth.client_ca_file = Some(cc);
    let srv = start(cfg, None).await;
    let proxy = srv.client(Some(front_ca.client("front-proxy-client", &[])));

    let (code, body) = srv
        .get(&proxy, EXTERNAL, &[("X-Remote-User", "alice")])
        .await;
    assert_eq!(code, 403);
    assert_eq!(
        body["message"],
        "User \"alice\" cannot list resource \"flink_busy_time_max\" in API group \"external.metrics.k8s.io\" in the namespace \"flink\": authorization is unavailable (no Kubernetes API); only system:masters is served"
    );
    let masters = [
        ("X-Remote-User", "admin"),
        ("X-Remote-Group", "system:masters"),
    ];
    assert_eq!(
        srv.get(&proxy, "/apis/external.metrics.k8s.io/v1beta1", &masters)
            .await
            .0,
        200
    );
    // A client certificate of one's own: CN is the user, O the groups.
    let admin = srv.client(Some(client_ca.client("admin", &["system:masters"])));
    assert_eq!(
        srv.get(&admin, "/apis/custom.metrics.k8s.io/v1beta1", &[])
            .await
            .0,
        200
    );
    let dev = srv.client(Some(client_ca.client("dev", &["developers"])));
    assert_eq!(
        srv.get(&dev, "/apis/custom.metrics.k8s.io/v1beta1", &[])
            .await
            .0,
        403
    );
    // The client CA's certificate cannot act as the front proxy.
    let forged = srv.client(Some(client_ca.client("front-proxy-client", &[])));
    let (code, _) = srv
        .get(&forged, "/apis/external.metrics.k8s.io/v1beta1", &masters)
        .await;
    assert_eq!(
        code, 403,
        "treated as the user front-proxy-client, not as the proxy"
    );
    // No credentials at all.
    assert_eq!(srv.get(&srv.client(None), "/metrics", &[]).await.0, 401);
}

#[tokio::test]
async fn serving_certificate_is_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let (cert_file, key_file) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    let issue = |cn: &str| {
        let ca = Ca::new(cn);
        let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca.issuer).unwrap();
        std::fs::write(&cert_file, cert.pem()).unwrap();
        std::fs::write(&key_file, key.serialize_pem()).unwrap();
        ca.pem()
    };
    let first_ca = issue("first-ca");
    let mut cfg = base_config();
    cfg.server.tls_cert_file = Some(cert_file.clone());
    cfg.server.tls_private_key_file = Some(key_file.clone());
    cfg.server.auth.insecure_skip_auth = true;
    let running = server::start(&cfg, StartOptions::default()).await.unwrap();
    let addr = running.addr;
    let trusting = |ca: &str| {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(ca.as_bytes()).unwrap())
            .resolve("localhost", addr)
            .build()
            .unwrap()
    };
    let url = format!("https://localhost:{}/livez", addr.port());
    assert!(trusting(&first_ca).get(&url).send().await.is_ok());
    let second_ca = issue("second-ca");
    // Checked every 10 s; new connections see the new certificate.
    let mut ok = false;
    for _ in 0..150 {
        if trusting(&second_ca).get(&url).send().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "new certificate not served");
    assert!(
        trusting(&first_ca).get(&url).send().await.is_err(),
        "old certificate still served"
    );
    running.stop().await;
}
