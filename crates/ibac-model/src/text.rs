//! Values that are written as their `as_str` text, in messages and in JSON
//! alike, so that what ibac prints and what it stores never disagree; and read
//! back from JSON through the same checks as from a document.

/// `Display` and `Serialize` for types with an `as_str`.
macro_rules! as_str_text {
    ($($ty:ty),*) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
    )*};
}
pub(crate) use as_str_text;

/// Deserializes a string through `parse`, so that a value read from JSON is
/// checked exactly as one read from a document. A refusal names the text.
pub fn deserialize_parsed<'de, D, T, E>(
    d: D,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    E: std::fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(d)?;
    parse(&text).map_err(|e| serde::de::Error::custom(format!("`{text}`: {e}")))
}
