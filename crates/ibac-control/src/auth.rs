//! Who is calling the API.
//!
//! People and tools present a bearer token; the store keeps only its SHA-256.
//! The admin token (written to the data directory at first start, 0600) may
//! do everything; other tokens may change documents and workloads in the
//! namespaces they were made for, and read everything. Proxies present their
//! SVID over mTLS: a registered workload may fetch its state and send reports,
//! and nothing else. Anyone else gets 401.

use std::collections::HashMap;

use base64::Engine as _;
use ibac_model::WorkloadId;
use ring::rand::{SecureRandom, SystemRandom};

use crate::store::TokenRow;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// A token for every namespace.
    Admin {
        /// The token's name.
        name: String,
    },
    /// A token for some namespaces.
    Scoped {
        /// The token's name.
        name: String,
        /// What it may change.
        namespaces: Vec<String>,
    },
    /// A workload's proxy, by its SVID.
    Workload(WorkloadId),
}

impl Caller {
    /// How the audit log names it.
    pub fn audit_name(&self) -> String {
        match self {
            Caller::Admin { name } | Caller::Scoped { name, .. } => format!("token:{name}"),
            Caller::Workload(id) => format!("workload:{id}"),
        }
    }

    /// Whether it may change documents and workloads in `namespace`.
    pub fn may_change(&self, namespace: &str) -> bool {
        match self {
            Caller::Admin { .. } => true,
            Caller::Scoped { namespaces, .. } => namespaces.iter().any(|n| n == namespace),
            Caller::Workload(_) => false,
        }
    }

    /// Whether it may change what belongs to no namespace (settings, tokens).
    pub fn is_admin(&self) -> bool {
        matches!(self, Caller::Admin { .. })
    }

    /// Whether it is a person or a tool (not a proxy).
    pub fn is_user(&self) -> bool {
        !matches!(self, Caller::Workload(_))
    }
}

/// The SHA-256 of a secret, hex.
pub fn hash_secret(secret: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A new secret: 32 random bytes, base64url.
pub fn new_secret() -> Result<String, ring::error::Unspecified> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes)?;
    Ok(format!(
        "ibac_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

/// The tokens in force, by hash.
#[derive(Clone, Debug, Default)]
pub struct Tokens(HashMap<String, TokenRow>);

impl Tokens {
    /// From the store's rows.
    pub fn new(rows: Vec<TokenRow>) -> Self {
        Tokens(rows.into_iter().map(|r| (r.hash.clone(), r)).collect())
    }

    /// Who holds `secret`, if anyone.
    pub fn caller(&self, secret: &str) -> Option<Caller> {
        let row = self.0.get(&hash_secret(secret))?;
        Some(match &row.namespaces {
            None => Caller::Admin {
                name: row.name.clone(),
            },
            Some(ns) => Caller::Scoped {
                name: row.name.clone(),
                namespaces: ns.clone(),
            },
        })
    }

    /// Whether a token named `name` exists.
    pub fn has_name(&self, name: &str) -> bool {
        self.0.values().any(|r| r.name == name)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn tokens_are_found_by_their_secret_only() {
        let admin = new_secret().unwrap();
        let team = new_secret().unwrap();
        assert_ne!(admin, team);
        let tokens = Tokens::new(vec![
            TokenRow {
                hash: hash_secret(&admin),
                name: "admin".into(),
                namespaces: None,
                created_at: 0,
            },
            TokenRow {
                hash: hash_secret(&team),
                name: "shop-team".into(),
                namespaces: Some(vec!["shop".into()]),
                created_at: 0,
            },
        ]);
        let a = tokens.caller(&admin).unwrap();
        assert!(a.is_admin() && a.may_change("anything"));
        let t = tokens.caller(&team).unwrap();
        assert!(!t.is_admin() && t.may_change("shop") && !t.may_change("payments"));
        assert_eq!(t.audit_name(), "token:shop-team");
        assert_eq!(tokens.caller("ibac_guess"), None);
        assert_eq!(
            tokens.caller(&hash_secret(&admin)),
            None,
            "the hash is not the secret"
        );
        let w = Caller::Workload(WorkloadId::parse("web.shop").unwrap());
        assert!(!w.may_change("shop") && !w.is_user());
    }
}
