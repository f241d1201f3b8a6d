//! `ClientIntents` specs: the v2 shape (`workload` + `targets`, also ibac.dev/v1)
//! and the older v1 shape (`service` + `calls`), both into one canonical form.

use super::{DocContext, name_hint, read_name};
use crate::document::{
    AzureTarget, CallTarget, CloudTarget, Format, HttpRule, InternetTarget, KafkaTarget,
    KafkaTopic, KeyVaultPolicy, SqlPrivilege, SqlTarget, Target, TargetKind, WorkloadRef,
};
use crate::error::{DocumentError, Hint};
use crate::http::{Method, PathPattern};
use crate::kafka::{KafkaOperation, TopicPattern};
use crate::name::{Kind, WorkloadId};
use crate::net::{check_domain, parse_ip_range};
use crate::read::{Fields, Reader};
use crate::sql::{SqlOperation, check_identifier};
use crate::yaml::Node;

const TARGET_KEYS: &[&str] = &[
    "kubernetes",
    "service",
    "kafka",
    "sql",
    "internet",
    "aws",
    "gcp",
    "azure",
];

/// Reads a ClientIntents spec in whichever shape its format uses.
pub(super) fn read(
    reader: &mut Reader<'_>,
    spec: &Node,
    cx: &DocContext,
) -> Option<(WorkloadRef, Vec<Target>)> {
    let shape = if cx.format.is_v1() { &V1 } else { &V2 };
    read_shape(reader, spec, cx, shape)
}

/// Where one shape of ClientIntents keeps its client and what it calls.
struct Shape {
    /// The spec's only fields: the client's (`workload`, v1: `service`) and
    /// the list of what it calls (`targets`, v1: `calls`).
    keys: [&'static str; 2],
    /// That list, as its errors name it.
    list: &'static str,
    /// A hint for the other shape's fields.
    hint: fn(&str) -> Option<String>,
    /// Reads one item of the list.
    item: fn(&mut Reader<'_>, &Node, &DocContext) -> Option<Target>,
}

const V2: Shape = Shape {
    keys: ["workload", "targets"],
    list: "a list of targets",
    hint: v1_hint,
    item: read_target,
};

const V1: Shape = Shape {
    keys: ["service", "calls"],
    list: "a list of calls",
    hint: v2_hint,
    item: read_call_v1,
};

fn read_shape(
    reader: &mut Reader<'_>,
    spec: &Node,
    cx: &DocContext,
    shape: &'static Shape,
) -> Option<(WorkloadRef, Vec<Target>)> {
    let [client, calls] = shape.keys;
    let fields = reader.map_with(spec, "ClientIntents spec", &shape.keys, shape.hint)?;
    let workload = fields
        .required(reader, client)
        .and_then(|node| read_workload(reader, node, cx, client, "workload name"));
    let targets = fields
        .required(reader, calls)
        .and_then(|node| reader.items(node, shape.list, |r, t| (shape.item)(r, t, cx)));
    Some((workload?, targets?))
}

fn v1_hint(field: &str) -> Option<String> {
    match field {
        "service" | "calls" => Some(format!(
            "`{field}` belongs to the v1 format: use `workload`/`targets` with this apiVersion"
        )),
        _ => None,
    }
}

/// A `{name, kind}` map naming a workload of the document's namespace: the
/// client of ClientIntents (`workload`, v1: `service`), a ProtectedService's
/// spec, a KafkaServerConfig's server. `what` is the name as its errors call it.
pub(super) fn read_workload(
    reader: &mut Reader<'_>,
    node: &Node,
    cx: &DocContext,
    within: &'static str,
    what: &'static str,
) -> Option<WorkloadRef> {
    let fields = workload_fields(reader, node, cx.format, within)?;
    let name = fields
        .required(reader, "name")
        .and_then(|n| read_name(reader, n, what));
    let kind = read_kind(reader, &fields);
    Some(WorkloadRef {
        id: WorkloadId::new(&name?, &cx.namespace),
        kind: kind?,
    })
}

/// The fields of a `{name, kind}` map; v1alpha2 has no `kind`.
pub(super) fn workload_fields<'n>(
    reader: &mut Reader<'_>,
    node: &'n Node,
    format: Format,
    within: &'static str,
) -> Option<Fields<'n>> {
    if format == Format::OtterizeV1alpha2 {
        reader.map_with(node, within, &["name"], |field| {
            (field == "kind").then(|| {
                "k8s.otterize.com/v1alpha2 has no `kind`: remove it, or use apiVersion k8s.otterize.com/v1alpha3 or later".to_string()
            })
        })
    } else {
        reader.map(node, within, &["name", "kind"])
    }
}

