//! The control plane's state and every operation on it.
//!
//! The store is the truth; memory holds what it derives: the compiled policy,
//! the proxies' state (serialized once per revision, whatever the number of
//! proxies), the discovered calls and the tokens. Writes are serialized: a
//! change is checked against the current policy, committed in one store
//! transaction with its audit record, and only then published — so what
//! proxies see is always something the store holds.

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
    Document, DocumentError, DocumentKey, DocumentKind, EnforcementConfig, Format, Location, Meta,
    Mode, Namespace, ParseOptions, ProtectedService, SourceName, WorkloadId, WorkloadRef,
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

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ControlError> + Send + 'static,
) -> Result<T, ControlError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ControlError::Internal(format!("a store task failed: {e}")))?
}

impl Control {
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
            observed: Mutex::new(Observed::new(revision, snapshot_since(&snapshot))),
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

    /// Who holds a bearer token.
    pub fn token_caller(&self, secret: &str) -> Option<Caller> {
        self.tokens.load().caller(secret)
    }

    /// Whether `id` is registered (so its SVID may call the proxy API).
    pub fn is_registered(&self, id: &WorkloadId) -> bool {
        self.snapshot.borrow().workloads.contains_key(id)
    }

    /// Notes that a workload's proxy called.
    pub fn contact(&self, id: &WorkloadId) {
        if let Ok(mut c) = self.contacts.lock() {
            c.insert(id.clone(), now());
        }
    }

    /// How many proxies called within `window` seconds.
    pub fn proxies_connected(&self, window: i64) -> usize {
        let cutoff = now() - window;
        self.contacts
            .lock()
            .map(|c| c.values().filter(|t| **t >= cutoff).count())
            .unwrap_or(0)
    }

