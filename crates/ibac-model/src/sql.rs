//! SQL privileges as intents name them.

use crate::text::as_str_text;

/// A privilege on a table or database.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SqlOperation {
    /// Every privilege.
    All,
    /// SELECT.
    Select,
    /// INSERT.
    Insert,
    /// UPDATE.
    Update,
    /// DELETE.
    Delete,
}

impl SqlOperation {
    /// Every operation, in the documented order.
    pub const ALL: [SqlOperation; 5] = [
        SqlOperation::All,
        SqlOperation::Select,
        SqlOperation::Insert,
        SqlOperation::Update,
        SqlOperation::Delete,
    ];

    /// The SQL keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            SqlOperation::All => "ALL",
            SqlOperation::Select => "SELECT",
            SqlOperation::Insert => "INSERT",
            SqlOperation::Update => "UPDATE",
            SqlOperation::Delete => "DELETE",
        }
    }

    /// Parses an operation; on failure, returns the likely intended one.
    pub fn parse(text: &str) -> Result<Self, Option<&'static str>> {
        Self::ALL
            .into_iter()
            .find(|op| op.as_str() == text)
            .ok_or_else(|| {
                Self::ALL
                    .into_iter()
                    .find(|op| op.as_str().eq_ignore_ascii_case(text))
                    .map(Self::as_str)
            })
    }
}

as_str_text!(SqlOperation);

/// Checks a database, schema or table name: printable, at most 63 bytes per
/// part (PostgreSQL's limit), no NUL. Quoting for SQL happens when rendering.
pub fn check_identifier(text: &str, max_parts: usize) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("it is empty");
    }
    let parts: Vec<&str> = text.split('.').collect();
    if parts.len() > max_parts {
        return Err("it has too many `.`-separated parts");
    }
    for part in parts {
        if part.is_empty() {
            return Err("it has an empty part");
        }
        if part.len() > 63 {
            return Err("each part has at most 63 bytes");
        }
        if part.chars().any(char::is_control) {
            return Err("it has a control character");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations() {
        assert_eq!(SqlOperation::parse("SELECT"), Ok(SqlOperation::Select));
        assert_eq!(SqlOperation::parse("select"), Err(Some("SELECT")));
        assert_eq!(SqlOperation::parse("DROP"), Err(None));
    }

    #[test]
    fn identifiers() {
        assert!(check_identifier("public.orders", 2).is_ok());
        assert!(check_identifier("a.b.c", 2).is_err());
        assert!(check_identifier("a\0", 2).is_err());
        assert!(check_identifier("", 1).is_err());
    }
}
