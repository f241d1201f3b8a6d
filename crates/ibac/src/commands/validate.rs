//! `ibac validate PATH...`: every error in every document, or a count of good ones.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ibac_model::{Document, DocumentError, TargetKind};
use ibac_policy::{NoFacts, Policy};

use crate::docs;
use crate::exit;
use crate::output::write_stdout;

/// Arguments of `ibac validate`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Files or directories (walked for .yaml, .yml, .json); `-` reads stdin
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Runs the command.
pub fn run(args: &Args, namespace: &str) -> anyhow::Result<u8> {
    let parsed = ibac_load::read_documents(&args.paths, &docs::options(namespace)?);
    docs::report_skipped(&parsed);
    warn_empty_sql_operations(&parsed.documents);
    let mut errors = parsed.errors.clone();
    let (_, compile_errors) = Policy::build(parsed.documents.clone(), &NoFacts);
    errors.extend(compile_errors);
    if !errors.is_empty() {
        docs::report(&errors);
        let files: std::collections::BTreeSet<_> =
            errors.iter().map(DocumentError::origin).collect();
        eprintln!(
            "error: {} in {} file{}",
            docs::problems(errors.len()),
            files.len(),
            if files.len() == 1 { "" } else { "s" }
        );
        return Ok(exit::INPUT);
    }
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in &parsed.documents {
        *kinds.entry(doc.kind().as_str()).or_default() += 1;
    }
    let breakdown: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let total = parsed.documents.len();
    write_stdout(&format!(
        "ok: {total} document{} valid{}\n",
        if total == 1 { "" } else { "s" },
        if breakdown.is_empty() {
            String::new()
        } else {
            format!(" ({})", breakdown.join(", "))
        }
    ))?;
    Ok(exit::OK)
}

/// SQL privileges without operations are valid, but mean different things:
/// Otterize grants ALL, ibac's render refuses them. Say so before either runs.
fn warn_empty_sql_operations(documents: &[Document]) {
    let mut text = String::new();
    for doc in documents {
        let Document::ClientIntents(ci) = doc else {
            continue;
        };
        for target in &ci.targets {
            let TargetKind::Sql(sql) = &target.kind else {
                continue;
            };
            for p in sql.privileges.iter().filter(|p| p.operations.is_empty()) {
                text.push_str(&format!(
                    "warning: {}: no operations on `{}`{}: Otterize reads that as ALL, and `ibac render sql` refuses it; list the operations, or write ALL\n",
                    p.at,
                    p.database,
                    p.table.as_ref().map(|t| format!(" table `{t}`")).unwrap_or_default()
                ));
            }
        }
    }
    eprint!("{text}");
}
