//! ibac's CRDs: snapshots of what a cluster is given, checks that every part
//! users write is structural, and the real API server accepting them, serving
//! the documents Otterize's users already have and refusing unknown fields
//! under kubectl's strict validation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use ibac_k8s_test::{Cluster, wait_for};
use ibac_operator::crd;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use serde_json::Value;

#[test]
fn crds_snapshot() {
    for definition in crd::all() {
        let name = definition.metadata.name.clone().unwrap();
        insta::assert_snapshot!(name, ibac_model::yaml::to_yaml(&definition).unwrap());
    }
}

/// Every node under `spec` names its fields: no preserved unknown fields, no
/// object without properties, no untyped node but int-or-string.
fn check_structural(schema: &JSONSchemaProps, path: &str, problems: &mut Vec<String>) {
    if schema.x_kubernetes_preserve_unknown_fields == Some(true) {
        problems.push(format!("{path}: preserves unknown fields"));
    }
    match schema.type_.as_deref() {
        Some("object") => match (&schema.properties, &schema.additional_properties) {
            (Some(properties), _) => {
                for (name, child) in properties {
                    check_structural(child, &format!("{path}.{name}"), problems);
                }
            }
            (None, Some(JSONSchemaPropsOrBool::Schema(values))) => {
                check_structural(values, &format!("{path}[*]"), problems);
            }
            _ => problems.push(format!("{path}: an object without properties")),
        },
        Some("array") => match &schema.items {
            Some(JSONSchemaPropsOrArray::Schema(items)) => {
                check_structural(items, &format!("{path}[]"), problems);
            }
            _ => problems.push(format!("{path}: an array without items")),
        },
        Some(_) => {}
        None if schema.x_kubernetes_int_or_string == Some(true) => {}
        None => problems.push(format!("{path}: no type")),
    }
}

#[test]
fn every_part_users_write_is_structural() {
    let mut problems = Vec::new();
    for definition in crd::all() {
        for version in &definition.spec.versions {
            let root = version
                .schema
                .as_ref()
                .and_then(|s| s.open_api_v3_schema.as_ref())
                .unwrap();
            let properties = root.properties.as_ref().unwrap();
            for part in ["spec", "status"] {
                let path = format!(
                    "{} {}: {part}",
                    definition.metadata.name.as_deref().unwrap(),
                    version.name
                );
                check_structural(&properties[part], &path, &mut problems);
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn short_names_are_unique() {
    let mut seen = std::collections::BTreeSet::new();
    for definition in crd::all() {
        for short in definition.spec.names.short_names.unwrap_or_default() {
            assert!(seen.insert(short.clone()), "short name `{short}` twice");
        }
    }
}

/// The CRDs, applied the way the operator applies them, once per test binary.
fn cluster_with_crds() -> &'static Cluster {
    static APPLIED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let cluster = Cluster::shared().unwrap();
    APPLIED.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let config = ibac_operator::Config {
                kubeconfig: Some(cluster.kubeconfig().to_owned()),
                context: None,
                admin_addr: "127.0.0.1:0".parse().unwrap(),
                webhook_addr: None,
                webhook_url: None,
                webhook_service: None,
                namespace: "ibac-system".to_owned(),
                settings: "ibac".to_owned(),
                watched_namespaces: Vec::new(),
                istio_trust_domain: "cluster.local".to_owned(),
                instance: None,
            };
            let client = ibac_operator::client(&config).await.unwrap();
            ibac_operator::install::apply_crds(&client, &crd::all())
                .await
                .unwrap();
        });
    });
    cluster
}

fn apply(cluster: &Cluster, namespace: &str, document: &str) -> Result<String, String> {
    cluster
        .kubectl_with_input(
            &["apply", "--validate=strict", "-n", namespace, "-f", "-"],
            document,
        )
        .map_err(|e| e.to_string())
}

