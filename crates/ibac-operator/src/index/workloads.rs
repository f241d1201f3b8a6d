//! Watched Kubernetes objects as facts: workloads as pods really are — the
//! owner chain (a Deployment's ReplicaSets, a CronJob's Jobs are not
//! workloads of their own), Otterize's workload-name annotation, pods
//! without owners, Services, EndpointSlices and Ingresses.

use ibac_model::Location;
use ibac_render::facts::ClusterObject;
use ibac_render::objects::{self, Templated as _};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Namespace, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::documents::DocumentKind;
use super::{Contribution, Index, ObjectKey, PodOwner, Stream};

/// One object a watch brought.
#[derive(Clone, Debug)]
pub enum Watched {
    /// A Namespace.
    Namespace(Box<Namespace>),
    /// A Deployment.
    Deployment(Box<Deployment>),
    /// A StatefulSet.
    StatefulSet(Box<StatefulSet>),
    /// A DaemonSet.
    DaemonSet(Box<DaemonSet>),
    /// A ReplicaSet.
    ReplicaSet(Box<ReplicaSet>),
    /// A Job.
    Job(Box<Job>),
    /// A CronJob.
    CronJob(Box<CronJob>),
    /// A Pod.
    Pod(Box<Pod>),
    /// A Service.
    Service(Box<Service>),
    /// An EndpointSlice.
    EndpointSlice(Box<EndpointSlice>),
    /// An Ingress.
    Ingress(Box<Ingress>),
    /// A ServiceAccount.
    ServiceAccount(Box<ServiceAccount>),
    /// An ibac or Otterize document, as the API server serves it.
    Document(DocumentKind, Box<serde_json::Value>),
}

