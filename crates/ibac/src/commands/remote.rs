//! Commands that talk to a running control plane (`ibac up`): apply, delete,
//! get, workload, protect, mode, token.
//!
//! Where the control plane is and how to prove who you are come from flags,
//! their `IBAC_*` variables, or the data directory `ibac up` wrote
//! (`server.url`, `admin.token`, `bundle.pem`), in that order.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use http::Method;
use ibac_api::graph::GraphView;
use ibac_api::{
    ApplyRequest, AuditRow, DocumentInfo, ModeRequest, Outcome, ProtectRequest, Registered,
    Registration, SourceText, TokenRequest, TokenResponse, WorkloadInfo,
};
use ibac_control::client::{ApiClient, ClientError};
use ibac_control::server::files;
use ibac_model::WorkloadId;

use crate::commands::rollout::{WaitArgs, follow};
use crate::exit;
use crate::output::{Output, print_data, render, table, write_stdout};

/// How to reach the control plane.
#[derive(Debug, Clone, clap::Args)]
pub struct Connect {
    /// The control plane, https://host:port (default: what `ibac up` wrote
    /// to the data directory)
    #[arg(long, env = "IBAC_CONTROL", global = true)]
    control: Option<String>,
    /// An API token (default: the data directory's admin token)
    #[arg(long, env = "IBAC_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// The control plane's data directory
    #[arg(
        long,
        env = "IBAC_DATA_DIR",
        default_value = "ibac-data",
        global = true
    )]
    data_dir: PathBuf,
    /// The trust bundle to check the control plane with (default: the data directory's)
    #[arg(long, env = "IBAC_CA_BUNDLE", global = true)]
    ca_bundle: Option<PathBuf>,
    /// The trust domain (default: the data directory's CA, else ibac.local)
    #[arg(long, env = "IBAC_TRUST_DOMAIN", global = true)]
    trust_domain: Option<String>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

impl Connect {
    /// The control plane's URL.
    pub fn url(&self) -> String {
        self.control
            .clone()
            .or_else(|| read_trimmed(&self.data_dir.join(files::SERVER_URL)))
            .unwrap_or_else(|| "https://127.0.0.1:7443".into())
    }

    /// A client, or a message that says what is missing.
    pub fn client(&self) -> anyhow::Result<ApiClient> {
        let token = match &self.token {
            Some(t) => t.clone(),
            None => read_trimmed(&self.data_dir.join(files::ADMIN_TOKEN)).ok_or_else(|| {
                anyhow!(
                    "no API token: give --token (or IBAC_TOKEN), or run where `ibac up` keeps {}",
                    self.data_dir.join(files::ADMIN_TOKEN).display()
                )
            })?,
        };
        let bundle_path = self
            .ca_bundle
            .clone()
            .unwrap_or_else(|| self.data_dir.join(files::BUNDLE));
        let bundle = std::fs::read_to_string(&bundle_path).with_context(|| {
            format!(
                "cannot read the trust bundle {}: give --ca-bundle, or run where `ibac up` keeps its data",
                bundle_path.display()
            )
        })?;
        let td = match &self.trust_domain {
            Some(td) => td.clone(),
            None => ibac_identity::store::CaStore::open(&self.data_dir.join("ca"))
                .and_then(|s| s.trust_domain())
                .map(|td| td.to_string())
                .unwrap_or_else(|_| "ibac.local".into()),
        };
        Ok(ApiClient::new(&self.url(), &token, &bundle, &td)?)
    }
}

/// Runs an async body on a small runtime.
pub fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

/// Prints an API failure the way document errors are printed, and returns
/// the exit status.
pub fn report(e: ClientError) -> anyhow::Result<u8> {
    match e {
        ClientError::Api { body, .. } if !body.errors.is_empty() => {
            let mut text = String::new();
            for err in &body.errors {
                text.push_str(&format!("error: {}\n", err.message));
            }
            eprint!("{text}");
            eprintln!("error: nothing was changed");
            Ok(exit::INPUT)
        }
        other => Err(anyhow!(other)),
    }
}

