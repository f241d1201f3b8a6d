//! What the renderers write, as snapshots, checked against the Kubernetes
//! types (no field the API would drop), byte-identical across runs, and the
//! errors that stop a render.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use ibac_model::yaml::to_yaml_stream;
use ibac_model::{Document, ParseOptions, check_set, parse_source};
use ibac_policy::Policy;
use ibac_render::facts::{ClusterFacts, FactsOptions};
use ibac_render::kafka::command;
use ibac_render::labels::of_labels;
use ibac_render::{
    IstioOptions, KafkaOptions, LinkerdOptions, NetpolOptions, render_istio, render_kafka_acls,
    render_linkerd, render_network_policies, render_server_kafka_acls, render_server_sql,
    render_sql,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use support::{CONTAINER, deployment, stream, workload};

fn docs_from(texts: &[&str]) -> Vec<Document> {
    let mut docs = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let parsed = parse_source(
            &format!("doc{i}.yaml").into(),
            text,
            &ParseOptions::default(),
        );
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        docs.extend(parsed.documents);
    }
    docs
}

fn demo_docs(extra: &[&str]) -> Vec<Document> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecom-demo");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut docs = Vec::new();
    for path in paths {
        let name = format!("ecom-demo/{}", path.file_name().unwrap().to_string_lossy());
        let parsed = parse_source(
            &name.into(),
            &std::fs::read_to_string(&path).unwrap(),
            &ParseOptions::default(),
        );
        docs.extend(parsed.documents);
    }
    docs.extend(docs_from(extra));
    let (docs, errors) = check_set(docs);
    assert!(errors.is_empty(), "{errors:?}");
    docs
}

/// An Otterize ClientIntents document of `name` in namespace `shop`, its
/// `targets:` list continued by `targets` (which starts on a new line): the
/// tests differ only in the targets.
fn client_intents(name: &str, targets: &str) -> String {
    format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  workload: {{name: {name}}}\n  targets:{targets}"
    )
}

/// Cluster facts read from the given manifests, as one file.
fn cluster_facts(manifests: &[String]) -> ClusterFacts {
    ClusterFacts::read(
        &[("c.yaml".into(), stream(manifests))],
        &FactsOptions::default(),
    )
    .unwrap()
}

