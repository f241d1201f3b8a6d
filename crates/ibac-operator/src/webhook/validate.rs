//! The validating webhook: every ibac object the API server is asked to create
//! or change is read by ibac-model exactly as `ibac validate` reads a file, and
//! refused with the same messages; the place is the field path
//! (`spec.targets[2].kafka.topics[0].operations[1]`) instead of a line.
//!
//! The object is written out as one line of JSON (which the model reads as
//! YAML) while the column where every key and value starts is noted; the
//! column of an error then names its field.

use ibac_model::{DocumentError, Location, Namespace, ParseOptions, Parsed, parse_source};
use serde_json::{Value, json};

/// The object's text and, for every node and key, its 1-based column and path.
#[derive(Clone, Debug)]
pub(crate) struct Indexed {
    text: String,
    starts: Vec<(u32, String)>,
}

impl Indexed {
    /// No object: every place is the whole of it.
    pub(crate) fn empty() -> Indexed {
        Indexed {
            text: String::new(),
            starts: Vec::new(),
        }
    }
}

fn index(value: &Value) -> Indexed {
    let mut indexed = Indexed {
        text: String::new(),
        starts: Vec::new(),
    };
    let mut column = 0u32;
    emit(value, "", &mut indexed, &mut column);
    indexed
}

fn push(indexed: &mut Indexed, column: &mut u32, text: &str) {
    indexed.text.push_str(text);
    *column += u32::try_from(text.chars().count()).unwrap_or(u32::MAX);
}

fn emit(value: &Value, path: &str, indexed: &mut Indexed, column: &mut u32) {
    indexed.starts.push((*column + 1, path.to_owned()));
    match value {
        Value::Object(map) => {
            push(indexed, column, "{");
            for (i, (key, child)) in map.iter().enumerate() {
                if i > 0 {
                    push(indexed, column, ",");
                }
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                indexed.starts.push((*column + 1, child_path.clone()));
                push(indexed, column, &Value::String(key.clone()).to_string());
                push(indexed, column, ":");
                emit(child, &child_path, indexed, column);
            }
            push(indexed, column, "}");
        }
        Value::Array(items) => {
            push(indexed, column, "[");
            for (i, child) in items.iter().enumerate() {
                if i > 0 {
                    push(indexed, column, ",");
                }
                emit(child, &format!("{path}[{i}]"), indexed, column);
            }
            push(indexed, column, "]");
        }
        scalar => push(indexed, column, &scalar.to_string()),
    }
}

/// The field path at `column`: the node or key starting there, else the
/// innermost one starting before it.
fn path_at(starts: &[(u32, String)], column: u32) -> &str {
    starts
        .iter()
        .rev()
        .find(|(start, _)| *start <= column)
        .map_or("", |(_, path)| path.as_str())
}

/// The place at `column` of an object's indexed text, as a typed location:
/// the object and the field path there.
pub(crate) fn object_location(
    kind: &str,
    namespace: &str,
    name: &str,
    indexed: &Indexed,
    column: u32,
) -> Location {
    Location::object(
        kind,
        namespace,
        name,
        Some(path_at(&indexed.starts, column)),
    )
}

/// The source name the model reports errors against; replaced by field paths.
const SOURCE: &str = "object";

/// Reads `object` (in `namespace`) as ibac-model reads a file; the places in
/// what it returns turn into field paths with [`placed`].
pub(crate) fn read(object: &Value, namespace: Option<&str>) -> (Parsed, Indexed) {
    read_as(object, namespace, SOURCE)
}

/// [`read`], with the places in what it returns in the source `source`, so
/// that errors of many objects can be told apart.
pub(crate) fn read_as(object: &Value, namespace: Option<&str>, source: &str) -> (Parsed, Indexed) {
    let indexed = index(object);
    let mut options = ParseOptions::default();
    if let Some(namespace) = namespace.and_then(|n| Namespace::parse(n).ok()) {
        options.default_namespace = namespace;
    }
    let parsed = parse_source(&source.into(), &indexed.text, &options);
    (parsed, indexed)
}

/// Why `object` (in `namespace`) is not a valid ibac document, one message per
/// problem, each starting with its field path; empty when it is valid.
pub fn problems(object: &Value, namespace: Option<&str>) -> Vec<String> {
    let (parsed, indexed) = read(object, namespace);
    parsed
        .errors
        .iter()
        .map(|error| describe(error, &indexed))
        .collect()
}

