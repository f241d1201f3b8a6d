//! The reconcilers: one per enforcer, each keeping the cluster's objects of
//! its kind equal to what the policy says, one server (or client) at a time.
//!
//! The index renders (a pure function of its model, [`render`]); a writer per
//! enforcer ([`writer`]) applies what changed with server-side apply under
//! field manager `ibac` and deletes what is no longer wanted, following one
//! rule: a subject's objects are rewritten to what its rendering says (which
//! allows less when intents shrink, down to a default deny) and deleted only
//! when its rendering has none — the server is no longer protected, its
//! enforcer is off, or the client's ClientIntents is gone. When a server's
//! policy cannot be computed, its objects stay as they are.

pub mod writer;

use std::collections::BTreeSet;

use ibac_model::{DocumentError, WorkloadId};
use ibac_render::plan::{self, SelectorChecks};
use ibac_render::{
    IstioOptions, NetpolOptions, Principals, ServerRendering, render_client_egress,
    render_server_istio, render_server_network_policies,
};
use kube::api::{ApiResource, GroupVersionKind};
use serde_json::Value;

use crate::index::{Index, Touched};

/// An enforcer the operator writes the objects of.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Enforcer {
    /// `networking.k8s.io/v1` NetworkPolicies (ingress per server, egress
    /// per client when egress policies are on).
    NetworkPolicy,
    /// `security.istio.io/v1` AuthorizationPolicies.
    Istio,
}

impl Enforcer {
    /// Every enforcer.
    pub const ALL: [Enforcer; 2] = [Enforcer::NetworkPolicy, Enforcer::Istio];

    /// Its name in metrics, events and conditions.
    pub fn name(self) -> &'static str {
        match self {
            Enforcer::NetworkPolicy => "NetworkPolicy",
            Enforcer::Istio => "Istio",
        }
    }

    /// The resource it writes.
    pub fn resource(self) -> ApiResource {
        match self {
            Enforcer::NetworkPolicy => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("networking.k8s.io", "v1", "NetworkPolicy"),
                "networkpolicies",
            ),
            Enforcer::Istio => ApiResource::from_gvk_with_plural(
                &GroupVersionKind::gvk("security.istio.io", "v1", "AuthorizationPolicy"),
                "authorizationpolicies",
            ),
        }
    }

    /// The CRD that must exist for it to work (none for built-in kinds).
    pub fn crd(self) -> Option<&'static str> {
        match self {
            Enforcer::NetworkPolicy => None,
            Enforcer::Istio => Some("authorizationpolicies.security.istio.io"),
        }
    }

    /// Whether the settings turn it on.
    pub fn enabled(self, settings: &ibac_policy::Settings) -> bool {
        match self {
            Enforcer::NetworkPolicy => settings.enforcers.network_policy,
            Enforcer::Istio => settings.enforcers.istio,
        }
    }
}

/// Whose objects: a server's, or a client's egress.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    /// A server: the objects that select its pods for ingress.
    Server(WorkloadId),
    /// A client: its egress objects.
    Client(WorkloadId),
}

impl Subject {
    /// As written in the `ibac.dev/subject` annotation.
    pub fn to_annotation(&self) -> String {
        match self {
            Subject::Server(id) => format!("server:{id}"),
            Subject::Client(id) => format!("client:{id}"),
        }
    }

    /// Read back from the annotation.
    pub fn from_annotation(text: &str) -> Option<Subject> {
        let (role, id) = text.split_once(':')?;
        let id = WorkloadId::parse(id).ok()?;
        match role {
            "server" => Some(Subject::Server(id)),
            "client" => Some(Subject::Client(id)),
            _ => None,
        }
    }

    /// The workload.
    pub fn workload(&self) -> &WorkloadId {
        match self {
            Subject::Server(id) | Subject::Client(id) => id,
        }
    }
}

/// What one subject must have.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Exactly these objects (none: delete what exists).
    Write {
        /// The objects, as the API server takes them.
        objects: Vec<Value>,
        /// Whether the server is protected (false for clients).
        protected: bool,
        /// What the user should know (references left out, warnings).
        notes: Vec<String>,
    },
    /// Its policy cannot be computed: what exists stays as it is; why.
    Keep(Vec<String>),
}

