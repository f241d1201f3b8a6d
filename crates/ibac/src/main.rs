//! `ibac`: intent-based access control for services.
//!
//! Every subcommand lives in its own module under `commands`; this file only
//! parses flags, sets up logging and turns results into exit statuses.

// The command line is the one place that prints for people.
#![allow(clippy::print_stderr)]

mod commands;
mod docs;
mod exit;
mod output;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

const ABOUT: &str = "Intent-based access control for services.

Client teams declare the calls their code makes (ClientIntents); server teams
protect a server with one small file (ProtectedService); ibac makes it so:
only intended calls get through. Everything starts in shadow mode, which
reports what would be blocked.";

const EXIT_CODES: &str = "Exit status: 0 success (decide: allowed), 1 invalid input, 2 usage error,
3 would-be-blocked, 4 blocked.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "ibac", version, about = ABOUT, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Namespace of documents that name none
    #[arg(
        short = 'n',
        long,
        global = true,
        env = "IBAC_NAMESPACE",
        default_value = "default"
    )]
    namespace: String,
    /// Log format: `human` for people, `json` for machines
    #[arg(
        long,
        global = true,
        env = "IBAC_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    log_format: LogFormat,
    /// Log filter, e.g. `info` or `ibac=debug`
    #[arg(long, global = true, env = "IBAC_LOG", default_value = "warn")]
    log: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check documents: every error, with file, line and column
    Validate(commands::validate::Args),
    /// Decide one call: allowed, would-be-blocked or blocked, and why
    Decide(commands::decide::Args),
    /// Show the policy: each server, whether it is protected, who may call it
    Policy(commands::policy::Args),
    /// Render Kubernetes enforcers: NetworkPolicies, Istio, Kafka ACLs, SQL grants
    Render(commands::render::Args),
    /// Rewrite documents in ibac's or Otterize's current format
    Convert(commands::convert::Args),
    /// The certificate authority: SPIFFE identities for workloads
    Ca(commands::ca::Args),
    /// The mTLS sidecar: authorize every call by intent
    Proxy(commands::proxy::Args),
    /// Serve a workload's SVID over the SPIFFE Workload API, kept renewed
    Agent(commands::agent::Args),
    /// Print a shell completion script
    Completions(commands::completions::Args),
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Human => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return exit::code(if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            });
        }
    };
    init_logging(&cli);
    let result = match &cli.command {
        Command::Validate(args) => commands::validate::run(args, &cli.namespace),
        Command::Decide(args) => commands::decide::run(args, &cli.namespace),
        Command::Policy(args) => commands::policy::run(args, &cli.namespace),
        Command::Render(args) => commands::render::run(args, &cli.namespace),
        Command::Convert(args) => commands::convert::run(args, &cli.namespace),
        Command::Ca(args) => commands::ca::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Proxy(args) => commands::proxy::run(args, &cli.namespace),
        Command::Completions(args) => commands::completions::run(args, &mut Cli::command()),
    };
    match result {
        Ok(status) => exit::code(status),
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::code(exit::INPUT)
        }
    }
}
