//! What the identity tests share: a root CA and workload SVIDs it issues.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ibac_identity::{Ca, SpiffeId, Svid, TrustDomain};
use ibac_model::WorkloadId;
use time::OffsetDateTime;

/// A fresh root CA of the default trust domain, good for a day.
pub fn root() -> Ca {
    Ca::generate_root(
        TrustDomain::default(),
        OffsetDateTime::now_utc(),
        time::Duration::days(1),
    )
    .unwrap()
}

/// The SPIFFE ID of `workload` (`name.namespace`) in the CA's trust domain.
pub fn id(ca: &Ca, workload: &str) -> SpiffeId {
    SpiffeId::for_workload(ca.trust_domain(), &WorkloadId::parse(workload).unwrap())
}

/// An SVID for `workload`, good for an hour.
pub fn issue(ca: &Ca, workload: &str) -> Svid {
    ca.issue_with_new_key(
        &id(ca, workload),
        time::Duration::hours(1),
        OffsetDateTime::now_utc(),
    )
    .unwrap()
}
