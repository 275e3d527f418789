//! The egress allowlist: the only origins (scheme, host, port) the gateway
//! may connect to are the endpoints of registered, non-deprecated contracts
//! and the origins the operator lists in the configuration. Every refusal is
//! counted by reason, so an attempt to reach anywhere else is visible.
//!
//! This module must never resolve names or open connections: it judges URLs.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use caio_calculus::registry::Registry;
use url::Url;

/// Where a connection goes: `https://api.example.com:443`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of `url`, if it has a host and a known port.
    pub fn of(url: &Url) -> Option<Origin> {
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }

    /// The origin of a URL given as text.
    pub fn parse(text: &str) -> Result<Origin, String> {
        let url = Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("`{text}` is not an http:// or https:// URL"));
        }
        Origin::of(&url).ok_or_else(|| format!("`{text}` names no host"))
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Why a destination was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Refusal {
    /// A request to an origin no contract declares.
    Undeclared,
    /// A redirect to an origin no contract declares.
    Redirect,
}

impl Refusal {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::Undeclared => "undeclared",
            Refusal::Redirect => "redirect",
        }
    }
}

/// The allowlist, shared by the gateway and its HTTP client's redirect
/// policy; updated whenever the registry changes.
#[derive(Debug, Default)]
pub struct Egress {
    configured: BTreeSet<Origin>,
    declared: RwLock<BTreeSet<Origin>>,
    refused: Mutex<BTreeMap<(Refusal, String), u64>>,
}

impl Egress {
    /// An allowlist holding the operator's `extra` origins and, once
    /// [`Egress::declare`] is called, the registry's endpoints.
    pub fn new(extra: &[String]) -> Result<Arc<Egress>, String> {
        let configured = extra.iter().map(|o| Origin::parse(o)).collect::<Result<_, _>>()?;
        Ok(Arc::new(Egress { configured, ..Egress::default() }))
    }

    /// Replaces the declared origins with the endpoints of `registry` (which
    /// holds only the contracts routing may use: deprecated ones are gone).
    pub fn declare(&self, registry: &Registry) {
        let origins = registry.entries().filter_map(|entry| Origin::parse(&entry.contract.api.endpoint).ok()).collect();
        *self.declared.write().unwrap_or_else(|p| p.into_inner()) = origins;
    }

    /// Whether a connection to `url` is allowed.
    pub fn allows(&self, url: &Url) -> bool {
        let Some(origin) = Origin::of(url) else { return false };
        self.configured.contains(&origin) || self.declared.read().unwrap_or_else(|p| p.into_inner()).contains(&origin)
    }

    /// Counts a refusal of `url`.
    pub fn refuse(&self, reason: Refusal, url: &Url) {
        let origin = Origin::of(url).map_or_else(|| "unknown".to_string(), |o| o.to_string());
        tracing::warn!(target: "caio::egress", reason = reason.label(), %origin, "refused a connection to an undeclared origin");
        *self.refused.lock().unwrap_or_else(|p| p.into_inner()).entry((reason, origin)).or_default() += 1;
    }

    /// Refusals so far, by reason and origin.
    pub fn refusals(&self) -> BTreeMap<(Refusal, String), u64> {
        self.refused.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The redirect policy of the gateway's client: a redirect is followed
    /// only to an allowed origin, at most `limit` times.
    pub fn redirect_policy(self: &Arc<Egress>, limit: usize) -> reqwest::redirect::Policy {
        let egress = self.clone();
        reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= limit {
                attempt.error(format!("more than {limit} redirects"))
            } else if egress.allows(attempt.url()) {
                attempt.follow()
            } else {
                egress.refuse(Refusal::Redirect, attempt.url());
                let to = Origin::of(attempt.url()).map_or_else(|| attempt.url().to_string(), |o| o.to_string());
                attempt.error(format!("refused a redirect to {to}: no registered contract declares it"))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_scheme_host_and_port() {
        let egress = Egress::new(&["https://api.example.com".into(), "http://127.0.0.1:8081".into()]).unwrap();
        let allows = |u: &str| egress.allows(&Url::parse(u).unwrap());
        assert!(allows("https://api.example.com/v1/chat/completions"));
        assert!(allows("https://API.example.com:443/x"));
        assert!(!allows("http://api.example.com/v1"), "another scheme is another origin");
        assert!(!allows("https://api.example.com:8443/v1"), "another port is another origin");
        assert!(!allows("https://api.example.com.evil.test/v1"));
        assert!(allows("http://127.0.0.1:8081/v1/embeddings"));
        assert!(!allows("http://127.0.0.1:8082/v1/embeddings"));
    }

    #[test]
    fn bad_configured_origins_are_refused() {
        assert_eq!(Egress::new(&["ftp://x".into()]).unwrap_err(), "`ftp://x` is not an http:// or https:// URL");
        assert!(Egress::new(&["not a url".into()]).unwrap_err().starts_with("`not a url` is not a URL"));
    }
}
