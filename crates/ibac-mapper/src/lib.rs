//! ibac's network mapper: who calls whom.
//!
//! Observations come from the proxies' reports (every call a proxy decided)
//! and from socket scans (connections between local processes that run
//! without a proxy). They are aggregated into *discovered calls* — first
//! seen, last seen, count, port, protocol, HTTP method and path, and how many
//! of each verdict — which the control plane persists, draws as the access
//! graph, lists, and exports as ClientIntents.
//!
//! Everything here is pure except [`scan::HostScanner`], which reads `/proc`,
//! and [`draw::Picture::png`], which reads the system's fonts.

pub mod calls;
pub mod diff;
pub mod draw;
pub mod export;
pub mod generalize;
pub mod list;
pub mod scan;

pub use calls::{CallKey, CallRecord, Discovered, Observation, Protocol, Source, VerdictCounts};
