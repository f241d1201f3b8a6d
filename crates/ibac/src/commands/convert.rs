//! `ibac convert`: documents rewritten in one current format.

use std::path::PathBuf;

use clap::ValueEnum;
use ibac_model::encode::{Flavor, encode_all, encode_all_as_written};
use ibac_model::yaml::to_yaml_stream;

use crate::docs;
use crate::exit;
use crate::output::write_stdout;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Target {
    /// ibac.dev/v1
    Ibac,
    /// k8s.otterize.com/v2beta1
    Otterize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

/// Arguments of `ibac convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The format to write
    #[arg(long, value_enum, default_value = "ibac", env = "IBAC_CONVERT_TO")]
    to: Target,
    /// YAML (documents separated by `---`) or JSON (an array)
    #[arg(long, value_enum, default_value = "yaml", env = "IBAC_FORMAT")]
    format: Format,
    /// Documents: files or directories; `-` reads stdin
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// Runs the command. A document that names no namespace is written with the
/// one `-n` gives, and with none when `-n` is not given (not `default`): it
/// then goes wherever `kubectl apply -n` sends it, as the original did.
pub fn run(args: &Args, namespace: Option<&str>) -> anyhow::Result<u8> {
    let options = docs::options(namespace.unwrap_or("default"))?;
    let parsed = ibac_load::read_documents(&args.paths, &options);
    docs::report_skipped(&parsed);
    if !parsed.errors.is_empty() {
        docs::report(&parsed.errors);
        eprintln!(
            "error: {}; nothing converted",
            docs::problems(parsed.errors.len())
        );
        return Ok(exit::INPUT);
    }
    let flavor = match args.to {
        Target::Ibac => Flavor::Ibac,
        Target::Otterize => Flavor::Otterize,
    };
    let encoded = if namespace.is_some() {
        encode_all(&parsed.documents, flavor)
    } else {
        encode_all_as_written(&parsed.documents, flavor)
    };
    let encoded = match encoded {
        Ok(encoded) => encoded,
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            eprintln!("error: {}; nothing converted", docs::problems(errors.len()));
            return Ok(exit::INPUT);
        }
    };
    let text = match args.format {
        Format::Yaml => to_yaml_stream(&encoded)?,
        Format::Json => serde_json::to_string_pretty(&encoded)? + "\n",
    };
    write_stdout(&text)?;
    Ok(exit::OK)
}
