//! Decisions delegated to the Kubernetes API: SubjectAccessReview, TokenReview, and the
//! `kube-system/extension-apiserver-authentication` ConfigMap.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use kube::runtime::{watcher, WatchStreamExt};

use super::attributes::Attributes;
use super::identity::{CertTrust, RequestHeader, User, AUTHENTICATED};

/// How long an allow or deny is reused, as kube-apiserver's delegating authorizer does.
const DECISION_TTL: Duration = Duration::from_secs(10);
const TOKEN_TTL: Duration = Duration::from_secs(10);
/// Most cached decisions or tokens; a flood of distinct users cannot grow memory past this.
const MAX_CACHED: usize = 10_000;

pub const AUTH_CONFIGMAP_NAMESPACE: &str = "kube-system";
pub const AUTH_CONFIGMAP_NAME: &str = "extension-apiserver-authentication";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(String),
}

struct TtlMap<K, V> {
    entries: Mutex<HashMap<K, (V, Instant)>>,
    ttl: Duration,
}

impl<K: std::hash::Hash + Eq + Clone, V: Clone> TtlMap<K, V> {
    fn new(ttl: Duration) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn get(&self, k: &K) -> Option<V> {
        let map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        map.get(k)
            .filter(|(_, at)| at.elapsed() < self.ttl)
            .map(|(v, _)| v.clone())
    }

    fn put(&self, k: K, v: V) {
        let mut map = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_CACHED {
            let ttl = self.ttl;
            map.retain(|_, (_, at)| at.elapsed() < ttl);
            if map.len() >= MAX_CACHED {
                map.clear();
            }
        }
        map.insert(k, (v, Instant::now()));
    }
}

pub struct SarAuthorizer {
    client: kube::Client,
    cache: TtlMap<(User, Attributes), Decision>,
}

impl SarAuthorizer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: TtlMap::new(DECISION_TTL),
        }
    }

    /// Asks the API server whether `user` may do `attrs`. Errors (API unreachable) are not
    /// cached, so the next request asks again.
    pub async fn authorize(
        &self,
        user: &User,
        attrs: &Attributes,
    ) -> Result<Decision, ReviewError> {
        let key = (user.clone(), attrs.clone());
        if let Some(d) = self.cache.get(&key) {
            return Ok(d);
        }
        let mut spec = SubjectAccessReviewSpec {
            user: Some(user.name.clone()),
            uid: user.uid.clone(),
            groups: Some(user.groups.clone()),
            extra: (!user.extra.is_empty()).then(|| user.extra.clone()),
            ..Default::default()
        };
        match attrs {
            Attributes::Resource {
                verb,
                namespace,
                group,
                version,
                resource,
                subresource,
                name,
            } => {
                spec.resource_attributes = Some(ResourceAttributes {
                    verb: Some(verb.clone()),
                    namespace: namespace.clone(),
                    group: Some(group.clone()),
                    version: Some(version.clone()),
                    resource: Some(resource.clone()),
                    subresource: subresource.clone(),
                    name: name.clone(),
                    ..Default::default()
                })
            }
            Attributes::NonResource { verb, path } => {
                spec.non_resource_attributes = Some(NonResourceAttributes {
                    verb: Some(verb.clone()),
                    path: Some(path.clone()),
                })
            }
        }
        let review = SubjectAccessReview {
            spec,
            ..Default::default()
        };
        let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| ReviewError::Timeout {
            review: "SubjectAccessReview",
        })?
        .map_err(|source| ReviewError::Api {
            review: "SubjectAccessReview",
            source,
        })?;
        let status = answer.status.unwrap_or_default();
        let decision = if status.allowed {
            Decision::Allow
        } else {
            Decision::Deny(status.reason.unwrap_or_default())
        };
        self.cache.put(key, decision.clone());
        Ok(decision)
    }
}

/// Why a review could not be asked of the API server. Not cached: the next request asks again.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("{review} timed out")]
    Timeout { review: &'static str },
    #[error("{review} failed: {source}")]
    Api {
        review: &'static str,
        #[source]
        source: kube::Error,
    },
}

pub struct TokenReviewer {
    client: kube::Client,
    cache: TtlMap<Vec<u8>, Option<User>>,
}

