//! Header hygiene at the proxy: hop-by-hop headers are not forwarded, headers
//! claiming an identity are stripped (the app gets the verified one in a
//! single header), and method-override headers are dropped so that no app can
//! be talked into a method other than the one ibac authorized.

use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Version};

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

/// Why a request's `Host` header makes it unanswerable (RFC 9112 §3.2): an
/// HTTP/1.1 request without one, any request with several, or one whose value
/// is not a `host[:port]`. HTTP/2 names the authority in `:authority`, so there
/// `Host` may be absent.
pub fn host_problem(version: Version, headers: &HeaderMap) -> Option<&'static str> {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if version == Version::HTTP_11 => {
            Some("an HTTP/1.1 request must have a `Host` header")
        }
        (None, _) => None,
        (Some(_), Some(_)) => Some("a request must not have more than one `Host` header"),
        (Some(value), None) => {
            let valid = value.is_empty()
                || value
                    .to_str()
                    .ok()
                    .is_some_and(|v| !v.contains('@') && v.parse::<http::uri::Authority>().is_ok());
            (!valid).then_some("the `Host` header is not a valid `host[:port]`")
        }
    }
}

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
    fn host_must_be_one_and_valid() {
        let with = |values: &[&'static str]| {
            let mut h = HeaderMap::new();
            for v in values {
                h.append(header::HOST, HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(host_problem(Version::HTTP_11, &with(&["api.shop"])), None);
        assert_eq!(host_problem(Version::HTTP_11, &with(&["api:8080"])), None);
        assert_eq!(host_problem(Version::HTTP_11, &with(&[""])), None);
        assert_eq!(host_problem(Version::HTTP_10, &with(&[])), None);
        assert_eq!(host_problem(Version::HTTP_2, &with(&[])), None);
        assert!(host_problem(Version::HTTP_11, &with(&[])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["a", "a"])).is_some());
        assert!(host_problem(Version::HTTP_10, &with(&["a", "b"])).is_some());
        assert!(host_problem(Version::HTTP_2, &with(&["a", "b"])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["u@evil"])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["a b"])).is_some());
        assert!(host_problem(Version::HTTP_11, &with(&["a/b"])).is_some());
    }

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
