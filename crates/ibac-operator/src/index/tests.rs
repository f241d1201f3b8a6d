#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;

fn id(s: &str) -> WorkloadId {
    WorkloadId::parse(s).unwrap()
}

fn deployment(name: &str, ns: &str, annotations: Value) -> Watched {
    let d: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}, "annotations": annotations},
                "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .unwrap();
    Watched::Deployment(Box::new(d))
}

/// A pod labelled `app: <app>` in `shop`, owned by `[apiVersion, kind, name]`.
fn pod(name: &str, app: &str, owner: [&str; 3]) -> Watched {
    let [api_version, kind, owner_name] = owner;
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "shop", "labels": {"app": app},
            "ownerReferences": [{"apiVersion": api_version, "kind": kind, "name": owner_name, "uid": "u"}]},
    }))
    .unwrap();
    Watched::Pod(Box::new(pod))
}

fn intents(name: &str, ns: &str, targets: Value) -> Watched {
    intents_in(name, ns, targets)
}

fn intents_in(name: &str, ns: &str, targets: Value) -> Watched {
    Watched::Document(
        WatchedDocument::OtterizeClientIntents,
        Box::new(json!({
            "apiVersion": "k8s.otterize.com/v2beta1", "kind": "ClientIntents",
            "metadata": {"name": name, "namespace": ns, "generation": 1, "uid": "u1"},
            "spec": {"workload": {"name": name}, "targets": targets},
        })),
    )
}

fn protect(server: &str, ns: &str) -> Watched {
    Watched::Document(
        WatchedDocument::OtterizeProtectedService,
        Box::new(json!({
            "apiVersion": "k8s.otterize.com/v2alpha1", "kind": "ProtectedService",
            "metadata": {"name": server, "namespace": ns, "generation": 1},
            "spec": {"name": server},
        })),
    )
}

fn workload_names(index: &Index) -> Vec<String> {
    index
        .facts()
        .workloads()
        .map(|w| w.id.to_string())
        .collect()
}

fn synced() -> Index {
    let mut index = Index::new();
    index.settings(None);
    index.synced();
    index
}

/// A synced index that knows a plain Deployment in `shop` for each of `names`.
fn synced_with(names: &[&str]) -> Index {
    let mut index = synced();
    for name in names {
        index.apply(deployment(name, "shop", json!({})));
    }
    index
}

#[test]
fn a_document_touches_the_servers_it_names_and_only_those() {
    let mut index = synced_with(&["web", "cart", "ads"]);
    let touched = index.apply(intents(
        "web",
        "shop",
        json!([{"kubernetes": {"name": "cart"}}]),
    ));
    assert!(touched.servers.contains(&id("cart.shop")), "{touched:?}");
    assert!(!touched.servers.contains(&id("ads.shop")), "{touched:?}");
    assert!(touched.clients.contains(&id("web.shop")));
    let touched = index.apply(protect("ads", "shop"));
    assert_eq!(touched.servers, BTreeSet::from([id("ads.shop")]));
    let views = index.views(None);
    assert_eq!(views.len(), 2);
    assert!(views.iter().any(|v| v.role
        == DocRole::ClientIntents {
            client: id("web.shop"),
            servers: vec![id("cart.shop")],
        }));
}

#[test]
fn a_missing_target_is_left_out_until_it_exists() {
    let mut index = synced_with(&["web", "cart"]);
    index.apply(intents(
        "web",
        "shop",
        json!([{"kubernetes": {"name": "cart"}}, {"service": {"name": "payments"}}]),
    ));
    let view = index.views(None).pop().unwrap();
    assert!(!view.rejected, "the resolvable part is in force");
    assert_eq!(view.errors.len(), 1, "{:?}", view.errors);
    assert!(
        view.errors[0].starts_with("spec.targets[1]: ") && view.errors[0].contains("payments"),
        "{:?}",
        view.errors
    );
    assert!(index.policy().server(&id("cart.shop")).is_some());

    // The Service appears, with a backend: the document compiles whole.
    index.apply(deployment("payments", "shop", json!({})));
    let service: k8s_openapi::api::core::v1::Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "payments", "namespace": "shop"},
        "spec": {"selector": {"app": "payments"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }))
    .unwrap();
    let touched = index.apply(Watched::Service(Box::new(service)));
    assert!(
        touched.servers.contains(&id("payments.shop")),
        "{touched:?}"
    );
    let view = index.views(None).pop().unwrap();
    assert!(view.errors.is_empty(), "{:?}", view.errors);
}

#[test]
fn replica_sets_of_deployments_are_not_workloads_and_pods_resolve_to_the_top_owner() {
    let mut index = synced_with(&["web"]);
    let rs: ReplicaSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d4", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d"}]},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}}},
    }))
    .unwrap();
    // The pod comes before its ReplicaSet: it resolves once the link is known.
    index.apply(pod(
        "web-5d4-x",
        "web",
        ["apps/v1", "ReplicaSet", "web-5d4"],
    ));
    index.apply(Watched::ReplicaSet(Box::new(rs)));
    assert_eq!(index.facts().workload_count(), 1, "only the Deployment");
    let pod = index.facts().pods().next().unwrap();
    assert_eq!(pod.owner, Some(id("web.shop")));
}

