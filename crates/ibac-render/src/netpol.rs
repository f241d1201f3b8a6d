//! Kubernetes NetworkPolicies (`networking.k8s.io/v1`).
//!
//! Per protected server, one policy selects its pods by the workload's own pod
//! selector and allows ingress from each declared client's pods (their own
//! selector, in their namespace), on the ports the intents name or all ports. A
//! protected server with no clients gets a default deny. Unprotected servers get
//! nothing that selects their pods: any policy selecting a pod isolates it.
//! Traffic from outside the cluster (LoadBalancer, NodePort, Ingress) gets
//! policies of its own; egress policies are optional.

use std::collections::BTreeSet;

use ibac_model::{DocumentError, ExternalTraffic, Held, Location, TargetKind};
use ibac_policy::Policy;
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::facts::{ClusterFacts, Workload, target_port};
use crate::labels::{self, Labels};
use crate::names::{object_name, ownership};
use crate::plan::{self, ClientPlan, SelectorChecks, ServerPlan};

/// Where the cluster's DNS server runs.
#[derive(Clone, Debug)]
pub struct Dns {
    /// Its namespace.
    pub namespace: String,
    /// Its pods.
    pub selector: LabelSelector,
}

impl Default for Dns {
    fn default() -> Self {
        Dns {
            namespace: "kube-system".into(),
            selector: labels::of_labels(&Labels::from([(
                "k8s-app".to_string(),
                "kube-dns".to_string(),
            )])),
        }
    }
}

/// Options of NetworkPolicy rendering.
#[derive(Clone, Debug, Default)]
pub struct NetpolOptions {
    /// Restrict traffic arriving through Ingresses to these pods
    /// (namespace, selector); without it, from anywhere.
    pub ingress_controller: Option<(String, LabelSelector)>,
    /// The cluster DNS server.
    pub dns: Dns,
}

pub use crate::rendered::{Rendered, ServerRendering};

fn namespace_selector(ns: &str) -> LabelSelector {
    labels::of_labels(&Labels::from([(
        "kubernetes.io/metadata.name".to_string(),
        ns.to_string(),
    )]))
}

fn peer_of(workload: &Workload) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        pod_selector: Some(workload.selector.clone()),
        namespace_selector: Some(namespace_selector(workload.id.namespace())),
        ip_block: None,
    }
}

fn tcp_ports(ports: &[u16]) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(i32::from(*p))),
            protocol: Some("TCP".into()),
            end_port: None,
        })
        .collect()
}

fn dns_ports() -> Vec<NetworkPolicyPort> {
    ["UDP", "TCP"]
        .into_iter()
        .map(|proto| NetworkPolicyPort {
            port: Some(IntOrString::Int(53)),
            protocol: Some(proto.into()),
            end_port: None,
        })
        .collect()
}

fn policy_object(
    name: String,
    namespace: &str,
    role: &str,
    subject: &str,
    spec: NetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_string()),
            labels: Some(ownership(role, subject)),
            ..ObjectMeta::default()
        },
        spec: Some(spec),
    }
}

fn describe_client(plan: &ClientPlan<'_>) -> String {
    format!("{} on {}", plan.client.id, ports_text(plan))
}

fn ports_text(plan: &ClientPlan<'_>) -> String {
    let ports = match plan.ports() {
        None => "all ports".to_string(),
        Some(p) => format!(
            "port{} {}",
            if p.len() == 1 { "" } else { "s" },
            p.iter().map(u16::to_string).collect::<Vec<_>>().join(", ")
        ),
    };
    let widened = if plan.widened() {
        " (its HTTP rules are widened to their ports: a NetworkPolicy cannot see methods or paths)"
    } else {
        ""
    };
    format!("{ports}{widened}")
}

fn ingress_rules(
    plan: &ServerPlan<'_>,
    options: &NetpolOptions,
) -> (Vec<NetworkPolicyIngressRule>, Vec<String>) {
    let mut rules = Vec::new();
    let mut lines = Vec::new();
    for client in &plan.clients {
        rules.push(NetworkPolicyIngressRule {
            from: Some(vec![peer_of(client.client)]),
            ports: client.ports().map(|p| tcp_ports(&p)),
        });
        lines.push(format!("  allows {}", describe_client(client)));
    }
    let server = plan.server;
    if server.id.namespace() == options.dns.namespace
        && labels::matches(&options.dns.selector, &server.pod_labels)
    {
        rules.push(NetworkPolicyIngressRule {
            from: None,
            ports: Some(dns_ports()),
        });
        lines.push(
            "  allows DNS (53/UDP, 53/TCP) from every pod: it is the cluster DNS server".into(),
        );
    }
    (rules, lines)
}

