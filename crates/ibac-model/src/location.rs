//! Where something was written: a text with line and column, a Kubernetes
//! object with a field path, or something ibac holds.
//!
//! Every error about a document points at one of these, so that a user can jump
//! straight to the offending spot (`intents/web.yaml:14:23`).

use std::fmt;
use std::sync::Arc;

/// The name of a document source as shown to users: a path, or `<stdin>`.
pub type SourceName = Arc<str>;

/// What a place is in. Users see files and Kubernetes objects; ibac also
/// reports on what it holds itself (its store, the policy, the cluster
/// facts), which are neither and are never written as if they were files.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    /// A text ibac read — a file, stdin, or a text given a name — that line
    /// and column point into.
    Text(SourceName),
    /// A Kubernetes object, as the operator reads it (it has no files): the
    /// place inside is a field path (`spec.targets[2].kafka`). Boxed: errors
    /// carry locations, and most are in texts.
    Object(Box<ObjectPlace>),
    /// Something ibac holds rather than reads.
    Held(Held),
    /// A document ibac made itself rather than read.
    Made(Maker),
}

/// Who made a document ibac did not read from a text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Maker {
    /// `ibac protect`: a ProtectedService.
    Protect,
    /// `ibac mode`: the EnforcementConfig.
    Mode,
    /// A request to the control plane's API.
    Request,
    /// The network mapper: ClientIntents of the calls it saw.
    NetworkMapper,
}

/// A place in a Kubernetes object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectPlace {
    /// Its kind.
    pub kind: Arc<str>,
    /// Its namespace ("" when cluster-scoped).
    pub namespace: Arc<str>,
    /// Its name.
    pub name: Arc<str>,
    /// The field path of the place, when it is not the whole object.
    pub path: Option<Arc<str>>,
}

/// What ibac holds rather than reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Held {
    /// The control plane's store of documents.
    Store,
    /// The policy in force, compiled from every document.
    Policy,
    /// The cluster facts (workloads, Services, EndpointSlices).
    ClusterFacts,
    /// ibac's built-in defaults.
    Defaults,
}

impl Origin {
    /// The text's name, when the origin is a text.
    pub fn text(&self) -> Option<&SourceName> {
        match self {
            Origin::Text(name) => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Text(name) => write!(f, "{name}"),
            Origin::Object(place) => {
                let ObjectPlace {
                    kind,
                    namespace,
                    name,
                    path,
                } = place.as_ref();
                if namespace.is_empty() {
                    write!(f, "{kind} {name}")?;
                } else {
                    write!(f, "{kind} {namespace}/{name}")?;
                }
                match path {
                    Some(path) => write!(f, ": {path}"),
                    None => Ok(()),
                }
            }
            Origin::Held(Held::Store) => write!(f, "the store"),
            Origin::Held(Held::Policy) => write!(f, "the policy"),
            Origin::Held(Held::ClusterFacts) => write!(f, "the cluster facts"),
            Origin::Held(Held::Defaults) => write!(f, "ibac's defaults"),
            Origin::Made(Maker::Protect) => write!(f, "ibac protect"),
            Origin::Made(Maker::Mode) => write!(f, "ibac mode"),
            Origin::Made(Maker::Request) => write!(f, "the request"),
            Origin::Made(Maker::NetworkMapper) => write!(f, "the network mapper"),
        }
    }
}

/// A place: in a text, 1-based line and column (a line of 0 means the whole
/// text); in an object, its field path; or something ibac holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    /// What the place is in.
    pub origin: Origin,
    /// 1-based line, or 0 when the place is the whole source.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
}

impl Location {
    /// A location at `line:column` of the text `file`.
    pub fn new(file: SourceName, line: u32, column: u32) -> Self {
        Self {
            origin: Origin::Text(file),
            line,
            column,
        }
    }

    /// The whole of the text `file`, for errors that concern no single spot
    /// in it.
    pub fn whole(file: SourceName) -> Self {
        Self::new(file, 0, 0)
    }

    /// Something ibac holds.
    pub fn held(held: Held) -> Self {
        Self {
            origin: Origin::Held(held),
            line: 0,
            column: 0,
        }
    }

    /// A document ibac made.
    pub fn made(maker: Maker) -> Self {
        Self {
            origin: Origin::Made(maker),
            line: 0,
            column: 0,
        }
    }

    /// A Kubernetes object, or the field at `path` in it.
    pub fn object(kind: &str, namespace: &str, name: &str, path: Option<&str>) -> Self {
        Self {
            origin: Origin::Object(Box::new(ObjectPlace {
                kind: kind.into(),
                namespace: namespace.into(),
                name: name.into(),
                path: path.filter(|p| !p.is_empty()).map(Into::into),
            })),
            line: 0,
            column: 0,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.origin, self.line) {
            (Origin::Text(file), line) if line > 0 => {
                write!(f, "{file}:{line}:{}", self.column)
            }
            (origin, _) => write!(f, "{origin}"),
        }
    }
}

impl serde::Serialize for Location {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_file_line_column() {
        let at = Location::new("intents/web.yaml".into(), 14, 23);
        assert_eq!(at.to_string(), "intents/web.yaml:14:23");
        assert_eq!(Location::whole("x.yaml".into()).to_string(), "x.yaml");
    }

    #[test]
    fn objects_and_what_ibac_holds_are_not_files() {
        assert_eq!(
            Location::object("ClientIntents", "shop", "web", Some("spec.targets[1]")).to_string(),
            "ClientIntents shop/web: spec.targets[1]"
        );
        assert_eq!(
            Location::object("Namespace", "", "shop", None).to_string(),
            "Namespace shop"
        );
        assert_eq!(Location::held(Held::Store).to_string(), "the store");
        assert_eq!(Location::held(Held::Store).origin.text(), None);
    }
}