#[test]
fn the_workload_name_annotation_names_the_workload() {
    let mut index = synced();
    index.apply(deployment(
        "web-v2",
        "shop",
        json!({"intents.otterize.com/workload-name": "web"}),
    ));
    assert_eq!(workload_names(&index), vec!["web.shop".to_string()]);
}

#[test]
fn a_relist_forgets_what_was_deleted_meanwhile() {
    let mut index = synced_with(&["web", "cart"]);
    let present: HashSet<ObjectKey> = [ObjectKey {
        stream: Stream::Deployment,
        namespace: "shop".into(),
        name: "web".into(),
    }]
    .into();
    let touched = index.resync(Stream::Deployment, &present);
    assert!(touched.servers.contains(&id("cart.shop")), "{touched:?}");
    assert_eq!(workload_names(&index), vec!["web.shop".to_string()]);
}

#[test]
fn deleting_a_document_takes_it_out_of_the_policy() {
    let mut index = synced_with(&["web", "cart"]);
    let doc = intents("web", "shop", json!([{"kubernetes": {"name": "cart"}}]));
    let key = doc.key();
    index.apply(doc);
    let touched = index.delete(&key);
    assert!(touched.servers.contains(&id("cart.shop")), "{touched:?}");
    assert!(index.policy().server(&id("cart.shop")).is_none());
    assert!(index.views(None).is_empty());
}

#[test]
fn an_invalid_document_is_reported_at_its_field_path() {
    let mut index = synced();
    index.apply(intents(
        "web",
        "shop",
        json!([{"kubernetes": {"name": "Bad Name"}}]),
    ));
    let view = index.views(None).pop().unwrap();
    assert!(view.rejected);
    assert!(
        view.errors[0].starts_with("spec.targets[0].kubernetes.name: "),
        "{:?}",
        view.errors
    );
}

#[test]
fn every_watched_kind_is_read_in_its_storage_version() {
    let crds = crate::crd::all();
    for kind in WatchedDocument::ALL {
        let crd = crds
            .iter()
            .find(|c| c.spec.group == kind.group() && c.spec.names.kind == kind.kind())
            .unwrap_or_else(|| panic!("no CRD for {kind:?}"));
        assert_eq!(crd.spec.names.plural, kind.plural(), "{kind:?}");
        let storage = crd.spec.versions.iter().find(|v| v.storage).unwrap();
        assert_eq!(storage.name, kind.version(), "{kind:?}");
    }
}

#[test]
fn a_server_declares_its_callers_with_called_by() {
    let mut index = synced();
    index.apply(deployment("probe", "infra", json!({})));
    index.apply(deployment("cart", "shop", json!({})));
    // The server names a caller that has no ClientIntents.
    let touched = index.apply(deployment(
        "web",
        "shop",
        json!({"intents.otterize.com/called-by": r#"[{"name": "probe.infra", "kind": "Deployment"}]"#}),
    ));
    assert!(touched.servers.contains(&id("web.shop")), "{touched:?}");
    let web = index.policy().server(&id("web.shop")).unwrap();
    assert!(web.client(&id("probe.infra")).is_some());
    assert!(index.views(None).is_empty(), "a stand-in has no status");

    // The caller's own ClientIntents takes the declaration in.
    index.apply(intents_in(
        "probe",
        "infra",
        json!([{"kubernetes": {"name": "cart.shop"}}]),
    ));
    assert_eq!(
        index.policy().calls(&id("probe.infra")),
        vec![id("cart.shop"), id("web.shop")]
    );
    // The annotation goes: only the ClientIntents is left.
    let touched = index.apply(deployment("web", "shop", json!({})));
    assert!(touched.servers.contains(&id("web.shop")), "{touched:?}");
    assert_eq!(
        index.policy().calls(&id("probe.infra")),
        vec![id("cart.shop")]
    );
}

#[test]
fn pods_of_jobs_of_a_cron_job_belong_to_it() {
    let mut index = synced();
    let cron: k8s_openapi::api::batch::v1::CronJob = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "shop"},
        "spec": {"schedule": "@hourly", "jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"app": "report"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}}}},
    }))
    .unwrap();
    let job: k8s_openapi::api::batch::v1::Job = serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "report-1", "namespace": "shop",
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": "report", "uid": "c"}]},
        "spec": {"template": {"metadata": {"labels": {"app": "report"}},
            "spec": {"containers": [{"name": "c", "image": "i"}], "restartPolicy": "Never"}}},
    }))
    .unwrap();
    index.apply(Watched::CronJob(Box::new(cron)));
    index.apply(Watched::Job(Box::new(job)));
    index.apply(pod("report-1-x", "report", ["batch/v1", "Job", "report-1"]));
    let kinds: Vec<String> = index.facts().workloads().map(|w| w.kind.clone()).collect();
    assert_eq!(kinds, vec!["CronJob".to_string()]);
    assert_eq!(
        index.facts().pods().next().unwrap().owner,
        Some(id("report.shop"))
    );
}

#[test]
fn a_pod_event_touches_no_unrelated_server() {
    let mut index = synced_with(&["web", "cart"]);
    index.apply(protect("cart", "shop"));
    let touched = index.apply(pod("web-1", "web", ["apps/v1", "ReplicaSet", "web-5"]));
    assert!(touched.servers.is_empty(), "{touched:?}");
}
