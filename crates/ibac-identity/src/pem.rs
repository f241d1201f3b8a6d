//! PEM in and out: certificates, keys and CSRs as files and API payloads.

use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};

/// Why PEM could not be read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PemError {
    /// The text holds no block of the kind needed.
    #[error("no {0} found in the PEM text")]
    Missing(&'static str),
    /// A block is malformed.
    #[error("malformed PEM: {0}")]
    Malformed(String),
}

/// Every certificate in PEM text, in order.
pub fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Malformed(e.to_string()))?;
    if certs.is_empty() {
        return Err(PemError::Missing("certificate"));
    }
    Ok(certs)
}

/// The PKCS#8 private key in PEM text.
pub fn private_key(pem: &[u8]) -> Result<PrivatePkcs8KeyDer<'static>, PemError> {
    PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => PemError::Missing("PKCS#8 private key"),
        other => PemError::Malformed(other.to_string()),
    })
}

/// Encodes DER as one PEM block.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Encodes certificates as consecutive PEM blocks.
pub fn encode_certificates(certs: &[CertificateDer<'_>]) -> String {
    certs.iter().map(|c| encode("CERTIFICATE", c)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_explains_what_is_missing() {
        let der = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
        let text = encode_certificates(&[der.clone(), der.clone()]);
        assert_eq!(
            certificates(text.as_bytes()).unwrap(),
            vec![der.clone(), der]
        );
        assert_eq!(
            certificates(b"nothing here"),
            Err(PemError::Missing("certificate"))
        );
        assert_eq!(
            private_key(text.as_bytes()),
            Err(PemError::Missing("PKCS#8 private key"))
        );
    }
}
