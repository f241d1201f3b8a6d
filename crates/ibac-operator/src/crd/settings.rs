//! The kinds that describe servers and settings rather than calls:
//! ProtectedService, KafkaServerConfig, PostgreSQLServerConfig,
//! MySQLServerConfig (Otterize's and ibac's) and EnforcementConfig (ibac's).

use ibac_model::Enforcers;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceColumnDefinition, CustomResourceDefinition,
};

use super::schema::{Schema, array, boolean, object, one_of_strings, string};
use super::{
    IBAC_GROUP, Kind, NAME_PATTERN, OTTERIZE_GROUP, OTTERIZE_VERSIONS, Version, age, build, column,
    otterize_versions, ready, workload_field,
};

/// A workload's name as a server names it.
fn workload_name(what: &str) -> Schema {
    string()
        .pattern(NAME_PATTERN)
        .max_length(253)
        .describe(what)
}

/// `{name, kind}` of a workload; v1alpha2 has no `kind`.
fn workload(what: &str, with_kind: bool) -> Schema {
    let name = workload_name(what);
    let fields = if with_kind {
        object([
            ("name", name),
            (
                "kind",
                string().describe(
                    "The workload's kind (Deployment, StatefulSet, ...); needed only when several workloads share the name",
                ),
            ),
        ])
    } else {
        object([("name", name)])
    };
    fields.require(&["name"])
}

fn protected_service_spec(with_kind: bool) -> Schema {
    workload("The server's workload name", with_kind)
        .describe("The server to protect: only declared calls reach it")
}

fn protected_service_columns(with_kind: bool) -> Vec<CustomResourceColumnDefinition> {
    let mut columns = vec![column(
        "Server",
        "string",
        ".spec.name",
        "The protected server's workload",
    )];
    if with_kind {
        columns.push(column(
            "Kind",
            "string",
            ".spec.kind",
            "The workload's kind",
        ));
    }
    columns.extend([
        column(
            "Protected",
            "boolean",
            ".status.protected",
            "Whether the server is protected",
        ),
        column(
            "Enforced By",
            "string",
            ".status.enforcedBy",
            "The enforcers whose objects protect the server",
        ),
        column(
            "Clients",
            "integer",
            ".status.allowedClients",
            "How many declared clients the server allows",
        ),
        ready(),
        age(),
    ]);
    columns
}

const PROTECTED_SERVICE: &str =
    "Protects one server: only the calls that ClientIntents declare reach it";

/// `ProtectedService` in `k8s.otterize.com`, every Otterize version.
pub fn protected_service() -> CustomResourceDefinition {
    let versions = otterize_versions(|name, _| Version {
        name,
        spec: protected_service_spec(name != "v1alpha2"),
        columns: protected_service_columns(name != "v1alpha2"),
    });
    build(
        &Kind {
            group: OTTERIZE_GROUP,
            kind: "ProtectedService",
            plural: "protectedservices",
            singular: "protectedservice",
            short_names: &["psvc"],
            categories: &["ibac", "otterize"],
            description: PROTECTED_SERVICE,
            storage: "v2beta1",
        },
        versions,
    )
}

/// `ProtectedService` in `ibac.dev/v1`.
pub fn ibac_protected_service() -> CustomResourceDefinition {
    build(
        &Kind {
            group: IBAC_GROUP,
            kind: "ProtectedService",
            plural: "protectedservices",
            singular: "protectedservice",
            short_names: &["ipsvc"],
            categories: &["ibac"],
            description: PROTECTED_SERVICE,
            storage: "v1",
        },
        vec![Version {
            name: "v1",
            spec: protected_service_spec(true),
            columns: protected_service_columns(true),
        }],
    )
}

