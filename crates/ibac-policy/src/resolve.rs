//! Cluster facts, supplied from outside: which workloads a Service selects and
//! on which ports, and whether a workload reference is known and unambiguous.
//!
//! The renderers read them from Kubernetes manifests, the control plane from its
//! registry. With no facts at all ([`NoFacts`]), a Service target means the
//! workload of that name and its ports are taken as they are written.

use ibac_model::{Kind, WorkloadId};

/// How a Service's ports map to its backends' ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PortMap {
    /// No facts: a Service port is the backend port of the same number, and a
    /// Service without listed ports exposes every port.
    Identity,
    /// Known ports: `(service port, target port)` pairs.
    Mapped(Vec<(u16, u16)>),
}

/// One workload a Service selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// The workload.
    pub workload: WorkloadId,
    /// Its ports as the Service exposes them.
    pub ports: PortMap,
}

/// Why a reference could not be resolved. Reported on the document that made it;
/// never guessed around.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// Nothing of that name is known.
    #[error("no {what} `{name}` is known{hint}")]
    Unknown {
        /// "workload" or "Service".
        what: &'static str,
        /// The reference.
        name: String,
        /// A hint, with its leading separator, or empty.
        hint: String,
    },
    /// Several workloads of that name, of different kinds.
    #[error("`{name}` is ambiguous: workloads of kinds {kinds} have that name; give `kind`")]
    Ambiguous {
        /// The reference.
        name: String,
        /// The kinds found.
        kinds: String,
    },
    /// Anything else the facts contradict.
    #[error("{0}")]
    Other(String),
}

/// Cluster facts the policy engine needs.
pub trait Resolver: Send + Sync {
    /// The workloads Service `id` selects, with their ports.
    fn service(&self, id: &WorkloadId) -> Result<Vec<Backend>, ResolveError>;

    /// Checks a workload reference and returns the workload it means.
    fn workload(&self, id: &WorkloadId, kind: Option<&Kind>) -> Result<WorkloadId, ResolveError>;

    /// Every workload known, for `defaultActive` listings. Empty without facts.
    fn workloads(&self) -> Vec<WorkloadId> {
        Vec::new()
    }
}

/// No cluster facts: names are taken at their word.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoFacts;

impl Resolver for NoFacts {
    fn service(&self, id: &WorkloadId) -> Result<Vec<Backend>, ResolveError> {
        Ok(vec![Backend {
            workload: id.clone(),
            ports: PortMap::Identity,
        }])
    }

    fn workload(&self, id: &WorkloadId, _kind: Option<&Kind>) -> Result<WorkloadId, ResolveError> {
        Ok(id.clone())
    }
}
