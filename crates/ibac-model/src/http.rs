//! HTTP methods, path patterns and path normalization.
//!
//! Matching follows Istio's rules so that rendering to Istio loses nothing:
//! `/api` is exact, `/api/*` is the prefix `/api/`, a lone `*` is any path.
//! Before matching, a request path is normalized exactly once, here, and
//! nowhere else: so `/a/../admin` can never pass a rule for `/a/*`.

use std::fmt;

use crate::glob::Glob;

/// An HTTP method an intent can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    /// GET (also allows HEAD).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
    /// CONNECT.
    Connect,
}

impl Method {
    /// Every method an intent can name, in the documented order.
    pub const ALL: [Method; 8] = [
        Method::Get,
        Method::Post,
        Method::Put,
        Method::Delete,
        Method::Options,
        Method::Trace,
        Method::Patch,
        Method::Connect,
    ];

    /// The method's name as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
        }
    }

    /// Parses a method as written in an intent (uppercase).
    pub fn parse(text: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == text)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of methods; [`MethodSet::ANY`] when an intent names none.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MethodSet(u16);

/// The bit that stands for "every method, named or not".
const ANY_BIT: u16 = 1 << 15;

impl MethodSet {
    /// No method.
    pub const EMPTY: MethodSet = MethodSet(0);
    /// Every method, including ones intents cannot name (PROPFIND, say).
    pub const ANY: MethodSet = MethodSet(ANY_BIT);

    /// The set of the given methods; an empty list means every method.
    pub fn from_methods(methods: &[Method]) -> Self {
        if methods.is_empty() {
            return Self::ANY;
        }
        MethodSet(methods.iter().fold(0, |acc, m| acc | m.bit()))
    }

    /// The union of two sets.
    pub fn union(self, other: MethodSet) -> MethodSet {
        if self.is_any() || other.is_any() {
            MethodSet::ANY
        } else {
            MethodSet(self.0 | other.0)
        }
    }

    /// Whether this is the set of every method.
    pub fn is_any(self) -> bool {
        self.0 & ANY_BIT != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether a request with this method is allowed. HEAD is allowed wherever GET is.
    pub fn allows(self, method: &RequestMethod) -> bool {
        if self.is_any() {
            return true;
        }
        match method {
            RequestMethod::Known(m) => self.0 & m.bit() != 0,
            RequestMethod::Head => self.0 & Method::Get.bit() != 0,
            RequestMethod::Other(_) => false,
        }
    }

    /// The named methods, in the documented order; empty for [`MethodSet::ANY`].
    pub fn methods(self) -> Vec<Method> {
        if self.is_any() {
            return Vec::new();
        }
        Method::ALL
            .into_iter()
            .filter(|m| self.0 & m.bit() != 0)
            .collect()
    }
}

impl fmt::Debug for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for MethodSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("all methods");
        }
        let names: Vec<&str> = self.methods().into_iter().map(Method::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// The method of a request as it arrived.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RequestMethod {
    /// One an intent can name.
    Known(Method),
    /// HEAD, allowed wherever GET is.
    Head,
    /// Any other token; only intents that allow every method allow it.
    Other(Box<str>),
}

impl RequestMethod {
    /// Reads a method token as HTTP sends it (case-sensitive, as HTTP methods are).
    pub fn parse(token: &str) -> Option<RequestMethod> {
        if token.is_empty() || token.len() > 32 || !token.bytes().all(is_tchar) {
            return None;
        }
        Some(match token {
            "HEAD" => RequestMethod::Head,
            other => match Method::parse(other) {
                Some(m) => RequestMethod::Known(m),
                None => RequestMethod::Other(other.into()),
            },
        })
    }

    /// The method's name.
    pub fn as_str(&self) -> &str {
        match self {
            RequestMethod::Known(m) => m.as_str(),
            RequestMethod::Head => "HEAD",
            RequestMethod::Other(s) => s,
        }
    }
}

impl fmt::Display for RequestMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Longest request path accepted, in bytes.
pub const MAX_PATH_LEN: usize = 8192;

