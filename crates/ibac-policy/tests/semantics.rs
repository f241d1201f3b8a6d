//! The rules of DESIGN.md "Semantics", one behaviour per test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ibac_model::fixtures::{IntentsBuilder, id, intents, protected, settings};
use ibac_model::http::{Method, RequestMethod, normalize};
use ibac_model::kafka::KafkaOperation;
use ibac_model::{Document, Kind, Mode, WorkloadId};
use ibac_policy::graph::{Blocking, ClientStatus, DiscoveredCall, access_graph};
use ibac_policy::{
    Backend, DocumentStatus, NoFacts, Policy, PortMap, Request, ResolveError, Resolver, Verdict,
};

fn policy(docs: Vec<Document>) -> Policy {
    let (policy, errors) = Policy::build(docs, &NoFacts);
    assert!(errors.is_empty(), "{errors:?}");
    policy
}

fn http(method: &str, path: &str) -> Request {
    Request::http(
        None,
        RequestMethod::parse(method).unwrap(),
        normalize(path).unwrap(),
    )
}

fn http_on(port: u16, method: &str, path: &str) -> Request {
    Request::http(
        Some(port),
        RequestMethod::parse(method).unwrap(),
        normalize(path).unwrap(),
    )
}

fn verdict(p: &Policy, client: &str, server: &str, request: &Request) -> Verdict {
    p.decide(Some(&id(client)), &id(server), request).verdict
}

/// Asserts the verdict of each (client, server, request): most rules are
/// told by a list of calls and what each gets, read best as a table of one
/// call a line.
fn assert_verdicts(p: &Policy, calls: &[(&str, &str, Request, Verdict)]) {
    for (client, server, request, expected) in calls {
        assert_eq!(
            verdict(p, client, server, request),
            *expected,
            "{client} → {server}: {request:?}"
        );
    }
}

/// The policy of `web.shop` calling a protected `api.shop` under the rules
/// `call` adds: the setting most HTTP and port rules are shown in.
fn web_to_protected_api(call: impl FnOnce(IntentsBuilder) -> IntentsBuilder) -> Policy {
    policy(vec![
        call(intents("web.shop").calls("api.shop")).build(),
        protected("api.shop"),
    ])
}

/// Asserts the verdict of each HTTP (method, path) from `web.shop` to
/// `api.shop`, the pair the HTTP matching tests are about.
fn assert_web_to_api(p: &Policy, requests: &[(&str, &str, Verdict)]) {
    for (method, path, expected) in requests {
        assert_eq!(
            verdict(p, "web.shop", "api.shop", &http(method, path)),
            *expected,
            "{method} {path}"
        );
    }
}

#[test]
fn shadow_mode_reports_without_blocking() {
    let p = policy(vec![
        intents("web.shop")
            .calls("api.shop")
            .get("/orders/*")
            .build(),
    ]);
    #[rustfmt::skip]
    let calls = [
        ("web.shop", "api.shop", http("GET", "/orders/1"), Verdict::Allowed),
        ("web.shop", "api.shop", http("POST", "/orders/1"), Verdict::WouldBeBlocked),
        ("other.shop", "api.shop", http("GET", "/orders/1"), Verdict::WouldBeBlocked),
        ("web.shop", "nobody.shop", Request::l4(80), Verdict::WouldBeBlocked),
    ];
    assert_verdicts(&p, &calls);
}

#[test]
fn a_protected_service_blocks_what_is_not_declared() {
    let p = web_to_protected_api(|c| c.get("/orders/*"));
    #[rustfmt::skip]
    let calls = [
        ("web.shop", "api.shop", http("GET", "/orders/1"), Verdict::Allowed),
        ("web.shop", "api.shop", http("DELETE", "/orders/1"), Verdict::Blocked),
        ("intruder.shop", "api.shop", http("GET", "/orders/1"), Verdict::Blocked),
        ("web.shop", "other.shop", http("GET", "/"), Verdict::WouldBeBlocked),
    ];
    assert_verdicts(&p, &calls);
}

