//! Cluster facts read from Kubernetes manifests (files, or `kubectl get -o
//! yaml` output): workloads with their pod selectors, ports and service
//! accounts; Services with their selectors and ports; what is exposed outside
//! the cluster. Through [`ibac_policy::Resolver`] they tell the policy engine
//! which workloads a Service means. Unknown or ambiguous references are
//! reported, never guessed. Manifests read as kubectl reads them (YAML 1.1
//! integers: `defaultMode: 0755` is 493), and a field that does not fit its
//! Kubernetes type is reported at its own line and column.
//!
//! The facts are a model that takes events: [`ClusterFacts::apply`] and
//! [`ClusterFacts::delete`], one object at a time, keep every index up to
//! date (nothing is built lazily, so nothing can go stale) and say what
//! changed. Reading manifests is one producer of events; an operator's
//! watches are another.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use ibac_model::yaml::{JsonDocument, Limits, PathStep, parse_manifests};
use ibac_model::{DocumentError, Kind, Location, Namespace, SourceName, WorkloadId};
use ibac_policy::{Backend, PortMap, ResolveError, Resolver};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Namespace as K8sNamespace, Pod, PodTemplateSpec, Service as K8sService, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::labels::{self, Labels};
use crate::objects::{self, ObjectError};
use crate::workload_table::{WorkloadKey, WorkloadTable};

/// A container port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerPort {
    /// Its name, if any (Services and policies may refer to it by name).
    pub name: Option<String>,
    /// The number.
    pub port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: String,
}

/// An HTTP probe (liveness, readiness or startup) of a container.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HttpProbe {
    /// The container port it is sent to.
    pub port: u16,
    /// The path it asks for.
    pub path: String,
}

/// A workload: what ibac calls `name.namespace`, with how to select its pods.
#[derive(Clone, Debug, PartialEq)]
pub struct Workload {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob or Pod.
    pub kind: String,
    /// The workload's own pod selector.
    pub selector: LabelSelector,
    /// The labels its pods carry.
    pub pod_labels: Labels,
    /// Its containers' ports.
    pub ports: Vec<ContainerPort>,
    /// The HTTP probes the kubelet sends its containers: an enforcer that
    /// routes by path must let them through, or protecting it restarts it.
    pub probes: Vec<HttpProbe>,
    /// Its service account.
    pub service_account: String,
    /// Its pods share the node's network: no NetworkPolicy applies to them.
    pub host_network: bool,
    /// The clients its pods declare with Otterize's
    /// `intents.otterize.com/called-by` annotation (`name.namespace` each);
    /// or why the annotation cannot be read.
    pub called_by: Result<Vec<WorkloadId>, String>,
    /// Where it is defined.
    pub at: Location,
}

/// A Service port.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePort {
    /// The port's name.
    pub name: Option<String>,
    /// The Service port.
    pub port: u16,
    /// The target: a number or a container port name.
    pub target: IntOrString,
    /// The protocol.
    pub protocol: String,
}

/// A Service.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    /// `name.namespace`.
    pub id: WorkloadId,
    /// Its pod selector; none for Services backed by EndpointSlices only.
    pub selector: Option<Labels>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// LoadBalancer or NodePort: reachable from outside the cluster.
    pub exposed: bool,
    /// Where it is defined.
    pub at: Location,
}

/// An Ingress and the Services it sends traffic to.
#[derive(Clone, Debug, PartialEq)]
pub struct IngressFact {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Backend Service names (in its namespace).
    pub backends: BTreeSet<String>,
}

/// A pod that belongs to a workload (from `kubectl get pods -o yaml`).
#[derive(Clone, Debug, PartialEq)]
pub struct PodFact {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    pub labels: Labels,
    /// The workload owning it, when known.
    pub owner: Option<WorkloadId>,
}

/// Addresses behind a Service, from EndpointSlices.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Endpoints {
    /// Pods (namespace, name) behind it.
    pub pods: BTreeSet<(String, String)>,
    /// Raw addresses (for Services without pods, such as `kubernetes`).
    pub addresses: BTreeSet<String>,
    /// Target ports.
    pub ports: BTreeSet<u16>,
}

/// The entries of `table` an index entry lists (none when it has none).
fn looked_up<'a, K: 'a, V: 'a>(
    keys: Option<impl IntoIterator<Item = &'a K>>,
    get: impl Fn(&K) -> Option<&'a V>,
) -> Vec<&'a V> {
    keys.into_iter().flatten().filter_map(get).collect()
}

