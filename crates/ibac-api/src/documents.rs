//! Writing and reading documents: `apply`, `delete` and `get`.

use serde::{Deserialize, Serialize};

/// One source of documents sent to `apply` or `delete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceText {
    /// Its name, for error messages (the file it came from).
    pub name: String,
    /// Its text: YAML or JSON, one or more documents.
    pub text: String,
}

/// The body of `POST /v1/apply` and `POST /v1/delete`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApplyRequest {
    /// The documents.
    pub sources: Vec<SourceText>,
    /// The namespace of documents that name none.
    pub namespace: Option<String>,
    /// Check only; change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// What a request did to one document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentChange {
    /// It is new.
    Created,
    /// It replaced another version.
    Configured,
    /// It was stored already, as it is.
    Unchanged,
    /// It was removed.
    Deleted,
}

impl DocumentChange {
    /// The word the CLI prints.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentChange::Created => "created",
            DocumentChange::Configured => "configured",
            DocumentChange::Unchanged => "unchanged",
            DocumentChange::Deleted => "deleted",
        }
    }
}

/// What happened to one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// `kind namespace/name`.
    pub document: String,
    /// What happened.
    pub outcome: DocumentChange,
}

/// What a successful apply or delete did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Per document.
    pub documents: Vec<Applied>,
    /// The revision now published (proxies follow it: see
    /// [`crate::Rollout`]).
    pub revision: u64,
    /// Things the caller should know, such as a protected name nothing knows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl Outcome {
    /// Whether anything changed that proxies must follow.
    pub fn changed(&self) -> bool {
        self.documents
            .iter()
            .any(|d| d.outcome != DocumentChange::Unchanged)
    }
}

/// Whether a stored document is in force.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentState {
    /// In force as stored.
    Ok,
    /// It no longer compiles; its last good version stays in force.
    Stale,
    /// It never compiled; it is stored and reported, not in force.
    Failed,
}

impl DocumentState {
    /// The word tables show.
    pub fn as_str(self) -> &'static str {
        match self {
            DocumentState::Ok => "ok",
            DocumentState::Stale => "stale",
            DocumentState::Failed => "failed",
        }
    }
}

/// A stored document, as `get` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentInfo {
    /// The kind.
    pub kind: String,
    /// The namespace.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// Whether it is in force.
    pub status: DocumentState,
    /// Errors, for stale or failed documents.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The canonical YAML.
    pub source: String,
}
