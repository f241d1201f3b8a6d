//! X.509-SVIDs as a workload holds them: the chain the CA issued, and the key
//! that never left the workload's host, kept on disk so that a restart needs
//! no new join token.

use std::path::Path;
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::files::write_private;
use crate::pem;
use crate::spiffe_id::SpiffeId;
use crate::verify::LeafInfo;

/// What the CA issued: the chain (leaf first) and its validity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedSvid {
    /// The identity.
    pub id: SpiffeId,
    /// Leaf first, then intermediates (never the root).
    pub chain: Vec<CertificateDer<'static>>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// The leaf's serial number, hex.
    pub serial: String,
}

impl IssuedSvid {
    /// Reads an issued chain back (e.g. from an API response).
    pub fn from_chain(chain: Vec<CertificateDer<'static>>) -> Result<Self, SvidFileError> {
        let leaf = chain.first().ok_or(SvidFileError::Empty)?;
        let info = LeafInfo::parse(leaf).map_err(|e| SvidFileError::Invalid(e.to_string()))?;
        let id = match info.uri_sans.as_slice() {
            [one] => SpiffeId::parse(one).map_err(|e| SvidFileError::Invalid(e.to_string()))?,
            _ => {
                return Err(SvidFileError::Invalid(
                    "the leaf does not have exactly one URI SAN".into(),
                ));
            }
        };
        Ok(IssuedSvid {
            id,
            not_before: info.not_before,
            not_after: info.not_after,
            serial: info.serial.clone(),
            chain,
        })
    }

    /// The chain as PEM.
    pub fn chain_pem(&self) -> String {
        pem::encode_certificates(&self.chain)
    }

    /// When to renew: at half-life.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) / 2
    }
}

/// Why an SVID could not be read from or written to disk.
#[derive(Debug, thiserror::Error)]
pub enum SvidFileError {
    /// I/O failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The chain is empty.
    #[error("the SVID file holds no certificate")]
    Empty,
    /// The files do not hold a usable SVID.
    #[error("{0}")]
    Invalid(String),
}

/// An SVID with its private key.
pub struct Svid {
    issued: IssuedSvid,
    key: PrivatePkcs8KeyDer<'static>,
}

impl Clone for Svid {
    fn clone(&self) -> Self {
        Svid {
            issued: self.issued.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for Svid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Svid")
            .field("issued", &self.issued)
            .finish_non_exhaustive()
    }
}

const CHAIN_FILE: &str = "svid.pem";
const KEY_FILE: &str = "svid-key.pem";

impl Svid {
    /// Pairs an issued chain with its key.
    pub fn new(issued: IssuedSvid, key: PrivatePkcs8KeyDer<'static>) -> Self {
        Svid { issued, key }
    }

    /// The issued part.
    pub fn issued(&self) -> &IssuedSvid {
        &self.issued
    }

    /// The identity.
    pub fn id(&self) -> &SpiffeId {
        &self.issued.id
    }

    /// The key as PKCS#8 DER.
    pub fn key_der(&self) -> &[u8] {
        self.key.secret_pkcs8_der()
    }

    /// Whether the SVID has expired at `now` (unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        now >= self.issued.not_after
    }

    /// The certificate and key for rustls.
    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, rustls::Error> {
        let key = PrivateKeyDer::Pkcs8(self.key.clone_key());
        let signing = rustls::crypto::ring::sign::any_ecdsa_type(&key)?;
        Ok(Arc::new(CertifiedKey::new(
            self.issued.chain.clone(),
            signing,
        )))
    }

    /// Writes `svid.pem` and `svid-key.pem` into `dir`, both 0600.
    pub fn save(&self, dir: &Path) -> Result<(), SvidFileError> {
        let io = |path: &Path| {
            let path = path.display().to_string();
            move |source| SvidFileError::Io { path, source }
        };
        let key_path = dir.join(KEY_FILE);
        write_private(
            &key_path,
            pem::encode("PRIVATE KEY", self.key.secret_pkcs8_der()).as_bytes(),
        )
        .map_err(io(&key_path))?;
        let chain_path = dir.join(CHAIN_FILE);
        write_private(&chain_path, self.issued.chain_pem().as_bytes()).map_err(io(&chain_path))?;
        Ok(())
    }

    /// Reads the SVID saved in `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<Svid>, SvidFileError> {
        let chain_path = dir.join(CHAIN_FILE);
        let key_path = dir.join(KEY_FILE);
        if !chain_path.exists() || !key_path.exists() {
            return Ok(None);
        }
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| SvidFileError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let chain = pem::certificates(&read(&chain_path)?)
            .map_err(|e| SvidFileError::Invalid(e.to_string()))?;
        let key = pem::private_key(&read(&key_path)?)
            .map_err(|e| SvidFileError::Invalid(e.to_string()))?;
        Ok(Some(Svid {
            issued: IssuedSvid::from_chain(chain)?,
            key,
        }))
    }
}
