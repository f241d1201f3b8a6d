//! The pictures themselves, byte for byte: the SVG of a graph as the control
//! plane serves it (protected servers, client statuses, a proxy that is
//! behind, a call whose observed verdicts disagree, a call naming workloads
//! the graph does not list), laid out plainly and for the page's view, and a
//! digest of a large one. A change to layout, routing or marks shows here as
//! a diff to review, not as a surprise in someone's export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use ibac_api::graph::{EdgeSource, EdgeView, GraphView, Mismatch, MismatchKind, NodeView};
use ibac_mapper::draw::Picture;
use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::{Blocking, ClientStatus, GraphEdge, ServerStatus};

const NS: &str = "otterize-ecom-demo";

fn id(text: &str) -> WorkloadId {
    WorkloadId::parse(text).unwrap()
}

fn node(name: &str, namespace: &str) -> NodeView {
    let id = id(&format!("{name}.{namespace}"));
    NodeView {
        name: id.name().into(),
        namespace: id.namespace().into(),
        id,
        registered: false,
        server: None,
        client: None,
        enforcement: None,
        in_force: false,
        enforcement_note: None,
    }
}

fn edge(client: &str, server: &str, verdict: Verdict) -> EdgeView {
    EdgeView {
        edge: GraphEdge {
            client: id(client),
            server: id(server),
            verdict,
            discovered: true,
            declared: verdict == Verdict::Allowed,
            intents: Vec::new(),
            calls: Vec::new(),
        },
        sources: vec![EdgeSource::Discovered],
        seen: None,
        suggestion: None,
        observed: None,
        mismatch: None,
    }
}

/// The demo topology at the tutorial's last step, with the marks the page
/// draws for what is not in force.
fn demo() -> GraphView {
    let calls: &[(&str, &[&str])] = &[
        (
            "frontend",
            &[
                "adservice",
                "cartservice",
                "checkoutservice",
                "currencyservice",
                "productcatalogservice",
                "recommendationservice",
                "shippingservice",
            ],
        ),
        (
            "checkoutservice",
            &[
                "cartservice",
                "currencyservice",
                "emailservice",
                "kafka",
                "paymentservice",
                "productcatalogservice",
                "shippingservice",
            ],
        ),
        ("recommendationservice", &["productcatalogservice"]),
        ("cartservice", &["redis-cart"]),
        ("orderservice", &["kafka"]),
        ("loadgenerator", &["frontend"]),
        ("rogue", &["productcatalogservice"]),
    ];
    let mut edges = Vec::new();
    for (client, servers) in calls {
        for server in *servers {
            let verdict = match (*client, *server) {
                ("rogue", _) => Verdict::Blocked,
                (_, "productcatalogservice") => Verdict::Allowed,
                _ => Verdict::WouldBeBlocked,
            };
            edges.push(edge(
                &format!("{client}.{NS}"),
                &format!("{server}.{NS}"),
                verdict,
            ));
        }
    }
    // Calls from another namespace, one of them to a workload the graph
    // does not list.
    edges.push(edge(
        "reports.batch",
        &format!("orderservice.{NS}"),
        Verdict::Allowed,
    ));
    edges.push(edge("reports.batch", "warehouse.data", Verdict::Blocked));
    edges.sort_by(|a, b| (&a.edge.client, &a.edge.server).cmp(&(&b.edge.client, &b.edge.server)));
    if let Some(e) = edges.iter_mut().find(|e| e.edge.client.name() == "rogue") {
        e.mismatch = Some(Mismatch {
            kind: MismatchKind::NotBlocked,
            calls: 3,
            message: "3 calls the policy blocks were let through <since> it was published & more"
                .into(),
        });
    }
    let mut catalog = node("productcatalogservice", NS);
    catalog.registered = true;
    catalog.in_force = true;
    catalog.server = Some(ServerStatus {
        protected: true,
        protection: "protected by a ProtectedService".into(),
        blocking: Blocking::Blocking,
    });
    let mut cart = node("cartservice", NS);
    cart.registered = true;
    cart.in_force = false;
    cart.client = Some(ClientStatus::SomeWouldBeBlocked);
    cart.enforcement_note = Some("its proxy is silent".into());
    let mut frontend = node("frontend", NS);
    frontend.registered = true;
    frontend.in_force = true;
    frontend.client = Some(ClientStatus::SomeWouldBeBlocked);
    let mut rogue = node("rogue", NS);
    rogue.client = Some(ClientStatus::SomeBlocked);
    let mut load = node("loadgenerator", NS);
    load.client = Some(ClientStatus::AllAllowed);
    let mut lonely = node("a-workload-with-a-very-long-name-indeed", "idle");
    lonely.registered = true;
    let mut nodes = vec![catalog, cart, frontend, rogue, load, lonely];
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    GraphView {
        revision: 22,
        nodes,
        edges,
    }
}

/// 1,000 workloads in four namespaces and 5,000 calls, with a fixed seed.
fn large() -> GraphView {
    let mut x: u64 = 11;
    let mut next = || {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (x >> 33) as usize
    };
    let mut seen = std::collections::HashSet::new();
    let mut edges = Vec::new();
    while edges.len() < 5000 {
        let (a, b) = (next() % 1000, next() % 1000);
        if a == b || !seen.insert((a, b)) {
            continue;
        }
        let verdict = [Verdict::Allowed, Verdict::WouldBeBlocked, Verdict::Blocked][next() % 3];
        edges.push(edge(
            &format!("w{a}.ns{}", a % 4),
            &format!("w{b}.ns{}", b % 4),
            verdict,
        ));
    }
    let nodes = (0..1000)
        .step_by(7)
        .map(|v| {
            let mut n = node(&format!("w{v}"), &format!("ns{}", v % 4));
            n.registered = v % 3 == 0;
            n.in_force = v % 2 == 0;
            n
        })
        .collect();
    GraphView {
        revision: 1,
        nodes,
        edges,
    }
}

/// FNV-1a: a digest that is the same on every platform.
fn digest(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x} ({} bytes)", bytes.len())
}

/// Through JSON, as `visualize` reads a saved graph.
fn layout(graph: &GraphView) -> Picture {
    Picture::layout(&through_json(graph))
}

fn layout_for_view(graph: &GraphView, aspect: f64) -> Picture {
    Picture::layout_for_view(&through_json(graph), aspect)
}

fn through_json(graph: &GraphView) -> GraphView {
    serde_json::from_str(&serde_json::to_string(graph).unwrap()).unwrap()
}

#[test]
fn the_demo_as_svg() {
    insta::assert_snapshot!(layout(&demo()).svg());
}

#[test]
fn the_demo_laid_out_for_a_view_as_svg() {
    insta::assert_snapshot!(layout_for_view(&demo(), 1.5).svg());
}

#[test]
fn a_large_graph_as_svg() {
    insta::assert_snapshot!(digest(layout(&large()).svg().as_bytes()));
}
