//! Registered workloads: registration with a join token, removal with
//! revocation, and when their proxies last called.

use super::*;

impl Control {
    /// Whether `id` is registered (so its SVID may call the proxy API).
    pub fn is_registered(&self, id: &WorkloadId) -> bool {
        self.snapshot.borrow().workloads.contains_key(id)
    }

    /// Notes that a workload's proxy called.
    pub fn contact(&self, id: &WorkloadId) {
        if let Ok(mut c) = self.contacts.lock() {
            c.insert(id.clone(), now());
        }
    }

    /// How many proxies called within `window` seconds.
    pub fn proxies_connected(&self, window: i64) -> usize {
        let cutoff = now() - window;
        self.contacts
            .lock()
            .map(|c| c.values().filter(|t| **t >= cutoff).count())
            .unwrap_or(0)
    }

    /// Registered workloads.
    pub fn workloads(&self) -> Vec<WorkloadInfo> {
        let snapshot = self.snapshot();
        let contacts = self.contacts.lock().map(|c| c.clone()).unwrap_or_default();
        let mut states = self
            .enforcement
            .states(snapshot.workloads.keys(), snapshot.revision);
        snapshot
            .workloads
            .values()
            .map(|w| WorkloadInfo {
                id: w.id.to_string(),
                address: w.address,
                app_port: w.app_port,
                protected: snapshot.policy.protection(&w.id).is_protected(),
                last_contact: contacts.get(&w.id).copied(),
                enforcement: states.remove(&w.id).unwrap_or(Enforcement::Silent {
                    enforced: None,
                    last_report: None,
                }),
            })
            .collect()
    }

    /// Registers (or updates) a workload and makes a join token for it.
    pub async fn add_workload(
        &self,
        caller: &Caller,
        registration: &Registration,
    ) -> Result<Registered, ControlError> {
        let id = WorkloadId::parse(&registration.id)
            .map_err(|e| ControlError::Invalid(format!("`{}`: {e}", registration.id)))?;
        if !caller.may_change(id.namespace()) {
            return Err(ControlError::NotAllowed(format!(
                "{} may not register workloads in `{}`",
                caller.audit_name(),
                id.namespace()
            )));
        }
        let (token, _) = self
            .write(|current| {
                let existing = current.workloads.get(&id);
                let row = WorkloadRow {
                    id: id.clone(),
                    address: registration.address.or(existing.and_then(|w| w.address)),
                    app_port: registration.app_port.or(existing.and_then(|w| w.app_port)),
                    port: registration.port.or(existing.and_then(|w| w.port)),
                    created_at: existing.map_or_else(now, |w| w.created_at),
                };
                let ttl = Duration::from_secs(
                    registration
                        .token_ttl_seconds
                        .unwrap_or(15 * 60)
                        .clamp(60, 7 * 24 * 3600),
                );
                let token = self.issuance.create_token(
                    &id,
                    time::Duration::try_from(ttl).unwrap_or(time::Duration::minutes(15)),
                    &caller.audit_name(),
                )?;
                let detail = match row.address {
                    Some(a) => format!("proxy at {a}; join token issued"),
                    None => "join token issued".into(),
                };
                let change = Change {
                    put_workloads: vec![row.clone()],
                    ..audited(caller, "workload-add", &id, detail)
                };
                let mut workloads = current.workloads.clone();
                workloads.insert(id.clone(), row);
                Ok(Planned {
                    answer: token,
                    write: Some(Write::of_workloads(change, workloads)),
                })
            })
            .await?;
        Ok(Registered {
            id: id.to_string(),
            token,
        })
    }

    /// Unregisters a workload and revokes it: its tokens die and it cannot renew.
    pub async fn remove_workload(&self, caller: &Caller, id: &str) -> Result<(), ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        if !caller.may_change(id.namespace()) {
            return Err(ControlError::NotAllowed(format!(
                "{} may not remove workloads in `{}`",
                caller.audit_name(),
                id.namespace()
            )));
        }
        self.write(|current| {
            if !current.workloads.contains_key(&id) {
                return Err(ControlError::NotFound(format!("`{id}` is not registered")));
            }
            self.issuance.revoke(&id, &caller.audit_name())?;
            let change = Change {
                delete_workloads: vec![id.clone()],
                ..audited(caller, "workload-remove", &id, "unregistered and revoked")
            };
            let mut workloads = current.workloads.clone();
            workloads.remove(&id);
            Ok(Planned {
                answer: (),
                write: Some(Write::of_workloads(change, workloads)),
            })
        })
        .await?;
        self.enforcement.forget(&id);
        Ok(())
    }
}
