//! Documents: apply and delete (all or nothing, checked with the proxies'
//! decoder before anything is stored), protection and the mode, and what is
//! stored.

use super::*;

/// What a request does with the documents it sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocumentEdit {
    /// Create or configure them.
    Apply,
    /// Remove the documents they name.
    Delete,
}

impl Control {
    /// Parses sources as a request sends them.
    fn parse(sources: &[SourceText], namespace: &Namespace) -> Result<Vec<Document>, ControlError> {
        let options = ParseOptions {
            default_namespace: namespace.clone(),
            ..ParseOptions::default()
        };
        let mut documents = Vec::new();
        let mut errors = Vec::new();
        for s in sources {
            let mut parsed = parse_source(&SourceName::from(s.name.as_str()), &s.text, &options);
            errors.append(&mut parsed.errors);
            documents.append(&mut parsed.documents);
        }
        if !errors.is_empty() {
            return Err(ControlError::Documents(errors));
        }
        if documents.is_empty() {
            return Err(ControlError::Invalid(
                "no ibac or Otterize documents in the input".into(),
            ));
        }
        let (documents, errors) = ibac_model::check_set(documents);
        if !errors.is_empty() {
            return Err(ControlError::Documents(errors));
        }
        Ok(documents)
    }

    fn check_scope(caller: &Caller, docs: &[Document]) -> Result<(), ControlError> {
        for doc in docs {
            let meta = doc.meta();
            let settings = doc.kind() == DocumentKind::EnforcementConfig;
            if (settings && !caller.is_admin()) || !caller.may_change(meta.namespace.as_str()) {
                return Err(ControlError::NotAllowed(format!(
                    "{}: {} may not change {} {}/{}",
                    meta.origin,
                    caller.audit_name(),
                    doc.kind(),
                    meta.namespace,
                    meta.name
                )));
            }
        }
        Ok(())
    }

    /// Applies or deletes (as `edit` says) the documents the sources hold,
    /// all or nothing; with `dry_run`, checks only. Both are parsed and
    /// checked against the caller's scope the same way before either
    /// touches the policy.
    pub async fn edit(
        &self,
        edit: DocumentEdit,
        caller: &Caller,
        sources: &[SourceText],
        namespace: &Namespace,
        dry_run: bool,
    ) -> Result<Outcome, ControlError> {
        let docs = Self::parse(sources, namespace)?;
        Self::check_scope(caller, &docs)?;
        match edit {
            DocumentEdit::Apply => self.apply_documents(caller, docs, dry_run, "apply").await,
            DocumentEdit::Delete => {
                let keys: Vec<DocumentKey> = docs
                    .iter()
                    .map(key_of)
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect();
                self.delete_keys(caller, &docs, keys, dry_run, "delete")
                    .await
            }
        }
    }

    async fn apply_documents(
        &self,
        caller: &Caller,
        docs: Vec<Document>,
        dry_run: bool,
        action: &str,
    ) -> Result<Outcome, ControlError> {
        let (applied, revision) = self
            .write(|current| {
                let mut stored: HashMap<DocumentKey, String> = HashMap::new();
                for (key, doc, _) in current.policy.documents() {
                    stored.insert(key.clone(), canonical(doc)?);
                }
                let next = current
                    .policy
                    .apply(docs.iter().cloned(), &NoFacts)
                    .map_err(ControlError::Documents)?;
                // Checked before anything is written, dry run included.
                let documents: Arc<str> = documents_for_proxies(&next)?.into();
                let mut change = Change::default();
                let mut applied = Vec::new();
                for doc in &docs {
                    let key = key_of(doc);
                    let source = canonical(doc)?;
                    let outcome = match stored.get(&key) {
                        None => DocumentChange::Created,
                        Some(old) if *old == source => DocumentChange::Unchanged,
                        Some(_) => DocumentChange::Configured,
                    };
                    applied.push(Applied {
                        document: key.to_string(),
                        outcome,
                    });
                    if outcome == DocumentChange::Unchanged {
                        continue;
                    }
                    let (kind, namespace, name) = stored_key(&key);
                    change
                        .audit
                        .push(audit_entry(caller, action, &key, outcome.as_str()));
                    change.put_documents.push(StoredDocument {
                        kind,
                        namespace,
                        name,
                        source,
                    });
                }
                let write = (!dry_run && !change.put_documents.is_empty()).then(|| Write {
                    change,
                    policy: Some((Arc::new(next), documents)),
                    workloads: current.workloads.clone(),
                });
                Ok(Planned {
                    answer: applied,
                    write,
                })
            })
            .await?;
        Ok(Outcome {
            documents: applied,
            revision,
            warnings: Vec::new(),
        })
    }

