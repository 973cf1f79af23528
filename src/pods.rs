//! A watched cache of pod metadata, for resolving the HPA's pod label selector.
//!
//! The HPA sends the scale target's pod selector with every `pods/*` request. Resolving it
//! against a local cache costs no API call per request, and the answer is filtered by pod name
//! in memory: there is never a per-request regex of pod names in a PromQL query.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::ResourceExt;

use crate::config::PodSource;
use crate::selector::Selector;
use crate::signals::{PodListError, PodLister};

#[derive(Debug, thiserror::Error)]
pub enum PodsError {
    #[error("{0} but no Kubernetes API is configured (not in a cluster, no kubeconfig)")]
    NoApi(String),
}

pub struct KubePods {
    store: Store<PartialObjectMeta<Pod>>,
    synced: Arc<AtomicBool>,
}

impl KubePods {
    /// Starts watching pod metadata in all namespaces through `client`.
    pub fn start(client: kube::Client) -> Arc<Self> {
        // An Api over PartialObjectMeta makes metadata-only list/watch requests.
        let api: Api<PartialObjectMeta<Pod>> = Api::all(client);
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff()
            .touched_objects();
        tokio::spawn(async move {
            futures::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(e) = event {
                    // The watcher retries with backoff; the cache keeps its last state.
                    tracing::warn!(error = %e, "pod watch error");
                }
            }
        });
        let ready_store = store.clone();
        let ready_flag = synced.clone();
        tokio::spawn(async move {
            if ready_store.wait_until_ready().await.is_ok() {
                ready_flag.store(true, Ordering::Release);
                tracing::info!(pods = ready_store.state().len(), "pod cache synced");
            }
        });
        Arc::new(Self { store, synced })
    }
}

impl PodLister for KubePods {
    fn pods(&self, namespace: &str, selector: &Selector) -> Result<Vec<String>, PodListError> {
        if !self.synced.load(Ordering::Acquire) {
            return Err(PodListError::NotSynced);
        }
        let mut names: Vec<String> = self
            .store
            .state_filter(|p| {
                p.namespace().as_deref() == Some(namespace) && selector.matches(p.labels())
            })
            .iter()
            .map(|p| p.name_any())
            .collect();
        names.sort();
        Ok(names)
    }
}

/// The pod lister `source` asks for: `None` means matching selectors against series labels.
pub fn lister_for(
    source: PodSource,
    client: Option<&kube::Client>,
) -> Result<Option<Arc<dyn PodLister>>, PodsError> {
    match (source, client) {
        (PodSource::Labels, _) => Ok(None),
        (_, Some(client)) => {
            tracing::info!("resolving pods/* label selectors with a watched pod cache");
            Ok(Some(KubePods::start(client.clone())))
        }
        (PodSource::Auto, None) => {
            tracing::info!("pods/* label selectors are matched against series labels");
            Ok(None)
        }
        (PodSource::Kubernetes, None) => Err(PodsError::NoApi("pods.source is kubernetes".into())),
    }
}
