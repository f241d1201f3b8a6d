//! Turning observed paths into intent paths.
//!
//! Observed paths carry IDs (`/orders/8c1f…`, `/users/42/cart`); an intent for
//! each one would be useless. A segment that looks like an ID ends the path
//! there, as a prefix: `/users/42/cart` → `/users/*`. Intents follow Istio's
//! matching, where `*` may only close a path, so a wildcard in the middle
//! (`/users/*/cart`) cannot be written; the prefix is the narrowest intent
//! that still allows every observed call.

/// Whether a path segment looks like an identifier rather than a name:
/// a number, a UUID, a long hex string, or a long token mixing letters and
/// digits.
pub fn is_id_like(segment: &str) -> bool {
    if segment.is_empty() {
        return false;
    }
    let digits = segment.bytes().filter(u8::is_ascii_digit).count();
    if digits == segment.len() {
        return true;
    }
    if is_uuid(segment) {
        return true;
    }
    let hex = segment.bytes().all(|b| b.is_ascii_hexdigit());
    if hex && segment.len() >= 8 && digits > 0 {
        return true;
    }
    let token = segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    let letters = segment.bytes().filter(u8::is_ascii_alphabetic).count();
    token && segment.len() >= 16 && digits >= 2 && letters > 0
}

fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What the mapper writes in place of an ID-like segment.
pub const ID: &str = "{id}";

/// An observed path with every ID-like segment replaced by [`ID`]:
/// `/users/42/cart` → `/users/{id}/cart`. The mapper keeps calls under this
/// form, so a server called with a thousand different IDs is one path, not a
/// thousand — the per-edge path cap then counts kinds of call, and export
/// still finds `/users/*` after hours of traffic. Decisions on the collapsed
/// path are never more permissive than on the observed one: intent paths
/// cannot contain braces ([`ibac_model::http::PatternError::Brace`]), so
/// only a prefix covering the segment — one that allows every ID — allows it.
pub fn collapse_ids(path: &str) -> String {
    if path == "*" || !path.starts_with('/') {
        return path.to_string();
    }
    let mut out = String::with_capacity(path.len());
    for segment in path.split('/').skip(1) {
        out.push('/');
        out.push_str(if is_id_like(segment) { ID } else { segment });
    }
    out
}

/// The intent path for an observed, normalized path: cut at the first
/// ID-like segment (or [`ID`]) and closed with `/*`. `*` (any path) stays.
pub fn generalize(path: &str) -> String {
    if path == "*" {
        return path.to_string();
    }
    let mut kept = String::new();
    for segment in path.split('/').skip(1) {
        if segment == ID || is_id_like(segment) {
            kept.push_str("/*");
            return kept;
        }
        kept.push('/');
        kept.push_str(segment);
    }
    if kept.is_empty() { "/".into() } else { kept }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use ibac_model::http::{PathPattern, normalize};
    use proptest::prelude::*;

    #[test]
    fn ids_are_recognized_and_names_are_not() {
        for id in [
            "42",
            "8c1f0f4e-2b9c-4d47-a7c5-0f1a2b3c4d5e",
            "deadbeef01",
            "a1b2c3d4e5f6a7b8c9",
            "ord_2Nf8kLq9Zx4Pw7Rt",
        ] {
            assert!(is_id_like(id), "{id}");
        }
        for name in [
            "products",
            "v1",
            "cart",
            "getSupportedCurrencies",
            "deadbeef",
            "health-check",
            "",
        ] {
            assert!(!is_id_like(name), "{name}");
        }
    }

    #[test]
    fn ids_are_collapsed_and_names_kept() {
        for (path, collapsed) in [
            ("/users/42/cart", "/users/{id}/cart"),
            (
                "/orders/8c1f2a3b-1111-2222-3333-444455556666",
                "/orders/{id}",
            ),
            ("/products", "/products"),
            ("*", "*"),
            ("/", "/"),
        ] {
            assert_eq!(collapse_ids(path), collapsed, "{path}");
        }
        assert_eq!(generalize(&collapse_ids("/users/42/cart")), "/users/*");
    }

    #[test]
    fn paths_are_cut_at_the_first_id() {
        for (path, general) in [
            ("/products", "/products"),
            ("/products/42", "/products/*"),
            ("/users/42/cart", "/users/*"),
            (
                "/v1/orders/8c1f0f4e-2b9c-4d47-a7c5-0f1a2b3c4d5e",
                "/v1/orders/*",
            ),
            ("/", "/"),
            ("*", "*"),
        ] {
            assert_eq!(generalize(path), general, "{path}");
        }
    }

    proptest! {
        /// The generalized path is a valid intent path, and the intent it
        /// makes matches the path it came from.
        #[test]
        fn the_generalized_path_still_matches_the_observed_one(
            segs in proptest::collection::vec("[a-z0-9]{1,12}", 0..5)
        ) {
            let raw = format!("/{}", segs.join("/"));
            let observed = normalize(&raw).unwrap();
            let pattern = PathPattern::parse(&generalize(observed.as_str())).unwrap();
            prop_assert!(pattern.matches(&observed), "{} vs {}", raw, generalize(observed.as_str()));
        }
    }
}
