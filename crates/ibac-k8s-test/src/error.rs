//! Why the test control plane could not be started or used.

use std::path::PathBuf;
use std::time::Duration;

/// Why the test control plane could not be started or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `scripts/k8s-env` has not built the binaries yet.
    #[error("the kubernetes test binaries are not built ({reason}): run `scripts/k8s-env` first")]
    NotBuilt {
        /// What was looked for.
        reason: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The test certificates could not be generated.
    #[error("cannot generate the test certificates: {0}")]
    Certificate(#[from] rcgen::Error),
    /// A component stopped before it was ready.
    #[error("{component} exited ({status}) before it was ready; the end of {}:\n{tail}", log.display())]
    Exited {
        /// Which component.
        component: &'static str,
        /// How it exited.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of its log.
        tail: String,
    },
    /// A condition did not hold in time.
    #[error("{what}: not the case after {}s{context}", after.as_secs())]
    Timeout {
        /// The condition waited for.
        what: String,
        /// How long it was waited for.
        after: Duration,
        /// Where to look next (a log's last lines, the last error seen).
        context: String,
    },
    /// A kubectl or helm command failed.
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// How it exited.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// A shared control plane failed to start earlier in this test binary.
    #[error("the test control plane did not start: {0}")]
    Start(String),
}

impl Error {
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
