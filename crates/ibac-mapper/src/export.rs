//! Discovered calls as ClientIntents (`k8s.otterize.com/v2beta1`): one
//! document per client, ready to commit next to its code.
//!
//! By default the intents are L4: one `kubernetes` target per server called.
//! With HTTP, targets that only ever saw HTTP calls with methods an intent
//! can name also list their paths (generalized, see [`crate::generalize`])
//! and methods; HEAD is exported as GET, which allows it.

use std::collections::{BTreeMap, BTreeSet};

use ibac_model::encode::{Encoded, Flavor, encode};
use ibac_model::http::{Method, PathPattern};
use ibac_model::{
    CallTarget, ClientIntents, Document, Format, HttpRule, Location, Maker, Meta, Namespace,
    Target, TargetKind, WorkloadId, WorkloadRef,
};
use serde::Serialize;

use crate::calls::{CallKey, CallRecord, Protocol};
use crate::generalize::generalize;

/// Which calls to export, and how.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Only clients that call this server (with all their calls).
    pub server: Option<WorkloadId>,
    /// Only clients in these namespaces (empty: all).
    pub namespaces: Vec<Namespace>,
    /// List HTTP paths and methods.
    pub with_http: bool,
}

/// One ClientIntents document, in Otterize's current format, written by the
/// same encoder as `ibac convert` (one codec for every document ibac writes).
#[derive(Clone, Debug, Serialize)]
#[serde(transparent)]
pub struct ExportedIntents {
    #[serde(skip)]
    client: WorkloadId,
    encoded: Encoded,
}

impl ExportedIntents {
    /// The client it is for.
    pub fn client(&self) -> String {
        self.client.to_string()
    }

    /// The file name for directory output: `<workload>.<namespace>.yaml`.
    pub fn file_name(&self) -> String {
        format!("{}.{}.yaml", self.client.name(), self.client.namespace())
    }
}

/// The HTTP rules for one server, or `None` when a plain target is needed
/// (a TCP call, or a method or path no intent can name).
fn http_rules<'a>(keys: impl Iterator<Item = &'a CallKey>) -> Option<Vec<HttpRule>> {
    let mut rules: BTreeMap<String, BTreeSet<Method>> = BTreeMap::new();
    for key in keys {
        if key.protocol != Protocol::Http {
            return None;
        }
        let (Some(method), Some(path)) = (&key.method, &key.path) else {
            return None;
        };
        let method = if method == "HEAD" {
            Method::Get
        } else {
            Method::parse(method).filter(|m| *m != Method::Connect)?
        };
        rules.entry(generalize(path)).or_default().insert(method);
    }
    if rules.is_empty() {
        return None;
    }
    rules
        .into_iter()
        .map(|(path, methods)| {
            Some(HttpRule {
                at: Location::made(Maker::NetworkMapper),
                path: PathPattern::parse(&path).ok()?,
                methods: methods.into_iter().collect(),
            })
        })
        .collect()
}

/// Exports `calls` as one ClientIntents per client, sorted by client.
pub fn export(calls: &[(CallKey, CallRecord)], options: &ExportOptions) -> Vec<ExportedIntents> {
    let callers_of_server: Option<BTreeSet<&WorkloadId>> = options.server.as_ref().map(|s| {
        calls
            .iter()
            .filter(|(k, _)| &k.server == s)
            .map(|(k, _)| &k.client)
            .collect()
    });
    let mut by_client: BTreeMap<&WorkloadId, BTreeMap<&WorkloadId, Vec<&CallKey>>> =
        BTreeMap::new();
    for (key, _) in calls {
        if key.client == key.server {
            continue;
        }
        if let Some(callers) = &callers_of_server
            && !callers.contains(&key.client)
        {
            continue;
        }
        if !options.namespaces.is_empty()
            && !options
                .namespaces
                .iter()
                .any(|n| n.as_str() == key.client.namespace())
        {
            continue;
        }
        by_client
            .entry(&key.client)
            .or_default()
            .entry(&key.server)
            .or_default()
            .push(key);
    }
    by_client
        .into_iter()
        .filter_map(|(client, servers)| {
            let ns = client.namespace_owned();
            let targets = servers
                .into_iter()
                .map(|(server, keys)| Target {
                    at: Location::made(Maker::NetworkMapper),
                    kind: TargetKind::Workload(CallTarget {
                        id: server.clone(),
                        kind: None,
                        ports: Vec::new(),
                        http: if options.with_http {
                            http_rules(keys.into_iter()).unwrap_or_default()
                        } else {
                            Vec::new()
                        },
                    }),
                })
                .collect();
            let doc = Document::ClientIntents(ClientIntents {
                meta: Meta {
                    name: client.name().to_string(),
                    namespace: ns,
                    origin: Location::made(Maker::NetworkMapper),
                    format: Format::OtterizeV2beta1,
                    namespace_given: true,
                },
                workload: WorkloadRef {
                    id: client.clone(),
                    kind: None,
                },
                targets,
            });
            // Plain targets and literal paths: Otterize's format holds them all.
            let encoded = encode(&doc, Flavor::Otterize).ok()?;
            Some(ExportedIntents {
                client: client.clone(),
                encoded,
            })
        })
        .collect()
}

