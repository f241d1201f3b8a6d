//! Every document kind survives encode → decode unchanged, in every form ibac
//! writes: its canonical `ibac.dev/v1` and Otterize's `v2beta1`, as YAML and as
//! JSON. Documents are generated with every optional field set (and unset), so
//! a field the encoder spells differently from the decoder — as `kafkaAcl`
//! once was — fails here before it can reach a proxy.
//!
//! The conversion webhook's promise is here too: a `v2beta1` document written
//! in each older Otterize version and read back is unchanged, and where an
//! older version is refused, a small reference says it cannot hold it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ipnet::IpNet;
use proptest::prelude::*;

use ibac_model::encode::{Flavor, encode, encode_as};
use ibac_model::http::{Method, PathPattern};
use ibac_model::kafka::{KafkaOperation, TopicPattern};
use ibac_model::sql::SqlOperation;
use ibac_model::{
    AzureTarget, CallTarget, ClientIntents, CloudTarget, Credentials, DatabaseServerConfig,
    Document, EnforcementConfig, Enforcers, ExternalTraffic, Format, HttpRule, InternetTarget,
    KafkaServerConfig, KafkaTarget, KafkaTls, KafkaTopic, KafkaTopicConfig, KeyVaultPolicy, Kind,
    Location, Meta, Mode, Name, Namespace, ParseOptions, ProtectedService, SecretRef, SqlDialect,
    SqlPrivilege, SqlTarget, Target, TargetKind, WorkloadId, WorkloadRef, parse_source,
};

fn here() -> Location {
    Location::whole("generated".into())
}

fn name() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,8}[a-z0-9]"
}

fn namespace() -> impl Strategy<Value = Namespace> {
    prop_oneof![Just("shop".to_string()), Just("other".to_string()), name()]
        .prop_filter_map("a namespace", |n| Namespace::parse(&n).ok())
}

fn workload_id() -> impl Strategy<Value = WorkloadId> {
    (name(), namespace()).prop_filter_map("a workload", |(n, ns)| {
        Name::parse(&n).ok().map(|n| WorkloadId::new(&n, &ns))
    })
}

fn kind() -> impl Strategy<Value = Option<Kind>> {
    prop::option::of(
        prop_oneof![
            Just("Deployment"),
            Just("StatefulSet"),
            Just("DaemonSet"),
            Just("Rollout")
        ]
        .prop_filter_map("a kind", |k| Kind::parse(k).ok()),
    )
}

/// A sorted, duplicate-free subset, the form documents keep lists in.
fn subset<T: Clone + Ord + std::fmt::Debug + 'static>(
    all: &'static [T],
    min: usize,
) -> impl Strategy<Value = Vec<T>> {
    prop::sample::subsequence(all.to_vec(), min..=all.len())
}

fn path() -> impl Strategy<Value = PathPattern> {
    prop_oneof![
        Just("*".to_string()),
        "(/[a-z0-9]{1,6}){1,3}",
        "(/[a-z0-9]{1,6}){0,2}/\\*",
    ]
    .prop_filter_map("a path pattern", |p| PathPattern::parse(&p).ok())
}

fn http_rules() -> impl Strategy<Value = Vec<HttpRule>> {
    prop::collection::vec(
        (path(), subset(&Method::ALL, 0)).prop_map(|(path, methods)| HttpRule {
            at: here(),
            path,
            methods,
        }),
        0..3,
    )
}

fn call(ns: Namespace, otterize: bool) -> impl Strategy<Value = CallTarget> {
    let ports = if otterize {
        Just(Vec::new()).boxed()
    } else {
        prop::collection::btree_set(1u16..=65535, 0..3)
            .prop_map(|s| s.into_iter().collect())
            .boxed()
    };
    (
        prop::option::of(name()),
        workload_id(),
        kind(),
        ports,
        http_rules(),
    )
        .prop_map(move |(local, id, kind, ports, http)| CallTarget {
            id: match local.and_then(|n| Name::parse(&n).ok()) {
                Some(n) => WorkloadId::new(&n, &ns),
                None => id,
            },
            kind,
            ports,
            http,
        })
}

