//! The demo shop (`ibac up --demo`): the seed tutorial's microservices
//! topology as small real services, each behind its own proxy, with a load
//! generator.
//!
//! Every service is `ibac demo-service`: it answers HTTP (or, for kafka and
//! redis-cart, a line protocol over TCP) and calls its dependencies once a
//! second through its proxy, counting answers by status. `/_stats` on its
//! app port tells what it saw, so that anyone can check that no declared
//! call failed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

use crate::topology::{Protocol, Topology, WorkloadSpec};

/// The demo's namespace, as in the seed tutorial.
pub const NAMESPACE: &str = "otterize-ecom-demo";

/// Who calls whom in the demo: (client, [(server, path)]), with `tcp:`
/// servers reached over TCP. `{id}` in a path becomes a number per call.
const CALLS: &[(&str, &[(&str, &str)])] = &[
    (
        "frontend",
        &[
            ("adservice", "/ads"),
            ("cartservice", "/cart"),
            ("checkoutservice", "/checkout"),
            ("currencyservice", "/currencies"),
            ("productcatalogservice", "/products"),
            ("recommendationservice", "/recommendations"),
            ("shippingservice", "/quote"),
        ],
    ),
    (
        "checkoutservice",
        &[
            ("cartservice", "/cart"),
            ("currencyservice", "/convert"),
            ("emailservice", "/send"),
            ("tcp:kafka", ""),
            ("paymentservice", "/charge"),
            ("productcatalogservice", "/products/{id}"),
            ("shippingservice", "/ship"),
        ],
    ),
    (
        "recommendationservice",
        &[("productcatalogservice", "/products")],
    ),
    ("cartservice", &[("tcp:redis-cart", "")]),
    ("orderservice", &[("tcp:kafka", "")]),
    (
        "loadgenerator",
        &[("frontend", "/"), ("frontend", "/product/{id}")],
    ),
];

/// Services that speak TCP rather than HTTP.
const TCP_SERVICES: &[&str] = &["kafka", "redis-cart"];

/// Every service in the demo.
const SERVICES: &[&str] = &[
    "adservice",
    "cartservice",
    "checkoutservice",
    "currencyservice",
    "emailservice",
    "frontend",
    "kafka",
    "loadgenerator",
    "orderservice",
    "paymentservice",
    "productcatalogservice",
    "recommendationservice",
    "redis-cart",
    "shippingservice",
];

/// The demo's topology. The services run as `ibac demo-service`.
pub fn topology() -> Topology {
    topology_with(SERVICES, &[])
}

/// One more workload for the tutorial: `name` calls `target`'s `path`
/// every second, and no intent declares it.
pub fn extra(name: &str, target: &str, path: &str) -> WorkloadSpec {
    WorkloadSpec {
        name: name.into(),
        namespace: Some(NAMESPACE.into()),
        command: vec![
            "ibac".into(),
            "demo-service".into(),
            "--name".into(),
            name.into(),
            "--listen".into(),
            "127.0.0.1:{port}".into(),
            "--call".into(),
            format!("http://{target}.{NAMESPACE}{path}"),
        ],
        port: None,
        protocol: Protocol::Http,
        tcp: Vec::new(),
        env: BTreeMap::new(),
    }
}

fn topology_with(services: &[&str], extra: &[WorkloadSpec]) -> Topology {
    let mut workloads = Vec::new();
    for &name in services {
        let tcp_service = TCP_SERVICES.contains(&name);
        let mut command = vec![
            "ibac".to_string(),
            "demo-service".into(),
            "--name".into(),
            name.into(),
            "--listen".into(),
            "127.0.0.1:{port}".into(),
        ];
        if tcp_service {
            command.push("--tcp".into());
        }
        let mut tcp = Vec::new();
        for (client, calls) in CALLS {
            if *client != name {
                continue;
            }
            for (server, path) in *calls {
                match server.strip_prefix("tcp:") {
                    Some(target) => {
                        tcp.push(target.to_string());
                        command.push("--call-tcp".into());
                        command.push(format!("{target}={{tcp:{target}}}"));
                    }
                    None => {
                        command.push("--call".into());
                        command.push(format!("http://{server}.{NAMESPACE}{path}"));
                    }
                }
            }
        }
        workloads.push(WorkloadSpec {
            name: name.into(),
            namespace: Some(NAMESPACE.into()),
            command,
            port: None,
            protocol: if tcp_service {
                Protocol::Tcp
            } else {
                Protocol::Http
            },
            tcp,
            env: BTreeMap::new(),
        });
    }
    workloads.extend(extra.iter().cloned());
    Topology { workloads }
}

/// How the calls to one target went.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStats {
    /// Answered with success.
    pub ok: u64,
    /// Answered with an error status, refused, or not answered.
    pub failed: u64,
    /// The last failure, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// What a demo service saw: its calls by target, and requests served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// The service.
    pub name: String,
    /// Requests (or connections) served.
    pub served: u64,
    /// Its calls, by target (`name.namespace`).
    pub calls: BTreeMap<String, TargetStats>,
}

