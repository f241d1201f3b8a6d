//! A reference evaluator of NetworkPolicy semantics, written in the test suite
//! from the Kubernetes documentation of `networking.k8s.io/v1`, independent of
//! the code under test (it has its own label-selector matching).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub type Labels = BTreeMap<String, String>;

#[derive(Clone, Debug)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    pub labels: Labels,
    /// (port name, number, protocol)
    pub ports: Vec<(String, u16, String)>,
}

/// A workload of the cluster facts as a pod of the evaluator.
pub fn pod_of(w: &ibac_render::facts::Workload) -> Pod {
    Pod {
        namespace: w.id.namespace().into(),
        name: w.id.name().into(),
        labels: w.pod_labels.clone(),
        ports: w
            .ports
            .iter()
            .map(|p| {
                (
                    p.name.clone().unwrap_or_default(),
                    p.port,
                    p.protocol.clone(),
                )
            })
            .collect(),
    }
}

/// A label selector per the API docs: every matchLabels pair and every
/// requirement must hold; an empty selector selects everything.
fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    for (k, v) in selector.match_labels.iter().flatten() {
        if labels.get(k) != Some(v) {
            return false;
        }
    }
    for req in selector.match_expressions.iter().flatten() {
        let values = req.values.clone().unwrap_or_default();
        let ok = match req.operator.as_str() {
            "In" => labels
                .get(&req.key)
                .map(|v| values.contains(v))
                .unwrap_or(false),
            "NotIn" => labels
                .get(&req.key)
                .map(|v| !values.contains(v))
                .unwrap_or(true),
            "Exists" => labels.contains_key(&req.key),
            "DoesNotExist" => !labels.contains_key(&req.key),
            other => panic!("invalid operator {other}"),
        };
        if !ok {
            return false;
        }
    }
    true
}

/// Ingress is always a type; Egress only when listed, or inferred from
/// egress rules being present when no type is listed.
fn has_type(policy: &NetworkPolicy, kind: &str) -> bool {
    let spec = policy.spec.as_ref().unwrap();
    match spec.policy_types.as_ref().filter(|t| !t.is_empty()) {
        Some(types) => types.iter().any(|t| t == kind),
        None => {
            kind == "Ingress"
                || (kind == "Egress" && spec.egress.as_ref().is_some_and(|e| !e.is_empty()))
        }
    }
}

fn selects_pod(policy: &NetworkPolicy, pod: &Pod) -> bool {
    policy.metadata.namespace.as_deref() == Some(pod.namespace.as_str())
        && selects(
            &policy
                .spec
                .as_ref()
                .unwrap()
                .pod_selector
                .clone()
                .unwrap_or_default(),
            &pod.labels,
        )
}

fn peer_matches(
    peer: &NetworkPolicyPeer,
    policy_ns: &str,
    pod: &Pod,
    namespaces: &BTreeMap<String, Labels>,
) -> bool {
    if peer.ip_block.is_some() {
        // Pods in these tests have no addresses: an IP block never matches them.
        return false;
    }
    let ns_ok = match &peer.namespace_selector {
        None => pod.namespace == policy_ns,
        Some(sel) => selects(sel, &namespaces[&pod.namespace]),
    };
    let pod_ok = match &peer.pod_selector {
        None => true,
        Some(sel) => selects(sel, &pod.labels),
    };
    ns_ok && pod_ok
}

fn port_matches(rule_port: &NetworkPolicyPort, dest: &Pod, port: u16, protocol: &str) -> bool {
    if rule_port.protocol.as_deref().unwrap_or("TCP") != protocol {
        return false;
    }
    match &rule_port.port {
        None => true,
        Some(IntOrString::Int(n)) => match rule_port.end_port {
            Some(end) => i32::from(port) >= *n && i32::from(port) <= end,
            None => i32::from(port) == *n,
        },
        Some(IntOrString::String(name)) => dest
            .ports
            .iter()
            .any(|(n, p, proto)| n == name && *p == port && proto == protocol),
    }
}

fn ports_match(
    ports: Option<&Vec<NetworkPolicyPort>>,
    dest: &Pod,
    port: u16,
    protocol: &str,
) -> bool {
    match ports {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => list.iter().any(|p| port_matches(p, dest, port, protocol)),
    }
}

fn peers_match(
    peers: Option<&Vec<NetworkPolicyPeer>>,
    policy_ns: &str,
    pod: &Pod,
    namespaces: &BTreeMap<String, Labels>,
) -> bool {
    match peers {
        None => true,
        Some(list) if list.is_empty() => true,
        Some(list) => list
            .iter()
            .any(|p| peer_matches(p, policy_ns, pod, namespaces)),
    }
}

/// Whether traffic from `from` to `to` on `port`/`protocol` is allowed: the
/// destination's ingress and the source's egress must both allow it, each
/// allowing everything unless some policy of that type selects the pod.
pub fn allowed(
    policies: &[NetworkPolicy],
    namespaces: &BTreeMap<String, Labels>,
    from: &Pod,
    to: &Pod,
    port: u16,
    protocol: &str,
) -> bool {
    let ingress: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| has_type(p, "Ingress") && selects_pod(p, to))
        .collect();
    let ingress_ok = ingress.is_empty()
        || ingress.iter().any(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap();
            p.spec
                .as_ref()
                .unwrap()
                .ingress
                .iter()
                .flatten()
                .any(|rule| {
                    peers_match(rule.from.as_ref(), ns, from, namespaces)
                        && ports_match(rule.ports.as_ref(), to, port, protocol)
                })
        });
    let egress: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| has_type(p, "Egress") && selects_pod(p, from))
        .collect();
    let egress_ok = egress.is_empty()
        || egress.iter().any(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap();
            p.spec
                .as_ref()
                .unwrap()
                .egress
                .iter()
                .flatten()
                .any(|rule| {
                    peers_match(rule.to.as_ref(), ns, to, namespaces)
                        && ports_match(rule.ports.as_ref(), to, port, protocol)
                })
        });
    ingress_ok && egress_ok
}
