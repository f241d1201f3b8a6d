//! Istio AuthorizationPolicies (`security.istio.io/v1`).
//!
//! Per protected server, one ALLOW policy selects its workload by labels; its
//! rules name each client's service-account principal and the operations its
//! HTTP intents allow (GET brings HEAD along, as in ibac). A protected server
//! without clients gets an ALLOW policy with its selector and no rules, which
//! denies everything to it — without the selector it would deny the whole
//! namespace. Istio must normalize paths with `MERGE_SLASHES` for its decisions
//! to equal ibac's.

use std::collections::BTreeMap;

use ibac_model::DocumentError;
use ibac_model::http::Method;
use ibac_policy::{Intent, Policy, Ports};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

use crate::facts::{ClusterFacts, Workload};
use crate::identities::Principals;
use crate::names::{object_name, ownership};
use crate::plan;
use crate::plan::{ServerPlan, check_selector};
use crate::rendered::{Rendered, ServerRendering};

/// An AuthorizationPolicy, as the Istio CRD defines the fields ibac writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicy {
    /// `security.istio.io/v1`.
    pub api_version: String,
    /// `AuthorizationPolicy`.
    pub kind: String,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The policy.
    pub spec: AuthorizationPolicySpec,
}

/// The policy body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// Which workload.
    pub selector: WorkloadSelector,
    /// Always `ALLOW`.
    pub action: String,
    /// Who may do what; none allows nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
}

/// A workload selector.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSelector {
    /// Labels.
    pub match_labels: BTreeMap<String, String>,
}

/// One rule: sources and operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Sources.
    pub from: Vec<From>,
    /// Operations; none means every operation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<To>>,
}

/// A source.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct From {
    /// The source.
    pub source: Source,
}

/// Principals.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// `<trust-domain>/ns/<ns>/sa/<sa>`.
    pub principals: Vec<String>,
}

/// An operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct To {
    /// The operation.
    pub operation: Operation,
}

/// Methods, paths, ports.
#[derive(Clone, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Operation {
    /// HTTP methods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    /// Paths, Istio patterns.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Ports, as strings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<String>>,
}

/// Options of Istio rendering.
#[derive(Clone, Debug)]
pub struct IstioOptions {
    /// The mesh trust domain of principals.
    pub trust_domain: String,
}

impl Default for IstioOptions {
    fn default() -> Self {
        IstioOptions {
            trust_domain: "cluster.local".into(),
        }
    }
}

fn principal(options: &IstioOptions, w: &Workload) -> String {
    format!(
        "{}/ns/{}/sa/{}",
        options.trust_domain,
        w.id.namespace(),
        w.service_account
    )
}

fn methods(set: ibac_model::http::MethodSet) -> Option<Vec<String>> {
    if set.is_any() {
        return None;
    }
    let mut out = Vec::new();
    for m in set.methods() {
        out.push(m.as_str().to_string());
        if m == Method::Get {
            out.push("HEAD".into());
        }
    }
    Some(out)
}

fn operations(intent: &Intent) -> Option<Vec<To>> {
    let ports = match &intent.ports {
        Ports::All => None,
        Ports::Only(p) => Some(p.iter().map(u16::to_string).collect::<Vec<_>>()),
    };
    if intent.http.is_empty() {
        return ports.map(|ports| {
            vec![To {
                operation: Operation {
                    ports: Some(ports),
                    ..Operation::default()
                },
            }]
        });
    }
    Some(
        intent
            .http
            .iter()
            .map(|rule| To {
                operation: Operation {
                    methods: methods(rule.methods),
                    paths: Some(vec![rule.path.to_string()]),
                    ports: ports.clone(),
                },
            })
            .collect(),
    )
}

fn rules(plan: &ServerPlan<'_>, options: &IstioOptions) -> Vec<Rule> {
    plan.clients
        .iter()
        .flat_map(|client| {
            client.intents.iter().map(|intent| Rule {
                from: vec![From {
                    source: Source {
                        principals: vec![principal(options, client.client)],
                    },
                }],
                to: operations(intent),
            })
        })
        .collect()
}

/// Renders one server's AuthorizationPolicy, with warnings about clients
/// that share a service account with other workloads.
pub fn render_server_istio(
    policy: &Policy,
    facts: &ClusterFacts,
    id: &ibac_model::WorkloadId,
    options: &IstioOptions,
    principals: &Principals<'_>,
) -> ServerRendering<AuthorizationPolicy> {
    let mut out = ServerRendering::default();
    let Some(plan) = plan::server(policy, facts, id, &mut out.skipped) else {
        return out;
    };
    out.protected = plan.protected;
    if !policy.settings().enforcers.istio {
        return out;
    }
    let server = plan.server;
    if !plan.protected {
        out.explanation.push(plan.shadow_note(
            "no AuthorizationPolicy (an ALLOW policy would refuse every caller it does not name)",
        ));
        return out;
    }
    if let Err(e) = check_selector(facts, server) {
        out.refused.push(e);
        return out;
    }
    if server
        .selector
        .match_expressions
        .as_ref()
        .is_some_and(|e| !e.is_empty())
    {
        out.refused.push(plan::workload_error(
            server,
            "selects its pods with matchExpressions; Istio selects workloads by labels only",
        ));
        return out;
    }
    let rules = rules(&plan, options);
    out.warnings = principals.warnings(&plan, "Istio");
    let name = object_name("ibac", server.id.name());
    let mut text = format!(
        "{}: {}; AuthorizationPolicy {name}",
        server.id, plan.protection
    );
    if plan.clients.is_empty() {
        text.push_str(" allows nothing (ALLOW with no rules)");
    }
    for client in &plan.clients {
        for intent in client.intents {
            text.push_str(&format!(
                "\n  allows {} ({}): {}",
                client.client.id,
                principal(options, client.client),
                intent.describe()
            ));
        }
    }
    out.explanation.push(text);
    out.objects.push(AuthorizationPolicy {
        api_version: "security.istio.io/v1".into(),
        kind: "AuthorizationPolicy".into(),
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(server.id.namespace().into()),
            labels: Some(ownership("authorization", server.id.name())),
            ..ObjectMeta::default()
        },
        spec: AuthorizationPolicySpec {
            selector: WorkloadSelector {
                match_labels: server.selector.match_labels.clone().unwrap_or_default(),
            },
            action: "ALLOW".into(),
            rules: (!rules.is_empty()).then_some(rules),
        },
    });
    out
}

/// Renders AuthorizationPolicies for `policy` over `facts`: a fold of
/// [`render_server_istio`] over every server.
pub fn render_istio(
    policy: &Policy,
    facts: &ClusterFacts,
    options: &IstioOptions,
) -> Result<Rendered<AuthorizationPolicy>, Vec<DocumentError>> {
    let principals = Principals::of(facts);
    let (mut out, refused) = Rendered::fold_all(
        plan::server_ids(policy, facts)
            .iter()
            .map(|id| render_server_istio(policy, facts, id, options, &principals)),
    );
    if !policy.settings().enforcers.istio {
        out.explanation.insert(
            0,
            "Istio AuthorizationPolicies are turned off in the EnforcementConfig (enforcers.istio: false)".into(),
        );
        // Not "nothing is protected": this enforcer is off.
        out.skipped.clear();
        return Ok(out);
    }
    out.unless_refused(refused)
}
