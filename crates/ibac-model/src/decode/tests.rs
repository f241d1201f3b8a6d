use super::*;
use crate::document::*;
use crate::http::PathPattern;
use crate::kafka::{KafkaOperation, TopicPattern};
use crate::name::Kind;
use crate::test_support::{V1_CALLS, parse};

fn errors(text: &str) -> Vec<String> {
    parse(text).error_messages()
}

fn one(text: &str) -> Document {
    let parsed = parse(text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.documents.len(), 1);
    parsed.documents.into_iter().next().unwrap()
}

fn intents(text: &str) -> ClientIntents {
    match one(text) {
        Document::ClientIntents(ci) => ci,
        other => panic!("expected ClientIntents, got {other:?}"),
    }
}

const CHECKOUT_V2: &str = "
apiVersion: k8s.otterize.com/v2beta1
kind: ClientIntents
metadata:
  name: checkoutservice
  namespace: otterize-ecom-demo
spec:
  workload:
    name: checkoutservice
    kind: Deployment
  targets:
  - kubernetes:
      name: cartservice
      kind: Deployment
  - service:
      name: productcatalogservice.otterize-ecom-demo
      http:
      - path: /products
        methods: [GET]
  - kafka:
      name: kafka.kafka
      topics:
      - name: orders
        operations: [produce, describe]
  - sql:
      name: orders-db
      privileges:
      - databaseName: shop
        table: public.orders
        operations: [SELECT, INSERT]
  - internet:
      domains: [api.example.com, \"*.example.org\"]
      ips: [203.0.113.0/24]
      ports: [443]
  - aws:
      arn: arn:aws:s3:::bucket
      actions: [\"s3:GetObject\"]
";

#[test]
fn reads_every_target_kind_of_v2beta1() {
    let ci = intents(CHECKOUT_V2);
    assert_eq!(
        ci.workload.id.as_str(),
        "checkoutservice.otterize-ecom-demo"
    );
    assert_eq!(
        ci.workload.kind.as_ref().map(Kind::as_str),
        Some("Deployment")
    );
    assert_eq!(ci.meta.origin.to_string(), "t.yaml:2:1");
    assert_eq!(ci.targets.len(), 6);
    let TargetKind::Workload(cart) = &ci.targets[0].kind else {
        panic!()
    };
    assert_eq!(cart.id.as_str(), "cartservice.otterize-ecom-demo");
    let TargetKind::Service(catalog) = &ci.targets[1].kind else {
        panic!()
    };
    assert_eq!(catalog.http[0].path, PathPattern::Exact("/products".into()));
    assert_eq!(catalog.http[0].methods, vec![crate::http::Method::Get]);
    assert_eq!(catalog.http[0].at.to_string(), "t.yaml:18:9");
    let TargetKind::Kafka(kafka) = &ci.targets[2].kind else {
        panic!()
    };
    assert_eq!(kafka.server.as_str(), "kafka.kafka");
    assert_eq!(
        kafka.topics[0].topic,
        TopicPattern::Literal("orders".into())
    );
    assert_eq!(
        kafka.topics[0].operations,
        vec![KafkaOperation::Produce, KafkaOperation::Describe]
    );
    let TargetKind::Sql(sql) = &ci.targets[3].kind else {
        panic!()
    };
    assert_eq!(sql.server.as_str(), "orders-db.otterize-ecom-demo");
    assert_eq!(sql.privileges[0].table.as_deref(), Some("public.orders"));
    let TargetKind::Internet(net) = &ci.targets[4].kind else {
        panic!()
    };
    assert_eq!(net.ports, vec![443]);
    assert!(
        matches!(&ci.targets[5].kind, TargetKind::Aws(t) if t.resource == "arn:aws:s3:::bucket")
    );
}

#[test]
fn every_v2_spelling_reads_the_same() {
    let base = intents(CHECKOUT_V2);
    for version in ["v2alpha1", "v2"] {
        let ci = intents(&CHECKOUT_V2.replace("v2beta1", version));
        assert_eq!(ci.targets, base.targets, "{version}");
        assert_eq!(ci.workload, base.workload);
    }
    let ci = intents(&CHECKOUT_V2.replace("k8s.otterize.com/v2beta1", "ibac.dev/v1"));
    assert_eq!(ci.targets, base.targets);
    assert_eq!(ci.meta.format, Format::IbacV1);
}

#[test]
fn kubernetes_target_of_kind_service_is_a_service_target() {
    let ci = intents(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  workload: {name: a}\n  targets:\n  - kubernetes: {name: b, kind: Service}\n",
    );
    assert!(
        matches!(&ci.targets[0].kind, TargetKind::Service(t) if t.kind.is_none() && t.id.as_str() == "b.default")
    );
}

#[test]
fn reads_v1alpha3_and_v1beta1() {
    for version in ["v1alpha3", "v1beta1"] {
        let ci = intents(&V1_CALLS.replace("v1alpha3", version));
        assert_eq!(ci.workload.id.as_str(), "client.shop");
        assert_eq!(ci.targets.len(), 7);
        assert!(
            matches!(&ci.targets[0].kind, TargetKind::Workload(t) if t.id.as_str() == "server.other" && t.http.len() == 1)
        );
        assert!(
            matches!(&ci.targets[1].kind, TargetKind::Service(t) if t.id.as_str() == "frontend.shop")
        );
        assert!(
            matches!(&ci.targets[2].kind, TargetKind::Workload(t) if t.id.as_str() == "plain.shop" && t.http.is_empty())
        );
        assert!(
            matches!(&ci.targets[3].kind, TargetKind::Kafka(k) if k.topics[0].operations == [KafkaOperation::Consume])
        );
        assert!(
            matches!(&ci.targets[4].kind, TargetKind::Sql(s) if s.server.as_str() == "db.shop")
        );
        assert!(matches!(&ci.targets[5].kind, TargetKind::Internet(_)));
        assert!(matches!(&ci.targets[6].kind, TargetKind::Aws(a) if a.actions == ["s3:*"]));
    }
}

#[test]
fn v1_fields_must_match_the_call_type() {
    let errs = errors(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {name: c}\nspec:\n  service: {name: c}\n  calls:\n  - name: s\n    kafkaTopics: [{name: t, operations: [consume]}]\n",
    );
    assert_eq!(
        errs,
        ["t.yaml:8:5: `kafkaTopics` belongs to calls of `type: kafka`"]
    );
}

#[test]
fn reads_kubectl_output_with_metadata_and_status_and_lists() {
    let text = "
apiVersion: v1
kind: List
metadata: {resourceVersion: \"\"}
items:
- apiVersion: k8s.otterize.com/v2beta1
  kind: ProtectedService
  metadata:
    name: productcatalogservice
    namespace: otterize-ecom-demo
    uid: 5b1b0c9e-1111-2222-3333-444455556666
    generation: 3
    annotations: {kubectl.kubernetes.io/last-applied-configuration: '{}'}
    managedFields: [{manager: kubectl}]
  spec: {name: productcatalogservice}
  status: {whatever: [1, 2]}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: x}
  spec: {replicas: 1}
";
    let parsed = parse(text);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.documents.len(), 1);
    assert_eq!(parsed.skipped.len(), 1);
    assert_eq!(parsed.skipped[0].kind, "Deployment");
    let Document::ProtectedService(ps) = &parsed.documents[0] else {
        panic!()
    };
    assert_eq!(
        ps.workload.id.as_str(),
        "productcatalogservice.otterize-ecom-demo"
    );
}

#[test]
fn reads_json_objects_and_arrays() {
    let obj = r#"{"apiVersion": "k8s.otterize.com/v2beta1", "kind": "ProtectedService", "metadata": {"name": "a"}, "spec": {"name": "a"}}"#;
    assert_eq!(parse(obj).documents.len(), 1);
    let arr = format!("[{obj}, {}]", obj.replace("\"a\"", "\"b\""));
    let parsed = parse(&arr);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert_eq!(parsed.documents.len(), 2);
}

#[test]
fn namespace_comes_from_metadata_then_options_then_default() {
    let text = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nspec: {name: a}\n";
    let Document::ProtectedService(ps) = one(text) else {
        panic!()
    };
    assert_eq!(ps.workload.id.as_str(), "a.default");
    assert_eq!(ps.meta.name, "a", "the name defaults to the spec's");
    let options = ParseOptions {
        default_namespace: Namespace::parse("shop").unwrap(),
        ..ParseOptions::default()
    };
    let parsed = parse_source(&"t.yaml".into(), text, &options);
    let Document::ProtectedService(ps) = &parsed.documents[0] else {
        panic!()
    };
    assert_eq!(ps.workload.id.as_str(), "a.shop");
}

#[test]
fn errors_name_file_line_and_column() {
    let text = include_str!("../../tests/fixtures/errors-everywhere.yaml");
    let errs = errors(text);
    assert_eq!(
        errs,
        [
            "t.yaml:18:3: unknown field `surplus` in ClientIntents spec",
            "t.yaml:6:20: `Web` is not a valid workload name; names are lowercase: did you mean `web`?",
            "t.yaml:8:41: `/api*` is not a valid HTTP path; `*` may only end a path as `/*` (a prefix) or stand alone (any path)",
            "t.yaml:8:58: `get` is not a valid HTTP method; methods are uppercase: did you mean `GET`?",
            "t.yaml:9:54: `read` is not a valid Kafka operation; did you mean `consume`?",
            "t.yaml:9:60: `write` is not a valid Kafka operation; did you mean `produce`?",
            "t.yaml:10:5: a target needs exactly one of `kubernetes`, `service`, `kafka`, `sql`, `internet`, `aws`, `gcp`, `azure`; found none",
            "t.yaml:11:5: a target needs exactly one of `kubernetes`, `service`, `kafka`, `sql`, `internet`, `aws`, `gcp`, `azure`; found `service`, `kubernetes`: split it into one target each",
            "t.yaml:13:28: unknown field `ports` in service target; `ports` is an ibac addition: use apiVersion ibac.dev/v1",
            "t.yaml:13:21: `a.b.c` is not a valid target name; write `name` or `name.namespace`, with at most one `.`",
            "t.yaml:14:22: `10.0.0.1/8` is not a valid IP address or range; host bits are set: did you mean `10.0.0.0/8`?",
            "t.yaml:14:43: `0` is not a valid port; it must be between 1 and 65535",
            "t.yaml:15:65: `select` is not a valid SQL operation; did you mean `SELECT`?",
            "t.yaml:16:26: `a..b` is not a valid domain name; each label has 1 to 63 letters, digits or inner `-`",
            "t.yaml:17:33: `deployment` is not a valid kind; `d` is not allowed: use lowercase letters, digits; a kind starts with an uppercase letter",
        ]
    );
    assert!(parse(text).documents.is_empty());
}

#[test]
fn one_bad_document_does_not_hide_the_others() {
    let text = "
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: a}
spec: {name: a, extra: 1}
---
apiVersion: k8s.otterize.com/v2beta1
kind: ProtectedService
metadata: {name: b}
spec: {name: b}
";
    let parsed = parse(text);
    assert_eq!(parsed.errors.len(), 1);
    assert_eq!(parsed.documents.len(), 1);
}