/// The flags of the changes that can be checked without being made (`apply`,
/// `delete`, `unprotect`), declared once so that they read alike.
#[derive(Debug, clap::Args)]
pub struct CheckableChange {
    /// Check only; change nothing
    #[arg(long, env = "IBAC_DRY_RUN")]
    dry_run: bool,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    connect: Connect,
}

/// Arguments of `ibac apply` and `ibac delete`.
#[derive(Debug, clap::Args)]
pub struct FilesArgs {
    /// Files or directories of documents; `-` reads stdin
    #[arg(env = "IBAC_FILENAME", short = 'f', long = "filename", required = true)]
    files: Vec<PathBuf>,
    #[command(flatten)]
    change: CheckableChange,
}

fn sources(paths: &[PathBuf]) -> anyhow::Result<Result<Vec<SourceText>, u8>> {
    let (sources, errors) =
        ibac_load::read_sources(paths, ibac_model::yaml::Limits::default().max_bytes);
    if !errors.is_empty() {
        crate::docs::report(&errors);
        return Ok(Err(exit::INPUT));
    }
    Ok(Ok(sources
        .into_iter()
        .map(|s| SourceText {
            name: s.name.to_string(),
            text: s.text,
        })
        .collect()))
}

fn print_outcome(outcome: &Outcome, dry_run: bool) -> anyhow::Result<()> {
    let mut text = String::new();
    for d in &outcome.documents {
        text.push_str(&format!(
            "{} {}{}\n",
            d.document,
            d.outcome.as_str(),
            if dry_run { " (dry run)" } else { "" }
        ));
    }
    write_stdout(&text)
}

/// `ibac apply -f PATH...`
pub fn apply(args: &FilesArgs, namespace: &str) -> anyhow::Result<u8> {
    send_files(args, namespace, "/v1/apply")
}

/// `ibac delete -f PATH...`
pub fn delete(args: &FilesArgs, namespace: &str) -> anyhow::Result<u8> {
    send_files(args, namespace, "/v1/delete")
}

/// Reads the files and sends them to `path` (apply or delete).
fn send_files(args: &FilesArgs, namespace: &str, path: &str) -> anyhow::Result<u8> {
    let sources = match sources(&args.files)? {
        Ok(s) => s,
        Err(code) => return Ok(code),
    };
    let flags = &args.change;
    let client = flags.connect.client()?;
    let body = ApplyRequest {
        sources,
        namespace: Some(namespace.to_string()),
        dry_run: flags.dry_run,
    };
    change(
        &client,
        Method::POST,
        path,
        &body,
        flags.dry_run,
        &flags.wait,
    )
}

/// Sends a change, prints what it did, then waits for the proxies.
fn change<B: serde::Serialize>(
    client: &ApiClient,
    method: Method,
    path: &str,
    body: &B,
    dry_run: bool,
    wait: &WaitArgs,
) -> anyhow::Result<u8> {
    block_on(async {
        match client.send::<_, Outcome>(method, path, body).await {
            Ok(outcome) => {
                print_outcome(&outcome, dry_run)?;
                Ok(follow(client, &outcome, wait, dry_run).await)
            }
            Err(e) => report(e),
        }
    })
}

/// What `ibac get` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum What {
    /// ClientIntents
    Intents,
    /// ProtectedServices
    Protected,
    /// Registered workloads
    Workloads,
    /// The access graph: every call, allowed, would-be-blocked or blocked
    Graph,
    /// Who changed what, when
    Audit,
}

/// Arguments of `ibac get`.
#[derive(Debug, clap::Args)]
pub struct GetArgs {
    /// What to show
    #[arg(value_enum)]
    what: What,
    /// Output format
    #[arg(env = "IBAC_OUTPUT", short, long, value_enum, default_value = "table")]
    output: Output,
    #[command(flatten)]
    connect: Connect,
}

