//! ibac's and Otterize's documents as the API server stores them, read as
//! `ibac validate` reads a file and put into the policy one at a time.
//!
//! A ClientIntents whose only failures are targets the cluster does not have
//! (yet) stays in force without them: leaving a target out only ever allows
//! less, and it is compiled again whole when the facts change. A document
//! that fails otherwise keeps its last good version in force. Every failure
//! is kept, with its field path, for the object's status.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ibac_model::{Document, DocumentError, DocumentKey, Location, TargetKind, WorkloadId};
use ibac_policy::Policy;
use ibac_render::facts::ClusterFacts;
use serde_json::Value;

use super::{ObjectKey, Stream, Touched};
use crate::crd::{IBAC_GROUP, OTTERIZE_GROUP};
use crate::webhook::validate::{self, Indexed};

/// The document kinds the operator watches (EnforcementConfig aside: the
/// settings are followed on their own).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DocumentKind {
    /// `k8s.otterize.com` ClientIntents.
    OtterizeClientIntents,
    /// `k8s.otterize.com` ProtectedService.
    OtterizeProtectedService,
    /// `k8s.otterize.com` KafkaServerConfig.
    OtterizeKafkaServerConfig,
    /// `k8s.otterize.com` PostgreSQLServerConfig.
    OtterizePostgreSqlServerConfig,
    /// `k8s.otterize.com` MySQLServerConfig.
    OtterizeMySqlServerConfig,
    /// `ibac.dev` ClientIntents.
    ClientIntents,
    /// `ibac.dev` ProtectedService.
    ProtectedService,
    /// `ibac.dev` KafkaServerConfig.
    KafkaServerConfig,
    /// `ibac.dev` PostgreSQLServerConfig.
    PostgreSqlServerConfig,
    /// `ibac.dev` MySQLServerConfig.
    MySqlServerConfig,
}

impl DocumentKind {
    /// Every kind.
    pub const ALL: &'static [DocumentKind] = &[
        DocumentKind::OtterizeClientIntents,
        DocumentKind::OtterizeProtectedService,
        DocumentKind::OtterizeKafkaServerConfig,
        DocumentKind::OtterizePostgreSqlServerConfig,
        DocumentKind::OtterizeMySqlServerConfig,
        DocumentKind::ClientIntents,
        DocumentKind::ProtectedService,
        DocumentKind::KafkaServerConfig,
        DocumentKind::PostgreSqlServerConfig,
        DocumentKind::MySqlServerConfig,
    ];

    /// The API group.
    pub fn group(self) -> &'static str {
        match self {
            DocumentKind::OtterizeClientIntents
            | DocumentKind::OtterizeProtectedService
            | DocumentKind::OtterizeKafkaServerConfig
            | DocumentKind::OtterizePostgreSqlServerConfig
            | DocumentKind::OtterizeMySqlServerConfig => OTTERIZE_GROUP,
            _ => IBAC_GROUP,
        }
    }

    /// The version read and written: the storage version, so reading needs
    /// no conversion.
    pub fn version(self) -> &'static str {
        match self.group() {
            OTTERIZE_GROUP => "v2beta1",
            _ => "v1",
        }
    }

    /// The kind.
    pub fn kind(self) -> &'static str {
        match self {
            DocumentKind::OtterizeClientIntents | DocumentKind::ClientIntents => "ClientIntents",
            DocumentKind::OtterizeProtectedService | DocumentKind::ProtectedService => {
                "ProtectedService"
            }
            DocumentKind::OtterizeKafkaServerConfig | DocumentKind::KafkaServerConfig => {
                "KafkaServerConfig"
            }
            DocumentKind::OtterizePostgreSqlServerConfig | DocumentKind::PostgreSqlServerConfig => {
                "PostgreSQLServerConfig"
            }
            DocumentKind::OtterizeMySqlServerConfig | DocumentKind::MySqlServerConfig => {
                "MySQLServerConfig"
            }
        }
    }

    /// The plural resource name.
    pub fn plural(self) -> &'static str {
        match self.kind() {
            "ClientIntents" => "clientintents",
            "ProtectedService" => "protectedservices",
            "KafkaServerConfig" => "kafkaserverconfigs",
            "PostgreSQLServerConfig" => "postgresqlserverconfigs",
            _ => "mysqlserverconfigs",
        }
    }

    /// The resource as the API server serves it, in the version read.
    pub fn resource(self) -> kube::api::ApiResource {
        kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk(self.group(), self.version(), self.kind()),
            self.plural(),
        )
    }

    /// `group/version`.
    pub fn api_version(self) -> String {
        format!("{}/{}", self.group(), self.version())
    }
}

