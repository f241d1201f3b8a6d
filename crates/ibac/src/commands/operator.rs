//! `ibac operator`: ibac on Kubernetes. Runs in a pod (the chart's
//! Deployment) or out of cluster with a kubeconfig; installs or updates ibac's
//! CRDs on start and serves `/metrics`, `/healthz` and `/readyz`.
//! `ibac operator crds` prints those CRDs (what the chart's `crds/` holds).

use std::net::SocketAddr;
use std::path::PathBuf;

use ibac_model::yaml::to_yaml_stream;

use crate::commands::ca::shutdown_signal;
use crate::exit;

/// Arguments of `ibac operator`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Print the CustomResourceDefinitions the operator installs, as YAML
    Crds(CrdsArgs),
}

#[derive(Debug, clap::Args)]
struct CrdsArgs {
    /// Print only their names, one a line
    #[arg(long, env = "IBAC_CRD_NAMES")]
    names: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// A kubeconfig file (default: KUBECONFIG, ~/.kube/config, or the pod's
    /// service account)
    #[arg(long, env = "IBAC_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use (default: its current one)
    #[arg(long, env = "IBAC_KUBE_CONTEXT")]
    context: Option<String>,
    /// Where to serve /metrics, /healthz and /readyz
    #[arg(long, env = "IBAC_ADMIN_ADDR", default_value = "0.0.0.0:9090")]
    admin_addr: SocketAddr,
    /// Where to serve the webhooks over HTTPS (none when not given)
    #[arg(long, env = "IBAC_WEBHOOK_ADDR")]
    webhook_addr: Option<SocketAddr>,
    /// The URL the API server reaches the webhooks at (https://host:port),
    /// when no Service routes to them (the operator runs out of cluster); the
    /// operator then writes the webhook configuration itself
    #[arg(long, env = "IBAC_WEBHOOK_URL", requires = "webhook_addr")]
    webhook_url: Option<String>,
    /// The Service in the operator's namespace that routes to the webhooks
    /// (in a pod; the chart sets it); the operator writes the webhook
    /// configuration for it
    #[arg(
        long,
        env = "IBAC_WEBHOOK_SERVICE",
        requires = "webhook_addr",
        conflicts_with = "webhook_url"
    )]
    webhook_service: Option<String>,
    /// The operator's own namespace, which its webhooks leave alone and where
    /// it reads its settings
    #[arg(long, env = "IBAC_OPERATOR_NAMESPACE", default_value = "ibac-system")]
    operator_namespace: String,
    /// The EnforcementConfig in the operator's namespace that holds the
    /// settings (the chart renders it); any other there is ignored
    #[arg(long, env = "IBAC_SETTINGS", default_value = "ibac")]
    settings: String,
    /// Act only on documents in these namespaces (comma-separated; default:
    /// every namespace), as Otterize's `watchedNamespaces`
    #[arg(long, env = "IBAC_WATCHED_NAMESPACES", value_delimiter = ',')]
    watched_namespaces: Vec<String>,
    /// The trust domain of the cluster's Istio mesh, in the principals of
    /// the AuthorizationPolicies ibac writes
    #[arg(long, env = "IBAC_ISTIO_TRUST_DOMAIN", default_value = "cluster.local")]
    istio_trust_domain: String,
    /// This replica's name, in the Events it writes (the chart sets the pod's
    /// name)
    #[arg(long, env = "IBAC_POD_NAME")]
    instance: Option<String>,
}

/// Runs the command; the operator itself until SIGTERM or Ctrl-C.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    match &args.command {
        Some(Command::Crds(crds)) => print_crds(crds),
        None => operate(&args.run),
    }
}

fn print_crds(args: &CrdsArgs) -> anyhow::Result<u8> {
    let crds = ibac_operator::crd::all();
    let text = if args.names {
        crds.iter()
            .filter_map(|c| c.metadata.name.as_deref())
            .map(|n| format!("{n}\n"))
            .collect()
    } else {
        to_yaml_stream(&crds)?
    };
    crate::output::write_stdout(&text)?;
    Ok(exit::OK)
}

fn operate(args: &RunArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let config = ibac_operator::Config {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        admin_addr: args.admin_addr,
        webhook_addr: args.webhook_addr,
        webhook_url: args.webhook_url.clone(),
        webhook_service: args.webhook_service.clone(),
        namespace: args.operator_namespace.clone(),
        settings: args.settings.clone(),
        watched_namespaces: args.watched_namespaces.clone(),
        istio_trust_domain: args.istio_trust_domain.clone(),
        instance: args.instance.clone(),
    };
    runtime.block_on(ibac_operator::run(config, shutdown_signal()))?;
    Ok(exit::OK)
}
