//! Drawing the access graph: one picture for `ibac network-mapper
//! visualize`, the web page and its export.
//!
//! The layout is layered, left to right: callers left of what they call.
//! General-purpose layout crates either do not lay out graphs of thousands
//! of nodes in reasonable time or cannot be kept from panicking on cycles;
//! those that route edges (a dot port, dagre ports) bend lines around
//! dummy nodes without promising that no line crosses a box, and know
//! nothing of namespace bands, while the ones that only place nodes
//! (Sugiyama coordinates) leave routing to us anyway. Service graphs need
//! little: cycles are broken by a depth-first
//! search, each node goes one column right of its furthest caller, and
//! nodes within a column are ordered by the mean row of their neighbours (a
//! few sweeps each way). Each namespace is a band across the columns, so
//! that a namespace reads as one group. Linear in the graph's size per
//! sweep. Calls are then routed around the boxes by [`route`], through
//! the channels between columns and the gaps between boxes.
//!
//! The SVG says what each mark means without colour: allowed calls are
//! solid lines with an arrow, would-be-blocked ones dashed with an open
//! arrow, blocked ones dotted with a cross; protected servers carry a lock
//! and a double border. Elements carry `data-*` attributes so that the page
//! can make them clickable. PNG is the same SVG rasterized.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use ibac_api::graph::GraphView;
use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::ClientStatus;

mod route;

/// What a picture keeps of a workload: the few marks it draws, taken from
/// the graph once, so that a picture owes nothing to the graph it came from
/// (the page rasterizes it on another thread) and holds none of the
/// details (intents, calls, suggestions) it never draws.
#[derive(Clone, Debug)]
struct Workload {
    id: WorkloadId,
    /// Whether it is a protected server: a lock and a double border.
    protected: bool,
    /// How its calls fare: the colour of its border and a marker.
    client: Option<ClientStatus>,
    /// A registered workload whose proxy does not enforce the published
    /// policy: its verdicts as drawn are not in force.
    lagging: bool,
}

/// What a picture keeps of a call.
#[derive(Clone, Debug)]
struct Call {
    client: WorkloadId,
    server: WorkloadId,
    verdict: Verdict,
    /// Where observed verdicts disagree with the policy: why, in one sentence.
    mismatch: Option<String>,
}

/// The workloads and calls of `graph` to draw. Calls naming a workload the
/// graph does not list (a graph written by hand, or cut short) add it, so
/// that every call has two ends.
fn marks(graph: &GraphView) -> (Vec<Workload>, Vec<Call>) {
    let mut workloads: Vec<Workload> = graph
        .nodes
        .iter()
        .map(|n| Workload {
            id: n.id.clone(),
            protected: n.server.as_ref().is_some_and(|s| s.protected),
            client: n.client,
            lagging: n.registered && !n.in_force,
        })
        .collect();
    let mut known: std::collections::HashSet<WorkloadId> =
        workloads.iter().map(|w| w.id.clone()).collect();
    let calls = graph
        .edges
        .iter()
        .map(|e| {
            for id in [&e.edge.client, &e.edge.server] {
                if known.insert(id.clone()) {
                    workloads.push(Workload {
                        id: id.clone(),
                        protected: false,
                        client: None,
                        lagging: false,
                    });
                }
            }
            Call {
                client: e.edge.client.clone(),
                server: e.edge.server.clone(),
                verdict: e.edge.verdict,
                mismatch: e.mismatch.as_ref().map(|m| m.message.clone()),
            }
        })
        .collect();
    (workloads, calls)
}

/// Drawing failed.
#[derive(Debug, thiserror::Error)]
pub enum DrawError {
    /// Rasterizing failed.
    #[error("{0}")]
    Png(String),
}

const NODE_W: f64 = 250.0;
/// The least height of a box; a box with many calls is taller, so that
/// its ports stay [`route::PORT_GAP`] apart.
const NODE_H: f64 = 44.0;
/// The least width of a channel between columns; crowded ones are wider.
const COL_GAP: f64 = 96.0;
/// Room between boxes of a column: calls cross a column there.
const ROW_GAP: f64 = 28.0;
const MARGIN: f64 = 40.0;
const LEGEND_H: f64 = 50.0;
/// Text sizes: the demo drawn to fit a 1600 × 1000 window still shows
/// every label at 11 pixels or more.
const FONT: f64 = 16.0;
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
    /// The height of its box.
    h: f64,
}

