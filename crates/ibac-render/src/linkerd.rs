//! Linkerd policy (`policy.linkerd.io`).
//!
//! Per protected server and per TCP port its pods declare (and every port an
//! intent names), a `Server` with `accessPolicy: deny`: only what an
//! AuthorizationPolicy allows gets through. A port that no client reaches
//! by HTTP rules gets one AuthorizationPolicy on the Server, requiring the
//! mTLS identities (service accounts) of its clients, listed by a
//! MeshTLSAuthentication.
//!
//! A port with HTTP rules gets HTTPRoutes instead. Linkerd sends a request
//! to the most specific route match (longest path, then a method match over
//! none) and counts only that route's authorizations; so matches are cut by
//! path and method, and each route authorizes exactly the callers whose
//! intents cover everything it matches — then the route a request lands on
//! always names every caller ibac allows it for. Once a Server has routes,
//! Linkerd no longer lets the kubelet's probes through by itself: the probe
//! paths are callers too, authorized from the probe networks by a
//! NetworkAuthentication.
//!
//! Linkerd matches a path as sent, and a prefix by whole segments: `/api/*`
//! also admits `/api` itself, and paths with dot segments that ibac would
//! normalize first. Renders that use prefixes say so in a warning.

use std::collections::{BTreeMap, BTreeSet};

use ibac_model::http::{Method, MethodSet, PathPattern};
use ibac_model::{DocumentError, WorkloadId};
use ibac_policy::{Intent, Policy, Ports};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use crate::facts::ClusterFacts;
use crate::identities::Principals;
use crate::names::{hex_digest, object_name, ownership};
use crate::plan::{self, ServerPlan, check_selector};
use crate::rendered::{Rendered, ServerRendering};

/// The API group of every object here.
pub const GROUP: &str = "policy.linkerd.io";

/// The kinds ibac writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LinkerdKind {
    /// A port of a set of pods.
    Server,
    /// Requests to a Server, by path and method.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
    /// Who may reach a Server or an HTTPRoute.
    AuthorizationPolicy,
    /// Callers by mTLS identity.
    #[serde(rename = "MeshTLSAuthentication")]
    MeshTlsAuthentication,
    /// Callers by network (the kubelet's probes).
    NetworkAuthentication,
}

impl LinkerdKind {
    /// The version written: the storage version of the Linkerd CRDs.
    pub fn api_version(self) -> &'static str {
        match self {
            LinkerdKind::Server | LinkerdKind::HttpRoute => "policy.linkerd.io/v1beta3",
            LinkerdKind::AuthorizationPolicy
            | LinkerdKind::MeshTlsAuthentication
            | LinkerdKind::NetworkAuthentication => "policy.linkerd.io/v1alpha1",
        }
    }

    /// The kind as manifests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkerdKind::Server => "Server",
            LinkerdKind::HttpRoute => "HTTPRoute",
            LinkerdKind::AuthorizationPolicy => "AuthorizationPolicy",
            LinkerdKind::MeshTlsAuthentication => "MeshTLSAuthentication",
            LinkerdKind::NetworkAuthentication => "NetworkAuthentication",
        }
    }
}

/// One Linkerd policy object.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LinkerdObject {
    /// The kind's [`LinkerdKind::api_version`].
    pub api_version: String,
    /// The kind.
    pub kind: LinkerdKind,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// The body, of the kind's shape.
    pub spec: LinkerdSpec,
}

/// The body of an object; each shape has fields of its own, so a written
/// object reads back as the same variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LinkerdSpec {
    /// A Server.
    Server(ServerSpec),
    /// An HTTPRoute.
    HttpRoute(HttpRouteSpec),
    /// An AuthorizationPolicy.
    AuthorizationPolicy(AuthorizationPolicySpec),
    /// A MeshTLSAuthentication.
    MeshTlsAuthentication(MeshTlsAuthenticationSpec),
    /// A NetworkAuthentication.
    NetworkAuthentication(NetworkAuthenticationSpec),
}

