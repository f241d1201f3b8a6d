//! The `ibac` command as a user runs it: real process, real files, snapshots of
//! what it prints and the exit status it returns.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A ClientIntents of web.shop (v2beta1) whose `targets:` are followed by
/// `$rest`, so the lines of every such file stand where the messages about
/// them say.
macro_rules! web_intents {
    ($rest:literal) => {
        concat!(
            "apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: web, namespace: shop}
spec:
  workload: {name: web}
  targets:
",
            $rest
        )
    };
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn ibac_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> Run {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(args)
        .current_dir(dir)
        .env_remove("IBAC_NAMESPACE")
        .env_remove("IBAC_OUTPUT")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// Fails the test, showing all of `text`, unless it contains `part`.
#[track_caller]
fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "{text}");
}

fn ibac(args: &[&str]) -> Run {
    ibac_in(&workspace(), args, None)
}

const DEMO: &str = "examples/ecom-demo";
const FRONTEND: &str = "frontend.otterize-ecom-demo";
const CATALOG: &str = "productcatalogservice.otterize-ecom-demo";

#[test]
fn validate_accepts_the_demo() {
    let run = ibac(&["validate", DEMO]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout,
        "ok: 7 documents valid (6 ClientIntents, 1 ProtectedService)\n"
    );
}

#[test]
fn validate_reports_every_error_with_its_place() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("web.yaml"),
        web_intents!(
            "  - kafka: {name: kafka, topics: [{name: orders, operations: [read]}]}
  - service: {name: api, http: [{path: /api*, methods: [get]}]}
  - kubernetes: {name: db, unknown: 1}
"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("web-again.yaml"),
        "apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: web-two, namespace: shop}
spec:
  workload: {name: web}
  targets: []
---
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: also-web, namespace: shop}
spec:
  workload: {name: web}
  targets: []
",
    )
    .unwrap();
    let run = ibac_in(dir.path(), &["validate", "."], None);
    assert_eq!(run.code, 1);
    insta::assert_snapshot!(run.stderr);
}

/// `ibac decide` of a call from `from` to `to`, described by `call`, against
/// the demo's intents.
fn decide(from: &str, to: &str, call: &[&str]) -> Run {
    let mut args = vec!["decide", "--from", from, "--to", to];
    args.extend_from_slice(call);
    args.push(DEMO);
    ibac(&args)
}

#[test]
fn decide_tells_the_three_verdicts_apart_by_exit_status() {
    let allowed = decide(
        FRONTEND,
        CATALOG,
        &["--method", "GET", "--path", "/products/1"],
    );
    assert_eq!(allowed.code, 0);
    let would = decide(
        FRONTEND,
        "emailservice.otterize-ecom-demo",
        &["--port", "8080"],
    );
    assert_eq!(would.code, 3);
    let blocked = decide("adservice.otterize-ecom-demo", CATALOG, &["--port", "3550"]);
    assert_eq!(blocked.code, 4);
    let unauth = ibac(&["decide", "--unauthenticated", "--to", CATALOG, DEMO]);
    assert_eq!(unauth.code, 4);
    insta::assert_snapshot!(format!(
        "{}\n{}\n{}\n{}",
        allowed.stdout, would.stdout, blocked.stdout, unauth.stdout
    ));
}

#[test]
fn decide_refuses_bad_input_with_its_own_status() {
    let usage = ibac(&["decide", "--from", "nodot", "--to", CATALOG, DEMO]);
    assert_eq!(usage.code, 2);
    assert_contains(&usage.stderr, "write it as `name.namespace`");
    let path = decide(FRONTEND, CATALOG, &["--method", "GET", "--path", "/a%2Fb"]);
    assert_eq!(path.code, 1);
    assert_eq!(
        path.stderr,
        "error: `/a%2Fb` is not a valid request path: an encoded slash (`%2F`) is not allowed\n"
    );
    let missing = ibac(&["decide", "--from", FRONTEND, "--to", CATALOG, "no/such/dir"]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .starts_with("error: no/such/dir: cannot read:"),
        "{}",
        missing.stderr
    );
}

