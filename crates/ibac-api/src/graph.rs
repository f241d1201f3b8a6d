//! The access graph as the API serves it: the policy's verdicts for every
//! workload and call, what the mapper knows of each call, what each proxy
//! enforces and what it did since the policy in force was published.

use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::{ClientStatus, GraphEdge, ServerStatus};
use serde::{Deserialize, Serialize};

use crate::enforcement::Enforcement;

/// How many calls got each verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerdictCounts {
    /// Allowed by an intent.
    pub allowed: u64,
    /// Passed in shadow mode; would be blocked once the server is protected.
    pub would_be_blocked: u64,
    /// Blocked.
    pub blocked: u64,
    /// Seen by a socket scan: no proxy decided them.
    pub unchecked: u64,
}

impl VerdictCounts {
    /// Counts `count` calls with `verdict` (none: seen by a socket scan,
    /// decided by no proxy).
    pub fn add(&mut self, verdict: Option<Verdict>, count: u64) {
        let slot = match verdict {
            Some(Verdict::Allowed) => &mut self.allowed,
            Some(Verdict::WouldBeBlocked) => &mut self.would_be_blocked,
            Some(Verdict::Blocked) => &mut self.blocked,
            None => &mut self.unchecked,
        };
        *slot = slot.saturating_add(count);
    }

    /// Adds another set of counts.
    pub fn merge(&mut self, other: &VerdictCounts) {
        self.allowed = self.allowed.saturating_add(other.allowed);
        self.would_be_blocked = self.would_be_blocked.saturating_add(other.would_be_blocked);
        self.blocked = self.blocked.saturating_add(other.blocked);
        self.unchecked = self.unchecked.saturating_add(other.unchecked);
    }
}

/// What is known about calls: of one kind (the mapper's record of a call),
/// or all from one client to one server (their sum, see
/// [`EdgeSummary::merge`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeSummary {
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds.
    pub last_seen: i64,
    /// How many calls.
    pub count: u64,
    /// How many of each verdict.
    pub verdicts: VerdictCounts,
    /// Whether a proxy reported calls.
    pub by_proxy: bool,
    /// Whether a socket scan saw connections no proxy carried.
    pub by_socket_scan: bool,
}

impl EdgeSummary {
    /// Adds `other`'s calls: the earliest first and latest last sighting,
    /// counts summed, and who saw them.
    pub fn merge(&mut self, other: &EdgeSummary) {
        self.first_seen = self.first_seen.min(other.first_seen);
        self.last_seen = self.last_seen.max(other.last_seen);
        self.count = self.count.saturating_add(other.count);
        self.verdicts.merge(&other.verdicts);
        self.by_proxy |= other.by_proxy;
        self.by_socket_scan |= other.by_socket_scan;
    }
}

/// Verdicts observed for one kind of call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObservedCounts {
    /// Requests or connections let through and allowed.
    pub allowed: u64,
    /// Let through, reported as would-be-blocked.
    pub would_be_blocked: u64,
    /// Refused.
    pub blocked: u64,
    /// Of all these, how many were decided under an older revision than the
    /// one in force.
    pub under_older_revision: u64,
}

impl ObservedCounts {
    /// Calls that got through (allowed or would-be-blocked).
    pub fn let_through(&self) -> u64 {
        self.allowed + self.would_be_blocked
    }

    /// Adds another's counts.
    pub fn add(&mut self, other: &ObservedCounts) {
        self.allowed += other.allowed;
        self.would_be_blocked += other.would_be_blocked;
        self.blocked += other.blocked;
        self.under_older_revision += other.under_older_revision;
    }
}

/// A workload in the graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
    /// For a registered workload: what its proxy enforces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement: Option<Enforcement>,
    /// Whether its proxy enforces the published policy, so the verdicts
    /// shown for it as a server are in force: false when the proxy is
    /// behind, failing or silent, and when no ibac proxy is registered for it.
    pub in_force: bool,
    /// For a registered workload whose proxy does not enforce the published
    /// policy: why, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforcement_note: Option<String>,
}

impl NodeView {
    /// A workload known by its id alone: unregistered, with no status as a
    /// server or client and no proxy, so nothing shown for it is in force.
    /// Whoever knows more says so with struct update syntax.
    pub fn new(id: WorkloadId) -> Self {
        NodeView {
            name: id.name().to_string(),
            namespace: id.namespace().to_string(),
            id,
            registered: false,
            server: None,
            client: None,
            enforcement: None,
            in_force: false,
            enforcement_note: None,
        }
    }
}

/// Calls from one client to one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeView {
    /// The policy engine's view.
    #[serde(flatten)]
    pub edge: GraphEdge,
    /// `discovered`, `declared`, or both.
    pub sources: Vec<EdgeSource>,
    /// What the mapper knows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seen: Option<EdgeSummary>,
    /// For an edge no intent allows: the ClientIntents that would.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<String>,
    /// Verdicts the server's proxy gave since the policy in force was
    /// published (ibac proxy view only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed: Option<ObservedCounts>,
    /// Where what was observed disagrees with what the policy decides.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mismatch: Option<Mismatch>,
}

impl EdgeView {
    /// The policy engine's view of an edge, with its sources read from it
    /// and nothing known yet of what the mapper saw or the proxies did.
    pub fn new(edge: GraphEdge) -> Self {
        let sources = [
            (edge.discovered, EdgeSource::Discovered),
            (edge.declared, EdgeSource::Declared),
        ]
        .into_iter()
        .filter_map(|(known, source)| known.then_some(source))
        .collect();
        EdgeView {
            edge,
            sources,
            seen: None,
            suggestion: None,
            observed: None,
            mismatch: None,
        }
    }
}

/// How observed verdicts disagree with the policy's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum MismatchKind {
    /// Calls the policy blocks got through: the protection is not in force.
    NotBlocked,
    /// Calls the policy lets through were refused: an enforcer still has an
    /// older, stricter policy.
    Blocked,
}

/// What was observed against the policy, for people.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mismatch {
    /// Which way.
    pub kind: MismatchKind,
    /// How many calls.
    pub calls: u64,
    /// One sentence.
    pub message: String,
}

/// The whole graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
        t.add(Some(e.edge.verdict), 1);
    }
    t
}

/// Where an edge is known from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeSource {
    /// The mapper saw such calls.
    Discovered,
    /// Intents declare it.
    Declared,
}

impl EdgeSource {
    /// The word tables show.
    pub fn as_str(self) -> &'static str {
        match self {
            EdgeSource::Discovered => "discovered",
            EdgeSource::Declared => "declared",
        }
    }
}