    /// How many kinds of call the mapper knows.
    pub fn discovered_len(&self) -> usize {
        self.discovered.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Records which processes belong to which workload (for the socket
    /// scanner).
    pub fn set_pids(&self, pids: HashMap<u32, WorkloadId>) {
        if let Ok(mut p) = self.pids.lock() {
            *p = pids;
        }
    }

    /// What the socket scanner needs.
    pub fn scan_registry(&self) -> ibac_mapper::scan::Registry {
        let snapshot = self.snapshot();
        let app_ports = snapshot
            .workloads
            .values()
            .filter_map(|w| {
                let app = w.app_port?;
                Some((app, (w.id.clone(), w.port.unwrap_or(app))))
            })
            .collect();
        let pids = self.pids.lock().map(|p| p.clone()).unwrap_or_default();
        ibac_mapper::scan::Registry { app_ports, pids }
    }

    /// Creates the admin token if there is none yet; returns its secret
    /// when it was created.
    pub async fn ensure_admin_token(&self) -> Result<Option<String>, ControlError> {
        if self.tokens.load().has_name("admin") {
            return Ok(None);
        }
        let secret = self
            .create_token(
                &Caller::Admin {
                    name: "ibac up".into(),
                },
                "admin",
                None,
            )
            .await?;
        Ok(Some(secret))
    }

    /// Makes an API token; `namespaces: None` makes an admin token.
    pub async fn create_token(
        &self,
        caller: &Caller,
        name: &str,
        namespaces: Option<Vec<String>>,
    ) -> Result<String, ControlError> {
        if !caller.is_admin() {
            return Err(ControlError::NotAllowed(
                "only an admin token may make tokens".into(),
            ));
        }
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ControlError::Invalid(format!(
                "`{name}` is not a token name: use letters, digits, `-`, `_` and `.`"
            )));
        }
        if let Some(ns) = &namespaces {
            for n in ns {
                Namespace::parse(n).map_err(|e| ControlError::Invalid(format!("`{n}`: {e}")))?;
            }
        }
        let _guard = self.writer.lock().await;
        if self.tokens.load().has_name(name) {
            return Err(ControlError::Conflict(format!(
                "a token named `{name}` exists"
            )));
        }
        let secret = new_secret().map_err(|_| ControlError::Internal("no randomness".into()))?;
        let row = TokenRow {
            hash: hash_secret(&secret),
            name: name.to_string(),
            namespaces: namespaces.clone(),
            created_at: now(),
        };
        let change = Change {
            put_tokens: vec![row],
            audit: vec![AuditEntry {
                actor: caller.audit_name(),
                action: "token-create".into(),
                target: name.to_string(),
                detail: match &namespaces {
                    None => "all namespaces".into(),
                    Some(ns) => format!("namespaces {}", ns.join(", ")),
                },
            }],
            ..Change::default()
        };
        let store = self.store.clone();
        let rows = blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            s.write(&change)?;
            Ok(s.tokens()?)
        })
        .await?;
        self.tokens.store(Arc::new(Tokens::new(rows)));
        Ok(secret)
    }

    /// Parses sources as a request sends them.
    fn parse(sources: &[SourceText], namespace: &Namespace) -> Result<Vec<Document>, ControlError> {
        let options = ParseOptions {
            default_namespace: namespace.clone(),
            ..ParseOptions::default()
        };
        let mut documents = Vec::new();
        let mut errors = Vec::new();
        for s in sources {
            let mut parsed = parse_source(&SourceName::from(s.name.as_str()), &s.text, &options);
            errors.append(&mut parsed.errors);
            documents.append(&mut parsed.documents);
        }
        if !errors.is_empty() {
            return Err(ControlError::Documents(errors));
        }
        if documents.is_empty() {
            return Err(ControlError::Invalid(
                "no ibac or Otterize documents in the input".into(),
            ));
        }
        let (documents, errors) = ibac_model::check_set(documents);
        if !errors.is_empty() {
            return Err(ControlError::Documents(errors));
        }
        Ok(documents)
    }

    fn check_scope(caller: &Caller, docs: &[Document]) -> Result<(), ControlError> {
        for doc in docs {
            let meta = doc.meta();
            let settings = doc.kind() == DocumentKind::EnforcementConfig;
            if (settings && !caller.is_admin()) || !caller.may_change(meta.namespace.as_str()) {
                return Err(ControlError::NotAllowed(format!(
                    "{}: {} may not change {} {}/{}",
                    meta.origin,
                    caller.audit_name(),
                    doc.kind(),
                    meta.namespace,
                    meta.name
                )));
            }
        }
        Ok(())
    }

    /// Applies documents, all or nothing.
    pub async fn apply(
        &self,
        caller: &Caller,
        sources: &[SourceText],
        namespace: &Namespace,
        dry_run: bool,
    ) -> Result<Outcome, ControlError> {
        let docs = Self::parse(sources, namespace)?;
        Self::check_scope(caller, &docs)?;
        self.apply_documents(caller, docs, dry_run, "apply").await
    }

    async fn apply_documents(
        &self,
        caller: &Caller,
        docs: Vec<Document>,
        dry_run: bool,
        action: &str,
    ) -> Result<Outcome, ControlError> {
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let mut stored: HashMap<DocumentKey, String> = HashMap::new();
        for (key, doc, _) in current.policy.documents() {
            stored.insert(key.clone(), canonical(doc)?);
        }
        let next = current
            .policy
            .apply(docs.iter().cloned(), &NoFacts)
            .map_err(ControlError::Documents)?;
        // Checked before anything is written, dry run included.
        let documents: Arc<str> = documents_for_proxies(&next)?.into();
        let mut change = Change::default();
        let mut applied = Vec::new();
        for doc in &docs {
            let key = key_of(doc);
            let source = canonical(doc)?;
            let outcome = match stored.get(&key) {
                None => DocumentChange::Created,
                Some(old) if *old == source => DocumentChange::Unchanged,
                Some(_) => DocumentChange::Configured,
            };
            applied.push(Applied {
                document: key.to_string(),
                outcome,
            });
            if outcome == DocumentChange::Unchanged {
                continue;
            }
            let (kind, namespace, name) = stored_key(&key);
            change.audit.push(AuditEntry {
                actor: caller.audit_name(),
                action: action.into(),
                target: key.to_string(),
                detail: outcome.as_str().into(),
            });
            change.put_documents.push(StoredDocument {
                kind,
                namespace,
                name,
                source,
            });
        }
        if dry_run || change.put_documents.is_empty() {
            return Ok(Outcome {
                documents: applied,
                revision: current.revision,
                warnings: Vec::new(),
            });
        }
        let revision = self.commit(change).await?;
        self.publish(
            revision,
            Some((Arc::new(next), documents)),
            current.workloads.clone(),
        )?;
        Ok(Outcome {
            documents: applied,
            revision,
            warnings: Vec::new(),
        })
    }

    async fn commit(&self, change: Change) -> Result<u64, ControlError> {
        let store = self.store.clone();
        blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.write(&change)?)
        })
        .await
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

    /// Deletes the documents the sources name, all or nothing; with
    /// `dry_run`, checks only.
    pub async fn delete(
        &self,
        caller: &Caller,
        sources: &[SourceText],
        namespace: &Namespace,
        dry_run: bool,
    ) -> Result<Outcome, ControlError> {
        let docs = Self::parse(sources, namespace)?;
        Self::check_scope(caller, &docs)?;
        let keys: Vec<DocumentKey> = docs
            .iter()
            .map(key_of)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        self.delete_keys(caller, &docs, keys, dry_run, "delete")
            .await
    }

    async fn delete_keys(
        &self,
        caller: &Caller,
        docs: &[Document],
        keys: Vec<DocumentKey>,
        dry_run: bool,
        action: &str,
    ) -> Result<Outcome, ControlError> {
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let next = current.policy.remove(&keys).map_err(|errors| {
            // Name the document as the user wrote it, not the store's key.
            let errors = errors
                .into_iter()
                .zip(keys.iter())
                .map(|(e, key)| {
                    let at = docs
                        .iter()
                        .find(|d| key_of(d) == *key)
                        .map(|d| d.meta().origin.clone())
                        .unwrap_or_else(|| Location::whole("request".into()));
                    match e {
                        DocumentError::Invalid { message, .. } => {
                            DocumentError::Invalid { at, message }
                        }
                        other => other,
                    }
                })
                .collect();
            ControlError::Documents(errors)
        })?;
        let documents: Arc<str> = documents_for_proxies(&next)?.into();
        let outcome = |revision| Outcome {
            documents: keys
                .iter()
                .map(|k| Applied {
                    document: k.to_string(),
                    outcome: DocumentChange::Deleted,
                })
                .collect(),
            revision,
            warnings: Vec::new(),
        };
        if dry_run {
            return Ok(outcome(current.revision));
        }
        let change = Change {
            delete_documents: keys.iter().map(stored_key).collect(),
            audit: keys
                .iter()
                .map(|k| AuditEntry {
                    actor: caller.audit_name(),
                    action: action.into(),
                    target: k.to_string(),
                    detail: "deleted".into(),
                })
                .collect(),
            ..Change::default()
        };
        let revision = self.commit(change).await?;
        self.publish(
            revision,
            Some((Arc::new(next), documents)),
            current.workloads.clone(),
        )?;
        Ok(outcome(revision))
    }

    /// Stored documents, optionally of one kind.
    pub fn documents(&self, kind: Option<DocumentKind>) -> Result<Vec<DocumentInfo>, ControlError> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for (key, doc, status) in snapshot.policy.documents() {
            if kind.is_some_and(|k| k != key.kind) {
                continue;
            }
            let (status, errors) = match status {
                DocumentStatus::Ok => (DocumentState::Ok, Vec::new()),
                DocumentStatus::Stale(e) => (DocumentState::Stale, e),
                DocumentStatus::Failed(e) => (DocumentState::Failed, e),
            };
            out.push(DocumentInfo {
                kind: key.kind.as_str().into(),
                namespace: key.namespace.to_string(),
                name: key.name.clone(),
                status,
                errors: errors.iter().map(ToString::to_string).collect(),
                source: canonical(doc)?,
            });
        }
        Ok(out)
    }

    /// Registered workloads.
    pub fn workloads(&self) -> Vec<WorkloadInfo> {
        let snapshot = self.snapshot();
        let contacts = self.contacts.lock().map(|c| c.clone()).unwrap_or_default();
        let mut states = self
            .enforcement
            .states(snapshot.workloads.keys(), snapshot.revision);
        snapshot
            .workloads
            .values()
            .map(|w| WorkloadInfo {
                id: w.id.to_string(),
                address: w.address,
                app_port: w.app_port,
                protected: snapshot.policy.protection(&w.id).is_protected(),
                last_contact: contacts.get(&w.id).copied(),
                enforcement: states.remove(&w.id).unwrap_or(Enforcement::Silent {
                    enforced: None,
                    last_report: None,
                }),
            })
            .collect()
    }

    /// Every registered workload's enforced state against the published revision.
    pub fn enforcement_states(&self) -> BTreeMap<WorkloadId, Enforcement> {
        let snapshot = self.snapshot();
        self.enforcement
            .states(snapshot.workloads.keys(), snapshot.revision)
    }

    /// How many proxies are in each state.
    pub fn enforcement_counts(&self) -> EnforcementCounts {
        EnforcementCounts::of(self.enforcement_states().values())
    }

    /// Takes what a proxy says it enforces.
    pub fn enforced_status(&self, id: &WorkloadId, status: ibac_api::EnforcedStatus) {
        self.enforcement.report(id, status);
    }

    /// Moves whenever a proxy reports what it enforces.
    pub fn enforcement_changes(&self) -> watch::Receiver<u64> {
        self.enforcement.changes()
    }

    /// Moves when some proxy's state changes (not on every heartbeat).
    pub fn enforcement_shifts(&self) -> watch::Receiver<u64> {
        self.enforcement_shifts.subscribe()
    }

    /// Follows every proxy's state until the control plane closes: logs
    /// each change (a proxy falling behind, failing, going silent, coming
    /// back) and when every proxy enforces a revision, and moves
    /// [`Control::enforcement_shifts`] so the graph redraws.
    pub async fn watch_enforcement(self: Arc<Self>) {
        let mut reports = self.enforcement.changes();
        let mut snapshots = self.subscribe();
        let mut last: BTreeMap<WorkloadId, Enforcement> = BTreeMap::new();
        let mut announced = None;
        loop {
            let revision = self.snapshot().revision;
            let states = self.enforcement_states();
            let mut shifted = states.len() != last.len();
            for (id, state) in &states {
                let before = last.get(id);
                if before.map(Enforcement::label) == Some(state.label()) {
                    continue;
                }
                shifted = true;
                match state {
                    Enforcement::Failing { .. } | Enforcement::Silent { .. } => {
                        tracing::warn!(workload = %id, state = state.label(), "{id} {}", state.describe(now()));
                    }
                    Enforcement::InSync { .. }
                        if before.is_some_and(|b| {
                            matches!(b, Enforcement::Failing { .. } | Enforcement::Silent { .. })
                        }) =>
                    {
                        tracing::info!(workload = %id, "{id} {} again", state.describe(now()));
                    }
                    _ => {}
                }
            }
            let counts = EnforcementCounts::of(states.values());
            if !states.is_empty() && counts.in_sync == states.len() && announced != Some(revision) {
                tracing::info!(
                    revision,
                    proxies = states.len(),
                    "all {} proxies enforce revision {revision}",
                    states.len()
                );
                announced = Some(revision);
            }
            if shifted {
                self.enforcement_shifts.send_modify(|v| *v += 1);
            }
            last = states;
            tokio::select! {
                r = reports.changed() => if r.is_err() { return },
                r = snapshots.changed() => if r.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.closed() => return,
            }
        }
    }

    /// How far proxies have followed `revision`.
    pub fn rollout(&self, revision: u64) -> Rollout {
        let snapshot = self.snapshot();
        let workloads = self
            .enforcement
            .states(snapshot.workloads.keys(), snapshot.revision)
            .into_iter()
            .map(|(id, enforcement)| WorkloadEnforcement {
                id: id.to_string(),
                enforcement,
            })
            .collect();
        Rollout {
            revision,
            published: snapshot.revision,
            workloads,
        }
    }

    /// Waits until every registered proxy enforces `revision`, or `timeout`
    /// passes, or nothing more can change: every proxy still missing has
    /// said it cannot load it. Polls on reports, and once a second for
    /// proxies that fall silent.
    pub async fn wait_rollout(&self, revision: u64, timeout: Duration) -> Rollout {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.enforcement.changes();
        loop {
            changes.borrow_and_update();
            let rollout = self.rollout(revision);
            if rollout.complete() || rollout.stuck() {
                return rollout;
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = changes.changed() => {}
                () = tick => {}
                () = tokio::time::sleep_until(deadline) => return self.rollout(revision),
                () = self.closed() => return self.rollout(revision),
            }
        }
    }

    /// Verdicts observed since the policy in force was published, per call.
    pub fn observed(&self) -> BTreeMap<CallKey, ObservedCounts> {
        self.observed
            .lock()
            .map(|o| o.counts().clone())
            .unwrap_or_default()
    }

    /// Registers (or updates) a workload and makes a join token for it.
    pub async fn add_workload(
        &self,
        caller: &Caller,
        registration: &Registration,
    ) -> Result<Registered, ControlError> {
        let id = WorkloadId::parse(&registration.id)
            .map_err(|e| ControlError::Invalid(format!("`{}`: {e}", registration.id)))?;
        if !caller.may_change(id.namespace()) {
            return Err(ControlError::NotAllowed(format!(
                "{} may not register workloads in `{}`",
                caller.audit_name(),
                id.namespace()
            )));
        }
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        let existing = current.workloads.get(&id);
        let row = WorkloadRow {
            id: id.clone(),
            address: registration.address.or(existing.and_then(|w| w.address)),
            app_port: registration.app_port.or(existing.and_then(|w| w.app_port)),
            port: registration.port.or(existing.and_then(|w| w.port)),
            created_at: existing.map_or_else(now, |w| w.created_at),
        };
        let ttl = Duration::from_secs(
            registration
                .token_ttl_seconds
                .unwrap_or(15 * 60)
                .clamp(60, 7 * 24 * 3600),
        );
        let token = self.issuance.create_token(
            &id,
            time::Duration::try_from(ttl).unwrap_or(time::Duration::minutes(15)),
            &caller.audit_name(),
        )?;
        let change = Change {
            put_workloads: vec![row.clone()],
            audit: vec![AuditEntry {
                actor: caller.audit_name(),
                action: "workload-add".into(),
                target: id.to_string(),
                detail: match row.address {
                    Some(a) => format!("proxy at {a}; join token issued"),
                    None => "join token issued".into(),
                },
            }],
            ..Change::default()
        };
        let revision = self.commit(change).await?;
        let mut workloads = current.workloads.clone();
        workloads.insert(id.clone(), row);
        self.publish(revision, None, workloads)?;
        Ok(Registered {
            id: id.to_string(),
            token,
        })
    }

    /// Unregisters a workload and revokes it: its tokens die and it cannot renew.
    pub async fn remove_workload(&self, caller: &Caller, id: &str) -> Result<(), ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        if !caller.may_change(id.namespace()) {
            return Err(ControlError::NotAllowed(format!(
                "{} may not remove workloads in `{}`",
                caller.audit_name(),
                id.namespace()
            )));
        }
        let _guard = self.writer.lock().await;
        let current = self.snapshot();
        if !current.workloads.contains_key(&id) {
            return Err(ControlError::NotFound(format!("`{id}` is not registered")));
        }
        self.issuance.revoke(&id, &caller.audit_name())?;
        let change = Change {
            delete_workloads: vec![id.clone()],
            audit: vec![AuditEntry {
                actor: caller.audit_name(),
                action: "workload-remove".into(),
                target: id.to_string(),
                detail: "unregistered and revoked".into(),
            }],
            ..Change::default()
        };
        let revision = self.commit(change).await?;
        let mut workloads = current.workloads.clone();
        workloads.remove(&id);
        self.publish(revision, None, workloads)?;
        self.enforcement.forget(&id);
        Ok(())
    }

    /// Protects a server with a ProtectedService.
    pub async fn protect(&self, caller: &Caller, id: &str) -> Result<Outcome, ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        let doc = Document::ProtectedService(ProtectedService {
            meta: Meta {
                name: id.name().to_string(),
                namespace: id.namespace_owned(),
                origin: Location::whole("ibac protect".into()),
                format: Format::IbacV1,
                namespace_given: true,
            },
            workload: WorkloadRef {
                id: id.clone(),
                kind: None,
            },
        });
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        let known = self.knows(&id);
        let mut outcome = self
            .apply_documents(caller, vec![doc.clone()], false, "protect")
            .await?;
        if !known {
            outcome.warnings.push(format!(
                "nothing named `{id}` is known yet (no registered workload, intent or discovered call): it is protected now, and stays so when it appears"
            ));
        }
        Ok(outcome)
    }

    /// Whether a workload, an intent or a discovered call names `id`.
    fn knows(&self, id: &WorkloadId) -> bool {
        let snapshot = self.snapshot();
        if snapshot.workloads.contains_key(id) {
            return true;
        }
        let declared = snapshot
            .policy
            .documents()
            .into_iter()
            .any(|(_, d, _)| match d {
                Document::ClientIntents(ci) => {
                    &ci.workload.id == id
                        || ci.targets.iter().any(|t| match &t.kind {
                            ibac_model::TargetKind::Workload(c)
                            | ibac_model::TargetKind::Service(c) => &c.id == id,
                            ibac_model::TargetKind::Kafka(k) => &k.server == id,
                            _ => false,
                        })
                }
                _ => false,
            });
        declared
            || self
                .discovered
                .lock()
                .map(|d| {
                    d.since(None)
                        .iter()
                        .any(|(k, _)| &k.client == id || &k.server == id)
                })
                .unwrap_or(false)
    }

    /// Removes the ProtectedService of a server (`ibac unprotect`). Other
    /// protection (the mode, an enforced namespace) is not touched, and the
    /// outcome says when the server stays protected because of it.
    pub async fn unprotect(
        &self,
        caller: &Caller,
        id: &str,
        dry_run: bool,
    ) -> Result<Outcome, ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        let key = DocumentKey {
            kind: DocumentKind::ProtectedService,
            namespace: id.namespace_owned(),
            name: id.name().to_string(),
        };
        let current = self.snapshot();
        let Some(doc) = current
            .policy
            .documents()
            .into_iter()
            .find(|(k, _, _)| **k == key)
            .map(|(_, d, _)| d.clone())
        else {
            return Err(ControlError::NotFound(format!(
                "no ProtectedService protects `{id}`{}",
                if current.policy.protection(&id).is_protected() {
                    "; it is protected by the mode or its enforced namespace: change those with `ibac mode` or the EnforcementConfig"
                } else {
                    ""
                }
            )));
        };
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        let mut outcome = self
            .delete_keys(caller, &[doc], vec![key], dry_run, "unprotect")
            .await?;
        if self.snapshot().policy.protection(&id).is_protected() && !dry_run {
            outcome.warnings.push(format!(
                "`{id}` stays protected: the mode or its enforced namespace protects it"
            ));
        }
        Ok(outcome)
    }

    /// Sets the mode, keeping the other settings.
    pub async fn set_mode(&self, caller: &Caller, mode: Mode) -> Result<Outcome, ControlError> {
        let existing =
            self.snapshot()
                .policy
                .documents()
                .into_iter()
                .find_map(|(_, d, _)| match d {
                    Document::EnforcementConfig(c) => Some(c.clone()),
                    _ => None,
                });
        let config = match existing {
            Some(mut c) => {
                c.mode = mode;
                c
            }
            None => EnforcementConfig {
                meta: Meta {
                    name: "default".into(),
                    namespace: Namespace::parse("ibac-system")
                        .map_err(|e| ControlError::Internal(e.to_string()))?,
                    origin: Location::whole("ibac mode".into()),
                    format: Format::IbacV1,
                    namespace_given: true,
                },
                mode,
                enforced_namespaces: Vec::new(),
                enforcers: Default::default(),
                external_traffic: Default::default(),
            },
        };
        let doc = Document::EnforcementConfig(config);
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        self.apply_documents(caller, vec![doc], false, "mode").await
    }

    /// Takes a batch of reports from `reporter`'s proxy. Only server-side
    /// reports count as discovered calls: the server's proxy saw the call
    /// arrive, with the verified identity of its caller.
    pub async fn ingest(
        &self,
        reporter: &WorkloadId,
        reports: Vec<Report>,
    ) -> Result<usize, ControlError> {
        let mut observations = Vec::new();
        for r in reports {
            if &r.reporter != reporter {
                return Err(ControlError::NotAllowed(format!(
                    "{reporter} may not report for {}",
                    r.reporter
                )));
            }
            if r.direction != Direction::Inbound || &r.server != reporter {
                continue;
            }
            let Some(client) = r.client else {
                continue; // unauthenticated: counted by the proxy's metrics, not a workload's call
            };
            let key = match (r.protocol, r.method, r.path) {
                (Protocol::Http, Some(m), Some(p)) => {
                    CallKey::http(client, r.server, r.port, &m, &p)
                }
                (Protocol::Tcp, _, _) => CallKey::tcp(client, r.server, r.port),
                (Protocol::Http, _, _) => continue,
            };
            // The mapper's form: ID-like path segments collapsed.
            let mut key = key;
            if let Some(path) = &key.path {
                key.path = Some(ibac_mapper::generalize::collapse_ids(path));
            }
            let at = now();
            let first_seen = parse_rfc3339(&r.first_seen).unwrap_or(at);
            if let Ok(mut o) = self.observed.lock() {
                o.observe(&key, r.verdict, r.count, r.revision, first_seen);
            }
            observations.push(Observation {
                key,
                verdict: Some(r.verdict),
                count: r.count,
                first_seen,
                last_seen: parse_rfc3339(&r.last_seen).unwrap_or(at),
                source: Source::Proxy,
            });
        }
        let n = observations.len();
        self.observe(observations).await?;
        Ok(n)
    }

    /// Folds observations in and persists what they changed.
    pub async fn observe(&self, observations: Vec<Observation>) -> Result<(), ControlError> {
        if observations.is_empty() {
            return Ok(());
        }
        let changed: Vec<(CallKey, CallRecord)> = {
            let mut d = self
                .discovered
                .lock()
                .map_err(|_| ControlError::Internal("mapper lock".into()))?;
            let keys: BTreeSet<CallKey> = observations.into_iter().map(|o| d.observe(o)).collect();
            keys.into_iter()
                .filter_map(|k| d.get(&k).cloned().map(|r| (k, r)))
                .collect()
        };
        let store = self.store.clone();
        blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.save_calls(&changed, &[])?)
        })
        .await?;
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Forgets calls not seen within the retention period.
    pub async fn purge(&self) -> Result<usize, ControlError> {
        let cutoff = now() - i64::try_from(self.settings.retention.as_secs()).unwrap_or(i64::MAX);
        let gone = {
            let mut d = self
                .discovered
                .lock()
                .map_err(|_| ControlError::Internal("mapper lock".into()))?;
            d.purge_before(cutoff)
        };
        if gone.is_empty() {
            return Ok(0);
        }
        let n = gone.len();
        let store = self.store.clone();
        blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.save_calls(&[], &gone)?)
        })
        .await?;
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(n)
    }

    /// Discovered calls last seen at or after `since` (unix seconds).
    pub fn calls(&self, since: Option<i64>) -> Vec<(CallKey, CallRecord)> {
        self.discovered
            .lock()
            .map(|d| d.since(since))
            .unwrap_or_default()
    }

    /// Forgets every discovered call.
    pub async fn reset_calls(&self, caller: &Caller) -> Result<(), ControlError> {
        if !caller.is_admin() {
            return Err(ControlError::NotAllowed(
                "only an admin token may reset the mapper".into(),
            ));
        }
        let entry = AuditEntry {
            actor: caller.audit_name(),
            action: "mapper-reset".into(),
            target: "discovered calls".into(),
            detail: String::new(),
        };
        let store = self.store.clone();
        blocking(move || {
            let mut s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.reset_calls(&entry)?)
        })
        .await?;
        if let Ok(mut d) = self.discovered.lock() {
            d.reset();
        }
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// The last `limit` audit records.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, ControlError> {
        let store = self.store.clone();
        blocking(move || {
            let s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.audit(limit)?)
        })
        .await
    }

    /// Whether the verdict of a discovered call would change: used by the
    /// graph to say what a call gets now.
    pub fn verdict_now(&self, key: &CallKey) -> Verdict {
        self.snapshot()
            .policy
            .decide(Some(&key.client), &key.server, &key.request())
            .verdict
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

fn snapshot_since(snapshot: &Snapshot) -> i64 {
    snapshot.policy_since
}
