//! Typed Kubernetes objects as cluster facts: one function per kind, shared by
//! the two producers of events — the reader of manifests
//! ([`crate::facts::ClusterFacts::read`]) and the operator's watches — so both
//! see a workload, a Service or an Ingress exactly alike.
//!
//! A workload's name is its object's name unless its pods carry Otterize's
//! `intents.otterize.com/workload-name` annotation, which names it instead.

use std::collections::BTreeSet;

use ibac_model::{Location, Name, Namespace, WorkloadId};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec, Service as K8sService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::facts::{
    ContainerPort, Endpoints, HttpProbe, IngressFact, Service, ServicePort, Workload,
};
use crate::labels::{self, Labels};

/// The pod annotation that names a pod's workload (Otterize's).
pub const WORKLOAD_NAME_ANNOTATION: &str = "intents.otterize.com/workload-name";

/// The pod annotation by which a server declares its callers (Otterize's):
/// a JSON list of `{"name": "client.namespace", "kind": "Deployment"}`.
pub const CALLED_BY_ANNOTATION: &str = "intents.otterize.com/called-by";

/// The callers a `called-by` annotation lists; any entry that does not read
/// makes the whole annotation unreadable, as Otterize treats it.
pub fn called_by(text: &str) -> Result<Vec<WorkloadId>, String> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        name: String,
        kind: String,
    }
    let entries: Vec<Entry> = serde_json::from_str(text).map_err(|e| {
        format!("`{CALLED_BY_ANNOTATION}` is not a JSON list of {{name, kind}}: {e}")
    })?;
    entries
        .into_iter()
        .map(|entry| {
            if !entry.kind.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(format!(
                    "`{CALLED_BY_ANNOTATION}`: kind `{}` of `{}` must start with a capital letter",
                    entry.kind, entry.name
                ));
            }
            if entry.name.matches('.').count() != 1 {
                return Err(format!(
                    "`{CALLED_BY_ANNOTATION}`: `{}` must be `workload.namespace`",
                    entry.name
                ));
            }
            WorkloadId::parse(&entry.name)
                .map_err(|e| format!("`{CALLED_BY_ANNOTATION}`: `{}`: {e}", entry.name))
        })
        .collect()
}

/// Why an object cannot be a fact.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// Its name is not one ibac can use.
    #[error("{kind} `{name}`: ibac cannot name it: {message}")]
    Name {
        /// The object's kind.
        kind: String,
        /// The name.
        name: String,
        /// Why.
        message: String,
    },
    /// Its namespace is not one ibac can use.
    #[error("{kind} `{name}`: namespace `{namespace}`: {message}")]
    Namespace {
        /// The object's kind.
        kind: String,
        /// The object's name.
        name: String,
        /// The namespace.
        namespace: String,
        /// Why.
        message: String,
    },
}

/// The namespace of `meta`, else `default_namespace`.
pub fn namespace_of(meta: &ObjectMeta, default_namespace: &str) -> String {
    meta.namespace
        .clone()
        .unwrap_or_else(|| default_namespace.to_owned())
}

/// `name.namespace` of an object called `name` in `meta`'s namespace.
pub fn id_of(
    kind: &str,
    name: &str,
    meta: &ObjectMeta,
    default_namespace: &str,
) -> Result<WorkloadId, ObjectError> {
    let ns = namespace_of(meta, default_namespace);
    match (Name::parse(name), Namespace::parse(&ns)) {
        (Ok(n), Ok(ns)) => Ok(WorkloadId::new(&n, &ns)),
        (Err(e), _) => Err(ObjectError::Name {
            kind: kind.to_owned(),
            name: name.to_owned(),
            message: e.to_string(),
        }),
        (_, Err(e)) => Err(ObjectError::Namespace {
            kind: kind.to_owned(),
            name: name.to_owned(),
            namespace: ns,
            message: e.to_string(),
        }),
    }
}

/// The first owner of `meta` of one of `kinds`: (kind, name).
pub fn owner<'m>(meta: &'m ObjectMeta, kinds: &[&str]) -> Option<(&'m str, &'m str)> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|o| kinds.contains(&o.kind.as_str()))
        .map(|o| (o.kind.as_str(), o.name.as_str()))
}

/// The first owner of `meta`, whatever its kind: (kind, name).
pub fn first_owner(meta: &ObjectMeta) -> Option<(String, String)> {
    meta.owner_references
        .iter()
        .flatten()
        .next()
        .map(|o| (o.kind.clone(), o.name.clone()))
}

