//! `ibac operator` out of cluster, against the real API server of the test
//! control plane: it applies ibac's CRDs with server-side apply (field manager
//! `ibac`), says so on `/readyz`, and a restart changes nothing; its webhooks
//! validate and convert what kubectl writes and reads.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/release.rs"]
mod release;

use std::process::{Child, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use common::{ibac, stdout_of};
use ibac_k8s_test::{Cluster, Namespace, free_port, http_get, wait_for};
use ibac_model::encode::{Flavor, encode};
use ibac_model::{ParseOptions, parse_source};
use serde_json::Value;

/// One operator at a time: they all apply the CRDs and the webhook
/// configuration of one API server, and those differ with and without
/// webhooks.
static ONE_OPERATOR: Mutex<()> = Mutex::new(());

fn one_operator() -> std::sync::MutexGuard<'static, ()> {
    ONE_OPERATOR.lock().unwrap_or_else(|e| e.into_inner())
}

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
        let child = release::spawn_operator(cluster.kubeconfig(), port, args, &log);
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
    let _one = one_operator();
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
    let mut child = ibac()
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
/// would refuse every later write of an ibac object in this cluster; and turns
/// conversion back to the API server's own relabelling.
struct WebhookConfiguration<'a>(&'a Cluster);

impl Drop for WebhookConfiguration<'_> {
    fn drop(&mut self) {
        let _ = self.0.kubectl(&[
            "delete",
            "validatingwebhookconfiguration",
            "ibac",
            "--ignore-not-found",
        ]);
        for crd in CONVERTED {
            let _ = self.0.kubectl(&[
                "patch",
                "crd",
                crd,
                "--type=merge",
                "-p",
                r#"{"spec":{"conversion":{"strategy":"None","webhook":null}}}"#,
            ]);
        }
    }
}

/// The CRDs whose versions the conversion webhook converts.
const CONVERTED: [&str; 3] = [
    "clientintents.k8s.otterize.com",
    "protectedservices.k8s.otterize.com",
    "kafkaserverconfigs.k8s.otterize.com",
];

/// The arguments that make the operator serve its webhooks on `port`, out of
/// cluster, with its CA in `own_namespace`.
fn webhook_args(port: u16, own_namespace: &str) -> [String; 6] {
    [
        "--webhook-addr".to_owned(),
        format!("127.0.0.1:{port}"),
        "--webhook-url".to_owned(),
        format!("https://127.0.0.1:{port}"),
        "--operator-namespace".to_owned(),
        own_namespace.to_owned(),
    ]
}

/// What a test of the webhooks holds while it runs: the operator's own
/// namespace (where it keeps the webhooks' CA), the arguments that serve the
/// webhooks on a free port, and the webhook configuration, deleted when this
/// is dropped — before the namespace, as the fields are in that order.
struct Webhooks<'a> {
    configuration: WebhookConfiguration<'a>,
    own: Namespace<'a>,
    args: [String; 6],
}

