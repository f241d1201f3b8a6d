//! The cluster model's workloads: found by key or by id in constant time —
//! every compile resolves each target and every render each client, so a
//! lookup that compares strings down a tree costs more than all else — and
//! still listed in key order, since every output must be deterministic.

use std::collections::{BTreeSet, HashMap};

use foldhash::fast::RandomState;
use ibac_model::WorkloadId;

use crate::facts::Workload;

/// A workload's key: its id and its kind.
pub type WorkloadKey = (WorkloadId, String);

/// Workloads by key.
#[derive(Clone, Debug, Default)]
pub struct WorkloadTable {
    /// The workloads of each id, sorted by kind (one, but for a name two
    /// kinds share).
    by_id: HashMap<WorkloadId, Vec<Workload>, RandomState>,
    /// Every key, for listing in order.
    order: BTreeSet<WorkloadKey>,
}

impl WorkloadTable {
    pub fn get(&self, key: &WorkloadKey) -> Option<&Workload> {
        self.by_id.get(&key.0)?.iter().find(|w| w.kind == key.1)
    }

    /// Puts `workload` under `key`; returns what it replaces.
    pub fn insert(&mut self, key: WorkloadKey, mut workload: Workload) -> Option<Workload> {
        let kinds = self.by_id.entry(key.0.clone()).or_default();
        match kinds.binary_search_by(|w| w.kind.cmp(&key.1)) {
            Ok(at) => {
                std::mem::swap(&mut kinds[at], &mut workload);
                Some(workload)
            }
            Err(at) => {
                kinds.insert(at, workload);
                self.order.insert(key);
                None
            }
        }
    }

    pub fn remove(&mut self, key: &WorkloadKey) -> Option<Workload> {
        let kinds = self.by_id.get_mut(&key.0)?;
        let at = kinds.iter().position(|w| w.kind == key.1)?;
        let old = kinds.remove(at);
        if kinds.is_empty() {
            self.by_id.remove(&key.0);
        }
        self.order.remove(key);
        Some(old)
    }

    /// The workloads with this id, in kind order.
    pub fn named<'a>(&'a self, id: &WorkloadId) -> impl Iterator<Item = &'a Workload> + use<'a> {
        self.by_id.get(id).into_iter().flatten()
    }

    /// Every key, in order.
    pub fn keys(&self) -> impl Iterator<Item = &WorkloadKey> {
        self.order.iter()
    }

    /// Every workload, in key order.
    pub fn values(&self) -> impl Iterator<Item = &Workload> {
        self.order.iter().filter_map(|k| self.get(k))
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibac_model::Location;

    fn workload(id: &str, kind: &str) -> Workload {
        Workload {
            id: WorkloadId::parse(id).unwrap(),
            kind: kind.into(),
            selector: Default::default(),
            pod_labels: Default::default(),
            ports: Vec::new(),
            probes: Vec::new(),
            service_account: "default".into(),
            host_network: false,
            called_by: Ok(Vec::new()),
            at: Location::new("t.yaml".into(), 1, 1),
        }
    }

    fn key(w: &Workload) -> WorkloadKey {
        (w.id.clone(), w.kind.clone())
    }

    #[test]
    fn lookups_by_key_and_id_agree_with_the_listing_in_key_order() {
        let mut table = WorkloadTable::default();
        for (id, kind) in [
            ("web.shop", "StatefulSet"),
            ("api.shop", "Deployment"),
            ("web.shop", "Deployment"),
        ] {
            let w = workload(id, kind);
            assert!(table.insert(key(&w), w).is_none());
        }
        let listed: Vec<String> = table
            .values()
            .map(|w| format!("{} {}", w.id, w.kind))
            .collect();
        assert_eq!(
            listed,
            [
                "api.shop Deployment",
                "web.shop Deployment",
                "web.shop StatefulSet"
            ]
        );
        let web = WorkloadId::parse("web.shop").unwrap();
        let kinds: Vec<&str> = table.named(&web).map(|w| w.kind.as_str()).collect();
        assert_eq!(kinds, ["Deployment", "StatefulSet"]);
        // Replacing keeps one entry and returns the old one.
        let mut again = workload("web.shop", "Deployment");
        again.service_account = "web".into();
        let old = table.insert(key(&again), again).unwrap();
        assert_eq!(old.service_account, "default");
        assert_eq!(table.len(), 3);
        let k = (web.clone(), "Deployment".to_string());
        assert_eq!(table.get(&k).unwrap().service_account, "web");
        // Removing the last kind of an id forgets the id.
        assert!(table.remove(&k).is_some());
        assert!(table.remove(&k).is_none());
        assert!(table.remove(&(web.clone(), "StatefulSet".into())).is_some());
        assert_eq!(table.named(&web).count(), 0);
        assert_eq!(table.keys().count(), 1);
    }
}
