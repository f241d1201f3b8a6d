//! The certificate authority: an ECDSA P-256 root of its own, or an
//! intermediate under a root the user brings, that signs X.509-SVIDs.
//!
//! The SPIFFE ID of an SVID always comes from the *attested* identity the
//! caller passes in: the CA takes only the public key from a CSR (after checking
//! the CSR's signature) and never copies its names or extensions.

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256, SanType, SerialNumber, string::Ia5String,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use time::{Duration, OffsetDateTime};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::bundle::{TrustBundle, fingerprint};
use crate::pem;
use crate::spiffe_id::{SpiffeId, TrustDomain};
use crate::svid::{IssuedSvid, Svid};

/// Default lifetime of an SVID.
pub const DEFAULT_SVID_TTL: Duration = Duration::hours(1);
/// Default lifetime of a CA ibac creates.
pub const DEFAULT_CA_TTL: Duration = Duration::days(365);
/// Tolerance for clocks that run slightly behind the CA's.
const BACKDATE: Duration = Duration::seconds(60);

/// Why the CA could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// Certificate generation failed.
    #[error("cannot create the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Bad PEM input.
    #[error("{0}")]
    Pem(#[from] pem::PemError),
    /// The root brought by the user is unusable.
    #[error("the root certificate cannot sign: {0}")]
    BadRoot(String),
    /// The key does not belong to the certificate.
    #[error("the key does not match the certificate")]
    KeyMismatch,
    /// Bad certificate.
    #[error("cannot read the CA certificate: {0}")]
    Parse(String),
}

/// Why an SVID was not issued.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The CSR is malformed or its signature does not verify.
    #[error("the certificate signing request is invalid: {0}")]
    BadCsr(String),
    /// A key type ibac does not issue for.
    #[error("the CSR's key is not ECDSA P-256; ibac issues SVIDs for P-256 keys only")]
    UnsupportedKey,
    /// The identity belongs to another trust domain.
    #[error("`{id}` is not in trust domain `{trust_domain}`")]
    ForeignTrustDomain {
        /// The identity asked for.
        id: SpiffeId,
        /// This CA's trust domain.
        trust_domain: TrustDomain,
    },
    /// The CA itself has expired.
    #[error("the CA expired at {0}; rotate it (`ibac ca rotate`)")]
    CaExpired(OffsetDateTime),
    /// Signing failed.
    #[error("cannot sign: {0}")]
    Sign(String),
}

/// A CA able to sign SVIDs.
pub struct Ca {
    trust_domain: TrustDomain,
    /// This CA's certificate.
    cert: CertificateDer<'static>,
    /// The trust anchor its SVIDs chain to: itself, or the user's root.
    root: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
    key_pem: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    rng: SystemRandom,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("fingerprint", &fingerprint(&self.cert))
            .field("not_after", &self.not_after)
            .finish()
    }
}

fn ca_params(
    trust_domain: &TrustDomain,
    common_name: &str,
    now: OffsetDateTime,
    ttl: Duration,
) -> Result<CertificateParams, CaError> {
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "ibac");
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(
        trust_domain.id().as_str(),
    )?)];
    params.not_before = now - BACKDATE;
    params.not_after = now + ttl;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn validity(cert: &CertificateDer<'_>) -> Result<(OffsetDateTime, OffsetDateTime), CaError> {
    let (_, parsed) = X509Certificate::from_der(cert).map_err(|e| CaError::Parse(e.to_string()))?;
    let v = parsed.validity();
    Ok((v.not_before.to_datetime(), v.not_after.to_datetime()))
}

impl Ca {
    /// Creates a self-signed root CA for `trust_domain`.
    pub fn generate_root(
        trust_domain: TrustDomain,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Ca, CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let params = ca_params(
            &trust_domain,
            &format!("ibac root CA {trust_domain}"),
            now,
            ttl,
        )?;
        let cert = params.self_signed(&key)?.der().clone();
        Self::assemble(trust_domain, cert.clone(), cert, key)
    }

