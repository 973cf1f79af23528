//! Authentication and authorization, as kube-apiserver's delegated model does it.
//!
//! Identity comes from the front proxy's request headers, trusted only when the client
//! certificate chains to the request-header CA and has an allowed CN; or from a client
//! certificate signed by the client CA; or from a bearer token the API server vouches for
//! (TokenReview). Every metrics request is then authorized with a SubjectAccessReview built
//! from the URL. `system:masters` is always allowed, the health paths need nothing.

pub mod attributes;
pub mod delegated;
pub mod identity;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use http::{HeaderMap, Method, StatusCode};
use rustls::pki_types::CertificateDer;
use serde::Serialize;

use crate::path::RequestPath;
use crate::status::ApiError;
use attributes::attributes_of;
use delegated::{Decision, FromConfigMap, SarAuthorizer, TokenReviewer};
use identity::{from_client_cert, from_request_header, Authenticated, CertTrust, RequestHeader};

/// Paths anyone may read: probes carry no credentials.
pub const ALWAYS_ALLOW_PATHS: [&str; 3] = ["/healthz", "/livez", "/readyz"];
/// Most distinct refusals logged; later ones of an already logged kind stay quiet.
const MAX_LOGGED_REFUSALS: usize = 1000;

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuthSettings {
    /// Serve everyone, check nothing. For local runs and tests only.
    pub insecure_skip_auth: bool,
    pub requestheader_client_ca_file: Option<PathBuf>,
    pub requestheader_allowed_names: Vec<String>,
    pub requestheader_username_headers: Vec<String>,
    pub requestheader_group_headers: Vec<String>,
    pub requestheader_extra_headers_prefix: Vec<String>,
    pub client_ca_file: Option<PathBuf>,
    /// Accept bearer tokens, checked with TokenReview.
    pub token_review: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{file}: {message}")]
    File { file: String, message: String },
}

/// Who a request came from, as authenticated; a request extension for the handlers and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller(pub String);

impl Caller {
    /// A request served without checking who sent it (probes, `--insecure-skip-auth`).
    pub fn unchecked() -> Self {
        Self("(not authenticated)".into())
    }
}

impl std::fmt::Display for Caller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub struct Auth {
    insecure: bool,
    /// From flags; when set, the ConfigMap is not read.
    fixed: Option<FromConfigMap>,
    dynamic: Arc<RwLock<FromConfigMap>>,
    authorizer: Option<SarAuthorizer>,
    tokens: Option<TokenReviewer>,
    logged: Mutex<HashSet<String>>,
}

fn load_trust(path: &PathBuf) -> Result<CertTrust, AuthError> {
    let pem = std::fs::read_to_string(path).map_err(|e| AuthError::File {
        file: path.display().to_string(),
        message: e.to_string(),
    })?;
    CertTrust::from_pem(&pem).map_err(|message| AuthError::File {
        file: path.display().to_string(),
        message,
    })
}

impl Auth {
    /// Everyone is served, without the warning [`Auth::new`] gives: for in-process callers
    /// such as the `query` command, which sends no request over the network.
    pub fn allow_all() -> Arc<Self> {
        Arc::new(Self {
            insecure: true,
            fixed: None,
            dynamic: Arc::default(),
            authorizer: None,
            tokens: None,
            logged: Mutex::default(),
        })
    }

    /// Sets up authentication and authorization. With `kube`, authorization is delegated and
    /// the request-header settings follow the ConfigMap unless flags give them; without it,
    /// only `system:masters` can be served.
    pub fn new(
        settings: &AuthSettings,
        kube: Option<kube::Client>,
    ) -> Result<Arc<Self>, AuthError> {
        Self::with_clients(settings, kube.clone(), kube)
    }

    /// As [`Auth::new`], with one Kubernetes API for authentication (the ConfigMap,
    /// TokenReview) and one for authorization (SubjectAccessReview), as
    /// `--authentication-kubeconfig` and `--authorization-kubeconfig` choose.
    pub fn with_clients(
        settings: &AuthSettings,
        authentication: Option<kube::Client>,
        authorization: Option<kube::Client>,
    ) -> Result<Arc<Self>, AuthError> {
        if settings.insecure_skip_auth {
            tracing::warn!(
                "INSECURE: authentication and authorization are off; every request is served"
            );
            return Ok(Self::allow_all());
        }
        let mut fixed = None;
        if settings.requestheader_client_ca_file.is_some() || settings.client_ca_file.is_some() {
            let mut f = FromConfigMap::default();
            if let Some(path) = &settings.requestheader_client_ca_file {
                let mut rh = RequestHeader::new(load_trust(path)?);
                rh.allowed_names = settings.requestheader_allowed_names.clone();
                if !settings.requestheader_username_headers.is_empty() {
                    rh.username_headers = settings.requestheader_username_headers.clone();
                }
                if !settings.requestheader_group_headers.is_empty() {
                    rh.group_headers = settings.requestheader_group_headers.clone();
                }
                if !settings.requestheader_extra_headers_prefix.is_empty() {
                    rh.extra_prefixes = settings.requestheader_extra_headers_prefix.clone();
                }
                f.request_header = Some(rh);
            }
            if let Some(path) = &settings.client_ca_file {
                f.client_ca = Some(load_trust(path)?);
            }
            fixed = Some(f);
        }
        let dynamic = Arc::new(RwLock::new(FromConfigMap::default()));
        let tokens = match authentication {
            Some(client) => {
                if fixed.is_none() {
                    delegated::watch_configmap(client.clone(), dynamic.clone());
                }
                settings.token_review.then(|| TokenReviewer::new(client))
            }
            None => None,
        };
        let authorizer = match authorization {
            Some(client) => Some(SarAuthorizer::new(client)),
            None => {
                tracing::warn!("authorization is unavailable (no Kubernetes API): only system:masters is served, everyone else gets 403");
                None
            }
        };
        Ok(Arc::new(Self {
            insecure: false,
            fixed,
            dynamic,
            authorizer,
            tokens,
            logged: Mutex::default(),
        }))
    }