/// A demo service's settings.
#[derive(Clone, Debug)]
pub struct DemoService {
    /// Its name.
    pub name: String,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Speak a line protocol over TCP instead of HTTP.
    pub tcp: bool,
    /// HTTP URLs to call, through `proxy`.
    pub calls: Vec<String>,
    /// TCP targets to call: (name, address).
    pub tcp_calls: Vec<(String, SocketAddr)>,
    /// The HTTP proxy (`HTTP_PROXY`).
    pub proxy: Option<SocketAddr>,
    /// How often to call.
    pub interval: Duration,
}

type Shared = Arc<Mutex<Stats>>;

fn record(stats: &Shared, target: &str, result: Result<(), String>) {
    if let Ok(mut s) = stats.lock() {
        let t = s.calls.entry(target.to_string()).or_default();
        match result {
            Ok(()) => t.ok += 1,
            Err(e) => {
                t.failed += 1;
                t.last_error = Some(e);
            }
        }
    }
}

/// Where a URL's host is, for the stats: `name.namespace`.
fn target_of(url: &str) -> String {
    url.trim_start_matches("http://")
        .split(['/', ':'])
        .next()
        .unwrap_or(url)
        .to_string()
}

async fn call_http(proxy: SocketAddr, url: &str) -> Result<(), String> {
    let tcp = TcpStream::connect(proxy)
        .await
        .map_err(|e| format!("proxy: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let host = target_of(url);
    let request = http::Request::get(url)
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body).trim()
        ))
    }
}

async fn call_tcp(addr: SocketAddr) -> Result<(), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(tcp);
    reader
        .get_mut()
        .write_all(b"ping\n")
        .await
        .map_err(|e| e.to_string())?;
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
        .await
        .map_err(|_| "no answer within 10 s".to_string())?
        .map_err(|e| e.to_string())?;
    if line.starts_with("ok") {
        Ok(())
    } else {
        Err("the connection was closed".into())
    }
}

/// A number to put in `{id}`.
fn some_id(counter: u64) -> String {
    (1000 + (counter * 7919) % 9000).to_string()
}

async fn caller(service: DemoService, stats: Shared) {
    // The first calls wait one interval: the services start together.
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + service.interval,
        service.interval,
    );
    let mut n: u64 = 0;
    loop {
        tick.tick().await;
        n += 1;
        if let Some(proxy) = service.proxy {
            for url in &service.calls {
                let url = url.replace("{id}", &some_id(n));
                let result = call_http(proxy, &url).await;
                if let Err(e) = &result {
                    tracing::warn!(target_url = %url, error = %e, "call failed");
                }
                record(&stats, &target_of(&url), result);
            }
        }
        for (name, addr) in &service.tcp_calls {
            let result = call_tcp(*addr).await;
            if let Err(e) = &result {
                tracing::warn!(target = %name, error = %e, "call failed");
            }
            record(&stats, name, result);
        }
    }
}

async fn answer(State(stats): State<Shared>, uri: http::Uri) -> impl IntoResponse {
    let name = match stats.lock() {
        Ok(mut s) => {
            s.served += 1;
            s.name.clone()
        }
        Err(_) => String::new(),
    };
    Json(serde_json::json!({ "service": name, "path": uri.path() }))
}

async fn stats_page(State(stats): State<Shared>) -> impl IntoResponse {
    Json(stats.lock().map(|s| s.clone()).unwrap_or_default())
}

/// Runs the service until the process ends.
pub async fn run(service: DemoService) -> anyhow::Result<()> {
    let stats: Shared = Arc::new(Mutex::new(Stats {
        name: service.name.clone(),
        ..Stats::default()
    }));
    let listener = TcpListener::bind(service.listen).await?;
    tokio::spawn(caller(service.clone(), stats.clone()));
    if service.tcp {
        loop {
            let (stream, _) = listener.accept().await?;
            let stats = stats.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                while matches!(reader.read_line(&mut line).await, Ok(n) if n > 0) {
                    if let Ok(mut s) = stats.lock() {
                        s.served += 1;
                    }
                    if reader.get_mut().write_all(b"ok\n").await.is_err() {
                        break;
                    }
                    line.clear();
                }
            });
        }
    }
    let app = Router::new()
        .route("/_stats", get(stats_page))
        .fallback(answer)
        .with_state(stats);
    axum::serve(listener, app).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn the_demo_topology_is_the_tutorials() {
        let t = topology();
        assert_eq!(t.workloads.len(), 14);
        let checkout = t
            .workloads
            .iter()
            .find(|w| w.name == "checkoutservice")
            .unwrap();
        assert_eq!(checkout.tcp, ["kafka"]);
        assert_eq!(
            checkout.command.iter().filter(|a| *a == "--call").count(),
            6,
            "cart, currency, email, payment, catalog, shipping over HTTP"
        );
        let kafka = t.workloads.iter().find(|w| w.name == "kafka").unwrap();
        assert_eq!(kafka.protocol, Protocol::Tcp);
        let text = ibac_model::yaml::to_yaml(&t).unwrap();
        assert_eq!(
            Topology::parse("demo.yaml", &text).unwrap(),
            t,
            "the demo topology reads back"
        );
    }
}
