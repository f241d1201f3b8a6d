//! The client side: the local app talks plain to the proxy, and the proxy
//! originates mTLS with its own SVID, checking that the server presents the
//! SPIFFE ID of the intended target.
//!
//! - As an HTTP proxy (`HTTP_PROXY=http://127.0.0.1:<port>`): an absolute-form
//!   request for a known `name.namespace[:port]` is rewritten to origin-form and
//!   sent on; anything else, CONNECT included, is refused.
//! - Through per-target TCP listeners: bytes to a listener go to its target.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use ibac_identity::SpiffeId;
use ibac_identity::tls::{ExpectedServer, SpiffeServerVerifier, client_config};
use ibac_model::WorkloadId;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::discovery::Discovery;
use crate::headers::strip_hop_by_hop;
use crate::identity::ProxyIdentity;
use crate::inbound::{Body, Limits, relay, text};
use crate::io::{IdleTimeout, MtlsStream};

/// Opens mTLS connections to other proxies, verifying who answers.
#[derive(Clone)]
pub struct Dialer {
    identity: ProxyIdentity,
    discovery: Arc<dyn Discovery>,
}

/// Why a target could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Not `name.namespace`.
    #[error("`{0}` is not a workload (`name.namespace`)")]
    NotAWorkload(String),
    /// Discovery has no address.
    #[error("where `{0}` runs is unknown")]
    Unknown(WorkloadId),
    /// Connecting or the handshake failed.
    #[error("cannot connect to `{0}`: {1}")]
    Connect(WorkloadId, String),
}

impl Dialer {
    /// A dialer using our identity and a discovery source.
    pub fn new(identity: ProxyIdentity, discovery: Arc<dyn Discovery>) -> Self {
        Dialer {
            identity,
            discovery,
        }
    }

    /// Connects to `target`'s proxy over mTLS, accepting only its SPIFFE ID.
    pub async fn dial(&self, target: &WorkloadId, alpn: &[&[u8]]) -> Result<MtlsStream, DialError> {
        let addr = self
            .discovery
            .resolve(target)
            .ok_or_else(|| DialError::Unknown(target.clone()))?;
        let expected = SpiffeId::for_workload(&self.identity.trust_domain(), target);
        let verifier = Arc::new(SpiffeServerVerifier::new(
            self.identity.bundle(),
            ExpectedServer::Id(expected),
        ));
        let config = client_config(Some(self.identity.resolver()), verifier, alpn)
            .map_err(|e| DialError::Connect(target.clone(), e.to_string()))?;
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr))
            .await
            .map_err(|_| DialError::Connect(target.clone(), "timed out".into()))?
            .map_err(|e| DialError::Connect(target.clone(), e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::try_from(target.to_string())
            .map_err(|e| DialError::Connect(target.clone(), e.to_string()))?;
        let tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| DialError::Connect(target.clone(), e.to_string()))?;
        Ok(MtlsStream(tls))
    }
}

/// A hyper connector that turns `http://name.namespace/…` into an mTLS
/// connection to that workload's proxy.
#[derive(Clone)]
struct Connector(Dialer);

impl tower::Service<Uri> for Connector {
    type Response = TokioIo<MtlsStream>;
    type Error = DialError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dialer = self.0.clone();
        Box::pin(async move {
            let host = uri.host().unwrap_or_default().to_string();
            let target = WorkloadId::parse(&host).map_err(|_| DialError::NotAWorkload(host))?;
            dialer.dial(&target, &[b"http/1.1"]).await.map(TokioIo::new)
        })
    }
}

/// The HTTP proxy the app sends requests through.
pub(crate) struct HttpProxy {
    client: Client<Connector, Full<Bytes>>,
    limits: Limits,
    identity_header: HeaderName,
}

impl HttpProxy {
    pub(crate) fn new(dialer: Dialer, limits: Limits, identity_header: HeaderName) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(Connector(dialer));
        HttpProxy {
            client,
            limits,
            identity_header,
        }
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        if req.method() == Method::CONNECT {
            return text(
                StatusCode::METHOD_NOT_ALLOWED,
                "CONNECT is not supported; send plain http://name.namespace/… requests through this proxy".into(),
            );
        }
        let (Some("http"), Some(host)) = (req.uri().scheme_str(), req.uri().host()) else {
            return text(
                StatusCode::BAD_REQUEST,
                "send absolute-form requests for http://name.namespace[:port]/… to this proxy"
                    .into(),
            );
        };
        let Ok(target) = WorkloadId::parse(host) else {
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "`{host}` is not a workload (`name.namespace`); this proxy only reaches workloads"
                ),
            );
        };
        let path = req
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let (parts, body) = req.into_parts();
        let body = match Limited::new(body, self.limits.max_body).collect().await {
            Ok(c) => c.to_bytes(),
            Err(_) => {
                return text(
                    StatusCode::BAD_REQUEST,
                    "malformed or too large request body".into(),
                );
            }
        };
        let Ok(uri) = format!("http://{target}{path}").parse::<Uri>() else {
            return text(StatusCode::BAD_REQUEST, "bad request target".into());
        };
        let mut forward = Request::new(Full::new(body));
        *forward.method_mut() = parts.method;
        *forward.uri_mut() = uri;
        *forward.headers_mut() = parts.headers;
        strip_hop_by_hop(forward.headers_mut());
        forward.headers_mut().remove(&self.identity_header);
        if let Ok(host) = HeaderValue::from_str(target.as_str()) {
            forward.headers_mut().insert(header::HOST, host);
        }
        match relay(&self.client, forward).await {
            Ok(response) => response,
            Err(e) => {
                let cause = std::error::Error::source(&e)
                    .map(ToString::to_string)
                    .unwrap_or_else(|| e.to_string());
                tracing::warn!(%target, error = %cause, "outbound request failed");
                text(
                    StatusCode::BAD_GATEWAY,
                    format!("cannot reach `{target}`: {cause}"),
                )
            }
        }
    }

    /// Serves one connection from the app.
    pub(crate) async fn serve(self: Arc<Self>, tcp: TcpStream, watcher: Watcher) {
        let io = TokioIo::new(IdleTimeout::new(tcp, self.limits.idle_timeout));
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_timeout)
            .max_headers(self.limits.max_headers)
            .max_buf_size(self.limits.max_header_bytes.max(8192));
        let me = self.clone();
        let service = service_fn(move |req| {
            let me = me.clone();
            async move { Ok::<_, Infallible>(me.handle(req).await) }
        });
        if let Err(e) = watcher.watch(builder.serve_connection(io, service)).await {
            tracing::debug!(error = %e, "outbound HTTP connection ended with an error");
        }
    }
}

/// Relays one connection from a per-target listener to its target.
pub(crate) async fn relay_to(
    dialer: Dialer,
    target: WorkloadId,
    mut tcp: TcpStream,
    peer: SocketAddr,
) {
    match dialer.dial(&target, &[]).await {
        Ok(mut tls) => {
            if let Err(e) = tokio::io::copy_bidirectional(&mut tcp, &mut tls.0).await {
                tracing::debug!(%target, %peer, error = %e, "outbound relay ended");
            }
        }
        Err(e) => tracing::warn!(%target, error = %e, "outbound connection refused"),
    }
}
