//! Kafka and database servers are not found through the cluster facts but
//! through their server configs, and SQL intents are enforced by the database
//! itself, not compiled into workload rules. This index keeps both by server,
//! so that one Kafka or database server renders without a scan of every
//! document, and a change names the database servers it touches.

use std::collections::BTreeSet;

use ibac_model::{ClientIntents, DocumentKey, TargetKind, WorkloadId};
use imbl::OrdMap;

/// Server configs and SQL clients, by server.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConfigIndex {
    /// The KafkaServerConfigs of each Kafka server (several may name one;
    /// the last in key order gives its address).
    kafka: OrdMap<WorkloadId, BTreeSet<DocumentKey>>,
    /// The database server configs, by the name intents use for them: a SQL
    /// target that gives no namespace is resolved among all of one name.
    /// Several of one `name.namespace` (of both dialects): the last in key
    /// order is the one in force.
    databases: OrdMap<String, OrdMap<WorkloadId, BTreeSet<DocumentKey>>>,
    /// Clients whose intents in force have a SQL target of that server name.
    sql_clients: OrdMap<String, BTreeSet<WorkloadId>>,
}

/// The server names a ClientIntents' SQL targets use.
fn sql_names(ci: &ClientIntents) -> BTreeSet<&str> {
    ci.targets
        .iter()
        .filter_map(|t| match &t.kind {
            TargetKind::Sql(sql) => Some(sql.server.name()),
            _ => None,
        })
        .collect()
}

impl ConfigIndex {
    /// The KafkaServerConfigs of `server`, in key order.
    pub(crate) fn kafka(&self, server: &WorkloadId) -> impl Iterator<Item = &DocumentKey> {
        self.kafka.get(server).into_iter().flatten()
    }

    pub(crate) fn kafka_servers(&self) -> impl Iterator<Item = &WorkloadId> {
        self.kafka.keys()
    }

    /// Every database config of this name, by server.
    pub(crate) fn databases(
        &self,
        name: &str,
    ) -> impl Iterator<Item = (&WorkloadId, &DocumentKey)> {
        self.databases
            .get(name)
            .into_iter()
            .flat_map(|m| m.iter())
            .filter_map(|(id, keys)| keys.last().map(|k| (id, k)))
    }

    pub(crate) fn database_servers(&self) -> impl Iterator<Item = &WorkloadId> {
        self.databases.values().flat_map(|m| m.keys())
    }

    pub(crate) fn sql_names(&self) -> impl Iterator<Item = &str> {
        self.sql_clients.keys().map(String::as_str)
    }

    pub(crate) fn sql_clients(&self, name: &str) -> impl Iterator<Item = &WorkloadId> {
        self.sql_clients
            .get(name)
            .into_iter()
            .flat_map(|s| s.iter())
    }

    pub(crate) fn insert_kafka(&mut self, server: WorkloadId, key: DocumentKey) {
        self.kafka.entry(server).or_default().insert(key);
    }

    pub(crate) fn remove_kafka(&mut self, server: &WorkloadId, key: &DocumentKey) {
        if let Some(keys) = self.kafka.get_mut(server) {
            keys.remove(key);
            if keys.is_empty() {
                self.kafka.remove(server);
            }
        }
    }

    /// Records a database config; returns every server of its name, whose
    /// SQL targets without a namespace it may now resolve differently.
    pub(crate) fn insert_database(
        &mut self,
        server: WorkloadId,
        key: DocumentKey,
    ) -> Vec<WorkloadId> {
        let entry = self.databases.entry(server.name().to_owned()).or_default();
        entry.entry(server).or_default().insert(key);
        entry.keys().cloned().collect()
    }

    /// Forgets a database config; returns the servers of its name, itself
    /// included.
    pub(crate) fn remove_database(
        &mut self,
        server: &WorkloadId,
        key: &DocumentKey,
    ) -> Vec<WorkloadId> {
        let mut touched = vec![server.clone()];
        if let Some(entry) = self.databases.get_mut(server.name()) {
            if let Some(keys) = entry.get_mut(server) {
                keys.remove(key);
                if keys.is_empty() {
                    entry.remove(server);
                }
            }
            touched.extend(entry.keys().cloned());
            if entry.is_empty() {
                self.databases.remove(server.name());
            }
        }
        touched
    }

    /// Records a client's SQL targets now in force (`Some`) or withdrawn
    /// (`None` for `ci`'s previous version); returns the database servers
    /// they may name.
    pub(crate) fn set_sql_client(
        &mut self,
        client: &WorkloadId,
        old: Option<&ClientIntents>,
        new: Option<&ClientIntents>,
    ) -> Vec<WorkloadId> {
        let mut names: BTreeSet<String> = BTreeSet::new();
        if let Some(old) = old {
            for name in sql_names(old) {
                names.insert(name.to_owned());
                if let Some(set) = self.sql_clients.get_mut(name) {
                    set.remove(client);
                    if set.is_empty() {
                        self.sql_clients.remove(name);
                    }
                }
            }
        }
        if let Some(new) = new {
            for name in sql_names(new) {
                names.insert(name.to_owned());
                self.sql_clients
                    .entry(name.to_owned())
                    .or_default()
                    .insert(client.clone());
            }
        }
        let mut touched: Vec<WorkloadId> = Vec::new();
        for name in &names {
            touched.extend(self.databases(name).map(|(id, _)| id.clone()));
        }
        for doc in old.into_iter().chain(new) {
            for t in &doc.targets {
                if let TargetKind::Sql(sql) = &t.kind {
                    touched.push(sql.server.clone());
                }
            }
        }
        touched.sort();
        touched.dedup();
        touched
    }
}
