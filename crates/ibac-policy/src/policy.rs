//! The policy snapshot: immutable, cheap to share, updated one document at a
//! time by building a new snapshot that shares everything the change did not
//! touch. A change to one ClientIntents recompiles only that client's rules and
//! touches only the servers it names (before or after).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use foldhash::fast::RandomState;
use ibac_model::{
    ClientIntents, DatabaseServerConfig, Document, DocumentError, DocumentKey, DocumentKind, Held,
    KafkaServerConfig, Location, Target, TargetKind, WorkloadId,
};
use imbl::shared_ptr::DefaultSharedPtr;

use crate::compile::{Contribution, compile};
use crate::configs::ConfigIndex;
use crate::decide::{Decision, ProtectedBy, Protection, Reason};
use crate::intent::Via;
use crate::pairs::PairIndex;
use crate::request::Request;
use crate::resolve::Resolver;
use crate::rules::ClientRules;
use crate::settings::Settings;

type Map<K, V> = imbl::GenericHashMap<K, V, RandomState, DefaultSharedPtr>;

fn new_map<K: Clone + std::hash::Hash + Eq, V: Clone>() -> Map<K, V> {
    Map::with_hasher(RandomState::default())
}

/// What one server allows, client by client.
#[derive(Clone, Debug, Default)]
pub struct ServerPolicy {
    clients: HashMap<WorkloadId, Arc<ClientRules>, RandomState>,
}

impl ServerPolicy {
    /// The client's rules towards this server.
    pub fn client(&self, client: &WorkloadId) -> Option<&ClientRules> {
        self.clients.get(client).map(Arc::as_ref)
    }

    /// Every client with some intent towards this server, sorted.
    pub fn clients(&self) -> Vec<(&WorkloadId, &ClientRules)> {
        let mut out: Vec<_> = self.clients.iter().map(|(k, v)| (k, v.as_ref())).collect();
        out.sort_by(|a, b| a.0.cmp(b.0));
        out
    }
}

/// What a change to the policy touched, so that a reconciler renders and
/// writes only those: the servers whose rules, protection or server config
/// changed, the clients whose intents changed, and whether the settings
/// changed (which may concern every server).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Servers to render again.
    pub servers: BTreeSet<WorkloadId>,
    /// Clients whose intents changed.
    pub clients: BTreeSet<WorkloadId>,
    /// Database servers (by their config's `name.namespace`) whose grants to
    /// render again: they are not workloads, so they are kept apart from
    /// `servers`.
    pub databases: BTreeSet<WorkloadId>,
    /// Whether the EnforcementConfig changed.
    pub settings: bool,
}

impl Changes {
    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.clients.is_empty()
            && self.databases.is_empty()
            && !self.settings
    }
}

/// The state of one stored document.
#[derive(Clone, Debug, PartialEq)]
pub enum DocumentStatus {
    /// In force as written.
    Ok,
    /// The latest version failed to compile; the last good version stays in force.
    Stale(Vec<DocumentError>),
    /// No version ever compiled: nothing of it is in force.
    Failed(Vec<DocumentError>),
}

#[derive(Clone, Debug)]
struct Stored {
    /// The latest version written.
    latest: Document,
    /// The version in force and, for ClientIntents, what it contributes.
    in_force: Option<(Document, Option<Arc<Contribution>>)>,
    errors: Vec<DocumentError>,
}

impl Stored {
    fn status(&self) -> DocumentStatus {
        match (&self.in_force, self.errors.is_empty()) {
            (_, true) => DocumentStatus::Ok,
            (Some(_), false) => DocumentStatus::Stale(self.errors.clone()),
            (None, false) => DocumentStatus::Failed(self.errors.clone()),
        }
    }
}

