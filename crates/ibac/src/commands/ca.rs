//! `ibac ca init | issue | inspect | bundle | rotate`: the certificate authority
//! that gives every workload its SPIFFE identity.

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use ibac_identity::ca::new_key_and_csr;
use ibac_identity::inspect::inspect;
use ibac_identity::{Ca, CaStore, SpiffeId, Svid, TrustBundle, TrustDomain};
use ibac_model::WorkloadId;
use rustls_pki_types::{PrivatePkcs8KeyDer, UnixTime};
use time::{Duration, OffsetDateTime};

use crate::exit;
use crate::output::write_stdout;
use ibac_identity::attest::{
    AuditEvent, AuditLog, IssuanceService, JsonlAudit, JwtSigning, LocalTokenStore, TokenStore,
};

/// Arguments of `ibac ca`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: CaCommand,
    /// The CA directory
    #[arg(long, global = true, env = "IBAC_CA_DIR", default_value = "ibac-ca")]
    dir: PathBuf,
}

#[derive(Debug, clap::Subcommand)]
enum CaCommand {
    /// Create the CA: an ECDSA P-256 root, or an intermediate under your own root
    Init(InitArgs),
    /// Issue an SVID for a workload, with a key made here (for tests and tools)
    Issue(IssueArgs),
    /// Explain a certificate in SPIFFE terms, and why ibac would refuse it
    Inspect(InspectArgs),
    /// Print the trust bundle (every root to trust now)
    Bundle,
    /// Replace the CA; the old root stays trusted until its last SVID expires
    Rotate(NewCaArgs),
    /// Print a one-time join token for a workload
    Token(TokenArgs),
    /// Revoke a workload: its tokens die and it cannot renew
    Revoke(RevokeArgs),
    /// Serve attested issuance over HTTPS (join with a token, renew over mTLS)
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The workload, `name.namespace`
    workload: WorkloadId,
    /// How long the token stays valid
    #[arg(long, default_value = "15m", value_parser = duration, env = "IBAC_TOKEN_TTL")]
    ttl: Duration,
}

#[derive(Debug, clap::Args)]
struct RevokeArgs {
    /// The workload, `name.namespace`
    workload: WorkloadId,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1:8443", env = "IBAC_ISSUER_LISTEN")]
    listen: std::net::SocketAddr,
    /// Requests per minute allowed per caller (0: no limit)
    #[arg(long, default_value = "60", env = "IBAC_ISSUER_RATE")]
    rate: u32,
}

#[derive(Debug, clap::Args)]
struct NewCaArgs {
    /// Lifetime of the CA certificate, e.g. `365d`
    #[arg(long, default_value = "365d", env = "IBAC_CA_TTL", value_parser = duration)]
    ttl: Duration,
    /// Your root certificate (PEM): ibac's CA becomes an intermediate under it
    #[arg(long, requires = "root_key", env = "IBAC_CA_ROOT_CERT")]
    root_cert: Option<PathBuf>,
    /// Your root's PKCS#8 key (PEM), used once to sign the intermediate
    #[arg(long, requires = "root_cert", env = "IBAC_CA_ROOT_KEY")]
    root_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    /// The trust domain
    #[arg(long, default_value = TrustDomain::DEFAULT, env = "IBAC_TRUST_DOMAIN")]
    trust_domain: String,
    /// Lifetime of the SVIDs it issues
    #[arg(long, default_value = "1h", env = "IBAC_SVID_TTL", value_parser = duration)]
    svid_ttl: Duration,
    #[command(flatten)]
    ca: NewCaArgs,
}

#[derive(Debug, clap::Args)]
struct IssueArgs {
    /// The workload, `name.namespace`
    workload: WorkloadId,
    /// Where to write `svid.pem` and `svid-key.pem` (0600)
    #[arg(long, default_value = ".", env = "IBAC_SVID_DIR")]
    out: PathBuf,
    /// Lifetime (default: the CA's SVID lifetime)
    #[arg(long, value_parser = duration, env = "IBAC_SVID_TTL")]
    ttl: Option<Duration>,
}

#[derive(Debug, clap::Args)]
struct InspectArgs {
    /// A PEM file: a certificate, or a chain with the leaf first
    cert: PathBuf,
    /// The trust bundle to check the chain against (default: the CA directory's)
    #[arg(long, env = "IBAC_BUNDLE")]
    bundle: Option<PathBuf>,
    /// The trust domain expected (default: the CA directory's, else ibac.local)
    #[arg(long, env = "IBAC_TRUST_DOMAIN")]
    trust_domain: Option<String>,
}

