//! Kafka ACLs, from kafka targets: per client principal (by default
//! `User:CN=<name>.<namespace>`, the subject of ibac's SVIDs), on literal or
//! prefixed topics. `consume` also grants Read on consumer groups (all groups
//! for that principal only, unless configured); Read and Write imply Describe
//! in Kafka. Server-side topic settings of a KafkaServerConfig add their ACLs.
//! Output: AclBindings as JSON, and `kafka-acls` commands; given the current
//! bindings, only the additions and removals that reach the desired state.

use std::collections::BTreeSet;

use ibac_model::kafka::{KafkaOperation, TopicPattern};
use ibac_model::{Location, TargetKind, WorkloadId};
use ibac_policy::{Policy, Via};

use crate::{Rendered, ServerRendering};
use serde::{Deserialize, Serialize};

/// A resource pattern.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourcePattern {
    /// `TOPIC`, `GROUP` or `CLUSTER`.
    pub resource_type: String,
    /// The name (`kafka-cluster` for the cluster).
    pub name: String,
    /// `LITERAL` or `PREFIXED`.
    pub pattern_type: String,
}

/// An access control entry.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccessControlEntry {
    /// `User:…`.
    pub principal: String,
    /// Always `*`.
    pub host: String,
    /// `READ`, `WRITE`, …
    pub operation: String,
    /// `ALLOW` or `DENY`.
    pub permission_type: String,
}

/// One ACL, as Kafka's AdminClient models it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclBinding {
    /// What.
    pub pattern: ResourcePattern,
    /// Who and how.
    pub entry: AccessControlEntry,
}

/// The ACLs of one Kafka server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KafkaServerAcls {
    /// The Kafka workload.
    pub server: WorkloadId,
    /// `host:port` for `kafka-acls --bootstrap-server`.
    pub bootstrap: String,
    /// Desired bindings, sorted.
    pub bindings: Vec<AclBinding>,
}

/// Options of Kafka ACL rendering.
#[derive(Clone, Debug)]
pub struct KafkaOptions {
    /// `$name` and `$namespace` are replaced by the client's.
    pub principal_template: String,
    /// Consumer groups granted to consumers (`$name`, `$namespace` replaced);
    /// a trailing `*` makes a prefix; `*` alone is every group.
    pub group: String,
}

impl Default for KafkaOptions {
    fn default() -> Self {
        KafkaOptions {
            principal_template: "User:CN=$name.$namespace".into(),
            group: "*".into(),
        }
    }
}

fn binding(
    resource_type: &str,
    name: &str,
    prefixed: bool,
    principal: &str,
    operation: &str,
    allow: bool,
) -> AclBinding {
    AclBinding {
        pattern: ResourcePattern {
            resource_type: resource_type.into(),
            name: name.into(),
            pattern_type: if prefixed { "PREFIXED" } else { "LITERAL" }.into(),
        },
        entry: AccessControlEntry {
            principal: principal.into(),
            host: "*".into(),
            operation: operation.into(),
            permission_type: if allow { "ALLOW" } else { "DENY" }.into(),
        },
    }
}

/// Replaces `$namespace` before `$name`, which is a prefix of it.
fn substitute(template: &str, client: &WorkloadId) -> String {
    template
        .replace("$namespace", client.namespace())
        .replace("$name", client.name())
}

fn topic(pattern: &TopicPattern) -> (String, bool) {
    match pattern {
        TopicPattern::Literal(t) => (t.clone(), false),
        TopicPattern::Prefix(p) => (p.clone(), true),
        TopicPattern::Any => ("*".into(), false),
    }
}

/// The bindings one operation on one topic pattern needs.
fn bindings_for(
    op: KafkaOperation,
    topic_name: &str,
    prefixed: bool,
    principal: &str,
    group: (&str, bool),
) -> Vec<AclBinding> {
    let t = |operation: &str| binding("TOPIC", topic_name, prefixed, principal, operation, true);
    let cluster = |operation: &str| {
        binding(
            "CLUSTER",
            "kafka-cluster",
            false,
            principal,
            operation,
            true,
        )
    };
    match op {
        KafkaOperation::All => vec![t("ALL")],
        KafkaOperation::Consume => vec![
            t("READ"),
            binding("GROUP", group.0, group.1, principal, "READ", true),
        ],
        KafkaOperation::Produce => vec![t("WRITE")],
        KafkaOperation::Create => vec![t("CREATE")],
        KafkaOperation::Alter => vec![t("ALTER")],
        KafkaOperation::Delete => vec![t("DELETE")],
        KafkaOperation::Describe => vec![t("DESCRIBE")],
        KafkaOperation::DescribeConfigs => vec![t("DESCRIBE_CONFIGS")],
        KafkaOperation::AlterConfigs => vec![t("ALTER_CONFIGS")],
        KafkaOperation::ClusterAction => vec![cluster("CLUSTER_ACTION")],
        KafkaOperation::IdempotentWrite => vec![cluster("IDEMPOTENT_WRITE")],
    }
}

