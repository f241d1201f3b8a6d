//! `ibac network-mapper list|export|visualize|reset` and `ibac diff`: what
//! the control plane discovered, shown, exported as ClientIntents, drawn,
//! and compared with declared intents.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use ibac_api::DocumentInfo;
use ibac_api::graph::GraphView;
use ibac_control::api::CallOut;
use ibac_mapper::diff::diff;
use ibac_mapper::export::{ExportOptions, export, to_json, to_yaml};
use ibac_mapper::{CallKey, CallRecord};
use ibac_model::{Document, Namespace, WorkloadId};

use super::remote::{Connect, block_on};
use crate::exit;
use crate::output::{Output, print_data, write_stdout};

/// Arguments of `ibac network-mapper`.
#[derive(Debug, clap::Args)]
pub struct MapperArgs {
    #[command(subcommand)]
    command: MapperCommand,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac network-mapper …`
#[derive(Debug, clap::Subcommand)]
pub enum MapperCommand {
    /// Each client and what it calls
    List(ListArgs),
    /// Discovered calls as ClientIntents, one document per client
    Export(ExportArgs),
    /// Draw who calls whom, left to right (SVG or PNG)
    Visualize(VisualizeArgs),
    /// Forget everything discovered
    Reset,
}

/// Which calls (the namespaces come from the global `-n a,b`).
#[derive(Debug, clap::Args)]
pub struct Filter {
    #[arg(skip)]
    namespaces: Vec<String>,
    /// Only calls seen since: a duration back from now (`1h`) or RFC 3339
    #[arg(env = "IBAC_SINCE", long)]
    since: Option<String>,
}

/// Arguments of `list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    filter: Filter,
}

/// Output of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// A YAML stream, `---` between documents.
    Yaml,
    /// A JSON array of ClientIntents.
    Json,
}

/// Single file or one file per client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputType {
    /// One file (or stdout).
    SingleFile,
    /// `<workload>.<namespace>.yaml` per client, in the `-o` directory.
    Dir,
}

/// Arguments of `export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    #[command(flatten)]
    filter: Filter,
    /// Only clients that call this server (name.namespace), with all their calls
    #[arg(env = "IBAC_EXPORT_SERVER", long)]
    server: Option<String>,
    /// Output format
    #[arg(env = "IBAC_EXPORT_FORMAT", long, value_enum, default_value = "yaml")]
    format: ExportFormat,
    /// Where to write (default: stdout)
    #[arg(env = "IBAC_EXPORT_OUTPUT", short = 'o', long = "output")]
    output: Option<PathBuf>,
    /// One file, or a directory of one file per client
    #[arg(
        env = "IBAC_EXPORT_OUTPUT_TYPE",
        long,
        value_enum,
        default_value = "single-file"
    )]
    output_type: OutputType,
    /// Also list HTTP paths and methods (ID-like path segments become `*`)
    #[arg(env = "IBAC_WITH_HTTP", long)]
    with_http: bool,
}

/// Picture format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PictureFormat {
    /// Scalable vector graphics.
    Svg,
    /// A bitmap.
    Png,
}

/// Arguments of `visualize`.
#[derive(Debug, clap::Args)]
pub struct VisualizeArgs {
    /// Where to write the picture
    #[arg(
        env = "IBAC_VISUALIZE_OUTPUT",
        short = 'o',
        long = "output",
        required = true
    )]
    output: PathBuf,
    /// Picture format (default: from the file name, else png)
    #[arg(env = "IBAC_VISUALIZE_FORMAT", long, value_enum)]
    format: Option<PictureFormat>,
    /// Draw a saved graph (`ibac get graph -o json`, `-` for stdin) instead
    /// of the control plane's graph now
    #[arg(env = "IBAC_VISUALIZE_FILENAME", short = 'f', long = "filename")]
    filename: Option<PathBuf>,
}

/// The graph to draw: a saved one, or the control plane's now.
fn graph_to_draw(args: &VisualizeArgs, connect: &Connect) -> anyhow::Result<GraphView> {
    let Some(path) = &args.filename else {
        let client = connect.client()?;
        return block_on(async { Ok(client.get("/v1/graph").await?) });
    };
    let (text, name) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .context("cannot read the graph from stdin")?;
        (text, "stdin".to_string())
    } else {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        (text, path.display().to_string())
    };
    serde_json::from_str(&text).map_err(|e| {
        anyhow!("{name} is not an access graph as `ibac get graph -o json` writes it: {e}")
    })
}

