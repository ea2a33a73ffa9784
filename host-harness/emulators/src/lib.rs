//! Test doubles for lago-hubspot: the two APIs the sync talks to, served over HTTP on loopback.
//!
//! - [`hubspot`] is an in-memory HubSpot CRM, strict like the real one (status codes, error
//!   bodies, validation), and able to misbehave on demand (rate limits, 5xx, drops, 207s);
//! - [`lago`] is a small Lago REST API over fixtures, paginated as Lago paginates, for backfills.
//!
//! The tests use both; the `lago-hubspot` binary uses [`hubspot`] for its `demo` and `emulator`
//! commands when built with its (default) `emulators` feature. This crate depends on nothing of
//! `lago-hubspot`.

pub mod hubspot;
pub mod lago;
