//! A compiled intent: one client's permission towards one server, with the
//! place it was declared, so that every decision can say which intent allowed it.

use ibac_model::http::{MethodSet, PathPattern};
use ibac_model::{Location, WorkloadId};

/// Which ports an intent covers, as the server's own (container) ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ports {
    /// Every port.
    All,
    /// These ports only (sorted, deduplicated).
    Only(Vec<u16>),
}

/// How the intent reached the server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A `kubernetes:` target naming the workload.
    Workload,
    /// A Service that selects the workload.
    Service(WorkloadId),
    /// A Kafka target: L4 access to the Kafka workload; topics are Kafka's business.
    Kafka,
}

/// One HTTP rule of an intent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpGrant {
    /// The path pattern.
    pub path: PathPattern,
    /// The methods.
    pub methods: MethodSet,
    /// Where the rule is written.
    pub at: Location,
}

/// A permission of `client` towards `server`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    /// The caller.
    pub client: WorkloadId,
    /// The workload called.
    pub server: WorkloadId,
    /// Where the target is written.
    pub at: Location,
    /// How the target reached this server.
    pub via: Via,
    /// Ports covered.
    pub ports: Ports,
    /// HTTP rules; empty means every request.
    pub http: Vec<HttpGrant>,
}

impl Intent {
    /// Whether the intent only opens the port (Kafka), never HTTP requests as such.
    pub fn is_l4_only(&self) -> bool {
        matches!(self.via, Via::Kafka)
    }

    /// A one-line description, for explanations and listings.
    pub fn describe(&self) -> String {
        let ports = match &self.ports {
            Ports::All => String::new(),
            Ports::Only(p) => format!(
                " on port{} {}",
                if p.len() == 1 { "" } else { "s" },
                p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
            ),
        };
        let what = match (&self.via, self.http.is_empty()) {
            (Via::Kafka, _) => "Kafka (L4 access)".to_string(),
            (_, true) => "every request".to_string(),
            (_, false) => self
                .http
                .iter()
                .map(|g| format!("{} {}", method_list(g.methods), g.path))
                .collect::<Vec<_>>()
                .join("; "),
        };
        let via = match &self.via {
            Via::Service(s) => format!(" via Service {s}"),
            _ => String::new(),
        };
        format!("{what}{ports}{via}")
    }
}

/// `GET, POST` or `*` for every method.
pub(crate) fn method_list(methods: MethodSet) -> String {
    if methods.is_any() {
        "*".to_string()
    } else {
        methods.to_string().replace(", ", ",")
    }
}