#[test]
fn missing_fields_and_bad_kinds() {
    assert_eq!(
        errors(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  targets: []\n"
        ),
        ["t.yaml:5:3: ClientIntents spec is missing the required field `workload`"]
    );
    assert_eq!(
        errors("apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntent\nspec: {}\n"),
        [
            "t.yaml:1:1: unsupported document: apiVersion `k8s.otterize.com/v2beta1`, kind `ClientIntent`; did you mean `ClientIntents`?"
        ]
    );
    assert_eq!(
        errors("apiVersion: k8s.otterize.com/v3\nkind: ClientIntents\nspec: {}\n"),
        [
            "t.yaml:1:1: unsupported document: apiVersion `k8s.otterize.com/v3`, kind `ClientIntents`; ibac reads k8s.otterize.com v1alpha2, v1alpha3, v1beta1, v2alpha1 and v2beta1"
        ]
    );
    assert_eq!(
        errors("kind: ClientIntents\nspec: {}\n"),
        ["t.yaml:1:1: document is missing the required field `apiVersion`"]
    );
    assert_eq!(
        errors("apiVersion: k8s.otterize.com/v2beta1\nkind: EnforcementConfig\nspec: {}\n"),
        [
            "t.yaml:1:1: unsupported document: apiVersion `k8s.otterize.com/v2beta1`, kind `EnforcementConfig`; EnforcementConfig is an ibac document: use apiVersion ibac.dev/v1"
        ]
    );
}