fn topic(otterize: bool) -> impl Strategy<Value = KafkaTopic> {
    let pattern = if otterize {
        prop_oneof![
            Just(TopicPattern::Any),
            "[a-zA-Z0-9._-]{1,12}".prop_map(TopicPattern::Literal)
        ]
        .boxed()
    } else {
        prop_oneof![
            Just(TopicPattern::Any),
            "[a-zA-Z0-9._-]{1,12}".prop_map(TopicPattern::Literal),
            "[a-zA-Z0-9._-]{1,12}".prop_map(TopicPattern::Prefix)
        ]
        .boxed()
    };
    (pattern, subset(&KafkaOperation::ALL, 1)).prop_map(|(topic, operations)| KafkaTopic {
        at: here(),
        topic,
        operations,
    })
}

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z][a-zA-Z0-9:*/-]{0,12}", 0..3)
}

fn target(ns: Namespace, otterize: bool) -> impl Strategy<Value = Target> {
    let kind = prop_oneof![
        call(ns.clone(), otterize).prop_map(TargetKind::Workload),
        call(ns.clone(), otterize)
            .prop_map(|c| TargetKind::Service(CallTarget { kind: None, ..c })),
        (workload_id(), prop::collection::vec(topic(otterize), 0..3))
            .prop_map(|(server, topics)| TargetKind::Kafka(KafkaTarget { server, topics })),
        (
            workload_id(),
            any::<bool>(),
            prop::collection::vec(
                (
                    "[a-z][a-z0-9_]{0,8}",
                    prop::option::of("[a-z][a-z0-9_]{0,6}(\\.[a-z][a-z0-9_]{0,6})?"),
                    subset(&SqlOperation::ALL, 1),
                )
                    .prop_map(|(database, table, operations)| SqlPrivilege {
                        at: here(),
                        database,
                        table,
                        operations,
                    }),
                0..3,
            ),
        )
            .prop_map({
                let ns = ns.clone();
                move |(server, named, privileges)| {
                    // A bare name is in the client's namespace until resolved.
                    let server = if named {
                        server
                    } else {
                        WorkloadId::new(&server.name_owned(), &ns)
                    };
                    TargetKind::Sql(SqlTarget {
                        server,
                        privileges,
                        namespace_given: named,
                    })
                }
            }),
        (
            prop::collection::vec("([a-z]{1,6}\\.){1,2}example\\.com", 0..2),
            prop::collection::vec(
                (any::<[u8; 4]>(), 8u8..=32).prop_filter_map("a network", |(a, len)| {
                    IpNet::new(std::net::Ipv4Addr::from(a).into(), len)
                        .ok()
                        .map(|n| n.trunc())
                }),
                0..2,
            ),
            prop::collection::btree_set(1u16..=65535, 0..2),
        )
            .prop_filter("an internet target names something", |(d, i, _)| !d
                .is_empty()
                || !i.is_empty())
            .prop_map(
                |(domains, ips, ports)| TargetKind::Internet(InternetTarget {
                    domains,
                    ips,
                    ports: ports.into_iter().collect(),
                })
            ),
        ("arn:aws:s3:::[a-z]{1,8}", strings())
            .prop_map(|(resource, actions)| { TargetKind::Aws(CloudTarget { resource, actions }) }),
        ("projects/[a-z]{1,8}", strings())
            .prop_map(|(resource, actions)| { TargetKind::Gcp(CloudTarget { resource, actions }) }),
        (
            "/subscriptions/[a-z0-9]{1,8}",
            strings(),
            strings(),
            strings(),
            prop::option::of((strings(), strings(), strings(), strings()))
        )
            .prop_filter("an azure target asks for something", |(_, r, a, d, kv)| {
                !r.is_empty() || !a.is_empty() || !d.is_empty() || kv.is_some()
            })
            .prop_map(|(scope, roles, actions, data_actions, kv)| {
                // Roles, or actions and data actions: never both.
                let by_role = !roles.is_empty();
                TargetKind::Azure(AzureTarget {
                    scope,
                    roles,
                    actions: if by_role { Vec::new() } else { actions },
                    data_actions: if by_role { Vec::new() } else { data_actions },
                    key_vault_policy: kv.map(|(c, k, s, st)| KeyVaultPolicy {
                        certificate_permissions: c,
                        key_permissions: k,
                        secret_permissions: s,
                        storage_permissions: st,
                    }),
                })
            }),
    ];
    kind.prop_map(|kind| Target { at: here(), kind })
}

