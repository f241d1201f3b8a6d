//! The control plane as the proxy's policy source, discovery and report sink.
//!
//! The proxy long-polls `GET /v1/proxy/state?after=<revision>` over mTLS with
//! its own SVID (and checks the server is the issuer): the control plane
//! answers as soon as the revision differs, or after a while with the same
//! one. Each answer carries the documents in force and where workloads are.
//! The last answer is cached on disk, so a proxy restarted while the control
//! plane is down still enforces the last policy it had; unreachable, it keeps
//! the one it has and retries.
//!
//! Reports go the other way: `POST /v1/proxy/reports`, a JSON array of
//! [`Report`]s, from a queue that a slow control plane cannot make grow
//! without bound; and `POST /v1/proxy/status`, an [`EnforcedStatus`]: the
//! revision the decision path uses — sent after the swap, not on receipt —
//! and why a newer one did not load. It is sent on every change and as a
//! heartbeat, so the control plane can tell a proxy in sync from one that is
//! behind, failing or gone.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::Full;
use ibac_identity::attest::{ISSUER_COMPONENT, WorkloadIdentity};
use ibac_identity::https::Endpoint;
use ibac_identity::spiffe_id::SpiffeId;
use ibac_identity::tls::{ExpectedServer, SpiffeServerVerifier, client_config};
use ibac_model::{DocumentKind, Namespace, WorkloadId};
use ibac_policy::Policy;
use tokio::sync::{mpsc, watch};

use crate::discovery::Discovery;
use crate::policy_source::{Enforced, PolicySource, PolicyWatch};
use crate::reports::ReportSink;
pub use ibac_api::proxy::{
    DEFAULT_HEARTBEAT, EnforcedStatus, LONG_POLL, LoadFailure, ProxyState, Report,
};

/// Answers larger than this are refused (a policy of 10,000 services is
/// well under it).
const MAX_STATE: usize = 64 << 20;

/// Why a call to the control plane failed.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Not reachable, or no answer.
    #[error(transparent)]
    Call(#[from] ibac_identity::https::CallError),
    /// It answered with an error.
    #[error("the control plane answered {0}: {1}")]
    Status(http::StatusCode, String),
    /// It answered something else than expected.
    #[error("unexpected answer from the control plane: {0}")]
    BadReply(String),
    /// The documents it sent do not load.
    #[error("the control plane's documents do not load: {0}")]
    Documents(String),
}

/// A connection to the control plane, as a workload.
#[derive(Clone)]
pub struct ControlPlane {
    endpoint: Endpoint,
    tls: Arc<rustls::ClientConfig>,
}

impl ControlPlane {
    /// Calls `address` (https://host:port) with `identity`'s SVID, expecting
    /// the server to present the issuer's SPIFFE ID.
    pub fn new(address: &str, identity: &WorkloadIdentity) -> Result<Self, ControlError> {
        let endpoint = Endpoint::parse(address)?;
        let bundle = identity.bundle();
        let td = bundle.load().trust_domain().clone();
        let issuer = SpiffeId::for_component(&td, ISSUER_COMPONENT)
            .map_err(|e| ControlError::BadReply(e.to_string()))?;
        let verifier = Arc::new(SpiffeServerVerifier::new(
            bundle,
            ExpectedServer::Id(issuer),
        ));
        let tls = client_config(Some(identity.resolver()), verifier, &[b"http/1.1"])
            .map_err(|e| ControlError::BadReply(e.to_string()))?;
        Ok(ControlPlane {
            endpoint,
            tls: Arc::new(tls),
        })
    }

    async fn call(
        &self,
        request: http::Request<Full<Bytes>>,
        timeout: Duration,
    ) -> Result<Bytes, ControlError> {
        let (status, body) = self
            .endpoint
            .send(self.tls.clone(), request, timeout, MAX_STATE)
            .await?;
        if !status.is_success() {
            return Err(ControlError::Status(
                status,
                String::from_utf8_lossy(&body).trim().to_string(),
            ));
        }
        Ok(body)
    }

    /// The state, as soon as its revision differs from `after`.
    pub async fn state(&self, after: Option<u64>) -> Result<ProxyState, ControlError> {
        let path = match after {
            Some(r) => format!("/v1/proxy/state?after={r}"),
            None => "/v1/proxy/state".to_string(),
        };
        let request = http::Request::get(path)
            .body(Full::new(Bytes::new()))
            .map_err(|e| ControlError::BadReply(e.to_string()))?;
        let body = self
            .call(request, LONG_POLL + Duration::from_secs(15))
            .await?;
        serde_json::from_slice(&body).map_err(|e| ControlError::BadReply(e.to_string()))
    }