#[test]
fn yaml11_booleans_never_become_names() {
    let errs = errors(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: x}\nspec: {name: no}\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(
        errs[0].starts_with("t.yaml:4:14: expected a string, found `no`"),
        "{errs:?}"
    );
    assert!(errs[0].ends_with("write it in quotes: \"no\""), "{errs:?}");
    let errs = errors(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: x}\nspec: {name: on}\n",
    );
    assert_eq!(errs.len(), 1);
    assert!(matches!(
        one(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: x}\nspec: {name: \"on\"}\n"
        ),
        Document::ProtectedService(_)
    ));
}

#[test]
fn prefixed_topics_only_in_ibac_documents() {
    let text = "apiVersion: API\nkind: ClientIntents\nmetadata: {name: a}\nspec:\n  workload: {name: a}\n  targets:\n  - kafka: {name: k, topics: [{name: \"ord*\", operations: [all]}]}\n";
    let errs = errors(&text.replace("API", "k8s.otterize.com/v2beta1"));
    assert_eq!(
        errs,
        [
            "t.yaml:7:38: `ord*` is not a valid Kafka topic; prefixed topics (`name*`) exist only in ibac.dev/v1 documents"
        ]
    );
    let ci = intents(&text.replace("API", "ibac.dev/v1"));
    assert!(
        matches!(&ci.targets[0].kind, TargetKind::Kafka(k) if k.topics[0].topic == TopicPattern::Prefix("ord".into()))
    );
}

