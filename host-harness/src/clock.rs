//! Wall-clock time in the units the state stores (Unix milliseconds). At the bottom of the
//! layers: anything may read the time, the clock reads nothing of ours.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}
