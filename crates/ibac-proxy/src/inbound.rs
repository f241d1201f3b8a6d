//! The server side: terminate mTLS (or, in permissive mode, also accept
//! plaintext from unauthenticated callers), decide with the policy per
//! connection (L4) or per request (HTTP/1.1 and HTTP/2), and forward what is
//! allowed to the local app on loopback.
//!
//! Blocked connections are closed; blocked requests get 403 with a short
//! reason. In shadow mode calls go through and are reported would-be-blocked.
//! The app receives the normalized path, never the raw one, and the verified
//! SPIFFE ID in one header; identity and method-override headers from callers
//! are stripped. A policy change re-checks open L4 connections and closes the
//! ones now blocked.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::{Connect, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::Watcher;
use ibac_model::WorkloadId;
use ibac_model::http::{RequestMethod, normalize};
use ibac_policy::{Request as Call, Verdict};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::headers::{host_problem, set_identity, strip_hop_by_hop};
use crate::io::IdleTimeout;
use crate::lines::StrictLines;
use crate::metrics::Metrics;
use crate::policy_source::PolicyWatch;
use crate::reports::{self, Reporter};

pub use ibac_model::Protocol;

/// Bounds that keep slow, large or abusive peers from holding resources.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Most headers in one request.
    pub max_headers: usize,
    /// Largest request head, bytes.
    pub max_header_bytes: usize,
    /// Longest wait for a complete request head.
    pub header_timeout: Duration,
    /// Longest a connection may stay silent.
    pub idle_timeout: Duration,
    /// Largest request body, bytes (bodies are read whole before forwarding,
    /// so a malformed one never reaches the app).
    pub max_body: usize,
    /// Most concurrent HTTP/2 streams per connection.
    pub max_streams: u32,
    /// Longest a TLS handshake may take.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_headers: 100,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_body: 16 * 1024 * 1024,
            max_streams: 100,
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// What the inbound side of one proxy needs to decide and forward.
pub(crate) struct Shared {
    pub(crate) server: WorkloadId,
    pub(crate) port: u16,
    pub(crate) app: SocketAddr,
    pub(crate) policy: PolicyWatch,
    pub(crate) reporter: Reporter,
    pub(crate) limits: Limits,
    pub(crate) identity_header: HeaderName,
    pub(crate) metrics: &'static Metrics,
    pub(crate) client: Client<HttpConnector, Full<Bytes>>,
}

impl Shared {
    pub(crate) fn new(
        server: WorkloadId,
        port: u16,
        app: SocketAddr,
        policy: PolicyWatch,
        reporter: Reporter,
        limits: Limits,
        identity_header: HeaderName,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        Shared {
            server,
            port,
            app,
            policy,
            reporter,
            limits,
            identity_header,
            metrics: crate::metrics::global(),
            client,
        }
    }

    /// Decides a call as it arrives and leaves its trace: counted under
    /// `protocol` and written to the reports, so that no inbound call is
    /// decided without being seen. The verdict and the reason when it is not
    /// allowed.
    fn decide_recorded(
        &self,
        peer: &Peer,
        call: &Call,
        protocol: &str,
        http: Option<(&str, &str)>,
    ) -> (Verdict, Option<String>) {
        let (verdict, reason, revision) = self.decide(peer.workload.as_ref(), call);
        self.metrics.decided("inbound", protocol, verdict);
        self.reporter.record(reports::Call {
            direction: reports::Direction::Inbound,
            client: peer.workload.as_ref(),
            server: &self.server,
            port: self.port,
            http,
            verdict,
            revision,
        });
        (verdict, reason)
    }

    /// The verdict, the reason when it is not allowed, and the revision of
    /// the policy that decided. With no policy ever loaded, everything is
    /// blocked.
    pub(crate) fn decide(
        &self,
        client: Option<&WorkloadId>,
        call: &Call,
    ) -> (Verdict, Option<String>, Option<u64>) {
        let policy = self.policy.borrow().clone();
        match policy {
            None => (
                Verdict::Blocked,
                Some("no policy has been loaded yet, so everything is denied".into()),
                None,
            ),
            Some(policy) => {
                let d = policy.decide(client, &self.server, call);
                let reason = (d.verdict != Verdict::Allowed).then(|| d.reason.to_string());
                (d.verdict, reason, policy.revision)
            }
        }
    }
}

/// Who is calling, as the handshake established it.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The workload, when the caller presented a workload SVID.
    pub(crate) workload: Option<WorkloadId>,
    /// The SPIFFE ID as text, for the identity header.
    pub(crate) spiffe_id: Option<String>,
}

/// The body of every response the proxy answers itself or relays, inbound and
/// outbound alike.
pub(crate) type Body = BoxBody<Bytes, hyper::Error>;

/// Sends `forward` on and hands back the response without the hop-by-hop
/// headers of the connection it came over, inbound and outbound alike.
pub(crate) async fn relay<C: Connect + Clone + Send + Sync + 'static>(
    client: &Client<C, Full<Bytes>>,
    forward: Request<Full<Bytes>>,
) -> Result<Response<Body>, hyper_util::client::legacy::Error> {
    let (mut parts, body) = client.request(forward).await?.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, body.boxed()))
}

/// A plain-text answer from the proxy itself (a refusal, an error), with the
/// trailing newline that keeps it readable in a terminal.
pub(crate) fn text(status: StatusCode, message: String) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(message + "\n"))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn refuse(shared: &Shared, status: StatusCode, reason: &str, message: String) -> Response<Body> {
    shared.metrics.refused(reason);
    text(status, message)
}