/// Lookups over the facts, kept up to date by every change.
#[derive(Clone, Debug, Default)]
struct Index {
    by_label: HashMap<(String, String, String), BTreeSet<WorkloadKey>>,
    by_namespace: HashMap<String, BTreeSet<WorkloadKey>>,
    /// Service → the workloads it sends traffic to.
    backends: HashMap<WorkloadId, Vec<WorkloadKey>>,
    /// Workload → the exposed Services in front of it.
    exposed: HashMap<WorkloadId, BTreeSet<WorkloadId>>,
    /// (namespace, label, value) → the Services whose selector asks for it,
    /// and namespace → its Services without a selector: a change of a
    /// workload's labels looks only at the Services that may select it
    /// (never a scan of every Service).
    services_by_label: HashMap<(String, String, String), BTreeSet<WorkloadId>>,
    selectorless: HashMap<String, BTreeSet<WorkloadId>>,
}

/// Everything known of the cluster, as a model that takes one object at a
/// time ([`ClusterFacts::apply`], [`ClusterFacts::delete`]).
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    namespaces: BTreeMap<String, Labels>,
    workloads: WorkloadTable,
    services: BTreeMap<WorkloadId, Service>,
    ingresses: BTreeMap<(String, String), IngressFact>,
    pods: BTreeMap<(String, String), PodFact>,
    endpoints: BTreeMap<WorkloadId, Endpoints>,
    service_accounts: BTreeSet<(String, String)>,
    skipped: usize,
    index: Index,
}

/// One object of the cluster, as an event brings it.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterObject {
    /// A namespace and its labels.
    Namespace {
        /// Its name.
        name: String,
        /// Its labels.
        labels: Labels,
    },
    /// A workload.
    Workload(Workload),
    /// A Service.
    Service(Service),
    /// An Ingress.
    Ingress(IngressFact),
    /// A pod.
    Pod(PodFact),
    /// The EndpointSlices of one Service, merged.
    Endpoints {
        /// The Service.
        service: WorkloadId,
        /// What they hold.
        endpoints: Endpoints,
    },
    /// A service account.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// Which object an event deletes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterRef {
    /// A namespace.
    Namespace(String),
    /// A workload of a kind.
    Workload {
        /// Its id.
        id: WorkloadId,
        /// Its kind.
        kind: String,
    },
    /// A Service.
    Service(WorkloadId),
    /// An Ingress.
    Ingress {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A pod.
    Pod {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
    /// A Service's EndpointSlices.
    Endpoints(WorkloadId),
    /// A service account.
    ServiceAccount {
        /// Its namespace.
        namespace: String,
        /// Its name.
        name: String,
    },
}

/// What one event changed, so that only the documents depending on it are
/// recompiled and only the servers they touch rendered.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FactsChange {
    /// Workloads added, removed or changed.
    pub workloads: BTreeSet<WorkloadId>,
    /// Services whose definition or backends changed.
    pub services: BTreeSet<WorkloadId>,
    /// Namespaces whose labels changed.
    pub namespaces: BTreeSet<String>,
    /// Ingresses, pods or service accounts changed (they matter to external
    /// traffic and identities of the workloads in `workloads`).
    pub other: bool,
}

/// How to read the facts.
#[derive(Clone, Debug)]
pub struct FactsOptions {
    /// Namespace of manifests that name none.
    pub default_namespace: Namespace,
    /// Safety limits.
    pub limits: Limits,
}

impl Default for FactsOptions {
    fn default() -> Self {
        FactsOptions {
            default_namespace: Namespace::default_namespace(),
            limits: Limits::default(),
        }
    }
}

fn invalid(at: &Location, message: String) -> DocumentError {
    DocumentError::Invalid {
        at: at.clone(),
        message,
    }
}

/// Where a document being read is: its manifest document, and the path to it
/// inside (a `List`'s item, say).
struct Place<'d> {
    doc: &'d JsonDocument,
    prefix: Vec<PathStep>,
}

impl Place<'_> {
    fn locate(&self, rest: &[PathStep]) -> Location {
        let mut path = self.prefix.clone();
        path.extend_from_slice(rest);
        self.doc.locate(&path)
    }

    fn child(&self, step: PathStep) -> Place<'_> {
        let mut prefix = self.prefix.clone();
        prefix.push(step);
        Place {
            doc: self.doc,
            prefix,
        }
    }
}

