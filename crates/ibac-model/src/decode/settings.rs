//! `ProtectedService`, `EnforcementConfig` and the server configs.

use super::intents::read_workload;
use super::{DocContext, name_hint};
use crate::document::{
    Credentials, EnforcementConfig, Enforcers, ExternalTraffic, KafkaServerConfig, KafkaTls,
    KafkaTopicConfig, Meta, Mode, SecretRef, SqlDialect, WorkloadRef,
};
use crate::error::Hint;
use crate::name::Namespace;
use crate::read::{Fields, Reader};
use crate::yaml::Node;

/// `spec: {name, kind}`.
pub(super) fn protected_service(
    reader: &mut Reader<'_>,
    spec: &Node,
    cx: &DocContext,
) -> Option<WorkloadRef> {
    read_workload(
        reader,
        spec,
        cx,
        "ProtectedService spec",
        "protected service name",
    )
}

/// A setting written as one of a few words, `T::default()` when absent.
fn setting<T: Default>(
    reader: &mut Reader<'_>,
    fields: &Fields<'_>,
    key: &str,
    what: &'static str,
    parse: fn(&str) -> Option<T>,
    choices: &'static str,
) -> Option<T> {
    let Some(n) = fields.get(key) else {
        return Some(T::default());
    };
    let text = reader.string(n, "a string")?;
    parse(text)
        .ok_or_else(|| reader.invalid(n, what, text, Hint::new(choices)))
        .ok()
}

/// ibac's global settings.
pub(super) fn enforcement_config(
    reader: &mut Reader<'_>,
    spec: &Node,
    _cx: &DocContext,
    meta: Meta,
) -> Option<EnforcementConfig> {
    let fields = reader.map_with(
        spec,
        "EnforcementConfig spec",
        &["mode", "enforcedNamespaces", "enforcers", "externalTraffic"],
        |f| {
            (f == "automateThirdPartyNetworkPolicies")
                .then(|| "ibac calls this setting `externalTraffic`".to_string())
        },
    )?;
    let mode = setting(
        reader,
        &fields,
        "mode",
        "mode",
        Mode::parse,
        "use `defaultShadow` or `defaultActive`",
    );
    let enforced_namespaces = match fields.get("enforcedNamespaces") {
        None => Some(Vec::new()),
        Some(n) => reader.strings(n, "a list of namespaces", |r, n, text| {
            Namespace::parse(text)
                .map_err(|e| r.invalid(n, "namespace", text, name_hint(&e)))
                .ok()
        }),
    };
    let enforcers = match fields.get("enforcers") {
        None => Some(Enforcers::default()),
        Some(n) => read_enforcers(reader, n),
    };
    let external_traffic = setting(
        reader,
        &fields,
        "externalTraffic",
        "externalTraffic setting",
        ExternalTraffic::parse,
        "use `off`, `ifBlocked` or `always`",
    );
    Some(EnforcementConfig {
        meta,
        mode: mode?,
        enforced_namespaces: enforced_namespaces?,
        enforcers: enforcers?,
        external_traffic: external_traffic?,
    })
}

fn read_enforcers(reader: &mut Reader<'_>, node: &Node) -> Option<Enforcers> {
    let fields = reader.map(node, "enforcers", &Enforcers::FIELDS)?;
    let mut enforcers = Enforcers::default();
    let before = reader.error_count();
    for field in Enforcers::FIELDS {
        let Some(value) = fields.get(field).and_then(|n| reader.boolean(n)) else {
            continue;
        };
        if let Some(slot) = enforcers.field_mut(field) {
            *slot = value;
        }
    }
    (reader.error_count() == before).then_some(enforcers)
}

/// A KafkaServerConfig without its metadata (filled in by the caller).
pub(super) fn kafka_server_config(
    reader: &mut Reader<'_>,
    spec: &Node,
    cx: &DocContext,
) -> Option<KafkaServerConfig> {
    let identity_key = if cx.format.is_v1() {
        "service"
    } else {
        "workload"
    };
    let known: &'static [&'static str] = if cx.format.is_v1() {
        &[
            "service",
            "addr",
            "tls",
            "topics",
            "noAutoCreateIntentsForOperator",
        ]
    } else {
        &[
            "workload",
            "addr",
            "tls",
            "topics",
            "noAutoCreateIntentsForOperator",
        ]
    };
    let fields = reader.map(spec, "KafkaServerConfig spec", known)?;
    let workload = fields
        .required(reader, identity_key)
        .and_then(|n| read_workload(reader, n, cx, identity_key, "name"));
    let address = match fields.get("addr") {
        None => Some(None),
        Some(n) => reader.string(n, "a string").map(|s| Some(s.to_string())),
    };
    let tls = match fields.get("tls") {
        None => Some(None),
        Some(n) => {
            let f = reader.map(n, "tls", &["certFile", "keyFile", "rootCAFile"]);
            f.and_then(|f| {
                let mut file = |key| {
                    f.required(reader, key)
                        .and_then(|n| reader.string(n, "a file path"))
                        .map(str::to_string)
                };
                let (cert, key, ca) = (file("certFile"), file("keyFile"), file("rootCAFile"));
                Some(Some(KafkaTls {
                    cert_file: cert?,
                    key_file: key?,
                    root_ca_file: ca?,
                }))
            })
        }
    };
    let topics = match fields.get("topics") {
        None => Some(Vec::new()),
        Some(n) => reader.items(n, "a list of topics", read_topic_config),
    };
    let no_auto = match fields.get("noAutoCreateIntentsForOperator") {
        None => Some(false),
        Some(n) => reader.boolean(n),
    };
    let workload = workload?;
    Some(KafkaServerConfig {
        meta: Meta {
            name: workload.id.name().to_string(),
            namespace: cx.namespace.clone(),
            origin: reader.at(spec),
            format: cx.format,
            namespace_given: true,
        },
        workload,
        address: address?,
        tls: tls?,
        topics: topics?,
        no_auto_create_intents_for_operator: no_auto?,
    })
}

