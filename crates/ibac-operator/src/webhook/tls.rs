//! The webhooks' certificates, from a CA of the operator's own (no
//! cert-manager). The CA lives in a Secret in the operator's namespace, so a
//! restarted operator (or a second replica) serves under the same CA that the
//! API server already trusts through the `caBundle`; the serving certificate
//! is issued anew at every start.

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
/// How long a serving certificate is valid; a restart issues a new one.
const SERVING_LIFETIME: Duration = Duration::days(365);
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

    /// A serving certificate for `hosts` (DNS names or IP addresses).
    pub fn issue(&self, hosts: &[String], now: OffsetDateTime) -> Result<WebhookTls, Error> {
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

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(Error::Tls)?
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from(cert.der().to_vec())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(Error::Tls)?;
        Ok(WebhookTls {
            ca_pem: self.cert_pem.clone(),
            server: Arc::new(server),
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
}
