//! The seed tutorial, end to end, with real processes: `ibac up --demo`
//! starts the control plane and the shop behind proxies; discover, export
//! the clients of productcatalogservice, apply, protect; an undeclared
//! caller started after the export is blocked, and the declared clients
//! never see a failed request. Then the control plane is killed with
//! SIGKILL and started again: nothing is lost.
//!
//! Waits poll with generous timeouts; nothing here depends on timing.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const NS: &str = "otterize-ecom-demo";
const CATALOG: &str = "productcatalogservice.otterize-ecom-demo";

fn ibac() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ibac"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Children killed when the test ends, however it ends.
struct Processes(Vec<Child>);

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

struct Demo {
    dir: PathBuf,
    url: String,
}

impl Demo {
    fn cli(&self, args: &[&str]) -> Output {
        ibac()
            .args(args)
            .env("IBAC_DATA_DIR", &self.dir)
            .env("IBAC_CONTROL", &self.url)
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "ibac {args:?}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).unwrap()
    }

    fn graph(&self) -> Value {
        self.json(&["get", "graph", "-o", "json"])
    }

    fn app_port(&self, workload: &str) -> u16 {
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

fn stats(port: u16) -> Value {
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

fn wait_until(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("timed out after {timeout:?} waiting until {what}");
}

fn edge<'a>(graph: &'a Value, client: &str, server: &str) -> Option<&'a Value> {
    graph["edges"].as_array()?.iter().find(|e| {
        e["client"] == format!("{client}.{NS}") && e["server"] == format!("{server}.{NS}")
    })
}

fn start_up(dir: &Path, port: u16) -> Child {
    ibac()
        .args(["up", "--demo", "--listen", &format!("127.0.0.1:{port}")])
        .env("IBAC_DATA_DIR", dir)
        .env("IBAC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.with_extension("up.log")).unwrap(),
        ))
        .spawn()
        .unwrap()
}