/// The workload name a pod's annotation gives, if any.
pub fn annotated_name(meta: &ObjectMeta) -> Option<String> {
    meta.annotations
        .as_ref()
        .and_then(|a| a.get(WORKLOAD_NAME_ANNOTATION))
        .cloned()
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

/// The HTTP probes of the pod's containers, with named ports resolved to
/// the container's own port numbers; a probe whose port cannot be resolved
/// is left out (the kubelet could not send it either).
fn http_probes(spec: Option<&PodSpec>) -> Vec<HttpProbe> {
    let mut probes: Vec<HttpProbe> = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| {
            [&c.liveness_probe, &c.readiness_probe, &c.startup_probe]
                .into_iter()
                .flatten()
                .filter_map(|probe| probe.http_get.as_ref())
                .filter_map(move |get| {
                    let port = match &get.port {
                        IntOrString::Int(n) => u16::try_from(*n).ok()?,
                        IntOrString::String(name) => c
                            .ports
                            .iter()
                            .flatten()
                            .find(|p| p.name.as_deref() == Some(name))
                            .and_then(|p| u16::try_from(p.container_port).ok())?,
                    };
                    // Routes match the path without the query the probe
                    // may carry.
                    let path = get.path.as_deref().unwrap_or("/");
                    let path = path.split_once('?').map_or(path, |(p, _)| p);
                    Some(HttpProbe {
                        port,
                        path: path.to_string(),
                    })
                })
        })
        .collect();
    probes.sort();
    probes.dedup();
    probes
}

fn service_account(spec: Option<&PodSpec>) -> String {
    spec.and_then(|s| {
        s.service_account_name
            .clone()
            .or_else(|| s.service_account.clone())
    })
    .unwrap_or_else(|| "default".into())
}

/// A workload of `kind` (Deployment, StatefulSet, DaemonSet, ReplicaSet,
/// Job, CronJob or Pod) from its metadata, pod selector and pod template.
/// Jobs and CronJobs have generated selectors: their template's labels
/// identify their pods instead.
pub fn workload(
    kind: &str,
    meta: &ObjectMeta,
    selector: Option<&LabelSelector>,
    template: Option<&PodTemplateSpec>,
    default_namespace: &str,
    at: Location,
) -> Result<Workload, ObjectError> {
    let template_meta = template.and_then(|t| t.metadata.as_ref());
    let name = template_meta
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(WORKLOAD_NAME_ANNOTATION))
        .cloned()
        .or_else(|| meta.name.clone())
        .unwrap_or_default();
    let id = id_of(kind, &name, meta, default_namespace)?;
    let pod_labels: Labels = template_meta
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let selector = match selector {
        Some(s) if !labels::is_empty(s) && kind != "Job" => s.clone(),
        _ => labels::of_labels(&pod_labels),
    };
    let spec = template.and_then(|t| t.spec.as_ref());
    Ok(Workload {
        id,
        kind: kind.into(),
        selector,
        pod_labels,
        ports: pod_ports(spec),
        probes: http_probes(spec),
        service_account: service_account(spec),
        host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
        called_by: template_meta
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(CALLED_BY_ANNOTATION))
            .map_or(Ok(Vec::new()), |text| called_by(text)),
        at,
    })
}

/// The workload kinds whose pods come from a template under the object's own
/// selector, and never from an owner: each is a workload.
pub trait Templated: serde::de::DeserializeOwned {
    /// The kind.
    const KIND: &'static str;
    /// Its metadata, selector and pod template.
    fn parts(&self) -> (&ObjectMeta, &LabelSelector, &PodTemplateSpec);
}

macro_rules! templated {
    ($($kind:ident),*) => {
        $(impl Templated for $kind {
            const KIND: &'static str = stringify!($kind);
            fn parts(&self) -> (&ObjectMeta, &LabelSelector, &PodTemplateSpec) {
                (&self.metadata, &self.spec.selector, &self.spec.template)
            }
        })*
    };
}

templated!(Deployment, StatefulSet, DaemonSet);

/// A Deployment, StatefulSet or DaemonSet as a workload.
pub fn templated<T: Templated>(
    object: &T,
    default_namespace: &str,
    at: Location,
) -> Result<Workload, ObjectError> {
    let (meta, selector, template) = object.parts();
    workload(
        T::KIND,
        meta,
        Some(selector),
        Some(template),
        default_namespace,
        at,
    )
}

/// A pod without an owner is a workload of its own, selected by its labels.
pub fn standalone_pod(
    pod: &Pod,
    default_namespace: &str,
    at: Location,
) -> Result<Workload, ObjectError> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    let template = PodTemplateSpec {
        metadata: Some(pod.metadata.clone()),
        spec: pod.spec.clone(),
    };
    let selector = labels::of_labels(&labels);
    workload(
        "Pod",
        &pod.metadata,
        Some(&selector),
        Some(&template),
        default_namespace,
        at,
    )
}

/// The name of the workload a pod belongs to, given its owner's name: the
/// annotation when the pod carries it, else that owner.
pub fn pod_workload_name(pod: &Pod, owner: &str) -> String {
    annotated_name(&pod.metadata).unwrap_or_else(|| owner.to_owned())
}

/// A Service.
pub fn service(
    s: &K8sService,
    default_namespace: &str,
    at: Location,
) -> Result<Service, ObjectError> {
    let name = s.metadata.name.clone().unwrap_or_default();
    let id = id_of("Service", &name, &s.metadata, default_namespace)?;
    let spec = s.spec.clone().unwrap_or_default();
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
    Ok(Service {
        id,
        selector: spec.selector.filter(|s| !s.is_empty()),
        ports,
        exposed,
        at,
    })
}

