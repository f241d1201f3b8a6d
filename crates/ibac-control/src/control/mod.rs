//! The control plane's state and every operation on it.
//!
//! The store is the truth; memory holds what it derives: the compiled policy,
//! the proxies' state (serialized once per revision, whatever the number of
//! proxies), the discovered calls and the tokens. Writes are serialized: a
//! change is checked against the current policy, committed in one store
//! transaction with its audit record, and only then published — so what
//! proxies see is always something the store holds.

mod audit;
mod documents;
mod enforced;
mod mapper;
mod tokens;
mod workloads;

pub use documents::DocumentEdit;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use ibac_api::{Direction, Report};
use ibac_identity::attest::IssuanceService;
use ibac_mapper::{CallKey, CallRecord, Discovered, Observation, Protocol, Source};
use ibac_model::encode::{Flavor, encode};
use ibac_model::{
    Document, DocumentError, DocumentKey, DocumentKind, EnforcementConfig, Format, Location, Maker,
    Meta, Mode, Namespace, ParseOptions, ProtectedService, SourceName, WorkloadId, WorkloadRef,
    parse_source,
};
use ibac_policy::{DocumentStatus, NoFacts, Policy, Verdict};
use tokio::sync::watch;

use crate::auth::{Caller, Tokens, hash_secret, new_secret};
use crate::distribute::{Undistributable, documents_for_proxies};
use crate::enforcement::{Enforcement, EnforcementCounts, Tracker};
use crate::observed::{Observed, ObservedCounts};
use crate::store::{
    AuditEntry, AuditRow, Change, Store, StoreError, StoredDocument, TokenRow, WorkloadRow,
};
pub use ibac_api::{
    Applied, DocumentChange, DocumentInfo, DocumentState, Outcome, Registered, Registration,
    Rollout, SourceText, WorkloadEnforcement, WorkloadInfo,
};

/// Why an operation failed, by meaning; the API layer alone decides which
/// HTTP status each meaning answers.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// Documents do not parse, validate or compile: nothing was applied.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Documents(Vec<DocumentError>),
    /// Input that is not a document is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Not allowed for this caller.
    #[error("{0}")]
    NotAllowed(String),
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// Already exists.
    #[error("{0}")]
    Conflict(String),
    /// The store failed; nothing was applied.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The change would publish a state the proxies refuse or read
    /// differently: nothing was applied.
    #[error("{0}; nothing was changed (this is a bug in ibac: please report it)")]
    Undistributable(#[from] Undistributable),
    /// The identity issuer refused or failed (join tokens, revocation).
    #[error(transparent)]
    Issuance(#[from] ibac_identity::attest::TokenError),
    /// Anything else that went wrong here.
    #[error("{0}")]
    Internal(String),
}

/// What a planned write answers, and what it writes (none: nothing to do,
/// as for a dry run or an unchanged document).
struct Planned<T> {
    answer: T,
    write: Option<Write>,
}

/// What one write stores and publishes.
struct Write {
    /// The store change, its audit records included.
    change: Change,
    /// A new policy and its checked documents; none keeps the one in force.
    policy: Option<(Arc<Policy>, Arc<str>)>,
    /// The registered workloads after the write.
    workloads: BTreeMap<WorkloadId, WorkloadRow>,
}

impl Write {
    /// A write that registers or removes workloads: the policy in force
    /// stays.
    fn of_workloads(change: Change, workloads: BTreeMap<WorkloadId, WorkloadRow>) -> Self {
        Write {
            change,
            policy: None,
            workloads,
        }
    }
}

/// The snapshot published on every change.
pub struct Snapshot {
    /// The store's revision.
    pub revision: u64,
    /// The revision at which the policy (the documents) last changed;
    /// later revisions changed only workloads.
    pub policy_revision: u64,
    /// Unix seconds when that policy was published.
    pub policy_since: i64,
    /// The documents in force as proxies get them, checked with their decoder.
    pub documents: Arc<str>,
    /// The policy in force.
    pub policy: Arc<Policy>,
    /// Registered workloads.
    pub workloads: BTreeMap<WorkloadId, WorkloadRow>,
    /// What proxies get, serialized once.
    pub proxy_state: Bytes,
}

/// How the control plane is set up.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long discovered calls are kept after they were last seen.
    pub retention: Duration,
    /// Distinct paths kept per (client, server, port).
    pub max_paths: usize,
    /// A proxy that has not reported for this long is silent.
    pub silent_after: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            retention: Duration::from_secs(30 * 24 * 3600),
            max_paths: ibac_mapper::calls::DEFAULT_MAX_PATHS,
            silent_after: DEFAULT_SILENT_AFTER,
        }
    }
}

