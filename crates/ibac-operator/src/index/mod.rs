//! The index: the one owner of the cluster model and the policy on
//! Kubernetes. Watches feed it one object at a time ([`Index::apply`],
//! [`Index::delete`], [`Index::resync`]); each change says which servers and
//! clients it touched, so that only those are rendered and written again.
//!
//! It does no I/O: the watches and the writers around it do. Everything here
//! is tested without an API server.

mod documents;
mod workloads;

use std::collections::{BTreeSet, HashMap, HashSet};

use ibac_model::{Document, EnforcementConfig, WorkloadId};
use ibac_policy::Policy;
use ibac_render::facts::{ClusterFacts, ClusterObject, ClusterRef, FactsChange};

pub use documents::{DocRole, DocView, DocumentKind as WatchedDocument};
pub use workloads::Watched;

/// What a watched object is: its stream, namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    /// Which watch it comes from.
    pub stream: Stream,
    /// Its namespace ("" for cluster-scoped objects).
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// The watches the index is fed by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stream {
    /// Namespaces.
    Namespace,
    /// Deployments.
    Deployment,
    /// StatefulSets.
    StatefulSet,
    /// DaemonSets.
    DaemonSet,
    /// ReplicaSets (workloads of their own unless a Deployment owns them).
    ReplicaSet,
    /// Jobs (workloads of their own unless a CronJob owns them).
    Job,
    /// CronJobs.
    CronJob,
    /// Pods.
    Pod,
    /// Services.
    Service,
    /// EndpointSlices.
    EndpointSlice,
    /// Ingresses.
    Ingress,
    /// ServiceAccounts.
    ServiceAccount,
    /// One of ibac's or Otterize's document kinds.
    Document(WatchedDocument),
}

/// What one change touched: the servers and clients to render again.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Touched {
    /// Servers whose objects may have changed.
    pub servers: BTreeSet<WorkloadId>,
    /// Clients whose egress objects may have changed.
    pub clients: BTreeSet<WorkloadId>,
    /// Everything may have changed (the settings did).
    pub everything: bool,
    /// Documents whose status may have changed.
    pub documents: BTreeSet<ObjectKey>,
}

impl Touched {
    /// Adds `other` to this.
    pub fn merge(&mut self, other: Touched) {
        self.servers.extend(other.servers);
        self.clients.extend(other.clients);
        self.everything |= other.everything;
        self.documents.extend(other.documents);
    }

    /// Whether nothing was touched.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
            && self.clients.is_empty()
            && !self.everything
            && self.documents.is_empty()
    }
}

/// What a watched object put into the model, so that deleting it (or
/// changing it into something else) takes exactly that out again.
#[derive(Clone, Debug, PartialEq)]
enum Contribution {
    Namespace(String),
    Workload {
        id: WorkloadId,
        kind: String,
    },
    /// A ReplicaSet or Job owned by a Deployment or CronJob: only the link.
    Owned,
    /// A pod; the workload it is when nothing owns it.
    Pod(Option<WorkloadId>),
    Service(WorkloadId),
    Slice(WorkloadId),
    Ingress,
    ServiceAccount,
    Document,
    Nothing,
}

/// A pod as the index remembers it, to resolve its owner again when the
/// owner's own owner becomes known.
#[derive(Clone, Debug)]
struct PodOwner {
    owner: Option<(String, String)>,
    annotated: Option<String>,
    labels: ibac_render::labels::Labels,
}

/// The cluster model and the policy, kept up to date one object at a time.
pub struct Index {
    facts: ClusterFacts,
    policy: Policy,
    contributions: HashMap<ObjectKey, Contribution>,
    /// (namespace, kind, name) of a ReplicaSet or Job → its owner's name.
    owners: HashMap<(String, String, String), String>,
    /// Pods by (namespace, name).
    pods: HashMap<(String, String), PodOwner>,
    /// Pods by the (namespace, kind, name) of their direct owner.
    pods_by_owner: HashMap<(String, String, String), BTreeSet<String>>,
    /// EndpointSlices by (namespace, name): their Service and what they hold.
    slices: HashMap<(String, String), (WorkloadId, ibac_render::facts::Endpoints)>,
    slices_by_service: HashMap<WorkloadId, BTreeSet<(String, String)>>,
    documents: documents::Documents,
    /// Bumped by every change; a status describes the epoch it was made at.
    epoch: u64,
    /// While the watches list what exists: changes of facts are not worked
    /// out one by one, [`Index::synced`] works out everything once.
    listing: bool,
    /// The callers each server declares (`called-by`), as last put in force.
    callers: HashMap<WorkloadId, BTreeSet<WorkloadId>>,
}

