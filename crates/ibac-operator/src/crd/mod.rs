//! The CustomResourceDefinitions ibac installs, written by ibac with full
//! structural schemas: Otterize's `k8s.otterize.com` kinds, accepted unchanged,
//! and ibac's own `ibac.dev` kinds.
//!
//! The same definitions go into the Helm chart's `crds/` and are applied by the
//! operator on start (Helm never upgrades `crds/`).

pub mod schema;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use schema::{Schema, object, string};

/// The API group of Otterize's kinds.
pub const OTTERIZE_GROUP: &str = "k8s.otterize.com";

/// The label on every object ibac writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ibac");

/// A workload name: lowercase letters, digits, `-` and `_`, starting and
/// ending with a letter or digit (DESIGN.md "Semantics").
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$";

/// Every CustomResourceDefinition ibac installs.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![protected_service()]
}

/// One served version of a kind.
struct Version {
    name: &'static str,
    spec: Schema,
    columns: Vec<CustomResourceColumnDefinition>,
}

/// The parts of a CRD that do not change between its versions.
struct Kind {
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    singular: &'static str,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    description: &'static str,
    /// The version objects are stored in.
    storage: &'static str,
}

fn column(
    name: &str,
    type_: &str,
    path: &str,
    description: &str,
) -> CustomResourceColumnDefinition {
    CustomResourceColumnDefinition {
        name: name.to_owned(),
        type_: type_.to_owned(),
        json_path: path.to_owned(),
        description: Some(description.to_owned()),
        ..CustomResourceColumnDefinition::default()
    }
}

fn age() -> CustomResourceColumnDefinition {
    column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "Time since creation",
    )
}

/// The status of every ibac kind: fields Otterize's operator writes, and
/// ibac's conditions. Written only by ibac, through the status subresource,
/// and as structural as the spec: a field ibac adds is added here.
fn status() -> Schema {
    object([
        (
            "upToDate",
            schema::boolean().describe("Whether the operator has applied the latest spec"),
        ),
        (
            "observedGeneration",
            schema::integer().describe("The generation the status describes"),
        ),
        (
            "conditions",
            schema::array(
                object([
                    ("type", string()),
                    (
                        "status",
                        schema::one_of_strings(&["True", "False", "Unknown"]),
                    ),
                    ("reason", string()),
                    ("message", string()),
                    ("observedGeneration", schema::integer()),
                    ("lastTransitionTime", string().describe("RFC 3339")),
                ])
                .require(&["type", "status"]),
            )
            .describe("Per enforcer: Ready, Enforced, Shadow or Error, with a reason"),
        ),
    ])
}

fn build(kind: &Kind, versions: Vec<Version>) -> CustomResourceDefinition {
    let name = format!("{}.{}", kind.plural, kind.group);
    let versions = versions
        .into_iter()
        .map(|v| CustomResourceDefinitionVersion {
            name: v.name.to_owned(),
            served: true,
            storage: v.name == kind.storage,
            additional_printer_columns: Some(v.columns),
            subresources: Some(CustomResourceSubresources {
                status: Some(CustomResourceSubresourceStatus(serde_json::json!({}))),
                ..CustomResourceSubresources::default()
            }),
            schema: Some(CustomResourceValidation {
                open_api_v3_schema: Some(
                    object([
                        ("apiVersion", string()),
                        ("kind", string()),
                        ("metadata", schema::typed_object()),
                        ("spec", v.spec),
                        ("status", status()),
                    ])
                    .describe(kind.description)
                    .require(&["spec"])
                    .0,
                ),
            }),
            ..CustomResourceDefinitionVersion::default()
        })
        .collect();
    CustomResourceDefinition {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(BTreeMap::from([(
                MANAGED_BY.0.to_owned(),
                MANAGED_BY.1.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: CustomResourceDefinitionSpec {
            group: kind.group.to_owned(),
            names: CustomResourceDefinitionNames {
                kind: kind.kind.to_owned(),
                list_kind: Some(format!("{}List", kind.kind)),
                plural: kind.plural.to_owned(),
                singular: Some(kind.singular.to_owned()),
                short_names: Some(kind.short_names.iter().map(|s| (*s).to_owned()).collect()),
                categories: Some(kind.categories.iter().map(|s| (*s).to_owned()).collect()),
            },
            scope: "Namespaced".to_owned(),
            versions,
            ..CustomResourceDefinitionSpec::default()
        },
        status: None,
    }
}

/// The workload a ProtectedService protects.
fn protected_service_spec(with_kind: bool) -> Schema {
    let name = string()
        .pattern(NAME_PATTERN)
        .max_length(253)
        .describe("The server's workload name");
    let spec = if with_kind {
        object([
            ("name", name),
            (
                "kind",
                string().describe(
                    "The workload's kind (Deployment, StatefulSet, ...); optional when the name is unique",
                ),
            ),
        ])
    } else {
        object([("name", name)])
    };
    spec.require(&["name"])
        .describe("The server to protect: only declared calls reach it")
}

/// `ProtectedService`: protection for one server, in every Otterize version.
pub fn protected_service() -> CustomResourceDefinition {
    let columns = || {
        vec![
            column(
                "Server",
                "string",
                ".spec.name",
                "The protected server's workload",
            ),
            age(),
        ]
    };
    let versions = ["v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1"]
        .into_iter()
        .map(|name| Version {
            name,
            spec: protected_service_spec(name != "v1alpha2"),
            columns: columns(),
        })
        .collect();
    build(
        &Kind {
            group: OTTERIZE_GROUP,
            kind: "ProtectedService",
            plural: "protectedservices",
            singular: "protectedservice",
            short_names: &["psvc"],
            categories: &["ibac", "otterize"],
            description: "Protects one server: only the calls that ClientIntents declare reach it",
            storage: "v2beta1",
        },
        versions,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crd_stores_one_version_and_is_named_after_its_plural() {
        for crd in all() {
            let spec = &crd.spec;
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{}.{}", spec.names.plural, spec.group).as_str())
            );
            let stored: Vec<&str> = spec
                .versions
                .iter()
                .filter(|v| v.storage)
                .map(|v| v.name.as_str())
                .collect();
            assert_eq!(stored.len(), 1, "{}: {stored:?}", spec.names.kind);
        }
    }
}