/// Renders the ACLs one Kafka server needs: its clients' topic grants (the
/// Kafka intents compiled into its rules lead to the targets that wrote them)
/// and the topic settings of its KafkaServerConfigs. A server neither named
/// by intents nor configured gets no object.
pub fn render_server_kafka_acls(
    policy: &Policy,
    server: &WorkloadId,
    options: &KafkaOptions,
) -> ServerRendering<KafkaServerAcls> {
    let mut out = ServerRendering::default();
    if !policy.settings().enforcers.kafka_acl {
        return out;
    }
    out.protected = policy.protection(server).is_protected();
    let configs = policy.kafka_configs(server);
    let mut named = !configs.is_empty();
    let mut acls: BTreeSet<AclBinding> = BTreeSet::new();
    for (client, rules) in policy
        .server(server)
        .map(|s| s.clients())
        .unwrap_or_default()
    {
        let places: BTreeSet<&Location> = rules
            .intents()
            .iter()
            .filter(|i| i.via == Via::Kafka)
            .map(|i| &i.at)
            .collect();
        let Some(ci) = policy.intents_of(client).filter(|_| !places.is_empty()) else {
            continue;
        };
        named = true;
        let principal = substitute(&options.principal_template, client);
        let group = substitute(&options.group, client);
        let group = match group.strip_suffix('*') {
            Some(prefix) if !prefix.is_empty() => (prefix.to_string(), true),
            _ => (group, false),
        };
        for target in ci.targets.iter().filter(|t| places.contains(&t.at)) {
            let TargetKind::Kafka(kafka) = &target.kind else {
                continue;
            };
            for t in &kafka.topics {
                let (name, prefixed) = topic(&t.topic);
                for op in &t.operations {
                    acls.extend(bindings_for(
                        *op,
                        &name,
                        prefixed,
                        &principal,
                        (&group.0, group.1),
                    ));
                }
            }
        }
    }
    if !named {
        return out;
    }
    for cfg in &configs {
        for t in &cfg.topics {
            if t.client_identity_required {
                acls.insert(binding(
                    "TOPIC",
                    &t.topic,
                    t.prefix,
                    "User:ANONYMOUS",
                    "ALL",
                    false,
                ));
            }
            if !t.intents_required {
                acls.insert(binding("TOPIC", &t.topic, t.prefix, "User:*", "ALL", true));
            }
        }
    }
    let bootstrap = configs
        .last()
        .and_then(|c| c.address.clone())
        .unwrap_or_else(|| format!("{}.{}:9092", server.name(), server.namespace()));
    out.objects.push(KafkaServerAcls {
        server: server.clone(),
        bootstrap,
        bindings: acls.into_iter().collect(),
    });
    out
}

/// Renders the ACLs every Kafka server needs: a fold over
/// [`render_server_kafka_acls`].
pub fn render_kafka_acls(policy: &Policy, options: &KafkaOptions) -> Rendered<KafkaServerAcls> {
    let (mut out, refused) = Rendered::fold_all(
        policy
            .kafka_servers()
            .into_iter()
            .map(|server| render_server_kafka_acls(policy, &server, options)),
    );
    out.skipped.extend(refused);
    out
}

/// What to add and what to remove to go from `current` to `desired`.
pub fn diff(desired: &[AclBinding], current: &[AclBinding]) -> (Vec<AclBinding>, Vec<AclBinding>) {
    let want: BTreeSet<&AclBinding> = desired.iter().collect();
    let have: BTreeSet<&AclBinding> = current.iter().collect();
    (
        want.difference(&have).map(|b| (*b).clone()).collect(),
        have.difference(&want).map(|b| (*b).clone()).collect(),
    )
}

/// Quotes for a POSIX shell.
fn quote(text: &str) -> String {
    if !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.:/=@,".contains(c))
    {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

fn operation_name(op: &str) -> String {
    op.split('_')
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            let mut chars = lower.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// One `kafka-acls.sh` command adding (or removing) a binding.
pub fn command(bootstrap: &str, binding: &AclBinding, add: bool) -> String {
    let resource = match binding.pattern.resource_type.as_str() {
        "TOPIC" => format!("--topic {}", quote(&binding.pattern.name)),
        "GROUP" => format!("--group {}", quote(&binding.pattern.name)),
        _ => "--cluster".to_string(),
    };
    let who = if binding.entry.permission_type == "ALLOW" {
        "--allow-principal"
    } else {
        "--deny-principal"
    };
    format!(
        "kafka-acls.sh --bootstrap-server {} {} {who} {} --operation {} {resource} --resource-pattern-type {}",
        quote(bootstrap),
        if add { "--add" } else { "--remove --force" },
        quote(&binding.entry.principal),
        operation_name(&binding.entry.operation),
        binding.pattern.pattern_type.to_ascii_lowercase()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_quote_and_name_operations_as_kafka_does() {
        let b = binding(
            "TOPIC",
            "orders",
            true,
            "User:CN=web.shop",
            "DESCRIBE_CONFIGS",
            true,
        );
        assert_eq!(
            command("kafka:9092", &b, true),
            "kafka-acls.sh --bootstrap-server kafka:9092 --add --allow-principal User:CN=web.shop --operation DescribeConfigs --topic orders --resource-pattern-type prefixed"
        );
        let any = binding("TOPIC", "*", false, "User:*", "ALL", true);
        assert!(
            command("k:1", &any, false).contains(
                "--remove --force --allow-principal 'User:*' --operation All --topic '*'"
            )
        );
    }

    #[test]
    fn diff_adds_and_removes() {
        let a = binding("TOPIC", "a", false, "User:x", "READ", true);
        let b = binding("TOPIC", "b", false, "User:x", "READ", true);
        let c = binding("TOPIC", "c", false, "User:x", "READ", true);
        let (add, remove) = diff(&[a.clone(), b.clone()], &[b, c.clone()]);
        assert_eq!(add, vec![a]);
        assert_eq!(remove, vec![c]);
    }
}
