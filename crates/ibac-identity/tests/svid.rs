//! Issuance and verification of X.509-SVIDs, with every certificate minted in
//! the test: what ibac issues meets the SPIFFE rules, and each way a peer's
//! certificate can break them is refused for its own reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ibac_identity::ca::{DEFAULT_SVID_TTL, new_key_and_csr};
use ibac_identity::verify::LeafInfo;
use ibac_identity::{
    Ca, IssueError, PeerRole, SpiffeId, SpiffeIdError, SvidError, TrustBundle, TrustDomain,
    verify_svid,
};
use ibac_model::WorkloadId;
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PKCS_ECDSA_P384_SHA384, SanType, string::Ia5String,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use time::{Duration, OffsetDateTime};

fn td() -> TrustDomain {
    TrustDomain::default()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

fn unix(t: OffsetDateTime) -> UnixTime {
    UnixTime::since_unix_epoch(std::time::Duration::from_secs(t.unix_timestamp() as u64))
}

fn web_id() -> SpiffeId {
    SpiffeId::for_workload(&td(), &WorkloadId::parse("web.shop").unwrap())
}

/// A test root CA made with rcgen directly, so tests can mint anything.
struct TestRoot {
    issuer: Issuer<'static, KeyPair>,
    cert: CertificateDer<'static>,
}

impl TestRoot {
    fn new() -> Self {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "test root");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params.not_before = now() - Duration::days(1);
        params.not_after = now() + Duration::days(30);
        let cert = params.self_signed(&key).unwrap().der().clone();
        TestRoot {
            issuer: Issuer::new(params, key),
            cert,
        }
    }

    fn bundle(&self) -> TrustBundle {
        TrustBundle::new(td(), vec![self.cert.clone()])
    }

    fn sign(&self, params: &CertificateParams) -> CertificateDer<'static> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        params.signed_by(&key, &self.issuer).unwrap().der().clone()
    }
}

/// Params of a correct SVID, to be broken one way at a time.
fn svid_params(uris: &[&str]) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name = DistinguishedName::new();
    p.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI(Ia5String::try_from(*u).unwrap()))
        .collect();
    p.is_ca = IsCa::ExplicitNoCa;
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    p.not_before = now() - Duration::minutes(5);
    p.not_after = now() + Duration::hours(1);
    p
}

const GOOD: &str = "spiffe://ibac.local/ns/shop/workload/web";

fn check(root: &TestRoot, params: &CertificateParams) -> Result<SpiffeId, SvidError> {
    check_leaf(root, &root.sign(params), PeerRole::Client)
}

/// Verifies a lone leaf signed by `root`, now, as a peer in `role`.
fn check_leaf(
    root: &TestRoot,
    leaf: &CertificateDer<'static>,
    role: PeerRole,
) -> Result<SpiffeId, SvidError> {
    verify_svid(
        std::slice::from_ref(leaf),
        &root.bundle(),
        unix(now()),
        role,
    )
}

#[test]
fn a_correct_svid_verifies_for_both_roles() {
    let root = TestRoot::new();
    let cert = root.sign(&svid_params(&[GOOD]));
    for role in [PeerRole::Client, PeerRole::Server] {
        assert_eq!(check_leaf(&root, &cert, role).unwrap().as_str(), GOOD);
    }
}

#[test]
fn refuses_a_certificate_without_a_uri_san_even_with_a_spiffe_cn() {
    let root = TestRoot::new();
    let mut p = svid_params(&[]);
    p.distinguished_name.push(DnType::CommonName, GOOD);
    p.subject_alt_names = vec![SanType::DnsName(Ia5String::try_from("web.shop").unwrap())];
    assert_eq!(check(&root, &p), Err(SvidError::NoUriSan));
}

#[test]
fn refuses_two_uri_sans() {
    let root = TestRoot::new();
    let p = svid_params(&[GOOD, "spiffe://ibac.local/ns/shop/workload/admin"]);
    assert_eq!(check(&root, &p), Err(SvidError::SeveralUriSans(2)));
}

#[test]
fn refuses_wrong_scheme_or_case() {
    let root = TestRoot::new();
    for (uri, reason) in [
        (
            "SPIFFE://ibac.local/ns/shop/workload/web",
            SpiffeIdError::Scheme,
        ),
        (
            "https://ibac.local/ns/shop/workload/web",
            SpiffeIdError::Scheme,
        ),
        (
            "spiffe://IBAC.local/ns/shop/workload/web",
            SpiffeIdError::TrustDomainChar('I'),
        ),
        (
            "spiffe://ibac.local/ns/shop/../admin",
            SpiffeIdError::DotSegment,
        ),
    ] {
        assert_eq!(
            check(&root, &svid_params(&[uri])),
            Err(SvidError::BadSpiffeId {
                uri: uri.into(),
                reason
            }),
            "{uri}"
        );
    }
}

