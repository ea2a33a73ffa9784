//! Value formats HubSpot expects, from what Lago sends.

use crate::prelude::*;

use alloc::borrow::Cow;

use crate::plan::Connection;

/// `YYYY-MM-DD` (the UTC day) from a Lago date (`2026-03-01`) or datetime
/// (`2026-03-01T10:00:00Z`, `…T10:00:00.123Z`, `…T10:00:00+02:00`; no offset means UTC, as Lago's
/// datetimes are). HubSpot `date` properties reject anything but a bare day, so `None` means
/// "not a date". Read by hand after RFC 3339 §5.6 (no date library in the component): every field
/// is checked (a day that does not exist, hour 24, a leap second anywhere but the last second of
/// a UTC month are refused).
pub fn date(text: &str) -> Option<String> {
    let text = rfc3339(text.trim())?;
    let b = text.as_bytes();
    let digits = |from: usize, len: usize| -> Option<u32> {
        let field = b.get(from..from + len)?;
        field.iter().try_fold(0u32, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
        })
    };
    let literal = |at: usize, byte: u8| b.get(at) == Some(&byte);
    let (year, month, day) = (digits(0, 4)?, digits(5, 2)?, digits(8, 2)?);
    let (hour, minute, second) = (digits(11, 2)?, digits(14, 2)?, digits(17, 2)?);
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if !separators.iter().all(|&(at, byte)| literal(at, byte)) {
        return None;
    }
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    // An optional fraction of a second (one digit at least), then `Z` or `±hh:mm`.
    let mut at = 19;
    if literal(at, b'.') {
        let count = b[at + 1..]
            .iter()
            .take_while(|d| d.is_ascii_digit())
            .count();
        if count == 0 {
            return None;
        }
        at += 1 + count;
    }
    let offset_minutes = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (hours, minutes) = (digits(at + 1, 2)?, digits(at + 4, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            let minutes = (hours * 60 + minutes) as i32;
            if *sign == b'-' { -minutes } else { minutes }
        }
        _ => return None,
    };
    // The UTC day: the local time less the offset may fall on the day before or after.
    let utc_minutes = (hour * 60 + minute) as i32 - offset_minutes;
    let (mut year, mut month, mut day) = (year, month, day);
    if utc_minutes < 0 {
        (year, month, day) = day_before(year, month, day)?;
    } else if utc_minutes >= 24 * 60 {
        (year, month, day) = day_after(year, month, day)?;
    }
    // A leap second is the last second of a UTC month.
    if second == 60
        && (utc_minutes.rem_euclid(24 * 60) != 24 * 60 - 1 || day != days_in_month(year, month))
    {
        return None;
    }
    Some(format!("{year:04}-{month:02}-{day:02}"))
}

/// Days in `month` (1–12) of `year`, Gregorian.
fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn day_before(year: u32, month: u32, day: u32) -> Option<(u32, u32, u32)> {
    Some(match (month, day) {
        (1, 1) => (year.checked_sub(1)?, 12, 31),
        (_, 1) => (year, month - 1, days_in_month(year, month - 1)),
        _ => (year, month, day - 1),
    })
}

fn day_after(year: u32, month: u32, day: u32) -> Option<(u32, u32, u32)> {
    Some(if day < days_in_month(year, month) {
        (year, month, day + 1)
    } else if month < 12 {
        (year, month + 1, 1)
    } else if year < 9999 {
        (year + 1, 1, 1)
    } else {
        return None;
    })
}

/// A Lago date or datetime as RFC 3339 has it: a bare date is that day's midnight, `Z` is added
/// when there is no offset (Lago means UTC), and the colon put into an offset written `±hhmm`.
fn rfc3339(text: &str) -> Option<Cow<'_, str>> {
    match text.as_bytes().get(10) {
        None if text.len() == 10 => return Some(format!("{text}T00:00:00Z").into()),
        Some(b'T' | b't' | b' ') => {}
        _ => return None,
    }
    // The offset follows the seconds (`…T10:00:00`) and their optional fraction.
    let after_seconds = text.get(19..)?;
    let fraction = after_seconds.strip_prefix('.').map_or(0, |digits| {
        1 + digits.bytes().take_while(u8::is_ascii_digit).count()
    });
    let (head, offset) = text.split_at(19 + fraction);
    let basic = offset.len() == 5
        && offset.starts_with(['+', '-'])
        && offset[1..].bytes().all(|b| b.is_ascii_digit());
    Some(if offset.is_empty() {
        format!("{head}Z").into()
    } else if basic {
        format!("{head}{}:{}", &offset[..3], &offset[3..]).into()
    } else {
        text.into()
    })
}