/// Why a request path is refused (answered 400, never decoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not an origin-form path (does not start with `/`).
    #[error("the path must start with `/`")]
    NotAbsolute,
    /// `%2F` would change where the path's segments split.
    #[error("an encoded slash (`%2F`) is not allowed")]
    EncodedSlash,
    /// `\` or `%5C`: some servers read it as a slash.
    #[error("a backslash (`\\` or `%5C`) is not allowed")]
    Backslash,
    /// `%00`.
    #[error("an encoded NUL (`%00`) is not allowed")]
    EncodedNul,
    /// A raw byte outside ASCII.
    #[error("raw non-ASCII bytes are not allowed; percent-encode them")]
    NonAscii,
    /// A raw control character or space.
    #[error("control characters and spaces are not allowed")]
    Control,
    /// A `%` not followed by two hex digits.
    #[error("`%` must be followed by two hex digits")]
    BadEscape,
    /// Percent-escapes whose bytes are not UTF-8, or are overlong UTF-8
    /// (`%C0%AE` is an old spelling of `.`).
    #[error(
        "percent-escapes must decode to valid UTF-8 (`%C0%AE` and other overlong forms are refused)"
    )]
    InvalidUtf8,
    /// A dot, slash, backslash or NUL encoded more than once (`%252e`,
    /// `%25252F`): an app that decodes twice would see what no rule saw.
    #[error(
        "a double-encoded dot, slash, backslash or NUL (`%252e`, `%252f`, `%255c`) is not allowed"
    )]
    DoubleEncoded,
    /// `%25` nested deeper than [`MAX_ENCODING_DEPTH`] levels.
    #[error("percent-encoding nested more than {MAX_ENCODING_DEPTH} levels deep is not allowed")]
    EncodedTooDeep,
    /// Longer than [`MAX_PATH_LEN`].
    #[error("the path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

/// How many times over a path is decoded when looking for double-encoded
/// dots, slashes and backslashes; deeper nesting of `%25` is refused.
pub const MAX_ENCODING_DEPTH: usize = 16;

/// A request path after normalization; only [`normalize`] makes one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedPath(String);

impl NormalizedPath {
    /// The path as text; this is what is matched and what is forwarded.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalizedPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl serde::Serialize for NormalizedPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// Normalizes a request path: the query is dropped; unreserved characters are
/// percent-decoded once (other escapes keep uppercase hex); `.` and `..` segments
/// are resolved (never above the root); runs of slashes are merged. Encoded
/// slashes, backslashes, NULs and raw non-ASCII are refused, never decoded; so
/// are escapes that are not UTF-8 (or overlong UTF-8) and a dot, slash,
/// backslash or NUL encoded twice or more (`%252e`, `%25252F`).
pub fn normalize(raw: &str) -> Result<NormalizedPath, PathError> {
    let path = raw.split(['?', '#']).next().unwrap_or_default();
    if path.len() > MAX_PATH_LEN {
        return Err(PathError::TooLong);
    }
    if !path.starts_with('/') {
        return Err(PathError::NotAbsolute);
    }
    let bytes = path.as_bytes();
    let mut decoded = String::with_capacity(path.len());
    // Every escape decoded: what an app that decodes once would see.
    let mut once: Vec<u8> = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(hi), Some(lo)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::BadEscape);
                };
                let v = hi * 16 + lo;
                once.push(v);
                match v {
                    b'/' => return Err(PathError::EncodedSlash),
                    b'\\' => return Err(PathError::Backslash),
                    0 => return Err(PathError::EncodedNul),
                    v if is_unreserved(v) => decoded.push(char::from(v)),
                    v => {
                        decoded.push('%');
                        decoded.push_str(&format!("{v:02X}"));
                    }
                }
                i += 3;
            }
            b'\\' => return Err(PathError::Backslash),
            0x80.. => return Err(PathError::NonAscii),
            0..=0x20 | 0x7f => return Err(PathError::Control),
            _ => {
                decoded.push(char::from(b));
                once.push(b);
                i += 1;
            }
        }
    }
    if std::str::from_utf8(&once).is_err() {
        return Err(PathError::InvalidUtf8);
    }
    refuse_double_encoding(once)?;
    Ok(NormalizedPath(resolve_segments(&decoded)))
}

/// Decodes `once` again and again, as an app that decodes more than once
/// would, and refuses a dot, slash, backslash or NUL appearing from an
/// escape at any of those later levels.
fn refuse_double_encoding(once: Vec<u8>) -> Result<(), PathError> {
    let mut current = once;
    for _ in 0..MAX_ENCODING_DEPTH {
        if !current.contains(&b'%') {
            return Ok(());
        }
        let mut next = Vec::with_capacity(current.len());
        let mut decoded_any = false;
        let mut i = 0;
        while i < current.len() {
            let escape = match current.get(i..i + 3) {
                Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi * 16 + lo),
                _ => None,
            };
            match escape {
                Some(b'.' | b'/' | b'\\' | 0) => return Err(PathError::DoubleEncoded),
                Some(v) => {
                    next.push(v);
                    decoded_any = true;
                    i += 3;
                }
                None => {
                    next.push(current[i]);
                    i += 1;
                }
            }
        }
        if !decoded_any {
            return Ok(());
        }
        current = next;
    }
    if current.contains(&b'%') {
        return Err(PathError::EncodedTooDeep);
    }
    Ok(())
}

