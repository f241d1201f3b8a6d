//! The one place ibac reads and writes YAML (and JSON, which it reads as YAML).
//!
//! Reading yields a tree of [`Node`]s that remember where each value was written,
//! so that every later check can name `file:line:column`. Hostile input is refused
//! here, in bounded time and memory: a size cap, nesting and alias budgets
//! (billion laughs) and strict tags.
//!
//! Plain scalars that YAML 1.1 readers take as integers are integers here too,
//! with their values: kubectl reads YAML through Go's yaml.v2, so `0755` is the
//! octal 493 (a Secret volume's `defaultMode`), as are `0o755`, `0x1F` and
//! `1_000`, and what a manifest means does not depend on which tool read it.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{Budget, MessageFormatter, Spanned, UserMessageFormatter};

use crate::error::DocumentError;
use crate::location::{Location, SourceName};

/// Bounds on what one source may contain. The defaults fit any real set of
/// intents many times over and refuse resource-exhaustion attacks.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest source accepted, in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of lists and maps.
    pub max_depth: usize,
    /// Most YAML nodes (scalars, lists, maps) in one source, aliases expanded.
    pub max_nodes: usize,
    /// Most alias uses (`*name`) in one source.
    pub max_aliases: usize,
    /// Most documents in one source.
    pub max_documents: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 8 * 1024 * 1024,
            max_depth: 32,
            max_nodes: 500_000,
            max_aliases: 1_000,
            max_documents: 10_000,
        }
    }
}

/// A YAML value and where it was written.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Node {
    pub(crate) value: Value,
    pub(crate) line: u32,
    pub(crate) column: u32,
}

/// The shapes a YAML value can take once parsed.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Null,
    /// A boolean, with its spelling.
    Bool(bool, String),
    /// An integer, with its spelling.
    Int(i128, String),
    /// A float, with its spelling.
    Float(String),
    /// A string. `plain` is true when it was written without quotes, where
    /// YAML 1.1 readers (kubectl among them) would turn `no` into a boolean.
    Str {
        text: String,
        plain: bool,
    },
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// Describes the value for "expected X, found Y" messages.
    pub(crate) fn describe(&self) -> String {
        match &self.value {
            Value::Null => "null".to_string(),
            Value::Bool(_, raw) => format!("the boolean `{raw}`"),
            Value::Int(_, raw) => format!("the number `{raw}`"),
            Value::Float(raw) => format!("the number `{raw}`"),
            Value::Str { text, .. } => format!("the string `{}`", text.escape_debug()),
            Value::Seq(_) => "a list".to_string(),
            Value::Map(_) => "a map".to_string(),
        }
    }
}

/// Parses every document of a YAML or JSON source. Empty documents are skipped.
pub(crate) fn parse_stream(
    file: &SourceName,
    text: &str,
    limits: &Limits,
) -> Result<Vec<Node>, DocumentError> {
    if text.len() > limits.max_bytes {
        return Err(DocumentError::TooLarge {
            file: file.clone(),
            size: text.len() as u64,
            limit: limits.max_bytes as u64,
        });
    }
    let mut budget = Budget::default();
    budget.max_depth = limits.max_depth;
    budget.flow_nesting_limit = limits.max_depth;
    budget.max_nodes = limits.max_nodes;
    budget.max_aliases = limits.max_aliases;
    budget.max_anchors = limits.max_aliases;
    budget.max_documents = limits.max_documents;
    budget.max_events = limits.max_nodes.saturating_mul(4);
    budget.max_recorded_anchor_events = limits.max_nodes / 5;
    budget.max_recorded_anchor_bytes = limits.max_bytes;
    budget.max_total_scalar_bytes = limits.max_bytes.saturating_mul(2);
    budget.max_reader_input_bytes = Some(limits.max_bytes);
    let options = serde_saphyr::options! {
        budget: Some(budget),
        strict_booleans: true,
        reject_unsupported_tags: true,
        with_snippet: false,
    };
    let raw: Vec<Spanned<Raw>> = serde_saphyr::from_multiple_with_options(text, options)
        .map_err(|err| yaml_error(file, &err))?;
    let mut converter = Converter {
        text,
        nodes: 0,
        limits,
        file,
    };
    raw.into_iter().map(|doc| converter.convert(doc)).collect()
}