/// An amount in subunits (Lago's `*_amount_cents`) as a major-unit decimal string, given how many
/// subunits make a unit (see [`crate::currency::subunit_to_unit`]): 12345 at 100 → `123.45`,
/// 1951 at 1 → `1951`, 12345 at 1000 → `12.345`, -5 at 100 → `-0.05`. Integer arithmetic only, so
/// the decimals are exact. `subunit_to_unit` is a power of ten, as it is for every Lago currency.
pub fn major_units(minor: i64, subunit_to_unit: u32) -> String {
    debug_assert!(
        subunit_to_unit > 0 && 10u64.pow(subunit_to_unit.ilog10()) == u64::from(subunit_to_unit),
        "{subunit_to_unit} is not a power of ten"
    );
    let sign = if minor < 0 { "-" } else { "" };
    let abs = minor.unsigned_abs();
    let unit = u64::from(subunit_to_unit.max(1));
    let decimals = unit.ilog10() as usize;
    if decimals == 0 {
        return format!("{sign}{abs}");
    }
    format!("{sign}{}.{:0decimals$}", abs / unit, abs % unit)
}

/// The first address of Lago's comma-separated `email` field.
pub fn first_email(list: &str) -> Option<String> {
    list.split(',')
        .map(str::trim)
        .find(|e| !e.is_empty())
        .map(str::to_owned)
}

/// Host of a URL, its ASCII letters lowercased (other characters are kept as written: a
/// Unicode-aware lowercase would bring Unicode's case tables into the component, 15 KB); a
/// missing scheme is assumed (`acme.com/x` → `acme.com`).
pub fn host(url: &str) -> Option<String> {
    let url = url.trim();
    let after_scheme = match url.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        _ => url.trim_start_matches("//"),
    };
    let authority = after_scheme
        .split(['/', '?', '#'])
        .next()
        .unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host_port.find(']') {
        Some(end) if host_port.starts_with('[') => &host_port[..=end],
        _ => host_port.split(':').next().unwrap_or_default(),
    };
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| host.to_ascii_lowercase())
}

fn is_scheme(text: &str) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
}

/// `{lago_app_url}/{organization_slug}/customer/{customer_id}`, the customer page in Lago's UI.
pub fn customer_link(conn: &Connection, customer_id: &str) -> Option<String> {
    let app = conn.lago_app_url.trim().trim_end_matches('/');
    let slug = conn.organization_slug.trim().trim_matches('/');
    (!app.is_empty() && !slug.is_empty() && !customer_id.is_empty())
        .then(|| format!("{app}/{slug}/customer/{customer_id}"))
}

