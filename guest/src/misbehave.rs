//! Test-only (the `misbehave` feature, never shipped): handlers that misbehave when the payload
//! holds one of the markers below (in a customer's `external_id`, say), before planning as usual.
//! The host's tests of its bounds (deadline, memory cap, traps) load this build.

use crate::prelude::*;

/// Computes forever (until the host's deadline stops it).
pub const LOOP: &str = "misbehave:loop";
/// Allocates 1 MiB after 1 MiB, holding on to all of it (until the host's memory cap stops it).
pub const GROW: &str = "misbehave:grow";
/// Panics (a trap, with the message on the guest's stderr).
pub const PANIC: &str = "misbehave:panic";

/// Misbehaves as `payload` asks, or returns.
pub fn if_asked(payload: &str) {
    if payload.contains(LOOP) {
        let mut turns = 0u64;
        loop {
            turns = core::hint::black_box(turns.wrapping_add(1));
        }
    }
    if payload.contains(GROW) {
        let mut held: Vec<Vec<u8>> = Vec::new();
        loop {
            held.push(vec![1; 1 << 20]);
            core::hint::black_box(&held);
        }
    }
    if payload.contains(PANIC) {
        panic!("the payload asked this component to panic");
    }
}