#[test]
fn protection_comes_from_settings_and_protected_services_only() {
    let p = policy(vec![settings(Mode::DefaultShadow, &["payments"])]);
    #[rustfmt::skip]
    let calls = [
        ("a.shop", "b.payments", Request::l4(80), Verdict::Blocked),
        ("a.shop", "b.shop", Request::l4(80), Verdict::WouldBeBlocked),
    ];
    assert_verdicts(&p, &calls);

    let p = policy(vec![settings(Mode::DefaultActive, &[])]);
    assert_eq!(
        verdict(&p, "a.shop", "b.shop", &Request::l4(80)),
        Verdict::Blocked,
        "every server, even one no intent names"
    );
    #[rustfmt::skip]
    let calls = [
        ("a.shop", "dns.kube-system", Request::l4(53), Verdict::WouldBeBlocked),
        ("a.shop", "x.ibac-system", Request::l4(53), Verdict::WouldBeBlocked),
    ];
    assert_verdicts(&p, &calls);
    assert_eq!(
        verdict(&p, "a.shop", "kubernetes.default", &Request::l4(443)),
        Verdict::WouldBeBlocked,
        "the API server is never protected"
    );
}

#[test]
fn unauthenticated_callers_are_never_allowed() {
    let p = policy(vec![
        intents("web.shop").calls("api.shop").build(),
        protected("api.shop"),
    ]);
    let d = p.decide(None, &id("api.shop"), &Request::l4(80));
    assert_eq!(d.verdict, Verdict::Blocked);
    assert_eq!(
        d.to_string(),
        format!(
            "blocked: the caller presented no identity; the server is {}",
            d.protection
        )
    );
    let d = p.decide(None, &id("web.shop"), &Request::l4(80));
    assert_eq!(d.verdict, Verdict::WouldBeBlocked);
}

#[test]
fn paths_match_like_istio_after_normalization() {
    let p = web_to_protected_api(|c| c.get("/api/*").http(&[Method::Post], "/login"));
    #[rustfmt::skip]
    let requests = [
        ("GET", "/api/", Verdict::Allowed),
        ("GET", "/api/x/y", Verdict::Allowed),
        ("GET", "/api", Verdict::Blocked),
        ("GET", "/apix", Verdict::Blocked),
        ("GET", "/api/../admin", Verdict::Blocked),
        ("GET", "/x/../api/%61", Verdict::Allowed),
        ("GET", "//api//x", Verdict::Allowed),
        ("POST", "/login", Verdict::Allowed),
        ("POST", "/login/", Verdict::Blocked),
        ("GET", "/login", Verdict::Blocked),
    ];
    assert_web_to_api(&p, &requests);
}

#[test]
fn head_is_allowed_wherever_get_is_and_missing_methods_mean_all() {
    let p = web_to_protected_api(|c| c.get("/a").http(&[], "/b"));
    #[rustfmt::skip]
    let requests = [
        ("HEAD", "/a", Verdict::Allowed),
        ("PROPFIND", "/a", Verdict::Blocked),
        ("PROPFIND", "/b", Verdict::Allowed),
        ("DELETE", "/b", Verdict::Allowed),
    ];
    assert_web_to_api(&p, &requests);
}

#[test]
fn ports_narrow_and_http_intents_widen_to_their_port_at_l4() {
    let p = web_to_protected_api(|c| c.port(8080).get("/health"));
    let d = p.decide(Some(&id("web.shop")), &id("api.shop"), &Request::l4(8080));
    assert_eq!(d.verdict, Verdict::Allowed);
    assert!(d.widened());
    assert!(d.to_string().contains("widened to its port"), "{d}");
    #[rustfmt::skip]
    let calls = [
        ("web.shop", "api.shop", Request::l4(9090), Verdict::Blocked),
        ("web.shop", "api.shop", http_on(8080, "GET", "/health"), Verdict::Allowed),
        ("web.shop", "api.shop", http_on(9090, "GET", "/health"), Verdict::Blocked),
    ];
    assert_verdicts(&p, &calls);
    let d = p.decide(
        Some(&id("web.shop")),
        &id("api.shop"),
        &http("GET", "/health"),
    );
    assert_eq!(
        d.verdict,
        Verdict::Blocked,
        "without a port, port-narrowed intents cannot apply"
    );
    assert!(d.to_string().contains("pass the port"), "{d}");
}