#[test]
fn refuses_foreign_and_look_alike_trust_domains() {
    let root = TestRoot::new();
    for uri in [
        "spiffe://example.org/ns/shop/workload/web",
        "spiffe://ibac.local.evil.com/ns/shop/workload/web",
        "spiffe://ibac.locals/ns/shop/workload/web",
        "spiffe://xibac.local/ns/shop/workload/web",
    ] {
        let got = check(&root, &svid_params(&[uri]));
        assert!(
            matches!(got, Err(SvidError::ForeignTrustDomain { .. })),
            "{uri}: {got:?}"
        );
    }
}

#[test]
fn refuses_a_spiffe_id_without_a_path() {
    // X509-SVID §5.2: a leaf's SPIFFE ID must have a non-root path; the bare
    // trust domain names no workload.
    let root = TestRoot::new();
    let cert = root.sign(&svid_params(&["spiffe://ibac.local"]));
    for role in [PeerRole::Client, PeerRole::Server] {
        assert_eq!(
            check_leaf(&root, &cert, role),
            Err(SvidError::NoPath(
                SpiffeId::parse("spiffe://ibac.local").unwrap()
            )),
        );
    }
    let info = LeafInfo::parse(&cert).unwrap();
    assert_eq!(
        info.violations("ibac.local"),
        vec![SvidError::NoPath(
            SpiffeId::parse("spiffe://ibac.local").unwrap()
        )]
    );
}

#[test]
fn refuses_a_leaf_that_is_a_ca() {
    let root = TestRoot::new();
    let mut p = svid_params(&[GOOD]);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    assert_eq!(check(&root, &p), Err(SvidError::LeafIsCa));
}

#[test]
fn refuses_a_leaf_that_can_sign_certificates_or_crls() {
    let root = TestRoot::new();
    for extra in [KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign] {
        let mut p = svid_params(&[GOOD]);
        p.key_usages.push(extra);
        assert_eq!(check(&root, &p), Err(SvidError::LeafCanSign));
    }
}

#[test]
fn refuses_missing_or_non_critical_key_usage() {
    let root = TestRoot::new();
    let mut p = svid_params(&[GOOD]);
    p.key_usages.clear();
    assert_eq!(check(&root, &p), Err(SvidError::NoKeyUsage));
    // digitalSignature, written by hand as a non-critical extension.
    let mut ku = CustomExtension::from_oid_content(&[2, 5, 29, 15], vec![0x03, 0x02, 0x07, 0x80]);
    ku.set_criticality(false);
    p.custom_extensions = vec![ku];
    assert_eq!(check(&root, &p), Err(SvidError::KeyUsageNotCritical));
    let mut p = svid_params(&[GOOD]);
    p.key_usages = vec![KeyUsagePurpose::KeyEncipherment];
    assert_eq!(check(&root, &p), Err(SvidError::NoDigitalSignature));
}

#[test]
fn refuses_expired_and_not_yet_valid() {
    let root = TestRoot::new();
    let mut p = svid_params(&[GOOD]);
    p.not_before = now() - Duration::hours(2);
    p.not_after = now() - Duration::hours(1);
    assert!(matches!(check(&root, &p), Err(SvidError::Expired(_))));
    let mut p = svid_params(&[GOOD]);
    p.not_before = now() + Duration::hours(1);
    p.not_after = now() + Duration::hours(2);
    assert!(matches!(check(&root, &p), Err(SvidError::NotYetValid(_))));
}

#[test]
fn refuses_a_chain_through_an_expired_intermediate() {
    let root = TestRoot::new();
    let inter_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ip = CertificateParams::default();
    ip.distinguished_name
        .push(DnType::CommonName, "old intermediate");
    ip.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ip.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    ip.not_before = now() - Duration::days(10);
    ip.not_after = now() - Duration::days(1);
    let inter = ip
        .signed_by(&inter_key, &root.issuer)
        .unwrap()
        .der()
        .clone();
    let inter_issuer = Issuer::new(ip, inter_key);
    let leaf_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let leaf = svid_params(&[GOOD])
        .signed_by(&leaf_key, &inter_issuer)
        .unwrap()
        .der()
        .clone();
    let got = verify_svid(
        &[leaf, inter],
        &root.bundle(),
        unix(now()),
        PeerRole::Client,
    );
    assert_eq!(
        got,
        Err(SvidError::Chain(
            "a certificate in the chain has expired".into()
        ))
    );
}

