//! lago-hubspot: runs the Lago → HubSpot sync component and executes the HubSpot request plans
//! it returns.
//!
//! - [`runtime`] loads the component (wasmtime) and calls its handlers in fresh sandboxes, each
//!   call bounded by a deadline and a memory cap;
//! - [`hubspot_http`] is the one HTTP path to HubSpot, shared by plan steps and the guest's reads,
//!   paced per portal by [`ratelimit`];
//! - [`executor`] runs a plan step by step, with [`retry`] deciding what to try again;
//! - [`store`] keeps connection settings, Lago id → HubSpot id mappings and the sync log (SQLite),
//!   [`queue`] the durable events of the real-time service, and [`links`] the customers linked
//!   to a HubSpot record by hand;
//! - [`sync`] ties them together per event; [`server`] (webhooks, [`signature`], [`metrics`]) and
//!   [`worker`] make up `serve`; [`backfill`] syncs history from Lago's API ([`lago_api`]);
//! - [`wit_json`] writes a handler call's WIT values as the canonical JSON any host can print;
//! - [`auth`] gives each request its bearer token (static, or OAuth refreshed before expiry), and
//!   [`connections`] keeps any number of named connections, connects them and routes events;
//! - `demo` (with the default `emulators` feature) runs the bundled samples against the
//!   in-memory HubSpot of the `lago-hubspot-emulators` crate, which also holds the Lago API fake
//!   the tests use; without the feature this library has no test doubles in it.

pub mod arrivals;
pub mod auth;
pub mod backfill;
pub mod batch;
pub mod clock;
pub mod config;
pub mod connections;
pub mod db;
#[cfg(feature = "emulators")]
pub mod demo;
pub mod executor;
pub mod hubspot_http;
pub mod json_stream;
pub mod lago_api;
pub mod links;
pub mod lookup;
pub mod metrics;
pub mod outcome;
pub mod pipeline;
pub mod portal;
pub mod queue;
pub mod ratelimit;
pub mod report;
pub mod response;
pub mod retry;
pub mod runtime;
pub mod secret;
pub mod server;
pub mod shared_budget;
pub mod signature;
pub mod state_copy;
pub mod store;
pub mod sync;
pub mod wit_json;
pub mod worker;

/// Sample Lago webhooks bundled with the binary.
pub mod samples {
    include!(concat!(env!("OUT_DIR"), "/samples.rs"));
}
