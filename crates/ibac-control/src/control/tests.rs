//! The control logic over an in-memory store and an in-memory issuer: no
//! HTTPS, no files. The API tests (`tests/api.rs`) cover the same paths
//! through the server.

use std::sync::Arc;

use ibac_api::{EnforcedStatus, LoadFailure};
use ibac_identity::attest::{IssuanceService, LocalTokenStore, MemoryAudit};
use ibac_identity::bundle::TrustBundle;
use ibac_identity::ca::Ca;
use ibac_identity::spiffe_id::TrustDomain;

use super::*;

fn control() -> Arc<Control> {
    let now = time::OffsetDateTime::now_utc();
    let ca = Ca::generate_root(TrustDomain::default(), now, time::Duration::days(1)).unwrap();
    let bundle = TrustBundle::new(ca.trust_domain().clone(), vec![ca.root().clone()]);
    let issuance = IssuanceService::new(
        Arc::new(ca),
        Arc::new(ArcSwap::from_pointee(bundle)),
        Arc::new(LocalTokenStore::in_memory()),
        Arc::new(MemoryAudit::default()),
        time::Duration::hours(1),
        None,
    );
    let dir = std::env::temp_dir();
    Control::open(
        Store::in_memory().unwrap(),
        issuance,
        Settings::default(),
        &dir,
    )
    .unwrap()
}

fn admin() -> Caller {
    Caller::Admin {
        name: "test".into(),
    }
}

fn source(text: &str) -> Vec<SourceText> {
    vec![SourceText {
        name: "t.yaml".into(),
        text: text.into(),
    }]
}

const WEB: &str = "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: web, namespace: shop}\nspec:\n  workload: {name: web}\n  targets:\n  - kubernetes: {name: api}\n";
const API_PROTECTED: &str = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: api, namespace: shop}\nspec: {name: api}\n";

fn shop() -> Namespace {
    Namespace::parse("shop").unwrap()
}

/// The admin applying or deleting the documents of `text` in `shop`.
async fn admin_edits(c: &Control, edit: DocumentEdit, text: &str, dry_run: bool) -> Outcome {
    c.edit(edit, &admin(), &source(text), &shop(), dry_run)
        .await
        .unwrap()
}

#[tokio::test]
async fn dry_runs_write_nothing_and_real_runs_publish_a_revision() {
    let c = control();
    let before = c.snapshot().revision;
    let dry = admin_edits(&c, DocumentEdit::Apply, WEB, true).await;
    assert_eq!(dry.revision, before);
    assert_eq!(dry.documents[0].outcome, DocumentChange::Created);
    assert!(c.documents(None).unwrap().is_empty());
    let real = admin_edits(&c, DocumentEdit::Apply, WEB, false).await;
    assert!(real.revision > before);
    assert_eq!(c.snapshot().revision, real.revision);
    let again = admin_edits(&c, DocumentEdit::Apply, WEB, false).await;
    assert_eq!(again.documents[0].outcome, DocumentChange::Unchanged);
    assert_eq!(
        again.revision, real.revision,
        "nothing changed, no revision"
    );
    let dry = admin_edits(&c, DocumentEdit::Delete, WEB, true).await;
    assert_eq!(dry.documents[0].outcome, DocumentChange::Deleted);
    assert_eq!(c.documents(None).unwrap().len(), 1, "a dry delete keeps it");
    admin_edits(&c, DocumentEdit::Delete, WEB, false).await;
    assert!(c.documents(None).unwrap().is_empty());
    let rows = c.audit(10).await.unwrap();
    let actions: Vec<&str> = rows.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(actions.iter().filter(|a| **a == "apply").count(), 1);
    assert_eq!(actions.iter().filter(|a| **a == "delete").count(), 1);
}