/// An optional `kind`; `Some(None)` when absent, `None` when invalid.
fn read_kind(reader: &mut Reader<'_>, fields: &Fields<'_>) -> Option<Option<Kind>> {
    match fields.get("kind") {
        None => Some(None),
        Some(node) => reader
            .parsed(node, "kind", Kind::parse, |e| name_hint(&e))
            .map(Some),
    }
}

fn read_target(reader: &mut Reader<'_>, node: &Node, cx: &DocContext) -> Option<Target> {
    let fields = reader.map(node, "target", TARGET_KEYS)?;
    let present: Vec<(&str, &Node)> = fields.present().collect();
    let (key, _) = match present.as_slice() {
        [one] => *one,
        [] => {
            reader.rule(
                node,
                format!(
                    "a target needs exactly one of {}; found none",
                    quoted(TARGET_KEYS)
                ),
            );
            return None;
        }
        many => {
            let names: Vec<&str> = many.iter().map(|(k, _)| *k).collect();
            reader.rule(
                node,
                format!(
                    "a target needs exactly one of {}; found {}: split it into one target each",
                    quoted(TARGET_KEYS),
                    quoted(&names)
                ),
            );
            return None;
        }
    };
    let body = fields.required(reader, TARGET_KEYS.iter().find(|k| **k == key).copied()?)?;
    let kind = match key {
        "kubernetes" => read_call(reader, body, cx, true)?,
        "service" => read_call(reader, body, cx, false)?,
        "kafka" => TargetKind::Kafka(read_kafka(reader, body, cx)?),
        "sql" => TargetKind::Sql(read_sql(reader, body, cx)?),
        "internet" => TargetKind::Internet(read_internet(reader, body)?),
        "aws" => TargetKind::Aws(read_cloud(reader, body, "aws target", "arn", "actions")?),
        "gcp" => TargetKind::Gcp(read_cloud(
            reader,
            body,
            "gcp target",
            "resource",
            "permissions",
        )?),
        _ => TargetKind::Azure(read_azure(reader, body)?),
    };
    Some(Target {
        at: reader.at(node),
        kind,
    })
}

fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn ibac_only_hint(format: Format) -> impl Fn(&str) -> Option<String> {
    move |field| {
        (field == "ports" && format != Format::IbacV1)
            .then(|| "`ports` is an ibac addition: use apiVersion ibac.dev/v1".to_string())
    }
}

/// `kubernetes:` or `service:` targets.
fn read_call(
    reader: &mut Reader<'_>,
    node: &Node,
    cx: &DocContext,
    kubernetes: bool,
) -> Option<TargetKind> {
    let known: &'static [&'static str] = match (kubernetes, cx.format == Format::IbacV1) {
        (true, true) => &["name", "kind", "http", "ports"],
        (true, false) => &["name", "kind", "http"],
        (false, true) => &["name", "http", "ports"],
        (false, false) => &["name", "http"],
    };
    let within = if kubernetes {
        "kubernetes target"
    } else {
        "service target"
    };
    let fields = reader.map_with(node, within, known, ibac_only_hint(cx.format))?;
    let id = fields
        .required(reader, "name")
        .and_then(|n| read_target_id(reader, n, cx, "target name"));
    let kind = read_kind(reader, &fields);
    let http = match fields.get("http") {
        Some(node) => read_http(reader, node),
        None => Some(Vec::new()),
    };
    let ports = match fields.get("ports") {
        Some(node) => read_ports(reader, node),
        None => Some(Vec::new()),
    };
    let kind = kind?;
    let service = !kubernetes || kind.as_ref().is_some_and(Kind::is_service);
    let target = CallTarget {
        id: id?,
        kind: kind.filter(|k| !k.is_service()),
        ports: ports?,
        http: http?,
    };
    Some(if service {
        TargetKind::Service(target)
    } else {
        TargetKind::Workload(target)
    })
}

