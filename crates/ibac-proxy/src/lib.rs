//! ibac's policy enforcement point: a small mTLS sidecar.
//!
//! Inbound, it terminates mTLS with the strict SPIFFE verifier, decides every
//! connection or request with the policy engine, and forwards what is allowed
//! to the local app. Outbound, the app talks plain to it and it originates mTLS
//! to the intended target, checking the target's SPIFFE ID. It reports every
//! call, serves metrics and health on an admin port, and drains connections on
//! shutdown.

pub mod admin;
pub mod control;
pub mod discovery;
pub mod headers;
pub mod identity;
pub mod inbound;
pub mod io;
pub mod lines;
pub mod metrics;
pub mod outbound;
pub mod policy_source;
pub mod reports;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use hyper_util::server::graceful::GracefulShutdown;
use ibac_identity::tls::{SpiffeClientVerifier, server_config};
use ibac_model::WorkloadId;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub use control::{
    ControlPlane, ControlReports, ControlSource, EnforcedStatus, LoadFailure, ProxyState,
};
pub use discovery::{Discovery, FileDiscovery, StaticDiscovery};
pub use identity::ProxyIdentity;
pub use inbound::{Limits, Protocol};
pub use policy_source::{Enforced, FilePolicySource, PolicySource, PolicyWatch, StaticPolicy};
pub use reports::{JsonlSink, NoReports, Report, ReportSink, Reporter};

/// The server side of the proxy.
#[derive(Clone, Debug)]
pub struct InboundConfig {
    /// Where callers connect.
    pub listen: SocketAddr,
    /// The local app.
    pub app: SocketAddr,
    /// The server port decisions use (intents name it); the app's by default.
    pub port: Option<u16>,
    /// HTTP (per request) or TCP (per connection).
    pub protocol: Protocol,
    /// Also accept plaintext, from unauthenticated callers (gradual rollout).
    pub permissive: bool,
}

/// Everything the proxy does.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// Inbound, if this workload serves.
    pub inbound: Option<InboundConfig>,
    /// The HTTP proxy the app uses for its calls.
    pub outbound_http: Option<SocketAddr>,
    /// Per-target TCP listeners for the app's calls.
    pub outbound_tcp: Vec<(WorkloadId, SocketAddr)>,
    /// Metrics and health.
    pub admin: Option<SocketAddr>,
    /// The header carrying the verified SPIFFE ID to the app.
    pub identity_header: HeaderName,
    /// Limits on peers.
    pub limits: Limits,
    /// How often reports are sent.
    pub report_interval: Duration,
    /// How long open connections may finish after shutdown begins.
    pub drain: Duration,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            inbound: None,
            outbound_http: None,
            outbound_tcp: Vec::new(),
            admin: None,
            identity_header: HeaderName::from_static("x-ibac-peer-id"),
            limits: Limits::default(),
            report_interval: Duration::from_secs(5),
            drain: Duration::from_secs(10),
        }
    }
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listener could not be bound.
    #[error("cannot listen on {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
    /// The SVID does not name a workload.
    #[error(
        "the proxy's SVID `{0}` does not name a workload (spiffe://<td>/ns/<ns>/workload/<name>)"
    )]
    NotAWorkload(String),
    /// TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] rustls::Error),
}

/// A proxy with its listeners bound.
pub struct Proxy {
    config: ProxyConfig,
    identity: ProxyIdentity,
    policy: PolicyWatch,
    discovery: Arc<dyn Discovery>,
    sink: Arc<dyn ReportSink>,
    reporter: Reporter,
    inbound: Option<TcpListener>,
    outbound_http: Option<TcpListener>,
    outbound_tcp: Vec<(WorkloadId, TcpListener)>,
    admin: Option<TcpListener>,
}

/// Where a started proxy listens (useful when ports were 0).
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    /// Inbound.
    pub inbound: Option<SocketAddr>,
    /// Outbound HTTP proxy.
    pub outbound_http: Option<SocketAddr>,
    /// Outbound TCP listeners.
    pub outbound_tcp: Vec<(WorkloadId, SocketAddr)>,
    /// Admin.
    pub admin: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| ProxyError::Bind(addr, e))
}

