//! Path normalization never panics, is idempotent, and never yields a path
//! with dot segments or doubled slashes.
#![no_main]

use ibac_model::http::normalize;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(path) = normalize(raw) {
        let text = path.as_str();
        assert!(text.starts_with('/'));
        assert!(!text.contains("//"));
        assert!(!text.split('/').any(|s| s == "." || s == ".."));
        assert_eq!(normalize(text).map(|p| p.as_str().to_string()), Ok(text.to_string()));
    }
});
