//! Rendering benchmark: a cluster of 10,000 services (a Deployment and a
//! Service each, one in ten exposed by a LoadBalancer) with 100,000 intents,
//! every namespace enforced. Prints the time to compile the policy and to
//! render the NetworkPolicies, how many there are, and, as a baseline from the
//! same run, the time merely to write them out as YAML.
//!
//! Run with `cargo run --release -p ibac-bench-render`.

// A benchmark reports on stdout; that is its job.
#![allow(clippy::print_stdout)]

#[path = "../../support/spread.rs"]
mod spread;

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::anyhow;
use ibac_model::{
    CallTarget, ClientIntents, Document, EnforcementConfig, Enforcers, ExternalTraffic, Format,
    Location, Meta, Mode, Namespace, Target, TargetKind, WorkloadId, WorkloadRef,
};
use ibac_policy::Policy;
use ibac_render::facts::{
    ClusterFacts, ClusterObject, ContainerPort, Service, ServicePort, Workload,
};
use ibac_render::labels::of_labels;
use ibac_render::{NetpolOptions, render_network_policies};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use spread::median;

const SERVICES: usize = 10_000;
const INTENTS_PER_CLIENT: usize = 10;
const NAMESPACES: usize = 50;
const RUNS: usize = 5;

fn main() -> anyhow::Result<()> {
    let at = Location::new("bench.yaml".into(), 1, 1);
    let id = |i: usize| {
        WorkloadId::parse(&format!("svc-{i}.ns-{}", i % NAMESPACES)).map_err(|e| anyhow!("{e}"))
    };
    // The cluster model is built one object at a time, as an operator's
    // watches build it; the build is timed on its own.
    let build_facts = || -> anyhow::Result<ClusterFacts> {
        let mut facts = ClusterFacts::default();
        for ns in 0..NAMESPACES {
            facts.apply(ClusterObject::Namespace {
                name: format!("ns-{ns}"),
                labels: BTreeMap::new(),
            });
        }
        for i in 0..SERVICES {
            let labels = BTreeMap::from([("app".to_string(), format!("svc-{i}"))]);
            facts.apply(ClusterObject::Workload(Workload {
                id: id(i)?,
                kind: "Deployment".into(),
                selector: of_labels(&labels),
                pod_labels: labels.clone(),
                ports: vec![ContainerPort {
                    name: Some("http".into()),
                    port: 8080,
                    protocol: "TCP".into(),
                }],
                probes: Vec::new(),
                service_account: format!("svc-{i}"),
                host_network: false,
                called_by: Ok(Vec::new()),
                at: at.clone(),
            }));
            let service = Service {
                id: id(i)?,
                selector: Some(labels),
                ports: vec![ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    target: IntOrString::String("http".into()),
                    protocol: "TCP".into(),
                }],
                exposed: i % 10 == 0,
                at: at.clone(),
            };
            facts.apply(ClusterObject::Service(service));
        }
        Ok(facts)
    };
    let mut docs = Vec::new();
    for i in 0..SERVICES {
        let client = id(i)?;
        let targets = (1..=INTENTS_PER_CLIENT)
            .map(|k| {
                let server = id((i * 7 + k * 13) % SERVICES)?;
                Ok(Target {
                    at: at.clone(),
                    kind: TargetKind::Service(CallTarget {
                        id: server,
                        kind: None,
                        ports: vec![80],
                        http: Vec::new(),
                    }),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        docs.push(Document::ClientIntents(ClientIntents {
            meta: Meta {
                name: client.name().into(),
                namespace: client.namespace_owned(),
                origin: at.clone(),
                format: Format::IbacV1,
                namespace_given: true,
            },
            workload: WorkloadRef {
                id: client,
                kind: None,
            },
            targets,
        }));
    }
    docs.push(Document::EnforcementConfig(EnforcementConfig {
        meta: Meta {
            name: "default".into(),
            namespace: Namespace::parse("ibac-system").map_err(|e| anyhow!("{e}"))?,
            origin: at.clone(),
            format: Format::IbacV1,
            namespace_given: true,
        },
        mode: Mode::DefaultActive,
        enforced_namespaces: Vec::new(),
        enforcers: Enforcers::default(),
        external_traffic: ExternalTraffic::IfBlocked,
    }));
    println!(
        "ibac render benchmark — {SERVICES} services in {NAMESPACES} namespaces, {} intents (through Services), mode defaultActive",
        SERVICES * INTENTS_PER_CLIENT
    );

    let mut model = Vec::new();
    let mut compile = Vec::new();
    let mut render = Vec::new();
    let mut yaml = Vec::new();
    let mut count = 0;
    for _ in 0..RUNS {
        let start = Instant::now();
        let facts = build_facts()?;
        model.push(start.elapsed().as_secs_f64() * 1e3);
        let start = Instant::now();
        let (policy, errors) = Policy::build(docs.clone(), &facts);
        compile.push(start.elapsed().as_secs_f64() * 1e3);
        if let Some(e) = errors.first() {
            return Err(anyhow!("{e}"));
        }
        let start = Instant::now();
        let rendered = render_network_policies(&policy, &facts, &NetpolOptions::default())
            .map_err(|e| anyhow!("{}", e.first().map(ToString::to_string).unwrap_or_default()))?;
        render.push(start.elapsed().as_secs_f64() * 1e3);
        count = rendered.objects.len();
        let start = Instant::now();
        let text = ibac_model::yaml::to_yaml_stream(&rendered.objects)?;
        yaml.push(start.elapsed().as_secs_f64() * 1e3);
        std::hint::black_box(text.len());
    }
    let (m, m0, m1) = median(model);
    let (c, c0, c1) = median(compile);
    let (r, r0, r1) = median(render);
    let (y, y0, y1) = median(yaml);
    println!("median of {RUNS} runs [min–max]:");
    println!("  build the cluster model, one object at a time {m:>8.0} ms [{m0:.0}–{m1:.0}]");
    println!("  compile the policy (resolving Services)      {c:>8.0} ms [{c0:.0}–{c1:.0}]");
    println!("  render NetworkPolicies                        {r:>8.0} ms [{r0:.0}–{r1:.0}]");
    println!("  baseline: write them as YAML                  {y:>8.0} ms [{y0:.0}–{y1:.0}]");
    println!(
        "  compile + render: {:.0} ms (goal: under 1,000 ms); render/YAML = {:.2}",
        c + r,
        r / y
    );
    println!(
        "  {count} NetworkPolicies: {SERVICES} (one per protected server) + {} external-traffic",
        count.saturating_sub(SERVICES)
    );
    Ok(())
}