impl Proxy {
    /// Binds every listener, so that errors show before anything runs.
    pub async fn bind(
        config: ProxyConfig,
        identity: ProxyIdentity,
        policy: &dyn PolicySource,
        discovery: Arc<dyn Discovery>,
        sink: Arc<dyn ReportSink>,
    ) -> Result<Proxy, ProxyError> {
        let workload = identity
            .workload()
            .ok_or_else(|| ProxyError::NotAWorkload(identity.id().to_string()))?;
        let inbound = match &config.inbound {
            Some(i) => Some(bind(i.listen).await?),
            None => None,
        };
        let outbound_http = match config.outbound_http {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        let mut outbound_tcp = Vec::new();
        for (target, addr) in &config.outbound_tcp {
            outbound_tcp.push((target.clone(), bind(*addr).await?));
        }
        let admin = match config.admin {
            Some(a) => Some(bind(a).await?),
            None => None,
        };
        Ok(Proxy {
            reporter: Reporter::new(workload),
            config,
            identity,
            policy: policy.subscribe(),
            discovery,
            sink,
            inbound,
            outbound_http,
            outbound_tcp,
            admin,
        })
    }

    /// Where the listeners are.
    pub fn addresses(&self) -> Addresses {
        Addresses {
            inbound: self.inbound.as_ref().and_then(|l| l.local_addr().ok()),
            outbound_http: self
                .outbound_http
                .as_ref()
                .and_then(|l| l.local_addr().ok()),
            outbound_tcp: self
                .outbound_tcp
                .iter()
                .filter_map(|(t, l)| l.local_addr().ok().map(|a| (t.clone(), a)))
                .collect(),
            admin: self.admin.as_ref().and_then(|l| l.local_addr().ok()),
        }
    }

    /// Runs until `shutdown` completes, then stops accepting, lets open
    /// connections finish for the drain period, and sends the last reports.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), ProxyError> {
        let Proxy {
            config,
            identity,
            policy,
            discovery,
            sink,
            reporter,
            inbound,
            outbound_http,
            outbound_tcp,
            admin,
        } = self;
        let graceful = Arc::new(GracefulShutdown::new());
        let (force_close, force_rx) = tokio::sync::watch::channel(false);
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        // Held by every relayed TCP connection, so the drain can wait for them.
        let relays = Arc::new(());
        let flusher = reporter.spawn_flusher(sink.clone(), config.report_interval);
        let mut tasks = Vec::new();

        if let Some(listener) = admin {
            let app = admin::router(identity.clone(), policy.clone());
            let mut stop = stop_rx.clone();
            tasks.push(tokio::spawn(async move {
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
            }));
        }

        if let (Some(listener), Some(cfg)) = (inbound, config.inbound.clone()) {
            let server = identity
                .workload()
                .ok_or_else(|| ProxyError::NotAWorkload(identity.id().to_string()))?;
            let shared = Arc::new(inbound::Shared::new(
                server,
                cfg.port.unwrap_or_else(|| cfg.app.port()),
                cfg.app,
                policy.clone(),
                reporter.clone(),
                config.limits.clone(),
                config.identity_header.clone(),
            ));
            let alpn: &[&[u8]] = match cfg.protocol {
                Protocol::Http => &[b"h2", b"http/1.1"],
                Protocol::Tcp => &[],
            };
            let verifier = Arc::new(SpiffeClientVerifier::new(identity.bundle(), true));
            let tls = TlsAcceptor::from(Arc::new(server_config(
                identity.resolver(),
                verifier,
                alpn,
            )?));
            let graceful = graceful.clone();
            let force = force_rx.clone();
            let relays = relays.clone();
            tasks.push(tokio::spawn(accept_until_stopped(
                listener,
                stop_rx.clone(),
                move |tcp, _| {
                    let held = relays.clone();
                    let conn = accept_inbound(
                        tcp,
                        tls.clone(),
                        shared.clone(),
                        cfg.clone(),
                        graceful.watcher(),
                        force.clone(),
                    );
                    tokio::spawn(async move {
                        conn.await;
                        drop(held);
                    });
                },
            )));
        }

        let dialer = outbound::Dialer::new(identity.clone(), discovery.clone());
        if let Some(listener) = outbound_http {
            let proxy = Arc::new(outbound::HttpProxy::new(
                dialer.clone(),
                config.limits.clone(),
                config.identity_header.clone(),
            ));
            let graceful = graceful.clone();
            tasks.push(tokio::spawn(accept_until_stopped(
                listener,
                stop_rx.clone(),
                move |tcp, _| {
                    tokio::spawn(proxy.clone().serve(tcp, graceful.watcher()));
                },
            )));
        }
        for (target, listener) in outbound_tcp {
            let dialer = dialer.clone();
            tasks.push(tokio::spawn(accept_until_stopped(
                listener,
                stop_rx.clone(),
                move |tcp, peer| {
                    tokio::spawn(outbound::relay_to(
                        dialer.clone(),
                        target.clone(),
                        tcp,
                        peer,
                    ));
                },
            )));
        }

        shutdown.await;
        tracing::info!(drain = ?config.drain, "shutting down: no new connections; letting open ones finish");
        let _ = stop.send(true);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let deadline = tokio::time::Instant::now() + config.drain;
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            let _ = tokio::time::timeout_at(deadline, graceful.shutdown()).await;
        }
        while Arc::strong_count(&relays) > 1 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = force_close.send(true);
        flusher.abort();
        reporter.flush(sink.as_ref());
        Ok(())
    }
}

