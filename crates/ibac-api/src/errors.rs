//! How the API answers a failure.

use serde::{Deserialize, Serialize};

/// An error as the API answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong, in one message.
    pub error: String,
    /// For document errors: each one, with its place.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<PlacedError>,
}

/// One document error with its place.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacedError {
    /// The whole message, `file:line:column: …`.
    pub message: String,
    /// The source it is in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Line, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// Column, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}