    /// POSTs `body` as JSON to `path`.
    async fn post_json<T: serde::Serialize + ?Sized>(
        &self,
        path: &str,
        body: &T,
        timeout: Duration,
    ) -> Result<(), ControlError> {
        let json = serde_json::to_vec(body).map_err(|e| ControlError::BadReply(e.to_string()))?;
        let request = http::Request::post(path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(json)))
            .map_err(|e| ControlError::BadReply(e.to_string()))?;
        self.call(request, timeout).await.map(|_| ())
    }

    /// Tells what this proxy enforces.
    pub async fn status(&self, status: &EnforcedStatus) -> Result<(), ControlError> {
        self.post_json("/v1/proxy/status", status, Duration::from_secs(10))
            .await
    }

    /// Sends a batch of reports.
    pub async fn report(&self, batch: &[Report]) -> Result<(), ControlError> {
        self.post_json("/v1/proxy/reports", batch, Duration::from_secs(30))
            .await
    }
}

/// Builds the policy a state describes, with the decoder every proxy runs
/// (the control plane checks what it publishes with the same function).
pub fn policy_of(state: &ProxyState, namespace: &Namespace) -> Result<Policy, ControlError> {
    ibac_api::proxy::policy_of(state, namespace).map_err(|e| ControlError::Documents(e.to_string()))
}

/// Policy and discovery from the control plane.
pub struct ControlSource {
    policy: PolicyWatch,
    revision: watch::Receiver<Option<u64>>,
    table: Arc<ArcSwap<BTreeMap<WorkloadId, SocketAddr>>>,
}

fn read_cache(path: &PathBuf) -> Option<ProxyState> {
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

fn write_cache(path: &PathBuf, state: &ProxyState) {
    let result = serde_json::to_vec(state)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            let tmp = path.with_extension("tmp");
            std::fs::write(&tmp, json)?;
            std::fs::rename(&tmp, path)
        });
    if let Err(e) = result {
        tracing::warn!(error = %e, path = %path.display(), "cannot cache the control plane's state");
    }
}

impl ControlSource {
    /// Follows the control plane; `cache` keeps the last state across
    /// restarts.
    pub fn spawn(control: ControlPlane, namespace: Namespace, cache: Option<PathBuf>) -> Self {
        Self::spawn_refusing(control, namespace, cache, None)
    }

