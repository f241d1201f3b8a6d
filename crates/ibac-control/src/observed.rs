//! Verdicts the proxies gave since the policy in force was published.
//!
//! The graph's verdicts say what the policy decides; these say what the
//! enforcers did. A call counts when a server's proxy decided it under the
//! revision in force (or a later one), or under an older revision but after
//! the new one was published — a proxy that lags or fails. Calls decided
//! before the policy changed are history and do not count. Where the two
//! disagree, an enforcer is not following, and the graph says so.

use std::collections::BTreeMap;

pub use ibac_api::graph::ObservedCounts;
use ibac_mapper::CallKey;
use ibac_policy::Verdict;

/// Calls kept at most; beyond it new kinds of call are not counted (the
/// mapper still records them), so a scan of random paths cannot grow memory.
const MAX_CALLS: usize = 100_000;

/// The counts since the policy in force was published.
#[derive(Debug)]
pub struct Observed {
    policy_revision: u64,
    policy_since: i64,
    counts: BTreeMap<CallKey, ObservedCounts>,
}

impl Observed {
    /// Counts for the policy published at `policy_revision`, at unix second `since`.
    pub fn new(policy_revision: u64, since: i64) -> Self {
        Observed {
            policy_revision,
            policy_since: since,
            counts: BTreeMap::new(),
        }
    }

    /// A policy was published: when it is a new one, counting starts over.
    pub fn policy_published(&mut self, revision: u64, since: i64) {
        if revision != self.policy_revision {
            self.policy_revision = revision;
            self.policy_since = since;
            self.counts.clear();
        }
    }

    /// Takes one report: `count` calls with `verdict`, decided under
    /// `revision`, the first of them at `first_seen`.
    pub fn observe(
        &mut self,
        key: &CallKey,
        verdict: Verdict,
        count: u64,
        revision: Option<u64>,
        first_seen: i64,
    ) {
        let current = revision.is_some_and(|r| r >= self.policy_revision);
        if !current && first_seen <= self.policy_since {
            return;
        }
        if !self.counts.contains_key(key) && self.counts.len() >= MAX_CALLS {
            return;
        }
        let c = self.counts.entry(key.clone()).or_default();
        match verdict {
            Verdict::Allowed => c.allowed += count,
            Verdict::WouldBeBlocked => c.would_be_blocked += count,
            Verdict::Blocked => c.blocked += count,
        }
        if !current {
            c.under_older_revision += count;
        }
    }

    /// The counts, per call.
    pub fn counts(&self) -> &BTreeMap<CallKey, ObservedCounts> {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibac_model::WorkloadId;

    fn key() -> CallKey {
        let id = |s: &str| WorkloadId::parse(s).unwrap();
        CallKey::tcp(id("a.shop"), id("b.shop"), 80)
    }

    #[test]
    fn counts_what_was_decided_under_the_policy_in_force() {
        let mut o = Observed::new(5, 1_000);
        o.observe(&key(), Verdict::Allowed, 3, Some(5), 900);
        o.observe(&key(), Verdict::Blocked, 1, Some(6), 1_001);
        assert_eq!(
            o.counts()[&key()],
            ObservedCounts {
                allowed: 3,
                blocked: 1,
                ..ObservedCounts::default()
            }
        );
    }

    #[test]
    fn an_older_revision_counts_only_after_the_new_one_was_published() {
        let mut o = Observed::new(5, 1_000);
        // Before the change: history.
        o.observe(&key(), Verdict::Allowed, 3, Some(4), 999);
        o.observe(&key(), Verdict::Allowed, 3, Some(4), 1_000);
        assert!(o.counts().is_empty());
        // After it, by a proxy still on the old policy: a lagging enforcer.
        o.observe(&key(), Verdict::WouldBeBlocked, 2, Some(4), 1_001);
        assert_eq!(
            o.counts()[&key()],
            ObservedCounts {
                would_be_blocked: 2,
                under_older_revision: 2,
                ..ObservedCounts::default()
            }
        );
    }

    #[test]
    fn a_new_policy_starts_over_and_the_same_one_does_not() {
        let mut o = Observed::new(5, 1_000);
        o.observe(&key(), Verdict::Allowed, 1, Some(5), 1_000);
        o.policy_published(5, 1_100);
        assert_eq!(o.counts().len(), 1);
        o.policy_published(7, 1_200);
        assert!(o.counts().is_empty());
    }
}
