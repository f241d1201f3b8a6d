//! The admin port: `/healthz` (the process runs), `/readyz` (the CRDs are in
//! force; otherwise why not) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

/// Whether the operator can do its work, and if not, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// Ready.
    Ready,
    /// Not ready, for this reason.
    NotReady(String),
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabel {
    version: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModeLabel {
    mode: String,
}

/// Which enforcer a reconcile metric is about.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EnforcerLabel {
    /// `networkpolicy` or `istio`.
    pub enforcer: String,
}

impl EnforcerLabel {
    /// The label for `enforcer`.
    pub fn of(enforcer: &str) -> Self {
        EnforcerLabel {
            enforcer: enforcer.to_owned(),
        }
    }
}

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    /// How many CRDs the operator has put in force.
    pub crds_applied: Gauge,
    /// Failed attempts to apply the CRDs.
    pub crd_apply_errors: Counter,
    /// 1 when ready, 0 otherwise.
    pub ready: Gauge,
    /// Other EnforcementConfigs in the operator's namespace, ignored.
    pub settings_ignored: Gauge,
    /// Times the EnforcementConfig could not be read.
    pub settings_errors: Counter,
    /// Objects created or changed with server-side apply, per enforcer.
    pub objects_written: Family<EnforcerLabel, Counter>,
    /// Objects deleted (pruned), per enforcer.
    pub objects_deleted: Family<EnforcerLabel, Counter>,
    /// Writes skipped because the object already holds what would be written.
    pub writes_skipped: Family<EnforcerLabel, Counter>,
    /// Writes or deletions the API server refused (retried).
    pub write_errors: Family<EnforcerLabel, Counter>,
    /// Servers and clients rendered, per enforcer.
    pub subjects_rendered: Family<EnforcerLabel, Counter>,
    /// Objects ibac wrote that someone else deleted or changed, written again.
    pub drift_corrections: Family<EnforcerLabel, Counter>,
    /// Servers and clients waiting to be written, per enforcer.
    pub queue_depth: Family<EnforcerLabel, Gauge>,
    /// Batches of watch events the index has worked through.
    pub index_batches: Counter,
    /// Status updates written to ibac's and Otterize's objects.
    pub status_writes: Counter,
    /// Status updates the API server refused (retried).
    pub status_errors: Counter,
    mode: Family<ModeLabel, Gauge>,
}

impl Metrics {
    /// A fresh set of metrics.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("ibac_operator");
        let crds_applied = Gauge::default();
        let crd_apply_errors = Counter::default();
        let ready = Gauge::default();
        let settings_ignored = Gauge::default();
        let settings_errors = Counter::default();
        let mode = Family::<ModeLabel, Gauge>::default();
        let build = Family::<VersionLabel, Gauge>::default();
        build
            .get_or_create(&VersionLabel {
                version: env!("CARGO_PKG_VERSION").to_owned(),
            })
            .set(1);
        registry.register("build_info", "The running version", build);
        registry.register(
            "crds_applied",
            "CustomResourceDefinitions in force",
            crds_applied.clone(),
        );
        registry.register(
            "crd_apply_errors",
            "Failed attempts to apply the CustomResourceDefinitions",
            crd_apply_errors.clone(),
        );
        registry.register(
            "ready",
            "1 when the operator is ready, 0 otherwise",
            ready.clone(),
        );
        registry.register(
            "settings_ignored",
            "EnforcementConfigs in the operator's namespace that it ignores",
            settings_ignored.clone(),
        );
        registry.register(
            "settings_errors",
            "Times the EnforcementConfig could not be read (the last good one stays)",
            settings_errors.clone(),
        );
        registry.register("mode", "1 for the enforcement mode in force", mode.clone());
        let objects_written = Family::<EnforcerLabel, Counter>::default();
        let objects_deleted = Family::<EnforcerLabel, Counter>::default();
        let writes_skipped = Family::<EnforcerLabel, Counter>::default();
        let write_errors = Family::<EnforcerLabel, Counter>::default();
        let subjects_rendered = Family::<EnforcerLabel, Counter>::default();
        let drift_corrections = Family::<EnforcerLabel, Counter>::default();
        let queue_depth = Family::<EnforcerLabel, Gauge>::default();
        let index_batches = Counter::default();
        let status_writes = Counter::default();
        let status_errors = Counter::default();
        registry.register(
            "objects_written",
            "Objects created or changed with server-side apply",
            objects_written.clone(),
        );
        registry.register(
            "objects_deleted",
            "Objects ibac wrote and then deleted",
            objects_deleted.clone(),
        );
        registry.register(
            "writes_skipped",
            "Writes skipped because the object already holds what would be written",
            writes_skipped.clone(),
        );
        registry.register(
            "write_errors",
            "Writes the API server refused (retried)",
            write_errors.clone(),
        );
        registry.register(
            "subjects_rendered",
            "Servers and clients rendered",
            subjects_rendered.clone(),
        );
        registry.register(
            "drift_corrections",
            "Objects ibac wrote that someone else deleted or changed, written again",
            drift_corrections.clone(),
        );
        registry.register(
            "queue_depth",
            "Servers and clients waiting to be written",
            queue_depth.clone(),
        );
        registry.register(
            "index_batches",
            "Batches of watch events worked through",
            index_batches.clone(),
        );
        registry.register(
            "status_writes",
            "Status updates written",
            status_writes.clone(),
        );
        registry.register(
            "status_errors",
            "Status updates the API server refused (retried)",
            status_errors.clone(),
        );
        Metrics {
            registry,
            crds_applied,
            crd_apply_errors,
            ready,
            settings_ignored,
            settings_errors,
            objects_written,
            objects_deleted,
            writes_skipped,
            write_errors,
            subjects_rendered,
            drift_corrections,
            queue_depth,
            index_batches,
            status_writes,
            status_errors,
            mode,
        }
    }

    /// Records the mode in force.
    pub fn set_mode(&self, mode: &str) {
        self.mode.clear();
        self.mode
            .get_or_create(&ModeLabel {
                mode: mode.to_owned(),
            })
            .set(1);
    }

    fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

#[derive(Clone)]
struct Admin {
    readiness: watch::Receiver<Readiness>,
    metrics: Arc<Metrics>,
}

/// The admin routes.
pub fn router(readiness: watch::Receiver<Readiness>, metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics_text))
        .with_state(Admin { readiness, metrics })
}

async fn ready(State(admin): State<Admin>) -> impl IntoResponse {
    match &*admin.readiness.borrow() {
        Readiness::Ready => (StatusCode::OK, "ready\n".to_owned()),
        Readiness::NotReady(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
    }
}

async fn metrics_text(State(admin): State<Admin>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        admin.metrics.encode(),
    )
}
