//! Verifying a peer's X.509-SVID: the chain must lead to the trust bundle, and
//! the leaf must follow the SPIFFE X509-SVID rules, more strictly than stock
//! proxies check: exactly one URI SAN holding a valid SPIFFE ID of this trust
//! domain with a path (never the bare trust domain), not a CA, a critical key
//! usage with digitalSignature and without certificate or CRL signing. The
//! subject CN is never consulted.

use rustls_pki_types::{CertificateDer, UnixTime};
use webpki::{EndEntityCert, KeyUsage};
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::bundle::TrustBundle;
use crate::spiffe_id::{SpiffeId, SpiffeIdError};

/// Why an SVID is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SvidError {
    /// No certificate was presented.
    #[error("no certificate was presented")]
    Empty,
    /// The certificate cannot be parsed.
    #[error("the certificate cannot be parsed: {0}")]
    Malformed(String),
    /// No URI SAN at all (a CN is never a substitute).
    #[error("the certificate has no URI SAN, so no SPIFFE ID (the subject CN is never used)")]
    NoUriSan,
    /// More than one URI SAN.
    #[error("the certificate has {0} URI SANs; an SVID has exactly one")]
    SeveralUriSans(usize),
    /// The URI SAN is not a valid SPIFFE ID.
    #[error("the URI SAN `{uri}` is not a valid SPIFFE ID: {reason}")]
    BadSpiffeId {
        /// The SAN.
        uri: String,
        /// Why.
        reason: SpiffeIdError,
    },
    /// Another trust domain.
    #[error("`{id}` is in trust domain `{found}`, not `{expected}`")]
    ForeignTrustDomain {
        /// The ID.
        id: SpiffeId,
        /// Its trust domain.
        found: String,
        /// The expected one.
        expected: String,
    },
    /// The SPIFFE ID has no path: it names the trust domain itself, which
    /// X509-SVID §5.2 forbids for a leaf.
    #[error(
        "the SPIFFE ID `{0}` has no path: it names the trust domain, not a workload (a leaf SVID must have a path)"
    )]
    NoPath(SpiffeId),
    /// The leaf is a CA.
    #[error("the leaf is a CA certificate; an SVID leaf must not be")]
    LeafIsCa,
    /// The leaf may sign certificates or CRLs.
    #[error("the leaf's key usage allows signing certificates or CRLs")]
    LeafCanSign,
    /// No key usage extension.
    #[error("the leaf has no key usage extension")]
    NoKeyUsage,
    /// Key usage present but not critical.
    #[error("the leaf's key usage extension is not marked critical")]
    KeyUsageNotCritical,
    /// Key usage without digitalSignature.
    #[error("the leaf's key usage lacks digitalSignature")]
    NoDigitalSignature,
    /// Expired.
    #[error("the certificate expired at {0} (unix seconds)")]
    Expired(i64),
    /// Not valid yet.
    #[error("the certificate is not valid before {0} (unix seconds)")]
    NotYetValid(i64),
    /// The chain does not lead to the bundle, or a certificate in it is bad.
    #[error("the chain does not verify against the trust bundle: {0}")]
    Chain(String),
}

/// What ibac reads from a leaf certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafInfo {
    /// Every URI SAN.
    pub uri_sans: Vec<String>,
    /// The subject, as text.
    pub subject: String,
    /// The issuer, as text.
    pub issuer: String,
    /// Whether basic constraints say CA.
    pub is_ca: bool,
    /// Key usage: (critical, digitalSignature, keyCertSign, cRLSign), when present.
    pub key_usage: Option<(bool, bool, bool, bool)>,
    /// Extended key usage: (serverAuth, clientAuth), when present.
    pub extended_key_usage: Option<(bool, bool)>,
    /// Unix seconds.
    pub not_before: i64,
    /// Unix seconds.
    pub not_after: i64,
    /// Serial number, hex.
    pub serial: String,
}

