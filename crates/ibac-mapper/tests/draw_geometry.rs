//! The access graph reads as a map: checked on the SVG itself, for the demo
//! and for random graphs (cycles, self-calls, several namespaces), no line
//! runs through a box other than its own two ends, and no two arrow heads
//! at a box overlap.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use common::{call, demo};
use ibac_api::graph::{GraphView, NodeView};
use ibac_mapper::draw::Picture;
use ibac_policy::Verdict;

mod common;
use proptest::prelude::*;

/// How far an arrow head reaches back along its line, and across it (the
/// markers are 13 × 13 in picture units).
const HEAD: f64 = 13.0;

#[derive(Debug)]
struct Box_ {
    id: String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
}

#[derive(Debug)]
struct Line {
    client: String,
    server: String,
    verdict: String,
    points: Vec<(f64, f64)>,
}

fn attr<'a>(tag: &'a str, name: &str) -> &'a str {
    let key = format!(" {name}=\"");
    let at = tag
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {tag}"))
        + key.len();
    let end = tag[at..].find('"').unwrap();
    &tag[at..at + end]
}

fn numbers(text: &str) -> Vec<f64> {
    text.split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect()
}

/// The boxes and the lines of a picture, read back from its SVG.
fn parse(svg: &str) -> (Vec<Box_>, Vec<Line>) {
    let mut boxes = Vec::new();
    for chunk in svg.split("<g class=\"node").skip(1) {
        if chunk.starts_with('s') {
            continue; // the group of all nodes
        }
        let tag = &chunk[..chunk.find('>').unwrap()];
        let t = numbers(attr(tag, "transform"));
        let rect = &chunk[chunk.find("<rect").unwrap()..];
        let rect = &rect[..rect.find('>').unwrap()];
        boxes.push(Box_ {
            id: attr(tag, "data-id").to_string(),
            x: t[0],
            y: t[1],
            w: attr(rect, "width").parse().unwrap(),
            h: attr(rect, "height").parse().unwrap(),
        });
    }
    let mut lines = Vec::new();
    for chunk in svg.split("<path class=\"edge ").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        let d = attr(tag, "d");
        assert!(
            d.starts_with('M') && d[1..].chars().all(|c| !c.is_alphabetic() || c == 'L'),
            "a polyline: {d}"
        );
        let n = numbers(d);
        lines.push(Line {
            client: attr(tag, "data-client").to_string(),
            server: attr(tag, "data-server").to_string(),
            verdict: attr(tag, "data-verdict").to_string(),
            points: n.chunks(2).map(|p| (p[0], p[1])).collect(),
        });
    }
    (boxes, lines)
}

