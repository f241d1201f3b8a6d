//! Discovered calls: observations folded into one record per kind of call.
//!
//! A kind of call is (client, server, port, protocol, method, path). Its
//! record remembers when it was first and last seen, how many times, with
//! which verdicts, and who saw it (a proxy, a socket scan, or both).
//!
//! Distinct paths are capped per (client, server, port): a client that calls
//! `/items/1` … `/items/100000` must not grow the mapper without bound. Past
//! the cap, new paths are recorded as `*` (any path) with their method.

use std::collections::{BTreeMap, HashMap};

use ibac_model::WorkloadId;
use ibac_model::http::{RequestMethod, normalize};
use ibac_policy::graph::DiscoveredCall;
use ibac_policy::{Request, Verdict};
use serde::{Deserialize, Serialize};

pub use ibac_model::Protocol;

/// Who observed a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    /// A proxy decided it.
    Proxy,
    /// A socket scan saw the connection, which no proxy carried.
    SocketScan,
}

/// One kind of call.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CallKey {
    /// The caller.
    pub client: WorkloadId,
    /// The server.
    pub server: WorkloadId,
    /// The server's port, as intents name it.
    pub port: u16,
    /// HTTP or TCP.
    pub protocol: Protocol,
    /// The HTTP method; `None` for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The normalized HTTP path, or `*` past the cap; `None` for TCP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

impl CallKey {
    /// A connection.
    pub fn tcp(client: WorkloadId, server: WorkloadId, port: u16) -> Self {
        CallKey {
            client,
            server,
            port,
            protocol: Protocol::Tcp,
            method: None,
            path: None,
        }
    }

    /// An HTTP request; ID-like path segments are kept as `{id}`
    /// ([`crate::generalize::collapse_ids`]).
    pub fn http(
        client: WorkloadId,
        server: WorkloadId,
        port: u16,
        method: &str,
        path: &str,
    ) -> Self {
        CallKey {
            client,
            server,
            port,
            protocol: Protocol::Http,
            method: Some(method.to_string()),
            // The mapper's form: ID-like segments collapsed, so that every
            // producer of calls (proxy reports, tests, the control plane's
            // verdict counts) names one kind of call the same way.
            path: Some(crate::generalize::collapse_ids(path)),
        }
    }

    /// The request the policy engine decides for this call. A capped path
    /// (`*`) or one that does not normalize is decided as a connection to
    /// the port, which is what intents for the port as a whole allow.
    pub fn request(&self) -> Request {
        match (&self.method, &self.path) {
            (Some(m), Some(p)) => match (RequestMethod::parse(m), normalize(p)) {
                (Some(method), Ok(path)) => Request::http(Some(self.port), method, path),
                _ => Request::l4(self.port),
            },
            _ => Request::l4(self.port),
        }
    }
}

pub use ibac_api::graph::{EdgeSummary, VerdictCounts};

/// What is known about one kind of call: the same fields as the sum over
/// an edge, so an edge's summary is a fold of its calls' records.
pub use ibac_api::graph::EdgeSummary as CallRecord;

/// One report of calls of one kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The kind of call.
    pub key: CallKey,
    /// The verdict, when a proxy decided it.
    pub verdict: Option<Verdict>,
    /// How many.
    pub count: u64,
    /// Unix seconds.
    pub first_seen: i64,
    /// Unix seconds.
    pub last_seen: i64,
    /// Who saw it.
    pub source: Source,
}

/// The default cap on distinct paths per (client, server, port).
pub const DEFAULT_MAX_PATHS: usize = 100;

type EdgePort = (WorkloadId, WorkloadId, u16);

/// Every discovered call.
#[derive(Clone, Debug)]
pub struct Discovered {
    calls: BTreeMap<CallKey, CallRecord>,
    paths: HashMap<EdgePort, usize>,
    max_paths: usize,
}

impl Default for Discovered {
    fn default() -> Self {
        Discovered::new(DEFAULT_MAX_PATHS)
    }
}

fn is_capped_path(key: &CallKey) -> bool {
    key.path.as_deref() == Some("*")
}

fn edge_port(key: &CallKey) -> EdgePort {
    (key.client.clone(), key.server.clone(), key.port)
}

impl Discovered {
    /// Nothing discovered yet; at most `max_paths` distinct paths per
    /// (client, server, port).
    pub fn new(max_paths: usize) -> Self {
        Discovered {
            calls: BTreeMap::new(),
            paths: HashMap::new(),
            max_paths,
        }
    }

