//! Attested issuance over real TLS on 127.0.0.1: joining with a one-time token
//! pinned to the CA, renewing over mTLS, revocation, rate limits, the audit log,
//! and a workload that restarts without a new token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::num::NonZeroU32;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ibac_identity::attest::{
    AttestError, IssuanceService, IssuerClient, LocalTokenStore, MemoryAudit, TokenStore,
    WorkloadIdentity,
};
use ibac_identity::{Ca, SpiffeId, Svid, TrustBundle, TrustDomain, https};
use ibac_model::WorkloadId;
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;

struct Issuer {
    service: Arc<IssuanceService>,
    audit: Arc<MemoryAudit>,
    tokens: Arc<LocalTokenStore>,
    ca: Arc<Ca>,
    url: String,
    stop: tokio::sync::oneshot::Sender<()>,
}

async fn start(per_minute: Option<u32>) -> Issuer {
    start_issuing_for(Duration::hours(1), per_minute).await
}

/// An issuer on 127.0.0.1 whose SVIDs live `svid_ttl`, serving until the
/// returned [`Issuer`] is dropped.
async fn start_issuing_for(svid_ttl: Duration, per_minute: Option<u32>) -> Issuer {
    let now = OffsetDateTime::now_utc();
    let ca = Arc::new(Ca::generate_root(TrustDomain::default(), now, Duration::days(1)).unwrap());
    let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
    let tokens = Arc::new(LocalTokenStore::in_memory());
    let audit = Arc::new(MemoryAudit::default());
    let service = IssuanceService::new(
        ca.clone(),
        bundle,
        tokens.clone(),
        audit.clone(),
        svid_ttl,
        per_minute.and_then(NonZeroU32::new),
    );
    let own = service.component_svid("issuer").unwrap();
    let tls = Arc::new(
        service
            .tls_config(ibac_identity::tls::SvidResolver::new(&own).unwrap())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let (stop, stopped) = tokio::sync::oneshot::channel();
    tokio::spawn(https::serve(listener, tls, service.router(), async {
        let _ = stopped.await;
    }));
    Issuer {
        service,
        audit,
        tokens,
        ca,
        url,
        stop,
    }
}

impl Issuer {
    /// A join token for web.shop, good for ten minutes.
    fn web_token(&self) -> String {
        self.service
            .create_token(&web(), Duration::minutes(10), "test")
            .unwrap()
    }

    fn client(&self) -> IssuerClient {
        IssuerClient::new(&self.url).unwrap()
    }

    /// A client that has joined as web.shop, with what the join gave it.
    async fn joined(&self) -> (IssuerClient, Svid, TrustBundle) {
        let client = self.client();
        let (svid, bundle) = client.join(&self.web_token()).await.unwrap();
        (client, svid, bundle)
    }
}

fn web() -> WorkloadId {
    WorkloadId::parse("web.shop").unwrap()
}

#[tokio::test]
async fn join_once_then_renew_over_mtls() {
    let issuer = start(None).await;
    let token = issuer.web_token();
    let client = issuer.client();
    let (svid, bundle) = client.join(&token).await.unwrap();
    assert_eq!(
        svid.id().as_str(),
        "spiffe://ibac.local/ns/shop/workload/web"
    );
    assert_eq!(bundle.roots(), std::slice::from_ref(issuer.ca.root()));

    let again = client.join(&token).await.unwrap_err();
    assert!(
        matches!(&again, AttestError::Refused(r) if r.contains("unknown or already used")),
        "{again}"
    );

    let (renewed, _) = client.renew(&svid, &bundle).await.unwrap();
    assert_eq!(renewed.id(), svid.id());
    assert_ne!(renewed.issued().serial, svid.issued().serial);

    let events = issuer.audit.events();
    let summary: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e.action, e.outcome))
        .collect();
    assert_eq!(
        summary,
        ["token done", "join issued", "join refused", "renew issued"]
    );
    assert_eq!(
        events[3].caller,
        svid.id().as_str(),
        "renewals are attributed to the authenticated identity"
    );
    let _ = issuer.stop.send(());
}

