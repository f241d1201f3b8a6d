//! The CustomResourceDefinitions ibac installs, written by ibac with full
//! structural schemas: Otterize's `k8s.otterize.com` kinds, accepted unchanged,
//! and ibac's own `ibac.dev` kinds.
//!
//! The same definitions go into the Helm chart's `crds/` and are applied by the
//! operator on start (Helm never upgrades `crds/`).

mod intents;
pub mod schema;
mod settings;

use std::collections::BTreeMap;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition, CustomResourceDefinitionNames,
    CustomResourceDefinitionSpec, CustomResourceDefinitionVersion, CustomResourceSubresourceStatus,
    CustomResourceSubresources, CustomResourceValidation,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use schema::{Schema, object, string};

pub use settings::Database;

/// The API group of Otterize's kinds.
pub const OTTERIZE_GROUP: &str = "k8s.otterize.com";

/// The API group of ibac's own kinds.
pub const IBAC_GROUP: &str = "ibac.dev";

/// Every version of Otterize's kinds that Otterize still serves, oldest first.
/// ibac serves them all and stores `v2beta1`.
pub const OTTERIZE_VERSIONS: [&str; 5] = ["v1alpha2", "v1alpha3", "v1beta1", "v2alpha1", "v2beta1"];

/// The label on every object ibac writes.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "ibac");

/// A workload name: lowercase letters, digits, `-` and `_`, starting and
/// ending with a letter or digit (DESIGN.md "Semantics").
pub const NAME_PATTERN: &str = "^[a-z0-9]([a-z0-9_-]*[a-z0-9])?$";

/// Every CustomResourceDefinition ibac installs.
///
/// The versions of one kind differ in shape (v1's `service`/`calls`, v2's
/// `workload`/`targets`), so reading an object in another version than it was
/// written needs the conversion webhook. These definitions carry none (the
/// chart's `crds/` are installed before any webhook runs); an operator that
/// serves its webhooks adds it with
/// [`with_conversion`](crate::webhook::config::with_conversion) when it applies
/// them.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![
        intents::otterize(),
        settings::protected_service(),
        settings::kafka_server_config(),
        settings::database_server_config(Database::PostgreSql),
        settings::database_server_config(Database::MySql),
        intents::ibac(),
        settings::ibac_protected_service(),
        settings::ibac_kafka_server_config(),
        settings::ibac_database_server_config(Database::PostgreSql),
        settings::ibac_database_server_config(Database::MySql),
        settings::enforcement_config(),
    ]
}

/// The spec field that names the workload an object is about: Otterize's v1
/// versions call it `service`; its v2 versions and ibac's kinds, `workload`.
pub(crate) fn workload_field(v1: bool) -> &'static str {
    if v1 { "service" } else { "workload" }
}

/// The served versions of an Otterize kind, each made by `version` from its
/// name and whether it is a v1 version (whose shape differs, see [`all`]).
pub(crate) fn otterize_versions(version: impl Fn(&'static str, bool) -> Version) -> Vec<Version> {
    OTTERIZE_VERSIONS
        .into_iter()
        .map(|name| version(name, name.starts_with("v1")))
        .collect()
}

/// One served version of a kind.
pub(crate) struct Version {
    pub name: &'static str,
    pub spec: Schema,
    pub columns: Vec<CustomResourceColumnDefinition>,
}

/// The parts of a CRD that do not change between its versions.
pub(crate) struct Kind {
    pub group: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub description: &'static str,
    /// The version objects are stored in.
    pub storage: &'static str,
}

pub(crate) fn column(
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

pub(crate) fn age() -> CustomResourceColumnDefinition {
    column(
        "Age",
        "date",
        ".metadata.creationTimestamp",
        "Time since creation",
    )
}

/// The `Ready` condition's status, a column of the kinds that have it.
pub(crate) fn ready() -> CustomResourceColumnDefinition {
    column(
        "Ready",
        "string",
        ".status.conditions[?(@.type==\"Ready\")].status",
        "Whether every enforcer enforces it",
    )
}

/// The status of every ibac kind: fields Otterize's operator writes, and
/// ibac's conditions. Written only by ibac, through the status subresource,
/// and as structural as the spec: a field ibac adds is added here.
fn status(kind: &str) -> Schema {
    let resolved_ips = object([("dns", string()), ("ips", schema::array(string()))]);
    let status = object([
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
    ]);
    match kind {
        "ClientIntents" => status.property(
            "resolvedIPs",
            schema::array(resolved_ips).describe(
                "The addresses of internet targets' domains, as the network mapper saw them",
            ),
        ),
        "ProtectedService" => status
            .property(
                "protected",
                schema::boolean().describe("Whether the server is protected"),
            )
            .property(
                "enforcedBy",
                schema::array(string()).describe("The enforcers whose objects protect the server"),
            )
            .property(
                "allowedClients",
                schema::integer().describe("How many declared clients the server allows"),
            ),
        _ => status,
    }
}

pub(crate) fn build(kind: &Kind, versions: Vec<Version>) -> CustomResourceDefinition {
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
                        ("status", status(kind.kind)),
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
