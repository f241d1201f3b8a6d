//! One ClientIntents per workload (DESIGN.md "Semantics"), across both
//! groups: a ClientIntents in `k8s.otterize.com` and one in `ibac.dev` for the
//! same `name.namespace` would be two owners of one client's calls, so the
//! validating webhook refuses the second, as `ibac validate` refuses it in a
//! set of files.
//!
//! The check reads what the API server holds when the request comes; two
//! creations racing each other can both pass (the index reports such a pair
//! on each object, as it reports any clash).

use ibac_model::{Document, WorkloadId};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use serde_json::Value;

use super::validate;
use crate::crd::{IBAC_GROUP, OTTERIZE_GROUP};

/// The ClientIntents resources, each read in its stored version (no
/// conversion needed, so the check never waits on this webhook itself).
fn resources() -> [ApiResource; 2] {
    let resource = |group: &str, version: &str| ApiResource {
        group: group.to_owned(),
        version: version.to_owned(),
        api_version: format!("{group}/{version}"),
        kind: "ClientIntents".to_owned(),
        plural: "clientintents".to_owned(),
    };
    [
        resource(OTTERIZE_GROUP, "v2beta1"),
        resource(IBAC_GROUP, "v1"),
    ]
}

/// The client a ClientIntents object declares calls for, when it reads.
fn client_of(object: &Value, namespace: &str) -> Option<WorkloadId> {
    let (parsed, _) = validate::read(object, Some(namespace));
    match parsed.documents.as_slice() {
        [Document::ClientIntents(ci)] => Some(ci.workload.id.clone()),
        _ => None,
    }
}

/// The field path of the client's name in `object`'s shape.
fn client_path(object: &Value) -> &'static str {
    if object["spec"].get("service").is_some() {
        "spec.service.name"
    } else {
        "spec.workload.name"
    }
}

/// Why `object`, a ClientIntents being created or changed in `namespace`,
/// clashes with another that the API server holds; `None` when it does not.
/// An API server that cannot be asked is a refusal too: nothing is admitted
/// unchecked.
pub async fn clash(client: &kube::Client, object: &Value, namespace: &str) -> Option<String> {
    if object["kind"] != "ClientIntents" {
        return None;
    }
    let id = client_of(object, namespace)?;
    let group = object["apiVersion"]
        .as_str()
        .and_then(|v| v.split_once('/'))
        .map(|(group, _)| group)
        .unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let path = client_path(object);
    for resource in resources() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                let why = match &e {
                    kube::Error::Api(status) => status.message.clone(),
                    e => e.to_string(),
                };
                return Some(format!(
                    "{path}: cannot check that `{id}` has one ClientIntents: listing {}: {why}",
                    resource.api_version
                ));
            }
        };
        for other in list.items {
            let other_name = other.metadata.name.clone().unwrap_or_default();
            if (resource.group == group && other_name == name)
                || other.metadata.deletion_timestamp.is_some()
            {
                continue;
            }
            let Ok(mut other_object) = serde_json::to_value(&other) else {
                continue;
            };
            other_object["apiVersion"] = Value::String(resource.api_version.clone());
            other_object["kind"] = Value::String(resource.kind.clone());
            if client_of(&other_object, namespace).as_ref() == Some(&id) {
                return Some(format!(
                    "{path}: ClientIntents for client `{id}` is already declared at clientintents.{}/{other_name}: one ClientIntents per workload, in either group; add these targets to that one, or delete it first",
                    resource.group
                ));
            }
        }
    }
    None
}
