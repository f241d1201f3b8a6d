//! `ProtectedService`, `EnforcementConfig` and the server configs.

use super::intents::{plain_name, workload_fields};
use super::{DocContext, name_hint, read_name};
use crate::document::{
    Credentials, EnforcementConfig, Enforcers, ExternalTraffic, KafkaServerConfig, KafkaTls,
    KafkaTopicConfig, Meta, Mode, SecretRef, SqlDialect, WorkloadRef,
};
use crate::error::Hint;
use crate::name::{Kind, Namespace, WorkloadId};
use crate::read::{Fields, Reader};
use crate::yaml::Node;

fn optional_kind(reader: &mut Reader<'_>, fields: &Fields<'_>) -> Option<Option<Kind>> {
    match fields.get("kind") {
        None => Some(None),
        Some(n) => {
            let text = reader.identifier(n, "a string")?;
            Kind::parse(text)
                .map(Some)
                .map_err(|e| reader.invalid(n, "kind", text, name_hint(&e)))
                .ok()
        }
    }
}

/// `spec: {name, kind}`.
pub(super) fn protected_service(
    reader: &mut Reader<'_>,
    spec: &Node,
    cx: &DocContext,
) -> Option<WorkloadRef> {
    let fields = workload_fields(reader, spec, cx.format, "ProtectedService spec")?;
    let name = fields
        .required(reader, "name")
        .and_then(|n| read_name(reader, n, "protected service name"));
    let kind = optional_kind(reader, &fields);
    Some(WorkloadRef {
        id: WorkloadId::new(&name?, &cx.namespace),
        kind: kind?,
    })
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
    let mode = match fields.get("mode") {
        None => Some(Mode::default()),
        Some(n) => {
            let text = reader.string(n, "a string")?;
            Mode::parse(text)
                .ok_or_else(|| {
                    reader.invalid(
                        n,
                        "mode",
                        text,
                        Hint::new("use `defaultShadow` or `defaultActive`"),
                    )
                })
                .ok()
        }
    };
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
    let external_traffic = match fields.get("externalTraffic") {
        None => Some(ExternalTraffic::default()),
        Some(n) => {
            let text = reader.string(n, "a string")?;
            ExternalTraffic::parse(text)
                .ok_or_else(|| {
                    reader.invalid(
                        n,
                        "externalTraffic setting",
                        text,
                        Hint::new("use `off`, `ifBlocked` or `always`"),
                    )
                })
                .ok()
        }
    };
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
    let workload = fields.required(reader, identity_key).and_then(|n| {
        let f = workload_fields(reader, n, cx.format, identity_key)?;
        let name = f
            .required(reader, "name")
            .and_then(|n| plain_name(reader, n));
        let kind = optional_kind(reader, &f);
        Some(WorkloadRef {
            id: WorkloadId::new(&name?, &cx.namespace),
            kind: kind?,
        })
    });
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
        Some(n) => read_topic_configs(reader, n),
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

fn read_topic_configs(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<KafkaTopicConfig>> {
    let items = reader.list(node, "a list of topics")?;
    let before = reader.error_count();
    let mut out = Vec::new();
    for item in items {
        let Some(f) = reader.map(
            item,
            "topic config",
            &[
                "topic",
                "pattern",
                "clientIdentityRequired",
                "intentsRequired",
            ],
        ) else {
            continue;
        };
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
        if let (Some(topic), Some(prefix), Some(identity), Some(intents)) =
            (topic, prefix, identity, intents)
        {
            out.push(KafkaTopicConfig {
                topic,
                prefix,
                client_identity_required: identity,
                intents_required: intents,
            });
        }
    }
    (reader.error_count() == before).then_some(out)
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
        Some(n) => {
            let text = reader.identifier(n, "a string")?;
            Namespace::parse(text)
                .map(Some)
                .map_err(|e| reader.invalid(n, "namespace", text, name_hint(&e)))
                .ok()
        }
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
