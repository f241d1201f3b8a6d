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
        Metrics {
            registry,
            crds_applied,
            crd_apply_errors,
            ready,
            settings_ignored,
            settings_errors,
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
