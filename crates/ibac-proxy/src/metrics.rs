//! Prometheus metrics of the proxy, served on the admin port as `/metrics`.

use std::sync::OnceLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Metric, Registry};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Decided {
    direction: String,
    kind: String,
    verdict: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Outcome {
    result: String,
}

/// Every metric the proxy keeps.
pub struct Metrics {
    registry: Registry,
    decisions: Family<Decided, Counter>,
    tls_failures: Counter,
    reloads: Family<Outcome, Counter>,
    open_connections: Gauge,
    refused: Family<Outcome, Counter>,
}

/// A new metric registered under `name`: the registry keeps one handle to
/// encode it, [`Metrics`] the other to update it.
fn registered<M: Default + Clone + Metric>(registry: &mut Registry, name: &str, help: &str) -> M {
    let metric = M::default();
    registry.register(name, help, metric.clone());
    metric
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let mut registry = Registry::with_prefix("ibac_proxy");
        let decisions: Family<Decided, Counter> = registered(
            &mut registry,
            "decisions",
            "Calls decided, by direction, kind (http or tcp) and verdict",
        );
        let tls_failures: Counter = registered(
            &mut registry,
            "tls_handshake_failures",
            "TLS handshakes that failed, peer verification included",
        );
        let reloads: Family<Outcome, Counter> = registered(
            &mut registry,
            "policy_reloads",
            "Policy loads, by result (ok or failed)",
        );
        let open_connections: Gauge =
            registered(&mut registry, "open_connections", "Connections open now");
        let refused: Family<Outcome, Counter> = registered(
            &mut registry,
            "refused_requests",
            "Requests refused before any decision, by reason",
        );
        Metrics {
            registry,
            decisions,
            tls_failures,
            reloads,
            open_connections,
            refused,
        }
    })
}

impl Metrics {
    /// Counts a decision.
    pub fn decided(&self, direction: &str, kind: &str, verdict: ibac_policy::Verdict) {
        self.decisions
            .get_or_create(&Decided {
                direction: direction.into(),
                kind: kind.into(),
                verdict: verdict.as_str().into(),
            })
            .inc();
    }

    /// Counts a failed handshake.
    pub fn tls_failed(&self) {
        self.tls_failures.inc();
    }

    /// Counts a policy load.
    pub fn policy_reloads(&self, ok: bool) {
        self.reloads
            .get_or_create(&Outcome {
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    /// Counts a request refused as malformed.
    pub fn refused(&self, reason: &str) {
        self.refused
            .get_or_create(&Outcome {
                result: reason.into(),
            })
            .inc();
    }

    /// A connection opened; the guard closes it in the gauge.
    pub fn connection(&'static self) -> ConnectionGuard {
        self.open_connections.inc();
        ConnectionGuard(self)
    }

    /// The metrics in the Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Lowers the open-connection gauge when dropped.
pub struct ConnectionGuard(&'static Metrics);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.open_connections.dec();
    }
}
