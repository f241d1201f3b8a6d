//! Status that explains: on every ClientIntents and ProtectedService, one
//! condition per enforcer (enforced, shadow, or why not: the target that
//! failed, the enforcer not installed or turned off), `Ready`, and the fields
//! Otterize's operator writes (`upToDate`, `observedGeneration`); on a
//! ProtectedService also whether it is protected, by which enforcers, and how
//! many declared clients it allows. A condition says enforced only once the
//! writer reported that the objects rendered from that version are written.
//! A condition that changes is also an Event on the object, so
//! `kubectl describe` tells what happened and why.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::admin::Metrics;
use crate::index::{DocRole, DocView, ObjectKey, Stream};
use crate::reconcile::writer::{Report, SubjectState};
use crate::reconcile::{Enforcer, Subject};

/// What the status writer is told.
#[derive(Clone, Debug)]
pub enum Input {
    /// Documents changed (or were removed: `removed`), and which enforcers
    /// are on.
    Views {
        /// The documents' views.
        views: Vec<DocView>,
        /// Documents that no longer exist.
        removed: Vec<ObjectKey>,
        /// Each enforcer, on or off.
        enabled: Vec<(Enforcer, bool)>,
    },
    /// A writer's result for one subject.
    Report(Report),
}

/// One condition.
#[derive(Clone, Debug, PartialEq)]
struct Condition {
    type_: String,
    status: &'static str,
    reason: &'static str,
    message: String,
}

/// A status as last written, with each condition and its transition time.
type WrittenStatus = (Value, BTreeMap<String, (Condition, String)>);

/// The status writer.
pub struct StatusWriter {
    client: kube::Client,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    views: BTreeMap<ObjectKey, DocView>,
    enabled: BTreeMap<Enforcer, bool>,
    results: HashMap<(Enforcer, Subject), (u64, SubjectState)>,
    by_subject: HashMap<Subject, BTreeSet<ObjectKey>>,
    /// The conditions last written, by object, with their transition times.
    written: HashMap<ObjectKey, WrittenStatus>,
    dirty: BTreeSet<ObjectKey>,
}

fn subjects(view: &DocView) -> Vec<Subject> {
    match &view.role {
        DocRole::ClientIntents { client, servers } => servers
            .iter()
            .cloned()
            .map(Subject::Server)
            .chain(std::iter::once(Subject::Client(client.clone())))
            .collect(),
        DocRole::ProtectedService { server, .. } => vec![Subject::Server(server.clone())],
        DocRole::Other => Vec::new(),
    }
}