/// The Service an EndpointSlice belongs to (its `kubernetes.io/service-name`
/// label), when it has one.
pub fn slice_service(
    slice: &EndpointSlice,
    default_namespace: &str,
) -> Option<Result<WorkloadId, ObjectError>> {
    let service = slice
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get("kubernetes.io/service-name"))?;
    Some(id_of(
        "EndpointSlice for Service",
        service,
        &slice.metadata,
        default_namespace,
    ))
}

/// Adds what one EndpointSlice holds to `into`.
pub fn add_slice(slice: &EndpointSlice, default_namespace: &str, into: &mut Endpoints) {
    let ns = namespace_of(&slice.metadata, default_namespace);
    for endpoint in slice.endpoints.iter().flatten() {
        into.addresses.extend(endpoint.addresses.iter().cloned());
        if let Some(target) = &endpoint.target_ref
            && target.kind.as_deref() == Some("Pod")
        {
            let pod_ns = target.namespace.clone().unwrap_or_else(|| ns.clone());
            into.pods
                .insert((pod_ns, target.name.clone().unwrap_or_default()));
        }
    }
    into.ports.extend(
        slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.port.and_then(|n| u16::try_from(n).ok())),
    );
}

/// An Ingress and the Services it routes to.
pub fn ingress(ing: &Ingress, default_namespace: &str) -> IngressFact {
    let ns = namespace_of(&ing.metadata, default_namespace);
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
    IngressFact {
        namespace: ns,
        name: ing.metadata.name.clone().unwrap_or_default(),
        backends,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::PodSpec;

    use super::*;

    /// Probes are read from every container, with a named port resolved
    /// to that container's own port and the query cut off; one naming a
    /// port its container does not have is left out, as the kubelet could
    /// not send it.
    #[test]
    fn http_probes_resolve_named_ports() {
        let spec: PodSpec = serde_json::from_value(serde_json::json!({
            "containers": [
                {"name": "a", "ports": [{"name": "http", "containerPort": 8080}],
                 "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}},
                 "readinessProbe": {"httpGet": {"port": 8081}},
                 "startupProbe": {"httpGet": {"path": "/started?full=1", "port": 8081}}},
                {"name": "c",
                 "livenessProbe": {"httpGet": {"path": "/x", "port": "http"}}},
                {"name": "b", "livenessProbe": {"exec": {"command": ["true"]}}}
            ]
        }))
        .unwrap();
        assert_eq!(
            http_probes(Some(&spec)),
            vec![
                HttpProbe {
                    port: 8080,
                    path: "/healthz".into()
                },
                HttpProbe {
                    port: 8081,
                    path: "/".into()
                },
                HttpProbe {
                    port: 8081,
                    path: "/started".into()
                },
            ]
        );
    }

    fn template(annotations: &[(&str, &str)], host_network: bool) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".to_string(), "web".to_string())])),
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                host_network: Some(host_network),
                ..PodSpec::default()
            }),
        }
    }

    fn meta(name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn the_annotation_names_the_workload() {
        let at = Location::whole("t".into());
        let plain = workload(
            "Deployment",
            &meta("web-v2"),
            None,
            Some(&template(&[], false)),
            "default",
            at.clone(),
        )
        .unwrap();
        assert_eq!(plain.id.to_string(), "web-v2.shop");
        let named = workload(
            "Deployment",
            &meta("web-v2"),
            None,
            Some(&template(&[(WORKLOAD_NAME_ANNOTATION, "web")], true)),
            "default",
            at,
        )
        .unwrap();
        assert_eq!(named.id.to_string(), "web.shop");
        assert!(named.host_network);
        assert!(!plain.host_network);
    }

    #[test]
    fn called_by_reads_as_otterize_reads_it() {
        assert_eq!(
            called_by(r#"[{"name": "prometheus.infra", "kind": "Deployment"}]"#).unwrap(),
            vec![WorkloadId::parse("prometheus.infra").unwrap()]
        );
        for bad in [
            r#"[{"name": "prometheus", "kind": "Deployment"}]"#,
            r#"[{"name": "a.b.c", "kind": "Deployment"}]"#,
            r#"[{"name": "prometheus.infra", "kind": "deployment"}]"#,
            r#"[{"name": "prometheus.infra"}]"#,
            r#"{"name": "prometheus.infra", "kind": "Deployment"}"#,
        ] {
            assert!(called_by(bad).is_err(), "{bad}");
        }
        let at = Location::whole("t".into());
        let annotated = workload(
            "Deployment",
            &meta("web"),
            None,
            Some(&template(
                &[(
                    CALLED_BY_ANNOTATION,
                    r#"[{"name": "probe.infra", "kind": "Deployment"}]"#,
                )],
                false,
            )),
            "default",
            at,
        )
        .unwrap();
        assert_eq!(
            annotated.called_by,
            Ok(vec![WorkloadId::parse("probe.infra").unwrap()])
        );
    }

    #[test]
    fn a_name_ibac_cannot_use_is_an_error() {
        let e = workload(
            "Deployment",
            &meta("Web"),
            None,
            None,
            "default",
            Location::whole("t".into()),
        )
        .unwrap_err();
        assert!(matches!(e, ObjectError::Name { .. }), "{e}");
    }
}
