//! Client proxy → server proxy → app, over real mTLS on 127.0.0.1: what is
//! allowed, blocked, reported, and what reaches the app.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use ibac_model::fixtures::{intents, protected};
use ibac_model::http::Method;
use ibac_policy::Verdict;
use ibac_proxy::{NoReports, Protocol, ProxyConfig, StaticPolicy};
use support::*;

const SERVER: &str = "api.shop";
const CLIENT: &str = "web.shop";

struct Pair {
    pki: Pki,
    app: App,
    server: Running,
    client: Running,
    policy: Arc<StaticPolicy>,
    sink: Arc<MemorySink>,
}

async fn pair(policy: Option<ibac_policy::Policy>, permissive: bool) -> Pair {
    let pki = Pki::new();
    let app = App::start().await;
    let policy = Arc::new(StaticPolicy::new(policy));
    let sink = Arc::new(MemorySink::default());
    let server_config = ProxyConfig {
        inbound: inbound(app.addr, Some(8080), Protocol::Http, permissive),
        report_interval: Duration::from_millis(100),
        ..ProxyConfig::default()
    };
    let server = start(
        server_config,
        pki.identity(SERVER),
        &policy,
        discovery(&[]),
        sink.clone(),
    )
    .await;
    let inbound = server.addresses.inbound.unwrap();
    let client_config = ProxyConfig {
        outbound_http: Some("127.0.0.1:0".parse().unwrap()),
        ..ProxyConfig::default()
    };
    let client_policy = StaticPolicy::new(None);
    let client = start(
        client_config,
        pki.identity(CLIENT),
        &client_policy,
        discovery(&[(SERVER, inbound)]),
        Arc::new(NoReports),
    )
    .await;
    Pair {
        pki,
        app,
        server,
        client,
        policy,
        sink,
    }
}

impl Pair {
    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        self.call("GET", path, headers).await
    }

    async fn call(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
        http(
            self.client.addresses.outbound_http.unwrap(),
            method,
            &format!("http://{SERVER}:8080{path}"),
            headers,
        )
        .await
    }
}

fn declared_and_protected() -> ibac_policy::Policy {
    policy(vec![
        intents(CLIENT).calls(SERVER).get("/orders/*").build(),
        protected(SERVER),
    ])
}