#[test]
fn a_kafka_target_opens_the_kafka_workload_at_l4_only() {
    let p = policy(vec![
        intents("orders.shop")
            .kafka("kafka.kafka", "orders", &[KafkaOperation::Produce])
            .build(),
        protected("kafka.kafka"),
    ]);
    #[rustfmt::skip]
    let calls = [
        ("orders.shop", "kafka.kafka", Request::l4(9092), Verdict::Allowed),
        ("orders.shop", "kafka.kafka", http("GET", "/"), Verdict::Blocked),
    ];
    assert_verdicts(&p, &calls);
}

#[test]
fn unenforced_targets_are_kept_and_reported() {
    let p = policy(vec![
        intents("web.shop").internet("api.example.com").build(),
    ]);
    assert_eq!(p.unenforced(&id("web.shop")).len(), 1);
    let view = ibac_policy::view::view(&p);
    assert_eq!(view.unenforced.len(), 1);
    assert!(
        view.unenforced[0]
            .note
            .starts_with("not enforced by this enforcer")
    );
}

#[test]
fn removing_intents_never_unprotects() {
    let ci = intents("web.shop").calls("api.shop").build();
    let key = ci.key();
    let ps = protected("api.shop");
    let ps_key = ps.key();
    let p = policy(vec![ci, ps]);
    let p = p.remove(&[key]).unwrap();
    assert_eq!(
        verdict(&p, "web.shop", "api.shop", &Request::l4(80)),
        Verdict::Blocked
    );
    let p = p.remove(&[ps_key]).unwrap();
    assert_eq!(
        verdict(&p, "web.shop", "api.shop", &Request::l4(80)),
        Verdict::WouldBeBlocked
    );
}

#[test]
fn one_change_touches_only_the_servers_it_names() {
    let p = policy(vec![
        intents("a.shop").calls("x.shop").build(),
        intents("b.shop").calls("y.shop").build(),
        intents("c.shop").calls("z.shop").build(),
    ]);
    let changed = intents("a.shop").calls("x.shop").get("/only").build();
    let q = p.apply([changed], &NoFacts).unwrap();
    let same = |s: &str| std::ptr::eq(p.server(&id(s)).unwrap(), q.server(&id(s)).unwrap());
    assert!(!same("x.shop"));
    assert!(same("y.shop"));
    assert!(same("z.shop"));
    assert_eq!(
        verdict(&p, "a.shop", "x.shop", &http("GET", "/other")),
        Verdict::Allowed,
        "the old snapshot is unchanged"
    );
    assert_eq!(
        verdict(&q, "a.shop", "x.shop", &http("GET", "/other")),
        Verdict::WouldBeBlocked
    );
    // Retargeting moves the client from x to w.
    let q = q
        .apply([intents("a.shop").calls("w.shop").build()], &NoFacts)
        .unwrap();
    assert!(q.server(&id("x.shop")).is_none());
    assert_eq!(
        verdict(&q, "a.shop", "w.shop", &Request::l4(1)),
        Verdict::Allowed
    );
}

#[test]
fn writes_are_all_or_nothing() {
    let p = policy(vec![intents("a.shop").calls("x.shop").build()]);
    let mut second = intents("a.shop").calls("y.shop").build();
    if let Document::ClientIntents(ci) = &mut second {
        ci.meta.name = "a-again".into();
    }
    let errors = p
        .apply(
            [intents("b.shop").calls("x.shop").build(), second],
            &NoFacts,
        )
        .unwrap_err();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]
            .to_string()
            .contains("ClientIntents for client `a.shop` is already declared at"),
        "{}",
        errors[0]
    );
    assert_eq!(
        verdict(&p, "b.shop", "x.shop", &Request::l4(1)),
        Verdict::WouldBeBlocked
    );
    assert!(p.remove(&[protected("nope.shop").key()]).is_err());
}

/// Facts for tests: Service `api` selects workloads `api-v1` and `api-v2`,
/// port 80 → 8080; `gone` does not exist.
struct Facts {
    missing: bool,
}

