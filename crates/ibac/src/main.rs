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
3 would-be-blocked, 4 blocked, 5 diff: discovered and declared intents differ.";

/// The command line.
#[derive(Debug, Parser)]
#[command(name = "ibac", version, about = ABOUT, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Namespace of documents that name none (default: `default`); for
    /// `network-mapper`, the clients' namespaces to show, comma-separated
    #[arg(short = 'n', long, global = true, env = "IBAC_NAMESPACE")]
    namespace: Option<String>,
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
    /// Start the local control plane (and workloads, or the demo shop)
    Up(commands::up::Args),
    /// Create or update documents in the control plane, all or nothing
    Apply(commands::remote::FilesArgs),
    /// Delete the documents files name from the control plane, all or nothing
    Delete(commands::remote::FilesArgs),
    /// Show intents, protected servers, workloads, the access graph or the audit log
    Get(commands::remote::GetArgs),
    /// Register or remove a workload (register prints its join token)
    Workload(commands::remote::WorkloadArgs),
    /// Protect a server: only declared calls get through
    Protect(commands::remote::ProtectArgs),
    /// Remove a server's ProtectedService (the mode or its namespace may still protect it)
    Unprotect(commands::remote::UnprotectArgs),
    /// Set the enforcement mode: defaultShadow or defaultActive
    Mode(commands::remote::ModeArgs),
    /// Make API tokens, optionally limited to namespaces
    Token(commands::remote::TokenArgs),
    /// What the network mapper discovered: list, export as ClientIntents, draw, reset
    #[command(name = "network-mapper", alias = "mapper")]
    NetworkMapper(commands::mapper::MapperArgs),
    /// Compare discovered calls with declared intents (exit 5 when they differ)
    Diff(commands::mapper::DiffArgs),
    /// One service of the demo shop (what `ibac up --demo` runs)
    #[command(name = "demo-service", hide = true)]
    DemoService(commands::demo_service::Args),
    /// Check documents: every error, with file, line and column
    Validate(commands::validate::Args),
    /// Decide one call: allowed, would-be-blocked or blocked, and why
    Decide(commands::decide::Args),
    /// Show the policy: each server, whether it is protected, who may call it
    Policy(commands::policy::Args),
    /// Render Kubernetes enforcers: NetworkPolicies, Istio, Linkerd, Kafka, SQL
    Render(commands::render::Args),
    /// Rewrite documents in ibac's or Otterize's current format
    Convert(commands::convert::Args),
    /// The certificate authority: SPIFFE identities for workloads
    Ca(commands::ca::Args),
    /// Run ibac on Kubernetes: install its CRDs, serve /metrics, /healthz, /readyz
    Operator(commands::operator::Args),
    /// The mTLS sidecar: authorize every call by intent
    Proxy(Box<commands::proxy::Args>),
    /// Serve a workload's SVID over the SPIFFE Workload API, kept renewed
    Agent(commands::agent::Args),
    /// Print a shell completion script
    Completions(commands::completions::Args),
}

fn init_logging(cli: &Cli) {
    let filter = tracing_subscriber::EnvFilter::try_new(&cli.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour only on a terminal: supervised workloads log to files under
    // `ibac-data/logs/`, which must read as plain text.
    use std::io::IsTerminal;
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
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
    let namespace = cli.namespace.clone().unwrap_or_else(|| "default".into());
    let result = match &cli.command {
        Command::Up(args) => commands::up::run(args),
        Command::Apply(args) => commands::remote::apply(args, &namespace),
        Command::Delete(args) => commands::remote::delete(args, &namespace),
        Command::Get(args) => commands::remote::get(args),
        Command::Workload(args) => commands::remote::workload(args),
        Command::Protect(args) => commands::remote::protect(args),
        Command::Unprotect(args) => commands::remote::unprotect(args),
        Command::Mode(args) => commands::remote::mode(args),
        Command::Token(args) => commands::remote::token(args),
        Command::NetworkMapper(args) => commands::mapper::run(args, cli.namespace.as_deref()),
        Command::Diff(args) => commands::mapper::diff_cmd(args, &namespace),
        Command::DemoService(args) => commands::demo_service::run(args),
        Command::Validate(args) => commands::validate::run(args, &namespace),
        Command::Decide(args) => commands::decide::run(args, &namespace),
        Command::Policy(args) => commands::policy::run(args, &namespace),
        Command::Render(args) => commands::render::run(args, &namespace),
        Command::Convert(args) => commands::convert::run(args, cli.namespace.as_deref()),
        Command::Ca(args) => commands::ca::run(args),
        Command::Agent(args) => commands::agent::run(args),
        Command::Operator(args) => commands::operator::run(args),
        Command::Proxy(args) => commands::proxy::run(args, &namespace),
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

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// Every flag has its `IBAC_*` twin, as the README promises.
    #[test]
    fn every_flag_has_an_environment_twin() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || matches!(id, "help" | "version") {
                    continue;
                }
                // The agent's socket takes the SPIFFE standard's variable.
                match arg.get_env().map(|e| e.to_string_lossy()) {
                    Some(env) if env.starts_with("IBAC_") || env == "SPIFFE_ENDPOINT_SOCKET" => {}
                    _ => missing.push(format!("{path} --{}", arg.get_long().unwrap_or(id))),
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "ibac", &mut missing);
        assert!(
            missing.is_empty(),
            "flags without an IBAC_* twin:\n{}",
            missing.join("\n")
        );
    }
}
