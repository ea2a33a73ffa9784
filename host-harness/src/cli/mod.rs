//! Subcommands for running the service and operating its queue.

pub mod connections;
pub mod link;
pub mod operate;
pub mod serve;
