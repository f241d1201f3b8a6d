//! Enforced state: what each proxy says it enforces, rollouts of a
//! revision, and the verdicts observed since the policy in force was
//! published.

use super::*;

impl Control {
    /// Every registered workload's enforced state against the published revision.
    pub fn enforcement_states(&self) -> BTreeMap<WorkloadId, Enforcement> {
        let snapshot = self.snapshot();
        self.enforcement
            .states(snapshot.workloads.keys(), snapshot.revision)
    }

    /// How many proxies are in each state.
    pub fn enforcement_counts(&self) -> EnforcementCounts {
        EnforcementCounts::of(self.enforcement_states().values())
    }

    /// Takes what a proxy says it enforces.
    pub fn enforced_status(&self, id: &WorkloadId, status: ibac_api::EnforcedStatus) {
        self.enforcement.report(id, status);
    }

    /// Moves when some proxy's state changes (not on every heartbeat).
    pub fn enforcement_shifts(&self) -> watch::Receiver<u64> {
        self.enforcement_shifts.subscribe()
    }

    /// Follows every proxy's state until the control plane closes: logs
    /// each change (a proxy falling behind, failing, going silent, coming
    /// back) and when every proxy enforces a revision, and moves
    /// [`Control::enforcement_shifts`] so the graph redraws.
    pub async fn watch_enforcement(self: Arc<Self>) {
        let mut reports = self.enforcement.changes();
        let mut snapshots = self.subscribe();
        let mut last: BTreeMap<WorkloadId, Enforcement> = BTreeMap::new();
        let mut announced = None;
        loop {
            let revision = self.snapshot().revision;
            let states = self.enforcement_states();
            let mut shifted = states.len() != last.len();
            for (id, state) in &states {
                let before = last.get(id);
                if before.map(Enforcement::label) == Some(state.label()) {
                    continue;
                }
                shifted = true;
                match state {
                    Enforcement::Failing { .. } | Enforcement::Silent { .. } => {
                        tracing::warn!(workload = %id, state = state.label(), "{id} {}", state.describe(now()));
                    }
                    Enforcement::InSync { .. }
                        if before.is_some_and(|b| {
                            matches!(b, Enforcement::Failing { .. } | Enforcement::Silent { .. })
                        }) =>
                    {
                        tracing::info!(workload = %id, "{id} {} again", state.describe(now()));
                    }
                    _ => {}
                }
            }
            let counts = EnforcementCounts::of(states.values());
            if !states.is_empty() && counts.in_sync == states.len() && announced != Some(revision) {
                tracing::info!(
                    revision,
                    proxies = states.len(),
                    "all {} proxies enforce revision {revision}",
                    states.len()
                );
                announced = Some(revision);
            }
            if shifted {
                self.enforcement_shifts.send_modify(|v| *v += 1);
            }
            last = states;
            tokio::select! {
                r = reports.changed() => if r.is_err() { return },
                r = snapshots.changed() => if r.is_err() { return },
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = self.closed() => return,
            }
        }
    }

    /// How far proxies have followed `revision`.
    pub fn rollout(&self, revision: u64) -> Rollout {
        let snapshot = self.snapshot();
        let workloads = self
            .enforcement
            .states(snapshot.workloads.keys(), snapshot.revision)
            .into_iter()
            .map(|(id, enforcement)| WorkloadEnforcement {
                id: id.to_string(),
                enforcement,
            })
            .collect();
        Rollout {
            revision,
            published: snapshot.revision,
            workloads,
        }
    }

    /// Waits until every registered proxy enforces `revision`, or `timeout`
    /// passes, or nothing more can change: every proxy still missing has
    /// said it cannot load it. Polls on reports, and once a second for
    /// proxies that fall silent.
    pub async fn wait_rollout(&self, revision: u64, timeout: Duration) -> Rollout {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.enforcement.changes();
        loop {
            changes.borrow_and_update();
            let rollout = self.rollout(revision);
            if rollout.complete() || rollout.stuck() {
                return rollout;
            }
            let tick = tokio::time::sleep(Duration::from_secs(1));
            tokio::select! {
                _ = changes.changed() => {}
                () = tick => {}
                () = tokio::time::sleep_until(deadline) => return self.rollout(revision),
                () = self.closed() => return self.rollout(revision),
            }
        }
    }

    /// Verdicts observed since the policy in force was published, per call.
    pub fn observed(&self) -> BTreeMap<CallKey, ObservedCounts> {
        self.observed
            .lock()
            .map(|o| o.counts().clone())
            .unwrap_or_default()
    }
}
