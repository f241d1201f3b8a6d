//! Mapper ingestion: proxies' reports and socket scans become discovered
//! calls, persisted and purged after the retention period.

use super::*;

impl Control {
    /// How many kinds of call the mapper knows.
    pub fn discovered_len(&self) -> usize {
        self.discovered.lock().map(|d| d.len()).unwrap_or(0)
    }

    /// Records which processes belong to which workload (for the socket
    /// scanner).
    pub fn set_pids(&self, pids: HashMap<u32, WorkloadId>) {
        if let Ok(mut p) = self.pids.lock() {
            *p = pids;
        }
    }

    /// What the socket scanner needs.
    pub fn scan_registry(&self) -> ibac_mapper::scan::Registry {
        let snapshot = self.snapshot();
        let app_ports = snapshot
            .workloads
            .values()
            .filter_map(|w| {
                let app = w.app_port?;
                Some((app, (w.id.clone(), w.port.unwrap_or(app))))
            })
            .collect();
        let pids = self.pids.lock().map(|p| p.clone()).unwrap_or_default();
        ibac_mapper::scan::Registry { app_ports, pids }
    }

    /// Takes a batch of reports from `reporter`'s proxy. Only server-side
    /// reports count as discovered calls: the server's proxy saw the call
    /// arrive, with the verified identity of its caller.
    pub async fn ingest(
        &self,
        reporter: &WorkloadId,
        reports: Vec<Report>,
    ) -> Result<usize, ControlError> {
        let mut observations = Vec::new();
        for r in reports {
            if &r.reporter != reporter {
                return Err(ControlError::NotAllowed(format!(
                    "{reporter} may not report for {}",
                    r.reporter
                )));
            }
            if r.direction != Direction::Inbound || &r.server != reporter {
                continue;
            }
            let Some(client) = r.client else {
                continue; // unauthenticated: counted by the proxy's metrics, not a workload's call
            };
            let key = match (r.protocol, r.method, r.path) {
                (Protocol::Http, Some(m), Some(p)) => {
                    CallKey::http(client, r.server, r.port, &m, &p)
                }
                (Protocol::Tcp, _, _) => CallKey::tcp(client, r.server, r.port),
                (Protocol::Http, _, _) => continue,
            };
            let at = now();
            let first_seen = parse_rfc3339(&r.first_seen).unwrap_or(at);
            if let Ok(mut o) = self.observed.lock() {
                o.observe(&key, r.verdict, r.count, r.revision, first_seen);
            }
            observations.push(Observation {
                key,
                verdict: Some(r.verdict),
                count: r.count,
                first_seen,
                last_seen: parse_rfc3339(&r.last_seen).unwrap_or(at),
                source: Source::Proxy,
            });
        }
        let n = observations.len();
        self.observe(observations).await?;
        Ok(n)
    }

    /// Folds observations in and persists what they changed.
    pub async fn observe(&self, observations: Vec<Observation>) -> Result<(), ControlError> {
        if observations.is_empty() {
            return Ok(());
        }
        let changed: Vec<(CallKey, CallRecord)> = {
            let mut d = self
                .discovered
                .lock()
                .map_err(|_| ControlError::Internal("mapper lock".into()))?;
            let keys: BTreeSet<CallKey> = observations.into_iter().map(|o| d.observe(o)).collect();
            keys.into_iter()
                .filter_map(|k| d.get(&k).cloned().map(|r| (k, r)))
                .collect()
        };
        self.on_store(move |s| s.save_calls(&changed, &[])).await?;
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Forgets calls not seen within the retention period.
    pub async fn purge(&self) -> Result<usize, ControlError> {
        let cutoff = now() - i64::try_from(self.settings.retention.as_secs()).unwrap_or(i64::MAX);
        let gone = {
            let mut d = self
                .discovered
                .lock()
                .map_err(|_| ControlError::Internal("mapper lock".into()))?;
            d.purge_before(cutoff)
        };
        if gone.is_empty() {
            return Ok(0);
        }
        let n = gone.len();
        self.on_store(move |s| s.save_calls(&[], &gone)).await?;
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(n)
    }

    /// Discovered calls last seen at or after `since` (unix seconds).
    pub fn calls(&self, since: Option<i64>) -> Vec<(CallKey, CallRecord)> {
        self.discovered
            .lock()
            .map(|d| d.since(since))
            .unwrap_or_default()
    }

    /// Forgets every discovered call.
    pub async fn reset_calls(&self, caller: &Caller) -> Result<(), ControlError> {
        if !caller.is_admin() {
            return Err(ControlError::NotAllowed(
                "only an admin token may reset the mapper".into(),
            ));
        }
        let entry = audit_entry(caller, "mapper-reset", "discovered calls", "");
        self.on_store(move |s| s.reset_calls(&entry)).await?;
        if let Ok(mut d) = self.discovered.lock() {
            d.reset();
        }
        self.mapper_version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Whether the verdict of a discovered call would change: used by the
    /// graph to say what a call gets now.
    pub fn verdict_now(&self, key: &CallKey) -> Verdict {
        self.snapshot()
            .policy
            .decide(Some(&key.client), &key.server, &key.request())
            .verdict
    }
}
