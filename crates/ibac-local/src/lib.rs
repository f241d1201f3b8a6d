//! What `ibac up` runs on one machine besides the control plane's state:
//! workloads behind their own `ibac proxy`, supervised and restarted
//! ([`supervise`]), the topology files that describe them ([`topology`]),
//! and the demo shop ([`demo`]). Process management lives here, apart from
//! the control plane, which only keeps and serves state.

pub mod demo;
pub mod supervise;
pub mod topology;
