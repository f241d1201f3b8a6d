//! `ibac proxy` as a user runs it: real processes (issuer, two proxies), a
//! real app, and curl as the client, through HTTP_PROXY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    app, free_port, ok_in, spawn_in, start_api_proxy, start_issuer, write_web_gets_orders,
};

fn curl(proxy: u16, method: &str, url: &str) -> (String, String) {
    let out = Command::new("curl")
        .args([
            "-s",
            "-m",
            "10",
            "-x",
            &format!("http://127.0.0.1:{proxy}"),
            "-X",
            method,
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("curl is installed (scripts/test installs it)");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.to_string(), body.to_string())
}

fn eventually(mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "condition not met within 30 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn two_proxies_enforce_intents_between_real_processes() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_issuer, issuer) = start_issuer(root, &[]);
    write_web_gets_orders(root);
    let app = app();
    let inbound = free_port();
    std::fs::write(
        root.join("discovery.yaml"),
        format!("workloads:\n  api.shop: 127.0.0.1:{inbound}\n"),
    )
    .unwrap();
    let _api = start_api_proxy(
        root,
        &issuer,
        inbound,
        app,
        &["--reports", "reports.jsonl", "--report-interval", "100ms"],
    );
    let web_token = ok_in(root, &["ca", "token", "web.shop"]);
    let outbound = free_port();
    let (_web, _) = spawn_in(
        root,
        &[
            "proxy",
            "--issuer",
            &issuer,
            "--identity-dir",
            "web-id",
            "--token",
            web_token.trim(),
            "--outbound-http",
            &format!("127.0.0.1:{outbound}"),
            "--discovery",
            "discovery.yaml",
        ],
    );
    let (code, body) = curl(outbound, "GET", "http://api.shop/orders/../orders/7");
    assert_eq!(code, "200", "{body}");
    assert_eq!(body, "/orders/7 spiffe://ibac.local/ns/shop/workload/web");
    let (code, body) = curl(outbound, "DELETE", "http://api.shop/orders/7");
    assert_eq!(code, "403");
    assert!(body.starts_with("blocked by ibac:"), "{body}");
    // Paths an app that decodes twice, or leniently, would read as `..` or `/`.
    for path in [
        "/orders/%252e%252e/admin",
        "/orders/%252E%252E/admin",
        "/orders/%25252Fadmin",
        "/orders/%c0%ae%c0%ae/admin",
    ] {
        let (code, body) = curl(outbound, "GET", &format!("http://api.shop{path}"));
        assert_eq!(code, "400", "{path}: {body}");
        assert!(body.contains("bad request path"), "{path}: {body}");
    }
    // A policy change on disk applies without a restart.
    std::fs::write(root.join("policy/intents.yaml"), "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: api, namespace: shop}\nspec: {name: api}\n").unwrap();
    eventually(|| curl(outbound, "GET", "http://api.shop/orders/7").0 == "403");
    eventually(|| {
        std::fs::read_to_string(root.join("reports.jsonl"))
            .is_ok_and(|t| t.contains("\"verdict\":\"blocked\""))
    });
}
