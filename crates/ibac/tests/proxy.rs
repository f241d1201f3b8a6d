//! `ibac proxy` as a user runs it: real processes (issuer, two proxies), a
//! real app, and curl as the client, through HTTP_PROXY.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ibac(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Starts a long-running ibac command and returns it with its first line.
fn spawn(dir: &Path, args: &[&str]) -> (Guard, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (Guard(child), line)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A minimal app: answers every request with 200 and the path.
fn app() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                use std::io::{Read, Write};
                let mut buf = [0u8; 4096];
                let n = stream.read(&mut buf).unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]);
                let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                let peer = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-ibac-peer-id: "))
                    .unwrap_or("none")
                    .to_string();
                let body = format!("{path} {peer}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    port
}

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
    ibac(root, &["ca", "init"]);
    let (_issuer, banner) = spawn(root, &["ca", "serve", "--listen", "127.0.0.1:0"]);
    let issuer = banner.split_whitespace().last().unwrap().to_string();
    std::fs::create_dir(root.join("policy")).unwrap();
    std::fs::write(
        root.join("policy/intents.yaml"),
        "apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: web, namespace: shop}
spec:
  workload: {name: web}
  targets:
  - kubernetes: {name: api, http: [{path: /orders/*, methods: [GET]}]}
---
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: api, namespace: shop}
spec: {name: api}
",
    )
    .unwrap();
    let app = app();
    let inbound = free_port();
    std::fs::write(
        root.join("discovery.yaml"),
        format!("workloads:\n  api.shop: 127.0.0.1:{inbound}\n"),
    )
    .unwrap();
    let api_token = ibac(root, &["ca", "token", "api.shop"]);
    let web_token = ibac(root, &["ca", "token", "web.shop"]);
    let (_api, _) = spawn(
        root,
        &[
            "proxy",
            "--issuer",
            &issuer,
            "--identity-dir",
            "api-id",
            "--token",
            api_token.trim(),
            "--listen",
            &format!("127.0.0.1:{inbound}"),
            "--app",
            &format!("127.0.0.1:{app}"),
            "--policy",
            "policy",
            "--reports",
            "reports.jsonl",
            "--report-interval",
            "100ms",
        ],
    );
    let outbound = free_port();
    let (_web, _) = spawn(
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
