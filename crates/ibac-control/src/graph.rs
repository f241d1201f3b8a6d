//! The access graph as the API serves it: the policy engine's statuses for
//! nodes and edges, with what the mapper knows about each edge (first and
//! last seen, counts by verdict, whether calls bypassed the proxies) and,
//! for an edge that would break, the ClientIntents that would declare it.

use std::collections::BTreeMap;

use ibac_mapper::calls::{EdgeSummary, edge_summaries, policy_calls};
use ibac_mapper::export::{ExportOptions, export, to_yaml};
use ibac_mapper::{CallKey, CallRecord, VerdictCounts};
use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::{AccessGraph, ClientStatus, GraphEdge, ServerStatus, access_graph};
use serde::Serialize;

use crate::control::Snapshot;

/// A workload in the graph.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// The name.
    pub name: String,
    /// The namespace.
    pub namespace: String,
    /// Whether it is registered with the control plane.
    pub registered: bool,
    /// Its status as a server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerStatus>,
    /// Its status as a client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientStatus>,
}

/// Calls from one client to one server.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    /// The policy engine's view.
    #[serde(flatten)]
    pub edge: GraphEdge,
    /// `discovered`, `declared`, or both.
    pub sources: Vec<&'static str>,
    /// What the mapper knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<EdgeSummary>,
    /// For an edge no intent allows: the ClientIntents that would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
}

/// The whole graph.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphView {
    /// The store revision it was drawn from.
    pub revision: u64,
    /// Workloads, sorted.
    pub nodes: Vec<NodeView>,
    /// Edges, sorted by client then server.
    pub edges: Vec<EdgeView>,
}

/// Counts by verdict of every edge (for summaries).
pub fn totals(graph: &GraphView) -> VerdictCounts {
    let mut t = VerdictCounts::default();
    for e in &graph.edges {
        match e.edge.verdict {
            Verdict::Allowed => t.allowed += 1,
            Verdict::WouldBeBlocked => t.would_be_blocked += 1,
            Verdict::Blocked => t.blocked += 1,
        }
    }
    t
}

/// Which enforcer's view the verdicts take.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Enforcer {
    /// The ibac proxy: HTTP calls are decided on method and path.
    #[default]
    Proxy,
    /// Network policies: every call is decided on its port only, so an HTTP
    /// intent allows its whole port.
    NetworkPolicy,
}

/// What part of the graph to draw.
#[derive(Clone, Debug, Default)]
pub struct View {
    /// Keep edges with a client or server in these namespaces (empty: all).
    pub namespaces: Vec<String>,
    /// Whose verdicts.
    pub enforcer: Enforcer,
}

/// Draws the graph from the policy in force and the discovered calls.
pub fn graph(snapshot: &Snapshot, calls: &[(CallKey, CallRecord)]) -> GraphView {
    graph_view(snapshot, calls, &View::default())
}

/// Draws the part of the graph `view` asks for.
pub fn graph_view(snapshot: &Snapshot, calls: &[(CallKey, CallRecord)], view: &View) -> GraphView {
    let keep = |id: &WorkloadId| {
        view.namespaces.is_empty() || view.namespaces.iter().any(|n| n == id.namespace())
    };
    let mut decided = policy_calls(calls.iter().map(|(k, r)| (k, r)));
    if view.enforcer == Enforcer::NetworkPolicy {
        for (call, (key, _)) in decided.iter_mut().zip(calls) {
            call.request = ibac_policy::Request::l4(key.port);
        }
    }
    let AccessGraph { nodes, edges } = access_graph(&snapshot.policy, &decided);
    let edges: Vec<GraphEdge> = edges
        .into_iter()
        .filter(|e| keep(&e.client) || keep(&e.server))
        .collect();
    let shown: std::collections::BTreeSet<&WorkloadId> =
        edges.iter().flat_map(|e| [&e.client, &e.server]).collect();
    let nodes: Vec<_> = nodes
        .into_iter()
        .filter(|n| keep(&n.id) || shown.contains(&n.id))
        .collect();
    let summaries = edge_summaries(calls.iter().map(|(k, r)| (k, r)));
    let mut by_edge: BTreeMap<(&WorkloadId, &WorkloadId), Vec<(CallKey, CallRecord)>> =
        BTreeMap::new();
    for (k, r) in calls {
        by_edge
            .entry((&k.client, &k.server))
            .or_default()
            .push((k.clone(), r.clone()));
    }
    let mut node_views: BTreeMap<WorkloadId, NodeView> = nodes
        .into_iter()
        .map(|n| {
            let view = NodeView {
                name: n.id.name().to_string(),
                namespace: n.id.namespace().to_string(),
                registered: snapshot.workloads.contains_key(&n.id),
                id: n.id.clone(),
                server: n.server,
                client: n.client,
            };
            (n.id, view)
        })
        .collect();
    for id in snapshot.workloads.keys().filter(|id| keep(id)) {
        node_views.entry(id.clone()).or_insert_with(|| NodeView {
            id: id.clone(),
            name: id.name().to_string(),
            namespace: id.namespace().to_string(),
            registered: true,
            server: None,
            client: None,
        });
    }
    let edges = edges
        .into_iter()
        .map(|edge| {
            let key = (edge.client.clone(), edge.server.clone());
            let mut sources = Vec::new();
            if edge.discovered {
                sources.push("discovered");
            }
            if edge.declared {
                sources.push("declared");
            }
            let suggestion = (edge.verdict != Verdict::Allowed)
                .then(|| by_edge.get(&(&edge.client, &edge.server)))
                .flatten()
                .and_then(|calls| to_yaml(&export(calls, &ExportOptions::default())).ok());
            EdgeView {
                seen: summaries.get(&key).cloned(),
                edge,
                sources,
                suggestion,
            }
        })
        .collect();
    GraphView {
        revision: snapshot.revision,
        nodes: node_views.into_values().collect(),
        edges,
    }
}