/// An immutable policy snapshot.
#[derive(Clone)]
pub struct Policy {
    settings: Arc<Settings>,
    /// Servers named by ProtectedServices, with the documents naming them.
    protected: Map<WorkloadId, Arc<BTreeSet<(DocumentKey, Location)>>>,
    servers: Map<WorkloadId, Arc<ServerPolicy>>,
    /// The same rules, indexed for decisions.
    pairs: PairIndex,
    /// Which ClientIntents declares each client.
    clients: Map<WorkloadId, DocumentKey>,
    /// Kafka and database server configs, and SQL clients, by server.
    configs: ConfigIndex,
    documents: imbl::OrdMap<DocumentKey, Arc<Stored>>,
    /// What the operation that made this snapshot touched.
    changes: Arc<Changes>,
    /// Set while a policy is built from nothing: every document touches
    /// everything then, so nothing is noted one by one (see
    /// [`Policy::assemble`]).
    quiet: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("settings", &self.settings)
            .field("documents", &self.documents.len())
            .field("servers", &self.servers.len())
            .finish()
    }
}

impl Policy {
    /// An empty policy with default settings (`defaultShadow`): nothing is
    /// allowed by intent and nothing is protected.
    pub fn new() -> Self {
        Policy {
            settings: Arc::new(Settings::default()),
            protected: new_map(),
            servers: new_map(),
            pairs: PairIndex::new(),
            clients: new_map(),
            configs: ConfigIndex::default(),
            documents: imbl::OrdMap::new(),
            changes: Arc::default(),
            quiet: false,
        }
    }

    /// Builds a policy from a set of documents, as loaded from files: documents
    /// that fail are reported and left out; the rest are in force.
    pub fn build(
        documents: impl IntoIterator<Item = Document>,
        resolver: &dyn Resolver,
    ) -> (Policy, Vec<DocumentError>) {
        Self::assemble(documents, resolver, false)
    }

    /// Upserts every document into a new policy; with `keep`, failures are
    /// kept out of force (see [`Policy::load`]).
    fn assemble(
        documents: impl IntoIterator<Item = Document>,
        resolver: &dyn Resolver,
        keep: bool,
    ) -> (Policy, Vec<DocumentError>) {
        let mut policy = Policy::building();
        let mut errors = Vec::new();
        for doc in documents {
            let kept = keep.then(|| doc.clone());
            if let Err(e) = policy.upsert(doc, resolver) {
                if let Some(doc) = kept {
                    policy.keep_failed(doc, e.clone());
                }
                errors.extend(e);
            }
        }
        (policy.built(), errors)
    }

    /// Builds a policy from stored documents: like [`Policy::build`], but a
    /// document that fails is kept, not in force and shown as
    /// [`DocumentStatus::Failed`] with its errors, so a store never loses
    /// track of it (only ClientIntents can fail, and leaving one out of force
    /// only ever allows less).
    pub fn load(
        documents: impl IntoIterator<Item = Document>,
        resolver: &dyn Resolver,
    ) -> (Policy, Vec<DocumentError>) {
        Self::assemble(documents, resolver, true)
    }

    /// Records a document that failed: a new one is stored out of force; a
    /// newer version of one in force leaves the old one in force, stale.
    fn keep_failed(&mut self, doc: Document, errors: Vec<DocumentError>) {
        let key = doc.key();
        let in_force = self.documents.get(&key).and_then(|s| s.in_force.clone());
        self.documents.insert(
            key,
            Arc::new(Stored {
                latest: doc,
                in_force,
                errors,
            }),
        );
    }

    /// Like [`Policy::build`], for renderers: a ClientIntents whose every
    /// failure lies in some of its targets (a Service or workload the facts do
    /// not know, say) stays in force without those targets, so that one
    /// unresolvable reference costs only itself. Leaving a target out only
    /// ever allows less. Every failure is returned.
    pub fn build_skipping_targets(
        documents: impl IntoIterator<Item = Document>,
        resolver: &dyn Resolver,
    ) -> (Policy, Vec<DocumentError>) {
        let mut policy = Policy::building();
        let mut errors = Vec::new();
        for doc in documents {
            let retry = match &doc {
                Document::ClientIntents(ci) => Some(ci.clone()),
                _ => None,
            };
            let Err(mut failed) = policy.upsert(doc, resolver) else {
                continue;
            };
            if let Some(mut ci) = retry {
                let at_target = |e: &DocumentError| {
                    e.location()
                        .is_some_and(|at| ci.targets.iter().any(|t| &t.at == at))
                };
                if failed.iter().all(at_target) {
                    let places: Vec<Location> = failed
                        .iter()
                        .filter_map(|e| e.location().cloned())
                        .collect();
                    ci.targets.retain(|t| !places.contains(&t.at));
                    // A second failure leaves the document out, as build does.
                    let _ = policy.upsert(Document::ClientIntents(ci), resolver);
                }
            }
            errors.append(&mut failed);
        }
        (policy.built(), errors)
    }

