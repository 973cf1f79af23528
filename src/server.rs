//! Wiring: configuration → Prometheus client → signals → API → HTTPS listener.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::config::Config;
use crate::metrics::Metrics;
use crate::prometheus::{self, PromError};
use crate::signals::{PodLister, Signals};
use crate::tls::{self, Material, ReloadingCert, TlsError};

/// How often certificate files are checked for changes.
const CERT_RELOAD_CHECK: Duration = Duration::from_secs(10);

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
    #[error("cannot listen on {addr}: {source}{}", bind_hint(.source))]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// What to change when the address cannot be had.
fn bind_hint(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "; another process has the port: choose another with --secure-port (or server.securePort in the config file)"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "; no interface has that address: change --bind-address (or server.bindAddress)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "; ports below 1024 need privileges: choose another with --secure-port"
        }
        _ => "",
    }
}

#[derive(Default)]
pub struct StartOptions {
    /// Extra DNS names or IPs for a generated certificate.
    pub tls_hosts: Vec<String>,
    pub pods: Option<Arc<dyn PodLister>>,
    /// The Kubernetes API, for the authentication ConfigMap and TokenReview, and for
    /// SubjectAccessReview unless `authorization_kube` is set.
    pub kube: Option<kube::Client>,
    /// The Kubernetes API for SubjectAccessReview, when not `kube`.
    pub authorization_kube: Option<kube::Client>,
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
    // Serve anyway when Prometheus cannot be reached: the HPA then gets a clear 503 per
    // request instead of an APIService that is down, and the pod does not crash-loop.
    // Probed beside the start, which a black-holed address would otherwise hold up for the
    // whole query timeout.
    tokio::spawn({
        let (prom, metrics) = (prom.clone(), metrics.clone());
        async move {
            match prom.reachable().await {
                Ok(()) => metrics.prometheus_up.set(1),
                Err(e) => {
                    metrics.prometheus_up.set(0);
                    tracing::warn!(url = prom.base_url(), error = %e, "Prometheus cannot be reached; serving anyway, every metric request gets 503 until it can");
                }
            }
        }
    });
    let signals = Arc::new(Signals::new(
        config,
        prom,
        opts.pods.clone(),
        metrics.clone(),
    ));
    signals.start_background();
    let auth = crate::auth::Auth::with_clients(
        &config.server.auth,
        opts.kube.clone(),
        opts.authorization_kube
            .clone()
            .or_else(|| opts.kube.clone()),
    )?;
    let state = AppState::new(signals.clone(), metrics, auth);
    let ready = state.ready.clone();
    let app = api::router_with(
        state,
        api::Limits {
            max_in_flight: config.server.max_in_flight,
            ..api::Limits::default()
        },
    );

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
    let max_connections = config.server.max_connections;
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
            max_connections,
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