impl Default for Index {
    fn default() -> Self {
        Self::new()
    }
}

impl Index {
    /// An empty index for an operator running in `namespace`, which
    /// `defaultActive` leaves alone.
    pub fn for_namespace(namespace: &str) -> Self {
        let mut index = Index::new();
        index.policy = index.policy.excluding(namespace);
        index
    }

    /// An empty index with ibac's default settings (shadow mode).
    pub fn new() -> Self {
        Index {
            facts: ClusterFacts::default(),
            policy: Policy::new(),
            contributions: HashMap::new(),
            owners: HashMap::new(),
            pods: HashMap::new(),
            pods_by_owner: HashMap::new(),
            slices: HashMap::new(),
            slices_by_service: HashMap::new(),
            documents: documents::Documents::default(),
            epoch: 0,
            listing: true,
            callers: HashMap::new(),
        }
    }

    /// Every watch has listed what exists: from now on each change says what
    /// it touched. What is touched now is everything.
    pub fn synced(&mut self) -> Touched {
        self.epoch += 1;
        self.listing = false;
        let servers: BTreeSet<WorkloadId> = self.facts.workloads().map(|w| w.id.clone()).collect();
        let _ = self.update_callers(&servers);
        let _ = self
            .documents
            .retry_failed(&mut self.policy, &self.facts, self.epoch);
        self.policy = self.policy.refresh(&self.facts);
        Touched {
            everything: true,
            documents: self.documents.keys().collect(),
            ..Touched::default()
        }
    }

    /// Whether the watches are still listing what exists.
    pub fn listing(&self) -> bool {
        self.listing
    }

    /// The cluster model.
    pub fn facts(&self) -> &ClusterFacts {
        &self.facts
    }

    /// The policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The current epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Puts new settings in force (`None`: ibac's defaults); everything may
    /// change.
    pub fn settings(&mut self, config: Option<EnforcementConfig>) -> Touched {
        self.epoch += 1;
        // One key for the settings, whatever the object is called: a new
        // version replaces the old one in the policy.
        let meta = ibac_model::Meta {
            name: "settings".into(),
            namespace: ibac_model::Namespace::default_namespace(),
            namespace_given: false,
            origin: ibac_model::Location::held(ibac_model::Held::Defaults),
            format: ibac_model::Format::IbacV1,
        };
        let config = match config {
            Some(c) => EnforcementConfig {
                meta: ibac_model::Meta {
                    origin: c.meta.origin.clone(),
                    ..meta
                },
                ..c
            },
            None => EnforcementConfig {
                meta,
                mode: ibac_model::Mode::default(),
                enforced_namespaces: Vec::new(),
                enforcers: ibac_model::Enforcers::default(),
                external_traffic: ibac_model::ExternalTraffic::default(),
            },
        };
        if let Ok(next) = self
            .policy
            .apply([Document::EnforcementConfig(config)], &self.facts)
        {
            self.policy = next;
        }
        let mut touched = Touched {
            everything: true,
            ..Touched::default()
        };
        touched.documents.extend(self.documents.keys());
        touched
    }

    /// Takes one object, added or changed.
    pub fn apply(&mut self, object: Watched) -> Touched {
        self.epoch += 1;
        let key = object.key();
        match object {
            Watched::Document(_, value) => {
                let mut touched =
                    self.documents
                        .apply(&key, value, &mut self.policy, &self.facts, self.epoch);
                touched.documents.insert(key.clone());
                self.contributions.insert(key, Contribution::Document);
                touched
            }
            other => {
                let before = self.ingress_servers(&key);
                let (contribution, events) = self.contribution(&key, other);
                let mut touched = self.replace(key.clone(), contribution, events);
                if key.stream == Stream::Ingress && !self.listing {
                    touched.servers.extend(before);
                    touched.servers.extend(self.ingress_servers(&key));
                }
                touched
            }
        }
    }