/// Resolves dot segments (RFC 3986 §5.2.4), then merges slashes.
fn resolve_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in path[1..].split('/') {
        trailing_slash = false;
        match segment {
            "." => trailing_slash = true,
            ".." => {
                segments.pop();
                trailing_slash = true;
            }
            s => segments.push(s),
        }
    }
    if path.ends_with('/') {
        trailing_slash = true;
    }
    let kept: Vec<&str> = segments.into_iter().filter(|s| !s.is_empty()).collect();
    let mut out = String::with_capacity(path.len());
    out.push('/');
    out.push_str(&kept.join("/"));
    if trailing_slash && !kept.is_empty() {
        out.push('/');
    }
    out
}

/// A path rule of an HTTP intent.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PathPattern {
    /// `/api`: this path only.
    Exact(String),
    /// `/api/*`: every path starting with `/api/` (so not `/api` nor `/apix`).
    Prefix(String),
    /// `*`: every path.
    Any,
}

/// Why a path pattern is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// A `*` other than a trailing `/*` or a lone `*`.
    #[error("`*` may only end a path as `/*` (a prefix) or stand alone (any path)")]
    Wildcard,
    /// Not normalized; the hint carries the normalized form.
    #[error("paths are matched after normalization: write `{0}`")]
    NotNormal(String),
    /// Carries a query.
    #[error("the query is ignored when matching: remove `?…`")]
    Query,
    /// A raw `{` or `}`: not a URI character (clients send `%7B`, `%7D`),
    /// and the network mapper writes `{id}` for ID-like segments, which an
    /// intent must not be able to name.
    #[error(
        "`{{` and `}}` are not path characters: for a family of IDs write a prefix (`/users/*`); for a literal brace write `%7B` or `%7D`"
    )]
    Brace,
    /// Fails the request-path rules.
    #[error("{0}")]
    Path(PathError),
}

impl PathPattern {
    /// Parses a pattern as written in an intent.
    pub fn parse(text: &str) -> Result<Self, PatternError> {
        if text == "*" {
            return Ok(PathPattern::Any);
        }
        if text.contains(['?', '#']) {
            return Err(PatternError::Query);
        }
        if text.contains(['{', '}']) {
            return Err(PatternError::Brace);
        }
        let (base, prefix) = match text.strip_suffix("/*") {
            Some(base) => (format!("{base}/"), true),
            None => (text.to_string(), false),
        };
        if base.contains('*') {
            return Err(PatternError::Wildcard);
        }
        let normal = normalize(&base).map_err(PatternError::Path)?;
        if normal.as_str() != base {
            let shown = if prefix {
                format!(
                    "{}*",
                    normal.as_str().trim_end_matches('/').to_string() + "/"
                )
            } else {
                normal.as_str().to_string()
            };
            return Err(PatternError::NotNormal(shown));
        }
        Ok(if prefix {
            PathPattern::Prefix(base)
        } else {
            PathPattern::Exact(base)
        })
    }

    /// Whether a normalized request path matches.
    pub fn matches(&self, path: &NormalizedPath) -> bool {
        self.glob().matches(path.as_str())
    }

    fn glob(&self) -> Glob<'_> {
        match self {
            PathPattern::Exact(p) => Glob::Exact(p),
            PathPattern::Prefix(p) => Glob::Prefix(p),
            PathPattern::Any => Glob::Any,
        }
    }
}

