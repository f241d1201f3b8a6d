//! Strict reading of YAML trees into typed documents.
//!
//! A [`Reader`] collects every error of a document rather than stopping at the
//! first, so that one pass over a directory tells the user everything to fix.

use crate::error::{DocumentError, Hint};
use crate::location::{Location, SourceName};
use crate::yaml::{Node, Value};

/// Spellings that YAML 1.1 readers (kubectl, Go's yaml.v2, PyYAML) turn into
/// booleans or null. ibac never takes them as names, whatever its own parser says.
const YAML11_SPECIALS: &[&str] = &[
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "true", "True", "TRUE", "false",
    "False", "FALSE", "on", "On", "ON", "off", "Off", "OFF", "null", "Null", "NULL", "~",
];

/// Reads one source's documents, keeping every error it finds.
pub(crate) struct Reader<'a> {
    file: &'a SourceName,
    errors: Vec<DocumentError>,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(file: &'a SourceName) -> Self {
        Self {
            file,
            errors: Vec::new(),
        }
    }

    pub(crate) fn at(&self, node: &Node) -> Location {
        Location::new(self.file.clone(), node.line, node.column)
    }

    pub(crate) fn error(&mut self, error: DocumentError) {
        self.errors.push(error);
    }

    /// How many errors have been seen so far; a document is good when reading
    /// it added none.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn into_errors(self) -> Vec<DocumentError> {
        self.errors
    }

    pub(crate) fn wrong_type(&mut self, node: &Node, expected: &'static str) {
        let hint = match &node.value {
            Value::Bool(..) | Value::Int(..) | Value::Float(..) if expected.contains("string") => {
                Hint::new("put it in quotes to make it a string")
            }
            _ => Hint::NONE,
        };
        let at = self.at(node);
        self.error(DocumentError::WrongType {
            at,
            expected,
            found: node.describe(),
            hint,
        });
    }

    pub(crate) fn invalid(&mut self, node: &Node, what: &'static str, value: &str, hint: Hint) {
        let at = self.at(node);
        self.error(DocumentError::InvalidValue {
            at,
            what,
            value: value.escape_debug().to_string(),
            hint,
        });
    }

    pub(crate) fn rule(&mut self, node: &Node, message: impl Into<String>) {
        let at = self.at(node);
        self.error(DocumentError::Invalid {
            at,
            message: message.into(),
        });
    }

    /// A map with the given known fields; unknown ones are reported with a hint.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node,
        within: &'static str,
        known: &'static [&'static str],
    ) -> Option<Fields<'n>> {
        self.map_with(node, within, known, |_| None)
    }

    /// Like [`Reader::map`], with a custom hint for fields that are known
    /// elsewhere (an ibac-only field in an Otterize document, say).
    pub(crate) fn map_with<'n>(
        &mut self,
        node: &'n Node,
        within: &'static str,
        known: &'static [&'static str],
        hint_for: impl Fn(&str) -> Option<String>,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, "a map");
            return None;
        };
        let mut fields = Vec::with_capacity(entries.len());
        // The last field so far written with nothing under it.
        let mut empty: Option<&str> = None;
        for (key, value) in entries {
            let Value::Str { text, .. } = &key.value else {
                self.wrong_type(key, "a field name (a string)");
                continue;
            };
            if known.contains(&text.as_str()) {
                fields.push((text.as_str(), key, value));
                if value.value == Value::Null {
                    empty = Some(text.as_str());
                }
            } else {
                let hint = match (hint_for(text), closest(text, known), empty) {
                    (Some(h), _, _) => Hint::new(h),
                    (None, Some(c), _) => Hint::did_you_mean(Some(c)),
                    (None, None, Some(owner)) => Hint::new(format!(
                        "`{owner}` above it is empty: if `{text}` belongs to it, indent it under `{owner}`"
                    )),
                    (None, None, None) => Hint::NONE,
                };
                let at = self.at(key);
                self.error(DocumentError::UnknownField {
                    at,
                    field: text.escape_debug().to_string(),
                    within,
                    hint,
                });
            }
        }
        Some(Fields {
            node,
            fields,
            within,
        })
    }

    /// A map whose fields are not checked (`metadata`, foreign documents).
    pub(crate) fn open_map<'n>(
        &mut self,
        node: &'n Node,
        within: &'static str,
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.wrong_type(node, "a map");
            return None;
        };
        let fields = entries
            .iter()
            .filter_map(|(key, value)| match &key.value {
                Value::Str { text, .. } => Some((text.as_str(), key, value)),
                _ => None,
            })
            .collect();
        Some(Fields {
            node,
            fields,
            within,
        })
    }

    /// A string scalar. Numbers and booleans are refused with a hint to quote them.
    pub(crate) fn string<'n>(&mut self, node: &'n Node, expected: &'static str) -> Option<&'n str> {
        match &node.value {
            Value::Str { text, .. } => Some(text),
            _ => {
                self.wrong_type(node, expected);
                None
            }
        }
    }

    /// A string that will become an identifier. Unquoted `no`, `on`, `~` and the
    /// like are refused: YAML 1.1 readers would see a boolean or null there.
    pub(crate) fn identifier<'n>(
        &mut self,
        node: &'n Node,
        expected: &'static str,
    ) -> Option<&'n str> {
        let text = self.string(node, expected)?;
        if let Value::Str { plain: true, .. } = node.value
            && YAML11_SPECIALS.contains(&text)
        {
            let at = self.at(node);
            self.error(DocumentError::WrongType {
                at,
                expected,
                found: format!(
                    "`{text}`, which YAML 1.1 readers such as kubectl take as a boolean or null"
                ),
                hint: Hint::new(format!("write it in quotes: \"{text}\"")),
            });
            return None;
        }
        Some(text)
    }

    /// An identifier that `parse` turns into a value. When it cannot, the text
    /// is reported as an invalid `what`, with the hint `hint` gives for the error.
    pub(crate) fn parsed<T, E>(
        &mut self,
        node: &Node,
        what: &'static str,
        parse: impl FnOnce(&str) -> Result<T, E>,
        hint: impl FnOnce(E) -> Hint,
    ) -> Option<T> {
        let text = self.identifier(node, "a string")?;
        parse(text)
            .map_err(|e| self.invalid(node, what, text, hint(e)))
            .ok()
    }

    /// A list; null counts as an empty list.
    pub(crate) fn list<'n>(
        &mut self,
        node: &'n Node,
        expected: &'static str,
    ) -> Option<&'n [Node]> {
        match &node.value {
            Value::Seq(items) => Some(items),
            Value::Null => Some(&[]),
            _ => {
                self.wrong_type(node, expected);
                None
            }
        }
    }

    /// A list whose items are each read by `item`. Every item is read, so that
    /// all their errors are reported, but the list is `None` when any of them
    /// was wrong: a list missing its bad items would quietly grant less (or,
    /// for exclusions, more) than the document says.
    pub(crate) fn items<'n, T>(
        &mut self,
        node: &'n Node,
        expected: &'static str,
        mut item: impl FnMut(&mut Self, &'n Node) -> Option<T>,
    ) -> Option<Vec<T>> {
        let items = self.list(node, expected)?;
        let before = self.error_count();
        let out: Vec<T> = items.iter().filter_map(|node| item(self, node)).collect();
        (self.error_count() == before).then_some(out)
    }

    /// A list of strings, each checked by `item`.
    pub(crate) fn strings<T>(
        &mut self,
        node: &Node,
        expected: &'static str,
        mut item: impl FnMut(&mut Self, &Node, &str) -> Option<T>,
    ) -> Option<Vec<T>> {
        self.items(node, expected, |reader, node| {
            let text = reader.string(node, "a string")?;
            item(reader, node, text)
        })
    }

    /// A boolean written as `true` or `false`.
    pub(crate) fn boolean(&mut self, node: &Node) -> Option<bool> {
        match &node.value {
            Value::Bool(b, _) => Some(*b),
            _ => {
                self.wrong_type(node, "`true` or `false`");
                None
            }
        }
    }

    /// An integer in `range`.
    pub(crate) fn integer(
        &mut self,
        node: &Node,
        what: &'static str,
        range: std::ops::RangeInclusive<i128>,
    ) -> Option<i128> {
        match &node.value {
            Value::Int(i, raw) => {
                if range.contains(i) {
                    Some(*i)
                } else {
                    let hint = Hint::new(format!(
                        "it must be between {} and {}",
                        range.start(),
                        range.end()
                    ));
                    self.invalid(node, what, raw, hint);
                    None
                }
            }
            _ => {
                self.wrong_type(node, "a whole number");
                None
            }
        }
    }
}