#[test]
fn reads_enforcement_config() {
    let Document::EnforcementConfig(cfg) = one(
        "apiVersion: ibac.dev/v1\nkind: EnforcementConfig\nspec:\n  mode: defaultActive\n  enforcedNamespaces: [shop]\n  enforcers: {istio: false, egressNetworkPolicy: true}\n  externalTraffic: ifBlockedByOtterize\n",
    ) else {
        panic!()
    };
    assert_eq!(cfg.mode, Mode::DefaultActive);
    assert_eq!(cfg.enforced_namespaces[0].as_str(), "shop");
    assert!(
        !cfg.enforcers.istio && cfg.enforcers.egress_network_policy && cfg.enforcers.network_policy
    );
    assert_eq!(cfg.external_traffic, ExternalTraffic::IfBlocked);
    let Document::EnforcementConfig(cfg) =
        one("apiVersion: ibac.dev/v1\nkind: EnforcementConfig\nspec: {externalTraffic: off}\n")
    else {
        panic!()
    };
    assert_eq!(cfg.external_traffic, ExternalTraffic::Off);
    assert_eq!(cfg.mode, Mode::DefaultShadow);
    assert_eq!(
        errors("apiVersion: ibac.dev/v1\nkind: EnforcementConfig\nspec: {mode: active}\n"),
        ["t.yaml:3:14: `active` is not a valid mode; use `defaultShadow` or `defaultActive`"]
    );
}

