//! How a call is made, which decides how it is decided: HTTP requests one by
//! one (method and path), or connections on their port. One enum for the
//! mapper's calls, the proxy's inbound mode, topologies and the wire.

use std::fmt;

/// HTTP or TCP.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// HTTP/1.1 or HTTP/2 requests, decided one by one on method and path.
    #[default]
    Http,
    /// Opaque connections, decided on the port.
    Tcp,
}

impl Protocol {
    /// `http` or `tcp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Tcp => "tcp",
        }
    }

    /// Reads `http` or `tcp`.
    pub fn parse(text: &str) -> Option<Protocol> {
        match text {
            "http" => Some(Protocol::Http),
            "tcp" => Some(Protocol::Tcp),
            _ => None,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_the_same_everywhere() {
        for p in [Protocol::Http, Protocol::Tcp] {
            assert_eq!(Protocol::parse(p.as_str()), Some(p));
            assert_eq!(serde_json::to_string(&p).unwrap(), format!("\"{p}\""));
        }
        assert_eq!(Protocol::parse("HTTP"), None);
    }
}