    /// Forgets one object.
    pub fn delete(&mut self, key: &ObjectKey) -> Touched {
        self.epoch += 1;
        if let Stream::Document(_) = key.stream {
            self.contributions.remove(key);
            let mut touched = self
                .documents
                .delete(key, &mut self.policy, &self.facts, self.epoch);
            touched.documents.insert(key.clone());
            return touched;
        }
        let before = self.ingress_servers(key);
        let mut touched = self.replace(key.clone(), Contribution::Nothing, Vec::new());
        if !self.listing {
            touched.servers.extend(before);
        }
        touched
    }

    /// After a watch restarted and listed `present`: forgets the objects of
    /// `stream` it no longer lists (deleted while the watch was down).
    pub fn resync(&mut self, stream: Stream, present: &HashSet<ObjectKey>) -> Touched {
        let gone: Vec<ObjectKey> = self
            .contributions
            .keys()
            .filter(|k| k.stream == stream && !present.contains(*k))
            .cloned()
            .collect();
        let mut touched = Touched::default();
        for key in gone {
            touched.merge(self.delete(&key));
        }
        touched
    }

    /// `error` as a user reads it: a place in a document becomes the
    /// document and its field path.
    pub fn describe(&self, error: &ibac_model::DocumentError) -> String {
        self.documents.placed(error).to_string()
    }

    /// How many documents there are.
    pub fn document_count(&self) -> usize {
        self.documents.keys().count()
    }

    /// The status views of `keys` (every document when `keys` is `None`).
    pub fn views(&self, keys: Option<&BTreeSet<ObjectKey>>) -> Vec<DocView> {
        self.documents.views(keys, &self.policy)
    }

    /// Replaces what `key` contributed with `contribution`, made of `events`.
    fn replace(
        &mut self,
        key: ObjectKey,
        contribution: Contribution,
        events: Vec<ClusterObject>,
    ) -> Touched {
        let mut change = FactsChange::default();
        let old = self
            .contributions
            .remove(&key)
            .unwrap_or(Contribution::Nothing);
        // Take out what the old version put in, unless the new one replaces it.
        if old != contribution {
            self.retract(&key, &old, &mut change);
        }
        for event in events {
            absorb(&mut change, self.facts.apply(event));
        }
        if contribution != Contribution::Nothing {
            self.contributions.insert(key, contribution);
        }
        self.after_facts(change)
    }

    fn retract(&mut self, key: &ObjectKey, old: &Contribution, change: &mut FactsChange) {
        match old {
            Contribution::Namespace(name) => {
                absorb(
                    change,
                    self.facts.delete(&ClusterRef::Namespace(name.clone())),
                );
            }
            Contribution::Workload { id, kind } => absorb(
                change,
                self.facts.delete(&ClusterRef::Workload {
                    id: id.clone(),
                    kind: kind.clone(),
                }),
            ),
            Contribution::Owned => {
                let owner = (key.namespace.clone(), kind_of(key.stream), key.name.clone());
                self.owners.remove(&owner);
                self.repod(&owner, change);
            }
            Contribution::Pod(standalone) => {
                if let Some(id) = standalone {
                    absorb(
                        change,
                        self.facts.delete(&ClusterRef::Workload {
                            id: id.clone(),
                            kind: "Pod".into(),
                        }),
                    );
                }
                if let Some(pod) = self.pods.remove(&(key.namespace.clone(), key.name.clone()))
                    && let Some((kind, name)) = &pod.owner
                {
                    let owner = (key.namespace.clone(), kind.clone(), name.clone());
                    if let Some(set) = self.pods_by_owner.get_mut(&owner) {
                        set.remove(&key.name);
                    }
                }
                absorb(
                    change,
                    self.facts.delete(&ClusterRef::Pod {
                        namespace: key.namespace.clone(),
                        name: key.name.clone(),
                    }),
                );
            }
            Contribution::Service(id) => {
                absorb(change, self.facts.delete(&ClusterRef::Service(id.clone())));
            }
            Contribution::Slice(service) => {
                let slice = (key.namespace.clone(), key.name.clone());
                if self.slices.get(&slice).is_some_and(|(s, _)| s == service) {
                    self.slices.remove(&slice);
                }
                if let Some(set) = self.slices_by_service.get_mut(service) {
                    set.remove(&slice);
                }
                let merged = match self.merged(service) {
                    Some(endpoints) => self.facts.apply(ClusterObject::Endpoints {
                        service: service.clone(),
                        endpoints,
                    }),
                    None => {
                        self.slices_by_service.remove(service);
                        self.facts.delete(&ClusterRef::Endpoints(service.clone()))
                    }
                };
                absorb(change, merged);
            }
            Contribution::Ingress => absorb(
                change,
                self.facts.delete(&ClusterRef::Ingress {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                }),
            ),
            Contribution::ServiceAccount => absorb(
                change,
                self.facts.delete(&ClusterRef::ServiceAccount {
                    namespace: key.namespace.clone(),
                    name: key.name.clone(),
                }),
            ),
            Contribution::Document | Contribution::Nothing => {}
        }
    }

