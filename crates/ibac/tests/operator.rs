//! `ibac operator` out of cluster, against the real API server of the test
//! control plane: it applies ibac's CRDs with server-side apply (field manager
//! `ibac`), says so on `/readyz`, and a restart changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ibac_k8s_test::{Cluster, free_port, http_get, wait_for};
use serde_json::Value;

/// A running `ibac operator`, stopped when dropped.
struct Operator {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Operator {
    fn start(cluster: &Cluster, name: &str) -> Operator {
        Operator::start_with(cluster, name, &[])
    }

    fn start_with(cluster: &Cluster, name: &str, args: &[String]) -> Operator {
        let port = free_port().unwrap();
        let log = cluster.dir().join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_ibac"))
            .args(["operator", "--log", "info", "--kubeconfig"])
            .arg(cluster.kubeconfig())
            .arg("--admin-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        Operator { child, port, log }
    }

    fn get(&self, path: &str) -> Result<(u16, String), String> {
        http_get(self.port, path)
    }

    fn wait_ready(&mut self) {
        let log = self.log.clone();
        let port = self.port;
        let child = &mut self.child;
        wait_for("the operator is ready", Duration::from_secs(120), || {
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "ibac operator exited ({status}):\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            Ok(matches!(http_get(port, "/readyz"), Ok((200, _))).then_some(()))
        })
        .unwrap_or_else(|e| {
            panic!(
                "{e}\n{}",
                std::fs::read_to_string(&self.log).unwrap_or_default()
            )
        });
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn crd(cluster: &Cluster, name: &str) -> Value {
    serde_json::from_str(
        &cluster
            .kubectl(&["get", "crd", name, "-o", "json", "--show-managed-fields"])
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn operator_applies_its_crds_and_reports_ready() {
    let cluster = Cluster::shared().unwrap();
    let mut operator = Operator::start(cluster, "operator-first");
    // The admin port answers before the CRDs are in force.
    wait_for("/healthz answers", Duration::from_secs(60), || {
        Ok(matches!(operator.get("/healthz"), Ok((200, _))).then_some(()))
    })
    .unwrap();
    operator.wait_ready();

    for expected in ibac_operator_crd_names() {
        let crd = crd(cluster, &expected);
        let managers: Vec<(&str, &str)> = crd["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["manager"].as_str().unwrap(),
                    m["operation"].as_str().unwrap(),
                )
            })
            .collect();
        assert!(
            managers.contains(&("ibac", "Apply")),
            "{expected}: managed by {managers:?}"
        );
        assert_eq!(
            crd["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "ibac"
        );
        let established = crd["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True");
        assert!(established, "{expected} is not established");
    }

    let (status, metrics) = operator.get("/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(metrics.contains("ibac_operator_ready 1"), "{metrics}");
    assert!(
        metrics.contains(&format!(
            "ibac_operator_crds_applied {}",
            ibac_operator_crd_names().len()
        )),
        "{metrics}"
    );

    // A restart applies the same CRDs again: nothing changes.
    let before: Vec<String> = ibac_operator_crd_names()
        .iter()
        .map(|n| crd(cluster, n)["metadata"]["resourceVersion"].to_string())
        .collect();
    drop(operator);
    let mut again = Operator::start(cluster, "operator-restarted");
    again.wait_ready();
    let after: Vec<String> = ibac_operator_crd_names()
        .iter()
        .map(|n| crd(cluster, n)["metadata"]["resourceVersion"].to_string())
        .collect();
    assert_eq!(before, after, "a restart rewrote the CRDs");
}

#[test]
fn operator_without_a_reachable_api_server_is_not_ready_and_says_why() {
    let cluster = Cluster::shared().unwrap();
    // A kubeconfig for a port nothing listens on.
    let dead = free_port().unwrap();
    let text = std::fs::read_to_string(cluster.kubeconfig())
        .unwrap()
        .replace(cluster.server(), &format!("https://127.0.0.1:{dead}"));
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, text).unwrap();

    let port = free_port().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(["operator", "--kubeconfig"])
        .arg(&kubeconfig)
        .arg("--admin-addr")
        .arg(format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let why = wait_for("/readyz says why", Duration::from_secs(60), || {
        Ok(match http_get(port, "/readyz") {
            Ok((503, body)) if body.contains("cannot apply") => Some(body),
            _ => None,
        })
    });
    let health = http_get(port, "/healthz");
    let _ = child.kill();
    let _ = child.wait();
    let why = why.unwrap();
    assert!(
        why.contains("customresourcedefinitions") || why.contains("CustomResourceDefinition"),
        "{why}"
    );
    assert_eq!(health.unwrap().0, 200);
}

/// Removes the webhook configuration when dropped: with the operator gone, it
/// would refuse every later write of an ibac object in this cluster.
struct WebhookConfiguration<'a>(&'a Cluster);

impl Drop for WebhookConfiguration<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&[
            "delete",
            "validatingwebhookconfiguration",
            "ibac",
            "--ignore-not-found",
        ]);
    }
}

#[test]
fn the_validating_webhook_refuses_what_ibac_validate_refuses_with_its_field_path() {
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("webhook").unwrap();
    let own = cluster.namespace("ibac-system").unwrap();
    let port = free_port().unwrap();
    let _cleanup = WebhookConfiguration(cluster);
    let args = [
        "--webhook-addr".to_owned(),
        format!("127.0.0.1:{port}"),
        "--webhook-url".to_owned(),
        format!("https://127.0.0.1:{port}"),
        "--operator-namespace".to_owned(),
        own.name().to_owned(),
    ];
    let ca_bundle = || {
        cluster
            .kubectl(&[
                "get",
                "validatingwebhookconfiguration",
                "ibac",
                "-o",
                "jsonpath={.webhooks[0].clientConfig.caBundle}",
            ])
            .unwrap()
    };
    let mut operator = Operator::start_with(cluster, "operator-webhook", &args);
    operator.wait_ready();
    let first_ca = ca_bundle();
    // The CA is kept in the operator's namespace, so a restart serves under
    // the CA the API server already trusts.
    cluster
        .kubectl(&["get", "secret", "ibac-webhook-ca", "-n", own.name()])
        .unwrap();
    drop(operator);
    let mut operator = Operator::start_with(cluster, "operator-webhook-restarted", &args);
    operator.wait_ready();
    assert_eq!(ca_bundle(), first_ca, "a restart changed the CA");
    let apply = |document: &str| {
        cluster
            .kubectl_with_input(&["apply", "-n", ns.name(), "-f", "-"], document)
            .map_err(|e| e.to_string())
    };
    let valid = r#"
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: checkoutservice}
spec:
  workload: {name: checkoutservice}
  targets:
  - kubernetes: {name: cartservice}
  - kafka: {name: kafka, topics: [{name: orders, operations: [produce]}]}
"#;
    apply(valid).unwrap();

    // The schema allows any string as a name; ibac's rules do not.
    let error = apply(&valid.replace("name: cartservice", "name: Cart_Service.")).unwrap_err();
    assert!(
        error.contains("admission webhook \"validate.ibac.dev\" denied the request"),
        "{error}"
    );
    assert!(
        error.contains("spec.targets[0].kubernetes.name: ") && error.contains("`Cart_Service.`"),
        "{error}"
    );

    // While the operator is down, writes are refused and deletions work.
    drop(operator);
    let error = apply(&valid.replace("orders", "payments")).unwrap_err();
    assert!(error.contains("failed calling webhook"), "{error}");
    cluster
        .kubectl(&[
            "delete",
            "clientintents.k8s.otterize.com",
            "checkoutservice",
            "-n",
            ns.name(),
        ])
        .unwrap();
}

/// The names of the CRDs the operator installs, as the API server knows them.
fn ibac_operator_crd_names() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(["operator", "crds", "--names"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}
