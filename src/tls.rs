//! Serving certificates and the HTTPS accept loop.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
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

    pub fn server_config(self) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(self.certs, self.key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}

/// Accepts TLS connections and serves `app` on them (HTTP/1.1 and HTTP/2) until `shutdown`
/// resolves; then stops accepting and gives open connections `grace` to finish.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let builder = Arc::new(Builder::new(TokioExecutor::new()));
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
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let app = app.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
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
            let service = TowerToHyperService::new(app);
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
        m.server_config().unwrap();
    }
}
