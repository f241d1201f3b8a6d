//! The pictures themselves, byte for byte: the SVG of a graph as the control
//! plane serves it (protected servers, client statuses, a proxy that is
//! behind, a call whose observed verdicts disagree, a call naming workloads
//! the graph does not list), laid out plainly and for the page's view, and a
//! digest of a large one. A change to layout, routing or marks shows here as
//! a diff to review, not as a surprise in someone's export.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use common::{NS, call, id};
use ibac_api::graph::{GraphView, Mismatch, MismatchKind, NodeView};
use ibac_mapper::draw::Picture;
use ibac_policy::Verdict;
use ibac_policy::graph::ClientStatus;

mod common;

/// The demo topology with the marks the page draws for what is not in
/// force, and calls from another namespace, one of them to a workload the
/// graph does not list.
fn demo() -> GraphView {
    let mut graph = common::demo();
    let edges = &mut graph.edges;
    edges.push(call(
        "reports.batch",
        &format!("orderservice.{NS}"),
        Verdict::Allowed,
    ));
    edges.push(call("reports.batch", "warehouse.data", Verdict::Blocked));
    edges.sort_by(|a, b| (&a.edge.client, &a.edge.server).cmp(&(&b.edge.client, &b.edge.server)));
    if let Some(e) = edges.iter_mut().find(|e| e.edge.client.name() == "rogue") {
        e.mismatch = Some(Mismatch {
            kind: MismatchKind::NotBlocked,
            calls: 3,
            message: "3 calls the policy blocks were let through <since> it was published & more"
                .into(),
        });
    }
    let workload =
        |text: &str, client: Option<ClientStatus>, registered: bool, in_force: bool| NodeView {
            client,
            registered,
            in_force,
            ..NodeView::new(id(text))
        };
    let workloads = [
        (
            "cartservice",
            Some(ClientStatus::SomeWouldBeBlocked),
            true,
            false,
        ),
        (
            "frontend",
            Some(ClientStatus::SomeWouldBeBlocked),
            true,
            true,
        ),
        ("rogue", Some(ClientStatus::SomeBlocked), false, false),
        (
            "loadgenerator",
            Some(ClientStatus::AllAllowed),
            false,
            false,
        ),
    ];
    graph
        .nodes
        .extend(workloads.map(|(name, client, registered, in_force)| {
            workload(&format!("{name}.{NS}"), client, registered, in_force)
        }));
    graph.nodes.push(workload(
        "a-workload-with-a-very-long-name-indeed.idle",
        None,
        true,
        false,
    ));
    graph.nodes.sort_by(|a, b| a.id.cmp(&b.id));
    graph.revision = 22;
    graph
}

/// 1,000 workloads in four namespaces and 5,000 calls, with a fixed seed.
fn large() -> GraphView {
    let edges = ibac_api::fixtures::generated_calls(11, 1000, 5000);
    let nodes = (0..1000)
        .step_by(7)
        .map(|v| NodeView {
            registered: v % 3 == 0,
            in_force: v % 2 == 0,
            ..NodeView::new(id(&format!("w{v}.ns{}", v % 4)))
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
