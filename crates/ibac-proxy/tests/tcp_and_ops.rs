//! L4 relaying with decisions per connection (and closing connections a new
//! policy blocks), per-target outbound listeners, policy and discovery files,
//! reports on disk, the admin port, and SVID renewal under open connections.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use ibac_model::Namespace;
use ibac_model::fixtures::{intents, protected};
use ibac_proxy::{
    FileDiscovery, FilePolicySource, JsonlSink, NoReports, PolicySource, Protocol, ProxyConfig,
    StaticPolicy,
};
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct L4 {
    pki: Pki,
    policy: Arc<StaticPolicy>,
    client: Running,
    _server: Running,
}

/// db.shop serves TCP (an echo app); web.shop reaches it through an outbound TCP listener.
async fn l4(initial: ibac_policy::Policy) -> L4 {
    let pki = Pki::new();
    let echo = tcp_echo().await;
    let policy = Arc::new(StaticPolicy::new(Some(initial)));
    let server = start_serving(
        ProxyConfig {
            inbound: inbound(echo, Some(5432), Protocol::Tcp, false),
            ..ProxyConfig::default()
        },
        pki.identity("db.shop"),
        &policy,
    )
    .await;
    let client = start(
        ProxyConfig {
            outbound_tcp: vec![(id("db.shop"), "127.0.0.1:0".parse().unwrap())],
            ..ProxyConfig::default()
        },
        pki.identity("web.shop"),
        &StaticPolicy::new(None),
        discovery(&[("db.shop", server.addresses.inbound.unwrap())]),
        Arc::new(NoReports),
    )
    .await;
    L4 {
        pki,
        policy,
        client,
        _server: server,
    }
}

async fn echo_once(tcp: &mut TcpStream, text: &[u8]) -> Option<Vec<u8>> {
    tcp.write_all(text).await.ok()?;
    let mut buf = vec![0u8; text.len()];
    match tokio::time::timeout(Duration::from_secs(5), tcp.read_exact(&mut buf)).await {
        Ok(Ok(_)) => Some(buf),
        _ => None,
    }
}

/// web.shop allowed to call db.shop on any port, and one connection through
/// the outbound listener that has already relayed `first`.
async fn open_connection(first: &[u8]) -> (L4, TcpStream) {
    let t = l4(policy(vec![
        intents("web.shop").calls("db.shop").build(),
        protected("db.shop"),
    ]))
    .await;
    let mut tcp = TcpStream::connect(t.client.addresses.outbound_tcp[0].1)
        .await
        .unwrap();
    assert!(echo_once(&mut tcp, first).await.is_some());
    (t, tcp)
}

#[tokio::test]
async fn allowed_connections_relay_bytes_and_blocked_ones_close() {
    let t = l4(policy(vec![
        intents("web.shop").calls("db.shop").port(5432).build(),
        protected("db.shop"),
    ]))
    .await;
    let listener = t.client.addresses.outbound_tcp[0].1;
    let mut tcp = TcpStream::connect(listener).await.unwrap();
    assert_eq!(
        echo_once(&mut tcp, b"ping").await.as_deref(),
        Some(&b"ping"[..])
    );
    t.policy.set(policy(vec![
        intents("web.shop").calls("db.shop").port(6543).build(),
        protected("db.shop"),
    ]));
    let mut fresh = TcpStream::connect(listener).await.unwrap();
    assert_eq!(
        echo_once(&mut fresh, b"ping").await,
        None,
        "port 5432 is no longer declared"
    );
    let _ = t.pki;
}

