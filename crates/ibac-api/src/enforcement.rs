//! Enforced state: where each proxy stands against the published revision,
//! and how far a change has rolled out.

use serde::{Deserialize, Serialize};

/// Where one workload's proxy stands against the revision published now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(
    tag = "state",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum Enforcement {
    /// It enforces the published revision.
    InSync {
        /// The revision.
        revision: u64,
    },
    /// It enforces an older revision (or none yet) and has not said a newer
    /// one failed: it is still catching up.
    Behind {
        /// What it enforces; none when no policy ever loaded.
        enforced: Option<u64>,
    },
    /// A newer revision failed to load; the older one stays in force.
    Failing {
        /// What it enforces.
        enforced: Option<u64>,
        /// The revision that failed.
        revision: u64,
        /// The proxy's message.
        error: String,
    },
    /// No report within the silence window: stopped, cut off, or never
    /// started. What it enforces is unknown.
    Silent {
        /// What it last said it enforced.
        enforced: Option<u64>,
        /// Unix seconds of its last report; none if it never reported.
        last_report: Option<i64>,
    },
}

impl Enforcement {
    /// A short word for tables and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Enforcement::InSync { .. } => "in sync",
            Enforcement::Behind { .. } => "behind",
            Enforcement::Failing { .. } => "failing",
            Enforcement::Silent { .. } => "silent",
        }
    }

    /// Whether the workload's verdicts are the published policy's.
    pub fn in_force(&self) -> bool {
        matches!(self, Enforcement::InSync { .. })
    }

    /// Whether it is known to enforce `revision` or a later one. A silent
    /// proxy is not: what it does now is unknown.
    pub fn enforces(&self, revision: u64) -> bool {
        match self {
            Enforcement::Silent { .. } => false,
            other => other.enforced().is_some_and(|e| e >= revision),
        }
    }

    /// What it says it enforces, whatever its state.
    pub fn enforced(&self) -> Option<u64> {
        match self {
            Enforcement::InSync { revision } => Some(*revision),
            Enforcement::Behind { enforced }
            | Enforcement::Failing { enforced, .. }
            | Enforcement::Silent { enforced, .. } => *enforced,
        }
    }

    /// One line for people: the state and what it means, `now` being unix
    /// seconds (the age of a silent proxy's last report).
    pub fn describe(&self, now: i64) -> String {
        match self {
            Enforcement::InSync { revision } => format!("enforces revision {revision}"),
            Enforcement::Behind { enforced: Some(r) } => {
                format!("still enforces revision {r}")
            }
            Enforcement::Behind { enforced: None } => "has no policy loaded yet".into(),
            Enforcement::Failing {
                enforced,
                revision,
                error,
            } => match enforced {
                Some(r) => format!(
                    "cannot load revision {revision} ({error}); revision {r} stays in force"
                ),
                None => format!("cannot load revision {revision} ({error}); it has no policy"),
            },
            Enforcement::Silent {
                last_report: None, ..
            } => "has never reported (is its proxy running?)".into(),
            Enforcement::Silent {
                enforced,
                last_report: Some(at),
            } => {
                let ago = (now - at).max(0);
                match enforced {
                    Some(r) => format!(
                        "silent for {ago}s (its proxy stopped or cannot reach the control plane); it last enforced revision {r}"
                    ),
                    None => format!(
                        "silent for {ago}s (its proxy stopped or cannot reach the control plane)"
                    ),
                }
            }
        }
    }
}

/// How many proxies are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EnforcementCounts {
    /// In sync.
    pub in_sync: usize,
    /// Behind.
    pub behind: usize,
    /// Failing.
    pub failing: usize,
    /// Silent.
    pub silent: usize,
}

impl EnforcementCounts {
    /// Counts the states.
    pub fn of<'a>(states: impl IntoIterator<Item = &'a Enforcement>) -> Self {
        let mut c = EnforcementCounts::default();
        for s in states {
            match s {
                Enforcement::InSync { .. } => c.in_sync += 1,
                Enforcement::Behind { .. } => c.behind += 1,
                Enforcement::Failing { .. } => c.failing += 1,
                Enforcement::Silent { .. } => c.silent += 1,
            }
        }
        c
    }
}

/// How far proxies have followed a revision.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rollout {
    /// The revision waited for.
    pub revision: u64,
    /// The revision published now (may be later).
    pub published: u64,
    /// Each registered workload's state.
    pub workloads: Vec<WorkloadEnforcement>,
}

impl Rollout {
    /// Whether every registered proxy enforces the revision.
    pub fn complete(&self) -> bool {
        self.workloads
            .iter()
            .all(|w| w.enforcement.enforces(self.revision))
    }

    /// The workloads that do not enforce the revision (yet).
    pub fn missing(&self) -> impl Iterator<Item = &WorkloadEnforcement> {
        self.workloads
            .iter()
            .filter(|w| !w.enforcement.enforces(self.revision))
    }

    /// Whether waiting longer cannot help: every proxy still missing has
    /// said it cannot load the revision.
    pub fn stuck(&self) -> bool {
        self.missing().all(|w| {
            matches!(&w.enforcement, Enforcement::Failing { revision, .. } if *revision >= self.revision)
        })
    }
}

/// One workload's enforced state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadEnforcement {
    /// `name.namespace`.
    pub id: String,
    /// Where its proxy stands.
    pub enforcement: Enforcement,
}

/// The query of `GET /v1/rollout`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RolloutQuery {
    /// The revision to wait for.
    pub revision: u64,
    /// How long to wait, in milliseconds (0: answer now; at most 10 minutes).
    #[serde(default)]
    pub wait_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_is_enforced_by_what_is_known_to_be_in_force() {
        assert!(Enforcement::InSync { revision: 7 }.enforces(7));
        assert!(Enforcement::InSync { revision: 8 }.enforces(7));
        assert!(!Enforcement::InSync { revision: 6 }.enforces(7));
        // Behind a later revision still enforces an earlier change.
        assert!(Enforcement::Behind { enforced: Some(9) }.enforces(7));
        assert!(!Enforcement::Behind { enforced: None }.enforces(7));
        let silent = Enforcement::Silent {
            enforced: Some(9),
            last_report: Some(0),
        };
        assert!(!silent.enforces(7));
        assert!(silent.describe(30).starts_with("silent for 30s"));
    }

    #[test]
    fn states_are_tagged_on_the_wire() {
        let json = serde_json::to_value(Enforcement::Failing {
            enforced: Some(3),
            revision: 4,
            error: "x".into(),
        })
        .unwrap_or_default();
        assert_eq!(json["state"], "failing");
        assert_eq!(json["revision"], 4);
    }
}