fn yaml_error(file: &SourceName, err: &serde_saphyr::Error) -> DocumentError {
    let mut inner = err.without_snippet();
    while let serde_saphyr::Error::AliasError { error, .. }
    | serde_saphyr::Error::WithSnippet { error, .. } = inner
    {
        inner = error;
    }
    let at = match err.location() {
        Some(loc) if loc.line() > 0 => {
            Location::new(file.clone(), saturate(loc.line()), saturate(loc.column()))
        }
        _ => Location::new(file.clone(), 1, 1),
    };
    if let serde_saphyr::Error::Budget { breach, .. } = inner {
        return DocumentError::Limit {
            at,
            reason: breach_reason(breach).to_string(),
        };
    }
    let reason = sanitize(&UserMessageFormatter.format_message(inner));
    DocumentError::Syntax { at, reason }
}

/// Says which safety limit a source broke, in the user's terms.
fn breach_reason(breach: &serde_saphyr::budget::BudgetBreach) -> &'static str {
    use serde_saphyr::budget::BudgetBreach as B;
    match breach {
        B::Depth { .. } => "lists and maps are nested too deeply",
        B::Aliases { .. } | B::Anchors { .. } | B::AliasAnchorRatio { .. } => {
            "too many anchors or aliases (`&name`, `*name`)"
        }
        B::RecordedAnchorEvents { .. } | B::RecordedAnchorBytes { .. } | B::MergeKeys { .. } => {
            "aliases expand to too much data"
        }
        B::Documents { .. } => "too many documents in one source",
        B::Nodes { .. } | B::Events { .. } => "too many values in one source",
        B::ScalarBytes { .. } | B::InputBytes { .. } => "the source holds too much text",
        _ => "the source is too large or too complex",
    }
}

/// Keeps parser messages on one line and free of terminal control characters.
fn sanitize(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Turns the parser's spanned values into [`Node`]s, recovering from the source
/// text whether each string was quoted and how each scalar was spelled.
struct Converter<'a> {
    text: &'a str,
    nodes: usize,
    limits: &'a Limits,
    file: &'a SourceName,
}

impl Converter<'_> {
    fn convert(&mut self, raw: Spanned<Raw>) -> Result<Node, DocumentError> {
        self.nodes += 1;
        let line = saturate(raw.referenced.line());
        let column = saturate(raw.referenced.column());
        if self.nodes > self.limits.max_nodes {
            return Err(DocumentError::Limit {
                at: Location::new(self.file.clone(), line, column),
                reason: format!(
                    "more than {} YAML nodes once aliases are expanded",
                    self.limits.max_nodes
                ),
            });
        }
        let spelling = || self.spelling(&raw.defined);
        // A plain scalar spelled as a YAML 1.1 integer is that integer,
        // whatever YAML 1.2 makes of it (`0755` is not 755.0).
        let yaml11 = match &raw.value {
            Raw::Int(_) | Raw::Float(_) | Raw::Str(_) if !self.tagged_or_block(&raw.defined) => {
                spelling().and_then(|s| yaml11_int(s).map(|i| (i, s.to_string())))
            }
            _ => None,
        };
        if let Some((i, spelled)) = yaml11 {
            return Ok(Node {
                value: Value::Int(i, spelled),
                line,
                column,
            });
        }
        let value = match raw.value {
            Raw::Null => Value::Null,
            Raw::Bool(b) => Value::Bool(
                b,
                spelling()
                    .unwrap_or(if b { "true" } else { "false" })
                    .to_string(),
            ),
            Raw::Int(i) => Value::Int(i, spelling().map_or_else(|| i.to_string(), str::to_string)),
            Raw::Float(f) => Value::Float(spelling().map_or_else(|| f.to_string(), str::to_string)),
            Raw::Str(text) => {
                let plain = spelling()
                    .and_then(|s| s.chars().next())
                    .is_none_or(|c| !matches!(c, '"' | '\'' | '|' | '>' | '!'));
                Value::Str { text, plain }
            }
            Raw::Seq(items) => Value::Seq(
                items
                    .into_iter()
                    .map(|item| self.convert(item))
                    .collect::<Result<_, _>>()?,
            ),
            Raw::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| Ok((self.convert(k)?, self.convert(v)?)))
                    .collect::<Result<_, DocumentError>>()?,
            ),
        };
        Ok(Node {
            value,
            line,
            column,
        })
    }

    /// Whether the scalar at `at` carries an explicit tag (`!!str 0755`) or is
    /// a block scalar (`|`, `>`): the parser leaves both out of its span, so
    /// look at what comes just before it.
    fn tagged_or_block(&self, at: &serde_saphyr::Location) -> bool {
        let Some(start) = at
            .span()
            .byte_offset()
            .and_then(|o| usize::try_from(o).ok())
        else {
            return false;
        };
        let before = self.text.get(..start).unwrap_or_default();
        before
            .trim_end()
            .rsplit([' ', '\t', '\n', '\r', '[', '{', ','])
            .next()
            .is_some_and(|word| word.starts_with(['!', '|', '>']))
    }

    fn spelling(&self, at: &serde_saphyr::Location) -> Option<&str> {
        let span = at.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        self.text.get(start..start.checked_add(len)?)
    }
}

