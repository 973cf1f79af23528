//! Authenticates and authorizes every request before it reaches a handler, and removes the
//! identity headers so none reaches a handler unverified.

use axum::extract::Request;

use crate::auth::{Auth, Caller};
use crate::path::RequestPath;
use crate::status::ApiError;
use crate::tls::PeerCertificates;

/// Who sent `req`, also left in its extensions; or the 401/403 to answer with. The identity
/// headers are gone from `req` either way.
pub async fn check(auth: &Auth, path: &RequestPath, req: &mut Request) -> Result<Caller, ApiError> {
    let chain = req
        .extensions()
        .get::<PeerCertificates>()
        .map(|p| p.0.clone())
        .unwrap_or_default();
    let verdict = auth.check(req.method(), path, req.headers(), &chain).await;
    auth.strip_identity_headers(req.headers_mut());
    let caller = verdict?;
    req.extensions_mut().insert(caller.clone());
    Ok(caller)
}
