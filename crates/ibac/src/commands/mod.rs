//! One module per subcommand.

pub mod agent;
pub mod ca;
pub mod completions;
pub mod convert;
pub mod decide;
pub mod policy;
pub mod proxy;
pub mod render;
pub mod validate;
