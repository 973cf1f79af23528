//! Which Kubernetes API server the server talks to, as every extension API server chooses:
//! a `--kubeconfig` given, else the in-cluster service account, else `$KUBECONFIG`, else
//! `~/.kube/config`, else none.

use std::path::{Path, PathBuf};

/// Why a kubeconfig that was asked for cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KubeconfigError {
    #[error("{flag} {}: {source}", path.display())]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("{flag} {}: no usable client: {source}", path.display())]
    Client {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: kube::Error,
    },
}

/// A client and a description of where it points, for the start-up log.
pub struct KubeApi {
    pub client: kube::Client,
    pub server: String,
    pub source: String,
}

/// The client for `path` (given with `flag`), or the default chain when `path` is `None`.
/// A path that cannot be used is an error; an empty default chain is `None`.
pub async fn connect(
    path: Option<&Path>,
    flag: &'static str,
) -> Result<Option<KubeApi>, KubeconfigError> {
    let (config, source) = match path {
        Some(p) => {
            let kc =
                kube::config::Kubeconfig::read_from(p).map_err(|source| KubeconfigError::Read {
                    flag,
                    path: p.to_path_buf(),
                    source,
                })?;
            let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|source| KubeconfigError::Read {
                    flag,
                    path: p.to_path_buf(),
                    source,
                })?;
            (cfg, format!("{flag} {}", p.display()))
        }
        None => match kube::Config::incluster() {
            Ok(cfg) => (cfg, "in-cluster service account".to_string()),
            Err(_) => match kube::Config::from_kubeconfig(&Default::default()).await {
                Ok(cfg) => (
                    cfg,
                    match std::env::var_os("KUBECONFIG") {
                        Some(k) => format!("$KUBECONFIG ({})", PathBuf::from(k).display()),
                        None => "~/.kube/config".to_string(),
                    },
                ),
                Err(e) => {
                    tracing::debug!(reason = %e, "no kubeconfig");
                    return Ok(None);
                }
            },
        },
    };
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config).map_err(|source| KubeconfigError::Client {
        flag,
        path: path.map(Path::to_path_buf).unwrap_or_default(),
        source,
    })?;
    Ok(Some(KubeApi {
        client,
        server,
        source,
    }))
}
