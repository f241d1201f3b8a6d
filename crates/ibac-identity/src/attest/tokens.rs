//! Join tokens and revocations.
//!
//! A join token is one-time, expires, is bound to one workload identity, and
//! carries the fingerprint of the CA so that the newcomer can tell it talks to
//! the right CA before it sends the token: `<ca-sha256-hex>.<id>.<secret>`.
//! Only a hash of the secret is stored.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::Engine as _;
use ibac_model::WorkloadId;
use ring::digest::{SHA256, digest};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::files::write_private;

/// Why a token was refused or could not be made.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not of the token's shape.
    #[error("malformed join token")]
    Malformed,
    /// Unknown, already used, or revoked.
    #[error("unknown or already used join token")]
    Unknown,
    /// Past its expiry.
    #[error("the join token has expired")]
    Expired,
    /// The workload was revoked.
    #[error("workload `{0}` is revoked")]
    Revoked(WorkloadId),
    /// Storage failed.
    #[error("cannot store tokens: {0}")]
    Storage(String),
}

/// A token's parts, as read from its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenParts {
    /// The CA fingerprint it pins.
    pub ca_fingerprint: String,
    /// Its id.
    pub id: String,
    /// Its secret.
    pub secret: String,
}

impl TokenParts {
    /// Splits a token's text.
    pub fn parse(token: &str) -> Result<TokenParts, TokenError> {
        let mut parts = token.trim().split('.');
        match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(fp), Some(id), Some(secret), None)
                if fp.len() == 64
                    && fp.chars().all(|c| c.is_ascii_hexdigit())
                    && !id.is_empty()
                    && secret.len() >= 32 =>
            {
                Ok(TokenParts {
                    ca_fingerprint: fp.to_ascii_lowercase(),
                    id: id.to_string(),
                    secret: secret.to_string(),
                })
            }
            _ => Err(TokenError::Malformed),
        }
    }
}

/// Where join tokens and revocations live.
pub trait TokenStore: Send + Sync {
    /// Creates a token for `workload`, valid until `expires_at` (unix seconds).
    fn create(
        &self,
        workload: &WorkloadId,
        ca_fingerprint: &str,
        expires_at: i64,
    ) -> Result<String, TokenError>;
    /// Redeems a token once, returning the workload it is bound to.
    fn redeem(&self, token: &str, now: i64) -> Result<WorkloadId, TokenError>;
    /// Revokes a workload: its outstanding tokens die and it cannot renew.
    fn revoke(&self, workload: &WorkloadId) -> Result<(), TokenError>;
    /// Lifts a revocation (the workload is registered again).
    fn reinstate(&self, workload: &WorkloadId) -> Result<(), TokenError>;
    /// Whether a workload is revoked.
    fn is_revoked(&self, workload: &WorkloadId) -> bool;
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    workload: WorkloadId,
    secret_sha256: String,
    expires_at: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
struct State {
    tokens: BTreeMap<String, Entry>,
    revoked: BTreeSet<WorkloadId>,
}

/// A token store in memory, optionally saved to a JSON file (0600) after
/// every change: it works without the control plane.
pub struct LocalTokenStore {
    path: Option<PathBuf>,
    state: Mutex<State>,
    rng: SystemRandom,
}

fn sha256_hex(text: &str) -> String {
    digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl LocalTokenStore {
    /// A store kept in memory only.
    pub fn in_memory() -> Self {
        LocalTokenStore {
            path: None,
            state: Mutex::new(State::default()),
            rng: SystemRandom::new(),
        }
    }

    /// A store saved to `path`. The file is read again under a lock for every
    /// change, so several processes (the server and `ibac ca token`) can share it.
    pub fn open(path: PathBuf) -> Result<Self, TokenError> {
        let store = LocalTokenStore {
            path: Some(path),
            state: Mutex::new(State::default()),
            rng: SystemRandom::new(),
        };
        store.with(|_| Ok(()))?;
        Ok(store)
    }

    fn read_file(path: &Path) -> Result<State, TokenError> {
        match std::fs::read(path) {
            Ok(bytes) if bytes.is_empty() => Ok(State::default()),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| TokenError::Storage(format!("{}: {e}", path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(e) => Err(TokenError::Storage(format!("{}: {e}", path.display()))),
        }
    }

    fn with<T>(
        &self,
        f: impl FnOnce(&mut State) -> Result<T, TokenError>,
    ) -> Result<T, TokenError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| TokenError::Storage("token store lock poisoned".into()))?;
        let Some(path) = &self.path else {
            let mut next = state.clone();
            let out = f(&mut next)?;
            *state = next;
            return Ok(out);
        };
        let storage = |e: std::io::Error| TokenError::Storage(format!("{}: {e}", path.display()));
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(storage)?;
        }
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(storage)?;
        lock.lock().map_err(storage)?;
        let mut next = Self::read_file(path)?;
        let out = f(&mut next)?;
        let bytes =
            serde_json::to_vec_pretty(&next).map_err(|e| TokenError::Storage(e.to_string()))?;
        write_private(path, &bytes).map_err(storage)?;
        *state = next;
        drop(lock);
        Ok(out)
    }

    fn random(&self, bytes: usize) -> Result<String, TokenError> {
        let mut buf = vec![0u8; bytes];
        self.rng
            .fill(&mut buf)
            .map_err(|_| TokenError::Storage("no randomness".into()))?;
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf))
    }
}