fn ago(unix: Option<i64>) -> String {
    match unix {
        None => "never".into(),
        Some(t) => {
            let secs = (time::OffsetDateTime::now_utc().unix_timestamp() - t).max(0);
            match secs {
                0..60 => format!("{secs}s ago"),
                60..3600 => format!("{}m ago", secs / 60),
                3600..86400 => format!("{}h ago", secs / 3600),
                _ => format!("{}d ago", secs / 86400),
            }
        }
    }
}

/// `ibac get …`
pub fn get(args: &GetArgs) -> anyhow::Result<u8> {
    let client = args.connect.client()?;
    match args.what {
        What::Intents | What::Protected => {
            let kind = if args.what == What::Intents {
                "ClientIntents"
            } else {
                "ProtectedService"
            };
            let path = format!("/v1/documents?kind={kind}");
            show(&client, &path, args.output, |docs: &Vec<DocumentInfo>| {
                print_documents(kind, docs)
            })
        }
        What::Workloads => show(
            &client,
            "/v1/workloads",
            args.output,
            |w: &Vec<WorkloadInfo>| print_workloads(w),
        ),
        What::Graph => show(&client, "/v1/graph", args.output, |graph: &GraphView| {
            write_stdout(&graph_table(graph))
        }),
        What::Audit => show(
            &client,
            "/v1/audit?limit=100",
            args.output,
            |rows: &Vec<AuditRow>| print_audit(rows),
        ),
    }
}

/// Fetches what `ibac get` shows from `path` and prints it: in a data format
/// (JSON, YAML) as the API gave it, so that only the table needs code of its
/// own for each kind of thing shown.
fn show<T>(
    client: &ApiClient,
    path: &str,
    output: Output,
    print_table: impl FnOnce(&T) -> anyhow::Result<()>,
) -> anyhow::Result<u8>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    let value: T = block_on(async { Ok(client.get(path).await?) })?;
    if output == Output::Table {
        print_table(&value)?;
    } else {
        print_data(&value, output)?;
    }
    Ok(exit::OK)
}

fn print_documents(kind: &str, docs: &[DocumentInfo]) -> anyhow::Result<()> {
    if docs.is_empty() {
        eprintln!("No {kind} stored.");
        return Ok(());
    }
    let mut t = table(&["namespace", "name", "status"]);
    for d in docs {
        t.add_row([d.namespace.as_str(), d.name.as_str(), d.status.as_str()]);
    }
    write_stdout(&render(&t))
}

fn print_workloads(workloads: &[WorkloadInfo]) -> anyhow::Result<()> {
    if workloads.is_empty() {
        eprintln!("No workloads registered: `ibac workload add name.namespace`.");
        return Ok(());
    }
    let mut t = table(&[
        "workload",
        "proxy",
        "protected",
        "enforces",
        "state",
        "last contact",
    ]);
    for w in workloads {
        t.add_row([
            w.id.clone(),
            w.address.map_or("-".into(), |a| a.to_string()),
            if w.protected { "yes" } else { "no" }.into(),
            w.enforcement
                .enforced()
                .map_or("-".into(), |r| format!("revision {r}")),
            w.enforcement.label().into(),
            ago(w.last_contact),
        ]);
    }
    let mut text = render(&t);
    let off: Vec<&WorkloadInfo> = workloads
        .iter()
        .filter(|w| !w.enforcement.in_force())
        .collect();
    if !off.is_empty() {
        text.push('\n');
        for w in &off {
            text.push_str(&format!("{}: {}\n", w.id, w.enforcement.describe(now())));
        }
        text.push_str(&format!(
            "{} of {} proxies do not enforce the published policy: their verdicts above are not in force\n",
            off.len(),
            workloads.len()
        ));
    }
    write_stdout(&text)
}

fn print_audit(rows: &[AuditRow]) -> anyhow::Result<()> {
    let mut t = table(&["time", "actor", "action", "target", "detail"]);
    for r in rows {
        t.add_row([
            ibac_identity::inspect::unix_time_text(r.at),
            r.actor.clone(),
            r.action.clone(),
            r.target.clone(),
            r.detail.clone(),
        ]);
    }
    write_stdout(&render(&t))
}

