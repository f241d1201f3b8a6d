//! What the end-to-end tests share: the `ibac` binary, processes that are
//! stopped however a test ends, the demo's CLI, and polling.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_docs,
    dead_code
)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const NS: &str = "otterize-ecom-demo";
pub const CATALOG: &str = "productcatalogservice.otterize-ecom-demo";

pub fn ibac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ibac"))
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
    pub fn cli(&self, args: &[&str]) -> Output {
        ibac()
            .args(args)
            .env("IBAC_DATA_DIR", &self.dir)
            .env("IBAC_CONTROL", &self.url)
            .output()
            .unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "ibac {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    pub fn graph(&self) -> Value {
        self.json(&["get", "graph", "-o", "json"])
    }

    pub fn app_port(&self, workload: &str) -> u16 {
        let workloads = self.json(&["get", "workloads", "-o", "json"]);
        workloads
            .as_array()
            .unwrap()
            .iter()
            .find(|w| w["id"] == workload)
            .and_then(|w| w["appPort"].as_u64())
            .unwrap_or_else(|| panic!("{workload} has no app port: {workloads}")) as u16
    }
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