#[tokio::test]
async fn a_token_for_another_ca_is_never_sent() {
    let issuer = start(None).await;
    let token = issuer.web_token();
    let other_fp = "0".repeat(64);
    let forged = format!("{other_fp}{}", &token[64..]);
    let err = IssuerClient::new(&issuer.url)
        .unwrap()
        .join(&forged)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AttestError::Unreachable { reason, .. } if reason.contains("TLS")),
        "{err}"
    );
    assert_eq!(
        issuer.audit.events().len(),
        1,
        "the server never saw the join"
    );
    assert!(
        issuer.tokens.redeem(&token, 0).is_ok(),
        "the real token is still unused"
    );
}

#[tokio::test]
async fn expired_tokens_and_expired_svids_must_attest_again() {
    let issuer = start(None).await;
    let client = issuer.client();
    let expired = issuer
        .tokens
        .create(&web(), &issuer.ca.fingerprint(), 1)
        .unwrap();
    let err = client.join(&expired).await.unwrap_err();
    assert!(
        matches!(&err, AttestError::Refused(r) if r.contains("expired")),
        "{err}"
    );

    // An SVID that expired an hour ago cannot authenticate a renewal.
    let id = SpiffeId::for_workload(issuer.ca.trust_domain(), &web());
    let old = issuer
        .ca
        .issue_with_new_key(
            &id,
            Duration::minutes(5),
            OffsetDateTime::now_utc() - Duration::hours(2),
        )
        .unwrap();
    let err = client.renew(&old, &issuer.ca.bundle()).await.unwrap_err();
    assert!(
        matches!(
            err,
            AttestError::Unreachable { .. } | AttestError::Refused(_)
        ),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    old.save(dir.path()).unwrap();
    std::fs::write(dir.path().join("bundle.pem"), issuer.ca.bundle().to_pem()).unwrap();
    let err = WorkloadIdentity::obtain(dir.path(), client.clone(), None)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("has expired: attest again with a new join token"),
        "{err}"
    );
    let token = issuer.web_token();
    let identity = WorkloadIdentity::obtain(dir.path(), client, Some(&token))
        .await
        .unwrap();
    assert!(
        !identity
            .svid()
            .is_expired(OffsetDateTime::now_utc().unix_timestamp())
    );
}

#[tokio::test]
async fn revoked_workloads_cannot_renew_or_join() {
    let issuer = start(None).await;
    let (client, svid, bundle) = issuer.joined().await;
    let pending = issuer.web_token();
    issuer.service.revoke(&web(), "test").unwrap();
    let err = client.renew(&svid, &bundle).await.unwrap_err();
    assert!(
        matches!(&err, AttestError::Refused(r) if r.contains("revoked")),
        "{err}"
    );
    let err = client.join(&pending).await.unwrap_err();
    assert!(matches!(&err, AttestError::Refused(_)), "{err}");
}

#[tokio::test]
async fn callers_are_rate_limited() {
    let issuer = start(Some(2)).await;
    let client = issuer.client();
    let mut outcomes = Vec::new();
    for _ in 0..3 {
        let token = issuer.web_token();
        outcomes.push(
            client
                .join(&token)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string()),
        );
    }
    assert!(outcomes[0].is_ok() && outcomes[1].is_ok(), "{outcomes:?}");
    assert!(
        outcomes[2]
            .as_ref()
            .unwrap_err()
            .contains("too many requests"),
        "{outcomes:?}"
    );
}