/// The default silence window: three missed 10-second heartbeats.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(30);

/// The control plane.
pub struct Control {
    store: Arc<Mutex<Store>>,
    writer: tokio::sync::Mutex<()>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    discovered: Mutex<Discovered>,
    mapper_version: watch::Sender<u64>,
    tokens: ArcSwap<Tokens>,
    issuance: Arc<IssuanceService>,
    contacts: Mutex<HashMap<WorkloadId, i64>>,
    pids: Mutex<HashMap<u32, WorkloadId>>,
    settings: Settings,
    data_dir: PathBuf,
    closing: watch::Sender<bool>,
    enforcement: Tracker,
    enforcement_shifts: watch::Sender<u64>,
    observed: Mutex<Observed>,
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn parse_rfc3339(text: &str) -> Option<i64> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| t.unix_timestamp())
}

fn canonical(doc: &Document) -> Result<String, ControlError> {
    let encoded = encode(doc, Flavor::Ibac).map_err(|e| ControlError::Internal(e.to_string()))?;
    ibac_model::yaml::to_yaml(&encoded).map_err(|e| ControlError::Internal(e.to_string()))
}

fn key_of(doc: &Document) -> DocumentKey {
    let meta = doc.meta();
    DocumentKey {
        kind: doc.kind(),
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

fn stored_key(key: &DocumentKey) -> (String, String, String) {
    (
        key.kind.as_str().to_string(),
        key.namespace.to_string(),
        key.name.clone(),
    )
}

/// The audit record of `caller` doing `action` to `target`.
fn audit_entry(
    caller: &Caller,
    action: &str,
    target: impl ToString,
    detail: impl Into<String>,
) -> AuditEntry {
    AuditEntry {
        actor: caller.audit_name(),
        action: action.into(),
        target: target.to_string(),
        detail: detail.into(),
    }
}

/// A change that records one action in the audit log: most actions write
/// one kind of row and audit themselves once.
fn audited(
    caller: &Caller,
    action: &str,
    target: impl ToString,
    detail: impl Into<String>,
) -> Change {
    Change {
        audit: vec![audit_entry(caller, action, target, detail)],
        ..Change::default()
    }
}

impl Control {
    /// Runs `f` on the store on a blocking thread: SQLite waits for the
    /// disk, which must not stall the async workers.
    async fn on_store<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, ControlError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(f(&mut s)?)
        })
        .await
        .map_err(|e| ControlError::Internal(format!("a store task failed: {e}")))?
    }

    /// Opens the control plane's state from `store`, loading documents,
    /// workloads, tokens and discovered calls.
    pub fn open(
        store: Store,
        issuance: Arc<IssuanceService>,
        settings: Settings,
        data_dir: &Path,
    ) -> Result<Arc<Control>, ControlError> {
        let revision = store.revision()?;
        let (policy, problems) = load_policy(&store.documents()?);
        for p in &problems {
            tracing::warn!(error = %p, "a stored document does not load; it is reported and left out");
        }
        let workloads: BTreeMap<WorkloadId, WorkloadRow> = store
            .workloads()?
            .into_iter()
            .map(|w| (w.id.clone(), w))
            .collect();
        let mut discovered = Discovered::new(settings.max_paths);
        for (k, r) in store.calls()? {
            discovered.restore(k, r);
        }
        let tokens = Tokens::new(store.tokens()?);
        let enforcement = Tracker::new(settings.silent_after);
        let documents: Arc<str> = documents_for_proxies(&policy)?.into();
        let snapshot = make_snapshot(
            revision,
            (revision, now()),
            Arc::new(policy),
            documents,
            workloads,
            &enforcement,
        )?;
        Ok(Arc::new(Control {
            store: Arc::new(Mutex::new(store)),
            writer: tokio::sync::Mutex::new(()),
            discovered: Mutex::new(discovered),
            mapper_version: watch::Sender::new(0),
            tokens: ArcSwap::from_pointee(tokens),
            issuance,
            contacts: Mutex::new(HashMap::new()),
            pids: Mutex::new(HashMap::new()),
            settings,
            data_dir: data_dir.to_path_buf(),
            closing: watch::Sender::new(false),
            observed: Mutex::new(Observed::new(revision, snapshot.policy_since)),
            snapshot: watch::Sender::new(Arc::new(snapshot)),
            enforcement,
            enforcement_shifts: watch::Sender::new(0),
        }))
    }

    /// The snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Follows snapshots.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.subscribe()
    }

    /// Follows the mapper: a counter that moves with every new observation.
    pub fn mapper_changes(&self) -> watch::Receiver<u64> {
        self.mapper_version.subscribe()
    }

    /// Ends long polls and change streams, so that shutdown need not wait
    /// for them.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// Completes once [`Control::close`] was called.
    pub async fn closed(&self) {
        let mut rx = self.closing.subscribe();
        let _ = rx.wait_for(|closing| *closing).await;
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The issuer.
    pub fn issuance(&self) -> &Arc<IssuanceService> {
        &self.issuance
    }

    /// The one way state changes. Under the writer lock, `plan` looks at the
    /// snapshot in force and says what to write, if anything; the store
    /// change is committed with its audit records in one transaction, and only
    /// then is the new snapshot published. Returns `plan`'s answer and the
    /// revision now published (the old one when nothing was written).
    async fn write<T>(
        &self,
        plan: impl FnOnce(&Snapshot) -> Result<Planned<T>, ControlError>,
    ) -> Result<(T, u64), ControlError> {
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let Planned { answer, write } = plan(&current)?;
        let Some(write) = write else {
            return Ok((answer, current.revision));
        };
        let revision = self.commit(write.change).await?;
        self.publish(revision, write.policy, write.workloads)?;
        Ok((answer, revision))
    }

    async fn commit(&self, change: Change) -> Result<u64, ControlError> {
        self.on_store(move |s| s.write(&change)).await
    }

    /// Publishes a revision: with `Some` a new policy (and its checked
    /// documents), with `None` the same policy and other workloads.
    fn publish(
        &self,
        revision: u64,
        policy: Option<(Arc<Policy>, Arc<str>)>,
        workloads: BTreeMap<WorkloadId, WorkloadRow>,
    ) -> Result<(), ControlError> {
        let current = self.snapshot();
        let (policy, documents, since) = match policy {
            Some((policy, documents)) => (policy, documents, (revision, now())),
            None => (
                current.policy.clone(),
                current.documents.clone(),
                (current.policy_revision, current.policy_since),
            ),
        };
        let snapshot = make_snapshot(
            revision,
            since,
            policy,
            documents,
            workloads,
            &self.enforcement,
        )?;
        if let Ok(mut o) = self.observed.lock() {
            o.policy_published(snapshot.policy_revision, snapshot.policy_since);
        }
        self.snapshot.send_replace(Arc::new(snapshot));
        Ok(())
    }
}

