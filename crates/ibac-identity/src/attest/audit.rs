//! The audit log: every issuance and every refusal, with who asked and why.
//! If the audit record cannot be written, the issuance does not happen.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Mutex;

use serde::Serialize;

/// One audited event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    /// Unix seconds.
    pub time: i64,
    /// `join`, `renew`, `revoke`, `token`, …
    pub action: String,
    /// Who asked: a SPIFFE ID or a network address.
    pub caller: String,
    /// The identity concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// `issued`, `refused`, `done`.
    pub outcome: String,
    /// Why it was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The serial of an issued SVID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
}

/// Where audit events go.
pub trait AuditLog: Send + Sync {
    /// Records an event durably enough for its kind of log.
    fn record(&self, event: &AuditEvent) -> std::io::Result<()>;
}

/// JSON lines appended to a file created 0600.
pub struct JsonlAudit {
    file: Mutex<File>,
}

impl JsonlAudit {
    /// Opens (or creates) the log.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(JsonlAudit {
            file: Mutex::new(file),
        })
    }
}

impl AuditLog for JsonlAudit {
    fn record(&self, event: &AuditEvent) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| std::io::Error::other("audit log lock poisoned"))?;
        file.write_all(&line)
    }
}

/// Events kept in memory (tests, and embedding in a process with its own store).
#[derive(Default)]
pub struct MemoryAudit {
    events: Mutex<Vec<AuditEvent>>,
}

impl MemoryAudit {
    /// Everything recorded so far.
    pub fn events(&self) -> Vec<AuditEvent> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl AuditLog for MemoryAudit {
    fn record(&self, event: &AuditEvent) -> std::io::Result<()> {
        self.events
            .lock()
            .map_err(|_| std::io::Error::other("audit lock poisoned"))?
            .push(event.clone());
        Ok(())
    }
}