#[tokio::test]
async fn a_workload_keeps_its_identity_across_restarts_and_renews() {
    let issuer = start(None).await;
    let dir = tempfile::tempdir().unwrap();
    let client = issuer.client();
    let token = issuer.web_token();
    let first = WorkloadIdentity::obtain(dir.path(), client.clone(), Some(&token))
        .await
        .unwrap();
    for file in ["svid.pem", "svid-key.pem", "bundle.pem"] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    let serial = first.svid().issued().serial.clone();
    drop(first);

    // A restart: no token, same SVID from disk.
    let again = WorkloadIdentity::obtain(dir.path(), client, None)
        .await
        .unwrap();
    assert_eq!(again.svid().issued().serial, serial);
    let mut updates = again.watch();
    again.renew_now().await.unwrap();
    assert!(updates.has_changed().unwrap());
    assert_ne!(updates.borrow_and_update().issued().serial, serial);
    let on_disk = Svid::load(dir.path()).unwrap().unwrap();
    assert_eq!(
        on_disk.issued().serial,
        again.svid().issued().serial,
        "renewals are saved"
    );
}

#[tokio::test]
async fn renewal_happens_by_itself_at_half_life() {
    let issuer = start_issuing_for(Duration::seconds(4), None).await;
    let dir = tempfile::tempdir().unwrap();
    let token = issuer
        .service
        .create_token(&web(), Duration::minutes(1), "test")
        .unwrap();
    let client = issuer.client();
    let identity = WorkloadIdentity::obtain(dir.path(), client, Some(&token))
        .await
        .unwrap();
    let first = identity.svid().issued().serial.clone();
    let mut updates = identity.watch();
    tokio::spawn(identity.clone().run_renewals());
    tokio::time::timeout(std::time::Duration::from_secs(30), updates.changed())
        .await
        .expect("a renewal within 30 s")
        .unwrap();
    assert_ne!(updates.borrow().issued().serial, first);
}

#[tokio::test]
async fn jwt_svids_are_signed_for_the_callers_own_identity_only() {
    use ibac_identity::attest::JwtSigning;
    use ibac_identity::attest::server::JwtRequest;
    use ibac_identity::jwt::{JwtBundle, JwtKey, validate};

    let issuer = start(None).await;
    let (client, svid, bundle) = issuer.joined().await;
    let unavailable = client.jwt_svid(&svid, &bundle, &["api".into()]).await;
    assert!(
        matches!(&unavailable, Err(AttestError::Refused(r)) if r.contains("no JWT signing key")),
        "{unavailable:?}"
    );

    let key = JwtKey::generate().unwrap();
    let jwt_bundle = JwtBundle::new(TrustDomain::default(), vec![key.public().clone()]);
    issuer.service.replace_jwt(JwtSigning {
        key,
        bundle: jwt_bundle.clone(),
        // Longer than the SVIDs': capped to theirs.
        ttl: Duration::hours(2),
    });
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let reply = client
        .jwt_svid(&svid, &bundle, &["api".into(), "db".into()])
        .await
        .unwrap();
    assert_eq!(reply.spiffe_id, svid.id().as_str());
    assert!(reply.expires_at <= now + 3600 + 1, "capped at the SVID TTL");
    let fetched = client.jwt_bundle(&svid, &bundle).await.unwrap();
    assert_eq!(fetched, jwt_bundle);
    let valid = validate(&reply.token, &fetched, "db", now).unwrap();
    assert_eq!(&valid.id, svid.id());

    // A request cannot name a subject; an empty audience is refused.
    assert!(
        serde_json::from_str::<JwtRequest>(
            r#"{"audience":["api"],"spiffeId":"spiffe://ibac.local/ns/shop/workload/db"}"#
        )
        .is_err()
    );
    let empty = client.jwt_svid(&svid, &bundle, &[]).await.unwrap_err();
    assert!(
        matches!(&empty, AttestError::Refused(r) if r.contains("at least one audience")),
        "{empty}"
    );

    // A revoked workload gets no more tokens.
    issuer.service.revoke(&web(), "test").unwrap();
    let revoked = client
        .jwt_svid(&svid, &bundle, &["api".into()])
        .await
        .unwrap_err();
    assert!(
        matches!(&revoked, AttestError::Refused(r) if r.contains("revoked")),
        "{revoked}"
    );
    let _ = issuer.stop.send(());
}