/// A serde path as steps into a document.
fn steps(path: &serde_path_to_error::Path) -> Vec<PathStep> {
    path.iter()
        .filter_map(|segment| match segment {
            serde_path_to_error::Segment::Seq { index } => Some(PathStep::Index(*index)),
            serde_path_to_error::Segment::Map { key } => Some(PathStep::Key(key.clone())),
            _ => None,
        })
        .collect()
}

struct Reader<'a> {
    facts: ClusterFacts,
    errors: Vec<DocumentError>,
    options: &'a FactsOptions,
    /// ReplicaSet (ns, name) → owning Deployment name, and Job → CronJob.
    owners: BTreeMap<(String, String, String), String>,
    pods: Vec<(Pod, Location, Location)>,
    /// Where the current document's `metadata.name` is written.
    name_at: Location,
}

impl Reader<'_> {
    fn namespace(&self, meta: &ObjectMeta) -> String {
        meta.namespace
            .clone()
            .unwrap_or_else(|| self.options.default_namespace.to_string())
    }

    /// Reports an object that cannot be a fact where it is named.
    fn report(&mut self, e: &ObjectError, at: &Location) {
        let at = match e {
            ObjectError::Name { .. } if self.name_at.line != 0 => self.name_at.clone(),
            _ => at.clone(),
        };
        self.errors.push(invalid(&at, e.to_string()));
    }

    fn owner(meta: &ObjectMeta, kind: &str) -> Option<String> {
        objects::owner(meta, &[kind]).map(|(_, name)| name.to_owned())
    }

    /// A ReplicaSet or Job: owned by a Deployment or CronJob, it is remembered
    /// so that its pods resolve to that owner; standing alone, it is a
    /// workload of its own.
    fn add_owned(
        &mut self,
        kind: &str,
        owner_kind: &str,
        meta: &ObjectMeta,
        selector: Option<&LabelSelector>,
        template: Option<&PodTemplateSpec>,
        at: &Location,
    ) {
        match Self::owner(meta, owner_kind) {
            Some(owner) => {
                let ns = self.namespace(meta);
                let name = meta.name.clone().unwrap_or_default();
                self.owners.insert((ns, kind.into(), name), owner);
            }
            None => self.add_workload(kind, meta, selector, template, at),
        }
    }

    fn add_workload(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        selector: Option<&LabelSelector>,
        template: Option<&PodTemplateSpec>,
        at: &Location,
    ) {
        let ns = self.options.default_namespace.to_string();
        match objects::workload(kind, meta, selector, template, &ns, at.clone()) {
            Ok(w) => {
                self.facts
                    .workloads
                    .insert((w.id.clone(), kind.to_string()), w);
            }
            Err(e) => self.report(&e, at),
        }
    }

    /// A Deployment, StatefulSet or DaemonSet.
    fn add_templated<T: objects::Templated>(
        &mut self,
        value: Value,
        place: &Place<'_>,
        at: &Location,
    ) {
        if let Some(object) = self.parse::<T>(value, place, T::KIND) {
            let ns = self.options.default_namespace.to_string();
            match objects::templated(&object, &ns, at.clone()) {
                Ok(w) => {
                    self.facts
                        .workloads
                        .insert((w.id.clone(), T::KIND.to_string()), w);
                }
                Err(e) => self.report(&e, at),
            }
        }
    }

    /// Reads `value` as a Kubernetes object; a field that does not fit is
    /// reported where it was written.
    fn parse<T: serde::de::DeserializeOwned>(
        &mut self,
        value: Value,
        place: &Place<'_>,
        kind: &str,
    ) -> Option<T> {
        let name = value
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .map(|n| format!(" `{n}`"))
            .unwrap_or_default();
        match serde_path_to_error::deserialize::<_, T>(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let path = e.path().clone();
                let at = place.locate(&steps(&path));
                let field = if path.iter().next().is_some() {
                    format!(" `{path}`")
                } else {
                    String::new()
                };
                let inner = e.into_inner();
                self.errors
                    .push(invalid(&at, format!("{kind}{name}:{field}: {inner}")));
                None
            }
        }
    }

    fn document(&mut self, value: Value, place: &Place<'_>, depth: usize) {
        let at = &place.locate(&[]);
        self.name_at = place.locate(&[
            PathStep::Key("metadata".into()),
            PathStep::Key("name".into()),
        ]);
        let api_version = value
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let kind = value
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if kind == "List" || (kind.ends_with("List") && value.get("items").is_some()) {
            if depth > 0 {
                self.errors
                    .push(invalid(at, "a List inside a List is not supported".into()));
                return;
            }
            if let Some(Value::Array(items)) = value.get("items").cloned() {
                let list = place.child(PathStep::Key("items".into()));
                for (i, item) in items.into_iter().enumerate() {
                    self.document(item, &list.child(PathStep::Index(i)), depth + 1);
                }
            }
            return;
        }
        match (api_version.as_str(), kind.as_str()) {
            ("v1", "Namespace") => {
                if let Some(ns) = self.parse::<K8sNamespace>(value, place, &kind) {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    let mut labels = ns.metadata.labels.unwrap_or_default();
                    labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                    self.facts.namespaces.insert(name, labels);
                }
            }
            ("apps/v1", "Deployment") => self.add_templated::<Deployment>(value, place, at),
            ("apps/v1", "StatefulSet") => self.add_templated::<StatefulSet>(value, place, at),
            ("apps/v1", "DaemonSet") => self.add_templated::<DaemonSet>(value, place, at),
            ("apps/v1", "ReplicaSet") => {
                if let Some(d) = self.parse::<ReplicaSet>(value, place, &kind) {
                    let spec = Some(&d.spec);
                    self.add_owned(
                        "ReplicaSet",
                        "Deployment",
                        &d.metadata,
                        spec.map(|s| &s.selector),
                        spec.and_then(|s| s.template.as_ref()),
                        at,
                    );
                }
            }
            ("batch/v1", "Job") => {
                if let Some(d) = self.parse::<Job>(value, place, &kind) {
                    let spec = d.spec.as_ref();
                    self.add_owned(
                        "Job",
                        "CronJob",
                        &d.metadata,
                        spec.and_then(|s| s.selector.as_ref()),
                        spec.map(|s| &s.template),
                        at,
                    );
                }
            }
            ("batch/v1", "CronJob") => {
                if let Some(d) = self.parse::<CronJob>(value, place, &kind) {
                    let template = d.spec.job_template.spec.as_ref().map(|j| &j.template);
                    self.add_workload("CronJob", &d.metadata, None, template, at);
                }
            }
            ("v1", "Pod") => {
                if let Some(pod) = self.parse::<Pod>(value, place, &kind) {
                    self.pods.push((pod, at.clone(), self.name_at.clone()));
                }
            }
            ("v1", "Service") => {
                if let Some(s) = self.parse::<K8sService>(value, place, &kind) {
                    self.add_service(s, at);
                }
            }
            ("v1", "ServiceAccount") => {
                if let Some(sa) = self.parse::<ServiceAccount>(value, place, &kind) {
                    let ns = self.namespace(&sa.metadata);
                    self.facts
                        .service_accounts
                        .insert((ns, sa.metadata.name.unwrap_or_default()));
                }
            }
            ("discovery.k8s.io/v1", "EndpointSlice") => {
                if let Some(slice) = self.parse::<EndpointSlice>(value, place, &kind) {
                    self.add_endpoints(slice, at);
                }
            }
            ("networking.k8s.io/v1", "Ingress") => {
                if let Some(ing) = self.parse::<Ingress>(value, place, &kind) {
                    self.add_ingress(ing);
                }
            }
            _ => self.facts.skipped += 1,
        }
    }

    fn add_service(&mut self, s: K8sService, at: &Location) {
        let ns = self.options.default_namespace.to_string();
        match objects::service(&s, &ns, at.clone()) {
            Ok(service) => {
                self.facts.services.insert(service.id.clone(), service);
            }
            Err(e) => self.report(&e, at),
        }
    }

    fn add_endpoints(&mut self, slice: EndpointSlice, at: &Location) {
        let ns = self.options.default_namespace.to_string();
        match objects::slice_service(&slice, &ns) {
            None => {}
            Some(Err(e)) => self.errors.push(invalid(at, e.to_string())),
            Some(Ok(id)) => {
                objects::add_slice(&slice, &ns, self.facts.endpoints.entry(id).or_default());
            }
        }
    }

    fn add_ingress(&mut self, ing: Ingress) {
        let ns = self.options.default_namespace.to_string();
        let fact = objects::ingress(&ing, &ns);
        self.facts
            .ingresses
            .insert((fact.namespace.clone(), fact.name.clone()), fact);
    }

    /// Pods are read last: those owned by a known workload only tie it to
    /// EndpointSlices; standalone pods are workloads of their own.
    fn finish_pods(&mut self) {
        for (pod, at, name_at) in std::mem::take(&mut self.pods) {
            self.name_at = name_at;
            let ns = self.namespace(&pod.metadata);
            let name = pod.metadata.name.clone().unwrap_or_default();
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let owner = match objects::first_owner(&pod.metadata) {
                None => {
                    let default_ns = self.options.default_namespace.to_string();
                    match objects::standalone_pod(&pod, &default_ns, at.clone()) {
                        Ok(w) => {
                            let id = w.id.clone();
                            self.facts.workloads.insert((id.clone(), "Pod".into()), w);
                            Some(id)
                        }
                        Err(e) => {
                            self.report(&e, &at);
                            None
                        }
                    }
                }
                Some((kind, owner)) => {
                    let top = self
                        .owners
                        .get(&(ns.clone(), kind, owner.clone()))
                        .cloned()
                        .unwrap_or(owner);
                    let name = objects::pod_workload_name(&pod, &top);
                    WorkloadId::parse(&format!("{name}.{ns}")).ok()
                }
            };
            self.facts.pods.insert(
                (ns.clone(), name.clone()),
                PodFact {
                    namespace: ns,
                    name,
                    labels,
                    owner,
                },
            );
        }
    }
}