/// `name` or `name.namespace`; the client's namespace when none is given.
fn read_target_id(
    reader: &mut Reader<'_>,
    node: &Node,
    cx: &DocContext,
    what: &'static str,
) -> Option<WorkloadId> {
    reader.parsed(
        node,
        what,
        |text| WorkloadId::parse_relative(text, &cx.namespace),
        |e| match e {
            crate::name::NameError::NotQualified => {
                Hint::new("write `name` or `name.namespace`, with at most one `.`")
            }
            e => name_hint(&e),
        },
    )
}

/// Whether a target name was written as `name.namespace`.
fn written_qualified(node: &Node) -> bool {
    matches!(&node.value, crate::yaml::Value::Str { text, .. } if text.contains('.'))
}

fn read_http(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<HttpRule>> {
    reader.items(node, "a list of HTTP rules", read_http_rule)
}

fn read_http_rule(reader: &mut Reader<'_>, item: &Node) -> Option<HttpRule> {
    let fields = reader.map(item, "HTTP rule", &["path", "methods"])?;
    let path = fields.required(reader, "path").and_then(|n| {
        let text = reader.string(n, "a path such as `/api` or `/api/*`")?;
        match PathPattern::parse(text) {
            Ok(p) => Some(p),
            Err(e) => {
                reader.invalid(n, "HTTP path", text, Hint::new(e.to_string()));
                None
            }
        }
    });
    let methods = match fields.get("methods") {
        Some(n) => read_methods(reader, n),
        None => Some(Vec::new()),
    };
    Some(HttpRule {
        at: reader.at(item),
        path: path?,
        methods: methods?,
    })
}

fn read_methods(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<Method>> {
    let mut methods = reader.strings(node, "a list of HTTP methods", |r, n, text| {
        Method::parse(text).or_else(|| {
            let hint = match Method::parse(&text.to_ascii_uppercase()) {
                Some(m) => Hint::new(format!("methods are uppercase: did you mean `{m}`?")),
                None if text.eq_ignore_ascii_case("HEAD") => {
                    Hint::new("HEAD is allowed wherever GET is: write `GET`")
                }
                None => Hint::new(format!(
                    "use one of {}",
                    Method::ALL.map(Method::as_str).join(", ")
                )),
            };
            r.invalid(n, "HTTP method", text, hint);
            None
        })
    })?;
    methods.sort();
    methods.dedup();
    Some(methods)
}

fn read_ports(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<u16>> {
    let ports = reader.items(node, "a list of ports", |r, n| {
        r.integer(n, "port", 1..=65535)
            .and_then(|p| u16::try_from(p).ok())
    })?;
    Some(dedup(ports))
}

fn read_kafka(reader: &mut Reader<'_>, node: &Node, cx: &DocContext) -> Option<KafkaTarget> {
    let fields = reader.map(node, "kafka target", &["name", "topics"])?;
    let server = fields
        .required(reader, "name")
        .and_then(|n| read_target_id(reader, n, cx, "Kafka server name"));
    let topics = match fields.get("topics") {
        Some(n) => read_topics(reader, n, cx.format == Format::IbacV1),
        None => Some(Vec::new()),
    };
    Some(KafkaTarget {
        server: server?,
        topics: topics?,
    })
}

fn read_topics(
    reader: &mut Reader<'_>,
    node: &Node,
    allow_prefix: bool,
) -> Option<Vec<KafkaTopic>> {
    reader.items(node, "a list of topics", |r, item| {
        read_topic(r, item, allow_prefix)
    })
}

fn read_topic(reader: &mut Reader<'_>, item: &Node, allow_prefix: bool) -> Option<KafkaTopic> {
    let fields = reader.map(item, "Kafka topic", &["name", "operations"])?;
    let topic = fields.required(reader, "name").and_then(|n| {
        reader.parsed(
            n,
            "Kafka topic",
            |text| TopicPattern::parse(text, allow_prefix),
            |e| Hint::new(e.to_string()),
        )
    });
    let operations = fields.required(reader, "operations").and_then(|n| {
        let ops = reader.strings(n, "a list of Kafka operations", |r, n, text| {
            KafkaOperation::parse(text)
                .map_err(|suggestion| {
                    let hint = match suggestion {
                        Some(s) => Hint::did_you_mean(Some(s)),
                        None => Hint::new(format!(
                            "use one of {}",
                            KafkaOperation::ALL.map(KafkaOperation::as_str).join(", ")
                        )),
                    };
                    r.invalid(n, "Kafka operation", text, hint);
                })
                .ok()
        })?;
        if ops.is_empty() {
            reader.rule(n, "list at least one Kafka operation, or `all`");
            return None;
        }
        Some(dedup(ops))
    });
    Some(KafkaTopic {
        at: reader.at(item),
        topic: topic?,
        operations: operations?,
    })
}

fn dedup<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items.dedup();
    items
}

fn read_sql(reader: &mut Reader<'_>, node: &Node, cx: &DocContext) -> Option<SqlTarget> {
    let fields = reader.map(node, "sql target", &["name", "privileges"])?;
    let name = fields.required(reader, "name");
    let server = name.and_then(|n| read_target_id(reader, n, cx, "SQL server config name"));
    let privileges = match fields.get("privileges") {
        Some(n) => read_privileges(reader, n),
        None => Some(Vec::new()),
    };
    Some(SqlTarget {
        server: server?,
        namespace_given: name.is_some_and(written_qualified),
        privileges: privileges?,
    })
}

fn read_privileges(reader: &mut Reader<'_>, node: &Node) -> Option<Vec<SqlPrivilege>> {
    reader.items(node, "a list of privileges", read_privilege)
}

fn read_privilege(reader: &mut Reader<'_>, item: &Node) -> Option<SqlPrivilege> {
    let fields = reader.map(
        item,
        "SQL privilege",
        &["databaseName", "table", "operations"],
    )?;
    let identifier = |reader: &mut Reader<'_>, n: &Node, what: &'static str, parts: usize| {
        reader.parsed(
            n,
            what,
            |text| check_identifier(text, parts).map(|()| text.to_string()),
            Hint::new,
        )
    };
    let database = fields
        .required(reader, "databaseName")
        .and_then(|n| identifier(reader, n, "database name", 1));
    let table = match fields.get("table") {
        Some(n) => identifier(reader, n, "table name", 2).map(Some),
        None => Some(None),
    };
    let operations = match fields.get("operations") {
        Some(n) => reader
            .strings(n, "a list of SQL operations", |r, n, text| {
                SqlOperation::parse(text)
                    .map_err(|s| {
                        let hint = match s {
                            Some(s) => Hint::did_you_mean(Some(s)),
                            None => Hint::new("use ALL, SELECT, INSERT, UPDATE or DELETE"),
                        };
                        r.invalid(n, "SQL operation", text, hint);
                    })
                    .ok()
            })
            .map(dedup),
        None => Some(Vec::new()),
    };
    Some(SqlPrivilege {
        at: reader.at(item),
        database: database?,
        table: table?,
        operations: operations?,
    })
}

fn read_internet(reader: &mut Reader<'_>, node: &Node) -> Option<InternetTarget> {
    let fields = reader.map(node, "internet target", &["domains", "ips", "ports"])?;
    let domains = match fields.get("domains") {
        Some(n) => reader.strings(n, "a list of domain names", |r, n, text| {
            check_domain(text)
                .map(|()| text.to_ascii_lowercase())
                .map_err(|why| r.invalid(n, "domain name", text, Hint::new(why)))
                .ok()
        }),
        None => Some(Vec::new()),
    };
    let ips = match fields.get("ips") {
        Some(n) => reader.strings(n, "a list of addresses or ranges", |r, n, text| {
            parse_ip_range(text)
                .map_err(|why| r.invalid(n, "IP address or range", text, Hint::new(why)))
                .ok()
        }),
        None => Some(Vec::new()),
    };
    let ports = match fields.get("ports") {
        Some(n) => read_ports(reader, n),
        None => Some(Vec::new()),
    };
    let (domains, ips, ports) = (domains?, ips?, ports?);
    if domains.is_empty() && ips.is_empty() {
        reader.rule(node, "an internet target needs `domains` or `ips`");
        return None;
    }
    Some(InternetTarget {
        domains,
        ips,
        ports,
    })
}

fn read_cloud(
    reader: &mut Reader<'_>,
    node: &Node,
    within: &'static str,
    resource_key: &'static str,
    actions_key: &'static str,
) -> Option<CloudTarget> {
    let known: &'static [&'static str] = if resource_key == "arn" {
        &["arn", "actions"]
    } else {
        &["resource", "permissions"]
    };
    let fields = reader.map(node, within, known)?;
    let resource = fields
        .required(reader, resource_key)
        .and_then(|n| reader.string(n, "a string").map(str::to_string));
    let actions = string_list(reader, &fields, actions_key);
    Some(CloudTarget {
        resource: resource?,
        actions: actions?,
    })
}

fn string_list(reader: &mut Reader<'_>, fields: &Fields<'_>, key: &str) -> Option<Vec<String>> {
    match fields.get(key) {
        Some(n) => reader.strings(n, "a list of strings", |_, _, t| Some(t.to_string())),
        None => Some(Vec::new()),
    }
}

fn read_azure(reader: &mut Reader<'_>, node: &Node) -> Option<AzureTarget> {
    let fields = reader.map(
        node,
        "azure target",
        &["scope", "roles", "actions", "dataActions", "keyVaultPolicy"],
    )?;
    let scope = fields
        .required(reader, "scope")
        .and_then(|n| reader.string(n, "a string").map(str::to_string));
    let roles = string_list(reader, &fields, "roles");
    let actions = string_list(reader, &fields, "actions");
    let data_actions = string_list(reader, &fields, "dataActions");
    let key_vault_policy = match fields.get("keyVaultPolicy") {
        Some(n) => read_key_vault(reader, n).map(Some),
        None => Some(None),
    };
    let target = AzureTarget {
        scope: scope?,
        roles: roles?,
        actions: actions?,
        data_actions: data_actions?,
        key_vault_policy: key_vault_policy?,
    };
    check_azure(reader, node, &target)?;
    Some(target)
}

fn check_azure(reader: &mut Reader<'_>, node: &Node, target: &AzureTarget) -> Option<()> {
    if target.roles.is_empty()
        && target.actions.is_empty()
        && target.data_actions.is_empty()
        && target.key_vault_policy.is_none()
    {
        reader.rule(
            node,
            "an azure target needs `roles`, `actions`, `dataActions` or `keyVaultPolicy`",
        );
        return None;
    }
    let has_actions = !target.actions.is_empty() || !target.data_actions.is_empty();
    if !target.roles.is_empty() && has_actions {
        reader.rule(
            node,
            "an azure target takes `roles` or `actions`/`dataActions`, not both",
        );
        return None;
    }
    Some(())
}

/// A Key Vault policy's fields, each a list of permissions.
const KEY_VAULT_FIELDS: [&str; 4] = [
    "certificatePermissions",
    "keyPermissions",
    "secretPermissions",
    "storagePermissions",
];

fn read_key_vault(reader: &mut Reader<'_>, node: &Node) -> Option<KeyVaultPolicy> {
    let fields = reader.map(node, "keyVaultPolicy", &KEY_VAULT_FIELDS)?;
    let [certificate, key, secret, storage] = KEY_VAULT_FIELDS;
    Some(KeyVaultPolicy {
        certificate_permissions: string_list(reader, &fields, certificate)?,
        key_permissions: string_list(reader, &fields, key)?,
        secret_permissions: string_list(reader, &fields, secret)?,
        storage_permissions: string_list(reader, &fields, storage)?,
    })
}

// ---- the v1 shape: `service` + `calls` ----

/// The fields of a v1beta1 call. The two it added last, azureActions and
/// azureDataActions, come last, so that v1alpha3's are the list without them.
const V1_CALL_FIELDS_BETA1: &[&str] = &[
    "name",
    "kind",
    "type",
    "HTTPResources",
    "kafkaTopics",
    "databaseResources",
    "awsActions",
    "gcpPermissions",
    "azureRoles",
    "azureKeyVaultPolicy",
    "internet",
    "azureActions",
    "azureDataActions",
];
const V1_CALL_FIELDS_ALPHA3: &[&str] = V1_CALL_FIELDS_BETA1
    .split_at(V1_CALL_FIELDS_BETA1.len() - 2)
    .0;
const V1_CALL_FIELDS_ALPHA2: &[&str] =
    &["name", "type", "resources", "topics", "databaseResources"];
const V1_TYPES: &[&str] = &[
    "http", "kafka", "database", "aws", "gcp", "azure", "internet",
];
const V1_TYPES_ALPHA2: &[&str] = &["http", "kafka", "database"];

/// Where v1alpha2 and the later v1 formats name the same field differently.
fn v1_renamed_hint(format: Format, field: &str) -> Option<String> {
    let alpha2 = format == Format::OtterizeV1alpha2;
    let (ours, theirs) = match (alpha2, field) {
        (true, "HTTPResources") => ("resources", "v1alpha3 and later"),
        (true, "kafkaTopics") => ("topics", "v1alpha3 and later"),
        (false, "resources") => ("HTTPResources", "v1alpha2"),
        (false, "topics") => ("kafkaTopics", "v1alpha2"),
        _ => return None,
    };
    Some(format!(
        "{} calls this field `{ours}` (`{field}` is the {theirs} name)",
        format.api_version()
    ))
}

fn v2_hint(field: &str) -> Option<String> {
    match field {
        "workload" | "targets" => Some(format!(
            "`{field}` belongs to the v2 format: use `service`/`calls` with this apiVersion, or apiVersion k8s.otterize.com/v2beta1"
        )),
        _ => None,
    }
}

/// Which fields each v1 call type may carry besides name, kind and type.
fn v1_fields_for(format: Format, call_type: &str) -> &'static [&'static str] {
    match call_type {
        "http" if format == Format::OtterizeV1alpha2 => &["resources"],
        "kafka" if format == Format::OtterizeV1alpha2 => &["topics"],
        "http" => &["HTTPResources"],
        "kafka" => &["kafkaTopics"],
        "database" => &["databaseResources"],
        "aws" => &["awsActions"],
        "gcp" => &["gcpPermissions"],
        "azure" => &[
            "azureRoles",
            "azureActions",
            "azureDataActions",
            "azureKeyVaultPolicy",
        ],
        "internet" => &["internet"],
        _ => &[],
    }
}

