//! `decide()` against a deliberately slow, obvious reference evaluator that
//! reads the documents directly, on random documents and requests; and
//! incremental updates against building from scratch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ibac_model::http::{Method, PathPattern, RequestMethod, normalize};
use ibac_model::kafka::{KafkaOperation, TopicPattern};
use ibac_model::{
    CallTarget, ClientIntents, Document, EnforcementConfig, Enforcers, ExternalTraffic, Format,
    HttpRule, KafkaTarget, KafkaTopic, Location, Meta, Mode, Namespace, ProtectedService, Target,
    TargetKind, WorkloadId, WorkloadRef,
};
use ibac_policy::{NoFacts, Policy, Request, Verdict};
use proptest::prelude::*;

const NAMES: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 3] = ["x", "y", "kube-system"];
const PATTERNS: [&str; 6] = ["/api", "/api/*", "*", "/", "/a/b", "/a/*"];
const PATHS: [&str; 9] = [
    "/",
    "/api",
    "/api/",
    "/api/v1",
    "/apix",
    "/a/b",
    "/a/b/c",
    "/a",
    "/x/../api/v1",
];
const METHODS: [&str; 5] = ["GET", "HEAD", "POST", "DELETE", "PROPFIND"];
const PORTS: [u16; 3] = [80, 8080, 9090];

fn at() -> Location {
    Location::new("p.yaml".into(), 1, 1)
}

fn wid(n: usize, ns: usize) -> WorkloadId {
    WorkloadId::parse(&format!("{}.{}", NAMES[n], NAMESPACES[ns])).unwrap()
}

fn meta(name: String, ns: &str) -> Meta {
    Meta {
        name,
        namespace: Namespace::parse(ns).unwrap(),
        origin: at(),
        format: Format::IbacV1,
        namespace_given: true,
    }
}

fn workload() -> impl Strategy<Value = WorkloadId> {
    (0..NAMES.len(), 0..NAMESPACES.len()).prop_map(|(n, ns)| wid(n, ns))
}

fn methods() -> impl Strategy<Value = Vec<Method>> {
    prop::sample::subsequence(vec![Method::Get, Method::Post, Method::Delete], 0..=2)
}

fn rule() -> impl Strategy<Value = HttpRule> {
    (prop::sample::select(PATTERNS.to_vec()), methods()).prop_map(|(p, methods)| HttpRule {
        at: at(),
        path: PathPattern::parse(p).unwrap(),
        methods,
    })
}

fn target() -> impl Strategy<Value = Target> {
    prop_oneof![
        4 => (workload(), prop::sample::subsequence(PORTS.to_vec(), 0..=2), prop::collection::vec(rule(), 0..12))
            .prop_map(|(id, ports, http)| TargetKind::Workload(CallTarget { id, kind: None, ports, http })),
        1 => workload().prop_map(|server| TargetKind::Kafka(KafkaTarget {
            server,
            topics: vec![KafkaTopic { at: at(), topic: TopicPattern::Any, operations: vec![KafkaOperation::All] }],
        })),
    ]
    .prop_map(|kind| Target { at: at(), kind })
}

fn client_intents() -> impl Strategy<Value = Document> {
    (workload(), prop::collection::vec(target(), 0..5)).prop_map(|(client, targets)| {
        Document::ClientIntents(ClientIntents {
            meta: meta(client.name().to_string(), client.namespace()),
            workload: WorkloadRef {
                id: client,
                kind: None,
            },
            targets,
        })
    })
}

fn protected_service() -> impl Strategy<Value = Document> {
    workload().prop_map(|id| {
        Document::ProtectedService(ProtectedService {
            meta: meta(format!("p-{}", id.name()), id.namespace()),
            workload: WorkloadRef { id, kind: None },
        })
    })
}

fn config() -> impl Strategy<Value = Option<Document>> {
    prop::option::of(
        (
            any::<bool>(),
            prop::sample::subsequence(NAMESPACES.to_vec(), 0..=1),
        )
            .prop_map(|(active, enforced)| {
                Document::EnforcementConfig(EnforcementConfig {
                    meta: meta("default".into(), "ibac-system"),
                    mode: if active {
                        Mode::DefaultActive
                    } else {
                        Mode::DefaultShadow
                    },
                    enforced_namespaces: enforced
                        .iter()
                        .map(|n| Namespace::parse(n).unwrap())
                        .collect(),
                    enforcers: Enforcers::default(),
                    external_traffic: ExternalTraffic::default(),
                })
            }),
    )
}

/// A consistent document set: one ClientIntents per client.
fn documents() -> impl Strategy<Value = Vec<Document>> {
    (
        prop::collection::vec(client_intents(), 0..6),
        prop::collection::vec(protected_service(), 0..3),
        config(),
    )
        .prop_map(|(cis, pss, cfg)| {
            let mut seen = std::collections::HashSet::new();
            let mut docs: Vec<Document> =
                cis.into_iter().filter(|d| seen.insert(d.key())).collect();
            let mut seen = std::collections::HashSet::new();
            docs.extend(pss.into_iter().filter(|d| seen.insert(d.key())));
            docs.extend(cfg);
            docs
        })
}

