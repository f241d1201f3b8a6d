//! The NetworkPolicies ibac writes must mean exactly what `decide()` says at
//! L4: for every (client pod, server pod, port), the reference evaluator over
//! the rendered policies allows the connection if and only if `decide()` does
//! not say `blocked`. Checked on the demo topology in three protection modes,
//! and on random topologies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;

use ibac_model::http::{Method, PathPattern};
use ibac_model::{
    CallTarget, ClientIntents, Document, EnforcementConfig, Enforcers, ExternalTraffic, Format,
    HttpRule, Location, Meta, Mode, Namespace, ParseOptions, ProtectedService, Target, TargetKind,
    WorkloadId, WorkloadRef, check_set, parse_source,
};
use ibac_policy::{Policy, Request, Verdict};
use ibac_render::facts::{
    ClusterFacts, ClusterObject, ContainerPort, FactsOptions, Service, ServicePort, Workload,
};
use ibac_render::labels::of_labels;
use ibac_render::{NetpolOptions, render_network_policies};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::prelude::*;
use support::{Labels, allowed};

fn at() -> Location {
    Location::new("t.yaml".into(), 1, 1)
}

/// The metadata of a document named and namespaced as `id`, written in
/// ibac's own format: every generated document has the same apart from that.
fn meta_of(id: &WorkloadId) -> Meta {
    Meta {
        name: id.name().into(),
        namespace: id.namespace_owned(),
        origin: at(),
        format: Format::IbacV1,
        namespace_given: true,
    }
}

fn settings(mode: Mode, enforced: &[&str]) -> Document {
    Document::EnforcementConfig(EnforcementConfig {
        meta: meta_of(&WorkloadId::parse("default.ibac-system").unwrap()),
        mode,
        enforced_namespaces: enforced
            .iter()
            .map(|n| Namespace::parse(n).unwrap())
            .collect(),
        enforcers: Enforcers::default(),
        external_traffic: ExternalTraffic::Off,
    })
}

/// Checks every (client, server, port) and returns the number of checks.
fn agree(policy: &Policy, facts: &ClusterFacts, extra_ports: &[u16]) -> usize {
    let rendered = render_network_policies(policy, facts, &NetpolOptions::default()).unwrap();
    let namespaces: BTreeMap<String, Labels> = facts.namespaces().clone();
    let pod = support::pod_of;
    let mut checks = 0;
    for client in facts.workloads() {
        for server in facts.workloads() {
            if client.id == server.id {
                continue;
            }
            let mut ports: Vec<u16> = server.ports.iter().map(|p| p.port).collect();
            ports.extend_from_slice(extra_ports);
            for port in ports {
                let by_policy = allowed(
                    &rendered.objects,
                    &namespaces,
                    &pod(client),
                    &pod(server),
                    port,
                    "TCP",
                );
                let verdict = policy
                    .decide(Some(&client.id), &server.id, &Request::l4(port))
                    .verdict;
                assert_eq!(
                    by_policy,
                    verdict != Verdict::Blocked,
                    "{} → {}:{port}: NetworkPolicies {} but decide() says {verdict}",
                    client.id,
                    server.id,
                    if by_policy { "allow" } else { "deny" }
                );
                checks += 1;
            }
        }
    }
    checks
}

fn demo_documents() -> Vec<Document> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecom-demo");
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let parsed = parse_source(
            &path.display().to_string().into(),
            &text,
            &ParseOptions::default(),
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        docs.extend(parsed.documents);
    }
    let (docs, errors) = check_set(docs);
    assert!(errors.is_empty());
    docs
}

fn demo_facts() -> ClusterFacts {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecom-cluster/cluster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    ClusterFacts::read(&[("cluster.yaml".into(), text)], &FactsOptions::default()).unwrap()
}

#[test]
fn the_demo_agrees_in_every_mode() {
    let facts = demo_facts();
    assert_eq!(facts.workload_count(), 14);
    for mode in [
        settings(Mode::DefaultShadow, &[]),
        settings(Mode::DefaultShadow, &["otterize-ecom-demo"]),
        settings(Mode::DefaultActive, &[]),
    ] {
        let mut docs = demo_documents();
        docs.push(mode);
        let (policy, errors) = Policy::build(docs, &facts);
        assert!(errors.is_empty(), "{errors:?}");
        let checks = agree(&policy, &facts, &[1, 9999]);
        assert!(checks > 300, "{checks}");
    }
}

fn workload(i: usize, ns: &str, ports: &[u16]) -> Workload {
    let labels = Labels::from([
        ("app".to_string(), format!("w{i}")),
        ("team".to_string(), "shop".to_string()),
    ]);
    Workload {
        id: WorkloadId::parse(&format!("w{i}.{ns}")).unwrap(),
        kind: "Deployment".into(),
        selector: of_labels(&Labels::from([("app".to_string(), format!("w{i}"))])),
        pod_labels: labels,
        ports: ports
            .iter()
            .map(|p| ContainerPort {
                name: Some(format!("p{p}")),
                port: *p,
                protocol: "TCP".into(),
            })
            .collect(),
        probes: Vec::new(),
        service_account: "default".into(),
        host_network: false,
        called_by: Ok(Vec::new()),
        at: at(),
    }
}