/// A namespace's band.
#[derive(Clone, Debug)]
struct Band {
    namespace: String,
    top: f64,
    height: f64,
    /// Workloads in its fullest column.
    rows: usize,
}

/// A laid-out graph, ready to write as SVG or PNG.
#[derive(Clone, Debug)]
pub struct Picture {
    workloads: Vec<Workload>,
    calls: Vec<Call>,
    placed: Vec<Placed>,
    bands: Vec<Band>,
    height: f64,
    routing: route::Routing,
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
    /// Lays out `graph`.
    pub fn layout(graph: &GraphView) -> Self {
        let (workloads, calls) = marks(graph);
        Self::layout_spaced(workloads, calls, ROW_GAP)
    }

    /// Lays out `graph` for a view `aspect` times as wide as it is tall:
    /// a picture wider than that gets more room between the rows of its
    /// bands (at most three box heights more), so that once fitted to the
    /// view it fills it instead of leaving white above and below. The page
    /// asks for this; exports and `visualize` use [`Picture::layout`].
    pub fn layout_for_view(graph: &GraphView, aspect: f64) -> Self {
        let (workloads, calls) = marks(graph);
        let first = Self::layout_spaced(workloads, calls, ROW_GAP);
        let (w, h) = first.size();
        if !(0.2..=20.0).contains(&aspect) || w / h <= aspect {
            return first;
        }
        let gaps: usize = first.bands.iter().map(|b| b.rows.saturating_sub(1)).sum();
        if gaps == 0 {
            return first;
        }
        let more = ((w / aspect - h) / gaps as f64).min(3.0 * NODE_H);
        Self::layout_spaced(first.workloads, first.calls, ROW_GAP + more)
    }

