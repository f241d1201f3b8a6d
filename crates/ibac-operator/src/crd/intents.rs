//! `ClientIntents`: the calls a client makes, in Otterize's five versions (two
//! shapes: v1's `service` + `calls`, v2's `workload` + `targets`) and in
//! `ibac.dev/v1` (the v2 shape plus per-target `ports`).
//!
//! The value sets (HTTP methods, Kafka and SQL operations) come from
//! ibac-model, so the schema and `ibac validate` can never disagree on them;
//! rules across fields are the validating webhook's.

use ibac_model::http::Method;
use ibac_model::kafka::KafkaOperation;
use ibac_model::sql::SqlOperation;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};

use super::schema::{Schema, array, object, one_of_strings, port, string};
use super::{
    IBAC_GROUP, Kind, OTTERIZE_GROUP, Version, age, build, column, otterize_versions, ready,
    workload_field,
};

fn methods() -> Schema {
    let names: Vec<&str> = Method::ALL.iter().map(|m| m.as_str()).collect();
    array(one_of_strings(&names)).describe("HTTP methods (all when absent)")
}

fn kafka_operations() -> Schema {
    let names: Vec<&str> = KafkaOperation::ALL.iter().map(|o| o.as_str()).collect();
    array(one_of_strings(&names)).describe("Kafka operations (all when absent)")
}

fn sql_operations() -> Schema {
    let names: Vec<&str> = SqlOperation::ALL.iter().map(|o| o.as_str()).collect();
    array(one_of_strings(&names)).describe("SQL privileges")
}

fn http_rules() -> Schema {
    array(
        object([
            (
                "path",
                string().describe("`/api` is exact, `/api/*` the prefix `/api/`, `*` any path"),
            ),
            ("methods", methods()),
        ])
        .require(&["path"]),
    )
    .describe("The HTTP calls allowed (every path and method when absent)")
}

fn kafka_topics() -> Schema {
    array(
        object([
            ("name", string().describe("A topic, or `*` for all")),
            ("operations", kafka_operations()),
        ])
        .require(&["name"]),
    )
}

fn sql_privileges() -> Schema {
    array(
        object([
            ("databaseName", string()),
            (
                "table",
                string().describe("A table, `schema.table`, or `*` (all tables when absent)"),
            ),
            ("operations", sql_operations()),
        ])
        .require(&["databaseName"]),
    )
}

fn internet() -> Schema {
    object([
        (
            "domains",
            array(string()).describe("Domains, `*.example.com` for subdomains"),
        ),
        ("ips", array(string()).describe("Addresses or CIDR ranges")),
        ("ports", array(port())),
    ])
    .describe("Calls leaving the cluster")
}

fn key_vault_policy() -> Schema {
    object([
        ("certificatePermissions", array(string())),
        ("keyPermissions", array(string())),
        ("secretPermissions", array(string())),
        ("storagePermissions", array(string())),
    ])
}

fn client(with_kind: bool, what: &str) -> Schema {
    let name = string().describe("The client's workload name");
    let fields = if with_kind {
        object([
            ("name", name),
            (
                "kind",
                string().describe("The workload's kind (Deployment, StatefulSet, ...)"),
            ),
        ])
    } else {
        object([("name", name)])
    };
    fields.require(&["name"]).describe(what)
}

/// A `kubernetes:` or `service:` target of the v2 shape.
fn call_target(kubernetes: bool, ports: bool) -> Schema {
    let name = string().describe("`name` or `name.namespace` (the client's namespace when absent)");
    let mut target = object([("name", name), ("http", http_rules())]);
    if kubernetes {
        target = target.property(
            "kind",
            string().describe(
                "The workload's kind (Deployment, ...; Service means the pods a Service selects)",
            ),
        );
    }
    if ports {
        target = target.property(
            "ports",
            array(port()).describe(if kubernetes {
                "Container ports (all when absent)"
            } else {
                "Service ports (all when absent)"
            }),
        );
    }
    target.require(&["name"])
}

/// A `kafka:` or `sql:` target of the v2 shape: a server ibac configures,
/// named as `name` says, and what the client asks of it (`asks`).
fn server_target(name: &str, asks: (&str, Schema)) -> Schema {
    object([("name", string().describe(name)), asks]).require(&["name"])
}