/// What a document is to the status writer.
#[derive(Clone, Debug, PartialEq)]
pub enum DocRole {
    /// A ClientIntents: its client and the servers its intents in force name.
    ClientIntents {
        /// The client.
        client: WorkloadId,
        /// The servers (resolved: a Service target names its workloads).
        servers: Vec<WorkloadId>,
    },
    /// A ProtectedService.
    ProtectedService {
        /// The server it protects.
        server: WorkloadId,
        /// Whether the policy in force protects it.
        protected: bool,
        /// How many clients have intents towards it.
        clients: usize,
    },
    /// A server config: no status beyond whether it reads.
    Other,
}

/// One document as its status sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct DocView {
    /// Which object.
    pub key: ObjectKey,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// `metadata.uid`.
    pub uid: Option<String>,
    /// The epoch its latest version was put in force at.
    pub epoch: u64,
    /// Why it (or a part of it) is not in force, each with its field path.
    pub errors: Vec<String>,
    /// Whether nothing of its latest version is in force.
    pub rejected: bool,
    /// What it is.
    pub role: DocRole,
}

struct Stored {
    value: Value,
    indexed: Indexed,
    /// The latest version, when it reads.
    document: Option<Document>,
    errors: Vec<String>,
    rejected: bool,
    epoch: u64,
}

/// Every watched document, and how it stands in the policy.
#[derive(Default)]
pub(super) struct Documents {
    stored: BTreeMap<ObjectKey, Stored>,
    /// Which object holds each document key in the policy.
    holders: HashMap<DocumentKey, ObjectKey>,
    /// Documents whose latest version is not wholly in force.
    failed: BTreeSet<ObjectKey>,
    /// ClientIntents by their client.
    by_client: HashMap<WorkloadId, BTreeSet<ObjectKey>>,
    /// Documents by the workloads they name (targets, protected servers).
    by_target: HashMap<WorkloadId, BTreeSet<ObjectKey>>,
    /// Documents by the source name their places carry.
    sources: HashMap<String, ObjectKey>,
    /// Servers that declare a client as their caller (`called-by`), by client.
    called_by: HashMap<WorkloadId, BTreeSet<WorkloadId>>,
}

/// The name of the document that holds a client's `called-by` callers when
/// it has no ClientIntents of its own (no object can have it: `<` is not
/// allowed in names).
const CALLED_BY: &str = "<called-by>";

/// The document standing in for a client's `called-by` declarations.
fn called_by_key(client: &WorkloadId) -> ObjectKey {
    ObjectKey {
        stream: Stream::Document(DocumentKind::ClientIntents),
        namespace: client.namespace().to_owned(),
        name: format!("{CALLED_BY}{}", client.name()),
    }
}

fn is_called_by(key: &ObjectKey) -> bool {
    key.name.starts_with(CALLED_BY)
}

/// `ci` with a workload target for every server that declares its client a
/// caller and that it does not already name.
fn with_callers(
    ci: &ibac_model::ClientIntents,
    servers: &BTreeSet<WorkloadId>,
) -> ibac_model::ClientIntents {
    let mut ci = ci.clone();
    let named: BTreeSet<WorkloadId> = named(&Document::ClientIntents(ci.clone()))
        .into_iter()
        .collect();
    for server in servers.iter().filter(|s| !named.contains(*s)) {
        ci.targets.push(ibac_model::Target {
            at: Location::object(
                "Workload",
                server.namespace(),
                server.name(),
                Some(ibac_render::objects::CALLED_BY_ANNOTATION),
            ),
            kind: TargetKind::Workload(ibac_model::CallTarget {
                id: server.clone(),
                kind: None,
                ports: Vec::new(),
                http: Vec::new(),
            }),
        });
    }
    ci
}

fn source(key: &ObjectKey) -> String {
    let kind = match key.stream {
        Stream::Document(kind) => kind.kind(),
        _ => "object",
    };
    format!("{kind} {}/{}", key.namespace, key.name)
}

/// The workloads a document names.
fn named(doc: &Document) -> Vec<WorkloadId> {
    match doc {
        Document::ClientIntents(ci) => ci
            .targets
            .iter()
            .filter_map(|t| match &t.kind {
                TargetKind::Workload(c) | TargetKind::Service(c) => Some(c.id.clone()),
                TargetKind::Kafka(k) => Some(k.server.clone()),
                _ => None,
            })
            .collect(),
        Document::ProtectedService(ps) => vec![ps.workload.id.clone()],
        _ => Vec::new(),
    }
}

