//! The CA on disk, and its rotation.
//!
//! ```text
//! <dir>/config.json       trust domain and SVID lifetime
//! <dir>/ca.pem            the current CA certificate
//! <dir>/root.pem          the trust anchor its SVIDs chain to
//! <dir>/ca-key.pem        its key (0600)
//! <dir>/retired/<fp>/     earlier CAs, trusted until their last SVID expires
//! ```
//!
//! After a rotation the bundle holds the old and the new roots, so that SVIDs
//! the old CA issued stay valid to the end of their life; then the old root
//! leaves the bundle by itself.

use std::fs;
use std::path::{Path, PathBuf};

use time::{Duration, OffsetDateTime};

use crate::bundle::TrustBundle;
use crate::ca::{Ca, CaError};
use crate::files::{write_private, write_public};
use crate::pem;
use crate::spiffe_id::TrustDomain;

/// Why the CA directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// I/O.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// Initializing over an existing CA.
    #[error("{0} already holds a CA; use `ibac ca rotate` to replace it")]
    Exists(String),
    /// No CA there.
    #[error("{0} holds no CA; create one with `ibac ca init`")]
    Missing(String),
    /// Bad contents.
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The CA itself.
    #[error(transparent)]
    Ca(#[from] CaError),
}

/// Settings kept with the CA.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CaConfig {
    /// The trust domain.
    pub trust_domain: String,
    /// Lifetime of the SVIDs it issues, seconds.
    pub svid_ttl_seconds: i64,
}

/// A CA directory.
#[derive(Clone, Debug)]
pub struct CaStore {
    dir: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn read_text(path: &Path) -> Result<String, StoreError> {
    fs::read_to_string(path).map_err(io(path))
}

impl CaStore {
    /// Writes a new CA into an empty (or absent) directory.
    pub fn init(dir: &Path, ca: &Ca, svid_ttl: Duration) -> Result<CaStore, StoreError> {
        if dir.join("ca.pem").exists() {
            return Err(StoreError::Exists(dir.display().to_string()));
        }
        let store = CaStore {
            dir: dir.to_path_buf(),
        };
        let config = CaConfig {
            trust_domain: ca.trust_domain().to_string(),
            svid_ttl_seconds: svid_ttl.whole_seconds(),
        };
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|e| StoreError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_public(&path, text.as_bytes()).map_err(io(&path))?;
        store.write_ca(dir, ca)?;
        Ok(store)
    }

