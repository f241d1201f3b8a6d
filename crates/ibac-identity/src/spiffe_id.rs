//! SPIFFE IDs and trust domains, parsed by the rules of the SPIFFE-ID
//! specification. This is the one parser ibac has: everything that reads or
//! writes an identity goes through it.
//!
//! A workload `name.namespace` has the ID
//! `spiffe://<trust-domain>/ns/<namespace>/workload/<name>`.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use ibac_model::WorkloadId;

/// Longest SPIFFE ID accepted, in bytes.
pub const MAX_ID_LEN: usize = 2048;
/// Longest trust domain accepted, in bytes.
pub const MAX_TRUST_DOMAIN_LEN: usize = 255;

/// Why text is not a SPIFFE ID or trust domain.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpiffeIdError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// Not `spiffe://` exactly (the scheme is lowercase).
    #[error("it must start with `spiffe://` (lowercase)")]
    Scheme,
    /// No trust domain after the scheme.
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    /// A character a trust domain may not have (uppercase, `:`, `@`…).
    #[error(
        "`{0}` is not allowed in a trust domain: use lowercase letters, digits, `.`, `-` and `_`"
    )]
    TrustDomainChar(char),
    /// Too long a trust domain.
    #[error("the trust domain is longer than {MAX_TRUST_DOMAIN_LEN} bytes")]
    TrustDomainTooLong,
    /// `//` or a trailing `/`.
    #[error("the path has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    /// `.` or `..` as a segment.
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    /// A character a path may not have.
    #[error("`{0}` is not allowed in the path: use letters, digits, `.`, `-` and `_`")]
    PathChar(char),
    /// Query or fragment.
    #[error("a SPIFFE ID has no query or fragment")]
    QueryOrFragment,
    /// Too long an ID.
    #[error("it is longer than {MAX_ID_LEN} bytes")]
    TooLong,
}

/// A trust domain: `[a-z0-9._-]+`, at most 255 bytes.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrustDomain(Arc<str>);

impl TrustDomain {
    /// The trust domain ibac uses unless configured otherwise.
    pub const DEFAULT: &'static str = "ibac.local";

    /// Parses a bare trust domain name (`ibac.local`, not `spiffe://ibac.local`).
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if text.is_empty() {
            return Err(SpiffeIdError::EmptyTrustDomain);
        }
        if text.len() > MAX_TRUST_DOMAIN_LEN {
            return Err(SpiffeIdError::TrustDomainTooLong);
        }
        if let Some(c) = text.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        }) {
            return Err(SpiffeIdError::TrustDomainChar(c));
        }
        Ok(TrustDomain(text.into()))
    }

    /// The name, e.g. `ibac.local`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The trust domain's own ID, `spiffe://<name>`.
    pub fn id(&self) -> SpiffeId {
        SpiffeId {
            full: format!("spiffe://{}", self.0).into(),
            path_start: "spiffe://".len() + self.0.len(),
        }
    }
}

impl Default for TrustDomain {
    fn default() -> Self {
        TrustDomain(Self::DEFAULT.into())
    }
}

/// A SPIFFE ID, checked.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    full: Arc<str>,
    /// Byte index where the path starts (the end, when there is none).
    path_start: usize,
}

const SCHEME: &str = "spiffe://";

impl SpiffeId {
    /// Parses a SPIFFE ID.
    pub fn parse(text: &str) -> Result<Self, SpiffeIdError> {
        if text.is_empty() {
            return Err(SpiffeIdError::Empty);
        }
        if text.len() > MAX_ID_LEN {
            return Err(SpiffeIdError::TooLong);
        }
        let rest = text.strip_prefix(SCHEME).ok_or(SpiffeIdError::Scheme)?;
        if rest.contains(['?', '#']) {
            return Err(SpiffeIdError::QueryOrFragment);
        }
        let (domain, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        TrustDomain::parse(domain)?;
        if !path.is_empty() {
            for segment in path[1..].split('/') {
                match segment {
                    "" => return Err(SpiffeIdError::EmptySegment),
                    "." | ".." => return Err(SpiffeIdError::DotSegment),
                    s => {
                        if let Some(c) = s
                            .chars()
                            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
                        {
                            return Err(SpiffeIdError::PathChar(c));
                        }
                    }
                }
            }
        }
        Ok(SpiffeId {
            full: text.into(),
            path_start: SCHEME.len() + domain.len(),
        })
    }

    /// The ID of workload `name.namespace` in `trust_domain`.
    pub fn for_workload(trust_domain: &TrustDomain, workload: &WorkloadId) -> Self {
        let full = format!(
            "{SCHEME}{}/ns/{}/workload/{}",
            trust_domain.as_str(),
            workload.namespace(),
            workload.name()
        );
        SpiffeId {
            path_start: SCHEME.len() + trust_domain.as_str().len(),
            full: full.into(),
        }
    }

    /// An ID for one of ibac's own components: `spiffe://<td>/ibac/<name>`.
    pub fn for_component(trust_domain: &TrustDomain, name: &str) -> Result<Self, SpiffeIdError> {
        Self::parse(&format!("{SCHEME}{}/ibac/{name}", trust_domain.as_str()))
    }

    /// The trust domain's name.
    pub fn trust_domain(&self) -> &str {
        &self.full[SCHEME.len()..self.path_start]
    }

    /// The path, empty or starting with `/`.
    pub fn path(&self) -> &str {
        &self.full[self.path_start..]
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.full
    }

    /// The workload this ID names, when it has the workload form.
    pub fn workload(&self) -> Option<WorkloadId> {
        let mut parts = self.path().strip_prefix('/')?.split('/');
        match (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        ) {
            (Some("ns"), Some(ns), Some("workload"), Some(name), None) => {
                WorkloadId::parse(&format!("{name}.{ns}")).ok()
            }
            _ => None,
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full)
    }
}

impl fmt::Debug for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.full)
    }
}

