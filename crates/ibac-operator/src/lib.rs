//! ibac on Kubernetes: the operator behind `ibac operator`.
//!
//! The API server is the store; this crate talks to it through kube-rs and
//! keeps Kubernetes out of the pure crates (model, policy, render). Layered as
//! linkerd's policy controller is: the runtime here (CRDs, webhooks, admin
//! port, settings), the [`index`] that owns the cluster model and the policy,
//! the [`reconcile`] writers (one per enforcer) and the [`status`] writer,
//! wired together by the [`controller`] loop.

pub mod admin;
pub mod controller;
pub mod crd;
mod error;
pub mod index;
pub mod install;
pub mod reconcile;
pub mod settings;
pub mod status;
pub mod watches;
pub mod webhook;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio::sync::watch;

pub use admin::{Metrics, Readiness};
pub use error::Error;

/// How the operator reaches the API server and where it serves.
#[derive(Clone, Debug)]
pub struct Config {
    /// A kubeconfig file; without one, `KUBECONFIG`, `~/.kube/config` or the
    /// pod's service account, as kubectl would.
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (its current one when `None`).
    pub context: Option<String>,
    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub admin_addr: SocketAddr,
    /// Where the webhooks are served (HTTPS); none when `None`.
    pub webhook_addr: Option<SocketAddr>,
    /// The URL the API server reaches the webhooks at, `https://host:port`,
    /// when that is not a Service (an operator out of cluster). The operator
    /// then writes the webhook configuration itself.
    pub webhook_url: Option<String>,
    /// The Service in the operator's namespace that routes to the webhooks
    /// (in a pod); used when there is no `webhook_url`. The operator then
    /// writes the webhook configuration for that Service.
    pub webhook_service: Option<String>,
    /// The operator's own namespace, which its webhooks leave alone and
    /// where its settings are.
    pub namespace: String,
    /// The name of the EnforcementConfig in `namespace` that holds the
    /// settings (the chart renders it); others there are ignored.
    pub settings: String,
    /// The namespaces whose documents the operator acts on (Otterize's
    /// `watchedNamespaces`); empty: every namespace. The webhooks check
    /// only these.
    pub watched_namespaces: Vec<String>,
    /// The trust domain of the cluster's Istio mesh.
    pub istio_trust_domain: String,
    /// This replica's name, in Events.
    pub instance: Option<String>,
}

/// The host of `https://host:port`, for the serving certificate.
fn webhook_host(url: &str) -> Result<String, Error> {
    let uri: http::Uri = url.parse().map_err(|_| Error::WebhookUrl(url.to_owned()))?;
    match (uri.scheme_str(), uri.host()) {
        (Some("https"), Some(host)) => Ok(host.trim_matches(['[', ']']).to_owned()),
        _ => Err(Error::WebhookUrl(url.to_owned())),
    }
}

/// A client for the API server `config` names.
pub async fn client(config: &Config) -> Result<kube::Client, Error> {
    // rustls picks its provider from the process default: ring, never aws-lc.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kube_config =
        match &config.kubeconfig {
            Some(path) => {
                let file = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
                    path: path.clone(),
                    source: Box::new(source),
                })?;
                kube::Config::from_custom_kubeconfig(file, &options)
                    .await
                    .map_err(|source| Error::Kubeconfig {
                        path: path.clone(),
                        source: Box::new(source),
                    })?
            }
            None if config.context.is_some() => kube::Config::from_kubeconfig(&options)
                .await
                .map_err(|source| Error::Kubeconfig {
                    path: PathBuf::from("$KUBECONFIG"),
                    source: Box::new(source),
                })?,
            None => kube::Config::infer()
                .await
                .map_err(|e| Error::NoConfig(Box::new(e)))?,
        };
    kube::Client::try_from(kube_config).map_err(|e| Error::Client(Box::new(e)))
}