    /// What every EndpointSlice of `service` holds, merged; none when it has
    /// none.
    fn merged(&self, service: &WorkloadId) -> Option<ibac_render::facts::Endpoints> {
        let slices = self.slices_by_service.get(service)?;
        if slices.is_empty() {
            return None;
        }
        let mut merged = ibac_render::facts::Endpoints::default();
        for slice in slices {
            if let Some((_, e)) = self.slices.get(slice) {
                merged.pods.extend(e.pods.iter().cloned());
                merged.addresses.extend(e.addresses.iter().cloned());
                merged.ports.extend(e.ports.iter().copied());
            }
        }
        Some(merged)
    }

    /// Resolves again the pods whose direct owner is `owner`.
    fn repod(&mut self, owner: &(String, String, String), change: &mut FactsChange) {
        let names = self.pods_by_owner.get(owner).cloned().unwrap_or_default();
        for name in names {
            let Some(pod) = self.pods.get(&(owner.0.clone(), name.clone())).cloned() else {
                continue;
            };
            let fact = self.pod_fact(&owner.0, &name, &pod);
            absorb(change, self.facts.apply(ClusterObject::Pod(fact)));
        }
    }

    /// A pod as a fact: the workload it belongs to is its annotation, else
    /// the top of its owner chain.
    fn pod_fact(&self, namespace: &str, name: &str, pod: &PodOwner) -> ibac_render::facts::PodFact {
        let top = pod.owner.as_ref().map(|(kind, owner)| {
            self.owners
                .get(&(namespace.to_owned(), kind.clone(), owner.clone()))
                .cloned()
                .unwrap_or_else(|| owner.clone())
        });
        let workload = pod
            .annotated
            .clone()
            .or(top)
            .or_else(|| Some(name.to_owned()));
        ibac_render::facts::PodFact {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            labels: pod.labels.clone(),
            owner: workload.and_then(|w| WorkloadId::parse(&format!("{w}.{namespace}")).ok()),
        }
    }

    /// Recompiles what a change of facts touches and says which servers and
    /// clients to render again.
    fn after_facts(&mut self, change: FactsChange) -> Touched {
        let mut touched = Touched::default();
        if change == FactsChange::default() || self.listing {
            return touched;
        }
        let mut changed: BTreeSet<WorkloadId> = change.workloads.clone();
        changed.extend(change.services.iter().cloned());
        // Servers may declare other callers now.
        touched.merge(self.update_callers(&change.workloads));
        // Documents that failed to compile may compile now.
        touched.merge(
            self.documents
                .retry_failed(&mut self.policy, &self.facts, self.epoch),
        );
        let next = self.policy.refresh_touching(&self.facts, &changed);
        let changes = next.changes().clone();
        self.policy = next;
        touched.servers.extend(changes.servers.iter().cloned());
        touched.clients.extend(changes.clients.iter().cloned());
        for client in &changes.clients {
            touched.documents.extend(self.documents.declaring(client));
        }
        // A workload's own selector, labels or ports are in its objects, in
        // those of the servers it calls, and in the overlap checks of its
        // namespace's servers.
        // (Pods, ServiceAccounts and namespace labels are in no rendering;
        // an Ingress is in its backends' only: see `Index::ingress_servers`.)
        let namespaces: BTreeSet<&str> =
            change.workloads.iter().map(WorkloadId::namespace).collect();
        for workload in &change.workloads {
            touched.servers.insert(workload.clone());
            touched.clients.insert(workload.clone());
            touched.servers.extend(self.policy.calls(workload));
            touched.documents.extend(self.documents.naming(workload));
        }
        for service in &change.services {
            if let Some(s) = self.facts.services().get(service) {
                touched
                    .servers
                    .extend(self.facts.backends(s).into_iter().map(|w| w.id.clone()));
            }
        }
        if !namespaces.is_empty() {
            for server in self.policy.servers() {
                if namespaces.contains(server.namespace()) {
                    touched.servers.insert(server);
                }
            }
        }
        touched
    }

