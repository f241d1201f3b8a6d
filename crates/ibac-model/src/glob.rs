//! What HTTP path patterns and Kafka topic patterns have in common: a name,
//! a prefix written with a trailing `*`, or `*` alone. Both match and print
//! the same way, so that lives here once; each keeps its own parsing rules.

use std::fmt;

/// A borrowed view of a path or topic pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Glob<'a> {
    /// This name only.
    Exact(&'a str),
    /// Every name starting with this.
    Prefix(&'a str),
    /// Every name.
    Any,
}

impl Glob<'_> {
    /// Whether the name is covered.
    pub(crate) fn matches(self, name: &str) -> bool {
        match self {
            Glob::Exact(exact) => name == exact,
            Glob::Prefix(prefix) => name.starts_with(prefix),
            Glob::Any => true,
        }
    }
}

/// Written back as documents write it: `name`, `prefix*` or `*`.
impl fmt::Display for Glob<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Glob::Exact(exact) => f.write_str(exact),
            Glob::Prefix(prefix) => write!(f, "{prefix}*"),
            Glob::Any => f.write_str("*"),
        }
    }
}

/// Prints a pattern type as its [`Glob`] (its `glob()` method), and
/// serializes it as that text, so paths and topics are written back alike.
macro_rules! written_as_glob {
    ($pattern:ty) => {
        impl std::fmt::Display for $pattern {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.glob().fmt(f)
            }
        }

        impl serde::Serialize for $pattern {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}
pub(crate) use written_as_glob;
