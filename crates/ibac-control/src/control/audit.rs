//! The audit log: who changed what, when.

use super::*;

impl Control {
    /// The last `limit` audit records.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, ControlError> {
        self.on_store(move |s| s.audit(limit)).await
    }
}