/// Whether the segment from `p` to `q` enters the inside of `b`
/// (Liang–Barsky clipping against the box shrunk by a hair, so that a line
/// touching a border does not count).
fn enters(p: (f64, f64), q: (f64, f64), b: &Box_) -> bool {
    let e = 0.5;
    let (x0, x1, y0, y1) = (b.x + e, b.x + b.w - e, b.y + e, b.y + b.h - e);
    let (dx, dy) = (q.0 - p.0, q.1 - p.1);
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (pk, qk) in [
        (-dx, p.0 - x0),
        (dx, x1 - p.0),
        (-dy, p.1 - y0),
        (dy, y1 - p.1),
    ] {
        if pk == 0.0 {
            if qk < 0.0 {
                return false;
            }
        } else {
            let r = qk / pk;
            if pk < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    t0 < t1
}

/// The rule itself, on one picture.
fn reads_as_a_map(graph: &GraphView) {
    picture_reads_as_a_map(graph, &Picture::layout(graph));
}

fn picture_reads_as_a_map(graph: &GraphView, picture: &Picture) {
    let svg = picture.svg();
    let (boxes, lines) = parse(&svg);
    let by_id = |id: &str| boxes.iter().find(|b| b.id == id).unwrap();
    assert_eq!(lines.len(), graph.edges.len());
    for line in &lines {
        let (client, server) = (by_id(&line.client), by_id(&line.server));
        let first = line.points[0];
        let last = *line.points.last().unwrap();
        let before = line.points[line.points.len() - 2];
        assert!(
            (first.0 - (client.x + client.w)).abs() < 0.2
                && first.1 > client.y
                && first.1 < client.y + client.h,
            "{} → {} leaves from its client's right side",
            line.client,
            line.server
        );
        assert!(
            (last.0 - server.x).abs() < 0.2 && last.1 > server.y && last.1 < server.y + server.h,
            "{} → {} arrives on its server's left side",
            line.client,
            line.server
        );
        assert!(
            (before.1 - last.1).abs() < 0.01 && last.0 - before.0 >= HEAD,
            "{} → {}: the head lies on a straight stretch as long as itself",
            line.client,
            line.server
        );
        for seg in line.points.windows(2) {
            for b in &boxes {
                if b.id == line.client || b.id == line.server {
                    continue;
                }
                assert!(
                    !enters(seg[0], seg[1], b),
                    "{} → {} runs through {} ({:?} to {:?}, box {b:?})",
                    line.client,
                    line.server,
                    b.id,
                    seg[0],
                    seg[1]
                );
            }
        }
    }
    // Heads at one box: each covers HEAD × HEAD ending at the port.
    for b in &boxes {
        let mut heads: Vec<(f64, f64, &str)> = lines
            .iter()
            .filter(|l| l.server == b.id)
            .map(|l| {
                let p = *l.points.last().unwrap();
                (p.0, p.1, l.verdict.as_str())
            })
            .collect();
        heads.sort_by(|p, q| p.1.total_cmp(&q.1));
        for pair in heads.windows(2) {
            let apart = (pair[1].1 - pair[0].1) >= HEAD || (pair[1].0 - pair[0].0).abs() >= HEAD;
            assert!(
                apart,
                "heads at {} overlap: {:?} and {:?}",
                b.id, pair[0], pair[1]
            );
        }
    }
}

#[test]
fn the_demo_reads_as_a_map() {
    reads_as_a_map(&demo());
}

/// Laid out for the page's view, the demo is taller (nearer the view's
/// shape) and still reads as a map.
#[test]
fn the_demo_laid_out_for_a_view_fills_it_and_reads_as_a_map() {
    let (w, h) = Picture::layout(&demo()).size();
    let fitted = Picture::layout_for_view(&demo(), 1.5);
    let (fw, fh) = fitted.size();
    assert!(fh > h && fw / fh < w / h, "{w}×{h} → {fw}×{fh}");
    assert!(
        fw / fh >= 1.5 - 0.01,
        "never taller than the view: {fw}×{fh}"
    );
    picture_reads_as_a_map(&demo(), &fitted);
}

#[test]
fn the_demo_in_shadow_mode_reads_as_a_map() {
    let mut g = demo();
    g.edges.retain(|e| e.edge.client.name() != "rogue");
    for e in &mut g.edges {
        e.edge.verdict = Verdict::WouldBeBlocked;
    }
    reads_as_a_map(&g);
}

/// Random graphs: up to 200 workloads in up to 4 namespaces, calls drawn at
/// random (so with cycles, self-calls and calls within a column).
fn random_graph() -> impl Strategy<Value = GraphView> {
    (2usize..=200, 1usize..=4).prop_flat_map(|(n, namespaces)| {
        proptest::collection::vec((0..n, 0..n, 0u8..3), 0..=(2 * n).min(400)).prop_map(
            move |pairs| {
                let id = |v: usize| format!("w{v}.ns{}", v % namespaces);
                let verdicts = [Verdict::Allowed, Verdict::WouldBeBlocked, Verdict::Blocked];
                let mut seen = std::collections::BTreeSet::new();
                let edges = pairs
                    .into_iter()
                    .filter(|(a, b, _)| seen.insert((*a, *b)))
                    .map(|(a, b, v)| call(&id(a), &id(b), verdicts[v as usize]))
                    .collect();
                GraphView {
                    revision: 1,
                    nodes: (0..n).map(|v| NodeView::new(common::id(&id(v)))).collect(),
                    edges,
                }
            },
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_graphs_read_as_a_map(graph in random_graph()) {
        reads_as_a_map(&graph);
    }
}