const DEMO_EDGES: [(&str, &str); 18] = [
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

#[test]
fn the_protect_one_service_tutorial() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let mut procs = Processes(vec![start_up(&dir, port)]);
    let demo = Demo {
        dir: dir.clone(),
        url: format!("https://127.0.0.1:{port}"),
    };
    let long = Duration::from_secs(180);

    // 1. Shadow mode: every call of the shop is discovered, would-be-blocked.
    wait_until("every demo call is discovered", long, || {
        dir.join("admin.token").exists() && {
            let out = demo.cli(&["get", "graph", "-o", "json"]);
            out.status.success() && {
                let g: Value = serde_json::from_slice(&out.stdout).unwrap();
                DEMO_EDGES.iter().all(|(c, s)| {
                    edge(&g, c, s).is_some_and(|e| e["verdict"] == "would-be-blocked")
                })
            }
        }
    });
    let table = demo.ok(&["get", "graph"]);
    assert!(
        table.contains("0 allowed, 18 would be blocked, 0 blocked"),
        "{table}"
    );

    // 2. Export the clients of productcatalogservice: exactly the three, with
    //    all their calls.
    let exported = demo.ok(&["network-mapper", "export", "--server", CATALOG]);
    let parsed = ibac_model::parse_source(
        &"export.yaml".into(),
        &exported,
        &ibac_model::ParseOptions::default(),
    );
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let mut clients: Vec<(String, usize)> = parsed
        .documents
        .iter()
        .map(|d| match d {
            ibac_model::Document::ClientIntents(ci) => {
                (ci.workload.id.name().to_string(), ci.targets.len())
            }
            other => panic!("{other:?}"),
        })
        .collect();
    clients.sort();
    assert_eq!(
        clients,
        [
            ("checkoutservice".into(), 7),
            ("frontend".into(), 7),
            ("recommendationservice".into(), 1)
        ]
    );
    let file = tmp.path().join("catalog-clients.yaml");
    std::fs::write(&file, &exported).unwrap();

    // 3. Apply: those calls are allowed.
    let applied = demo.ok(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(applied.matches("created").count(), 3, "{applied}");
    wait_until("the declared calls are allowed", long, || {
        let g = demo.graph();
        DEMO_EDGES.iter().all(|(c, s)| {
            let declared = ["frontend", "checkoutservice", "recommendationservice"].contains(c);
            let want = if declared {
                "allowed"
            } else {
                "would-be-blocked"
            };
            edge(&g, c, s).is_some_and(|e| e["verdict"] == want)
        })
    });

    // 4. An undeclared caller, started after the export, with its own proxy.
    let rogue_proxy = free_port();
    let rogue_app = free_port();
    let rogue_out = free_port();
    let token = demo.ok(&[
        "workload",
        "add",
        &format!("rogue.{NS}"),
        "--address",
        &format!("127.0.0.1:{rogue_proxy}"),
    ]);
    let identity = tmp.path().join("rogue-id");
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
    wait_until(
        "the rogue's calls go through in shadow mode, reported",
        long,
        || {
            stats(rogue_app)["calls"][CATALOG]["ok"]
                .as_u64()
                .unwrap_or(0)
                > 0
                && edge(&demo.graph(), "rogue", "productcatalogservice")
                    .is_some_and(|e| e["verdict"] == "would-be-blocked")
        },
    );

    // 5. Protect productcatalogservice: the rogue is blocked.
    let declared_ports: Vec<(String, u16)> =
        ["frontend", "checkoutservice", "recommendationservice"]
            .iter()
            .map(|c| (c.to_string(), demo.app_port(&format!("{c}.{NS}"))))
            .collect();
    let ok_before: Vec<u64> = declared_ports
        .iter()
        .map(|(_, p)| stats(*p)["calls"][CATALOG]["ok"].as_u64().unwrap_or(0))
        .collect();
    demo.ok(&["protect", CATALOG]);
    wait_until("the rogue is blocked", long, || {
        let s = stats(rogue_app);
        s["calls"][CATALOG]["failed"].as_u64().unwrap_or(0) > 0
            && s["calls"][CATALOG]["last_error"]
                .as_str()
                .unwrap_or("")
                .starts_with("403")
            && edge(&demo.graph(), "rogue", "productcatalogservice")
                .is_some_and(|e| e["verdict"] == "blocked")
    });
    // The declared clients keep calling it, and none of their calls ever failed.
    wait_until(
        "the declared clients made more calls after protection",
        long,
        || {
            declared_ports
                .iter()
                .zip(&ok_before)
                .all(|((_, p), before)| {
                    stats(*p)["calls"][CATALOG]["ok"].as_u64().unwrap_or(0) >= before + 3
                })
        },
    );
    for (client, p) in &declared_ports {
        let s = stats(*p);
        assert_eq!(
            s["calls"][CATALOG]["failed"].as_u64(),
            Some(0),
            "{client}: {s}"
        );
    }
    let graph = demo.ok(&["get", "graph"]);
    assert!(
        graph.contains("productcatalogservice.otterize-ecom-demo (protected)"),
        "{graph}"
    );

    // 6. Diff: the applied intents match what the three clients do.
    let diff = demo.cli(&["diff", "-f", file.to_str().unwrap()]);
    assert_eq!(
        diff.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );

    // 7. Pictures.
    let png = tmp.path().join("graph.png");
    demo.ok(&["network-mapper", "visualize", "-o", png.to_str().unwrap()]);
    assert_eq!(&std::fs::read(&png).unwrap()[..4], b"\x89PNG");

    // 8. SIGKILL the control plane and start it again: nothing is lost.
    let up = &mut procs.0[0];
    up.kill().unwrap();
    up.wait().unwrap();
    procs.0[0] = start_up(&dir, port);
    wait_until("the control plane is back", long, || {
        demo.cli(&["get", "intents"]).status.success()
    });
    let intents = demo.json(&["get", "intents", "-o", "json"]);
    assert_eq!(intents.as_array().unwrap().len(), 3);
    let protected = demo.json(&["get", "protected", "-o", "json"]);
    assert_eq!(protected[0]["name"], "productcatalogservice");
    let g = demo.graph();
    assert!(
        edge(&g, "rogue", "productcatalogservice").is_some(),
        "discovered calls survived"
    );
    let audit = demo.ok(&["get", "audit"]);
    assert!(
        audit.contains("protect") && audit.contains("apply"),
        "{audit}"
    );
}