/// Serves HTTP on one accepted connection.
pub(crate) async fn serve_http<S>(io: S, peer: Peer, shared: Arc<Shared>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits.clone();
    let metrics = shared.metrics;
    let io = TokioIo::new(StrictLines::new(
        IdleTimeout::new(io, limits.idle_timeout),
        move || metrics.refused("bare-lf"),
    ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_streams)
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(64))
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(10));
    let service = service_fn(move |req| {
        let shared = shared.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(req, &peer, &shared).await) }
    });
    let conn = builder.serve_connection(io, service);
    if let Err(e) = watcher.watch(conn.into_owned()).await {
        tracing::debug!(error = %e, "inbound HTTP connection ended with an error");
    }
}

async fn handle(req: Request<Incoming>, peer: &Peer, shared: &Shared) -> Response<Body> {
    if req.method() == Method::CONNECT {
        return refuse(
            shared,
            StatusCode::METHOD_NOT_ALLOWED,
            "connect",
            "CONNECT is not accepted".into(),
        );
    }
    if req.version() < Version::HTTP_2
        && (req.uri().scheme().is_some() || req.uri().authority().is_some())
    {
        return refuse(
            shared,
            StatusCode::BAD_REQUEST,
            "absolute-form",
            "absolute-form request targets are not accepted; send the path only".into(),
        );
    }
    if let Some(problem) = host_problem(req.version(), req.headers()) {
        return refuse(shared, StatusCode::BAD_REQUEST, "host", problem.into());
    }
    let path = match normalize(req.uri().path()) {
        Ok(p) => p,
        Err(e) => {
            return refuse(
                shared,
                StatusCode::BAD_REQUEST,
                "path",
                format!("bad request path: {e}"),
            );
        }
    };
    let Some(method) = RequestMethod::parse(req.method().as_str()) else {
        return refuse(
            shared,
            StatusCode::BAD_REQUEST,
            "method",
            "bad request method".into(),
        );
    };
    let call = Call::http(Some(shared.port), method, path.clone());
    let (verdict, reason) = shared.decide_recorded(
        peer,
        &call,
        "http",
        Some((req.method().as_str(), path.as_str())),
    );
    if verdict == Verdict::Blocked {
        let reason = reason.unwrap_or_default();
        tracing::debug!(client = ?peer.workload, method = %req.method(), path = %path, %reason, "blocked");
        return text(StatusCode::FORBIDDEN, format!("blocked by ibac: {reason}"));
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > shared.limits.max_body as u64) {
        return refuse(
            shared,
            StatusCode::PAYLOAD_TOO_LARGE,
            "body-size",
            "request body too large".into(),
        );
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, shared.limits.max_body).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return refuse(
                shared,
                StatusCode::PAYLOAD_TOO_LARGE,
                "body-size",
                "request body too large".into(),
            );
        }
        Err(_) => {
            return refuse(
                shared,
                StatusCode::BAD_REQUEST,
                "body",
                "malformed request body".into(),
            );
        }
    };
    let target = match parts.uri.query() {
        Some(q) => format!("http://{}{}?{q}", shared.app, path),
        None => format!("http://{}{}", shared.app, path),
    };
    let mut forward = Request::new(Full::new(body));
    *forward.method_mut() = parts.method;
    *forward.uri_mut() = match target.parse() {
        Ok(uri) => uri,
        Err(_) => {
            return refuse(
                shared,
                StatusCode::BAD_REQUEST,
                "target",
                "bad request target".into(),
            );
        }
    };
    *forward.headers_mut() = parts.headers;
    if !forward.headers().contains_key(header::HOST)
        && let Some(authority) = parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        forward.headers_mut().insert(header::HOST, authority);
    }
    strip_hop_by_hop(forward.headers_mut());
    set_identity(
        forward.headers_mut(),
        &shared.identity_header,
        peer.spiffe_id.as_deref(),
    );
    match relay(&shared.client, forward).await {
        Ok(response) => response,
        Err(e) => {
            tracing::warn!(error = %e, app = %shared.app, "the app did not answer");
            text(
                StatusCode::BAD_GATEWAY,
                "the service behind this proxy did not answer".into(),
            )
        }
    }
}

/// Relays one L4 connection if the policy allows it, and closes it as soon
/// as a policy change blocks it.
pub(crate) async fn relay_tcp<S>(
    mut io: S,
    peer: Peer,
    shared: Arc<Shared>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let call = Call::l4(shared.port);
    let decide = |shared: &Shared| shared.decide(peer.workload.as_ref(), &call);
    let (verdict, reason) = shared.decide_recorded(&peer, &call, "tcp", None);
    if verdict == Verdict::Blocked {
        tracing::debug!(client = ?peer.workload, reason = reason.unwrap_or_default(), "connection blocked");
        return;
    }
    let mut app = match TcpStream::connect(shared.app).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, app = %shared.app, "cannot reach the app");
            return;
        }
    };
    let _ = app.set_nodelay(true);
    let mut policy = shared.policy.clone();
    let blocked_later = async {
        loop {
            if policy.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
            let (verdict, reason, _) = decide(&shared);
            if verdict == Verdict::Blocked {
                tracing::info!(client = ?peer.workload, reason = reason.unwrap_or_default(), "closing a connection the new policy blocks");
                return;
            }
        }
    };
    tokio::select! {
        result = tokio::io::copy_bidirectional(&mut io, &mut app) => {
            if let Err(e) = result {
                tracing::debug!(error = %e, "relay ended");
            }
        }
        () = blocked_later => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}
