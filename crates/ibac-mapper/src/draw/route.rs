//! Edge routing for the layered layout: every call is an orthogonal
//! polyline that runs only through the empty channels between columns and
//! through the gaps between boxes within a column, so no segment ever
//! crosses a box other than its own ends.
//!
//! Why this design: the layout already leaves box-free vertical channels
//! between columns and box-free gaps between the boxes of a column, so a
//! route made of vertical runs inside channels and horizontal runs through
//! gaps avoids every box by construction, with no geometric search. A
//! visibility-graph or grid router would find the same kind of paths at a
//! cost of O(n²) or worse, which 1,000 workloads and 5,000 calls cannot
//! afford; this one is O(E · C + E log E) for E calls and C columns, so the
//! same router serves every size (lanes only get closer in crowded
//! channels, which never breaks the rule). Ports are spread along each
//! box's side, ordered by where the other end lies, so that every arrow
//! head is visible and few lines cross near a box; vertical runs in a
//! channel are ordered by direction and start so that runs which need not
//! cross do not.

use std::collections::HashMap;

/// Space between two ports on one side of a box: more than an arrow head
/// is tall, so heads at one box never overlap.
pub(super) const PORT_GAP: f64 = 17.0;
/// Space between neighbouring vertical runs in a channel.
const LANE: f64 = 8.0;
/// Distance from a box to the nearest run, so that the last horizontal
/// stretch into a box is longer than an arrow head.
const CHANNEL_PAD: f64 = 20.0;
/// The widest a channel grows; past that its runs get closer.
const CHANNEL_MAX: f64 = 420.0;
/// Space between two horizontal runs through one gap.
const TRACK: f64 = 7.0;
/// How many gaps either side of the nearest one a call may move to when
/// the nearest is full.
const SEARCH: usize = 3;
/// Distance kept from a box's border by a run through a gap.
const GAP_INSET: f64 = 5.0;

/// A node's box, before the horizontal placement of columns is known.
#[derive(Clone, Copy, Debug)]
pub(super) struct Slot {
    /// Its column.
    pub column: usize,
    /// The top of its box.
    pub y: f64,
    /// The height of its box.
    pub height: f64,
}

/// Where columns go and how each call runs.
#[derive(Clone, Debug, Default)]
pub(super) struct Routing {
    /// The left side of each column.
    pub xs: Vec<f64>,
    /// The width of the whole picture.
    pub width: f64,
    /// For each call, the points of its polyline (none for a call whose
    /// ends are unknown).
    pub paths: Vec<Option<Vec<(f64, f64)>>>,
}

/// One vertical run of a call in a channel.
struct Run {
    edge: usize,
    /// Its index in the call's list of points (the run is from point
    /// `point` to point `point + 1`).
    point: usize,
    from: f64,
    to: f64,
}

