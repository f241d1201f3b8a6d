//! Serving an axum router over TLS, with each request told who is calling:
//! the remote address and, when the client presented a verified SVID, its
//! SPIFFE ID. Shared by the issuance server and the control plane.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::spiffe_id::SpiffeId;
use crate::tls::peer_id;

/// Who is on the other end of a request's connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionInfo {
    /// The remote address.
    pub remote: SocketAddr,
    /// The client's SPIFFE ID, when it presented a verified SVID.
    pub peer: Option<SpiffeId>,
}

/// Longest a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// requests finish (for at most 10 s).
pub async fn serve(
    listener: TcpListener,
    tls: Arc<ServerConfig>,
    app: axum::Router,
    shutdown: impl Future<Output = ()>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (tcp, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(e)) => {
                    tracing::debug!(%remote, error = %e, "TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%remote, "TLS handshake timed out");
                    return;
                }
            };
            let info = ConnectionInfo {
                remote,
                peer: peer_id(stream.get_ref().1.peer_certificates()),
            };
            let service = app.map_request(move |mut req: http::Request<hyper::body::Incoming>| {
                req.extensions_mut().insert(info.clone());
                req
            });
            let builder = Builder::new(TokioExecutor::new());
            let conn =
                builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            if let Err(e) = watcher.watch(conn.into_owned()).await {
                tracing::debug!(%remote, error = %e, "connection ended with an error");
            }
        });
    }
    let _ = tokio::time::timeout(Duration::from_secs(10), graceful.shutdown()).await;
}

/// An HTTPS endpoint of ibac's own (the issuer, the control plane), called
/// with a TLS config that decides who the server must be.
///
/// Connections are kept open between calls (HTTP/1.1 keep-alive), a few at
/// most, each for the TLS config it was made with: a proxy long-polls the
/// control plane and reports to it, and when a change reaches a hundred
/// proxies at once, a new TCP and TLS handshake per call would make them all
/// connect again in the same instant — more than a listen queue takes, so
/// some wait a second for their SYN to be sent again.
#[derive(Clone, Debug)]
pub struct Endpoint {
    authority: String,
    host: String,
    idle: Arc<std::sync::Mutex<Vec<Idle>>>,
    /// How many connections to keep between calls.
    keep_at_most: usize,
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Self) -> bool {
        self.authority == other.authority && self.host == other.host
    }
}

impl Eq for Endpoint {}

/// How many open connections an endpoint keeps between calls: one for the
/// long poll, one for reports, one for the rest.
const MAX_IDLE: usize = 3;

/// How long a kept connection may wait for its next call. A proxy's long
/// poll and reports come back within it; a certificate renewal, hours
/// apart, connects anew rather than hold a connection (and the server's
/// memory for it) all that time.
const IDLE_FOR: Duration = Duration::from_secs(15);

/// Names each kept connection, so that its expiry removes that one only.
static KEPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The sending half of an HTTP/1.1 connection.
type Sender = hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>;

/// An open connection, and the TLS config it was made with (a renewed
/// certificate makes a new config, and new connections).
struct Idle {
    id: u64,
    tls: Arc<rustls::ClientConfig>,
    sender: Sender,
}

impl std::fmt::Debug for Idle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Idle").finish_non_exhaustive()
    }
}

/// A call to an [`Endpoint`] failed before an answer came.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The address is not `https://host:port`.
    #[error("`{0}` is not an address; write it as https://host:port")]
    BadAddress(String),
    /// Connecting, TLS or HTTP failed.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The answer was larger than the caller accepts.
    #[error("the answer from {0} is too large")]
    TooLarge(String),
}

impl Endpoint {
    /// Reads `https://host:port`.
    pub fn parse(address: &str) -> Result<Self, CallError> {
        let uri: http::Uri = address
            .trim_end_matches('/')
            .parse()
            .map_err(|_| CallError::BadAddress(address.into()))?;
        match (uri.scheme_str(), uri.authority()) {
            (Some("https"), Some(authority))
                if authority.port().is_some() && uri.path().trim_matches('/').is_empty() =>
            {
                Ok(Endpoint {
                    authority: authority.to_string(),
                    host: authority.host().trim_matches(['[', ']']).to_string(),
                    idle: Arc::default(),
                    keep_at_most: MAX_IDLE,
                })
            }
            _ => Err(CallError::BadAddress(address.into())),
        }
    }