impl Resolver for Facts {
    fn service(&self, svc: &WorkloadId) -> Result<Vec<Backend>, ResolveError> {
        if svc.name() != "api" || self.missing {
            return Err(ResolveError::Unknown {
                what: "Service",
                name: svc.to_string(),
                hint: String::new(),
            });
        }
        Ok(["api-v1", "api-v2"]
            .iter()
            .map(|n| Backend {
                workload: id(&format!("{n}.{}", svc.namespace())),
                ports: PortMap::Mapped(vec![(80, 8080)]),
            })
            .collect())
    }

    fn workload(&self, w: &WorkloadId, _kind: Option<&Kind>) -> Result<WorkloadId, ResolveError> {
        Ok(w.clone())
    }
}

#[test]
fn service_targets_resolve_to_the_selected_workloads_and_target_ports() {
    let docs = vec![intents("web.shop").calls_service("api.shop").build()];
    let (p, errors) = Policy::build(docs, &Facts { missing: false });
    assert!(errors.is_empty());
    for backend in ["api-v1.shop", "api-v2.shop"] {
        assert_eq!(
            verdict(&p, "web.shop", backend, &Request::l4(8080)),
            Verdict::Allowed
        );
        assert_eq!(
            verdict(&p, "web.shop", backend, &Request::l4(80)),
            Verdict::WouldBeBlocked
        );
    }
    let (_, errors) = Policy::build(
        vec![
            intents("web.shop")
                .calls_service("api.shop")
                .port(443)
                .build(),
        ],
        &Facts { missing: false },
    );
    assert!(
        errors[0]
            .to_string()
            .ends_with("Service `api.shop` has no port 443 (it has 80)"),
        "{}",
        errors[0]
    );
    // Facts change and the Service disappears: the last good version stays in force.
    let stale = p.refresh(&Facts { missing: true });
    assert_eq!(
        verdict(&stale, "web.shop", "api-v1.shop", &Request::l4(8080)),
        Verdict::Allowed
    );
    let statuses = stale.documents();
    assert!(
        matches!(&statuses[0].2, DocumentStatus::Stale(e) if e[0].to_string().contains("no Service `api.shop` is known"))
    );
}

/// A stored document that no longer compiles is kept and shown as failed,
/// never silently dropped (DESIGN.md "Documents that fail"); nothing of it is
/// in force.
#[test]
fn loading_keeps_a_failing_document_as_failed() {
    let docs = vec![
        intents("web.shop").calls_service("api.shop").build(),
        protected("api-v1.shop"),
    ];
    let (p, errors) = Policy::load(docs, &Facts { missing: true });
    assert_eq!(errors.len(), 1, "{errors:?}");
    let statuses = p.documents();
    assert_eq!(statuses.len(), 2);
    let failed = statuses
        .iter()
        .find(|(k, _, _)| k.kind == ibac_model::DocumentKind::ClientIntents)
        .unwrap();
    assert!(
        matches!(&failed.2, DocumentStatus::Failed(e) if e[0].to_string().contains("no Service `api.shop` is known")),
        "{:?}",
        failed.2
    );
    assert_eq!(p.documents_in_force().len(), 1);
    assert_eq!(
        verdict(&p, "web.shop", "api-v1.shop", &Request::l4(8080)),
        Verdict::Blocked
    );
}

#[test]
fn the_access_graph_tells_allowed_would_be_blocked_and_blocked_apart() {
    let p = policy(vec![
        intents("frontend.shop")
            .calls("catalog.shop")
            .get("/products")
            .build(),
        protected("catalog.shop"),
    ]);
    let call = |client: &str, server: &str, path: &str| DiscoveredCall {
        client: id(client),
        server: id(server),
        request: http("GET", path),
        count: 3,
    };
    let graph = access_graph(
        &p,
        &[
            call("frontend.shop", "catalog.shop", "/products"),
            call("intruder.shop", "catalog.shop", "/products"),
            call("frontend.shop", "cart.shop", "/cart"),
        ],
    );
    let edge = |c: &str, s: &str| {
        graph
            .edges
            .iter()
            .find(|e| e.client == id(c) && e.server == id(s))
            .unwrap()
    };
    assert_eq!(
        edge("frontend.shop", "catalog.shop").verdict,
        Verdict::Allowed
    );
    assert!(
        edge("frontend.shop", "catalog.shop").declared
            && edge("frontend.shop", "catalog.shop").discovered
    );
    assert_eq!(
        edge("intruder.shop", "catalog.shop").verdict,
        Verdict::Blocked
    );
    assert_eq!(
        edge("frontend.shop", "cart.shop").verdict,
        Verdict::WouldBeBlocked
    );
    let node = |n: &str| graph.nodes.iter().find(|x| x.id == id(n)).unwrap();
    assert_eq!(
        node("catalog.shop").server.as_ref().unwrap().blocking,
        Blocking::Blocking
    );
    assert!(node("catalog.shop").server.as_ref().unwrap().protected);
    assert_eq!(
        node("cart.shop").server.as_ref().unwrap().blocking,
        Blocking::WouldBlock
    );
    assert_eq!(
        node("frontend.shop").client,
        Some(ClientStatus::SomeWouldBeBlocked)
    );
    assert_eq!(
        node("intruder.shop").client,
        Some(ClientStatus::SomeBlocked)
    );
}