impl ClusterFacts {
    /// Reads facts from manifests. Every problem is reported; facts are
    /// returned only when there is none, so nothing is rendered from part of
    /// the cluster.
    pub fn read(
        sources: &[(SourceName, String)],
        options: &FactsOptions,
    ) -> Result<ClusterFacts, Vec<DocumentError>> {
        let mut reader = Reader {
            facts: ClusterFacts::default(),
            errors: Vec::new(),
            options,
            owners: BTreeMap::new(),
            pods: Vec::new(),
            name_at: Location::whole(SourceName::from("")),
        };
        for (name, text) in sources {
            match parse_manifests(name, text, &options.limits) {
                Ok(docs) => {
                    for doc in &docs {
                        let place = Place {
                            doc,
                            prefix: Vec::new(),
                        };
                        match doc.value.clone() {
                            Value::Array(items) => {
                                for (i, item) in items.into_iter().enumerate() {
                                    reader.document(item, &place.child(PathStep::Index(i)), 1);
                                }
                            }
                            value => reader.document(value, &place, 0),
                        }
                    }
                }
                Err(e) => reader.errors.push(e),
            }
        }
        reader.finish_pods();
        let mut facts = reader.facts;
        // Every namespace a workload lives in has the standard name label.
        let namespaces: Vec<String> = facts
            .workloads
            .values()
            .map(|w| w.id.namespace().to_string())
            .collect();
        for ns in namespaces {
            facts
                .namespaces
                .entry(ns.clone())
                .or_insert_with(|| Labels::from([("kubernetes.io/metadata.name".to_string(), ns)]));
        }
        facts.reindex();
        if reader.errors.is_empty() {
            Ok(facts)
        } else {
            Err(reader.errors)
        }
    }

