//! Any input: the parser returns documents or errors, never panics, and stays
//! within its limits; every document it accepts survives a round trip through
//! ibac's canonical form unchanged in number and kind.
#![no_main]

use ibac_model::encode::{Flavor, encode_all};
use ibac_model::yaml::to_yaml_stream;
use ibac_model::{ParseOptions, parse_source};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let options = ParseOptions::default();
    let parsed = parse_source(&"fuzz.yaml".into(), text, &options);
    for error in &parsed.errors {
        // Every error renders, and names the source first.
        assert!(error.to_string().starts_with("fuzz.yaml"));
    }
    if parsed.documents.is_empty() {
        return;
    }
    let encoded = encode_all(&parsed.documents, Flavor::Ibac).expect("ibac's own format holds every document");
    let yaml = to_yaml_stream(&encoded).expect("encoded documents serialize");
    let again = parse_source(&"again.yaml".into(), &yaml, &options);
    assert!(again.errors.is_empty(), "re-reading what ibac wrote failed: {:?}\n{yaml}", again.errors);
    let kinds = |docs: &[ibac_model::Document]| docs.iter().map(|d| d.key()).collect::<Vec<_>>();
    assert_eq!(kinds(&parsed.documents), kinds(&again.documents));
});
