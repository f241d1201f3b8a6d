//! Checks that concern several documents together: one ClientIntents per
//! client, one EnforcementConfig, one config per server, unique object keys.

use std::collections::HashMap;

use crate::document::{Document, DocumentKey, DocumentKind};
use crate::error::DocumentError;
use crate::location::Location;

/// Removes documents that clash with an earlier one, reporting each clash on
/// the later document. What remains is consistent.
pub fn check_set(documents: Vec<Document>) -> (Vec<Document>, Vec<DocumentError>) {
    let mut errors = Vec::new();
    let mut keys: HashMap<DocumentKey, Location> = HashMap::new();
    let mut clients: HashMap<String, Location> = HashMap::new();
    let mut kafka_servers: HashMap<String, Location> = HashMap::new();
    let mut databases: HashMap<String, Location> = HashMap::new();
    let mut settings: Option<Location> = None;
    let mut kept = Vec::with_capacity(documents.len());
    for doc in documents {
        let at = doc.meta().origin.clone();
        let clash =
            |seen: &mut HashMap<String, Location>, what, value: String| match seen.get(&value) {
                Some(first) => Some(DocumentError::Duplicate {
                    at: at.clone(),
                    what,
                    value,
                    first: first.clone(),
                }),
                None => {
                    seen.insert(value, at.clone());
                    None
                }
            };
        let key = doc.key();
        let error = if let Some(first) = keys.get(&key) {
            Some(DocumentError::Duplicate {
                at: at.clone(),
                what: "document",
                value: key.to_string(),
                first: first.clone(),
            })
        } else {
            match &doc {
                Document::ClientIntents(ci) => clash(
                    &mut clients,
                    "ClientIntents for client",
                    ci.workload.id.to_string(),
                ),
                Document::KafkaServerConfig(k) => clash(
                    &mut kafka_servers,
                    "KafkaServerConfig for server",
                    k.workload.id.to_string(),
                ),
                // Database server names are cluster-wide, across both dialects.
                Document::DatabaseServerConfig(d) => clash(
                    &mut databases,
                    "database server config",
                    d.meta.name.clone(),
                ),
                Document::EnforcementConfig(_) => match &settings {
                    Some(first) => Some(DocumentError::Duplicate {
                        at: at.clone(),
                        what: "settings document",
                        value: DocumentKind::EnforcementConfig.to_string(),
                        first: first.clone(),
                    }),
                    None => {
                        settings = Some(at.clone());
                        None
                    }
                },
                Document::ProtectedService(_) => None,
            }
        };
        match error {
            Some(e) => errors.push(e),
            None => {
                keys.insert(key, at);
                kept.push(doc);
            }
        }
    }
    (kept, errors)
}