impl LeafInfo {
    /// Reads a certificate.
    pub fn parse(der: &CertificateDer<'_>) -> Result<LeafInfo, SvidError> {
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| SvidError::Malformed(e.to_string()))?;
        let malformed = |e: x509_parser::error::X509Error| SvidError::Malformed(e.to_string());
        let uri_sans = cert
            .subject_alternative_name()
            .map_err(malformed)?
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|g| match g {
                        GeneralName::URI(u) => Some((*u).to_string()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        let is_ca = cert
            .basic_constraints()
            .map_err(malformed)?
            .is_some_and(|bc| bc.value.ca);
        let key_usage = cert.key_usage().map_err(malformed)?.map(|ku| {
            (
                ku.critical,
                ku.value.digital_signature(),
                ku.value.key_cert_sign(),
                ku.value.crl_sign(),
            )
        });
        let extended_key_usage = cert
            .extended_key_usage()
            .map_err(malformed)?
            .map(|eku| (eku.value.server_auth, eku.value.client_auth));
        let v = cert.validity();
        Ok(LeafInfo {
            uri_sans,
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            is_ca,
            key_usage,
            extended_key_usage,
            not_before: v.not_before.timestamp(),
            not_after: v.not_after.timestamp(),
            serial: cert.raw_serial_as_string().replace(':', ""),
        })
    }

    /// Every SVID rule the leaf breaks (validity and chain aside), in order.
    pub fn violations(&self, trust_domain: &str) -> Vec<SvidError> {
        let mut out = Vec::new();
        match self.uri_sans.as_slice() {
            [] => out.push(SvidError::NoUriSan),
            [uri] => match SpiffeId::parse(uri) {
                Ok(id) => {
                    if id.trust_domain() != trust_domain {
                        out.push(SvidError::ForeignTrustDomain {
                            found: id.trust_domain().to_string(),
                            expected: trust_domain.to_string(),
                            id: id.clone(),
                        });
                    }
                    if id.path().is_empty() {
                        out.push(SvidError::NoPath(id));
                    }
                }
                Err(reason) => out.push(SvidError::BadSpiffeId {
                    uri: uri.clone(),
                    reason,
                }),
            },
            several => out.push(SvidError::SeveralUriSans(several.len())),
        }
        if self.is_ca {
            out.push(SvidError::LeafIsCa);
        }
        match self.key_usage {
            None => out.push(SvidError::NoKeyUsage),
            Some((critical, digital_signature, cert_sign, crl_sign)) => {
                if !critical {
                    out.push(SvidError::KeyUsageNotCritical);
                }
                if !digital_signature {
                    out.push(SvidError::NoDigitalSignature);
                }
                if cert_sign || crl_sign {
                    out.push(SvidError::LeafCanSign);
                }
            }
        }
        out
    }

    /// The validity problem at `now`, if any.
    pub fn validity_at(&self, now: i64) -> Option<SvidError> {
        if now < self.not_before {
            Some(SvidError::NotYetValid(self.not_before))
        } else if now >= self.not_after {
            Some(SvidError::Expired(self.not_after))
        } else {
            None
        }
    }
}

/// Which side the peer's certificate authenticates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerRole {
    /// A server (the certificate must allow serverAuth if it has an EKU).
    Server,
    /// A client (clientAuth).
    Client,
}

/// Verifies a presented chain (leaf first) and returns the peer's SPIFFE ID.
pub fn verify_svid(
    chain: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
    role: PeerRole,
) -> Result<SpiffeId, SvidError> {
    let leaf = chain.first().ok_or(SvidError::Empty)?;
    let info = LeafInfo::parse(leaf)?;
    if let Some(first) = info
        .violations(bundle.trust_domain().as_str())
        .into_iter()
        .next()
    {
        return Err(first);
    }
    let secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if let Some(problem) = info.validity_at(secs) {
        return Err(problem);
    }
    verify_chain(leaf, &chain[1..], bundle, now, role)?;
    let uri = info.uri_sans.first().ok_or(SvidError::NoUriSan)?;
    SpiffeId::parse(uri).map_err(|reason| SvidError::BadSpiffeId {
        uri: uri.clone(),
        reason,
    })
}

/// Checks only that the chain leads to one of the bundle's roots.
pub fn verify_chain(
    leaf: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    bundle: &TrustBundle,
    now: UnixTime,
    role: PeerRole,
) -> Result<(), SvidError> {
    let anchors = bundle
        .roots()
        .iter()
        .map(|root| webpki::anchor_from_trusted_cert(root).map(|a| a.to_owned()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| SvidError::Chain(format!("a bundle root is unusable: {e}")))?;
    let ee = EndEntityCert::try_from(leaf).map_err(|e| SvidError::Malformed(e.to_string()))?;
    let usage = match role {
        PeerRole::Server => KeyUsage::server_auth(),
        PeerRole::Client => KeyUsage::client_auth(),
    };
    ee.verify_for_usage(
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .all,
        &anchors,
        intermediates,
        now,
        usage,
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| SvidError::Chain(chain_reason(&e)))
}

fn chain_reason(e: &webpki::Error) -> String {
    match e {
        webpki::Error::UnknownIssuer => "it is not signed by a CA of the trust bundle".into(),
        webpki::Error::CertExpired { .. } => "a certificate in the chain has expired".into(),
        webpki::Error::CertNotValidYet { .. } => {
            "a certificate in the chain is not valid yet".into()
        }
        webpki::Error::CaUsedAsEndEntity => "the leaf is a CA certificate".into(),
        webpki::Error::EndEntityUsedAsCa => "a leaf certificate is used as a CA".into(),
        webpki::Error::RequiredEkuNotFoundContext(_) => {
            "the extended key usage does not allow this role".into()
        }
        other => format!("{other:?}"),
    }
}