fn meta(name: String, namespace: Namespace) -> Meta {
    Meta {
        name,
        namespace,
        origin: here(),
        format: Format::IbacV1,
        namespace_given: true,
    }
}

fn client_intents(otterize: bool) -> impl Strategy<Value = Document> {
    (namespace(), name(), kind()).prop_flat_map(move |(ns, client, kind)| {
        let Ok(client_name) = Name::parse(&client) else {
            unreachable!("the strategy makes valid names")
        };
        let id = WorkloadId::new(&client_name, &ns);
        prop::collection::vec(target(ns.clone(), otterize), 0..5).prop_map(move |targets| {
            Document::ClientIntents(ClientIntents {
                meta: meta(client.clone(), ns.clone()),
                workload: WorkloadRef {
                    id: id.clone(),
                    kind: kind.clone(),
                },
                targets,
            })
        })
    })
}

fn protected_service() -> impl Strategy<Value = Document> {
    (workload_id(), kind()).prop_map(|(id, kind)| {
        Document::ProtectedService(ProtectedService {
            meta: meta(id.name().to_string(), id.namespace_owned()),
            workload: WorkloadRef { id, kind },
        })
    })
}

fn enforcement_config() -> impl Strategy<Value = Document> {
    (
        name(),
        namespace(),
        prop_oneof![Just(Mode::DefaultShadow), Just(Mode::DefaultActive)],
        prop::collection::btree_set(namespace(), 0..3),
        any::<[bool; 6]>(),
        prop_oneof![
            Just(ExternalTraffic::Off),
            Just(ExternalTraffic::IfBlocked),
            Just(ExternalTraffic::Always)
        ],
    )
        .prop_map(|(name, ns, mode, enforced, on, external_traffic)| {
            let mut enforcers = Enforcers::default();
            for (field, value) in Enforcers::FIELDS.iter().zip(on) {
                if let Some(slot) = enforcers.field_mut(field) {
                    *slot = value;
                }
            }
            Document::EnforcementConfig(EnforcementConfig {
                meta: meta(name, ns),
                mode,
                enforced_namespaces: enforced.into_iter().collect(),
                enforcers,
                external_traffic,
            })
        })
}

fn kafka_server_config() -> impl Strategy<Value = Document> {
    (
        workload_id(),
        kind(),
        prop::option::of("[a-z]{1,8}\\.[a-z]{1,8}:[0-9]{2,5}"),
        prop::option::of((
            "/[a-z]{1,8}\\.pem",
            "/[a-z]{1,8}\\.key",
            "/[a-z]{1,8}\\.crt",
        )),
        prop::collection::vec(
            (
                "[a-zA-Z0-9._-]{1,12}",
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            ),
            0..3,
        ),
        any::<bool>(),
    )
        .prop_map(|(id, kind, address, tls, topics, no_auto)| {
            Document::KafkaServerConfig(KafkaServerConfig {
                meta: meta(id.name().to_string(), id.namespace_owned()),
                workload: WorkloadRef { id, kind },
                address,
                tls: tls.map(|(cert_file, key_file, root_ca_file)| KafkaTls {
                    cert_file,
                    key_file,
                    root_ca_file,
                }),
                topics: topics
                    .into_iter()
                    .map(|(topic, prefix, identity, intents)| KafkaTopicConfig {
                        topic,
                        prefix,
                        client_identity_required: identity,
                        intents_required: intents,
                    })
                    .collect(),
                no_auto_create_intents_for_operator: no_auto,
            })
        })
}