fn duration(text: &str) -> Result<Duration, String> {
    let std = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}`: {e} (try `1h`, `30m`, `365d`)"))?;
    Duration::try_from(std).map_err(|e| e.to_string())
}

fn trust_domain(text: &str) -> anyhow::Result<TrustDomain> {
    TrustDomain::parse(text).map_err(|e| anyhow!("`{text}` is not a valid trust domain: {e}"))
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}

fn read(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

fn new_ca(td: TrustDomain, args: &NewCaArgs, now: OffsetDateTime) -> anyhow::Result<Ca> {
    Ok(match (&args.root_cert, &args.root_key) {
        (Some(cert), Some(key)) => {
            Ca::generate_intermediate(td, &read(cert)?, &read(key)?, now, args.ttl)?
        }
        _ => Ca::generate_root(td, now, args.ttl)?,
    })
}

/// Records in the CA directory's audit log that the command line did
/// `action` for `workload`, as the issuing service records what it does, so
/// the log tells every change to who may join.
fn record_done(
    dir: &Path,
    now: OffsetDateTime,
    action: &str,
    workload: &WorkloadId,
) -> anyhow::Result<()> {
    JsonlAudit::open(&dir.join("audit.jsonl"))?.record(&AuditEvent {
        time: now.unix_timestamp(),
        action: action.into(),
        caller: "cli".into(),
        identity: Some(workload.to_string()),
        outcome: "done".into(),
        reason: None,
        serial: None,
    })?;
    Ok(())
}

/// Runs the command.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    let now = OffsetDateTime::now_utc();
    match &args.command {
        CaCommand::Init(init) => {
            let ca = new_ca(trust_domain(&init.trust_domain)?, &init.ca, now)?;
            let store = CaStore::init(&args.dir, &ca, init.svid_ttl)?;
            write_stdout(&format!(
                "created {} CA for trust domain {} in {}\n  fingerprint: sha256:{}\n  valid until: {}\n  key:         {} (0600)\n  JWT key:     {} (0600), key id {}\n",
                if ca.is_intermediate() {
                    "an intermediate"
                } else {
                    "a root"
                },
                ca.trust_domain(),
                args.dir.display(),
                ca.fingerprint(),
                rfc3339(ca.not_after()),
                args.dir.join("ca-key.pem").display(),
                args.dir.join("jwt-key.pem").display(),
                store.jwt_key()?.public().kid()
            ))?;
        }
        CaCommand::Rotate(rotate) => {
            let store = CaStore::open(&args.dir)?;
            let ca = new_ca(store.trust_domain()?, rotate, now)?;
            store.rotate(&ca, now)?;
            write_stdout(&format!(
                "rotated the CA in {}; new fingerprint sha256:{}\nthe old root stays in the bundle until its last SVID expires\nnew JWT signing key `{}`; the old one stays in the JWT bundle until its last token expires\n",
                args.dir.display(),
                ca.fingerprint(),
                store.jwt_key()?.public().kid()
            ))?;
        }
        CaCommand::Bundle => {
            let store = CaStore::open(&args.dir)?;
            write_stdout(&store.bundle(now)?.to_pem())?;
        }
        CaCommand::Issue(issue) => {
            let store = CaStore::open(&args.dir)?;
            let ca = store.load()?;
            let id = SpiffeId::for_workload(ca.trust_domain(), &issue.workload);
            let (key, csr) = new_key_and_csr()?;
            let ttl = match issue.ttl {
                Some(ttl) => ttl,
                None => store.svid_ttl()?,
            };
            let issued = ca.issue(&csr, &id, ttl, now)?;
            let svid = Svid::new(issued, PrivatePkcs8KeyDer::from(key.serialize_der()));
            svid.save(&issue.out)?;
            write_stdout(&format!(
                "issued {id}\n  files:       {} and {} (0600)\n  valid until: {}\n",
                issue.out.join("svid.pem").display(),
                issue.out.join("svid-key.pem").display(),
                rfc3339(OffsetDateTime::from_unix_timestamp(
                    svid.issued().not_after
                )?),
            ))?;
        }
        CaCommand::Token(token) => {
            let store = CaStore::open(&args.dir)?;
            let ca = store.load()?;
            let tokens = LocalTokenStore::open(args.dir.join("tokens.json"))?;
            let expires = (now + token.ttl).unix_timestamp();
            let text = tokens.create(&token.workload, &ca.fingerprint(), expires)?;
            record_done(&args.dir, now, "token", &token.workload)?;
            write_stdout(&format!("{text}\n"))?;
        }
        CaCommand::Revoke(revoke) => {
            let tokens =
                LocalTokenStore::open(CaStore::open(&args.dir)?.dir().join("tokens.json"))?;
            tokens.revoke(&revoke.workload)?;
            record_done(&args.dir, now, "revoke", &revoke.workload)?;
            write_stdout(&format!(
                "revoked {}: its join tokens are void and it cannot renew\n",
                revoke.workload
            ))?;
        }
        CaCommand::Serve(serve) => {
            let store = CaStore::open(&args.dir)?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(serve_issuer(&store, serve))?;
        }
        CaCommand::Inspect(ins) => {
            let pem = std::fs::read(&ins.cert)
                .with_context(|| format!("cannot read {}", ins.cert.display()))?;
            let chain = ibac_identity::pem::certificates(&pem)
                .map_err(|e| anyhow!("{}: {e}", ins.cert.display()))?;
            let store = CaStore::open(&args.dir).ok();
            let td = match (&ins.trust_domain, &store) {
                (Some(td), _) => trust_domain(td)?,
                (None, Some(store)) => store.trust_domain()?,
                (None, None) => TrustDomain::default(),
            };
            let bundle = match (&ins.bundle, &store) {
                (Some(path), _) => Some(TrustBundle::from_pem(td.clone(), read(path)?.as_bytes())?),
                (None, Some(store)) => Some(store.bundle(now)?),
                (None, None) => None,
            };
            let secs = u64::try_from(now.unix_timestamp())
                .map_err(|_| anyhow!("the clock is before 1970"))?;
            let result = inspect(
                &chain,
                bundle.as_ref(),
                td.as_str(),
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(secs)),
            );
            write_stdout(&result.text)?;
            if !result.accepted {
                return Ok(exit::INPUT);
            }
        }
    }
    Ok(exit::OK)
}

async fn serve_issuer(store: &CaStore, args: &ServeArgs) -> anyhow::Result<()> {
    let now = OffsetDateTime::now_utc();
    let ca = std::sync::Arc::new(store.load()?);
    let bundle = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(store.bundle(now)?));
    let tokens = std::sync::Arc::new(LocalTokenStore::open(store.dir().join("tokens.json"))?);
    let audit = std::sync::Arc::new(JsonlAudit::open(&store.dir().join("audit.jsonl"))?);
    let service = IssuanceService::new(
        ca.clone(),
        bundle,
        tokens,
        audit,
        store.svid_ttl()?,
        std::num::NonZeroU32::new(args.rate),
    );
    service.replace_jwt(JwtSigning {
        key: store.jwt_key()?,
        bundle: store.jwt_bundle(now)?,
        ttl: store.jwt_ttl()?,
    });
    let (resolver, renewer) = service.own_svid().map_err(|e| anyhow!(e))?;
    let tls = std::sync::Arc::new(service.tls_config(resolver.clone())?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    write_stdout(&format!(
        "issuing SVIDs for {} on https://{}\n  CA fingerprint: sha256:{}\n  tokens: {}\n  audit:  {}\n",
        ca.trust_domain(),
        listener.local_addr()?,
        ca.fingerprint(),
        store.dir().join("tokens.json").display(),
        store.dir().join("audit.jsonl").display(),
    ))?;
    ibac_identity::https::serve(listener, tls, service.router(), shutdown_signal()).await;
    renewer.abort();
    Ok(())
}

/// Completes when the supervisor that started this process is gone: `ibac
/// up` sets `IBAC_PARENT_PID` for what it starts, so that its children do
/// not outlive it even when it is killed with SIGKILL.
async fn parent_gone() {
    let expected = std::env::var("IBAC_PARENT_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok());
    match expected {
        Some(parent) => loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if std::os::unix::process::parent_id() != parent {
                tracing::warn!("the supervisor is gone; stopping");
                return;
            }
        },
        None => std::future::pending().await,
    }
}

/// Completes on Ctrl-C or SIGTERM, or when the supervising `ibac up` is gone.
pub async fn shutdown_signal() {
    tokio::select! {
        () = signal_received() => {}
        () = parent_gone() => {}
    }
}

async fn signal_received() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
