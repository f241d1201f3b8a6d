//! The OpenAPI description agrees with the wire types: every schema lists
//! exactly the fields the types write, with the values their enums take, and
//! every path it describes is served. A field added to a type and not to the
//! description (or the reverse) fails here.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod support;

use std::collections::BTreeSet;

use ibac_api::graph::{EdgeSource, MismatchKind, ObservedCounts};
use ibac_api::{
    Applied, ApplyRequest, DocumentChange, DocumentInfo, DocumentState, Enforcement, ErrorBody,
    Outcome, PlacedError, Registration, SourceText, WorkloadInfo,
};
use serde::Serialize;
use serde_json::Value;
use support::{client, plane};

fn spec() -> Value {
    serde_saphyr::from_str(ibac_control::api::OPENAPI).unwrap()
}

fn keys<T: Serialize>(value: &T) -> BTreeSet<String> {
    match serde_json::to_value(value).unwrap() {
        Value::Object(m) => m.keys().cloned().collect(),
        other => panic!("not an object: {other}"),
    }
}

fn properties(schema: &Value) -> BTreeSet<String> {
    schema["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no properties in {schema}"))
        .keys()
        .cloned()
        .collect()
}

fn strings(values: &Value) -> BTreeSet<String> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

fn words<T: Serialize>(values: &[T]) -> BTreeSet<String> {
    values
        .iter()
        .map(|v| {
            serde_json::to_value(v)
                .unwrap()
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn schemas_list_exactly_the_fields_the_types_write() {
    let spec = spec();
    let schemas = &spec["components"]["schemas"];
    let source = SourceText {
        name: "a.yaml".into(),
        text: String::new(),
    };
    let apply = ApplyRequest {
        sources: vec![source.clone()],
        namespace: Some("shop".into()),
        dry_run: true,
    };
    assert_eq!(properties(&schemas["Sources"]), keys(&apply));
    assert_eq!(
        properties(&schemas["Sources"]["properties"]["sources"]["items"]),
        keys(&source)
    );
    let applied = Applied {
        document: "ClientIntents shop/web".into(),
        outcome: DocumentChange::Created,
    };
    let outcome = Outcome {
        documents: vec![applied.clone()],
        revision: 1,
        warnings: vec!["w".into()],
    };
    assert_eq!(properties(&schemas["Outcome"]), keys(&outcome));
    let items = &schemas["Outcome"]["properties"]["documents"]["items"];
    assert_eq!(properties(items), keys(&applied));
    assert_eq!(
        strings(&items["properties"]["outcome"]["enum"]),
        words(&[
            DocumentChange::Created,
            DocumentChange::Configured,
            DocumentChange::Unchanged,
            DocumentChange::Deleted
        ])
    );
    let document = DocumentInfo {
        kind: "ClientIntents".into(),
        namespace: "shop".into(),
        name: "web".into(),
        status: DocumentState::Stale,
        errors: vec!["e".into()],
        source: String::new(),
    };
    assert_eq!(properties(&schemas["Document"]), keys(&document));
    assert_eq!(
        strings(&schemas["Document"]["properties"]["status"]["enum"]),
        words(&[
            DocumentState::Ok,
            DocumentState::Stale,
            DocumentState::Failed
        ])
    );
    let workload = WorkloadInfo {
        id: "web.shop".into(),
        address: None,
        app_port: None,
        protected: false,
        last_contact: None,
        enforcement: Enforcement::Behind { enforced: None },
    };
    assert_eq!(properties(&schemas["Workload"]), keys(&workload));
    let registration = Registration {
        id: "web.shop".into(),
        address: None,
        app_port: Some(1),
        port: Some(1),
        token_ttl_seconds: Some(60),
    };
    assert_eq!(properties(&schemas["Registration"]), keys(&registration));
    let error = ErrorBody {
        error: "x".into(),
        errors: vec![PlacedError {
            message: "m".into(),
            file: Some("f".into()),
            line: Some(1),
            column: Some(1),
        }],
    };
    assert_eq!(properties(&schemas["Error"]), keys(&error));
    assert_eq!(
        properties(&schemas["Error"]["properties"]["errors"]["items"]),
        keys(&error.errors[0])
    );
    // Every field of every enforced state, and every state's tag.
    let states = [
        Enforcement::InSync { revision: 1 },
        Enforcement::Behind { enforced: Some(1) },
        Enforcement::Failing {
            enforced: Some(1),
            revision: 2,
            error: "e".into(),
        },
        Enforcement::Silent {
            enforced: Some(1),
            last_report: Some(0),
        },
    ];
    let mut fields = BTreeSet::new();
    let mut tags = BTreeSet::new();
    for s in &states {
        fields.extend(keys(s));
        tags.insert(
            serde_json::to_value(s).unwrap()["state"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(properties(&schemas["Enforcement"]), fields);
    assert_eq!(
        strings(&schemas["Enforcement"]["properties"]["state"]["enum"]),
        tags
    );
    let edge = &schemas["Graph"]["properties"]["edges"]["items"]["properties"];
    assert_eq!(
        properties(&edge["observed"]),
        keys(&ObservedCounts::default())
    );
    assert_eq!(
        strings(&edge["mismatch"]["properties"]["kind"]["enum"]),
        words(&[MismatchKind::NotBlocked, MismatchKind::Blocked])
    );
    assert_eq!(
        strings(&edge["sources"]["items"]["enum"]),
        words(&[EdgeSource::Discovered, EdgeSource::Declared])
    );
}

/// Every path the description gives answers something other than 404 or
/// 405 from the real server (authentication aside).
#[tokio::test]
async fn every_described_path_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let p = plane(dir.path()).await;
    let client = client(dir.path(), &p.url, None);
    let spec = spec();
    let mut checked = 0;
    for (path, methods) in spec["paths"].as_object().unwrap() {
        if path.ends_with("/events") {
            continue; // streams never end; served, checked by their own tests
        }
        let concrete = path.replace("{id}", "nobody.shop");
        for method in methods.as_object().unwrap().keys() {
            let m = http::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (m != http::Method::GET).then(|| b"{}".to_vec());
            let status = match client.raw(m, &concrete, body).await {
                Ok(_) => http::StatusCode::OK,
                Err(ibac_control::client::ClientError::Api { status, .. }) => status,
                Err(e) => panic!("{method} {path}: {e}"),
            };
            // A path with `{id}` answers 404 for an unknown id: that is served.
            let unknown_id = path.contains("{id}") && status == http::StatusCode::NOT_FOUND;
            assert!(
                unknown_id
                    || (status != http::StatusCode::NOT_FOUND
                        && status != http::StatusCode::METHOD_NOT_ALLOWED),
                "{method} {path}: {status}"
            );
            checked += 1;
        }
    }
    assert!(checked > 20, "only {checked} paths checked");
    p.stop().await;
}
