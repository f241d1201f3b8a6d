//! Explains a certificate chain in SPIFFE terms and says exactly why ibac
//! would refuse it, listing every rule it breaks rather than the first.

use std::fmt::Write as _;

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::bundle::{TrustBundle, fingerprint};
use crate::spiffe_id::SpiffeId;
use crate::verify::{LeafInfo, PeerRole, SvidError, verify_chain};

/// The outcome of an inspection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inspection {
    /// The explanation, for people.
    pub text: String,
    /// Whether ibac would accept the chain as an SVID (always false when
    /// there was no bundle to check the chain against).
    pub accepted: bool,
}

/// A Unix time as people read it (RFC 3339, UTC), or the bare number when it
/// is out of range: how certificate lifetimes are shown.
pub fn unix_time_text(secs: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| secs.to_string())
}

/// Explains `chain` (leaf first); with a bundle, checks it end to end.
pub fn inspect(
    chain: &[CertificateDer<'_>],
    bundle: Option<&TrustBundle>,
    trust_domain: &str,
    now: UnixTime,
) -> Inspection {
    let mut text = String::new();
    let now_secs = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let Some(leaf) = chain.first() else {
        return Inspection {
            text: "no certificate given\n".into(),
            accepted: false,
        };
    };
    let info = match LeafInfo::parse(leaf) {
        Ok(info) => info,
        Err(e) => {
            return Inspection {
                text: format!("ibac refuses this certificate:\n  - {e}\n"),
                accepted: false,
            };
        }
    };
    let _ = writeln!(text, "leaf certificate");
    let _ = writeln!(
        text,
        "  subject:        {}",
        if info.subject.is_empty() {
            "(empty)"
        } else {
            &info.subject
        }
    );
    let _ = writeln!(text, "  issuer:         {}", info.issuer);
    let _ = writeln!(text, "  serial:         {}", info.serial);
    let _ = writeln!(text, "  fingerprint:    sha256:{}", fingerprint(leaf));
    match info.uri_sans.as_slice() {
        [] => {
            let _ = writeln!(text, "  SPIFFE ID:      none (no URI SAN)");
        }
        [uri] => {
            let described = match SpiffeId::parse(uri) {
                Ok(id) => match id.workload() {
                    Some(w) => format!("{id}  (workload {w})"),
                    None => id.to_string(),
                },
                Err(e) => format!("{uri}  (not a valid SPIFFE ID: {e})"),
            };
            let _ = writeln!(text, "  SPIFFE ID:      {described}");
        }
        several => {
            let _ = writeln!(text, "  URI SANs:       {}", several.join(", "));
        }
    }
    let _ = writeln!(
        text,
        "  CA:             {}",
        if info.is_ca { "yes" } else { "no" }
    );
    let ku = match info.key_usage {
        None => "absent".to_string(),
        Some((critical, ds, cert_sign, crl_sign)) => {
            let mut bits = Vec::new();
            if ds {
                bits.push("digitalSignature");
            }
            if cert_sign {
                bits.push("keyCertSign");
            }
            if crl_sign {
                bits.push("cRLSign");
            }
            format!(
                "{}{}",
                if critical {
                    "critical: "
                } else {
                    "not critical: "
                },
                bits.join(", ")
            )
        }
    };
    let _ = writeln!(text, "  key usage:      {ku}");
    let eku = match info.extended_key_usage {
        None => "absent".to_string(),
        Some((server, client)) => {
            let mut parts = Vec::new();
            if server {
                parts.push("serverAuth");
            }
            if client {
                parts.push("clientAuth");
            }
            parts.join(", ")
        }
    };
    let _ = writeln!(text, "  ext. key usage: {eku}");
    let _ = writeln!(
        text,
        "  valid:          {} to {}",
        unix_time_text(info.not_before),
        unix_time_text(info.not_after)
    );
    if chain.len() > 1 {
        let _ = writeln!(
            text,
            "  chain:          {} more certificate(s)",
            chain.len() - 1
        );
    }

    let mut problems: Vec<SvidError> = info.violations(trust_domain);
    if let Some(v) = info.validity_at(now_secs) {
        problems.push(v);
    }
    match bundle {
        Some(bundle) => {
            if let Err(e) = verify_chain(leaf, &chain[1..], bundle, now, PeerRole::Client)
                && !problems.contains(&e)
            {
                problems.push(e);
            }
        }
        None => {
            let _ = writeln!(
                text,
                "\nthe chain was not checked: give the trust bundle (--bundle) or the CA (--dir)"
            );
        }
    }
    if problems.is_empty() {
        let id = info.uri_sans.first().cloned().unwrap_or_default();
        let _ = writeln!(
            text,
            "\nibac {} this certificate as {id}",
            if bundle.is_some() {
                "accepts"
            } else {
                "would accept (if its chain verifies)"
            }
        );
    } else {
        let _ = writeln!(text, "\nibac refuses this certificate:");
        for p in &problems {
            let _ = writeln!(text, "  - {p}");
        }
    }
    Inspection {
        accepted: problems.is_empty() && bundle.is_some(),
        text,
    }
}