impl LinkerdSpec {
    /// The kind an object with this body has.
    pub fn kind(&self) -> LinkerdKind {
        match self {
            LinkerdSpec::Server(_) => LinkerdKind::Server,
            LinkerdSpec::HttpRoute(_) => LinkerdKind::HttpRoute,
            LinkerdSpec::AuthorizationPolicy(_) => LinkerdKind::AuthorizationPolicy,
            LinkerdSpec::MeshTlsAuthentication(_) => LinkerdKind::MeshTlsAuthentication,
            LinkerdSpec::NetworkAuthentication(_) => LinkerdKind::NetworkAuthentication,
        }
    }
}

/// What a Server does with callers no policy authorizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessPolicy {
    /// Refuse them.
    #[serde(rename = "deny")]
    Deny,
}

/// A port of a set of pods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServerSpec {
    /// The server's pods.
    pub pod_selector: LabelSelector,
    /// The container port.
    pub port: u16,
    /// Always deny: nothing unauthorized gets through.
    pub access_policy: AccessPolicy,
}

/// Requests to a Server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRouteSpec {
    /// The Server.
    pub parent_refs: Vec<ParentRef>,
    /// Its matches, at most eight a rule.
    pub rules: Vec<RouteRule>,
}

/// The Server a route belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ParentRef {
    /// [`GROUP`].
    pub group: String,
    /// `Server`.
    pub kind: LinkerdKind,
    /// The Server's name.
    pub name: String,
}

/// A rule: any of its matches.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The matches.
    pub matches: Vec<RouteMatch>,
}

/// A path, and a method or none (every method).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteMatch {
    /// The path.
    pub path: PathMatch,
    /// The method; none matches every method, but less specifically.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<HttpMethod>,
}

/// How a route matches the path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMatch {
    /// Exact or by segment prefix.
    #[serde(rename = "type")]
    pub kind: PathMatchType,
    /// The path or prefix.
    pub value: String,
}

/// The path match types ibac writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PathMatchType {
    /// This path only.
    Exact,
    /// Paths under this one, by whole segments.
    PathPrefix,
}

/// The methods a Linkerd route can match.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    /// GET.
    Get,
    /// HEAD (an intent's GET allows it).
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
    /// CONNECT.
    Connect,
    /// OPTIONS.
    Options,
    /// TRACE.
    Trace,
    /// PATCH.
    Patch,
}

impl HttpMethod {
    /// Every method a route can name.
    pub const ALL: [HttpMethod; 9] = [
        HttpMethod::Get,
        HttpMethod::Head,
        HttpMethod::Post,
        HttpMethod::Put,
        HttpMethod::Delete,
        HttpMethod::Connect,
        HttpMethod::Options,
        HttpMethod::Trace,
        HttpMethod::Patch,
    ];

    /// The method as requests spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Head => "HEAD",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Delete => "DELETE",
            HttpMethod::Connect => "CONNECT",
            HttpMethod::Options => "OPTIONS",
            HttpMethod::Trace => "TRACE",
            HttpMethod::Patch => "PATCH",
        }
    }

    /// The route methods an intent's method allows (GET brings HEAD).
    fn of(method: Method) -> &'static [HttpMethod] {
        match method {
            Method::Get => &[HttpMethod::Get, HttpMethod::Head],
            Method::Post => &[HttpMethod::Post],
            Method::Put => &[HttpMethod::Put],
            Method::Delete => &[HttpMethod::Delete],
            Method::Options => &[HttpMethod::Options],
            Method::Trace => &[HttpMethod::Trace],
            Method::Patch => &[HttpMethod::Patch],
            Method::Connect => &[HttpMethod::Connect],
        }
    }
}

/// Who may reach a Server or an HTTPRoute: callers that pass every
/// authentication named.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizationPolicySpec {
    /// The Server or HTTPRoute.
    pub target_ref: ObjectRef,
    /// One MeshTLSAuthentication or one NetworkAuthentication.
    pub required_authentication_refs: Vec<ObjectRef>,
}

/// A reference to an object in the same namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectRef {
    /// [`GROUP`].
    pub group: String,
    /// Its kind.
    pub kind: LinkerdKind,
    /// Its name.
    pub name: String,
}

/// Callers by mTLS identity.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshTlsAuthenticationSpec {
    /// Their service accounts, which Linkerd turns into identities of its
    /// own trust domain.
    pub identity_refs: Vec<ServiceAccountRef>,
}

/// What an identity reference names: ibac names service accounts only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum IdentityKind {
    /// A Kubernetes ServiceAccount.
    ServiceAccount,
}

