//! The access graph's layout as it was before calls were routed around
//! boxes (curves drawn straight from column to column): the baseline that
//! the layout benchmark measures the routed layout against, in the same
//! run. Kept as it was but for reading the graph in its one wire shape;
//! not used anywhere else.

#![allow(dead_code, missing_docs)]

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ibac_api::graph::{GraphView, NodeView};
use ibac_model::WorkloadId;
use ibac_policy::graph::ClientStatus;

const NODE_W: f64 = 236.0;
const NODE_H: f64 = 46.0;
const COL_GAP: f64 = 140.0;
const ROW_GAP: f64 = 22.0;
const MARGIN: f64 = 40.0;
const LEGEND_H: f64 = 60.0;
const SWEEPS: usize = 6;
/// Room for a namespace's name above its workloads.
const BAND_HEAD: f64 = 30.0;
const BAND_PAD: f64 = 12.0;
const BAND_GAP: f64 = 24.0;

/// Where each node goes.
#[derive(Clone, Debug)]
struct Placed {
    column: usize,
    /// The top of its box.
    y: f64,
}

/// A namespace's band.
#[derive(Clone, Debug)]
struct Band {
    namespace: String,
    top: f64,
    height: f64,
}

/// A laid-out graph, ready to write as SVG or PNG.
#[derive(Clone, Debug)]
pub struct Picture {
    graph: GraphView,
    placed: Vec<Placed>,
    columns: Vec<Vec<usize>>,
    index: HashMap<WorkloadId, usize>,
    bands: Vec<Band>,
    height: f64,
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A short label that fits the box.
fn fit(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let cut: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{cut}…")
    }
}

