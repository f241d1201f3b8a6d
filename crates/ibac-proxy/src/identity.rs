//! The proxy's own identity: its SVID (kept current by attested issuance, or
//! fixed in tests), the certificate resolver rustls presents, and the bundle
//! it verifies peers against.

use std::sync::Arc;

use ibac_identity::attest::WorkloadIdentity;
use ibac_identity::tls::{SharedBundle, SvidResolver};
use ibac_identity::{SpiffeId, Svid, TrustDomain};
use ibac_model::WorkloadId;
use tokio::sync::watch;

/// What the proxy needs to know about itself.
#[derive(Clone)]
pub struct ProxyIdentity {
    resolver: Arc<SvidResolver>,
    bundle: SharedBundle,
    svid: watch::Receiver<Arc<Svid>>,
    _owner: Option<Arc<WorkloadIdentity>>,
}

impl ProxyIdentity {
    /// An identity kept current by attested issuance.
    pub fn attested(identity: Arc<WorkloadIdentity>) -> Self {
        ProxyIdentity {
            resolver: identity.resolver(),
            bundle: identity.bundle(),
            svid: identity.watch(),
            _owner: Some(identity),
        }
    }

    /// A fixed identity (tests and tools).
    pub fn fixed(svid: Svid, bundle: SharedBundle) -> Result<Self, rustls::Error> {
        Ok(ProxyIdentity {
            resolver: SvidResolver::new(&svid)?,
            bundle,
            svid: watch::channel(Arc::new(svid)).1,
            _owner: None,
        })
    }

    /// The SPIFFE ID.
    pub fn id(&self) -> SpiffeId {
        self.svid.borrow().id().clone()
    }

    /// The workload, when the SVID names one.
    pub fn workload(&self) -> Option<WorkloadId> {
        self.id().workload()
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> TrustDomain {
        self.bundle.load().trust_domain().clone()
    }

    /// The resolver presenting the current SVID.
    pub fn resolver(&self) -> Arc<SvidResolver> {
        self.resolver.clone()
    }

    /// The trust bundle.
    pub fn bundle(&self) -> SharedBundle {
        self.bundle.clone()
    }

    /// Whether the SVID is valid now.
    pub fn is_current(&self) -> bool {
        !self
            .svid
            .borrow()
            .is_expired(time::OffsetDateTime::now_utc().unix_timestamp())
    }
}
