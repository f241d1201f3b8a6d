//! The cluster model takes events one at a time and keeps its indexes up to
//! date: after any sequence of applies and deletes, every lookup answers
//! what a model built at once from the objects that remain answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

use ibac_model::{Location, WorkloadId};
use ibac_render::facts::{
    ClusterFacts, ClusterObject, ClusterRef, Endpoints, PodFact, Service, ServicePort, Workload,
};
use ibac_render::labels::{Labels, of_labels};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;

const NAMESPACES: [&str; 2] = ["shop", "data"];
const APPS: [&str; 3] = ["web", "api", "db"];

fn id(name: &str, ns: &str) -> WorkloadId {
    WorkloadId::parse(&format!("{name}.{ns}")).unwrap()
}

fn workload(n: usize, ns: usize, app: usize, kind: usize) -> Workload {
    Workload {
        id: id(&format!("w{n}"), NAMESPACES[ns]),
        kind: ["Deployment", "StatefulSet"][kind].into(),
        selector: of_labels(&Labels::from([("app".to_string(), APPS[app].to_string())])),
        pod_labels: Labels::from([("app".to_string(), APPS[app].to_string())]),
        ports: Vec::new(),
        probes: Vec::new(),
        service_account: "default".into(),
        host_network: false,
        called_by: Ok(Vec::new()),
        at: Location::whole("t".into()),
    }
}

fn service(n: usize, ns: usize, app: Option<usize>, exposed: bool) -> Service {
    Service {
        id: id(&format!("s{n}"), NAMESPACES[ns]),
        selector: app.map(|a| Labels::from([("app".to_string(), APPS[a].to_string())])),
        ports: vec![ServicePort {
            name: None,
            port: 80,
            target: IntOrString::Int(8080),
            protocol: "TCP".into(),
        }],
        exposed,
        at: Location::whole("t".into()),
    }
}

/// A watch event; a few hundred a case, so their size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
enum Event {
    Apply(ClusterObject),
    Delete(ClusterRef),
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..4usize, 0..2usize, 0..3usize, 0..2usize).prop_map(|(n, ns, app, kind)| Event::Apply(
            ClusterObject::Workload(workload(n, ns, app, kind))
        )),
        (0..4usize, 0..2usize, 0..2usize).prop_map(|(n, ns, kind)| Event::Delete(
            ClusterRef::Workload {
                id: id(&format!("w{n}"), NAMESPACES[ns]),
                kind: ["Deployment", "StatefulSet"][kind].into(),
            }
        )),
        (
            0..3usize,
            0..2usize,
            prop::option::of(0..3usize),
            any::<bool>()
        )
            .prop_map(|(n, ns, app, exposed)| Event::Apply(ClusterObject::Service(
                service(n, ns, app, exposed)
            ))),
        (0..3usize, 0..2usize).prop_map(|(n, ns)| Event::Delete(ClusterRef::Service(id(
            &format!("s{n}"),
            NAMESPACES[ns]
        )))),
        (0..4usize, 0..2usize, 0..4usize).prop_map(|(p, ns, owner)| Event::Apply(
            ClusterObject::Pod(PodFact {
                namespace: NAMESPACES[ns].into(),
                name: format!("p{p}"),
                labels: Labels::new(),
                owner: Some(id(&format!("w{owner}"), NAMESPACES[ns])),
            })
        )),
        (0..4usize, 0..2usize).prop_map(|(p, ns)| Event::Delete(ClusterRef::Pod {
            namespace: NAMESPACES[ns].into(),
            name: format!("p{p}"),
        })),
        (
            0..3usize,
            0..2usize,
            prop::collection::btree_set(0..4usize, 0..3)
        )
            .prop_map(|(n, ns, pods)| {
                Event::Apply(ClusterObject::Endpoints {
                    service: id(&format!("s{n}"), NAMESPACES[ns]),
                    endpoints: Endpoints {
                        pods: pods
                            .into_iter()
                            .map(|p| (NAMESPACES[ns].to_string(), format!("p{p}")))
                            .collect(),
                        ..Endpoints::default()
                    },
                })
            }),
    ]
}

/// Everything a renderer asks the model, as text to compare.
fn answers(facts: &ClusterFacts) -> Vec<String> {
    let mut out = Vec::new();
    for s in facts.services().values() {
        let backends: BTreeSet<String> = facts
            .backends(s)
            .iter()
            .map(|w| format!("{} {}", w.id, w.kind))
            .collect();
        out.push(format!("{} -> {backends:?}", s.id));
    }
    for w in facts.workloads() {
        let overlaps: BTreeSet<String> = facts
            .overlaps(w)
            .iter()
            .map(|o| format!("{} {}", o.id, o.kind))
            .collect();
        let exposing: BTreeSet<String> =
            facts.exposing(w).iter().map(|s| s.id.to_string()).collect();
        let named = facts.workloads_named(&w.id).count();
        out.push(format!(
            "{} {}: overlaps {overlaps:?}, exposed by {exposing:?}, {named} named",
            w.id, w.kind
        ));
    }
    out
}

/// The same objects, applied at once in a fixed order to a new model.
fn rebuilt(facts: &ClusterFacts) -> ClusterFacts {
    let mut fresh = ClusterFacts::default();
    for w in facts.workloads() {
        fresh.apply(ClusterObject::Workload(w.clone()));
    }
    for p in facts.pods() {
        fresh.apply(ClusterObject::Pod(p.clone()));
    }
    for (service, endpoints) in facts.endpoints() {
        fresh.apply(ClusterObject::Endpoints {
            service: service.clone(),
            endpoints: endpoints.clone(),
        });
    }
    for s in facts.services().values() {
        fresh.apply(ClusterObject::Service(s.clone()));
    }
    fresh
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn incremental_lookups_equal_a_model_built_at_once(events in prop::collection::vec(event(), 0..40)) {
        let mut facts = ClusterFacts::default();
        for e in events {
            match e {
                Event::Apply(o) => { facts.apply(o); }
                Event::Delete(r) => { facts.delete(&r); }
            }
        }
        prop_assert_eq!(answers(&facts), answers(&rebuilt(&facts)));
    }
}

/// Each event says what it changed: a new workload changes the Services
/// that select it, and an unchanged object changes nothing.
#[test]
fn events_say_what_they_changed() {
    let mut facts = ClusterFacts::default();
    let change = facts.apply(ClusterObject::Service(service(0, 0, Some(0), true)));
    assert!(change.services.contains(&id("s0", "shop")));
    let change = facts.apply(ClusterObject::Workload(workload(0, 0, 0, 0)));
    assert_eq!(change.workloads, [id("w0", "shop")].into_iter().collect());
    assert_eq!(
        change.services,
        [id("s0", "shop")].into_iter().collect(),
        "s0 now selects w0"
    );
    let change = facts.apply(ClusterObject::Workload(workload(0, 0, 0, 0)));
    assert_eq!(
        change,
        Default::default(),
        "the same object again changes nothing"
    );
    let w0 = facts.workloads().next().unwrap().clone();
    assert_eq!(facts.exposing(&w0).len(), 1);
    let change = facts.delete(&ClusterRef::Service(id("s0", "shop")));
    assert!(change.services.contains(&id("s0", "shop")));
    assert!(
        facts.exposing(&w0).is_empty(),
        "no stale exposure left behind"
    );
    let other = facts.apply(ClusterObject::Workload(workload(1, 1, 0, 0)));
    assert!(
        other.services.is_empty(),
        "another namespace's workload changes no Service here"
    );
}
