//! Reports: every connection and request, summarized and sent in batches to a
//! report sink — a JSON-lines file for now; the network mapper consumes them.
//!
//! One record per line:
//!
//! ```json
//! {"reporter":"productcatalogservice.shop","direction":"inbound","client":"frontend.shop",
//!  "server":"productcatalogservice.shop","port":3550,"protocol":"http","method":"GET",
//!  "path":"/products","verdict":"allowed","count":12,
//!  "firstSeen":"2026-11-23T20:00:01Z","lastSeen":"2026-11-23T20:00:09Z"}
//! ```
//!
//! `client` is null for unauthenticated callers; `method` and `path` are null
//! for connections (`protocol: "tcp"`); the path is the normalized one.
//! `revision` is the control plane's revision of the policy that decided
//! (absent for policies from files), so the control plane can tell a verdict
//! a proxy gave under the policy in force from one under an older policy.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ibac_model::{Protocol, WorkloadId};
use ibac_policy::Verdict;
use time::OffsetDateTime;

pub use ibac_api::proxy::{Direction, Report};

/// Where batches of reports go.
pub trait ReportSink: Send + Sync {
    /// Takes a batch.
    fn send(&self, batch: &[Report]) -> std::io::Result<()>;
}

/// JSON lines appended to a file.
pub struct JsonlSink(Mutex<File>);

impl JsonlSink {
    /// Opens (or creates, 0600) the file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        Ok(JsonlSink(Mutex::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(path)?,
        )))
    }
}

impl ReportSink for JsonlSink {
    fn send(&self, batch: &[Report]) -> std::io::Result<()> {
        let mut text = Vec::new();
        for r in batch {
            serde_json::to_writer(&mut text, r).map_err(std::io::Error::other)?;
            text.push(b'\n');
        }
        let mut file = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("report sink lock poisoned"))?;
        file.write_all(&text)?;
        file.flush()
    }
}

/// Discards reports.
pub struct NoReports;

impl ReportSink for NoReports {
    fn send(&self, _batch: &[Report]) -> std::io::Result<()> {
        Ok(())
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    direction: Direction,
    client: Option<WorkloadId>,
    server: WorkloadId,
    port: u16,
    protocol: Protocol,
    method: Option<String>,
    path: Option<String>,
    verdict: Verdict,
    revision: Option<u64>,
}

/// How often, and first and last when.
type Seen = (u64, OffsetDateTime, OffsetDateTime);

/// Summarizes calls between flushes.
#[derive(Clone)]
pub struct Reporter {
    reporter: WorkloadId,
    pending: Arc<Mutex<BTreeMap<Key, Seen>>>,
}

/// What one call was.
pub struct Call<'a> {
    /// Which side saw it.
    pub direction: Direction,
    /// Caller.
    pub client: Option<&'a WorkloadId>,
    /// Server.
    pub server: &'a WorkloadId,
    /// Port.
    pub port: u16,
    /// Method and normalized path, for HTTP.
    pub http: Option<(&'a str, &'a str)>,
    /// Verdict.
    pub verdict: Verdict,
    /// The revision of the policy that decided.
    pub revision: Option<u64>,
}

/// Paths seen per summary are capped, so a scan of random URLs cannot grow the
/// reporter's memory without bound; beyond it, paths are reported as `*`.
const MAX_KEYS: usize = 10_000;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Reporter {
    /// A reporter for the proxy of `reporter`.
    pub fn new(reporter: WorkloadId) -> Self {
        Reporter {
            reporter,
            pending: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// Records one call.
    pub fn record(&self, call: Call<'_>) {
        let now = OffsetDateTime::now_utc();
        let Ok(mut pending) = self.pending.lock() else {
            return;
        };
        let full = pending.len() >= MAX_KEYS;
        let key = Key {
            direction: call.direction,
            client: call.client.cloned(),
            server: call.server.clone(),
            port: call.port,
            protocol: if call.http.is_some() {
                Protocol::Http
            } else {
                Protocol::Tcp
            },
            method: call.http.map(|(m, _)| m.to_string()),
            path: call
                .http
                .map(|(_, p)| if full { "*".to_string() } else { p.to_string() }),
            verdict: call.verdict,
            revision: call.revision,
        };
        let entry = pending.entry(key).or_insert((0, now, now));
        entry.0 += 1;
        entry.2 = now;
    }

    /// Takes everything recorded since the last flush.
    pub fn drain(&self) -> Vec<Report> {
        let Ok(mut pending) = self.pending.lock() else {
            return Vec::new();
        };
        std::mem::take(&mut *pending)
            .into_iter()
            .map(|(k, (count, first, last))| Report {
                reporter: self.reporter.clone(),
                direction: k.direction,
                client: k.client,
                server: k.server,
                port: k.port,
                protocol: k.protocol,
                method: k.method,
                path: k.path,
                verdict: k.verdict,
                count,
                first_seen: rfc3339(first),
                last_seen: rfc3339(last),
                revision: k.revision,
            })
            .collect()
    }

    /// Sends a batch every `interval` until the process ends.
    pub fn spawn_flusher(
        &self,
        sink: Arc<dyn ReportSink>,
        interval: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let me = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                me.flush(sink.as_ref());
            }
        })
    }

    /// Sends what is pending now.
    pub fn flush(&self, sink: &dyn ReportSink) {
        let batch = self.drain();
        if !batch.is_empty()
            && let Err(e) = sink.send(&batch)
        {
            tracing::warn!(error = %e, reports = batch.len(), "reports lost: the sink refused them");
        }
    }
}
