//! The floor the layout benchmark measures the routed layout of
//! `ibac_mapper::draw` against: the least work a picture of the access
//! graph can take. Workloads stand on a square grid in the order of their
//! IDs, each call is one straight line from box to box, and the SVG holds
//! one rectangle and label per workload and one line per call; no
//! layering, ordering, namespace bands or routing. What the routed layout
//! takes beyond this is what those cost. Written for the benchmark alone:
//! nothing draws with it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use ibac_api::graph::GraphView;
use ibac_model::WorkloadId;

const NODE_W: f64 = 250.0;
const NODE_H: f64 = 44.0;
const GAP: f64 = 40.0;

/// Workloads placed on a grid and the calls between them, as pairs of
/// grid cells.
pub struct Picture {
    /// Every workload the graph lists or a call names, in ID order.
    workloads: Vec<WorkloadId>,
    /// Each call's client and server, as indices into `workloads`.
    calls: Vec<(usize, usize)>,
    /// Cells a row.
    across: usize,
}

impl Picture {
    /// Places `graph`'s workloads on a grid about as wide as it is tall.
    pub fn layout(graph: &GraphView) -> Self {
        let mut index: BTreeMap<&WorkloadId, usize> = BTreeMap::new();
        let named = graph.nodes.iter().map(|n| &n.id).chain(
            graph
                .edges
                .iter()
                .flat_map(|e| [&e.edge.client, &e.edge.server]),
        );
        for id in named {
            index.entry(id).or_default();
        }
        for (i, slot) in index.values_mut().enumerate() {
            *slot = i;
        }
        let calls = graph
            .edges
            .iter()
            .filter_map(|e| Some((*index.get(&e.edge.client)?, *index.get(&e.edge.server)?)))
            .collect();
        let workloads: Vec<WorkloadId> = index.into_keys().cloned().collect();
        let across = (workloads.len() as f64).sqrt().ceil().max(1.0) as usize;
        Picture {
            workloads,
            calls,
            across,
        }
    }

    /// The top-left corner of workload `v`'s box.
    fn corner(&self, v: usize) -> (f64, f64) {
        let (column, row) = (v % self.across, v / self.across);
        (
            GAP + column as f64 * (NODE_W + GAP),
            GAP + row as f64 * (NODE_H + GAP),
        )
    }

    /// The picture as SVG: boxes with their names, and straight lines.
    pub fn svg(&self) -> String {
        let rows = self.workloads.len().div_ceil(self.across).max(1);
        let w = GAP + self.across as f64 * (NODE_W + GAP);
        let h = GAP + rows as f64 * (NODE_H + GAP);
        let mut out = String::with_capacity(256 + 120 * (self.workloads.len() + self.calls.len()));
        let _ = write!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}">"#
        );
        for &(a, b) in &self.calls {
            let (ax, ay) = self.corner(a);
            let (bx, by) = self.corner(b);
            let _ = write!(
                out,
                r##"<line x1="{:.1}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="#37474f"/>"##,
                ax + NODE_W / 2.0,
                ay + NODE_H / 2.0,
                bx + NODE_W / 2.0,
                by + NODE_H / 2.0
            );
        }
        for (v, id) in self.workloads.iter().enumerate() {
            let (x, y) = self.corner(v);
            // IDs are DNS labels joined by a dot: nothing in them to escape.
            let _ = write!(
                out,
                r##"<rect x="{x:.1}" y="{y:.1}" width="{NODE_W}" height="{NODE_H}" fill="#ffffff" stroke="#37474f"/><text x="{:.1}" y="{:.1}">{id}</text>"##,
                x + 12.0,
                y + NODE_H / 2.0
            );
        }
        out.push_str("</svg>\n");
        out
    }
}