/// Writing the export failed (a bug in the output types).
#[derive(Debug, thiserror::Error)]
#[error("cannot write the export: {0}")]
pub struct WriteError(String);

/// The documents as a YAML stream, `---` between them.
pub fn to_yaml(docs: &[ExportedIntents]) -> Result<String, WriteError> {
    ibac_model::yaml::to_yaml_stream(docs).map_err(|e| WriteError(e.to_string()))
}

/// The documents as a JSON array of whole ClientIntents objects.
pub fn to_json(docs: &[ExportedIntents]) -> Result<String, WriteError> {
    serde_json::to_string_pretty(docs)
        .map(|mut s| {
            s.push('\n');
            s
        })
        .map_err(|e| WriteError(e.to_string()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use crate::calls::{Discovered, Observation, Source};
    use ibac_model::{ParseOptions, SourceName, parse_source};
    use ibac_policy::{NoFacts, Policy, Request, Verdict};

    fn w(s: &str) -> WorkloadId {
        WorkloadId::parse(s).unwrap()
    }

    fn observe(d: &mut Discovered, client: &str, server: &str, call: Option<(&str, &str)>) {
        let (c, s) = (w(client), w(server));
        let key = match call {
            Some((m, p)) => CallKey::http(c, s, 8080, m, p),
            None => CallKey::tcp(c, s, 9092),
        };
        d.observe(Observation {
            key,
            verdict: Some(Verdict::WouldBeBlocked),
            count: 1,
            first_seen: 1,
            last_seen: 1,
            source: Source::Proxy,
        });
    }

    fn shop() -> Vec<(CallKey, CallRecord)> {
        let mut d = Discovered::default();
        let ns = "otterize-ecom-demo";
        let id = |n: &str| format!("{n}.{ns}");
        let calls = [
            (
                "frontend",
                "productcatalogservice",
                Some(("GET", "/products")),
            ),
            (
                "frontend",
                "productcatalogservice",
                Some(("GET", "/products/42")),
            ),
            ("frontend", "cartservice", Some(("POST", "/cart"))),
            ("frontend", "cartservice", Some(("HEAD", "/cart"))),
            (
                "checkoutservice",
                "productcatalogservice",
                Some(("GET", "/products")),
            ),
            ("checkoutservice", "kafka.kafka", None),
            (
                "recommendationservice",
                "productcatalogservice",
                Some(("GET", "/products")),
            ),
            ("cartservice", "redis-cart", None),
            ("loadgenerator", "frontend", Some(("GET", "/"))),
        ];
        for (client, server, call) in calls {
            // A server named with its namespace is outside the shop's.
            let server = if server.contains('.') {
                server.to_string()
            } else {
                id(server)
            };
            observe(&mut d, &id(client), &server, call);
        }
        d.since(None)
    }

    #[test]
    fn l4_export_of_one_server_names_every_call_of_its_clients() {
        let options = ExportOptions {
            server: Some(w("productcatalogservice.otterize-ecom-demo")),
            ..ExportOptions::default()
        };
        let docs = export(&shop(), &options);
        insta::assert_snapshot!(to_yaml(&docs).unwrap());
    }

    #[test]
    fn http_export_lists_generalized_paths_and_nameable_methods() {
        let options = ExportOptions {
            with_http: true,
            namespaces: vec![Namespace::parse("otterize-ecom-demo").unwrap()],
            ..ExportOptions::default()
        };
        let docs = export(&shop(), &options);
        insta::assert_snapshot!(to_yaml(&docs).unwrap());
        let json: serde_json::Value = serde_json::from_str(&to_json(&docs).unwrap()).unwrap();
        assert_eq!(json.as_array().unwrap().len(), 5);
        assert_eq!(json[0]["kind"], "ClientIntents");
    }

    /// What ibac exports, ibac reads back; and the intents it makes allow
    /// every call they were exported from.
    #[test]
    fn exported_intents_parse_and_allow_every_discovered_call() {
        let calls = shop();
        for with_http in [false, true] {
            let docs = export(
                &calls,
                &ExportOptions {
                    with_http,
                    ..ExportOptions::default()
                },
            );
            let yaml = to_yaml(&docs).unwrap();
            let parsed = parse_source(
                &SourceName::from("export.yaml"),
                &yaml,
                &ParseOptions::default(),
            );
            assert!(parsed.errors.is_empty(), "{:?}\n{yaml}", parsed.errors);
            let (policy, errors) = Policy::build(parsed.documents, &NoFacts);
            assert!(errors.is_empty(), "{errors:?}");
            for (key, _) in &calls {
                let request: Request = key.request();
                let d = policy.decide(Some(&key.client), &key.server, &request);
                assert_eq!(d.verdict, Verdict::Allowed, "{key:?} with_http={with_http}");
            }
        }
    }
}
