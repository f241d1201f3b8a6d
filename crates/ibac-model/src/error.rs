//! Why a document could not be read, in words a user can act on.
//!
//! Messages are lowercase, start with the place (`file:line:column`), quote the
//! user's input in backticks and carry a hint when there is an obvious fix.

use std::fmt;

use crate::location::{Location, Origin, SourceName};

/// A suggestion appended to an error message, or nothing.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hint(Option<String>);

impl Hint {
    /// No hint.
    pub const NONE: Hint = Hint(None);

    /// A hint with the given text, shown after a semicolon.
    pub fn new(text: impl Into<String>) -> Self {
        Hint(Some(text.into()))
    }

    /// "did you mean `x`?" when `candidate` is given.
    pub fn did_you_mean(candidate: Option<&str>) -> Self {
        Hint(candidate.map(|c| format!("did you mean `{c}`?")))
    }

    /// The hint's text, if any.
    pub fn text(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(text) => write!(f, "; {text}"),
            None => Ok(()),
        }
    }
}

/// Why a document could not be read.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum DocumentError {
    /// The source is larger than ibac accepts.
    #[error(
        "{file}: {size} bytes is more than the limit of {limit} bytes; split the documents across files"
    )]
    TooLarge {
        /// The source.
        file: SourceName,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The source is not UTF-8 text.
    #[error("{file}: not UTF-8 text")]
    NotText {
        /// The source.
        file: SourceName,
    },
    /// The source could not be read at all.
    #[error("{file}: cannot read: {reason}")]
    Unreadable {
        /// The source.
        file: SourceName,
        /// What the operating system said.
        reason: String,
    },
    /// The YAML or JSON itself is malformed.
    #[error("{at}: invalid YAML: {reason}")]
    Syntax {
        /// Where.
        at: Location,
        /// What the parser said.
        reason: String,
    },
    /// The input is refused because it exceeds a safety limit (nesting, aliases, size).
    #[error("{at}: refused: {reason}")]
    Limit {
        /// Where.
        at: Location,
        /// Which limit.
        reason: String,
    },
    /// A field that the schema does not know.
    #[error("{at}: unknown field `{field}` in {within}{hint}")]
    UnknownField {
        /// Where.
        at: Location,
        /// The field as written.
        field: String,
        /// The object it appeared in.
        within: &'static str,
        /// A likely fix.
        hint: Hint,
    },
    /// A required field is absent.
    #[error("{at}: {within} is missing the required field `{field}`")]
    MissingField {
        /// Where the enclosing object starts.
        at: Location,
        /// The missing field.
        field: &'static str,
        /// The object it should be in.
        within: &'static str,
    },
    /// A required field is written but holds nothing (`- service:` with no
    /// value): usually the lines after it were meant to be indented under it.
    #[error("{at}: `{field}` in {within} is empty{hint}")]
    EmptyField {
        /// Where the field is written.
        at: Location,
        /// The field.
        field: &'static str,
        /// The object it is in.
        within: &'static str,
        /// What to do about it.
        hint: Hint,
    },
    /// A value of the wrong YAML type (a list where a string belongs, say).
    #[error("{at}: expected {expected}, found {found}{hint}")]
    WrongType {
        /// Where.
        at: Location,
        /// What the schema wants.
        expected: &'static str,
        /// What was written.
        found: String,
        /// A likely fix.
        hint: Hint,
    },
    /// A field holds a value the schema does not allow.
    #[error("{at}: `{value}` is not a valid {what}{hint}")]
    InvalidValue {
        /// Where.
        at: Location,
        /// What kind of value was expected.
        what: &'static str,
        /// The value as written.
        value: String,
        /// Why, or a likely fix.
        hint: Hint,
    },
    /// A rule that concerns several fields together is broken.
    #[error("{at}: {message}")]
    Invalid {
        /// Where.
        at: Location,
        /// What is wrong and what to do.
        message: String,
    },
    /// Something that must be unique is declared twice.
    #[error("{at}: {what} `{value}` is already declared at {first}")]
    Duplicate {
        /// Where the second declaration is.
        at: Location,
        /// What is duplicated.
        what: &'static str,
        /// Its value.
        value: String,
        /// Where the first declaration is.
        first: Location,
    },
    /// A document of a kind ibac does not read.
    #[error("{at}: unsupported document: apiVersion `{api_version}`, kind `{kind}`{hint}")]
    UnsupportedKind {
        /// Where the document starts.
        at: Location,
        /// Its apiVersion.
        api_version: String,
        /// Its kind.
        kind: String,
        /// What ibac reads instead.
        hint: Hint,
    },
}

/// Matches the variants that carry a place (`at`), listed once for `&` and
/// `&mut` alike.
macro_rules! placed {
    ($error:expr, $at:ident => $some:expr, $none:expr) => {
        match $error {
            DocumentError::Syntax { at: $at, .. }
            | DocumentError::Limit { at: $at, .. }
            | DocumentError::UnknownField { at: $at, .. }
            | DocumentError::MissingField { at: $at, .. }
            | DocumentError::EmptyField { at: $at, .. }
            | DocumentError::WrongType { at: $at, .. }
            | DocumentError::InvalidValue { at: $at, .. }
            | DocumentError::Invalid { at: $at, .. }
            | DocumentError::Duplicate { at: $at, .. }
            | DocumentError::UnsupportedKind { at: $at, .. } => $some,
            DocumentError::TooLarge { .. }
            | DocumentError::NotText { .. }
            | DocumentError::Unreadable { .. } => $none,
        }
    };
}

impl DocumentError {
    /// What the error is about: the text, object or held thing its place is
    /// in.
    pub fn origin(&self) -> Origin {
        match self {
            DocumentError::TooLarge { file, .. }
            | DocumentError::NotText { file }
            | DocumentError::Unreadable { file, .. } => Origin::Text(file.clone()),
            _ => self
                .location()
                .map_or(Origin::Text(SourceName::from("")), |at| at.origin.clone()),
        }
    }

    /// Every place the error names, to be moved (a reader that knows better
    /// where a text came from — the operator's field paths — rewrites them).
    pub fn locations_mut(&mut self) -> Vec<&mut Location> {
        match self {
            DocumentError::Duplicate { at, first, .. } => vec![at, first],
            other => other.at_mut().into_iter().collect(),
        }
    }

    /// The place the error is at, to be moved.
    fn at_mut(&mut self) -> Option<&mut Location> {
        placed!(self, at => Some(at), None)
    }

    /// The place the error points at, when it points at one.
    pub fn location(&self) -> Option<&Location> {
        placed!(self, at => Some(at), None)
    }

    /// A key that orders errors by file, then line, then column.
    pub fn sort_key(&self) -> (Origin, u32, u32) {
        match self.location() {
            Some(at) => (at.origin.clone(), at.line, at.column),
            None => (self.origin(), 0, 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_place_first() {
        let err = DocumentError::InvalidValue {
            at: Location::new("web.yaml".into(), 3, 7),
            what: "Kafka operation",
            value: "read".into(),
            hint: Hint::did_you_mean(Some("consume")),
        };
        assert_eq!(
            err.to_string(),
            "web.yaml:3:7: `read` is not a valid Kafka operation; did you mean `consume`?"
        );
    }
}