#[test]
fn reasons_say_which_intent_decided() {
    let p = web_to_protected_api(|c| c.get("/orders/*"));
    let d = p.decide(
        Some(&id("web.shop")),
        &id("api.shop"),
        &http("GET", "/orders/1"),
    );
    assert!(
        d.to_string()
            .starts_with("allowed: allowed by the intent at fixture.yaml:"),
        "{d}"
    );
    assert!(
        d.to_string().contains(
            ": GET /orders/*; the server is protected (ProtectedService at fixture.yaml:"
        ),
        "{d}"
    );
    let d = p.decide(
        Some(&id("web.shop")),
        &id("api.shop"),
        &http("POST", "/orders/1"),
    );
    assert!(
        d.to_string()
            .starts_with("blocked: no intent covers it; the client's intents allow: GET /orders/*"),
        "{d}"
    );
}

#[test]
fn renderers_skip_only_the_target_that_does_not_resolve() {
    let docs = vec![
        intents("web.shop")
            .calls_service("api.shop")
            .calls_service("gone.shop")
            .calls("cart.shop")
            .build(),
        intents("admin.shop").calls_service("gone.shop").build(),
    ];
    let facts = Facts { missing: false };
    let (whole, errors) = Policy::build(docs.clone(), &facts);
    assert_eq!(errors.len(), 2);
    assert_eq!(
        verdict(&whole, "web.shop", "cart.shop", &Request::l4(1)),
        Verdict::WouldBeBlocked,
        "build leaves the whole document out"
    );
    let (p, errors) = Policy::build_skipping_targets(docs, &facts);
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 2, "{text:?}");
    assert!(
        text.iter()
            .all(|e| e.contains("no Service `gone.shop` is known")),
        "{text:?}"
    );
    #[rustfmt::skip]
    let calls = [
        ("web.shop", "cart.shop", Request::l4(1), Verdict::Allowed),
        ("web.shop", "api-v1.shop", Request::l4(8080), Verdict::Allowed),
        ("admin.shop", "gone.shop", Request::l4(1), Verdict::WouldBeBlocked),
    ];
    assert_verdicts(&p, &calls);
}

