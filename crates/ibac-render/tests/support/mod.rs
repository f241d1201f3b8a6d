//! A reference evaluator of NetworkPolicy semantics, written in the test suite
//! from the Kubernetes documentation of `networking.k8s.io/v1`, independent of
//! the code under test (it has its own label-selector matching).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec,
};
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

/// Whether the policies of one direction (`kind`, Ingress or Egress) that
/// select `pod` let the connection through: some rule of one of them, as the
/// `(peers, ports)` pairs of [`rules_of`], matches `peer` and the
/// destination port. A pod no policy of that direction selects is not
/// isolated in it. Ingress and egress differ only in which pod is selected and
/// which one the peers must match, so one walk serves both.
fn direction_allows(
    policies: &[NetworkPolicy],
    kind: &str,
    (pod, peer): (&Pod, &Pod),
    namespaces: &BTreeMap<String, Labels>,
    (dest, port, protocol): (&Pod, u16, &str),
) -> bool {
    let selecting: Vec<&NetworkPolicy> = policies
        .iter()
        .filter(|p| has_type(p, kind) && selects_pod(p, pod))
        .collect();
    selecting.is_empty()
        || selecting.iter().any(|p| {
            let ns = p.metadata.namespace.as_deref().unwrap();
            rules_of(p.spec.as_ref().unwrap(), kind)
                .into_iter()
                .any(|(peers, ports)| {
                    peers_match(peers, ns, peer, namespaces)
                        && ports_match(ports, dest, port, protocol)
                })
        })
}

/// The rules of one direction of a spec, as (peers, ports).
type Rules<'a> = Vec<(
    Option<&'a Vec<NetworkPolicyPeer>>,
    Option<&'a Vec<NetworkPolicyPort>>,
)>;

/// The rules of the `kind` direction of a spec: ingress rules name their
/// peers `from`, egress rules `to`.
fn rules_of<'a>(spec: &'a NetworkPolicySpec, kind: &str) -> Rules<'a> {
    if kind == "Ingress" {
        let rules = spec.ingress.iter().flatten();
        rules.map(|r| (r.from.as_ref(), r.ports.as_ref())).collect()
    } else {
        let rules = spec.egress.iter().flatten();
        rules.map(|r| (r.to.as_ref(), r.ports.as_ref())).collect()
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
    let dest = (to, port, protocol);
    direction_allows(policies, "Ingress", (to, from), namespaces, dest)
        && direction_allows(policies, "Egress", (from, to), namespaces, dest)
}

/// The container the fixtures' pods run when nothing about it matters.
pub const CONTAINER: &str = "{containers: [{name: c, image: i}]}";

/// A Deployment manifest whose selector and pod template carry the same
/// `labels` (flow-map entries such as `app: web`). Most cluster fixtures are
/// Deployments differing only in these, so they are written from them rather
/// than spelled out again each time.
pub fn deployment(name: &str, namespace: &str, labels: &str, pod_spec: &str) -> String {
    workload(
        "Deployment",
        name,
        namespace,
        (labels, labels),
        Some(pod_spec),
    )
}

/// A workload manifest of `kind` with its own `(selector, pod labels)`, which
/// may differ (a selector that reaches other pods is a case to test), and a
/// pod spec, or none for a template that has only its labels.
pub fn workload(
    kind: &str,
    name: &str,
    namespace: &str,
    (selector, labels): (&str, &str),
    pod_spec: Option<&str>,
) -> String {
    let mut yaml = format!(
        "apiVersion: apps/v1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  selector: {{matchLabels: {{{selector}}}}}\n"
    );
    match pod_spec {
        Some(spec) => yaml.push_str(&format!(
            "  template:\n    metadata: {{labels: {{{labels}}}}}\n    spec: {spec}\n"
        )),
        None => yaml.push_str(&format!(
            "  template: {{metadata: {{labels: {{{labels}}}}}}}\n"
        )),
    }
    yaml
}

/// Manifests as one multi-document stream, as a cluster dump is read.
pub fn stream(manifests: &[String]) -> String {
    manifests.join("---\n")
}