fn database_server_config() -> impl Strategy<Value = Document> {
    let credentials = prop_oneof![
        ("[a-z]{1,8}", "[a-zA-Z0-9!#%]{1,12}").prop_map(|(u, p)| Credentials {
            username: Some(u),
            password: Some(p),
            secret_ref: None,
        }),
        (
            "[a-z][a-z0-9-]{0,8}",
            prop::option::of(namespace()),
            "[a-z]{1,8}",
            "[a-z]{1,8}",
            prop::option::of(("[a-z]{1,8}", "[a-z]{1,8}"))
        )
            .prop_map(|(name, namespace, uk, pk, inline)| Credentials {
                username: inline.as_ref().map(|(u, _)| u.clone()),
                password: inline.map(|(_, p)| p),
                secret_ref: Some(SecretRef {
                    name,
                    namespace,
                    username_key: uk,
                    password_key: pk,
                }),
            }),
    ];
    (
        name(),
        namespace(),
        prop_oneof![Just(SqlDialect::PostgreSql), Just(SqlDialect::MySql)],
        "[a-z]{1,8}\\.[a-z]{1,8}:[0-9]{2,5}",
        credentials,
    )
        .prop_map(|(name, ns, dialect, address, credentials)| {
            Document::DatabaseServerConfig(DatabaseServerConfig {
                meta: meta(name, ns),
                dialect,
                address,
                credentials,
            })
        })
}

/// Every kind of document, in a form `flavor` can hold.
fn document(flavor: Flavor) -> BoxedStrategy<Document> {
    match flavor {
        Flavor::Ibac => prop_oneof![
            client_intents(false),
            protected_service(),
            enforcement_config(),
            kafka_server_config(),
            database_server_config(),
        ]
        .boxed(),
        Flavor::Otterize => prop_oneof![
            client_intents(true),
            protected_service(),
            kafka_server_config(),
            database_server_config(),
        ]
        .boxed(),
    }
}

/// Sets every place and the format to one value: they say where a document
/// was read from, which a round trip changes by design.
fn without_places(doc: &Document) -> Document {
    let mut doc = doc.clone();
    let meta = match &mut doc {
        Document::ClientIntents(ci) => {
            for t in &mut ci.targets {
                t.at = here();
                match &mut t.kind {
                    TargetKind::Workload(c) | TargetKind::Service(c) => {
                        c.http.iter_mut().for_each(|r| r.at = here())
                    }
                    TargetKind::Kafka(k) => k.topics.iter_mut().for_each(|t| t.at = here()),
                    TargetKind::Sql(s) => s.privileges.iter_mut().for_each(|p| p.at = here()),
                    _ => {}
                }
            }
            &mut ci.meta
        }
        Document::ProtectedService(d) => &mut d.meta,
        Document::EnforcementConfig(d) => &mut d.meta,
        Document::KafkaServerConfig(d) => &mut d.meta,
        Document::DatabaseServerConfig(d) => &mut d.meta,
    };
    meta.origin = here();
    meta.format = Format::IbacV1;
    doc
}

#[derive(Clone, Copy, Debug)]
enum Syntax {
    Yaml,
    Json,
}

fn write(doc: &Document, flavor: Flavor, syntax: Syntax) -> String {
    let encoded = match encode(doc, flavor) {
        Ok(e) => e,
        Err(e) => panic!("the generator made a document {flavor:?} cannot hold: {e}"),
    };
    let text = match syntax {
        Syntax::Yaml => ibac_model::yaml::to_yaml(&encoded).map_err(|e| e.to_string()),
        Syntax::Json => serde_json::to_string_pretty(&encoded).map_err(|e| e.to_string()),
    };
    match text {
        Ok(t) => t,
        Err(e) => panic!("cannot serialize: {e}"),
    }
}

fn read(text: &str) -> Vec<Document> {
    let parsed = parse_source(&"written".into(), text, &ParseOptions::default());
    assert!(
        parsed.errors.is_empty(),
        "ibac refuses what it wrote:\n{text}\n{:?}",
        parsed.error_messages()
    );
    parsed.documents
}

/// Writes `doc` in `flavor`, as YAML and as JSON, and reads each back.
fn round_trip(doc: &Document, flavor: Flavor) {
    for syntax in [Syntax::Yaml, Syntax::Json] {
        let text = write(doc, flavor, syntax);
        let again = read(&text);
        assert_eq!(again.len(), 1, "one document in, one out:\n{text}");
        assert_eq!(
            without_places(&again[0]),
            without_places(doc),
            "changed by a round trip through {flavor:?} {syntax:?}:\n{text}"
        );
        let expected = match flavor {
            Flavor::Ibac => Format::IbacV1,
            Flavor::Otterize => Format::OtterizeV2beta1,
        };
        assert_eq!(again[0].meta().format, expected);
    }
}

