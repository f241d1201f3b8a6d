//! The upstream Kubernetes NetworkPolicy conformance truth tables
//! (test/e2e/network/netpol), ported to check the reference evaluator that the
//! agreement tests trust. Namespaces x, y, z; pods a, b, c labelled
//! `pod=<name>`, serving 80 and 81 over TCP and UDP on ports named
//! `serve-<port>-<proto>`. Reachability defaults to allowed; loopback is ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::{Value, json};
use support::{Labels, Pod, allowed};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn namespaces() -> BTreeMap<String, Labels> {
    NAMESPACES
        .iter()
        .map(|ns| {
            (
                ns.to_string(),
                Labels::from([("kubernetes.io/metadata.name".to_string(), ns.to_string())]),
            )
        })
        .collect()
}

fn pods() -> Vec<Pod> {
    let mut out = Vec::new();
    for ns in NAMESPACES {
        for name in PODS {
            let mut ports = Vec::new();
            for port in [80u16, 81] {
                for proto in ["TCP", "UDP"] {
                    ports.push((
                        format!("serve-{port}-{}", proto.to_lowercase()),
                        port,
                        proto.to_string(),
                    ));
                }
            }
            out.push(Pod {
                namespace: ns.into(),
                name: name.into(),
                labels: Labels::from([("pod".to_string(), name.to_string())]),
                ports,
            });
        }
    }
    out
}

fn policy(ns: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "p", "namespace": ns},
        "spec": spec,
    }))
    .unwrap()
}

fn id(p: &Pod) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// `*`, `x/*` or `x/a`.
fn matches(pattern: &str, pod: &str) -> bool {
    pattern == "*"
        || pattern == pod
        || pattern
            .strip_suffix("/*")
            .is_some_and(|ns| pod.starts_with(&format!("{ns}/")))
}

/// The blocked (from, to) pairs: those matching `blocked` and not `except`.
fn expected(blocked: &[(&str, &str)], except: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    let all: Vec<String> = pods().iter().map(id).collect();
    let mut out = BTreeSet::new();
    for from in &all {
        for to in &all {
            if from == to {
                continue;
            }
            let hit = |list: &[(&str, &str)]| {
                list.iter().any(|(f, t)| matches(f, from) && matches(t, to))
            };
            if hit(blocked) && !hit(except) {
                out.insert((from.clone(), to.clone()));
            }
        }
    }
    out
}

fn probe(policies: &[NetworkPolicy], port: u16, protocol: &str) -> BTreeSet<(String, String)> {
    let ns = namespaces();
    let pods = pods();
    let mut blocked = BTreeSet::new();
    for from in &pods {
        for to in &pods {
            if id(from) != id(to) && !allowed(policies, &ns, from, to, port, protocol) {
                blocked.insert((id(from), id(to)));
            }
        }
    }
    blocked
}

/// The spec of a policy letting namespace `y` reach `x/a` on one TCP port.
fn ns_y_on(port: Value) -> Value {
    json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
        "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}],
        "ports": [{"port": port, "protocol": "TCP"}]
    }]})
}

