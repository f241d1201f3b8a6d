//! Enforced state: what each proxy says its decisions use, next to what the
//! control plane published.
//!
//! Proxies report the revision in force after they swap it in, and why a
//! newer one failed to load; they also report on a heartbeat. From those
//! reports and the clock, every registered workload is in one
//! [`Enforcement`] state. Commands that change policy wait on
//! [`Tracker::changes`] until every proxy follows, and the workloads view,
//! the graph and the metrics show the same states, so a protection that is
//! not in force can never go unnoticed.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

pub use ibac_api::enforcement::{Enforcement, EnforcementCounts};
use ibac_api::proxy::EnforcedStatus;
use ibac_model::WorkloadId;
use tokio::sync::watch;

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The last report of one proxy.
#[derive(Clone, Debug)]
struct Reported {
    status: EnforcedStatus,
    at: i64,
}

/// Keeps what proxies report and classifies it.
pub struct Tracker {
    reports: Mutex<HashMap<WorkloadId, Reported>>,
    silent_after: Duration,
    changes: watch::Sender<u64>,
}

impl Tracker {
    /// A tracker that calls a proxy silent when it has not reported within
    /// `silent_after`.
    pub fn new(silent_after: Duration) -> Self {
        Tracker {
            reports: Mutex::new(HashMap::new()),
            silent_after,
            changes: watch::Sender::new(0),
        }
    }

    /// How long a proxy may stay quiet before it is silent.
    pub fn silent_after(&self) -> Duration {
        self.silent_after
    }

    /// How often proxies should report: a third of the silence window, so
    /// that one lost beat does not make a proxy silent.
    pub fn heartbeat(&self) -> Duration {
        (self.silent_after / 3).max(Duration::from_secs(1))
    }

    /// Takes a proxy's report.
    pub fn report(&self, workload: &WorkloadId, status: EnforcedStatus) {
        if let Ok(mut r) = self.reports.lock() {
            r.insert(workload.clone(), Reported { status, at: now() });
        }
        self.changes.send_modify(|v| *v += 1);
    }

    /// Forgets a workload (when it is unregistered).
    pub fn forget(&self, workload: &WorkloadId) {
        if let Ok(mut r) = self.reports.lock() {
            r.remove(workload);
        }
        self.changes.send_modify(|v| *v += 1);
    }

    /// Moves with every report.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The state of each of `workloads` against `published`.
    pub fn states<'a>(
        &self,
        workloads: impl IntoIterator<Item = &'a WorkloadId>,
        published: u64,
    ) -> BTreeMap<WorkloadId, Enforcement> {
        let reports = self.reports.lock().map(|r| r.clone()).unwrap_or_default();
        let at = now();
        let window = i64::try_from(self.silent_after.as_secs()).unwrap_or(i64::MAX);
        workloads
            .into_iter()
            .map(|id| {
                let state = classify(reports.get(id), published, at, window);
                (id.clone(), state)
            })
            .collect()
    }
}

fn classify(report: Option<&Reported>, published: u64, now: i64, window: i64) -> Enforcement {
    let Some(report) = report else {
        return Enforcement::Silent {
            enforced: None,
            last_report: None,
        };
    };
    let enforced = report.status.enforced;
    if now - report.at > window {
        return Enforcement::Silent {
            enforced,
            last_report: Some(report.at),
        };
    }
    if let Some(failed) = &report.status.failed
        && enforced.is_none_or(|e| failed.revision > e)
    {
        return Enforcement::Failing {
            enforced,
            revision: failed.revision,
            error: failed.error.clone(),
        };
    }
    match enforced {
        Some(r) if r >= published => Enforcement::InSync { revision: r },
        _ => Enforcement::Behind { enforced },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibac_api::proxy::LoadFailure;

    fn reported(enforced: Option<u64>, failed: Option<u64>, at: i64) -> Reported {
        Reported {
            status: EnforcedStatus {
                enforced,
                failed: failed.map(|revision| LoadFailure {
                    revision,
                    error: "unknown field `x`".into(),
                }),
            },
            at,
        }
    }

    #[test]
    fn states_follow_reports_and_the_clock() {
        let now = 1_000;
        assert_eq!(
            classify(None, 5, now, 30),
            Enforcement::Silent {
                enforced: None,
                last_report: None
            }
        );
        assert_eq!(
            classify(Some(&reported(Some(5), None, now)), 5, now, 30),
            Enforcement::InSync { revision: 5 }
        );
        assert_eq!(
            classify(Some(&reported(Some(4), None, now)), 5, now, 30),
            Enforcement::Behind { enforced: Some(4) }
        );
        assert!(matches!(
            classify(Some(&reported(Some(4), Some(5), now)), 5, now, 30),
            Enforcement::Failing {
                enforced: Some(4),
                revision: 5,
                ..
            }
        ));
        // A failure older than what is enforced now is history, not a state.
        assert_eq!(
            classify(Some(&reported(Some(6), Some(5), now)), 6, now, 30),
            Enforcement::InSync { revision: 6 }
        );
        assert_eq!(
            classify(Some(&reported(Some(5), None, now - 31)), 5, now, 30),
            Enforcement::Silent {
                enforced: Some(5),
                last_report: Some(now - 31)
            }
        );
    }
}
