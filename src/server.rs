//! Wiring: configuration → Prometheus client → signals → API → HTTPS listener.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tower_http::trace::TraceLayer;

use crate::api::wire::ApiError;
use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::prometheus::{self, PromError};
use crate::signals::{PodLister, Signals};
use crate::tls::{self, Material, ReloadingCert, TlsError};

/// How often certificate files are checked for changes.
const CERT_RELOAD_CHECK: Duration = Duration::from_secs(10);

/// Largest request body accepted; the API is read-only, so GETs carry none.
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Prometheus(#[from] PromError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error(transparent)]
    Grpc(#[from] crate::keda::GrpcError),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Default)]
pub struct StartOptions {
    /// Extra DNS names or IPs for a generated certificate.
    pub tls_hosts: Vec<String>,
    pub pods: Option<Arc<dyn PodLister>>,
    /// The Kubernetes API, for delegated authorization and the authentication ConfigMap.
    pub kube: Option<kube::Client>,
    /// Also serve the KEDA external scaler over gRPC.
    pub grpc: Option<crate::keda::GrpcOptions>,
}

pub struct Running {
    pub addr: SocketAddr,
    /// The generated certificate's PEM, when no certificate files were configured.
    pub generated_cert_pem: Option<String>,
    pub signals: Arc<Signals>,
    /// The KEDA external scaler's address, when served.
    pub grpc_addr: Option<SocketAddr>,
    shutdown: Option<oneshot::Sender<()>>,
    handle: JoinHandle<()>,
    grpc_handle: Option<JoinHandle<()>>,
}

impl Running {
    /// Stops accepting, lets in-flight requests finish, and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.handle).await;
        if let Some(h) = self.grpc_handle.take() {
            let _ = h.await;
        }
    }

    /// Waits until the server ends (after [`Running::stop`] or a failure).
    pub async fn wait(self) {
        let _ = self.handle.await;
        if let Some(h) = self.grpc_handle {
            let _ = h.await;
        }
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
    let auth = crate::auth::Auth::new(&config.server.auth, opts.kube.clone())?;
    let state = AppState::new(signals.clone(), metrics, auth);
    let ready = state.ready.clone();
    let in_flight = Arc::new(Semaphore::new(config.server.max_in_flight));
    let app = api::router(state)
        .layer(axum::middleware::from_fn(
            move |req: Request, next: Next| {
                let permit = in_flight.clone().try_acquire_owned();
                async move {
                    match permit {
                        // Dropped when the response is produced.
                        Ok(_permit) => next.run(req).await,
                        Err(_) => ApiError::new(
                            StatusCode::TOO_MANY_REQUESTS,
                            "too many requests in flight; retry later",
                        )
                        .into_response(),
                    }
                }
            },
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(TraceLayer::new_for_http());

    let files = match (
        &config.server.tls_cert_file,
        &config.server.tls_private_key_file,
    ) {
        (Some(c), Some(k)) => Some((c.clone(), k.clone())),
        _ => None,
    };
    let material = match &files {
        Some((cert, key)) => Material::load(cert, key)?,
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
    let cert = ReloadingCert::new(material, files)?;
    cert.watch(CERT_RELOAD_CHECK);
    let tls_config = tls::server_config(cert.clone())?;

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
    // One stop signal for both listeners.
    let rx = futures::FutureExt::shared(rx);
    let grace = config.server.shutdown_grace_period;
    let grpc = match &opts.grpc {
        Some(g) => {
            let stop = rx.clone();
            let started = crate::keda::start(
                signals.clone(),
                cert.clone(),
                &config.server.bind_address,
                g,
                async move {
                    let _ = stop.await;
                },
                grace,
            )
            .await?;
            Some(started)
        }
        None => None,
    };
    let not_ready = ready.clone();
    let handle = tokio::spawn(async move {
        tls::serve(
            listener,
            tls_config,
            app,
            async move {
                let _ = rx.await;
                // Endpoints drop the pod before connections close.
                not_ready.store(false, Ordering::Release);
            },
            grace,
        )
        .await;
    });
    ready.store(true, Ordering::Release);
    tracing::info!(
        address = %local,
        prometheus = signals.backend_url(),
        "serving custom.metrics.k8s.io and external.metrics.k8s.io"
    );
    Ok(Running {
        addr: local,
        generated_cert_pem,
        signals,
        grpc_addr: grpc.as_ref().map(|g| g.addr),
        shutdown: Some(tx),
        handle,
        grpc_handle: grpc.map(|g| g.handle),
    })
}
