//! ibac's local control plane (`ibac up`).
//!
//! One process holds the store (SQLite in the data directory), the CA and
//! attested issuance, the policy that proxies enforce (pushed to them by long
//! poll), the network mapper's discovered calls (from the proxies' reports
//! and local socket scans), and the access graph, with a live change stream.
//! Everything is behind one authenticated HTTPS API; the CLI is its client.
//! It can also run workloads with their proxies ([`supervise`]), including
//! the demo shop ([`demo`]).

pub mod api;
pub mod auth;
pub mod client;
pub mod control;
pub mod distribute;
pub mod enforcement;
pub mod graph;
pub mod observed;
pub mod server;
pub mod store;
pub mod ui;

pub use control::{Control, ControlError, Settings};
pub use server::{Options, Running, start};