impl TokenReviewer {
    pub fn new(client: kube::Client) -> Self {
        Self {
            client,
            cache: TtlMap::new(TOKEN_TTL),
        }
    }

    /// The user a bearer token belongs to, `None` for a token the API server rejects. Tokens
    /// are cached by digest, never kept in clear.
    pub async fn review(&self, token: &str) -> Result<Option<User>, ReviewError> {
        let key = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .to_vec();
        if let Some(u) = self.cache.get(&key) {
            return Ok(u);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_string(),
                audiences: None,
            },
            ..Default::default()
        };
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            api.create(&PostParams::default(), &review),
        )
        .await
        .map_err(|_| ReviewError::Timeout {
            review: "TokenReview",
        })?
        .map_err(|source| ReviewError::Api {
            review: "TokenReview",
            source,
        })?;
        let status = answer.status.unwrap_or_default();
        let user = match (status.authenticated, status.user) {
            (Some(true), Some(u)) => {
                let mut groups = u.groups.unwrap_or_default();
                if !groups.iter().any(|g| g == AUTHENTICATED) {
                    groups.push(AUTHENTICATED.into());
                }
                Some(User {
                    name: u.username.unwrap_or_default(),
                    uid: u.uid,
                    groups,
                    extra: u.extra.unwrap_or_default(),
                })
            }
            _ => None,
        };
        self.cache.put(key, user.clone());
        Ok(user)
    }
}

/// What the authentication ConfigMap says.
#[derive(Debug, Clone, Default)]
pub struct FromConfigMap {
    pub request_header: Option<RequestHeader>,
    pub client_ca: Option<CertTrust>,
}

fn json_list(data: &std::collections::BTreeMap<String, String>, key: &str) -> Option<Vec<String>> {
    let raw = data.get(key)?;
    serde_json::from_str::<Vec<String>>(raw).ok()
}

/// Reads the ConfigMap's keys; values of the list keys are JSON arrays of strings.
pub fn parse_configmap(cm: &ConfigMap) -> FromConfigMap {
    let data = cm.data.clone().unwrap_or_default();
    let mut out = FromConfigMap::default();
    if let Some(pem) = data.get("requestheader-client-ca-file") {
        match CertTrust::from_pem(pem) {
            Ok(trust) => {
                let mut rh = RequestHeader::new(trust);
                if let Some(v) = json_list(&data, "requestheader-allowed-names") {
                    rh.allowed_names = v;
                }
                if let Some(v) = json_list(&data, "requestheader-username-headers") {
                    rh.username_headers = v;
                }
                if let Some(v) = json_list(&data, "requestheader-uid-headers") {
                    rh.uid_headers = v;
                }
                if let Some(v) = json_list(&data, "requestheader-group-headers") {
                    rh.group_headers = v;
                }
                if let Some(v) = json_list(&data, "requestheader-extra-headers-prefix") {
                    rh.extra_prefixes = v;
                }
                out.request_header = Some(rh);
            }
            Err(e) => {
                tracing::warn!(error = %e, "requestheader-client-ca-file in {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME} is not usable")
            }
        }
    }
    if let Some(pem) = data.get("client-ca-file") {
        match CertTrust::from_pem(pem) {
            Ok(t) => out.client_ca = Some(t),
            Err(e) => {
                tracing::warn!(error = %e, "client-ca-file in {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME} is not usable")
            }
        }
    }
    out
}

/// Keeps `target` in step with the ConfigMap, without a restart.
pub fn watch_configmap(client: kube::Client, target: Arc<RwLock<FromConfigMap>>) {
    let api: Api<ConfigMap> = Api::namespaced(client, AUTH_CONFIGMAP_NAMESPACE);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={AUTH_CONFIGMAP_NAME}"));
    tokio::spawn(async move {
        let stream = watcher(api, cfg).default_backoff().applied_objects();
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(cm) => {
                    let parsed = parse_configmap(&cm);
                    tracing::info!(
                        requestheader = parsed.request_header.is_some(),
                        client_ca = parsed.client_ca.is_some(),
                        "authentication configuration loaded from {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME}"
                    );
                    *target.write().unwrap_or_else(|p| p.into_inner()) = parsed;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "watching {AUTH_CONFIGMAP_NAMESPACE}/{AUTH_CONFIGMAP_NAME}")
                }
            }
        }
    });
}