/// The v2 shape; `ibac.dev/v1` adds `ports`.
fn v2_spec(ibac: bool) -> Schema {
    let target = object([
        (
            "kubernetes",
            call_target(true, ibac).describe("A workload in the cluster"),
        ),
        (
            "service",
            call_target(false, ibac).describe("The pods a Service selects, on its target ports"),
        ),
        (
            "kafka",
            server_target(
                "The Kafka server: `name` or `name.namespace`",
                ("topics", kafka_topics()),
            ),
        ),
        (
            "sql",
            server_target(
                "A PostgreSQLServerConfig or MySQLServerConfig name",
                ("privileges", sql_privileges()),
            ),
        ),
        ("internet", internet()),
        (
            "aws",
            object([("arn", string()), ("actions", array(string()))]).require(&["arn"]),
        ),
        (
            "gcp",
            object([("resource", string()), ("permissions", array(string()))])
                .require(&["resource"]),
        ),
        (
            "azure",
            object([
                ("scope", string()),
                ("roles", array(string())),
                ("actions", array(string())),
                ("dataActions", array(string())),
                ("keyVaultPolicy", key_vault_policy()),
            ])
            .require(&["scope"]),
        ),
    ])
    .exactly_one_property()
    .describe("One target: kubernetes, service, kafka, sql, internet, aws, gcp or azure");
    object([
        ("workload", client(true, "The client")),
        ("targets", array(target).describe("What the client calls")),
    ])
    .require(&["workload", "targets"])
    .describe("The calls one client makes")
}

/// The v1 shape: `service` + `calls` with a `type` each.
fn v1_spec(version: &str) -> Schema {
    let alpha2 = version == "v1alpha2";
    let types: &[&str] = if alpha2 {
        &["http", "kafka", "database"]
    } else {
        &[
            "http", "kafka", "database", "aws", "gcp", "azure", "internet",
        ]
    };
    let name = string().describe(
        "The server: `name`, `name.namespace` or `svc:service[.namespace]`; the resource for cloud calls",
    );
    let mut call = object([
        ("name", name),
        ("type", one_of_strings(types).describe("What kind of call")),
        ("databaseResources", sql_privileges()),
    ]);
    if alpha2 {
        call = call
            .property("resources", http_rules())
            .property("topics", kafka_topics());
    } else {
        call = call
            .property("kind", string().describe("The server workload's kind"))
            .property("HTTPResources", http_rules())
            .property("kafkaTopics", kafka_topics())
            .property("awsActions", array(string()))
            .property("gcpPermissions", array(string()))
            .property("azureRoles", array(string()))
            .property("azureKeyVaultPolicy", key_vault_policy())
            .property("internet", internet());
        if version == "v1beta1" {
            call = call
                .property("azureActions", array(string()))
                .property("azureDataActions", array(string()));
        }
    }
    object([
        ("service", client(!alpha2, "The client")),
        // `name` is optional because internet calls have none; that every
        // other call names its target is the validating webhook's rule.
        ("calls", array(call).describe("What the client calls")),
    ])
    .require(&["service", "calls"])
    .describe("The calls one client makes")
}

fn columns(v1: bool) -> Vec<CustomResourceColumnDefinition> {
    let client = format!(".spec.{}", workload_field(v1));
    vec![
        column(
            "Client",
            "string",
            &format!("{client}.name"),
            "The client's workload",
        ),
        column(
            "Kind",
            "string",
            &format!("{client}.kind"),
            "The client workload's kind",
        ),
        column(
            "Up To Date",
            "boolean",
            ".status.upToDate",
            "Whether the operator has applied the latest spec",
        ),
        ready(),
        age(),
    ]
}

const DESCRIPTION: &str = "The calls one client makes; servers it calls accept them once protected";

/// `ClientIntents` in `k8s.otterize.com`, every Otterize version.
pub fn otterize() -> CustomResourceDefinition {
    let versions = otterize_versions(|name, v1| Version {
        name,
        spec: if v1 { v1_spec(name) } else { v2_spec(false) },
        columns: columns(v1),
    });
    build(
        &Kind {
            group: OTTERIZE_GROUP,
            kind: "ClientIntents",
            plural: "clientintents",
            singular: "clientintents",
            short_names: &["intents"],
            categories: &["ibac", "otterize"],
            description: DESCRIPTION,
            storage: "v2beta1",
        },
        versions,
    )
}

/// `ClientIntents` in `ibac.dev/v1`.
pub fn ibac() -> CustomResourceDefinition {
    build(
        &Kind {
            group: IBAC_GROUP,
            kind: "ClientIntents",
            plural: "clientintents",
            singular: "clientintents",
            short_names: &["iintents"],
            categories: &["ibac"],
            description: DESCRIPTION,
            storage: "v1",
        },
        vec![Version {
            name: "v1",
            spec: v2_spec(true),
            columns: columns(false),
        }],
    )
}