/// A service account.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceAccountRef {
    /// `ServiceAccount`.
    pub kind: IdentityKind,
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// Callers by network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkAuthenticationSpec {
    /// The networks.
    pub networks: Vec<Network>,
}

/// A network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// CIDR.
    pub cidr: String,
}

/// Options of Linkerd rendering.
#[derive(Clone, Debug)]
pub struct LinkerdOptions {
    /// Where the kubelet's probes come from (Linkerd's `probeNetworks`).
    pub probe_networks: Vec<String>,
}

impl Default for LinkerdOptions {
    fn default() -> Self {
        LinkerdOptions {
            probe_networks: vec!["0.0.0.0/0".into(), "::/0".into()],
        }
    }
}

/// Who calls: one of the plan's clients (by index), or the kubelet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Caller {
    Client(usize),
    Kubelet,
}

/// A path as a route matches it. Ordered so that routes come out in a
/// stable order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum RoutePath {
    /// Every path (`PathPrefix /`).
    Any,
    /// Paths starting with this, which ends with `/`.
    Prefix(String),
    /// This path.
    Exact(String),
}

impl RoutePath {
    fn of(pattern: &PathPattern) -> RoutePath {
        match pattern {
            PathPattern::Any => RoutePath::Any,
            PathPattern::Prefix(base) if base == "/" => RoutePath::Any,
            PathPattern::Prefix(base) => RoutePath::Prefix(base.clone()),
            PathPattern::Exact(path) => RoutePath::Exact(path.clone()),
        }
    }

    /// Whether every path `other` matches is one this matches, by ibac's
    /// rules.
    fn covers(&self, other: &RoutePath) -> bool {
        match (self, other) {
            (RoutePath::Any, _) => true,
            (RoutePath::Prefix(base), RoutePath::Prefix(inner) | RoutePath::Exact(inner)) => {
                inner.starts_with(base.as_str())
            }
            (RoutePath::Exact(path), RoutePath::Exact(inner)) => path == inner,
            _ => false,
        }
    }

    fn to_match(&self, method: Option<HttpMethod>) -> RouteMatch {
        let (kind, value) = match self {
            RoutePath::Any => (PathMatchType::PathPrefix, "/".to_string()),
            RoutePath::Prefix(base) => (PathMatchType::PathPrefix, base.clone()),
            RoutePath::Exact(path) => (PathMatchType::Exact, path.clone()),
        };
        RouteMatch {
            path: PathMatch { kind, value },
            method,
        }
    }
}

/// What one caller may do on a port: paths, and methods (none: every
/// method, those no route can name included).
#[derive(Clone, Debug)]
struct Grant {
    caller: Caller,
    path: RoutePath,
    methods: Option<BTreeSet<HttpMethod>>,
}

impl Grant {
    fn everything(caller: Caller) -> Grant {
        Grant {
            caller,
            path: RoutePath::Any,
            methods: None,
        }
    }

    fn allows(&self, path: &RoutePath, method: Option<HttpMethod>) -> bool {
        self.path.covers(path)
            && match (&self.methods, method) {
                (None, _) => true,
                (Some(set), Some(m)) => set.contains(&m),
                (Some(_), None) => false,
            }
    }
}

fn route_methods(set: MethodSet) -> Option<BTreeSet<HttpMethod>> {
    if set.is_any() {
        return None;
    }
    Some(
        set.methods()
            .into_iter()
            .flat_map(|m| HttpMethod::of(m).iter().copied())
            .collect(),
    )
}

fn covers_port(intent: &Intent, port: u16) -> bool {
    match &intent.ports {
        Ports::All => true,
        Ports::Only(ports) => ports.contains(&port),
    }
}

/// The ports to write a Server for: what the pods declare over TCP (the
/// mesh's own ports left out) and what intents name.
fn server_ports(plan: &ServerPlan<'_>) -> BTreeSet<u16> {
    let mut ports: BTreeSet<u16> = plan
        .server
        .ports
        .iter()
        .filter(|p| p.protocol == "TCP")
        .filter(|p| !matches!(p.name.as_deref(), Some("linkerd-proxy" | "linkerd-admin")))
        .map(|p| p.port)
        .collect();
    for client in &plan.clients {
        for intent in client.intents {
            if let Ports::Only(named) = &intent.ports {
                ports.extend(named.iter().copied());
            }
        }
    }
    ports
}

