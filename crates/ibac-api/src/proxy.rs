//! Between the control plane and its proxies: the state a proxy fetches,
//! what it enforces, and what it saw.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use ibac_model::{Namespace, ParseOptions, Protocol, SourceName, WorkloadId, parse_source};
use ibac_policy::{NoFacts, Policy, Verdict};
use serde::{Deserialize, Serialize};

/// What the control plane tells a proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProxyState {
    /// Changes whenever the documents or the workloads change.
    pub revision: u64,
    /// The documents in force, as one YAML stream.
    pub documents: String,
    /// Where each workload's proxy listens.
    pub workloads: BTreeMap<WorkloadId, SocketAddr>,
    /// How often the proxy reports what it enforces, even when nothing
    /// changed (the control plane calls a proxy silent after a few missed
    /// beats). None: [`DEFAULT_HEARTBEAT`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_seconds: Option<u64>,
}

/// How often a proxy reports what it enforces when the state says nothing.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(10);

/// What a proxy enforces, as it tells the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnforcedStatus {
    /// The revision its decisions use now; none before any policy loaded.
    pub enforced: Option<u64>,
    /// The newest revision that failed to load, if it is newer than the
    /// enforced one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed: Option<LoadFailure>,
}

/// A revision a proxy could not load, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadFailure {
    /// The revision.
    pub revision: u64,
    /// The decoder's message.
    pub error: String,
}

/// How long the control plane holds a long poll before answering unchanged.
pub const LONG_POLL: Duration = Duration::from_secs(25);

/// Which side of a call a report comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The server's proxy: the call arrived, with its caller's verified identity.
    Inbound,
    /// The client's proxy: the call left.
    Outbound,
}

impl Direction {
    /// `inbound` or `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

/// One summarized kind of call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// The proxy that saw it.
    pub reporter: WorkloadId,
    /// Which side saw it.
    pub direction: Direction,
    /// The caller; none when unauthenticated.
    pub client: Option<WorkloadId>,
    /// The server.
    pub server: WorkloadId,
    /// The server port.
    pub port: u16,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// HTTP method.
    pub method: Option<String>,
    /// Normalized HTTP path.
    pub path: Option<String>,
    /// The verdict.
    pub verdict: Verdict,
    /// How many times.
    pub count: u64,
    /// RFC 3339.
    pub first_seen: String,
    /// RFC 3339.
    pub last_seen: String,
    /// The revision of the policy that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<u64>,
}

/// The documents of a state do not load.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateError(String);

/// Builds the policy a state describes: the decoder every proxy runs, and
/// the one the control plane checks what it publishes with.
pub fn policy_of(state: &ProxyState, namespace: &Namespace) -> Result<Policy, StateError> {
    let options = ParseOptions {
        default_namespace: namespace.clone(),
        ..ParseOptions::default()
    };
    let parsed = parse_source(
        &SourceName::from("control plane"),
        &state.documents,
        &options,
    );
    if let Some(e) = parsed.errors.first() {
        return Err(StateError(e.to_string()));
    }
    let (policy, errors) = Policy::build(parsed.documents, &NoFacts);
    match errors.first() {
        Some(e) => Err(StateError(e.to_string())),
        None => Ok(policy),
    }
}