#[test]
fn decide_speaks_json() {
    let run = decide(FRONTEND, CATALOG, &["--port", "3550", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["verdict"], "allowed");
    assert_eq!(value["protected"], true);
}

#[test]
fn policy_shows_each_server_and_its_clients() {
    let run = ibac(&["policy", DEMO]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!(run.stdout);
    let yaml = ibac(&["policy", DEMO, "-o", "yaml"]);
    assert_contains(&yaml.stdout, "mode: defaultShadow");
    let json = ibac(&["policy", DEMO, "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["servers"].as_array().unwrap().len(), 12);
}

#[test]
fn convert_rewrites_old_formats() {
    let v1 = "apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: client}
spec:
  service: {name: client}
  calls:
  - name: svc:api.shop
    type: http
    HTTPResources: [{path: /orders, methods: [GET]}]
";
    let run = ibac_in(
        &workspace(),
        &["convert", "--to", "otterize", "-n", "shop", "-"],
        Some(v1),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    insta::assert_snapshot!(run.stdout);
    let json = ibac_in(
        &workspace(),
        &["convert", "--format", "json", "-"],
        Some(v1),
    );
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value[0]["apiVersion"], "ibac.dev/v1");
}

#[test]
fn convert_adds_no_namespace_to_documents_that_named_none() {
    // Otterize's own v1alpha2 tutorial shape, meant for `kubectl apply -n`.
    let doc = include_str!("fixtures/v1alpha2-no-namespace.yaml");
    let run = ibac_in(
        &workspace(),
        &["convert", "--to", "otterize", "-"],
        Some(doc),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stdout.contains("namespace"), "{}", run.stdout);
    assert_contains(&run.stdout, "path: /client-path");
    assert_contains(&run.stdout, "- name: mytopic");
    let named = ibac_in(
        &workspace(),
        &["convert", "-"],
        Some(&doc.replace(
            "  name: client\nspec",
            "  name: client\n  namespace: default\nspec",
        )),
    );
    assert_eq!(named.code, 0, "{}", named.stderr);
    assert_contains(&named.stdout, "  namespace: default\n");
}

#[test]
fn convert_refuses_what_otterize_cannot_hold() {
    let doc = "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  workload: {name: a}\n  targets:\n  - service: {name: b, ports: [8080]}\n";
    let run = ibac_in(
        &workspace(),
        &["convert", "--to", "otterize", "-"],
        Some(doc),
    );
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stderr,
        "error: <stdin>:7:5: cannot write as k8s.otterize.com/v2beta1: it narrows the target to ports; keep it as ibac.dev/v1\nerror: 1 problem; nothing converted\n"
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn hostile_yaml_is_refused_with_a_clear_error() {
    let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        laughs.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    let run = ibac_in(&workspace(), &["validate", "-"], Some(&laughs));
    assert_eq!(run.code, 1);
    assert!(run.stderr.starts_with("error: <stdin>:"), "{}", run.stderr);
    assert_contains(&run.stderr, "refused: ");
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let run = ibac_in(&workspace(), &["validate", "-"], Some(&deep));
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("nested too deeply") || run.stderr.contains("invalid YAML"),
        "{}",
        run.stderr
    );
}

/// `visualize -f` draws a saved graph with no control plane, from a file or
/// stdin, and refuses a file that is not a graph, saying so.
#[test]
fn visualize_draws_a_saved_graph_and_refuses_what_is_not_one() {
    let dir = tempfile::tempdir().unwrap();
    let graph = serde_json::json!({
        "revision": 3,
        "nodes": [{"id": "a.x", "name": "a", "namespace": "x", "registered": true, "inForce": true, "client": "some-blocked"}],
        "edges": [{"client": "a.x", "server": "b.x", "verdict": "blocked", "discovered": true, "declared": false, "intents": [], "calls": [], "sources": ["discovered"]}],
    });
    std::fs::write(dir.path().join("graph.json"), graph.to_string()).unwrap();
    let visualize = |input: &str, output: &str, stdin: Option<&str>| {
        ibac_in(
            dir.path(),
            &["network-mapper", "visualize", "-f", input, "-o", output],
            stdin,
        )
    };
    let run = visualize("graph.json", "graph.svg", None);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("drew 2 workloads and 1 calls"),
        "{}",
        run.stderr
    );
    let svg = std::fs::read_to_string(dir.path().join("graph.svg")).unwrap();
    assert!(
        svg.contains(r#"data-verdict="blocked""#) && svg.contains(r#"data-client="some-blocked""#)
    );
    let run = visualize("-", "stdin.svg", Some(&graph.to_string()));
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdin.svg")).unwrap(),
        svg
    );

    let mut wrong = graph.clone();
    wrong["edges"][0]["verdict"] = "maybe".into();
    std::fs::write(dir.path().join("wrong.json"), wrong.to_string()).unwrap();
    let run = visualize("wrong.json", "wrong.svg", None);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("wrong.json is not an access graph as `ibac get graph -o json` writes it")
            && run.stderr.contains("maybe"),
        "{}",
        run.stderr
    );
    assert!(!dir.path().join("wrong.svg").exists());
}

#[test]
fn completions_and_help() {
    let run = ibac(&["completions", "bash"]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout.contains("_ibac()"),
        "{}",
        &run.stdout[..200.min(run.stdout.len())]
    );
    let help = ibac(&["--help"]);
    assert_eq!(help.code, 0);
    insta::assert_snapshot!(help.stdout);
}

#[test]
fn render_writes_manifests_that_are_identical_run_after_run() {
    let args = [
        "render",
        "networkpolicy",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
    ];
    let first = ibac(&args);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stdout, ibac(&args).stdout);
    assert!(
        first
            .stdout
            .contains("name: ibac-ingress-productcatalogservice")
    );
    let json = ibac(&[
        "render",
        "networkpolicy",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
        "-o",
        "json",
    ]);
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["kind"], "List");
    let explain = ibac(&[
        "render",
        "netpol",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
        "--explain",
    ]);
    assert_contains(
        &explain.stdout,
        "cartservice.otterize-ecom-demo: in shadow mode; no NetworkPolicy selects its pods",
    );
    let istio = ibac(&[
        "render",
        "istio",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
    ]);
    assert_contains(
        &istio.stdout,
        "- cluster.local/ns/otterize-ecom-demo/sa/frontend",
    );
    let linkerd = |more: &[&str]| {
        let demo = [
            "render",
            "linkerd",
            "--cluster",
            "examples/ecom-cluster",
            DEMO,
        ];
        ibac(&[&demo[..], more].concat())
    };
    let rendered = linkerd(&[]);
    assert_eq!(rendered.code, 0, "{}", rendered.stderr);
    assert_contains(&rendered.stdout, "kind: MeshTLSAuthentication");
    assert_contains(&rendered.stdout, "accessPolicy: deny");
    let bad = linkerd(&["--probe-networks", "10.0.0.0/33"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    assert_contains(&bad.stderr, "`10.0.0.0/33`");
    let kafka = ibac(&[
        "render",
        "kafka",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
    ]);
    assert_contains(
        &kafka.stdout,
        "--allow-principal User:CN=checkoutservice.otterize-ecom-demo --operation Write --topic orders",
    );
}

/// Writes `web.yaml` in `dir`: one ClientIntents of the demo's namespace,
/// `client` calling `target` (the target's line is line 7).
fn write_demo_intent(dir: &Path, client: &str, target: &str) {
    std::fs::write(
        dir.join("web.yaml"),
        format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: {client}, namespace: otterize-ecom-demo}}\nspec:\n  workload: {{name: {client}}}\n  targets:\n  - service: {{name: {target}}}\n"
        ),
    )
    .unwrap();
}