impl Picture {
    /// Lays out `graph`. Edges naming unknown nodes add them.
    pub fn layout(graph: &GraphView) -> Self {
        let mut graph = graph.clone();
        let mut index: HashMap<WorkloadId, usize> = HashMap::new();
        for (i, n) in graph.nodes.iter().enumerate() {
            index.insert(n.id.clone(), i);
        }
        for e in graph.edges.clone() {
            for id in [&e.edge.client, &e.edge.server] {
                if !index.contains_key(id) {
                    index.insert(id.clone(), graph.nodes.len());
                    graph.nodes.push(NodeView::new(id.clone()));
                }
            }
        }
        let n = graph.nodes.len();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in &graph.edges {
            if let (Some(&a), Some(&b)) = (index.get(&e.edge.client), index.get(&e.edge.server))
                && a != b
            {
                succ[a].push(b);
                pred[b].push(a);
            }
        }
        // Break cycles: edges that close a cycle in a depth-first search
        // (from nodes in a stable order) are left out of the layering.
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| {
            (pred[*a].len(), &graph.nodes[*a].id).cmp(&(pred[*b].len(), &graph.nodes[*b].id))
        });
        let mut state = vec![0u8; n]; // 0 new, 1 on the stack, 2 done
        let mut forward: Vec<Vec<usize>> = vec![Vec::new(); n];
        for &start in &order {
            if state[start] != 0 {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            state[start] = 1;
            while let Some(top) = stack.last_mut() {
                let (v, i) = *top;
                if let Some(&w) = succ[v].get(i) {
                    top.1 += 1;
                    match state[w] {
                        0 => {
                            forward[v].push(w);
                            state[w] = 1;
                            stack.push((w, 0));
                        }
                        2 => forward[v].push(w),
                        _ => {} // a back edge
                    }
                } else {
                    state[v] = 2;
                    stack.pop();
                }
            }
        }
        // Columns: one right of the furthest caller (longest path).
        let mut indegree = vec![0usize; n];
        for targets in &forward {
            for &w in targets {
                indegree[w] += 1;
            }
        }
        let mut column = vec![0usize; n];
        let mut queue: std::collections::VecDeque<usize> = order
            .iter()
            .copied()
            .filter(|v| indegree[*v] == 0)
            .collect();
        while let Some(v) = queue.pop_front() {
            for &w in &forward[v] {
                column[w] = column[w].max(column[v] + 1);
                indegree[w] -= 1;
                if indegree[w] == 0 {
                    queue.push_back(w);
                }
            }
        }
        // Long chains would make a picture hundreds of columns wide: past
        // about 0.6·√n columns (a node box is some five times wider than
        // tall, so this keeps the picture near a screen's shape) ranks are
        // squeezed into fewer columns, in order: a caller is never right of
        // what it calls, and some calls then stay within a column.
        let ranks = column.iter().copied().max().map_or(0, |m| m + 1);
        let max_columns = ((n as f64).sqrt() * 0.6).ceil().max(8.0) as usize;
        if ranks > max_columns {
            for c in &mut column {
                *c = *c * max_columns / ranks;
            }
        }
        let width = column.iter().copied().max().map_or(0, |m| m + 1);
        let mut columns: Vec<Vec<usize>> = vec![Vec::new(); width];
        for v in 0..n {
            columns[column[v]].push(v);
        }
        // Order within columns: namespace first, then the mean row of
        // neighbours, sweeping right and left.
        for col in &mut columns {
            col.sort_by(|a, b| {
                (&graph.nodes[*a].namespace, &graph.nodes[*a].id)
                    .cmp(&(&graph.nodes[*b].namespace, &graph.nodes[*b].id))
            });
        }
        let mut row = vec![0usize; n];
        let set_rows = |columns: &Vec<Vec<usize>>, row: &mut Vec<usize>| {
            for col in columns {
                for (i, &v) in col.iter().enumerate() {
                    row[v] = i;
                }
            }
        };
        set_rows(&columns, &mut row);
        for sweep in 0..SWEEPS {
            let rightward = sweep % 2 == 0;
            let range: Vec<usize> = if rightward {
                (1..width).collect()
            } else {
                (0..width.saturating_sub(1)).rev().collect()
            };
            for c in range {
                let neighbours = if rightward { &pred } else { &succ };
                let mut keyed: Vec<(String, f64, usize)> = columns[c]
                    .iter()
                    .map(|&v| {
                        let near: Vec<f64> = neighbours[v]
                            .iter()
                            .filter(|&&u| column[u] != c)
                            .map(|&u| row[u] as f64)
                            .collect();
                        let bary = if near.is_empty() {
                            row[v] as f64
                        } else {
                            near.iter().sum::<f64>() / near.len() as f64
                        };
                        (graph.nodes[v].namespace.clone(), bary, v)
                    })
                    .collect();
                keyed.sort_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then(a.1.total_cmp(&b.1))
                        .then(graph.nodes[a.2].id.cmp(&graph.nodes[b.2].id))
                });
                columns[c] = keyed.into_iter().map(|k| k.2).collect();
                for (i, &v) in columns[c].iter().enumerate() {
                    row[v] = i;
                }
            }
        }
        // Bands: as many rows as the namespace has workloads in its fullest
        // column; in each column its workloads are centred in its band.
        let mut need: BTreeMap<&str, usize> = BTreeMap::new();
        for col in &columns {
            let mut here: BTreeMap<&str, usize> = BTreeMap::new();
            for &v in col {
                *here.entry(graph.nodes[v].namespace.as_str()).or_default() += 1;
            }
            for (ns, k) in here {
                let rows = need.entry(ns).or_default();
                *rows = (*rows).max(k);
            }
        }
        let mut bands = Vec::new();
        let mut band_of: HashMap<&str, (usize, f64)> = HashMap::new();
        let mut top = MARGIN + LEGEND_H;
        for (ns, rows) in need {
            let height = BAND_HEAD + rows as f64 * (NODE_H + ROW_GAP) - ROW_GAP + BAND_PAD;
            band_of.insert(ns, (rows, top + BAND_HEAD));
            bands.push(Band {
                namespace: ns.to_string(),
                top,
                height,
            });
            top += height + BAND_GAP;
        }
        let height = if bands.is_empty() {
            2.0 * MARGIN + LEGEND_H
        } else {
            top - BAND_GAP + MARGIN
        };
        let mut y = vec![0.0; n];
        for col in &columns {
            let mut start = 0;
            while start < col.len() {
                let ns = graph.nodes[col[start]].namespace.as_str();
                let end = start
                    + col[start..]
                        .iter()
                        .take_while(|&&v| graph.nodes[v].namespace == ns)
                        .count();
                let (rows, first) = band_of.get(ns).copied().unwrap_or((0, MARGIN));
                let offset = (rows.saturating_sub(end - start)) as f64 / 2.0;
                for (i, &v) in col[start..end].iter().enumerate() {
                    y[v] = first + (offset + i as f64) * (NODE_H + ROW_GAP);
                }
                start = end;
            }
        }
        let placed = (0..n)
            .map(|v| Placed {
                column: column[v],
                y: y[v],
            })
            .collect();
        Picture {
            graph,
            placed,
            columns,
            index,
            bands,
            height,
        }
    }

    /// How many workloads.
    pub fn nodes(&self) -> usize {
        self.graph.nodes.len()
    }

    /// How many calls.
    pub fn edges(&self) -> usize {
        self.graph.edges.len()
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (f64, f64) {
        let cols = self.columns.len().max(1) as f64;
        (
            (2.0 * MARGIN + cols * NODE_W + (cols - 1.0) * COL_GAP).max(720.0),
            self.height,
        )
    }

    /// The top-left corner of a node's box.
    fn corner(&self, v: usize) -> (f64, f64) {
        let p = &self.placed[v];
        (MARGIN + p.column as f64 * (NODE_W + COL_GAP), p.y)
    }

    /// The picture as SVG.
    pub fn svg(&self) -> String {
        let (w, h) = self.size();
        let mut out = String::with_capacity(512 + 400 * (self.nodes() + self.edges()));
        let _ = write!(
            out,
            r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, Verdana, sans-serif" class="ibac-graph">"##
        );
        out.push_str(r##"<defs>
<marker id="arrow-allowed" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="8" markerHeight="8" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#2e7d32"/></marker>
<marker id="arrow-would-be-blocked" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10" fill="none" stroke="#e65100" stroke-width="1.6"/></marker>
<marker id="arrow-blocked" viewBox="0 0 10 10" refX="5" refY="5" markerWidth="10" markerHeight="10" orient="auto"><path d="M1,1 L9,9 M9,1 L1,9" stroke="#c62828" stroke-width="2.2"/></marker>
</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##);
        self.legend(&mut out, w);
        out.push_str(r#"<g class="namespaces">"#);
        for band in &self.bands {
            let _ = write!(
                out,
                r##"<g data-namespace="{ns}"><rect x="{x:.0}" y="{top:.1}" width="{width:.0}" height="{height:.1}" rx="10" fill="#f7f9fa" stroke="#dfe5e8"/><text x="{tx:.0}" y="{ty:.1}" font-size="14" fill="#546e7a">namespace {label}</text></g>"##,
                ns = escape(&band.namespace),
                x = MARGIN / 2.0,
                top = band.top,
                width = w - MARGIN,
                height = band.height,
                tx = MARGIN / 2.0 + 12.0,
                ty = band.top + 20.0,
                label = if band.namespace.is_empty() {
                    "(none)".to_string()
                } else {
                    escape(&band.namespace)
                },
            );
        }
        out.push_str("</g>\n");
        out.push_str(r#"<g class="edges">"#);
        for e in &self.graph.edges {
            let (Some(&a), Some(&b)) = (
                self.index.get(&e.edge.client),
                self.index.get(&e.edge.server),
            ) else {
                continue;
            };
            let (ax, ay) = self.corner(a);
            let (bx, by) = self.corner(b);
            let (x1, y1) = (ax + NODE_W, ay + NODE_H / 2.0);
            let (x2, y2) = (bx, by + NODE_H / 2.0);
            let path = if x2 > x1 {
                let dx = (x2 - x1) / 2.0;
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{y1:.1} {:.1},{y2:.1} {x2:.1},{y2:.1}",
                    x1 + dx,
                    x2 - dx
                )
            } else {
                // Back or same-column edge: loop above, into the left side.
                let lift = NODE_H * 1.2;
                format!(
                    "M{x1:.1},{y1:.1} C{:.1},{:.1} {:.1},{:.1} {x2:.1},{y2:.1}",
                    x1 + COL_GAP / 2.0,
                    y1.min(y2) - lift,
                    x2 - COL_GAP / 2.0,
                    y1.min(y2) - lift
                )
            };
            let (colour, dash, marker) = match e.edge.verdict.as_str() {
                "allowed" => ("#2e7d32", "", "arrow-allowed"),
                "blocked" => ("#c62828", r#" stroke-dasharray="2 5""#, "arrow-blocked"),
                _ => (
                    "#e65100",
                    r#" stroke-dasharray="9 6""#,
                    "arrow-would-be-blocked",
                ),
            };
            // A wide, invisible copy takes the clicks that a 2-pixel line would miss.
            let _ = write!(
                out,
                r##"<path class="edge-hit" data-client="{client}" data-server="{server}" d="{path}" fill="none" stroke="#000" stroke-opacity="0" stroke-width="12"/>"##,
                client = escape(e.edge.client.as_str()),
                server = escape(e.edge.server.as_str()),
            );
            if let Some(m) = &e.mismatch {
                // A wide purple halo under the line: what the enforcers did
                // is not what the line says.
                let _ = write!(
                    out,
                    r##"<path class="edge-not-in-force" d="{path}" fill="none" stroke="#6a1b9a" stroke-opacity="0.45" stroke-width="8"><title>{message}</title></path>"##,
                    message = escape(&m.message),
                );
            }
            let _ = write!(
                out,
                r#"<path class="edge {verdict}" data-client="{client}" data-server="{server}" data-verdict="{verdict}" d="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash} marker-end="url(#{marker})"><title>{client} → {server}: {verdict}</title></path>"#,
                verdict = e.edge.verdict.as_str(),
                client = escape(e.edge.client.as_str()),
                server = escape(e.edge.server.as_str()),
            );
            out.push('\n');
        }
        out.push_str("</g>\n<g class=\"nodes\">");
        for (v, node) in self.graph.nodes.iter().enumerate() {
            let (x, y) = self.corner(v);
            let protected = node.server.as_ref().is_some_and(|s| s.protected);
            let client = node.client.map_or("", ClientStatus::as_str);
            let stroke = match client {
                "some-blocked" => "#c62828",
                "some-would-be-blocked" => "#e65100",
                _ => "#37474f",
            };
            let _ = write!(
                out,
                r#"<g class="node{prot}" data-id="{id}" data-namespace="{ns}" data-protected="{protected}" data-client="{client}" transform="translate({x:.1},{y:.1})"><title>{id}{title_prot}</title><rect width="{NODE_W}" height="{NODE_H}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="2"/>"#,
                prot = if protected { " protected" } else { "" },
                id = escape(node.id.as_str()),
                ns = escape(&node.namespace),
                title_prot = if protected { " (protected)" } else { "" },
                fill = namespace_tint(&node.namespace),
            );
            if node.registered && !node.in_force {
                // A dashed purple outer border: its proxy is behind, failing
                // or silent, so what is drawn for it is not in force.
                let _ = write!(
                    out,
                    r##"<rect class="not-in-force" x="-4" y="-4" width="{:.0}" height="{:.0}" rx="10" fill="none" stroke="#6a1b9a" stroke-width="2.5" stroke-dasharray="6 4"><title>{} (verdicts not in force)</title></rect>"##,
                    NODE_W + 8.0,
                    NODE_H + 8.0,
                    escape(node.id.as_str())
                );
            }
            if protected {
                // A second border and a lock: protection reads without colour.
                let _ = write!(
                    out,
                    r##"<rect x="3" y="3" width="{:.0}" height="{:.0}" rx="6" fill="none" stroke="#1a237e" stroke-width="1.5"/><g transform="translate({:.0},9)"><rect x="0" y="9" width="16" height="12" rx="2" fill="#1a237e"/><path d="M3,9 v-3 a5,5 0 0 1 10,0 v3" fill="none" stroke="#1a237e" stroke-width="2"/></g>"##,
                    NODE_W - 6.0,
                    NODE_H - 6.0,
                    NODE_W - 26.0
                );
            }
            let marker = match client {
                _ if (node.registered && !node.in_force) => "⚠ ",
                "some-blocked" => "✕ ",
                "some-would-be-blocked" => "! ",
                _ => "",
            };
            let _ = write!(
                out,
                r##"<text x="12" y="20" font-size="14" font-weight="bold" fill="#212121">{marker}{name}</text><text x="12" y="37" font-size="11" fill="#546e7a">{ns}</text></g>"##,
                name = escape(&fit(&node.name, if protected { 22 } else { 26 })),
                ns = escape(&fit(&node.namespace, 30)),
            );
            out.push('\n');
        }
        out.push_str("</g>\n</svg>\n");
        out
    }

    fn legend(&self, out: &mut String, width: f64) {
        let y = MARGIN / 2.0 + 10.0;
        let items = [
            ("allowed", "#2e7d32", "", "arrow-allowed"),
            (
                "would be blocked",
                "#e65100",
                r#" stroke-dasharray="9 6""#,
                "arrow-would-be-blocked",
            ),
            (
                "blocked",
                "#c62828",
                r#" stroke-dasharray="2 5""#,
                "arrow-blocked",
            ),
        ];
        out.push_str(r##"<g class="legend" font-size="12" fill="#37474f">"##);
        for (i, (label, colour, dash, marker)) in items.iter().enumerate() {
            let x = MARGIN + i as f64 * 200.0;
            let _ = write!(
                out,
                r#"<path d="M{x:.0},{y:.0} h50" stroke="{colour}" stroke-width="2"{dash} marker-end="url(#{marker})"/><text x="{:.0}" y="{:.0}">{label}</text>"#,
                x + 66.0,
                y + 4.0
            );
        }
        let _ = write!(
            out,
            r##"<g transform="translate({:.0},{:.0})"><rect x="0" y="4" width="12" height="9" rx="2" fill="#1a237e"/><path d="M2,4 v-2 a4,4 0 0 1 8,0 v2" fill="none" stroke="#1a237e" stroke-width="1.6"/></g><text x="{:.0}" y="{:.0}">protected server</text>"##,
            (MARGIN + 610.0).min(width - 160.0),
            y - 8.0,
            (MARGIN + 630.0).min(width - 140.0),
            y + 4.0
        );
        out.push_str("</g>\n");
    }
}

/// A light fill per namespace, so that namespaces read as groups.
fn namespace_tint(namespace: &str) -> &'static str {
    const TINTS: [&str; 8] = [
        "#e3f2fd", "#f3e5f5", "#e8f5e9", "#fff8e1", "#e0f7fa", "#fce4ec", "#f1f8e9", "#ede7f6",
    ];
    let hash = namespace.bytes().fold(2_166_136_261u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(16_777_619)
    });
    TINTS[hash as usize % TINTS.len()]
}
