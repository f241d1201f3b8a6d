//! `ibac up`: the local control plane, and optionally workloads to run
//! behind proxies (`-f topology.yaml`) or the demo shop (`--demo`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, anyhow};
use ibac_control::server::files;
use ibac_control::{Options, Settings, start};
use ibac_local::supervise::{Supervisor, plan};
use ibac_local::topology::Topology;
use tokio::sync::watch;

use crate::commands::ca::shutdown_signal;
use crate::exit;
use crate::output::write_stdout;

/// Arguments of `ibac up`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where the store, the CA, logs and identities live
    #[arg(long, env = "IBAC_DATA_DIR", default_value = "ibac-data")]
    data_dir: PathBuf,
    /// Where the API listens (HTTPS)
    #[arg(long, env = "IBAC_LISTEN", default_value = "127.0.0.1:7443")]
    listen: SocketAddr,
    /// The trust domain of a new CA
    #[arg(long, env = "IBAC_TRUST_DOMAIN")]
    trust_domain: Option<String>,
    /// Workloads to run, each behind its own proxy
    #[arg(
        short = 'f',
        long = "filename",
        env = "IBAC_TOPOLOGY",
        conflicts_with = "demo"
    )]
    topology: Option<PathBuf>,
    /// Run the demo shop: 14 services behind proxies, with a load generator
    #[arg(env = "IBAC_DEMO", long)]
    demo: bool,
    /// How long discovered calls are kept after they were last seen
    #[arg(long, env = "IBAC_RETENTION", default_value = "30d", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Distinct HTTP paths kept per client, server and port
    #[arg(long, env = "IBAC_MAX_PATHS", default_value_t = 100)]
    max_paths: usize,
    /// A proxy that has not reported what it enforces for this long is
    /// silent (proxies report every third of it)
    #[arg(long, env = "IBAC_PROXY_SILENCE", default_value = "30s", value_parser = humantime::parse_duration)]
    proxy_silence: Duration,
    /// Where the access graph page listens (plain HTTP; keep it on loopback)
    #[arg(
        long,
        env = "IBAC_UI",
        default_value = "127.0.0.1:7780",
        conflicts_with = "no_ui"
    )]
    ui: SocketAddr,
    /// Serve the access graph page only on the API's HTTPS port
    #[arg(env = "IBAC_NO_UI", long)]
    no_ui: bool,
    /// How often to scan local sockets for calls that bypass the proxies (0s: never)
    #[arg(long, env = "IBAC_SCAN_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    scan_interval: Duration,
}

fn next_steps(url: &str) -> String {
    format!(
        "
The demo shop runs in namespace {ns}: 14 services, each behind an ibac proxy,
in shadow mode — nothing is blocked, everything is reported. In another
terminal, in this directory:

  ibac get graph
      every call is would-be-blocked: nothing is declared yet
  ibac network-mapper export --server productcatalogservice.{ns} > catalog-clients.yaml
      the ClientIntents of everything that calls productcatalogservice
  ibac apply -f catalog-clients.yaml
      those calls are declared: allowed
  ibac protect productcatalogservice.{ns}
      now only declared calls get through to it; the rest are blocked
  ibac get graph

Open the access graph link above in a browser to watch it happen live. The
API is at {url}; the admin token is in the data directory. Ctrl-C stops
everything.
",
        ns = ibac_local::demo::NAMESPACE
    )
}

/// What a restarted demo found in its store, or `None` for a fresh one:
/// the banner then says where the tutorial stands, not how it starts.
fn found_state(control: &ibac_control::Control) -> Option<String> {
    use ibac_model::{Document, DocumentKind};
    let snapshot = control.snapshot();
    let docs = snapshot.policy.documents();
    let count = |kind| docs.iter().filter(|(k, _, _)| k.kind == kind).count();
    let intents = count(DocumentKind::ClientIntents);
    let protected: Vec<String> = docs
        .iter()
        .filter_map(|(_, d, _)| match d {
            Document::ProtectedService(p) => Some(p.workload.id.to_string()),
            _ => None,
        })
        .collect();
    let mode = docs.iter().find_map(|(_, d, _)| match d {
        Document::EnforcementConfig(c) => Some(c.mode),
        _ => None,
    });
    if intents == 0 && protected.is_empty() && mode.is_none() {
        return None;
    }
    Some(format!(
        "
The demo shop runs again with the state it had:
  {intents} ClientIntents, {} protected {}{}, mode {}.
`ibac get graph` shows where it stands; `ibac delete` and `ibac unprotect`
undo steps, or start over with a fresh data directory.
",
        protected.len(),
        if protected.len() == 1 {
            "server"
        } else {
            "servers"
        },
        if protected.is_empty() {
            String::new()
        } else {
            format!(" ({})", protected.join(", "))
        },
        mode.unwrap_or_default()
    ))
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let topology = match (&args.topology, args.demo) {
        (Some(path), _) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            Some(Topology::parse(&path.display().to_string(), &text).map_err(|e| anyhow!(e))?)
        }
        (None, true) => Some(ibac_local::demo::topology()),
        (None, false) => None,
    };
    let exe = std::env::current_exe().context("cannot find the ibac binary")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (server_stop, server_stopped) = watch::channel(false);
        let mut stopped = server_stopped.clone();
        let running = start(
            Options {
                data_dir: args.data_dir.clone(),
                listen: args.listen,
                trust_domain: args.trust_domain.clone(),
                settings: Settings {
                    retention: args.retention,
                    max_paths: args.max_paths,
                    silent_after: args.proxy_silence.max(Duration::from_secs(3)),
                },
                scan_every: (!args.scan_interval.is_zero()).then_some(args.scan_interval),
                ui: (!args.no_ui).then_some(args.ui),
            },
            async move {
                let _ = stopped.wait_for(|s| *s).await;
            },
        )
        .await?;
        let mut banner = format!(
            "ibac control plane on {}\n  data:         {} (store, CA, logs)\n  admin token:  {}{}\n",
            running.url,
            args.data_dir.display(),
            args.data_dir.join(files::ADMIN_TOKEN).display(),
            if running.new_admin_token.is_some() { " (new)" } else { "" },
        );
        if let Some(url) = &running.ui_url {
            banner.push_str(&format!("  access graph: {url}\n"));
        }
        let (workloads_stop, workloads_stopped) = watch::channel(false);
        let supervisor = match &topology {
            Some(t) => {
                let planned = plan(t)?;
                banner.push_str(&format!(
                    "  workloads:    {} (logs in {})\n",
                    planned.len(),
                    args.data_dir.join("logs").display()
                ));
                if args.demo {
                    let text = ibac_model::yaml::to_yaml(t)?;
                    std::fs::write(args.data_dir.join("demo-topology.yaml"), text)?;
                    match found_state(&running.control) {
                        None => banner.push_str(&next_steps(&running.url)),
                        Some(state) => banner.push_str(&state),
                    }
                }
                let sup = Supervisor::new(
                    running.control.clone(),
                    exe,
                    running.url.clone(),
                    workloads_stopped,
                );
                Some(tokio::spawn(sup.run(planned)))
            }
            None => None,
        };
        write_stdout(&banner)?;
        shutdown_signal().await;
        eprintln!("stopping…");
        let _ = workloads_stop.send(true);
        if let Some(sup) = supervisor {
            match sup.await {
                Ok(Err(e)) => eprintln!("error: {e:#}"),
                Err(e) => eprintln!("error: {e}"),
                Ok(Ok(())) => {}
            }
        }
        let _ = server_stop.send(true);
        running.wait().await;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