#[test]
fn render_refuses_without_cluster_facts_and_skips_bad_references() {
    let none = ibac(&["render", "networkpolicy", DEMO]);
    assert_eq!(none.code, 1);
    assert_contains(&none.stderr, "give the cluster facts with --cluster");
    let dir = tempfile::tempdir().unwrap();
    write_demo_intent(dir.path(), "web", "nosuch");
    let cluster = workspace().join("examples/ecom-cluster");
    let demo = workspace().join(DEMO);
    let run = ibac_in(
        dir.path(),
        &[
            "render",
            "networkpolicy",
            "--cluster",
            cluster.to_str().unwrap(),
            demo.to_str().unwrap(),
            "web.yaml",
        ],
        None,
    );
    assert_eq!(run.code, 7, "{}", run.stderr);
    assert_eq!(
        run.stderr,
        "error: web.yaml:7:5: target `nosuch.otterize-ecom-demo`: no Service `nosuch.otterize-ecom-demo` is known in the cluster facts\nerror: 1 problem skipped (see above); everything else is rendered\n"
    );
    let clean = ibac(&[
        "render",
        "networkpolicy",
        "--cluster",
        "examples/ecom-cluster",
        DEMO,
    ]);
    assert_eq!(clean.code, 0, "{}", clean.stderr);
    assert_eq!(run.stdout, clean.stdout, "everything else is rendered");
}

