//! Exit statuses, distinct so that scripts and CI can branch on them.

use std::process::ExitCode;

/// Success, or `decide`: allowed.
pub const OK: u8 = 0;
/// Input errors: a document is invalid or a file unreadable.
pub const INPUT: u8 = 1;
/// Usage errors (bad flags), as clap reports them.
pub const USAGE: u8 = 2;
/// `decide`: would be blocked (the server is in shadow mode).
pub const WOULD_BE_BLOCKED: u8 = 3;
/// `decide`: blocked.
pub const BLOCKED: u8 = 4;
/// `diff`: a discovered call is not declared (or, with `--strict`, a
/// declared intent went unused).
pub const DIFF: u8 = 5;
/// `apply`, `delete`, `protect`, `unprotect`, `mode`: the change is stored,
/// but some registered proxy did not enforce it within `--timeout` (it is
/// behind, cannot load it, or is silent); the command names each.
pub const NOT_ENFORCED: u8 = 6;

/// `render`: something could not be resolved (a Service or workload missing
/// from the cluster facts, a server config not given) and was skipped, with
/// its place on stderr; everything else was rendered.
pub const SKIPPED: u8 = 7;

/// The process exit code for a status.
pub fn code(status: u8) -> ExitCode {
    ExitCode::from(status)
}
