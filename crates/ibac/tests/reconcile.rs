//! The Otterize tutorial "protect one service", with kubectl, on the test
//! control plane: `helm install` ibac in defaultShadow, run the operator with
//! nothing but the chart's ServiceAccount, `kubectl apply` the demo, its
//! intents and one ProtectedService, and check what the operator wrote
//! against two judges it did not write — the `network-config-analyzer`
//! package from PyPI and the reference evaluator of the render tests — and
//! what the objects' status says. Then `defaultActive`, a narrowed intent, a
//! removed intent, an unprotected server, a deleted namespace and Istio
//! appearing, each against the rule of what is written and when it goes
//! away (README, "What ibac writes").
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/release.rs"]
mod release;
#[path = "../../ibac-render/tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use ibac_k8s_test::{Cluster, wait_for};
use ibac_render::facts::{ClusterFacts, FactsOptions};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use release::Release;
use serde_json::Value;

const NS: &str = "otterize-ecom-demo";
const CATALOG: &str = "productcatalogservice";

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

fn demo(file: &str) -> String {
    repo()
        .join("examples/ecom-demo")
        .join(file)
        .display()
        .to_string()
}

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl(&all).unwrap()).unwrap()
}

/// Applies Istio's CRDs and returns once they can be used: each is
/// Established and discovery serves AuthorizationPolicies (a `kubectl get`
/// sent earlier is refused as an unknown resource type).
fn install_istio_crds(cluster: &Cluster) {
    let crds = cluster.istio_crds().unwrap().display().to_string();
    cluster
        .kubectl(&["apply", "--server-side", "-f", &crds])
        .unwrap();
    cluster
        .kubectl(&[
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "-f",
            &crds,
        ])
        .unwrap();
    wait_for(
        "discovery serves authorizationpolicies.security.istio.io",
        Duration::from_secs(60),
        || {
            let served = cluster.kubectl(&[
                "api-resources",
                "--api-group=security.istio.io",
                "-o",
                "name",
            ]);
            Ok(served
                .is_ok_and(|names| {
                    names
                        .lines()
                        .any(|name| name == "authorizationpolicies.security.istio.io")
                })
                .then_some(()))
        },
    )
    .unwrap();
}

fn policies(cluster: &Cluster, ns: &str) -> BTreeMap<String, NetworkPolicy> {
    let list = json(cluster, &["get", "networkpolicies", "-n", ns]);
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let policy: NetworkPolicy = serde_json::from_value(item.clone()).unwrap();
            (policy.metadata.name.clone().unwrap(), policy)
        })
        .collect()
}

fn versions(cluster: &Cluster, ns: &str) -> BTreeMap<String, String> {
    policies(cluster, ns)
        .into_iter()
        .map(|(name, p)| (name, p.metadata.resource_version.unwrap_or_default()))
        .collect()
}

/// The condition `type_` of an object: (status, reason, message).
fn condition(object: &Value, type_: &str) -> Option<(String, String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| {
            (
                c["status"].as_str().unwrap_or_default().to_owned(),
                c["reason"].as_str().unwrap_or_default().to_owned(),
                c["message"].as_str().unwrap_or_default().to_owned(),
            )
        })
}

fn protected_service(cluster: &Cluster, name: &str) -> Value {
    json(
        cluster,
        &["get", "protectedservice.k8s.otterize.com", name, "-n", NS],
    )
}

fn intents(cluster: &Cluster, name: &str) -> Value {
    json(
        cluster,
        &["get", "clientintents.k8s.otterize.com", name, "-n", NS],
    )
}

/// Whether the status of ClientIntents `name` describes its latest
/// generation and its NetworkPolicy condition has `reason`.
fn settled(cluster: &Cluster, name: &str, reason: &str) -> bool {
    let object = intents(cluster, name);
    object["status"]["observedGeneration"] == object["metadata"]["generation"]
        && condition(&object, "NetworkPolicy").is_some_and(|(_, r, _)| r == reason)
}

/// Every Deployment and StatefulSet of the demo, as the evaluator's pods.
fn demo_pods() -> Vec<support::Pod> {
    let text = std::fs::read_to_string(repo().join("examples/ecom-cluster/cluster.yaml")).unwrap();
    let facts =
        ClusterFacts::read(&[("cluster.yaml".into(), text)], &FactsOptions::default()).unwrap();
    facts.workloads().map(support::pod_of).collect()
}

