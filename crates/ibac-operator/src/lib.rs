//! ibac on Kubernetes: the operator behind `ibac operator`.
//!
//! The API server is the store; this crate talks to it through kube-rs and
//! keeps Kubernetes out of the pure crates (model, policy, render). Today it
//! installs ibac's CRDs and serves its admin port; the webhooks, the index and
//! the reconcilers build on it.

pub mod admin;
pub mod crd;
mod error;
pub mod install;
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
    /// The operator's own namespace, which its webhooks leave alone.
    pub namespace: String,
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

    // The webhooks answer before anything is applied, so that the API server
    // never calls a webhook that is not there yet.
    let mut webhook_ca = None;
    let webhooks = match config.webhook_addr {
        Some(addr) => {
            let host = match &config.webhook_url {
                Some(url) => webhook_host(url)?,
                None => addr.ip().to_string(),
            };
            let tls = webhook::tls::generate(&[host])?;
            webhook_ca = Some(tls.ca_pem.clone());
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| Error::Listen { addr, source })?;
            tracing::info!(addr = %listener.local_addr().unwrap_or(addr), "serving the webhooks");
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(ibac_identity::https::serve(
                listener,
                tls.server,
                webhook::router(),
                async {
                    let _ = stopped.await;
                },
            ));
            Some((stop, task))
        }
        None => None,
    };

    let work = async {
        let crds = crd::all();
        let mut delay = Duration::from_millis(500);
        loop {
            match install::apply_crds(&client, &crds).await {
                Ok(()) => break,
                Err(e) => {
                    metrics.crd_apply_errors.inc();
                    tracing::warn!(error = %e, retry_in = ?delay, "cannot put the CRDs in force");
                    readiness.send_replace(Readiness::NotReady(e.to_string()));
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        metrics
            .crds_applied
            .set(i64::try_from(crds.len()).unwrap_or(i64::MAX));
        if let (Some(url), Some(ca)) = (&config.webhook_url, &webhook_ca) {
            let configuration = webhook::config::validating(url, ca, &config.namespace);
            let mut delay = Duration::from_millis(500);
            while let Err(e) = install::apply_webhook(&client, &configuration).await {
                tracing::warn!(error = %e, retry_in = ?delay, "cannot configure the webhooks");
                readiness.send_replace(Readiness::NotReady(e.to_string()));
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(30));
            }
        }
        metrics.ready.set(1);
        readiness.send_replace(Readiness::Ready);
        tracing::info!(
            crds = crds.len(),
            "CustomResourceDefinitions in force; ready"
        );
        std::future::pending::<()>().await;
    };
    tokio::select! {
        () = work => {}
        () = shutdown => {}
    }
    let _ = stop.send(());
    let _ = server.await;
    if let Some((stop, task)) = webhooks {
        let _ = stop.send(());
        let _ = task.await;
    }
    Ok(())
}