#[derive(Clone, Debug)]
struct Call {
    client: Option<WorkloadId>,
    server: WorkloadId,
    port: Option<u16>,
    http: Option<(&'static str, &'static str)>,
}

fn call() -> impl Strategy<Value = Call> {
    (
        prop::option::weighted(0.9, workload()),
        workload(),
        prop::option::weighted(0.8, prop::sample::select(PORTS.to_vec())),
        prop::option::weighted(
            0.7,
            (
                prop::sample::select(METHODS.to_vec()),
                prop::sample::select(PATHS.to_vec()),
            ),
        ),
    )
        .prop_map(|(client, server, port, http)| Call {
            client,
            server,
            port,
            http,
        })
}

fn request(call: &Call) -> Request {
    Request {
        port: call.port,
        http: call.http.map(|(m, p)| ibac_policy::HttpRequest {
            method: RequestMethod::parse(m).unwrap(),
            path: normalize(p).unwrap(),
        }),
    }
}

/// The rules, read straight off the documents.
fn reference(docs: &[Document], call: &Call) -> Verdict {
    let (mut active, mut enforced) = (false, Vec::new());
    for d in docs {
        if let Document::EnforcementConfig(c) = d {
            active = c.mode == Mode::DefaultActive;
            enforced = c
                .enforced_namespaces
                .iter()
                .map(|n| n.as_str().to_string())
                .collect();
        }
    }
    let ns = call.server.namespace();
    let protected = (active && ns != "kube-system" && ns != "ibac-system")
        || enforced.iter().any(|e| e == ns)
        || docs
            .iter()
            .any(|d| matches!(d, Document::ProtectedService(p) if p.workload.id == call.server));
    let deny = if protected {
        Verdict::Blocked
    } else {
        Verdict::WouldBeBlocked
    };
    let Some(client) = &call.client else {
        return deny;
    };
    for d in docs {
        let Document::ClientIntents(ci) = d else {
            continue;
        };
        if &ci.workload.id != client {
            continue;
        }
        for t in &ci.targets {
            match &t.kind {
                TargetKind::Kafka(k) if k.server == call.server && call.http.is_none() => {
                    return Verdict::Allowed;
                }
                TargetKind::Workload(c) if c.id == call.server => {
                    let port_ok =
                        c.ports.is_empty() || call.port.is_some_and(|p| c.ports.contains(&p));
                    if !port_ok {
                        continue;
                    }
                    let Some((method, raw)) = call.http else {
                        return Verdict::Allowed;
                    };
                    if c.http.is_empty() {
                        return Verdict::Allowed;
                    }
                    let path = normalize(raw).unwrap();
                    let path = path.as_str();
                    for r in &c.http {
                        let path_ok = match &r.path {
                            PathPattern::Exact(p) => path == p,
                            PathPattern::Prefix(p) => path.starts_with(p.as_str()),
                            PathPattern::Any => true,
                        };
                        let method_ok = r.methods.is_empty()
                            || r.methods.iter().any(|m| {
                                m.as_str() == method || (method == "HEAD" && *m == Method::Get)
                            });
                        if path_ok && method_ok {
                            return Verdict::Allowed;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    deny
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decide_agrees_with_the_reference(docs in documents(), calls in prop::collection::vec(call(), 1..40)) {
        let (policy, errors) = Policy::build(docs.clone(), &NoFacts);
        prop_assert!(errors.is_empty(), "{:?}", errors);
        for call in &calls {
            let ours = policy.decide(call.client.as_ref(), &call.server, &request(call)).verdict;
            prop_assert_eq!(ours, reference(&docs, call), "{:?}", call);
        }
    }

    #[test]
    fn incremental_updates_equal_building_from_scratch(
        start in documents(),
        changes in prop::collection::vec(prop_oneof![
            client_intents().prop_map(Some),
            protected_service().prop_map(Some),
            Just(None),
        ], 1..8),
        calls in prop::collection::vec(call(), 1..30),
    ) {
        let (mut policy, _) = Policy::build(start.clone(), &NoFacts);
        let mut docs = start;
        for change in changes {
            match change {
                Some(doc) => {
                    let clash = docs.iter().any(|d| matches!((d, &doc), (Document::ClientIntents(a), Document::ClientIntents(b)) if a.workload.id == b.workload.id && d.key() != doc.key()));
                    if clash { continue; }
                    policy = policy.apply([doc.clone()], &NoFacts).unwrap();
                    docs.retain(|d| d.key() != doc.key());
                    docs.push(doc);
                }
                None => {
                    if let Some(doc) = docs.pop() {
                        policy = policy.remove(&[doc.key()]).unwrap();
                    }
                }
            }
        }
        let (fresh, _) = Policy::build(docs.clone(), &NoFacts);
        for call in &calls {
            let request = request(call);
            prop_assert_eq!(
                policy.decide(call.client.as_ref(), &call.server, &request).verdict,
                fresh.decide(call.client.as_ref(), &call.server, &request).verdict,
                "{:?}", call
            );
            prop_assert_eq!(
                policy.decide(call.client.as_ref(), &call.server, &request).verdict,
                reference(&docs, call)
            );
        }
    }
}
