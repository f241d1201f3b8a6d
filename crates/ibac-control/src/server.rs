//! Starting the control plane: the data directory, the CA, the store, the
//! HTTPS listener, and the background work (retention, socket scans).
//!
//! The data directory holds everything:
//!
//! ```text
//! ibac-data/
//!   ibac.db          the store (SQLite, WAL)
//!   ca/              the CA, join tokens and the issuance audit log
//!   admin.token      the admin API token (0600), written once
//!   bundle.pem       the trust bundle, for clients of the API
//!   server.url       where the API listens, for the CLI
//!   logs/            supervised workloads' logs
//!   workloads/       supervised proxies' identities
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use ibac_identity::attest::{IssuanceService, JsonlAudit, LocalTokenStore};
use ibac_identity::ca::Ca;
use ibac_identity::files::{write_private, write_public};
use ibac_identity::spiffe_id::TrustDomain;
use ibac_identity::store::CaStore;
use time::OffsetDateTime;
use tokio::task::JoinHandle;

use crate::control::{Control, Settings};
use crate::store::Store;

/// How to start.
#[derive(Clone, Debug)]
pub struct Options {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The trust domain, when the CA is created.
    pub trust_domain: Option<String>,
    /// Retention and caps.
    pub settings: Settings,
    /// How often to scan local sockets (`None`: never).
    pub scan_every: Option<Duration>,
    /// Where the access graph page listens, plain HTTP (`None`: only on
    /// the API's HTTPS port).
    pub ui: Option<SocketAddr>,
}

/// A running control plane.
pub struct Running {
    /// The state.
    pub control: Arc<Control>,
    /// Where the API listens.
    pub addr: SocketAddr,
    /// `https://addr`.
    pub url: String,
    /// The admin token, when this start created it.
    pub new_admin_token: Option<String>,
    /// The access graph page, with its sign-in token.
    pub ui_url: Option<String>,
    server: JoinHandle<()>,
    background: Vec<JoinHandle<()>>,
}

impl Running {
    /// Serves until `shutdown` completes, then lets open requests finish.
    pub async fn wait(self) {
        let _ = self.server.await;
        for task in self.background {
            task.abort();
        }
    }
}

/// The files the CLI reads to reach the API.
pub mod files {
    /// The admin token.
    pub const ADMIN_TOKEN: &str = "admin.token";
    /// The trust bundle.
    pub const BUNDLE: &str = "bundle.pem";
    /// The API's URL.
    pub const SERVER_URL: &str = "server.url";
    /// The read-only token of the access graph page.
    pub const UI_TOKEN: &str = "ui.token";
    /// The access graph page's sign-in link (0600: it holds the token).
    pub const UI_URL: &str = "ui.url";
}

fn open_ca(dir: &Path, trust_domain: Option<&str>) -> anyhow::Result<CaStore> {
    if dir.join("ca.pem").exists() || dir.join("config.json").exists() {
        let store = CaStore::open(dir)?;
        if let Some(td) = trust_domain
            && store.trust_domain()?.as_str() != td
        {
            return Err(anyhow!(
                "the CA in {} is for trust domain `{}`, not `{td}`",
                dir.display(),
                store.trust_domain()?
            ));
        }
        return Ok(store);
    }
    let td = match trust_domain {
        Some(td) => TrustDomain::parse(td).map_err(|e| anyhow!("`{td}`: {e}"))?,
        None => TrustDomain::default(),
    };
    let ca = Ca::generate_root(td, OffsetDateTime::now_utc(), time::Duration::days(365))?;
    Ok(CaStore::init(dir, &ca, time::Duration::hours(1))?)
}