    /// Folds in one observation and returns the key it was recorded under
    /// (its own, or with the path `*` once the cap is reached).
    pub fn observe(&mut self, obs: Observation) -> CallKey {
        // Keys come from `CallKey::http`, IDs already collapsed: the cap
        // counts kinds of path, not IDs.
        let mut key = obs.key;
        if key.protocol == Protocol::Http && !is_capped_path(&key) && !self.calls.contains_key(&key)
        {
            let seen = self.paths.get(&edge_port(&key)).copied().unwrap_or(0);
            if seen >= self.max_paths {
                key.path = Some("*".into());
            }
        }
        let record = match self.calls.get_mut(&key) {
            Some(record) => record,
            None => {
                if key.protocol == Protocol::Http && !is_capped_path(&key) {
                    *self.paths.entry(edge_port(&key)).or_insert(0) += 1;
                }
                // Empty, seen at the observation's times: what follows
                // adds the observation.
                self.calls.entry(key.clone()).or_insert(CallRecord {
                    first_seen: obs.first_seen,
                    last_seen: obs.last_seen,
                    ..CallRecord::default()
                })
            }
        };
        record.first_seen = record.first_seen.min(obs.first_seen);
        record.last_seen = record.last_seen.max(obs.last_seen);
        record.count = record.count.saturating_add(obs.count);
        record.verdicts.add(obs.verdict, obs.count);
        match obs.source {
            Source::Proxy => record.by_proxy = true,
            Source::SocketScan => record.by_socket_scan = true,
        }
        key
    }

    /// Puts back a record as stored (when loading).
    pub fn restore(&mut self, key: CallKey, record: CallRecord) {
        if key.protocol == Protocol::Http && !is_capped_path(&key) && !self.calls.contains_key(&key)
        {
            *self.paths.entry(edge_port(&key)).or_insert(0) += 1;
        }
        self.calls.insert(key, record);
    }

    /// Forgets calls last seen before `cutoff` (unix seconds) and returns them.
    pub fn purge_before(&mut self, cutoff: i64) -> Vec<CallKey> {
        let old: Vec<CallKey> = self
            .calls
            .iter()
            .filter(|(_, r)| r.last_seen < cutoff)
            .map(|(k, _)| k.clone())
            .collect();
        for key in &old {
            self.calls.remove(key);
            if key.protocol == Protocol::Http && !is_capped_path(key) {
                let ep = edge_port(key);
                if let Some(n) = self.paths.get_mut(&ep) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.paths.remove(&ep);
                    }
                }
            }
        }
        old
    }

    /// Forgets everything.
    pub fn reset(&mut self) {
        self.calls.clear();
        self.paths.clear();
    }

    /// The record of one kind of call.
    pub fn get(&self, key: &CallKey) -> Option<&CallRecord> {
        self.calls.get(key)
    }

    /// How many kinds of call are known.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    /// Whether nothing is known.
    pub fn is_empty(&self) -> bool {
        self.calls.is_empty()
    }

    /// Every call, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&CallKey, &CallRecord)> {
        self.calls.iter()
    }

    /// Calls last seen at or after `since` (unix seconds; `None`: all).
    pub fn since(&self, since: Option<i64>) -> Vec<(CallKey, CallRecord)> {
        self.calls
            .iter()
            .filter(|(_, r)| since.is_none_or(|t| r.last_seen >= t))
            .map(|(k, r)| (k.clone(), r.clone()))
            .collect()
    }
}

/// The calls as the policy engine's access graph takes them.
pub fn policy_calls<'a>(
    calls: impl IntoIterator<Item = (&'a CallKey, &'a CallRecord)>,
) -> Vec<DiscoveredCall> {
    calls
        .into_iter()
        .map(|(k, r)| DiscoveredCall {
            client: k.client.clone(),
            server: k.server.clone(),
            request: k.request(),
            count: r.count,
        })
        .collect()
}

