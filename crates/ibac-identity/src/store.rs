//! The CA on disk, and its rotation.
//!
//! ```text
//! <dir>/config.json       trust domain and SVID lifetime
//! <dir>/ca.pem            the current CA certificate
//! <dir>/root.pem          the trust anchor its SVIDs chain to
//! <dir>/ca-key.pem        its key (0600)
//! <dir>/retired/<fp>/     earlier CAs, trusted until their last SVID expires
//! <dir>/jwt-key.pem       the key JWT-SVIDs are signed with (0600)
//! <dir>/jwt-retired/<kid>.json  earlier JWT keys' public halves, until their
//!                         last token expires
//! ```
//!
//! After a rotation the bundle holds the old and the new roots, so that SVIDs
//! the old CA issued stay valid to the end of their life; then the old root
//! leaves the bundle by itself. The JWT key rotates with the CA, and its JWT
//! bundle keeps retired keys the same way.

use std::fs;
use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use time::{Duration, OffsetDateTime};

use crate::bundle::TrustBundle;
use crate::ca::{Ca, CaError};
use crate::files::{write_private, write_public};
use crate::jwt::{DEFAULT_JWT_TTL, Jwk, JwtBundle, JwtKey, JwtPublicKey};
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
    /// Lifetime of the JWT-SVIDs it issues, seconds (default 5 minutes,
    /// never longer than the SVIDs').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt_ttl_seconds: Option<i64>,
}

/// A retired JWT key, kept public until its last token has expired.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RetiredJwtKey {
    jwk: Jwk,
    retire_after: i64,
}

const JWT_KEY: &str = "jwt-key.pem";
const JWT_RETIRED: &str = "jwt-retired";

/// A CA directory.
#[derive(Clone, Debug)]
pub struct CaStore {
    dir: PathBuf,
}