    /// Builds every index from the objects held (after reading manifests).
    fn reindex(&mut self) {
        self.index = Index::default();
        let keys: Vec<WorkloadKey> = self.workloads.keys().cloned().collect();
        for key in &keys {
            self.index_workload(key, true);
        }
        let services: Vec<WorkloadId> = self.services.keys().cloned().collect();
        for id in services {
            self.index_service(&id, true);
            self.refresh_service(&id);
        }
    }

    /// Adds `id`'s Service to (or takes it out of) the Service indexes.
    fn index_service(&mut self, id: &WorkloadId, add: bool) {
        let Some(service) = self.services.get(id) else {
            return;
        };
        let ns = id.namespace().to_string();
        let keys: Vec<Option<(String, String, String)>> = match &service.selector {
            None => vec![None],
            Some(selector) => selector
                .iter()
                .map(|(k, v)| Some((ns.clone(), k.clone(), v.clone())))
                .collect(),
        };
        for key in keys {
            let set = match key {
                None => self.index.selectorless.entry(ns.clone()).or_default(),
                Some(key) => self.index.services_by_label.entry(key).or_default(),
            };
            if add {
                set.insert(id.clone());
            } else {
                set.remove(id);
            }
        }
    }

    fn index_workload(&mut self, key: &WorkloadKey, add: bool) {
        let Some(w) = self.workloads.get(key) else {
            return;
        };
        let ns = w.id.namespace().to_string();
        let labels: Vec<(String, String)> = w
            .pod_labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let touch = |set: &mut BTreeSet<WorkloadKey>| {
            if add {
                set.insert(key.clone());
            } else {
                set.remove(key);
            }
        };
        touch(self.index.by_namespace.entry(ns.clone()).or_default());
        for (k, v) in labels {
            touch(self.index.by_label.entry((ns.clone(), k, v)).or_default());
        }
    }