const V2BETA1: &str = r#"
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: checkoutservice}
spec:
  workload: {name: checkoutservice, kind: Deployment}
  targets:
  - kubernetes: {name: cartservice, http: [{path: /cart/*, methods: [GET, POST]}]}
  - service: {name: currencyservice}
  - kafka: {name: kafka.shop, topics: [{name: orders, operations: [produce]}]}
  - sql: {name: orders-db, privileges: [{databaseName: shop, table: public.orders, operations: [SELECT, INSERT]}]}
  - internet: {domains: [api.example.com], ips: [203.0.113.0/24], ports: [443]}
  - aws: {arn: "arn:aws:s3:::bucket", actions: ["s3:GetObject"]}
"#;

#[test]
fn the_api_server_accepts_the_crds_and_serves_every_version() {
    let cluster = cluster_with_crds();
    let ns = cluster.namespace("crd-versions").unwrap();
    apply(cluster, ns.name(), V2BETA1).unwrap();
    // One document of every kind and version; each must be accepted alone.
    let documents = include_str!("fixtures/every-kind.yaml")
        .split("---\n")
        .skip(1);
    for document in documents {
        if let Err(e) = apply(cluster, ns.name(), document) {
            panic!("refused:\n{document}\n{e}");
        }
    }

    // Stored as written (v2beta1 in, v2beta1 out).
    let stored: Value = serde_json::from_str(
        &cluster
            .kubectl(&[
                "get",
                "clientintents.v2beta1.k8s.otterize.com",
                "checkoutservice",
                "-n",
                ns.name(),
                "-o",
                "json",
            ])
            .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["spec"]["targets"].as_array().unwrap().len(), 6);
    assert_eq!(
        stored["spec"]["targets"][3]["sql"]["privileges"][0]["table"],
        "public.orders"
    );

    // The printer columns show the client.
    let table = cluster
        .kubectl(&["get", "clientintents.k8s.otterize.com", "-n", ns.name()])
        .unwrap();
    let header = table.lines().next().unwrap();
    for column in ["NAME", "CLIENT", "KIND", "UP TO DATE", "READY", "AGE"] {
        assert!(header.contains(column), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("checkoutservice") && l.contains("Deployment")),
        "{table}"
    );
    // Short names and the category work.
    let names = cluster
        .kubectl(&["get", "ibac", "-n", ns.name(), "-o", "name"])
        .unwrap();
    assert!(
        names.contains("protectedservice.k8s.otterize.com/productcatalogservice"),
        "{names}"
    );
    let short = cluster
        .kubectl(&["get", "psvc", "-n", ns.name(), "-o", "name"])
        .unwrap();
    assert!(short.contains("productcatalogservice"), "{short}");
}

#[test]
fn unknown_fields_are_refused_under_strict_validation() {
    let cluster = cluster_with_crds();
    let ns = cluster.namespace("crd-strict").unwrap();
    let cases = [
        (
            V2BETA1.replace("methods: [GET, POST]", "methods: [GET, POST], verbs: [GET]"),
            "verbs",
        ),
        (
            V2BETA1.replace(
                "service: {name: currencyservice}",
                "service: {name: currencyservice, ports: [80]}",
            ),
            "ports",
        ),
        (
            r#"
apiVersion: k8s.otterize.com/v1alpha3
kind: ClientIntents
metadata: {name: typo}
spec:
  service: {name: typo}
  calls: [{name: frontend, type: http, httpResources: [{path: /}]}]
"#
            .to_owned(),
            "httpResources",
        ),
        (
            r#"
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: typo}
spec: {name: typo, namespace: other}
"#
            .to_owned(),
            "namespace",
        ),
    ];
    for (document, field) in &cases {
        let error = apply(cluster, ns.name(), document).expect_err(document);
        assert!(
            error.contains("unknown field") && error.contains(field),
            "expected `{field}` refused as unknown:\n{error}"
        );
    }
    // Values outside the model's sets are refused too (the model's own list).
    let error = apply(
        cluster,
        ns.name(),
        &V2BETA1.replace("operations: [produce]", "operations: [write]"),
    )
    .unwrap_err();
    assert!(
        error.contains("spec.targets[2].kafka.topics[0].operations[0]") && error.contains("write"),
        "{error}"
    );
    // Nothing of the refused documents was stored.
    let stored = wait_for("the namespace is listed", Duration::from_secs(10), || {
        Ok(cluster
            .kubectl(&["get", "ibac", "-n", ns.name(), "-o", "name"])
            .ok())
    })
    .unwrap();
    assert_eq!(stored.trim(), "", "{stored}");
}

#[test]
fn webhook_configuration_snapshot() {
    use ibac_operator::webhook::config::{Target, validating};
    let in_cluster = validating(
        &Target::Service {
            name: "ibac-webhook".to_owned(),
            namespace: "ibac-system".to_owned(),
        },
        "-----BEGIN CERTIFICATE-----\n...\n-----END CERTIFICATE-----\n",
        "ibac-system",
        &[],
    );
    insta::assert_snapshot!(
        "validating_webhook_in_cluster",
        ibac_model::yaml::to_yaml(&in_cluster).unwrap()
    );
    let by_url = validating(
        &Target::Url("https://127.0.0.1:9443/".to_owned()),
        "ca",
        "ibac-system",
        &[],
    );
    let webhook = &by_url.webhooks.as_ref().unwrap()[0];
    assert_eq!(
        webhook.client_config.url.as_deref(),
        Some("https://127.0.0.1:9443/validate")
    );
    assert!(webhook.client_config.service.is_none());
    // Watched namespaces narrow what the webhook checks; the system's stay out.
    let watched = validating(
        &Target::Url("https://127.0.0.1:9443/".to_owned()),
        "ca",
        "ibac-system",
        &["shop".to_owned()],
    );
    let selector = watched.webhooks.as_ref().unwrap()[0]
        .namespace_selector
        .clone()
        .unwrap();
    let requirements = selector.match_expressions.unwrap();
    assert_eq!(requirements.len(), 2);
    assert_eq!(requirements[1].operator, "In");
    assert_eq!(requirements[1].values, Some(vec!["shop".to_owned()]));
}