/// Who may reach `server` (on every port it has), by the reference
/// evaluator; and whether every other pair of the demo is still allowed.
fn evaluated(cluster: &Cluster, server: &str) -> (BTreeSet<String>, bool) {
    let objects: Vec<NetworkPolicy> = policies(cluster, NS).into_values().collect();
    let namespaces = BTreeMap::from([(
        NS.to_owned(),
        BTreeMap::from([("kubernetes.io/metadata.name".to_owned(), NS.to_owned())]),
    )]);
    let pods = demo_pods();
    let mut callers = BTreeSet::new();
    let mut others_open = true;
    for client in &pods {
        for target in &pods {
            if client.name == target.name {
                continue;
            }
            for (_, port, _) in &target.ports {
                let allowed = support::allowed(&objects, &namespaces, client, target, *port, "TCP");
                if target.name == server {
                    if allowed {
                        callers.insert(client.name.clone());
                    }
                } else if !allowed {
                    others_open = false;
                }
            }
        }
    }
    (callers, others_open)
}

/// The `network-config-analyzer` package from PyPI, in a virtual environment
/// kept with the other test clients.
fn nca() -> PathBuf {
    const VERSION: &str = "2.1.0";
    let cache = std::env::var_os("IBAC_INTEROP_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("ibac-interop"));
    let venv = cache.join(format!("nca-{VERSION}"));
    let nca = venv.join("bin/nca");
    if !nca.exists() {
        let status = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .unwrap();
        assert!(status.success(), "python3 -m venv failed");
        let status = Command::new(venv.join("bin/pip"))
            .args([
                "install",
                "-q",
                &format!("network-config-analyzer=={VERSION}"),
            ])
            .status()
            .unwrap();
        assert!(
            status.success(),
            "pip install network-config-analyzer failed"
        );
    }
    nca
}

/// What NCA says of the NetworkPolicies in the cluster over the demo's
/// workloads: who reaches `server` (with what), and whether every other
/// pair of the demo is still allowed all connections.
fn analysed(cluster: &Cluster, server: &str) -> (BTreeMap<String, String>, bool) {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies.json");
    std::fs::write(
        &policies,
        cluster
            .kubectl(&["get", "networkpolicies", "-n", NS, "-o", "json"])
            .unwrap(),
    )
    .unwrap();
    let workloads = repo().join("examples/ecom-cluster/cluster.yaml");
    let out = Command::new(nca())
        .arg("--connectivity")
        .arg(&policies)
        .arg("--pod_list")
        .arg(&workloads)
        .arg("--ns_list")
        .arg(&workloads)
        .args(["-o", "txt_no_fw_rules"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "nca failed:\n{text}");
    let name = |endpoint: &str| -> String {
        endpoint
            .trim()
            .strip_prefix(&format!("{NS}/"))
            .and_then(|rest| rest.split('[').next())
            .unwrap_or(endpoint.trim())
            .to_owned()
    };
    let mut callers = BTreeMap::new();
    let mut pairs = BTreeSet::new();
    for line in text.lines() {
        let Some((src, rest)) = line.split_once(" => ") else {
            continue;
        };
        let Some((dst, conn)) = rest.split_once(" : ") else {
            continue;
        };
        let (src, dst) = (name(src), name(dst));
        if dst == server {
            callers.insert(src, conn.trim().to_owned());
        } else if conn.trim() == "All connections" {
            pairs.insert((src, dst));
        }
    }
    let names: Vec<String> = demo_pods().into_iter().map(|p| p.name).collect();
    let others_open = names.iter().all(|a| {
        names
            .iter()
            .filter(|b| *b != a && b.as_str() != server)
            .all(|b| pairs.contains(&(a.clone(), b.clone())))
    });
    (callers, others_open)
}

/// `kubectl apply` of a YAML text.
fn apply(cluster: &Cluster, yaml: &str) {
    cluster
        .kubectl_with_input(&["apply", "-f", "-"], yaml)
        .unwrap();
}

/// The ClientIntents of the demo Deployment `client` in `NS` when it calls
/// the Deployment `server` alone.
fn calls_only(client: &str, server: &str) -> String {
    format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: {client}, namespace: {NS}}}\nspec:\n  workload: {{name: {client}, kind: Deployment}}\n  targets:\n  - kubernetes: {{name: {server}, kind: Deployment}}\n"
    )
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

