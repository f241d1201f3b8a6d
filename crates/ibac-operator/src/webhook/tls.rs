//! The webhooks' certificates, from a CA of the operator's own (no
//! cert-manager). The CA lives in a Secret in the operator's namespace, so a
//! restarted operator (or a second replica) serves under the same CA that the
//! API server already trusts through the `caBundle`. The serving certificate
//! is short-lived and renewed at half its life while the operator runs
//! ([`Rotation`]): the listener picks up the new one for the next handshake,
//! with no restart and no gap.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use time::{Duration, OffsetDateTime};

use crate::Error;

/// How long the CA is valid.
const CA_LIFETIME: Duration = Duration::days(3650);
/// How long a serving certificate is valid; it is renewed at half of it.
pub const SERVING_LIFETIME: Duration = Duration::days(30);
/// Tolerance for an API server whose clock runs behind.
const BACKDATE: Duration = Duration::hours(1);

/// The webhooks' CA: certificate and key, PEM.
#[derive(Clone)]
pub struct Authority {
    cert_pem: String,
    key_pem: String,
}

impl std::fmt::Debug for Authority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authority").finish_non_exhaustive()
    }
}

/// A serving certificate's TLS configuration and the CA that signed it.
pub struct WebhookTls {
    /// The CA certificate, PEM: the `caBundle`.
    pub ca_pem: String,
    /// The TLS configuration to serve with.
    pub server: Arc<rustls::ServerConfig>,
    /// Renews the certificate the configuration serves.
    pub rotation: Rotation,
}

/// The serving certificate in force, swapped on renewal: every handshake
/// takes the newest.
#[derive(Debug)]
struct Current(arc_swap::ArcSwap<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for Current {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// Renews a serving certificate in place.
#[derive(Clone)]
pub struct Rotation {
    authority: Authority,
    hosts: Vec<String>,
    current: Arc<Current>,
}

impl std::fmt::Debug for Rotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rotation")
            .field("hosts", &self.hosts)
            .finish_non_exhaustive()
    }
}

impl Rotation {
    /// Issues a new serving certificate and serves it from the next handshake.
    pub fn renew(&self, now: OffsetDateTime) -> Result<(), Error> {
        let key = self.authority.certified_key(&self.hosts, now)?;
        self.current.0.store(Arc::new(key));
        Ok(())
    }

    /// The certificate served now, DER.
    pub fn current_der(&self) -> Vec<u8> {
        self.current
            .0
            .load()
            .cert
            .first()
            .map(|c| c.to_vec())
            .unwrap_or_default()
    }

    /// Renews at half of every certificate's life, until the task is dropped.
    pub async fn run(self) {
        loop {
            let half = SERVING_LIFETIME / 2;
            tokio::time::sleep(
                std::time::Duration::try_from(half).unwrap_or(std::time::Duration::from_secs(3600)),
            )
            .await;
            match self.renew(OffsetDateTime::now_utc()) {
                Ok(()) => tracing::info!("renewed the webhooks' serving certificate"),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot renew the webhooks' serving certificate; retrying in a minute");
                    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                }
            }
        }
    }
}

impl Authority {
    /// A new CA.
    pub fn generate(now: OffsetDateTime) -> Result<Authority, Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ibac webhook CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now - BACKDATE;
        params.not_after = now + CA_LIFETIME;
        let ca =
            CertifiedIssuer::self_signed(params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)?;
        Ok(Authority {
            cert_pem: ca.pem(),
            key_pem: ca.key().serialize_pem(),
        })
    }

    /// A CA kept earlier (checked by signing with it).
    pub fn from_pem(cert_pem: &str, key_pem: &str) -> Result<Authority, Error> {
        let authority = Authority {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
        };
        authority.issuer()?;
        Ok(authority)
    }

    fn issuer(&self) -> Result<Issuer<'static, KeyPair>, Error> {
        let key = KeyPair::from_pem(&self.key_pem)?;
        Ok(Issuer::from_ca_cert_pem(&self.cert_pem, key)?)
    }

    /// The CA certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key, PEM.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A serving certificate for `hosts`, with its key, as rustls serves it.
    fn certified_key(
        &self,
        hosts: &[String],
        now: OffsetDateTime,
    ) -> Result<rustls::sign::CertifiedKey, Error> {
        let issuer = self.issuer()?;
        let mut params = CertificateParams::new(hosts.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, "ibac operator webhook");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.not_before = now - BACKDATE;
        params.not_after = now + SERVING_LIFETIME;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = params.signed_by(&key, &issuer)?;
        let provider = rustls::crypto::ring::default_provider();
        let signing = provider
            .key_provider
            .load_private_key(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                key.serialize_der(),
            )))
            .map_err(Error::Tls)?;
        Ok(rustls::sign::CertifiedKey::new(
            vec![CertificateDer::from(cert.der().to_vec())],
            signing,
        ))
    }

    /// A serving certificate for `hosts` (DNS names or IP addresses), and
    /// what renews it.
    pub fn issue(&self, hosts: &[String], now: OffsetDateTime) -> Result<WebhookTls, Error> {
        let current = Arc::new(Current(arc_swap::ArcSwap::from_pointee(
            self.certified_key(hosts, now)?,
        )));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        Ok(WebhookTls {
            ca_pem: self.cert_pem.clone(),
            server: Arc::new(server),
            rotation: Rotation {
                authority: self.clone(),
                hosts: hosts.to_vec(),
                current,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_authority_signs_again() {
        let now = OffsetDateTime::now_utc();
        let ca = Authority::generate(now).unwrap();
        let again = Authority::from_pem(ca.cert_pem(), ca.key_pem()).unwrap();
        let tls = again.issue(&["127.0.0.1".to_owned()], now).unwrap();
        assert_eq!(tls.ca_pem, ca.cert_pem());
        assert!(Authority::from_pem(ca.cert_pem(), "not a key").is_err());
    }

    /// Renewal swaps the certificate served, under the same CA.
    #[test]
    fn renewal_serves_a_new_certificate_from_the_same_ca() {
        let now = OffsetDateTime::now_utc();
        let ca = Authority::generate(now).unwrap();
        let tls = ca.issue(&["127.0.0.1".to_owned()], now).unwrap();
        let first = tls.rotation.current_der();
        tls.rotation.renew(now + SERVING_LIFETIME / 2).unwrap();
        let second = tls.rotation.current_der();
        assert_ne!(first, second);
        let (_, parsed) = x509_parser::parse_x509_certificate(&second).unwrap();
        let (_, root) = x509_parser::pem::parse_x509_pem(ca.cert_pem().as_bytes()).unwrap();
        assert_eq!(parsed.issuer(), root.parse_x509().unwrap().subject());
        let lifetime =
            parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
        assert!(lifetime <= (SERVING_LIFETIME + BACKDATE).whole_seconds());
    }
}
