//! Test helpers: a CA and identities, an app that echoes what it received,
//! proxies started on ephemeral ports, and small HTTP clients.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use ibac_identity::tls::SharedBundle;
use ibac_identity::{Ca, SpiffeId, Svid, TrustDomain};
use ibac_model::{Document, WorkloadId};
use ibac_policy::{NoFacts, Policy};
use ibac_proxy::{
    Addresses, Discovery, InboundConfig, NoReports, Protocol, Proxy, ProxyConfig, ProxyIdentity,
    Report, ReportSink, StaticDiscovery, StaticPolicy,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub fn id(text: &str) -> WorkloadId {
    WorkloadId::parse(text).unwrap()
}

pub struct Pki {
    pub ca: Ca,
    pub bundle: SharedBundle,
}

impl Pki {
    pub fn new() -> Self {
        let ca = Ca::generate_root(
            TrustDomain::default(),
            time::OffsetDateTime::now_utc(),
            time::Duration::days(1),
        )
        .unwrap();
        let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
        Pki { ca, bundle }
    }

    pub fn svid(&self, workload: &str) -> Svid {
        let spiffe = SpiffeId::for_workload(self.ca.trust_domain(), &id(workload));
        self.ca
            .issue_with_new_key(
                &spiffe,
                time::Duration::hours(1),
                time::OffsetDateTime::now_utc(),
            )
            .unwrap()
    }

    pub fn identity(&self, workload: &str) -> ProxyIdentity {
        ProxyIdentity::fixed(self.svid(workload), self.bundle.clone()).unwrap()
    }
}

/// What the app saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// An HTTP app that answers 200 with the path it saw, and remembers every request.
pub struct App {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl App {
    pub async fn start() -> App {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let log = log.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let log = log.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body
                                .collect()
                                .await
                                .map(|b| b.to_bytes().to_vec())
                                .unwrap_or_default();
                            let seen = Seen {
                                method: parts.method.to_string(),
                                uri: parts.uri.to_string(),
                                headers: parts
                                    .headers
                                    .iter()
                                    .map(|(k, v)| {
                                        (k.to_string(), v.to_str().unwrap_or("?").to_string())
                                    })
                                    .collect(),
                                body,
                            };
                            let answer = format!("{} {}", seen.method, seen.uri);
                            log.lock().unwrap().push(seen);
                            if parts.uri.path() == "/slow" {
                                tokio::time::sleep(Duration::from_millis(700)).await;
                            }
                            Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from(
                                answer,
                            ))))
                        }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        App { addr, seen }
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A TCP app that echoes every byte back.
pub async fn tcp_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = tcp.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr
}

#[derive(Default)]
pub struct MemorySink(pub Mutex<Vec<Report>>);

impl ReportSink for MemorySink {
    fn send(&self, batch: &[Report]) -> std::io::Result<()> {
        self.0.lock().unwrap().extend_from_slice(batch);
        Ok(())
    }
}

pub fn policy(docs: Vec<Document>) -> Policy {
    let (policy, errors) = Policy::build(docs, &NoFacts);
    assert!(errors.is_empty(), "{errors:?}");
    policy
}

pub struct Running {
    pub addresses: Addresses,
    pub stop: Option<tokio::sync::oneshot::Sender<()>>,
    pub done: tokio::task::JoinHandle<()>,
}

impl Running {
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(20), self.done).await;
    }
}

pub async fn start(
    config: ProxyConfig,
    identity: ProxyIdentity,
    policy: &StaticPolicy,
    discovery: Arc<dyn Discovery>,
    sink: Arc<dyn ReportSink>,
) -> Running {
    let proxy = Proxy::bind(config, identity, policy, discovery, sink)
        .await
        .unwrap();
    let addresses = proxy.addresses();
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let done = tokio::spawn(async move {
        proxy
            .run(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    Running {
        addresses,
        stop: Some(stop),
        done,
    }
}

/// An inbound listener on an ephemeral port in front of `app`.
pub fn inbound(
    app: SocketAddr,
    port: Option<u16>,
    protocol: Protocol,
    permissive: bool,
) -> Option<InboundConfig> {
    Some(InboundConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        app,
        port,
        protocol,
        permissive,
    })
}

/// A proxy that discovers no one and reports nowhere: the serving side of a
/// test that only looks at what reaches its app.
pub async fn start_serving(
    config: ProxyConfig,
    identity: ProxyIdentity,
    policy: &StaticPolicy,
) -> Running {
    start(
        config,
        identity,
        policy,
        discovery(&[]),
        Arc::new(NoReports),
    )
    .await
}

pub fn discovery(entries: &[(&str, SocketAddr)]) -> Arc<dyn Discovery> {
    Arc::new(StaticDiscovery(
        entries.iter().map(|(k, v)| (id(k), *v)).collect(),
    ))
}

/// Sends raw bytes and reads everything until the peer closes (or 10 s).
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// A plain HTTP/1.1 request (absolute- or origin-form as given) to `addr`.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().method(method).uri(target);
    let mut has_host = false;
    for (k, v) in headers {
        has_host |= k.eq_ignore_ascii_case("host");
        req = req.header(*k, *v);
    }
    if !has_host {
        req = req.header("host", "test");
    }
    let response = sender
        .send_request(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}
