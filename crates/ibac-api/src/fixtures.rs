//! A generated access graph for tests and benchmarks: the same calls on
//! every run and platform, so that a layout test's snapshot and the layout
//! benchmark draw one and the same picture.

use ibac_model::WorkloadId;
use ibac_policy::Verdict;
use ibac_policy::graph::GraphEdge;

use crate::graph::EdgeView;

/// `calls` distinct discovered calls among `workloads` workloads named
/// `w<n>.ns<n % 4>`, none to itself, with verdicts of every kind, drawn
/// with a linear congruential generator from `seed`. Fewer come back only
/// when there are not that many pairs.
pub fn generated_calls(seed: u64, workloads: usize, calls: usize) -> Vec<EdgeView> {
    let mut state = seed;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        usize::try_from(state >> 33).unwrap_or(0)
    };
    let pairs = workloads.saturating_mul(workloads.saturating_sub(1));
    let wanted = calls.min(pairs);
    let mut seen = std::collections::HashSet::new();
    let mut edges = Vec::with_capacity(wanted);
    while edges.len() < wanted {
        let (a, b) = (next() % workloads, next() % workloads);
        if a == b || !seen.insert((a, b)) {
            continue;
        }
        let id = |v: usize| WorkloadId::parse(&format!("w{v}.ns{}", v % 4));
        let (Ok(client), Ok(server)) = (id(a), id(b)) else {
            continue;
        };
        let verdicts = [Verdict::Allowed, Verdict::WouldBeBlocked, Verdict::Blocked];
        edges.push(EdgeView::new(GraphEdge {
            verdict: verdicts[next() % 3],
            discovered: true,
            ..GraphEdge::new(&client, &server)
        }));
    }
    edges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_distinct_never_to_themselves_and_the_same_every_time() {
        let calls = generated_calls(11, 50, 400);
        assert_eq!(calls.len(), 400);
        let pairs: std::collections::HashSet<_> = calls
            .iter()
            .map(|c| (c.edge.client.clone(), c.edge.server.clone()))
            .collect();
        assert_eq!(pairs.len(), 400);
        assert!(calls.iter().all(|c| c.edge.client != c.edge.server));
        assert_eq!(calls, generated_calls(11, 50, 400));
        assert_ne!(calls, generated_calls(12, 50, 400));
        for verdict in [Verdict::Allowed, Verdict::WouldBeBlocked, Verdict::Blocked] {
            assert!(calls.iter().any(|c| c.edge.verdict == verdict));
        }
    }

    #[test]
    fn asking_for_more_calls_than_pairs_gives_every_pair() {
        assert_eq!(generated_calls(1, 3, 100).len(), 6);
        assert!(generated_calls(1, 1, 10).is_empty());
        assert!(generated_calls(1, 0, 10).is_empty());
    }
}
