//! `serve`: the Kubernetes API clients chosen by the kubeconfig flags, the pod cache, then the
//! server until `shutdown` resolves.

use std::future::Future;
use std::path::PathBuf;

use crate::config::{Config, PodSource};
use crate::kubeconfig::{self, KubeApi, KubeconfigError};
use crate::pods::{self, PodsError};
use crate::server::{self, ServerError, StartOptions};

/// What `serve` takes besides the configuration.
#[derive(Debug, Default, Clone)]
pub struct ServeOptions {
    /// Extra DNS names or IPs for a generated certificate.
    pub tls_hosts: Vec<String>,
    /// The Service in front of the server, and its namespace.
    pub service: Option<(String, String)>,
    pub kubeconfig: Option<PathBuf>,
    pub authentication_kubeconfig: Option<PathBuf>,
    pub authorization_kubeconfig: Option<PathBuf>,
    /// Also serve the KEDA external scaler over gRPC.
    pub grpc: Option<crate::keda::GrpcOptions>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Kubeconfig(#[from] KubeconfigError),
    #[error(transparent)]
    Pods(#[from] PodsError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// The names a Service `name` in `namespace` is reached by, as an APIService with a caBundle
/// verifies them.
pub fn service_hosts(name: &str, namespace: &str) -> Vec<String> {
    vec![
        name.to_string(),
        format!("{name}.{namespace}"),
        format!("{name}.{namespace}.svc"),
        format!("{name}.{namespace}.svc.cluster.local"),
    ]
}

fn say(what: &str, api: &Option<KubeApi>) {
    match api {
        Some(a) => {
            tracing::info!(server = %a.server, from = %a.source, "{what}: Kubernetes API server")
        }
        None => {
            tracing::info!("{what}: no Kubernetes API server (not in a cluster, no kubeconfig)")
        }
    }
}

pub async fn run(
    config: &Config,
    opts: ServeOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServeError> {
    // Without delegated auth and with pods matched on labels, the Kubernetes API is only
    // needed when one was named.
    let wanted = !(config.server.auth.insecure_skip_auth && config.pod_source == PodSource::Labels)
        || opts.kubeconfig.is_some();
    let main = if wanted {
        kubeconfig::connect(opts.kubeconfig.as_deref(), "--kubeconfig").await?
    } else {
        None
    };
    say("pods and defaults", &main);
    let authentication = match &opts.authentication_kubeconfig {
        Some(p) => {
            let api = kubeconfig::connect(Some(p), "--authentication-kubeconfig").await?;
            say("authentication", &api);
            api.map(|a| a.client)
        }
        None => main.as_ref().map(|a| a.client.clone()),
    };
    let authorization = match &opts.authorization_kubeconfig {
        Some(p) => {
            let api = kubeconfig::connect(Some(p), "--authorization-kubeconfig").await?;
            say("authorization", &api);
            api.map(|a| a.client)
        }
        None => main.as_ref().map(|a| a.client.clone()),
    };
    let main_client = main.map(|a| a.client);
    let pod_lister = pods::lister_for(config.pod_source, main_client.as_ref())?;
    let mut tls_hosts = opts.tls_hosts;
    if let Some((name, ns)) = &opts.service {
        tls_hosts.extend(service_hosts(name, ns));
    }
    let start = StartOptions {
        tls_hosts,
        pods: pod_lister,
        kube: if config.server.auth.insecure_skip_auth {
            None
        } else {
            authentication
        },
        authorization_kube: if config.server.auth.insecure_skip_auth {
            None
        } else {
            authorization
        },
        grpc: opts.grpc.clone(),
    };
    let mut running = server::start(config, start).await?;
    let stop = running.shutdown_sender();
    shutdown.await;
    tracing::info!("shutting down: no new connections, finishing requests in flight");
    if let Some(stop) = stop {
        let _ = stop.send(());
    }
    running.wait().await;
    Ok(())
}
