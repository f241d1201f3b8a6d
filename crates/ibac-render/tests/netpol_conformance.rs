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

#[test]
fn default_deny_ingress() {
    let p = policy(
        "x",
        json!({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}),
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[("*", "x/*")], &[]));
}

#[test]
fn default_deny_all() {
    let p = policy(
        "x",
        json!({"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("*", "x/*"), ("x/*", "*")], &[])
    );
}

#[test]
fn allow_from_a_pod_selector() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("*", "x/a")], &[("x/b", "x/a")])
    );
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
fn an_empty_namespace_selector_is_every_namespace() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {}}]}]}),
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[], &[]));
}

#[test]
fn namespace_selector_alone() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
}

#[test]
fn peers_are_ored() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]}},
            {"podSelector": {"matchLabels": {"pod": "b"}}}
        ]}]}),
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[("x/c", "x/a")], &[]));
}

#[test]
fn selectors_in_one_peer_are_anded() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]},
             "podSelector": {"matchLabels": {"pod": "b"}}}
        ]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("*", "x/a")], &[("y/b", "x/a"), ("z/b", "x/a")])
    );
}

#[test]
fn and_with_match_expressions() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["x"]}]},
             "podSelector": {"matchExpressions": [{"key": "pod", "operator": "In", "values": ["b", "c"]}]}}
        ]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(
            &[("*", "x/a")],
            &[
                ("y/b", "x/a"),
                ("y/c", "x/a"),
                ("z/b", "x/a"),
                ("z/c", "x/a")
            ]
        )
    );
}

#[test]
fn namespace_and_pod_exactly() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}, "podSelector": {"matchLabels": {"pod": "a"}}}
        ]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("*", "x/a")], &[("y/a", "x/a")])
    );
}

fn ns_y_on(port: Value) -> NetworkPolicy {
    policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{
            "from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "y"}}}],
            "ports": [{"port": port, "protocol": "TCP"}]
        }]}),
    )
}

#[test]
fn numeric_ports_and_stacked_policies() {
    let p81 = ns_y_on(json!(81));
    assert_eq!(
        probe(std::slice::from_ref(&p81), 81, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
    assert_eq!(
        probe(std::slice::from_ref(&p81), 80, "TCP"),
        expected(&[("*", "x/a")], &[])
    );
    let p80 = ns_y_on(json!(80));
    assert_eq!(
        probe(&[p81, p80], 80, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
}

#[test]
fn an_empty_rule_allows_everything() {
    let p = policy("x", json!({"podSelector": {}, "ingress": [{}]}));
    assert_eq!(
        probe(std::slice::from_ref(&p), 80, "TCP"),
        expected(&[], &[])
    );
    assert_eq!(probe(&[p], 81, "TCP"), expected(&[], &[]));
}

#[test]
fn named_ports_on_ingress() {
    let p = policy(
        "x",
        json!({"podSelector": {}, "ingress": [{"ports": [{"port": "serve-81-tcp"}]}]}),
    );
    assert_eq!(
        probe(std::slice::from_ref(&p), 81, "TCP"),
        expected(&[], &[])
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[("*", "x/*")], &[]));
    let q = ns_y_on(json!("serve-80-tcp"));
    assert_eq!(
        probe(std::slice::from_ref(&q), 80, "TCP"),
        expected(&[("x/*", "x/a"), ("z/*", "x/a")], &[])
    );
    assert_eq!(probe(&[q], 81, "TCP"), expected(&[("*", "x/a")], &[]));
}

#[test]
fn named_ports_on_egress() {
    let p = policy(
        "x",
        json!({"podSelector": {}, "policyTypes": ["Egress"], "egress": [{"ports": [{"port": "serve-80-tcp"}]}]}),
    );
    assert_eq!(
        probe(std::slice::from_ref(&p), 80, "TCP"),
        expected(&[], &[])
    );
    assert_eq!(probe(&[p], 81, "TCP"), expected(&[("x/*", "*")], &[]));
}

#[test]
fn deny_all_egress_of_one_pod() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": []}),
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[("x/a", "*")], &[]));
}

#[test]
fn ingress_and_egress_together() {
    let p = policy(
        "x",
        json!({
            "podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress", "Ingress"],
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}],
            "egress": [{"ports": [{"port": 80}]}]
        }),
    );
    assert_eq!(
        probe(std::slice::from_ref(&p), 80, "TCP"),
        expected(&[("*", "x/a")], &[("x/b", "x/a")])
    );
    assert_eq!(
        probe(&[p], 81, "TCP"),
        expected(&[("*", "x/a"), ("x/a", "*")], &[("x/b", "x/a")])
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
fn a_protocol_only_port_matches_every_port_of_that_protocol() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"protocol": "TCP"}]}]}),
    );
    assert_eq!(
        probe(std::slice::from_ref(&p), 80, "TCP"),
        expected(&[], &[])
    );
    assert_eq!(probe(&[p], 80, "UDP"), expected(&[("*", "x/a")], &[]));
}

#[test]
fn a_rule_for_another_protocol_isolates_tcp() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{"port": 80, "protocol": "SCTP"}]}]}),
    );
    assert_eq!(probe(&[p], 81, "TCP"), expected(&[("*", "x/a")], &[]));
}

#[test]
fn a_pod_selector_alone_means_the_policys_namespace() {
    let p = policy(
        "x",
        json!({"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]}),
    );
    assert_eq!(
        probe(&[p], 80, "TCP"),
        expected(&[("y/*", "x/*"), ("z/*", "x/*")], &[])
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

#[test]
fn egress_to_namespaces_not_in_a_set() {
    let p = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"], "egress": [{"to": [
            {"namespaceSelector": {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "NotIn", "values": ["y"]}]}}
        ]}]}),
    );
    assert_eq!(probe(&[p], 80, "TCP"), expected(&[("x/a", "y/*")], &[]));
}

#[test]
fn egress_rules_without_types_infer_egress_but_an_empty_list_does_not() {
    // Without policyTypes, Ingress is always a type: no ingress rules isolate too.
    let inferred = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "egress": [{"ports": [{"port": 81}]}]}),
    );
    assert_eq!(
        probe(&[inferred], 80, "TCP"),
        expected(&[("x/a", "*"), ("*", "x/a")], &[])
    );
    let empty = policy(
        "x",
        json!({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{}], "egress": []}),
    );
    assert_eq!(probe(&[empty], 80, "TCP"), expected(&[], &[]));
}
