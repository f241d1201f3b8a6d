//! Where something was written: a source name plus line and column.
//!
//! Every error about a document points at one of these, so that a user can jump
//! straight to the offending spot (`intents/web.yaml:14:23`).

use std::fmt;
use std::sync::Arc;

/// The name of a document source as shown to users: a path, or `<stdin>`.
pub type SourceName = Arc<str>;

/// A place in a source, 1-based. A line of 0 means "the whole source".
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// The source's name.
    pub file: SourceName,
    /// 1-based line, or 0 when the place is the whole source.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Location {
    /// A location at `line:column` of `file`.
    pub fn new(file: SourceName, line: u32, column: u32) -> Self {
        Self { file, line, column }
    }

    /// The whole of `file`, for errors that concern no single spot in it.
    pub fn whole(file: SourceName) -> Self {
        Self {
            file,
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_file_line_column() {
        let at = Location::new("intents/web.yaml".into(), 14, 23);
        assert_eq!(at.to_string(), "intents/web.yaml:14:23");
        assert_eq!(Location::whole("x.yaml".into()).to_string(), "x.yaml");
    }
}
