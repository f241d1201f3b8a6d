//! `ibac agent`: gets a workload's SVID by attestation, keeps it renewed, and
//! serves it over the SPIFFE Workload API to the local processes registered
//! for it, so that SPIFFE-aware software works with ibac unchanged.

use std::path::PathBuf;

use anyhow::{Context, bail};
use ibac_identity::attest::{IssuerClient, WorkloadIdentity};
use ibac_identity::workload_api::{IdentitySource, Registration, Selector, WorkloadApi, serve};

use crate::commands::ca::shutdown_signal;
use crate::exit;

/// Arguments of `ibac agent`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The issuer, https://host:port
    #[arg(long, env = "IBAC_ISSUER")]
    issuer: String,
    /// Where the workload's key and SVID are kept (0600)
    #[arg(long, env = "IBAC_IDENTITY_DIR")]
    dir: PathBuf,
    /// A join token, needed the first time and after the SVID has expired
    #[arg(long, env = "IBAC_JOIN_TOKEN")]
    token: Option<String>,
    /// The Workload API socket
    #[arg(long, env = "SPIFFE_ENDPOINT_SOCKET", value_parser = socket_path)]
    socket: PathBuf,
    /// Serve only callers with this user id
    #[arg(long, env = "IBAC_AGENT_UID")]
    uid: Option<u32>,
    /// Serve only callers running this executable
    #[arg(long, env = "IBAC_AGENT_EXE")]
    exe: Option<PathBuf>,
}

/// Accepts `/path`, `unix:/path` and `unix:///path`.
fn socket_path(text: &str) -> Result<PathBuf, String> {
    let path = text
        .strip_prefix("unix://")
        .or_else(|| text.strip_prefix("unix:"))
        .unwrap_or(text);
    if path.starts_with('/') {
        Ok(PathBuf::from(path))
    } else {
        Err(format!(
            "`{text}`: give an absolute socket path (`unix:///run/ibac/agent.sock`)"
        ))
    }
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    if args.uid.is_none() && args.exe.is_none() {
        bail!("say which local processes get this identity: --uid, --exe, or both");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let client = IssuerClient::new(&args.issuer)?;
        let identity = WorkloadIdentity::obtain(&args.dir, client, args.token.as_deref()).await?;
        tokio::spawn(identity.clone().run_renewals());
        let api = WorkloadApi::new(vec![Registration {
            selector: Selector {
                uid: args.uid,
                exe: args.exe.clone(),
            },
            identity: IdentitySource {
                svid: identity.watch(),
                bundle: identity.bundle(),
                jwt: Some(identity.clone()),
            },
        }]);
        crate::output::write_stdout(&format!(
            "serving {} on the Workload API at unix://{}\n",
            identity.id(),
            args.socket.display()
        ))?;
        serve(&args.socket, api, shutdown_signal())
            .await
            .with_context(|| format!("cannot serve on {}", args.socket.display()))?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(exit::OK)
}