/// Sums the calls of each (client, server).
pub fn edge_summaries<'a>(
    calls: impl IntoIterator<Item = (&'a CallKey, &'a CallRecord)>,
) -> BTreeMap<(WorkloadId, WorkloadId), EdgeSummary> {
    let mut out: BTreeMap<(WorkloadId, WorkloadId), EdgeSummary> = BTreeMap::new();
    for (k, r) in calls {
        out.entry((k.client.clone(), k.server.clone()))
            .and_modify(|e| e.merge(r))
            .or_insert_with(|| r.clone());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use proptest::prelude::*;

    fn w(s: &str) -> WorkloadId {
        WorkloadId::parse(s).unwrap()
    }

    fn http(path: &str, verdict: Verdict, at: i64) -> Observation {
        Observation {
            key: CallKey::http(w("web.shop"), w("api.shop"), 80, "GET", path),
            verdict: Some(verdict),
            count: 2,
            first_seen: at,
            last_seen: at + 5,
            source: Source::Proxy,
        }
    }

    #[test]
    fn observations_of_one_call_fold_into_one_record() {
        let mut d = Discovered::default();
        d.observe(http("/a", Verdict::WouldBeBlocked, 100));
        d.observe(http("/a", Verdict::Allowed, 50));
        let key = CallKey::http(w("web.shop"), w("api.shop"), 80, "GET", "/a");
        let r = d.get(&key).unwrap();
        assert_eq!((r.first_seen, r.last_seen, r.count), (50, 105, 4));
        assert_eq!(r.verdicts.allowed, 2);
        assert_eq!(r.verdicts.would_be_blocked, 2);
        assert!(r.by_proxy && !r.by_socket_scan);
    }

    #[test]
    fn paths_past_the_cap_are_recorded_as_any_path() {
        let mut d = Discovered::new(3);
        for i in 0..10 {
            d.observe(http(&format!("/items/n{i}"), Verdict::Allowed, 1));
        }
        assert_eq!(d.len(), 4, "three paths and `*`");
        let star = CallKey::http(w("web.shop"), w("api.shop"), 80, "GET", "*");
        assert_eq!(d.get(&star).unwrap().count, 14);
        // A path already known keeps being counted under its own name.
        let key = d.observe(http("/items/n0", Verdict::Allowed, 2));
        assert_eq!(key.path.as_deref(), Some("/items/n0"));
        // Another edge has its own budget.
        let mut other = http("/x", Verdict::Allowed, 1);
        other.key.client = w("admin.shop");
        assert_eq!(d.observe(other).path.as_deref(), Some("/x"));
    }

    #[test]
    fn purging_frees_room_under_the_cap() {
        let mut d = Discovered::new(1);
        d.observe(http("/old", Verdict::Allowed, 10));
        assert_eq!(d.purge_before(100).len(), 1);
        assert!(d.is_empty());
        let key = d.observe(http("/new", Verdict::Allowed, 200));
        assert_eq!(key.path.as_deref(), Some("/new"));
    }

    #[test]
    fn capped_and_odd_paths_are_decided_as_connections() {
        let key = CallKey::http(w("a.b"), w("c.b"), 80, "GET", "*");
        assert_eq!(key.request(), Request::l4(80));
        let key = CallKey::http(w("a.b"), w("c.b"), 80, "GET", "/ok");
        assert!(key.request().http.is_some());
    }

    #[test]
    fn edge_summaries_add_up_every_call_of_an_edge() {
        let mut d = Discovered::default();
        d.observe(http("/a", Verdict::Allowed, 10));
        d.observe(http("/b", Verdict::Blocked, 20));
        d.observe(Observation {
            key: CallKey::tcp(w("web.shop"), w("api.shop"), 5432),
            verdict: None,
            count: 1,
            first_seen: 5,
            last_seen: 5,
            source: Source::SocketScan,
        });
        let sums = edge_summaries(d.iter());
        let e = &sums[&(w("web.shop"), w("api.shop"))];
        assert_eq!((e.first_seen, e.last_seen, e.count), (5, 25, 5));
        assert_eq!(e.verdicts.unchecked, 1);
        assert!(e.by_proxy && e.by_socket_scan);
    }

    proptest! {
        /// Against a naive reference: every observation's count lands in
        /// exactly one record, and no edge holds more than the cap of named
        /// paths.
        #[test]
        fn counts_are_conserved_and_the_cap_holds(
            obs in proptest::collection::vec((0u8..3, 0u8..3, 0u16..20, 1u64..5), 0..200),
            cap in 1usize..6,
        ) {
            let mut d = Discovered::new(cap);
            let mut total = 0;
            for (c, s, p, n) in obs {
                total += n;
                d.observe(Observation {
                    key: CallKey::http(w(&format!("c{c}.x")), w(&format!("s{s}.x")), 80, "GET", &format!("/p{p}")),
                    verdict: Some(Verdict::Allowed),
                    count: n,
                    first_seen: 0,
                    last_seen: 0,
                    source: Source::Proxy,
                });
            }
            prop_assert_eq!(d.iter().map(|(_, r)| r.count).sum::<u64>(), total);
            let mut named: HashMap<(String, String), usize> = HashMap::new();
            for (k, _) in d.iter() {
                if k.path.as_deref() != Some("*") {
                    *named.entry((k.client.to_string(), k.server.to_string())).or_default() += 1;
                }
            }
            prop_assert!(named.values().all(|n| *n <= cap));
        }
    }

    /// An hour of traffic with a new product ID per request is one kind of
    /// call, well under the cap, and exports as `/products/*`.
    #[test]
    fn ids_are_collapsed_before_the_path_cap_counts() {
        let mut d = Discovered::new(5);
        for id in 0..500 {
            d.observe(http(
                &format!("/products/{id}"),
                Verdict::WouldBeBlocked,
                id,
            ));
        }
        d.observe(http("/products", Verdict::WouldBeBlocked, 1));
        let paths: Vec<String> = d
            .since(None)
            .into_iter()
            .filter_map(|(k, _)| k.path)
            .collect();
        assert_eq!(
            paths,
            vec!["/products".to_string(), "/products/{id}".to_string()]
        );
        let docs = crate::export::export(
            &d.since(None),
            &crate::export::ExportOptions {
                with_http: true,
                ..Default::default()
            },
        );
        let yaml = crate::export::to_yaml(&docs).unwrap();
        assert!(yaml.contains("path: /products/*"), "{yaml}");
        assert!(!yaml.contains("path: '*'"), "{yaml}");
    }
}