/// The fields of one YAML map, looked up by name.
pub(crate) struct Fields<'n> {
    node: &'n Node,
    fields: Vec<(&'n str, &'n Node, &'n Node)>,
    within: &'static str,
}

impl<'n> Fields<'n> {
    /// The field's value; an explicit null counts as absent.
    pub(crate) fn get(&self, name: &str) -> Option<&'n Node> {
        self.fields
            .iter()
            .find(|(key, _, value)| *key == name && value.value != Value::Null)
            .map(|(_, _, value)| *value)
    }

    /// The field's value, reporting it missing when absent, and empty when
    /// written with nothing under it.
    pub(crate) fn required(&self, reader: &mut Reader<'_>, name: &'static str) -> Option<&'n Node> {
        let found = self.get(name);
        if found.is_none()
            && let Some((_, key, _)) = self.fields.iter().find(|(k, _, _)| *k == name)
        {
            let after = self.keys_after(key);
            let hint = if after.is_empty() {
                Hint::new("give it a value")
            } else {
                Hint::new(format!(
                    "if {} after it belong{} to it, indent {} under `{name}`",
                    after
                        .iter()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    if after.len() == 1 { "s" } else { "" },
                    if after.len() == 1 { "it" } else { "them" },
                ))
            };
            let at = reader.at(key);
            reader.error(DocumentError::EmptyField {
                at,
                field: name,
                within: self.within,
                hint,
            });
            return None;
        }
        if found.is_none() {
            let at = reader.at(self.node);
            reader.error(DocumentError::MissingField {
                at,
                field: name,
                within: self.within,
            });
        }
        found
    }

    /// The names of the map's keys written after `key`, known or not.
    fn keys_after(&self, key: &Node) -> Vec<&'n str> {
        let Value::Map(entries) = &self.node.value else {
            return Vec::new();
        };
        entries
            .iter()
            .skip_while(|(k, _)| !std::ptr::eq(k, key))
            .skip(1)
            .filter_map(|(k, _)| match &k.value {
                Value::Str { text, .. } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The names of the fields present, in source order.
    pub(crate) fn present(&self) -> impl Iterator<Item = (&'n str, &'n Node)> + '_ {
        self.fields.iter().map(|(name, key, _)| (*name, *key))
    }
}

