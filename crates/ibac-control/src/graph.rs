//! The access graph as the API serves it: the policy engine's statuses for
//! nodes and edges, with what the mapper knows about each edge (first and
//! last seen, counts by verdict, whether calls bypassed the proxies) and,
//! for an edge that would break, the ClientIntents that would declare it.

use std::collections::BTreeMap;
use std::sync::Arc;

use ibac_mapper::calls::{edge_summaries, policy_calls};
use ibac_mapper::export::{ExportOptions, export, to_yaml};
use ibac_mapper::{CallKey, CallRecord};
use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::{AccessGraph, GraphEdge, access_graph};

use crate::control::{Control, Snapshot};
use crate::enforcement::Enforcement;
pub use ibac_api::graph::{
    EdgeSource, EdgeView, GraphView, Mismatch, MismatchKind, NodeView, ObservedCounts, totals,
};

/// What the graph is drawn from: the policy in force, what the mapper knows,
/// what each proxy enforces and what it did since the policy was published.
pub struct GraphInput {
    /// The snapshot in force.
    pub snapshot: Arc<Snapshot>,
    /// Discovered calls.
    pub calls: Vec<(CallKey, CallRecord)>,
    /// Each registered workload's enforced state.
    pub enforcement: BTreeMap<WorkloadId, Enforcement>,
    /// Verdicts observed since the policy in force was published.
    pub observed: BTreeMap<CallKey, ObservedCounts>,
}

impl GraphInput {
    /// Everything the control plane knows now.
    pub fn of(c: &Control) -> Self {
        GraphInput {
            snapshot: c.snapshot(),
            calls: c.calls(None),
            enforcement: c.enforcement_states(),
            observed: c.observed(),
        }
    }

    /// A graph of policy and calls only (no enforced state known).
    pub fn policy_only(snapshot: Arc<Snapshot>, calls: Vec<(CallKey, CallRecord)>) -> Self {
        GraphInput {
            snapshot,
            calls,
            enforcement: BTreeMap::new(),
            observed: BTreeMap::new(),
        }
    }
}

fn note(state: Option<&Enforcement>) -> Option<String> {
    state.filter(|s| !s.in_force()).map(|s| {
        format!(
            "its proxy {}: the verdicts shown for it are not in force",
            s.describe(now())
        )
    })
}

/// Compares observed verdicts of one edge's calls with the policy's.
fn mismatch(
    snapshot: &Snapshot,
    observed: &[(&CallKey, &ObservedCounts)],
    server_state: Option<&Enforcement>,
) -> Option<Mismatch> {
    let mut not_blocked = 0;
    let mut blocked = 0;
    let mut older = 0;
    for (key, counts) in observed {
        let verdict = snapshot
            .policy
            .decide(Some(&key.client), &key.server, &key.request())
            .verdict;
        if verdict == Verdict::Blocked && counts.let_through() > 0 {
            not_blocked += counts.let_through();
            older += counts.under_older_revision;
        } else if verdict != Verdict::Blocked && counts.blocked > 0 {
            blocked += counts.blocked;
        }
    }
    let why = match server_state {
        Some(state) if !state.in_force() => {
            format!("; the server's proxy {}", state.describe(now()))
        }
        _ if older > 0 => "; its proxy decided them under an older revision".to_string(),
        _ => String::new(),
    };
    if not_blocked > 0 {
        return Some(Mismatch {
            kind: MismatchKind::NotBlocked,
            calls: not_blocked,
            message: format!(
                "{not_blocked} calls the policy blocks were let through since it was published: the protection is not in force{why}"
            ),
        });
    }
    (blocked > 0).then(|| Mismatch {
        kind: MismatchKind::Blocked,
        calls: blocked,
        message: format!(
            "{blocked} calls the policy lets through were refused since it was published{why}"
        ),
    })
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
pub fn graph(input: &GraphInput) -> GraphView {
    graph_view(input, &View::default())
}

/// Draws the part of the graph `view` asks for.
pub fn graph_view(input: &GraphInput, view: &View) -> GraphView {
    let snapshot = input.snapshot.as_ref();
    let calls = input.calls.as_slice();
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
    // A workload as the control plane knows it: registered or not, and what
    // its proxy enforces.
    let known = |id: &WorkloadId| {
        let state = input.enforcement.get(id);
        NodeView {
            registered: snapshot.workloads.contains_key(id),
            enforcement: state.cloned(),
            in_force: state.is_some_and(Enforcement::in_force),
            enforcement_note: note(state),
            ..NodeView::new(id.clone())
        }
    };
    let mut node_views: BTreeMap<WorkloadId, NodeView> = nodes
        .into_iter()
        .map(|n| {
            let view = NodeView {
                server: n.server,
                client: n.client,
                ..known(&n.id)
            };
            (n.id, view)
        })
        .collect();
    for id in snapshot.workloads.keys().filter(|id| keep(id)) {
        node_views.entry(id.clone()).or_insert_with(|| known(id));
    }
    let mut observed_by_edge: BTreeMap<
        (&WorkloadId, &WorkloadId),
        Vec<(&CallKey, &ObservedCounts)>,
    > = BTreeMap::new();
    if view.enforcer == Enforcer::Proxy {
        for (k, counts) in &input.observed {
            observed_by_edge
                .entry((&k.client, &k.server))
                .or_default()
                .push((k, counts));
        }
    }
    let edges = edges
        .into_iter()
        .map(|edge| {
            let key = (edge.client.clone(), edge.server.clone());
            let suggestion = (edge.verdict != Verdict::Allowed)
                .then(|| by_edge.get(&(&edge.client, &edge.server)))
                .flatten()
                .and_then(|calls| to_yaml(&export(calls, &ExportOptions::default())).ok());
            let observed = observed_by_edge.get(&(&edge.client, &edge.server));
            let total = observed.map(|list| {
                let mut t = ObservedCounts::default();
                for (_, c) in list {
                    t.add(c);
                }
                t
            });
            let mismatch = observed
                .and_then(|list| mismatch(snapshot, list, input.enforcement.get(&edge.server)));
            EdgeView {
                seen: summaries.get(&key).cloned(),
                suggestion,
                observed: total,
                mismatch,
                ..EdgeView::new(edge)
            }
        })
        .collect();
    GraphView {
        revision: snapshot.revision,
        nodes: node_views.into_values().collect(),
        edges,
    }
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