    /// The servers behind the Services an Ingress routes to: their external
    /// traffic policies depend on it.
    fn ingress_servers(&self, key: &ObjectKey) -> BTreeSet<WorkloadId> {
        let Some(ingress) = self
            .facts
            .ingresses()
            .find(|i| i.namespace == key.namespace && i.name == key.name)
        else {
            return BTreeSet::new();
        };
        ingress
            .backends
            .iter()
            .filter_map(|b| WorkloadId::parse(&format!("{b}.{}", ingress.namespace)).ok())
            .filter_map(|id| self.facts.services().get(&id))
            .flat_map(|s| self.facts.backends(s))
            .map(|w| w.id.clone())
            .collect()
    }
}

impl Index {
    /// Puts in force what `servers` declare with `called-by` now.
    fn update_callers(&mut self, servers: &BTreeSet<WorkloadId>) -> Touched {
        let mut clients: BTreeSet<WorkloadId> = BTreeSet::new();
        for server in servers {
            let mut now = BTreeSet::new();
            for w in self.facts.workloads_named(server) {
                match &w.called_by {
                    Ok(callers) => now.extend(callers.iter().cloned()),
                    Err(e) => tracing::warn!(server = %server, "{e}; the annotation is ignored"),
                }
            }
            let before = if now.is_empty() {
                self.callers.remove(server).unwrap_or_default()
            } else {
                self.callers
                    .insert(server.clone(), now.clone())
                    .unwrap_or_default()
            };
            clients.extend(before.symmetric_difference(&now).cloned());
        }
        let mut touched = Touched::default();
        for client in clients {
            let declaring: BTreeSet<WorkloadId> = self
                .callers
                .iter()
                .filter(|(_, callers)| callers.contains(&client))
                .map(|(server, _)| server.clone())
                .collect();
            touched.merge(self.documents.set_called_by(
                &client,
                declaring,
                &mut self.policy,
                &self.facts,
                self.epoch,
            ));
        }
        touched
    }
}

/// `(namespace, name)` of an object as JSON.
pub fn place_of(value: &serde_json::Value) -> (String, String) {
    let field = |name: &str| {
        value["metadata"][name]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    (field("namespace"), field("name"))
}

/// Adds one facts change to another.
fn absorb(into: &mut FactsChange, change: FactsChange) {
    into.workloads.extend(change.workloads);
    into.services.extend(change.services);
    into.namespaces.extend(change.namespaces);
    into.other |= change.other;
}

/// The Kubernetes kind a stream carries.
fn kind_of(stream: Stream) -> String {
    match stream {
        Stream::Namespace => "Namespace",
        Stream::Deployment => "Deployment",
        Stream::StatefulSet => "StatefulSet",
        Stream::DaemonSet => "DaemonSet",
        Stream::ReplicaSet => "ReplicaSet",
        Stream::Job => "Job",
        Stream::CronJob => "CronJob",
        Stream::Pod => "Pod",
        Stream::Service => "Service",
        Stream::EndpointSlice => "EndpointSlice",
        Stream::Ingress => "Ingress",
        Stream::ServiceAccount => "ServiceAccount",
        Stream::Document(kind) => kind.kind(),
    }
    .to_owned()
}

#[cfg(test)]
mod tests;