/// A subject's outcome, rendered at an epoch of the index.
#[derive(Clone, Debug)]
pub struct Desired {
    /// The index's epoch.
    pub epoch: u64,
    /// Whose.
    pub subject: Subject,
    /// What.
    pub outcome: Outcome,
}

/// A batch for one writer.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    /// The index's epoch.
    pub epoch: u64,
    /// Every subject the enforcer has: subjects the writer knows that are
    /// missing here have nothing.
    pub complete: bool,
    /// What the touched subjects must have.
    pub desired: Vec<Desired>,
}

/// How rendering is set up.
#[derive(Clone, Debug, Default)]
pub struct RenderOptions {
    /// NetworkPolicy options (DNS, ingress controller).
    pub netpol: NetpolOptions,
    /// Istio options (trust domain).
    pub istio: IstioOptions,
}

fn outcome<T: serde::Serialize>(index: &Index, rendering: ServerRendering<T>) -> Outcome {
    let describe = |e: &DocumentError| index.describe(e);
    if !rendering.refused.is_empty() {
        return Outcome::Keep(rendering.refused.iter().map(describe).collect());
    }
    let mut notes: Vec<String> = rendering.skipped.iter().map(describe).collect();
    notes.extend(rendering.warnings);
    let mut objects = Vec::new();
    for object in &rendering.objects {
        match serde_json::to_value(object) {
            Ok(value) => objects.push(value),
            Err(e) => return Outcome::Keep(vec![format!("cannot write an object: {e}")]),
        }
    }
    Outcome::Write {
        objects,
        protected: rendering.protected,
        notes,
    }
}

/// Renders what `touched` needs for `enforcer`: every subject when
/// `touched.everything`, else the servers and clients it names.
pub fn render(
    index: &Index,
    touched: &Touched,
    enforcer: Enforcer,
    options: &RenderOptions,
) -> Batch {
    let policy = index.policy();
    let facts = index.facts();
    let epoch = index.epoch();
    let servers: BTreeSet<WorkloadId> = if touched.everything {
        plan::server_ids(policy, facts).into_iter().collect()
    } else {
        touched
            .servers
            .iter()
            .filter(|s| !s.is_api_server())
            .cloned()
            .collect()
    };
    let mut desired = Vec::new();
    match enforcer {
        Enforcer::NetworkPolicy => {
            let mut checks = SelectorChecks::default();
            for server in &servers {
                let rendering = render_server_network_policies(
                    policy,
                    facts,
                    server,
                    &options.netpol,
                    &mut checks,
                );
                desired.push(Desired {
                    epoch,
                    subject: Subject::Server(server.clone()),
                    outcome: outcome(index, rendering),
                });
            }
            let clients: BTreeSet<WorkloadId> = if touched.everything {
                policy.clients().into_iter().collect()
            } else {
                touched.clients.clone()
            };
            for client in clients {
                let rendering = render_client_egress(policy, facts, &client, &options.netpol);
                desired.push(Desired {
                    epoch,
                    subject: Subject::Client(client),
                    outcome: outcome(index, rendering),
                });
            }
        }
        Enforcer::Istio => {
            let principals = Principals::of(facts);
            for server in &servers {
                let rendering =
                    render_server_istio(policy, facts, server, &options.istio, &principals);
                desired.push(Desired {
                    epoch,
                    subject: Subject::Server(server.clone()),
                    outcome: outcome(index, rendering),
                });
            }
        }
    }
    Batch {
        epoch,
        complete: touched.everything,
        desired,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_annotation_reads_back_as_written() {
        for subject in [
            Subject::Server(WorkloadId::parse("cart.shop").unwrap()),
            Subject::Client(WorkloadId::parse("web.shop").unwrap()),
        ] {
            assert_eq!(
                Subject::from_annotation(&subject.to_annotation()),
                Some(subject.clone())
            );
        }
        for bad in ["", "server", "server:Cart", "peer:cart.shop"] {
            assert_eq!(Subject::from_annotation(bad), None, "{bad}");
        }
    }
}
