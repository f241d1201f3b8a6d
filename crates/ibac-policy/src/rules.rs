//! The matcher for one client towards one server, built so that a decision
//! costs the same whatever the number of intents: hash lookups by port, by exact
//! path and by each `/`-ended prefix of the request path, then one array index
//! by method.

use std::collections::HashMap;
use std::sync::Arc;

use foldhash::fast::RandomState;
use ibac_model::http::{Method, MethodSet, NormalizedPath, PathPattern, RequestMethod};

use crate::intent::{HttpGrant, Intent, Ports};
use crate::request::Request;

/// Up to this many HTTP rules per port are matched by scanning, not hashing.
const SCAN_LIMIT: usize = 8;

/// Which intent, and which of its HTTP rules, allowed something.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Hit {
    intent: u32,
    rule: Option<u32>,
}

/// For one path key: the first rule allowing each method, and any method.
#[derive(Clone, Copy, Debug, Default)]
struct MethodTable {
    any: Option<Hit>,
    by_method: [Option<Hit>; Method::ALL.len()],
}

impl MethodTable {
    fn add(&mut self, methods: MethodSet, hit: Hit) {
        if methods.is_any() {
            self.any.get_or_insert(hit);
        } else {
            for m in methods.methods() {
                self.by_method[m as usize].get_or_insert(hit);
            }
        }
    }

    fn find(&self, method: &RequestMethod) -> Option<Hit> {
        let named = match method {
            RequestMethod::Known(m) => self.by_method[*m as usize],
            RequestMethod::Head => self.by_method[Method::Get as usize],
            RequestMethod::Other(_) => None,
        };
        named.or(self.any)
    }
}

/// Everything allowed on one port (or on every port).
#[derive(Clone, Debug, Default)]
struct Grants {
    /// An intent allowing every request.
    full: Option<Hit>,
    /// An intent opening the port without HTTP narrowing (full, or Kafka).
    l4: Option<Hit>,
    /// An HTTP-narrowed intent, which opens the port at L4 only by widening.
    l4_widened: Option<Hit>,
    /// HTTP rules while there are few, matched by one scan of a short list,
    /// which touches less memory than hash probes. Past [`SCAN_LIMIT`] rules
    /// they move to the maps below, whose cost does not grow with their number.
    scan: Vec<(PathPattern, MethodSet, Hit)>,
    indexed: bool,
    exact: HashMap<Box<str>, MethodTable, RandomState>,
    prefix: HashMap<Box<str>, MethodTable, RandomState>,
    any_path: Option<MethodTable>,
}

impl Grants {
    fn add(&mut self, index: u32, intent: &Intent) {
        let whole = Hit {
            intent: index,
            rule: None,
        };
        if intent.is_l4_only() {
            self.l4.get_or_insert(whole);
            return;
        }
        if intent.http.is_empty() {
            self.full.get_or_insert(whole);
            self.l4.get_or_insert(whole);
            return;
        }
        self.l4_widened.get_or_insert(whole);
        for (r, grant) in intent.http.iter().enumerate() {
            let hit = Hit {
                intent: index,
                rule: u32::try_from(r).ok(),
            };
            if self.indexed {
                self.index(&grant.path, grant.methods, hit);
                continue;
            }
            self.scan.push((grant.path.clone(), grant.methods, hit));
            if self.scan.len() > SCAN_LIMIT {
                self.indexed = true;
                for (path, methods, hit) in std::mem::take(&mut self.scan) {
                    self.index(&path, methods, hit);
                }
            }
        }
    }

    fn index(&mut self, path: &PathPattern, methods: MethodSet, hit: Hit) {
        let table = match path {
            PathPattern::Exact(p) => self.exact.entry(p.as_str().into()).or_default(),
            PathPattern::Prefix(p) => self.prefix.entry(p.as_str().into()).or_default(),
            PathPattern::Any => self.any_path.get_or_insert_with(MethodTable::default),
        };
        table.add(methods, hit);
    }

