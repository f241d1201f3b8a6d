//! `ibac render networkpolicy|istio|linkerd|kafka|sql`: the configuration a cluster's
//! own enforcers apply, rendered offline from documents and cluster facts —
//! ready for `kubectl apply -f -`, or to commit (GitOps). Two runs give
//! byte-identical output. A reference that cannot be resolved is reported
//! with its place and skipped, the rest is rendered, and the exit status says
//! so ([`exit::SKIPPED`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, anyhow};
use clap::{Subcommand, ValueEnum};
use ibac_model::yaml::to_yaml_stream;
use ibac_model::{DocumentError, Namespace, ParseOptions};
use ibac_policy::{NoFacts, Policy, Resolver};
use ibac_render::facts::{ClusterFacts, FactsOptions};
use ibac_render::kafka::{AclBinding, KafkaServerAcls, command, diff};
use ibac_render::sql::SqlScript;
use ibac_render::{
    IstioOptions, KafkaOptions, LinkerdOptions, NetpolOptions, Rendered, render_istio,
    render_kafka_acls, render_linkerd, render_network_policies, render_sql,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::Serialize;

use crate::docs;
use crate::exit;
use crate::output::write_stdout;

/// Arguments of `ibac render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    Yaml,
    Json,
}

#[derive(Debug, clap::Args)]
struct Common {
    /// Kubernetes manifests describing the cluster (files or directories,
    /// `kubectl get -o yaml` output included)
    #[arg(long = "cluster", value_name = "PATH", env = "IBAC_CLUSTER")]
    cluster: Vec<PathBuf>,
    /// Explain, for people, what is rendered and why, instead of the output
    #[arg(env = "IBAC_EXPLAIN", long)]
    explain: bool,
    /// Documents: files or directories; `-` reads stdin
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

/// What the renderers of Kubernetes objects take besides their own options:
/// the documents and facts, and whether to print a YAML stream or a JSON List.
#[derive(Debug, clap::Args)]
struct KubeArgs {
    #[command(flatten)]
    common: Common,
    /// YAML stream or a JSON List
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value = "yaml",
        env = "IBAC_OUTPUT"
    )]
    format: Format,
}

