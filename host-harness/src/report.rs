//! Plain-text tables for people reading a terminal.

/// Renders rows under headers with columns padded to their widest cell.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        padded.join("  ").trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    out += &line(
        widths
            .iter()
            .map(|w| "─".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    );
    for row in rows {
        out += &line(row.iter().map(String::as_str).collect());
    }
    out
}

/// An amount as HubSpot holds it (`118.8`), shown with its currency's decimals (`118.80`; a
/// currency without subunits, like JPY or HUF, keeps none). Left as it is when the currency is
/// unknown or the amount is not a plain decimal.
pub fn amount(amount: &str, currency: &str) -> String {
    let Some(unit) = lago_hubspot_guest::currency::subunit_to_unit(currency) else {
        return amount.to_owned();
    };
    let decimals = unit.checked_ilog10().unwrap_or(0) as usize;
    let (whole, fraction) = amount.split_once('.').unwrap_or((amount, ""));
    let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
    let whole_digits = whole.strip_prefix('-').unwrap_or(whole);
    if whole_digits.is_empty() || !digits(whole_digits) || !digits(fraction) {
        return amount.to_owned();
    }
    if fraction.len() > decimals {
        return amount.to_owned();
    }
    if decimals == 0 {
        return whole.to_owned();
    }
    format!("{whole}.{fraction:0<decimals$}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn amounts_have_their_currencys_decimals() {
        use super::amount;
        assert_eq!(amount("118.8", "EUR"), "118.80");
        assert_eq!(amount("118", "USD"), "118.00");
        assert_eq!(amount("-5.5", "USD"), "-5.50");
        assert_eq!(amount("1951", "HUF"), "1951");
        assert_eq!(amount("12.345", "KWD"), "12.345");
        assert_eq!(amount("1.2", "KWD"), "1.200");
        assert_eq!(amount("", "EUR"), "");
        assert_eq!(amount("118.8", "XXX"), "118.8");
    }

    #[test]
    fn columns_line_up() {
        let out = super::table(
            &["id", "name"],
            &[
                vec!["1".into(), "Acme".into()],
                vec!["22".into(), "B".into()],
            ],
        );
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "id  name");
        assert_eq!(lines[2], "1   Acme");
        assert_eq!(lines[3], "22  B");
    }
}
