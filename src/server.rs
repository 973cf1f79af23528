//! Wiring: configuration → Prometheus client → signals → API → HTTPS listener.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::prometheus::{self, PromError};
use crate::signals::{PodLister, Signals};
use crate::tls::{self, Material, TlsError};

/// Largest request body accepted; the API is read-only, so GETs carry none.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Prometheus(#[from] PromError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

pub struct StartOptions {
    /// Extra DNS names or IPs for a generated certificate.
    pub tls_hosts: Vec<String>,
    /// How long in-flight requests may take after shutdown begins.
    pub grace: Duration,
    pub pods: Option<Arc<dyn PodLister>>,
}

impl Default for StartOptions {
    fn default() -> Self {
        Self {
            tls_hosts: Vec::new(),
            grace: Duration::from_secs(20),
            pods: None,
        }
    }
}

pub struct Running {
    pub addr: SocketAddr,
    /// The generated certificate's PEM, when no certificate files were configured.
    pub generated_cert_pem: Option<String>,
    pub signals: Arc<Signals>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
    }

    /// Waits until the server ends (after [`Running::stop`] or a failure).
    pub async fn wait(self) {
        let _ = self.handle.await;
    }

    pub fn shutdown_sender(&mut self) -> Option<oneshot::Sender<()>> {
        self.shutdown.take()
    }
}

pub async fn start(config: &Config, opts: StartOptions) -> Result<Running, ServerError> {
    let prom = prometheus::Client::new(&config.prometheus)?;
    let metrics = Metrics::new();
    let signals = Arc::new(Signals::new(
        config,
        prom,
        opts.pods.clone(),
        metrics.clone(),
    ));
    signals.start_background();
    let state = AppState::new(signals.clone(), metrics);
    let ready = state.ready.clone();
    let app = api::router(state)
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(TraceLayer::new_for_http());

    let material = match (
        &config.server.tls_cert_file,
        &config.server.tls_private_key_file,
    ) {
        (Some(cert), Some(key)) => Material::load(cert, key)?,
        _ => {
            let mut hosts = vec![
                "localhost".to_string(),
                "127.0.0.1".to_string(),
                "::1".to_string(),
            ];
            hosts.extend(opts.tls_hosts.iter().cloned());
            Material::self_signed(&hosts)?
        }
    };
    let generated_cert_pem = material.generated_pem.clone();
    let tls_config = material.server_config()?;

    let addr = format!(
        "{}:{}",
        config.server.bind_address, config.server.secure_port
    );
    let bind_addr = if config.server.bind_address.contains(':') {
        format!(
            "[{}]:{}",
            config.server.bind_address, config.server.secure_port
        )
    } else {
        addr.clone()
    };
    let listener = TcpListener::bind(&bind_addr)
        .await
        .map_err(|source| ServerError::Bind {
            addr: bind_addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| ServerError::Bind { addr, source })?;

    let (tx, rx) = oneshot::channel::<()>();
    let grace = opts.grace;
    let handle = tokio::spawn(async move {
        tls::serve(
            listener,
            tls_config,
            app,
            async {
                let _ = rx.await;
            },
            grace,
        )
        .await;
    });
    ready.store(true, Ordering::Release);
    tracing::info!(
        address = %local,
        prometheus = signals.prometheus().base_url(),
        "serving custom.metrics.k8s.io and external.metrics.k8s.io"
    );
    Ok(Running {
        addr: local,
        generated_cert_pem,
        signals,
        shutdown: Some(tx),
        handle,
    })
}
