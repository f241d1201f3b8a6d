//! Waiting until the proxies enforce a change, as `kubectl rollout status`
//! waits for pods: every command that changes policy ends by saying how many
//! proxies enforce the new revision and naming each that does not.

use std::time::Duration;

use ibac_api::{Enforcement, Outcome, Rollout};
use ibac_control::client::ApiClient;

use crate::exit;

/// Flags of commands that change policy.
#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// How long to wait for every registered proxy to enforce the change
    #[arg(long, env = "IBAC_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Return once the control plane has the change, without waiting for proxies
    #[arg(long, env = "IBAC_NO_WAIT")]
    no_wait: bool,
}

/// Waits (unless told not to) and reports; returns the exit status.
pub async fn follow(client: &ApiClient, outcome: &Outcome, args: &WaitArgs, dry_run: bool) -> u8 {
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if dry_run || !outcome.changed() {
        return exit::OK;
    }
    if args.no_wait {
        eprintln!(
            "revision {} published; not waiting for proxies (`ibac get workloads` shows what each enforces)",
            outcome.revision
        );
        return exit::OK;
    }
    // The API answers a wait within a minute; longer waits are several.
    let deadline = std::time::Instant::now() + args.timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let path = format!(
            "/v1/rollout?revision={}&waitMs={}",
            outcome.revision,
            left.min(Duration::from_secs(20)).as_millis()
        );
        match client.get::<Rollout>(&path).await {
            Ok(rollout) => {
                if rollout.complete() || rollout.stuck() || left.is_zero() {
                    return report(&rollout, args.timeout);
                }
            }
            Err(e) => {
                eprintln!(
                    "error: revision {} was published, but whether proxies enforce it is unknown: {e}",
                    outcome.revision
                );
                return exit::NOT_ENFORCED;
            }
        }
    }
}

/// Prints what the rollout reached; returns the exit status.
pub fn report(rollout: &Rollout, timeout: Duration) -> u8 {
    let total = rollout.workloads.len();
    let missing: Vec<_> = rollout.missing().collect();
    if total == 0 {
        eprintln!(
            "revision {} published; no proxies are registered to enforce it",
            rollout.revision
        );
        return exit::OK;
    }
    if missing.is_empty() {
        eprintln!(
            "all {total} {} enforce revision {}",
            if total == 1 { "proxy" } else { "proxies" },
            rollout.revision
        );
        return exit::OK;
    }
    let stuck = missing
        .iter()
        .all(|w| matches!(w.enforcement, Enforcement::Failing { .. }));
    eprintln!(
        "error: {} of {total} proxies enforce revision {}{}; these do not:",
        total - missing.len(),
        rollout.revision,
        if stuck {
            String::new()
        } else {
            format!(" after {}", humantime::format_duration(timeout))
        }
    );
    for w in &missing {
        eprintln!(
            "  {}: {}",
            w.id,
            w.enforcement
                .describe(time::OffsetDateTime::now_utc().unix_timestamp())
        );
    }
    eprintln!(
        "the change is stored; until these follow, their old policy stays in force (`ibac get workloads`)"
    );
    exit::NOT_ENFORCED
}
