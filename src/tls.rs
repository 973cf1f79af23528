//! Serving certificates and the HTTPS accept loop.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::UnixTime;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ResolvesServerCert;
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// HTTP/1.1: how long a client may take to send a request's headers, counted from when the
/// server starts waiting for them, so it is also how long an idle keep-alive connection stays
/// open between requests.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// HTTP/2: how often an idle connection is pinged, and how long the answer may take before
/// the connection is closed.
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(30);
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
    #[error("{key} is not the private key of {cert} (their public keys differ): give --tls-private-key-file the key the certificate was issued for")]
    KeyMismatch { cert: String, key: String },
    #[error("generating a self-signed certificate: {0}")]
    Generate(String),
    #[error("building the TLS configuration: {0}")]
    Config(String),
}

pub struct Material {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// PEM of a generated certificate, so clients (tests, the demo) can trust it.
    pub generated_pem: Option<String>,
}

impl Material {
    pub fn load(cert_file: &Path, key_file: &Path) -> Result<Self, TlsError> {
        let file_err = |p: &Path, m: String| TlsError::File {
            file: p.display().to_string(),
            message: m,
        };
        let certs = CertificateDer::pem_file_iter(cert_file)
            .map_err(|e| file_err(cert_file, e.to_string()))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_err(cert_file, e.to_string()))?;
        if certs.is_empty() {
            return Err(file_err(cert_file, "no PEM certificate found".into()));
        }
        let key = PrivateKeyDer::from_pem_file(key_file)
            .map_err(|e| file_err(key_file, format!("no usable PEM private key: {e}")))?;
        let signer = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| file_err(key_file, format!("unsupported private key: {e}")))?;
        // Every handshake would fail with a key that does not belong to the certificate.
        match CertifiedKey::new(certs.clone(), signer).keys_match() {
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                return Err(TlsError::KeyMismatch {
                    cert: cert_file.display().to_string(),
                    key: key_file.display().to_string(),
                })
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) | Ok(()) => {}
            Err(e) => return Err(file_err(cert_file, format!("unreadable certificate: {e}"))),
        }
        Ok(Self {
            certs,
            key,
            generated_pem: None,
        })
    }

    /// A self-signed certificate for `hosts` (DNS names or IP addresses), as kube-apiserver
    /// makes one when no serving certificate is given.
    pub fn self_signed(hosts: &[String]) -> Result<Self, TlsError> {
        let ck = rcgen::generate_simple_self_signed(hosts.to_vec())
            .map_err(|e| TlsError::Generate(e.to_string()))?;
        let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
        Ok(Self {
            certs: vec![ck.cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(key),
            generated_pem: Some(ck.cert.pem()),
        })
    }

    fn certified_key(self) -> Result<Arc<CertifiedKey>, TlsError> {
        let signer = rustls::crypto::ring::sign::any_supported_type(&self.key)
            .map_err(|e| TlsError::Config(format!("private key: {e}")))?;
        Ok(Arc::new(CertifiedKey::new(self.certs, signer)))
    }
}

/// The serving certificate, swappable while the server runs.
#[derive(Debug)]
pub struct ReloadingCert {
    current: RwLock<Arc<CertifiedKey>>,
    files: Option<(PathBuf, PathBuf)>,
    fingerprint: RwLock<Vec<u8>>,
}

impl ReloadingCert {
    pub fn new(
        material: Material,
        files: Option<(PathBuf, PathBuf)>,
    ) -> Result<Arc<Self>, TlsError> {
        let fingerprint = files
            .as_ref()
            .map(|(c, k)| read_both(c, k))
            .unwrap_or_default();
        Ok(Arc::new(Self {
            current: RwLock::new(material.certified_key()?),
            files,
            fingerprint: RwLock::new(fingerprint),
        }))
    }

