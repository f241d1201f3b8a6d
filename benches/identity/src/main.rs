//! SVID issuance benchmark.
//!
//! 1. On one core, in process: CSR → signature verified → SVID signed →
//!    persisted (an audit record appended to a file), next to the floor set by
//!    the cryptography alone (one ECDSA P-256 verification and one signature),
//!    measured in the same run.
//! 2. Over HTTPS on 127.0.0.1, the issuer on one thread: a burst of 1,000 joins
//!    (each a new TLS connection, a token and a CSR), with latency percentiles.
//!
//! Run with `cargo run --release -p ibac-bench-identity`.

// A benchmark reports on stdout; that is its job.
#![allow(clippy::print_stdout)]

#[path = "../../support/spread.rs"]
mod spread;

use std::sync::Arc;
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context, anyhow};
use arc_swap::ArcSwap;
use ibac_identity::attest::{
    AuditEvent, AuditLog, IssuanceService, IssuerClient, JsonlAudit, LocalTokenStore,
};
use ibac_identity::ca::new_key_and_csr;
use ibac_identity::{Ca, SpiffeId, TrustDomain, pem};
use ibac_model::WorkloadId;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};
use spread::median;
use time::{Duration, OffsetDateTime};

const RUNS: usize = 5;
const PER_RUN: usize = 2_000;
const BURST: usize = 1_000;

fn main() -> anyhow::Result<()> {
    println!("ibac identity benchmark — SVID issuance (ECDSA P-256, ring)\n");
    let dir = tempfile::tempdir()?;
    let now = OffsetDateTime::now_utc();
    let ca = Ca::generate_root(TrustDomain::default(), now, Duration::days(1))?;
    let ids: Vec<SpiffeId> = (0..PER_RUN)
        .map(|i| {
            WorkloadId::parse(&format!("w{i}.bench"))
                .map(|w| SpiffeId::for_workload(ca.trust_domain(), &w))
                .map_err(|e| anyhow!("{e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let csrs: Vec<Vec<u8>> = (0..PER_RUN)
        .map(|_| {
            new_key_and_csr()
                .map(|(_, csr)| csr)
                .map_err(|e| anyhow!("{e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let audit = JsonlAudit::open(&dir.path().join("issued.jsonl"))?;

    // The floor: one verification and one signature per SVID.
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng)
        .map_err(|_| anyhow!("keygen"))?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("key"))?;
    let message = vec![7u8; 400];
    let signature = key.sign(&rng, &message).map_err(|_| anyhow!("sign"))?;
    let public =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key().as_ref().to_vec());
    let floor = median(
        (0..RUNS)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..PER_RUN {
                    let _ = std::hint::black_box(public.verify(&message, signature.as_ref()));
                    let _ = std::hint::black_box(key.sign(&rng, &message));
                }
                PER_RUN as f64 / start.elapsed().as_secs_f64()
            })
            .collect(),
    );

    let mut issue_runs = Vec::new();
    for _ in 0..RUNS {
        let start = Instant::now();
        for (csr, id) in csrs.iter().zip(&ids) {
            let svid = ca.issue(csr, id, Duration::hours(1), now)?;
            audit.record(&AuditEvent {
                time: now.unix_timestamp(),
                action: "issue".into(),
                caller: "bench".into(),
                identity: Some(id.to_string()),
                outcome: "issued".into(),
                reason: Some(svid.chain_pem()),
                serial: Some(svid.serial),
            })?;
        }
        issue_runs.push(PER_RUN as f64 / start.elapsed().as_secs_f64());
    }
    let issued = median(issue_runs);
    println!("one core, in process ({PER_RUN} CSRs per run, median of {RUNS} [min–max]):");
    println!(
        "  ECDSA verify + sign alone (floor)    {:>8.0} /s [{:.0}–{:.0}]",
        floor.0, floor.1, floor.2
    );
    println!(
        "  CSR → verified, signed, persisted    {:>8.0} /s [{:.0}–{:.0}]",
        issued.0, issued.1, issued.2
    );
    println!(
        "  issuance reaches {:.0}% of the floor; {:.1}× SPIRE's default 500 SVIDs/s per caller (goal: ≥ 5,000/s)\n",
        100.0 * issued.0 / floor.0,
        issued.0 / 500.0
    );

    burst(dir.path(), ca)?;
    Ok(())
}

/// A burst of joins against the issuer on a single-threaded runtime.
fn burst(dir: &std::path::Path, ca: Ca) -> anyhow::Result<()> {
    let ca = Arc::new(ca);
    let bundle = Arc::new(ArcSwap::from_pointee(ca.bundle()));
    let tokens = Arc::new(LocalTokenStore::in_memory());
    let audit = Arc::new(JsonlAudit::open(&dir.join("audit.jsonl"))?);
    let service = IssuanceService::new(ca, bundle, tokens, audit, Duration::hours(1), None);
    let own = service.component_svid("issuer").map_err(|e| anyhow!(e))?;
    let tls = Arc::new(service.tls_config(ibac_identity::tls::SvidResolver::new(&own)?)?);
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    std_listener.set_nonblocking(true)?;
    let addr = std_listener.local_addr()?;
    let router = service.router();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async move {
            if let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) {
                ibac_identity::https::serve(listener, tls, router, std::future::pending()).await;
            }
        });
    });
    let web = WorkloadId::parse("web.bench").map_err(|e| anyhow!("{e}"))?;
    let requests: Vec<(String, String)> = (0..BURST)
        .map(|_| {
            let token = service
                .create_token(&web, Duration::minutes(10), "bench")
                .map_err(|e| anyhow!("{e}"))?;
            let (_, csr) = new_key_and_csr().map_err(|e| anyhow!("{e}"))?;
            Ok((token, pem::encode("CERTIFICATE REQUEST", &csr)))
        })
        .collect::<anyhow::Result<_>>()?;
    let client = IssuerClient::new(&format!("https://{addr}"))?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (latencies, elapsed) = rt.block_on(async move {
        let start = Instant::now();
        let tasks: Vec<_> = requests
            .into_iter()
            .map(|(token, csr)| {
                let client = client.clone();
                tokio::spawn(async move {
                    let begun = Instant::now();
                    client.join_csr(&token, &csr).await.map(|_| begun.elapsed())
                })
            })
            .collect();
        let mut latencies = Vec::with_capacity(BURST);
        for task in tasks {
            latencies.push(task.await.context("task")??);
        }
        Ok::<_, anyhow::Error>((latencies, start.elapsed()))
    })?;
    let mut ms: Vec<f64> = latencies
        .iter()
        .map(|d: &StdDuration| d.as_secs_f64() * 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    let pct = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    println!(
        "burst of {BURST} joins over HTTPS, issuer on one thread (each: TLS handshake, token, CSR, SVID, audit):"
    );
    println!(
        "  latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; all done in {:.2} s ({:.0} SVIDs/s)",
        pct(0.50),
        pct(0.99),
        ms[ms.len() - 1],
        elapsed.as_secs_f64(),
        BURST as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
