//! The access graph: the current policy applied to discovered calls and to
//! declared intents, as statuses of nodes (workloads) and edges (client →
//! server), in the terms the seed tutorial uses.

use std::collections::BTreeMap;

use ibac_model::WorkloadId;
use serde::{Deserialize, Serialize};

use crate::decide::Verdict;
use crate::policy::Policy;
use crate::request::Request;

/// A call the network mapper observed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiscoveredCall {
    /// The caller.
    pub client: WorkloadId,
    /// The server.
    pub server: WorkloadId,
    /// What was called.
    pub request: Request,
    /// How many times.
    pub count: u64,
}

/// How a server treats its clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Blocking {
    /// Every call towards it is allowed.
    NotBlocking,
    /// Some calls would be blocked once it is protected.
    WouldBlock,
    /// Some calls are blocked now.
    Blocking,
}

/// How a client's calls fare.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientStatus {
    /// Every call is allowed.
    AllAllowed,
    /// Some calls would be blocked if their servers were protected.
    SomeWouldBeBlocked,
    /// Some calls are blocked now.
    SomeBlocked,
}

impl ClientStatus {
    /// `all-allowed`, `some-would-be-blocked` or `some-blocked`, as it is
    /// written on the wire (the picture's `data-client` carries it too).
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::AllAllowed => "all-allowed",
            ClientStatus::SomeWouldBeBlocked => "some-would-be-blocked",
            ClientStatus::SomeBlocked => "some-blocked",
        }
    }
}

/// A workload's status as a server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerStatus {
    /// Whether enforcement is on.
    pub protected: bool,
    /// Why (or why not), in words.
    pub protection: String,
    /// How it treats its clients.
    pub blocking: Blocking,
}

/// One workload.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphNode {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// Its status as a server, when something calls it or it is protected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerStatus>,
    /// Its status as a client, when it calls something.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<ClientStatus>,
}

/// A discovered call kind on an edge, with its verdict.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallStatus {
    /// The request, in words.
    pub request: String,
    /// Its verdict now.
    pub verdict: Verdict,
    /// How many times it was seen.
    pub count: u64,
}

/// Calls from one client to one server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GraphEdge {
    /// The caller.
    pub client: WorkloadId,
    /// The server.
    pub server: WorkloadId,
    /// The worst verdict of its calls; `allowed` for a declared edge not seen.
    pub verdict: Verdict,
    /// Whether the mapper saw such calls.
    pub discovered: bool,
    /// Whether intents declare it.
    pub declared: bool,
    /// The intents that declare it, described with their places.
    pub intents: Vec<String>,
    /// The discovered calls, with their verdicts.
    pub calls: Vec<CallStatus>,
}

impl GraphEdge {
    /// An edge from `client` to `server` that nothing is known of yet:
    /// neither discovered nor declared, and allowed until a call says
    /// otherwise.
    pub fn new(client: &WorkloadId, server: &WorkloadId) -> Self {
        GraphEdge {
            client: client.clone(),
            server: server.clone(),
            verdict: Verdict::Allowed,
            discovered: false,
            declared: false,
            intents: Vec::new(),
            calls: Vec::new(),
        }
    }
}

/// Every workload and call the policy and the mapper know of.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessGraph {
    /// Workloads, sorted by id.
    pub nodes: Vec<GraphNode>,
    /// Edges, sorted by client then server.
    pub edges: Vec<GraphEdge>,
}

/// Applies `policy` to declared intents and discovered calls.
pub fn access_graph(policy: &Policy, discovered: &[DiscoveredCall]) -> AccessGraph {
    let mut graph_edges: BTreeMap<(WorkloadId, WorkloadId), GraphEdge> = BTreeMap::new();
    for server in policy.servers() {
        let Some(sp) = policy.server(&server) else {
            continue;
        };
        for (client, rules) in sp.clients() {
            let e = graph_edges
                .entry((client.clone(), server.clone()))
                .or_insert_with(|| GraphEdge::new(client, &server));
            e.declared = true;
            e.intents = rules
                .intents()
                .iter()
                .map(|i| format!("{} ({})", i.describe(), i.at))
                .collect();
        }
    }
    for call in discovered {
        let e = graph_edges
            .entry((call.client.clone(), call.server.clone()))
            .or_insert_with(|| GraphEdge::new(&call.client, &call.server));
        e.discovered = true;
        let verdict = policy
            .decide(Some(&call.client), &call.server, &call.request)
            .verdict;
        e.verdict = e.verdict.max(verdict);
        e.calls.push(CallStatus {
            request: call.request.to_string(),
            verdict,
            count: call.count,
        });
    }
    let mut nodes: BTreeMap<WorkloadId, GraphNode> = BTreeMap::new();
    for server in policy.servers() {
        let protection = policy.protection(&server);
        node(&mut nodes, &server).server = Some(ServerStatus {
            protected: protection.is_protected(),
            protection: protection.to_string(),
            blocking: Blocking::NotBlocking,
        });
    }
    for e in graph_edges.values() {
        let blocking = match e.verdict {
            Verdict::Allowed => Blocking::NotBlocking,
            Verdict::WouldBeBlocked => Blocking::WouldBlock,
            Verdict::Blocked => Blocking::Blocking,
        };
        let client_status = match e.verdict {
            Verdict::Allowed => ClientStatus::AllAllowed,
            Verdict::WouldBeBlocked => ClientStatus::SomeWouldBeBlocked,
            Verdict::Blocked => ClientStatus::SomeBlocked,
        };
        let protection = policy.protection(&e.server);
        let server = node(&mut nodes, &e.server)
            .server
            .get_or_insert_with(|| ServerStatus {
                protected: protection.is_protected(),
                protection: protection.to_string(),
                blocking: Blocking::NotBlocking,
            });
        server.blocking = server.blocking.max(blocking);
        let client = node(&mut nodes, &e.client);
        client.client = Some(
            client
                .client
                .map_or(client_status, |c| c.max(client_status)),
        );
    }
    AccessGraph {
        nodes: nodes.into_values().collect(),
        edges: graph_edges.into_values().collect(),
    }
}

fn node<'a>(nodes: &'a mut BTreeMap<WorkloadId, GraphNode>, id: &WorkloadId) -> &'a mut GraphNode {
    nodes.entry(id.clone()).or_insert_with(|| GraphNode {
        id: id.clone(),
        server: None,
        client: None,
    })
}