    fn layout_spaced(workloads: Vec<Workload>, calls: Vec<Call>, row_gap: f64) -> Self {
        let index: HashMap<&WorkloadId, usize> = workloads
            .iter()
            .enumerate()
            .map(|(i, w)| (&w.id, i))
            .collect();
        let n = workloads.len();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut pred: Vec<Vec<usize>> = vec![Vec::new(); n];
        for e in &calls {
            if let (Some(&a), Some(&b)) = (index.get(&e.client), index.get(&e.server))
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
            (pred[*a].len(), &workloads[*a].id).cmp(&(pred[*b].len(), &workloads[*b].id))
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
                (workloads[*a].id.namespace(), &workloads[*a].id)
                    .cmp(&(workloads[*b].id.namespace(), &workloads[*b].id))
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
                let mut keyed: Vec<(&str, f64, usize)> = columns[c]
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
                        (workloads[v].id.namespace(), bary, v)
                    })
                    .collect();
                keyed.sort_by(|a, b| {
                    a.0.cmp(b.0)
                        .then(a.1.total_cmp(&b.1))
                        .then(workloads[a.2].id.cmp(&workloads[b.2].id))
                });
                columns[c] = keyed.into_iter().map(|k| k.2).collect();
                for (i, &v) in columns[c].iter().enumerate() {
                    row[v] = i;
                }
            }
        }
        // Boxes grow with their calls, so that ports stay apart.
        let mut degree = vec![(0usize, 0usize); n];
        let mut ends: Vec<Option<(usize, usize)>> = Vec::with_capacity(calls.len());
        for e in &calls {
            let pair = index
                .get(&e.client)
                .copied()
                .zip(index.get(&e.server).copied());
            if let Some((a, b)) = pair {
                degree[a].0 += 1;
                degree[b].1 += 1;
            }
            ends.push(pair);
        }
        let box_h: Vec<f64> = degree
            .iter()
            .map(|&(o, i)| NODE_H.max(route::PORT_GAP * (o.max(i) + 1) as f64))
            .collect();
        // Bands: as tall as the namespace's workloads in its fullest
        // column; in each column its workloads are centred in its band.
        let mut need: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
        for col in &columns {
            let mut here: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
            for &v in col {
                let e = here.entry(workloads[v].id.namespace()).or_default();
                e.0 += box_h[v] + row_gap;
                e.1 += 1;
            }
            for (ns, (k, count)) in here {
                let rows = need.entry(ns).or_default();
                rows.0 = rows.0.max(k - row_gap);
                rows.1 = rows.1.max(count);
            }
        }
        let mut bands = Vec::new();
        let mut band_of: HashMap<&str, (f64, f64)> = HashMap::new();
        let mut top = MARGIN + LEGEND_H;
        for (ns, (rows, count)) in need {
            let height = BAND_HEAD + rows + BAND_PAD;
            band_of.insert(ns, (rows, top + BAND_HEAD));
            bands.push(Band {
                namespace: ns.to_string(),
                top,
                height,
                rows: count,
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
                let ns = workloads[col[start]].id.namespace();
                let end = start
                    + col[start..]
                        .iter()
                        .take_while(|&&v| workloads[v].id.namespace() == ns)
                        .count();
                let (rows, first) = band_of.get(ns).copied().unwrap_or((0.0, MARGIN));
                let group: f64 = col[start..end]
                    .iter()
                    .map(|&v| box_h[v] + row_gap)
                    .sum::<f64>()
                    - row_gap;
                let mut at = first + (rows - group).max(0.0) / 2.0;
                for &v in &col[start..end] {
                    y[v] = at;
                    at += box_h[v] + row_gap;
                }
                start = end;
            }
        }
        let placed: Vec<Placed> = (0..n)
            .map(|v| Placed {
                column: column[v],
                y: y[v],
                h: box_h[v],
            })
            .collect();
        let slots: Vec<route::Slot> = placed
            .iter()
            .map(|p| route::Slot {
                column: p.column,
                y: p.y,
                height: p.h,
            })
            .collect();
        let routing = route::route(
            &slots,
            width,
            &ends,
            NODE_W,
            (MARGIN + LEGEND_H, height - MARGIN / 2.0),
            (COL_GAP, MARGIN),
        );
        Picture {
            workloads,
            calls,
            placed,
            bands,
            height,
            routing,
        }
    }

    /// How many workloads.
    pub fn nodes(&self) -> usize {
        self.workloads.len()
    }

    /// How many calls.
    pub fn edges(&self) -> usize {
        self.calls.len()
    }

    /// Width and height in pixels.
    pub fn size(&self) -> (f64, f64) {
        (self.routing.width.max(760.0), self.height)
    }

    /// The top-left corner of a node's box.
    fn corner(&self, v: usize) -> (f64, f64) {
        let p = &self.placed[v];
        let x = self.routing.xs.get(p.column).copied().unwrap_or(MARGIN);
        (x, p.y)
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
<marker id="arrow-allowed" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="13" markerHeight="13" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#2e7d32"/></marker>
<marker id="arrow-would-be-blocked" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="13" markerHeight="13" orient="auto-start-reverse"><path d="M0.8,0.8 L9.2,5 L0.8,9.2" fill="none" stroke="#e65100" stroke-width="1.8"/></marker>
<marker id="arrow-blocked" viewBox="0 0 10 10" refX="10" refY="5" markerUnits="userSpaceOnUse" markerWidth="13" markerHeight="13" orient="auto"><path d="M1,1 L9,9 M9,1 L1,9" stroke="#c62828" stroke-width="2.6" stroke-linecap="round"/></marker>
</defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##);
        self.legend(&mut out, w);
        out.push_str(r#"<g class="namespaces">"#);
        for band in &self.bands {
            let _ = write!(
                out,
                r##"<g data-namespace="{ns}"><rect x="{x:.0}" y="{top:.1}" width="{width:.0}" height="{height:.1}" rx="10" fill="#f7f9fa" stroke="#dfe5e8"/><text x="{tx:.0}" y="{ty:.1}" font-size="{FONT}" fill="#455a64">namespace {label}</text></g>"##,
                ns = escape(&band.namespace),
                x = MARGIN / 2.0,
                top = band.top,
                width = w - MARGIN,
                height = band.height,
                tx = MARGIN / 2.0 + 12.0,
                ty = band.top + 21.0,
                label = if band.namespace.is_empty() {
                    "(none)".to_string()
                } else {
                    escape(&band.namespace)
                },
            );
        }
        out.push_str("</g>\n");
        out.push_str(r#"<g class="edges">"#);
        for (i, e) in self.calls.iter().enumerate() {
            let Some(Some(points)) = self.routing.paths.get(i) else {
                continue;
            };
            let mut path = String::with_capacity(16 * points.len());
            for (k, (x, y)) in points.iter().enumerate() {
                let _ = write!(path, "{}{x:.1},{y:.1}", if k == 0 { "M" } else { " L" });
            }
            let (colour, dash, marker) = verdict_style(e.verdict);
            // A wide, invisible copy takes the clicks that a 2-pixel line would miss.
            let _ = write!(
                out,
                r##"<path class="edge-hit" data-client="{client}" data-server="{server}" d="{path}" fill="none" stroke="#000" stroke-opacity="0" stroke-width="12"/>"##,
                client = escape(e.client.as_str()),
                server = escape(e.server.as_str()),
            );
            if let Some(message) = &e.mismatch {
                // A wide purple halo under the line: what the enforcers did
                // is not what the line says.
                let _ = write!(
                    out,
                    r##"<path class="edge-not-in-force" d="{path}" fill="none" stroke="#6a1b9a" stroke-opacity="0.45" stroke-width="8"><title>{message}</title></path>"##,
                    message = escape(message),
                );
            }
            let _ = write!(
                out,
                r#"<path class="edge {verdict}" data-client="{client}" data-server="{server}" data-verdict="{verdict}" d="{path}" fill="none" stroke="{colour}" stroke-linejoin="round"{dash} marker-end="url(#{marker})"><title>{client} → {server}: {verdict}</title></path>"#,
                verdict = e.verdict.as_str(),
                client = escape(e.client.as_str()),
                server = escape(e.server.as_str()),
            );
            out.push('\n');
        }
        out.push_str("</g>\n<g class=\"nodes\">");
        for (v, node) in self.workloads.iter().enumerate() {
            let (x, y) = self.corner(v);
            let h = self.placed[v].h;
            let protected = node.protected;
            let stroke = match node.client {
                Some(ClientStatus::SomeBlocked) => "#c62828",
                Some(ClientStatus::SomeWouldBeBlocked) => "#e65100",
                Some(ClientStatus::AllAllowed) | None => "#37474f",
            };
            let _ = write!(
                out,
                r#"<g class="node{prot}" data-id="{id}" data-namespace="{ns}" data-protected="{protected}" data-client="{client}" transform="translate({x:.1},{y:.1})"><title>{id}{title_prot}</title><rect width="{NODE_W}" height="{h}" rx="8" fill="{fill}" stroke="{stroke}" stroke-width="2"/>"#,
                prot = if protected { " protected" } else { "" },
                client = node.client.map_or("", ClientStatus::as_str),
                id = escape(node.id.as_str()),
                ns = escape(node.id.namespace()),
                title_prot = if protected { " (protected)" } else { "" },
                fill = namespace_tint(node.id.namespace()),
            );
            if node.lagging {
                // A dashed purple outer border: its proxy is behind, failing
                // or silent, so what is drawn for it is not in force.
                let _ = write!(
                    out,
                    r##"<rect class="not-in-force" x="-4" y="-4" width="{:.0}" height="{:.0}" rx="10" fill="none" stroke="#6a1b9a" stroke-width="2.5" stroke-dasharray="6 4"><title>{} (verdicts not in force)</title></rect>"##,
                    NODE_W + 8.0,
                    h + 8.0,
                    escape(node.id.as_str())
                );
            }
            if protected {
                // A second border and a lock: protection reads without colour.
                let _ = write!(
                    out,
                    r##"<rect x="3" y="3" width="{:.0}" height="{:.0}" rx="6" fill="none" stroke="#1a237e" stroke-width="1.5"/><g transform="translate({:.0},9)"><rect x="0" y="9" width="16" height="12" rx="2" fill="#1a237e"/><path d="M3,9 v-3 a5,5 0 0 1 10,0 v3" fill="none" stroke="#1a237e" stroke-width="2"/></g>"##,
                    NODE_W - 6.0,
                    h - 6.0,
                    NODE_W - 24.0
                );
            }
            let marker = match node.client {
                _ if node.lagging => "⚠ ",
                Some(ClientStatus::SomeBlocked) => "✕ ",
                Some(ClientStatus::SomeWouldBeBlocked) => "! ",
                Some(ClientStatus::AllAllowed) | None => "",
            };
            let _ = write!(
                out,
                // The namespace is the band's label, so the box holds the
                // name alone, large enough to read when the picture fits.
                r##"<text x="12" y="{ty:.1}" font-size="{FONT}" font-weight="bold" fill="#212121">{marker}{name}</text></g>"##,
                ty = h / 2.0 + FONT * 0.36,
                name = escape(&fit(node.id.name(), if protected { 21 } else { 23 })),
            );
            out.push('\n');
        }
        out.push_str("</g>\n</svg>\n");
        out
    }

    fn legend(&self, out: &mut String, width: f64) {
        let y = MARGIN / 2.0 + 10.0;
        let items = [
            ("allowed", Verdict::Allowed),
            ("would be blocked", Verdict::WouldBeBlocked),
            ("blocked", Verdict::Blocked),
        ]
        .map(|(label, verdict)| {
            let (colour, dash, marker) = verdict_style(verdict);
            (label, colour, dash, marker)
        });
        out.push_str(r##"<g class="legend" font-size="16" fill="#263238">"##);
        for (i, (label, colour, dash, marker)) in items.iter().enumerate() {
            let x = MARGIN + i as f64 * 250.0;
            let _ = write!(
                out,
                r#"<path d="M{x:.0},{y:.0} h50" stroke="{colour}"{dash} marker-end="url(#{marker})"/><text x="{:.0}" y="{:.0}">{label}</text>"#,
                x + 66.0,
                y + 4.0
            );
        }
        let _ = write!(
            out,
            r##"<g transform="translate({:.0},{:.0})"><rect x="0" y="4" width="12" height="9" rx="2" fill="#1a237e"/><path d="M2,4 v-2 a4,4 0 0 1 8,0 v2" fill="none" stroke="#1a237e" stroke-width="1.6"/></g><text x="{:.0}" y="{:.0}">protected server</text>"##,
            (MARGIN + 760.0).min(width - 190.0),
            y - 8.0,
            (MARGIN + 780.0).min(width - 170.0),
            y + 4.0
        );
        out.push_str("</g>\n");
    }

    /// The picture as PNG, rasterized from the SVG with the system's fonts.
    /// Large graphs are scaled down to at most 16,384 pixels a side.
    pub fn png(&self) -> Result<Vec<u8>, DrawError> {
        use resvg::{tiny_skia, usvg};

        let mut options = usvg::Options::default();
        options.fontdb_mut().load_system_fonts();
        if options.fontdb_mut().is_empty() {
            return Err(DrawError::Png(
                "no fonts on this system to write labels with: install one (Debian: apt-get install fonts-dejavu-core), or draw SVG".into(),
            ));
        }
        let tree = usvg::Tree::from_str(&self.svg(), &options)
            .map_err(|e| DrawError::Png(e.to_string()))?;
        let (w, h) = self.size();
        let scale = (16_384.0 / w.max(h)).min(1.0).min((1.0e8 / (w * h)).sqrt());
        let (pw, ph) = ((w * scale).ceil() as u32, (h * scale).ceil() as u32);
        let mut pixmap = tiny_skia::Pixmap::new(pw.max(1), ph.max(1))
            .ok_or_else(|| DrawError::Png("the picture is too large".into()))?;
        resvg::render(
            &tree,
            tiny_skia::Transform::from_scale(scale as f32, scale as f32),
            &mut pixmap.as_mut(),
        );
        pixmap
            .encode_png()
            .map_err(|e| DrawError::Png(e.to_string()))
    }
}

/// How a verdict is drawn: colour, the line's width and pattern, and the
/// head. Pattern and head tell verdicts apart without colour: allowed is
/// solid with a filled arrow, would-be-blocked dashed with an open arrow,
/// blocked heavy round dots with a cross.
fn verdict_style(verdict: Verdict) -> (&'static str, &'static str, &'static str) {
    match verdict {
        Verdict::Allowed => ("#2e7d32", r#" stroke-width="2.2""#, "arrow-allowed"),
        Verdict::Blocked => (
            "#c62828",
            r#" stroke-width="3.5" stroke-dasharray="0.1 7" stroke-linecap="round""#,
            "arrow-blocked",
        ),
        Verdict::WouldBeBlocked => (
            "#e65100",
            r#" stroke-width="2.2" stroke-dasharray="9 6""#,
            "arrow-would-be-blocked",
        ),
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

/// Columns of a picture, for tests: which column each node is in.
pub fn columns_of(picture: &Picture) -> BTreeMap<String, usize> {
    picture
        .workloads
        .iter()
        .zip(&picture.placed)
        .map(|(n, p)| (n.id.to_string(), p.column))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use ibac_api::graph::{EdgeView, Mismatch, MismatchKind, NodeView};
    use ibac_policy::graph::{Blocking, GraphEdge, ServerStatus};

    use super::*;

    fn id(text: &str) -> WorkloadId {
        WorkloadId::parse(text).unwrap()
    }

    fn call(client: &str, server: &str, verdict: Verdict) -> EdgeView {
        EdgeView::new(GraphEdge {
            verdict,
            discovered: true,
            ..GraphEdge::new(&id(client), &id(server))
        })
    }

    fn calls(edges: Vec<EdgeView>) -> GraphView {
        GraphView {
            revision: 1,
            nodes: vec![],
            edges,
        }
    }

    fn edge(c: &str, s: &str, v: Verdict) -> EdgeView {
        call(&format!("{c}.shop"), &format!("{s}.shop"), v)
    }

    /// A protected catalog whose proxy enforces the policy, and its callers.
    fn demo() -> GraphView {
        let mut catalog = NodeView::new(id("catalog.shop"));
        (catalog.registered, catalog.in_force) = (true, true);
        catalog.server = Some(ServerStatus {
            protected: true,
            protection: String::new(),
            blocking: Blocking::Blocking,
        });
        let mut graph = calls(vec![
            edge("load", "front", Verdict::Allowed),
            edge("front", "catalog", Verdict::Allowed),
            edge("front", "checkout", Verdict::WouldBeBlocked),
            edge("checkout", "catalog", Verdict::Blocked),
            edge("rogue", "catalog", Verdict::Blocked),
            edge("catalog", "front", Verdict::WouldBeBlocked), // a cycle
        ]);
        graph.nodes.push(catalog);
        graph
    }

    #[test]
    fn callers_stand_left_of_what_they_call_and_cycles_do_not_hang() {
        let p = Picture::layout(&demo());
        let cols = columns_of(&p);
        assert!(cols["load.shop"] < cols["front.shop"]);
        assert!(cols["front.shop"] < cols["checkout.shop"]);
        assert!(cols["checkout.shop"] < cols["catalog.shop"]);
        assert_eq!(p.nodes(), 5);
    }

    #[test]
    fn boxes_never_overlap() {
        let p = Picture::layout(&demo());
        let boxes: Vec<(f64, f64, f64)> = (0..p.nodes())
            .map(|v| {
                let (x, y) = p.corner(v);
                (x, y, p.placed[v].h)
            })
            .collect();
        for (i, a) in boxes.iter().enumerate() {
            for b in &boxes[i + 1..] {
                let apart = (a.0 - b.0).abs() >= NODE_W || a.1 + a.2 <= b.1 || b.1 + b.2 <= a.1;
                assert!(apart, "{a:?} and {b:?} overlap");
            }
        }
    }

    #[test]
    fn the_svg_marks_verdicts_and_protection_without_colour_and_escapes_text() {
        let mut g = demo();
        g.edges[0].mismatch = Some(Mismatch {
            kind: MismatchKind::Blocked,
            calls: 1,
            message: "refused <script> & more".into(),
        });
        let svg = Picture::layout(&g).svg();
        assert!(svg.contains(r#"data-verdict="blocked""#) && svg.contains("arrow-blocked"));
        assert!(
            svg.contains(r#"stroke-dasharray="9 6""#),
            "would-be-blocked is dashed"
        );
        assert!(svg.contains(r#"class="node protected" data-id="catalog.shop""#));
        assert!(svg.contains("refused &lt;script&gt; &amp; more") && !svg.contains("<script>"));
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(escape("a<b>&\"'\u{7}c"), "a&lt;b&gt;&amp;&quot;&#39;c");
    }

    /// The picture's `data-client` is the status as the wire writes it:
    /// the page reads it back.
    #[test]
    fn client_statuses_are_written_as_on_the_wire() {
        for status in [
            ClientStatus::AllAllowed,
            ClientStatus::SomeWouldBeBlocked,
            ClientStatus::SomeBlocked,
        ] {
            let wire = serde_json::to_value(status).unwrap();
            assert_eq!(wire.as_str(), Some(status.as_str()));
            let mut g = demo();
            g.nodes[0].client = Some(status);
            let svg = Picture::layout(&g).svg();
            assert!(svg.contains(&format!(r#"data-client="{}""#, status.as_str())));
        }
    }

    /// A graph that lists only some of the workloads its calls name (one
    /// written by hand) is drawn with all of them.
    #[test]
    fn calls_naming_unlisted_workloads_add_them() {
        let json = serde_json::json!({
            "revision": 3,
            "nodes": [{"id": "a.x", "name": "a", "namespace": "x", "registered": true, "inForce": true, "client": "all-allowed"}],
            "edges": [{"client": "a.x", "server": "b.x", "verdict": "allowed", "discovered": true, "declared": true, "intents": [], "calls": [], "sources": ["declared"]}],
        });
        let graph: GraphView = serde_json::from_value(json).unwrap();
        let p = Picture::layout(&graph);
        assert_eq!((p.nodes(), p.edges()), (2, 1));
    }

    #[test]
    fn a_large_graph_lays_out_quickly_and_rasterizes() {
        let edges = ibac_api::fixtures::generated_calls(7, 1000, 5000);
        let p = Picture::layout(&calls(edges));
        assert!(p.nodes() > 900);
        let svg = p.svg();
        assert!(svg.len() > 100_000);
    }

    #[test]
    fn a_long_chain_is_folded_into_a_picture_of_screen_shape() {
        let edges = (0..400)
            .map(|i| {
                call(
                    &format!("s{i}.chain"),
                    &format!("s{}.chain", i + 1),
                    Verdict::Allowed,
                )
            })
            .collect();
        let p = Picture::layout(&calls(edges));
        let cols = columns_of(&p);
        for i in 0..400 {
            assert!(cols[&format!("s{i}.chain")] <= cols[&format!("s{}.chain", i + 1)]);
        }
        let (w, h) = p.size();
        let width = cols.values().max().unwrap() + 1;
        assert!(width <= 13, "{width} columns");
        assert!((0.5..4.0).contains(&(w / h)), "{w} x {h}");
    }

    #[test]
    fn each_namespace_is_one_band_holding_all_its_workloads() {
        let edges = [
            ("web.shop", "api.shop"),
            ("api.shop", "db.data"),
            ("api.shop", "cache.data"),
            ("jobs.batch", "db.data"),
            ("web.shop", "auth.shop"),
            ("auth.shop", "users.data"),
        ]
        .iter()
        .map(|(c, s)| call(c, s, Verdict::Allowed))
        .collect();
        let p = Picture::layout(&calls(edges));
        let names: Vec<&str> = p.bands.iter().map(|b| b.namespace.as_str()).collect();
        assert_eq!(names, ["batch", "data", "shop"]);
        for pair in p.bands.windows(2) {
            assert!(pair[0].top + pair[0].height < pair[1].top, "bands overlap");
        }
        for (v, node) in p.workloads.iter().enumerate() {
            let band = p
                .bands
                .iter()
                .find(|b| b.namespace == node.id.namespace())
                .unwrap();
            let (_, y) = p.corner(v);
            assert!(
                y >= band.top && y + p.placed[v].h <= band.top + band.height,
                "{}",
                node.id
            );
        }
        let (_, h) = p.size();
        let last = p.bands.last().unwrap();
        assert!(last.top + last.height <= h);
        let svg = p.svg();
        assert!(svg.contains(">namespace data</text>"));
    }

    #[test]
    fn png_output_is_a_png() {
        // The test command installs a font (fonts-dejavu-core).
        let png = Picture::layout(&demo()).png().unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert!(png.len() > 5_000, "labels and lines were drawn");
    }

    /// A workload whose proxy does not enforce the published policy, and a
    /// call whose observed verdicts disagree with the policy, are drawn so.
    #[test]
    fn what_is_not_in_force_is_marked() {
        let mut g = demo();
        g.nodes[0].in_force = false;
        g.edges[0].mismatch = Some(Mismatch {
            kind: MismatchKind::NotBlocked,
            calls: 3,
            message: "3 calls the policy blocks were let through".into(),
        });
        let svg = Picture::layout(&g).svg();
        assert!(svg.contains(r#"class="not-in-force""#), "{svg}");
        assert!(svg.contains("catalog.shop (verdicts not in force)"));
        assert!(svg.contains(r#"class="edge-not-in-force""#));
        assert!(svg.contains("3 calls the policy blocks were let through"));
        assert!(!Picture::layout(&demo()).svg().contains("not-in-force"));
        // Not registered: no proxy of ours to be behind.
        g.nodes[0].registered = false;
        assert!(
            !Picture::layout(&g)
                .svg()
                .contains(r#"class="not-in-force""#)
        );
    }
}
