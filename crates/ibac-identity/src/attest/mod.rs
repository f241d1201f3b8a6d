//! Attested issuance over the network: join tokens, the issuance server, its
//! client, the audit log.

pub mod audit;
pub mod client;
pub mod server;
pub mod tokens;

pub use audit::{AuditEvent, AuditLog, JsonlAudit, MemoryAudit};
pub use client::{AttestError, IssuerClient, WorkloadIdentity};
pub use server::{ISSUER_COMPONENT, IssuanceService, JwtSigning};
pub use tokens::{LocalTokenStore, TokenError, TokenStore};