#[derive(Debug, Subcommand)]
enum What {
    /// NetworkPolicies (networking.k8s.io/v1)
    #[command(alias = "networkpolicies", alias = "netpol")]
    Networkpolicy {
        #[command(flatten)]
        kube: KubeArgs,
        /// Let traffic routed by Ingresses come only from these pods: `namespace/key=value,...`
        #[arg(long, value_parser = selector, env = "IBAC_INGRESS_CONTROLLER")]
        ingress_controller: Option<(String, LabelSelector)>,
        /// The cluster DNS pods: `namespace/key=value,...`
        #[arg(long, value_parser = selector, default_value = "kube-system/k8s-app=kube-dns", env = "IBAC_DNS")]
        dns: (String, LabelSelector),
    },
    /// Istio AuthorizationPolicies (security.istio.io/v1)
    Istio {
        #[command(flatten)]
        kube: KubeArgs,
        /// The mesh trust domain of principals
        #[arg(long, default_value = "cluster.local", env = "IBAC_MESH_TRUST_DOMAIN")]
        trust_domain: String,
    },
    /// Linkerd policy (policy.linkerd.io): Servers, HTTPRoutes, AuthorizationPolicies, MeshTLSAuthentications
    Linkerd {
        #[command(flatten)]
        kube: KubeArgs,
        /// Where the kubelet's probes come from (Linkerd's probeNetworks), comma-separated CIDRs
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "0.0.0.0/0,::/0",
            value_parser = cidr,
            env = "IBAC_LINKERD_PROBE_NETWORKS"
        )]
        probe_networks: Vec<String>,
    },
    /// Kafka ACLs, as kafka-acls commands or JSON AclBindings
    Kafka {
        #[command(flatten)]
        common: Common,
        /// `commands` (a shell script) or `json`
        #[arg(
            short = 'o',
            long = "output",
            value_enum,
            default_value = "commands",
            env = "IBAC_OUTPUT"
        )]
        format: KafkaFormat,
        /// Principal of a client; `$name` and `$namespace` are replaced
        #[arg(
            long,
            default_value = "User:CN=$name.$namespace",
            env = "IBAC_KAFKA_PRINCIPAL"
        )]
        principal_template: String,
        /// Consumer groups consumers may use; a trailing `*` is a prefix, `*` every group
        #[arg(long, default_value = "*", env = "IBAC_KAFKA_GROUP")]
        group: String,
        /// The ACLs in place now (JSON AclBindings): print only the changes
        #[arg(long, env = "IBAC_KAFKA_CURRENT")]
        current: Option<PathBuf>,
    },
    /// SQL grants for PostgreSQL and MySQL
    Sql {
        #[command(flatten)]
        common: Common,
        /// `sql` scripts or `json`
        #[arg(
            short = 'o',
            long = "output",
            value_enum,
            default_value = "sql",
            env = "IBAC_OUTPUT"
        )]
        format: SqlFormat,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum KafkaFormat {
    Commands,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum SqlFormat {
    Sql,
    Json,
}

/// A CIDR, as Linkerd reads one.
fn cidr(text: &str) -> Result<String, String> {
    text.parse::<ipnet::IpNet>()
        .map(|net| net.to_string())
        .map_err(|e| format!("`{text}`: {e} (write a CIDR such as 10.0.0.0/8)"))
}

/// `namespace/key=value,key=value`.
fn selector(text: &str) -> Result<(String, LabelSelector), String> {
    let (ns, labels) = text
        .split_once('/')
        .ok_or_else(|| format!("`{text}`: write namespace/key=value[,key=value]"))?;
    Namespace::parse(ns).map_err(|e| format!("`{ns}`: {e}"))?;
    let mut map = BTreeMap::new();
    for pair in labels.split(',') {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}`: write key=value"))?;
        map.insert(k.to_string(), v.to_string());
    }
    if map.is_empty() {
        return Err(format!("`{text}`: give at least one label"));
    }
    Ok((
        ns.to_string(),
        LabelSelector {
            match_labels: Some(map),
            match_expressions: None,
        },
    ))
}

struct Loaded {
    policy: Policy,
    facts: Option<ClusterFacts>,
    /// What the policy left out because it did not resolve.
    skipped: Vec<DocumentError>,
}

/// Reads documents and facts and builds the policy. A document or manifest
/// that cannot be read is printed and nothing is rendered; a reference that
/// does not resolve leaves out only that target (see
/// [`Policy::build_skipping_targets`]).
fn load(
    common: &Common,
    namespace: &str,
    need_facts: bool,
) -> anyhow::Result<Result<Loaded, usize>> {
    let options: ParseOptions = docs::options(namespace)?;
    let parsed = ibac_load::read_documents(&common.paths, &options);
    docs::report_skipped(&parsed);
    if !parsed.errors.is_empty() {
        docs::report(&parsed.errors);
        return Ok(Err(parsed.errors.len()));
    }
    if need_facts && common.cluster.is_empty() {
        return Err(anyhow!(
            "give the cluster facts with --cluster (Kubernetes manifests or `kubectl get -o yaml` output)"
        ));
    }
    let facts = if common.cluster.is_empty() {
        None
    } else {
        let (sources, errors) = ibac_load::read_sources(&common.cluster, options.limits.max_bytes);
        if !errors.is_empty() {
            docs::report(&errors);
            return Ok(Err(errors.len()));
        }
        let sources: Vec<_> = sources.into_iter().map(|s| (s.name, s.text)).collect();
        let facts_options = FactsOptions {
            default_namespace: options.default_namespace.clone(),
            limits: options.limits.clone(),
        };
        match ClusterFacts::read(&sources, &facts_options) {
            Ok(f) => Some(f),
            Err(errors) => {
                docs::report(&errors);
                return Ok(Err(errors.len()));
            }
        }
    };
    let resolver: &dyn Resolver = match &facts {
        Some(f) => f,
        None => &NoFacts,
    };
    let (policy, skipped) = Policy::build_skipping_targets(parsed.documents, resolver);
    Ok(Ok(Loaded {
        policy,
        facts,
        skipped,
    }))
}

/// Prints what was skipped, and the status to exit with.
fn finish(mut skipped: Vec<DocumentError>) -> u8 {
    if skipped.is_empty() {
        return exit::OK;
    }
    skipped.sort_by_key(DocumentError::sort_key);
    docs::report(&skipped);
    eprintln!(
        "error: {} skipped (see above); everything else is rendered",
        docs::problems(skipped.len())
    );
    exit::SKIPPED
}

/// In shadow mode nothing that blocks is rendered; say so, and how to see
/// what protection would create.
fn note_shadow(protected: usize, explain: bool, what: &str) {
    if protected == 0 && !explain {
        eprintln!(
            "note: no server is protected (shadow mode), so no {what} is rendered; `--explain` shows what protecting each server would create"
        );
    }
}

/// Writes what a Kubernetes renderer gave (or reports why it gave nothing)
/// and the exit status: what the policy and the renderer left out is
/// reported either way.
fn conclude<T: Serialize>(
    rendered: Result<Rendered<T>, Vec<DocumentError>>,
    mut skipped: Vec<DocumentError>,
    explain: bool,
    format: Format,
    what: &str,
) -> anyhow::Result<u8> {
    match rendered {
        Ok(rendered) => {
            emit_objects(&rendered, explain, format)?;
            note_shadow(rendered.protected, explain, what);
            skipped.extend(rendered.skipped);
            Ok(finish(skipped))
        }
        Err(mut errors) => {
            errors.append(&mut skipped);
            errors.sort_by_key(DocumentError::sort_key);
            docs::report(&errors);
            Ok(fail(errors.len()))
        }
    }
}

fn fail(n: usize) -> u8 {
    eprintln!("error: {}; nothing rendered", docs::problems(n));
    exit::INPUT
}

fn emit_objects<T: Serialize>(
    rendered: &Rendered<T>,
    explain: bool,
    format: Format,
) -> anyhow::Result<()> {
    for w in &rendered.warnings {
        eprintln!("warning: {w}");
    }
    if explain {
        return write_stdout(&(rendered.explanation.join("\n\n") + "\n"));
    }
    let text = match format {
        Format::Yaml => to_yaml_stream(&rendered.objects)?,
        Format::Json => {
            serde_json::to_string_pretty(
                &serde_json::json!({"apiVersion": "v1", "kind": "List", "items": rendered.objects}),
            )? + "\n"
        }
    };
    write_stdout(&text)
}

/// Renders Kubernetes objects, which need the cluster facts, with `render`
/// and writes them: the steps every such renderer shares.
fn render_kubernetes<T: Serialize>(
    kube: &KubeArgs,
    namespace: &str,
    what: &str,
    render: impl FnOnce(&Policy, &ClusterFacts) -> Result<Rendered<T>, Vec<DocumentError>>,
) -> anyhow::Result<u8> {
    let loaded = match load(&kube.common, namespace, true)? {
        Ok(l) => l,
        Err(n) => return Ok(fail(n)),
    };
    let facts = loaded.facts.context("cluster facts")?;
    let rendered = render(&loaded.policy, &facts);
    conclude(
        rendered,
        loaded.skipped,
        kube.common.explain,
        kube.format,
        what,
    )
}

/// Runs the command.
pub fn run(args: &Args, namespace: &str) -> anyhow::Result<u8> {
    match &args.what {
        What::Networkpolicy {
            kube,
            ingress_controller,
            dns,
        } => {
            let options = NetpolOptions {
                ingress_controller: ingress_controller.clone(),
                dns: ibac_render::Dns {
                    namespace: dns.0.clone(),
                    selector: dns.1.clone(),
                },
            };
            render_kubernetes(kube, namespace, "NetworkPolicy", |policy, facts| {
                render_network_policies(policy, facts, &options)
            })
        }
        What::Istio { kube, trust_domain } => {
            let options = IstioOptions {
                trust_domain: trust_domain.clone(),
            };
            render_kubernetes(kube, namespace, "AuthorizationPolicy", |policy, facts| {
                render_istio(policy, facts, &options)
            })
        }
        What::Linkerd {
            kube,
            probe_networks,
        } => {
            let options = LinkerdOptions {
                probe_networks: probe_networks.clone(),
            };
            render_kubernetes(kube, namespace, "Linkerd Server", |policy, facts| {
                render_linkerd(policy, facts, &options)
            })
        }
        What::Kafka {
            common,
            format,
            principal_template,
            group,
            current,
        } => render_text(common, namespace, |policy| {
            let options = KafkaOptions {
                principal_template: principal_template.clone(),
                group: group.clone(),
            };
            let rendered = render_kafka_acls(policy, &options);
            let current: Vec<AclBinding> = match current {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    serde_json::from_str(&text).with_context(|| {
                        format!("{}: not a JSON list of AclBindings", path.display())
                    })?
                }
                None => Vec::new(),
            };
            let text = kafka_text(&rendered.objects, &current, common.explain, *format)?;
            Ok((text, rendered.skipped))
        }),
        What::Sql { common, format } => render_text(common, namespace, |policy| {
            let rendered = render_sql(policy);
            let text = sql_text(&rendered.objects, *format)?;
            Ok((text, rendered.skipped))
        }),
    }
}

/// Renders what needs no cluster facts (Kafka ACLs, SQL grants) and prints
/// it: `render` gives the text and what it left out; loading the documents,
/// and reporting what was skipped, is the same for each.
fn render_text(
    common: &Common,
    namespace: &str,
    render: impl FnOnce(&Policy) -> anyhow::Result<(String, Vec<DocumentError>)>,
) -> anyhow::Result<u8> {
    let loaded = match load(common, namespace, false)? {
        Ok(l) => l,
        Err(n) => return Ok(fail(n)),
    };
    let (text, left_out) = render(&loaded.policy)?;
    write_stdout(&text)?;
    let mut skipped = loaded.skipped;
    skipped.extend(left_out);
    Ok(finish(skipped))
}

/// The Kafka ACLs as `format` asks, or explained; with the ACLs in place
/// (`current`), the script adds and removes only what differs.
fn kafka_text(
    servers: &[KafkaServerAcls],
    current: &[AclBinding],
    explain: bool,
    format: KafkaFormat,
) -> anyhow::Result<String> {
    let mut text = String::new();
    if explain {
        for s in servers {
            text.push_str(&format!(
                "Kafka server {} ({}): {} ACLs\n",
                s.server,
                s.bootstrap,
                s.bindings.len()
            ));
            for b in &s.bindings {
                text.push_str(&format!(
                    "  {} {} {} on {} {} ({})\n",
                    b.entry.permission_type,
                    b.entry.principal,
                    b.entry.operation,
                    b.pattern.resource_type,
                    b.pattern.name,
                    b.pattern.pattern_type
                ));
            }
        }
    } else if format == KafkaFormat::Json {
        text = serde_json::to_string_pretty(servers)? + "\n";
    } else {
        text.push_str("#!/bin/sh\n# Kafka ACLs rendered by ibac\nset -e\n");
        for s in servers {
            let (add, remove) = if current.is_empty() {
                (s.bindings.clone(), Vec::new())
            } else {
                diff(&s.bindings, current)
            };
            text.push_str(&format!("\n# {}\n", s.server));
            for b in &add {
                text.push_str(&command(&s.bootstrap, b, true));
                text.push('\n');
            }
            for b in &remove {
                text.push_str(&command(&s.bootstrap, b, false));
                text.push('\n');
            }
        }
    }
    Ok(text)
}

/// The SQL grant scripts, or them as JSON.
fn sql_text(scripts: &[SqlScript], format: SqlFormat) -> anyhow::Result<String> {
    Ok(match format {
        SqlFormat::Json => serde_json::to_string_pretty(scripts)? + "\n",
        SqlFormat::Sql => {
            let mut text = String::new();
            for s in scripts {
                text.push_str(&format!(
                    "-- ibac: grants on {} server {} ({})\n",
                    s.dialect, s.server, s.address
                ));
                for st in &s.statements {
                    text.push_str(st);
                    text.push('\n');
                }
                text.push('\n');
            }
            text
        }
    })
}
