//! What the end-to-end tests share: the `ibac` binary, processes that are
//! stopped however a test ends, the demo's CLI, a minimal app, and polling.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const NS: &str = "otterize-ecom-demo";
pub const CATALOG: &str = "productcatalogservice.otterize-ecom-demo";

pub fn ibac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ibac"))
}

/// `ibac` run in `dir`, away from any CA the environment names: the CA of a
/// test is the one `ibac ca init` makes there.
pub fn ibac_at(dir: &Path) -> Command {
    let mut command = ibac();
    command.current_dir(dir).env_remove("IBAC_CA_DIR");
    command
}

/// Runs `ibac args` in `dir` and returns what it printed; the test fails,
/// with both outputs, if it does.
pub fn ok_in(dir: &Path, args: &[&str]) -> String {
    stdout_of(ibac_at(dir).args(args))
}

/// Runs `command` and returns what it printed; the test fails, with both
/// outputs, if it does.
pub fn stdout_of(command: &mut Command) -> String {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{command:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A child process that is killed when the test ends, however it ends.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a long-running `ibac` in `dir` with its output to be read line by
/// line; keep the reader while the process should be able to print.
pub fn spawn_piped(dir: &Path, args: &[&str]) -> (Guard, BufReader<ChildStdout>) {
    let mut child = ibac_at(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (Guard(child), out)
}

pub fn first_line(out: &mut BufReader<ChildStdout>) -> String {
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    line
}

/// Starts a long-running `ibac` in `dir` and returns it with the first line
/// it printed (where it serves, for the servers).
pub fn spawn_in(dir: &Path, args: &[&str]) -> (Guard, String) {
    let (guard, mut out) = spawn_piped(dir, args);
    let line = first_line(&mut out);
    (guard, line)
}

/// `ibac ca init` in `root`, with `init` as further arguments, and the
/// issuer `ibac ca serve` then runs: the process and its URL.
pub fn start_issuer(root: &Path, init: &[&str]) -> (Guard, String) {
    let mut args = vec!["ca", "init"];
    args.extend_from_slice(init);
    ok_in(root, &args);
    let (issuer, banner) = spawn_in(root, &["ca", "serve", "--listen", "127.0.0.1:0"]);
    let url = banner.split_whitespace().last().unwrap().to_string();
    (issuer, url)
}

/// The proxy of api.shop, joined through the issuer at `issuer`: it listens
/// on `inbound` in front of the app on `app` and enforces `policy/` of
/// `root`, with `extra` as further arguments.
pub fn start_api_proxy(root: &Path, issuer: &str, inbound: u16, app: u16, extra: &[&str]) -> Guard {
    let token = ok_in(root, &["ca", "token", "api.shop"]);
    let listen = format!("127.0.0.1:{inbound}");
    let app = format!("127.0.0.1:{app}");
    let mut args = vec![
        "proxy",
        "--issuer",
        issuer,
        "--identity-dir",
        "api-id",
        "--token",
        token.trim(),
        "--listen",
        &listen,
        "--app",
        &app,
        "--policy",
        "policy",
    ];
    args.extend_from_slice(extra);
    spawn_in(root, &args).0
}

/// web.shop may GET /orders/* of api.shop, which is protected.
pub const WEB_GETS_ORDERS: &str = "apiVersion: k8s.otterize.com/v2beta1
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
";

/// Writes [`WEB_GETS_ORDERS`] as `policy/intents.yaml` in `root`.
pub fn write_web_gets_orders(root: &Path) {
    std::fs::create_dir(root.join("policy")).unwrap();
    std::fs::write(root.join("policy/intents.yaml"), WEB_GETS_ORDERS).unwrap();
}

/// A minimal app: answers every request with 200, the path and the caller's
/// SPIFFE ID as the proxy in front of it passed it on (`none` without one).
pub fn app() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
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

pub fn free_port() -> u16 {
    free_ports::<1>()[0]
}

/// Distinct free ports: each stays bound until all are picked, or the
/// kernel could hand out the same one twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// Children killed when the test ends, however it ends.
pub struct Processes(pub Vec<Child>);

impl Drop for Processes {
    fn drop(&mut self) {
        // SIGTERM first: `ibac up` stops what it started.
        for c in &self.0 {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
        }
        for c in &mut self.0 {
            for _ in 0..100 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Demo {
    pub dir: PathBuf,
    pub url: String,
}

impl Demo {
    /// `ibac args` pointed at this demo's data and control plane.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = ibac();
        command
            .args(args)
            .env("IBAC_DATA_DIR", &self.dir)
            .env("IBAC_CONTROL", &self.url);
        command
    }

    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        stdout_of(&mut self.command(args))
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    pub fn graph(&self) -> Value {
        self.json(&["get", "graph", "-o", "json"])
    }

    /// Every workload as `ibac get workloads` lists it.
    pub fn workloads(&self) -> Value {
        self.json(&["get", "workloads", "-o", "json"])
    }

    pub fn app_port(&self, workload: &str) -> u16 {
        let workloads = self.workloads();
        find_workload(&workloads, workload)
            .and_then(|w| w["appPort"].as_u64())
            .unwrap_or_else(|| panic!("{workload} has no app port: {workloads}")) as u16
    }
}

/// The workload `id` in a list of [`Demo::workloads`].
pub fn find_workload<'a>(workloads: &'a Value, id: &str) -> Option<&'a Value> {
    workloads.as_array().unwrap().iter().find(|w| w["id"] == id)
}

pub fn stats(port: u16) -> Value {
    let out = Command::new("curl")
        .args([
            "-sf",
            "--max-time",
            "5",
            &format!("http://127.0.0.1:{port}/_stats"),
        ])
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

pub fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {timeout:?} waiting until {what}");
}

pub fn edge<'a>(graph: &'a Value, client: &str, server: &str) -> Option<&'a Value> {
    graph["edges"].as_array()?.iter().find(|e| {
        e["client"] == format!("{client}.{NS}") && e["server"] == format!("{server}.{NS}")
    })
}

pub fn start_up(dir: &Path, port: u16, ui: Option<u16>) -> Child {
    let ui = match ui {
        Some(p) => format!("127.0.0.1:{p}"),
        None => format!("127.0.0.1:{}", free_port()),
    };
    ibac()
        .args([
            "up",
            "--demo",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--ui",
            &ui,
        ])
        .env("IBAC_DATA_DIR", dir)
        .env("IBAC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.with_extension("up.log")).unwrap(),
        ))
        .spawn()
        .unwrap()
}

