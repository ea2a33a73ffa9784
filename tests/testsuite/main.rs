//! The end-to-end tests, as modules of one test binary (cargo's `tests/testsuite` shape): wasmtime
//! and the harness are linked once, and the component is compiled once per run
//! ([`support::plugin`]). Each module is one area; fixtures are in `tests/fixtures/`.
//!
//!     cargo test -p lago-hubspot --test testsuite                # all of them
//!     cargo test -p lago-hubspot --test testsuite -- backfill::  # one area

mod support;

mod backfill;
mod batch;
mod bounded;
mod cli;
mod connections;
mod crash;
mod credit_notes;
mod currencies;
mod end_to_end;
mod faults;
mod first_hour;
mod layers;
mod links;
mod lived_in;
mod postgres;
mod readme;
mod second_host;
mod security;
mod serve;
mod serve_logs;
mod state_upgrade;
mod webhook_types;
