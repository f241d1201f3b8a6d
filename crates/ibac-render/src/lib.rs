//! ibac's Kubernetes enforcers: the translation of a policy into the
//! configuration the cluster's own enforcers apply — NetworkPolicies, Istio
//! AuthorizationPolicies, Linkerd policy, Kafka ACLs and SQL grants.
//!
//! Everything here is a pure function of the policy and the cluster facts, and
//! deterministic: two runs produce byte-identical output, so teams can render
//! in CI and commit the result. The operator calls the same code.

pub mod facts;
pub mod identities;
pub mod istio;
pub mod kafka;
pub mod labels;
pub mod linkerd;
pub mod names;
pub mod netpol;
pub mod objects;
pub mod plan;
pub mod rendered;
pub mod sql;
mod workload_table;

pub use facts::{ClusterFacts, FactsOptions};
pub use identities::Principals;
pub use istio::{IstioOptions, render_istio, render_server_istio};
pub use kafka::{KafkaOptions, render_kafka_acls, render_server_kafka_acls};
pub use linkerd::{LinkerdOptions, render_linkerd, render_server_linkerd};
pub use netpol::{
    Dns, NetpolOptions, render_client_egress, render_network_policies,
    render_server_network_policies,
};
pub use rendered::{Rendered, ServerRendering};
pub use sql::{render_server_sql, render_sql};