#[test]
fn reads_server_configs() {
    let Document::KafkaServerConfig(k) = one(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: KafkaServerConfig\nmetadata: {name: kafka, namespace: kafka}\nspec:\n  workload: {name: kafka}\n  addr: kafka.kafka:9092\n  topics:\n  - {topic: orders, pattern: literal, clientIdentityRequired: true, intentsRequired: true}\n",
    ) else {
        panic!()
    };
    assert_eq!(k.workload.id.as_str(), "kafka.kafka");
    assert_eq!(k.address.as_deref(), Some("kafka.kafka:9092"));
    assert!(k.topics[0].intents_required);
    let Document::DatabaseServerConfig(db) = one(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: PostgreSQLServerConfig\nmetadata: {name: orders-db}\nspec:\n  address: db:5432\n  credentials: {secretRef: {name: db-creds}}\n",
    ) else {
        panic!()
    };
    assert_eq!(db.dialect, SqlDialect::PostgreSql);
    assert_eq!(
        db.credentials.secret_ref.as_ref().unwrap().password_key,
        "password"
    );
    assert_eq!(
        errors(
            "apiVersion: k8s.otterize.com/v2beta1\nkind: MySQLServerConfig\nmetadata: {name: m}\nspec:\n  address: db:3306\n  credentials: {username: u}\n"
        ),
        ["t.yaml:6:16: credentials need both `username` and `password`, or a `secretRef`"]
    );
    let debug = format!("{db:?}");
    let Document::DatabaseServerConfig(db) = one(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: MySQLServerConfig\nmetadata: {name: m}\nspec:\n  address: db:3306\n  credentials: {username: u, password: hunter2}\n",
    ) else {
        panic!()
    };
    assert!(!format!("{db:?}").contains("hunter2"), "{debug}");
}

#[test]
fn syntax_errors_are_reported_with_place() {
    let errs = errors("apiVersion: [\n");
    assert_eq!(errs.len(), 1);
    assert!(errs[0].starts_with("t.yaml:"), "{errs:?}");
}

/// The shapes Otterize's own v1alpha2 CRD schema has (and its docs used until
/// late 2023): no `kind`, HTTP under `resources`, Kafka under `topics`.
const OTTERIZE_V1ALPHA2: &str = include_str!("../../tests/fixtures/otterize-v1alpha2.yaml");

#[test]
fn reads_v1alpha2_like_the_other_versions() {
    let parsed = parse(OTTERIZE_V1ALPHA2);
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    let [
        Document::ClientIntents(ci),
        Document::ProtectedService(ps),
        Document::KafkaServerConfig(kafka),
    ] = parsed.documents.as_slice()
    else {
        panic!("{:?}", parsed.documents);
    };
    assert_eq!(ci.meta.format, Format::OtterizeV1alpha2);
    assert_eq!(ci.workload.id.as_str(), "client.shop");
    assert!(matches!(
        &ci.targets[0].kind,
        TargetKind::Workload(t) if t.id.as_str() == "server.shop"
            && t.http.len() == 1
            && t.http[0].path == PathPattern::Exact("/client-path".into())
    ));
    assert!(matches!(
        &ci.targets[1].kind,
        TargetKind::Kafka(k) if k.server.as_str() == "kafka.kafka"
            && k.topics[0].operations == [KafkaOperation::Produce, KafkaOperation::Describe]
    ));
    assert!(matches!(
        &ci.targets[2].kind,
        TargetKind::Sql(s) if s.server.as_str() == "db.shop" && s.privileges.len() == 1
    ));
    assert!(matches!(
        &ci.targets[3].kind,
        TargetKind::Workload(t) if t.id.as_str() == "plain.other"
    ));
    assert_eq!(ps.workload.id.as_str(), "server.shop");
    assert_eq!(kafka.workload.id.as_str(), "kafka.kafka");
    assert_eq!(kafka.topics.len(), 1);
}

