//! The operator's settings: the `ibac.dev/v1` EnforcementConfig of the given
//! name in the operator's own namespace (the one the Helm chart renders from
//! its values). Any other EnforcementConfig there is reported and ignored;
//! one that fails to read keeps the last good settings in force.

use std::sync::Arc;

use futures_util::StreamExt as _;
use ibac_model::{Document, EnforcementConfig, ParseOptions, parse_source};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::watch;

use crate::admin::Metrics;

/// The EnforcementConfig kind as the API server serves it.
fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk(crate::crd::IBAC_GROUP, "v1", "EnforcementConfig"),
        "enforcementconfigs",
    )
}

/// Reads one stored EnforcementConfig as `ibac validate` reads a file.
fn read(object: &DynamicObject, namespace: &str) -> Result<EnforcementConfig, String> {
    let json = serde_json::to_string(object).map_err(|e| e.to_string())?;
    let mut options = ParseOptions::default();
    if let Ok(ns) = ibac_model::Namespace::parse(namespace) {
        options.default_namespace = ns;
    }
    let name = object.metadata.name.clone().unwrap_or_default();
    let parsed = parse_source(&format!("enforcementconfig/{name}").into(), &json, &options);
    if let Some(error) = parsed.errors.first() {
        return Err(error.to_string());
    }
    match parsed.documents.into_iter().next() {
        Some(Document::EnforcementConfig(config)) => Ok(config),
        _ => Err(format!("EnforcementConfig `{name}` holds no settings")),
    }
}

/// Follows the settings until the process ends, publishing them on `out`.
/// Starts from ibac's defaults (shadow mode) while there are none.
pub async fn follow(
    client: kube::Client,
    namespace: String,
    name: String,
    out: watch::Sender<Option<Arc<EnforcementConfig>>>,
    metrics: Arc<Metrics>,
) {
    let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource());
    let mut events = watcher(api.clone(), watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        if let Err(e) = event {
            tracing::warn!(error = %e, "cannot watch the EnforcementConfigs");
            continue;
        }
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(error = %e, "cannot list the EnforcementConfigs");
                continue;
            }
        };
        let mut ignored = 0;
        let mut chosen = None;
        for object in &list.items {
            if object.metadata.name.as_deref() == Some(name.as_str()) {
                chosen = Some(object);
            } else {
                ignored += 1;
                tracing::warn!(
                    ignored = object.metadata.name.as_deref().unwrap_or_default(),
                    used = %name,
                    "a second EnforcementConfig in namespace `{namespace}` is ignored: the operator reads `{name}` only"
                );
            }
        }
        metrics.settings_ignored.set(ignored);
        match chosen.map(|object| read(object, &namespace)) {
            Some(Ok(config)) => {
                metrics.set_mode(config.mode.as_str());
                out.send_replace(Some(Arc::new(config)));
            }
            Some(Err(e)) => {
                metrics.settings_errors.inc();
                tracing::warn!(error = %e, "the EnforcementConfig is invalid; the last good settings stay in force");
            }
            None => {
                metrics.set_mode(ibac_model::Mode::default().as_str());
                out.send_replace(None);
            }
        }
    }
}
