//! What the drawing tests share: the demo topology and short ways to write
//! a call.

#![allow(clippy::unwrap_used, dead_code)]

use ibac_api::graph::{EdgeView, GraphView, NodeView};
use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::{Blocking, GraphEdge, ServerStatus};

pub const NS: &str = "otterize-ecom-demo";

pub fn id(text: &str) -> WorkloadId {
    WorkloadId::parse(text).unwrap()
}

/// A discovered call with its verdict.
pub fn call(client: &str, server: &str, verdict: Verdict) -> EdgeView {
    EdgeView::new(GraphEdge {
        verdict,
        discovered: true,
        ..GraphEdge::new(&id(client), &id(server))
    })
}

/// The demo topology (DESIGN.md) at the tutorial's last step: the catalog
/// protected, its declared clients allowed, a rogue caller blocked, the
/// rest in shadow.
pub fn demo() -> GraphView {
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
            edges.push(call(
                &format!("{client}.{NS}"),
                &format!("{server}.{NS}"),
                verdict,
            ));
        }
    }
    GraphView {
        revision: 1,
        nodes: vec![NodeView {
            registered: true,
            in_force: true,
            server: Some(ServerStatus {
                protected: true,
                protection: "protected by a ProtectedService".into(),
                blocking: Blocking::Blocking,
            }),
            ..NodeView::new(id(&format!("productcatalogservice.{NS}")))
        }],
        edges,
    }
}