/// A page under the customer's in Lago's UI: `…/customer/{id}/{kind}/{record_id}/overview`.
pub fn customer_record_link(
    conn: &Connection,
    customer_id: &str,
    kind: &str,
    record_id: &str,
) -> Option<String> {
    let customer = customer_link(conn, customer_id)?;
    (!record_id.is_empty()).then(|| format!("{customer}/{kind}/{record_id}/overview"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::conn;

    #[test]
    fn dates_are_utc_days() {
        assert_eq!(
            date("2026-03-01T23:59:59.999Z").as_deref(),
            Some("2026-03-01")
        );
        assert_eq!(date("2026-03-01T10:00:00Z").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026-03-01").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026-03-01T10:00:00").as_deref(), Some("2026-03-01"));
        // Offsets move the day: 01:00 in Paris is the previous day in UTC, 20:00 in New York the next.
        assert_eq!(
            date("2026-03-01T01:00:00+02:00").as_deref(),
            Some("2026-02-28")
        );
        assert_eq!(
            date("2024-02-28T20:00:00.123-05:00").as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(
            date("2025-12-31T22:00:00-0400").as_deref(),
            Some("2026-01-01")
        );
    }

    #[test]
    fn non_dates_are_refused() {
        for bad in [
            "",
            "2026",
            "2026-13-01",
            "2026-02-30",
            "01/03/2026",
            "2026-03-01Tnoon",
            "２０２６-03-01",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
    }

    #[test]
    fn impossible_times_are_refused_and_a_leap_second_ends_a_utc_month() {
        for bad in [
            "2026-03-01T24:00:00Z",
            "2026-03-01T10:60:00Z",
            "2026-03-01T10:00:61Z",
            "2026-03-01T10:00:00+24:00",
            "2026-03-01T10:00:00+02:60",
            "2026-03-01T10:00:00.Z",
            "2026-03-01T10:00:00Zx",
            "2026-06-15T23:59:60Z",
        ] {
            assert_eq!(date(bad), None, "{bad}");
        }
        assert_eq!(date("2026-06-30T23:59:60Z").as_deref(), Some("2026-06-30"));
        assert_eq!(
            date("2026-07-01T01:59:60+02:00").as_deref(),
            Some("2026-06-30")
        );
        assert_eq!(
            date("2026-03-01T10:00:00.123456789012Z").as_deref(),
            Some("2026-03-01")
        );
    }

    #[test]
    fn date_and_time_are_separated_as_rfc_3339_allows() {
        assert_eq!(date("2026-03-01 10:00:00Z").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026-03-01t10:00:00z").as_deref(), Some("2026-03-01"));
        assert_eq!(date("2026-03-01X10:00:00Z"), None);
        assert_eq!(date("2026-03-01T10:00:00+2:00"), None);
        assert_eq!(date("2026-02-29T10:00:00Z"), None);
    }

    #[test]
    fn amounts_divide_by_subunit_to_unit() {
        assert_eq!(major_units(1951, 1), "1951");
        assert_eq!(major_units(250_000, 1), "250000");
        assert_eq!(major_units(12345, 100), "123.45");
        assert_eq!(major_units(5, 100), "0.05");
        assert_eq!(major_units(12345, 1000), "12.345");
        assert_eq!(major_units(7, 1000), "0.007");
        assert_eq!(major_units(12345, 10000), "1.2345");
        assert_eq!(major_units(-5, 100), "-0.05");
        assert_eq!(major_units(-1200, 1), "-1200");
        assert_eq!(major_units(-12345, 10000), "-1.2345");
        assert_eq!(major_units(0, 100), "0.00");
        assert_eq!(major_units(0, 1), "0");
        assert_eq!(major_units(i64::MIN, 100), "-92233720368547758.08");
        assert_eq!(major_units(i64::MIN, 1), "-9223372036854775808");
        assert_eq!(major_units(i64::MAX, 10000), "922337203685477.5807");
    }

    #[test]
    fn first_email_of_a_list() {
        assert_eq!(
            first_email(" billing@acme.test , ceo@acme.test").as_deref(),
            Some("billing@acme.test")
        );
        assert_eq!(first_email(",, a@b.test").as_deref(), Some("a@b.test"));
        assert_eq!(first_email(" , "), None);
    }

    #[test]
    fn host_of_a_url() {
        assert_eq!(
            host("https://www.Acme.test/pricing?x=1").as_deref(),
            Some("www.acme.test")
        );
        assert_eq!(host("acme.test").as_deref(), Some("acme.test"));
        assert_eq!(host("acme.test:8443/path").as_deref(), Some("acme.test"));
        assert_eq!(
            host("http://user:pw@shop.acme.test:80").as_deref(),
            Some("shop.acme.test")
        );
        assert_eq!(
            host("acme.test/r?next=http://evil.test").as_deref(),
            Some("acme.test")
        );
        assert_eq!(host("http://[::1]:80/").as_deref(), Some("[::1]"));
        assert_eq!(host("  "), None);
        assert_eq!(host("https://"), None);
    }

    #[test]
    fn lago_links_trim_the_trailing_slash() {
        let mut c = conn();
        c.lago_app_url = "https://app.lago.test/".into();
        assert_eq!(
            customer_link(&c, "cus-1").as_deref(),
            Some("https://app.lago.test/acme-org/customer/cus-1")
        );
        assert_eq!(
            customer_record_link(&c, "cus-1", "invoice", "inv-1").as_deref(),
            Some("https://app.lago.test/acme-org/customer/cus-1/invoice/inv-1/overview")
        );
        c.lago_app_url.clear();
        assert_eq!(customer_link(&c, "cus-1"), None);
    }
}