/// Accepts connections on `listener` until `stop` turns true and hands each
/// to `handle`, with Nagle off: what the proxy relays is mostly small heads
/// that should not wait. A failed accept drops that connection, not the
/// listener.
async fn accept_until_stopped(
    listener: TcpListener,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut handle: impl FnMut(TcpStream, SocketAddr),
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Ok((tcp, peer)) = accepted else { continue };
        let _ = tcp.set_nodelay(true);
        handle(tcp, peer);
    }
}

/// Accepts one inbound connection: TLS (or, in permissive mode, plaintext),
/// then HTTP or TCP.
async fn accept_inbound(
    tcp: TcpStream,
    tls: TlsAcceptor,
    shared: Arc<inbound::Shared>,
    cfg: InboundConfig,
    watcher: hyper_util::server::graceful::Watcher,
    force_close: tokio::sync::watch::Receiver<bool>,
) {
    let metrics = metrics::global();
    let _open = metrics.connection();
    let timeout = shared.limits.handshake_timeout;
    if cfg.permissive {
        let mut first = [0u8; 1];
        match tokio::time::timeout(timeout, tcp.peek(&mut first)).await {
            Ok(Ok(1)) if first[0] != 0x16 => {
                let peer = inbound::Peer {
                    workload: None,
                    spiffe_id: None,
                };
                match cfg.protocol {
                    Protocol::Http => inbound::serve_http(tcp, peer, shared, watcher).await,
                    Protocol::Tcp => inbound::relay_tcp(tcp, peer, shared, force_close).await,
                }
                return;
            }
            Ok(Ok(1)) => {}
            _ => return,
        }
    }
    let stream = match tokio::time::timeout(timeout, tls.accept(tcp)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            metrics.tls_failed();
            tracing::debug!(error = %e, "inbound TLS handshake failed");
            return;
        }
        Err(_) => {
            metrics.tls_failed();
            return;
        }
    };
    let id = ibac_identity::tls::peer_id(stream.get_ref().1.peer_certificates());
    let peer = inbound::Peer {
        workload: id.as_ref().and_then(|i| i.workload()),
        spiffe_id: id.map(|i| i.to_string()),
    };
    match cfg.protocol {
        Protocol::Http => inbound::serve_http(stream, peer, shared, watcher).await,
        Protocol::Tcp => inbound::relay_tcp(stream, peer, shared, force_close).await,
    }
}
