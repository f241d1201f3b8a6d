//! The webhook's serving certificate, signed by a CA of the operator's own
//! (no cert-manager): the API server trusts the CA through the `caBundle` the
//! operator writes into the webhook configuration.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::Error;

/// A CA and the serving configuration of a certificate it signed.
pub struct WebhookTls {
    /// The CA certificate, PEM: the `caBundle`.
    pub ca_pem: String,
    /// The TLS configuration to serve with.
    pub server: Arc<rustls::ServerConfig>,
}

/// A new CA and a serving certificate for `hosts` (DNS names or IP addresses).
pub fn generate(hosts: &[String]) -> Result<WebhookTls, Error> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ibac webhook CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)?;

    let mut leaf = CertificateParams::new(hosts.to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "ibac operator webhook");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = leaf.signed_by(&key, &ca)?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_no_client_auth()
        .with_single_cert(
            vec![
                CertificateDer::from(cert.der().to_vec()),
                CertificateDer::from(ca.der().to_vec()),
            ],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(Error::Tls)?;
    Ok(WebhookTls {
        ca_pem: ca.pem(),
        server: Arc::new(server),
    })
}