fn all_connections(names: &[&str]) -> BTreeMap<String, String> {
    names
        .iter()
        .map(|n| ((*n).to_owned(), "All connections".to_owned()))
        .collect()
}

/// `helm upgrade` of the release, its values kept but `value` (`key=value`).
fn helm_upgrade(cluster: &Cluster, release: &str, value: &str) {
    let chart = release::chart();
    cluster
        .helm(&[
            "upgrade",
            "ibac",
            &chart,
            "-n",
            release,
            "--reuse-values",
            "--set",
            value,
        ])
        .unwrap();
}

#[test]
fn the_otterize_tutorial_with_kubectl() {
    let cluster = Cluster::shared().unwrap();
    let release = cluster.namespace("ibac-tutorial").unwrap();
    let mut operator = Release::install(cluster, release.name(), &[]);
    operator.wait_ready();
    operator.wait("the operator follows defaultShadow", || {
        (operator.metric("ibac_operator_mode{mode=\"defaultShadow\"}") == 1.0).then_some(())
    });

    // The demo, then every client's intents.
    cluster
        .kubectl(&[
            "apply",
            "-f",
            &repo()
                .join("examples/ecom-cluster/cluster.yaml")
                .display()
                .to_string(),
        ])
        .unwrap();
    let clients = [
        "cartservice",
        "checkoutservice",
        "frontend",
        "loadgenerator",
        "orderservice",
        "recommendationservice",
    ];
    for client in clients {
        cluster
            .kubectl(&["apply", "-f", &demo(&format!("{client}.yaml"))])
            .unwrap();
    }
    // Shadow mode: every ClientIntents says so, and nothing is written.
    for client in clients {
        operator.wait(&format!("{client}'s intents say shadow"), || {
            settled(cluster, client, "Shadow").then_some(())
        });
    }
    let frontend = intents(cluster, "frontend");
    assert_eq!(frontend["status"]["upToDate"], true, "{frontend:#}");
    let (status, reason, message) = condition(&frontend, "Istio").unwrap();
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NotInstalled"),
        "{message}"
    );
    assert_eq!(
        condition(&frontend, "Ready").map(|c| c.0),
        Some("True".to_owned()),
        "an enforcer that is not installed does not make it unready"
    );
    assert!(
        policies(cluster, NS).is_empty(),
        "shadow mode writes nothing"
    );

    // Protect productcatalogservice.
    cluster
        .kubectl(&["apply", "-f", &demo("productcatalogservice-protected.yaml")])
        .unwrap();
    let protected = operator.wait("the ProtectedService says protected", || {
        let object = protected_service(cluster, CATALOG);
        (object["status"]["enforcedBy"] == serde_json::json!(["NetworkPolicy"])).then_some(object)
    });
    assert_eq!(protected["status"]["protected"], true, "{protected:#}");
    assert_eq!(protected["status"]["allowedClients"], 3, "{protected:#}");
    assert_eq!(
        condition(&protected, "NetworkPolicy").map(|c| c.1),
        Some("Enforced".to_owned())
    );
    assert_eq!(
        policies(cluster, NS).keys().cloned().collect::<Vec<_>>(),
        vec![format!("ibac-ingress-{CATALOG}")],
        "only the protected server has a policy"
    );
    let declared = ["checkoutservice", "frontend", "recommendationservice"];
    assert_eq!(
        analysed(cluster, CATALOG),
        (all_connections(&declared), true),
        "network-config-analyzer: exactly the three declared clients reach it, nothing else changed"
    );
    assert_eq!(evaluated(cluster, CATALOG), (set(&declared), true));
    operator.wait("frontend's intents are partly enforced", || {
        settled(cluster, "frontend", "PartlyShadow").then_some(())
    });
    operator.wait("recommendationservice's intents are enforced", || {
        settled(cluster, "recommendationservice", "Enforced").then_some(())
    });

    // What a user sees.
    let table = cluster
        .kubectl(&["get", "clientintents.k8s.otterize.com", "-n", NS])
        .unwrap();
    assert!(
        table.contains("UP TO DATE") && table.contains("READY") && table.contains("True"),
        "{table}"
    );
    let described = cluster
        .kubectl(&[
            "describe",
            "protectedservice.k8s.otterize.com",
            CATALOG,
            "-n",
            NS,
        ])
        .unwrap();
    for expected in [
        "Enforced By",
        "NetworkPolicy",
        "Allowed Clients",
        "Enforced",
    ] {
        assert!(
            described.contains(expected),
            "no `{expected}` in:\n{described}"
        );
    }
    let events = cluster
        .kubectl(&["get", "events.events.k8s.io", "-n", NS, "-o", "json"])
        .unwrap();
    assert!(
        events.contains(&format!(
            "Created NetworkPolicy {NS}/ibac-ingress-{CATALOG}"
        )),
        "{events}"
    );

    // Drift: a policy deleted or opened by hand is written again at once.
    let name = format!("ibac-ingress-{CATALOG}");
    cluster
        .kubectl(&["delete", "networkpolicy", &name, "-n", NS])
        .unwrap();
    operator.wait("the deleted policy is back", || {
        (evaluated(cluster, CATALOG).0 == set(&declared)).then_some(())
    });
    cluster
        .kubectl(&[
            "patch",
            "networkpolicy",
            &name,
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            r#"{"spec":{"ingress":[{}]}}"#,
        ])
        .unwrap();
    operator.wait("the opened policy is closed again", || {
        let callers = evaluated(cluster, CATALOG).0;
        (callers == set(&declared)).then_some(())
    });
    assert!(operator.metric("ibac_operator_drift_corrections_total") >= 2.0);

    // defaultActive: every server of the demo gets its policy; the catalog's,
    // already right, is not written again.
    let before = versions(cluster, NS);
    let written = operator.metric("ibac_operator_objects_written_total");
    helm_upgrade(cluster, release.name(), "mode=defaultActive");
    let servers = demo_pods().len();
    operator.wait("every server of the demo is protected", || {
        let names = policies(cluster, NS);
        (names
            .keys()
            .filter(|n| n.starts_with("ibac-ingress-"))
            .count()
            == servers)
            .then_some(())
    });
    let after = versions(cluster, NS);
    assert_eq!(
        after[&format!("ibac-ingress-{CATALOG}")],
        before[&format!("ibac-ingress-{CATALOG}")],
        "an unchanged policy is not written again"
    );
    operator.wait("the writes are counted", || {
        let delta = operator.metric("ibac_operator_objects_written_total") - written;
        #[allow(clippy::cast_precision_loss)]
        let expected = (after.len() - 1) as f64;
        (delta == expected).then_some(())
    });
    let (redis_callers, _) = evaluated(cluster, "redis-cart");
    assert_eq!(redis_callers, set(&["cartservice"]));

    // A narrowed intent: recommendationservice no longer calls the catalog.
    // Exactly one object is written: the catalog's policy.
    let before = versions(cluster, NS);
    let written = operator.metric("ibac_operator_objects_written_total");
    apply(cluster, &calls_only("recommendationservice", "cartservice"));
    operator.wait("the catalog's policy allows less", || {
        (evaluated(cluster, CATALOG).0 == set(&["checkoutservice", "frontend"])).then_some(())
    });
    operator.wait("recommendationservice's new intent is enforced", || {
        settled(cluster, "recommendationservice", "Enforced").then_some(())
    });
    let after = versions(cluster, NS);
    let changed: Vec<&String> = after
        .iter()
        .filter(|(name, v)| before.get(*name) != Some(*v))
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        changed,
        vec![
            &"ibac-ingress-cartservice".to_owned(),
            &format!("ibac-ingress-{CATALOG}")
        ],
        "only the servers the change touched are written"
    );
    let delta = operator.metric("ibac_operator_objects_written_total") - written;
    assert!((delta - 2.0).abs() < f64::EPSILON, "{delta} writes");
    assert_eq!(
        analysed(cluster, CATALOG).0,
        all_connections(&["checkoutservice", "frontend"])
    );

    // A removed intent: cartservice's ClientIntents goes; redis-cart keeps
    // its policy, now a default deny.
    cluster
        .kubectl(&["delete", "-f", &demo("cartservice.yaml")])
        .unwrap();
    operator.wait("redis-cart allows nobody", || {
        evaluated(cluster, "redis-cart").0.is_empty().then_some(())
    });
    assert!(policies(cluster, NS).contains_key("ibac-ingress-redis-cart"));

    // Back to defaultShadow: only the ProtectedService's server keeps a
    // policy; then without the ProtectedService, none.
    helm_upgrade(cluster, release.name(), "mode=defaultShadow");
    operator.wait("only the protected server keeps its policy", || {
        (policies(cluster, NS).keys().cloned().collect::<Vec<_>>()
            == vec![format!("ibac-ingress-{CATALOG}")])
        .then_some(())
    });
    cluster
        .kubectl(&[
            "delete",
            "-f",
            &demo("productcatalogservice-protected.yaml"),
        ])
        .unwrap();
    operator.wait("an unprotected server has no policy", || {
        policies(cluster, NS).is_empty().then_some(())
    });

    // A client in another namespace, then that namespace deleted: the
    // catalog's policy is rewritten without it, and the namespace goes.
    cluster
        .kubectl(&["apply", "-f", &demo("productcatalogservice-protected.yaml")])
        .unwrap();
    let other = cluster.namespace("ecom-audit").unwrap();
    cluster
        .kubectl_with_input(
            &["apply", "-n", other.name(), "-f", "-"],
            &format!(
                "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: auditor}}\nspec:\n  selector: {{matchLabels: {{app: auditor}}}}\n  template:\n    metadata: {{labels: {{app: auditor}}}}\n    spec: {{containers: [{{name: c, image: auditor}}]}}\n---\napiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: auditor}}\nspec:\n  workload: {{name: auditor}}\n  targets: [{{kubernetes: {{name: {CATALOG}.{NS}}}}}]\n"
            ),
        )
        .unwrap();
    let other_ns = other.name().to_owned();
    operator.wait("the catalog allows the auditor", || {
        let policy = policies(cluster, NS).remove(&format!("ibac-ingress-{CATALOG}"))?;
        serde_json::to_string(&policy)
            .unwrap()
            .contains(&other_ns)
            .then_some(())
    });
    cluster
        .kubectl(&["delete", "namespace", &other_ns, "--wait=false"])
        .unwrap();
    operator.wait("the catalog no longer names the deleted namespace", || {
        let policy = policies(cluster, NS).remove(&format!("ibac-ingress-{CATALOG}"))?;
        (!serde_json::to_string(&policy).unwrap().contains(&other_ns)).then_some(())
    });
    operator.wait(
        "the namespace is gone, nothing stuck in Terminating",
        || {
            cluster
                .kubectl(&["get", "namespace", &other_ns])
                .is_err()
                .then_some(())
        },
    );

    // Istio appears: its reconciler starts writing.
    install_istio_crds(cluster);
    let authorization = operator.wait("an AuthorizationPolicy protects the catalog", || {
        let list = json(
            cluster,
            &["get", "authorizationpolicies.security.istio.io", "-n", NS],
        );
        list["items"].as_array()?.first().cloned()
    });
    assert_eq!(authorization["metadata"]["name"], format!("ibac-{CATALOG}"));
    let principals = authorization["spec"]["rules"].to_string();
    for client in ["checkoutservice", "frontend"] {
        assert!(
            principals.contains(&format!("cluster.local/ns/{NS}/sa/{client}")),
            "{principals}"
        );
    }
    operator.wait("the ProtectedService is enforced by both", || {
        let object = protected_service(cluster, CATALOG);
        (object["status"]["enforcedBy"] == serde_json::json!(["NetworkPolicy", "Istio"]))
            .then_some(())
    });

    // Egress policies on: one per client with intents, rewritten when its
    // intents shrink, deleted with its ClientIntents only.
    helm_upgrade(
        cluster,
        release.name(),
        "enforcers.egressNetworkPolicy=true",
    );
    let egress = |client: &str| policies(cluster, NS).remove(&format!("ibac-egress-{client}"));
    let text = |policy: &NetworkPolicy| serde_json::to_string(policy).unwrap();
    let frontend_egress = operator.wait("frontend has an egress policy", || egress("frontend"));
    assert!(
        text(&frontend_egress).contains("\"adservice\""),
        "{}",
        text(&frontend_egress)
    );
    assert!(
        text(&frontend_egress).contains("kube-dns"),
        "DNS is allowed"
    );
    for client in [
        "checkoutservice",
        "loadgenerator",
        "orderservice",
        "recommendationservice",
    ] {
        assert!(egress(client).is_some(), "{client} has no egress policy");
    }
    assert!(egress("cartservice").is_none(), "its ClientIntents is gone");
    apply(cluster, &calls_only("frontend", CATALOG));
    operator.wait("frontend's egress allows less", || {
        let policy = egress("frontend")?;
        (!text(&policy).contains("\"adservice\"")).then_some(())
    });
    cluster
        .kubectl(&["delete", "-f", &demo("frontend.yaml")])
        .unwrap();
    operator.wait("frontend's egress goes with its ClientIntents", || {
        egress("frontend").is_none().then_some(())
    });
    assert!(egress("checkoutservice").is_some(), "the others stay");

    // A server declares its caller with Otterize's `called-by` annotation.
    apply(
        cluster,
        &format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {{name: adservice, namespace: {NS}}}\nspec: {{name: adservice}}\n"
        ),
    );
    operator.wait("adservice allows nobody", || {
        (policies(cluster, NS).contains_key("ibac-ingress-adservice")
            && evaluated(cluster, "adservice").0.is_empty())
        .then_some(())
    });
    let patch = format!(
        r#"{{"spec":{{"template":{{"metadata":{{"annotations":{{"intents.otterize.com/called-by":"[{{\"name\":\"loadgenerator.{NS}\",\"kind\":\"Deployment\"}}]"}}}}}}}}}}"#
    );
    cluster
        .kubectl(&[
            "patch",
            "deployment",
            "adservice",
            "-n",
            NS,
            "--type",
            "merge",
            "-p",
            &patch,
        ])
        .unwrap();
    operator.wait("adservice allows the caller it declares", || {
        (evaluated(cluster, "adservice").0 == set(&["loadgenerator"])).then_some(())
    });

    // A server whose policy cannot be computed keeps what it has: another
    // Deployment's pods carry its labels, so its selector would reach them.
    let kept = versions(cluster, NS)["ibac-ingress-adservice"].clone();
    apply(
        cluster,
        &format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: adservice-canary, namespace: {NS}}}\nspec:\n  selector: {{matchLabels: {{app: adservice}}}}\n  template:\n    metadata: {{labels: {{app: adservice}}}}\n    spec: {{containers: [{{name: c, image: canary}}]}}\n"
        ),
    );
    let (_, _, why) = operator.wait("the ProtectedService says why", || {
        let object = protected_service(cluster, "adservice");
        condition(&object, "NetworkPolicy")
            .filter(|(status, reason, _)| status == "False" && reason == "Error")
    });
    assert!(
        why.contains("also selects the pods of Deployment `adservice-canary"),
        "{why}"
    );
    assert!(why.contains("stays as it was"), "{why}");
    assert_eq!(
        versions(cluster, NS)["ibac-ingress-adservice"],
        kept,
        "what was in force stays"
    );
    cluster
        .kubectl(&["delete", "deployment", "adservice-canary", "-n", NS])
        .unwrap();
    operator.wait("adservice is enforced again", || {
        let object = protected_service(cluster, "adservice");
        condition(&object, "NetworkPolicy").filter(|(_, reason, _)| reason == "Enforced")
    });

    // A restarted operator finds everything as it must be and writes
    // nothing: every object it wrote is skipped by its hash annotation.
    let before = versions(cluster, NS);
    operator.restart();
    let authorization = json(
        cluster,
        &["get", "authorizationpolicies.security.istio.io", "-n", NS],
    )["items"]
        .as_array()
        .map_or(0, Vec::len);
    #[allow(clippy::cast_precision_loss)]
    let objects = (before.len() + authorization) as f64;
    operator.wait("the restarted operator has seen every object", || {
        (operator.metric("ibac_operator_writes_skipped_total") >= objects).then_some(())
    });
    assert_eq!(operator.metric("ibac_operator_objects_written_total"), 0.0);
    assert_eq!(versions(cluster, NS), before, "nothing was written again");
}