/// The known word closest to `word`, when it is close enough to be a likely typo.
pub(crate) fn closest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| {
            (
                strsim::jaro_winkler(&word.to_ascii_lowercase(), &k.to_ascii_lowercase()),
                *k,
            )
        })
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::{Limits, parse_stream};

    fn with_doc<T>(text: &str, f: impl FnOnce(&mut Reader<'_>, &Node) -> T) -> (T, Vec<String>) {
        let file: SourceName = "t.yaml".into();
        let docs = parse_stream(&file, text, &Limits::default()).unwrap();
        let mut reader = Reader::new(&file);
        let out = f(&mut reader, &docs[0]);
        (
            out,
            reader
                .into_errors()
                .iter()
                .map(ToString::to_string)
                .collect(),
        )
    }

    /// Each error names its place and, where there is one, the fix.
    #[test]
    fn errors_name_the_place_and_the_fix() {
        type Read = fn(&mut Reader<'_>, &Node);
        let cases: [(&str, Read, &str); 3] = [
            (
                "nmae: x\nkind: Deployment\n",
                |r, n| {
                    r.map(n, "workload", &["name", "kind"]);
                },
                "t.yaml:1:1: unknown field `nmae` in workload; did you mean `name`?",
            ),
            (
                "x:\n  kind: Deployment\n",
                |r, n| {
                    let top = r.map(n, "document", &["x"]).unwrap();
                    let inner = r
                        .map(top.get("x").unwrap(), "workload", &["name", "kind"])
                        .unwrap();
                    inner.required(r, "name");
                },
                "t.yaml:2:3: workload is missing the required field `name`",
            ),
            (
                "name: 1.5\n",
                |r, n| {
                    let f = r.map(n, "workload", &["name"]).unwrap();
                    r.string(f.get("name").unwrap(), "a string");
                },
                "t.yaml:1:7: expected a string, found the number `1.5`; put it in quotes to make it a string",
            ),
        ];
        for (text, read, expected) in cases {
            let ((), errors) = with_doc(text, read);
            assert_eq!(errors, [expected], "{text:?}");
        }
    }

    #[test]
    fn yaml11_booleans_never_become_identifiers() {
        let name_of = |text| {
            with_doc(text, |r, n| {
                let f = r.map(n, "workload", &["name"]).unwrap();
                r.identifier(f.get("name").unwrap(), "a workload name")
                    .map(str::to_string)
            })
        };
        let (name, errors) = name_of("name: no\n");
        assert_eq!(name, None);
        assert!(errors[0].contains("t.yaml:1:7"), "{errors:?}");
        assert!(errors[0].contains("\"no\""), "{errors:?}");
        let (name, errors) = name_of("name: 'no'\n");
        assert_eq!(name.as_deref(), Some("no"));
        assert!(errors.is_empty());
    }
}
