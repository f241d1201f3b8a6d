//! `ibac diff`: discovered calls against declared intents.
//!
//! Two lists come out. Calls that would break: discovered calls no intent
//! allows, which would be blocked as soon as their server is protected (or
//! are blocked now). Unused intents: declared client → server pairs the
//! mapper never saw. In code review, the first list means the intents miss
//! something the code does; the second, that they allow more than it does.

use std::collections::BTreeSet;

use ibac_model::WorkloadId;
use ibac_policy::graph::access_graph;
use ibac_policy::{Policy, Verdict};
use serde::Serialize;

use crate::calls::{CallKey, CallRecord, policy_calls};

/// A discovered call that no intent allows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Undeclared {
    /// The call.
    #[serde(flatten)]
    pub call: CallKey,
    /// What the policy says now: `would-be-blocked` or `blocked`.
    pub verdict: Verdict,
    /// How many times it was seen.
    pub count: u64,
}

/// A declared client → server pair never seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Unused {
    /// The client.
    pub client: WorkloadId,
    /// The server.
    pub server: WorkloadId,
    /// The intents that declare it.
    pub intents: Vec<String>,
}

/// The difference.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Diff {
    /// Calls that would break once their servers are protected.
    pub would_break: Vec<Undeclared>,
    /// Intents no discovered call used.
    pub unused: Vec<Unused>,
}

impl Diff {
    /// Whether discovered and declared agree.
    pub fn is_clean(&self) -> bool {
        self.would_break.is_empty() && self.unused.is_empty()
    }
}

/// Compares `calls` with the intents in `policy`. Only clients in `scope`
/// are considered when it is given (the clients whose intents are under
/// review); others' calls are neither missing nor unused.
pub fn diff(
    policy: &Policy,
    calls: &[(CallKey, CallRecord)],
    scope: Option<&BTreeSet<WorkloadId>>,
) -> Diff {
    let in_scope = |c: &WorkloadId| scope.is_none_or(|s| s.contains(c));
    let mut out = Diff::default();
    for (key, record) in calls {
        if !in_scope(&key.client) {
            continue;
        }
        let decision = policy.decide(Some(&key.client), &key.server, &key.request());
        if decision.verdict != Verdict::Allowed {
            out.would_break.push(Undeclared {
                call: key.clone(),
                verdict: decision.verdict,
                count: record.count,
            });
        }
    }
    let graph = access_graph(policy, &policy_calls(calls.iter().map(|(k, r)| (k, r))));
    for edge in graph.edges {
        if edge.declared && !edge.discovered && in_scope(&edge.client) {
            out.unused.push(Unused {
                client: edge.client,
                server: edge.server,
                intents: edge.intents,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::calls::{Discovered, Observation, Source};
    use ibac_model::{ParseOptions, SourceName, parse_source};
    use ibac_policy::NoFacts;

    fn policy(yaml: &str) -> Policy {
        let parsed = parse_source(&SourceName::from("t.yaml"), yaml, &ParseOptions::default());
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        Policy::build(parsed.documents, &NoFacts).0
    }

    fn call(d: &mut Discovered, client: &str, server: &str, path: &str) {
        d.observe(Observation {
            key: CallKey::http(
                WorkloadId::parse(client).unwrap(),
                WorkloadId::parse(server).unwrap(),
                80,
                "GET",
                path,
            ),
            verdict: Some(Verdict::WouldBeBlocked),
            count: 3,
            first_seen: 0,
            last_seen: 0,
            source: Source::Proxy,
        });
    }

    const INTENTS: &str = "
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: web, namespace: shop}
spec:
  workload: {name: web}
  targets:
  - kubernetes: {name: api, http: [{path: /products, methods: [GET]}]}
  - kubernetes: {name: search}
";

    #[test]
    fn finds_calls_that_would_break_and_intents_never_used() {
        let mut d = Discovered::default();
        call(&mut d, "web.shop", "api.shop", "/products");
        call(&mut d, "web.shop", "api.shop", "/admin");
        call(&mut d, "web.shop", "cart.shop", "/cart");
        let result = diff(&policy(INTENTS), &d.since(None), None);
        let broken: Vec<String> = result
            .would_break
            .iter()
            .map(|u| format!("{} {}", u.call.server, u.call.path.as_deref().unwrap()))
            .collect();
        assert_eq!(broken, ["api.shop /admin", "cart.shop /cart"]);
        assert!(
            result
                .would_break
                .iter()
                .all(|u| u.verdict == Verdict::WouldBeBlocked)
        );
        assert_eq!(result.unused.len(), 1);
        assert_eq!(result.unused[0].server.to_string(), "search.shop");
        assert!(!result.is_clean());
    }

    #[test]
    fn clients_outside_the_scope_are_left_out() {
        let mut d = Discovered::default();
        call(&mut d, "other.shop", "api.shop", "/x");
        let scope: BTreeSet<WorkloadId> = [WorkloadId::parse("web.shop").unwrap()].into();
        let result = diff(&policy(INTENTS), &d.since(None), Some(&scope));
        assert!(result.would_break.is_empty());
        assert_eq!(
            result.unused.len(),
            2,
            "web's two declared servers were never called"
        );
    }
}