#[test]
fn v1alpha2_field_names_are_its_own() {
    let with_call = |call: &str| {
        errors(&format!(
            "apiVersion: k8s.otterize.com/v1alpha2\nkind: ClientIntents\nmetadata: {{name: c}}\nspec:\n  service: {{name: c}}\n  calls:\n  - {call}\n"
        ))
    };
    assert_eq!(
        with_call("{name: k, type: kafka, kafkaTopics: [{name: t, operations: [consume]}]}"),
        [
            "t.yaml:7:28: unknown field `kafkaTopics` in call; k8s.otterize.com/v1alpha2 calls this field `topics` (`kafkaTopics` is the v1alpha3 and later name)"
        ]
    );
    assert_eq!(
        with_call("{name: s, type: http, HTTPResources: [{path: /a, methods: [GET]}]}"),
        [
            "t.yaml:7:27: unknown field `HTTPResources` in call; k8s.otterize.com/v1alpha2 calls this field `resources` (`HTTPResources` is the v1alpha3 and later name)"
        ]
    );
    assert_eq!(
        with_call("{name: s, kind: Deployment}"),
        [
            "t.yaml:7:15: unknown field `kind` in call; k8s.otterize.com/v1alpha2 has no `kind`: remove it, or use apiVersion k8s.otterize.com/v1alpha3 or later"
        ]
    );
    assert_eq!(
        with_call("{name: s, type: aws}"),
        [
            "t.yaml:7:21: `aws` is not a valid call type; k8s.otterize.com/v1alpha2 has http, kafka, database"
        ]
    );
    let v1alpha3 = errors(
        "apiVersion: k8s.otterize.com/v1alpha3\nkind: ClientIntents\nmetadata: {name: c}\nspec:\n  service: {name: c}\n  calls:\n  - {name: k, type: kafka, topics: []}\n",
    );
    assert_eq!(
        v1alpha3,
        [
            "t.yaml:7:28: unknown field `topics` in call; k8s.otterize.com/v1alpha3 calls this field `kafkaTopics` (`topics` is the v1alpha2 name)"
        ]
    );
    assert_eq!(
        errors("apiVersion: k8s.otterize.com/v1alpha1\nkind: ClientIntents\nspec: {}\n"),
        [
            "t.yaml:1:1: unsupported document: apiVersion `k8s.otterize.com/v1alpha1`, kind `ClientIntents`; Otterize no longer serves v1alpha1: rewrite it as k8s.otterize.com/v2beta1 (ibac reads v1alpha2, v1alpha3, v1beta1, v2alpha1 and v2beta1)"
        ]
    );
}

#[test]
fn an_empty_key_says_so_and_suggests_indenting_what_follows() {
    // `- service:` with the target's fields one level too far left.
    let errs = errors(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: c}\nspec:\n  workload: {name: c}\n  targets:\n  - service:\n    name: productcatalogservice\n    http: [{path: /products, methods: [GET]}]\n",
    );
    assert_eq!(
        errs,
        [
            "t.yaml:8:5: unknown field `name` in target; `service` above it is empty: if `name` belongs to it, indent it under `service`",
            "t.yaml:9:5: unknown field `http` in target; `service` above it is empty: if `http` belongs to it, indent it under `service`",
            "t.yaml:7:5: `service` in target is empty; if `name`, `http` after it belong to it, indent them under `service`",
        ]
    );
    assert!(
        errs.iter()
            .all(|e| !e.contains("missing the required field"))
    );
    // The same in the v1 shape, and a required key that is empty with nothing after it.
    let errs = errors(
        "apiVersion: k8s.otterize.com/v1alpha2\nkind: ClientIntents\nmetadata: {name: c}\nspec:\n  calls: []\n  service:\n",
    );
    assert_eq!(
        errs,
        ["t.yaml:6:3: `service` in ClientIntents spec is empty; give it a value"]
    );
    let errs = errors(
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: c}\nspec:\nname: c\n",
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("t.yaml:4:1: `spec` in document is empty; if `name` after it belongs to it, indent it under `spec`")),
        "{errs:?}"
    );
}

#[test]
fn meta_records_whether_the_document_named_its_namespace() {
    let named = intents(CHECKOUT_V2);
    assert!(named.meta.namespace_given);
    let parsed = parse_source(
        &"t.yaml".into(),
        "apiVersion: k8s.otterize.com/v2beta1\nkind: ClientIntents\nmetadata: {name: c}\nspec:\n  workload: {name: c}\n  targets: []\n",
        &ParseOptions {
            default_namespace: Namespace::parse("shop").unwrap(),
            ..ParseOptions::default()
        },
    );
    let Some(Document::ClientIntents(unnamed)) = parsed.documents.first() else {
        panic!("{:?}", parsed.errors);
    };
    assert!(!unnamed.meta.namespace_given);
    assert_eq!(unnamed.meta.namespace.as_str(), "shop");
}