#[tokio::test]
async fn protection_does_not_wait_for_the_workload_and_unprotect_says_what_remains() {
    let c = control();
    let out = c.protect(&admin(), "ghost.shop").await.unwrap();
    assert!(out.warnings[0].contains("nothing named `ghost.shop` is known yet"));
    assert!(
        c.snapshot()
            .policy
            .protection(&WorkloadId::parse("ghost.shop").unwrap())
            .is_protected()
    );
    admin_edits(&c, DocumentEdit::Apply, API_PROTECTED, false).await;
    c.set_mode(&admin(), Mode::DefaultActive).await.unwrap();
    let out = c.unprotect(&admin(), "api.shop", false).await.unwrap();
    assert!(
        out.warnings[0].contains("stays protected"),
        "{:?}",
        out.warnings
    );
    let err = c.unprotect(&admin(), "api.shop", false).await.unwrap_err();
    assert!(
        matches!(err, ControlError::NotFound(ref m) if m.contains("protected by the mode")),
        "{err}"
    );
}

#[tokio::test]
async fn a_rollout_completes_when_every_proxy_reports_and_is_stuck_when_one_refuses() {
    let c = control();
    for id in ["a.shop", "b.shop"] {
        c.add_workload(
            &admin(),
            &Registration {
                id: id.into(),
                ..Registration::default()
            },
        )
        .await
        .unwrap();
    }
    let out = admin_edits(&c, DocumentEdit::Apply, WEB, false).await;
    let (a, b) = (
        WorkloadId::parse("a.shop").unwrap(),
        WorkloadId::parse("b.shop").unwrap(),
    );
    let rollout = c.rollout(out.revision);
    assert!(!rollout.complete());
    assert!(rollout.workloads.iter().all(|w| matches!(
        w.enforcement,
        Enforcement::Silent {
            last_report: None,
            ..
        }
    )));
    c.enforced_status(
        &a,
        EnforcedStatus {
            enforced: Some(out.revision),
            failed: None,
        },
    );
    c.enforced_status(
        &b,
        EnforcedStatus {
            enforced: Some(out.revision - 1),
            failed: Some(LoadFailure {
                revision: out.revision,
                error: "unknown kind".into(),
            }),
        },
    );
    let rollout = c.wait_rollout(out.revision, Duration::from_secs(30)).await;
    assert!(!rollout.complete());
    assert!(
        rollout.stuck(),
        "b cannot load it: waiting longer cannot help"
    );
    assert_eq!(c.enforcement_counts().failing, 1);
    c.enforced_status(
        &b,
        EnforcedStatus {
            enforced: Some(out.revision),
            failed: None,
        },
    );
    assert!(
        c.wait_rollout(out.revision, Duration::from_secs(30))
            .await
            .complete()
    );
}

#[tokio::test]
async fn verdicts_observed_since_the_policy_was_published_are_counted() {
    let c = control();
    admin_edits(&c, DocumentEdit::Apply, API_PROTECTED, false).await;
    let revision = c.snapshot().revision;
    let api = WorkloadId::parse("api.shop").unwrap();
    let report = |revision: Option<u64>, verdict: Verdict| Report {
        reporter: api.clone(),
        direction: Direction::Inbound,
        client: Some(WorkloadId::parse("rogue.shop").unwrap()),
        server: api.clone(),
        port: 80,
        protocol: Protocol::Http,
        method: Some("GET".into()),
        path: Some("/orders/12345".into()),
        verdict,
        count: 2,
        first_seen: "2099-01-01T00:00:00Z".into(),
        last_seen: "2099-01-01T00:00:01Z".into(),
        revision,
    };
    // A lagging proxy let the call through; an up-to-date one refused it.
    c.ingest(
        &api,
        vec![report(Some(revision - 1), Verdict::WouldBeBlocked)],
    )
    .await
    .unwrap();
    c.ingest(&api, vec![report(Some(revision), Verdict::Blocked)])
        .await
        .unwrap();
    let observed = c.observed();
    assert_eq!(observed.len(), 1, "the ID is collapsed: one kind of call");
    let (key, counts) = observed.iter().next().unwrap();
    assert_eq!(key.path.as_deref(), Some("/orders/{id}"));
    assert_eq!(
        *counts,
        ObservedCounts {
            would_be_blocked: 2,
            blocked: 2,
            under_older_revision: 2,
            ..ObservedCounts::default()
        }
    );
    // A proxy may report only for itself.
    let err = c
        .ingest(
            &WorkloadId::parse("other.shop").unwrap(),
            vec![report(Some(revision), Verdict::Blocked)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, ControlError::NotAllowed(_)));
}
