//! The test control plane behaves as a cluster's does: the API server serves the
//! pinned release, and the controller-manager turns a Deployment into a
//! ReplicaSet and Pods (which stay Pending: there is no kubelet).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ibac_k8s_test::{Cluster, wait_for};
use serde_json::Value;

fn json(cluster: &Cluster, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.extend(["-o", "json"]);
    serde_json::from_str(&cluster.kubectl(&all).unwrap()).unwrap()
}

fn pinned_kubernetes_version() -> String {
    let go_mod = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tools/k8s/go.mod"
    ))
    .unwrap();
    go_mod
        .lines()
        .find_map(|l| l.trim().strip_prefix("k8s.io/kubernetes "))
        .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        .expect("tools/k8s/go.mod requires k8s.io/kubernetes")
}

#[test]
fn api_server_runs_the_pinned_release() {
    let cluster = Cluster::shared().unwrap();
    let version: Value =
        serde_json::from_str(&cluster.kubectl(&["version", "-o", "json"]).unwrap()).unwrap();
    let pinned = pinned_kubernetes_version();
    assert_eq!(version["serverVersion"]["gitVersion"], pinned.as_str());
    assert_eq!(version["clientVersion"]["gitVersion"], pinned.as_str());
}

#[test]
fn deployment_gets_a_replicaset_and_a_pending_pod() {
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("deployment").unwrap();
    let deployment = r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: example.invalid/web:1, ports: [{containerPort: 8080}]}
"#;
    cluster
        .kubectl_with_input(&["apply", "-n", ns.name(), "-f", "-"], deployment)
        .unwrap();

    let replica_set = wait_for(
        "the Deployment has a ReplicaSet",
        Duration::from_secs(60),
        || {
            let list = json(
                cluster,
                &["get", "replicasets", "-n", ns.name(), "-l", "app=web"],
            );
            Ok(list["items"]
                .as_array()
                .and_then(|items| items.first())
                .cloned())
        },
    )
    .unwrap();
    assert_eq!(
        replica_set["metadata"]["ownerReferences"][0]["kind"],
        "Deployment"
    );
    assert_eq!(replica_set["metadata"]["ownerReferences"][0]["name"], "web");
    let rs_name = replica_set["metadata"]["name"].as_str().unwrap().to_owned();

    let pod = wait_for("the ReplicaSet has a Pod", Duration::from_secs(60), || {
        let list = json(cluster, &["get", "pods", "-n", ns.name(), "-l", "app=web"]);
        Ok(list["items"]
            .as_array()
            .and_then(|items| items.first())
            .cloned())
    })
    .unwrap();
    assert_eq!(pod["metadata"]["ownerReferences"][0]["kind"], "ReplicaSet");
    assert_eq!(
        pod["metadata"]["ownerReferences"][0]["name"],
        rs_name.as_str()
    );
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["spec"]["nodeName"].is_null(), "no node can run it");
}

#[test]
fn each_test_namespace_is_new_and_deleted_after() {
    let cluster = Cluster::shared().unwrap();
    let first = cluster.namespace("own").unwrap();
    let second = cluster.namespace("own").unwrap();
    assert_ne!(first.name(), second.name());
    let name = first.name().to_owned();
    cluster
        .kubectl(&["create", "configmap", "x", "-n", &name])
        .unwrap();
    drop(first);
    wait_for("the namespace is gone", Duration::from_secs(60), || {
        let out = cluster
            .kubectl(&[
                "get",
                "namespace",
                &name,
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .unwrap();
        Ok(out.trim().is_empty().then_some(()))
    })
    .unwrap();
}
