//! What every renderer starts from: each server with its protection, its pods'
//! selector and its clients' workloads, all resolved against the cluster facts.
//! A selector that is empty, or that also selects another workload's pods, is
//! an error: a policy written for one workload must never reach another.

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;
use std::sync::Arc;

use ibac_model::{DocumentError, Held, Location, WorkloadId};
use ibac_policy::{Intent, Policy, Ports};

use crate::facts::{ClusterFacts, Workload};
use crate::labels;

/// One client's permission towards one server.
#[derive(Clone, Debug)]
pub struct ClientPlan<'a> {
    /// The client's workload.
    pub client: &'a Workload,
    /// Its intents towards the server, as the policy holds them.
    pub intents: &'a [Arc<Intent>],
}

impl ClientPlan<'_> {
    /// The ports the client may reach: `None` for every port. HTTP rules
    /// widen to their ports.
    pub fn ports(&self) -> Option<Vec<u16>> {
        let mut ports = BTreeSet::new();
        for intent in self.intents {
            match &intent.ports {
                Ports::All => return None,
                Ports::Only(p) => ports.extend(p.iter().copied()),
            }
        }
        Some(ports.into_iter().collect())
    }

    /// Whether some intent narrows HTTP requests (lost at L4).
    pub fn widened(&self) -> bool {
        self.intents.iter().any(|i| !i.http.is_empty())
    }
}

/// One server.
#[derive(Clone, Debug)]
pub struct ServerPlan<'a> {
    /// Its workload.
    pub server: &'a Workload,
    /// Whether enforcement is on.
    pub protected: bool,
    /// Why, in words.
    pub protection: String,
    /// Its clients, sorted.
    pub clients: Vec<ClientPlan<'a>>,
}

impl ServerPlan<'_> {
    /// What `--explain` says of an unprotected server: why, what an
    /// enforcer does not write (`not_written`), and whom protection would
    /// allow.
    pub fn shadow_note(&self, not_written: &str) -> String {
        let allowed = if self.clients.is_empty() {
            "nothing".to_string()
        } else {
            self.clients
                .iter()
                .map(|c| c.client.id.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        format!(
            "{}: {}; {not_written}; if protected, ibac would allow {allowed}",
            self.server.id, self.protection
        )
    }
}

/// Why an enforcer cannot write anything for `workload`, at its place:
/// "<kind> `<id>` <why>".
pub fn workload_error(workload: &Workload, why: &str) -> DocumentError {
    error(
        &workload.at,
        format!("{} `{}` {why}", workload.kind, workload.id),
    )
}

fn error(at: &Location, message: String) -> DocumentError {
    DocumentError::Invalid {
        at: at.clone(),
        message,
    }
}

/// Checks that a workload's selector selects its pods and no one else's.
pub fn check_selector(facts: &ClusterFacts, workload: &Workload) -> Result<(), DocumentError> {
    if labels::is_empty(&workload.selector) {
        return Err(error(
            &workload.at,
            format!(
                "{} `{}` has an empty pod selector; ibac never writes a policy that selects every pod",
                workload.kind, workload.id
            ),
        ));
    }
    let others = facts.overlaps(workload);
    if let Some(other) = others.first() {
        return Err(error(
            &workload.at,
            format!(
                "the pod selector of {} `{}` ({}) also selects the pods of {} `{}`; give its pods a label the others lack",
                workload.kind,
                workload.id,
                labels::describe(&workload.selector),
                other.kind,
                other.id
            ),
        ));
    }
    Ok(())
}

/// Every server the facts or the policy name, in order: each is rendered on
/// its own ([`server`]); a whole-cluster render is a fold over these.
pub fn server_ids(policy: &Policy, facts: &ClusterFacts) -> Vec<WorkloadId> {
    let mut ids: BTreeSet<WorkloadId> = facts.workloads().map(|w| w.id.clone()).collect();
    ids.extend(policy.servers());
    ids.into_iter().filter(|id| !id.is_api_server()).collect()
}

/// One server's plan, or none when it is neither protected nor called.
/// References the facts do not know are pushed to `skipped`: a server
/// missing from them has no plan, a client missing from them is left out of
/// the plan (it is then allowed nothing), each reported at the intent that
/// names it.
pub fn server<'a>(
    policy: &'a Policy,
    facts: &'a ClusterFacts,
    id: &WorkloadId,
    skipped: &mut Vec<DocumentError>,
) -> Option<ServerPlan<'a>> {
    if id.is_api_server() {
        return None;
    }
    let protection = policy.protection(id);
    let rules = policy.server(id);
    if !protection.is_protected() && rules.is_none() {
        return None;
    }
    let server = match facts.workload(id, None) {
        Ok(w) => w,
        Err(e) => {
            let at = rules
                .and_then(|r| {
                    r.clients()
                        .first()
                        .and_then(|(_, c)| c.intents().first().map(|i| i.at.clone()))
                })
                .unwrap_or_else(|| Location::held(Held::ClusterFacts));
            skipped.push(error(&at, format!("server `{id}`: {e}; it is skipped")));
            return None;
        }
    };
    let mut clients = Vec::new();
    for (client, client_rules) in rules.map(|r| r.clients()).unwrap_or_default() {
        match facts.workload(client, None) {
            Ok(w) => clients.push(ClientPlan {
                client: w,
                intents: client_rules.intents(),
            }),
            Err(e) => {
                let at = client_rules
                    .intents()
                    .first()
                    .map(|i| i.at.clone())
                    .unwrap_or_else(|| Location::held(Held::Policy));
                skipped.push(error(
                    &at,
                    format!("client `{client}`: {e}; it is skipped, so it is allowed nothing"),
                ));
            }
        }
    }
    Some(ServerPlan {
        server,
        protected: protection.is_protected(),
        protection: protection.to_string(),
        clients,
    })
}

/// Every server's plan, and the references the facts do not know.
pub fn servers<'a>(
    policy: &'a Policy,
    facts: &'a ClusterFacts,
) -> (Vec<ServerPlan<'a>>, Vec<DocumentError>) {
    let mut skipped = Vec::new();
    let plans = server_ids(policy, facts)
        .iter()
        .filter_map(|id| server(policy, facts, id, &mut skipped))
        .collect();
    (plans, skipped)
}

/// What checking one workload's selector found.
type Checked = Result<(), DocumentError>;

/// Selector checks done once per workload, whatever the number of servers
/// that name it (a whole-cluster render checks each workload once).
#[derive(Debug, Default)]
pub struct SelectorChecks {
    /// By id, then kind: a check already done is found without building a
    /// key.
    done: HashMap<WorkloadId, Vec<(String, Checked)>, RandomState>,
}

impl SelectorChecks {
    /// [`check_selector`], remembered.
    pub fn check(
        &mut self,
        facts: &ClusterFacts,
        workload: &Workload,
    ) -> Result<(), DocumentError> {
        if let Some((_, done)) = self
            .done
            .get(&workload.id)
            .and_then(|kinds| kinds.iter().find(|(k, _)| *k == workload.kind))
        {
            return done.clone();
        }
        let result = check_selector(facts, workload);
        self.done
            .entry(workload.id.clone())
            .or_default()
            .push((workload.kind.clone(), result.clone()));
        result
    }
}