crate::glob::written_as_glob!(PathPattern);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(p: &str) -> Result<String, PathError> {
        normalize(p).map(|p| p.0)
    }

    #[test]
    fn normalizes_like_istio() {
        assert_eq!(n("/"), Ok("/".into()));
        assert_eq!(n("/a/b"), Ok("/a/b".into()));
        assert_eq!(n("/a/../admin"), Ok("/admin".into()));
        assert_eq!(n("/a/./b/"), Ok("/a/b/".into()));
        assert_eq!(n("/a/b/.."), Ok("/a/".into()));
        assert_eq!(n("/../../etc"), Ok("/etc".into()));
        assert_eq!(n("//a///b"), Ok("/a/b".into()));
        assert_eq!(n("/a/%2e%2e/admin"), Ok("/admin".into()));
        assert_eq!(n("/%61pi"), Ok("/api".into()));
        assert_eq!(n("/a%20b"), Ok("/a%20b".into()));
        assert_eq!(n("/a%3ab"), Ok("/a%3Ab".into()));
        assert_eq!(n("/api?x=/../admin"), Ok("/api".into()));
        assert_eq!(n("/a%25b"), Ok("/a%25b".into()));
        assert_eq!(n("/100%25"), Ok("/100%25".into()));
        assert_eq!(n("/caf%c3%a9"), Ok("/caf%C3%A9".into()));
        assert_eq!(n("/%f0%9f%a6%80"), Ok("/%F0%9F%A6%80".into()));
        assert_eq!(n("/a%2541"), Ok("/a%2541".into()), "`%41` is `A`, harmless");
    }

    #[test]
    fn refuses_escapes_that_are_not_utf8() {
        for raw in [
            "/a/%c0%ae%c0%ae/admin",
            "/%C0%AF",
            "/%e0%80%ae",
            "/%ff",
            "/caf%c3",
            "/%c3x",
            "/%ed%a0%80",
            "/%f4%90%80%80",
            "/%80",
        ] {
            assert_eq!(n(raw), Err(PathError::InvalidUtf8), "{raw}");
        }
    }

    #[test]
    fn refuses_double_encoding_at_any_depth_and_case() {
        for raw in [
            "/a/%252e%252e/x",
            "/a/%252E%252E/x",
            "/a%252fb",
            "/a%252Fb",
            "/a%255cb",
            "/a%255Cb",
            "/a%25252F",
            "/a%25252e",
            "/a%2525252525255c",
            "/a%2500",
            "/a/%25%32%65%25%32%65/x",
            "/a%25%32f",
        ] {
            assert_eq!(n(raw), Err(PathError::DoubleEncoded), "{raw}");
        }
        let deep = format!("/a{}2e", "%25".repeat(MAX_ENCODING_DEPTH + 4));
        assert_eq!(n(&deep), Err(PathError::DoubleEncoded));
        let deeper = format!("/a%{}41", "25".repeat(MAX_ENCODING_DEPTH + 4));
        assert_eq!(n(&deeper), Err(PathError::EncodedTooDeep));
        let fine = format!("/a%{}41", "25".repeat(MAX_ENCODING_DEPTH - 2));
        assert!(n(&fine).is_ok());
    }

    #[test]
    fn refuses_what_must_not_be_decoded() {
        let too_long = format!("/{}", "a".repeat(MAX_PATH_LEN));
        let cases: [(PathError, &[&str]); 8] = [
            (PathError::EncodedSlash, &["/a%2Fb", "/a%2fb"]),
            (PathError::Backslash, &["/a%5cb", "/a\\b"]),
            (PathError::EncodedNul, &["/a%00"]),
            (PathError::NonAscii, &["/caf\u{e9}"]),
            (PathError::Control, &["/a b", "/a\tb"]),
            (PathError::BadEscape, &["/a%zz", "/a%4"]),
            (PathError::NotAbsolute, &["a/b", "*"]),
            (PathError::TooLong, &[&too_long]),
        ];
        for (refused, raws) in cases {
            for raw in raws {
                assert_eq!(n(raw), Err(refused), "{raw:?}");
            }
        }
    }

    #[test]
    fn patterns_follow_istio() {
        let prefix = PathPattern::parse("/api/*").unwrap();
        let path = |p: &str| normalize(p).unwrap();
        assert!(prefix.matches(&path("/api/")));
        assert!(prefix.matches(&path("/api/x/y")));
        assert!(!prefix.matches(&path("/api")));
        assert!(!prefix.matches(&path("/apix")));
        assert!(!prefix.matches(&path("/api/../admin")));
        let exact = PathPattern::parse("/api").unwrap();
        assert!(exact.matches(&path("/api")));
        assert!(!exact.matches(&path("/api/")));
        assert!(PathPattern::parse("*").unwrap().matches(&path("/anything")));
        assert_eq!(
            PathPattern::parse("/*").unwrap(),
            PathPattern::Prefix("/".into())
        );
    }

    #[test]
    fn refuses_bad_patterns() {
        assert_eq!(PathPattern::parse("/api*"), Err(PatternError::Wildcard));
        assert_eq!(PathPattern::parse("*.html"), Err(PatternError::Wildcard));
        assert_eq!(PathPattern::parse("/a/*/b"), Err(PatternError::Wildcard));
        assert_eq!(PathPattern::parse("/a?b=1"), Err(PatternError::Query));
        assert_eq!(PathPattern::parse("/users/{id}"), Err(PatternError::Brace));
        assert_eq!(PathPattern::parse("/a}/*"), Err(PatternError::Brace));
        assert_eq!(
            PathPattern::parse("/a/../b"),
            Err(PatternError::NotNormal("/b".into()))
        );
        assert_eq!(
            PathPattern::parse("//a/*"),
            Err(PatternError::NotNormal("/a/*".into()))
        );
        assert_eq!(
            PathPattern::parse("api"),
            Err(PatternError::Path(PathError::NotAbsolute))
        );
        assert!(PathPattern::parse("").is_err());
    }

    #[test]
    fn methods() {
        let get = MethodSet::from_methods(&[Method::Get]);
        assert!(get.allows(&RequestMethod::Head));
        assert!(get.allows(&RequestMethod::Known(Method::Get)));
        assert!(!get.allows(&RequestMethod::Known(Method::Post)));
        assert!(MethodSet::ANY.allows(&RequestMethod::parse("PROPFIND").unwrap()));
        assert!(!get.allows(&RequestMethod::parse("PROPFIND").unwrap()));
        assert_eq!(RequestMethod::parse("GE T"), None);
        assert_eq!(
            get.union(MethodSet::from_methods(&[Method::Post]))
                .to_string(),
            "GET, POST"
        );
    }

    /// A deliberately plain reference: decode, then resolve segments one at a time.
    fn reference(raw: &str) -> Option<String> {
        let path = raw.split(['?', '#']).next()?;
        if !path.starts_with('/') {
            return None;
        }
        // A dot, slash, backslash or NUL behind `%25`, `%2525`, …
        let lower = path.to_ascii_lowercase();
        for (at, _) in lower.match_indices("%25") {
            let mut rest = &lower[at + 3..];
            while let Some(r) = rest.strip_prefix("25") {
                rest = r;
            }
            if ["2e", "2f", "5c", "00"].iter().any(|e| rest.starts_with(e)) {
                return None;
            }
        }
        let mut out = Vec::new();
        let mut full = Vec::new();
        let mut it = path.bytes().peekable();
        while let Some(b) = it.next() {
            if b == b'%' {
                let h: String = [it.next()? as char, it.next()? as char].iter().collect();
                let v = u8::from_str_radix(&h, 16).ok()?;
                full.push(v);
                if v == b'/' || v == b'\\' || v == 0 {
                    return None;
                }
                if v.is_ascii_alphanumeric() || b"-._~".contains(&v) {
                    out.push(v);
                } else {
                    out.extend(format!("%{v:02X}").bytes());
                }
            } else if b == b'\\' || b >= 0x80 || b <= 0x20 || b == 0x7f {
                return None;
            } else {
                out.push(b);
                full.push(b);
            }
        }
        String::from_utf8(full).ok()?;
        let decoded = String::from_utf8(out).ok()?;
        let mut stack: Vec<String> = Vec::new();
        let parts: Vec<&str> = decoded[1..].split('/').collect();
        for part in &parts {
            match *part {
                "." => {}
                ".." => {
                    stack.pop();
                }
                p => stack.push(p.to_string()),
            }
        }
        let last = parts.last().copied().unwrap_or("");
        let trailing = last.is_empty() || last == "." || last == "..";
        stack.retain(|s| !s.is_empty());
        let mut s = format!("/{}", stack.join("/"));
        if trailing && !stack.is_empty() {
            s.push('/');
        }
        Some(s)
    }

    proptest! {
        #[test]
        fn agrees_with_reference_and_is_idempotent(
            raw in "/([a-c./~]|%2[eEfF]|%41|%5[cC]|%20|%25|25|2[eEfF]|5[cC]|%c3%a9|%c3|%a9|%c0%ae|//|\\.\\./|\\./)*"
        ) {
            let ours = normalize(&raw).ok().map(|p| p.0);
            prop_assert_eq!(&ours, &reference(&raw));
            if let Some(p) = ours {
                prop_assert_eq!(normalize(&p).map(|q| q.0), Ok(p.clone()));
                prop_assert!(!p.contains("//"));
                prop_assert!(!p.split('/').any(|s| s == "." || s == ".."));
            }
        }
    }
}
