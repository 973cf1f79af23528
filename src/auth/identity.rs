//! Who is asking: the front proxy's request headers (trusted only from its client
//! certificate), a client certificate of its own, or nobody.

use std::collections::BTreeMap;
use std::sync::Arc;

use http::HeaderMap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct User {
    pub name: String,
    pub uid: Option<String>,
    pub groups: Vec<String>,
    pub extra: BTreeMap<String, Vec<String>>,
}

pub const MASTERS: &str = "system:masters";
pub const AUTHENTICATED: &str = "system:authenticated";

impl User {
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == MASTERS)
    }
}

/// Trust in client certificates signed by one set of CAs.
#[derive(Debug, Clone)]
pub struct CertTrust {
    verifier: Arc<dyn ClientCertVerifier>,
}

impl CertTrust {
    /// From PEM text holding one or more CA certificates.
    pub fn from_pem(pem: &str) -> Result<Self, String> {
        let mut roots = RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let c = c.map_err(|e| format!("not PEM certificates: {e}"))?;
            roots
                .add(c)
                .map_err(|e| format!("unusable CA certificate: {e}"))?;
        }
        if roots.is_empty() {
            return Err("no CA certificate found".into());
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()
        .map_err(|e| e.to_string())?;
        Ok(Self { verifier })
    }

    /// Whether the chain (end entity first) chains to these CAs, is valid now, and is meant
    /// for client authentication.
    pub fn verifies(&self, chain: &[CertificateDer<'static>]) -> bool {
        let Some((end_entity, intermediates)) = chain.split_first() else {
            return false;
        };
        self.verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .is_ok()
    }
}

/// `requestheader-*` settings: which proxy may assert identities, and in which headers.
#[derive(Debug, Clone)]
pub struct RequestHeader {
    pub trust: CertTrust,
    /// Client certificate CNs allowed to act as the front proxy; empty allows any CN the CA
    /// signed.
    pub allowed_names: Vec<String>,
    pub username_headers: Vec<String>,
    pub uid_headers: Vec<String>,
    pub group_headers: Vec<String>,
    pub extra_prefixes: Vec<String>,
}

impl RequestHeader {
    pub fn new(trust: CertTrust) -> Self {
        Self {
            trust,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: Vec::new(),
            group_headers: vec!["X-Remote-Group".into()],
            extra_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }

    /// Every header this configuration reads; stripped from every request.
    pub fn header_names(&self) -> impl Iterator<Item = &String> {
        self.username_headers
            .iter()
            .chain(&self.uid_headers)
            .chain(&self.group_headers)
    }
}

/// The subject's common name and organizations of a DER certificate.
pub fn subject(cert: &CertificateDer<'_>) -> Option<(String, Vec<String>)> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let subject = parsed.subject();
    let cn = subject
        .iter_common_name()
        .next()
        .and_then(|a| a.as_str().ok())
        .unwrap_or_default()
        .to_string();
    let orgs = subject
        .iter_organization()
        .filter_map(|a| a.as_str().ok().map(str::to_string))
        .collect();
    Some((cn, orgs))
}

pub enum Authenticated {
    User(User),
    /// Credentials were presented but are not good; the reason is for the log.
    Rejected(String),
    /// No credentials this authenticator knows.
    None,
}

/// The front-proxy path: a certificate from the request-header CA with an allowed CN makes the
/// identity headers trustworthy.
pub fn from_request_header(
    rh: &RequestHeader,
    chain: &[CertificateDer<'static>],
    headers: &HeaderMap,
) -> Authenticated {
    if chain.is_empty() || !rh.trust.verifies(chain) {
        return Authenticated::None;
    }
    let cn = chain
        .first()
        .and_then(subject)
        .map(|(cn, _)| cn)
        .unwrap_or_default();
    if !rh.allowed_names.is_empty() && !rh.allowed_names.contains(&cn) {
        return Authenticated::Rejected(format!(
            "client certificate CN {cn:?} is not among the requestheader allowed names"
        ));
    }
    let first = |names: &[String]| {
        names
            .iter()
            .filter_map(|h| headers.get(h.as_str()))
            .filter_map(|v| v.to_str().ok())
            .find(|v| !v.is_empty())
            .map(str::to_string)
    };
    let Some(name) = first(&rh.username_headers) else {
        return Authenticated::Rejected("front-proxy request without a user name header".into());
    };
    let mut groups: Vec<String> = rh
        .group_headers
        .iter()
        .flat_map(|h| headers.get_all(h.as_str()).iter())
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (hname, value) in headers {
        for prefix in &rh.extra_prefixes {
            let h = hname.as_str();
            if h.len() > prefix.len() && h[..prefix.len()].eq_ignore_ascii_case(prefix) {
                let key = percent_encoding::percent_decode_str(&h[prefix.len()..])
                    .decode_utf8_lossy()
                    .to_lowercase();
                if let Ok(v) = value.to_str() {
                    extra.entry(key).or_default().push(v.to_string());
                }
            }
        }
    }
    if !groups.iter().any(|g| g == AUTHENTICATED) {
        groups.push(AUTHENTICATED.into());
    }
    Authenticated::User(User {
        name,
        uid: first(&rh.uid_headers),
        groups,
        extra,
    })
}

/// A client certificate of the client's own, from the client CA: CN is the user, O the groups.
pub fn from_client_cert(trust: &CertTrust, chain: &[CertificateDer<'static>]) -> Authenticated {
    if chain.is_empty() || !trust.verifies(chain) {
        return Authenticated::None;
    }
    match chain.first().and_then(subject) {
        Some((cn, mut orgs)) if !cn.is_empty() => {
            orgs.push(AUTHENTICATED.into());
            Authenticated::User(User {
                name: cn,
                uid: None,
                groups: orgs,
                extra: BTreeMap::new(),
            })
        }
        _ => Authenticated::Rejected("client certificate without a common name".into()),
    }
}
