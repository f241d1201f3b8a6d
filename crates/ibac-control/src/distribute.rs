//! What proxies get, checked with the proxies' own decoder before anything
//! is committed or published.
//!
//! The control plane writes the documents in force in its canonical form and
//! reads them back with exactly the code a proxy runs
//! ([`ibac_api::proxy::policy_of`]). A state that this decoder refuses, or
//! that reads back as something else than was written (a field dropped or
//! spelled differently), is never distributed: the change that would produce
//! it fails with the reason and nothing is applied. This is what keeps "the
//! control plane says protected" and "the proxy enforces it" the same claim.

use ibac_api::ProxyState;
use ibac_model::encode::{Flavor, encode};
use ibac_model::{Document, Namespace, WorkloadId};
use ibac_policy::Policy;

/// Why a state cannot be distributed.
#[derive(Debug, thiserror::Error)]
pub enum Undistributable {
    /// A document could not be written at all.
    #[error("cannot write {document} for the proxies: {reason}")]
    Encode {
        /// `kind namespace/name`.
        document: String,
        /// Why.
        reason: String,
    },
    /// The proxies' decoder refuses what would be sent.
    #[error("the proxies would refuse this state: {0}")]
    Refused(String),
    /// The proxies would read something else than was written.
    #[error(
        "the proxies would read {document} differently from what the control plane holds:\n  written: {written}\n  read:    {read}"
    )]
    Changed {
        /// `kind namespace/name`.
        document: String,
        /// The canonical text written.
        written: String,
        /// The canonical text of what the proxy would read.
        read: String,
    },
}

fn canonical(doc: &Document) -> Result<String, Undistributable> {
    encode(doc, Flavor::Ibac)
        .map_err(|e| e.to_string())
        .and_then(|e| ibac_model::yaml::to_yaml(&e).map_err(|e| e.to_string()))
        .map_err(|reason| Undistributable::Encode {
            document: doc.key().to_string(),
            reason,
        })
}

/// The documents in force as one YAML stream, proven to read back
/// unchanged through the proxies' decoder.
pub fn documents_for_proxies(policy: &Policy) -> Result<String, Undistributable> {
    let docs: Vec<&Document> = policy.documents_in_force();
    let written: Vec<String> = docs
        .iter()
        .map(|d| canonical(d))
        .collect::<Result<_, _>>()?;
    let stream = written.join("---\n");
    verify(&stream, &docs, &written)?;
    Ok(stream)
}

/// Reads `stream` as a proxy would and checks it holds exactly `docs`.
fn verify(stream: &str, docs: &[&Document], written: &[String]) -> Result<(), Undistributable> {
    let state = ProxyState {
        revision: 0,
        documents: stream.to_string(),
        workloads: Default::default(),
        heartbeat_seconds: None,
    };
    let read = ibac_api::proxy::policy_of(&state, &Namespace::default_namespace())
        .map_err(|e| Undistributable::Refused(e.to_string()))?;
    let mut read_back: Vec<(String, String)> = read
        .documents_in_force()
        .into_iter()
        .map(|d| canonical(d).map(|text| (d.key().to_string(), text)))
        .collect::<Result<_, _>>()?;
    let mut expected: Vec<(String, String)> = docs
        .iter()
        .zip(written)
        .map(|(d, text)| (d.key().to_string(), text.clone()))
        .collect();
    read_back.sort();
    expected.sort();
    for (want, got) in expected.iter().zip(&read_back) {
        if want != got {
            return Err(Undistributable::Changed {
                document: want.0.clone(),
                written: want.1.replace('\n', " "),
                read: got.1.replace('\n', " "),
            });
        }
    }
    if expected.len() != read_back.len() {
        let missing = expected
            .iter()
            .find(|e| !read_back.contains(e))
            .map_or_else(|| "a document".to_string(), |e| e.0.clone());
        return Err(Undistributable::Changed {
            document: missing,
            written: format!("{} documents", expected.len()),
            read: format!("{} documents", read_back.len()),
        });
    }
    Ok(())
}

/// The state a proxy gets, serialized once per revision.
pub fn proxy_state(
    revision: u64,
    documents: String,
    workloads: impl IntoIterator<Item = (WorkloadId, std::net::SocketAddr)>,
    heartbeat_seconds: u64,
) -> ProxyState {
    ProxyState {
        revision,
        documents,
        workloads: workloads.into_iter().collect(),
        heartbeat_seconds: Some(heartbeat_seconds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ibac_model::{ParseOptions, SourceName, parse_source};
    use ibac_policy::NoFacts;

    fn policy(text: &str) -> Policy {
        let parsed = parse_source(&SourceName::from("t.yaml"), text, &ParseOptions::default());
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let (policy, errors) = Policy::build(parsed.documents, &NoFacts);
        assert!(errors.is_empty(), "{errors:?}");
        policy
    }

    const SETTINGS: &str = "apiVersion: ibac.dev/v1\nkind: EnforcementConfig\nmetadata: {name: default, namespace: ibac-system}\nspec:\n  mode: defaultActive\n  enforcers: {networkPolicy: true, egressNetworkPolicy: false, istio: true, kafkaACL: false, database: true, proxy: true}\n";

    #[test]
    fn settings_with_every_enforcer_are_distributable() {
        let stream = documents_for_proxies(&policy(SETTINGS)).unwrap();
        assert!(stream.contains("kafkaACL: false"), "{stream}");
    }

    /// The state the control plane published when `ibac mode defaultActive`
    /// failed open: `kafkaAcl` written, `kafkaACL` read. The check refuses it
    /// with the decoder's own message.
    #[test]
    fn the_settings_spelling_bug_is_refused() {
        let good = policy(SETTINGS);
        let docs: Vec<&Document> = good.documents_in_force();
        let as_written_then = SETTINGS.replace("kafkaACL", "kafkaAcl");
        let err = verify(&as_written_then, &docs, &[SETTINGS.to_string()]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("the proxies would refuse this state: "),
            "{message}"
        );
        assert!(message.contains("kafkaAcl"), "{message}");
    }

    /// A document that reads back as something else (here: the mode lost)
    /// is refused too, not only one that fails to parse.
    #[test]
    fn a_state_that_reads_back_differently_is_refused() {
        let good = policy(SETTINGS);
        let docs: Vec<&Document> = good.documents_in_force();
        let written = documents_for_proxies(&good).unwrap();
        let without_mode: String = written
            .lines()
            .filter(|l| l.trim() != "mode: defaultActive")
            .map(|l| format!("{l}\n"))
            .collect();
        assert_ne!(without_mode, written);
        let err = verify(&without_mode, &docs, &[written]).unwrap_err();
        assert!(
            matches!(err, Undistributable::Changed { ref document, .. } if document == "EnforcementConfig ibac-system/default"),
            "{err}"
        );
    }
}