impl Documents {
    pub(super) fn keys(&self) -> impl Iterator<Item = ObjectKey> + '_ {
        self.stored.keys().filter(|k| !is_called_by(k)).cloned()
    }

    /// The ClientIntents declaring `client`.
    pub(super) fn declaring(&self, client: &WorkloadId) -> BTreeSet<ObjectKey> {
        self.by_client.get(client).cloned().unwrap_or_default()
    }

    /// The documents naming `workload`.
    pub(super) fn naming(&self, workload: &WorkloadId) -> BTreeSet<ObjectKey> {
        self.by_target.get(workload).cloned().unwrap_or_default()
    }

    fn unlink(&mut self, key: &ObjectKey) {
        if let Some(doc) = self.stored.get(key).and_then(|s| s.document.as_ref()) {
            if let Document::ClientIntents(ci) = doc
                && let Some(set) = self.by_client.get_mut(&ci.workload.id)
            {
                set.remove(key);
            }
            for id in named(doc) {
                if let Some(set) = self.by_target.get_mut(&id) {
                    set.remove(key);
                }
            }
        }
    }

    fn link(&mut self, key: &ObjectKey, doc: &Document) {
        if let Document::ClientIntents(ci) = doc {
            self.by_client
                .entry(ci.workload.id.clone())
                .or_default()
                .insert(key.clone());
        }
        for id in named(doc) {
            self.by_target.entry(id).or_default().insert(key.clone());
        }
    }

    /// Takes a new version of a document.
    pub(super) fn apply(
        &mut self,
        key: &ObjectKey,
        value: Box<Value>,
        policy: &mut Policy,
        facts: &ClusterFacts,
        epoch: u64,
    ) -> Touched {
        let namespace = (!key.namespace.is_empty()).then_some(key.namespace.as_str());
        let name = source(key);
        let (parsed, indexed) = validate::read_as(&value, namespace, &name);
        self.sources.insert(name, key.clone());
        self.unlink(key);
        let mut stored = Stored {
            value: *value,
            indexed,
            document: None,
            errors: Vec::new(),
            rejected: true,
            epoch,
        };
        if !parsed.errors.is_empty() {
            stored.errors = parsed
                .errors
                .iter()
                .map(|e| validate::describe(e, &stored.indexed))
                .collect();
            // The last good version, if any, stays in force.
            self.stored.insert(key.clone(), stored);
            self.failed.remove(key);
            return Touched::default();
        }
        stored.document = parsed.documents.into_iter().next();
        let mut touched = Touched::default();
        if let Some(doc) = &stored.document {
            let doc = doc.clone();
            self.link(key, &doc);
            // A client's own ClientIntents takes in its `called-by` callers.
            if let Document::ClientIntents(ci) = &doc {
                let stand_in = called_by_key(&ci.workload.id);
                if self.stored.contains_key(&stand_in) {
                    touched.merge(self.delete(&stand_in, policy, facts, epoch));
                }
            }
        }
        self.stored.insert(key.clone(), stored);
        touched.merge(self.compile(key, policy, facts));
        // Its subjects are rendered again even when the policy did not
        // change, so that its status describes this version.
        match self.stored.get(key).and_then(|s| s.document.as_ref()) {
            Some(Document::ClientIntents(ci)) => {
                touched.clients.insert(ci.workload.id.clone());
                touched.servers.extend(policy.calls(&ci.workload.id));
            }
            Some(Document::ProtectedService(ps)) => {
                touched.servers.insert(ps.workload.id.clone());
            }
            _ => {}
        }
        touched
    }

    /// Puts the latest version of `key` in force as far as it compiles.
    fn compile(&mut self, key: &ObjectKey, policy: &mut Policy, facts: &ClusterFacts) -> Touched {
        let mut touched = Touched::default();
        let Some(stored) = self.stored.get_mut(key) else {
            return touched;
        };
        let Some(doc) = stored.document.clone() else {
            return touched;
        };
        let doc = match doc {
            Document::ClientIntents(ci) => match self.called_by.get(&ci.workload.id) {
                Some(servers) => Document::ClientIntents(with_callers(&ci, servers)),
                None => Document::ClientIntents(ci),
            },
            other => other,
        };
        let doc_key = doc.key();
        if let Some(holder) = self.holders.get(&doc_key)
            && holder != key
        {
            stored.errors = vec![format!(
                "{} {}/{} already holds this name in the {} group; ibac reads only one of them",
                doc_key.kind,
                holder.namespace,
                holder.name,
                match holder.stream {
                    Stream::Document(k) => k.group(),
                    _ => "",
                }
            )];
            stored.rejected = true;
            self.failed.remove(key);
            return touched;
        }
        let describe = |errors: &[DocumentError], indexed: &Indexed| -> Vec<String> {
            errors
                .iter()
                .map(|e| validate::describe(e, indexed))
                .collect()
        };
        match policy.apply([doc.clone()], facts) {
            Ok(next) => {
                note(&mut touched, next.changes());
                *policy = next;
                stored.errors.clear();
                stored.rejected = false;
                self.failed.remove(key);
                self.holders.insert(doc_key, key.clone());
            }
            Err(errors) => {
                stored.errors = describe(&errors, &stored.indexed);
                self.failed.insert(key.clone());
                // A ClientIntents whose every failure is one of its targets
                // stays in force without them.
                let reduced = match &doc {
                    Document::ClientIntents(ci) => {
                        let places: Vec<&Location> =
                            errors.iter().filter_map(DocumentError::location).collect();
                        let all_targets = places.len() == errors.len()
                            && places
                                .iter()
                                .all(|at| ci.targets.iter().any(|t| &t.at == *at));
                        all_targets.then(|| {
                            let mut ci = ci.clone();
                            ci.targets.retain(|t| !places.contains(&&t.at));
                            Document::ClientIntents(ci)
                        })
                    }
                    _ => None,
                };
                if let Some(reduced) = reduced
                    && let Ok(next) = policy.apply([reduced], facts)
                {
                    note(&mut touched, next.changes());
                    *policy = next;
                    stored.rejected = false;
                    self.holders.insert(doc_key, key.clone());
                }
            }
        }
        touched
    }

    /// Forgets a document.
    pub(super) fn delete(
        &mut self,
        key: &ObjectKey,
        policy: &mut Policy,
        facts: &ClusterFacts,
        epoch: u64,
    ) -> Touched {
        let mut touched = Touched::default();
        self.unlink(key);
        self.failed.remove(key);
        self.sources.remove(&source(key));
        let Some(stored) = self.stored.remove(key) else {
            return touched;
        };
        let Some(doc) = stored.document else {
            return touched;
        };
        let doc_key = doc.key();
        if self.holders.get(&doc_key) == Some(key) {
            self.holders.remove(&doc_key);
            if let Ok(next) = policy.remove(std::slice::from_ref(&doc_key)) {
                note(&mut touched, next.changes());
                *policy = next;
            }
        }
        if let Document::ClientIntents(ci) = &doc
            && !is_called_by(key)
        {
            touched.merge(self.stand_in(&ci.workload.id, policy, facts, epoch));
        }
        touched
    }

    /// Sets the servers that declare `client` as a caller, and puts that in
    /// force: in its ClientIntents, or in a stand-in when it has none.
    pub(super) fn set_called_by(
        &mut self,
        client: &WorkloadId,
        servers: BTreeSet<WorkloadId>,
        policy: &mut Policy,
        facts: &ClusterFacts,
        epoch: u64,
    ) -> Touched {
        if servers.is_empty() {
            self.called_by.remove(client);
        } else {
            self.called_by.insert(client.clone(), servers);
        }
        let own: Vec<ObjectKey> = self
            .declaring(client)
            .into_iter()
            .filter(|k| !is_called_by(k))
            .collect();
        if own.is_empty() {
            return self.stand_in(client, policy, facts, epoch);
        }
        let mut touched = Touched::default();
        for key in own {
            touched.merge(self.compile(&key, policy, facts));
            touched.clients.insert(client.clone());
            touched.documents.insert(key);
        }
        touched
    }

    /// The stand-in ClientIntents of a client without one of its own:
    /// written when servers declare it as a caller, removed when none does.
    fn stand_in(
        &mut self,
        client: &WorkloadId,
        policy: &mut Policy,
        facts: &ClusterFacts,
        epoch: u64,
    ) -> Touched {
        let key = called_by_key(client);
        let servers = self.called_by.get(client).cloned().unwrap_or_default();
        if servers.is_empty() {
            return if self.stored.contains_key(&key) {
                self.delete(&key, policy, facts, epoch)
            } else {
                Touched::default()
            };
        }
        let Ok(namespace) = ibac_model::Namespace::parse(client.namespace()) else {
            return Touched::default();
        };
        let ci = ibac_model::ClientIntents {
            meta: ibac_model::Meta {
                name: key.name.clone(),
                namespace,
                namespace_given: true,
                origin: Location::object(
                    "Workload",
                    client.namespace(),
                    client.name(),
                    Some(ibac_render::objects::CALLED_BY_ANNOTATION),
                ),
                format: ibac_model::Format::IbacV1,
            },
            workload: ibac_model::WorkloadRef {
                id: client.clone(),
                kind: None,
            },
            targets: Vec::new(),
        };
        let doc = Document::ClientIntents(ci);
        self.unlink(&key);
        self.link(&key, &doc);
        self.stored.insert(
            key.clone(),
            Stored {
                value: Value::Null,
                indexed: Indexed::empty(),
                document: Some(doc),
                errors: Vec::new(),
                rejected: false,
                epoch,
            },
        );
        let mut touched = self.compile(&key, policy, facts);
        touched.clients.insert(client.clone());
        touched.servers.extend(servers);
        touched
    }

    /// Compiles again every document not wholly in force (after the facts
    /// changed, a target may exist now).
    pub(super) fn retry_failed(
        &mut self,
        policy: &mut Policy,
        facts: &ClusterFacts,
        epoch: u64,
    ) -> Touched {
        let mut touched = Touched::default();
        for key in self.failed.clone() {
            let before = self
                .stored
                .get(&key)
                .map(|s| (s.errors.clone(), s.rejected));
            touched.merge(self.compile(&key, policy, facts));
            let after = self
                .stored
                .get(&key)
                .map(|s| (s.errors.clone(), s.rejected));
            if before != after {
                if let Some(stored) = self.stored.get_mut(&key) {
                    stored.epoch = epoch;
                }
                touched.documents.insert(key);
            }
        }
        touched
    }

    /// `error` with its places in documents typed: the object and its field
    /// path (`ClientIntents shop/checkout: spec.targets[1]`).
    pub(super) fn placed(&self, error: &DocumentError) -> DocumentError {
        let mut error = error.clone();
        for at in error.locations_mut() {
            let found = at
                .origin
                .text()
                .and_then(|text| self.sources.get(text.as_ref()))
                .and_then(|key| self.stored.get(key).map(|s| (key, s)));
            if let Some((key, stored)) = found {
                let kind = match key.stream {
                    Stream::Document(kind) => kind.kind(),
                    _ => "object",
                };
                *at = validate::object_location(
                    kind,
                    &key.namespace,
                    &key.name,
                    &stored.indexed,
                    at.column,
                );
            }
        }
        error
    }

    /// Status views of `keys` (all when `None`).
    pub(super) fn views(
        &self,
        keys: Option<&BTreeSet<ObjectKey>>,
        policy: &Policy,
    ) -> Vec<DocView> {
        let view = |key: &ObjectKey, stored: &Stored| {
            let meta = &stored.value["metadata"];
            let role = match &stored.document {
                Some(Document::ClientIntents(ci)) => DocRole::ClientIntents {
                    client: ci.workload.id.clone(),
                    servers: policy
                        .calls(&ci.workload.id)
                        .into_iter()
                        .filter(|s| !s.is_api_server())
                        .collect(),
                },
                Some(Document::ProtectedService(ps)) => DocRole::ProtectedService {
                    server: ps.workload.id.clone(),
                    protected: policy.protection(&ps.workload.id).is_protected(),
                    clients: policy
                        .server(&ps.workload.id)
                        .map_or(0, |s| s.clients().len()),
                },
                _ => DocRole::Other,
            };
            DocView {
                key: key.clone(),
                generation: meta["generation"].as_i64(),
                uid: meta["uid"].as_str().map(str::to_owned),
                epoch: stored.epoch,
                errors: stored.errors.clone(),
                rejected: stored.rejected,
                role,
            }
        };
        // A stand-in has no object to carry a status.
        match keys {
            Some(keys) => keys
                .iter()
                .filter(|k| !is_called_by(k))
                .filter_map(|k| self.stored.get(k).map(|s| view(k, s)))
                .collect(),
            None => self
                .stored
                .iter()
                .filter(|(k, _)| !is_called_by(k))
                .map(|(k, s)| view(k, s))
                .collect(),
        }
    }
}

/// Adds a policy change set to what is touched.
fn note(touched: &mut Touched, changes: &ibac_policy::Changes) {
    touched.servers.extend(changes.servers.iter().cloned());
    touched.clients.extend(changes.clients.iter().cloned());
    touched.everything |= changes.settings;
}