fn kafka_spec(v1: bool, with_kind: bool) -> Schema {
    let identity = workload_field(v1);
    let tls = object([
        (
            "certFile",
            string().describe("Path of the client certificate"),
        ),
        ("keyFile", string().describe("Path of the client key")),
        (
            "rootCAFile",
            string().describe("Path of the CA bundle that signs the brokers"),
        ),
    ])
    .require(&["certFile", "keyFile", "rootCAFile"]);
    let topic = object([
        ("topic", string().describe("A topic name, or a prefix")),
        ("pattern", one_of_strings(&["literal", "prefix"])),
        ("clientIdentityRequired", boolean()),
        ("intentsRequired", boolean()),
    ])
    .require(&[
        "topic",
        "pattern",
        "clientIdentityRequired",
        "intentsRequired",
    ]);
    object([
        (
            identity,
            workload("The broker's workload name", with_kind).describe("The Kafka broker"),
        ),
        (
            "addr",
            string().describe("The brokers' bootstrap address, host:port"),
        ),
        ("tls", tls),
        (
            "topics",
            array(topic).describe("Which topics need a client identity and declared intents"),
        ),
        ("noAutoCreateIntentsForOperator", boolean()),
    ])
    .require(&[identity])
    .describe("A Kafka broker whose ACLs ibac manages")
}

fn kafka_columns(v1: bool) -> Vec<CustomResourceColumnDefinition> {
    let identity = format!(".spec.{}.name", workload_field(v1));
    vec![
        column("Broker", "string", &identity, "The broker's workload"),
        column("Address", "string", ".spec.addr", "The bootstrap address"),
        age(),
    ]
}

/// `KafkaServerConfig` in `k8s.otterize.com`, every Otterize version.
pub fn kafka_server_config() -> CustomResourceDefinition {
    let versions = otterize_versions(|name, v1| Version {
        name,
        spec: kafka_spec(v1, name != "v1alpha2"),
        columns: kafka_columns(v1),
    });
    build(
        &Kind {
            group: OTTERIZE_GROUP,
            kind: "KafkaServerConfig",
            plural: "kafkaserverconfigs",
            singular: "kafkaserverconfig",
            short_names: &["ksc"],
            categories: &["ibac", "otterize"],
            description: "A Kafka broker whose topic ACLs follow ClientIntents",
            storage: "v2beta1",
        },
        versions,
    )
}

/// `KafkaServerConfig` in `ibac.dev/v1`.
pub fn ibac_kafka_server_config() -> CustomResourceDefinition {
    build(
        &Kind {
            group: IBAC_GROUP,
            kind: "KafkaServerConfig",
            plural: "kafkaserverconfigs",
            singular: "kafkaserverconfig",
            short_names: &["iksc"],
            categories: &["ibac"],
            description: "A Kafka broker whose topic ACLs follow ClientIntents",
            storage: "v1",
        },
        vec![Version {
            name: "v1",
            spec: kafka_spec(false, true),
            columns: kafka_columns(false),
        }],
    )
}

/// Which SQL server a config describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Database {
    /// `PostgreSQLServerConfig`.
    PostgreSql,
    /// `MySQLServerConfig`.
    MySql,
}

impl Database {
    /// This kind's names and description, in Otterize's group or (`ibac`)
    /// in ibac's, which also differ in short names, categories and the
    /// version stored.
    fn kind(self, ibac: bool) -> Kind {
        let (kind, plural, singular, description) = match self {
            Database::PostgreSql => (
                "PostgreSQLServerConfig",
                "postgresqlserverconfigs",
                "postgresqlserverconfig",
                "A PostgreSQL server whose grants follow ClientIntents; intents name it by this object's name",
            ),
            Database::MySql => (
                "MySQLServerConfig",
                "mysqlserverconfigs",
                "mysqlserverconfig",
                "A MySQL or MariaDB server whose grants follow ClientIntents; intents name it by this object's name",
            ),
        };
        let short_names: &'static [&'static str] = match (self, ibac) {
            (Database::PostgreSql, false) => &["pgsc"],
            (Database::MySql, false) => &["mysc"],
            (Database::PostgreSql, true) => &["ipgsc"],
            (Database::MySql, true) => &["imysc"],
        };
        Kind {
            group: if ibac { IBAC_GROUP } else { OTTERIZE_GROUP },
            kind,
            plural,
            singular,
            short_names,
            categories: if ibac {
                &["ibac"]
            } else {
                &["ibac", "otterize"]
            },
            description,
            storage: if ibac { "v1" } else { "v2beta1" },
        }
    }
}