/// Runs the operator until `shutdown` completes: serves the admin port at
/// once, then puts the CRDs in force (retrying, and saying why on `/readyz`,
/// while the API server refuses them).
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
    let client = client(&config).await?;
    let metrics = Arc::new(Metrics::new());
    let (readiness, readiness_rx) = watch::channel(Readiness::NotReady(
        "the CustomResourceDefinitions are not applied yet".to_owned(),
    ));

    let listener = tokio::net::TcpListener::bind(config.admin_addr)
        .await
        .map_err(|source| Error::Listen {
            addr: config.admin_addr,
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(config.admin_addr);
    tracing::info!(addr = %bound, "serving /metrics, /healthz and /readyz");
    let app = admin::router(readiness_rx, metrics.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });

    let target = match (&config.webhook_url, &config.webhook_service) {
        (Some(url), _) => Some(webhook::config::Target::Url(url.clone())),
        (None, Some(name)) => Some(webhook::config::Target::Service {
            name: name.clone(),
            namespace: config.namespace.clone(),
        }),
        (None, None) => None,
    };
    let webhook_hosts = match (&config.webhook_addr, &target) {
        (Some(_), Some(webhook::config::Target::Url(url))) => Some(vec![webhook_host(url)?]),
        (Some(_), Some(webhook::config::Target::Service { name, namespace })) => Some(vec![
            format!("{name}.{namespace}.svc"),
            format!("{name}.{namespace}.svc.cluster.local"),
        ]),
        (Some(addr), None) => Some(vec![addr.ip().to_string()]),
        (None, _) => None,
    };
    let mut webhook_server = None;
    let work = async {
        // The webhooks answer before anything is applied that would send the
        // API server to them.
        let mut ca_bundle = None;
        if let (Some(addr), Some(hosts)) = (config.webhook_addr, &webhook_hosts) {
            let authority = retry(&readiness, || {
                webhook::secret::load_or_create(&client, &config.namespace)
            })
            .await;
            let tls = match authority.issue(hosts, time::OffsetDateTime::now_utc()) {
                Ok(tls) => tls,
                Err(e) => return Err(e),
            };
            ca_bundle = Some(tls.ca_pem.clone());
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen { addr, source })?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving the webhooks");
            // Renewed at half-life while the operator runs.
            let renewals = tokio::spawn(tls.rotation.clone().run());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(ibac_identity::https::serve(
                listener,
                tls.server,
                webhook::router(client.clone()),
                async move {
                    let _ = stopped.await;
                    renewals.abort();
                },
            ));
            webhook_server = Some((stop, task));
        }

        let mut crds = crd::all();
        // The conversion webhook answers once the CRDs point at it; without
        // webhooks the API server only relabels versions.
        if let (Some(target), Some(ca)) = (&target, &ca_bundle) {
            webhook::config::with_conversion(&mut crds, target, ca);
        }
        retry(&readiness, || async {
            let result = install::apply_crds(&client, &crds).await;
            if result.is_err() {
                metrics.crd_apply_errors.inc();
            }
            result
        })
        .await;
        metrics
            .crds_applied
            .set(i64::try_from(crds.len()).unwrap_or(i64::MAX));
        if let (Some(target), Some(ca)) = (&target, &ca_bundle) {
            let configuration = webhook::config::validating(
                target,
                ca,
                &config.namespace,
                &config.watched_namespaces,
            );
            retry(&readiness, || {
                install::apply_webhook(&client, &configuration)
            })
            .await;
        }
        let (settings, settings_rx) = watch::channel(None);
        tokio::spawn(settings::follow(
            client.clone(),
            config.namespace.clone(),
            config.settings.clone(),
            settings,
            metrics.clone(),
        ));
        let options = controller::Options {
            watched_namespaces: config.watched_namespaces.clone(),
            render: reconcile::RenderOptions {
                istio: ibac_render::IstioOptions {
                    trust_domain: config.istio_trust_domain.clone(),
                },
                ..reconcile::RenderOptions::default()
            },
            instance: config.instance.clone(),
            namespace: config.namespace.clone(),
        };
        tokio::spawn(controller::run(
            client.clone(),
            options,
            metrics.clone(),
            settings_rx,
        ));
        metrics.ready.set(1);
        readiness.send_replace(Readiness::Ready);
        tracing::info!(
            crds = crds.len(),
            "CustomResourceDefinitions in force; ready"
        );
        std::future::pending::<Result<(), Error>>().await
    };
    let result = tokio::select! {
        result = work => result,
        () = shutdown => Ok(()),
    };
    let _ = stop.send(());
    let _ = server.await;
    if let Some((stop, task)) = webhook_server {
        let _ = stop.send(());
        let _ = task.await;
    }
    result
}

/// Runs `attempt` until it succeeds, saying on `/readyz` why it has not yet
/// and waiting longer each time (up to 30 s).
async fn retry<T, F, Fut>(readiness: &watch::Sender<Readiness>, mut attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut delay = Duration::from_millis(500);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?delay, "not ready");
                readiness.send_replace(Readiness::NotReady(e.to_string()));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
    }
}
