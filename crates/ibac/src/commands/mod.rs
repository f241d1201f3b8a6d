//! One module per subcommand.

pub mod agent;
pub mod ca;
pub mod completions;
pub mod convert;
pub mod decide;
pub mod demo_service;
pub mod mapper;
pub mod operator;
pub mod policy;
pub mod proxy;
pub mod remote;
pub mod render;
pub mod rollout;
pub mod up;
pub mod validate;
