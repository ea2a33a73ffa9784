//! Wall-clock time in the units the state stores (Unix milliseconds). At the bottom of the
//! layers: anything may read the time, the clock reads nothing of ours.

use std::time::{SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The next UTC midnight after `now` (Unix ms): when HubSpot's daily budget is assumed to reset.
/// An instant outside the calendar's years (±9999) has no midnight to wait for: `now` itself.
pub fn next_utc_midnight_ms(now: i64) -> i64 {
    let next = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now) * 1_000_000)
        .ok()
        .and_then(|now| now.date().next_day())
        .map(|day| day.midnight().assume_utc());
    next.map_or(now, |midnight| {
        (midnight.unix_timestamp_nanos() / 1_000_000) as i64
    })
}

/// `ms` (Unix ms) as an RFC 3339 UTC time, for messages (`2026-12-01T00:00:00Z`); the number
/// itself when it is outside the calendar.
pub fn rfc3339(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daily_park_ends_at_the_next_midnight() {
        assert_eq!(next_utc_midnight_ms(86_400_000 + 5), 2 * 86_400_000);
    }

    #[test]
    fn midnight_itself_waits_a_whole_day_and_months_roll_over() {
        let ms = |text: &str| {
            let at = OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
            (at.unwrap().unix_timestamp_nanos() / 1_000_000) as i64
        };
        assert_eq!(
            next_utc_midnight_ms(ms("2026-03-01T00:00:00Z")),
            ms("2026-03-02T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight_ms(ms("2024-02-28T23:59:59.999Z")),
            ms("2024-02-29T00:00:00Z")
        );
        assert_eq!(
            next_utc_midnight_ms(ms("2025-12-31T12:00:00+02:00")),
            ms("2026-01-01T00:00:00Z")
        );
        assert_eq!(next_utc_midnight_ms(-1), 0);
    }
}