#[test]
fn render_in_shadow_mode_says_nothing_is_protected() {
    let dir = tempfile::tempdir().unwrap();
    write_demo_intent(dir.path(), "frontend", "productcatalogservice");
    let cluster = workspace().join("examples/ecom-cluster");
    for what in ["networkpolicy", "istio", "linkerd"] {
        let render = |more: &[&str]| {
            let mut args = vec![
                "render",
                what,
                "--cluster",
                cluster.to_str().unwrap(),
                "web.yaml",
            ];
            args.extend_from_slice(more);
            ibac_in(dir.path(), &args, None)
        };
        let run = render(&[]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stderr
                .starts_with("note: no server is protected (shadow mode), so no ")
                && run
                    .stderr
                    .contains("`--explain` shows what protecting each server would create"),
            "{what}: {}",
            run.stderr
        );
        let explained = render(&["--explain"]);
        assert!(explained.stderr.is_empty(), "{}", explained.stderr);
        assert_contains(&explained.stdout, "productcatalogservice");
    }
}

#[test]
fn render_sql_finds_server_configs_in_any_namespace_and_validate_warns_on_empty_operations() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("db.yaml"),
        web_intents!(
            "  - sql:
      name: orders-db
      privileges:
      - {databaseName: shop, table: orders, operations: [SELECT]}
      - {databaseName: shop, table: audit}
---
apiVersion: k8s.otterize.com/v2beta1
kind: PostgreSQLServerConfig
metadata: {name: orders-db, namespace: databases}
spec: {address: 'orders-db.databases:5432', credentials: {secretRef: {name: admin}}}
"
        ),
    )
    .unwrap();
    let validate = ibac_in(dir.path(), &["validate", "db.yaml"], None);
    assert_eq!(validate.code, 0, "{}", validate.stderr);
    assert_eq!(
        validate.stderr,
        "warning: db.yaml:11:9: no operations on `shop` table `audit`: Otterize reads that as ALL, and `ibac render sql` refuses it; list the operations, or write ALL\n"
    );
    let render = ibac_in(dir.path(), &["render", "sql", "db.yaml"], None);
    assert_eq!(render.code, 7, "{}", render.stderr);
    assert_contains(
        &render.stdout,
        "-- ibac: grants on postgresql server orders-db.databases (orders-db.databases:5432)",
    );
    assert_contains(
        &render.stdout,
        "GRANT SELECT ON TABLE \"orders\" TO \"web_shop\";",
    );
    assert!(!render.stdout.contains("audit"), "{}", render.stdout);
    assert!(
        render
            .stderr
            .starts_with("error: db.yaml:11:9: operations are empty"),
        "{}",
        render.stderr
    );
}
