//! Why the operator could not start or do its work.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the operator could not start or do its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kubeconfig given could not be read.
    #[error("cannot read the kubeconfig `{}`: {source}", path.display())]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        source: Box<kube::config::KubeconfigError>,
    },
    /// No Kubernetes configuration was found.
    #[error(
        "cannot find a Kubernetes configuration: {0} (give --kubeconfig, set KUBECONFIG, or run in a pod)"
    )]
    NoConfig(Box<kube::config::InferConfigError>),
    /// The client could not be built from the configuration.
    #[error("cannot set up the Kubernetes client: {0}")]
    Client(Box<kube::Error>),
    /// The admin port could not be opened.
    #[error("cannot listen on `{addr}` for /metrics, /healthz and /readyz: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A CRD could not be applied.
    #[error("cannot apply CustomResourceDefinition `{name}`: {source}")]
    ApplyCrd {
        /// The CRD's name.
        name: String,
        /// The API server's answer.
        source: Box<kube::Error>,
    },
    /// The webhook's certificate could not be made.
    #[error("cannot make the webhook's certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The webhook's TLS configuration was refused.
    #[error("cannot set up TLS for the webhooks: {0}")]
    Tls(rustls::Error),
    /// The webhooks' CA could not be read or kept.
    #[error(
        "cannot keep the webhooks' CA in Secret `ibac-webhook-ca` of namespace `{namespace}`: {reason}"
    )]
    WebhookSecret {
        /// The operator's namespace.
        namespace: String,
        /// Why.
        reason: String,
    },
    /// The webhook URL is not usable.
    #[error("`{0}` is not a webhook URL: give https://host:port")]
    WebhookUrl(String),
    /// The webhook configuration could not be applied.
    #[error("cannot apply ValidatingWebhookConfiguration `{name}`: {source}")]
    ApplyWebhook {
        /// Its name.
        name: String,
        /// The API server's answer.
        source: Box<kube::Error>,
    },
    /// A CRD was applied but is not served.
    #[error("CustomResourceDefinition `{name}` is not served: {reason}")]
    WaitCrd {
        /// The CRD's name.
        name: String,
        /// Why.
        reason: String,
    },
}
