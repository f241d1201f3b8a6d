//! The audit log: who changed what, when.

use super::*;

impl Control {
    /// The last `limit` audit records.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRow>, ControlError> {
        let store = self.store.clone();
        blocking(move || {
            let s = store
                .lock()
                .map_err(|_| ControlError::Internal("store lock".into()))?;
            Ok(s.audit(limit)?)
        })
        .await
    }
}
