//! `ibac decide`: one call's verdict and the reason for it.

use anyhow::anyhow;
use ibac_model::WorkloadId;
use ibac_model::http::{RequestMethod, normalize};
use ibac_policy::{Request, Verdict};
use serde::Serialize;

use crate::docs;
use crate::exit;
use crate::output::{Output, print_data, write_stdout};

/// Arguments of `ibac decide`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The caller, `name.namespace`
    #[arg(
        long,
        value_name = "NAME.NS",
        required_unless_present = "unauthenticated",
        env = "IBAC_FROM"
    )]
    from: Option<WorkloadId>,
    /// Decide for a caller that presents no identity
    #[arg(env = "IBAC_UNAUTHENTICATED", long, conflicts_with = "from")]
    unauthenticated: bool,
    /// The server, `name.namespace`
    #[arg(long, value_name = "NAME.NS", env = "IBAC_TO")]
    to: WorkloadId,
    /// The server port called
    #[arg(long, env = "IBAC_PORT")]
    port: Option<u16>,
    /// HTTP method (with --path); without it, a connection is decided (L4)
    #[arg(long, requires = "path", env = "IBAC_METHOD")]
    method: Option<String>,
    /// HTTP path, normalized before matching (with --method)
    #[arg(long, requires = "method", env = "IBAC_PATH")]
    path: Option<String>,
    #[command(flatten)]
    report: docs::ReportArgs,
}

#[derive(Serialize)]
struct DecisionOut {
    client: Option<String>,
    server: String,
    request: String,
    verdict: Verdict,
    reason: String,
    protected: bool,
    protection: String,
    widened: bool,
}

fn request(args: &Args) -> anyhow::Result<Request> {
    let http = match (&args.method, &args.path) {
        (Some(method), Some(path)) => {
            let method = RequestMethod::parse(method)
                .ok_or_else(|| anyhow!("`{method}` is not an HTTP method"))?;
            let path = normalize(path)
                .map_err(|e| anyhow!("`{path}` is not a valid request path: {e}"))?;
            Some(ibac_policy::HttpRequest { method, path })
        }
        _ => None,
    };
    Ok(Request {
        port: args.port,
        http,
    })
}

/// Runs the command.
pub fn run(args: &Args, namespace: &str) -> anyhow::Result<u8> {
    let request = request(args)?;
    let (_, policy) = match docs::load_policy(&args.report.paths, namespace)? {
        Ok(loaded) => loaded,
        Err(n) => {
            eprintln!("error: {}; no decision made", docs::problems(n));
            return Ok(exit::INPUT);
        }
    };
    let decision = policy.decide(args.from.as_ref(), &args.to, &request);
    let client = args.from.as_ref().map(ToString::to_string);
    let out = DecisionOut {
        client: client.clone(),
        server: args.to.to_string(),
        request: request.to_string(),
        verdict: decision.verdict,
        reason: decision.reason.to_string(),
        protected: decision.protection.is_protected(),
        protection: decision.protection.to_string(),
        widened: decision.widened(),
    };
    match args.report.output {
        Output::Table => write_stdout(&format!(
            "{}\n  call:   {} → {}: {}\n  reason: {}\n  server: {}\n",
            out.verdict,
            client.as_deref().unwrap_or("(unauthenticated)"),
            out.server,
            out.request,
            out.reason,
            out.protection
        ))?,
        other => print_data(&out, other)?,
    }
    Ok(match decision.verdict {
        Verdict::Allowed => exit::OK,
        Verdict::WouldBeBlocked => exit::WOULD_BE_BLOCKED,
        Verdict::Blocked => exit::BLOCKED,
    })
}
