//! Cluster facts read from Kubernetes manifests (files, or `kubectl get -o
//! yaml` output): workloads with their pod selectors, ports and service
//! accounts; Services with their selectors and ports; what is exposed outside
//! the cluster. Through [`ibac_policy::Resolver`] they tell the policy engine
//! which workloads a Service means. Unknown or ambiguous references are
//! reported, never guessed. Manifests read as kubectl reads them (YAML 1.1
//! integers: `defaultMode: 0755` is 493), and a field that does not fit its
//! Kubernetes type is reported at its own line and column.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use ibac_model::yaml::{JsonDocument, Limits, PathStep, parse_manifests};
use ibac_model::{DocumentError, Kind, Location, Name, Namespace, SourceName, WorkloadId};
use ibac_policy::{Backend, PortMap, ResolveError, Resolver};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{
    Namespace as K8sNamespace, Pod, PodSpec, PodTemplateSpec, Service as K8sService, ServiceAccount,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

use crate::labels::{self, Labels};

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
    /// Its service account.
    pub service_account: String,
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

/// Lookups over the facts, built once on first use so that resolving and
/// rendering stay linear in the size of the cluster.
#[derive(Clone, Debug, Default)]
struct Index {
    by_id: HashMap<WorkloadId, Vec<usize>>,
    by_label: HashMap<(String, String, String), Vec<usize>>,
    by_namespace: HashMap<String, Vec<usize>>,
    backends: HashMap<WorkloadId, Vec<usize>>,
    /// Workload → the exposed Services in front of it.
    exposed: HashMap<WorkloadId, Vec<WorkloadId>>,
}

/// Everything read from the manifests. Fill it, then use it: lookups are
/// indexed on first use.
#[derive(Clone, Debug, Default)]
pub struct ClusterFacts {
    /// Namespaces and their labels.
    pub namespaces: BTreeMap<String, Labels>,
    /// Workloads, sorted by id then kind.
    pub workloads: Vec<Workload>,
    /// Services by id.
    pub services: BTreeMap<WorkloadId, Service>,
    /// Ingresses.
    pub ingresses: Vec<IngressFact>,
    /// Pods.
    pub pods: Vec<PodFact>,
    /// EndpointSlices, merged per Service.
    pub endpoints: BTreeMap<WorkloadId, Endpoints>,
    /// Service accounts by namespace.
    pub service_accounts: BTreeSet<(String, String)>,
    /// Documents of kinds that carry no facts, passed over.
    pub skipped: usize,
    index: OnceLock<Index>,
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

fn pod_ports(spec: Option<&PodSpec>) -> Vec<ContainerPort> {
    let mut ports: Vec<ContainerPort> = spec
        .into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            Some(ContainerPort {
                name: p.name.clone(),
                port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
        })
        .collect();
    ports.sort_by(|a, b| (a.port, &a.protocol).cmp(&(b.port, &b.protocol)));
    ports.dedup();
    ports
}

fn service_account(spec: Option<&PodSpec>) -> String {
    spec.and_then(|s| {
        s.service_account_name
            .clone()
            .or_else(|| s.service_account.clone())
    })
    .unwrap_or_else(|| "default".into())
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

    fn id(&mut self, meta: &ObjectMeta, at: &Location, kind: &str) -> Option<WorkloadId> {
        let name = meta.name.clone().unwrap_or_default();
        let ns = self.namespace(meta);
        match (Name::parse(&name), Namespace::parse(&ns)) {
            (Ok(n), Ok(ns)) => Some(WorkloadId::new(&n, &ns)),
            (Err(e), _) => {
                let at = if self.name_at.line == 0 {
                    at
                } else {
                    &self.name_at
                };
                self.errors.push(invalid(
                    at,
                    format!("{kind} `{name}`: ibac cannot name it: {e}"),
                ));
                None
            }
            (_, Err(e)) => {
                self.errors.push(invalid(
                    at,
                    format!("{kind} `{name}`: namespace `{ns}`: {e}"),
                ));
                None
            }
        }
    }

    fn owner(meta: &ObjectMeta, kind: &str) -> Option<String> {
        meta.owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == kind)
            .map(|o| o.name.clone())
    }

    fn add_workload(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        selector: Option<&LabelSelector>,
        template: Option<&PodTemplateSpec>,
        at: &Location,
    ) {
        let Some(id) = self.id(meta, at, kind) else {
            return;
        };
        let pod_labels: Labels = template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        // Jobs and CronJobs get generated selectors; their template labels are what identifies them.
        let selector = match selector {
            Some(s) if !labels::is_empty(s) && kind != "Job" => s.clone(),
            _ => labels::of_labels(&pod_labels),
        };
        let spec = template.and_then(|t| t.spec.as_ref());
        self.facts.workloads.push(Workload {
            id,
            kind: kind.into(),
            selector,
            pod_labels,
            ports: pod_ports(spec),
            service_account: service_account(spec),
            at: at.clone(),
        });
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
            ("apps/v1", "Deployment") => {
                if let Some(d) = self.parse::<Deployment>(value, place, &kind) {
                    let spec = Some(&d.spec);
                    self.add_workload(
                        "Deployment",
                        &d.metadata,
                        spec.map(|s| &s.selector),
                        spec.map(|s| &s.template),
                        at,
                    );
                }
            }
            ("apps/v1", "StatefulSet") => {
                if let Some(d) = self.parse::<StatefulSet>(value, place, &kind) {
                    let spec = Some(&d.spec);
                    self.add_workload(
                        "StatefulSet",
                        &d.metadata,
                        spec.map(|s| &s.selector),
                        spec.map(|s| &s.template),
                        at,
                    );
                }
            }
            ("apps/v1", "DaemonSet") => {
                if let Some(d) = self.parse::<DaemonSet>(value, place, &kind) {
                    let spec = Some(&d.spec);
                    self.add_workload(
                        "DaemonSet",
                        &d.metadata,
                        spec.map(|s| &s.selector),
                        spec.map(|s| &s.template),
                        at,
                    );
                }
            }
            ("apps/v1", "ReplicaSet") => {
                if let Some(d) = self.parse::<ReplicaSet>(value, place, &kind) {
                    let ns = self.namespace(&d.metadata);
                    match Self::owner(&d.metadata, "Deployment") {
                        Some(owner) => {
                            let name = d.metadata.name.clone().unwrap_or_default();
                            self.owners.insert((ns, "ReplicaSet".into(), name), owner);
                        }
                        None => {
                            let spec = Some(&d.spec);
                            self.add_workload(
                                "ReplicaSet",
                                &d.metadata,
                                spec.map(|s| &s.selector),
                                spec.and_then(|s| s.template.as_ref()),
                                at,
                            );
                        }
                    }
                }
            }
            ("batch/v1", "Job") => {
                if let Some(d) = self.parse::<Job>(value, place, &kind) {
                    let ns = self.namespace(&d.metadata);
                    match Self::owner(&d.metadata, "CronJob") {
                        Some(owner) => {
                            let name = d.metadata.name.clone().unwrap_or_default();
                            self.owners.insert((ns, "Job".into(), name), owner);
                        }
                        None => {
                            let spec = d.spec.as_ref();
                            self.add_workload(
                                "Job",
                                &d.metadata,
                                spec.and_then(|s| s.selector.as_ref()),
                                spec.map(|s| &s.template),
                                at,
                            );
                        }
                    }
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
        let Some(id) = self.id(&s.metadata, at, "Service") else {
            return;
        };
        let spec = s.spec.unwrap_or_default();
        let ports = spec
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(ServicePort {
                    name: p.name.clone(),
                    port: u16::try_from(p.port).ok()?,
                    target: p.target_port.clone().unwrap_or(IntOrString::Int(p.port)),
                    protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                })
            })
            .collect();
        let exposed = matches!(spec.type_.as_deref(), Some("LoadBalancer" | "NodePort"));
        self.facts.services.insert(
            id.clone(),
            Service {
                id,
                selector: spec.selector.filter(|s| !s.is_empty()),
                ports,
                exposed,
                at: at.clone(),
            },
        );
    }

    fn add_endpoints(&mut self, slice: EndpointSlice, at: &Location) {
        let ns = self.namespace(&slice.metadata);
        let Some(service) = slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/service-name"))
            .cloned()
        else {
            return;
        };
        let Ok(id) = WorkloadId::parse(&format!("{service}.{ns}")) else {
            self.errors.push(invalid(
                at,
                format!("EndpointSlice for `{service}`: not a name ibac can use"),
            ));
            return;
        };
        let entry = self.facts.endpoints.entry(id).or_default();
        for endpoint in slice.endpoints.iter().flatten() {
            entry.addresses.extend(endpoint.addresses.iter().cloned());
            if let Some(target) = &endpoint.target_ref
                && target.kind.as_deref() == Some("Pod")
            {
                let pod_ns = target.namespace.clone().unwrap_or_else(|| ns.clone());
                entry
                    .pods
                    .insert((pod_ns, target.name.clone().unwrap_or_default()));
            }
        }
        entry.ports.extend(
            slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok())),
        );
    }

    fn add_ingress(&mut self, ing: Ingress) {
        let ns = self.namespace(&ing.metadata);
        let mut backends = BTreeSet::new();
        if let Some(spec) = &ing.spec {
            if let Some(svc) = spec
                .default_backend
                .as_ref()
                .and_then(|b| b.service.as_ref())
            {
                backends.insert(svc.name.clone());
            }
            for rule in spec.rules.iter().flatten() {
                for path in rule.http.iter().flat_map(|h| h.paths.iter()) {
                    if let Some(svc) = &path.backend.service {
                        backends.insert(svc.name.clone());
                    }
                }
            }
        }
        self.facts.ingresses.push(IngressFact {
            namespace: ns,
            name: ing.metadata.name.unwrap_or_default(),
            backends,
        });
    }

    /// Pods are read last: those owned by a known workload only tie it to
    /// EndpointSlices; standalone pods are workloads of their own.
    fn finish_pods(&mut self) {
        for (pod, at, name_at) in std::mem::take(&mut self.pods) {
            self.name_at = name_at;
            let ns = self.namespace(&pod.metadata);
            let name = pod.metadata.name.clone().unwrap_or_default();
            let labels = pod.metadata.labels.clone().unwrap_or_default();
            let owner = pod
                .metadata
                .owner_references
                .iter()
                .flatten()
                .next()
                .map(|o| (o.kind.clone(), o.name.clone()));
            let owner_name = match owner {
                None => {
                    let template = PodTemplateSpec {
                        metadata: Some(pod.metadata.clone()),
                        spec: pod.spec.clone(),
                    };
                    self.add_workload(
                        "Pod",
                        &pod.metadata,
                        Some(&labels::of_labels(&labels)),
                        Some(&template),
                        &at,
                    );
                    Some(name.clone())
                }
                Some((kind, owner)) => {
                    match self.owners.get(&(ns.clone(), kind.clone(), owner.clone())) {
                        Some(top) => Some(top.clone()),
                        None => Some(owner),
                    }
                }
            };
            let owner = owner_name.and_then(|n| WorkloadId::parse(&format!("{n}.{ns}")).ok());
            self.facts.pods.push(PodFact {
                namespace: ns,
                name,
                labels,
                owner,
            });
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
        facts
            .workloads
            .sort_by(|a, b| (&a.id, &a.kind).cmp(&(&b.id, &b.kind)));
        // Every namespace a workload lives in has the standard name label.
        let namespaces: Vec<String> = facts
            .workloads
            .iter()
            .map(|w| w.id.namespace().to_string())
            .collect();
        for ns in namespaces {
            facts
                .namespaces
                .entry(ns.clone())
                .or_insert_with(|| Labels::from([("kubernetes.io/metadata.name".to_string(), ns)]));
        }
        if reader.errors.is_empty() {
            Ok(facts)
        } else {
            Err(reader.errors)
        }
    }

    fn index(&self) -> &Index {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            for (i, w) in self.workloads.iter().enumerate() {
                index.by_id.entry(w.id.clone()).or_default().push(i);
                index
                    .by_namespace
                    .entry(w.id.namespace().to_string())
                    .or_default()
                    .push(i);
                for (k, v) in &w.pod_labels {
                    index
                        .by_label
                        .entry((w.id.namespace().to_string(), k.clone(), v.clone()))
                        .or_default()
                        .push(i);
                }
            }
            for service in self.services.values() {
                let found = match &service.selector {
                    Some(selector) => {
                        self.select(&index, service.id.namespace(), &labels::of_labels(selector))
                    }
                    None => self.endpoint_backends(service),
                };
                if service.exposed {
                    for i in &found {
                        if let Some(w) = self.workloads.get(*i) {
                            index
                                .exposed
                                .entry(w.id.clone())
                                .or_default()
                                .push(service.id.clone());
                        }
                    }
                }
                index.backends.insert(service.id.clone(), found);
            }
            index
        })
    }

    /// Indexes of the workloads in `namespace` whose pods `selector` selects.
    fn select(&self, index: &Index, namespace: &str, selector: &LabelSelector) -> Vec<usize> {
        let candidates: &[usize] = selector
            .match_labels
            .iter()
            .flatten()
            .map(|(k, v)| {
                index
                    .by_label
                    .get(&(namespace.to_string(), k.clone(), v.clone()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|list| list.len())
            .unwrap_or_else(|| {
                index
                    .by_namespace
                    .get(namespace)
                    .map_or(&[][..], Vec::as_slice)
            });
        candidates
            .iter()
            .copied()
            .filter(|i| {
                self.workloads
                    .get(*i)
                    .is_some_and(|w| labels::matches(selector, &w.pod_labels))
            })
            .collect()
    }

    fn endpoint_backends(&self, service: &Service) -> Vec<usize> {
        let owners: BTreeSet<&WorkloadId> = self
            .endpoints
            .get(&service.id)
            .into_iter()
            .flat_map(|e| e.pods.iter())
            .filter_map(|(ns, name)| {
                self.pods
                    .iter()
                    .find(|p| &p.namespace == ns && &p.name == name)
            })
            .filter_map(|p| p.owner.as_ref())
            .collect();
        self.workloads
            .iter()
            .enumerate()
            .filter(|(_, w)| owners.contains(&w.id))
            .map(|(i, _)| i)
            .collect()
    }

    /// The workloads with this id (several when kinds differ).
    pub fn workloads_named(&self, id: &WorkloadId) -> impl Iterator<Item = &Workload> {
        self.index()
            .by_id
            .get(id)
            .into_iter()
            .flatten()
            .filter_map(|i| self.workloads.get(*i))
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
        self.index()
            .backends
            .get(&service.id)
            .into_iter()
            .flatten()
            .filter_map(|i| self.workloads.get(*i))
            .collect()
    }

    /// Other workloads whose pods `workload`'s selector also selects.
    pub fn overlaps(&self, workload: &Workload) -> Vec<&Workload> {
        self.select(self.index(), workload.id.namespace(), &workload.selector)
            .into_iter()
            .filter_map(|i| self.workloads.get(i))
            .filter(|w| !(w.id == workload.id && w.kind == workload.kind))
            .collect()
    }

    /// The exposed Services (LoadBalancer, NodePort) that send traffic to `workload`.
    pub fn exposing(&self, workload: &Workload) -> Vec<&Service> {
        self.index()
            .exposed
            .get(&workload.id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.services.get(id))
            .collect()
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
        let set: BTreeSet<WorkloadId> = self.workloads.iter().map(|w| w.id.clone()).collect();
        set.into_iter().collect()
    }
}