#[test]
fn refuses_a_self_signed_leaf_with_the_right_san() {
    let root = TestRoot::new();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let forged = svid_params(&[GOOD])
        .self_signed(&key)
        .unwrap()
        .der()
        .clone();
    let got = verify_svid(&[forged], &root.bundle(), unix(now()), PeerRole::Server);
    assert_eq!(
        got,
        Err(SvidError::Chain(
            "it is not signed by a CA of the trust bundle".into()
        ))
    );
}

#[test]
fn issued_svids_meet_the_spiffe_rules() {
    let ca = Ca::generate_root(td(), now(), Duration::days(1)).unwrap();
    let (_key, csr) = new_key_and_csr().unwrap();
    let svid = ca.issue(&csr, &web_id(), DEFAULT_SVID_TTL, now()).unwrap();
    assert_eq!(svid.chain.len(), 1);
    let info = LeafInfo::parse(&svid.chain[0]).unwrap();
    assert_eq!(info.uri_sans, vec![GOOD.to_string()]);
    assert!(!info.is_ca);
    assert_eq!(
        info.key_usage,
        Some((true, true, false, false)),
        "critical, digitalSignature only"
    );
    assert_eq!(info.extended_key_usage, Some((true, true)));
    assert_eq!(info.subject, "CN=web.shop");
    assert!(
        (info.not_after - info.not_before - 3600 - 60).abs() <= 1,
        "one hour, backdated a minute"
    );
    assert!(info.violations("ibac.local").is_empty());
    assert_eq!(
        verify_svid(&svid.chain, &ca.bundle(), unix(now()), PeerRole::Client).unwrap(),
        web_id()
    );
}

#[test]
fn never_beyond_the_ca_and_never_from_the_csr() {
    let ca = Ca::generate_root(td(), now(), Duration::minutes(30)).unwrap();
    // A CSR asking to be a CA for another identity.
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut asked = CertificateParams::default();
    asked.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    asked.subject_alt_names = vec![SanType::URI(
        Ia5String::try_from("spiffe://ibac.local/ns/kube-system/workload/admin").unwrap(),
    )];
    asked.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let csr = asked.serialize_request(&key).unwrap().der().to_vec();
    let svid = ca
        .issue(&csr, &web_id(), Duration::hours(24), now())
        .unwrap();
    let info = LeafInfo::parse(&svid.chain[0]).unwrap();
    assert_eq!(info.uri_sans, vec![GOOD.to_string()]);
    assert!(!info.is_ca);
    assert_eq!(info.key_usage, Some((true, true, false, false)));
    assert_eq!(
        svid.not_after,
        ca.not_after().unix_timestamp(),
        "capped at the CA's expiry"
    );
}

#[test]
fn refuses_csrs_whose_signature_does_not_verify_and_foreign_keys() {
    let ca = Ca::generate_root(td(), now(), Duration::days(1)).unwrap();
    let (_key, mut csr) = new_key_and_csr().unwrap();
    let last = csr.len() - 1;
    csr[last] ^= 0x01;
    assert!(matches!(
        ca.issue(&csr, &web_id(), DEFAULT_SVID_TTL, now()),
        Err(IssueError::BadCsr(_))
    ));
    let p384 = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384).unwrap();
    let csr = CertificateParams::default()
        .serialize_request(&p384)
        .unwrap()
        .der()
        .to_vec();
    assert_eq!(
        ca.issue(&csr, &web_id(), DEFAULT_SVID_TTL, now()),
        Err(IssueError::UnsupportedKey)
    );
    let (_key, csr) = new_key_and_csr().unwrap();
    let foreign = SpiffeId::parse("spiffe://example.org/ns/shop/workload/web").unwrap();
    assert!(matches!(
        ca.issue(&csr, &foreign, DEFAULT_SVID_TTL, now()),
        Err(IssueError::ForeignTrustDomain { .. })
    ));
}

#[test]
fn an_intermediate_under_the_users_root_chains_to_that_root() {
    let root = TestRoot::new();
    let root_key_pem = root.issuer.key().serialize_pem();
    let root_pem = ibac_identity::pem::encode_certificates(std::slice::from_ref(&root.cert));
    let ca = Ca::generate_intermediate(td(), &root_pem, &root_key_pem, now(), Duration::days(365))
        .unwrap();
    assert!(ca.is_intermediate());
    assert!(
        ca.not_after() <= now() + Duration::days(30),
        "never beyond the root"
    );
    let (_key, csr) = new_key_and_csr().unwrap();
    let svid = ca.issue(&csr, &web_id(), DEFAULT_SVID_TTL, now()).unwrap();
    assert_eq!(svid.chain.len(), 2);
    assert_eq!(
        verify_svid(&svid.chain, &root.bundle(), unix(now()), PeerRole::Server).unwrap(),
        web_id()
    );
    let wrong_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    assert!(
        Ca::generate_intermediate(td(), &root_pem, &wrong_key, now(), Duration::days(1)).is_err()
    );
}
