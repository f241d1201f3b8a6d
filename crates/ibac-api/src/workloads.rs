//! Workloads, protection, the mode, tokens and the audit log.

use std::net::SocketAddr;

use ibac_model::Mode;
use serde::{Deserialize, Serialize};

use crate::enforcement::Enforcement;

/// A request to register a workload.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Registration {
    /// `name.namespace`.
    pub id: String,
    /// Where its proxy listens, if known.
    pub address: Option<SocketAddr>,
    /// Its app's port on this host.
    pub app_port: Option<u16>,
    /// The port intents name.
    pub port: Option<u16>,
    /// How long the join token stays valid (default 15 minutes).
    pub token_ttl_seconds: Option<u64>,
}

/// What a workload registration returns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registered {
    /// The workload.
    pub id: String,
    /// Its one-time join token.
    pub token: String,
}

/// A registered workload, as `get workloads` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadInfo {
    /// `name.namespace`.
    pub id: String,
    /// Where its proxy listens.
    pub address: Option<SocketAddr>,
    /// Its app's port on this host.
    pub app_port: Option<u16>,
    /// Whether it is protected.
    pub protected: bool,
    /// Unix seconds of its proxy's last call to the control plane.
    pub last_contact: Option<i64>,
    /// What its proxy enforces, against the revision published now.
    pub enforcement: Enforcement,
}

/// The body of `POST /v1/protect` and `POST /v1/unprotect`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProtectRequest {
    /// `name.namespace`.
    pub workload: String,
    /// Check only (unprotect).
    #[serde(default)]
    pub dry_run: bool,
}

/// The body of `PUT /v1/mode`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeRequest {
    /// The mode.
    pub mode: Mode,
}

/// The body of `POST /v1/tokens`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// Who will hold it.
    pub name: String,
    /// The namespaces it may change; none: an admin token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Vec<String>>,
}

/// What `POST /v1/tokens` returns, once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    /// The secret.
    pub token: String,
}

/// One audit record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Its number, increasing.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    /// Who.
    pub actor: String,
    /// What: `apply`, `delete`, `workload-add`, …
    pub action: String,
    /// On what.
    pub target: String,
    /// More, in words.
    pub detail: String,
}
