//! KEDA external scaler: KEDA's `externalscaler.ExternalScaler` gRPC service on a TLS port of
//! its own, for clusters where KEDA owns `external.metrics.k8s.io`.
//!
//! Values come from the same [`MetricsProvider`] (signals and cache) as the HTTP APIs: a
//! trigger's value is what the HPA would read from the external metrics API for the same
//! selector, summed over the returned items as the HPA sums them.

pub mod metadata;

#[allow(clippy::all, missing_docs)]
pub mod proto {
    tonic::include_proto!("externalscaler");
}

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use crate::provider::{ExternalRequest, MetricError, MetricsProvider};
use crate::signals::Signals;
use crate::tls::{ReloadingCert, TlsError};
use metadata::{MetadataError, Trigger};
use proto::external_scaler_server::{ExternalScaler, ExternalScalerServer};
use proto::{
    GetMetricSpecResponse, GetMetricsRequest, GetMetricsResponse, IsActiveResponse, MetricSpec,
    MetricValue, ScaledObjectRef,
};

/// How often `StreamIsActive` re-evaluates by default.
pub const DEFAULT_STREAM_INTERVAL: Duration = Duration::from_secs(10);

/// The gRPC listener's settings.
#[derive(Debug, Clone)]
pub struct GrpcOptions {
    /// 0 picks a free port (tests).
    pub port: u16,
    /// CA whose signed client certificates are accepted; without it no client certificate is
    /// asked for.
    pub client_ca_file: Option<PathBuf>,
    pub stream_interval: Duration,
}

