//! What one process writes, the other reads back unchanged: every wire type
//! with every optional field set, through JSON (the only form on the wire).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeMap;

use ibac_api::graph::ObservedCounts;
use ibac_api::{
    Applied, ApplyRequest, Direction, DocumentChange, DocumentInfo, DocumentState, EnforcedStatus,
    Enforcement, LoadFailure, ModeRequest, Outcome, ProtectRequest, ProxyState, Registration,
    Report, Rollout, RolloutQuery, SourceText, WorkloadEnforcement, WorkloadInfo,
};
use ibac_model::{Mode, Protocol, WorkloadId};
use ibac_policy::Verdict;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(value: &T) {
    let text = serde_json::to_string(value).unwrap();
    let back: T = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot read back what was written: {e}\n{text}"));
    assert_eq!(&back, value, "{text}");
}

fn id(s: &str) -> WorkloadId {
    WorkloadId::parse(s).unwrap()
}

#[test]
fn what_proxies_and_the_control_plane_exchange_reads_back_unchanged() {
    round_trip(&ProxyState {
        revision: 7,
        documents: "apiVersion: ibac.dev/v1\n".into(),
        workloads: BTreeMap::from([(id("web.shop"), "127.0.0.1:9".parse().unwrap())]),
        heartbeat_seconds: Some(10),
    });
    round_trip(&EnforcedStatus {
        enforced: Some(6),
        failed: Some(LoadFailure {
            revision: 7,
            error: "unknown field `x`".into(),
        }),
    });
    for (direction, protocol) in [
        (Direction::Inbound, Protocol::Http),
        (Direction::Outbound, Protocol::Tcp),
    ] {
        round_trip(&Report {
            reporter: id("api.shop"),
            direction,
            client: Some(id("web.shop")),
            server: id("api.shop"),
            port: 8080,
            protocol,
            method: Some("GET".into()),
            path: Some("/orders/{id}".into()),
            verdict: Verdict::WouldBeBlocked,
            count: 3,
            first_seen: "2026-12-01T00:00:00Z".into(),
            last_seen: "2026-12-01T00:00:01Z".into(),
            revision: Some(7),
        });
    }
}

#[test]
fn what_the_cli_and_the_api_exchange_reads_back_unchanged() {
    round_trip(&ApplyRequest {
        sources: vec![SourceText {
            name: "a.yaml".into(),
            text: "x".into(),
        }],
        namespace: Some("shop".into()),
        dry_run: true,
    });
    round_trip(&ProtectRequest {
        workload: "api.shop".into(),
        dry_run: true,
    });
    round_trip(&ModeRequest {
        mode: Mode::DefaultActive,
    });
    round_trip(&RolloutQuery {
        revision: 3,
        wait_ms: 500,
    });
    round_trip(&Registration {
        id: "web.shop".into(),
        address: Some("127.0.0.1:9".parse().unwrap()),
        app_port: Some(8080),
        port: Some(80),
        token_ttl_seconds: Some(60),
    });
    for outcome in [
        DocumentChange::Created,
        DocumentChange::Configured,
        DocumentChange::Unchanged,
        DocumentChange::Deleted,
    ] {
        round_trip(&Outcome {
            documents: vec![Applied {
                document: "ClientIntents shop/web".into(),
                outcome,
            }],
            revision: 4,
            warnings: vec!["w".into()],
        });
    }
    for status in [
        DocumentState::Ok,
        DocumentState::Stale,
        DocumentState::Failed,
    ] {
        round_trip(&DocumentInfo {
            kind: "ClientIntents".into(),
            namespace: "shop".into(),
            name: "web".into(),
            status,
            errors: vec!["e".into()],
            source: "s".into(),
        });
    }
    let states = [
        Enforcement::InSync { revision: 4 },
        Enforcement::Behind { enforced: None },
        Enforcement::Failing {
            enforced: Some(3),
            revision: 4,
            error: "e".into(),
        },
        Enforcement::Silent {
            enforced: Some(3),
            last_report: Some(100),
        },
    ];
    for enforcement in &states {
        round_trip(&WorkloadInfo {
            id: "web.shop".into(),
            address: None,
            app_port: Some(1),
            protected: true,
            last_contact: Some(5),
            enforcement: enforcement.clone(),
        });
    }
    round_trip(&Rollout {
        revision: 4,
        published: 5,
        workloads: states
            .iter()
            .map(|e| WorkloadEnforcement {
                id: "web.shop".into(),
                enforcement: e.clone(),
            })
            .collect(),
    });
    round_trip(&ObservedCounts {
        allowed: 1,
        would_be_blocked: 2,
        blocked: 3,
        under_older_revision: 1,
    });
}

#[test]
fn optional_request_fields_may_be_left_out_and_unknown_ones_are_refused() {
    let r: Registration = serde_json::from_str(r#"{"id": "web.shop"}"#).unwrap();
    assert_eq!(
        r,
        Registration {
            id: "web.shop".into(),
            ..Registration::default()
        }
    );
    let e =
        serde_json::from_str::<Registration>(r#"{"id": "web.shop", "adress": "x"}"#).unwrap_err();
    assert!(e.to_string().contains("unknown field `adress`"), "{e}");
}
