//! Where a `name.namespace` lives: the address of its proxy's inbound
//! listener. A file for now (watched); the control plane plugs in its own.
//!
//! ```yaml
//! workloads:
//!   productcatalogservice.otterize-ecom-demo: 127.0.0.1:15101
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use ibac_model::WorkloadId;
use ibac_model::yaml::{Limits, parse_json_documents};

/// Finds workloads.
pub trait Discovery: Send + Sync {
    /// The address of `workload`'s proxy, if known.
    fn resolve(&self, workload: &WorkloadId) -> Option<SocketAddr>;
}

/// A fixed table.
#[derive(Clone, Debug, Default)]
pub struct StaticDiscovery(pub BTreeMap<WorkloadId, SocketAddr>);

impl Discovery for StaticDiscovery {
    fn resolve(&self, workload: &WorkloadId) -> Option<SocketAddr> {
        self.0.get(workload).copied()
    }
}

/// Why a discovery file was refused.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// Unreadable.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// Malformed.
    #[error("{0}")]
    Invalid(String),
}

/// Reads a discovery file.
pub fn read_table(path: &PathBuf) -> Result<BTreeMap<WorkloadId, SocketAddr>, DiscoveryError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DiscoveryError::Io(name.clone(), e))?;
    let docs = parse_json_documents(&name.clone().into(), &text, &Limits::default())
        .map_err(|e| DiscoveryError::Invalid(e.to_string()))?;
    let mut table = BTreeMap::new();
    for (at, doc) in docs {
        let Some(map) = doc.get("workloads").and_then(|w| w.as_object()) else {
            return Err(DiscoveryError::Invalid(format!(
                "{at}: expected a `workloads:` map of name.namespace to host:port"
            )));
        };
        for (id, addr) in map {
            let id = WorkloadId::parse(id)
                .map_err(|e| DiscoveryError::Invalid(format!("{at}: `{id}`: {e}")))?;
            let addr = addr
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok())
                .ok_or_else(|| {
                    DiscoveryError::Invalid(format!("{at}: `{id}`: give an address as ip:port"))
                })?;
            table.insert(id, addr);
        }
    }
    Ok(table)
}

/// A discovery file, read again when it changes; a bad version keeps the last good table.
pub struct FileDiscovery {
    table: Arc<ArcSwap<BTreeMap<WorkloadId, SocketAddr>>>,
}

impl FileDiscovery {
    /// Reads `path` now and then every `interval`.
    pub fn spawn(path: PathBuf, interval: Duration) -> Result<Self, DiscoveryError> {
        let table = Arc::new(ArcSwap::from_pointee(read_table(&path)?));
        let shared = table.clone();
        tokio::spawn(async move {
            let mut last = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
            loop {
                tokio::time::sleep(interval).await;
                let now = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
                if now != last {
                    match read_table(&path) {
                        Ok(t) => shared.store(Arc::new(t)),
                        Err(e) => {
                            tracing::warn!(error = %e, "discovery not reloaded; the last good table stays")
                        }
                    }
                    last = now;
                }
                if Arc::strong_count(&shared) == 1 {
                    return;
                }
            }
        });
        Ok(FileDiscovery { table })
    }
}

impl Discovery for FileDiscovery {
    fn resolve(&self, workload: &WorkloadId) -> Option<SocketAddr> {
        self.table.load().get(workload).copied()
    }
}