/// Routes `edges` (pairs of indices into `slots`) in a picture of
/// `columns` columns of boxes `node_w` wide, whose boxes lie between `top`
/// and `bottom`. Channels are at least `min_gap` wide, and the outer ones
/// at least `margin`.
pub(super) fn route(
    slots: &[Slot],
    columns: usize,
    edges: &[Option<(usize, usize)>],
    node_w: f64,
    (top, bottom): (f64, f64),
    (min_gap, margin): (f64, f64),
) -> Routing {
    let n = slots.len();
    let centre = |v: usize| slots[v].y + slots[v].height / 2.0;

    // Ports: calls leave on the right side and arrive on the left, spread
    // evenly and ordered by the other end's height.
    let mut outs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut ins: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, e) in edges.iter().enumerate() {
        if let Some((a, b)) = *e {
            outs[a].push(i);
            ins[b].push(i);
        }
    }
    let mut start_y = vec![0.0; edges.len()];
    let mut end_y = vec![0.0; edges.len()];
    for v in 0..n {
        let other = |i: &usize, pick_server: bool| {
            edges[*i].map_or(0.0, |(a, b)| centre(if pick_server { b } else { a }))
        };
        outs[v].sort_by(|x, y| other(x, true).total_cmp(&other(y, true)).then(x.cmp(y)));
        ins[v].sort_by(|x, y| other(x, false).total_cmp(&other(y, false)).then(x.cmp(y)));
        let s = slots[v];
        for (k, &i) in outs[v].iter().enumerate() {
            start_y[i] = s.y + s.height * (k + 1) as f64 / (outs[v].len() + 1) as f64;
        }
        for (k, &i) in ins[v].iter().enumerate() {
            end_y[i] = s.y + s.height * (k + 1) as f64 / (ins[v].len() + 1) as f64;
        }
    }

    // The box-free gaps of each column, top to bottom.
    let mut by_column: Vec<Vec<usize>> = vec![Vec::new(); columns];
    for (v, s) in slots.iter().enumerate() {
        if let Some(col) = by_column.get_mut(s.column) {
            col.push(v);
        }
    }
    let gaps: Vec<Vec<(f64, f64)>> = by_column
        .iter_mut()
        .map(|col| {
            col.sort_by(|a, b| slots[*a].y.total_cmp(&slots[*b].y));
            let mut out = Vec::with_capacity(col.len() + 1);
            let mut above = top;
            for &v in col.iter() {
                out.push((above, slots[v].y));
                above = slots[v].y + slots[v].height;
            }
            out.push((above, bottom.max(above + 4.0 * GAP_INSET)));
            out
        })
        .collect();
    let mut used: HashMap<(usize, usize), usize> = HashMap::new();
    let mut through = |column: usize, want: f64| -> f64 {
        let list = &gaps[column];
        // (never inverted: `clamp` below needs lo <= hi)
        let usable = |g: (f64, f64)| (g.0 + GAP_INSET, (g.1 - GAP_INSET).max(g.0 + GAP_INSET));
        let dist = |g: (f64, f64)| {
            let (lo, hi) = usable(g);
            (lo - want).max(want - hi).max(0.0)
        };
        let capacity = |g: (f64, f64)| {
            let (lo, hi) = usable(g);
            (((hi - lo) / TRACK).floor() as usize + 1).max(1)
        };
        // The gap nearest the wanted height that still has a free track;
        // a few gaps each way are tried, then the nearest is shared.
        let at = list.partition_point(|g| g.1 < want).min(list.len() - 1);
        let mut candidates: Vec<usize> =
            (at.saturating_sub(SEARCH)..(at + SEARCH + 1).min(list.len())).collect();
        candidates.sort_by(|x, y| dist(list[*x]).total_cmp(&dist(list[*y])).then(x.cmp(y)));
        let best = candidates
            .iter()
            .copied()
            .find(|&g| used.get(&(column, g)).copied().unwrap_or(0) < capacity(list[g]))
            .unwrap_or(candidates[0]);
        let (lo, hi) = usable(list[best]);
        let k = used.entry((column, best)).or_default();
        let slot = *k % capacity(list[best]);
        *k += 1;
        // Tracks fill from the middle of a narrow gap, or from the wanted
        // height in a wide one, outwards.
        let base = if capacity(list[best]) <= 5 {
            (lo + hi) / 2.0
        } else {
            want.clamp(lo + 2.0 * TRACK, hi - 2.0 * TRACK)
        };
        let step = slot.div_ceil(2) as f64 * TRACK;
        let y = if slot % 2 == 1 {
            base - step
        } else {
            base + step
        };
        y.clamp(lo, hi)
    };

    // The heights of each call's runs and the channels they are in:
    // channel k is left of column k, channel `columns` right of the last.
    let mut points: Vec<Option<Vec<(usize, f64)>>> = Vec::with_capacity(edges.len());
    let mut runs: Vec<Vec<Run>> = (0..=columns).map(|_| Vec::new()).collect();
    for (i, e) in edges.iter().enumerate() {
        let Some((a, b)) = *e else {
            points.push(None);
            continue;
        };
        let (ca, cb) = (slots[a].column, slots[b].column);
        // Columns crossed, in order, and the channel after each.
        let crossings: Vec<usize> = if cb > ca {
            (ca + 1..cb).collect()
        } else {
            (cb..=ca).rev().collect()
        };
        let (ys, yt) = (start_y[i], end_y[i]);
        // Channel, height pairs: the run in a channel goes from one
        // height to the next.
        let mut channel = ca + 1;
        let mut y = ys;
        let mut list = vec![(channel, ys)];
        // A run ends at each column crossed, at a height spread evenly
        // between the call's ends, and the last one at the target.
        let m = crossings.len();
        let stops = crossings
            .iter()
            .enumerate()
            .map(|(j, &col)| (Some(col), ys + (yt - ys) * (j + 1) as f64 / (m + 1) as f64))
            .chain(std::iter::once((None, yt)));
        for (col, want) in stops {
            let g = col.map_or(yt, |col| through(col, want));
            list.push((channel, g));
            runs[channel].push(Run {
                edge: i,
                point: list.len() - 2,
                from: y,
                to: g,
            });
            if let Some(col) = col {
                channel = if cb > ca { col + 1 } else { col };
                y = g;
                list.push((channel, g));
            }
        }
        points.push(Some(list));
    }

    // Channel widths from how many runs they hold, then lanes.
    let widths: Vec<f64> = runs
        .iter()
        .enumerate()
        .map(|(k, r)| {
            let least = if k == 0 || k == columns {
                margin
            } else {
                min_gap
            };
            if r.is_empty() {
                least
            } else {
                (2.0 * CHANNEL_PAD + r.len() as f64 * LANE).clamp(least, CHANNEL_MAX)
            }
        })
        .collect();
    let mut lefts = Vec::with_capacity(columns + 1);
    let mut xs = Vec::with_capacity(columns);
    let mut x = 0.0;
    for (k, w) in widths.iter().enumerate() {
        lefts.push(x);
        x += w;
        if k < columns {
            xs.push(x);
            x += node_w;
        }
    }
    let width = x;
    let mut lane_x: Vec<Vec<f64>> = points
        .iter()
        .map(|p| p.as_ref().map_or_else(Vec::new, |l| vec![0.0; l.len()]))
        .collect();
    for (k, list) in runs.iter_mut().enumerate() {
        // Downward runs that start higher go further right, upward runs
        // that start lower go further right: such runs do not cross.
        list.sort_by(|p, q| {
            let key = |r: &Run| {
                if r.to >= r.from {
                    (0u8, -r.from)
                } else {
                    (1u8, r.from)
                }
            };
            let (kp, kq) = (key(p), key(q));
            kp.0.cmp(&kq.0)
                .then(kp.1.total_cmp(&kq.1))
                .then(p.edge.cmp(&q.edge))
        });
        let inner = widths[k] - 2.0 * CHANNEL_PAD;
        let step = inner / list.len().max(1) as f64;
        for (j, r) in list.iter().enumerate() {
            let lx = lefts[k] + CHANNEL_PAD + step * (j as f64 + 0.5);
            if let Some(slot) = lane_x[r.edge].get_mut(r.point) {
                *slot = lx;
            }
            if let Some(slot) = lane_x[r.edge].get_mut(r.point + 1) {
                *slot = lx;
            }
        }
    }
    let paths = points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let list = p.as_ref()?;
            let (a, b) = edges[i]?;
            let mut out = Vec::with_capacity(list.len() + 2);
            out.push((xs[slots[a].column] + node_w, start_y[i]));
            for (j, &(_, y)) in list.iter().enumerate() {
                out.push((lane_x[i][j], y));
            }
            out.push((xs[slots[b].column], end_y[i]));
            Some(out)
        })
        .collect();
    Routing { xs, width, paths }
}