fn read_call_v1(reader: &mut Reader<'_>, node: &Node, cx: &DocContext) -> Option<Target> {
    let (known, types) = match cx.format {
        Format::OtterizeV1beta1 => (V1_CALL_FIELDS_BETA1, V1_TYPES),
        Format::OtterizeV1alpha2 => (V1_CALL_FIELDS_ALPHA2, V1_TYPES_ALPHA2),
        _ => (V1_CALL_FIELDS_ALPHA3, V1_TYPES),
    };
    let fields = reader.map_with(node, "call", known, |field| {
        v1_renamed_hint(cx.format, field).or_else(|| {
            (cx.format == Format::OtterizeV1alpha2 && field == "kind").then(|| {
                "k8s.otterize.com/v1alpha2 has no `kind`: remove it, or use apiVersion k8s.otterize.com/v1alpha3 or later".to_string()
            })
        })
    })?;
    let call_type = match fields.get("type") {
        Some(n) => {
            let text = reader.string(n, "a string")?;
            if !types.contains(&text) {
                reader.invalid(
                    n,
                    "call type",
                    text,
                    Hint::new(format!(
                        "{} has {}",
                        cx.format.api_version(),
                        types.join(", ")
                    )),
                );
                return None;
            }
            text
        }
        None => "",
    };
    let allowed = v1_fields_for(cx.format, call_type);
    for (field, key) in fields.present() {
        if !["name", "kind", "type"].contains(&field) && !allowed.contains(&field) {
            let owner = types
                .iter()
                .find(|t| v1_fields_for(cx.format, t).contains(&field))
                .copied()
                .unwrap_or("?");
            reader.rule(
                key,
                format!("`{field}` belongs to calls of `type: {owner}`"),
            );
        }
    }
    let name_node = fields.get("name");
    if name_node.is_none() && call_type != "internet" {
        fields.required(reader, "name");
        return None;
    }
    let at = reader.at(node);
    let kind = match call_type {
        "" | "http" => {
            let name_node = name_node?;
            let text = reader.identifier(name_node, "a string")?;
            let (service, bare) = match text.strip_prefix("svc:") {
                Some(rest) => (true, rest),
                None => (false, text),
            };
            let id = match WorkloadId::parse_relative(bare, &cx.namespace) {
                Ok(id) => id,
                Err(e) => {
                    reader.invalid(name_node, "call name", text, name_hint(&e));
                    return None;
                }
            };
            let kind = read_kind(reader, &fields)?;
            let service = service || kind.as_ref().is_some_and(Kind::is_service);
            let http_key = if cx.format == Format::OtterizeV1alpha2 {
                "resources"
            } else {
                "HTTPResources"
            };
            let http = match (call_type, fields.get(http_key)) {
                ("http", Some(n)) => read_http(reader, n)?,
                _ => Vec::new(),
            };
            let target = CallTarget {
                id,
                kind: kind.filter(|k| !k.is_service()),
                ports: Vec::new(),
                http,
            };
            if service {
                TargetKind::Service(target)
            } else {
                TargetKind::Workload(target)
            }
        }
        "kafka" => {
            let server = read_target_id(reader, name_node?, cx, "Kafka server name")?;
            let topics_key = if cx.format == Format::OtterizeV1alpha2 {
                "topics"
            } else {
                "kafkaTopics"
            };
            let topics = match fields.get(topics_key) {
                Some(n) => read_topics(reader, n, false)?,
                None => Vec::new(),
            };
            TargetKind::Kafka(KafkaTarget { server, topics })
        }
        "database" => {
            let name_node = name_node?;
            let server = read_target_id(reader, name_node, cx, "SQL server config name")?;
            let privileges = match fields.get("databaseResources") {
                Some(n) => read_privileges(reader, n)?,
                None => Vec::new(),
            };
            TargetKind::Sql(SqlTarget {
                server,
                namespace_given: written_qualified(name_node),
                privileges,
            })
        }
        "aws" | "gcp" => {
            let resource = reader.string(name_node?, "a string")?.to_string();
            let key = if call_type == "aws" {
                "awsActions"
            } else {
                "gcpPermissions"
            };
            let target = CloudTarget {
                resource,
                actions: string_list(reader, &fields, key)?,
            };
            if call_type == "aws" {
                TargetKind::Aws(target)
            } else {
                TargetKind::Gcp(target)
            }
        }
        "azure" => {
            let target = AzureTarget {
                scope: reader.string(name_node?, "a string")?.to_string(),
                roles: string_list(reader, &fields, "azureRoles")?,
                actions: string_list(reader, &fields, "azureActions")?,
                data_actions: string_list(reader, &fields, "azureDataActions")?,
                key_vault_policy: match fields.get("azureKeyVaultPolicy") {
                    Some(n) => Some(read_key_vault(reader, n)?),
                    None => None,
                },
            };
            check_azure(reader, node, &target)?;
            TargetKind::Azure(target)
        }
        _ => {
            let Some(n) = fields.get("internet") else {
                reader.error(DocumentError::MissingField {
                    at: at.clone(),
                    field: "internet",
                    within: "call of `type: internet`",
                });
                return None;
            };
            TargetKind::Internet(read_internet(reader, n)?)
        }
    };
    Some(Target { at, kind })
}
