//! ibac's documents: ClientIntents, ProtectedService, settings and server
//! configs, read from every format users already have (Otterize v1alpha2 to
//! v2beta1, and `ibac.dev/v1`), validated, and held in one canonical form.
//!
//! This crate does no I/O: callers hand it text and a source name, and get
//! back documents and errors that name `file:line:column`.
//!
//! ```
//! use ibac_model::{parse_source, ParseOptions};
//!
//! let text = "
//! apiVersion: k8s.otterize.com/v2beta1
//! kind: ClientIntents
//! metadata: {name: web, namespace: shop}
//! spec:
//!   workload: {name: web}
//!   targets:
//!   - service: {name: api, http: [{path: /orders/*, methods: [GET]}]}
//! ";
//! let parsed = parse_source(&"web.yaml".into(), text, &ParseOptions::default());
//! assert!(parsed.errors.is_empty());
//! assert_eq!(parsed.documents.len(), 1);
//! ```

mod decode;
pub mod document;
pub mod encode;
mod error;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod glob;
pub mod http;
pub mod kafka;
mod location;
pub mod name;
pub mod net;
pub mod protocol;
mod read;
mod set;
pub mod sql;
#[cfg(test)]
mod test_support;
pub mod text;
pub mod yaml;

pub use decode::{ParseOptions, Parsed, Skipped, parse_source};
pub use document::*;
pub use error::{DocumentError, Hint};
pub use location::{Held, Location, Maker, ObjectPlace, Origin, SourceName};
pub use name::{Kind, Name, NameError, Namespace, WorkloadId};
pub use protocol::Protocol;
pub use set::check_set;
