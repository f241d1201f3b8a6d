//! One ClientIntents document into the rules it contributes to each server.
//!
//! Compilation resolves Service targets to the workloads they select (through
//! the [`Resolver`]) and maps Service ports to target ports. Unknown or ambiguous
//! references fail the document; they are never guessed around.

use std::collections::BTreeMap;
use std::sync::Arc;

use ibac_model::http::MethodSet;
use ibac_model::{
    CallTarget, ClientIntents, DocumentError, Location, Target, TargetKind, WorkloadId,
};

use crate::intent::{HttpGrant, Intent, Ports, Via};
use crate::resolve::{PortMap, Resolver};
use crate::rules::ClientRules;

/// What one ClientIntents document contributes to the policy.
#[derive(Clone, Debug)]
pub struct Contribution {
    /// The client.
    pub client: WorkloadId,
    /// Per server, what the client may do.
    pub rules: BTreeMap<WorkloadId, Arc<ClientRules>>,
    /// Targets no workload enforcer covers (SQL, internet, cloud), kept for reports.
    pub unenforced: Vec<Target>,
}

fn failure(at: &Location, message: String) -> DocumentError {
    DocumentError::Invalid {
        at: at.clone(),
        message,
    }
}

/// Compiles one ClientIntents document; every failing target is reported.
pub fn compile(
    ci: &ClientIntents,
    resolver: &dyn Resolver,
) -> Result<Contribution, Vec<DocumentError>> {
    let client = ci.workload.id.clone();
    let mut by_server: BTreeMap<WorkloadId, Vec<Arc<Intent>>> = BTreeMap::new();
    let mut unenforced = Vec::new();
    let mut errors = Vec::new();
    for target in &ci.targets {
        let mut add = |server: WorkloadId, via: Via, ports: Ports, call: Option<&CallTarget>| {
            let http = call
                .map(|c| {
                    c.http
                        .iter()
                        .map(|r| HttpGrant {
                            path: r.path.clone(),
                            methods: MethodSet::from_methods(&r.methods),
                            at: r.at.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            by_server
                .entry(server.clone())
                .or_default()
                .push(Arc::new(Intent {
                    client: client.clone(),
                    server,
                    at: target.at.clone(),
                    via,
                    ports,
                    http,
                }));
        };
        match &target.kind {
            // The API server (`kubernetes.default`) is kept by its name however
            // it is written: it is reached by egress, not through a workload or
            // a Service's backends.
            TargetKind::Workload(call) | TargetKind::Service(call) if call.id.is_api_server() => {
                add(
                    call.id.clone(),
                    Via::Workload,
                    ports_of(&call.ports),
                    Some(call),
                );
            }
            TargetKind::Workload(call) => match resolver.workload(&call.id, call.kind.as_ref()) {
                Ok(server) => add(server, Via::Workload, ports_of(&call.ports), Some(call)),
                Err(e) => errors.push(failure(&target.at, format!("target `{}`: {e}", call.id))),
            },
            TargetKind::Service(call) => match resolver.service(&call.id) {
                Ok(backends) => {
                    for backend in backends {
                        match service_ports(&call.ports, &backend.ports) {
                            Ok(ports) => add(
                                backend.workload,
                                Via::Service(call.id.clone()),
                                ports,
                                Some(call),
                            ),
                            Err(missing) => errors.push(failure(
                                &target.at,
                                format!(
                                    "Service `{}` has no port {missing}{}",
                                    call.id,
                                    listed(&backend.ports)
                                ),
                            )),
                        }
                    }
                }
                Err(e) => errors.push(failure(&target.at, format!("target `{}`: {e}", call.id))),
            },
            TargetKind::Kafka(kafka) => match resolver.workload(&kafka.server, None) {
                Ok(server) => add(server, Via::Kafka, Ports::All, None),
                Err(e) => errors.push(failure(
                    &target.at,
                    format!("Kafka server `{}`: {e}", kafka.server),
                )),
            },
            TargetKind::Sql(_)
            | TargetKind::Internet(_)
            | TargetKind::Aws(_)
            | TargetKind::Gcp(_)
            | TargetKind::Azure(_) => unenforced.push(target.clone()),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let rules = by_server
        .into_iter()
        .map(|(server, intents)| (server, Arc::new(ClientRules::build(intents))))
        .collect();
    Ok(Contribution {
        client,
        rules,
        unenforced,
    })
}

fn ports_of(ports: &[u16]) -> Ports {
    if ports.is_empty() {
        Ports::All
    } else {
        Ports::Only(ports.to_vec())
    }
}

/// Maps the ports an intent names on a Service to its backend's ports.
fn service_ports(named: &[u16], map: &PortMap) -> Result<Ports, u16> {
    match map {
        PortMap::Identity => Ok(ports_of(named)),
        PortMap::Mapped(pairs) => {
            let mut out: Vec<u16> = if named.is_empty() {
                pairs.iter().map(|(_, target)| *target).collect()
            } else {
                let mut out = Vec::new();
                for port in named {
                    let mut found = false;
                    for (service_port, target) in pairs {
                        if service_port == port {
                            out.push(*target);
                            found = true;
                        }
                    }
                    if !found {
                        return Err(*port);
                    }
                }
                out
            };
            out.sort_unstable();
            out.dedup();
            Ok(Ports::Only(out))
        }
    }
}

fn listed(map: &PortMap) -> String {
    match map {
        PortMap::Identity => String::new(),
        PortMap::Mapped(pairs) if pairs.is_empty() => " (it has no ports)".to_string(),
        PortMap::Mapped(pairs) => format!(
            " (it has {})",
            pairs
                .iter()
                .map(|(p, _)| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}