    /// Re-reads the files when their content changed (cert-manager rotates them in place, and
    /// Kubernetes swaps a Secret volume's symlink). A bad new pair is logged and the old one
    /// kept.
    pub fn reload_if_changed(&self) -> bool {
        let Some((cert, key)) = &self.files else {
            return false;
        };
        let now = read_both(cert, key);
        if now.is_empty() || *self.fingerprint.read().unwrap_or_else(|p| p.into_inner()) == now {
            return false;
        }
        match Material::load(cert, key).and_then(Material::certified_key) {
            Ok(ck) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = ck;
                *self.fingerprint.write().unwrap_or_else(|p| p.into_inner()) = now;
                tracing::info!(cert = %cert.display(), "serving certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "new serving certificate not usable; keeping the current one");
                false
            }
        }
    }

    /// Checks the files every `every` until the process ends.
    pub fn watch(self: &Arc<Self>, every: Duration) {
        if self.files.is_none() {
            return;
        }
        let weak = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match weak.upgrade() {
                    Some(c) => {
                        c.reload_if_changed();
                    }
                    None => break,
                }
            }
        });
    }
}

fn read_both(cert: &Path, key: &Path) -> Vec<u8> {
    match (std::fs::read(cert), std::fs::read(key)) {
        (Ok(mut c), Ok(k)) => {
            c.extend_from_slice(&k);
            c
        }
        _ => Vec::new(),
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

/// Asks every client for a certificate and accepts any, checking only that the client holds
/// its private key. Which certificates are trusted for what is decided per request by the
/// authenticator, against CAs that can change at run time — as kube-apiserver does with
/// `RequestClientCert`. Kubelet probes and clients without certificates still connect.
#[derive(Debug)]
struct RequestClientCert {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// TLS 1.2 and 1.3 with rustls' default suites (AEAD only, forward secret), ALPN h2 and
/// HTTP/1.1, client certificates requested but not required.
pub fn server_config(cert: Arc<ReloadingCert>) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(RequestClientCert {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut cfg = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}

/// The client's certificate chain (end entity first), as a request extension; empty when the
/// client sent none.
#[derive(Debug, Clone, Default)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Accepts TLS connections and serves `app` on them (HTTP/1.1 and HTTP/2) until `shutdown`
/// resolves; then stops accepting and gives open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    max_connections: usize,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let connections = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut builder = Builder::new(TokioExecutor::new());
    // Bounded headers: the API needs a path, a query and a few identity headers.
    builder
        .http1()
        .max_buf_size(64 * 1024)
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    builder
        .http2()
        .max_header_list_size(64 * 1024)
        .max_concurrent_streams(256)
        .timer(TokioTimer::new())
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT);
    let builder = Arc::new(builder);
    tokio::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            res = listener.accept() => match res {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            tracing::warn!(%peer, max_connections, "connection refused: too many open connections");
            drop(tcp);
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            // Held until the connection ends.
            let _permit = permit;
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    return;
                }
            };
            let peer_certs = PeerCertificates(Arc::new(
                stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| c.iter().map(|c| c.clone().into_owned()).collect())
                    .unwrap_or_default(),
            ));
            // As a service around the router, not `Router::layer`, which would rebuild every
            // route for each connection and box each again.
            let service =
                TowerToHyperService::new(tower::Layer::layer(&axum::Extension(peer_certs), app));
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!(?grace, "connections still open after the grace period; exiting"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_signed_round_trips_through_pem() {
        let m = Material::self_signed(&["localhost".into(), "127.0.0.1".into()]).unwrap();
        let pem = m.generated_pem.clone().unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
        let back: Vec<_> = CertificateDer::pem_slice_iter(pem.as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(back, m.certs);
        server_config(ReloadingCert::new(m, None).unwrap()).unwrap();
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let a = rcgen::generate_simple_self_signed(vec!["a".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["b".into()]).unwrap();
        let cert = write("a.crt", &a.cert.pem());
        let own = write("a.key", &a.signing_key.serialize_pem());
        let other = write("b.key", &b.signing_key.serialize_pem());
        assert!(Material::load(&cert, &own).is_ok());
        let err = Material::load(&cert, &other).err().unwrap().to_string();
        assert!(
            err.contains("b.key is not the private key of") && err.contains("a.crt"),
            "{err}"
        );
    }
}