pub(crate) fn describe(error: &DocumentError, indexed: &Indexed) -> String {
    let text = error.to_string();
    match error.location() {
        Some(at) => placed(at, &text, indexed),
        None => text,
    }
}

/// `text`, an error that starts with `at`, with the field path at its place
/// instead of the line and column.
pub(crate) fn placed(at: &Location, text: &str, indexed: &Indexed) -> String {
    let prefix = format!("{at}: ");
    let message = text.strip_prefix(&prefix).unwrap_or(text);
    match path_at(&indexed.starts, at.column) {
        "" => message.to_owned(),
        path => format!("{path}: {message}"),
    }
}

/// Answers an `admission.k8s.io/v1` AdmissionReview from the object alone.
pub fn review(request: &Value) -> Value {
    let object = &request["request"]["object"];
    let namespace = request["request"]["namespace"].as_str();
    let problems = if object.is_object() {
        problems(object, namespace)
    } else {
        Vec::new()
    };
    answer(request, &problems)
}

/// Answers an AdmissionReview, also refusing a second ClientIntents for a
/// workload that `client`'s API server already holds one for.
pub async fn review_in_cluster(client: &kube::Client, request: &Value) -> Value {
    let object = &request["request"]["object"];
    let namespace = request["request"]["namespace"].as_str();
    let mut problems = if object.is_object() {
        problems(object, namespace)
    } else {
        Vec::new()
    };
    if let Some(namespace) = namespace
        && problems.is_empty()
        && object.is_object()
    {
        problems.extend(super::unique::clash(client, object, namespace).await);
    }
    answer(request, &problems)
}

fn answer(request: &Value, problems: &[String]) -> Value {
    let uid = request["request"]["uid"].clone();
    let object = &request["request"]["object"];
    let response = if object.is_object() {
        if problems.is_empty() {
            json!({"uid": uid, "allowed": true})
        } else {
            json!({
                "uid": uid,
                "allowed": false,
                "status": {
                    "code": 422,
                    "reason": "Invalid",
                    "message": problems.join("; "),
                },
            })
        }
    } else {
        // Deletions carry no object; nothing to check.
        json!({"uid": uid, "allowed": true})
    };
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intents(targets: Value) -> Value {
        json!({
            "apiVersion": "k8s.otterize.com/v2beta1",
            "kind": "ClientIntents",
            "metadata": {"name": "checkout", "namespace": "shop", "managedFields": [{"manager": "kubectl"}]},
            "spec": {"workload": {"name": "checkout"}, "targets": targets},
        })
    }

    #[test]
    fn a_valid_object_has_no_problems() {
        let object = intents(
            json!([{"kubernetes": {"name": "cart", "http": [{"path": "/cart/*", "methods": ["GET"]}]}}]),
        );
        assert_eq!(problems(&object, Some("shop")), Vec::<String>::new());
    }

    #[test]
    fn problems_name_their_field_path() {
        let object = intents(json!([
            {"kubernetes": {"name": "cart"}},
            {"service": {"name": "currency"}},
            {"kafka": {"name": "kafka", "topics": [{"name": "orders", "operations": ["produce", "write"]}]}},
        ]));
        let problems = problems(&object, Some("shop"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.targets[2].kafka.topics[0].operations[1]: "),
            "{problems:?}"
        );
        assert!(problems[0].contains("`write`"), "{problems:?}");
        assert!(problems[0].contains("produce"), "{problems:?}");
    }

    #[test]
    fn a_missing_field_names_the_map_it_is_missing_from() {
        let object = intents(json!([{"kafka": {"topics": []}}]));
        let problems = problems(&object, Some("shop"));
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("spec.targets[0].kafka: "),
            "{problems:?}"
        );
    }

    #[test]
    fn review_refuses_with_the_messages_and_echoes_the_uid() {
        let request = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "42",
                "namespace": "shop",
                "operation": "CREATE",
                "object": intents(json!([{"kubernetes": {"name": "Bad Name"}}])),
            },
        });
        let answer = review(&request);
        assert_eq!(answer["response"]["uid"], "42");
        assert_eq!(answer["response"]["allowed"], false);
        let message = answer["response"]["status"]["message"].as_str().unwrap();
        assert!(
            message.starts_with("spec.targets[0].kubernetes.name: "),
            "{message}"
        );
        assert!(message.contains("`Bad Name`"), "{message}");
    }

    #[test]
    fn deletions_are_allowed() {
        let request = json!({"request": {"uid": "7", "operation": "DELETE", "object": null}});
        assert_eq!(review(&request)["response"]["allowed"], true);
    }
}