impl GrpcOptions {
    pub fn new(port: u16, client_ca_file: Option<PathBuf>) -> Self {
        Self {
            port,
            client_ca_file,
            stream_interval: DEFAULT_STREAM_INTERVAL,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error("gRPC client CA {file}: {message}")]
    ClientCa { file: String, message: String },
    #[error("cannot listen for gRPC on {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The service: trigger metadata in, values from the provider out.
#[derive(Clone)]
pub struct Scaler {
    provider: Arc<dyn MetricsProvider>,
    /// Per metric: active above this unless the trigger says `activationThreshold`.
    activation: Arc<BTreeMap<String, f64>>,
    stream_interval: Duration,
}

impl Scaler {
    pub fn new(
        provider: Arc<dyn MetricsProvider>,
        activation: BTreeMap<String, f64>,
        stream_interval: Duration,
    ) -> Self {
        Self {
            provider,
            activation: Arc::new(activation),
            stream_interval,
        }
    }

    /// Over the server's signals, with each signal's documented activation rule.
    pub fn for_signals(signals: Arc<Signals>, stream_interval: Duration) -> Self {
        let activation = signals
            .metrics()
            .into_iter()
            .filter_map(|m| {
                let spec = signals.spec(&m.name)?;
                let floor = metadata::default_activation(spec.kind, &spec.handler.options());
                Some((m.name, floor))
            })
            .collect();
        Self::new(signals, activation, stream_interval)
    }

    /// Active above this for `metric`, unless the trigger says `activationThreshold`.
    pub fn activation_threshold(&self, metric: &str) -> Option<f64> {
        self.activation.get(metric).copied()
    }

    /// The trigger's value: the sum of the external metric's items for its selector.
    async fn value(&self, obj: &ScaledObjectRef) -> Result<(Trigger, f64), Status> {
        let trigger = Trigger::parse(&obj.scaler_metadata).map_err(metadata_status)?;
        if obj.namespace.is_empty() {
            return Err(Status::invalid_argument(
                "the ScaledObject reference has no namespace",
            ));
        }
        let req = ExternalRequest {
            namespace: obj.namespace.clone(),
            metric: trigger.metric.clone(),
            selector: trigger.selector.clone(),
        };
        let items = self.provider.external(&req).await.map_err(metric_status)?;
        if items.is_empty() {
            return Err(Status::not_found(format!(
                "no series of {} match {:?} in namespace {}",
                trigger.metric,
                trigger.selector.to_string(),
                obj.namespace
            )));
        }
        let value: f64 = items.iter().map(|i| i.value).sum();
        if !value.is_finite() {
            return Err(Status::unavailable(format!(
                "{} has no finite value now",
                trigger.metric
            )));
        }
        Ok((trigger, value))
    }

    async fn is_active(&self, obj: &ScaledObjectRef) -> Result<bool, Status> {
        let (trigger, value) = self.value(obj).await?;
        let threshold = trigger
            .activation_threshold
            .or_else(|| self.activation.get(&trigger.metric).copied())
            .unwrap_or(0.0);
        Ok(value > threshold)
    }
}

fn metadata_status(e: MetadataError) -> Status {
    Status::invalid_argument(e.to_string())
}

/// The same classes as the HTTP API's statuses; never an OK with a made-up value.
pub fn metric_status(e: MetricError) -> Status {
    let msg = e.to_string();
    match e {
        MetricError::UnknownMetric { .. } | MetricError::NoData(_) => Status::not_found(msg),
        MetricError::BadRequest(_) => Status::invalid_argument(msg),
        MetricError::Unusable(_) | MetricError::BackendUnavailable(_) => Status::unavailable(msg),
        MetricError::BackendFailed(_) => Status::internal(msg),
        MetricError::Backend { unavailable, .. } => {
            if unavailable {
                Status::unavailable(msg)
            } else {
                Status::internal(msg)
            }
        }
        MetricError::Pods(_) => Status::unavailable(msg),
    }
}

type ActiveStream = Pin<Box<dyn Stream<Item = Result<IsActiveResponse, Status>> + Send>>;
type SpecStream = Pin<Box<dyn Stream<Item = Result<GetMetricSpecResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ExternalScaler for Scaler {
    async fn is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<IsActiveResponse>, Status> {
        let result = Scaler::is_active(self, request.get_ref()).await?;
        Ok(Response::new(IsActiveResponse { result }))
    }

    type StreamIsActiveStream = ActiveStream;

    async fn stream_is_active(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamIsActiveStream>, Status> {
        let obj = request.into_inner();
        // Bad metadata fails the call itself rather than the first message.
        Trigger::parse(&obj.scaler_metadata).map_err(metadata_status)?;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let scaler = self.clone();
        tokio::spawn(async move {
            loop {
                let answer = scaler
                    .is_active(&obj)
                    .await
                    .map(|result| IsActiveResponse { result });
                let failed = answer.is_err();
                if tx.send(answer).await.is_err() || failed {
                    // KEDA reopens a failed stream after a pause; the error is what it logs.
                    return;
                }
                tokio::select! {
                    _ = tokio::time::sleep(scaler.stream_interval) => {}
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn get_metric_spec(
        &self,
        request: Request<ScaledObjectRef>,
    ) -> Result<Response<GetMetricSpecResponse>, Status> {
        let trigger =
            Trigger::parse(&request.get_ref().scaler_metadata).map_err(metadata_status)?;
        let target = trigger
            .target
            .ok_or_else(|| metadata_status(MetadataError::Missing(metadata::TARGET)))?;
        if !self.provider.metrics().iter().any(|m| {
            m.name == trigger.metric && m.target == crate::provider::MetricTarget::External
        }) {
            return Err(Status::not_found(format!(
                "the server serves no external metric {}",
                trigger.metric
            )));
        }
        Ok(Response::new(GetMetricSpecResponse {
            metric_specs: vec![MetricSpec {
                metric_name: trigger.metric,
                target_size: metadata::target_size(target),
                target_size_float: target,
            }],
        }))
    }

    async fn get_metrics(
        &self,
        request: Request<GetMetricsRequest>,
    ) -> Result<Response<GetMetricsResponse>, Status> {
        let obj = request
            .get_ref()
            .scaled_object_ref
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("no scaledObjectRef"))?;
        let (trigger, value) = self.value(obj).await?;
        Ok(Response::new(GetMetricsResponse {
            metric_values: vec![MetricValue {
                metric_name: trigger.metric,
                metric_value: metadata::metric_value_int(value),
                metric_value_float: value,
            }],
        }))
    }

    type StreamMetricSpecStream = SpecStream;

    async fn stream_metric_spec(
        &self,
        _request: Request<ScaledObjectRef>,
    ) -> Result<Response<Self::StreamMetricSpecStream>, Status> {
        // Targets come from the trigger and never change while it exists: nothing to push.
        Err(Status::unimplemented(
            "metric specs are fixed by the trigger; use GetMetricSpec",
        ))
    }
}

/// TLS for the gRPC port: the server's own certificate, HTTP/2 only, and with a client CA,
/// a client certificate signed by it is required.
pub fn server_config(
    cert: Arc<ReloadingCert>,
    client_ca_file: Option<&Path>,
) -> Result<Arc<ServerConfig>, GrpcError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut cfg = match client_ca_file {
        Some(file) => {
            let err = |message: String| GrpcError::ClientCa {
                file: file.display().to_string(),
                message,
            };
            let pem = std::fs::read(file).map_err(|e| err(e.to_string()))?;
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(&pem) {
                let c = c.map_err(|e| err(format!("not PEM certificates: {e}")))?;
                roots
                    .add(c)
                    .map_err(|e| err(format!("unusable CA certificate: {e}")))?;
            }
            if roots.is_empty() {
                return Err(err("no CA certificate found".into()));
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| err(e.to_string()))?;
            builder
                .with_client_cert_verifier(verifier)
                .with_cert_resolver(cert)
        }
        None => builder.with_no_client_auth().with_cert_resolver(cert),
    };
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// The gRPC service as a router, for the server's TLS accept loop.
pub fn router(scaler: Scaler) -> axum::Router {
    tonic::service::Routes::new(ExternalScalerServer::new(scaler)).into_axum_router()
}

pub struct Started {
    pub addr: SocketAddr,
    pub handle: JoinHandle<()>,
}

/// Binds and serves until `shutdown` resolves, then waits up to `grace` for open streams.
pub async fn start(
    signals: Arc<Signals>,
    cert: Arc<ReloadingCert>,
    bind_address: &str,
    opts: &GrpcOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> Result<Started, GrpcError> {
    let tls = server_config(cert, opts.client_ca_file.as_deref())?;
    if opts.client_ca_file.is_none() {
        tracing::warn!(
            "the gRPC port accepts any client: set --grpc-client-ca-file for mutual TLS"
        );
    }
    let addr = if bind_address.contains(':') {
        format!("[{bind_address}]:{}", opts.port)
    } else {
        format!("{bind_address}:{}", opts.port)
    };
    let listener = TcpListener::bind(&addr)
        .await
        .map_err(|source| GrpcError::Bind {
            addr: addr.clone(),
            source,
        })?;
    let local = listener
        .local_addr()
        .map_err(|source| GrpcError::Bind { addr, source })?;
    let app = router(Scaler::for_signals(signals, opts.stream_interval));
    // KEDA's operator keeps a handful of connections per scaler address; the cap only bounds
    // what a misbehaving client can hold open.
    const MAX_CONNECTIONS: usize = 256;
    let handle = tokio::spawn(crate::tls::serve(
        listener,
        tls,
        app,
        shutdown,
        grace,
        MAX_CONNECTIONS,
    ));
    tracing::info!(address = %local, "serving the KEDA external scaler (gRPC)");
    Ok(Started {
        addr: local,
        handle,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_follows_each_signals_options() {
        let cfg = crate::config::Config::from_yaml(
            "prometheus: {url: \"http://127.0.0.1:9\"}\nsignals:\n  - {name: required_min3, type: flinkRequiredTaskManagers, minTaskManagers: 3}\n",
            "test",
        )
        .unwrap();
        let prom = crate::prometheus::Client::new(&cfg.prometheus).unwrap();
        let signals = Arc::new(Signals::new(
            &cfg,
            prom,
            None,
            crate::metrics::Metrics::new(),
        ));
        let scaler = Scaler::for_signals(signals, DEFAULT_STREAM_INTERVAL);
        assert_eq!(scaler.activation_threshold("required_min3"), Some(3.0));
        assert_eq!(
            scaler.activation_threshold("flink_required_taskmanagers"),
            Some(1.0)
        );
        assert_eq!(
            scaler.activation_threshold("flink_busy_time_max"),
            Some(0.0)
        );
        assert_eq!(
            scaler.activation_threshold("flink_kafka_lag_seconds"),
            Some(0.0)
        );
        assert_eq!(scaler.activation_threshold("no_such_metric"), None);
    }

    #[test]
    fn metric_errors_map_to_statuses_that_are_errors() {
        use tonic::Code;
        for (e, code) in [
            (
                MetricError::UnknownMetric {
                    metric: "m".into(),
                    resource: "external metrics".into(),
                },
                Code::NotFound,
            ),
            (MetricError::NoData("none".into()), Code::NotFound),
            (MetricError::BadRequest("bad".into()), Code::InvalidArgument),
            (MetricError::Unusable("stale".into()), Code::Unavailable),
            (
                MetricError::BackendUnavailable("down".into()),
                Code::Unavailable,
            ),
            (
                MetricError::BackendFailed("bad_data".into()),
                Code::Internal,
            ),
        ] {
            let msg = e.to_string();
            let s = metric_status(e);
            assert_eq!(s.code(), code);
            assert_eq!(s.message(), msg);
        }
    }
}