fn graph_table(graph: &GraphView) -> String {
    if graph.edges.is_empty() {
        return "No calls discovered or declared yet.\n".into();
    }
    let protected: std::collections::BTreeSet<&WorkloadId> = graph
        .nodes
        .iter()
        .filter(|n| n.server.as_ref().is_some_and(|s| s.protected))
        .map(|n| &n.id)
        .collect();
    let mut t = table(&[
        "client",
        "server",
        "verdict",
        "sources",
        "calls",
        "last seen",
    ]);
    for e in &graph.edges {
        let server = &e.edge.server;
        let sources: Vec<&str> = e.sources.iter().map(|s| s.as_str()).collect();
        t.add_row([
            e.edge.client.to_string(),
            if protected.contains(server) {
                format!("{server} (protected)")
            } else {
                server.to_string()
            },
            e.edge.verdict.as_str().to_string(),
            sources.join("+"),
            e.seen.as_ref().map_or("-".into(), |s| s.count.to_string()),
            ago(e.seen.as_ref().map(|s| s.last_seen)),
        ]);
    }
    let mut out = render(&t);
    let totals = ibac_api::graph::totals(graph);
    out.push_str(&format!(
        "\n{} allowed, {} would be blocked, {} blocked\n",
        totals.allowed, totals.would_be_blocked, totals.blocked
    ));
    let mut notes = String::new();
    for e in &graph.edges {
        if let Some(m) = &e.mismatch {
            notes.push_str(&format!(
                "! {} → {}: {}\n",
                e.edge.client, e.edge.server, m.message
            ));
        }
    }
    for n in graph.nodes.iter().filter(|n| n.registered && !n.in_force) {
        notes.push_str(&format!(
            "! {}: verdicts shown for it are not in force: its proxy {}\n",
            n.id,
            n.enforcement
                .as_ref()
                .map_or_else(|| "has not reported".to_string(), |s| s.describe(now()))
        ));
    }
    if !notes.is_empty() {
        out.push('\n');
        out.push_str(&notes);
    }
    out
}

