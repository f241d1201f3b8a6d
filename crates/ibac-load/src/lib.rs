//! Reads document sources from files, directories and stdin, and parses them.
//!
//! Directories are walked recursively in sorted order, taking `.yaml`, `.yml`
//! and `.json` files and skipping hidden entries, so that the same tree always
//! gives the same documents in the same order. Every source is read within the
//! size limit before any parsing starts.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use ibac_model::{DocumentError, ParseOptions, Parsed, SourceName, check_set, parse_source};

/// The name under which standard input appears in messages.
pub const STDIN_NAME: &str = "<stdin>";

/// Deepest directory nesting walked.
const MAX_DEPTH: usize = 32;

/// One source's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// As shown to users.
    pub name: SourceName,
    /// The text, without a byte-order mark.
    pub text: String,
}

/// Reads every path: `-` is stdin, a directory is walked, a file is read
/// whatever its extension. Unreadable sources are reported; the rest are returned.
pub fn read_sources(paths: &[PathBuf], max_bytes: usize) -> (Vec<Source>, Vec<DocumentError>) {
    let mut sources = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            match read_limited(std::io::stdin().lock(), STDIN_NAME.into(), max_bytes) {
                Ok(source) => sources.push(source),
                Err(e) => errors.push(e),
            }
        } else if path.is_dir() {
            walk(path, 0, max_bytes, &mut sources, &mut errors);
        } else {
            match read_file(path, max_bytes) {
                Ok(source) => sources.push(source),
                Err(e) => errors.push(e),
            }
        }
    }
    (sources, errors)
}

fn name_of(path: &Path) -> SourceName {
    path.display().to_string().into()
}

fn is_document_file(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

fn walk(
    dir: &Path,
    depth: usize,
    max_bytes: usize,
    sources: &mut Vec<Source>,
    errors: &mut Vec<DocumentError>,
) {
    let unreadable = |reason: String| DocumentError::Unreadable {
        file: name_of(dir),
        reason,
    };
    if depth > MAX_DEPTH {
        errors.push(unreadable(format!(
            "directories nested deeper than {MAX_DEPTH} levels"
        )));
        return;
    }
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            errors.push(unreadable(e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        match entry {
            Ok(entry) => {
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden {
                    paths.push(entry.path());
                }
            }
            Err(e) => errors.push(unreadable(e.to_string())),
        }
    }
    paths.sort();
    for path in paths {
        // Symlinked directories are not followed: a link cycle must not loop.
        let is_link_dir =
            fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_symlink()) && path.is_dir();
        if path.is_dir() && !is_link_dir {
            walk(&path, depth + 1, max_bytes, sources, errors);
        } else if path.is_file() && is_document_file(&path) {
            match read_file(&path, max_bytes) {
                Ok(source) => sources.push(source),
                Err(e) => errors.push(e),
            }
        }
    }
}

fn read_file(path: &Path, max_bytes: usize) -> Result<Source, DocumentError> {
    let name = name_of(path);
    let file = fs::File::open(path).map_err(|e| DocumentError::Unreadable {
        file: name.clone(),
        reason: e.to_string(),
    })?;
    read_limited(file, name, max_bytes)
}

fn read_limited(
    reader: impl Read,
    name: SourceName,
    max_bytes: usize,
) -> Result<Source, DocumentError> {
    let mut bytes = Vec::new();
    let limit = u64::try_from(max_bytes)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    reader
        .take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| DocumentError::Unreadable {
            file: name.clone(),
            reason: e.to_string(),
        })?;
    if bytes.len() > max_bytes {
        return Err(DocumentError::TooLarge {
            file: name,
            size: bytes.len() as u64,
            limit: max_bytes as u64,
        });
    }
    let mut text =
        String::from_utf8(bytes).map_err(|_| DocumentError::NotText { file: name.clone() })?;
    if text.starts_with('\u{feff}') {
        text.drain(..3);
    }
    Ok(Source { name, text })
}

/// Reads and parses every path, then checks the documents against each other
/// (one ClientIntents per client, one EnforcementConfig…). Errors are sorted
/// by file, line and column.
pub fn read_documents(paths: &[PathBuf], options: &ParseOptions) -> Parsed {
    let (sources, errors) = read_sources(paths, options.limits.max_bytes);
    let mut parsed = Parsed {
        errors,
        ..Parsed::default()
    };
    for source in &sources {
        parsed.extend(parse_source(&source.name, &source.text, options));
    }
    let (documents, mut clashes) = check_set(std::mem::take(&mut parsed.documents));
    parsed.documents = documents;
    parsed.errors.append(&mut clashes);
    parsed.errors.sort_by_key(DocumentError::sort_key);
    parsed
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const PS: &str = "apiVersion: k8s.otterize.com/v2beta1\nkind: ProtectedService\nmetadata: {name: NAME}\nspec: {name: NAME}\n";

    #[test]
    fn walks_directories_in_order_taking_document_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("b/deeper")).unwrap();
        fs::create_dir_all(root.join(".git")).unwrap();
        fs::write(root.join("b/deeper/z.yml"), PS.replace("NAME", "z")).unwrap();
        fs::write(root.join("a.yaml"), PS.replace("NAME", "a")).unwrap();
        fs::write(root.join("c.json"), r#"{"apiVersion": "k8s.otterize.com/v2beta1", "kind": "ProtectedService", "metadata": {"name": "c"}, "spec": {"name": "c"}}"#).unwrap();
        fs::write(root.join("notes.txt"), "not yaml: [").unwrap();
        fs::write(root.join(".git/x.yaml"), "broken: [").unwrap();
        let parsed = read_documents(&[root.to_path_buf()], &ParseOptions::default());
        assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
        let names: Vec<&str> = parsed
            .documents
            .iter()
            .map(|d| d.meta().name.as_str())
            .collect();
        assert_eq!(names, ["a", "z", "c"]);
    }

    #[test]
    fn reports_every_error_sorted_and_keeps_the_good_documents() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("1.yaml"), PS.replace("NAME", "Bad")).unwrap();
        fs::write(dir.path().join("2.yaml"), PS.replace("NAME", "good")).unwrap();
        fs::write(dir.path().join("3.yaml"), "a: [").unwrap();
        fs::write(dir.path().join("4.yaml"), [0xff, 0xfe, 0x00]).unwrap();
        let parsed = read_documents(&[dir.path().to_path_buf()], &ParseOptions::default());
        assert_eq!(parsed.documents.len(), 1);
        let files = parsed.error_messages();
        assert!(files[0].contains("1.yaml:3:18: `Bad` is not a valid metadata.name; names are lowercase: did you mean `bad`?"), "{files:?}");
        assert!(
            files
                .iter()
                .any(|f| f.contains("3.yaml") && f.contains("invalid YAML")),
            "{files:?}"
        );
        assert!(
            files.iter().any(|f| f.ends_with("4.yaml: not UTF-8 text")),
            "{files:?}"
        );
    }

    #[test]
    fn refuses_oversized_files_before_parsing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        fs::write(&path, "a: 1\n".repeat(100)).unwrap();
        let (sources, errors) = read_sources(&[path], 64);
        assert!(sources.is_empty());
        assert!(matches!(
            errors[0],
            DocumentError::TooLarge { limit: 64, .. }
        ));
    }

    #[test]
    fn missing_paths_are_reported() {
        let (_, errors) = read_sources(&[PathBuf::from("/nonexistent/x.yaml")], 1024);
        assert!(
            errors[0]
                .to_string()
                .starts_with("/nonexistent/x.yaml: cannot read:"),
            "{}",
            errors[0]
        );
    }
}
