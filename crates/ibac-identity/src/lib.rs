//! ibac's identity layer.
//!
//! Every workload gets a SPIFFE identity and an X.509-SVID signed by ibac's CA
//! ([`ca`]), obtained by attestation over the network ([`attest`]) or served
//! over the SPIFFE Workload API ([`workload_api`]). Peers are verified more
//! strictly than stock proxies do ([`verify`], [`tls`]).

pub mod attest;
pub mod authority;
pub mod bundle;
pub mod ca;
pub mod files;
pub mod https;
pub mod inspect;
pub mod jwt;
pub mod pem;
pub mod spiffe_id;
pub mod store;
pub mod svid;
pub mod tls;
pub mod verify;
pub mod workload_api;

pub use bundle::{TrustBundle, fingerprint};
pub use ca::{Ca, CaError, IssueError};
pub use spiffe_id::{SpiffeId, SpiffeIdError, TrustDomain};
pub use store::{CaConfig, CaStore, StoreError};
pub use svid::{IssuedSvid, Svid};
pub use verify::{LeafInfo, PeerRole, SvidError, verify_svid};
