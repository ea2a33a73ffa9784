//! Value formats HubSpot expects, from what Lago sends.

use crate::plan::Connection;

/// `YYYY-MM-DD` (the UTC day) from a Lago date (`2026-03-01`) or datetime
/// (`2026-03-01T10:00:00Z`, `…T10:00:00.123Z`, `…T10:00:00+02:00`). HubSpot `date` properties
/// reject anything but a bare day, so `None` means "not a date".
pub fn date(text: &str) -> Option<String> {
    let text = text.trim();
    let (year, month, day) = parse_day(text.get(..10)?)?;
    let rest = text.get(10..)?;
    let days = days_from_civil(year, month, day);
    let days = if rest.is_empty() {
        days
    } else {
        let time = rest.strip_prefix(['T', 't', ' '])?;
        days + utc_day_shift(time)?
    };
    let (year, month, day) = civil_from_days(days);
    Some(format!("{year:04}-{month:02}-{day:02}"))
}

fn parse_day(text: &str) -> Option<(i64, i64, i64)> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = digits(&text[..4])?;
    let month = digits(&text[5..7])?;
    let day = digits(&text[8..10])?;
    ((1..=12).contains(&month) && (1..=days_in_month(year, month)).contains(&day))
        .then_some((year, month, day))
}

/// Days to add to the local date to get the UTC date, for a time like `23:30:00.5-05:00`.
fn utc_day_shift(time: &str) -> Option<i64> {
    let hours = digits(time.get(..2)?)?;
    let minutes = digits(time.get(3..5)?)?;
    if time.as_bytes().get(2) != Some(&b':') || hours > 23 || minutes > 59 {
        return None;
    }
    // The offset starts at the first sign after the clock (a date-time has no other signs there).
    let offset_minutes = if time.ends_with(['Z', 'z']) {
        0
    } else {
        match time.get(5..)?.find(['+', '-']) {
            None => 0, // no offset: Lago's datetimes are UTC
            Some(at) => {
                let offset = &time[5 + at..];
                let sign = if offset.starts_with('-') { -1 } else { 1 };
                let clock: String = offset[1..].chars().filter(|c| *c != ':').collect();
                let (h, m) = (digits(clock.get(..2)?)?, digits(clock.get(2..4)?)?);
                sign * (h * 60 + m)
            }
        }
    };
    Some((hours * 60 + minutes - offset_minutes).div_euclid(24 * 60))
}

fn digits(text: &str) -> Option<i64> {
    text.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| text.parse().ok())?
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil-calendar algorithms: days since 1970-01-01 and back.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
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

/// Host of a URL, lowercased; a missing scheme is assumed (`acme.com/x` → `acme.com`).
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
    (!host.is_empty() && !host.contains(char::is_whitespace)).then(|| host.to_lowercase())
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