fn resource(key: &ObjectKey) -> Option<ApiResource> {
    match key.stream {
        Stream::Document(kind) => Some(kind.resource()),
        _ => None,
    }
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl StatusWriter {
    /// A status writer.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, recorder: Recorder) -> Self {
        StatusWriter {
            client,
            metrics,
            recorder,
            views: BTreeMap::new(),
            enabled: Enforcer::ALL.iter().map(|e| (*e, true)).collect(),
            results: HashMap::new(),
            by_subject: HashMap::new(),
            written: HashMap::new(),
            dirty: BTreeSet::new(),
        }
    }

    /// Runs until `inputs` closes.
    pub async fn run(mut self, mut inputs: mpsc::UnboundedReceiver<Input>) {
        let mut retry = tokio::time::interval(Duration::from_secs(5));
        retry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                input = inputs.recv() => {
                    let Some(input) = input else { return };
                    self.take(input);
                    while let Ok(input) = inputs.try_recv() {
                        self.take(input);
                    }
                }
                _ = retry.tick() => {}
            }
            self.flush().await;
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Views {
                views,
                removed,
                enabled,
            } => {
                for (enforcer, on) in enabled {
                    if self.enabled.insert(enforcer, on) != Some(on) {
                        self.dirty.extend(self.views.keys().cloned());
                    }
                }
                for key in removed {
                    self.unlink(&key);
                    self.views.remove(&key);
                    self.written.remove(&key);
                    self.dirty.remove(&key);
                }
                for view in views {
                    self.unlink(&view.key);
                    for subject in subjects(&view) {
                        self.by_subject
                            .entry(subject)
                            .or_default()
                            .insert(view.key.clone());
                    }
                    self.dirty.insert(view.key.clone());
                    self.views.insert(view.key.clone(), view);
                }
            }
            Input::Report(report) => {
                if let Some(keys) = self.by_subject.get(&report.subject) {
                    self.dirty.extend(keys.iter().cloned());
                }
                self.results.insert(
                    (report.enforcer, report.subject),
                    (report.epoch, report.state),
                );
            }
        }
    }

    fn unlink(&mut self, key: &ObjectKey) {
        if let Some(old) = self.views.get(key) {
            for subject in subjects(old) {
                if let Some(set) = self.by_subject.get_mut(&subject) {
                    set.remove(key);
                }
            }
        }
    }

    /// The condition of `enforcer` for `view`, and whether it is settled
    /// (nothing pending).
    fn condition(&self, view: &DocView, enforcer: Enforcer) -> Condition {
        let type_ = enforcer.name().to_owned();
        let condition = |status, reason, message: String| Condition {
            type_: type_.clone(),
            status,
            reason,
            message,
        };
        if !self.enabled.get(&enforcer).copied().unwrap_or(true) {
            return condition(
                "False",
                "Disabled",
                format!("{} is turned off in the EnforcementConfig", enforcer.name()),
            );
        }
        if view.rejected {
            return condition("False", "Invalid", view.errors.join("; "));
        }
        let mut protected = Vec::new();
        let mut shadow = Vec::new();
        let mut objects = Vec::new();
        let mut notes = Vec::new();
        for subject in subjects(view) {
            // A client's egress is the NetworkPolicy enforcer's alone.
            if enforcer != Enforcer::NetworkPolicy && matches!(subject, Subject::Client(_)) {
                continue;
            }
            let Some((epoch, state)) = self.results.get(&(enforcer, subject.clone())) else {
                return condition(
                    "Unknown",
                    "Pending",
                    format!("{} is not written yet", describe(&subject)),
                );
            };
            if *epoch < view.epoch {
                return condition(
                    "Unknown",
                    "Pending",
                    format!("{} is not written yet", describe(&subject)),
                );
            }
            match state {
                SubjectState::NotInstalled => {
                    return condition(
                        "False",
                        "NotInstalled",
                        format!(
                            "the cluster has no {} CRD ({}); nothing is written for this enforcer",
                            enforcer.resource().kind,
                            enforcer.crd().unwrap_or_default()
                        ),
                    );
                }
                SubjectState::Failed(why) => {
                    return condition(
                        "False",
                        "WriteFailed",
                        format!("{}: {why} (retrying)", describe(&subject)),
                    );
                }
                SubjectState::Kept(why) => {
                    return condition(
                        "False",
                        "Error",
                        format!(
                            "{}: {}; what was in force for it stays as it was",
                            describe(&subject),
                            why.join("; ")
                        ),
                    );
                }
                SubjectState::Written {
                    protected: on,
                    objects: written,
                    notes: n,
                } => {
                    objects.extend(written.iter().cloned());
                    notes.extend(n.iter().cloned());
                    if let Subject::Server(id) = &subject {
                        if *on {
                            protected.push(id.to_string());
                        } else {
                            shadow.push(id.to_string());
                        }
                    }
                }
            }
        }
        if !view.errors.is_empty() {
            return condition("False", "TargetsMissing", view.errors.join("; "));
        }
        let kind = enforcer.resource().kind;
        let written = if objects.is_empty() {
            String::new()
        } else {
            format!("; {kind} {}", objects.join(", "))
        };
        let notes = if notes.is_empty() {
            String::new()
        } else {
            format!("; note: {}", notes.join("; "))
        };
        match (protected.is_empty(), shadow.is_empty()) {
            (true, true) => condition(
                "True",
                "Enforced",
                format!("nothing to enforce for a server in the cluster{written}{notes}"),
            ),
            (false, true) => condition(
                "True",
                "Enforced",
                format!("enforced for {}{written}{notes}", protected.join(", ")),
            ),
            (true, false) => condition(
                "True",
                "Shadow",
                format!(
                    "{} not protected: calls are allowed and reported, nothing is written for {}{written}{notes}",
                    if shadow.len() == 1 {
                        "the server is"
                    } else {
                        "no server is"
                    },
                    shadow.join(", ")
                ),
            ),
            (false, false) => condition(
                "True",
                "PartlyShadow",
                format!(
                    "enforced for {}; shadow (not protected) for {}{written}{notes}",
                    protected.join(", "),
                    shadow.join(", ")
                ),
            ),
        }
    }

    /// The status of `view`: conditions per enforcer, Ready, and the fields
    /// its kind carries.
    fn status(&self, view: &DocView) -> (Value, Vec<Condition>) {
        let mut conditions: Vec<Condition> = Enforcer::ALL
            .iter()
            .map(|e| self.condition(view, *e))
            .collect();
        let counted: Vec<&Condition> = conditions
            .iter()
            .filter(|c| c.reason != "Disabled" && c.reason != "NotInstalled")
            .collect();
        let pending = counted.iter().any(|c| c.status == "Unknown");
        let failing: Vec<String> = counted
            .iter()
            .filter(|c| c.status == "False")
            .map(|c| format!("{}: {}", c.type_, c.message))
            .collect();
        let ready = if !failing.is_empty() {
            Condition {
                type_: "Ready".into(),
                status: "False",
                reason: "NotEnforced",
                message: failing.join("; "),
            }
        } else if pending {
            Condition {
                type_: "Ready".into(),
                status: "Unknown",
                reason: "Pending",
                message: "waiting for the enforcers to write".into(),
            }
        } else if counted.is_empty() {
            Condition {
                type_: "Ready".into(),
                status: "True",
                reason: "NoEnforcer",
                message: "no enforcer is on and installed".into(),
            }
        } else {
            Condition {
                type_: "Ready".into(),
                status: "True",
                reason: "Ready",
                message: counted
                    .iter()
                    .map(|c| format!("{}: {}", c.type_, c.reason))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
        };
        let up_to_date = ready.status == "True";
        conditions.insert(0, ready);
        let mut status = json!({
            "upToDate": up_to_date,
        });
        if let Some(generation) = view.generation {
            status["observedGeneration"] = json!(generation);
        }
        if let DocRole::ProtectedService {
            server,
            protected,
            clients,
        } = &view.role
        {
            let enforced_by: Vec<&str> = Enforcer::ALL
                .iter()
                .filter(|e| {
                    matches!(
                        self.results.get(&(**e, Subject::Server(server.clone()))),
                        Some((_, SubjectState::Written { protected: true, objects, .. })) if !objects.is_empty()
                    ) && self.enabled.get(*e).copied().unwrap_or(true)
                })
                .map(|e| e.name())
                .collect();
            status["protected"] = json!(*protected && !view.rejected);
            status["enforcedBy"] = json!(enforced_by);
            status["allowedClients"] = json!(clients);
        }
        (status, conditions)
    }

    async fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for key in dirty {
            let Some(view) = self.views.get(&key).cloned() else {
                continue;
            };
            if view.role == DocRole::Other && view.errors.is_empty() {
                continue;
            }
            let (mut status, conditions) = self.status(&view);
            let previous = self
                .written
                .get(&key)
                .map(|(_, c)| c.clone())
                .unwrap_or_default();
            let mut times = BTreeMap::new();
            let mut changed = Vec::new();
            let mut listed = Vec::new();
            for c in &conditions {
                let time = match previous.get(&c.type_) {
                    Some((old, time)) if old.status == c.status => time.clone(),
                    _ => now(),
                };
                if previous.get(&c.type_).map(|(old, _)| old) != Some(c) {
                    changed.push(c.clone());
                }
                listed.push(json!({
                    "type": c.type_,
                    "status": c.status,
                    "reason": c.reason,
                    "message": c.message,
                    "lastTransitionTime": time,
                    "observedGeneration": view.generation,
                }));
                times.insert(c.type_.clone(), (c.clone(), time));
            }
            status["conditions"] = Value::Array(listed);
            if changed.is_empty()
                && self.written.get(&key).is_some_and(|(s, _)| {
                    s["upToDate"] == status["upToDate"]
                        && s["observedGeneration"] == status["observedGeneration"]
                        && s["enforcedBy"] == status["enforcedBy"]
                        && s["allowedClients"] == status["allowedClients"]
                })
            {
                continue;
            }
            let Some(resource) = resource(&key) else {
                continue;
            };
            let api: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &key.namespace, &resource);
            match api
                .patch_status(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({ "status": status })),
                )
                .await
            {
                Ok(_) => {
                    self.metrics.status_writes.inc();
                    self.written.insert(key.clone(), (status, times));
                    for c in changed.iter().filter(|c| c.status != "Unknown") {
                        self.event(&key, &resource, &view, c).await;
                    }
                }
                Err(kube::Error::Api(e)) if e.code == 404 => {}
                Err(e) => {
                    self.metrics.status_errors.inc();
                    tracing::warn!(error = %e, "cannot write the status of {} {}/{}", resource.kind, key.namespace, key.name);
                    self.dirty.insert(key);
                }
            }
        }
    }

    async fn event(&self, key: &ObjectKey, resource: &ApiResource, view: &DocView, c: &Condition) {
        let reference = ObjectReference {
            api_version: Some(resource.api_version.clone()),
            kind: Some(resource.kind.clone()),
            namespace: Some(key.namespace.clone()),
            name: Some(key.name.clone()),
            uid: view.uid.clone(),
            ..ObjectReference::default()
        };
        // An enforcer that is off or absent is a fact, not a warning.
        let type_ = if c.status == "False" && !matches!(c.reason, "Disabled" | "NotInstalled") {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let mut note = format!("{}: {}", c.type_, c.message);
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_,
            reason: c.reason.to_owned(),
            note: Some(note),
            action: "Reconcile".to_owned(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::debug!(error = %e, "cannot publish an event");
        }
    }
}

fn describe(subject: &Subject) -> String {
    match subject {
        Subject::Server(id) => format!("target {id}"),
        Subject::Client(id) => format!("egress of {id}"),
    }
}
