//! ibac's policy engine.
//!
//! Documents (ClientIntents, ProtectedService, EnforcementConfig) and cluster
//! facts (through a [`Resolver`]) go in; an immutable [`Policy`] snapshot comes
//! out, which decides any call in constant time — independent of the number of
//! intents — with a verdict and the reason for it.
//!
//! ```
//! use ibac_model::http::{normalize, Method, RequestMethod};
//! use ibac_model::{parse_source, ParseOptions, WorkloadId};
//! use ibac_policy::{NoFacts, Policy, Request, Verdict};
//!
//! let text = "
//! apiVersion: k8s.otterize.com/v2beta1
//! kind: ClientIntents
//! metadata: {name: web, namespace: shop}
//! spec:
//!   workload: {name: web}
//!   targets:
//!   - service: {name: api, http: [{path: /orders/*, methods: [GET]}]}
//! ";
//! let docs = parse_source(&"web.yaml".into(), text, &ParseOptions::default()).documents;
//! let (policy, errors) = Policy::build(docs, &NoFacts);
//! assert!(errors.is_empty());
//!
//! let web: WorkloadId = "web.shop".parse().unwrap();
//! let api: WorkloadId = "api.shop".parse().unwrap();
//! let get = |path| Request::http(None, RequestMethod::Known(Method::Get), normalize(path).unwrap());
//! assert_eq!(policy.decide(Some(&web), &api, &get("/orders/7")).verdict, Verdict::Allowed);
//! // Shadow mode: not declared, so it would be blocked once `api` is protected.
//! assert_eq!(policy.decide(Some(&web), &api, &get("/admin")).verdict, Verdict::WouldBeBlocked);
//! ```

mod compile;
mod configs;
mod decide;
pub mod graph;
mod intent;
mod pairs;
mod policy;
mod request;
mod resolve;
mod rules;
mod settings;
pub mod view;

pub use compile::{Contribution, compile};
pub use decide::{Decision, ProtectedBy, Protection, Reason, Verdict};
pub use intent::{HttpGrant, Intent, Ports, Via};
pub use policy::{Changes, DocumentStatus, Policy, ServerPolicy};
pub use request::{HttpRequest, Request};
pub use resolve::{Backend, NoFacts, PortMap, ResolveError, Resolver};
pub use rules::{Allowed, ClientRules};
pub use settings::{EXCLUDED_NAMESPACES, Settings};
