//! One writer per enforcer: it holds what every subject must have, writes
//! only what differs from what it wrote (server-side apply, field manager
//! `ibac`), deletes what a subject no longer has, and reports each subject's
//! result to the status writer. A write the API server refuses is retried,
//! the subject staying as it was meanwhile; an enforcer whose CRDs are
//! missing reports "not installed" and writes nothing until they appear.
//!
//! What it wrote is recognised by two annotations: `ibac.dev/subject` (whose
//! objects they are) and `ibac.dev/hash` (a digest of what was written), so a
//! restarted operator skips writes that would change nothing and prunes what
//! an earlier run left behind. It also watches those objects: one deleted or
//! changed by someone else is written again at once (drift).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::{WatchStreamExt as _, watcher};
use ring::digest::{SHA256, digest};
use serde_json::Value;
use tokio::sync::mpsc;

use super::{Batch, Enforcer, Outcome, Subject};
use crate::admin::{EnforcerLabel, Metrics};

/// The annotation naming whose objects these are.
pub const SUBJECT_ANNOTATION: &str = "ibac.dev/subject";
/// The annotation holding a digest of what ibac wrote.
pub const HASH_ANNOTATION: &str = "ibac.dev/hash";
/// The field manager of every write.
pub const FIELD_MANAGER: &str = "ibac";

/// How one subject stands after its writer's turn.
#[derive(Clone, Debug, PartialEq)]
pub enum SubjectState {
    /// Its objects are in the cluster as rendered.
    Written {
        /// Whether the server is protected.
        protected: bool,
        /// `namespace/name` of each object it has.
        objects: Vec<String>,
        /// What the user should know.
        notes: Vec<String>,
    },
    /// Its policy cannot be computed; what exists stays.
    Kept(Vec<String>),
    /// The API server refused a write (retried).
    Failed(String),
    /// The enforcer's CRDs are not in the cluster.
    NotInstalled,
}

/// One subject's result.
#[derive(Clone, Debug)]
pub struct Report {
    /// The enforcer.
    pub enforcer: Enforcer,
    /// Whose.
    pub subject: Subject,
    /// The epoch of the rendering it comes from.
    pub epoch: u64,
    /// How it stands.
    pub state: SubjectState,
}

/// One object ibac wrote.
#[derive(Clone, Debug)]
struct Existing {
    subject: Option<Subject>,
    hash: String,
    /// Its spec as the API server returned it after ibac's write (or as
    /// listed at start); a spec seen later that differs was changed by
    /// someone else.
    written: Option<Value>,
    /// The resource version of that spec: an event about an older one is a
    /// late echo of an earlier write, not drift.
    version: Option<u64>,
}

/// The writer of one enforcer.
pub struct Writer {
    client: kube::Client,
    enforcer: Enforcer,
    resource: ApiResource,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    reports: mpsc::UnboundedSender<Report>,
    /// What every subject must have, and the epoch it was rendered at.
    desired: BTreeMap<Subject, (u64, Outcome)>,
    /// Objects in the cluster that ibac wrote, by (namespace, name).
    existing: HashMap<(String, String), Existing>,
    /// Subjects to write on the next turn.
    dirty: BTreeSet<Subject>,
    /// Subjects whose last write failed, retried later.
    failed: BTreeSet<Subject>,
    installed: bool,
    /// Whether a batch with every subject came: what an earlier run wrote
    /// for subjects that no longer exist may then be pruned.
    complete_seen: bool,
}

/// An object's resource version as a number, when it is one (the API
/// server's are; they only order writes of one object here).
fn version_of(object: &DynamicObject) -> Option<u64> {
    object.metadata.resource_version.as_deref()?.parse().ok()
}