/// The container ports of `server` that `service`'s ports lead to, sorted.
fn target_ports(service: &crate::facts::Service, server: &Workload) -> Vec<u16> {
    let ports: BTreeSet<u16> = service
        .ports
        .iter()
        .filter_map(|p| target_port(p, server))
        .collect();
    ports.into_iter().collect()
}

/// The ports of `server` reachable from outside the cluster, and why.
fn external_sources(
    facts: &ClusterFacts,
    server: &Workload,
    options: &NetpolOptions,
) -> Vec<(NetworkPolicyIngressRule, String)> {
    let mut out = Vec::new();
    for service in facts.exposing(server) {
        let ports = target_ports(service, server);
        out.push((
            NetworkPolicyIngressRule {
                from: None,
                ports: Some(tcp_ports(&ports)),
            },
            format!(
                "  allows anyone on {:?}: exposed by Service {}",
                ports, service.id
            ),
        ));
    }
    for ingress in facts.ingresses() {
        for backend in &ingress.backends {
            let Some(service) =
                ibac_model::WorkloadId::parse(&format!("{backend}.{}", ingress.namespace))
                    .ok()
                    .and_then(|id| facts.services().get(&id))
            else {
                continue;
            };
            if !facts.backends(service).iter().any(|b| b.id == server.id) {
                continue;
            }
            let ports = target_ports(service, server);
            let (from, who) = match &options.ingress_controller {
                Some((ns, selector)) => (
                    Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector.clone()),
                        namespace_selector: Some(namespace_selector(ns)),
                        ip_block: None,
                    }]),
                    format!(
                        "the ingress controller's pods ({} in {ns})",
                        labels::describe(selector)
                    ),
                ),
                None => (None, "anyone".to_string()),
            };
            out.push((
                NetworkPolicyIngressRule {
                    from,
                    ports: Some(tcp_ports(&ports)),
                },
                format!(
                    "  allows {who} on {ports:?}: routed by Ingress {}/{}",
                    ingress.namespace, ingress.name
                ),
            ));
        }
    }
    out
}

