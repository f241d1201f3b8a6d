//! ibac's wire contract: every type that crosses a process boundary — the
//! state a proxy fetches and what it reports back, the API's requests and
//! answers — defined once, with enums where a field has a fixed set of
//! values. The control plane, the proxies and the CLI all use these very
//! types, so a flag one side sends is a field the other side reads.
//!
//! Pure: serde only, no I/O, no clock.

pub mod documents;
pub mod enforcement;
pub mod errors;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
pub mod graph;
pub mod proxy;
pub mod workloads;

pub use documents::{
    Applied, ApplyRequest, DocumentChange, DocumentInfo, DocumentState, Outcome, SourceText,
};
pub use enforcement::{Enforcement, EnforcementCounts, Rollout, RolloutQuery, WorkloadEnforcement};
pub use errors::{ErrorBody, PlacedError};
pub use proxy::{Direction, EnforcedStatus, LoadFailure, ProxyState, Report};
pub use workloads::{
    AuditRow, ModeRequest, ProtectRequest, Registered, Registration, TokenRequest, TokenResponse,
    WorkloadInfo,
};

/// The namespaces a comma-separated list names (`-n a,b` on the command
/// line, `?namespaces=a,b` in the API), blanks dropped; none given, none
/// named. One reading, so that the CLI and the control plane never disagree
/// about which namespaces a list means.
pub fn namespace_list(text: Option<&str>) -> Vec<String> {
    text.map(|text| {
        text.split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}
