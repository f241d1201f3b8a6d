//! Requests, verdicts and the reasons behind them.
//!
//! A request that an intent matches is allowed. Otherwise, or when the caller
//! is unauthenticated, it is blocked if the server is protected and
//! would-be-blocked if not. A decision always says why.

use std::fmt;

use ibac_model::{Location, Namespace};

use crate::intent::method_list;
use crate::rules::{Allowed, ClientRules};

/// The outcome for one call.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// An intent allows it.
    Allowed,
    /// No intent allows it, and the server is in shadow mode: reported, not blocked.
    WouldBeBlocked,
    /// No intent allows it, and the server is protected.
    Blocked,
}

impl Verdict {
    /// `allowed`, `would-be-blocked` or `blocked`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::WouldBeBlocked => "would-be-blocked",
            Verdict::Blocked => "blocked",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a server is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProtectedBy<'p> {
    /// The mode is `defaultActive`.
    DefaultActive,
    /// Its namespace is enforced.
    EnforcedNamespace(&'p Namespace),
    /// A ProtectedService names it.
    ProtectedService(&'p Location),
}

/// Whether enforcement is on for a server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protection<'p> {
    /// Shadow mode: decisions are reported, nothing is blocked.
    Shadow,
    /// The Kubernetes API server (`kubernetes.default`), which ibac never protects.
    ApiServer,
    /// Enforcement is on.
    Protected(ProtectedBy<'p>),
}

impl Protection<'_> {
    /// Whether calls that no intent allows are blocked.
    pub fn is_protected(&self) -> bool {
        matches!(self, Protection::Protected(_))
    }

    fn verdict_without_intent(&self) -> Verdict {
        if self.is_protected() {
            Verdict::Blocked
        } else {
            Verdict::WouldBeBlocked
        }
    }
}

impl fmt::Display for Protection<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protection::Shadow => f.write_str("in shadow mode"),
            Protection::ApiServer => {
                f.write_str("the Kubernetes API server, which ibac never protects")
            }
            Protection::Protected(ProtectedBy::DefaultActive) => {
                f.write_str("protected (mode defaultActive)")
            }
            Protection::Protected(ProtectedBy::EnforcedNamespace(ns)) => {
                write!(f, "protected (namespace {ns} is enforced)")
            }
            Protection::Protected(ProtectedBy::ProtectedService(at)) => {
                write!(f, "protected (ProtectedService at {at})")
            }
        }
    }
}

/// Why a call got its verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason<'p> {
    /// An intent allowed it.
    Intent(Allowed<'p>),
    /// The caller presented no identity.
    Unauthenticated,
    /// The client declares no intent towards this server.
    NoIntents,
    /// The client's intents towards this server do not cover this request.
    NotCovered {
        /// The client's rules towards the server (described only when shown,
        /// so that a denial costs no more than an allowance).
        declared: &'p ClientRules,
        /// Intents for some ports only exist, and the request named no port.
        needs_port: bool,
    },
}

/// A verdict with its reason and the server's protection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision<'p> {
    /// The verdict.
    pub verdict: Verdict,
    /// Why.
    pub reason: Reason<'p>,
    /// The server's protection when decided.
    pub protection: Protection<'p>,
}

impl<'p> Decision<'p> {
    pub(crate) fn allowed(allowed: Allowed<'p>, protection: Protection<'p>) -> Self {
        Decision {
            verdict: Verdict::Allowed,
            reason: Reason::Intent(allowed),
            protection,
        }
    }

    pub(crate) fn denied(reason: Reason<'p>, protection: Protection<'p>) -> Self {
        Decision {
            verdict: protection.verdict_without_intent(),
            reason,
            protection,
        }
    }

    /// Whether an HTTP-narrowed intent was widened to its port to allow a connection.
    pub fn widened(&self) -> bool {
        matches!(self.reason, Reason::Intent(Allowed::Widened(_)))
    }
}

impl fmt::Display for Reason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Intent(Allowed::Intent(i)) => {
                write!(f, "allowed by the intent at {} ({})", i.at, i.describe())
            }
            Reason::Intent(Allowed::Rule(_, rule)) => write!(
                f,
                "allowed by the intent at {}: {} {}",
                rule.at,
                method_list(rule.methods),
                rule.path
            ),
            Reason::Intent(Allowed::Widened(i)) => write!(
                f,
                "allowed by the intent at {} ({}), widened to its port: at L4 the path and method cannot be checked",
                i.at,
                i.describe()
            ),
            Reason::Unauthenticated => f.write_str("the caller presented no identity"),
            Reason::NoIntents => f.write_str("the client declares no intent towards this server"),
            Reason::NotCovered {
                declared,
                needs_port,
            } => {
                let described: Vec<String> =
                    declared.intents().iter().map(|i| i.describe()).collect();
                write!(
                    f,
                    "no intent covers it; the client's intents allow: {}",
                    described.join("; ")
                )?;
                if *needs_port {
                    f.write_str(" (some only on given ports: pass the port)")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Decision<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}; the server is {}",
            self.verdict, self.reason, self.protection
        )
    }
}
