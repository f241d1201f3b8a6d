//! Deterministic object names and labels, within Kubernetes' limits.

use std::collections::BTreeMap;

use ring::digest::{SHA256, digest};

/// Longest name of a label value or of most objects ibac writes.
pub const MAX_NAME: usize = 63;

/// `<prefix>-<name>`, cut to 63 characters with a hash of the whole when too
/// long, so that distinct inputs keep distinct names.
pub fn object_name(prefix: &str, name: &str) -> String {
    let full = format!("{prefix}-{name}");
    if full.len() <= MAX_NAME {
        return full;
    }
    let hash = hex_digest(&full, 4);
    let keep = MAX_NAME - hash.len() - 1;
    let head = full[..keep].trim_end_matches(['-', '.', '_']);
    format!("{head}-{hash}")
}

/// The first `bytes` bytes of the SHA-256 of `text`, in hex: what a name cut
/// to a length limit keeps of the whole, so that two long names that share
/// their beginning still differ.
pub fn hex_digest(text: &str, bytes: usize) -> String {
    digest(&SHA256, text.as_bytes())
        .as_ref()
        .iter()
        .take(bytes)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The labels every object ibac writes carries.
pub fn ownership(role: &str, subject: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "app.kubernetes.io/managed-by".to_string(),
            "ibac".to_string(),
        ),
        ("ibac.dev/role".to_string(), role.to_string()),
        (
            "ibac.dev/for".to_string(),
            object_name("w", subject)[2..].to_string(),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_stay_distinct() {
        assert_eq!(object_name("ibac-ingress", "web"), "ibac-ingress-web");
        let a = object_name("ibac-ingress", &"a".repeat(80));
        let b = object_name("ibac-ingress", &format!("{}b", "a".repeat(79)));
        assert!(a.len() <= MAX_NAME && b.len() <= MAX_NAME);
        assert_ne!(a, b);
        assert_eq!(
            a,
            object_name("ibac-ingress", &"a".repeat(80)),
            "deterministic"
        );
        assert!(ownership("ingress", &"x".repeat(100))["ibac.dev/for"].len() <= MAX_NAME);
    }
}