/// `web.shop` calls `api.shop` on 8080 with HTTP rules: a prefix with two
/// methods and an exact path with every method.
const WEB_CALLS_API: &str = "
apiVersion: ibac.dev/v1
kind: ClientIntents
metadata: {name: web, namespace: shop}
spec:
  workload: {name: web}
  targets:
  - kubernetes: {name: api, ports: [8080], http: [{path: /orders/*, methods: [GET, POST]}, {path: /health}]}
";

/// `api.shop` protected.
const PROTECT_API: &str = "
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: api, namespace: shop}
spec: {name: api}
";

/// The ClientIntents of `client` in namespace `shop`, with `targets` (YAML
/// list items).
fn intents_in_shop(client: &str, targets: &str) -> String {
    format!(
        "apiVersion: ibac.dev/v1\nkind: ClientIntents\nmetadata: {{name: {client}, namespace: shop}}\nspec:\n  workload: {{name: {client}}}\n  targets:\n{targets}\n"
    )
}

/// The policy of `docs` over `facts`, which must build without errors.
fn built(facts: &ClusterFacts, docs: &[&str]) -> Policy {
    let (policy, errors) = Policy::build(docs_from(docs), facts);
    assert!(errors.is_empty(), "{errors:?}");
    policy
}

/// The demo's facts and its policy built with `extra` documents added: most
/// tests start from it and it must build without errors.
fn demo_policy(extra: &[&str]) -> (ClusterFacts, Policy) {
    let facts = demo_facts();
    let (policy, errors) = Policy::build(demo_docs(extra), &facts);
    assert!(errors.is_empty());
    (facts, policy)
}

fn demo_facts() -> ClusterFacts {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/ecom-cluster/cluster.yaml");
    ClusterFacts::read(
        &[(
            "cluster.yaml".into(),
            std::fs::read_to_string(path).unwrap(),
        )],
        &FactsOptions::default(),
    )
    .unwrap()
}

const EVERYTHING: &str = "
apiVersion: ibac.dev/v1
kind: EnforcementConfig
metadata: {name: default, namespace: ibac-system}
spec:
  enforcedNamespaces: [otterize-ecom-demo]
  enforcers: {egressNetworkPolicy: true}
  externalTraffic: ifBlocked
";

/// Every object deserializes into the Kubernetes type with no field ignored,
/// and serializes back to the same JSON.
fn check_schema(objects: &[NetworkPolicy]) {
    for object in objects {
        let json = serde_json::to_value(object).unwrap();
        let mut ignored = Vec::new();
        let back: NetworkPolicy =
            serde_ignored::deserialize(json.clone(), |path| ignored.push(path.to_string()))
                .unwrap();
        assert!(ignored.is_empty(), "fields the API would drop: {ignored:?}");
        assert_eq!(serde_json::to_value(&back).unwrap(), json);
        let name = object.metadata.name.as_deref().unwrap();
        assert!(name.len() <= 63, "{name}");
        let selector = object.spec.as_ref().unwrap().pod_selector.as_ref().unwrap();
        assert!(
            !ibac_render::labels::is_empty(selector),
            "never an empty pod selector: {name}"
        );
    }
}

#[test]
fn demo_network_policies() {
    let (facts, policy) = demo_policy(&[]);
    let rendered = render_network_policies(&policy, &facts, &NetpolOptions::default()).unwrap();
    assert_eq!(
        rendered.objects.len(),
        1,
        "only the protected server gets a policy"
    );
    check_schema(&rendered.objects);
    insta::assert_snapshot!("demo_netpol", to_yaml_stream(&rendered.objects).unwrap());
    insta::assert_snapshot!("demo_netpol_explain", rendered.explanation.join("\n\n"));
}

#[test]
fn enforced_namespace_with_egress_and_external_traffic() {
    let (facts, policy) = demo_policy(&[EVERYTHING]);
    let options = NetpolOptions {
        ingress_controller: Some((
            "ingress-nginx".into(),
            of_labels(
                &[(
                    "app.kubernetes.io/name".to_string(),
                    "ingress-nginx".to_string(),
                )]
                .into(),
            ),
        )),
        ..NetpolOptions::default()
    };
    let first = render_network_policies(&policy, &facts, &options).unwrap();
    check_schema(&first.objects);
    let yaml = to_yaml_stream(&first.objects).unwrap();
    let again = to_yaml_stream(
        &render_network_policies(&policy, &facts, &options)
            .unwrap()
            .objects,
    )
    .unwrap();
    assert_eq!(yaml, again, "byte-identical across runs");
    let external: Vec<_> = first
        .objects
        .iter()
        .filter(|o| o.metadata.name.as_deref() == Some("ibac-external-frontend"))
        .collect();
    assert_eq!(external.len(), 1, "frontend is exposed by a LoadBalancer");
    insta::assert_snapshot!("enforced_netpol", yaml);
}

#[test]
fn demo_istio() {
    let (facts, policy) = demo_policy(&[EVERYTHING]);
    let rendered = render_istio(&policy, &facts, &IstioOptions::default()).unwrap();
    let yaml = to_yaml_stream(&rendered.objects).unwrap();
    for object in &rendered.objects {
        let json = serde_json::to_value(object).unwrap();
        let back: ibac_render::istio::AuthorizationPolicy = serde_json::from_value(json).unwrap();
        assert_eq!(&back, object);
        assert!(!back.spec.selector.match_labels.is_empty());
    }
    insta::assert_snapshot!("demo_istio", yaml);
}

#[test]
fn istio_rules_narrow_http_and_warn_about_shared_service_accounts() {
    let facts = cluster_facts(&[
        deployment("web", "shop", "app: web", CONTAINER),
        deployment("batch", "shop", "app: batch", CONTAINER),
        deployment(
            "api",
            "shop",
            "app: api",
            "{serviceAccountName: api, containers: [{name: c, image: i, ports: [{containerPort: 8080}]}]}",
        ),
    ]);
    let policy = built(&facts, &[WEB_CALLS_API, PROTECT_API]);
    let rendered = render_istio(&policy, &facts, &IstioOptions::default()).unwrap();
    insta::assert_snapshot!("istio_http", to_yaml_stream(&rendered.objects).unwrap());
    assert_eq!(rendered.warnings.len(), 1);
    assert!(
        rendered.warnings[0].contains("shares service account shop/default with batch.shop"),
        "{:?}",
        rendered.warnings
    );
    // Linkerd authenticates by service account too, and says so likewise.
    let linkerd = render_linkerd(&policy, &facts, &LinkerdOptions::default()).unwrap();
    assert!(
        linkerd.warnings.iter().any(|w| w.contains(
            "shares service account shop/default with batch.shop: Linkerd cannot tell them apart"
        )),
        "{:?}",
        linkerd.warnings
    );
}

/// Every Linkerd object reads back as itself, with the API version of its
/// kind, and in the namespace of the server it is for.
fn assert_linkerd_round_trip(objects: &[ibac_render::linkerd::LinkerdObject]) {
    for object in objects {
        let json = serde_json::to_value(object).unwrap();
        let back: ibac_render::linkerd::LinkerdObject = serde_json::from_value(json).unwrap();
        assert_eq!(&back, object);
        assert_eq!(back.spec.kind(), back.kind);
        assert_eq!(back.api_version, back.kind.api_version());
    }
}

#[test]
fn demo_linkerd() {
    let (facts, policy) = demo_policy(&[EVERYTHING]);
    let rendered = render_linkerd(&policy, &facts, &LinkerdOptions::default()).unwrap();
    assert_linkerd_round_trip(&rendered.objects);
    insta::assert_snapshot!("demo_linkerd", to_yaml_stream(&rendered.objects).unwrap());
}

/// HTTP intents become routes cut by path and method, each authorizing the
/// clients whose intents cover it; the probes get a route of their own from
/// the probe networks, since Linkerd stops authorizing them once a Server
/// has routes; a port no HTTP rule narrows keeps one policy on the Server.
#[test]
fn linkerd_routes_follow_http_intents_and_keep_probes_working() {
    let facts = cluster_facts(&[
        deployment(
            "web",
            "shop",
            "app: web",
            "{serviceAccountName: web, containers: [{name: c, image: i}]}",
        ),
        deployment(
            "batch",
            "shop",
            "app: batch",
            "{serviceAccountName: batch, containers: [{name: c, image: i}]}",
        ),
        deployment(
            "api",
            "shop",
            "app: api",
            "{serviceAccountName: api, containers: [{name: c, image: i, ports: [{containerPort: 8080, name: http}, {containerPort: 9090}], livenessProbe: {httpGet: {path: /healthz, port: http}}, readinessProbe: {httpGet: {path: /ready, port: 8080}}}]}",
        ),
    ]);
    let batch = intents_in_shop(
        "batch",
        "  - kubernetes: {name: api, ports: [8080], http: [{path: /orders/*, methods: [GET]}]}
  - kubernetes: {name: api, ports: [9090]}",
    );
    let policy = built(&facts, &[WEB_CALLS_API, &batch, PROTECT_API]);
    let rendered = render_linkerd(&policy, &facts, &LinkerdOptions::default()).unwrap();
    assert_linkerd_round_trip(&rendered.objects);
    insta::assert_snapshot!("linkerd_http", to_yaml_stream(&rendered.objects).unwrap());
    assert_eq!(rendered.warnings.len(), 1, "{:?}", rendered.warnings);
    assert!(rendered.warnings[0].contains("also admits `/api` itself"));
    let explained = rendered.explanation.join("\n");
    assert!(explained.contains("the kubelet's probes"), "{explained}");
}

/// A protected server whose pods declare no port, reached by intents that
/// name none, cannot get a Server: it is refused, with its place, rather
/// than left open or closed by surprise.
#[test]
fn linkerd_refuses_a_server_without_ports() {
    let facts = cluster_facts(&[
        deployment("web", "shop", "app: web", CONTAINER),
        deployment(
            "api",
            "shop",
            "app: api",
            "{containers: [{name: c, image: i}]}",
        ),
    ]);
    let web = intents_in_shop("web", "  - kubernetes: {name: api}");
    let policy = built(&facts, &[&web, PROTECT_API]);
    let errors = render_linkerd(&policy, &facts, &LinkerdOptions::default()).unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("declares no TCP container port"),
        "{}",
        errors[0]
    );
}

#[test]
fn demo_kafka_acls() {
    let (_, policy) = demo_policy(&[]);
    let rendered = render_kafka_acls(&policy, &KafkaOptions::default());
    assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
    let servers = rendered.objects;
    assert_eq!(servers.len(), 1);
    let commands: Vec<String> = servers[0]
        .bindings
        .iter()
        .map(|b| command(&servers[0].bootstrap, b, true))
        .collect();
    insta::assert_snapshot!(
        "demo_kafka",
        format!(
            "{}\n\n{}",
            serde_json::to_string_pretty(&servers).unwrap(),
            commands.join("\n")
        )
    );
}

#[test]
fn kafka_acls_render_one_server_at_a_time_and_changes_name_the_server() {
    let (facts, policy) = demo_policy(&[]);
    let options = KafkaOptions::default();
    let whole = render_kafka_acls(&policy, &options);
    let servers = policy.kafka_servers();
    assert!(!servers.is_empty());
    let folded: Vec<_> = servers
        .iter()
        .flat_map(|s| render_server_kafka_acls(&policy, s, &options).objects)
        .collect();
    assert_eq!(folded, whole.objects);
    // A server no Kafka intent or config names gets nothing.
    let none = ibac_model::WorkloadId::parse("nobody.shop").unwrap();
    assert!(
        render_server_kafka_acls(&policy, &none, &options)
            .objects
            .is_empty()
    );
    // A KafkaServerConfig's change touches its server, and its topic
    // settings reach that server's ACLs.
    let server = &servers[0];
    let config = format!(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: KafkaServerConfig\nmetadata: {{name: kafka-config, namespace: {ns}}}\nspec:\n  workload: {{name: {name}}}\n  addr: 'kafka.example:9093'\n  topics:\n  - {{topic: public, pattern: literal, clientIdentityRequired: false, intentsRequired: false}}\n",
        ns = server.namespace(),
        name = server.name()
    );
    let next = policy.apply(docs_from(&[&config]), &facts).unwrap();
    assert!(
        next.changes().servers.contains(server),
        "{:?}",
        next.changes()
    );
    let acls = render_server_kafka_acls(&next, server, &options);
    assert_eq!(acls.objects[0].bootstrap, "kafka.example:9093");
    assert!(
        acls.objects[0]
            .bindings
            .iter()
            .any(|b| b.pattern.name == "public" && b.entry.principal == "User:*"),
        "{:?}",
        acls.objects[0].bindings
    );
    let key = next
        .documents()
        .into_iter()
        .find(|(k, _, _)| k.kind == ibac_model::DocumentKind::KafkaServerConfig)
        .map(|(k, _, _)| k.clone())
        .unwrap();
    let back = next.remove(&[key]).unwrap();
    assert!(back.changes().servers.contains(server));
    assert_eq!(
        render_server_kafka_acls(&back, server, &options).objects,
        render_server_kafka_acls(&policy, server, &options).objects
    );
}

#[test]
fn sql_grants_render_one_server_at_a_time_and_changes_name_the_database() {
    let config = |name: &str, ns: &str| {
        format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: PostgreSQLServerConfig\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{address: '{name}.{ns}:5432', credentials: {{secretRef: {{name: s}}}}}}\n"
        )
    };
    let web = client_intents(
        "web",
        "\n  - sql: {name: orders, privileges: [{databaseName: shop, operations: [SELECT]}]}\n  - sql: {name: stock.stores, privileges: [{databaseName: stock, operations: [SELECT]}]}\n",
    );
    let (policy, errors) = Policy::build(
        docs_from(&[&web, &config("orders", "shop"), &config("stock", "stores")]),
        &ibac_policy::NoFacts,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let whole = render_sql(&policy);
    assert_eq!(whole.objects.len(), 2);
    let folded: Vec<_> = policy
        .database_servers()
        .iter()
        .flat_map(|s| render_server_sql(&policy, s).objects)
        .collect();
    assert_eq!(folded, whole.objects);
    // A new client of `orders` touches that database only.
    let api = client_intents(
        "api",
        "\n  - sql: {name: orders, privileges: [{databaseName: shop, operations: [INSERT]}]}\n",
    );
    let next = policy
        .apply(docs_from(&[&api]), &ibac_policy::NoFacts)
        .unwrap();
    let orders = ibac_model::WorkloadId::parse("orders.shop").unwrap();
    assert_eq!(
        next.changes().databases,
        std::collections::BTreeSet::from([orders.clone()])
    );
    let script = render_server_sql(&next, &orders).objects[0]
        .statements
        .join("\n");
    assert!(script.contains("-- api.shop"), "{script}");
    // A second config of the same name makes the bare name ambiguous: both
    // servers of that name are touched, and each reports the target.
    let next = next
        .apply(
            docs_from(&[&config("orders", "other")]),
            &ibac_policy::NoFacts,
        )
        .unwrap();
    let other = ibac_model::WorkloadId::parse("orders.other").unwrap();
    assert!(next.changes().databases.contains(&orders));
    assert!(next.changes().databases.contains(&other));
    // The one in the clients' namespace still wins.
    assert!(render_server_sql(&next, &orders).skipped.is_empty());
    assert!(render_server_sql(&next, &other).objects.is_empty());
}

#[test]
fn sql_grants_in_both_dialects() {
    let client = client_intents(
        "checkoutservice",
        "
  - sql:
      name: orders-db
      privileges:
      - {databaseName: shop, table: public.orders, operations: [SELECT, INSERT]}
      - {databaseName: audit, operations: [ALL]}
  - sql:
      name: legacy
      privileges:
      - {databaseName: crm, table: customers, operations: [SELECT]}",
    );
    let docs = docs_from(&[
        &client,
        "
apiVersion: k8s.otterize.com/v2beta1
kind: PostgreSQLServerConfig
metadata: {name: orders-db, namespace: shop}
spec: {address: 'orders-db.shop:5432', credentials: {secretRef: {name: orders-db-admin}}}
---
apiVersion: k8s.otterize.com/v2beta1
kind: MySQLServerConfig
metadata: {name: legacy, namespace: shop}
spec: {address: 'legacy.shop:3306', credentials: {username: admin, password: secret}}
",
    ]);
    let (policy, errors) = Policy::build(docs, &ibac_policy::NoFacts);
    assert!(errors.is_empty());
    let rendered = render_sql(&policy);
    assert!(rendered.skipped.is_empty(), "{:?}", rendered.skipped);
    let text: Vec<String> = rendered
        .objects
        .iter()
        .map(|s| format!("-- {} {}\n{}", s.dialect, s.server, s.statements.join("\n")))
        .collect();
    insta::assert_snapshot!("sql", text.join("\n\n"));
}

#[test]
fn empty_sql_operations_are_refused_never_granted_as_all() {
    let client = client_intents(
        "web",
        "
  - sql: {name: db, privileges: [{databaseName: shop, table: orders}, {databaseName: shop, table: items, operations: [SELECT]}]}",
    );
    let docs = docs_from(&[
        &client,
        "
apiVersion: k8s.otterize.com/v2beta1
kind: PostgreSQLServerConfig
metadata: {name: db, namespace: shop}
spec: {address: 'db:5432', credentials: {secretRef: {name: s}}}
",
    ]);
    let (policy, _) = Policy::build(docs, &ibac_policy::NoFacts);
    let rendered = render_sql(&policy);
    assert_eq!(
        rendered.skipped[0].to_string(),
        "doc0.yaml:7:34: operations are empty; ibac never grants ALL unless written: list the operations, or ALL (skipped)"
    );
    let statements = rendered.objects[0].statements.join("\n");
    assert!(statements.contains("\"items\""), "{statements}");
    assert!(!statements.contains("\"orders\""), "{statements}");
    assert!(!statements.contains("GRANT ALL"), "{statements}");
}

#[test]
fn sql_targets_find_their_server_config_by_name_in_any_namespace() {
    let config = |name: &str, ns: &str, kind: &str| {
        format!(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: {kind}\nmetadata: {{name: {name}, namespace: {ns}}}\nspec: {{address: '{name}.{ns}:5432', credentials: {{secretRef: {{name: s}}}}}}\n"
        )
    };
    let client = |target: &str| {
        client_intents(
            "web",
            &format!(
                "\n  - sql: {{name: {target}, privileges: [{{databaseName: shop, operations: [SELECT]}}]}}\n"
            ),
        )
    };
    let render = |texts: &[String]| {
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (policy, errors) = Policy::build(docs_from(&refs), &ibac_policy::NoFacts);
        assert!(errors.is_empty(), "{errors:?}");
        render_sql(&policy)
    };
    // The only `orders-db` is in namespace `databases`: found, as Otterize finds it.
    let one = render(&[
        client("orders-db"),
        config("orders-db", "databases", "PostgreSQLServerConfig"),
    ]);
    assert!(one.skipped.is_empty(), "{:?}", one.skipped);
    assert_eq!(one.objects[0].server.as_str(), "orders-db.databases");
    assert_eq!(one.objects[0].address, "orders-db.databases:5432");
    // One in the client's namespace wins over others of that name.
    let local = render(&[
        client("orders-db"),
        config("orders-db", "databases", "PostgreSQLServerConfig"),
        config("orders-db", "shop", "MySQLServerConfig"),
    ]);
    assert!(local.skipped.is_empty(), "{:?}", local.skipped);
    assert_eq!(local.objects[0].server.as_str(), "orders-db.shop");
    // Several elsewhere: the error says how to pick one.
    let several = render(&[
        client("orders-db"),
        config("orders-db", "a", "PostgreSQLServerConfig"),
        config("orders-db", "b", "MySQLServerConfig"),
    ]);
    assert!(several.objects.is_empty());
    // Reported with each server it may mean, once in the whole render.
    assert_eq!(several.skipped.len(), 1, "{:?}", several.skipped);
    assert_eq!(
        several.skipped[0].to_string(),
        "doc0.yaml:7:5: `orders-db` is ambiguous: PostgreSQLServerConfig `orders-db.a`, MySQLServerConfig `orders-db.b`; write `name.namespace` (`orders-db.a`) to pick one; the target is skipped"
    );
    let picked = render(&[
        client("orders-db.b"),
        config("orders-db", "a", "PostgreSQLServerConfig"),
        config("orders-db", "b", "MySQLServerConfig"),
    ]);
    assert_eq!(picked.objects[0].dialect, "mysql");
    // A namespace written is a namespace meant.
    let wrong = render(&[
        client("orders-db.other"),
        config("orders-db", "databases", "PostgreSQLServerConfig"),
    ]);
    assert_eq!(
        wrong.skipped[0].to_string(),
        "doc0.yaml:7:5: no PostgreSQLServerConfig or MySQLServerConfig `orders-db.other` is given; the PostgreSQLServerConfig `orders-db` is in namespace `databases`: write `orders-db.databases`; the target is skipped"
    );
}

#[test]
fn selectors_that_reach_other_workloads_stop_the_render() {
    let facts = cluster_facts(&[
        workload(
            "Deployment",
            "api",
            "shop",
            ("tier: backend", "tier: backend, app: api"),
            Some(CONTAINER),
        ),
        workload(
            "Deployment",
            "worker",
            "shop",
            ("app: worker", "tier: backend, app: worker"),
            Some(CONTAINER),
        ),
    ]);
    let docs = docs_from(&[
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: api, namespace: shop}\nspec: {name: api}\n",
    ]);
    let (policy, _) = Policy::build(docs, &facts);
    let errors = render_network_policies(&policy, &facts, &NetpolOptions::default()).unwrap_err();
    assert!(
        errors[0].to_string().contains("the pod selector of Deployment `api.shop` (tier=backend) also selects the pods of Deployment `worker.shop`"),
        "{}",
        errors[0]
    );
}

#[test]
fn unknown_and_ambiguous_references_are_reported() {
    let facts = cluster_facts(&[
        deployment("api", "shop", "app: api", CONTAINER),
        workload(
            "StatefulSet",
            "api",
            "shop",
            ("app: api-db", "app: api-db"),
            Some(CONTAINER),
        ),
    ]);
    let docs = docs_from(&[&client_intents(
        "web",
        "
  - kubernetes: {name: api}
  - service: {name: nowhere}
",
    )]);
    let (_, errors) = Policy::build(docs, &facts);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert!(
        text[0].contains("`api.shop` is ambiguous: workloads of kinds Deployment, StatefulSet"),
        "{text:?}"
    );
    assert!(
        text[1].contains("no Service `nowhere.shop` is known in the cluster facts"),
        "{text:?}"
    );
}

#[test]
fn one_unresolvable_reference_is_skipped_and_everything_else_rendered() {
    let facts = demo_facts();
    // checkoutservice also calls a Service the cluster does not have, and a
    // client the cluster does not run calls the catalog.
    let extra = "
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata: {name: ghost, namespace: otterize-ecom-demo}
spec:
  workload: {name: ghost}
  targets:
  - service: {name: productcatalogservice}
";
    let mut docs = demo_docs(&[EVERYTHING, extra]);
    for doc in &mut docs {
        if let Document::ClientIntents(ci) = doc
            && ci.workload.id.as_str() == "checkoutservice.otterize-ecom-demo"
        {
            let mut missing = ci.targets[0].clone();
            missing.at = ibac_model::Location::new("extra.yaml".into(), 3, 5);
            if let ibac_model::TargetKind::Service(c) | ibac_model::TargetKind::Workload(c) =
                &mut missing.kind
            {
                c.id = ibac_model::WorkloadId::parse("nowhere.otterize-ecom-demo").unwrap();
            }
            missing.kind = match missing.kind {
                ibac_model::TargetKind::Workload(c) | ibac_model::TargetKind::Service(c) => {
                    ibac_model::TargetKind::Service(c)
                }
                other => other,
            };
            ci.targets.push(missing);
        }
    }
    let (policy, errors) = Policy::build_skipping_targets(docs.clone(), &facts);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 1, "{text:?}");
    assert!(
        text[0].starts_with("extra.yaml:3:5: target `nowhere.otterize-ecom-demo`: no Service"),
        "{text:?}"
    );
    let rendered = render_network_policies(&policy, &facts, &NetpolOptions::default()).unwrap();
    let skipped: Vec<String> = rendered.skipped.iter().map(ToString::to_string).collect();
    assert!(
        skipped
            .iter()
            .any(|e| e.contains("client `ghost.otterize-ecom-demo`") && e.contains("skipped")),
        "{skipped:?}"
    );
    // Everything else is rendered exactly as without the two bad references.
    let clean = demo_docs(&[EVERYTHING]);
    let (clean_policy, errors) = Policy::build(clean, &facts);
    assert!(errors.is_empty());
    let expected =
        render_network_policies(&clean_policy, &facts, &NetpolOptions::default()).unwrap();
    assert_eq!(
        to_yaml_stream(&rendered.objects).unwrap(),
        to_yaml_stream(&expected.objects).unwrap()
    );
    assert!(rendered.protected > 0);
}

/// A reconciler renders one server at a time: each server's objects name
/// only that server, and together they are the whole-cluster render (its
/// ingress part; egress is per client).
#[test]
fn rendering_per_server_adds_up_to_the_whole_cluster() {
    use ibac_render::plan::{SelectorChecks, server_ids};
    use ibac_render::{Principals, render_server_istio, render_server_network_policies};
    let (facts, policy) = demo_policy(&[EVERYTHING]);
    let options = NetpolOptions::default();
    let whole = render_network_policies(&policy, &facts, &options).unwrap();
    let mut checks = SelectorChecks::default();
    let mut objects = Vec::new();
    for id in server_ids(&policy, &facts) {
        let one = render_server_network_policies(&policy, &facts, &id, &options, &mut checks);
        assert!(one.refused.is_empty(), "{:?}", one.refused);
        for o in &one.objects {
            let owner = o
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("ibac.dev/for"))
                .cloned();
            assert_eq!(o.metadata.namespace.as_deref(), Some(id.namespace()));
            assert_eq!(
                owner.as_deref(),
                Some(id.name()),
                "an object of another server"
            );
        }
        objects.extend(one.objects);
    }
    let ingress: Vec<_> = whole
        .objects
        .iter()
        .filter(|o| {
            o.spec
                .as_ref()
                .is_some_and(|s| s.policy_types.as_deref() == Some(&["Ingress".to_string()][..]))
        })
        .cloned()
        .collect();
    assert_eq!(
        to_yaml_stream(&objects).unwrap(),
        to_yaml_stream(&ingress).unwrap()
    );

    let istio_options = IstioOptions::default();
    let principals = Principals::of(&facts);
    let whole = render_istio(&policy, &facts, &istio_options).unwrap();
    let mut objects = Vec::new();
    for id in server_ids(&policy, &facts) {
        let one = render_server_istio(&policy, &facts, &id, &istio_options, &principals);
        objects.extend(one.objects);
    }
    assert_eq!(
        to_yaml_stream(&objects).unwrap(),
        to_yaml_stream(&whole.objects).unwrap()
    );

    let linkerd_options = LinkerdOptions::default();
    let whole = render_linkerd(&policy, &facts, &linkerd_options).unwrap();
    let mut objects = Vec::new();
    for id in server_ids(&policy, &facts) {
        let one =
            ibac_render::render_server_linkerd(&policy, &facts, &id, &linkerd_options, &principals);
        for o in &one.objects {
            assert_eq!(o.metadata.namespace.as_deref(), Some(id.namespace()));
        }
        objects.extend(one.objects);
    }
    assert!(!objects.is_empty());
    assert_eq!(
        to_yaml_stream(&objects).unwrap(),
        to_yaml_stream(&whole.objects).unwrap()
    );
}