/// Everything every caller may do on `port`.
fn grants(plan: &ServerPlan<'_>, port: u16) -> Vec<Grant> {
    let mut grants = Vec::new();
    for (i, client) in plan.clients.iter().enumerate() {
        for intent in client.intents.iter().filter(|i| covers_port(i, port)) {
            if intent.http.is_empty() {
                grants.push(Grant::everything(Caller::Client(i)));
            }
            for rule in &intent.http {
                grants.push(Grant {
                    caller: Caller::Client(i),
                    path: RoutePath::of(&rule.path),
                    methods: route_methods(rule.methods),
                });
            }
        }
    }
    grants
}

/// The routes of a port: each distinct set of callers with the matches that
/// set is authorized for. For every path any grant names, and every method,
/// the callers whose grants cover that path and method; matches without a
/// method take the callers allowed every method there, and a method gets a
/// match of its own only where more callers may use it.
fn routes(grants: &[Grant]) -> BTreeMap<BTreeSet<Caller>, Vec<RouteMatch>> {
    let paths: BTreeSet<RoutePath> = grants.iter().map(|g| g.path.clone()).collect();
    let mut routes: BTreeMap<BTreeSet<Caller>, Vec<RouteMatch>> = BTreeMap::new();
    for path in &paths {
        let callers = |method: Option<HttpMethod>| -> BTreeSet<Caller> {
            grants
                .iter()
                .filter(|g| g.allows(path, method))
                .map(|g| g.caller)
                .collect()
        };
        let every_method = callers(None);
        if !every_method.is_empty() {
            routes
                .entry(every_method.clone())
                .or_default()
                .push(path.to_match(None));
        }
        for method in HttpMethod::ALL {
            let these = callers(Some(method));
            if !these.is_empty() && these != every_method {
                routes
                    .entry(these)
                    .or_default()
                    .push(path.to_match(Some(method)));
            }
        }
    }
    routes
}

/// At most eight matches a rule and sixteen rules a route, as the CRD allows.
const MATCHES_PER_RULE: usize = 8;
const RULES_PER_ROUTE: usize = 16;

/// The matches of one set of callers as HTTPRoutes' rules: each inner list
/// is one route's rules, within the CRD's limits.
fn route_parts(matches: &[RouteMatch]) -> Vec<Vec<RouteRule>> {
    let rules: Vec<RouteRule> = matches
        .chunks(MATCHES_PER_RULE)
        .map(|chunk| RouteRule {
            matches: chunk.to_vec(),
        })
        .collect();
    rules.chunks(RULES_PER_ROUTE).map(<[_]>::to_vec).collect()
}

fn object(kind: LinkerdKind, name: &str, server: &WorkloadId, spec: LinkerdSpec) -> LinkerdObject {
    LinkerdObject {
        api_version: kind.api_version().into(),
        kind,
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(server.namespace().into()),
            labels: Some(ownership("linkerd", server.name())),
            ..ObjectMeta::default()
        },
        spec,
    }
}

fn reference(kind: LinkerdKind, name: &str) -> ObjectRef {
    ObjectRef {
        group: GROUP.into(),
        kind,
        name: name.to_string(),
    }
}

/// An AuthorizationPolicy of `target`, and the MeshTLSAuthentication it
/// requires, both named `name`, for the clients among `callers`.
fn authorize_clients(
    plan: &ServerPlan<'_>,
    callers: &BTreeSet<Caller>,
    target: ObjectRef,
    name: &str,
    out: &mut Vec<LinkerdObject>,
) {
    let accounts: BTreeSet<ServiceAccountRef> = callers
        .iter()
        .filter_map(|c| match c {
            Caller::Client(i) => plan.clients.get(*i),
            Caller::Kubelet => None,
        })
        .map(|c| ServiceAccountRef {
            kind: IdentityKind::ServiceAccount,
            name: c.client.service_account.clone(),
            namespace: c.client.id.namespace().into(),
        })
        .collect();
    if accounts.is_empty() {
        return;
    }
    let server = &plan.server.id;
    out.push(object(
        LinkerdKind::AuthorizationPolicy,
        name,
        server,
        LinkerdSpec::AuthorizationPolicy(AuthorizationPolicySpec {
            target_ref: target,
            required_authentication_refs: vec![reference(LinkerdKind::MeshTlsAuthentication, name)],
        }),
    ));
    out.push(object(
        LinkerdKind::MeshTlsAuthentication,
        name,
        server,
        LinkerdSpec::MeshTlsAuthentication(MeshTlsAuthenticationSpec {
            identity_refs: accounts.into_iter().collect(),
        }),
    ));
}

