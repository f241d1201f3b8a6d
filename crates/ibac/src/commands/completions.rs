//! `ibac completions SHELL`: a completion script for bash, zsh, fish, elvish or PowerShell.

use clap_complete::Shell;

use crate::exit;

/// Arguments of `ibac completions`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The shell
    shell: Shell,
}

/// Runs the command.
pub fn run(args: &Args, command: &mut clap::Command) -> anyhow::Result<u8> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, command, "ibac", &mut out);
    crate::output::write_stdout(&String::from_utf8_lossy(&out))?;
    Ok(exit::OK)
}