fn read_topic_config(reader: &mut Reader<'_>, item: &Node) -> Option<KafkaTopicConfig> {
    let f = reader.map(
        item,
        "topic config",
        &[
            "topic",
            "pattern",
            "clientIdentityRequired",
            "intentsRequired",
        ],
    )?;
    let topic = f
        .required(reader, "topic")
        .and_then(|n| reader.identifier(n, "a string"))
        .map(str::to_string);
    let prefix =
        f.required(reader, "pattern")
            .and_then(|n| match reader.string(n, "a string")? {
                "literal" => Some(false),
                "prefix" => Some(true),
                other => {
                    reader.invalid(
                        n,
                        "topic pattern",
                        other,
                        Hint::new("use `literal` or `prefix`"),
                    );
                    None
                }
            });
    let identity = f
        .required(reader, "clientIdentityRequired")
        .and_then(|n| reader.boolean(n));
    let intents = f
        .required(reader, "intentsRequired")
        .and_then(|n| reader.boolean(n));
    Some(KafkaTopicConfig {
        topic: topic?,
        prefix: prefix?,
        client_identity_required: identity?,
        intents_required: intents?,
    })
}

/// A PostgreSQLServerConfig or MySQLServerConfig: its address and credentials.
pub(super) fn database_server_config(
    reader: &mut Reader<'_>,
    spec: &Node,
    dialect: SqlDialect,
) -> Option<(String, Credentials)> {
    let within = match dialect {
        SqlDialect::PostgreSql => "PostgreSQLServerConfig spec",
        SqlDialect::MySql => "MySQLServerConfig spec",
    };
    let fields = reader.map(spec, within, &["address", "credentials"])?;
    let address = fields
        .required(reader, "address")
        .and_then(|n| reader.string(n, "a `host:port` string"))
        .map(str::to_string);
    let credentials = fields.required(reader, "credentials").and_then(|n| {
        let f = reader.map(n, "credentials", &["username", "password", "secretRef"])?;
        let text = |reader: &mut Reader<'_>, key| match f.get(key) {
            None => Some(None),
            Some(n) => reader.string(n, "a string").map(|s| Some(s.to_string())),
        };
        let username = text(reader, "username")?;
        let password = text(reader, "password")?;
        let secret_ref = match f.get("secretRef") {
            None => None,
            Some(n) => Some(read_secret_ref(reader, n)?),
        };
        if secret_ref.is_none() && (username.is_none() || password.is_none()) {
            reader.rule(
                n,
                "credentials need both `username` and `password`, or a `secretRef`",
            );
            return None;
        }
        Some(Credentials {
            username,
            password,
            secret_ref,
        })
    });
    Some((address?, credentials?))
}

fn read_secret_ref(reader: &mut Reader<'_>, node: &Node) -> Option<SecretRef> {
    let f = reader.map(
        node,
        "secretRef",
        &["name", "namespace", "usernameKey", "passwordKey"],
    )?;
    let name = f
        .required(reader, "name")
        .and_then(|n| reader.identifier(n, "a string"))
        .map(str::to_string);
    let namespace = match f.get("namespace") {
        None => Some(None),
        Some(n) => reader
            .parsed(n, "namespace", Namespace::parse, |e| name_hint(&e))
            .map(Some),
    };
    let mut key = |k, default: &str| match f.get(k) {
        None => Some(default.to_string()),
        Some(n) => reader.string(n, "a string").map(str::to_string),
    };
    let username_key = key("usernameKey", "username");
    let password_key = key("passwordKey", "password");
    Some(SecretRef {
        name: name?,
        namespace: namespace?,
        username_key: username_key?,
        password_key: password_key?,
    })
}
