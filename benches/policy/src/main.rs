//! Decision benchmark: ibac's `decide()` against cedar-policy and regorus on
//! the same generated policy and the same requests, in one run; then the cost
//! of compiling a large policy and of applying one changed document.
//!
//! The machine is shared and noisy, so every figure is the median of several
//! runs with its spread, and comparisons are ratios measured side by side.
//! Run with `cargo run --release -p ibac-bench-policy`.

// A benchmark reports on stdout; that is its job.
#![allow(clippy::print_stdout)]

mod engines;
mod generate;
mod timing;

use std::time::Instant;

use anyhow::{Context as _, bail};
use ibac_model::Document;
use ibac_policy::{NoFacts, Policy};

use crate::engines::{CedarEngine, IbacEngine, RegoEngine};
use crate::generate::{Spec, documents, requests};
use crate::timing::{Figure, median_of, ns_per_op};

const INTENTS_PER_SERVER: usize = 20;
const SIZES: [usize; 4] = [10, 100, 1_000, 10_000];
const RUNS: usize = 5;

/// How many of `n` decisions allow, cycling through the `len` prepared
/// requests: the comparison engines are handed a request's index.
fn allowed_by_index(len: usize, n: usize, decide: impl Fn(usize) -> anyhow::Result<bool>) -> usize {
    (0..len)
        .cycle()
        .take(n)
        .filter(|i| decide(std::hint::black_box(*i)).unwrap_or(false))
        .count()
}

fn main() -> anyhow::Result<()> {
    println!(
        "ibac policy benchmark — decide(), {INTENTS_PER_SERVER} inbound HTTP intents per server, 50% allowed requests"
    );
    println!(
        "every figure: median of {RUNS} runs [min–max]; engines measured in the same run, on the same requests"
    );
    let mut tables = [Vec::new(), Vec::new()];
    for servers in SIZES {
        let spec = Spec::generate(servers, INTENTS_PER_SERVER);
        let patterns = [
            requests(&spec, 4_096, servers, 0x5eed + servers as u64)?,
            requests(&spec, 1_024, servers.min(16), 0xbeef + servers as u64)?,
        ];
        let ibac = IbacEngine::new(&spec)?;
        for (table, reqs) in tables.iter_mut().zip(&patterns) {
            let cedar = CedarEngine::new(&spec, reqs)?;
            let rego = RegoEngine::new(&spec, reqs)?;
            for (i, r) in reqs.iter().enumerate() {
                let (a, b, c) = (ibac.decide(r), cedar.decide(i)?, rego.decide(i)?);
                if a != r.allowed || b != r.allowed || c != r.allowed {
                    bail!(
                        "engines disagree on request {i} ({r:?}): ibac {a}, cedar {b}, regorus {c}"
                    );
                }
            }
            let ibac_ns = ns_per_op(RUNS, 400_000, |n| {
                reqs.iter()
                    .cycle()
                    .take(n)
                    .filter(|r| ibac.decide(std::hint::black_box(r)))
                    .count()
            });
            let cedar_ns = ns_per_op(RUNS, 6_000, |n| {
                allowed_by_index(reqs.len(), n, |i| cedar.decide(i))
            });
            let rego_ns = ns_per_op(RUNS, 3_000, |n| {
                allowed_by_index(reqs.len(), n, |i| rego.decide(i))
            });
            table.push((servers, ibac_ns, cedar_ns, rego_ns));
        }
    }
    let titles = [
        "requests spread over every server (a shared decision point; caches cold at large N)",
        "requests to at most 16 servers (a sidecar's view: its own server's rules stay in cache)",
    ];
    for (title, rows) in titles.iter().zip(&tables) {
        println!("\n{title}");
        println!(
            "{:>8}  {:>22}  {:>22}  {:>22}  {:>11}  {:>12}",
            "servers",
            "ibac ns/decision",
            "cedar ns/decision",
            "regorus ns/decision",
            "cedar/ibac",
            "regorus/ibac"
        );
        for (servers, ibac_ns, cedar_ns, rego_ns) in rows {
            println!(
                "{servers:>8}  {:>22}  {:>22}  {:>22}  {:>10.0}×  {:>11.0}×",
                ibac_ns.to_string(),
                cedar_ns.to_string(),
                rego_ns.to_string(),
                cedar_ns.median / ibac_ns.median,
                rego_ns.median / ibac_ns.median
            );
        }
    }
    println!("\n(all three engines agreed on every request before timing)\n");

    let spec = Spec::generate(10_000, 10);
    let docs = documents(&spec)?;
    let compile = median_of(RUNS, || {
        let start = Instant::now();
        let (policy, errors) = Policy::build(docs.clone(), &NoFacts);
        let elapsed = start.elapsed();
        std::hint::black_box((policy, errors.len()));
        elapsed.as_secs_f64() * 1e3
    });
    println!(
        "compile 10,000 servers × 10 intents ({} documents): {} ms   (goal: under 500 ms)",
        docs.len(),
        compile
    );

    let (policy, errors) = Policy::build(docs.clone(), &NoFacts);
    if !errors.is_empty() {
        bail!("the generated policy failed to compile: {}", errors[0]);
    }
    let changed = changed_document(&docs)?;
    let apply = median_of(RUNS, || {
        let reps = 200;
        let start = Instant::now();
        for _ in 0..reps {
            let next = policy.apply([changed.clone()], &NoFacts);
            std::hint::black_box(next.is_ok());
        }
        start.elapsed().as_secs_f64() * 1e3 / f64::from(reps)
    });
    println!("apply one changed ClientIntents to that policy: {apply} ms   (goal: under 1 ms)");
    Ok(())
}

/// The first ClientIntents with its first HTTP path changed.
fn changed_document(docs: &[Document]) -> anyhow::Result<Document> {
    let mut doc = docs.first().cloned().context("no documents")?;
    if let Document::ClientIntents(ci) = &mut doc
        && let Some(ibac_model::TargetKind::Workload(call)) =
            ci.targets.first_mut().map(|t| &mut t.kind)
        && let Some(rule) = call.http.first_mut()
    {
        rule.path = ibac_model::http::PathPattern::parse("/changed/*")?;
        return Ok(doc);
    }
    bail!("the first document has no HTTP rule to change")
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits = if self.median < 10.0 { 2 } else { 0 };
        write!(
            f,
            "{:.*} [{:.*}–{:.*}]",
            digits, self.median, digits, self.min, digits, self.max
        )
    }
}
