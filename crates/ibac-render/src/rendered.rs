//! What a renderer gives: for one server ([`ServerRendering`]), as a
//! reconciler asks, and for the whole cluster ([`Rendered`]), a fold over the
//! servers. Explanations are kept apart from the objects.

use ibac_model::DocumentError;

/// Rendered policies with what to tell people about them.
#[derive(Clone, Debug)]
pub struct Rendered<T> {
    /// The objects, in a stable order.
    pub objects: Vec<T>,
    /// One paragraph per server (and client, for egress), for `--explain`.
    pub explanation: Vec<String>,
    /// Things the user should know (lost precision, shared identities…).
    pub warnings: Vec<String>,
    /// References that could not be resolved (a Service or workload missing
    /// from the cluster facts, a server config not given), each reported at
    /// its place and left out; everything else is rendered. Leaving one out
    /// only ever allows less.
    pub skipped: Vec<DocumentError>,
    /// How many servers are protected; none means shadow mode everywhere,
    /// where nothing that blocks is rendered.
    pub protected: usize,
}

impl<T> Default for Rendered<T> {
    fn default() -> Self {
        Rendered {
            objects: Vec::new(),
            explanation: Vec::new(),
            warnings: Vec::new(),
            skipped: Vec::new(),
            protected: 0,
        }
    }
}

/// What rendering one server gives.
#[derive(Clone, Debug)]
pub struct ServerRendering<T> {
    /// Its objects, in a stable order.
    pub objects: Vec<T>,
    /// What they do, for `--explain`.
    pub explanation: Vec<String>,
    /// References that could not be resolved: reported, left out.
    pub skipped: Vec<DocumentError>,
    /// Why nothing can be written for it (its pod selector is unsafe, say):
    /// each names the document or workload it comes from.
    pub refused: Vec<DocumentError>,
    /// Things the user should know (a domain a NetworkPolicy cannot match…).
    pub warnings: Vec<String>,
    /// Whether it is protected.
    pub protected: bool,
}

impl<T> Default for ServerRendering<T> {
    fn default() -> Self {
        ServerRendering {
            objects: Vec::new(),
            explanation: Vec::new(),
            skipped: Vec::new(),
            refused: Vec::new(),
            warnings: Vec::new(),
            protected: false,
        }
    }
}

impl<T> Rendered<T> {
    /// Every server's rendering folded into one, and their refusals, once
    /// each.
    pub fn fold_all(
        servers: impl IntoIterator<Item = ServerRendering<T>>,
    ) -> (Self, Vec<DocumentError>) {
        let mut out = Rendered::default();
        let mut refused = Vec::new();
        for server in servers {
            out.fold(server, &mut refused);
        }
        (out, refused)
    }

    /// The rendering, unless something was refused: a render of objects is
    /// all or nothing, so that a cluster never gets half a policy.
    pub fn unless_refused(self, refused: Vec<DocumentError>) -> Result<Self, Vec<DocumentError>> {
        if refused.is_empty() {
            Ok(self)
        } else {
            Err(refused)
        }
    }

    /// Adds one server's rendering; refusals go to `refused`, once each.
    pub fn fold(&mut self, server: ServerRendering<T>, refused: &mut Vec<DocumentError>) {
        self.objects.extend(server.objects);
        self.explanation.extend(server.explanation);
        self.skipped.extend(server.skipped);
        self.warnings.extend(server.warnings);
        if server.protected {
            self.protected += 1;
        }
        for e in server.refused {
            if !refused.contains(&e) {
                refused.push(e);
            }
        }
    }
}