pub const DEMO_EDGES: [(&str, &str); 18] = [
    ("frontend", "adservice"),
    ("frontend", "cartservice"),
    ("frontend", "checkoutservice"),
    ("frontend", "currencyservice"),
    ("frontend", "productcatalogservice"),
    ("frontend", "recommendationservice"),
    ("frontend", "shippingservice"),
    ("checkoutservice", "cartservice"),
    ("checkoutservice", "currencyservice"),
    ("checkoutservice", "emailservice"),
    ("checkoutservice", "kafka"),
    ("checkoutservice", "paymentservice"),
    ("checkoutservice", "productcatalogservice"),
    ("checkoutservice", "shippingservice"),
    ("recommendationservice", "productcatalogservice"),
    ("cartservice", "redis-cart"),
    ("orderservice", "kafka"),
    ("loadgenerator", "frontend"),
];

/// Starts an undeclared caller of productcatalogservice, as a user would:
/// `ibac workload add`, its own `ibac proxy`, and an app that calls through
/// it. Returns the app's port (its `/_stats`).
pub fn start_rogue(demo: &Demo, tmp: &Path, procs: &mut Processes) -> u16 {
    let long = Duration::from_secs(180);
    let [rogue_proxy, rogue_app, rogue_out] = free_ports();
    let token = demo.ok(&[
        "workload",
        "add",
        &format!("rogue.{NS}"),
        "--address",
        &format!("127.0.0.1:{rogue_proxy}"),
    ]);
    let identity = tmp.join("rogue-id");
    procs.0.push(
        ibac()
            .args([
                "proxy",
                "--control",
                &demo.url,
                "--identity-dir",
                identity.to_str().unwrap(),
                "--token",
                token.trim(),
                "--listen",
                &format!("127.0.0.1:{rogue_proxy}"),
                "--app",
                &format!("127.0.0.1:{rogue_app}"),
                "--outbound-http",
                &format!("127.0.0.1:{rogue_out}"),
                "--report-interval",
                "1s",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until("the rogue's proxy listens", long, || {
        std::net::TcpStream::connect(("127.0.0.1", rogue_out)).is_ok()
    });
    procs.0.push(
        ibac()
            .args([
                "demo-service",
                "--name",
                "rogue",
                "--listen",
                &format!("127.0.0.1:{rogue_app}"),
                "--call",
                &format!("http://{CATALOG}/products"),
            ])
            .env("HTTP_PROXY", format!("http://127.0.0.1:{rogue_out}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    rogue_app
}

/// Asserts that `text` holds every one of `parts`, showing the whole text
/// (a command's output, a page) when one is missing.
pub fn assert_contains_all(text: &str, parts: &[&str]) {
    for part in parts {
        assert!(text.contains(part), "no {part:?} in:\n{text}");
    }
}