/// (server, through its Service, ports, with an HTTP rule)
type RandomTarget = (usize, bool, Vec<u16>, bool);

#[derive(Clone, Debug)]
struct Topology {
    workloads: Vec<(usize, &'static str, Vec<u16>)>,
    intents: Vec<(usize, Vec<RandomTarget>)>,
    protected: Vec<usize>,
    mode: (bool, bool),
}

fn topology() -> impl Strategy<Value = Topology> {
    (2usize..6)
        .prop_flat_map(|n| {
            let workloads = prop::collection::vec(
                (
                    prop::sample::select(vec!["a", "b"]),
                    prop::sample::subsequence(vec![80u16, 8080], 1..=2),
                ),
                n,
            );
            let target = (
                0..n,
                any::<bool>(),
                prop::sample::subsequence(vec![80u16, 8080, 9090], 0..=2),
                any::<bool>(),
            );
            let intents =
                prop::collection::vec((0..n, prop::collection::vec(target, 0..4)), 0..n + 1);
            (
                workloads,
                intents,
                prop::collection::vec(0..n, 0..3),
                (any::<bool>(), any::<bool>()),
            )
        })
        .prop_map(|(w, intents, protected, mode)| Topology {
            workloads: w
                .into_iter()
                .enumerate()
                .map(|(i, (ns, ports))| (i, ns, ports))
                .collect(),
            intents,
            protected,
            mode,
        })
}

fn build(t: &Topology) -> (ClusterFacts, Vec<Document>) {
    let mut facts = ClusterFacts::default();
    let mut ids = Vec::new();
    for (i, ns, ports) in &t.workloads {
        let w = workload(*i, ns, ports);
        facts.apply(ClusterObject::Namespace {
            name: ns.to_string(),
            labels: Labels::new(),
        });
        // Service `svc-w<i>`: port 80 → the workload's first port, by name.
        let service = Service {
            id: WorkloadId::parse(&format!("svc-w{i}.{ns}")).unwrap(),
            selector: Some(Labels::from([("app".to_string(), format!("w{i}"))])),
            ports: vec![ServicePort {
                name: Some("main".into()),
                port: 80,
                target: IntOrString::String(format!("p{}", ports[0])),
                protocol: "TCP".into(),
            }],
            exposed: false,
            at: at(),
        };
        // The Service before its workload: the model keeps its backends
        // right whatever the order of events.
        facts.apply(ClusterObject::Service(service));
        ids.push(w.id.clone());
        facts.apply(ClusterObject::Workload(w));
    }
    let id = |i: usize| ids[i].clone();
    let mut docs = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (client, targets) in &t.intents {
        if !seen.insert(*client) {
            continue;
        }
        let client_id = id(*client);
        let targets = targets
            .iter()
            .map(|(server, via_service, ports, http)| {
                let call = CallTarget {
                    id: if *via_service {
                        WorkloadId::parse(&format!(
                            "svc-{}.{}",
                            id(*server).name(),
                            id(*server).namespace()
                        ))
                        .unwrap()
                    } else {
                        id(*server)
                    },
                    kind: None,
                    ports: if *via_service {
                        ports.iter().filter(|p| **p == 80).copied().collect()
                    } else {
                        ports.clone()
                    },
                    http: if *http {
                        vec![HttpRule {
                            at: at(),
                            path: PathPattern::parse("/api/*").unwrap(),
                            methods: vec![Method::Get],
                        }]
                    } else {
                        Vec::new()
                    },
                };
                Target {
                    at: at(),
                    kind: if *via_service {
                        TargetKind::Service(call)
                    } else {
                        TargetKind::Workload(call)
                    },
                }
            })
            .collect();
        docs.push(Document::ClientIntents(ClientIntents {
            meta: meta_of(&client_id),
            workload: WorkloadRef {
                id: client_id,
                kind: None,
            },
            targets,
        }));
    }
    let mut protected = std::collections::BTreeSet::new();
    for p in &t.protected {
        if protected.insert(*p) {
            let server = id(*p);
            docs.push(Document::ProtectedService(ProtectedService {
                meta: meta_of(&server),
                workload: WorkloadRef {
                    id: server,
                    kind: None,
                },
            }));
        }
    }
    let (active, enforce_b) = t.mode;
    docs.push(settings(
        if active {
            Mode::DefaultActive
        } else {
            Mode::DefaultShadow
        },
        if enforce_b { &["b"] } else { &[] },
    ));
    (facts, docs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_topologies_agree(t in topology()) {
        let (facts, docs) = build(&t);
        let (policy, errors) = Policy::build(docs, &facts);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        agree(&policy, &facts, &[9090, 1]);
    }
}