fn describe_callers(plan: &ServerPlan<'_>, callers: &BTreeSet<Caller>) -> String {
    callers
        .iter()
        .map(|c| match c {
            Caller::Client(i) => plan
                .clients
                .get(*i)
                .map_or_else(String::new, |c| c.client.id.to_string()),
            Caller::Kubelet => "the kubelet's probes".into(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_match(m: &RouteMatch) -> String {
    let path = match m.path.kind {
        PathMatchType::Exact => m.path.value.clone(),
        PathMatchType::PathPrefix => format!("{}*", m.path.value),
    };
    match m.method {
        Some(method) => format!("{} {path}", method.as_str()),
        None => path,
    }
}

/// One port of a protected server: its Server, and what authorizes callers.
fn render_port(
    plan: &ServerPlan<'_>,
    port: u16,
    options: &LinkerdOptions,
    objects: &mut Vec<LinkerdObject>,
    text: &mut String,
) {
    let server = plan.server;
    let base = object_name("ibac", &format!("{}-{port}", server.id.name()));
    objects.push(object(
        LinkerdKind::Server,
        &base,
        &server.id,
        LinkerdSpec::Server(ServerSpec {
            pod_selector: server.selector.clone(),
            port,
            access_policy: AccessPolicy::Deny,
        }),
    ));
    let mut grants = grants(plan, port);
    let by_route = grants
        .iter()
        .any(|g| !matches!((&g.path, &g.methods), (RoutePath::Any, None)));
    if !by_route {
        let callers: BTreeSet<Caller> = grants.iter().map(|g| g.caller).collect();
        if callers.is_empty() {
            text.push_str(&format!(
                "\n  port {port}: Server {base}, no caller authorized"
            ));
            return;
        }
        text.push_str(&format!(
            "\n  port {port}: Server {base}, authorized for {}",
            describe_callers(plan, &callers)
        ));
        authorize_clients(
            plan,
            &callers,
            reference(LinkerdKind::Server, &base),
            &base,
            objects,
        );
        return;
    }
    grants.extend(
        server
            .probes
            .iter()
            .filter(|p| p.port == port)
            .map(|p| Grant {
                caller: Caller::Kubelet,
                path: RoutePath::Exact(p.path.clone()),
                methods: Some(BTreeSet::from([HttpMethod::Get])),
            }),
    );
    text.push_str(&format!("\n  port {port}: Server {base}, by HTTP route"));
    for (callers, matches) in routes(&grants) {
        for (part, rules) in route_parts(&matches).into_iter().enumerate() {
            // Named by who it authorizes (not by position), so that a
            // route keeps its name while others come and go.
            let key = format!("{} {part}", describe_callers(plan, &callers));
            let stem = format!("{}-{port}-{}", server.id.name(), hex_digest(&key, 4));
            let name = object_name("ibac", &stem);
            text.push_str(&format!(
                "\n    HTTPRoute {name}: {} — for {}",
                rules
                    .iter()
                    .flat_map(|r| &r.matches)
                    .map(describe_match)
                    .collect::<Vec<_>>()
                    .join(", "),
                describe_callers(plan, &callers)
            ));
            objects.push(object(
                LinkerdKind::HttpRoute,
                &name,
                &server.id,
                LinkerdSpec::HttpRoute(HttpRouteSpec {
                    parent_refs: vec![ParentRef {
                        group: GROUP.into(),
                        kind: LinkerdKind::Server,
                        name: base.clone(),
                    }],
                    rules,
                }),
            ));
            let target = reference(LinkerdKind::HttpRoute, &name);
            authorize_clients(plan, &callers, target.clone(), &name, objects);
            if callers.contains(&Caller::Kubelet) {
                let probes = object_name("ibac", &format!("{}-probes", server.id.name()));
                let policy = object_name("ibac", &format!("{stem}-probes"));
                objects.push(object(
                    LinkerdKind::AuthorizationPolicy,
                    &policy,
                    &server.id,
                    LinkerdSpec::AuthorizationPolicy(AuthorizationPolicySpec {
                        target_ref: target,
                        required_authentication_refs: vec![reference(
                            LinkerdKind::NetworkAuthentication,
                            &probes,
                        )],
                    }),
                ));
                if !objects.iter().any(|o| {
                    o.kind == LinkerdKind::NetworkAuthentication
                        && o.metadata.name.as_deref() == Some(probes.as_str())
                }) {
                    objects.push(object(
                        LinkerdKind::NetworkAuthentication,
                        &probes,
                        &server.id,
                        LinkerdSpec::NetworkAuthentication(NetworkAuthenticationSpec {
                            networks: options
                                .probe_networks
                                .iter()
                                .map(|cidr| Network { cidr: cidr.clone() })
                                .collect(),
                        }),
                    ));
                }
            }
        }
    }
}

/// Renders one server's Linkerd policy, with warnings about clients that
/// share a service account with other workloads and about prefixes.
pub fn render_server_linkerd(
    policy: &Policy,
    facts: &ClusterFacts,
    id: &WorkloadId,
    options: &LinkerdOptions,
    principals: &Principals<'_>,
) -> ServerRendering<LinkerdObject> {
    let mut out = ServerRendering::default();
    let Some(plan) = plan::server(policy, facts, id, &mut out.skipped) else {
        return out;
    };
    out.protected = plan.protected;
    let server = plan.server;
    if !plan.protected {
        out.explanation.push(plan.shadow_note(
            "no Linkerd Server (a Server refuses every caller it does not authorize)",
        ));
        return out;
    }
    if let Err(e) = check_selector(facts, server) {
        out.refused.push(e);
        return out;
    }
    let ports = server_ports(&plan);
    if ports.is_empty() && plan.clients.is_empty() {
        // A pure client: nobody may call it and it listens on no declared
        // port, so there is no Server to write.
        out.explanation.push(format!(
            "{}: {}; its pods declare no port and nobody may call it: no Linkerd Server to write (ports the pods do not declare stay under Linkerd's default inbound policy)",
            server.id, plan.protection
        ));
        return out;
    }
    if ports.is_empty() {
        out.refused.push(plan::workload_error(
            server,
            "declares no TCP container port and no intent names one: a Linkerd Server protects one port, so there is nothing to write; declare the ports in the pod spec",
        ));
        return out;
    }
    out.warnings = principals.warnings(&plan, "Linkerd");
    let prefixes = plan
        .clients
        .iter()
        .flat_map(|c| c.intents.iter())
        .flat_map(|i| &i.http)
        .any(|r| matches!(&r.path, PathPattern::Prefix(base) if base != "/"));
    if prefixes {
        out.warnings.push(format!(
            "{}: Linkerd matches a path prefix by whole segments and the path as sent, so `/api/*` there also admits `/api` itself and paths with dot segments (`/api/../x`) that ibac normalizes first",
            server.id
        ));
    }
    let mut text = format!("{}: {}", server.id, plan.protection);
    for port in ports {
        render_port(&plan, port, options, &mut out.objects, &mut text);
    }
    for client in &plan.clients {
        for intent in client.intents {
            text.push_str(&format!(
                "\n  allows {} (service account {}/{}): {}",
                client.client.id,
                client.client.id.namespace(),
                client.client.service_account,
                intent.describe()
            ));
        }
    }
    text.push_str(&format!(
        "\n  ports the pods do not declare stay under Linkerd's default inbound policy; set the annotation config.linkerd.io/default-inbound-policy: deny on the pods of {} (or their namespace) to close them",
        server.id
    ));
    out.explanation.push(text);
    out
}

/// Renders Linkerd policy for `policy` over `facts`: a fold of
/// [`render_server_linkerd`] over every server.
pub fn render_linkerd(
    policy: &Policy,
    facts: &ClusterFacts,
    options: &LinkerdOptions,
) -> Result<Rendered<LinkerdObject>, Vec<DocumentError>> {
    let principals = Principals::of(facts);
    let (out, refused) = Rendered::fold_all(
        plan::server_ids(policy, facts)
            .iter()
            .map(|id| render_server_linkerd(policy, facts, id, options, &principals)),
    );
    out.unless_refused(refused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(caller: Caller, path: &str, methods: Option<&[HttpMethod]>) -> Grant {
        Grant {
            caller,
            path: RoutePath::of(&PathPattern::parse(path).unwrap()),
            methods: methods.map(|m| m.iter().copied().collect()),
        }
    }

    /// A naive model of how Linkerd ranks a match against a request: none
    /// if it does not match; else the length of the path matched (a prefix
    /// counts without its trailing slash, `/` as 1), then whether it names
    /// the method.
    fn rank(m: &RouteMatch, path: &str, method: HttpMethod) -> Option<(usize, bool)> {
        if m.method.is_some_and(|x| x != method) {
            return None;
        }
        let len = match m.path.kind {
            PathMatchType::Exact => (m.path.value == path).then_some(path.len()),
            PathMatchType::PathPrefix if m.path.value == "/" => Some(1),
            PathMatchType::PathPrefix => {
                let prefix = m.path.value.trim_end_matches('/');
                path.trim_end_matches('/')
                    .strip_prefix(prefix)
                    .filter(|rest| rest.is_empty() || rest.starts_with('/'))
                    .map(|_| prefix.len())
            }
        }?;
        Some((len, m.method.is_some()))
    }

    /// Every route a request may land on: those with a best-ranked match
    /// (more than one only where Linkerd breaks a tie by age).
    fn landed_all(
        routes: &BTreeMap<BTreeSet<Caller>, Vec<RouteMatch>>,
        path: &str,
        method: HttpMethod,
    ) -> Vec<BTreeSet<Caller>> {
        let best = |ms: &Vec<RouteMatch>| ms.iter().filter_map(|m| rank(m, path, method)).max();
        let Some(top) = routes.values().filter_map(best).max() else {
            return Vec::new();
        };
        routes
            .iter()
            .filter(|(_, ms)| best(ms) == Some(top))
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// The route a request lands on, where only one can.
    fn landed(
        routes: &BTreeMap<BTreeSet<Caller>, Vec<RouteMatch>>,
        path: &str,
        method: HttpMethod,
    ) -> Option<BTreeSet<Caller>> {
        let mut all = landed_all(routes, path, method);
        assert!(all.len() <= 1, "{method:?} {path}: a tie between {all:?}");
        all.pop()
    }

    /// Who ibac allows, widened as the module says Linkerd widens: a
    /// prefix `/a/` also admits `/a`.
    fn allowed(grants: &[Grant], path: &str, method: HttpMethod) -> BTreeSet<Caller> {
        let exact = RoutePath::Exact(path.to_string());
        let widened = RoutePath::Exact(format!("{path}/"));
        grants
            .iter()
            .filter(|g| {
                g.allows(&exact, Some(method))
                    || (matches!(g.path, RoutePath::Prefix(_)) && g.allows(&widened, Some(method)))
            })
            .map(|g| g.caller)
            .collect()
    }

    #[test]
    fn every_request_lands_on_a_route_that_names_exactly_its_callers() {
        use Caller::{Client, Kubelet};
        use HttpMethod::{Delete, Get, Head, Post};
        let grants = vec![
            grant(Client(0), "/api/*", None),
            grant(Client(1), "/api/orders", Some(&[Post])),
            grant(Client(2), "/api/orders/*", Some(&[Get, Head])),
            grant(Client(3), "*", Some(&[Delete])),
            grant(Kubelet, "/healthz", Some(&[Get])),
        ];
        let routes = routes(&grants);
        for path in [
            "/api",
            "/api/orders",
            "/api/orders/7",
            "/api/x",
            "/healthz",
            "/other",
            "/api/orders/7/items",
        ] {
            for method in HttpMethod::ALL {
                let want = allowed(&grants, path, method);
                let got = landed(&routes, path, method).unwrap_or_default();
                assert_eq!(got, want, "{method:?} {path}");
            }
        }
    }

    #[test]
    fn matches_are_cut_into_rules_and_routes_within_the_crd_limits() {
        let grants: Vec<Grant> = (0..200)
            .map(|i| grant(Caller::Client(0), &format!("/p{i}"), None))
            .collect();
        let routes = routes(&grants);
        assert_eq!(routes.len(), 1, "one set of callers, one route's matches");
        let matches = routes.values().next().unwrap();
        assert_eq!(matches.len(), 200);
        let parts = route_parts(matches);
        let sizes: Vec<Vec<usize>> = parts
            .iter()
            .map(|rules| rules.iter().map(|r| r.matches.len()).collect())
            .collect();
        assert_eq!(sizes.len(), 2);
        assert_eq!(sizes[0], vec![8; 16]);
        assert_eq!(sizes[1], vec![8; 9]);
        let flattened: Vec<&RouteMatch> = parts.iter().flatten().flat_map(|r| &r.matches).collect();
        assert_eq!(
            flattened,
            matches.iter().collect::<Vec<_>>(),
            "in order, none lost"
        );
    }

    #[test]
    fn objects_read_back_as_what_was_written() {
        let spec = LinkerdSpec::Server(ServerSpec {
            pod_selector: LabelSelector::default(),
            port: 8080,
            access_policy: AccessPolicy::Deny,
        });
        let o = object(
            spec.kind(),
            "ibac-api-8080",
            &WorkloadId::parse("api.shop").unwrap(),
            spec,
        );
        let back: LinkerdObject =
            serde_json::from_value(serde_json::to_value(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        assert_eq!(back.spec.kind(), back.kind);
    }

    mod property {
        use proptest::prelude::*;

        use super::*;

        const PATHS: [&str; 7] = ["*", "/a/*", "/a/b/*", "/a/b", "/a", "/c", "/a/b/c"];
        const REQUESTS: [&str; 7] = ["/a", "/a/b", "/a/b/c", "/a/x", "/c", "/d", "/a/b/c/d"];

        fn any_grant() -> impl Strategy<Value = Grant> {
            (
                0usize..4,
                0..PATHS.len(),
                proptest::option::of(proptest::collection::btree_set(
                    0..HttpMethod::ALL.len(),
                    1..4,
                )),
                any::<bool>(),
            )
                .prop_map(|(client, path, methods, kubelet)| Grant {
                    caller: if kubelet && client == 0 {
                        Caller::Kubelet
                    } else {
                        Caller::Client(client)
                    },
                    path: RoutePath::of(&PathPattern::parse(PATHS[path]).unwrap()),
                    methods: methods.map(|m| m.into_iter().map(|i| HttpMethod::ALL[i]).collect()),
                })
        }

        /// Whether another grant's path is exact where this one's prefix,
        /// widened, ends (`/a` beside `/a/*`): Linkerd ranks the two alike
        /// and picks by age, which no rendering controls.
        fn tied(grants: &[Grant]) -> bool {
            grants.iter().any(|g| match &g.path {
                RoutePath::Prefix(base) => grants
                    .iter()
                    .any(|o| o.path == RoutePath::Exact(base.trim_end_matches('/').to_string())),
                _ => false,
            })
        }

        proptest! {
            /// Against the naive model of Linkerd's route choice, every
            /// request lands on a route naming exactly the callers ibac
            /// allows it for (with Linkerd's segment-prefix widening).
            #[test]
            fn requests_land_on_routes_naming_exactly_their_callers(
                grants in proptest::collection::vec(any_grant(), 1..6),
            ) {
                prop_assume!(!tied(&grants));
                let routes = routes(&grants);
                for path in REQUESTS {
                    for method in HttpMethod::ALL {
                        let want = allowed(&grants, path, method);
                        let got = landed(&routes, path, method).unwrap_or_default();
                        prop_assert_eq!(got, want, "{:?} {}", method, path);
                    }
                }
            }

            /// Where Linkerd's tie-break decides, whichever route a request
            /// lands on names no caller ibac does not allow: the tie can
            /// only refuse.
            #[test]
            fn ties_never_allow_more(
                grants in proptest::collection::vec(any_grant(), 1..6),
            ) {
                let routes = routes(&grants);
                for path in REQUESTS {
                    for method in HttpMethod::ALL {
                        let want = allowed(&grants, path, method);
                        for callers in landed_all(&routes, path, method) {
                            prop_assert!(callers.is_subset(&want), "{:?} {}: {:?} over {:?}", method, path, callers, want);
                        }
                    }
                }
            }
        }
    }
}