/// One probe of a case: (port, protocol, blocked, except), the pairs found
/// blocked being those `blocked` matches and `except` does not.
type Probe = (u16, &'static str, Pairs, Pairs);
type Pairs = &'static [(&'static str, &'static str)];

/// The cases of one policy in namespace `x`, each named after the upstream
/// case it ports: they differ only in the spec and what the probes find, so
/// they are rows of one table rather than tests spelled out alike.
fn one_policy_cases() -> Vec<(&'static str, Value, Vec<Probe>)> {
    let a = json!({"matchLabels": {"pod": "a"}});
    let not_in_x = json!({"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]});
    vec![
        (
            "default_deny_ingress",
            json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}),
            vec![(80, "TCP", &[("*", "x/*")], &[])],
        ),
        (
            "default_deny_all",
            json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
            vec![(80, "TCP", &[("*", "x/*"), ("x/*", "*")], &[])],
        ),
        (
            "allow_from_a_pod_selector",
            json!({"podSelector": a, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
            vec![(80, "TCP", &[("*", "x/a")], &[("x/b", "x/a")])],
        ),
        (
            "an_empty_namespace_selector_is_every_namespace",
            json!({"podSelector": a, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
            vec![(80, "TCP", &[], &[])],
        ),
        (
            "namespace_selector_alone",
            json!({"podSelector": a, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}),
            vec![(80, "TCP", &[("x/*", "x/a"), ("z/*", "x/a")], &[])],
        ),
        (
            "peers_are_ored",
            json!({"podSelector": a, "ingress": [{"from": [
                {"namespaceSelector": not_in_x},
                {"podSelector": {"matchLabels": {"pod": "b"}}}
            ]}]}),
            vec![(80, "TCP", &[("x/c", "x/a")], &[])],
        ),
        (
            "selectors_in_one_peer_are_anded",
            json!({"podSelector": a, "ingress": [{"from": [
                {"namespaceSelector": not_in_x, "podSelector": {"matchLabels": {"pod": "b"}}}
            ]}]}),
            vec![(
                80,
                "TCP",
                &[("*", "x/a")],
                &[("y/b", "x/a"), ("z/b", "x/a")],
            )],
        ),
        (
            "and_with_match_expressions",
            json!({"podSelector": a, "ingress": [{"from": [
                {"namespaceSelector": not_in_x,
                 "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]}}
            ]}]}),
            vec![(
                80,
                "TCP",
                &[("*", "x/a")],
                &[
                    ("y/b", "x/a"),
                    ("y/c", "x/a"),
                    ("z/b", "x/a"),
                    ("z/c", "x/a"),
                ],
            )],
        ),
        (
            "namespace_and_pod_exactly",
            json!({"podSelector": a, "ingress": [{"from": [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}, "podSelector": a}
            ]}]}),
            vec![(80, "TCP", &[("*", "x/a")], &[("y/a", "x/a")])],
        ),
        (
            "an_empty_rule_allows_everything",
            json!({"podSelector": {}, "ingress": [{}]}),
            vec![(80, "TCP", &[], &[]), (81, "TCP", &[], &[])],
        ),
        (
            "named_ports_on_ingress",
            json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
            vec![(81, "TCP", &[], &[]), (80, "TCP", &[("*", "x/*")], &[])],
        ),
        (
            "named_ports_on_ingress, from namespace y",
            ns_y_on(json!("serve-80-tcp")),
            vec![
                (80, "TCP", &[("x/*", "x/a"), ("z/*", "x/a")], &[]),
                (81, "TCP", &[("*", "x/a")], &[]),
            ],
        ),
        (
            "named_ports_on_egress",
            json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
            vec![(80, "TCP", &[], &[]), (81, "TCP", &[("x/*", "*")], &[])],
        ),
        (
            "deny_all_egress_of_one_pod",
            json!({"podSelector": a, "policyTypes": ["Egress"], "egress": []}),
            vec![(80, "TCP", &[("x/a", "*")], &[])],
        ),
        (
            "ingress_and_egress_together",
            json!({
                "podSelector": a,
                "policyTypes": ["Egress", "Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
                "egress": [{"ports": [{"port": 80}]}]
            }),
            vec![
                (80, "TCP", &[("*", "x/a")], &[("x/b", "x/a")]),
                (81, "TCP", &[("*", "x/a"), ("x/a", "*")], &[("x/b", "x/a")]),
            ],
        ),
        (
            "a_protocol_only_port_matches_every_port_of_that_protocol",
            json!({"podSelector": a, "ingress": [{"ports": [{"protocol": "TCP"}]}]}),
            vec![(80, "TCP", &[], &[]), (80, "UDP", &[("*", "x/a")], &[])],
        ),
        (
            "a_rule_for_another_protocol_isolates_tcp",
            json!({"podSelector": a, "ingress": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]}),
            vec![(81, "TCP", &[("*", "x/a")], &[])],
        ),
        (
            "a_pod_selector_alone_means_the_policys_namespace",
            json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
            vec![(80, "TCP", &[("y/*", "x/*"), ("z/*", "x/*")], &[])],
        ),
        (
            "egress_to_namespaces_not_in_a_set",
            json!({"podSelector": a, "policyTypes": ["Egress"], "egress": [{"to": [
                {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["y"]}]}}
            ]}]}),
            vec![(80, "TCP", &[("x/a", "y/*")], &[])],
        ),
        // Without policyTypes, Ingress is always a type: no ingress rules isolate too.
        (
            "egress_rules_without_types_infer_egress",
            json!({"podSelector": a, "egress": [{"ports": [{"port": 81}]}]}),
            vec![(80, "TCP", &[("x/a", "*"), ("*", "x/a")], &[])],
        ),
        (
            "but_an_empty_egress_list_does_not",
            json!({"podSelector": a, "ingress": [{}], "egress": []}),
            vec![(80, "TCP", &[], &[])],
        ),
    ]
}

#[test]
fn one_policy_in_a_namespace() {
    for (name, spec, probes) in one_policy_cases() {
        let p = policy("x", spec);
        for (port, protocol, blocked, except) in probes {
            assert_eq!(
                probe(std::slice::from_ref(&p), port, protocol),
                expected(blocked, except),
                "{name}, {port}/{protocol}"
            );
        }
    }
}

#[test]
fn deny_namespace_then_allow_all_to_one_pod() {
    let deny = policy("x", json!({"podSelector": {}, "ingress": []}));
    let allow = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {}, "namespaceSelector": {}}]}]}),
    );
    assert_eq!(
        probe(&[deny, allow], 80, "TCP"),
        expected(&[("*", "x/b"), ("*", "x/c")], &[])
    );
}

#[test]
fn numeric_ports_and_stacked_policies() {
    let p81 = policy("x", ns_y_on(json!(81)));
    assert_eq!(
        probe(std::slice::from_ref(&p81), 81, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
    assert_eq!(
        probe(std::slice::from_ref(&p81), 80, "TCP"),
        expected(&[("*", "x/a")], &[])
    );
    let p80 = policy("x", ns_y_on(json!(80)));
    assert_eq!(
        probe(&[p81, p80], 80, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
}

#[test]
fn egress_of_the_client_and_ingress_of_the_server_must_both_allow() {
    let egress = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [{"to": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}, "podSelector": {"matchLabels": {"pod": "a"}}}
        ]}]}),
    );
    let from_xa = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "x"}}, "podSelector": {"matchLabels": {"pod": "a"}}}]);
    let ya = policy(
        "y",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": from_xa.clone()}]}),
    );
    let mut yb = policy(
        "y",
        json!({"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{"from": from_xa}]}),
    );
    yb.metadata.name = Some("q".into());
    assert_eq!(
        probe(&[egress, ya, yb], 80, "TCP"),
        expected(
            &[("x/a", "*"), ("*", "y/a"), ("*", "y/b")],
            &[("x/a", "y/a")]
        )
    );
}

#[test]
fn policies_add_up() {
    let only80 = policy(
        "x",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}),
    );
    assert_eq!(
        probe(std::slice::from_ref(&only80), 81, "TCP"),
        expected(&[("*", "x/*")], &[])
    );
    let mut all = policy("x", json!({"podSelector": {}, "ingress": [{}]}));
    all.metadata.name = Some("q".into());
    assert_eq!(probe(&[only80, all], 81, "TCP"), expected(&[], &[]));
}