fn hash_of(value: &Value) -> String {
    let text = value.to_string();
    digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Writer {
    /// A writer for `enforcer`, reporting to `reports`.
    pub fn new(
        client: kube::Client,
        enforcer: Enforcer,
        metrics: Arc<Metrics>,
        recorder: Recorder,
        reports: mpsc::UnboundedSender<Report>,
    ) -> Writer {
        Writer {
            client,
            enforcer,
            resource: enforcer.resource(),
            metrics,
            recorder,
            reports,
            desired: BTreeMap::new(),
            existing: HashMap::new(),
            dirty: BTreeSet::new(),
            failed: BTreeSet::new(),
            installed: false,
            complete_seen: false,
        }
    }

    fn label(&self) -> EnforcerLabel {
        EnforcerLabel::of(self.enforcer.name())
    }

    /// A write or delete (`action`) of the object at `key` failed: counted,
    /// logged, and the subject's state, which says why.
    fn failed(&self, action: &str, key: &(String, String), error: &kube::Error) -> SubjectState {
        self.metrics.write_errors.get_or_create(&self.label()).inc();
        let message = format!(
            "cannot {action} {} {}/{}: {error}",
            self.resource.kind, key.0, key.1
        );
        tracing::warn!(enforcer = self.enforcer.name(), "{message}");
        SubjectState::Failed(message)
    }

    /// Runs until `batches` closes.
    pub async fn run(mut self, mut batches: mpsc::UnboundedReceiver<Batch>) {
        self.check_installed().await;
        let mut retry = tokio::time::interval(Duration::from_secs(5));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut own = None;
        loop {
            if own.is_none() && self.installed {
                own = Some(self.watch_own());
            }
            let next_own = async {
                match own.as_mut() {
                    Some(events) => events.next().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = next_own => {
                    if let Some(event) = event {
                        self.drift(event);
                    }
                }
                batch = batches.recv() => {
                    let Some(batch) = batch else { return };
                    self.take(batch);
                    // Everything already queued is taken too: a subject
                    // changed twice is written once.
                    while let Ok(batch) = batches.try_recv() {
                        self.take(batch);
                    }
                }
                _ = retry.tick() => {
                    if !self.installed {
                        self.check_installed().await;
                        if self.installed {
                            self.dirty.extend(self.desired.keys().cloned());
                        }
                    }
                    let failed = std::mem::take(&mut self.failed);
                    self.dirty.extend(failed);
                }
            }
            self.turn().await;
        }
    }

    /// The objects ibac wrote, as the API server changes them.
    fn watch_own(&self) -> futures_util::stream::BoxStream<'static, watcher::Event<DynamicObject>> {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.resource);
        let config = watcher::Config::default().labels(&format!(
            "{}={}",
            crate::crd::MANAGED_BY.0,
            crate::crd::MANAGED_BY.1
        ));
        watcher(api, config)
            .default_backoff()
            .filter_map(|event| async move { event.ok() })
            .boxed()
    }

    /// An object ibac wrote was deleted, or its spec changed, by someone
    /// else: its subject is written again.
    fn drift(&mut self, event: watcher::Event<DynamicObject>) {
        let (object, deleted) = match event {
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => (o, false),
            watcher::Event::Delete(o) => (o, true),
            watcher::Event::Init | watcher::Event::InitDone => return,
        };
        let key = (
            object.metadata.namespace.clone().unwrap_or_default(),
            object.metadata.name.clone().unwrap_or_default(),
        );
        let Some(existing) = self.existing.get_mut(&key) else {
            return;
        };
        let late = matches!(
            (version_of(&object), existing.version),
            (Some(seen), Some(written)) if seen < written
        );
        let changed = deleted
            || (!late
                && existing
                    .written
                    .as_ref()
                    .is_some_and(|spec| object.data.get("spec") != Some(spec)));
        if !changed {
            return;
        }
        let Some(subject) = existing.subject.clone() else {
            return;
        };
        tracing::warn!(
            enforcer = self.enforcer.name(),
            object = %format!("{}/{}", key.0, key.1),
            "{} by someone else; ibac writes it again",
            if deleted { "deleted" } else { "changed" }
        );
        if deleted {
            self.existing.remove(&key);
        } else {
            // Never skipped as unchanged: the hash no longer says what is there.
            existing.hash.clear();
        }
        self.metrics
            .drift_corrections
            .get_or_create(&self.label())
            .inc();
        if self.desired.contains_key(&subject) {
            self.dirty.insert(subject);
        }
    }

    /// Whether the enforcer's CRDs are there; lists what ibac wrote when
    /// they are (once).
    async fn check_installed(&mut self) {
        if let Some(crd) = self.enforcer.crd() {
            let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
            match api.get_opt(crd).await {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(error = %e, enforcer = self.enforcer.name(), "cannot tell whether the enforcer is installed");
                    return;
                }
            }
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &self.resource);
        let params = ListParams::default().labels(&format!(
            "{}={}",
            crate::crd::MANAGED_BY.0,
            crate::crd::MANAGED_BY.1
        ));
        match api.list(&params).await {
            Ok(list) => {
                for object in list.items {
                    let annotations = object.metadata.annotations.clone().unwrap_or_default();
                    let key = (
                        object.metadata.namespace.clone().unwrap_or_default(),
                        object.metadata.name.clone().unwrap_or_default(),
                    );
                    self.existing.insert(
                        key,
                        Existing {
                            subject: annotations
                                .get(SUBJECT_ANNOTATION)
                                .and_then(|s| Subject::from_annotation(s)),
                            hash: annotations
                                .get(HASH_ANNOTATION)
                                .cloned()
                                .unwrap_or_default(),
                            // Taken as ibac's: a later change is someone else's.
                            written: object.data.get("spec").cloned(),
                            version: version_of(&object),
                        },
                    );
                }
                self.installed = true;
                if self.complete_seen {
                    self.forget_missing(0);
                }
                tracing::info!(
                    enforcer = self.enforcer.name(),
                    existing = self.existing.len(),
                    "the enforcer is installed; reconciling"
                );
            }
            Err(e) => {
                tracing::warn!(error = %e, enforcer = self.enforcer.name(), "cannot list what ibac wrote");
            }
        }
    }

    fn take(&mut self, batch: Batch) {
        let mut touched: BTreeSet<Subject> = BTreeSet::new();
        for desired in batch.desired {
            touched.insert(desired.subject.clone());
            self.desired
                .insert(desired.subject.clone(), (desired.epoch, desired.outcome));
            self.dirty.insert(desired.subject);
        }
        if batch.complete {
            self.complete_seen = true;
            // Subjects the batch does not name have nothing.
            let gone: Vec<Subject> = self
                .desired
                .keys()
                .filter(|s| !touched.contains(*s))
                .cloned()
                .collect();
            for subject in gone {
                self.nothing_for(subject, batch.epoch);
            }
            self.forget_missing(batch.epoch);
        }
        self.metrics
            .queue_depth
            .get_or_create(&self.label())
            .set(i64::try_from(self.dirty.len()).unwrap_or(i64::MAX));
    }

    /// `subject` has nothing: what it has is deleted on the next turn.
    fn nothing_for(&mut self, subject: Subject, epoch: u64) {
        self.desired.insert(
            subject.clone(),
            (
                epoch,
                Outcome::Write {
                    objects: Vec::new(),
                    protected: false,
                    notes: Vec::new(),
                },
            ),
        );
        self.dirty.insert(subject);
    }

    /// Subjects with objects in the cluster that no rendering names (an
    /// earlier run wrote them) have nothing.
    fn forget_missing(&mut self, epoch: u64) {
        let orphans: BTreeSet<Subject> = self
            .existing
            .values()
            .filter_map(|e| e.subject.clone())
            .filter(|s| !self.desired.contains_key(s))
            .collect();
        for subject in orphans {
            self.nothing_for(subject, epoch);
        }
    }

    async fn turn(&mut self) {
        if !self.installed {
            self.check_installed().await;
        }
        let dirty = std::mem::take(&mut self.dirty);
        for subject in dirty {
            let Some((epoch, outcome)) = self.desired.get(&subject).cloned() else {
                continue;
            };
            let state = if self.installed {
                self.write(&subject, &outcome).await
            } else {
                SubjectState::NotInstalled
            };
            if let SubjectState::Failed(_) = state {
                self.failed.insert(subject.clone());
            }
            // A subject with nothing, written, is forgotten.
            if let (SubjectState::Written { objects, .. }, Outcome::Write { objects: none, .. }) =
                (&state, &outcome)
                && objects.is_empty()
                && none.is_empty()
            {
                self.desired.remove(&subject);
            }
            let _ = self.reports.send(Report {
                enforcer: self.enforcer,
                subject,
                epoch,
                state,
            });
        }
        self.metrics.queue_depth.get_or_create(&self.label()).set(0);
    }

    /// Makes the cluster hold exactly what `outcome` says for `subject`.
    async fn write(&mut self, subject: &Subject, outcome: &Outcome) -> SubjectState {
        let (objects, protected, notes) = match outcome {
            Outcome::Keep(why) => return SubjectState::Kept(why.clone()),
            Outcome::Write {
                objects,
                protected,
                notes,
            } => (objects, *protected, notes),
        };
        let mut wanted = BTreeSet::new();
        for object in objects {
            let key = crate::index::place_of(object);
            wanted.insert(key.clone());
            let hash = hash_of(object);
            if self
                .existing
                .get(&key)
                .is_some_and(|e| e.hash == hash && e.subject.as_ref() == Some(subject))
            {
                self.metrics
                    .writes_skipped
                    .get_or_create(&self.label())
                    .inc();
                continue;
            }
            let mut body = object.clone();
            if let Some(meta) = body.get_mut("metadata").and_then(Value::as_object_mut) {
                let annotations = meta
                    .entry("annotations")
                    .or_insert_with(|| Value::Object(serde_json::Map::new()));
                if let Some(map) = annotations.as_object_mut() {
                    map.insert(SUBJECT_ANNOTATION.into(), subject.to_annotation().into());
                    map.insert(HASH_ANNOTATION.into(), hash.clone().into());
                }
            }
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.0, &self.resource);
            let created = !self.existing.contains_key(&key);
            match api
                .patch(
                    &key.1,
                    &PatchParams::apply(FIELD_MANAGER).force(),
                    &Patch::Apply(&body),
                )
                .await
            {
                Ok(written) => {
                    self.metrics
                        .objects_written
                        .get_or_create(&self.label())
                        .inc();
                    self.existing.insert(
                        key.clone(),
                        Existing {
                            subject: Some(subject.clone()),
                            hash,
                            written: written.data.get("spec").cloned(),
                            version: version_of(&written),
                        },
                    );
                    let reason = if created { "Created" } else { "Updated" };
                    self.event(
                        &written,
                        EventType::Normal,
                        reason,
                        format!(
                            "{reason} {} {}/{} for {}",
                            self.resource.kind,
                            key.0,
                            key.1,
                            describe(subject)
                        ),
                    )
                    .await;
                }
                Err(e) => return self.failed("write", &key, &e),
            }
        }
        // What the subject had and no longer has goes.
        let stale: Vec<(String, String)> = self
            .existing
            .iter()
            .filter(|(key, e)| e.subject.as_ref() == Some(subject) && !wanted.contains(*key))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.0, &self.resource);
            match api.delete(&key.1, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(e) => return self.failed("delete", &key, &e),
            }
            self.metrics
                .objects_deleted
                .get_or_create(&self.label())
                .inc();
            self.existing.remove(&key);
            let reference = ObjectReference {
                api_version: Some(self.resource.api_version.clone()),
                kind: Some(self.resource.kind.clone()),
                namespace: Some(key.0.clone()),
                name: Some(key.1.clone()),
                ..ObjectReference::default()
            };
            self.publish(
                &reference,
                EventType::Normal,
                "Pruned",
                format!(
                    "Deleted {} {}/{}: {} no longer needs it",
                    self.resource.kind,
                    key.0,
                    key.1,
                    describe(subject)
                ),
            )
            .await;
        }
        SubjectState::Written {
            protected,
            objects: wanted.iter().map(|(ns, n)| format!("{ns}/{n}")).collect(),
            notes: notes.clone(),
        }
    }

    async fn event(&self, object: &DynamicObject, type_: EventType, reason: &str, note: String) {
        let reference = ObjectReference {
            api_version: Some(self.resource.api_version.clone()),
            kind: Some(self.resource.kind.clone()),
            namespace: object.metadata.namespace.clone(),
            name: object.metadata.name.clone(),
            uid: object.metadata.uid.clone(),
            resource_version: object.metadata.resource_version.clone(),
            ..ObjectReference::default()
        };
        self.publish(&reference, type_, reason, note).await;
    }

    async fn publish(
        &self,
        reference: &ObjectReference,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, reference).await {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Server(id) => format!("server {id}"),
        Subject::Client(id) => format!("client {id} (egress)"),
    }
}