    /// The same endpoint, connecting anew for every call: for a caller whose
    /// calls are minutes or hours apart (joins, certificate renewals), where
    /// a kept connection would only hold the server's memory.
    pub fn one_shot(mut self) -> Self {
        self.keep_at_most = 0;
        self
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Sends `request` (its URI is the path) and reads at most `max_body`
    /// bytes of the answer, all within `timeout`.
    pub async fn send(
        &self,
        tls: Arc<rustls::ClientConfig>,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
        timeout: Duration,
        max_body: usize,
    ) -> Result<(http::StatusCode, bytes::Bytes), CallError> {
        match tokio::time::timeout(timeout, self.send_inner(tls, request, max_body)).await {
            Ok(result) => result,
            Err(_) => Err(self.unreachable(format!("no answer within {} s", timeout.as_secs()))),
        }
    }

    fn unreachable(&self, reason: String) -> CallError {
        CallError::Unreachable {
            addr: self.authority.clone(),
            reason,
        }
    }

    /// An open connection made with `tls`, if one is kept.
    fn take_idle(&self, tls: &Arc<rustls::ClientConfig>) -> Option<Sender> {
        let mut idle = self.idle.lock().ok()?;
        idle.retain(|i| !i.sender.is_closed());
        let at = idle
            .iter()
            .position(|i| Arc::ptr_eq(&i.tls, tls) && i.sender.is_ready())?;
        Some(idle.swap_remove(at).sender)
    }

    /// Keeps a connection for the next call, unless enough are kept.
    fn keep(&self, tls: Arc<rustls::ClientConfig>, sender: Sender) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            idle.retain(|i| Arc::ptr_eq(&i.tls, &tls) && !i.sender.is_closed());
            if idle.len() < self.keep_at_most {
                let id = KEPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                idle.push(Idle { id, tls, sender });
                let pool = Arc::downgrade(&self.idle);
                tokio::spawn(async move {
                    tokio::time::sleep(IDLE_FOR).await;
                    if let Some(pool) = pool.upgrade()
                        && let Ok(mut idle) = pool.lock()
                    {
                        idle.retain(|i| i.id != id);
                    }
                });
            }
        }
    }

    async fn connect(&self, tls: Arc<rustls::ClientConfig>) -> Result<Sender, CallError> {
        let tcp = tokio::net::TcpStream::connect(&self.authority)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let name = rustls_pki_types::ServerName::try_from(self.host.clone())
            .map_err(|e| self.unreachable(e.to_string()))?;
        let stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| self.unreachable(format!("TLS: {e}")))?;
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        tokio::spawn(conn);
        Ok(sender)
    }

    /// Sends `request` on a new connection.
    async fn send_new(
        &self,
        tls: &Arc<rustls::ClientConfig>,
        request: http::Request<http_body_util::Full<bytes::Bytes>>,
    ) -> Result<(Sender, http::Response<hyper::body::Incoming>), CallError> {
        let mut sender = self.connect(tls.clone()).await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.unreachable(e.to_string()))?;
        Ok((sender, response))
    }

    async fn send_inner(
        &self,
        tls: Arc<rustls::ClientConfig>,
        mut request: http::Request<http_body_util::Full<bytes::Bytes>>,
        max_body: usize,
    ) -> Result<(http::StatusCode, bytes::Bytes), CallError> {
        use http_body_util::BodyExt;

        if let Ok(host) = http::HeaderValue::from_str(&self.authority) {
            request.headers_mut().insert(http::header::HOST, host);
        }
        let (mut sender, response) = match self.take_idle(&tls) {
            Some(mut kept) => match kept.try_send_request(request).await {
                Ok(response) => (kept, response),
                // The server closed the kept connection before taking the
                // request: it was never handled, so it is sent again on a
                // new one.
                Err(mut e) => match e.take_message() {
                    Some(request) => self.send_new(&tls, request).await?,
                    None => return Err(self.unreachable(e.into_error().to_string())),
                },
            },
            None => self.send_new(&tls, request).await?,
        };
        let status = response.status();
        let body = http_body_util::Limited::new(response.into_body(), max_body)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge(self.authority.clone())
                } else {
                    self.unreachable(e.to_string())
                }
            })?
            .to_bytes();
        // Ready again once the answer is read; kept for the next call.
        if sender.ready().await.is_ok() {
            self.keep(tls, sender);
        }
        Ok((status, body))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn endpoints_are_https_host_and_port_only() {
        let e = Endpoint::parse("https://127.0.0.1:7443/").unwrap();
        assert_eq!(e.authority(), "127.0.0.1:7443");
        assert_eq!(Endpoint::parse("https://[::1]:7443").unwrap().host, "::1");
        for bad in [
            "http://127.0.0.1:7443",
            "https://127.0.0.1",
            "https://h:1/api",
            "nonsense",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