    async fn delete_keys(
        &self,
        caller: &Caller,
        docs: &[Document],
        keys: Vec<DocumentKey>,
        dry_run: bool,
        action: &str,
    ) -> Result<Outcome, ControlError> {
        let ((), revision) = self
            .write(|current| {
                let next = current.policy.remove(&keys).map_err(|errors| {
                    // Name the document as the user wrote it, not the store's key.
                    let errors = errors
                        .into_iter()
                        .zip(keys.iter())
                        .map(|(e, key)| {
                            let at = docs
                                .iter()
                                .find(|d| key_of(d) == *key)
                                .map(|d| d.meta().origin.clone())
                                .unwrap_or_else(|| Location::made(Maker::Request));
                            match e {
                                DocumentError::Invalid { message, .. } => {
                                    DocumentError::Invalid { at, message }
                                }
                                other => other,
                            }
                        })
                        .collect();
                    ControlError::Documents(errors)
                })?;
                let documents: Arc<str> = documents_for_proxies(&next)?.into();
                let change = Change {
                    delete_documents: keys.iter().map(stored_key).collect(),
                    audit: keys
                        .iter()
                        .map(|k| audit_entry(caller, action, k, "deleted"))
                        .collect(),
                    ..Change::default()
                };
                let write = (!dry_run).then(|| Write {
                    change,
                    policy: Some((Arc::new(next), documents)),
                    workloads: current.workloads.clone(),
                });
                Ok(Planned { answer: (), write })
            })
            .await?;
        Ok(Outcome {
            documents: keys
                .iter()
                .map(|k| Applied {
                    document: k.to_string(),
                    outcome: DocumentChange::Deleted,
                })
                .collect(),
            revision,
            warnings: Vec::new(),
        })
    }

    /// Stored documents, optionally of one kind.
    pub fn documents(&self, kind: Option<DocumentKind>) -> Result<Vec<DocumentInfo>, ControlError> {
        let snapshot = self.snapshot();
        let mut out = Vec::new();
        for (key, doc, status) in snapshot.policy.documents() {
            if kind.is_some_and(|k| k != key.kind) {
                continue;
            }
            let (status, errors) = match status {
                DocumentStatus::Ok => (DocumentState::Ok, Vec::new()),
                DocumentStatus::Stale(e) => (DocumentState::Stale, e),
                DocumentStatus::Failed(e) => (DocumentState::Failed, e),
            };
            out.push(DocumentInfo {
                kind: key.kind.as_str().into(),
                namespace: key.namespace.to_string(),
                name: key.name.clone(),
                status,
                errors: errors.iter().map(ToString::to_string).collect(),
                source: canonical(doc)?,
            });
        }
        Ok(out)
    }

