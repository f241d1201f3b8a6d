//! Names of workloads and namespaces, and the workload identity built from them.
//!
//! A [`WorkloadId`] can only be built from valid parts, so code that holds one
//! never re-checks it. One identity is `name.namespace`; its SPIFFE ID is derived
//! from it elsewhere.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::text::{as_str_text, deserialize_parsed};

/// Why a name was refused, phrased to complete "… is not a valid X; <reason>".
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing was given.
    #[error("it is empty")]
    Empty,
    /// Longer than the limit.
    #[error("it is longer than {0} characters")]
    TooLong(usize),
    /// Has uppercase letters.
    #[error("names are lowercase: did you mean `{0}`?")]
    Uppercase(String),
    /// Has a character outside the allowed set.
    #[error("`{0}` is not allowed: use lowercase letters, digits{1}")]
    Character(char, &'static str),
    /// Starts or ends with a separator.
    #[error("it must start and end with a lowercase letter or digit")]
    Edge,
    /// A workload identity without exactly one `.`.
    #[error("write it as `name.namespace`")]
    NotQualified,
}

/// Checks `text` against `[a-z0-9]([a-z0-9<extra>]*[a-z0-9])?` and a length.
fn check(text: &str, max: usize, extra: &[char], allowed: &'static str) -> Result<(), NameError> {
    if text.is_empty() {
        return Err(NameError::Empty);
    }
    if text.len() > max {
        return Err(NameError::TooLong(max));
    }
    if text.chars().any(|c| c.is_ascii_uppercase()) {
        let lower = text.to_ascii_lowercase();
        if check(&lower, max, extra, allowed).is_ok() {
            return Err(NameError::Uppercase(lower));
        }
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(c)))
    {
        return Err(NameError::Character(c, allowed));
    }
    let edge_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !edge_ok(text.chars().next()) || !edge_ok(text.chars().last()) {
        return Err(NameError::Edge);
    }
    Ok(())
}

/// A workload, Service, topic-server or config name: `[a-z0-9]([a-z0-9_-]*[a-z0-9])?`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(Arc<str>);

impl Name {
    /// Longest name accepted (a Kubernetes object name).
    pub const MAX_LEN: usize = 253;

    /// Checks and wraps a name.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(text, Self::MAX_LEN, &['-', '_'], ", `-` and `_`")?;
        Ok(Name(text.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A namespace: a DNS label, `[a-z0-9]([a-z0-9-]*[a-z0-9])?`, at most 63 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace(Arc<str>);

impl Namespace {
    /// Longest namespace accepted (a DNS label).
    pub const MAX_LEN: usize = 63;

    /// Checks and wraps a namespace.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        check(text, Self::MAX_LEN, &['-'], " and `-`")?;
        Ok(Namespace(text.into()))
    }

    /// The namespace documents take when they name none and no `-n` is given.
    pub fn default_namespace() -> Self {
        Namespace("default".into())
    }

    /// The namespace as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A workload identity, `name.namespace`.
///
/// Stored as one string so that hashing and comparing, which the policy engine
/// does on every decision, touch one contiguous buffer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkloadId {
    full: Arc<str>,
    dot: usize,
}

impl WorkloadId {
    /// The identity of workload `name` in `namespace`.
    pub fn new(name: &Name, namespace: &Namespace) -> Self {
        let full: Arc<str> = format!("{}.{}", name.as_str(), namespace.as_str()).into();
        WorkloadId {
            dot: name.as_str().len(),
            full,
        }
    }

    /// Parses `name.namespace`.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let (name, namespace) = text.split_once('.').ok_or(NameError::NotQualified)?;
        if namespace.contains('.') {
            return Err(NameError::NotQualified);
        }
        Ok(Self::new(
            &Name::parse(name)?,
            &Namespace::parse(namespace)?,
        ))
    }

    /// Parses `name` or `name.namespace`; without a namespace, `default_ns` applies.
    pub fn parse_relative(text: &str, default_ns: &Namespace) -> Result<Self, NameError> {
        match text.split_once('.') {
            Some(_) => Self::parse(text),
            None => Ok(Self::new(&Name::parse(text)?, default_ns)),
        }
    }

    /// Whether this is the Kubernetes API server (`kubernetes.default`):
    /// never a server, never protected, reached by egress only.
    pub fn is_api_server(&self) -> bool {
        self.name() == "kubernetes" && self.namespace() == "default"
    }

    /// The workload's name.
    pub fn name(&self) -> &str {
        &self.full[..self.dot]
    }

    /// The workload's namespace.
    pub fn namespace(&self) -> &str {
        &self.full[self.dot + 1..]
    }

    /// The namespace as a checked value.
    pub fn namespace_owned(&self) -> Namespace {
        Namespace(self.namespace().into())
    }

    /// The name as a checked value.
    pub fn name_owned(&self) -> Name {
        Name(self.name().into())
    }

    /// `name.namespace`.
    pub fn as_str(&self) -> &str {
        &self.full
    }
}

/// A Kubernetes kind as written in intents: starts with an uppercase letter.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kind(Arc<str>);

impl Kind {
    /// Checks and wraps a kind.
    pub fn parse(text: &str) -> Result<Self, NameError> {
        let mut chars = text.chars();
        match chars.next() {
            None => Err(NameError::Empty),
            Some(c) if !c.is_ascii_uppercase() => Err(NameError::Character(
                c,
                "; a kind starts with an uppercase letter",
            )),
            Some(_) => match chars.find(|c| !c.is_ascii_alphanumeric()) {
                Some(c) => Err(NameError::Character(
                    c,
                    "; a kind has only letters and digits",
                )),
                None if text.len() > 63 => Err(NameError::TooLong(63)),
                None => Ok(Kind(text.into())),
            },
        }
    }