fn names(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

impl Watched {
    /// Which object this is.
    pub fn key(&self) -> ObjectKey {
        let (stream, (namespace, name)) = match self {
            Watched::Namespace(o) => (Stream::Namespace, names(&o.metadata)),
            Watched::Deployment(o) => (Stream::Deployment, names(&o.metadata)),
            Watched::StatefulSet(o) => (Stream::StatefulSet, names(&o.metadata)),
            Watched::DaemonSet(o) => (Stream::DaemonSet, names(&o.metadata)),
            Watched::ReplicaSet(o) => (Stream::ReplicaSet, names(&o.metadata)),
            Watched::Job(o) => (Stream::Job, names(&o.metadata)),
            Watched::CronJob(o) => (Stream::CronJob, names(&o.metadata)),
            Watched::Pod(o) => (Stream::Pod, names(&o.metadata)),
            Watched::Service(o) => (Stream::Service, names(&o.metadata)),
            Watched::EndpointSlice(o) => (Stream::EndpointSlice, names(&o.metadata)),
            Watched::Ingress(o) => (Stream::Ingress, names(&o.metadata)),
            Watched::ServiceAccount(o) => (Stream::ServiceAccount, names(&o.metadata)),
            Watched::Document(kind, value) => (Stream::Document(*kind), super::place_of(value)),
        };
        ObjectKey {
            stream,
            namespace,
            name,
        }
    }
}

/// Where a watched object is, for messages: `Deployment shop/web`.
fn at(kind: &str, key: &ObjectKey) -> Location {
    Location::object(kind, &key.namespace, &key.name, None)
}

impl Index {
    /// What `object` contributes to the facts, and the events that put it in.
    pub(super) fn contribution(
        &mut self,
        key: &ObjectKey,
        object: Watched,
    ) -> (Contribution, Vec<ClusterObject>) {
        let ns = key.namespace.clone();
        // A workload of `kind` from its metadata, selector and pod template.
        let workload = |kind: &str, meta, selector, template| match objects::workload(
            kind,
            meta,
            selector,
            template,
            &ns,
            at(kind, key),
        ) {
            Ok(w) => (
                Contribution::Workload {
                    id: w.id.clone(),
                    kind: kind.to_owned(),
                },
                vec![ClusterObject::Workload(w)],
            ),
            Err(e) => {
                tracing::warn!(error = %e, "{kind} {}/{} is left out", key.namespace, key.name);
                (Contribution::Nothing, Vec::new())
            }
        };
        match object {
            Watched::Namespace(n) => {
                let name = n.metadata.name.clone().unwrap_or_default();
                (
                    Contribution::Namespace(name.clone()),
                    vec![ClusterObject::Namespace {
                        name,
                        labels: n.metadata.labels.clone().unwrap_or_default(),
                    }],
                )
            }
            Watched::Deployment(d) => {
                let (meta, selector, template) = d.parts();
                workload(Deployment::KIND, meta, Some(selector), Some(template))
            }
            Watched::StatefulSet(d) => {
                let (meta, selector, template) = d.parts();
                workload(StatefulSet::KIND, meta, Some(selector), Some(template))
            }
            Watched::DaemonSet(d) => {
                let (meta, selector, template) = d.parts();
                workload(DaemonSet::KIND, meta, Some(selector), Some(template))
            }
            Watched::ReplicaSet(d) => match objects::owner(&d.metadata, &["Deployment"]) {
                Some((_, owner)) => self.owned(key, "ReplicaSet", owner),
                None => workload(
                    "ReplicaSet",
                    &d.metadata,
                    Some(&d.spec.selector),
                    d.spec.template.as_ref(),
                ),
            },
            Watched::Job(d) => match objects::owner(&d.metadata, &["CronJob"]) {
                Some((_, owner)) => self.owned(key, "Job", owner),
                None => workload(
                    "Job",
                    &d.metadata,
                    d.spec.as_ref().and_then(|s| s.selector.as_ref()),
                    d.spec.as_ref().map(|s| &s.template),
                ),
            },
            Watched::CronJob(d) => workload(
                "CronJob",
                &d.metadata,
                None,
                d.spec.job_template.spec.as_ref().map(|j| &j.template),
            ),
            Watched::Pod(pod) => self.pod(key, &pod),
            Watched::Service(s) => match objects::service(&s, &ns, at("Service", key)) {
                Ok(service) => (
                    Contribution::Service(service.id.clone()),
                    vec![ClusterObject::Service(service)],
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "Service {}/{} is left out", key.namespace, key.name);
                    (Contribution::Nothing, Vec::new())
                }
            },
            Watched::EndpointSlice(slice) => match objects::slice_service(&slice, &ns) {
                Some(Ok(service)) => {
                    let mut endpoints = ibac_render::facts::Endpoints::default();
                    objects::add_slice(&slice, &ns, &mut endpoints);
                    let id = (key.namespace.clone(), key.name.clone());
                    if let Some((old, _)) = self.slices.get(&id)
                        && old != &service
                    {
                        let old = old.clone();
                        if let Some(set) = self.slices_by_service.get_mut(&old) {
                            set.remove(&id);
                        }
                    }
                    self.slices.insert(id.clone(), (service.clone(), endpoints));
                    self.slices_by_service
                        .entry(service.clone())
                        .or_default()
                        .insert(id);
                    let merged = self.merged(&service).unwrap_or_default();
                    (
                        Contribution::Slice(service.clone()),
                        vec![ClusterObject::Endpoints {
                            service,
                            endpoints: merged,
                        }],
                    )
                }
                _ => (Contribution::Nothing, Vec::new()),
            },
            Watched::Ingress(ing) => (
                Contribution::Ingress,
                vec![ClusterObject::Ingress(objects::ingress(&ing, &ns))],
            ),
            Watched::ServiceAccount(sa) => (
                Contribution::ServiceAccount,
                vec![ClusterObject::ServiceAccount {
                    namespace: ns,
                    name: sa.metadata.name.clone().unwrap_or_default(),
                }],
            ),
            Watched::Document(..) => (Contribution::Nothing, Vec::new()),
        }
    }

    /// A ReplicaSet or Job that a Deployment or CronJob owns: its pods belong
    /// to that owner.
    fn owned(
        &mut self,
        key: &ObjectKey,
        kind: &str,
        owner: &str,
    ) -> (Contribution, Vec<ClusterObject>) {
        let link = (key.namespace.clone(), kind.to_owned(), key.name.clone());
        if self.owners.get(&link).map(String::as_str) != Some(owner) {
            self.owners.insert(link.clone(), owner.to_owned());
            let pods = self.pods_by_owner.get(&link).cloned().unwrap_or_default();
            let events = pods
                .iter()
                .filter_map(|name| {
                    let pod = self.pods.get(&(key.namespace.clone(), name.clone()))?;
                    Some(ClusterObject::Pod(self.pod_fact(&key.namespace, name, pod)))
                })
                .collect();
            return (Contribution::Owned, events);
        }
        (Contribution::Owned, Vec::new())
    }

    /// A pod: a workload of its own when nothing owns it; in any case a fact
    /// that ties EndpointSlices to its workload.
    fn pod(&mut self, key: &ObjectKey, pod: &Pod) -> (Contribution, Vec<ClusterObject>) {
        let owner = objects::first_owner(&pod.metadata);
        let annotated = objects::annotated_name(&pod.metadata);
        let remembered = PodOwner {
            owner: owner.clone(),
            annotated,
            labels: pod.metadata.labels.clone().unwrap_or_default(),
        };
        if let Some((kind, name)) = &owner {
            self.pods_by_owner
                .entry((key.namespace.clone(), kind.clone(), name.clone()))
                .or_default()
                .insert(key.name.clone());
        }
        let fact = self.pod_fact(&key.namespace, &key.name, &remembered);
        self.pods
            .insert((key.namespace.clone(), key.name.clone()), remembered);
        let mut events = Vec::new();
        let mut standalone = None;
        if owner.is_none() {
            match objects::standalone_pod(pod, &key.namespace, at("Pod", key)) {
                Ok(w) => {
                    // A standalone pod is a workload too: deleting it takes
                    // both out.
                    standalone = Some(w.id.clone());
                    events.push(ClusterObject::Workload(w));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "Pod {}/{} is left out", key.namespace, key.name)
                }
            }
        }
        events.push(ClusterObject::Pod(fact));
        (Contribution::Pod(standalone), events)
    }
}