    /// Like [`ControlSource::spawn`], but refusing every state that holds a
    /// document of kind `refuse`, as a proxy older than its control plane
    /// refuses a kind it does not know. For testing what the control plane
    /// reports when a proxy cannot follow (`ibac proxy --refuse-kind`, hidden).
    pub fn spawn_refusing(
        control: ControlPlane,
        namespace: Namespace,
        cache: Option<PathBuf>,
        refuse: Option<DocumentKind>,
    ) -> Self {
        let load = move |state: &ProxyState, namespace: &Namespace| {
            let policy = policy_of(state, namespace)?;
            if let Some(kind) = refuse
                && policy.documents().iter().any(|(k, _, _)| k.kind == kind)
            {
                return Err(ControlError::Documents(format!(
                    "this proxy does not read {kind} documents (it was started with --refuse-kind {kind})"
                )));
            }
            Ok(policy)
        };
        let (publish, policy) = watch::channel(None);
        let (revision_tx, revision) = watch::channel(None);
        let (status_tx, status_rx) = watch::channel(EnforcedStatus::default());
        let (heartbeat_tx, heartbeat_rx) = watch::channel(DEFAULT_HEARTBEAT);
        let table = Arc::new(ArcSwap::from_pointee(BTreeMap::new()));
        let mut current: Option<u64> = None;
        if let Some(state) = cache.as_ref().and_then(read_cache) {
            match load(&state, &namespace) {
                Ok(p) => {
                    tracing::info!(revision = state.revision, "policy loaded from the cache");
                    put_in_force(&publish, &status_tx, p, state.revision);
                    table.store(Arc::new(state.workloads.clone()));
                    current = Some(state.revision);
                    revision_tx.send_replace(current);
                }
                Err(e) => tracing::warn!(error = %e, "the cached state does not load; ignored"),
            }
        }
        spawn_status(control.clone(), status_rx, heartbeat_rx);
        let shared = table.clone();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(200);
            loop {
                if publish.is_closed() && Arc::strong_count(&shared) == 1 {
                    return;
                }
                match control.state(current).await {
                    Ok(state) if Some(state.revision) == current => {
                        backoff = Duration::from_millis(200);
                    }
                    Ok(state) => {
                        backoff = Duration::from_millis(200);
                        heartbeat_tx.send_replace(
                            state
                                .heartbeat_seconds
                                .map_or(DEFAULT_HEARTBEAT, |s| Duration::from_secs(s.max(1))),
                        );
                        match load(&state, &namespace) {
                            Ok(p) => {
                                tracing::info!(
                                    revision = state.revision,
                                    "policy from the control plane"
                                );
                                crate::metrics::global().policy_reloads(true);
                                put_in_force(&publish, &status_tx, p, state.revision);
                            }
                            Err(e) => {
                                crate::metrics::global().policy_reloads(false);
                                tracing::warn!(revision = state.revision, error = %e, "policy not reloaded; the last good one stays in force");
                                status_tx.send_modify(|s| {
                                    s.failed = Some(LoadFailure {
                                        revision: state.revision,
                                        error: e.to_string(),
                                    });
                                });
                            }
                        }
                        shared.store(Arc::new(state.workloads.clone()));
                        current = Some(state.revision);
                        revision_tx.send_replace(current);
                        if let Some(path) = &cache {
                            write_cache(path, &state);
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, retry_in = ?backoff, "control plane unreachable; the last policy stays in force");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        ControlSource {
            policy,
            revision,
            table,
        }
    }

    /// The revision in force (for tests and the benchmark).
    pub fn revision(&self) -> watch::Receiver<Option<u64>> {
        self.revision.clone()
    }
}

/// Hands `policy` to the decision path and only then tells the control plane
/// that `revision` is enforced, so that the status never runs ahead of the
/// decisions.
fn put_in_force(
    publish: &watch::Sender<Option<Arc<Enforced>>>,
    status: &watch::Sender<EnforcedStatus>,
    policy: Policy,
    revision: u64,
) {
    publish.send_replace(Some(Arc::new(Enforced {
        policy,
        revision: Some(revision),
    })));
    status.send_replace(EnforcedStatus {
        enforced: Some(revision),
        failed: None,
    });
}

/// Sends the enforced status whenever it changes and every heartbeat, until
/// the source is gone.
fn spawn_status(
    control: ControlPlane,
    mut status: watch::Receiver<EnforcedStatus>,
    heartbeat: watch::Receiver<Duration>,
) {
    tokio::spawn(async move {
        loop {
            let now = status.borrow_and_update().clone();
            if let Err(e) = control.status(&now).await {
                tracing::debug!(error = %e, "cannot tell the control plane what is enforced; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
            let beat = *heartbeat.borrow();
            tokio::select! {
                changed = status.changed() => if changed.is_err() { return },
                () = tokio::time::sleep(beat) => {}
            }
        }
    });
}

impl PolicySource for ControlSource {
    fn subscribe(&self) -> PolicyWatch {
        self.policy.clone()
    }
}

impl Discovery for ControlSource {
    fn resolve(&self, workload: &WorkloadId) -> Option<SocketAddr> {
        self.table.load().get(workload).copied()
    }
}

/// Batches waiting to be sent; beyond this, new batches are dropped (and
/// logged) rather than held.
const QUEUE: usize = 64;

/// Reports sent to the control plane.
pub struct ControlReports {
    queue: mpsc::Sender<Vec<Report>>,
}

impl ControlReports {
    /// Sends batches from a background task, retrying a failed one a few
    /// times.
    pub fn spawn(control: ControlPlane) -> Self {
        let (queue, mut batches) = mpsc::channel::<Vec<Report>>(QUEUE);
        tokio::spawn(async move {
            while let Some(batch) = batches.recv().await {
                let mut delay = Duration::from_millis(500);
                for attempt in 1..=5 {
                    match control.report(&batch).await {
                        Ok(()) => break,
                        Err(e) if attempt == 5 => {
                            tracing::warn!(error = %e, reports = batch.len(), "reports lost: the control plane did not take them");
                        }
                        Err(_) => {
                            tokio::time::sleep(delay).await;
                            delay *= 2;
                        }
                    }
                }
            }
        });
        ControlReports { queue }
    }
}

impl ReportSink for ControlReports {
    fn send(&self, batch: &[Report]) -> std::io::Result<()> {
        self.queue
            .try_send(batch.to_vec())
            .map_err(|_| std::io::Error::other("the queue to the control plane is full"))
    }
}
