//! Which workloads share a mesh identity. Istio and Linkerd authenticate a
//! caller by its service account, so two workloads running as one service
//! account cannot be told apart: allowing one allows the other. Renderers
//! warn about it, from an index built once per facts rather than a scan of
//! every workload per server.

use std::collections::{BTreeMap, BTreeSet};

use crate::facts::{ClusterFacts, Workload};
use crate::plan::ServerPlan;

/// The workloads behind each service account (namespace, name).
#[derive(Debug, Default)]
pub struct Principals<'a> {
    by_account: BTreeMap<(&'a str, &'a str), Vec<&'a Workload>>,
}

impl<'a> Principals<'a> {
    /// The index of `facts`.
    pub fn of(facts: &'a ClusterFacts) -> Self {
        let mut by_account: BTreeMap<(&'a str, &'a str), Vec<&'a Workload>> = BTreeMap::new();
        for w in facts.workloads() {
            by_account
                .entry((w.id.namespace(), w.service_account.as_str()))
                .or_default()
                .push(w);
        }
        Principals { by_account }
    }

    /// One warning per client of `plan` whose service account other
    /// workloads run as too, saying that `mesh` gives them its access.
    pub fn warnings(&self, plan: &ServerPlan<'_>, mesh: &str) -> Vec<String> {
        let mut warned = BTreeSet::new();
        let mut warnings = Vec::new();
        for client in &plan.clients {
            let c = client.client;
            let account = (c.id.namespace(), c.service_account.as_str());
            let sharing: Vec<String> = self
                .by_account
                .get(&account)
                .into_iter()
                .flatten()
                .filter(|w| w.id != c.id)
                .map(|w| w.id.to_string())
                .collect();
            if !sharing.is_empty() && warned.insert(account) {
                warnings.push(format!(
                    "{} shares service account {}/{} with {}: {mesh} cannot tell them apart, so they also get {}'s access to {}",
                    c.id,
                    account.0,
                    account.1,
                    sharing.join(", "),
                    c.id,
                    plan.server.id
                ));
            }
        }
        warnings
    }
}
