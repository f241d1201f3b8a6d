//! The control plane's credentials: a CA, the API server's serving
//! certificate, an admin client certificate (group `system:masters`) and the
//! service-account signing key, all ECDSA P-256 and made fresh for each start.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, Certificate, CertificateParams, CertifiedIssuer, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};

use crate::Error;

/// The first address of the service range, which the API server takes for the
/// `kubernetes` Service; its serving certificate names it as a real one does.
pub(crate) const SERVICE_RANGE: &str = "10.96.0.0/12";
const SERVICE_IP: &str = "10.96.0.1";

/// Paths of the files [`write`] creates.
pub(crate) struct Files {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    /// PEM of the admin's client certificate and key, for the kubeconfig.
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
    pub ca_cert_pem: String,
}

fn key() -> Result<KeyPair, Error> {
    Ok(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?)
}

/// A leaf certificate signed by `ca` for a fresh key: `names` make its
/// subject, `sans` its subject alternative names, `usage` what it is for.
fn leaf(
    ca: &Issuer<'_, KeyPair>,
    sans: Vec<String>,
    names: &[(DnType, &str)],
    usage: ExtendedKeyUsagePurpose,
) -> Result<(Certificate, KeyPair), Error> {
    let mut params = CertificateParams::new(sans)?;
    for (kind, value) in names {
        params.distinguished_name.push(kind.clone(), *value);
    }
    params.extended_key_usages = vec![usage];
    let key = key()?;
    let cert = params.signed_by(&key, ca)?;
    Ok((cert, key))
}

fn write_file(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(Error::io(format!("cannot write {}", path.display())))
}

/// Generates every credential into `dir`.
pub(crate) fn write(dir: &Path) -> Result<Files, Error> {
    std::fs::create_dir_all(dir).map_err(Error::io(format!("cannot create {}", dir.display())))?;

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ibac test cluster CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, key()?)?;

    let (serving_cert, serving_key) = leaf(
        &ca,
        vec![
            "127.0.0.1".to_owned(),
            "localhost".to_owned(),
            "kubernetes".to_owned(),
            "kubernetes.default".to_owned(),
            "kubernetes.default.svc".to_owned(),
            "kubernetes.default.svc.cluster.local".to_owned(),
            SERVICE_IP.to_owned(),
        ],
        &[(DnType::CommonName, "kube-apiserver")],
        ExtendedKeyUsagePurpose::ServerAuth,
    )?;
    let (admin_cert, admin_key) = leaf(
        &ca,
        Vec::new(),
        &[
            (DnType::CommonName, "ibac-test-admin"),
            (DnType::OrganizationName, "system:masters"),
        ],
        ExtendedKeyUsagePurpose::ClientAuth,
    )?;

    let files = Files {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("sa.key"),
        service_account_public_key: dir.join("sa.pub"),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
        ca_cert_pem: ca.pem(),
    };
    write_file(&files.ca_cert, &files.ca_cert_pem)?;
    write_file(&files.ca_key, &ca.key().serialize_pem())?;
    write_file(&files.serving_cert, &serving_cert.pem())?;
    write_file(&files.serving_key, &serving_key.serialize_pem())?;
    let service_account = key()?;
    write_file(&files.service_account_key, &service_account.serialize_pem())?;
    write_file(
        &files.service_account_public_key,
        &service_account.public_key_pem(),
    )?;
    Ok(files)
}

/// A kubeconfig for `server` that authenticates as the admin.
pub(crate) fn kubeconfig(files: &Files, server: &str) -> String {
    let b64 = |s: &str| STANDARD.encode(s);
    kubeconfig_as(
        server,
        &b64(&files.ca_cert_pem),
        "ibac-test-admin",
        &format!(
            "    client-certificate-data: {cert}\n    client-key-data: {key}",
            cert = b64(&files.admin_cert_pem),
            key = b64(&files.admin_key_pem),
        ),
    )
}

/// A kubeconfig for `server` whose CA is `ca` (base64 PEM, as kubeconfigs
/// carry it), acting as `user` with `credentials`: the fields of its `user`
/// map, as YAML lines indented by four.
pub(crate) fn kubeconfig_as(server: &str, ca: &str, user: &str, credentials: &str) -> String {
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: ibac-test
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: {user}
  user:
{credentials}
contexts:
- name: ibac-test
  context:
    cluster: ibac-test
    user: {user}
current-context: ibac-test
"
    )
}