    fn current(&self) -> FromConfigMap {
        match &self.fixed {
            Some(f) => f.clone(),
            None => self
                .dynamic
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }

    /// Every identity header the server reads, so none reaches a handler unverified.
    pub fn strip_identity_headers(&self, headers: &mut HeaderMap) {
        let cfg = self.current();
        let rh = cfg.request_header.as_ref();
        // Header names arrive lower-cased; configured ones may not be.
        let is_identity = |k: &str| {
            matches!(k, "x-remote-user" | "x-remote-group" | "x-remote-uid")
                || k.starts_with("x-remote-extra-")
                || rh.is_some_and(|rh| {
                    rh.header_names().any(|h| h.eq_ignore_ascii_case(k))
                        || rh.extra_prefixes.iter().any(|p| {
                            k.len() >= p.len()
                                && k.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
                        })
                })
        };
        let doomed: Vec<http::HeaderName> = headers
            .keys()
            .filter(|k| is_identity(k.as_str()))
            .cloned()
            .collect();
        for h in doomed {
            headers.remove(h);
        }
    }

    fn authenticate(
        &self,
        headers: &HeaderMap,
        chain: &[CertificateDer<'static>],
    ) -> Authenticated {
        let cfg = self.current();
        if let Some(rh) = &cfg.request_header {
            match from_request_header(rh, chain, headers) {
                Authenticated::None => {}
                other => return other,
            }
        }
        if let Some(ca) = &cfg.client_ca {
            match from_client_cert(ca, chain) {
                Authenticated::None => {}
                other => return other,
            }
        }
        Authenticated::None
    }

    fn log_refusal(&self, who: &str, why: &str) {
        let key = format!("{who}|{why}");
        let mut logged = self.logged.lock().unwrap_or_else(|p| p.into_inner());
        if logged.len() < MAX_LOGGED_REFUSALS && logged.insert(key) {
            tracing::warn!(
                user = who,
                reason = why,
                "request refused (further identical refusals are not logged)"
            );
        }
    }

    /// Decides whether the request may proceed; the error is the Status to answer with.
    pub async fn check(
        &self,
        method: &Method,
        path: &RequestPath,
        headers: &HeaderMap,
        chain: &[CertificateDer<'static>],
    ) -> Result<Caller, ApiError> {
        if self.insecure || ALWAYS_ALLOW_PATHS.contains(&path.as_str()) {
            return Ok(Caller::unchecked());
        }
        let user = match self.authenticate(headers, chain) {
            Authenticated::User(u) => u,
            Authenticated::Rejected(why) => {
                self.log_refusal("(certificate)", &why);
                return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
            }
            Authenticated::None => match (bearer(headers), &self.tokens) {
                (Some(token), Some(reviewer)) => match reviewer.review(token).await {
                    Ok(Some(u)) => u,
                    Ok(None) => {
                        self.log_refusal("(bearer token)", "the API server rejected the token");
                        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    }
                    Err(e) => {
                        self.log_refusal("(bearer token)", &e.to_string());
                        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
                    }
                },
                _ => {
                    self.log_refusal("system:anonymous", "no credentials");
                    return Err(ApiError::new(StatusCode::UNAUTHORIZED, "Unauthorized"));
                }
            },
        };
        if user.is_master() {
            return Ok(Caller(user.name));
        }
        let attrs = attributes_of(method, path);
        let refuse = |why: String| {
            self.log_refusal(&user.name, &why);
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("User \"{}\" cannot {attrs}: {why}", user.name),
            ))
        };
        let Some(authorizer) = &self.authorizer else {
            return refuse(
                "authorization is unavailable (no Kubernetes API); only system:masters is served"
                    .into(),
            );
        };
        match authorizer.authorize(&user, &attrs).await {
            Ok(Decision::Allow) => Ok(Caller(user.name.clone())),
            Ok(Decision::Deny(reason)) => refuse(if reason.is_empty() {
                "denied by the API server".into()
            } else {
                reason
            }),
            Err(e) => {
                self.log_refusal(&user.name, &e.to_string());
                Err(ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("authorization failed: {e}"),
                ))
            }
        }
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}
