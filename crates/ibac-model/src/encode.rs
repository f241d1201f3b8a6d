//! Writing documents back out, in ibac's canonical form (`ibac.dev/v1`), in
//! Otterize's current format (`k8s.otterize.com/v2beta1`), or in any older
//! Otterize version (the v1 shape, `service` + `calls`, for the conversion
//! webhook).
//!
//! Output is deterministic: the same documents always give the same bytes.
//! Targets in the client's namespace are written by bare name, others as
//! `name.namespace`. What a format cannot express (ports, prefixed topics,
//! settings; in the older versions also cloud targets or kinds) is refused
//! with the place it was written, never dropped.

use serde::Serialize;

use crate::document::{
    CallTarget, ClientIntents, Credentials, DatabaseServerConfig, Document, EnforcementConfig,
    Format, HttpRule, InternetTarget, KafkaServerConfig, KafkaTarget, KeyVaultPolicy, Meta,
    ProtectedService, SqlTarget, Target, TargetKind, WorkloadRef,
};
use crate::http::Method;
use crate::kafka::{KafkaOperation, TopicPattern};
use crate::location::Location;
use crate::name::{Kind, Namespace, WorkloadId};
use crate::sql::SqlOperation;

/// Which format to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `ibac.dev/v1`.
    Ibac,
    /// `k8s.otterize.com/v2beta1`.
    Otterize,
}

impl Flavor {
    /// The format this flavor writes.
    pub fn format(self) -> Format {
        match self {
            Flavor::Ibac => Format::IbacV1,
            Flavor::Otterize => Format::OtterizeV2beta1,
        }
    }
}

/// A document could not be written in the requested format.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: cannot write as {format}: {reason}; {}", keep_hint(*.format))]
pub struct EncodeError {
    /// What could not be written.
    pub at: Location,
    /// The format it could not be written in.
    pub format: Format,
    /// Why.
    pub reason: String,
    /// The field's path in the document (`spec.workload.kind`) when `at` is
    /// only where the document starts, for callers that place errors by
    /// field path.
    pub field: Option<&'static str>,
}

/// Where a document that `format` cannot hold can be kept instead.
fn keep_hint(format: Format) -> &'static str {
    if format.is_v1() {
        "read it as k8s.otterize.com/v2beta1"
    } else {
        "keep it as ibac.dev/v1"
    }
}

