//! Workloads as pods really are, in rendering: the cluster DNS server as a
//! target never cuts DNS for others, a hostNetwork server is reported as
//! beyond NetworkPolicies, CronJobs and their Jobs' pods are one workload, and
//! Otterize's annotations name workloads and callers.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::collections::BTreeMap;

use ibac_model::{ParseOptions, WorkloadId, parse_source};
use ibac_policy::Policy;
use ibac_render::facts::{ClusterFacts, FactsOptions};
use ibac_render::{NetpolOptions, render_network_policies};

fn facts(yaml: &str) -> ClusterFacts {
    ClusterFacts::read(
        &[("cluster.yaml".into(), yaml.to_owned())],
        &FactsOptions::default(),
    )
    .unwrap()
}

fn policy(yaml: &str, facts: &ClusterFacts) -> Policy {
    let parsed = parse_source(&"docs.yaml".into(), yaml, &ParseOptions::default());
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let (policy, errors) = Policy::build(parsed.documents, facts);
    assert!(errors.is_empty(), "{errors:?}");
    policy
}

fn pod(ns: &str, name: &str, app: &str) -> support::Pod {
    support::Pod {
        namespace: ns.into(),
        name: name.into(),
        labels: BTreeMap::from([("app".to_string(), app.to_string())]),
        ports: Vec::new(),
    }
}

/// The cluster DNS server and two clients whose pods have only labels.
fn dns() -> String {
    let client = |name: &str| {
        support::workload(
            "Deployment",
            name,
            "shop",
            (&format!("app: {name}"), &format!("app: {name}")),
            None,
        )
    };
    support::stream(&[
        support::deployment(
            "coredns",
            "kube-system",
            "k8s-app: kube-dns",
            "{containers: [{name: c, image: coredns, ports: [{containerPort: 53, protocol: UDP}]}]}",
        ),
        client("web"),
        client("probe"),
    ])
}

#[test]
fn protecting_the_cluster_dns_never_cuts_dns_for_others() {
    let facts = facts(&dns());
    let policy = policy(
        r"
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: coredns, namespace: kube-system}
spec: {name: coredns}
---
apiVersion: ibac.dev/v1
kind: ClientIntents
metadata: {name: web, namespace: shop}
spec:
  workload: {name: web}
  targets: [{kubernetes: {name: coredns.kube-system, ports: [9153]}}]
",
        &facts,
    );
    let rendered = render_network_policies(&policy, &facts, &NetpolOptions::default()).unwrap();
    assert_eq!(rendered.objects.len(), 1);
    let namespaces = facts.namespaces().clone();
    let dns = support::Pod {
        namespace: "kube-system".into(),
        name: "coredns".into(),
        labels: BTreeMap::from([("k8s-app".to_string(), "kube-dns".to_string())]),
        ports: vec![("".into(), 53, "UDP".into())],
    };
    for client in [pod("shop", "web", "web"), pod("shop", "probe", "probe")] {
        for protocol in ["UDP", "TCP"] {
            assert!(
                support::allowed(&rendered.objects, &namespaces, &client, &dns, 53, protocol),
                "{} cannot resolve names over {protocol}",
                client.name
            );
        }
    }
    // What is not DNS is what the intents say.
    let web = pod("shop", "web", "web");
    let probe = pod("shop", "probe", "probe");
    let reaches = |client: &support::Pod| {
        support::allowed(&rendered.objects, &namespaces, client, &dns, 9153, "TCP")
    };
    assert!(reaches(&web));
    assert!(!reaches(&probe));
}

#[test]
fn a_host_network_server_is_reported_not_written() {
    let facts = facts(include_str!("clusters/host-network-daemonset.yaml"));
    let policy = policy(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: agent, namespace: infra}\nspec: {name: agent}\n",
        &facts,
    );
    let rendered = render_network_policies(&policy, &facts, &NetpolOptions::default()).unwrap();
    assert!(rendered.objects.is_empty(), "{:?}", rendered.objects);
    let skipped: Vec<String> = rendered.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(skipped.len(), 1, "{skipped:?}");
    assert!(skipped[0].contains("hostNetwork"), "{skipped:?}");
    assert!(skipped[0].contains("cannot protect it"), "{skipped:?}");
}

#[test]
fn a_cron_job_and_the_pods_of_its_jobs_are_one_workload() {
    let facts = facts(include_str!("clusters/cron-job-with-its-job-and-pod.yaml"));
    let workloads: Vec<(String, String)> = facts
        .workloads()
        .map(|w| (w.id.to_string(), w.kind.clone()))
        .collect();
    assert_eq!(
        workloads,
        vec![("report.shop".to_string(), "CronJob".to_string())]
    );
    let pod = facts.pods().next().unwrap();
    assert_eq!(pod.owner, Some(WorkloadId::parse("report.shop").unwrap()));
}

#[test]
fn the_workload_name_annotation_and_called_by_are_read() {
    let facts = facts(include_str!("clusters/annotated-deployment.yaml"));
    let web = facts.workloads().next().unwrap();
    assert_eq!(web.id.to_string(), "web.shop");
    assert_eq!(
        web.called_by,
        Ok(vec![WorkloadId::parse("probe.infra").unwrap()])
    );
}
