//! A sync component that misbehaves on demand, for the tests of the host's bounds (deadline,
//! memory cap, traps). It plans exactly like the real component, with the guest crate's mapping
//! and its very component glue (`guest/src/wasm.rs`, compiled into this crate, so it follows the
//! WIT world wherever it goes), except for an event whose payload holds one of the markers below
//! (in a customer's `external_id`, say): then its handler misbehaves before planning.
//!
//! Lives one directory below the checkout's root, as `guest/` does, because the glue finds the
//! world at `../wit`.

// The glue names `crate::plan`, `crate::HubspotReader`, `crate::deploy`…: the guest crate's,
// except the handlers defined below.
pub use lago_hubspot_guest::*;

#[cfg(target_arch = "wasm32")]
#[path = "../../guest/src/wasm.rs"]
mod wasm;

/// Computes forever (until the host's deadline stops it).
pub const LOOP: &str = "misbehave:loop";
/// Allocates 1 MiB after 1 MiB, holding on to all of it (until the host's memory cap stops it).
pub const GROW: &str = "misbehave:grow";
/// Panics (a trap, with the message on the guest's stderr).
pub const PANIC: &str = "misbehave:panic";

fn misbehave_if_asked(payload: &str) {
    if payload.contains(LOOP) {
        let mut turns = 0u64;
        loop {
            turns = std::hint::black_box(turns.wrapping_add(1));
        }
    }
    if payload.contains(GROW) {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            held.push(vec![1; 1 << 20]);
            std::hint::black_box(&held);
        }
    }
    if payload.contains(PANIC) {
        panic!("the payload asked this component to panic");
    }
}

/// `customer.*`, misbehaving when asked.
pub fn on_customer(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    misbehave_if_asked(payload);
    lago_hubspot_guest::on_customer(conn, known, payload)
}

/// `subscription.*`, misbehaving when asked.
pub fn on_subscription(
    conn: &Connection,
    known: &[KnownId],
    payload: &str,
) -> Result<Plan, PlanError> {
    misbehave_if_asked(payload);
    lago_hubspot_guest::on_subscription(conn, known, payload)
}

/// `invoice.*`, misbehaving when asked.
pub fn on_invoice(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    misbehave_if_asked(payload);
    lago_hubspot_guest::on_invoice(conn, known, payload)
}

/// `credit_note.*`, misbehaving when asked.
pub fn on_credit_note(
    conn: &Connection,
    known: &[KnownId],
    payload: &str,
) -> Result<Plan, PlanError> {
    misbehave_if_asked(payload);
    lago_hubspot_guest::on_credit_note(conn, known, payload)
}
