//! A real Kubernetes control plane for ibac's tests: one etcd, one
//! kube-apiserver and one kube-controller-manager on 127.0.0.1, started once per
//! test binary and stopped when the test run ends, however it ends.
//!
//! The binaries are built by `scripts/k8s-env` (which `scripts/test` runs before
//! any cargo build) from the Kubernetes, etcd and Helm Go modules; this crate
//! only starts them. There is no kubelet: Deployments get ReplicaSets and Pods,
//! and the Pods stay Pending, which is all that policies need.
//!
//! ```no_run
//! # fn main() -> Result<(), ibac_k8s_test::Error> {
//! let cluster = ibac_k8s_test::Cluster::shared()?;
//! let ns = cluster.namespace("example")?;
//! cluster.kubectl(&["create", "configmap", "settings", "-n", ns.name()])?;
//! # Ok(())
//! # }
//! ```

mod cluster;
mod error;
mod pki;
mod process;

pub use cluster::{Cluster, Namespace, wait_for};
pub use error::Error;
pub use process::{free_port, http_get};
