//! Trust bundles: the root certificates a trust domain's SVIDs chain to.
//! During a CA rotation a bundle holds both the old and the new root.

use ring::digest::{SHA256, digest};
use rustls_pki_types::CertificateDer;

use crate::pem::{self, PemError};
use crate::spiffe_id::TrustDomain;

/// The roots of one trust domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustBundle {
    trust_domain: TrustDomain,
    roots: Vec<CertificateDer<'static>>,
}

impl TrustBundle {
    /// A bundle of the given roots.
    pub fn new(trust_domain: TrustDomain, roots: Vec<CertificateDer<'static>>) -> Self {
        TrustBundle {
            trust_domain,
            roots,
        }
    }

    /// Reads roots from PEM.
    pub fn from_pem(trust_domain: TrustDomain, pem: &[u8]) -> Result<Self, PemError> {
        Ok(Self::new(trust_domain, pem::certificates(pem)?))
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// The roots.
    pub fn roots(&self) -> &[CertificateDer<'static>] {
        &self.roots
    }

    /// The roots as PEM.
    pub fn to_pem(&self) -> String {
        pem::encode_certificates(&self.roots)
    }

    /// The roots as concatenated DER, as the Workload API sends them.
    pub fn to_der_concat(&self) -> Vec<u8> {
        self.roots
            .iter()
            .flat_map(|c| c.as_ref().iter().copied())
            .collect()
    }
}

/// The SHA-256 fingerprint of a certificate, lowercase hex.
pub fn fingerprint(cert: &CertificateDer<'_>) -> String {
    digest(&SHA256, cert.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