    /// Recomputes one Service's backends and the exposure they carry;
    /// returns whether they changed.
    fn refresh_service(&mut self, id: &WorkloadId) -> bool {
        let found: Vec<WorkloadKey> = match self.services.get(id) {
            None => Vec::new(),
            Some(service) => match &service.selector {
                Some(selector) => self
                    .select(service.id.namespace(), &labels::of_labels(selector))
                    .into_iter()
                    .cloned()
                    .collect(),
                None => self.endpoint_backends(service),
            },
        };
        let exposed = self.services.get(id).is_some_and(|s| s.exposed);
        let old = self.index.backends.remove(id).unwrap_or_default();
        for (w, _) in &old {
            if let Some(set) = self.index.exposed.get_mut(w) {
                set.remove(id);
                if set.is_empty() {
                    self.index.exposed.remove(w);
                }
            }
        }
        if exposed {
            for (w, _) in &found {
                self.index
                    .exposed
                    .entry(w.clone())
                    .or_default()
                    .insert(id.clone());
            }
        }
        let changed = old != found;
        if self.services.contains_key(id) {
            self.index.backends.insert(id.clone(), found);
        }
        changed
    }

    /// Recomputes the Services of a namespace whose backends may follow a
    /// change there: those backed by EndpointSlices (pods tie them to
    /// workloads), and, for a workload that changed, those whose selector
    /// matches its labels before or after (`labels`). The others cannot
    /// have changed, so no selection is run for them.
    fn refresh_namespace(&mut self, namespace: &str, labels: &[&Labels], change: &mut FactsChange) {
        let mut candidates: BTreeSet<WorkloadId> = self
            .index
            .selectorless
            .get(namespace)
            .cloned()
            .unwrap_or_default();
        for l in labels {
            for (k, v) in l.iter() {
                let key = (namespace.to_string(), k.clone(), v.clone());
                if let Some(set) = self.index.services_by_label.get(&key) {
                    candidates.extend(set.iter().cloned());
                }
            }
        }
        let ids: Vec<WorkloadId> = candidates
            .into_iter()
            .filter(|id| match self.services.get(id).map(|s| &s.selector) {
                None => false,
                Some(None) => true,
                Some(Some(selector)) => labels
                    .iter()
                    .any(|l| selector.iter().all(|(k, v)| l.get(k) == Some(v))),
            })
            .collect();
        for id in ids {
            if self.refresh_service(&id) {
                change.services.insert(id);
            }
        }
    }

    /// Takes one object: added, or replacing the one with its name.
    pub fn apply(&mut self, object: ClusterObject) -> FactsChange {
        let mut change = FactsChange::default();
        match object {
            ClusterObject::Namespace { name, mut labels } => {
                labels.insert("kubernetes.io/metadata.name".into(), name.clone());
                if self.namespaces.get(&name) != Some(&labels) {
                    self.namespaces.insert(name.clone(), labels);
                    change.namespaces.insert(name);
                }
            }
            ClusterObject::Workload(w) => {
                let key = (w.id.clone(), w.kind.clone());
                let ns = w.id.namespace().to_string();
                if self.workloads.get(&key) == Some(&w) {
                    return change;
                }
                self.index_workload(&key, false);
                change.workloads.insert(w.id.clone());
                let new_labels = w.pod_labels.clone();
                let old = self.workloads.insert(key.clone(), w);
                self.index_workload(&key, true);
                self.namespaces.entry(ns.clone()).or_insert_with(|| {
                    Labels::from([("kubernetes.io/metadata.name".to_string(), ns.clone())])
                });
                let old_labels = old.map(|o| o.pod_labels).unwrap_or_default();
                self.refresh_namespace(&ns, &[&old_labels, &new_labels], &mut change);
            }
            ClusterObject::Service(service) => {
                let id = service.id.clone();
                if self.services.get(&id) == Some(&service) {
                    return change;
                }
                self.index_service(&id, false);
                self.services.insert(id.clone(), service);
                self.index_service(&id, true);
                self.refresh_service(&id);
                change.services.insert(id);
            }
            ClusterObject::Ingress(ing) => {
                self.ingresses
                    .insert((ing.namespace.clone(), ing.name.clone()), ing);
                change.other = true;
            }
            ClusterObject::Pod(pod) => {
                let ns = pod.namespace.clone();
                self.pods
                    .insert((pod.namespace.clone(), pod.name.clone()), pod);
                change.other = true;
                self.refresh_namespace(&ns, &[], &mut change);
            }
            ClusterObject::Endpoints { service, endpoints } => {
                self.endpoints.insert(service.clone(), endpoints);
                if self.refresh_service(&service) {
                    change.services.insert(service);
                }
            }
            ClusterObject::ServiceAccount { namespace, name } => {
                change.other = self.service_accounts.insert((namespace, name));
            }
        }
        change
    }

