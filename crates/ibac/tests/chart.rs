//! The Helm chart `charts/ibac`: it holds the CRDs the operator installs,
//! passes `helm lint`, renders, installs onto the test API server, and its
//! ServiceAccount's RBAC is enough for everything the operator does (the
//! operator runs as a local process with that account's token).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "common/release.rs"]
mod release;

use std::path::PathBuf;
use std::process::Command;

use ibac_k8s_test::Cluster;
use release::Release;

fn chart() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/ibac"))
}

fn chart_arg() -> String {
    chart().display().to_string()
}

#[test]
fn the_chart_holds_the_crds_the_operator_installs() {
    let out = Command::new(env!("CARGO_BIN_EXE_ibac"))
        .args(["operator", "crds"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let expected = String::from_utf8(out.stdout).unwrap();
    let held = std::fs::read_to_string(chart().join("crds/ibac.yaml")).unwrap();
    assert!(
        held == expected,
        "charts/ibac/crds/ibac.yaml is stale: cargo run -p ibac -- operator crds > charts/ibac/crds/ibac.yaml"
    );
}

/// The chart as `helm template` renders it for release `ibac` in
/// `ibac-system`, with each of `values` (`key=value`) set.
fn template(cluster: &Cluster, values: &[&str]) -> String {
    let chart = chart_arg();
    let mut args = vec!["template", "ibac", &chart, "-n", "ibac-system"];
    for value in values {
        args.extend(["--set", *value]);
    }
    cluster.helm(&args).unwrap()
}

#[test]
fn the_chart_lints_and_renders() {
    let cluster = Cluster::shared().unwrap();
    cluster.helm(&["lint", "--strict", &chart_arg()]).unwrap();
    let rendered = template(cluster, &[]);
    for kind in [
        "kind: ServiceAccount",
        "kind: ClusterRole",
        "kind: ClusterRoleBinding",
        "kind: Role",
        "kind: RoleBinding",
        "kind: Deployment",
        "kind: Service",
    ] {
        assert!(rendered.contains(kind), "no `{kind}` in:\n{rendered}");
    }
    insta::assert_snapshot!("chart_rendered_with_defaults", rendered);
    // In a pod, the webhooks are reached through the chart's Service...
    assert!(rendered.contains("IBAC_WEBHOOK_SERVICE"), "{rendered}");
    // ...or through a URL, for an operator outside the cluster.
    let by_url = template(cluster, &["webhook.url=https://192.0.2.1:9443"]);
    assert!(by_url.contains("https://192.0.2.1:9443"), "{by_url}");
    assert!(!by_url.contains("IBAC_WEBHOOK_SERVICE"), "{by_url}");
    // Otterize's `watchedNamespaces` reaches the operator.
    assert!(!rendered.contains("IBAC_WATCHED_NAMESPACES"), "{rendered}");
    let watched = template(cluster, &["watchedNamespaces={shop,data}"]);
    assert!(
        watched.contains("IBAC_WATCHED_NAMESPACES") && watched.contains("\"shop,data\""),
        "{watched}"
    );
}

#[test]
fn helm_install_and_the_operator_runs_with_the_charts_service_account() {
    let cluster = Cluster::shared().unwrap();
    let ns = cluster.namespace("ibac-release").unwrap();
    // Settings by Otterize's value names and ibac's.
    let mut release = Release::install(
        cluster,
        ns.name(),
        &["mode=defaultActive", "enableIstioPolicyCreation=false"],
    );
    let settings = cluster
        .kubectl(&[
            "get",
            "enforcementconfig.ibac.dev",
            "ibac",
            "-n",
            ns.name(),
            "-o",
            "json",
        ])
        .unwrap();
    let settings: serde_json::Value = serde_json::from_str(&settings).unwrap();
    assert_eq!(settings["spec"]["mode"], "defaultActive");
    assert_eq!(settings["spec"]["enforcers"]["istio"], false);
    // The Deployment makes a Pod, which stays Pending: no kubelet runs it.
    release.wait("the operator's Pod exists", || {
        let pods = cluster
            .kubectl(&[
                "get",
                "pods",
                "-n",
                ns.name(),
                "-l",
                "app.kubernetes.io/name=ibac",
                "-o",
                "name",
            ])
            .unwrap();
        (!pods.trim().is_empty()).then_some(())
    });
    release.wait_ready();
    // It follows the release's settings...
    release.wait("the operator is in the chart's mode", || {
        (release.metric("ibac_operator_mode{mode=\"defaultActive\"}") == 1.0).then_some(())
    });
    // ...and reports a second EnforcementConfig, which it ignores.
    cluster
        .kubectl_with_input(
            &["apply", "-n", ns.name(), "-f", "-"],
            "apiVersion: ibac.dev/v1\nkind: EnforcementConfig\nmetadata: {name: other}\nspec: {mode: defaultShadow}\n",
        )
        .unwrap();
    release.wait("the second EnforcementConfig is reported", || {
        (release.metric("ibac_operator_settings_ignored") == 1.0
            && release.metric("ibac_operator_mode{mode=\"defaultActive\"}") == 1.0)
            .then_some(())
    });
    // With that account its webhooks convert and check one ClientIntents per
    // workload (which lists both groups' ClientIntents).
    let app = cluster.namespace("chart-app").unwrap();
    let apply = |document: &str| {
        cluster
            .kubectl_with_input(&["apply", "-n", app.name(), "-f", "-"], document)
            .map_err(|e| e.to_string())
    };
    apply(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {name: web}\nspec:\n  service: {name: web}\n  calls: [{name: api, type: http, HTTPResources: [{path: /v1/*, methods: [GET]}]}]\n",
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", release.log()));
    let read = cluster
        .kubectl(&[
            "get",
            "clientintents.v2beta1.k8s.otterize.com/web",
            "-n",
            app.name(),
            "-o",
            "jsonpath={.spec.targets[0].kubernetes.http[0].path}",
        ])
        .unwrap();
    assert_eq!(read, "/v1/*");
    let error = apply(
        "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {name: web}\nspec:\n  workload: {name: web}\n  targets: [{kubernetes: {name: api}}]\n",
    )
    .unwrap_err();
    assert!(
        error.contains("is already declared at clientintents.k8s.otterize.com/web"),
        "{error}"
    );
    release.stop();
    // What it did with that account: the CRDs, its CA's Secret, the webhook
    // configuration.
    cluster
        .kubectl(&["get", "secret", "ibac-webhook-ca", "-n", ns.name()])
        .unwrap();
    cluster
        .kubectl(&["get", "validatingwebhookconfiguration", "ibac"])
        .unwrap();
    // And nothing more: the account cannot list Secrets.
    let can_i = cluster
        .kubectl_command()
        .args(["auth", "can-i", "list", "secrets", "-n", ns.name(), "--as"])
        .arg(format!("system:serviceaccount:{}:ibac", ns.name()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&can_i.stdout).trim(), "no");
}