/// What a server looks like to an enforcer: its protection and, per client,
/// its rules (as text: the rules types are compared by what they say).
fn server_view(p: &Policy, server: &WorkloadId) -> String {
    let rules = p
        .server(server)
        .map(|s| {
            s.clients()
                .iter()
                .map(|(c, r)| format!("{c}: {r:?}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default();
    format!("{} | {rules}", p.protection(server))
}

/// Every server whose view changed is in the change set, computed the slow
/// way by comparing every server before and after; and an apply that touches
/// one client names only that client and its servers.
#[test]
fn change_sets_name_every_server_a_change_touched() {
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    let names = ["a", "b", "c", "d", "e"];
    let doc = (0usize..5, 0usize..5, 0usize..3, 0usize..4).prop_map(move |(c, s, kind, port)| {
        let client = format!("{}.shop", names[c]);
        let server = format!("{}.shop", names[s]);
        match kind {
            0 => intents(&client)
                .calls(&server)
                .port(8080 + port as u16)
                .build(),
            1 => protected(&server),
            _ => intents(&client).calls(&server).get("/x/*").build(),
        }
    });
    let mut runner = TestRunner::new(Config::with_cases(200));
    runner
        .run(
            &(
                prop::collection::vec(doc.clone(), 0..6),
                prop::collection::vec(doc, 1..3),
            ),
            |(base, change)| {
                let (before, _) = Policy::build(base, &NoFacts);
                let Ok(after) = before.apply(change, &NoFacts) else {
                    return Ok(()); // a duplicate client: refused, nothing changed
                };
                let mut all: std::collections::BTreeSet<WorkloadId> =
                    before.servers().into_iter().collect();
                all.extend(after.servers());
                for server in all {
                    if server_view(&before, &server) != server_view(&after, &server) {
                        prop_assert!(
                            after.changes().servers.contains(&server),
                            "{server} changed but is not in {:?}",
                            after.changes()
                        );
                    }
                }
                Ok(())
            },
        )
        .unwrap();

    let (base, _) = Policy::build(
        vec![
            intents("a.shop").calls("b.shop").build(),
            intents("c.shop").calls("d.shop").build(),
            protected("d.shop"),
        ],
        &NoFacts,
    );
    let next = base
        .apply([intents("a.shop").calls("e.shop").build()], &NoFacts)
        .unwrap();
    let changes = next.changes();
    assert_eq!(changes.clients, [id("a.shop")].into_iter().collect());
    assert_eq!(
        changes.servers,
        [id("b.shop"), id("e.shop")].into_iter().collect(),
        "the server it no longer calls and the one it calls now"
    );
    assert!(!changes.settings);
    let next = base
        .apply([settings(Mode::DefaultActive, &[])], &NoFacts)
        .unwrap();
    assert!(next.changes().settings);
    let next = base.remove(&[protected("d.shop").key()]).unwrap();
    assert_eq!(next.changes().servers, [id("d.shop")].into_iter().collect());
}

/// Facts that remember what was asked of them.
struct Counting {
    facts: Facts,
    asked: std::sync::Mutex<Vec<String>>,
}

impl Resolver for Counting {
    fn service(&self, svc: &WorkloadId) -> Result<Vec<Backend>, ResolveError> {
        self.asked.lock().unwrap().push(svc.to_string());
        self.facts.service(svc)
    }

    fn workload(&self, w: &WorkloadId, kind: Option<&Kind>) -> Result<WorkloadId, ResolveError> {
        self.asked.lock().unwrap().push(w.to_string());
        self.facts.workload(w, kind)
    }
}

/// After a change of facts, only the ClientIntents naming what changed are
/// recompiled, and the result equals recompiling everything.
#[test]
fn a_change_of_facts_recompiles_only_what_names_it() {
    let docs = vec![
        intents("web.shop").calls_service("api.shop").build(),
        intents("jobs.shop").calls("db.shop").build(),
    ];
    let (p, errors) = Policy::build(docs, &Facts { missing: false });
    assert!(errors.is_empty());
    // The Service `api` goes away.
    let changed: std::collections::BTreeSet<WorkloadId> = [id("api.shop")].into_iter().collect();
    let counting = Counting {
        facts: Facts { missing: true },
        asked: std::sync::Mutex::new(Vec::new()),
    };
    let touched = p.refresh_touching(&counting, &changed);
    let asked = counting.asked.lock().unwrap().clone();
    assert!(asked.contains(&"api.shop".to_string()), "{asked:?}");
    assert!(
        !asked.iter().any(|a| a == "db.shop"),
        "jobs' intents were compiled again: {asked:?}"
    );
    let all = Counting {
        facts: Facts { missing: true },
        asked: std::sync::Mutex::new(Vec::new()),
    };
    let everything = p.refresh(&all);
    assert!(
        all.asked.lock().unwrap().iter().any(|a| a == "db.shop"),
        "a full refresh compiles jobs' intents too"
    );
    assert_eq!(
        format!("{:?}", touched.documents()),
        format!("{:?}", everything.documents())
    );
    let statuses = touched.documents();
    let web = statuses.iter().find(|(k, _, _)| k.name == "web").unwrap();
    assert!(matches!(web.2, DocumentStatus::Stale(_)), "{:?}", web.2);
}
