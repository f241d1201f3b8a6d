//! Where the proxy's policy comes from. A source publishes snapshots on a
//! watch channel; `None` means no policy was ever loaded, and then everything
//! is denied. A source that fails to load a new version keeps publishing the
//! last good one.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use ibac_model::{Namespace, ParseOptions};
use ibac_policy::{NoFacts, Policy};
use tokio::sync::watch;

/// A policy as a source publishes it: the policy, and the control plane's
/// revision it came from (sources without revisions, such as files, give
/// none). Decisions and reports carry the revision, so that what a proxy
/// enforces can be checked against what the control plane published.
#[derive(Debug)]
pub struct Enforced {
    /// The policy decisions use.
    pub policy: Policy,
    /// The control plane's revision of it, when it came from one.
    pub revision: Option<u64>,
}

impl Enforced {
    /// A policy without a revision.
    pub fn unversioned(policy: Policy) -> Self {
        Enforced {
            policy,
            revision: None,
        }
    }
}

impl std::ops::Deref for Enforced {
    type Target = Policy;

    fn deref(&self) -> &Policy {
        &self.policy
    }
}

/// The policy in force, as a source publishes it.
pub type PolicyWatch = watch::Receiver<Option<Arc<Enforced>>>;

/// A source of policy snapshots.
pub trait PolicySource: Send + Sync {
    /// The channel on which snapshots are published.
    fn subscribe(&self) -> PolicyWatch;
}

/// A fixed policy (tests, and embedding).
pub struct StaticPolicy(watch::Sender<Option<Arc<Enforced>>>);

impl StaticPolicy {
    /// A source that publishes `policy` and whatever is set later.
    pub fn new(policy: Option<Policy>) -> Self {
        StaticPolicy(watch::channel(policy.map(|p| Arc::new(Enforced::unversioned(p)))).0)
    }

    /// Publishes a new snapshot.
    pub fn set(&self, policy: Policy) {
        self.0
            .send_replace(Some(Arc::new(Enforced::unversioned(policy))));
    }
}

impl PolicySource for StaticPolicy {
    fn subscribe(&self) -> PolicyWatch {
        self.0.subscribe()
    }
}

/// Documents in files or directories, read again when they change. The
/// watcher stops once this source and every subscriber are gone.
pub struct FilePolicySource {
    receiver: PolicyWatch,
}

/// What the files looked like when last read: names, sizes, times.
fn fingerprint(paths: &[PathBuf]) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    fn walk(path: &PathBuf, out: &mut Vec<(PathBuf, u64, Option<SystemTime>)>, depth: usize) {
        match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() && depth < 32 => {
                let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
                    .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                    .unwrap_or_default();
                entries.sort();
                for entry in entries {
                    walk(&entry, out, depth + 1);
                }
            }
            Ok(meta) => out.push((path.clone(), meta.len(), meta.modified().ok())),
            Err(_) => out.push((path.clone(), u64::MAX, None)),
        }
    }
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out, 0);
    }
    out
}

impl FilePolicySource {
    /// Watches `paths` (checked every `interval`), loading documents whose
    /// namespace is unnamed into `namespace`.
    pub fn spawn(paths: Vec<PathBuf>, namespace: Namespace, interval: Duration) -> Self {
        let (publish, receiver) = watch::channel(None);
        tokio::spawn(async move {
            let options = ParseOptions {
                default_namespace: namespace,
                ..ParseOptions::default()
            };
            let mut last = None;
            loop {
                let now = fingerprint(&paths);
                if last.as_ref() != Some(&now) {
                    let loaded = {
                        let paths = paths.clone();
                        let options = options.clone();
                        tokio::task::spawn_blocking(move || {
                            let parsed = ibac_load::read_documents(&paths, &options);
                            if !parsed.errors.is_empty() {
                                return Err(parsed.errors);
                            }
                            let (policy, errors) = Policy::build(parsed.documents, &NoFacts);
                            if errors.is_empty() {
                                Ok(policy)
                            } else {
                                Err(errors)
                            }
                        })
                        .await
                    };
                    match loaded {
                        Ok(Ok(policy)) => {
                            tracing::info!(documents = policy.documents().len(), "policy loaded");
                            crate::metrics::global().policy_reloads(true);
                            publish.send_replace(Some(Arc::new(Enforced::unversioned(policy))));
                        }
                        Ok(Err(errors)) => {
                            crate::metrics::global().policy_reloads(false);
                            for e in &errors {
                                tracing::warn!(error = %e, "policy not reloaded; the last good one stays in force");
                            }
                        }
                        Err(e) => tracing::error!(error = %e, "policy loader failed"),
                    }
                    last = Some(now);
                }
                if publish.is_closed() {
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        FilePolicySource { receiver }
    }
}

impl PolicySource for FilePolicySource {
    fn subscribe(&self) -> PolicyWatch {
        self.receiver.clone()
    }
}
