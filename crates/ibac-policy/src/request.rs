//! What is decided: a connection to a port, or an HTTP request. Its own
//! module so that the rules (which match requests) and the decisions (which
//! use the rules) do not import each other.

use std::fmt;

use ibac_model::http::{NormalizedPath, RequestMethod};

/// An HTTP request: its method and its already-normalized path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HttpRequest {
    /// The method.
    pub method: RequestMethod,
    /// The path, normalized by [`ibac_model::http::normalize`].
    pub path: NormalizedPath,
}

/// What is being decided: a connection to a port, or an HTTP request.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Request {
    /// The server's port; `None` when unknown (then only intents for every
    /// port can allow it).
    pub port: Option<u16>,
    /// The HTTP request, or `None` for a connection (L4).
    pub http: Option<HttpRequest>,
}

impl Request {
    /// A connection to `port`.
    pub fn l4(port: u16) -> Self {
        Request {
            port: Some(port),
            http: None,
        }
    }

    /// An HTTP request.
    pub fn http(port: Option<u16>, method: RequestMethod, path: NormalizedPath) -> Self {
        Request {
            port,
            http: Some(HttpRequest { method, path }),
        }
    }
}

impl fmt::Display for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.http, self.port) {
            (Some(h), Some(p)) => write!(f, "{} {} on port {p}", h.method, h.path),
            (Some(h), None) => write!(f, "{} {}", h.method, h.path),
            (None, Some(p)) => write!(f, "a connection to port {p}"),
            (None, None) => f.write_str("a connection"),
        }
    }
}