    /// Forgets one object.
    pub fn delete(&mut self, object: &ClusterRef) -> FactsChange {
        let mut change = FactsChange::default();
        match object {
            ClusterRef::Namespace(name) => {
                if self.namespaces.remove(name).is_some() {
                    change.namespaces.insert(name.clone());
                }
            }
            ClusterRef::Workload { id, kind } => {
                let key = (id.clone(), kind.clone());
                self.index_workload(&key, false);
                if let Some(old) = self.workloads.remove(&key) {
                    change.workloads.insert(id.clone());
                    self.refresh_namespace(id.namespace(), &[&old.pod_labels], &mut change);
                }
            }
            ClusterRef::Service(id) => {
                self.index_service(id, false);
                if self.services.remove(id).is_some() {
                    self.refresh_service(id);
                    change.services.insert(id.clone());
                }
            }
            ClusterRef::Ingress { namespace, name } => {
                change.other = self
                    .ingresses
                    .remove(&(namespace.clone(), name.clone()))
                    .is_some();
            }
            ClusterRef::Pod { namespace, name } => {
                if self
                    .pods
                    .remove(&(namespace.clone(), name.clone()))
                    .is_some()
                {
                    change.other = true;
                    self.refresh_namespace(namespace, &[], &mut change);
                }
            }
            ClusterRef::Endpoints(service) => {
                if self.endpoints.remove(service).is_some() && self.refresh_service(service) {
                    change.services.insert(service.clone());
                }
            }
            ClusterRef::ServiceAccount { namespace, name } => {
                change.other = self
                    .service_accounts
                    .remove(&(namespace.clone(), name.clone()));
            }
        }
        change
    }

    /// Namespaces and their labels.
    pub fn namespaces(&self) -> &BTreeMap<String, Labels> {
        &self.namespaces
    }

    /// Every workload, sorted by id then kind.
    pub fn workloads(&self) -> impl Iterator<Item = &Workload> {
        self.workloads.values()
    }

    /// How many workloads.
    pub fn workload_count(&self) -> usize {
        self.workloads.len()
    }

    /// Services by id.
    pub fn services(&self) -> &BTreeMap<WorkloadId, Service> {
        &self.services
    }

    /// Ingresses, by namespace and name.
    pub fn ingresses(&self) -> impl Iterator<Item = &IngressFact> {
        self.ingresses.values()
    }

    /// Pods, by namespace and name.
    pub fn pods(&self) -> impl Iterator<Item = &PodFact> {
        self.pods.values()
    }

    /// EndpointSlices, merged per Service.
    pub fn endpoints(&self) -> &BTreeMap<WorkloadId, Endpoints> {
        &self.endpoints
    }

    /// Service accounts, by namespace and name.
    pub fn service_accounts(&self) -> &BTreeSet<(String, String)> {
        &self.service_accounts
    }

    /// Documents of kinds that carry no facts, passed over when reading.
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// The workloads in `namespace` whose pods `selector` selects.
    fn select(&self, namespace: &str, selector: &LabelSelector) -> Vec<&WorkloadKey> {
        let by_label = selector.match_labels.iter().flatten().map(|(k, v)| {
            self.index
                .by_label
                .get(&(namespace.to_string(), k.clone(), v.clone()))
        });
        // The rarest label's workloads, or, without labels, the namespace's.
        let candidates = match by_label.min_by_key(|set| set.map_or(0, BTreeSet::len)) {
            Some(set) => set,
            None => self.index.by_namespace.get(namespace),
        };
        candidates
            .into_iter()
            .flatten()
            .filter(|key| {
                self.workloads
                    .get(key)
                    .is_some_and(|w| labels::matches(selector, &w.pod_labels))
            })
            .collect()
    }