/// An ingress policy selecting `server`'s pods.
fn ingress_policy(
    name: String,
    server: &Workload,
    role: &str,
    rules: Vec<NetworkPolicyIngressRule>,
) -> NetworkPolicy {
    policy_object(
        name,
        server.id.namespace(),
        role,
        server.id.name(),
        NetworkPolicySpec {
            pod_selector: Some(server.selector.clone()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        },
    )
}

/// Renders one server's NetworkPolicies: its ingress policy and, when
/// external traffic is let in, the policy for it. `checks` remembers selector
/// checks across servers.
pub fn render_server_network_policies(
    policy: &Policy,
    facts: &ClusterFacts,
    id: &ibac_model::WorkloadId,
    options: &NetpolOptions,
    checks: &mut SelectorChecks,
) -> ServerRendering<NetworkPolicy> {
    let settings = policy.settings();
    let mut out = ServerRendering::default();
    let Some(plan) = plan::server(policy, facts, id, &mut out.skipped) else {
        return out;
    };
    out.protected = plan.protected;
    if !settings.enforcers.network_policy {
        return out;
    }
    let server = plan.server;
    if plan.protected && server.host_network {
        // A policy selecting its pods would change nothing: say so instead.
        out.skipped.push(plan::workload_error(
            server,
            "runs on its node's network (hostNetwork): NetworkPolicies do not apply to its pods, so this enforcer cannot protect it",
        ));
        return out;
    }
    for client in plan.clients.iter().filter(|c| c.client.host_network) {
        out.warnings.push(format!(
            "{} `{}` runs on its node's network (hostNetwork): its calls come from the node's address, which no NetworkPolicy that names its pods matches",
            client.client.kind, client.client.id
        ));
    }
    if plan.protected {
        for w in std::iter::once(server).chain(plan.clients.iter().map(|c| c.client)) {
            if let Err(e) = checks.check(facts, w) {
                out.refused.push(e);
            }
        }
        if !out.refused.is_empty() {
            return out;
        }
    }
    let (rules, lines) = ingress_rules(&plan, options);
    let name = object_name("ibac-ingress", server.id.name());
    if !plan.protected {
        let mut text = format!(
            "{}: {}; no NetworkPolicy selects its pods. If it were protected, ibac would create {name}, which",
            server.id, plan.protection
        );
        if lines.is_empty() {
            text.push_str(" would allow nothing (a default deny)");
        } else {
            text.push('\n');
            text.push_str(&lines.join("\n").replace("  allows", "  would allow"));
        }
        out.explanation.push(text);
        return out;
    }
    let mut text = format!("{}: {}; NetworkPolicy {name}", server.id, plan.protection);
    if lines.is_empty() {
        text.push_str(" allows nothing (a default deny)");
    } else {
        text.push('\n');
        text.push_str(&lines.join("\n"));
    }
    out.explanation.push(text);
    out.objects
        .push(ingress_policy(name, server, "ingress", rules));
    if settings.external_traffic != ExternalTraffic::Off {
        let sources = external_sources(facts, server, options);
        if !sources.is_empty() {
            let name = object_name("ibac-external", server.id.name());
            let (rules, lines): (Vec<_>, Vec<_>) = sources.into_iter().unzip();
            out.explanation.push(format!(
                "{}: traffic from outside the cluster; NetworkPolicy {name}\n{}",
                server.id,
                lines.join("\n")
            ));
            out.objects
                .push(ingress_policy(name, server, "external", rules));
        }
    }
    out
}

/// Renders NetworkPolicies for `policy` over `facts`: a fold of
/// [`render_server_network_policies`] over every server, then egress.
pub fn render_network_policies(
    policy: &Policy,
    facts: &ClusterFacts,
    options: &NetpolOptions,
) -> Result<Rendered<NetworkPolicy>, Vec<DocumentError>> {
    let settings = policy.settings();
    let mut out = Rendered::default();
    let mut errors = Vec::new();
    let mut checks = SelectorChecks::default();
    if !settings.enforcers.network_policy {
        out.explanation
            .push("NetworkPolicies are turned off in the EnforcementConfig (enforcers.networkPolicy: false)".into());
    }
    for id in plan::server_ids(policy, facts) {
        let server = render_server_network_policies(policy, facts, &id, options, &mut checks);
        out.fold(server, &mut errors);
    }
    if !settings.enforcers.network_policy {
        // Not "nothing is protected": this enforcer is off.
        out.skipped.clear();
        return Ok(out);
    }
    if settings.enforcers.egress_network_policy {
        for client in egress_clients(policy) {
            out.fold(
                render_client_egress(policy, facts, &client, options),
                &mut errors,
            );
        }
    }
    out.unless_refused(errors)
}

/// Every client with a ClientIntents in force, in order: each gets an
/// egress policy of its own when egress policies are on.
pub fn egress_clients(policy: &Policy) -> Vec<ibac_model::WorkloadId> {
    policy.clients()
}

/// The egress policy of one client: DNS, its declared servers, the API
/// server, and internet addresses. Nothing when the client has no
/// ClientIntents in force or egress policies are off; refused (with the
/// reason) when it calls the API server and its addresses are unknown.
pub fn render_client_egress(
    policy: &Policy,
    facts: &ClusterFacts,
    client_id: &ibac_model::WorkloadId,
    options: &NetpolOptions,
) -> ServerRendering<NetworkPolicy> {
    let mut out = ServerRendering::default();
    let settings = policy.settings();
    if !settings.enforcers.network_policy || !settings.enforcers.egress_network_policy {
        return out;
    }
    let Some(origin) = policy
        .intents_of(client_id)
        .map(|ci| ci.meta.origin.clone())
    else {
        return out;
    };
    // Servers are already reported by their own rendering: not twice.
    let mut reported = Vec::new();
    let plans: Vec<ServerPlan<'_>> = policy
        .calls(client_id)
        .iter()
        .filter_map(|server| plan::server(policy, facts, server, &mut reported))
        .collect();
    let servers: Vec<(&Workload, ClientPlan<'_>)> = plans
        .iter()
        .filter_map(|plan| {
            plan.clients
                .iter()
                .find(|c| &c.client.id == client_id)
                .map(|c| (plan.server, c.clone()))
        })
        .collect();
    let client = match servers.first() {
        Some((_, c)) => c.client,
        None => match facts.workload(client_id, None) {
            Ok(w) => w,
            Err(e) => {
                out.skipped.push(DocumentError::Invalid {
                    at: origin,
                    message: format!("client `{client_id}`: {e}; its egress policy is skipped"),
                });
                return out;
            }
        },
    };
    let mut rules = vec![NetworkPolicyEgressRule {
        to: Some(vec![NetworkPolicyPeer {
            pod_selector: Some(options.dns.selector.clone()),
            namespace_selector: Some(namespace_selector(&options.dns.namespace)),
            ip_block: None,
        }]),
        ports: Some(dns_ports()),
    }];
    let mut text = vec![format!("  allows DNS to {}", options.dns.namespace)];
    for (server, plan) in &servers {
        rules.push(NetworkPolicyEgressRule {
            to: Some(vec![peer_of(server)]),
            ports: plan.ports().map(|p| tcp_ports(&p)),
        });
        text.push(format!("  allows {} on {}", server.id, ports_text(plan)));
    }
    let api = ibac_model::WorkloadId::parse("kubernetes.default").ok();
    let calls_api = api
        .as_ref()
        .and_then(|a| policy.server(a))
        .is_some_and(|s| s.client(client_id).is_some());
    if calls_api {
        match api.as_ref().and_then(|a| facts.endpoints().get(a)) {
            Some(endpoints) if !endpoints.addresses.is_empty() => {
                rules.push(NetworkPolicyEgressRule {
                    to: Some(
                        endpoints
                            .addresses
                            .iter()
                            .map(|a| NetworkPolicyPeer {
                                ip_block: Some(IPBlock {
                                    cidr: if a.contains(':') { format!("{a}/128") } else { format!("{a}/32") },
                                    except: None,
                                }),
                                ..NetworkPolicyPeer::default()
                            })
                            .collect(),
                    ),
                    ports: Some(tcp_ports(&endpoints.ports.iter().copied().collect::<Vec<_>>())),
                });
                text.push("  allows the Kubernetes API server (kubernetes.default)".into());
            }
            _ => out.refused.push(DocumentError::Invalid {
                at: Location::held(Held::ClusterFacts),
                message: format!(
                    "`{client_id}` calls kubernetes.default: egress to the API server needs its EndpointSlice in the cluster facts (`kubectl get endpointslices -n default -o yaml`)"
                ),
            }),
        }
    }
    for target in policy.unenforced(client_id) {
        if let TargetKind::Internet(net) = &target.kind {
            if !net.ips.is_empty() {
                rules.push(NetworkPolicyEgressRule {
                    to: Some(
                        net.ips
                            .iter()
                            .map(|ip| NetworkPolicyPeer {
                                ip_block: Some(IPBlock {
                                    cidr: ip.to_string(),
                                    except: None,
                                }),
                                ..NetworkPolicyPeer::default()
                            })
                            .collect(),
                    ),
                    ports: (!net.ports.is_empty()).then(|| tcp_ports(&net.ports)),
                });
                text.push(format!(
                    "  allows {:?}",
                    net.ips.iter().map(ToString::to_string).collect::<Vec<_>>()
                ));
            }
            if !net.domains.is_empty() {
                out.warnings.push(format!(
                    "{}: `{client_id}` declares domains {:?}; NetworkPolicies cannot match domain names, so egress to them is blocked",
                    target.at, net.domains
                ));
            }
        }
    }
    let name = object_name("ibac-egress", client.id.name());
    out.explanation.push(format!(
        "{client_id}: egress NetworkPolicy {name}\n{}",
        text.join("\n")
    ));
    out.objects.push(policy_object(
        name,
        client.id.namespace(),
        "egress",
        client.id.name(),
        NetworkPolicySpec {
            pod_selector: Some(client.selector.clone()),
            policy_types: Some(vec!["Egress".into()]),
            ingress: None,
            egress: Some(rules),
        },
    ));
    out
}
