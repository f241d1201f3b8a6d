//! A readable account of a policy, server by server: whether it is protected
//! and why, who may call it and with what. The CLI prints it as a table, JSON
//! or YAML.

use serde::Serialize;

use ibac_model::{Mode, Target, TargetKind, WorkloadId};

use crate::decide::Protection;
use crate::policy::Policy;

/// The whole policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyView {
    /// The mode in force.
    pub mode: Mode,
    /// Namespaces enforced by settings.
    pub enforced_namespaces: Vec<String>,
    /// Every server, sorted.
    pub servers: Vec<ServerView>,
    /// Targets that no workload enforcer covers.
    pub unenforced: Vec<UnenforcedView>,
}

/// One server.
#[derive(Clone, Debug, Serialize)]
pub struct ServerView {
    /// `name.namespace`.
    pub server: WorkloadId,
    /// `protected`, `shadow`, or `never-protected` (the API server).
    pub mode: &'static str,
    /// Why, in words.
    pub reason: String,
    /// Who may call it, sorted.
    pub clients: Vec<ClientView>,
}

/// One client of a server.
#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    /// `name.namespace`.
    pub client: WorkloadId,
    /// What it may do, one entry per intent.
    pub allows: Vec<AllowView>,
}

/// One intent.
#[derive(Clone, Debug, Serialize)]
pub struct AllowView {
    /// What it allows, in words.
    pub what: String,
    /// Where it is declared.
    pub at: String,
}

/// A target kept but not enforced by workload enforcers.
#[derive(Clone, Debug, Serialize)]
pub struct UnenforcedView {
    /// The client.
    pub client: WorkloadId,
    /// The target, in words.
    pub target: String,
    /// Where it is declared.
    pub at: String,
    /// Who enforces it, if anyone.
    pub note: &'static str,
}

/// Describes a policy.
pub fn view(policy: &Policy) -> PolicyView {
    let mut servers = Vec::new();
    let mut clients_seen = std::collections::BTreeSet::new();
    for server in policy.servers() {
        let protection = policy.protection(&server);
        let mode = match protection {
            Protection::Protected(_) => "protected",
            Protection::Shadow => "shadow",
            Protection::ApiServer => "never-protected",
        };
        let clients = policy
            .server(&server)
            .map(|sp| {
                sp.clients()
                    .into_iter()
                    .map(|(client, rules)| {
                        clients_seen.insert(client.clone());
                        ClientView {
                            client: client.clone(),
                            allows: rules
                                .intents()
                                .iter()
                                .map(|i| AllowView {
                                    what: i.describe(),
                                    at: i.at.to_string(),
                                })
                                .collect(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default();
        servers.push(ServerView {
            reason: protection.to_string(),
            server,
            mode,
            clients,
        });
    }
    let mut unenforced = Vec::new();
    for doc in policy.documents_in_force() {
        if let ibac_model::Document::ClientIntents(ci) = doc {
            for target in policy.unenforced(&ci.workload.id) {
                unenforced.push(UnenforcedView {
                    client: ci.workload.id.clone(),
                    target: describe_unenforced(target),
                    at: target.at.to_string(),
                    note: note(target),
                });
            }
        }
    }
    let settings = policy.settings();
    PolicyView {
        mode: settings.mode,
        enforced_namespaces: settings
            .enforced_namespaces
            .iter()
            .map(ToString::to_string)
            .collect(),
        servers,
        unenforced,
    }
}

fn describe_unenforced(target: &Target) -> String {
    match &target.kind {
        TargetKind::Sql(s) => format!("sql {}", s.server),
        TargetKind::Internet(i) => {
            let mut parts: Vec<String> = i.domains.clone();
            parts.extend(i.ips.iter().map(ToString::to_string));
            format!("internet {}", parts.join(", "))
        }
        TargetKind::Aws(c) => format!("aws {}", c.resource),
        TargetKind::Gcp(c) => format!("gcp {}", c.resource),
        TargetKind::Azure(a) => format!("azure {}", a.scope),
        other => other.label().to_string(),
    }
}

fn note(target: &Target) -> &'static str {
    match &target.kind {
        TargetKind::Sql(_) => {
            "not enforced by this enforcer: SQL grants enforce it (`ibac render sql`)"
        }
        TargetKind::Internet(_) => {
            "not enforced by this enforcer: egress NetworkPolicies enforce it when enabled"
        }
        _ => "not enforced by this enforcer: cloud IAM enforces it",
    }
}