    /// Applies documents all at once: if any fails, nothing changes and every
    /// failure is returned.
    pub fn apply(
        &self,
        documents: impl IntoIterator<Item = Document>,
        resolver: &dyn Resolver,
    ) -> Result<Policy, Vec<DocumentError>> {
        let mut next = self.clone();
        next.changes = Arc::default();
        let mut errors = Vec::new();
        for doc in documents {
            if let Err(mut e) = next.upsert(doc, resolver) {
                errors.append(&mut e);
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }

    /// Removes documents all at once; unknown keys fail the whole removal.
    pub fn remove(&self, keys: &[DocumentKey]) -> Result<Policy, Vec<DocumentError>> {
        let mut next = self.clone();
        next.changes = Arc::default();
        let mut errors = Vec::new();
        for key in keys {
            match next.documents.remove(key) {
                Some(stored) => next.retract(key, &stored),
                None => errors.push(DocumentError::Invalid {
                    at: Location::held(Held::Store),
                    message: format!("no {key} is stored"),
                }),
            }
        }
        if errors.is_empty() {
            Ok(next)
        } else {
            Err(errors)
        }
    }

    /// Recompiles every ClientIntents against new cluster facts. A document
    /// that now fails keeps its last good version in force and is marked stale.
    pub fn refresh(&self, resolver: &dyn Resolver) -> Policy {
        let keys: Vec<DocumentKey> = self
            .documents
            .keys()
            .filter(|k| k.kind == DocumentKind::ClientIntents)
            .cloned()
            .collect();
        self.recompile(keys, resolver)
    }

    /// Recompiles only the ClientIntents that name one of `changed` (as
    /// their client or as a target): after a change of facts that touched
    /// those workloads or Services, the others compile to what they already
    /// are.
    pub fn refresh_touching(
        &self,
        resolver: &dyn Resolver,
        changed: &BTreeSet<WorkloadId>,
    ) -> Policy {
        let keys: Vec<DocumentKey> = self
            .documents
            .iter()
            .filter(|(k, _)| k.kind == DocumentKind::ClientIntents)
            .filter(|(_, stored)| match &stored.latest {
                Document::ClientIntents(ci) => {
                    changed.contains(&ci.workload.id)
                        || ci.targets.iter().any(|t| match &t.kind {
                            TargetKind::Workload(c) | TargetKind::Service(c) => {
                                changed.contains(&c.id)
                            }
                            TargetKind::Kafka(k) => changed.contains(&k.server),
                            _ => false,
                        })
                }
                _ => false,
            })
            .map(|(k, _)| k.clone())
            .collect();
        self.recompile(keys, resolver)
    }

    fn recompile(&self, keys: Vec<DocumentKey>, resolver: &dyn Resolver) -> Policy {
        let mut next = self.clone();
        next.changes = Arc::default();
        for key in keys {
            let Some(stored) = next.documents.get(&key).cloned() else {
                continue;
            };
            let Document::ClientIntents(ci) = &stored.latest else {
                continue;
            };
            match compile(ci, resolver) {
                Ok(contribution) => {
                    next.install_intents(&key, ci, Arc::new(contribution), stored.latest.clone());
                }
                Err(errors) => {
                    let mut updated = (*stored).clone();
                    updated.errors = errors;
                    next.documents.insert(key, Arc::new(updated));
                }
            }
        }
        next
    }

    /// A document at `at` that may not stand beside the stored one under `first`.
    fn duplicate(
        &self,
        first: &DocumentKey,
        at: &Location,
        what: &'static str,
        value: String,
    ) -> DocumentError {
        DocumentError::Duplicate {
            at: at.clone(),
            what,
            value,
            first: self
                .documents
                .get(first)
                .map(|s| s.latest.meta().origin.clone())
                .unwrap_or_else(|| Location::held(Held::Store)),
        }
    }

    fn upsert(&mut self, doc: Document, resolver: &dyn Resolver) -> Result<(), Vec<DocumentError>> {
        let key = doc.key();
        match &doc {
            Document::ClientIntents(ci) => {
                if let Some(owner) = self.clients.get(&ci.workload.id)
                    && *owner != key
                {
                    return Err(vec![self.duplicate(
                        owner,
                        &ci.meta.origin,
                        "ClientIntents for client",
                        ci.workload.id.to_string(),
                    )]);
                }
                let contribution = compile(ci, resolver)?;
                self.install_intents(&key, ci, Arc::new(contribution), doc.clone());
            }
            Document::ProtectedService(ps) => {
                if let Some(old) = self.documents.get(&key).cloned() {
                    self.retract(&key, &old);
                }
                let entry = self
                    .protected
                    .get(&ps.workload.id)
                    .map(|s| (**s).clone())
                    .unwrap_or_default();
                let mut entry = entry;
                entry.insert((key.clone(), ps.meta.origin.clone()));
                self.note(|c| c.servers.insert(ps.workload.id.clone()));
                self.protected
                    .insert(ps.workload.id.clone(), Arc::new(entry));
                self.store(key, doc.clone(), None);
            }
            Document::EnforcementConfig(cfg) => {
                if let Some(other) = self
                    .documents
                    .keys()
                    .find(|k| k.kind == DocumentKind::EnforcementConfig && **k != key)
                {
                    return Err(vec![self.duplicate(
                        other,
                        &cfg.meta.origin,
                        "settings document",
                        "EnforcementConfig".into(),
                    )]);
                }
                let also_excluded = self.settings.also_excluded.clone();
                self.settings = Arc::new(Settings {
                    also_excluded,
                    ..Settings::from_config(cfg)
                });
                self.note(|c| c.settings = true);
                self.store(key, doc.clone(), None);
            }
            Document::KafkaServerConfig(cfg) => {
                if let Some(old) = self.documents.get(&key).cloned() {
                    self.retract(&key, &old);
                }
                let server = cfg.workload.id.clone();
                self.configs.insert_kafka(server.clone(), key.clone());
                self.note(|c| c.servers.insert(server));
                self.store(key, doc.clone(), None);
            }
            Document::DatabaseServerConfig(cfg) => {
                if let Some(old) = self.documents.get(&key).cloned() {
                    self.retract(&key, &old);
                }
                if let Some(server) = cfg.id() {
                    let touched = self.configs.insert_database(server, key.clone());
                    self.note(|c| c.databases.extend(touched));
                }
                self.store(key, doc.clone(), None);
            }
        }
        Ok(())
    }

    /// Records what an operation touched.
    fn note<R>(&mut self, touch: impl FnOnce(&mut Changes) -> R) {
        if !self.quiet {
            touch(Arc::make_mut(&mut self.changes));
        }
    }

    /// An empty policy to build from documents, noting nothing one by one.
    fn building() -> Policy {
        Policy {
            quiet: true,
            ..Policy::new()
        }
    }

    /// The built policy, which reports everything in it as touched.
    fn built(mut self) -> Policy {
        self.quiet = false;
        self.changes = Arc::new(self.everything());
        self
    }

    /// Everything in this policy, as what building it touched.
    fn everything(&self) -> Changes {
        let mut servers: BTreeSet<WorkloadId> = self.servers.keys().cloned().collect();
        servers.extend(self.protected.keys().cloned());
        servers.extend(self.configs.kafka_servers().cloned());
        let mut databases: BTreeSet<WorkloadId> =
            self.configs.database_servers().cloned().collect();
        for name in self.configs.sql_names() {
            for client in self.configs.sql_clients(name) {
                if let Some(ci) = self.intents_of(client) {
                    databases.extend(ci.targets.iter().filter_map(|t| match &t.kind {
                        TargetKind::Sql(sql) => Some(sql.server.clone()),
                        _ => None,
                    }));
                }
            }
        }
        Changes {
            servers,
            clients: self.clients.keys().cloned().collect(),
            databases,
            settings: self
                .documents
                .keys()
                .any(|k| k.kind == DocumentKind::EnforcementConfig),
        }
    }

    fn store(&mut self, key: DocumentKey, doc: Document, contribution: Option<Arc<Contribution>>) {
        self.documents.insert(
            key,
            Arc::new(Stored {
                latest: doc.clone(),
                in_force: Some((doc, contribution)),
                errors: Vec::new(),
            }),
        );
    }

    /// Puts a ClientIntents' new contribution in force in place of its old one.
    fn install_intents(
        &mut self,
        key: &DocumentKey,
        ci: &ClientIntents,
        contribution: Arc<Contribution>,
        doc: Document,
    ) {
        let old = self.documents.get(key).and_then(|s| s.in_force.clone());
        if let Some((old_doc, old)) = &old {
            if let Some(old) = old {
                self.withdraw(old);
            }
            if let Document::ClientIntents(old_ci) = old_doc {
                let touched = self
                    .configs
                    .set_sql_client(&old_ci.workload.id, Some(old_ci), None);
                self.note(|c| c.databases.extend(touched));
            }
        }
        let touched = self.configs.set_sql_client(&ci.workload.id, None, Some(ci));
        self.note(|changes| {
            changes.databases.extend(touched);
            changes.clients.insert(contribution.client.clone());
            changes.servers.extend(contribution.rules.keys().cloned());
        });
        for (server, rules) in &contribution.rules {
            // Copied only when an older snapshot shares it: building a
            // policy adds each client in place.
            let entry = self.servers.entry(server.clone()).or_default();
            Arc::make_mut(entry)
                .clients
                .insert(contribution.client.clone(), rules.clone());
            self.pairs
                .insert(server, &contribution.client, rules.clone());
        }
        self.clients.insert(ci.workload.id.clone(), key.clone());
        self.store(key.clone(), doc, Some(contribution));
    }

    /// Takes a contribution out of the servers it touched.
    fn withdraw(&mut self, contribution: &Contribution) {
        self.note(|changes| {
            changes.clients.insert(contribution.client.clone());
            changes.servers.extend(contribution.rules.keys().cloned());
        });
        for server in contribution.rules.keys() {
            let Some(current) = self.servers.get_mut(server) else {
                continue;
            };
            let entry = Arc::make_mut(current);
            entry.clients.remove(&contribution.client);
            let empty = entry.clients.is_empty();
            self.pairs.remove(server, &contribution.client);
            if empty {
                self.servers.remove(server);
            }
        }
        self.clients.remove(&contribution.client);
    }

    /// Undoes what a stored document put in force.
    fn retract(&mut self, key: &DocumentKey, stored: &Stored) {
        let Some((doc, contribution)) = &stored.in_force else {
            return;
        };
        match doc {
            Document::ClientIntents(ci) => {
                if let Some(c) = contribution {
                    self.withdraw(c);
                }
                let touched = self.configs.set_sql_client(&ci.workload.id, Some(ci), None);
                self.note(|c| c.databases.extend(touched));
            }
            Document::ProtectedService(ps) => {
                self.note(|c| c.servers.insert(ps.workload.id.clone()));
                if let Some(entry) = self.protected.get(&ps.workload.id) {
                    let mut entry = (**entry).clone();
                    entry.retain(|(k, _)| k != key);
                    if entry.is_empty() {
                        self.protected.remove(&ps.workload.id);
                    } else {
                        self.protected
                            .insert(ps.workload.id.clone(), Arc::new(entry));
                    }
                }
            }
            Document::EnforcementConfig(_) => {
                self.settings = Arc::new(Settings {
                    also_excluded: self.settings.also_excluded.clone(),
                    ..Settings::default()
                });
                self.note(|c| c.settings = true);
            }
            Document::KafkaServerConfig(cfg) => {
                self.configs.remove_kafka(&cfg.workload.id, key);
                self.note(|c| c.servers.insert(cfg.workload.id.clone()));
            }
            Document::DatabaseServerConfig(cfg) => {
                if let Some(server) = cfg.id() {
                    let touched = self.configs.remove_database(&server, key);
                    self.note(|c| c.databases.extend(touched));
                }
            }
        }
    }

    /// What the operation that made this snapshot touched ([`Policy::apply`],
    /// [`Policy::remove`] or [`Policy::refresh`]); for a built policy, what
    /// building touched.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// This policy with `namespace` left alone by `defaultActive`, whatever
    /// the settings (the namespace ibac itself runs in).
    pub fn excluding(&self, namespace: &str) -> Policy {
        let mut next = self.clone();
        next.changes = Arc::default();
        let mut settings = (*next.settings).clone();
        if settings.also_excluded.insert(namespace.to_owned()) {
            Arc::make_mut(&mut next.changes).settings = true;
        }
        next.settings = Arc::new(settings);
        next
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Whether enforcement is on for `server`, and why. Depends on settings and
    /// ProtectedServices only, never on intents.
    pub fn protection(&self, server: &WorkloadId) -> Protection<'_> {
        if server.is_api_server() {
            return Protection::ApiServer;
        }
        if let Some((_, at)) = self.protected.get(server).and_then(|s| s.iter().next()) {
            return Protection::Protected(ProtectedBy::ProtectedService(at));
        }
        if let Some(ns) = self
            .settings
            .enforced_namespaces
            .iter()
            .find(|ns| ns.as_str() == server.namespace())
        {
            return Protection::Protected(ProtectedBy::EnforcedNamespace(ns));
        }
        if self.settings.default_active_covers(server.namespace()) {
            return Protection::Protected(ProtectedBy::DefaultActive);
        }
        Protection::Shadow
    }

    /// Decides one call. `client` is `None` when the caller is unauthenticated.
    pub fn decide(
        &self,
        client: Option<&WorkloadId>,
        server: &WorkloadId,
        request: &Request,
    ) -> Decision<'_> {
        let protection = self.protection(server);
        let Some(client) = client else {
            return Decision::denied(Reason::Unauthenticated, protection);
        };
        let Some(rules) = self.pairs.get(server, client) else {
            return Decision::denied(Reason::NoIntents, protection);
        };
        match rules.allows(request) {
            Some(allowed) => Decision::allowed(allowed, protection),
            None => Decision::denied(
                Reason::NotCovered {
                    declared: rules,
                    needs_port: request.port.is_none() && rules.has_port_rules(),
                },
                protection,
            ),
        }
    }

    /// What `server` allows, if any client has intents towards it.
    pub fn server(&self, server: &WorkloadId) -> Option<&ServerPolicy> {
        self.servers.get(server).map(Arc::as_ref)
    }

    /// Every server some intent names, or that is protected by name, sorted.
    pub fn servers(&self) -> Vec<WorkloadId> {
        let mut out: BTreeSet<WorkloadId> = self.servers.keys().cloned().collect();
        out.extend(self.protected.keys().cloned());
        out.into_iter().collect()
    }

    /// Targets of a client that no workload enforcer covers.
    pub fn unenforced(&self, client: &WorkloadId) -> &[Target] {
        self.clients
            .get(client)
            .and_then(|key| self.documents.get(key))
            .and_then(|s| s.in_force.as_ref())
            .and_then(|(_, c)| c.as_ref())
            .map(|c| c.unenforced.as_slice())
            .unwrap_or(&[])
    }

    /// The ClientIntents in force for `client`, if any.
    pub fn intents_of(&self, client: &WorkloadId) -> Option<&ClientIntents> {
        self.clients
            .get(client)
            .and_then(|key| self.documents.get(key))
            .and_then(|s| match s.in_force.as_ref() {
                Some((Document::ClientIntents(ci), _)) => Some(ci),
                _ => None,
            })
    }

    /// Every client with a ClientIntents in force, sorted.
    pub fn clients(&self) -> Vec<WorkloadId> {
        let mut out: Vec<WorkloadId> = self
            .clients
            .keys()
            .filter(|c| self.intents_of(c).is_some())
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// The servers `client`'s intents in force name, sorted (the API server
    /// included).
    pub fn calls(&self, client: &WorkloadId) -> Vec<WorkloadId> {
        self.clients
            .get(client)
            .and_then(|key| self.documents.get(key))
            .and_then(|s| s.in_force.as_ref())
            .and_then(|(_, c)| c.as_ref())
            .map(|c| c.rules.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// One stored document with its status.
    pub fn document(&self, key: &DocumentKey) -> Option<(&Document, DocumentStatus)> {
        self.documents.get(key).map(|s| (&s.latest, s.status()))
    }

    /// Every stored document with its status, in key order.
    pub fn documents(&self) -> Vec<(&DocumentKey, &Document, DocumentStatus)> {
        self.documents
            .iter()
            .map(|(k, s)| (k, &s.latest, s.status()))
            .collect()
    }

    /// The documents in force, in key order.
    pub fn documents_in_force(&self) -> Vec<&Document> {
        self.documents
            .values()
            .filter_map(|s| s.in_force.as_ref().map(|(d, _)| d))
            .collect()
    }

    /// The document in force under `key`.
    fn in_force(&self, key: &DocumentKey) -> Option<&Document> {
        self.documents
            .get(key)
            .and_then(|s| s.in_force.as_ref())
            .map(|(d, _)| d)
    }

    /// The KafkaServerConfigs in force for `server`, in key order.
    pub fn kafka_configs(&self, server: &WorkloadId) -> Vec<&KafkaServerConfig> {
        self.configs
            .kafka(server)
            .filter_map(|k| match self.in_force(k) {
                Some(Document::KafkaServerConfig(c)) => Some(c),
                _ => None,
            })
            .collect()
    }

    /// Every Kafka server some intent or KafkaServerConfig names, sorted.
    pub fn kafka_servers(&self) -> Vec<WorkloadId> {
        let mut out: BTreeSet<WorkloadId> = self.configs.kafka_servers().cloned().collect();
        for (server, rules) in self.servers.iter() {
            if rules
                .clients
                .values()
                .any(|r| r.intents().iter().any(|i| i.via == Via::Kafka))
            {
                out.insert(server.clone());
            }
        }
        out.into_iter().collect()
    }

    /// The database server configs in force whose name is `name`, by server
    /// (`name.namespace`), sorted: what a SQL target of that name may mean.
    pub fn database_configs(&self, name: &str) -> Vec<(&WorkloadId, &DatabaseServerConfig)> {
        self.configs
            .databases(name)
            .filter_map(|(id, k)| match self.in_force(k) {
                Some(Document::DatabaseServerConfig(c)) => Some((id, c)),
                _ => None,
            })
            .collect()
    }

    /// Every database server with a config in force, sorted.
    pub fn database_servers(&self) -> Vec<WorkloadId> {
        let out: BTreeSet<WorkloadId> = self.configs.database_servers().cloned().collect();
        out.into_iter().collect()
    }

    /// Every server name SQL targets in force use, sorted.
    pub fn sql_names(&self) -> Vec<&str> {
        self.configs.sql_names().collect()
    }

    /// The clients whose intents in force have a SQL target named `name`
    /// (with any namespace or none), sorted.
    pub fn sql_clients(&self, name: &str) -> Vec<&WorkloadId> {
        self.configs.sql_clients(name).collect()
    }
}