/// A document ready to serialize as YAML or JSON.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Encoded {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Clone, Debug, Serialize)]
struct Metadata {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
enum Spec {
    ClientIntents {
        workload: Workload,
        targets: Vec<TargetOut>,
    },
    ClientIntentsV1 {
        service: Workload,
        calls: Vec<CallV1>,
    },
    ProtectedService(Workload),
    EnforcementConfig(EnforcementSpec),
    Kafka(KafkaSpec),
    Database {
        address: String,
        credentials: CredentialsOut,
    },
}

#[derive(Clone, Debug, Serialize)]
struct Workload {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum TargetOut {
    Kubernetes(Call),
    Service(Call),
    Kafka(KafkaOut),
    Sql(SqlOut),
    Internet(InternetOut),
    Aws(AwsOut),
    Gcp(GcpOut),
    Azure(AzureOut),
}

#[derive(Clone, Debug, Serialize)]
struct Call {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    http: Vec<HttpOut>,
}

#[derive(Clone, Debug, Serialize)]
struct HttpOut {
    path: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    methods: Vec<Method>,
}

#[derive(Clone, Debug, Serialize)]
struct KafkaOut {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    topics: Vec<TopicOut>,
}

#[derive(Clone, Debug, Serialize)]
struct TopicOut {
    name: String,
    operations: Vec<KafkaOperation>,
}

#[derive(Clone, Debug, Serialize)]
struct SqlOut {
    name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    privileges: Vec<PrivilegeOut>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PrivilegeOut {
    database_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    table: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    operations: Vec<SqlOperation>,
}

#[derive(Clone, Debug, Serialize)]
struct InternetOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    domains: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ips: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    ports: Vec<u16>,
}

#[derive(Clone, Debug, Serialize)]
struct AwsOut {
    arn: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
struct GcpOut {
    resource: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    permissions: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AzureOut {
    scope: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    roles: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    actions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    data_actions: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_vault_policy: Option<KeyVaultOut>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyVaultOut {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    certificate_permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    key_permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    secret_permissions: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    storage_permissions: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct EnforcementSpec {
    mode: crate::document::Mode,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    enforced_namespaces: Vec<String>,
    enforcers: crate::document::Enforcers,
    external_traffic: crate::document::ExternalTraffic,
}

/// A KafkaServerConfig's spec in either shape: they differ only in what the
/// broker is called (`service` in v1, `workload` after).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KafkaSpec {
    #[serde(flatten)]
    broker: Broker,
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tls: Option<TlsOut>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    topics: Vec<TopicConfigOut>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    no_auto_create_intents_for_operator: bool,
}

/// The broker of a KafkaServerConfig, under the name its shape gives it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
enum Broker {
    Workload(Workload),
    Service(Workload),
}

/// One call of the v1 shape: what it calls is `name` (`svc:` for a Service),
/// how is `type` and the one field that type carries.
#[derive(Clone, Debug, Default, Serialize)]
struct CallV1 {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    call_type: Option<&'static str>,
    /// v1alpha3 and v1beta1.
    #[serde(rename = "HTTPResources", skip_serializing_if = "Vec::is_empty")]
    http_resources: Vec<HttpOut>,
    /// v1alpha2's name for `HTTPResources`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    resources: Vec<HttpOut>,
    /// v1alpha3 and v1beta1.
    #[serde(rename = "kafkaTopics", skip_serializing_if = "Vec::is_empty")]
    kafka_topics: Vec<TopicOut>,
    /// v1alpha2's name for `kafkaTopics`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    topics: Vec<TopicOut>,
    #[serde(rename = "databaseResources", skip_serializing_if = "Vec::is_empty")]
    database_resources: Vec<PrivilegeOut>,
    #[serde(rename = "awsActions", skip_serializing_if = "Vec::is_empty")]
    aws_actions: Vec<String>,
    #[serde(rename = "gcpPermissions", skip_serializing_if = "Vec::is_empty")]
    gcp_permissions: Vec<String>,
    #[serde(rename = "azureRoles", skip_serializing_if = "Vec::is_empty")]
    azure_roles: Vec<String>,
    #[serde(rename = "azureActions", skip_serializing_if = "Vec::is_empty")]
    azure_actions: Vec<String>,
    #[serde(rename = "azureDataActions", skip_serializing_if = "Vec::is_empty")]
    azure_data_actions: Vec<String>,
    #[serde(
        rename = "azureKeyVaultPolicy",
        skip_serializing_if = "Option::is_none"
    )]
    azure_key_vault_policy: Option<KeyVaultOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    internet: Option<InternetOut>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TlsOut {
    cert_file: String,
    key_file: String,
    #[serde(rename = "rootCAFile")]
    root_ca_file: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TopicConfigOut {
    topic: String,
    pattern: &'static str,
    client_identity_required: bool,
    intents_required: bool,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct CredentialsOut {
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    secret_ref: Option<SecretRefOut>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretRefOut {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    username_key: String,
    password_key: String,
}

/// Encodes one document in the given flavor.
pub fn encode(doc: &Document, flavor: Flavor) -> Result<Encoded, EncodeError> {
    encode_as(doc, flavor.format())
}

/// Encodes one document in any format ibac reads, Otterize's older versions
/// included; what `format` cannot hold is refused, never dropped.
pub fn encode_as(doc: &Document, format: Format) -> Result<Encoded, EncodeError> {
    let meta = doc.meta();
    let spec = match doc {
        Document::ClientIntents(ci) if format.is_v1() => client_intents_v1(ci, format)?,
        Document::ClientIntents(ci) => client_intents(ci, format)?,
        Document::ProtectedService(ps) => protected_service(ps, format)?,
        Document::EnforcementConfig(cfg) => enforcement(cfg, format)?,
        Document::KafkaServerConfig(k) => kafka_config(k, format)?,
        Document::DatabaseServerConfig(db) => database(db),
    };
    Ok(Encoded {
        api_version: format.api_version(),
        kind: doc.kind().as_str(),
        metadata: metadata(meta),
        spec,
    })
}

impl Encoded {
    /// The spec alone, as JSON: what the conversion webhook puts into an
    /// object whose metadata and status it keeps as they are.
    pub fn spec_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(&self.spec)
    }
}

/// Encodes many documents; every error is reported, not just the first.
pub fn encode_all(docs: &[Document], flavor: Flavor) -> Result<Vec<Encoded>, Vec<EncodeError>> {
    let mut out = Vec::with_capacity(docs.len());
    let mut errors = Vec::new();
    for doc in docs {
        match encode(doc, flavor) {
            Ok(e) => out.push(e),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// Like [`encode_all`], but a document that named no namespace is written
/// without one, as `ibac convert` writes it: the output then goes wherever
/// `kubectl apply -n` sends it, as the original did.
pub fn encode_all_as_written(
    docs: &[Document],
    flavor: Flavor,
) -> Result<Vec<Encoded>, Vec<EncodeError>> {
    let mut encoded = encode_all(docs, flavor)?;
    for (out, doc) in encoded.iter_mut().zip(docs) {
        if !doc.meta().namespace_given {
            out.metadata.namespace = None;
        }
    }
    Ok(encoded)
}

fn metadata(meta: &Meta) -> Metadata {
    Metadata {
        name: meta.name.clone(),
        namespace: Some(meta.namespace.to_string()),
    }
}

fn workload(w: &WorkloadRef) -> Workload {
    Workload {
        name: w.id.name().to_string(),
        kind: w.kind.as_ref().map(ToString::to_string),
    }
}

/// `name` when in `namespace`, `name.namespace` otherwise.
pub fn relative_name(id: &WorkloadId, namespace: &Namespace) -> String {
    if id.namespace() == namespace.as_str() {
        id.name().to_string()
    } else {
        id.to_string()
    }
}

fn client_intents(ci: &ClientIntents, format: Format) -> Result<Spec, EncodeError> {
    Ok(Spec::ClientIntents {
        workload: workload(&ci.workload),
        targets: each_target(ci, format, target)?,
    })
}

/// Every target of `ci` written by `write` (a v2 target or a v1 call), names
/// relative to the document's namespace; the first that cannot be written stops it.
fn each_target<T>(
    ci: &ClientIntents,
    format: Format,
    write: fn(&Target, &Namespace, Format) -> Result<T, EncodeError>,
) -> Result<Vec<T>, EncodeError> {
    ci.targets
        .iter()
        .map(|t| write(t, &ci.meta.namespace, format))
        .collect()
}

fn http(rules: &[HttpRule]) -> Vec<HttpOut> {
    rules
        .iter()
        .map(|r| HttpOut {
            path: r.path.to_string(),
            methods: r.methods.clone(),
        })
        .collect()
}

fn target(t: &Target, ns: &Namespace, format: Format) -> Result<TargetOut, EncodeError> {
    Ok(match &t.kind {
        TargetKind::Workload(c) | TargetKind::Service(c) => {
            refuse_ports(t, c, format)?;
            let call = Call {
                name: relative_name(&c.id, ns),
                kind: c.kind.as_ref().map(ToString::to_string),
                ports: c.ports.clone(),
                http: http(&c.http),
            };
            if matches!(t.kind, TargetKind::Service(_)) {
                TargetOut::Service(call)
            } else {
                TargetOut::Kubernetes(call)
            }
        }
        TargetKind::Kafka(k) => TargetOut::Kafka(KafkaOut {
            name: relative_name(&k.server, ns),
            topics: topics(k, format)?,
        }),
        TargetKind::Sql(s) => TargetOut::Sql(SqlOut {
            name: sql_name(s, ns),
            privileges: privileges(s),
        }),
        TargetKind::Internet(i) => TargetOut::Internet(internet(i)),
        TargetKind::Aws(c) => TargetOut::Aws(AwsOut {
            arn: c.resource.clone(),
            actions: c.actions.clone(),
        }),
        TargetKind::Gcp(c) => TargetOut::Gcp(GcpOut {
            resource: c.resource.clone(),
            permissions: c.actions.clone(),
        }),
        TargetKind::Azure(a) => TargetOut::Azure(AzureOut {
            scope: a.scope.clone(),
            roles: a.roles.clone(),
            actions: a.actions.clone(),
            data_actions: a.data_actions.clone(),
            key_vault_policy: a.key_vault_policy.as_ref().map(key_vault),
        }),
    })
}

/// Ports are ibac's addition: only `ibac.dev/v1` holds them.
fn refuse_ports(t: &Target, c: &CallTarget, format: Format) -> Result<(), EncodeError> {
    if format != Format::IbacV1 && !c.ports.is_empty() {
        return Err(EncodeError {
            at: t.at.clone(),
            format,
            reason: "it narrows the target to ports".into(),
            field: None,
        });
    }
    Ok(())
}

/// A Kafka target's topics; prefixes are ibac's addition.
fn topics(k: &KafkaTarget, format: Format) -> Result<Vec<TopicOut>, EncodeError> {
    let mut topics = Vec::with_capacity(k.topics.len());
    for topic in &k.topics {
        if format != Format::IbacV1 && matches!(topic.topic, TopicPattern::Prefix(_)) {
            return Err(EncodeError {
                at: topic.at.clone(),
                format,
                reason: "it names a topic prefix".into(),
                field: None,
            });
        }
        topics.push(TopicOut {
            name: topic.topic.to_string(),
            operations: topic.operations.clone(),
        });
    }
    Ok(topics)
}

/// A bare name means "the one config by that name, in any namespace": one
/// that named its namespace keeps naming it.
fn sql_name(s: &SqlTarget, ns: &Namespace) -> String {
    if s.namespace_given {
        s.server.to_string()
    } else {
        relative_name(&s.server, ns)
    }
}

fn privileges(s: &SqlTarget) -> Vec<PrivilegeOut> {
    s.privileges
        .iter()
        .map(|p| PrivilegeOut {
            database_name: p.database.clone(),
            table: p.table.clone(),
            operations: p.operations.clone(),
        })
        .collect()
}

fn internet(i: &InternetTarget) -> InternetOut {
    InternetOut {
        domains: i.domains.clone(),
        ips: i.ips.iter().map(ToString::to_string).collect(),
        ports: i.ports.clone(),
    }
}

fn key_vault(k: &KeyVaultPolicy) -> KeyVaultOut {
    KeyVaultOut {
        certificate_permissions: k.certificate_permissions.clone(),
        key_permissions: k.key_permissions.clone(),
        secret_permissions: k.secret_permissions.clone(),
        storage_permissions: k.storage_permissions.clone(),
    }
}

/// v1alpha2 has no `kind` anywhere: a kind it would drop is refused.
/// `field` is the kind's path when `at` is only the document's start.
fn refuse_kind(
    kind: Option<&Kind>,
    what: &str,
    at: &Location,
    field: Option<&'static str>,
    format: Format,
) -> Result<(), EncodeError> {
    match kind {
        Some(kind) if format == Format::OtterizeV1alpha2 => Err(EncodeError {
            at: at.clone(),
            format,
            reason: format!("{what} has the kind `{kind}` and v1alpha2 has no `kind`"),
            field,
        }),
        _ => Ok(()),
    }
}

/// [`refuse_kind`] for the workload a document is about, whose kind is at
/// `field` of the document.
fn refuse_document_kind(
    workload: &WorkloadRef,
    what: &str,
    meta: &Meta,
    field: &'static str,
    format: Format,
) -> Result<(), EncodeError> {
    refuse_kind(
        workload.kind.as_ref(),
        what,
        &meta.origin,
        Some(field),
        format,
    )
}

/// The v1 shape: `service` + `calls`.
fn client_intents_v1(ci: &ClientIntents, format: Format) -> Result<Spec, EncodeError> {
    refuse_document_kind(
        &ci.workload,
        "the client",
        &ci.meta,
        "spec.workload.kind",
        format,
    )?;
    Ok(Spec::ClientIntentsV1 {
        service: workload(&ci.workload),
        calls: each_target(ci, format, call_v1)?,
    })
}

fn call_v1(t: &Target, ns: &Namespace, format: Format) -> Result<CallV1, EncodeError> {
    let alpha2 = format == Format::OtterizeV1alpha2;
    let refuse = |reason: String| EncodeError {
        at: t.at.clone(),
        format,
        reason,
        field: None,
    };
    if alpha2
        && !matches!(
            t.kind,
            TargetKind::Workload(_)
                | TargetKind::Service(_)
                | TargetKind::Kafka(_)
                | TargetKind::Sql(_)
        )
    {
        return Err(refuse(format!(
            "v1alpha2 has only http, kafka and database calls, and this target is `{}`",
            t.kind.label()
        )));
    }
    Ok(match &t.kind {
        TargetKind::Workload(c) | TargetKind::Service(c) => {
            refuse_ports(t, c, format)?;
            refuse_kind(c.kind.as_ref(), "the target", &t.at, None, format)?;
            let service = matches!(t.kind, TargetKind::Service(_));
            let name = relative_name(&c.id, ns);
            let rules = http(&c.http);
            CallV1 {
                name: Some(if service { format!("svc:{name}") } else { name }),
                kind: c.kind.as_ref().map(ToString::to_string),
                // Without resources a call is plain: all paths and methods.
                call_type: (!rules.is_empty()).then_some("http"),
                http_resources: if alpha2 { Vec::new() } else { rules.clone() },
                resources: if alpha2 { rules } else { Vec::new() },
                ..CallV1::default()
            }
        }
        TargetKind::Kafka(k) => {
            let topics = topics(k, format)?;
            CallV1 {
                name: Some(relative_name(&k.server, ns)),
                call_type: Some("kafka"),
                kafka_topics: if alpha2 { Vec::new() } else { topics.clone() },
                topics: if alpha2 { topics } else { Vec::new() },
                ..CallV1::default()
            }
        }
        TargetKind::Sql(s) => CallV1 {
            name: Some(sql_name(s, ns)),
            call_type: Some("database"),
            database_resources: privileges(s),
            ..CallV1::default()
        },
        TargetKind::Internet(i) => CallV1 {
            call_type: Some("internet"),
            internet: Some(internet(i)),
            ..CallV1::default()
        },
        TargetKind::Aws(c) => CallV1 {
            name: Some(c.resource.clone()),
            call_type: Some("aws"),
            aws_actions: c.actions.clone(),
            ..CallV1::default()
        },
        TargetKind::Gcp(c) => CallV1 {
            name: Some(c.resource.clone()),
            call_type: Some("gcp"),
            gcp_permissions: c.actions.clone(),
            ..CallV1::default()
        },
        TargetKind::Azure(a) => {
            if format != Format::OtterizeV1beta1
                && !(a.actions.is_empty() && a.data_actions.is_empty())
            {
                return Err(refuse(
                    "it lists azure actions, which only v1beta1 of the v1 versions holds".into(),
                ));
            }
            CallV1 {
                name: Some(a.scope.clone()),
                call_type: Some("azure"),
                azure_roles: a.roles.clone(),
                azure_actions: a.actions.clone(),
                azure_data_actions: a.data_actions.clone(),
                azure_key_vault_policy: a.key_vault_policy.as_ref().map(key_vault),
                ..CallV1::default()
            }
        }
    })
}

fn protected_service(ps: &ProtectedService, format: Format) -> Result<Spec, EncodeError> {
    refuse_document_kind(
        &ps.workload,
        "the protected workload",
        &ps.meta,
        "spec.kind",
        format,
    )?;
    Ok(Spec::ProtectedService(workload(&ps.workload)))
}

fn enforcement(cfg: &EnforcementConfig, format: Format) -> Result<Spec, EncodeError> {
    if format != Format::IbacV1 {
        return Err(EncodeError {
            at: cfg.meta.origin.clone(),
            format,
            reason: "EnforcementConfig is an ibac document".into(),
            field: None,
        });
    }
    Ok(Spec::EnforcementConfig(EnforcementSpec {
        mode: cfg.mode,
        enforced_namespaces: cfg
            .enforced_namespaces
            .iter()
            .map(ToString::to_string)
            .collect(),
        enforcers: cfg.enforcers,
        external_traffic: cfg.external_traffic,
    }))
}

fn kafka_config(k: &KafkaServerConfig, format: Format) -> Result<Spec, EncodeError> {
    refuse_document_kind(
        &k.workload,
        "the Kafka server",
        &k.meta,
        "spec.workload.kind",
        format,
    )?;
    let tls = k.tls.as_ref().map(|t| TlsOut {
        cert_file: t.cert_file.clone(),
        key_file: t.key_file.clone(),
        root_ca_file: t.root_ca_file.clone(),
    });
    let topics = k
        .topics
        .iter()
        .map(|t| TopicConfigOut {
            topic: t.topic.clone(),
            pattern: if t.prefix { "prefix" } else { "literal" },
            client_identity_required: t.client_identity_required,
            intents_required: t.intents_required,
        })
        .collect();
    let broker = if format.is_v1() {
        Broker::Service(workload(&k.workload))
    } else {
        Broker::Workload(workload(&k.workload))
    };
    Ok(Spec::Kafka(KafkaSpec {
        broker,
        addr: k.address.clone(),
        tls,
        topics,
        no_auto_create_intents_for_operator: k.no_auto_create_intents_for_operator,
    }))
}

fn database(db: &DatabaseServerConfig) -> Spec {
    Spec::Database {
        address: db.address.clone(),
        credentials: credentials(&db.credentials),
    }
}

fn credentials(c: &Credentials) -> CredentialsOut {
    CredentialsOut {
        username: c.username.clone(),
        password: c.password.clone(),
        secret_ref: c.secret_ref.as_ref().map(|s| SecretRefOut {
            name: s.name.clone(),
            namespace: s.namespace.as_ref().map(ToString::to_string),
            username_key: s.username_key.clone(),
            password_key: s.password_key.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{V1_CALLS, docs};
    use crate::yaml::to_yaml_stream;

    /// [`V1_CALLS`] and a ProtectedService of its first call's server.
    fn mixed() -> Vec<Document> {
        docs(&format!(
            "{V1_CALLS}---
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {{name: server, namespace: other}}
spec: {{name: server}}
"
        ))
    }

    #[test]
    fn converts_v1_to_v2beta1() {
        let encoded = encode_all(&mixed(), Flavor::Otterize).unwrap();
        insta::assert_snapshot!(to_yaml_stream(&encoded).unwrap());
    }

    #[test]
    fn round_trips_through_both_flavors() {
        for flavor in [Flavor::Otterize, Flavor::Ibac] {
            let original = mixed();
            let text = to_yaml_stream(&encode_all(&original, flavor).unwrap()).unwrap();
            let again = docs(&text);
            assert_eq!(again.len(), original.len());
            for (a, b) in original.iter().zip(&again) {
                match (a, b) {
                    (Document::ClientIntents(a), Document::ClientIntents(b)) => {
                        assert_eq!(a.workload, b.workload);
                        let kinds = |ci: &ClientIntents| {
                            ci.targets
                                .iter()
                                .map(|t| format!("{:?}", strip(&t.kind)))
                                .collect::<Vec<_>>()
                        };
                        assert_eq!(kinds(a), kinds(b));
                    }
                    (Document::ProtectedService(a), Document::ProtectedService(b)) => {
                        assert_eq!(a.workload, b.workload)
                    }
                    _ => panic!("kinds differ"),
                }
            }
        }
    }

    /// Target contents without the locations, which differ between files.
    fn strip(kind: &TargetKind) -> TargetKind {
        let mut kind = kind.clone();
        match &mut kind {
            TargetKind::Workload(c) | TargetKind::Service(c) => {
                for r in &mut c.http {
                    r.at = Location::whole("x".into());
                }
            }
            TargetKind::Kafka(k) => {
                for t in &mut k.topics {
                    t.at = Location::whole("x".into());
                }
            }
            TargetKind::Sql(s) => {
                for p in &mut s.privileges {
                    p.at = Location::whole("x".into());
                }
            }
            _ => {}
        }
        kind
    }

    #[test]
    fn convert_adds_no_namespace_where_none_was_named() {
        let text = "apiVersion: k8s.otterize.com/v1alpha2\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  service: {name: a}\n  calls:\n  - name: b\n  - name: c.other\n---\napiVersion: k8s.otterize.com/v1alpha2\nkind: ProtectedService\nmetadata: {name: b, namespace: default}\nspec: {name: b}\n";
        let original = docs(text);
        assert!(!original[0].meta().namespace_given);
        assert!(original[1].meta().namespace_given);
        let written =
            to_yaml_stream(&encode_all_as_written(&original, Flavor::Otterize).unwrap()).unwrap();
        let (first, second) = written.split_once("---").unwrap();
        assert!(!first.contains("namespace"), "{written}");
        assert!(first.contains("name: c.other"), "{written}");
        assert!(second.contains("namespace: default"), "{written}");
        // The codec everything else uses still writes the namespace it read.
        let stored = to_yaml_stream(&encode_all(&original, Flavor::Ibac).unwrap()).unwrap();
        assert!(stored.starts_with("apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata:\n  name: a\n  namespace: default"), "{stored}");
    }

    #[test]
    fn otterize_cannot_hold_ibac_additions() {
        let ibac = docs(
            "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  workload: {name: a}\n  targets:\n  - service: {name: b, ports: [8080]}\n  - kafka: {name: k, topics: [{name: \"o*\", operations: [all]}]}\n",
        );
        let err = encode(&ibac[0], Flavor::Otterize).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.yaml:7:5: cannot write as k8s.otterize.com/v2beta1: it narrows the target to ports; keep it as ibac.dev/v1"
        );
        assert!(encode(&ibac[0], Flavor::Ibac).is_ok());
    }

    const V2: &str = "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: client, namespace: shop}\nspec:\n  workload: {name: client}\n  targets:\n  - service: {name: api.other, http: [{path: /x/*, methods: [GET]}]}\n  - kubernetes: {name: cart, kind: StatefulSet}\n  - kafka: {name: kafka.kafka, topics: [{name: orders, operations: [produce]}]}\n  - aws: {arn: \"arn:aws:s3:::b\", actions: [\"s3:GetObject\"]}\n";

    #[test]
    fn writes_the_v1_shape_for_the_older_versions() {
        let doc = &docs(V2)[0];
        let alpha3 = to_yaml_stream(&[encode_as(doc, Format::OtterizeV1alpha3).unwrap()]).unwrap();
        insta::assert_snapshot!(alpha3);
        assert_eq!(docs(&alpha3)[0].meta().format, Format::OtterizeV1alpha3);
    }

    #[test]
    fn v1alpha2_refuses_what_it_cannot_hold_with_the_place() {
        let doc = &docs(V2)[0];
        assert_eq!(
            encode_as(doc, Format::OtterizeV1alpha2)
                .unwrap_err()
                .to_string(),
            "t.yaml:8:5: cannot write as k8s.otterize.com/v1alpha2: the target has the kind `StatefulSet` and v1alpha2 has no `kind`; read it as k8s.otterize.com/v2beta1"
        );
    }
}