    /// Protects a server with a ProtectedService.
    pub async fn protect(&self, caller: &Caller, id: &str) -> Result<Outcome, ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        let doc = Document::ProtectedService(ProtectedService {
            meta: Meta {
                name: id.name().to_string(),
                namespace: id.namespace_owned(),
                origin: Location::made(Maker::Protect),
                format: Format::IbacV1,
                namespace_given: true,
            },
            workload: WorkloadRef {
                id: id.clone(),
                kind: None,
            },
        });
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        let known = self.knows(&id);
        let mut outcome = self
            .apply_documents(caller, vec![doc.clone()], false, "protect")
            .await?;
        if !known {
            outcome.warnings.push(format!(
                "nothing named `{id}` is known yet (no registered workload, intent or discovered call): it is protected now, and stays so when it appears"
            ));
        }
        Ok(outcome)
    }

    /// Whether a workload, an intent or a discovered call names `id`.
    fn knows(&self, id: &WorkloadId) -> bool {
        let snapshot = self.snapshot();
        if snapshot.workloads.contains_key(id) {
            return true;
        }
        let declared = snapshot
            .policy
            .documents()
            .into_iter()
            .any(|(_, d, _)| match d {
                Document::ClientIntents(ci) => {
                    &ci.workload.id == id
                        || ci.targets.iter().any(|t| match &t.kind {
                            ibac_model::TargetKind::Workload(c)
                            | ibac_model::TargetKind::Service(c) => &c.id == id,
                            ibac_model::TargetKind::Kafka(k) => &k.server == id,
                            _ => false,
                        })
                }
                _ => false,
            });
        declared
            || self
                .discovered
                .lock()
                .map(|d| {
                    d.since(None)
                        .iter()
                        .any(|(k, _)| &k.client == id || &k.server == id)
                })
                .unwrap_or(false)
    }

    /// Removes the ProtectedService of a server (`ibac unprotect`). Other
    /// protection (the mode, an enforced namespace) is not touched, and the
    /// outcome says when the server stays protected because of it.
    pub async fn unprotect(
        &self,
        caller: &Caller,
        id: &str,
        dry_run: bool,
    ) -> Result<Outcome, ControlError> {
        let id =
            WorkloadId::parse(id).map_err(|e| ControlError::Invalid(format!("`{id}`: {e}")))?;
        let key = DocumentKey {
            kind: DocumentKind::ProtectedService,
            namespace: id.namespace_owned(),
            name: id.name().to_string(),
        };
        let current = self.snapshot();
        let Some(doc) = current
            .policy
            .documents()
            .into_iter()
            .find(|(k, _, _)| **k == key)
            .map(|(_, d, _)| d.clone())
        else {
            return Err(ControlError::NotFound(format!(
                "no ProtectedService protects `{id}`{}",
                if current.policy.protection(&id).is_protected() {
                    "; it is protected by the mode or its enforced namespace: change those with `ibac mode` or the EnforcementConfig"
                } else {
                    ""
                }
            )));
        };
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        let mut outcome = self
            .delete_keys(caller, &[doc], vec![key], dry_run, "unprotect")
            .await?;
        if self.snapshot().policy.protection(&id).is_protected() && !dry_run {
            outcome.warnings.push(format!(
                "`{id}` stays protected: the mode or its enforced namespace protects it"
            ));
        }
        Ok(outcome)
    }

    /// Sets the mode, keeping the other settings.
    pub async fn set_mode(&self, caller: &Caller, mode: Mode) -> Result<Outcome, ControlError> {
        let existing =
            self.snapshot()
                .policy
                .documents()
                .into_iter()
                .find_map(|(_, d, _)| match d {
                    Document::EnforcementConfig(c) => Some(c.clone()),
                    _ => None,
                });
        let config = match existing {
            Some(mut c) => {
                c.mode = mode;
                c
            }
            None => EnforcementConfig {
                meta: Meta {
                    name: "default".into(),
                    namespace: Namespace::parse("ibac-system")
                        .map_err(|e| ControlError::Internal(e.to_string()))?,
                    origin: Location::made(Maker::Mode),
                    format: Format::IbacV1,
                    namespace_given: true,
                },
                mode,
                enforced_namespaces: Vec::new(),
                enforcers: Default::default(),
                external_traffic: Default::default(),
            },
        };
        let doc = Document::EnforcementConfig(config);
        Self::check_scope(caller, std::slice::from_ref(&doc))?;
        self.apply_documents(caller, vec![doc], false, "mode").await
    }
}