/// Writes `cert` to `path` as PEM, readable by all: certificates are public.
fn write_certificate(path: &Path, cert: &CertificateDer<'static>) -> Result<(), StoreError> {
    write_public(
        path,
        pem::encode_certificates(std::slice::from_ref(cert)).as_bytes(),
    )
    .map_err(io(path))
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
    /// Writes a new CA, and a JWT signing key, into an empty (or absent)
    /// directory.
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
            jwt_ttl_seconds: None,
        };
        let path = dir.join("config.json");
        let text = serde_json::to_string_pretty(&config).map_err(|e| StoreError::Invalid {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        write_public(&path, text.as_bytes()).map_err(io(&path))?;
        store.write_ca(dir, ca)?;
        store.write_jwt_key(&JwtKey::generate().map_err(|e| store.invalid(JWT_KEY, e))?)?;
        Ok(store)
    }

    fn invalid(&self, file: &str, reason: impl std::fmt::Display) -> StoreError {
        StoreError::Invalid {
            path: self.dir.join(file).display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn write_jwt_key(&self, key: &JwtKey) -> Result<(), StoreError> {
        let path = self.dir.join(JWT_KEY);
        write_private(&path, pem::encode("PRIVATE KEY", key.pkcs8()).as_bytes()).map_err(io(&path))
    }

    /// The key JWT-SVIDs are signed with. A CA directory made before ibac
    /// issued JWT-SVIDs gets one on first use.
    pub fn jwt_key(&self) -> Result<JwtKey, StoreError> {
        let path = self.dir.join(JWT_KEY);
        if !path.exists() {
            let key = JwtKey::generate().map_err(|e| self.invalid(JWT_KEY, e))?;
            self.write_jwt_key(&key)?;
            return Ok(key);
        }
        let der =
            pem::private_key(read_text(&path)?.as_bytes()).map_err(|e| self.invalid(JWT_KEY, e))?;
        JwtKey::from_pkcs8(der.secret_pkcs8_der()).map_err(|e| self.invalid(JWT_KEY, e))
    }

    /// The JWT-SVID lifetime: the configured one (default 5 minutes), never
    /// longer than the SVIDs'.
    pub fn jwt_ttl(&self) -> Result<Duration, StoreError> {
        let config = self.config()?;
        let jwt = config
            .jwt_ttl_seconds
            .map_or(DEFAULT_JWT_TTL, Duration::seconds);
        Ok(jwt.min(Duration::seconds(config.svid_ttl_seconds)))
    }

    /// The JWT keys to trust at `now`: the current one and retired ones
    /// whose tokens may still be alive.
    pub fn jwt_bundle(&self, now: OffsetDateTime) -> Result<JwtBundle, StoreError> {
        let mut keys = vec![self.jwt_key()?.public().clone()];
        let retired = self.dir.join(JWT_RETIRED);
        if retired.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(&retired)
                .map_err(io(&retired))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "json"))
                .collect();
            entries.sort();
            for entry in entries {
                let bad = |reason: String| StoreError::Invalid {
                    path: entry.display().to_string(),
                    reason,
                };
                let old: RetiredJwtKey =
                    serde_json::from_str(&read_text(&entry)?).map_err(|e| bad(e.to_string()))?;
                if old.retire_after > now.unix_timestamp()
                    && let Some(key) =
                        JwtPublicKey::from_jwk(&old.jwk).map_err(|e| bad(e.to_string()))?
                    && !keys.contains(&key)
                {
                    keys.push(key);
                }
            }
        }
        Ok(JwtBundle::new(self.trust_domain()?, keys))
    }

    /// Replaces the JWT key with `next`; the old one's public half stays in
    /// the JWT bundle until the last token it signed has expired.
    pub fn rotate_jwt_key(&self, next: &JwtKey, now: OffsetDateTime) -> Result<(), StoreError> {
        let old = self.jwt_key()?;
        let retired = self.dir.join(JWT_RETIRED);
        fs::create_dir_all(&retired).map_err(io(&retired))?;
        let entry = RetiredJwtKey {
            jwk: old.public().to_jwk(),
            retire_after: (now + self.jwt_ttl()?).unix_timestamp(),
        };
        let path = retired.join(format!("{}.json", old.public().kid()));
        let text =
            serde_json::to_string_pretty(&entry).map_err(|e| self.invalid(JWT_RETIRED, e))?;
        write_public(&path, text.as_bytes()).map_err(io(&path))?;
        self.write_jwt_key(next)
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
        write_certificate(&dir.join("ca.pem"), ca.certificate())?;
        write_certificate(&dir.join("root.pem"), ca.root())?;
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

    /// Replaces the CA with `next`, and the JWT key with a new one. The old
    /// ones are retired: the root stays in the bundle until the last SVID it
    /// can have issued expires, the JWT key until its last token does.
    pub fn rotate(&self, next: &Ca, now: OffsetDateTime) -> Result<(), StoreError> {
        self.rotate_jwt_key(
            &JwtKey::generate().map_err(|e| self.invalid(JWT_KEY, e))?,
            now,
        )?;
        let old = self.load()?;
        let retired = self.dir.join("retired").join(old.fingerprint());
        fs::create_dir_all(&retired).map_err(io(&retired))?;
        let until = (now + self.svid_ttl()?)
            .min(old.not_after())
            .unix_timestamp();
        write_certificate(&retired.join("root.pem"), old.root())?;
        write_certificate(&retired.join("ca.pem"), old.certificate())?;
        let path = retired.join("retire-after");
        write_public(&path, until.to_string().as_bytes()).map_err(io(&path))?;
        self.write_ca(&self.dir, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn root(now: OffsetDateTime) -> Ca {
        Ca::generate_root(TrustDomain::default(), now, Duration::days(30)).unwrap()
    }

    /// A store made in a fresh directory for a new root, with SVIDs living
    /// `svid_ttl`.
    struct Fresh {
        dir: tempfile::TempDir,
        now: OffsetDateTime,
        first: Ca,
        store: CaStore,
    }

    fn fresh(svid_ttl: Duration) -> Fresh {
        let dir = tempfile::tempdir().unwrap();
        let now = OffsetDateTime::now_utc();
        let first = root(now);
        let store = CaStore::init(dir.path(), &first, svid_ttl).unwrap();
        Fresh {
            dir,
            now,
            first,
            store,
        }
    }

    /// The permission bits of the store's file `name`.
    fn mode(dir: &tempfile::TempDir, name: &str) -> u32 {
        fs::metadata(dir.path().join(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn rotation_keeps_the_old_root_until_its_last_svid_expires() {
        let Fresh {
            dir,
            now,
            first,
            store,
        } = fresh(Duration::hours(1));
        assert_eq!(mode(&dir, "ca-key.pem"), 0o600);
        assert!(matches!(
            CaStore::init(dir.path(), &first, Duration::hours(1)),
            Err(StoreError::Exists(_))
        ));
        assert_eq!(store.load().unwrap().fingerprint(), first.fingerprint());

        let second = root(now);
        store.rotate(&second, now).unwrap();
        assert_eq!(store.load().unwrap().fingerprint(), second.fingerprint());
        let during = store.bundle(now + Duration::minutes(30)).unwrap();
        assert_eq!(during.roots().len(), 2, "both roots during the overlap");
        let after = store.bundle(now + Duration::minutes(61)).unwrap();
        assert_eq!(after.roots(), std::slice::from_ref(second.root()));
    }

    #[test]
    fn the_jwt_key_rotates_with_the_ca_and_stays_in_the_bundle_while_its_tokens_live() {
        let Fresh {
            dir, now, store, ..
        } = fresh(Duration::hours(1));
        assert_eq!(mode(&dir, JWT_KEY), 0o600);
        assert_eq!(store.jwt_ttl().unwrap(), Duration::minutes(5));
        let old = store.jwt_key().unwrap();
        assert_eq!(
            store.jwt_key().unwrap().public(),
            old.public(),
            "kept, not remade"
        );
        let id = crate::SpiffeId::parse("spiffe://ibac.local/ns/shop/workload/web").unwrap();
        let token = old
            .sign(
                &id,
                &["api".into()],
                now.unix_timestamp(),
                store.jwt_ttl().unwrap(),
            )
            .unwrap();

        let second = root(now);
        store.rotate(&second, now).unwrap();
        let new = store.jwt_key().unwrap();
        assert_ne!(new.public(), old.public());
        let during = store.jwt_bundle(now + Duration::minutes(4)).unwrap();
        assert_eq!(during.keys(), [new.public().clone(), old.public().clone()]);
        let later = now.unix_timestamp() + 240;
        assert!(crate::jwt::validate(&token, &during, "api", later).is_ok());
        let after = store.jwt_bundle(now + Duration::minutes(6)).unwrap();
        assert_eq!(after.keys(), std::slice::from_ref(new.public()));
        assert!(matches!(
            crate::jwt::validate(&token, &after, "api", later),
            Err(crate::jwt::JwtError::UnknownKey { .. })
        ));
    }

    #[test]
    fn an_existing_ca_gets_a_jwt_key_on_first_use_and_ttls_are_capped() {
        let Fresh {
            dir, now, store, ..
        } = fresh(Duration::seconds(90));
        fs::remove_file(dir.path().join(JWT_KEY)).unwrap();
        let bundle = store.jwt_bundle(now).unwrap();
        assert_eq!(bundle.keys().len(), 1);
        assert!(dir.path().join(JWT_KEY).exists());
        assert_eq!(
            store.jwt_ttl().unwrap(),
            Duration::seconds(90),
            "capped by the SVID TTL"
        );
    }
}