/// Starts the control plane; it serves until `shutdown` completes.
pub async fn start(
    options: Options,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<Running> {
    let dir = &options.data_dir;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot restrict {}", dir.display()))?;
    }
    let ca_store = open_ca(&dir.join("ca"), options.trust_domain.as_deref())?;
    let now = OffsetDateTime::now_utc();
    let ca = Arc::new(ca_store.load()?);
    let bundle = Arc::new(arc_swap::ArcSwap::from_pointee(ca_store.bundle(now)?));
    let tokens = Arc::new(LocalTokenStore::open(ca_store.dir().join("tokens.json"))?);
    let audit = Arc::new(JsonlAudit::open(&ca_store.dir().join("audit.jsonl"))?);
    let issuance = IssuanceService::new(
        ca,
        bundle.clone(),
        tokens,
        audit,
        ca_store.svid_ttl()?,
        std::num::NonZeroU32::new(6000),
    );
    issuance.replace_jwt(ibac_identity::attest::JwtSigning {
        key: ca_store.jwt_key()?,
        bundle: ca_store.jwt_bundle(now)?,
        ttl: ca_store.jwt_ttl()?,
    });
    let store = Store::open(&dir.join("ibac.db"))?;
    let control = Control::open(store, issuance.clone(), options.settings.clone(), dir)
        .map_err(|e| anyhow!("cannot load the store: {e}"))?;
    let new_admin_token = control
        .ensure_admin_token()
        .await
        .map_err(|e| anyhow!("cannot make the admin token: {e}"))?;
    if let Some(secret) = &new_admin_token {
        write_private(
            &dir.join(files::ADMIN_TOKEN),
            format!("{secret}\n").as_bytes(),
        )?;
    }
    write_public(&dir.join(files::BUNDLE), bundle.load().to_pem().as_bytes())?;

    let (resolver, renewer) = issuance.own_svid().map_err(|e| anyhow!(e))?;
    let tls = Arc::new(issuance.tls_config(resolver)?);
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .with_context(|| format!("cannot listen on {}", options.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("https://{addr}");
    write_public(&dir.join(files::SERVER_URL), format!("{url}\n").as_bytes())?;
    let ui_token = match std::fs::read_to_string(dir.join(files::UI_TOKEN)) {
        Ok(t) if control.token_caller(t.trim()).is_some() => t.trim().to_string(),
        _ => {
            let name = format!("ui-{}", OffsetDateTime::now_utc().unix_timestamp());
            let caller = crate::auth::Caller::Admin {
                name: "ibac up".into(),
            };
            // A token for no namespace: it may read, and change nothing.
            let secret = control
                .create_token(&caller, &name, Some(Vec::new()))
                .await
                .map_err(|e| anyhow!("cannot make the page's token: {e}"))?;
            write_private(&dir.join(files::UI_TOKEN), format!("{secret}\n").as_bytes())?;
            secret
        }
    };
    let app = crate::api::router(control.clone())
        .merge(crate::ui::router(control.clone()))
        .merge(issuance.router());
    let closing = control.clone();
    let shutdown = async move {
        shutdown.await;
        closing.close();
    };
    let server = tokio::spawn(ibac_identity::https::serve(listener, tls, app, shutdown));

    let mut background = vec![renewer, tokio::spawn(control.clone().watch_enforcement())];
    let ui_url = match options.ui {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for the access graph page"))?;
            let url = format!("http://{}/?token={ui_token}", listener.local_addr()?);
            write_private(&dir.join(files::UI_URL), format!("{url}\n").as_bytes())?;
            let page = crate::ui::router(control.clone());
            let closing = control.clone();
            background.push(tokio::spawn(async move {
                let served = axum::serve(listener, page)
                    .with_graceful_shutdown(async move { closing.closed().await })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "the access graph page stopped");
                }
            }));
            Some(url)
        }
        None => None,
    };
    background.push(tokio::spawn({
        let control = control.clone();
        async move {
            loop {
                match control.purge().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(calls = n, "forgot calls past the retention period"),
                    Err(e) => tracing::warn!(error = %e, "cannot apply retention"),
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        }
    }));
    if let Some(every) = options.scan_every {
        background.push(tokio::spawn(scan_loop(control.clone(), every)));
    }
    Ok(Running {
        control,
        addr,
        url,
        new_admin_token,
        ui_url,
        server,
        background,
    })
}

/// Scans local sockets for calls that bypass the proxies.
async fn scan_loop(control: Arc<Control>, every: Duration) {
    let mut scanner = ibac_mapper::scan::HostScanner::default();
    let mut round: u64 = 0;
    loop {
        tokio::time::sleep(every).await;
        round += 1;
        // Connections still open are seen again at every scan; their
        // last-seen time is written now and then, not at every scan.
        let refresh = round.is_multiple_of(30);
        let registry = control.scan_registry();
        if registry.app_ports.is_empty() || registry.pids.is_empty() {
            continue;
        }
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let (back, found) = match tokio::task::spawn_blocking(move || {
            let found = scanner.scan(&registry, now);
            (scanner, found)
        })
        .await
        {
            Ok(pair) => pair,
            Err(e) => {
                tracing::warn!(error = %e, "the socket scanner failed");
                return;
            }
        };
        scanner = back;
        match found {
            Ok(mut observations) => {
                observations.retain(|o| o.count > 0 || refresh);
                if let Err(e) = control.observe(observations).await {
                    tracing::warn!(error = %e, "cannot record scanned connections");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot scan sockets"),
        }
    }
}
