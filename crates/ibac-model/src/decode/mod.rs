//! From YAML trees to validated [`Document`]s.
//!
//! Documents are dispatched on `apiVersion` and `kind`; `spec` is read strictly
//! (unknown fields are errors), `metadata` and `status` leniently, as `kubectl get
//! -o yaml` prints them. Documents of other API groups are skipped and counted.

mod intents;
mod settings;

use crate::document::{Document, DocumentKind, Format, Meta};
use crate::error::{DocumentError, Hint};
use crate::location::{Location, SourceName};
use crate::name::{Name, NameError, Namespace};
use crate::read::{Fields, Reader, closest};
use crate::yaml::{self, Limits, Node, Value};

/// How to read sources.
#[derive(Clone, Debug)]
pub struct ParseOptions {
    /// The namespace of documents that name none (`-n`; `default` otherwise).
    pub default_namespace: Namespace,
    /// Safety limits.
    pub limits: Limits,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            default_namespace: Namespace::default_namespace(),
            limits: Limits::default(),
        }
    }
}

/// A document of another API group, passed over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Where it starts.
    pub at: Location,
    /// Its apiVersion.
    pub api_version: String,
    /// Its kind.
    pub kind: String,
}

/// What one source held: the good documents, the ones passed over, and every error.
#[derive(Clone, Debug, Default)]
pub struct Parsed {
    /// Documents that passed every check, in source order.
    pub documents: Vec<Document>,
    /// Documents of other API groups.
    pub skipped: Vec<Skipped>,
    /// Every error found. A document with errors is not in `documents`.
    pub errors: Vec<DocumentError>,
}

impl Parsed {
    /// Every error as the message a user is shown, in the order found.
    pub fn error_messages(&self) -> Vec<String> {
        self.errors.iter().map(ToString::to_string).collect()
    }

    /// Adds another source's results.
    pub fn extend(&mut self, other: Parsed) {
        self.documents.extend(other.documents);
        self.skipped.extend(other.skipped);
        self.errors.extend(other.errors);
    }
}

/// Reads every document in one YAML or JSON source: single or multi-document
/// YAML, a JSON object or array, or a Kubernetes `List`.
pub fn parse_source(file: &SourceName, text: &str, options: &ParseOptions) -> Parsed {
    let mut parsed = Parsed::default();
    let roots = match yaml::parse_stream(file, text, &options.limits) {
        Ok(roots) => roots,
        Err(err) => {
            parsed.errors.push(err);
            return parsed;
        }
    };
    let mut reader = Reader::new(file);
    for root in &roots {
        match &root.value {
            Value::Seq(items) => {
                for item in items {
                    read_document(&mut reader, item, options, &mut parsed, 0);
                }
            }
            _ => read_document(&mut reader, root, options, &mut parsed, 0),
        }
    }
    parsed.errors.extend(reader.into_errors());
    parsed
}

fn scalar_field<'n>(node: &'n Node, name: &str) -> Option<&'n str> {
    let Value::Map(entries) = &node.value else {
        return None;
    };
    entries
        .iter()
        .find_map(|(k, v)| match (&k.value, &v.value) {
            (Value::Str { text: key, .. }, Value::Str { text, .. }) if key == name => {
                Some(text.as_str())
            }
            _ => None,
        })
}

fn read_document(
    reader: &mut Reader<'_>,
    node: &Node,
    options: &ParseOptions,
    parsed: &mut Parsed,
    depth: usize,
) {
    if !matches!(node.value, Value::Map(_)) {
        reader.wrong_type(node, "a document (a map with apiVersion and kind)");
        return;
    }
    let api_version = scalar_field(node, "apiVersion");
    let kind = scalar_field(node, "kind");
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        let missing = if api_version.is_none() {
            "apiVersion"
        } else {
            "kind"
        };
        let at = reader.at(node);
        reader.error(DocumentError::MissingField {
            at,
            field: missing,
            within: "document",
        });
        return;
    };
    if kind == "List" || (kind.ends_with("List") && api_version != "ibac.dev/v1") {
        read_list(reader, node, options, parsed, depth);
        return;
    }
    let format = match Format::parse(api_version) {
        Ok(format) => format,
        Err(Some(hint)) => {
            let at = reader.at(node);
            reader.error(DocumentError::UnsupportedKind {
                at,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                hint: Hint::new(hint),
            });
            return;
        }
        Err(None) => {
            parsed.skipped.push(Skipped {
                at: reader.at(node),
                api_version: api_version.to_string(),
                kind: kind.to_string(),
            });
            return;
        }
    };
    let doc_kind = match DocumentKind::parse(kind) {
        Some(DocumentKind::EnforcementConfig) if format != Format::IbacV1 => {
            let at = reader.at(node);
            reader.error(DocumentError::UnsupportedKind {
                at,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                hint: Hint::new(
                    "EnforcementConfig is an ibac document: use apiVersion ibac.dev/v1",
                ),
            });
            return;
        }
        Some(k) => k,
        None => {
            let names: Vec<&str> = DocumentKind::ALL.iter().map(|k| k.as_str()).collect();
            let at = reader.at(node);
            reader.error(DocumentError::UnsupportedKind {
                at,
                api_version: api_version.to_string(),
                kind: kind.to_string(),
                hint: match closest(kind, &names) {
                    Some(c) => Hint::did_you_mean(Some(c)),
                    None => Hint::new(format!("ibac reads {}", names.join(", "))),
                },
            });
            return;
        }
    };
    let before = reader.error_count();
    let Some(fields) = reader.map(
        node,
        "document",
        &["apiVersion", "kind", "metadata", "spec", "status"],
    ) else {
        return;
    };
    let metadata = read_metadata(reader, &fields, options);
    let Some(spec) = fields.required(reader, "spec") else {
        return;
    };
    let cx = DocContext {
        format,
        namespace: metadata.namespace.clone(),
    };
    let document = match doc_kind {
        DocumentKind::ClientIntents => {
            intents::read(reader, spec, &cx).map(|(workload, targets)| {
                Document::ClientIntents(crate::document::ClientIntents {
                    meta: metadata.finish(reader, node, format, workload.id.name()),
                    workload,
                    targets,
                })
            })
        }
        DocumentKind::ProtectedService => {
            settings::protected_service(reader, spec, &cx).map(|workload| {
                Document::ProtectedService(crate::document::ProtectedService {
                    meta: metadata.finish(reader, node, format, workload.id.name()),
                    workload,
                })
            })
        }
        DocumentKind::EnforcementConfig => settings::enforcement_config(
            reader,
            spec,
            &cx,
            metadata.finish(reader, node, format, "default"),
        )
        .map(Document::EnforcementConfig),
        DocumentKind::KafkaServerConfig => {
            settings::kafka_server_config(reader, spec, &cx).map(|c| {
                let meta = metadata.finish(reader, node, format, c.workload.id.name());
                Document::KafkaServerConfig(crate::document::KafkaServerConfig { meta, ..c })
            })
        }
        DocumentKind::PostgreSqlServerConfig | DocumentKind::MySqlServerConfig => {
            let dialect = if doc_kind == DocumentKind::MySqlServerConfig {
                crate::document::SqlDialect::MySql
            } else {
                crate::document::SqlDialect::PostgreSql
            };
            if metadata.name.is_none() {
                let at = reader.at(node);
                reader.error(DocumentError::Invalid {
                    at,
                    message: format!("{kind} needs `metadata.name`: intents name the server by it"),
                });
            }
            settings::database_server_config(reader, spec, dialect).map(|(address, credentials)| {
                Document::DatabaseServerConfig(crate::document::DatabaseServerConfig {
                    meta: metadata.finish(reader, node, format, ""),
                    dialect,
                    address,
                    credentials,
                })
            })
        }
    };
    if let Some(document) = document
        && reader.error_count() == before
    {
        parsed.documents.push(document);
    }
}