/// Arguments of `ibac workload`.
#[derive(Debug, clap::Args)]
pub struct WorkloadArgs {
    #[command(subcommand)]
    command: WorkloadCommand,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac workload …`
#[derive(Debug, clap::Subcommand)]
pub enum WorkloadCommand {
    /// Register a workload and print a one-time join token for its proxy
    Add(WorkloadAdd),
    /// Unregister a workload and revoke it: its tokens die, it cannot renew
    Remove {
        /// `name.namespace`
        workload: String,
    },
}

/// Arguments of `ibac workload add`.
#[derive(Debug, clap::Args)]
pub struct WorkloadAdd {
    /// `name.namespace`
    workload: String,
    /// Where its proxy listens (host:port), so that others can call it
    #[arg(env = "IBAC_WORKLOAD_ADDRESS", long)]
    address: Option<std::net::SocketAddr>,
    /// Its app's port on this host (the socket scanner watches it)
    #[arg(env = "IBAC_WORKLOAD_APP_PORT", long)]
    app_port: Option<u16>,
    /// How long the join token stays valid
    #[arg(env = "IBAC_TOKEN_TTL", long, default_value = "15m", value_parser = humantime::parse_duration)]
    token_ttl: std::time::Duration,
}

/// `ibac workload add|remove`
pub fn workload(args: &WorkloadArgs) -> anyhow::Result<u8> {
    let connect = &args.connect;
    let client = connect.client()?;
    match &args.command {
        WorkloadCommand::Add(add) => {
            let registration = Registration {
                id: add.workload.clone(),
                address: add.address,
                app_port: add.app_port,
                port: add.app_port,
                token_ttl_seconds: Some(add.token_ttl.as_secs()),
            };
            let reg: Registered = block_on(async {
                Ok(client
                    .send(Method::POST, "/v1/workloads", &registration)
                    .await?)
            })?;
            write_stdout(&format!("{}\n", reg.token))?;
            eprintln!(
                "registered {}; start its proxy with:\n  ibac proxy --control {} --identity-dir ./{}-id --token <the token above> --listen ... --app ...",
                reg.id,
                connect.url(),
                reg.id
            );
        }
        WorkloadCommand::Remove { workload } => {
            block_on(async { Ok(client.delete(&format!("/v1/workloads/{workload}")).await?) })?;
            write_stdout(&format!(
                "removed {workload}: its join tokens are void and it cannot renew\n"
            ))?;
        }
    }
    Ok(exit::OK)
}

/// Arguments of `ibac protect`.
#[derive(Debug, clap::Args)]
pub struct ProtectArgs {
    /// The server to protect, `name.namespace`
    workload: String,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac protect name.namespace`
pub fn protect(args: &ProtectArgs) -> anyhow::Result<u8> {
    protection(
        &args.connect,
        "/v1/protect",
        &args.workload,
        false,
        &args.wait,
    )
}

/// Asks `path` (protect or unprotect) to change `workload`'s protection:
/// the two differ in the route alone, so that they report and wait alike.
fn protection(
    connect: &Connect,
    path: &str,
    workload: &str,
    dry_run: bool,
    wait: &WaitArgs,
) -> anyhow::Result<u8> {
    let client = connect.client()?;
    let body = ProtectRequest {
        workload: workload.to_string(),
        dry_run,
    };
    change(&client, Method::POST, path, &body, dry_run, wait)
}

/// Arguments of `ibac unprotect`.
#[derive(Debug, clap::Args)]
pub struct UnprotectArgs {
    /// The server whose ProtectedService to remove, `name.namespace`
    workload: String,
    #[command(flatten)]
    change: CheckableChange,
}

/// `ibac unprotect name.namespace`
pub fn unprotect(args: &UnprotectArgs) -> anyhow::Result<u8> {
    let flags = &args.change;
    protection(
        &flags.connect,
        "/v1/unprotect",
        &args.workload,
        flags.dry_run,
        &flags.wait,
    )
}

/// The enforcement mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeValue {
    /// Nothing is enforced unless protected; everything is reported
    #[value(name = "defaultShadow")]
    DefaultShadow,
    /// Every server is protected (excluded namespaces aside)
    #[value(name = "defaultActive")]
    DefaultActive,
}

/// Arguments of `ibac mode`.
#[derive(Debug, clap::Args)]
pub struct ModeArgs {
    /// The mode
    #[arg(value_enum)]
    mode: ModeValue,
    #[command(flatten)]
    wait: WaitArgs,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac mode defaultShadow|defaultActive`
pub fn mode(args: &ModeArgs) -> anyhow::Result<u8> {
    let mode = match args.mode {
        ModeValue::DefaultShadow => ibac_model::Mode::DefaultShadow,
        ModeValue::DefaultActive => ibac_model::Mode::DefaultActive,
    };
    let client = args.connect.client()?;
    change(
        &client,
        Method::PUT,
        "/v1/mode",
        &ModeRequest { mode },
        false,
        &args.wait,
    )
}

/// Arguments of `ibac token`.
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    connect: Connect,
}

/// `ibac token create`
#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Make an API token; with --namespace-scope it may only change those namespaces
    Create {
        /// Who will hold it (shown in the audit log)
        name: String,
        /// A namespace it may change (repeat for more); none: an admin token
        #[arg(
            env = "IBAC_NAMESPACE_SCOPE",
            long = "namespace-scope",
            value_name = "NAMESPACE"
        )]
        namespaces: Vec<String>,
    },
}

/// `ibac token …`
pub fn token(args: &TokenArgs) -> anyhow::Result<u8> {
    let client = args.connect.client()?;
    let TokenCommand::Create { name, namespaces } = &args.command;
    let body = TokenRequest {
        name: name.clone(),
        namespaces: (!namespaces.is_empty()).then(|| namespaces.clone()),
    };
    let made: TokenResponse =
        block_on(async { Ok(client.send(Method::POST, "/v1/tokens", &body).await?) })?;
    write_stdout(&format!("{}\n", made.token))?;
    eprintln!("the token is shown once; keep it somewhere safe");
    Ok(exit::OK)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}
