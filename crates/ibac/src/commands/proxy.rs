//! `ibac proxy`: the mTLS sidecar in front of a workload. It gets its SVID by
//! attestation (a join token the first time; the key and SVID are kept on
//! disk so a restart needs none), watches its policy files, and enforces.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::ValueEnum;
use http::header::HeaderName;
use ibac_identity::attest::{IssuerClient, WorkloadIdentity};
use ibac_model::{DocumentKind, Namespace, WorkloadId};
use ibac_proxy::{
    ControlPlane, ControlReports, ControlSource, Discovery, FileDiscovery, FilePolicySource,
    InboundConfig, JsonlSink, Limits, NoReports, PolicySource, Protocol, Proxy, ProxyConfig,
    ProxyIdentity, ReportSink, StaticDiscovery,
};

use crate::commands::ca::shutdown_signal;
use crate::exit;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Parse HTTP/1.1 and HTTP/2; decide per request
    Http,
    /// Opaque TCP; decide per connection
    Tcp,
}

/// Arguments of `ibac proxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The control plane (`ibac up`), https://host:port: it issues the SVID,
    /// sends the policy and where workloads are, and takes the reports
    #[arg(long, env = "IBAC_CONTROL", required_unless_present = "issuer")]
    control: Option<String>,
    /// The issuer, https://host:port (without a control plane)
    #[arg(long, env = "IBAC_ISSUER")]
    issuer: Option<String>,
    /// Where the proxy keeps its key and SVID (0600)
    #[arg(long, env = "IBAC_IDENTITY_DIR")]
    identity_dir: PathBuf,
    /// A join token: needed the first time and after the SVID has expired
    #[arg(long, env = "IBAC_JOIN_TOKEN")]
    token: Option<String>,
    /// Policy documents, files or directories, watched for changes
    #[arg(long = "policy", value_name = "PATH", env = "IBAC_POLICY")]
    policy: Vec<PathBuf>,
    /// Where workloads run: a file of `workloads: {name.namespace: host:port}`
    #[arg(long, env = "IBAC_DISCOVERY")]
    discovery: Option<PathBuf>,
    /// Inbound: where callers connect (mTLS)
    #[arg(long, requires = "app", env = "IBAC_LISTEN")]
    listen: Option<SocketAddr>,
    /// Inbound: the local app
    #[arg(long, requires = "listen", env = "IBAC_APP")]
    app: Option<SocketAddr>,
    /// Inbound: the port intents name (default: the app's)
    #[arg(long, env = "IBAC_PORT")]
    port: Option<u16>,
    /// Inbound: HTTP (per request) or TCP (per connection)
    #[arg(long, value_enum, default_value = "http", env = "IBAC_PROTOCOL")]
    protocol: Mode,
    /// Inbound: also accept plaintext, as unauthenticated callers (gradual rollout)
    #[arg(long, env = "IBAC_PERMISSIVE")]
    permissive: bool,
    /// Outbound: an HTTP proxy for the app (set HTTP_PROXY to it)
    #[arg(long, env = "IBAC_OUTBOUND_HTTP")]
    outbound_http: Option<SocketAddr>,
    /// Outbound: a TCP listener per target, `name.namespace=127.0.0.1:port`
    #[arg(long, value_parser = target_listener, env = "IBAC_OUTBOUND_TCP", value_delimiter = ' ')]
    outbound_tcp: Vec<(WorkloadId, SocketAddr)>,
    /// Metrics, /healthz and /readyz
    #[arg(long, env = "IBAC_ADMIN")]
    admin: Option<SocketAddr>,
    /// Where reports go (JSON lines)
    #[arg(long, env = "IBAC_REPORTS")]
    reports: Option<PathBuf>,
    /// How often reports are sent
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration, env = "IBAC_REPORT_INTERVAL")]
    report_interval: Duration,
    /// The header that carries the verified SPIFFE ID to the app
    #[arg(long, default_value = "x-ibac-peer-id", env = "IBAC_IDENTITY_HEADER")]
    identity_header: HeaderName,
    /// How long open connections may finish on shutdown
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "IBAC_DRAIN")]
    drain: Duration,
    /// Longest wait for a request's headers
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration, env = "IBAC_HEADER_TIMEOUT")]
    header_timeout: Duration,
    /// Longest a connection may stay silent
    #[arg(long, default_value = "120s", value_parser = humantime::parse_duration, env = "IBAC_IDLE_TIMEOUT")]
    idle_timeout: Duration,
    /// Worker threads. One is the sidecar default: it serves thousands of
    /// requests a second and leaves the other cores to the app
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256), env = "IBAC_PROXY_THREADS")]
    threads: u16,
    /// Refuse every policy state holding a document of this kind, as a
    /// proxy older than its control plane would (for testing rollouts)
    #[arg(long, hide = true, env = "IBAC_PROXY_REFUSE_KIND", value_parser = document_kind)]
    refuse_kind: Option<DocumentKind>,
}

fn document_kind(text: &str) -> Result<DocumentKind, String> {
    DocumentKind::parse(text).ok_or_else(|| format!("`{text}` is not a document kind"))
}