impl TokenStore for LocalTokenStore {
    fn create(
        &self,
        workload: &WorkloadId,
        ca_fingerprint: &str,
        expires_at: i64,
    ) -> Result<String, TokenError> {
        let id = self.random(9)?;
        let secret = self.random(32)?;
        let entry = Entry {
            workload: workload.clone(),
            secret_sha256: sha256_hex(&secret),
            expires_at,
        };
        self.with(|s| {
            s.revoked.remove(workload);
            s.tokens.insert(id.clone(), entry);
            Ok(())
        })?;
        Ok(format!(
            "{}.{id}.{secret}",
            ca_fingerprint.to_ascii_lowercase()
        ))
    }

    fn redeem(&self, token: &str, now: i64) -> Result<WorkloadId, TokenError> {
        let parts = TokenParts::parse(token)?;
        // The outer result is about storage; the inner one is the verdict. Any
        // token that matched is used up, even when the verdict is a refusal.
        self.with(|s| {
            let Some(entry) = s.tokens.get(&parts.id).cloned() else {
                return Ok(Err(TokenError::Unknown));
            };
            // Hashes are compared, not secrets: timing reveals nothing usable
            // about a secret whose hash an attacker cannot invert.
            if entry.secret_sha256 != sha256_hex(&parts.secret) {
                return Ok(Err(TokenError::Unknown));
            }
            s.tokens.remove(&parts.id);
            if entry.expires_at <= now {
                return Ok(Err(TokenError::Expired));
            }
            if s.revoked.contains(&entry.workload) {
                return Ok(Err(TokenError::Revoked(entry.workload)));
            }
            Ok(Ok(entry.workload))
        })?
    }

    fn revoke(&self, workload: &WorkloadId) -> Result<(), TokenError> {
        self.with(|s| {
            s.tokens.retain(|_, e| e.workload != *workload);
            s.revoked.insert(workload.clone());
            Ok(())
        })
    }

    fn reinstate(&self, workload: &WorkloadId) -> Result<(), TokenError> {
        self.with(|s| {
            s.revoked.remove(workload);
            Ok(())
        })
    }

    fn is_revoked(&self, workload: &WorkloadId) -> bool {
        self.state
            .lock()
            .map(|s| s.revoked.contains(workload))
            .unwrap_or(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "ab";

    fn fp() -> String {
        FP.repeat(32)
    }

    #[test]
    fn tokens_are_one_time_expiring_and_bound() {
        let store = LocalTokenStore::in_memory();
        let web = WorkloadId::parse("web.shop").unwrap();
        let token = store.create(&web, &fp(), 100).unwrap();
        assert!(token.starts_with(&fp()));
        assert_eq!(store.redeem(&token, 50), Ok(web.clone()));
        assert_eq!(
            store.redeem(&token, 50),
            Err(TokenError::Unknown),
            "used once"
        );
        let late = store.create(&web, &fp(), 100).unwrap();
        assert_eq!(store.redeem(&late, 100), Err(TokenError::Expired));
        assert_eq!(
            store.redeem(&late, 10),
            Err(TokenError::Unknown),
            "gone even after failing"
        );
        let forged = {
            let t = store.create(&web, &fp(), 100).unwrap();
            let mut parts: Vec<&str> = t.split('.').collect();
            let wrong = "A".repeat(43);
            parts[2] = &wrong;
            parts.join(".")
        };
        assert_eq!(store.redeem(&forged, 10), Err(TokenError::Unknown));
        assert_eq!(store.redeem("nonsense", 10), Err(TokenError::Malformed));
    }

    #[test]
    fn revocation_kills_outstanding_tokens_and_persists() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let web = WorkloadId::parse("web.shop").unwrap();
        let token = {
            let store = LocalTokenStore::open(path.clone()).unwrap();
            let token = store.create(&web, &fp(), 100).unwrap();
            store.revoke(&web).unwrap();
            assert!(store.is_revoked(&web));
            token
        };
        let store = LocalTokenStore::open(path).unwrap();
        assert!(store.is_revoked(&web), "survives a restart");
        assert_eq!(store.redeem(&token, 10), Err(TokenError::Unknown));
        let fresh = store.create(&web, &fp(), 100).unwrap();
        assert!(
            !store.is_revoked(&web),
            "a new token registers the workload again"
        );
        assert_eq!(store.redeem(&fresh, 10), Ok(web));
    }
}