/// Loads stored documents; ones that no longer compile are reported, kept
/// out of force and shown as failed by `get` (they stay in the store).
fn load_policy(docs: &[StoredDocument]) -> (Policy, Vec<DocumentError>) {
    let mut documents = Vec::new();
    let mut errors = Vec::new();
    for d in docs {
        let name = format!("store:{}/{}/{}", d.kind, d.namespace, d.name);
        let mut parsed = parse_source(
            &SourceName::from(name.as_str()),
            &d.source,
            &ParseOptions::default(),
        );
        errors.append(&mut parsed.errors);
        documents.append(&mut parsed.documents);
    }
    let (policy, mut more) = Policy::load(documents, &NoFacts);
    errors.append(&mut more);
    (policy, errors)
}

fn make_snapshot(
    revision: u64,
    (policy_revision, policy_since): (u64, i64),
    policy: Arc<Policy>,
    documents: Arc<str>,
    workloads: BTreeMap<WorkloadId, WorkloadRow>,
    enforcement: &Tracker,
) -> Result<Snapshot, ControlError> {
    let state = crate::distribute::proxy_state(
        revision,
        documents.to_string(),
        workloads
            .values()
            .filter_map(|w| w.address.map(|a| (w.id.clone(), a))),
        enforcement.heartbeat().as_secs(),
    );
    let proxy_state =
        Bytes::from(serde_json::to_vec(&state).map_err(|e| ControlError::Internal(e.to_string()))?);
    Ok(Snapshot {
        revision,
        policy_revision,
        policy_since,
        documents,
        policy,
        workloads,
        proxy_state,
    })
}

#[cfg(test)]
mod tests;