fn target_listener(text: &str) -> Result<(WorkloadId, SocketAddr), String> {
    let (target, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: write name.namespace=127.0.0.1:port"))?;
    let target = WorkloadId::parse(target).map_err(|e| format!("`{target}`: {e}"))?;
    let addr = addr
        .parse()
        .map_err(|_| format!("`{addr}`: write ip:port"))?;
    Ok((target, addr))
}

/// Runs the command.
pub fn run(args: &Args, namespace: &str) -> anyhow::Result<u8> {
    if args.listen.is_none() && args.outbound_http.is_none() && args.outbound_tcp.is_empty() {
        bail!("nothing to do: give --listen/--app (inbound), --outbound-http or --outbound-tcp");
    }
    if args.listen.is_some() && args.policy.is_empty() && args.control.is_none() {
        bail!(
            "an inbound proxy needs its policy: give --control (the control plane) or --policy (files or directories of documents)"
        );
    }
    if args.control.is_some() && !args.policy.is_empty() {
        bail!("give either --control or --policy: the policy comes from one place");
    }
    let namespace = Namespace::parse(namespace).map_err(|e| anyhow!("`{namespace}`: {e}"))?;
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(usize::from(args.threads))
            .enable_all()
            .build()?
    };
    runtime.block_on(async {
        let issuer = args
            .issuer
            .as_deref()
            .or(args.control.as_deref())
            .ok_or_else(|| anyhow!("give --control or --issuer"))?;
        let client = IssuerClient::new(issuer)?;
        let identity =
            WorkloadIdentity::obtain(&args.identity_dir, client, args.token.as_deref()).await?;
        tokio::spawn(identity.clone().run_renewals());
        tracing::info!(id = %identity.id(), "identity ready");
        let control = match &args.control {
            Some(url) => {
                let plane = ControlPlane::new(url, &identity)?;
                let cache = args.identity_dir.join("control-state.json");
                Some((
                    Arc::new(ControlSource::spawn_refusing(
                        plane.clone(),
                        namespace.clone(),
                        Some(cache),
                        args.refuse_kind,
                    )),
                    plane,
                ))
            }
            None => None,
        };
        if let Some((source, _)) = &control {
            // Listen once the control plane's state (or the cached one) is
            // here: before that every call would be refused or unroutable.
            let mut first = source.subscribe();
            if first.borrow().is_none() {
                tracing::info!("waiting for the control plane's policy");
                first
                    .wait_for(Option::is_some)
                    .await
                    .map_err(|_| anyhow!("the control plane's policy source stopped"))?;
            }
        }
        let policy: Arc<dyn PolicySource> = match &control {
            Some((source, _)) => source.clone(),
            None => Arc::new(FilePolicySource::spawn(
                args.policy.clone(),
                namespace,
                Duration::from_secs(1),
            )),
        };
        let discovery: Arc<dyn Discovery> = match (&args.discovery, &control) {
            (Some(path), _) => {
                Arc::new(FileDiscovery::spawn(path.clone(), Duration::from_secs(1))?)
            }
            (None, Some((source, _))) => source.clone(),
            (None, None) => Arc::new(StaticDiscovery::default()),
        };
        let sink: Arc<dyn ReportSink> = match (&args.reports, &control) {
            (Some(path), _) => Arc::new(
                JsonlSink::open(path).with_context(|| format!("cannot open {}", path.display()))?,
            ),
            (None, Some((_, plane))) => Arc::new(ControlReports::spawn(plane.clone())),
            (None, None) => Arc::new(NoReports),
        };
        let config = ProxyConfig {
            inbound: match (args.listen, args.app) {
                (Some(listen), Some(app)) => Some(InboundConfig {
                    listen,
                    app,
                    port: args.port,
                    protocol: match args.protocol {
                        Mode::Http => Protocol::Http,
                        Mode::Tcp => Protocol::Tcp,
                    },
                    permissive: args.permissive,
                }),
                _ => None,
            },
            outbound_http: args.outbound_http,
            outbound_tcp: args.outbound_tcp.clone(),
            admin: args.admin,
            identity_header: args.identity_header.clone(),
            limits: Limits {
                header_timeout: args.header_timeout,
                idle_timeout: args.idle_timeout,
                ..Limits::default()
            },
            report_interval: args.report_interval,
            drain: args.drain,
        };
        let proxy = Proxy::bind(
            config,
            ProxyIdentity::attested(identity.clone()),
            policy.as_ref(),
            discovery,
            sink,
        )
        .await?;
        let a = proxy.addresses();
        let mut lines = vec![format!("ibac proxy for {}", identity.id())];
        if let Some(inbound) = a.inbound {
            lines.push(format!(
                "  inbound  https://{inbound} → {}",
                args.app.map(|a| a.to_string()).unwrap_or_default()
            ));
        }
        if let Some(out) = a.outbound_http {
            lines.push(format!("  outbound HTTP_PROXY=http://{out}"));
        }
        for (target, addr) in &a.outbound_tcp {
            lines.push(format!("  outbound {addr} → {target}"));
        }
        if let Some(admin) = a.admin {
            lines.push(format!("  admin    http://{admin}/metrics"));
        }
        crate::output::write_stdout(&(lines.join("\n") + "\n"))?;
        proxy.run(shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
