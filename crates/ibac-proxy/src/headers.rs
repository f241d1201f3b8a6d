//! Header hygiene at the proxy: hop-by-hop headers are not forwarded, headers
//! claiming an identity are stripped (the app gets the verified one in a
//! single header), and method-override headers are dropped so that no app can
//! be talked into a method other than the one ibac authorized.

use http::HeaderMap;
use http::header::{self, HeaderName, HeaderValue};

/// Headers that describe one connection, never forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

/// Headers by which clients could claim an identity or a method.
const UNTRUSTED: [&str; 6] = [
    "x-forwarded-client-cert",
    "x-client-cert",
    "x-ssl-client-cert",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes hop-by-hop headers, including those a `Connection` header names.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Removes every header that could carry a claimed identity or method, and
/// the identity header itself, then sets it to the verified identity.
pub fn set_identity(headers: &mut HeaderMap, identity_header: &HeaderName, verified: Option<&str>) {
    for name in UNTRUSTED {
        headers.remove(name);
    }
    headers.remove(identity_header);
    if let Some(id) = verified.and_then(|v| HeaderValue::from_str(v).ok()) {
        headers.insert(identity_header.clone(), id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_what_must_not_pass() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-secret"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("upgrade", HeaderValue::from_static("h2c"));
        h.insert("x-http-method-override", HeaderValue::from_static("DELETE"));
        h.insert(
            "x-ibac-peer-id",
            HeaderValue::from_static("spiffe://forged"),
        );
        h.insert("accept", HeaderValue::from_static("*/*"));
        strip_hop_by_hop(&mut h);
        let name = HeaderName::from_static("x-ibac-peer-id");
        set_identity(&mut h, &name, Some("spiffe://ibac.local/ns/a/workload/b"));
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["x-ibac-peer-id"], "spiffe://ibac.local/ns/a/workload/b");
        set_identity(&mut h, &name, None);
        assert!(
            h.get("x-ibac-peer-id").is_none(),
            "no verified identity, no header"
        );
    }
}
