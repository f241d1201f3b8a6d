//! Loading documents for commands, with every problem printed the same way.

use std::path::PathBuf;

use ibac_model::{Document, DocumentError, Namespace, ParseOptions, Parsed};
use ibac_policy::{NoFacts, Policy};

use crate::output::Output;

/// The arguments of the commands that read documents and report on them
/// (`decide`, `policy`), declared once so that both spell them alike.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output format
    #[arg(
        short = 'o',
        long,
        value_enum,
        default_value = "table",
        env = "IBAC_OUTPUT"
    )]
    pub output: Output,
    /// Documents: files or directories; `-` reads stdin
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
}

/// Parse options from the global flags.
pub fn options(namespace: &str) -> anyhow::Result<ParseOptions> {
    let default_namespace = Namespace::parse(namespace)
        .map_err(|e| anyhow::anyhow!("`{namespace}` is not a valid namespace: {e}"))?;
    Ok(ParseOptions {
        default_namespace,
        ..ParseOptions::default()
    })
}

/// Prints document errors, one per line, place first.
pub fn report(errors: &[DocumentError]) {
    let mut text = String::new();
    for e in errors {
        text.push_str(&format!("error: {e}\n"));
    }
    eprint!("{text}");
}

/// Prints a count of documents of other API groups, which were passed over.
pub fn report_skipped(parsed: &Parsed) {
    if !parsed.skipped.is_empty() {
        eprintln!(
            "note: skipped {} document{} of other kinds (first: {} at {})",
            parsed.skipped.len(),
            if parsed.skipped.len() == 1 { "" } else { "s" },
            parsed.skipped[0].kind,
            parsed.skipped[0].at
        );
    }
}

/// Reads documents and builds the policy; any problem fails the command, so
/// that no answer is ever given on part of the input.
pub fn load_policy(
    paths: &[PathBuf],
    namespace: &str,
) -> anyhow::Result<Result<(Vec<Document>, Policy), usize>> {
    let parsed = ibac_load::read_documents(paths, &options(namespace)?);
    report_skipped(&parsed);
    if !parsed.errors.is_empty() {
        report(&parsed.errors);
        return Ok(Err(parsed.errors.len()));
    }
    let (policy, errors) = Policy::build(parsed.documents.clone(), &NoFacts);
    if !errors.is_empty() {
        report(&errors);
        return Ok(Err(errors.len()));
    }
    Ok(Ok((parsed.documents, policy)))
}

/// "1 problem" / "3 problems".
pub fn problems(n: usize) -> String {
    format!("{n} problem{}", if n == 1 { "" } else { "s" })
}