    /// The kind as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this kind names a Kubernetes Service.
    pub fn is_service(&self) -> bool {
        &*self.0 == "Service"
    }
}

macro_rules! text_traits {
    ($($ty:ty),*) => {$(
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:?}", self.as_str())
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }
    )*};
}
text_traits!(Name, Namespace, WorkloadId);
as_str_text!(Name, Namespace, WorkloadId, Kind);

impl FromStr for WorkloadId {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for WorkloadId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_parsed(d, Self::parse)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_rule() {
        for ok in ["a", "web", "cart-service", "redis_cart", "a1", "0"] {
            assert!(Name::parse(ok).is_ok(), "{ok}");
        }
        assert_eq!(Name::parse(""), Err(NameError::Empty));
        assert_eq!(Name::parse("-a"), Err(NameError::Edge));
        assert_eq!(Name::parse("a_"), Err(NameError::Edge));
        assert_eq!(
            Name::parse("a.b"),
            Err(NameError::Character('.', ", `-` and `_`"))
        );
        assert_eq!(Name::parse("Web"), Err(NameError::Uppercase("web".into())));
        assert_eq!(Name::parse(&"a".repeat(254)), Err(NameError::TooLong(253)));
        assert_eq!(
            Namespace::parse("a_b"),
            Err(NameError::Character('_', " and `-`"))
        );
    }

    #[test]
    fn workload_ids_split_at_the_one_dot() {
        let id = WorkloadId::parse("cartservice.otterize-ecom-demo").unwrap();
        assert_eq!(id.name(), "cartservice");
        assert_eq!(id.namespace(), "otterize-ecom-demo");
        assert_eq!(id.to_string(), "cartservice.otterize-ecom-demo");
        assert_eq!(WorkloadId::parse("a"), Err(NameError::NotQualified));
        assert_eq!(WorkloadId::parse("a.b.c"), Err(NameError::NotQualified));
        let ns = Namespace::parse("shop").unwrap();
        assert_eq!(
            WorkloadId::parse_relative("web", &ns).unwrap().as_str(),
            "web.shop"
        );
        assert_eq!(
            WorkloadId::parse_relative("web.x", &ns).unwrap().as_str(),
            "web.x"
        );
    }

    #[test]
    fn kinds_start_uppercase() {
        assert!(Kind::parse("Deployment").is_ok());
        assert!(Kind::parse("deployment").is_err());
        assert!(Kind::parse("Stateful-Set").is_err());
        assert!(Kind::parse("Service").unwrap().is_service());
    }
}