/// The value of a plain scalar that YAML 1.1 (Go's yaml.v2, hence kubectl)
/// reads as an integer: optional sign, `_` anywhere, then decimal, `0`-prefixed
/// octal, or `0o`, `0x`, `0b` prefixed. `None` for anything else, including
/// quoted scalars (whose spelling starts with a quote).
fn yaml11_int(spelling: &str) -> Option<i128> {
    let (negative, unsigned) = match spelling.as_bytes().first()? {
        b'-' => (true, &spelling[1..]),
        b'+' => (false, &spelling[1..]),
        _ => (false, spelling),
    };
    let digits: String = unsigned.chars().filter(|c| *c != '_').collect();
    let prefixed = |p: &str| {
        digits
            .get(..2)
            .filter(|head| head.eq_ignore_ascii_case(p))
            .map(|_| &digits[2..])
    };
    let (radix, body) = if let Some(rest) = prefixed("0x") {
        (16, rest)
    } else if let Some(rest) = prefixed("0o") {
        (8, rest)
    } else if let Some(rest) = prefixed("0b") {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(body, radix).ok()?;
    Some(if negative { -value } else { value })
}

/// What the parser hands over before positions are resolved.
enum Raw {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Raw>>),
    Map(Vec<(Spanned<Raw>, Spanned<Raw>)>),
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_none<E>(self) -> Result<Raw, E> {
        Ok(Raw::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Raw, D::Error> {
        Raw::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<Raw, E> {
        Ok(Raw::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Raw, E> {
        i128::try_from(v)
            .map(Raw::Int)
            .map_err(|_| E::custom("integer out of range"))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Str(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Raw, E> {
        Ok(Raw::Str(v))
    }
    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Raw, E> {
        String::from_utf8(v.to_vec())
            .map(Raw::Str)
            .map_err(|_| E::custom("binary data is not UTF-8 text"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Spanned<Raw>>()? {
            items.push(item);
        }
        Ok(Raw::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Spanned<Raw>>()? {
            let value = map.next_value::<Spanned<Raw>>()?;
            entries.push((key, value));
        }
        Ok(Raw::Map(entries))
    }
}

/// Every document of a YAML or JSON source as a JSON value, with the place it
/// starts: for reading foreign manifests (Kubernetes objects) into their own
/// types under the same limits as ibac's documents.
pub fn parse_json_documents(
    file: &SourceName,
    text: &str,
    limits: &Limits,
) -> Result<Vec<(Location, serde_json::Value)>, DocumentError> {
    let nodes = parse_stream(file, text, limits)?;
    Ok(nodes
        .iter()
        .map(|n| (Location::new(file.clone(), n.line, n.column), to_json(n)))
        .collect())
}

/// One document of a manifest as a JSON value, still able to say where each
/// part of it was written: errors found while reading it as a Kubernetes
/// object point at the field, not at the document's first line.
#[derive(Clone, Debug)]
pub struct JsonDocument {
    file: SourceName,
    node: Node,
    /// The document as JSON.
    pub value: serde_json::Value,
}

/// One step of a path into a [`JsonDocument`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PathStep {
    /// A map key.
    Key(String),
    /// A list index.
    Index(usize),
}

impl JsonDocument {
    /// Where the document starts.
    pub fn at(&self) -> Location {
        Location::new(self.file.clone(), self.node.line, self.node.column)
    }

    /// Where the value at `path` was written; when the path leaves the
    /// document (a field that is missing), the deepest place it reached.
    pub fn locate(&self, path: &[PathStep]) -> Location {
        let mut node = &self.node;
        for step in path {
            let next = match (&node.value, step) {
                (Value::Map(entries), PathStep::Key(key)) => {
                    entries.iter().find_map(|(k, v)| match &k.value {
                        Value::Str { text, .. } if text == key => Some(v),
                        Value::Bool(_, raw) | Value::Int(_, raw) | Value::Float(raw)
                            if raw == key =>
                        {
                            Some(v)
                        }
                        _ => None,
                    })
                }
                (Value::Seq(items), PathStep::Index(i)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => break,
            }
        }
        Location::new(self.file.clone(), node.line, node.column)
    }
}

/// Every document of a YAML or JSON source as a [`JsonDocument`], under the
/// same limits as ibac's own documents.
pub fn parse_manifests(
    file: &SourceName,
    text: &str,
    limits: &Limits,
) -> Result<Vec<JsonDocument>, DocumentError> {
    let nodes = parse_stream(file, text, limits)?;
    Ok(nodes
        .into_iter()
        .map(|node| JsonDocument {
            file: file.clone(),
            value: to_json(&node),
            node,
        })
        .collect())
}

/// A node as a JSON value.
fn to_json(node: &Node) -> serde_json::Value {
    use serde_json::Value as J;
    match &node.value {
        Value::Null => J::Null,
        Value::Bool(b, _) => J::Bool(*b),
        Value::Int(i, raw) => i64::try_from(*i)
            .map(J::from)
            .or_else(|_| u64::try_from(*i).map(J::from))
            .unwrap_or_else(|_| J::String(raw.clone())),
        // Whole floats become integers, as Go's JSON encoding (and so
        // kubectl) writes them: `replicas: 3.0` is 3.
        Value::Float(raw) => match raw.parse::<f64>() {
            Ok(f) if f.fract() == 0.0 && f.abs() < 9_007_199_254_740_992.0 => J::from(f as i64),
            Ok(f) => {
                serde_json::Number::from_f64(f).map_or_else(|| J::String(raw.clone()), J::Number)
            }
            Err(_) => J::String(raw.clone()),
        },
        Value::Str { text, .. } => J::String(text.clone()),
        Value::Seq(items) => J::Array(items.iter().map(to_json).collect()),
        Value::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match &k.value {
                        Value::Str { text, .. } => text.clone(),
                        Value::Bool(_, raw) | Value::Int(_, raw) | Value::Float(raw) => raw.clone(),
                        _ => k.describe(),
                    };
                    (key, to_json(v))
                })
                .collect(),
        ),
    }
}

/// Writes a stream of documents as YAML, `---` between them.
pub fn to_yaml_stream<T: serde::Serialize>(docs: &[T]) -> Result<String, WriteError> {
    let mut out = String::new();
    for (i, doc) in docs.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        out.push_str(&to_yaml(doc)?);
    }
    Ok(out)
}

/// Writes one value as YAML.
pub fn to_yaml<T: serde::Serialize>(value: &T) -> Result<String, WriteError> {
    serde_saphyr::to_string(value).map_err(|e| WriteError(e.to_string()))
}

/// A value could not be written as YAML (a bug in ibac's output types).
#[derive(Debug, thiserror::Error)]
#[error("cannot write YAML: {0}")]
pub struct WriteError(String);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Vec<Node>, DocumentError> {
        parse_stream(&"t.yaml".into(), text, &Limits::default())
    }

    #[test]
    fn remembers_positions_and_quoting() {
        let docs = parse("a: no\nb: 'no'\nc: 0x1F\n---\n---\n[1]\n").unwrap();
        assert_eq!(docs.len(), 2, "the empty document is skipped");
        let Value::Map(entries) = &docs[0].value else {
            panic!("expected a map")
        };
        assert_eq!(
            entries[0].1.value,
            Value::Str {
                text: "no".into(),
                plain: true
            }
        );
        assert_eq!((entries[0].1.line, entries[0].1.column), (1, 4));
        assert_eq!(
            entries[1].1.value,
            Value::Str {
                text: "no".into(),
                plain: false
            }
        );
        assert_eq!(entries[2].1.value, Value::Int(31, "0x1F".into()));
        assert_eq!(docs[1].line, 6);
    }

    #[test]
    fn integers_read_as_yaml_1_1_and_kubectl_read_them() {
        let docs = parse(
            "octal: 0755\no: 0o755\nhex: 0x1F\nbin: 0b101\nsep: 1_000\nneg: -0755\nplus: +12\nzero: 0\ndec: 755\nfloat: 755.0\nquoted: '0755'\nname: 0755abc\ntagged: !!str 0755\nblock: |-\n  0755\nflow: [0755, !!str 0755]\n",
        )
        .unwrap();
        let Value::Map(entries) = &docs[0].value else {
            panic!("expected a map")
        };
        let get = |key: &str| {
            entries
                .iter()
                .find(|(k, _)| matches!(&k.value, Value::Str { text, .. } if text == key))
                .map(|(_, v)| v.value.clone())
                .unwrap()
        };
        assert_eq!(get("octal"), Value::Int(493, "0755".into()));
        assert_eq!(get("o"), Value::Int(493, "0o755".into()));
        assert_eq!(get("hex"), Value::Int(31, "0x1F".into()));
        assert_eq!(get("bin"), Value::Int(5, "0b101".into()));
        assert_eq!(get("sep"), Value::Int(1000, "1_000".into()));
        assert_eq!(get("neg"), Value::Int(-493, "-0755".into()));
        assert_eq!(get("plus"), Value::Int(12, "+12".into()));
        assert_eq!(get("zero"), Value::Int(0, "0".into()));
        assert_eq!(get("dec"), Value::Int(755, "755".into()));
        assert!(matches!(get("float"), Value::Float(_)));
        assert_eq!(
            get("quoted"),
            Value::Str {
                text: "0755".into(),
                plain: false
            }
        );
        assert!(matches!(get("name"), Value::Str { .. }));
        assert!(
            matches!(get("tagged"), Value::Str { .. }),
            "{:?}",
            get("tagged")
        );
        assert!(
            matches!(get("block"), Value::Str { .. }),
            "{:?}",
            get("block")
        );
        let Value::Seq(flow) = get("flow") else {
            panic!("expected a list")
        };
        assert_eq!(flow[0].value, Value::Int(493, "0755".into()));
        assert!(matches!(flow[1].value, Value::Str { .. }));
        let json = parse_json_documents(
            &"t.yaml".into(),
            "mode: 0755\nhex: 0x1F\nreplicas: 3.0\nratio: 0.5\nnot_octal: 0789\n",
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(
            json[0].1,
            serde_json::json!({"mode": 493, "hex": 31, "replicas": 3, "ratio": 0.5, "not_octal": 789})
        );
    }

    #[test]
    fn manifests_locate_their_fields() {
        let docs = parse_manifests(
            &"t.yaml".into(),
            "kind: StatefulSet\nspec:\n  volumes:\n  - name: a\n  - secret:\n      defaultMode: 0755\n",
            &Limits::default(),
        )
        .unwrap();
        let doc = &docs[0];
        assert_eq!(
            doc.value["spec"]["volumes"][1]["secret"]["defaultMode"],
            493
        );
        let path = [
            PathStep::Key("spec".into()),
            PathStep::Key("volumes".into()),
            PathStep::Index(1),
            PathStep::Key("secret".into()),
            PathStep::Key("defaultMode".into()),
        ];
        assert_eq!(doc.locate(&path).to_string(), "t.yaml:6:20");
        assert_eq!(doc.locate(&path[..3]).to_string(), "t.yaml:5:5");
        let missing = [PathStep::Key("spec".into()), PathStep::Key("nope".into())];
        assert_eq!(doc.locate(&missing).to_string(), "t.yaml:3:3");
        assert_eq!(doc.at().to_string(), "t.yaml:1:1");
    }

    #[test]
    fn reads_json() {
        let docs = parse(r#"{"a": [1, "x", {"b": null}]}"#).unwrap();
        assert_eq!(docs.len(), 1);
    }

    #[test]
    fn syntax_errors_name_the_place() {
        let err = parse("a: b\n  c: [d\n").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.yaml:"), "{text}");
        assert!(text.contains("invalid YAML"), "{text}");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let err = parse("a: 1\na: 2\n").unwrap_err();
        assert!(err.to_string().starts_with("t.yaml:2:"), "{err}");
    }

    #[test]
    fn billion_laughs_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let err = parse(&text).unwrap_err();
        assert!(matches!(err, DocumentError::Limit { .. }), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        let err = parse(&text).unwrap_err();
        assert!(
            matches!(
                err,
                DocumentError::Limit { .. } | DocumentError::Syntax { .. }
            ),
            "{err}"
        );
        let text = (0..100)
            .map(|i| format!("{}k:\n", "  ".repeat(i)))
            .collect::<String>();
        assert!(parse(&text).is_err());
    }

    #[test]
    fn huge_sources_are_refused_before_parsing() {
        let limits = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        let err = parse_stream(&"t.yaml".into(), "a: 0123456789\n", &limits).unwrap_err();
        assert!(matches!(err, DocumentError::TooLarge { .. }));
    }

    #[test]
    fn unknown_tags_are_refused() {
        assert!(parse("a: !!python/object:os.system ls\n").is_err());
    }
}