    /// Opens an existing CA directory.
    pub fn open(dir: &Path) -> Result<CaStore, StoreError> {
        if !dir.join("ca.pem").exists() {
            return Err(StoreError::Missing(dir.display().to_string()));
        }
        Ok(CaStore {
            dir: dir.to_path_buf(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn write_ca(&self, dir: &Path, ca: &Ca) -> Result<(), StoreError> {
        let key = dir.join("ca-key.pem");
        write_private(&key, ca.key_pem().as_bytes()).map_err(io(&key))?;
        let cert = dir.join("ca.pem");
        write_public(
            &cert,
            pem::encode_certificates(std::slice::from_ref(ca.certificate())).as_bytes(),
        )
        .map_err(io(&cert))?;
        let root = dir.join("root.pem");
        write_public(
            &root,
            pem::encode_certificates(std::slice::from_ref(ca.root())).as_bytes(),
        )
        .map_err(io(&root))?;
        Ok(())
    }

    /// The settings.
    pub fn config(&self) -> Result<CaConfig, StoreError> {
        let path = self.dir.join("config.json");
        serde_json::from_str(&read_text(&path)?).map_err(|e| StoreError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> Result<TrustDomain, StoreError> {
        let config = self.config()?;
        TrustDomain::parse(&config.trust_domain).map_err(|e| StoreError::Invalid {
            path: self.dir.join("config.json").display().to_string(),
            reason: format!("trust domain `{}`: {e}", config.trust_domain),
        })
    }

    /// The SVID lifetime.
    pub fn svid_ttl(&self) -> Result<Duration, StoreError> {
        Ok(Duration::seconds(self.config()?.svid_ttl_seconds))
    }

    /// The current CA, with its key.
    pub fn load(&self) -> Result<Ca, StoreError> {
        Ok(Ca::load(
            self.trust_domain()?,
            &read_text(&self.dir.join("ca.pem"))?,
            &read_text(&self.dir.join("root.pem"))?,
            &read_text(&self.dir.join("ca-key.pem"))?,
        )?)
    }

    /// The roots to trust at `now`: the current one and those of retired CAs
    /// whose SVIDs may still be alive.
    pub fn bundle(&self, now: OffsetDateTime) -> Result<TrustBundle, StoreError> {
        let mut roots = pem::certificates(read_text(&self.dir.join("root.pem"))?.as_bytes())
            .map_err(|e| StoreError::Invalid {
                path: self.dir.join("root.pem").display().to_string(),
                reason: e.to_string(),
            })?;
        let retired = self.dir.join("retired");
        if retired.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(&retired)
                .map_err(io(&retired))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                let until = read_text(&entry.join("retire-after"))?;
                let until: i64 = until.trim().parse().map_err(|_| StoreError::Invalid {
                    path: entry.join("retire-after").display().to_string(),
                    reason: "not a unix time".into(),
                })?;
                if until > now.unix_timestamp() {
                    for root in pem::certificates(read_text(&entry.join("root.pem"))?.as_bytes())
                        .map_err(|e| StoreError::Invalid {
                            path: entry.join("root.pem").display().to_string(),
                            reason: e.to_string(),
                        })?
                    {
                        if !roots.contains(&root) {
                            roots.push(root);
                        }
                    }
                }
            }
        }
        Ok(TrustBundle::new(self.trust_domain()?, roots))
    }

    /// Replaces the CA with `next`. The old one is retired: its root stays in
    /// the bundle until the last SVID it can have issued expires.
    pub fn rotate(&self, next: &Ca, now: OffsetDateTime) -> Result<(), StoreError> {
        let old = self.load()?;
        let retired = self.dir.join("retired").join(old.fingerprint());
        fs::create_dir_all(&retired).map_err(io(&retired))?;
        let until = (now + self.svid_ttl()?)
            .min(old.not_after())
            .unix_timestamp();
        let path = retired.join("root.pem");
        write_public(
            &path,
            pem::encode_certificates(std::slice::from_ref(old.root())).as_bytes(),
        )
        .map_err(io(&path))?;
        let path = retired.join("ca.pem");
        write_public(
            &path,
            pem::encode_certificates(std::slice::from_ref(old.certificate())).as_bytes(),
        )
        .map_err(io(&path))?;
        let path = retired.join("retire-after");
        write_public(&path, until.to_string().as_bytes()).map_err(io(&path))?;
        self.write_ca(&self.dir, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn rotation_keeps_the_old_root_until_its_last_svid_expires() {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let first = Ca::generate_root(TrustDomain::default(), now, Duration::days(30)).unwrap();
        let store = CaStore::init(dir.path(), &first, Duration::hours(1)).unwrap();
        let mode = fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        assert!(matches!(
            CaStore::init(dir.path(), &first, Duration::hours(1)),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(store.load().unwrap().fingerprint(), first.fingerprint());

        let second = Ca::generate_root(TrustDomain::default(), now, Duration::days(30)).unwrap();
        store.rotate(&second, now).unwrap();
        assert_eq!(store.load().unwrap().fingerprint(), second.fingerprint());
        let during = store.bundle(now + Duration::minutes(30)).unwrap();
        assert_eq!(during.roots().len(), 2, "both roots during the overlap");
        let after = store.bundle(now + Duration::minutes(61)).unwrap();
        assert_eq!(after.roots(), std::slice::from_ref(second.root()));
    }
}
