//! lago-hubspot: runs the Lago → HubSpot sync component and executes the HubSpot request plans
//! it returns.
//!
//! - [`runtime`] loads the component (wasmtime) and calls its handlers in fresh sandboxes;
//! - [`hubspot_http`] is the one HTTP path to HubSpot, shared by plan steps and the guest's reads;
//! - [`executor`] runs a plan step by step, with [`retry`] deciding what to try again;
//! - [`store`] keeps connection settings, Lago id → HubSpot id mappings and the sync log (SQLite);
//! - [`sync`] ties them together per event; [`emulator`] is an in-memory HubSpot for tests and demos.

pub mod backfill;
pub mod config;
pub mod demo;
pub mod emulator;
pub mod executor;
pub mod hubspot_http;
pub mod lago_api;
pub mod lago_emulator;
pub mod metrics;
pub mod queue;
pub mod ratelimit;
pub mod report;
pub mod retry;
pub mod runtime;
pub mod signature;
pub mod store;
pub mod sync;
pub mod worker;

pub mod server;

/// Sample Lago webhooks bundled with the binary.
pub mod samples {
    include!(concat!(env!("OUT_DIR"), "/samples.rs"));
}