#[tokio::test]
async fn an_allowed_call_reaches_the_app_with_the_verified_identity() {
    let p = pair(Some(declared_and_protected()), false).await;
    let (status, body) = p
        .get(
            "/orders/7?x=1",
            &[(
                "x-ibac-peer-id",
                "spiffe://ibac.local/ns/kube-system/workload/admin",
            )],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = p.app.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/orders/7?x=1");
    assert_eq!(
        seen[0].headers["x-ibac-peer-id"], "spiffe://ibac.local/ns/shop/workload/web",
        "the forged header is replaced"
    );
    assert_eq!(seen[0].headers["host"], "api.shop");
}

#[tokio::test]
async fn a_blocked_call_gets_403_with_a_reason_and_never_reaches_the_app() {
    let p = pair(Some(declared_and_protected()), false).await;
    let (status, body) = p.call("DELETE", "/orders/7", &[]).await;
    assert_eq!(status, 403);
    assert!(
        body.starts_with(
            "blocked by ibac: no intent covers it; the client's intents allow: GET /orders/*"
        ),
        "{body}"
    );
    let (status, _) = p.get("/orders/../admin", &[]).await;
    assert_eq!(status, 403, "dot segments are resolved before matching");
    assert!(p.app.requests().is_empty());
}

#[tokio::test]
async fn the_app_receives_the_normalized_path_never_the_raw_one() {
    let p = pair(Some(declared_and_protected()), false).await;
    let (status, _) = p.get("//orders/x/../%37", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(p.app.requests()[0].uri, "/orders/7");
    let (status, body) = p.get("/orders/a%2Fb", &[]).await;
    assert_eq!(status, 400, "{body}");
}

#[tokio::test]
async fn method_override_headers_are_never_trusted() {
    let p = pair(Some(declared_and_protected()), false).await;
    let (status, _) = p
        .call("POST", "/orders/1", &[("x-http-method-override", "GET")])
        .await;
    assert_eq!(status, 403, "the real method decides");
    let (status, _) = p
        .get(
            "/orders/1",
            &[
                ("x-http-method-override", "DELETE"),
                ("x-method-override", "DELETE"),
            ],
        )
        .await;
    assert_eq!(status, 200);
    let seen = &p.app.requests()[0];
    assert!(
        !seen.headers.contains_key("x-http-method-override")
            && !seen.headers.contains_key("x-method-override")
    );
}

#[tokio::test]
async fn shadow_mode_lets_calls_through_and_reports_them() {
    let shadow = policy(vec![intents(CLIENT).calls(SERVER).get("/orders/*").build()]);
    let p = pair(Some(shadow), false).await;
    assert_eq!(p.get("/orders/1", &[]).await.0, 200);
    assert_eq!(
        p.get("/admin", &[]).await.0,
        200,
        "would be blocked, but not blocked"
    );
    assert_eq!(p.get("/admin", &[]).await.0, 200);
    let reports = wait_for_reports(&p.sink, 2).await;
    let admin = reports
        .iter()
        .find(|r| r.path.as_deref() == Some("/admin"))
        .unwrap();
    assert_eq!(admin.verdict, Verdict::WouldBeBlocked);
    assert_eq!(admin.count, 2);
    assert_eq!(
        admin.client.as_ref().map(ToString::to_string).as_deref(),
        Some(CLIENT)
    );
    assert_eq!(admin.port, 8080);
    assert_eq!(admin.method.as_deref(), Some("GET"));
    let orders = reports
        .iter()
        .find(|r| r.path.as_deref() == Some("/orders/1"))
        .unwrap();
    assert_eq!(orders.verdict, Verdict::Allowed);
}

async fn wait_for_reports(sink: &MemorySink, at_least: usize) -> Vec<ibac_proxy::Report> {
    for _ in 0..400 {
        let reports = sink.0.lock().unwrap().clone();
        if reports.len() >= at_least {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("no reports within 10 s");
}

#[tokio::test]
async fn with_no_policy_ever_loaded_everything_is_denied() {
    let p = pair(None, false).await;
    let (status, body) = p.get("/orders/1", &[]).await;
    assert_eq!(status, 403);
    assert!(body.contains("no policy has been loaded yet"), "{body}");
    p.policy.set(declared_and_protected());
    assert_eq!(
        p.get("/orders/1", &[]).await.0,
        200,
        "a reload applies at once"
    );
}

#[tokio::test]
async fn permissive_mode_accepts_plaintext_as_unauthenticated() {
    let shadow = policy(vec![intents(CLIENT).calls(SERVER).build()]);
    let p = pair(Some(shadow), true).await;
    let inbound = p.server.addresses.inbound.unwrap();
    let (status, _) = http(
        inbound,
        "GET",
        "/plain",
        &[("x-ibac-peer-id", "spiffe://forged")],
    )
    .await;
    assert_eq!(status, 200, "shadow: would-be-blocked, let through");
    let seen = p.app.requests();
    assert!(
        !seen[0].headers.contains_key("x-ibac-peer-id"),
        "no verified identity, no identity header"
    );
    assert_eq!(
        p.get("/tls", &[]).await.0,
        200,
        "TLS still works on the same port"
    );
    p.policy.set(policy(vec![
        intents(CLIENT).calls(SERVER).build(),
        protected(SERVER),
    ]));
    assert_eq!(
        http(inbound, "GET", "/plain", &[]).await.0,
        403,
        "protected: unauthenticated is blocked"
    );
    assert_eq!(p.get("/tls", &[]).await.0, 200);
}

#[tokio::test]
async fn without_permissive_mode_plaintext_is_refused() {
    let p = pair(Some(declared_and_protected()), false).await;
    let answer = raw(
        p.server.addresses.inbound.unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(!answer.contains("200"), "{answer}");
}

#[tokio::test]
async fn the_outbound_proxy_only_carries_requests_for_known_workloads() {
    let p = pair(Some(declared_and_protected()), false).await;
    let out = p.client.addresses.outbound_http.unwrap();
    let connect = raw(
        out,
        b"CONNECT api.shop:443 HTTP/1.1\r\nHost: api.shop:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    assert_eq!(
        http(out, "GET", "/orders/1", &[]).await.0,
        400,
        "origin-form is not a proxy request"
    );
    assert_eq!(
        http(out, "GET", "http://www.example.com/", &[]).await.0,
        403,
        "not name.namespace"
    );
    let (status, body) = http(out, "GET", "http://ghost.shop/x", &[]).await;
    assert_eq!(status, 502);
    assert!(
        body.contains("where `ghost.shop` runs is unknown"),
        "{body}"
    );
}

#[tokio::test]
async fn the_client_refuses_a_server_that_is_not_the_intended_target() {
    let p = pair(Some(declared_and_protected()), false).await;
    // Discovery points db.shop at api.shop's proxy: its SVID is not db.shop's.
    let client = start(
        ProxyConfig {
            outbound_http: Some("127.0.0.1:0".parse().unwrap()),
            ..ProxyConfig::default()
        },
        p.pki.identity(CLIENT),
        &StaticPolicy::new(None),
        discovery(&[("db.shop", p.server.addresses.inbound.unwrap())]),
        Arc::new(NoReports),
    )
    .await;
    let (status, body) = http(
        client.addresses.outbound_http.unwrap(),
        "GET",
        "http://db.shop/x",
        &[],
    )
    .await;
    assert_eq!(status, 502);
    assert!(
        body.contains("not the intended `spiffe://ibac.local/ns/shop/workload/db`"),
        "{body}"
    );
    assert!(p.app.requests().is_empty());
}

#[tokio::test]
async fn head_is_allowed_where_get_is() {
    let p = pair(
        Some(policy(vec![
            intents(CLIENT)
                .calls(SERVER)
                .http(&[Method::Get], "/x")
                .build(),
            protected(SERVER),
        ])),
        false,
    )
    .await;
    assert_eq!(p.call("HEAD", "/x", &[]).await.0, 200);
    assert_eq!(p.call("POST", "/x", &[]).await.0, 403);
}

#[tokio::test]
async fn shutdown_lets_an_open_request_finish() {
    let p = pair(
        Some(policy(vec![intents(CLIENT).calls(SERVER).build()])),
        false,
    )
    .await;
    let out = p.client.addresses.outbound_http.unwrap();
    let slow =
        tokio::spawn(async move { http(out, "GET", &format!("http://{SERVER}/slow"), &[]).await });
    for _ in 0..200 {
        if !p.app.requests().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    p.server.shutdown().await;
    let (status, _) = slow.await.unwrap();
    assert_eq!(
        status, 200,
        "the request in flight completed during the drain"
    );
}