fn fetch(connect: &Connect, filter: &Filter) -> anyhow::Result<Vec<(CallKey, CallRecord)>> {
    let client = connect.client()?;
    let mut query = Vec::new();
    if let Some(since) = &filter.since {
        query.push(format!("since={}", urlencode(since)));
    }
    if !filter.namespaces.is_empty() {
        for n in &filter.namespaces {
            Namespace::parse(n).map_err(|e| anyhow!("`{n}`: {e}"))?;
        }
        query.push(format!("namespaces={}", filter.namespaces.join(",")));
    }
    let path = if query.is_empty() {
        "/v1/mapper/calls".to_string()
    } else {
        format!("/v1/mapper/calls?{}", query.join("&"))
    };
    let calls: Vec<CallOut> = block_on(async { Ok(client.get(&path).await?) })?;
    Ok(calls.into_iter().map(|c| (c.key, c.record)).collect())
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Runs `ibac network-mapper …`.
pub fn run(args: &MapperArgs, namespaces: Option<&str>) -> anyhow::Result<u8> {
    let connect = &args.connect;
    let namespaces = ibac_api::namespace_list(namespaces);
    match &args.command {
        MapperCommand::List(args) => {
            let filter = Filter {
                namespaces: namespaces.clone(),
                since: args.filter.since.clone(),
            };
            let calls = fetch(connect, &filter)?;
            match ibac_mapper::list::list(&calls, &[]) {
                Some(text) => write_stdout(&text)?,
                None => eprintln!("No connections found."),
            }
        }
        MapperCommand::Export(args) => return export_cmd(args, connect, namespaces),
        MapperCommand::Visualize(args) => {
            let picture = ibac_mapper::draw::Picture::layout(&graph_to_draw(args, connect)?);
            let format =
                args.format
                    .unwrap_or(match args.output.extension().and_then(|e| e.to_str()) {
                        Some("svg") => PictureFormat::Svg,
                        _ => PictureFormat::Png,
                    });
            let bytes = match format {
                PictureFormat::Svg => picture.svg().into_bytes(),
                PictureFormat::Png => picture
                    .png()
                    .map_err(|e| anyhow!("cannot draw a PNG: {e}"))?,
            };
            std::fs::write(&args.output, bytes)
                .with_context(|| format!("cannot write {}", args.output.display()))?;
            eprintln!(
                "drew {} workloads and {} calls to {}",
                picture.nodes(),
                picture.edges(),
                args.output.display()
            );
        }
        MapperCommand::Reset => {
            let client = connect.client()?;
            block_on(async { Ok(client.delete("/v1/mapper/calls").await?) })?;
            eprintln!("forgot every discovered call");
        }
    }
    Ok(exit::OK)
}

fn export_cmd(args: &ExportArgs, connect: &Connect, namespaces: Vec<String>) -> anyhow::Result<u8> {
    let filter = Filter {
        namespaces,
        since: args.filter.since.clone(),
    };
    let calls = fetch(connect, &filter)?;
    let server = args
        .server
        .as_deref()
        .map(|s| {
            WorkloadId::parse(s).map_err(|e| anyhow!("`{s}`: {e}; write it as name.namespace"))
        })
        .transpose()?;
    let options = ExportOptions {
        server,
        namespaces: Vec::new(),
        with_http: args.with_http,
    };
    let docs = export(&calls, &options);
    if docs.is_empty() {
        eprintln!("No connections found.");
        return Ok(exit::OK);
    }
    let render = |d: &[ibac_mapper::export::ExportedIntents]| match args.format {
        ExportFormat::Yaml => to_yaml(d),
        ExportFormat::Json => to_json(d),
    };
    match (args.output_type, &args.output) {
        (OutputType::SingleFile, None) => write_stdout(&render(&docs)?)?,
        (OutputType::SingleFile, Some(path)) => {
            std::fs::write(path, render(&docs)?)
                .with_context(|| format!("cannot write {}", path.display()))?;
            eprintln!("wrote {} ClientIntents to {}", docs.len(), path.display());
        }
        (OutputType::Dir, None) => return Err(anyhow!("--output-type dir needs -o DIRECTORY")),
        (OutputType::Dir, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for doc in &docs {
                let name = match args.format {
                    ExportFormat::Yaml => doc.file_name(),
                    ExportFormat::Json => doc.file_name().replace(".yaml", ".json"),
                };
                let path = dir.join(name);
                std::fs::write(&path, render(std::slice::from_ref(doc))?)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            eprintln!("wrote {} files to {}", docs.len(), dir.display());
        }
    }
    Ok(exit::OK)
}

/// Arguments of `ibac diff`.
#[derive(Debug, clap::Args)]
pub struct DiffArgs {
    /// The declared intents: files or directories; `-` reads stdin
    #[arg(env = "IBAC_FILENAME", short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    /// Only calls seen since: a duration back from now (`7d`) or RFC 3339
    #[arg(env = "IBAC_SINCE", long)]
    since: Option<String>,
    /// Compare every client, not only those the files declare intents for
    #[arg(env = "IBAC_ALL_CLIENTS", long)]
    all_clients: bool,
    /// Also fail (exit 5) on declared intents no call used
    #[arg(env = "IBAC_STRICT", long)]
    strict: bool,
    /// Output format
    #[arg(env = "IBAC_OUTPUT", short, long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac diff`: exit 0 when discovered and declared agree, 5 when a
/// discovered call would break once its server is protected (or, with
/// `--strict`, a declared intent went unused).
pub fn diff_cmd(args: &DiffArgs, namespace: &str) -> anyhow::Result<u8> {
    let connect = &args.connect;
    // The files alone must compile; then they are decided over the stored policy.
    let docs = match crate::docs::load_policy(&args.files, namespace)? {
        Ok((docs, _)) => docs,
        Err(_) => return Ok(exit::INPUT),
    };
    let scope: Option<BTreeSet<WorkloadId>> = (!args.all_clients).then(|| {
        docs.iter()
            .filter_map(|d| match d {
                Document::ClientIntents(ci) => Some(ci.workload.id.clone()),
                _ => None,
            })
            .collect()
    });
    let calls = fetch(
        connect,
        &Filter {
            namespaces: Vec::new(),
            since: args.since.clone(),
        },
    )?;
    // Decide as the graph does: the control plane's policy (its protections
    // and settings) with these files applied over it, so a call to a
    // protected server that no intent allows is `blocked`.
    let client = connect.client()?;
    let stored: Vec<DocumentInfo> = block_on(async { Ok(client.get("/v1/documents").await?) })?;
    let policy = match over_stored(&stored, &docs) {
        Ok(p) => p,
        Err(errors) => {
            crate::docs::report(&errors);
            return Ok(exit::INPUT);
        }
    };
    let result = diff(&policy, &calls, scope.as_ref());
    let graph: GraphView = block_on(async { Ok(client.get("/v1/graph").await?) })?;
    let not_in_force: Vec<String> = graph
        .edges
        .iter()
        .filter(|e| scope.as_ref().is_none_or(|s| s.contains(&e.edge.client)))
        .filter_map(|e| {
            let m = e.mismatch.as_ref()?;
            Some(format!(
                "  - {} → {}: {}\n",
                e.edge.client, e.edge.server, m.message
            ))
        })
        .collect();
    if args.output != Output::Table {
        print_data(&result, args.output)?;
    } else {
        let mut text = String::new();
        if result.would_break.is_empty() {
            text.push_str("Every discovered call is declared.\n");
        } else {
            text.push_str("Discovered calls no intent allows (they break once their servers are protected):\n");
            for u in &result.would_break {
                let what = match (&u.call.method, &u.call.path) {
                    (Some(m), Some(p)) => format!("{m} {p}"),
                    _ => format!("{} port {}", u.call.protocol.as_str(), u.call.port),
                };
                text.push_str(&format!(
                    "  - {} → {}: {what} ({}, seen {} times)\n",
                    u.call.client,
                    u.call.server,
                    u.verdict.as_str(),
                    u.count
                ));
            }
        }
        if !result.unused.is_empty() {
            text.push_str("Declared intents no discovered call used:\n");
            for u in &result.unused {
                text.push_str(&format!("  - {} → {}\n", u.client, u.server));
            }
        }
        if !not_in_force.is_empty() {
            text.push_str("Calls whose observed verdicts disagree with the policy in force (an enforcer is not following):\n");
            for line in &not_in_force {
                text.push_str(line);
            }
        }
        write_stdout(&text)?;
    }
    let failed = !result.would_break.is_empty() || (args.strict && !result.unused.is_empty());
    Ok(if failed {
        exit::DIFF
    } else if !not_in_force.is_empty() {
        exit::NOT_ENFORCED
    } else {
        exit::OK
    })
}

/// The control plane's stored documents with `docs` applied over them.
fn over_stored(
    stored: &[DocumentInfo],
    docs: &[Document],
) -> Result<ibac_policy::Policy, Vec<ibac_model::DocumentError>> {
    let mut base = Vec::new();
    for d in stored
        .iter()
        .filter(|d| d.status != ibac_api::DocumentState::Failed)
    {
        let name = format!("control plane:{} {}/{}", d.kind, d.namespace, d.name);
        let parsed = ibac_model::parse_source(
            &ibac_model::SourceName::from(name.as_str()),
            &d.source,
            &ibac_model::ParseOptions::default(),
        );
        base.extend(parsed.documents);
    }
    let (policy, _) = ibac_policy::Policy::build(base, &ibac_policy::NoFacts);
    policy.apply(docs.iter().cloned(), &ibac_policy::NoFacts)
}