    fn match_http(&self, method: &RequestMethod, path: &NormalizedPath) -> Option<Hit> {
        if let Some(hit) = self.full {
            return Some(hit);
        }
        if !self.indexed {
            return self
                .scan
                .iter()
                .find(|(pattern, methods, _)| methods.allows(method) && pattern.matches(path))
                .map(|(_, _, hit)| *hit);
        }
        let path = path.as_str();
        if let Some(hit) = self.exact.get(path).and_then(|t| t.find(method)) {
            return Some(hit);
        }
        if !self.prefix.is_empty() {
            // Longest prefix first, so that explanations cite the most specific rule.
            for (i, _) in path.rmatch_indices('/') {
                if let Some(hit) = self.prefix.get(&path[..=i]).and_then(|t| t.find(method)) {
                    return Some(hit);
                }
            }
        }
        self.any_path.as_ref().and_then(|t| t.find(method))
    }

    fn match_l4(&self) -> Option<(Hit, bool)> {
        self.l4
            .map(|h| (h, false))
            .or(self.l4_widened.map(|h| (h, true)))
    }
}

/// What a client may do towards one server.
#[derive(Clone, Debug, Default)]
pub struct ClientRules {
    intents: Vec<Arc<Intent>>,
    any_port: Grants,
    by_port: HashMap<u16, Grants, RandomState>,
}

/// Rules are equal when built from equal intents.
impl PartialEq for ClientRules {
    fn eq(&self, other: &Self) -> bool {
        self.intents == other.intents
    }
}

impl Eq for ClientRules {}

/// How a request was allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Allowed<'a> {
    /// An intent allowing every request (or, at L4, opening the port).
    Intent(&'a Intent),
    /// One HTTP rule of an intent.
    Rule(&'a Intent, &'a HttpGrant),
    /// At L4, an HTTP-narrowed intent opening its port.
    Widened(&'a Intent),
}

impl ClientRules {
    /// Builds the matcher from every intent of one client towards one server.
    pub fn build(intents: Vec<Arc<Intent>>) -> Self {
        let mut rules = ClientRules {
            intents: Vec::new(),
            any_port: Grants::default(),
            by_port: HashMap::default(),
        };
        for (i, intent) in intents.iter().enumerate() {
            let Ok(index) = u32::try_from(i) else { break };
            match &intent.ports {
                Ports::All => rules.any_port.add(index, intent),
                Ports::Only(ports) => {
                    for port in ports {
                        rules.by_port.entry(*port).or_default().add(index, intent);
                    }
                }
            }
        }
        rules.intents = intents;
        rules
    }

    /// The intents, in declaration order.
    pub fn intents(&self) -> &[Arc<Intent>] {
        &self.intents
    }

    /// Whether some intent covers only some ports (so a request without a
    /// port can be decided only against intents for every port).
    pub fn has_port_rules(&self) -> bool {
        !self.by_port.is_empty()
    }

    /// The first intent that allows `request`, if any.
    pub fn allows(&self, request: &Request) -> Option<Allowed<'_>> {
        let on_port = request.port.and_then(|p| self.by_port.get(&p));
        let grants = std::iter::once(&self.any_port).chain(on_port);
        match &request.http {
            Some(http) => {
                let hit = grants
                    .into_iter()
                    .find_map(|g| g.match_http(&http.method, &http.path))?;
                self.resolve(hit, false)
            }
            None => {
                let (hit, widened) = {
                    let mut best: Option<(Hit, bool)> = None;
                    for g in grants {
                        match (best, g.match_l4()) {
                            (_, None) => {}
                            (None, found) => best = found,
                            (Some((_, true)), Some((h, false))) => best = Some((h, false)),
                            _ => {}
                        }
                    }
                    best?
                };
                self.resolve(hit, widened)
            }
        }
    }

    fn resolve(&self, hit: Hit, widened: bool) -> Option<Allowed<'_>> {
        let intent = self.intents.get(hit.intent as usize)?;
        if widened {
            return Some(Allowed::Widened(intent));
        }
        Some(match hit.rule.and_then(|r| intent.http.get(r as usize)) {
            Some(rule) => Allowed::Rule(intent, rule),
            None => Allowed::Intent(intent),
        })
    }
}