fn read_list(
    reader: &mut Reader<'_>,
    node: &Node,
    options: &ParseOptions,
    parsed: &mut Parsed,
    depth: usize,
) {
    if depth > 0 {
        reader.rule(node, "a List inside a List is not supported");
        return;
    }
    let Some(fields) = reader.map(node, "List", &["apiVersion", "kind", "metadata", "items"])
    else {
        return;
    };
    let Some(items) = fields.get("items") else {
        return;
    };
    let Some(items) = reader.list(items, "a list of documents") else {
        return;
    };
    for item in items {
        read_document(reader, item, options, parsed, depth + 1);
    }
}

/// What a document's parts need to know about the document.
pub(crate) struct DocContext {
    pub(crate) format: Format,
    pub(crate) namespace: Namespace,
}

struct Metadata {
    name: Option<String>,
    namespace: Namespace,
    namespace_given: bool,
}

impl Metadata {
    fn finish(&self, reader: &Reader<'_>, node: &Node, format: Format, fallback: &str) -> Meta {
        Meta {
            name: self.name.clone().unwrap_or_else(|| fallback.to_string()),
            namespace: self.namespace.clone(),
            namespace_given: self.namespace_given,
            origin: reader.at(node),
            format,
        }
    }
}

fn read_metadata(reader: &mut Reader<'_>, fields: &Fields<'_>, options: &ParseOptions) -> Metadata {
    let mut metadata = Metadata {
        name: None,
        namespace: options.default_namespace.clone(),
        namespace_given: false,
    };
    let Some(node) = fields.get("metadata") else {
        return metadata;
    };
    let Some(meta) = reader.open_map(node, "metadata") else {
        return metadata;
    };
    if let Some(name) = meta.get("name")
        && let Some(text) = reader.identifier(name, "a string")
    {
        match check_object_name(text) {
            Ok(()) => metadata.name = Some(text.to_string()),
            Err(hint) => reader.invalid(name, "metadata.name", text, Hint::new(hint)),
        }
    }
    if let Some(ns) = meta.get("namespace")
        && let Some(text) = reader.identifier(ns, "a string")
    {
        match Namespace::parse(text) {
            Ok(ns) => {
                metadata.namespace = ns;
                metadata.namespace_given = true;
            }
            Err(e) => reader.invalid(ns, "namespace", text, name_hint(&e)),
        }
    }
    metadata
}

/// Kubernetes object names: DNS subdomains.
fn check_object_name(text: &str) -> Result<(), String> {
    let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if text.is_empty() || text.len() > 253 {
        return Err("object names have 1 to 253 characters".into());
    }
    let lower = text.to_ascii_lowercase();
    if lower != text && check_object_name(&lower).is_ok() {
        return Err(format!("names are lowercase: did you mean `{lower}`?"));
    }
    if !text.chars().all(ok_char) || !edge(text.chars().next()) || !edge(text.chars().last()) {
        return Err("object names have lowercase letters, digits, `-` and `.`, and start and end with a letter or digit".into());
    }
    Ok(())
}

/// The hint for a refused name.
pub(crate) fn name_hint(error: &NameError) -> Hint {
    Hint::new(error.to_string())
}

/// Reads a workload name (no namespace part).
pub(crate) fn read_name(reader: &mut Reader<'_>, node: &Node, what: &'static str) -> Option<Name> {
    reader.parsed(node, what, Name::parse, |e| match e {
        NameError::Character('.', _) => {
            Hint::new("the namespace comes from `metadata.namespace`: write the name alone")
        }
        e => name_hint(&e),
    })
}

#[cfg(test)]
mod tests;