/// Whether `format` can hold `doc`: the obvious reference the encoder's
/// refusals are held to.
fn holds(doc: &Document, format: Format) -> bool {
    let alpha2 = format == Format::OtterizeV1alpha2;
    match doc {
        Document::EnforcementConfig(_) => format == Format::IbacV1,
        Document::ProtectedService(ProtectedService { workload, .. })
        | Document::KafkaServerConfig(KafkaServerConfig { workload, .. }) => {
            !(alpha2 && workload.kind.is_some())
        }
        Document::DatabaseServerConfig(_) => true,
        Document::ClientIntents(ci) => {
            if alpha2 && ci.workload.kind.is_some() {
                return false;
            }
            ci.targets.iter().all(|t| match &t.kind {
                TargetKind::Workload(c) | TargetKind::Service(c) => {
                    (format == Format::IbacV1 || c.ports.is_empty())
                        && !(alpha2 && c.kind.is_some())
                }
                TargetKind::Kafka(k) => {
                    format == Format::IbacV1
                        || k.topics
                            .iter()
                            .all(|t| !matches!(t.topic, TopicPattern::Prefix(_)))
                }
                TargetKind::Sql(_) => true,
                TargetKind::Azure(a) => {
                    !alpha2
                        && (format != Format::OtterizeV1alpha3
                            || (a.actions.is_empty() && a.data_actions.is_empty()))
                }
                TargetKind::Internet(_) | TargetKind::Aws(_) | TargetKind::Gcp(_) => !alpha2,
            })
        }
    }
}

/// The versions the API server converts between and v2beta1, and ibac's
/// own group, which holds everything Otterize's does.
const OTHERS: [Format; 5] = [
    Format::OtterizeV1alpha2,
    Format::OtterizeV1alpha3,
    Format::OtterizeV1beta1,
    Format::OtterizeV2alpha1,
    Format::IbacV1,
];

/// v2beta1 → `format` → v2beta1, as the conversion webhook does it.
fn converts_back(doc: &Document, format: Format) {
    match encode_as(doc, format) {
        Ok(older) => {
            assert!(holds(doc, format), "{format} was meant to refuse {doc:?}");
            let text = serde_json::to_string_pretty(&older).unwrap();
            let read_older = read(&text);
            assert_eq!(read_older.len(), 1, "{text}");
            assert_eq!(read_older[0].meta().format, format, "{text}");
            let stored = write(&read_older[0], Flavor::Otterize, Syntax::Json);
            let again = read(&stored);
            assert_eq!(
                without_places(&again[0]),
                without_places(doc),
                "changed by v2beta1 → {format} → v2beta1:\n{text}\n{stored}"
            );
        }
        Err(e) => {
            assert!(!holds(doc, format), "{format} refused what it holds: {e}");
            let message = e.to_string();
            assert!(
                message.contains(&format!("cannot write as {format}: ")),
                "{message}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn every_kind_converts_to_each_older_version_and_back(doc in document(Flavor::Otterize)) {
        for format in OTHERS {
            converts_back(&doc, format);
        }
    }

    #[test]
    fn every_kind_round_trips_as_ibac(doc in document(Flavor::Ibac)) {
        round_trip(&doc, Flavor::Ibac);
    }

    #[test]
    fn every_kind_round_trips_as_otterize(doc in document(Flavor::Otterize)) {
        round_trip(&doc, Flavor::Otterize);
    }
}

/// The settings document exactly as `ibac mode defaultActive` made it when
/// the bug was found: every enforcer written out, one of them switched off.
#[test]
fn settings_with_every_enforcer_round_trip() {
    let enforcers = Enforcers {
        kafka_acl: false,
        egress_network_policy: true,
        ..Enforcers::default()
    };
    let doc = Document::EnforcementConfig(EnforcementConfig {
        meta: meta(
            "default".into(),
            Namespace::parse("ibac-system").unwrap_or_else(|_| unreachable!()),
        ),
        mode: Mode::DefaultActive,
        enforced_namespaces: Vec::new(),
        enforcers,
        external_traffic: ExternalTraffic::Always,
    });
    let text = write(&doc, Flavor::Ibac, Syntax::Yaml);
    assert!(text.contains("kafkaACL: false"), "{text}");
    round_trip(&doc, Flavor::Ibac);
}
