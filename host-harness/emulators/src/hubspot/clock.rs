//! Time handling without a date library: epoch milliseconds, ISO 8601 text and calendar dates.
//!
//! HubSpot speaks two time formats (ISO 8601 text and epoch milliseconds) and has the
//! "midnight UTC" rule for `date` properties, so the emulator needs exact civil-date arithmetic.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) const MILLIS_PER_DAY: i64 = 86_400_000;

/// Wall-clock time in epoch milliseconds.
pub(crate) fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis() as i64)
        .unwrap_or(0)
}

/// Hands out strictly increasing timestamps so that every write is ordered after the
/// previous one, even when two requests arrive within the same millisecond.
#[derive(Debug, Default)]
pub(crate) struct MonotonicClock {
    last_millis: i64,
}

impl MonotonicClock {
    pub(crate) fn tick(&mut self) -> i64 {
        let next = now_millis().max(self.last_millis + 1);
        self.last_millis = next;
        next
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date.
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    // Shift the year to start in March so the leap day is the last day of the year.
    let (year, month) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * month as i64 + 2) / 5 + day as i64 - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The calendar date (year, month, day) of a day count since 1970-01-01.
pub(crate) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap_year(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// `YYYY-MM-DD` for a day count.
pub(crate) fn format_date(days: i64) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `YYYY-MM-DDThh:mm:ss.sssZ`, the form HubSpot uses for `createdAt` and datetime values.
pub(crate) fn format_iso_millis(millis: i64) -> String {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    format!("{}T{}Z", format_date(days), format_time_of_day(millis))
}

/// `hh:mm:ss.sss` of the UTC time of day of an epoch-millisecond instant.
pub(crate) fn format_time_of_day(millis: i64) -> String {
    let within_day = millis.rem_euclid(MILLIS_PER_DAY);
    let hours = within_day / 3_600_000;
    let minutes = within_day / 60_000 % 60;
    let seconds = within_day / 1000 % 60;
    let fraction = within_day % 1000;
    format!("{hours:02}:{minutes:02}:{seconds:02}.{fraction:03}")
}

fn parse_digits(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|byte| byte.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Parses a strict `YYYY-MM-DD` calendar date into a day count; rejects impossible dates.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return None;
    }
    let year = i64::from(parse_digits(&text[0..4])?);
    let month = parse_digits(&text[5..7])?;
    let day = parse_digits(&text[8..10])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Parses ISO 8601 date-times such as `2024-05-01T10:20:30Z`, `2024-05-01T10:20:30.123Z`
/// or `2024-05-01T10:20:30+02:00` into epoch milliseconds.
pub(crate) fn parse_iso_datetime(text: &str) -> Option<i64> {
    if text.len() < 20 || text.as_bytes()[10] != b'T' {
        return None;
    }
    let days = parse_date(&text[..10])?;
    let rest = &text[11..];
    let bytes = rest.as_bytes();
    if bytes.len() < 9 || bytes[2] != b':' || bytes[5] != b':' {
        return None;
    }
    let hours = parse_digits(&rest[0..2])?;
    let minutes = parse_digits(&rest[3..5])?;
    let seconds = parse_digits(&rest[6..8])?;
    if hours > 23 || minutes > 59 || seconds > 59 {
        return None;
    }
    let mut rest = &rest[8..];
    let mut fraction_millis = 0i64;
    if let Some(after_dot) = rest.strip_prefix('.') {
        let digits_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
        if digits_len == 0 {
            return None;
        }
        let digits = &after_dot[..digits_len];
        // Keep millisecond precision; further digits are truncated.
        let padded = format!("{digits:0<3}");
        fraction_millis = i64::from(parse_digits(&padded[..3])?);
        rest = &after_dot[digits_len..];
    }
    let offset_minutes = match rest {
        "Z" | "z" => 0i64,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let offset = &rest[1..];
            if offset.len() != 5 || offset.as_bytes()[2] != b':' {
                return None;
            }
            let offset_hours = i64::from(parse_digits(&offset[0..2])?);
            let offset_mins = i64::from(parse_digits(&offset[3..5])?);
            sign * (offset_hours * 60 + offset_mins)
        }
    };
    let local_millis = days * MILLIS_PER_DAY
        + i64::from(hours) * 3_600_000
        + i64::from(minutes) * 60_000
        + i64::from(seconds) * 1000
        + fraction_millis;
    Some(local_millis - offset_minutes * 60_000)
}

/// Parses an epoch-milliseconds value written as an integer (optionally negative).
pub(crate) fn parse_epoch_millis(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        // The reference's example: 2015-05-01 is 1430438400000 ms.
        assert_eq!(
            days_from_civil(2015, 5, 1) * MILLIS_PER_DAY,
            1_430_438_400_000
        );
        for days in [-800_000, -1, 0, 59, 10_000, 19_782, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(
            format_iso_millis(1_430_438_400_123),
            "2015-05-01T00:00:00.123Z"
        );
    }

    #[test]
    fn date_parsing_is_strict() {
        assert!(parse_date("2024-02-29").is_some());
        assert!(parse_date("2023-02-29").is_none());
        assert!(parse_date("2024-13-01").is_none());
        assert!(parse_date("2024/01/01").is_none());
        assert!(parse_date("24-01-01").is_none());
    }

    #[test]
    fn iso_datetimes_with_offsets() {
        assert_eq!(
            parse_iso_datetime("2015-05-01T00:00:00Z"),
            Some(1_430_438_400_000)
        );
        assert_eq!(
            parse_iso_datetime("2015-05-01T02:00:00.5+02:00"),
            Some(1_430_438_400_500)
        );
        assert!(parse_iso_datetime("2015-05-01 00:00:00Z").is_none());
    }
}
