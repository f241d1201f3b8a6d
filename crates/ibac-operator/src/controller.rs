//! The reconcile loop: watches feed the index, the index says what each
//! change touched, only that is rendered, and the writers and the status
//! writer take it from there.
//!
//! Nothing is rendered before every watch has listed what exists and the
//! settings are known: a policy rendered from part of the cluster (a
//! ProtectedService seen before the intents of its clients) would block
//! declared calls.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use ibac_model::EnforcementConfig;
use kube::runtime::events::{Recorder, Reporter};
use tokio::sync::{mpsc, watch};

use crate::admin::Metrics;
use crate::index::{Index, ObjectKey, Stream, Touched};
use crate::reconcile::writer::Writer;
use crate::reconcile::{Enforcer, RenderOptions, render};
use crate::status::{Input, StatusWriter};
use crate::watches::{Scope, Update, spawn_all, streams};

/// How the loop runs.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Namespaces whose objects are acted on (all when empty).
    pub watched_namespaces: Vec<String>,
    /// How policies are rendered.
    pub render: RenderOptions,
    /// This replica's name in Events.
    pub instance: Option<String>,
    /// The operator's own namespace, which `defaultActive` leaves alone.
    pub namespace: String,
}

/// Runs the loop until the process ends.
pub async fn run(
    client: kube::Client,
    options: Options,
    metrics: Arc<Metrics>,
    mut settings: watch::Receiver<Option<Arc<EnforcementConfig>>>,
) {
    let reporter = Reporter {
        controller: "ibac".into(),
        instance: options.instance.clone(),
    };
    let recorder = Recorder::new(client.clone(), reporter);
    let (updates_tx, mut updates) = mpsc::unbounded_channel::<Update>();
    spawn_all(
        &client,
        &Scope::new(&options.watched_namespaces),
        &updates_tx,
    );
    drop(updates_tx);

    let (status_tx, status_rx) = mpsc::unbounded_channel::<Input>();
    tokio::spawn(
        StatusWriter::new(client.clone(), metrics.clone(), recorder.clone()).run(status_rx),
    );
    let (reports_tx, mut reports_rx) = mpsc::unbounded_channel();
    {
        let status_tx = status_tx.clone();
        tokio::spawn(async move {
            while let Some(report) = reports_rx.recv().await {
                if status_tx.send(Input::Report(report)).is_err() {
                    return;
                }
            }
        });
    }
    let mut writers = Vec::new();
    for enforcer in Enforcer::ALL {
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer::new(
            client.clone(),
            enforcer,
            metrics.clone(),
            recorder.clone(),
            reports_tx.clone(),
        );
        tokio::spawn(writer.run(rx));
        writers.push((enforcer, tx));
    }

    let mut index = Index::for_namespace(&options.namespace);
    let expected: HashSet<Stream> = streams().into_iter().collect();
    let mut listed: HashSet<Stream> = HashSet::new();
    let mut settings_known = false;
    let mut touched = Touched::default();
    loop {
        tokio::select! {
            update = updates.recv() => {
                let Some(update) = update else { return };
                take(&mut index, update, &mut listed, &mut touched);
                // Everything already queued is one batch.
                while let Ok(update) = updates.try_recv() {
                    take(&mut index, update, &mut listed, &mut touched);
                }
            }
            changed = settings.changed() => {
                if changed.is_err() {
                    return;
                }
                settings_known = true;
                let config = settings.borrow_and_update().as_deref().cloned();
                touched.merge(index.settings(config));
            }
        }
        if index.listing() {
            if !settings_known || !expected.is_subset(&listed) {
                continue;
            }
            tracing::info!(
                workloads = index.facts().workload_count(),
                documents = index.document_count(),
                "every watch has listed the cluster; reconciling"
            );
            touched = index.synced();
        }
        if touched.is_empty() {
            continue;
        }
        metrics.index_batches.inc();
        for (enforcer, tx) in &writers {
            let batch = render(&index, &touched, *enforcer, &options.render);
            metrics
                .subjects_rendered
                .get_or_create(&crate::admin::EnforcerLabel::of(enforcer.name()))
                .inc_by(u64::try_from(batch.desired.len()).unwrap_or(u64::MAX));
            let _ = tx.send(batch);
        }
        let views = if touched.everything {
            index.views(None)
        } else {
            index.views(Some(&touched.documents))
        };
        let present: BTreeSet<&ObjectKey> = views.iter().map(|v| &v.key).collect();
        let removed = touched
            .documents
            .iter()
            .filter(|k| !present.contains(k))
            .cloned()
            .collect();
        let settings_in_force = index.policy().settings();
        let enabled = Enforcer::ALL
            .iter()
            .map(|e| (*e, e.enabled(settings_in_force)))
            .collect();
        let _ = status_tx.send(Input::Views {
            views,
            removed,
            enabled,
        });
        touched = Touched::default();
    }
}

fn take(index: &mut Index, update: Update, listed: &mut HashSet<Stream>, touched: &mut Touched) {
    match update {
        Update::Applied(object) => touched.merge(index.apply(object)),
        Update::Deleted(key) => touched.merge(index.delete(&key)),
        Update::Listed { stream, present } => {
            listed.insert(stream);
            touched.merge(index.resync(stream, &present));
        }
    }
}
