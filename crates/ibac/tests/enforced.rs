//! Enforced state end to end, with real processes: `ibac up`, two workloads
//! behind their own `ibac proxy`, and the CLI. A change waits until every
//! proxy enforces it; a proxy that cannot load the new state (one that is
//! older than its control plane, here made so with the hidden
//! `--refuse-kind`) and a proxy that was stopped are named by the command
//! that changed policy, shown by `get workloads`, the graph and the metrics;
//! calls the policy blocks but a lagging proxy let through are called out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::{Demo, Processes, assert_contains_all, find_workload, free_ports, ibac, wait_until};

/// The control plane of this test, reached as the CLI reaches it.
type Plane = Demo;

impl Demo {
    fn state(&self, workload: &str) -> String {
        find_workload(&self.workloads(), workload)
            .map(|w| w["enforcement"]["state"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    }

    /// Runs `ibac args`, which must succeed, and returns what it said on
    /// stderr, where the commands report whether proxies caught up.
    fn ok_saying(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    }

    /// Runs `ibac args`, a change some proxy does not follow: it exits 6
    /// and its report on stderr says each of `says`.
    fn not_followed(&self, args: &[&str], says: &[&str]) {
        let out = self.cli(args);
        let text = stderr(&out);
        assert_eq!(out.status.code(), Some(6), "{text}");
        for said in says {
            assert!(text.contains(said), "{text}");
        }
    }

    fn metrics(&self) -> String {
        let out = Command::new("curl")
            .args(["-sk", "--max-time", "5", &format!("{}/metrics", self.url)])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn proxy(
    plane: &Plane,
    dir: &Path,
    name: &str,
    token: &str,
    ports: [u16; 3],
    refuse: bool,
) -> Child {
    let [listen, app, out] = ports;
    let mut cmd = ibac();
    cmd.args([
        "proxy",
        "--control",
        &plane.url,
        "--identity-dir",
        dir.join(format!("{name}-id")).to_str().unwrap(),
        "--token",
        token.trim(),
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--app",
        &format!("127.0.0.1:{app}"),
        "--outbound-http",
        &format!("127.0.0.1:{out}"),
        "--report-interval",
        "1s",
    ]);
    if refuse {
        cmd.args(["--refuse-kind", "EnforcementConfig"]);
    }
    cmd.env("IBAC_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join(format!("{name}-proxy.log"))).unwrap(),
        ))
        .spawn()
        .unwrap()
}

fn app(name: &str, port: u16) -> Child {
    ibac()
        .args([
            "demo-service",
            "--name",
            name,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// a's app calling b through a's proxy: the HTTP status it gets.
fn call_b(a_out: u16) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "5",
            "-x",
            &format!("http://127.0.0.1:{a_out}"),
            "http://b.shop/hello",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn changes_wait_for_every_proxy_and_name_those_that_do_not_follow() {
    let long = Duration::from_secs(120);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ibac-data");
    let [port, a_listen, a_app, a_out, b_listen, b_app, b_out] = free_ports::<7>();
    let mut procs = Processes(vec![
        ibac()
            .args([
                "up",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--no-ui",
                "--scan-interval",
                "0s",
                "--proxy-silence",
                "3s",
            ])
            .env("IBAC_DATA_DIR", &dir)
            .env("IBAC_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(tmp.path().join("up.log")).unwrap(),
            ))
            .spawn()
            .unwrap(),
    ]);
    let plane = Plane {
        dir: dir.clone(),
        url: format!("https://127.0.0.1:{port}"),
    };
    wait_until("the control plane answers", long, || {
        plane.cli(&["get", "workloads"]).status.success()
    });
    let a_token = plane.ok(&[
        "workload",
        "add",
        "a.shop",
        "--address",
        &format!("127.0.0.1:{a_listen}"),
    ]);
    let b_token = plane.ok(&[
        "workload",
        "add",
        "b.shop",
        "--address",
        &format!("127.0.0.1:{b_listen}"),
    ]);
    procs.0.push(app("a", a_app));
    procs.0.push(app("b", b_app));
    procs.0.push(proxy(
        &plane,
        tmp.path(),
        "a",
        &a_token,
        [a_listen, a_app, a_out],
        false,
    ));
    procs.0.push(proxy(
        &plane,
        tmp.path(),
        "b",
        &b_token,
        [b_listen, b_app, b_out],
        true,
    ));
    wait_until("both proxies are in sync", long, || {
        plane.state("a.shop") == "inSync" && plane.state("b.shop") == "inSync"
    });

    // A change every proxy can load: the command waits and says so.
    let said = plane.ok_saying(&["protect", "b.shop"]);
    assert_contains_all(&said, &["all 2 proxies enforce revision"]);
    // It is in force: an undeclared call is refused at once.
    assert_eq!(call_b(a_out), "403");

    // Every --dry-run changes nothing: apply, delete, unprotect.
    let protected = |plane: &Plane| -> Vec<String> {
        plane
            .json(&["get", "protected", "-o", "json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect()
    };
    let b_doc = tmp.path().join("b-protected.yaml");
    std::fs::write(
        &b_doc,
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: b, namespace: shop}\nspec: {name: b}\n",
    )
    .unwrap();
    let a_doc = tmp.path().join("a-protected.yaml");
    std::fs::write(
        &a_doc,
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: a, namespace: shop}\nspec: {name: a}\n",
    )
    .unwrap();
    let said = plane.ok(&["delete", "--dry-run", "-f", b_doc.to_str().unwrap()]);
    assert_contains_all(&said, &["deleted (dry run)"]);
    let said = plane.ok(&["unprotect", "--dry-run", "b.shop"]);
    assert_contains_all(&said, &["deleted (dry run)"]);
    let said = plane.ok(&["apply", "--dry-run", "-f", a_doc.to_str().unwrap()]);
    assert_contains_all(&said, &["created (dry run)"]);
    assert_eq!(protected(&plane), vec!["b".to_string()]);
    assert_eq!(call_b(a_out), "403", "still protected after the dry runs");

    // Protecting a name nothing knows protects at once, with a warning.
    let said = plane.ok_saying(&["protect", "ghost.shop"]);
    assert_contains_all(&said, &["warning: nothing named `ghost.shop` is known yet"]);
    assert_eq!(
        protected(&plane),
        vec!["b".to_string(), "ghost".to_string()]
    );
    plane.ok(&["unprotect", "ghost.shop"]);
    let out = plane.cli(&["unprotect", "ghost.shop"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no ProtectedService protects `ghost.shop`"),
        "{}",
        stderr(&out)
    );
    let said = plane.ok_saying(&["unprotect", "b.shop"]);
    assert_contains_all(&said, &["all 2 proxies enforce revision"]);
    wait_until("b lets the undeclared call through again", long, || {
        call_b(a_out) == "200"
    });

    // A change b cannot load: the command names it, with its reason, and
    // exits 6 (documented in exit.rs and the README).
    plane.not_followed(
        &["mode", "defaultActive", "--timeout", "20s"],
        &[
            "1 of 2 proxies enforce revision",
            "b.shop: cannot load revision",
            "does not read EnforcementConfig",
        ],
    );
    // b still runs the old (shadow) policy, so the call a → b, which the new
    // policy blocks, gets through: the graph and `get graph` say the
    // protection is not in force.
    assert_eq!(plane.state("b.shop"), "failing");
    let table = plane.ok(&["get", "workloads"]);
    assert_contains_all(
        &table,
        &[
            "failing",
            "b.shop: cannot load revision",
            "1 of 2 proxies do not enforce",
        ],
    );
    wait_until(
        "the graph says the call a → b is let through though blocked",
        long,
        || {
            call_b(a_out);
            let g = plane.json(&["get", "graph", "-o", "json"]);
            g["edges"].as_array().unwrap().iter().any(|e| {
                e["client"] == "a.shop"
                    && e["server"] == "b.shop"
                    && e["verdict"] == "blocked"
                    && e["mismatch"]["kind"] == "notBlocked"
            })
        },
    );
    let g = plane.json(&["get", "graph", "-o", "json"]);
    let b = g["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "b.shop")
        .unwrap();
    assert_eq!(b["inForce"], false, "{b}");
    assert_eq!(b["enforcement"]["state"], "failing", "{b}");
    let table = plane.ok(&["get", "graph"]);
    assert_contains_all(
        &table,
        &[
            "! a.shop → b.shop:",
            "the protection is not in force",
            "! b.shop: verdicts shown for it are not in force",
        ],
    );
    let metrics = plane.metrics();
    assert_contains_all(&metrics, &["ibac_control_proxies_failing 1"]);
    // `diff` decides as the graph does — b is protected by the mode, so a's
    // undeclared call is `blocked`, not `would-be-blocked` — and says the
    // proxy let it through.
    let intents = tmp.path().join("a.yaml");
    std::fs::write(
        &intents,
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: a, namespace: shop}\nspec:\n  workload: {name: a}\n  targets:\n  - kubernetes: {name: c}\n",
    )
    .unwrap();
    let out = plane.cli(&["diff", "-f", intents.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(5), "{said}");
    assert!(
        said.contains("a.shop → b.shop: GET /hello (blocked,"),
        "{said}"
    );
    assert_contains_all(
        &said,
        &["disagree with the policy", "the protection is not in force"],
    );

    // Stop a's proxy: it falls silent, and the next change names it too.
    let a_proxy = &mut procs.0[3];
    a_proxy.kill().unwrap();
    a_proxy.wait().unwrap();
    wait_until("a is silent", long, || plane.state("a.shop") == "silent");
    plane.not_followed(
        &["mode", "defaultShadow", "--timeout", "3s"],
        &[
            "0 of 2 proxies enforce revision",
            "a.shop: silent for",
            "b.shop: cannot load revision",
        ],
    );
    let table = plane.ok(&["get", "workloads"]);
    assert_contains_all(&table, &["silent"]);
    let metrics = plane.metrics();
    assert_contains_all(&metrics, &["ibac_control_proxies_silent 1"]);
    let up_log = std::fs::read_to_string(tmp.path().join("up.log")).unwrap();
    assert_contains_all(
        &up_log,
        &["a.shop silent for", "b.shop cannot load revision"],
    );
    // Logs written to files carry no terminal colour codes.
    let b_log = std::fs::read_to_string(tmp.path().join("b-proxy.log")).unwrap();
    assert_contains_all(&b_log, &["policy not reloaded"]);
    for log in [&up_log, &b_log] {
        assert!(
            !log.contains('\u{1b}'),
            "ANSI escapes in a log file:\n{log}"
        );
    }

    // --no-wait returns at once and says it did not wait.
    let said = plane.ok_saying(&["protect", "a.shop", "--no-wait"]);
    assert_contains_all(&said, &["not waiting for proxies"]);
}