#[tokio::test]
async fn a_policy_change_closes_open_connections_it_now_blocks() {
    let (t, mut tcp) = open_connection(b"one").await;
    t.policy.set(policy(vec![protected("db.shop")]));
    let mut closed = false;
    for _ in 0..200 {
        if echo_once(&mut tcp, b"two").await.is_none() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(closed, "the open connection was closed once blocked");
}

#[tokio::test]
async fn a_policy_change_that_still_allows_keeps_connections() {
    let (t, mut tcp) = open_connection(b"one").await;
    t.policy.set(policy(vec![
        intents("web.shop").calls("db.shop").port(5432).build(),
        protected("db.shop"),
    ]));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(echo_once(&mut tcp, b"two").await.is_some());
}

#[tokio::test]
async fn a_renewed_svid_does_not_drop_open_connections() {
    let (t, mut tcp) = open_connection(b"before").await;
    // The proxy's resolver is swapped as renewal does.
    let identity = t.pki.identity("db.shop");
    identity.resolver().replace(&t.pki.svid("db.shop")).unwrap();
    assert!(echo_once(&mut tcp, b"after").await.is_some());
}

#[tokio::test]
async fn policy_files_are_watched_and_a_bad_version_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("intents.yaml");
    let good = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: api}\nspec: {name: api}\n";
    std::fs::write(&file, good).unwrap();
    let source = FilePolicySource::spawn(
        vec![dir.path().to_path_buf()],
        Namespace::parse("shop").unwrap(),
        Duration::from_millis(50),
    );
    let mut rx = source.subscribe();
    let first = tokio::time::timeout(Duration::from_secs(10), rx.wait_for(Option::is_some))
        .await
        .unwrap()
        .unwrap()
        .clone()
        .unwrap();
    assert!(first.protection(&id("api.shop")).is_protected());
    std::fs::write(
        &file,
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nspec: {name: [broken\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let still = rx.borrow().clone().unwrap();
    assert!(
        Arc::ptr_eq(&still, &first),
        "the bad version was not applied"
    );
    std::fs::write(&file, good.replace("name: api", "name: db")).unwrap();
    let next = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|p| {
            p.as_ref()
                .is_some_and(|p| p.protection(&id("db.shop")).is_protected())
        }),
    )
    .await
    .unwrap()
    .unwrap()
    .clone()
    .unwrap();
    assert!(!next.protection(&id("api.shop")).is_protected());
}

#[tokio::test]
async fn discovery_files_are_read_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("discovery.yaml");
    std::fs::write(&file, "workloads:\n  api.shop: 127.0.0.1:15001\n").unwrap();
    let d = FileDiscovery::spawn(file.clone(), Duration::from_millis(50)).unwrap();
    use ibac_proxy::Discovery;
    assert_eq!(
        d.resolve(&id("api.shop")),
        Some("127.0.0.1:15001".parse().unwrap())
    );
    std::fs::write(&file, "workloads:\n  API: nowhere\n").unwrap();
    assert!(ibac_proxy::discovery::read_table(&file).is_err());
}

#[tokio::test]
async fn reports_go_to_a_json_lines_file_and_admin_tells_health() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new();
    let app = App::start().await;
    let policy = StaticPolicy::new(None);
    let sink = Arc::new(JsonlSink::open(&dir.path().join("reports.jsonl")).unwrap());
    let server = start(
        ProxyConfig {
            inbound: inbound(app.addr, Some(8080), Protocol::Http, true),
            admin: Some("127.0.0.1:0".parse().unwrap()),
            report_interval: Duration::from_millis(50),
            ..ProxyConfig::default()
        },
        pki.identity("api.shop"),
        &policy,
        discovery(&[]),
        sink,
    )
    .await;
    let admin = server.addresses.admin.unwrap();
    assert_eq!(http(admin, "GET", "/healthz", &[]).await.0, 200);
    assert_eq!(
        http(admin, "GET", "/readyz", &[]).await.0,
        503,
        "no policy yet"
    );
    policy.set(support::policy(vec![
        intents("web.shop").calls("api.shop").build(),
    ]));
    assert_eq!(http(admin, "GET", "/readyz", &[]).await.0, 200);
    let inbound = server.addresses.inbound.unwrap();
    assert_eq!(http(inbound, "GET", "/x/../y", &[]).await.0, 200);
    let (_, metrics) = http(admin, "GET", "/metrics", &[]).await;
    assert!(metrics.contains("ibac_proxy_decisions_total{direction=\"inbound\",kind=\"http\",verdict=\"would-be-blocked\"}"), "{metrics}");
    server.shutdown().await;
    let text = std::fs::read_to_string(dir.path().join("reports.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(line["reporter"], "api.shop");
    assert_eq!(
        line["client"],
        serde_json::Value::Null,
        "plaintext callers are unauthenticated"
    );
    assert_eq!(line["path"], "/y");
    assert_eq!(line["verdict"], "would-be-blocked");
    assert_eq!(line["protocol"], "http");
    assert!(line["firstSeen"].as_str().unwrap().ends_with('Z'));
}
