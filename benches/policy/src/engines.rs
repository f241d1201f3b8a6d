//! The three engines behind one shape: build from a [`Spec`], decide request `i`.

use std::collections::HashMap;
use std::str::FromStr;

use anyhow::{Context as _, anyhow};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, PolicySet, RestrictedExpression,
};
use ibac_policy::{NoFacts, Policy, Verdict};

use crate::generate::{Req, Spec, client_name, documents, server_name};

pub struct IbacEngine {
    policy: Policy,
}

impl IbacEngine {
    pub fn new(spec: &Spec) -> anyhow::Result<Self> {
        let (policy, errors) = Policy::build(documents(spec)?, &NoFacts);
        if let Some(e) = errors.first() {
            return Err(anyhow!("{e}"));
        }
        Ok(IbacEngine { policy })
    }

    pub fn decide(&self, r: &Req) -> bool {
        self.policy
            .decide(Some(&r.client), &r.server, &r.ibac)
            .verdict
            == Verdict::Allowed
    }
}

/// Cedar evaluates every policy of the set it is given, so it gets one set per server.
pub struct CedarEngine {
    sets: HashMap<String, PolicySet>,
    requests: Vec<(String, cedar_policy::Request)>,
    authorizer: Authorizer,
    entities: Entities,
}

fn cedar_uid(kind: &str, id: &str) -> anyhow::Result<EntityUid> {
    EntityUid::from_str(&format!("{kind}::\"{id}\"")).map_err(|e| anyhow!("{e}"))
}

impl CedarEngine {
    pub fn new(spec: &Spec, reqs: &[Req]) -> anyhow::Result<Self> {
        let mut sets = HashMap::new();
        for (s, rule_ids) in spec.by_server.iter().enumerate() {
            let mut text = String::new();
            for &i in rule_ids {
                let r = &spec.rules[i];
                let actions: Vec<String> = r
                    .methods
                    .iter()
                    .map(|m| format!("Action::\"{m}\""))
                    .collect();
                let cond = if r.exact {
                    format!("context.path == \"{}\"", r.path)
                } else {
                    format!("context.path like \"{}*\"", r.path)
                };
                text.push_str(&format!(
                    "permit(principal == Workload::\"{}\", action in [{}], resource == Workload::\"{}\") when {{ {cond} }};\n",
                    client_name(r.client),
                    actions.join(", "),
                    server_name(s)
                ));
            }
            let set = PolicySet::from_str(&text).map_err(|e| anyhow!("cedar: {e}"))?;
            sets.insert(server_name(s), set);
        }
        let requests = reqs
            .iter()
            .map(|r| {
                let context = Context::from_pairs([(
                    "path".to_string(),
                    RestrictedExpression::new_string(r.path.clone()),
                )])
                .map_err(|e| anyhow!("{e}"))?;
                let request = cedar_policy::Request::new(
                    cedar_uid("Workload", r.client.as_str())?,
                    cedar_uid("Action", r.method)?,
                    cedar_uid("Workload", r.server.as_str())?,
                    context,
                    None,
                )
                .map_err(|e| anyhow!("{e}"))?;
                Ok((r.server.to_string(), request))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(CedarEngine {
            sets,
            requests,
            authorizer: Authorizer::new(),
            entities: Entities::empty(),
        })
    }

    pub fn decide(&self, i: usize) -> anyhow::Result<bool> {
        let (server, request) = self.requests.get(i).context("no such request")?;
        let set = self.sets.get(server).context("no such server")?;
        Ok(self
            .authorizer
            .is_authorized(request, set, &self.entities)
            .decision()
            == Decision::Allow)
    }
}

/// Data-driven Rego, indexed by server (`data.rules[input.dst]`).
const REGO: &str = r#"
package ibac
import rego.v1

default allow := false

allow if {
	some rule in data.rules[input.dst]
	rule.src == input.src
	input.method in rule.methods
	path_matches(rule)
}

path_matches(rule) if {
	rule.exact
	input.path == rule.path
}

path_matches(rule) if {
	not rule.exact
	startswith(input.path, rule.path)
}
"#;

pub struct RegoEngine {
    compiled: regorus::CompiledPolicy,
    inputs: Vec<regorus::Value>,
}

impl RegoEngine {
    pub fn new(spec: &Spec, reqs: &[Req]) -> anyhow::Result<Self> {
        let mut rules = serde_json::Map::new();
        for (s, rule_ids) in spec.by_server.iter().enumerate() {
            let list: Vec<serde_json::Value> = rule_ids
                .iter()
                .map(|&i| {
                    let r = &spec.rules[i];
                    serde_json::json!({
                        "src": client_name(r.client),
                        "methods": r.methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
                        "exact": r.exact,
                        "path": r.path,
                    })
                })
                .collect();
            rules.insert(server_name(s), serde_json::Value::Array(list));
        }
        let data = serde_json::json!({ "rules": rules });
        let mut engine = regorus::Engine::new();
        engine.add_policy("ibac.rego".into(), REGO.into())?;
        engine.add_data(regorus::Value::from_json_str(&data.to_string())?)?;
        let compiled = engine.compile_with_entrypoint(&"data.ibac.allow".into())?;
        let inputs = reqs
            .iter()
            .map(|r| {
                let input = serde_json::json!({
                    "src": r.client.as_str(), "dst": r.server.as_str(), "method": r.method, "path": r.path,
                });
                regorus::Value::from_json_str(&input.to_string())
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(RegoEngine { compiled, inputs })
    }

    pub fn decide(&self, i: usize) -> anyhow::Result<bool> {
        let input = self.inputs.get(i).context("no such request")?.clone();
        Ok(self.compiled.eval_with_input(input)? == regorus::Value::from(true))
    }
}