impl<'a> Webhooks<'a> {
    fn new(cluster: &'a Cluster) -> Webhooks<'a> {
        let own = cluster.namespace("ibac-system").unwrap();
        let port = free_port().unwrap();
        let args = webhook_args(port, own.name());
        Webhooks {
            configuration: WebhookConfiguration(cluster),
            own,
            args,
        }
    }

    /// Starts an operator that serves the webhooks and waits until it is
    /// ready.
    fn operator(&self, name: &str) -> Operator {
        let mut operator = Operator::start_with(self.configuration.0, name, &self.args);
        operator.wait_ready();
        operator
    }
}

#[test]
fn the_validating_webhook_refuses_what_ibac_validate_refuses_with_its_field_path() {
    let _one = one_operator();
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("webhook").unwrap();
    let webhooks = Webhooks::new(cluster);
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
    let operator = webhooks.operator("operator-webhook");
    let first_ca = ca_bundle();
    // The CA is kept in the operator's namespace, so a restart serves under
    // the CA the API server already trusts.
    cluster
        .kubectl(&[
            "get",
            "secret",
            "ibac-webhook-ca",
            "-n",
            webhooks.own.name(),
        ])
        .unwrap();
    drop(operator);
    let operator = webhooks.operator("operator-webhook-restarted");
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

/// A document as ibac reads it, written out again in `flavor`: two objects
/// that give the same text hold the same rules, however each was spelt.
fn canonical(object: &str, flavor: Flavor) -> String {
    let parsed = parse_source(&"object".into(), object, &ParseOptions::default());
    assert!(
        parsed.errors.is_empty(),
        "{object}\n{:?}",
        parsed.error_messages()
    );
    assert_eq!(parsed.documents.len(), 1, "{object}");
    ibac_model::yaml::to_yaml(&encode(&parsed.documents[0], flavor).unwrap()).unwrap()
}

/// ClientIntents in every version Otterize serves, each for a client of its
/// own (one ClientIntents per workload), all of which v1alpha3 can hold.
const EVERY_VERSION: [(&str, &str); 5] = [
    (
        "v1alpha2",
        "spec:
  service: {name: alpha2}
  calls:
  - {name: cart, type: http, resources: [{path: /cart/*, methods: [GET, POST]}]}
  - {name: kafka.kafka, type: kafka, topics: [{name: orders, operations: [produce]}]}
  - {name: orders-db, type: database, databaseResources: [{databaseName: shop, table: orders, operations: [SELECT]}]}
",
    ),
    (
        "v1alpha3",
        "spec:
  service: {name: alpha3, kind: Deployment}
  calls:
  - {name: svc:catalog.other, type: http, HTTPResources: [{path: /products, methods: [GET]}]}
  - {name: cart, kind: StatefulSet}
  - {name: kafka.kafka, type: kafka, kafkaTopics: [{name: orders, operations: [consume, describe]}]}
  - {type: internet, internet: {domains: [api.example.com], ports: [443]}}
  - {name: \"arn:aws:s3:::bucket\", type: aws, awsActions: [\"s3:GetObject\"]}
",
    ),
    (
        "v1beta1",
        "spec:
  service: {name: beta1}
  calls:
  - {name: redis-cart}
  - {name: \"/subscriptions/x\", type: azure, azureRoles: [Reader]}
  - {name: projects/p, type: gcp, gcpPermissions: [storage.objects.get]}
",
    ),
    (
        "v2alpha1",
        "spec:
  workload: {name: v2alpha1, kind: Deployment}
  targets:
  - kubernetes: {name: cart, http: [{path: /cart, methods: [DELETE]}]}
  - sql: {name: orders-db, privileges: [{databaseName: shop, operations: [ALL]}]}
",
    ),
    (
        "v2beta1",
        "spec:
  workload: {name: v2beta1}
  targets:
  - service: {name: frontend}
  - kafka: {name: kafka.kafka, topics: [{name: \"*\", operations: [all]}]}
  - internet: {ips: [203.0.113.0/24]}
",
    ),
];

#[test]
fn every_version_converts_through_the_api_server_without_loss() {
    let _one = one_operator();
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("convert").unwrap();
    let webhooks = Webhooks::new(cluster);
    let operator = webhooks.operator("operator-convert");
    for crd in CONVERTED {
        let strategy = cluster
            .kubectl(&[
                "get",
                "crd",
                crd,
                "-o",
                "jsonpath={.spec.conversion.strategy}",
            ])
            .unwrap();
        assert_eq!(strategy, "Webhook", "{crd}");
    }
    let apply = |document: &str| {
        cluster
            .kubectl_with_input(
                &["apply", "--validate=strict", "-n", ns.name(), "-f", "-"],
                document,
            )
            .map_err(|e| e.to_string())
    };
    let get = |resource: &str| {
        cluster
            .kubectl(&["get", resource, "-n", ns.name(), "-o", "json"])
            .map_err(|e| e.to_string())
    };
    let read_back = |name: &str| {
        let stored = get(&format!("clientintents.v2beta1.k8s.otterize.com/{name}")).unwrap();
        let older = get(&format!("clientintents.v1alpha3.k8s.otterize.com/{name}")).unwrap();
        (stored, older)
    };

    for (version, spec) in EVERY_VERSION {
        let name = spec
            .split_once("name: ")
            .and_then(|(_, rest)| rest.split(['}', ',']).next())
            .unwrap();
        let document = format!(
            "apiVersion: k8s.otterize.com/{version}\nkind: ClientIntents\nmetadata: {{name: {name}, namespace: {ns}}}\n{spec}",
            ns = ns.name()
        );
        apply(&document).unwrap_or_else(|e| panic!("{version}: {e}"));
        let written = canonical(&document, Flavor::Otterize);
        let (stored, older) = read_back(name);
        let as_written = get(&format!("clientintents.{version}.k8s.otterize.com/{name}")).unwrap();
        let stored_json: Value = serde_json::from_str(&stored).unwrap();
        let older_json: Value = serde_json::from_str(&older).unwrap();
        assert_eq!(stored_json["apiVersion"], "k8s.otterize.com/v2beta1");
        assert_eq!(older_json["apiVersion"], "k8s.otterize.com/v1alpha3");
        // The operator may write the status between the two reads: that
        // changes only the resource version and the managed fields.
        let metadata = |v: &Value| {
            let mut m = v["metadata"].clone();
            if let Some(m) = m.as_object_mut() {
                m.remove("resourceVersion");
                m.remove("managedFields");
            }
            m
        };
        assert_eq!(metadata(&older_json), metadata(&stored_json));
        for (shape, text) in [
            ("v2beta1", &stored),
            ("v1alpha3", &older),
            (version, &as_written),
        ] {
            assert_eq!(
                canonical(text, Flavor::Otterize),
                written,
                "{version} read back as {shape} differs:\n{text}"
            );
        }
    }

    // ibac's own group has one version; what it adds reads back whole.
    let ibac = format!(
        "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {{name: ibac, namespace: {}}}\nspec:\n  workload: {{name: ibac}}\n  targets:\n  - service: {{name: cart, ports: [8080]}}\n  - kafka: {{name: kafka.kafka, topics: [{{name: \"orders-*\", operations: [consume]}}]}}\n",
        ns.name()
    );
    apply(&ibac).unwrap();
    let read = get("clientintents.v1.ibac.dev/ibac").unwrap();
    assert_eq!(
        canonical(&read, Flavor::Ibac),
        canonical(&ibac, Flavor::Ibac)
    );

    // What v1alpha3 cannot hold is refused on reading, with its field path.
    let actions = format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: azure, namespace: {}}}\nspec:\n  workload: {{name: azure}}\n  targets:\n  - azure: {{scope: /subscriptions/x, actions: [Microsoft.Storage/read]}}\n",
        ns.name()
    );
    apply(&actions).unwrap();
    let error = get("clientintents.v1alpha3.k8s.otterize.com/azure").unwrap_err();
    assert!(
        error.contains(
            "spec.targets[0]: cannot write as k8s.otterize.com/v1alpha3: it lists azure actions"
        ),
        "{error}"
    );
    get("clientintents.v1beta1.k8s.otterize.com/azure").unwrap();

    // The validating webhook reads a document in the version it was written
    // in: the field path is that version's.
    let refused = format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {{name: refused, namespace: {}}}\nspec:\n  service: {{name: refused}}\n  calls:\n  - {{name: cart}}\n  - {{name: kafka, type: kafka, kafkaTopics: [{{name: Orders!, operations: [consume]}}]}}\n",
        ns.name()
    );
    let error = apply(&refused).unwrap_err();
    assert!(
        error.contains("admission webhook \"validate.ibac.dev\" denied the request: spec.calls[1].kafkaTopics[0].name: ")
            && error.contains("`Orders!`"),
        "{error}"
    );

    // An unknown field is refused, in the older shapes too.
    let misspelt = format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {{name: typo, namespace: {}}}\nspec:\n  service: {{name: typo}}\n  calls:\n  - {{name: cart, type: http, HTTPResource: [{{path: /x}}]}}\n",
        ns.name()
    );
    let error = apply(&misspelt).unwrap_err();
    assert!(
        error.contains("unknown field") && error.contains("HTTPResource"),
        "{error}"
    );

    // The other converted kinds: a ProtectedService and a KafkaServerConfig
    // written in v1alpha3 read back whole as v2beta1.
    let others = format!(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ProtectedService\nmetadata: {{name: cart, namespace: {ns}}}\nspec: {{name: cart, kind: Deployment}}\n---\napiVersion: k8s.otterize.com/v1alpha3\nkind: KafkaServerConfig\nmetadata: {{name: kafka, namespace: {ns}}}\nspec:\n  service: {{name: kafka}}\n  addr: kafka.kafka:9092\n  topics: [{{topic: orders, pattern: literal, clientIdentityRequired: true, intentsRequired: true}}]\n",
        ns = ns.name()
    );
    apply(&others).unwrap();
    let (psvc, ksc) = others.split_once("---\n").unwrap();
    let read = get("protectedservices.v2beta1.k8s.otterize.com/cart").unwrap();
    assert_eq!(
        canonical(&read, Flavor::Otterize),
        canonical(psvc, Flavor::Otterize)
    );
    let read = get("kafkaserverconfigs.v2beta1.k8s.otterize.com/kafka").unwrap();
    assert!(read.contains("\"workload\""), "{read}");
    assert_eq!(
        canonical(&read, Flavor::Otterize),
        canonical(ksc, Flavor::Otterize)
    );

    // Restarted, the operator serves under the CA the CRDs already trust.
    let ca = || {
        cluster
            .kubectl(&[
                "get",
                "crd",
                CONVERTED[0],
                "-o",
                "jsonpath={.spec.conversion.webhook.clientConfig.caBundle}",
            ])
            .unwrap()
    };
    let before = ca();
    drop(operator);
    let operator = webhooks.operator("operator-convert-restarted");
    assert_eq!(ca(), before, "a restart changed the CA the CRDs trust");
    let (stored, older) = read_back("alpha3");
    assert_eq!(
        canonical(&older, Flavor::Otterize),
        canonical(&stored, Flavor::Otterize)
    );
    drop(operator);
}

#[test]
fn one_clientintents_per_workload_across_both_groups() {
    let _one = one_operator();
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("unique").unwrap();
    let webhooks = Webhooks::new(cluster);
    let operator = webhooks.operator("operator-unique");
    let apply = |document: &str| {
        cluster
            .kubectl_with_input(&["apply", "-n", ns.name(), "-f", "-"], document)
            .map_err(|e| e.to_string())
    };
    let otterize = |name: &str, client: &str, target: &str| {
        format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: {name}}}\nspec:\n  workload: {{name: {client}}}\n  targets: [{{kubernetes: {{name: {target}}}}}]\n"
        )
    };
    let ibac = "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {name: checkout}\nspec:\n  workload: {name: checkout, kind: Deployment}\n  targets: [{service: {name: cart, ports: [8080]}}]\n";
    let older = "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {name: checkout-old}\nspec:\n  service: {name: checkout}\n  calls: [{name: cart}]\n";

    apply(&otterize("checkout-intents", "checkout", "cart")).unwrap();
    // Changing the one there is is fine; so is another client.
    apply(&otterize("checkout-intents", "checkout", "payments")).unwrap();
    apply(&otterize("frontend", "frontend", "checkout")).unwrap();

    let id = format!("checkout.{}", ns.name());
    let error = apply(ibac).unwrap_err();
    assert!(
        error.contains(&format!("spec.workload.name: ClientIntents for client `{id}` is already declared at clientintents.k8s.otterize.com/checkout-intents")),
        "{error}"
    );
    let error = apply(older).unwrap_err();
    assert!(
        error.contains(&format!("spec.service.name: ClientIntents for client `{id}` is already declared at clientintents.k8s.otterize.com/checkout-intents")),
        "{error}"
    );
    // Once the first is gone, the client's intents can move to ibac.dev, and
    // then Otterize's group is the one refused.
    cluster
        .kubectl(&[
            "delete",
            "clientintents.k8s.otterize.com",
            "checkout-intents",
            "-n",
            ns.name(),
        ])
        .unwrap();
    apply(ibac).unwrap();
    let error = apply(&otterize("checkout-intents", "checkout", "cart")).unwrap_err();
    assert!(
        error.contains("is already declared at clientintents.ibac.dev/checkout"),
        "{error}"
    );
    drop(operator);
}

/// The names of the CRDs the operator installs, as the API server knows them.
fn ibac_operator_crd_names() -> Vec<String> {
    stdout_of(ibac().args(["operator", "crds", "--names"]))
        .lines()
        .map(str::to_owned)
        .collect()
}