    /// Creates an intermediate CA signed by a root the user brings (PEM
    /// certificate and PKCS#8 key). The root's key is used once and not kept.
    pub fn generate_intermediate(
        trust_domain: TrustDomain,
        root_cert_pem: &str,
        root_key_pem: &str,
        now: OffsetDateTime,
        ttl: Duration,
    ) -> Result<Ca, CaError> {
        let root = pem::certificates(root_cert_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or(pem::PemError::Missing("certificate"))?;
        let (_, root_parsed) =
            X509Certificate::from_der(&root).map_err(|e| CaError::Parse(e.to_string()))?;
        if !root_parsed.is_ca() {
            return Err(CaError::BadRoot("it is not a CA certificate".into()));
        }
        let (_, root_not_after) = validity(&root)?;
        let root_key = KeyPair::from_pem(root_key_pem)?;
        if root_parsed.public_key().subject_public_key.data.as_ref() != root_key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let root_issuer = Issuer::from_ca_cert_der(&root, root_key)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = ca_params(
            &trust_domain,
            &format!("ibac intermediate CA {trust_domain}"),
            now,
            ttl,
        )?;
        params.not_after = params.not_after.min(root_not_after);
        let cert = params.signed_by(&key, &root_issuer)?.der().clone();
        Self::assemble(trust_domain, cert, root, key)
    }

    /// Loads a CA from its certificate, its trust anchor and its key.
    pub fn load(
        trust_domain: TrustDomain,
        cert_pem: &str,
        root_pem: &str,
        key_pem: &str,
    ) -> Result<Ca, CaError> {
        let cert = pem::certificates(cert_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or(pem::PemError::Missing("certificate"))?;
        let root = pem::certificates(root_pem.as_bytes())?
            .into_iter()
            .next()
            .ok_or(pem::PemError::Missing("certificate"))?;
        let key = KeyPair::from_pem(key_pem)?;
        let (_, parsed) =
            X509Certificate::from_der(&cert).map_err(|e| CaError::Parse(e.to_string()))?;
        if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        Self::assemble(trust_domain, cert, root, key)
    }

    fn assemble(
        trust_domain: TrustDomain,
        cert: CertificateDer<'static>,
        root: CertificateDer<'static>,
        key: KeyPair,
    ) -> Result<Ca, CaError> {
        let (not_before, not_after) = validity(&cert)?;
        let key_pem = key.serialize_pem();
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Ok(Ca {
            trust_domain,
            cert,
            root,
            issuer,
            key_pem,
            not_before,
            not_after,
            rng: SystemRandom::new(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &TrustDomain {
        &self.trust_domain
    }

    /// This CA's certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// The trust anchor its SVIDs chain to.
    pub fn root(&self) -> &CertificateDer<'static> {
        &self.root
    }

    /// Whether this CA is an intermediate under another root.
    pub fn is_intermediate(&self) -> bool {
        self.cert != self.root
    }

    /// The CA key as PKCS#8 PEM (for saving with 0600).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// The SHA-256 fingerprint of this CA's certificate: what join tokens carry.
    pub fn fingerprint(&self) -> String {
        fingerprint(&self.cert)
    }

    /// When this CA stops being valid.
    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    /// The bundle of this CA alone.
    pub fn bundle(&self) -> TrustBundle {
        TrustBundle::new(self.trust_domain.clone(), vec![self.root.clone()])
    }

    /// The chain an SVID carries above its leaf: the intermediate, if any.
    pub fn chain_above_leaf(&self) -> Vec<CertificateDer<'static>> {
        if self.is_intermediate() {
            vec![self.cert.clone()]
        } else {
            Vec::new()
        }
    }

    /// Signs an SVID for the attested identity `id` over the public key of a
    /// CSR (DER). Only the key is taken from the CSR, and only once its
    /// signature verifies. The lifetime is `ttl`, never beyond the CA's own.
    pub fn issue(
        &self,
        csr_der: &[u8],
        id: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<IssuedSvid, IssueError> {
        if id.trust_domain() != self.trust_domain.as_str() {
            return Err(IssueError::ForeignTrustDomain {
                id: id.clone(),
                trust_domain: self.trust_domain.clone(),
            });
        }
        if now >= self.not_after {
            return Err(IssueError::CaExpired(self.not_after));
        }
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(|e| IssueError::BadCsr(csr_reason(&e)))?;
        if csr.public_key.algorithm() != &PKCS_ECDSA_P256_SHA256 {
            return Err(IssueError::UnsupportedKey);
        }
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name(id));
        params.distinguished_name = dn;
        let uri = Ia5String::try_from(id.as_str()).map_err(|e| IssueError::Sign(e.to_string()))?;
        params.subject_alt_names = vec![SanType::URI(uri)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = (now - BACKDATE).max(self.not_before);
        params.not_after = (now + ttl).min(self.not_after);
        params.use_authority_key_identifier_extension = true;
        let mut serial = [0u8; 16];
        self.rng
            .fill(&mut serial)
            .map_err(|_| IssueError::Sign("no randomness for the serial number".into()))?;
        serial[0] &= 0x7f;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let leaf = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| IssueError::Sign(e.to_string()))?;
        let mut chain = vec![leaf.der().clone()];
        chain.extend(self.chain_above_leaf());
        Ok(IssuedSvid {
            id: id.clone(),
            chain,
            not_before: params.not_before.unix_timestamp(),
            not_after: params.not_after.unix_timestamp(),
            serial: serial.iter().map(|b| format!("{b:02x}")).collect(),
        })
    }

    /// An SVID for `id` whose key is made here rather than by its holder:
    /// for tools and tests that hand out a ready key, never for a workload,
    /// whose key stays on its own host.
    pub fn issue_with_new_key(
        &self,
        id: &SpiffeId,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Svid, IssueError> {
        let (key, csr) =
            new_key_and_csr().map_err(|e| IssueError::Sign(format!("no key for the SVID: {e}")))?;
        let issued = self.issue(&csr, id, ttl, now)?;
        Ok(Svid::new(issued, key.serialize_der().into()))
    }
}

fn csr_reason(e: &rcgen::Error) -> String {
    match e {
        rcgen::Error::InvalidCertificationRequestSignature => {
            "its signature does not verify".into()
        }
        rcgen::Error::UnsupportedExtension => "it asks for an extension ibac does not read".into(),
        other => other.to_string(),
    }
}

/// The subject CN: `name.namespace` for workloads (brokers such as Kafka map
/// principals from it), else the last path segment.
fn common_name(id: &SpiffeId) -> String {
    match id.workload() {
        Some(w) => w.to_string(),
        None => id.path().rsplit('/').next().unwrap_or_default().to_string(),
    }
}

/// Creates a fresh ECDSA P-256 key and a CSR for it, as a workload does on its
/// own host: the key never leaves it. Returns (PKCS#8 key PEM, CSR DER).
pub fn new_key_and_csr() -> Result<(KeyPair, Vec<u8>), rcgen::Error> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let csr = params.serialize_request(&key)?;
    Ok((key, csr.der().to_vec()))
}