    fn endpoint_backends(&self, service: &Service) -> Vec<WorkloadKey> {
        let owners: BTreeSet<&WorkloadId> = self
            .endpoints
            .get(&service.id)
            .into_iter()
            .flat_map(|e| e.pods.iter())
            .filter_map(|(ns, name)| self.pods.get(&(ns.clone(), name.clone())))
            .filter_map(|p| p.owner.as_ref())
            .collect();
        owners
            .into_iter()
            .flat_map(|id| {
                self.workloads_named(id)
                    .map(|w| (w.id.clone(), w.kind.clone()))
            })
            .collect()
    }

    /// The workloads with this id (several when kinds differ).
    pub fn workloads_named<'a>(
        &'a self,
        id: &WorkloadId,
    ) -> impl Iterator<Item = &'a Workload> + use<'a> {
        self.workloads.named(id)
    }

    /// The one workload `id` means, given an optional kind.
    pub fn workload(&self, id: &WorkloadId, kind: Option<&str>) -> Result<&Workload, ResolveError> {
        let found: Vec<&Workload> = self
            .workloads_named(id)
            .filter(|w| kind.is_none_or(|k| k == w.kind))
            .collect();
        match found.as_slice() {
            [one] => Ok(one),
            [] => Err(ResolveError::Unknown {
                what: "workload",
                name: match kind {
                    Some(k) => format!("{id} of kind {k}"),
                    None => id.to_string(),
                },
                hint: " in the cluster facts".into(),
            }),
            many => Err(ResolveError::Ambiguous {
                name: id.to_string(),
                kinds: many
                    .iter()
                    .map(|w| w.kind.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// The workloads a Service sends traffic to.
    pub fn backends(&self, service: &Service) -> Vec<&Workload> {
        looked_up(self.index.backends.get(&service.id), |k| {
            self.workloads.get(k)
        })
    }

    /// Other workloads whose pods `workload`'s selector also selects.
    pub fn overlaps(&self, workload: &Workload) -> Vec<&Workload> {
        self.select(workload.id.namespace(), &workload.selector)
            .into_iter()
            .filter_map(|k| self.workloads.get(k))
            .filter(|w| !(w.id == workload.id && w.kind == workload.kind))
            .collect()
    }

    /// The exposed Services (LoadBalancer, NodePort) that send traffic to `workload`.
    pub fn exposing(&self, workload: &Workload) -> Vec<&Service> {
        looked_up(self.index.exposed.get(&workload.id), |id| {
            self.services.get(id)
        })
    }

    /// The labels of a namespace (at least its name label).
    pub fn namespace_labels(&self, namespace: &str) -> Labels {
        self.namespaces.get(namespace).cloned().unwrap_or_else(|| {
            Labels::from([(
                "kubernetes.io/metadata.name".to_string(),
                namespace.to_string(),
            )])
        })
    }
}

/// Resolves a Service port's target on one backend.
pub fn target_port(port: &ServicePort, backend: &Workload) -> Option<u16> {
    match &port.target {
        IntOrString::Int(n) => u16::try_from(*n).ok(),
        IntOrString::String(name) => backend
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.port),
    }
}

impl Resolver for ClusterFacts {
    fn service(&self, id: &WorkloadId) -> Result<Vec<Backend>, ResolveError> {
        let service = self.services.get(id).ok_or_else(|| ResolveError::Unknown {
            what: "Service",
            name: id.to_string(),
            hint: " in the cluster facts".into(),
        })?;
        let backends = self.backends(service);
        if backends.is_empty() {
            return Err(ResolveError::Other(format!(
                "Service `{id}` selects no workload in the cluster facts"
            )));
        }
        Ok(backends
            .into_iter()
            .map(|b| Backend {
                workload: b.id.clone(),
                ports: PortMap::Mapped(
                    service
                        .ports
                        .iter()
                        .filter_map(|p| target_port(p, b).map(|t| (p.port, t)))
                        .collect(),
                ),
            })
            .collect())
    }

    fn workload(&self, id: &WorkloadId, kind: Option<&Kind>) -> Result<WorkloadId, ResolveError> {
        ClusterFacts::workload(self, id, kind.map(Kind::as_str)).map(|w| w.id.clone())
    }

    fn workloads(&self) -> Vec<WorkloadId> {
        let set: BTreeSet<WorkloadId> = self.workloads.values().map(|w| w.id.clone()).collect();
        set.into_iter().collect()
    }
}
