//! Enforcement settings and the protection rule they drive:
//! `protected(s) = mode == defaultActive ∨ s.namespace ∈ enforcedNamespaces ∨ a ProtectedService names s`.

use std::collections::BTreeSet;

use ibac_model::{EnforcementConfig, Enforcers, ExternalTraffic, Location, Mode, Namespace};

/// Namespaces that `defaultActive` leaves alone: the cluster's own and ibac's.
pub const EXCLUDED_NAMESPACES: [&str; 2] = ["kube-system", "ibac-system"];

/// The settings in force.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Settings {
    /// The mode.
    pub mode: Mode,
    /// Namespaces whose servers are all protected.
    pub enforced_namespaces: BTreeSet<Namespace>,
    /// Which enforcers are on.
    pub enforcers: Enforcers,
    /// Traffic from outside the cluster.
    pub external_traffic: ExternalTraffic,
    /// Where the settings come from; none for the defaults.
    pub origin: Option<Location>,
    /// Namespaces `defaultActive` also leaves alone: where ibac itself runs,
    /// when that is not `ibac-system` (a policy that isolated the operator
    /// would cut the API server off its webhooks).
    pub also_excluded: BTreeSet<String>,
}

impl Settings {
    /// The settings an EnforcementConfig declares.
    pub fn from_config(config: &EnforcementConfig) -> Self {
        Settings {
            mode: config.mode,
            enforced_namespaces: config.enforced_namespaces.iter().cloned().collect(),
            enforcers: config.enforcers,
            external_traffic: config.external_traffic,
            origin: Some(config.meta.origin.clone()),
            also_excluded: BTreeSet::new(),
        }
    }

    /// Whether `defaultActive` applies to a namespace.
    pub fn default_active_covers(&self, namespace: &str) -> bool {
        self.mode == Mode::DefaultActive
            && !EXCLUDED_NAMESPACES.contains(&namespace)
            && !self.also_excluded.contains(namespace)
    }
}