impl fmt::Display for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for TrustDomain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl FromStr for SpiffeId {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl FromStr for TrustDomain {
    type Err = SpiffeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl serde::Serialize for SpiffeId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.full)
    }
}

impl<'de> serde::Deserialize<'de> for SpiffeId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ibac_model::text::deserialize_parsed(d, Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_valid_ids() {
        let id = SpiffeId::parse("spiffe://ibac.local/ns/shop/workload/web").unwrap();
        assert_eq!(id.trust_domain(), "ibac.local");
        assert_eq!(id.path(), "/ns/shop/workload/web");
        assert_eq!(id.workload().unwrap().as_str(), "web.shop");
        let td = SpiffeId::parse("spiffe://example.org").unwrap();
        assert_eq!(td.path(), "");
        assert_eq!(td.workload(), None);
        assert!(SpiffeId::parse("spiffe://a_b-c.d/Upper/Case_OK.x").is_ok());
    }

    #[test]
    fn refuses_what_the_spec_refuses() {
        use SpiffeIdError::*;
        let cases = [
            ("", Empty),
            ("SPIFFE://ibac.local/a", Scheme),
            ("spiffe:/ibac.local/a", Scheme),
            ("https://ibac.local/a", Scheme),
            ("spiffe://", EmptyTrustDomain),
            ("spiffe:///a", EmptyTrustDomain),
            ("spiffe://IBAC.local/a", TrustDomainChar('I')),
            ("spiffe://ibac.local:8443/a", TrustDomainChar(':')),
            ("spiffe://user@ibac.local/a", TrustDomainChar('@')),
            ("spiffe://ibac.local/", EmptySegment),
            ("spiffe://ibac.local//a", EmptySegment),
            ("spiffe://ibac.local/a/", EmptySegment),
            ("spiffe://ibac.local/a/../b", DotSegment),
            ("spiffe://ibac.local/./b", DotSegment),
            ("spiffe://ibac.local/a%20b", PathChar('%')),
            ("spiffe://ibac.local/a?x=1", QueryOrFragment),
            ("spiffe://ibac.local/a#f", QueryOrFragment),
        ];
        for (text, error) in cases {
            assert_eq!(SpiffeId::parse(text), Err(error), "{text}");
        }
        assert_eq!(
            SpiffeId::parse(&format!("spiffe://{}/a", "d".repeat(256))),
            Err(TrustDomainTooLong)
        );
        assert_eq!(
            SpiffeId::parse(&format!("spiffe://d/{}", "a".repeat(2048))),
            Err(TooLong)
        );
    }

    #[test]
    fn workload_ids_round_trip() {
        let td = TrustDomain::default();
        let w = WorkloadId::parse("redis_cart.otterize-ecom-demo").unwrap();
        let id = SpiffeId::for_workload(&td, &w);
        assert_eq!(
            id.as_str(),
            "spiffe://ibac.local/ns/otterize-ecom-demo/workload/redis_cart"
        );
        assert_eq!(SpiffeId::parse(id.as_str()).unwrap(), id);
        assert_eq!(id.workload(), Some(w));
        let other = SpiffeId::parse("spiffe://ibac.local/ns/a/workload/b/extra").unwrap();
        assert_eq!(other.workload(), None);
        let bad = SpiffeId::parse("spiffe://ibac.local/ns/A/workload/b").unwrap();
        assert_eq!(
            bad.workload(),
            None,
            "names that ibac would refuse do not map to workloads"
        );
    }
}