fn database_spec() -> Schema {
    let secret_ref = object([
        ("name", string().describe("The Secret's name")),
        (
            "namespace",
            string().describe("The Secret's namespace (default: this object's)"),
        ),
        (
            "usernameKey",
            string().describe("The key that holds the user name (default: username)"),
        ),
        (
            "passwordKey",
            string().describe("The key that holds the password (default: password)"),
        ),
    ])
    .require(&["name"]);
    object([
        (
            "address",
            string().describe("The server's address, host:port"),
        ),
        (
            "credentials",
            object([
                ("username", string()),
                ("password", string()),
                (
                    "secretRef",
                    secret_ref.describe("A Secret holding the user name and password"),
                ),
            ])
            .describe("How ibac logs in to manage grants: username and password, or a secretRef"),
        ),
    ])
    .require(&["address", "credentials"])
}

fn database_columns() -> Vec<CustomResourceColumnDefinition> {
    vec![
        column("Address", "string", ".spec.address", "The server's address"),
        age(),
    ]
}

/// `PostgreSQLServerConfig` or `MySQLServerConfig` in `k8s.otterize.com`,
/// the versions Otterize serves them in (they came with v1alpha3).
pub fn database_server_config(database: Database) -> CustomResourceDefinition {
    let versions = OTTERIZE_VERSIONS
        .into_iter()
        .filter(|v| *v != "v1alpha2")
        .map(|name| Version {
            name,
            spec: database_spec(),
            columns: database_columns(),
        })
        .collect();
    build(&database.kind(false), versions)
}

/// `PostgreSQLServerConfig` or `MySQLServerConfig` in `ibac.dev/v1`.
pub fn ibac_database_server_config(database: Database) -> CustomResourceDefinition {
    build(
        &database.kind(true),
        vec![Version {
            name: "v1",
            spec: database_spec(),
            columns: database_columns(),
        }],
    )
}

/// `EnforcementConfig` (`ibac.dev/v1` only): the settings.
pub fn enforcement_config() -> CustomResourceDefinition {
    let mut enforcers = object([]);
    for field in Enforcers::FIELDS {
        enforcers = enforcers.property(field, boolean());
    }
    let spec = object([
        (
            "mode",
            one_of_strings(&["defaultShadow", "defaultActive"]).describe(
                "defaultShadow: only protected servers are enforced; defaultActive: every server is",
            ),
        ),
        (
            "enforcedNamespaces",
            array(string()).describe("Namespaces whose servers are all protected"),
        ),
        (
            "enforcers",
            enforcers.describe("Each enforcer on or off"),
        ),
        (
            "externalTraffic",
            one_of_strings(&["off", "ifBlocked", "always", "ifBlockedByOtterize"]).describe(
                "Traffic from outside the cluster (LoadBalancer, NodePort, Ingress) to protected servers: off, ifBlocked or always",
            ),
        ),
    ])
    .describe("ibac's settings; the operator reads the one in its own namespace");
    build(
        &Kind {
            group: IBAC_GROUP,
            kind: "EnforcementConfig",
            plural: "enforcementconfigs",
            singular: "enforcementconfig",
            short_names: &["enforcement"],
            categories: &["ibac"],
            description: "ibac's settings: mode, enforced namespaces, enforcers",
            storage: "v1",
        },
        vec![Version {
            name: "v1",
            spec,
            columns: vec![
                column(
                    "Mode",
                    "string",
                    ".spec.mode",
                    "defaultShadow or defaultActive",
                ),
                column(
                    "Enforced Namespaces",
                    "string",
                    ".spec.enforcedNamespaces",
                    "Namespaces whose servers are all protected",
                ),
                age(),
            ],
        }],
    )
}
