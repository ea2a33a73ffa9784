//! The currencies Lago accepts and the unit of their amounts.
//!
//! Lago sends every amount as an integer `*_amount_cents` in the subunits of the Ruby `money` gem
//! it uses, not in ISO 4217 minor units: the two disagree for HUF and MGA, whose Lago amounts are
//! whole units (`total_amount_cents: 1951` in HUF is 1951 Ft). Lago's own HubSpot sync divides by
//! the gem's `subunit_to_unit`, and so do we.

use crate::prelude::*;

use crate::format;
use crate::plan::PlanError;

/// `(ISO code, subunit_to_unit)` of the 142 currencies Lago accepts, sorted by code.
///
/// Source: lago-api `app/models/concerns/currencies.rb` (`ACCEPTED_CURRENCIES`) for the codes, and
/// the money gem 7.0.2 `config/currency_iso.json` (the version lago-api pins) for the divisors.
/// HUF and MGA are 1 there although ISO 4217 gives them 2 decimals. HRK and MRO are retired
/// currencies Lago still accepts but money 7.0.2 no longer knows: they get ISO 4217's 100.
#[rustfmt::skip]
static CURRENCIES: [(&str, u32); 142] = [
    ("AED", 100),  ("AFN", 100),  ("ALL", 100),  ("AMD", 100),  ("ANG", 100),  ("AOA", 100),
    ("ARS", 100),  ("AUD", 100),  ("AWG", 100),  ("AZN", 100),  ("BAM", 100),  ("BBD", 100),
    ("BDT", 100),  ("BGN", 100),  ("BHD", 1000), ("BIF", 1),    ("BMD", 100),  ("BND", 100),
    ("BOB", 100),  ("BRL", 100),  ("BSD", 100),  ("BWP", 100),  ("BYN", 100),  ("BZD", 100),
    ("CAD", 100),  ("CDF", 100),  ("CHF", 100),  ("CLF", 10000), ("CLP", 1),    ("CNY", 100),
    ("COP", 100),  ("CRC", 100),  ("CVE", 100),  ("CZK", 100),  ("DJF", 1),    ("DKK", 100),
    ("DOP", 100),  ("DZD", 100),  ("EGP", 100),  ("ETB", 100),  ("EUR", 100),  ("FJD", 100),
    ("FKP", 100),  ("GBP", 100),  ("GEL", 100),  ("GHS", 100),  ("GIP", 100),  ("GMD", 100),
    ("GNF", 1),    ("GTQ", 100),  ("GYD", 100),  ("HKD", 100),  ("HNL", 100),  ("HRK", 100),
    ("HTG", 100),  ("HUF", 1),    ("IDR", 100),  ("ILS", 100),  ("INR", 100),  ("IRR", 100),
    ("ISK", 1),    ("JMD", 100),  ("JOD", 1000), ("JPY", 1),    ("KES", 100),  ("KGS", 100),
    ("KHR", 100),  ("KMF", 1),    ("KRW", 1),    ("KWD", 1000), ("KYD", 100),  ("KZT", 100),
    ("LAK", 100),  ("LBP", 100),  ("LKR", 100),  ("LRD", 100),  ("LSL", 100),  ("MAD", 100),
    ("MDL", 100),  ("MGA", 1),    ("MKD", 100),  ("MMK", 100),  ("MNT", 100),  ("MOP", 100),
    ("MRO", 100),  ("MUR", 100),  ("MVR", 100),  ("MWK", 100),  ("MXN", 100),  ("MYR", 100),
    ("MZN", 100),  ("NAD", 100),  ("NGN", 100),  ("NIO", 100),  ("NOK", 100),  ("NPR", 100),
    ("NZD", 100),  ("PAB", 100),  ("PEN", 100),  ("PGK", 100),  ("PHP", 100),  ("PKR", 100),
    ("PLN", 100),  ("PYG", 1),    ("QAR", 100),  ("RON", 100),  ("RSD", 100),  ("RUB", 100),
    ("RWF", 1),    ("SAR", 100),  ("SBD", 100),  ("SCR", 100),  ("SEK", 100),  ("SGD", 100),
    ("SHP", 100),  ("SLL", 100),  ("SOS", 100),  ("SRD", 100),  ("STD", 100),  ("SZL", 100),
    ("THB", 100),  ("TJS", 100),  ("TOP", 100),  ("TRY", 100),  ("TTD", 100),  ("TWD", 100),
    ("TZS", 100),  ("UAH", 100),  ("UGX", 1),    ("USD", 100),  ("UYU", 100),  ("UZS", 100),
    ("VND", 1),    ("VUV", 1),    ("WST", 100),  ("XAF", 1),    ("XCD", 100),  ("XOF", 1),
    ("XPF", 1),    ("YER", 100),  ("ZAR", 100),  ("ZMW", 100),
];

/// How many `*_amount_cents` make one unit of `code`: Lago's `*_amount_cents` are subunits;
/// divide by this to get major units (100 for EUR, 1 for JPY and HUF, 1000 for KWD, 10000 for
/// CLF). `code` is an ISO 4217 code as Lago sends it (upper case; surrounding whitespace and lower
/// case are tolerated). `None` for a code that is not one of the currencies Lago accepts.
pub fn subunit_to_unit(code: &str) -> Option<u32> {
    let code = code.trim().to_ascii_uppercase();
    CURRENCIES
        .binary_search_by(|(known, _)| (*known).cmp(code.as_str()))
        .ok()
        .map(|at| CURRENCIES[at].1)
}

/// How many currencies Lago accepts (the size of the table).
pub const ACCEPTED: usize = CURRENCIES.len();

/// A Lago amount in `currency` as the major-unit decimal HubSpot stores (`12345` EUR → `123.45`,
/// `1951` HUF → `1951`). `None` when there is no amount, or no currency Lago accepts to read it in
/// (check the currency up front with [`require`] so that case fails loudly instead).
pub fn amount(cents: Option<i64>, currency: Option<&str>) -> Option<String> {
    Some(format::major_units(cents?, subunit_to_unit(currency?)?))
}

/// The divisor of the currency a Lago object's amounts are in, or why they cannot be converted:
/// `MissingField` when `code` is null or empty, `MalformedPayload` naming the code when it is not
/// one of the currencies Lago accepts. `what` names the field as in Lago's payload
/// (`invoice.currency`).
pub fn require(code: Option<&str>, what: &str) -> Result<u32, PlanError> {
    let code = code.map(str::trim).unwrap_or_default();
    if code.is_empty() {
        return Err(PlanError::MissingField(format!(
            "{what} is missing or empty: amounts cannot be converted without their currency"
        )));
    }
    subunit_to_unit(code).ok_or_else(|| {
        PlanError::MalformedPayload(format!(
            "{what} \"{code}\" is not one of the {ACCEPTED} currencies Lago accepts: \
             its amounts cannot be converted"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_has_every_lago_currency_once_in_order() {
        assert_eq!(CURRENCIES.len(), 142);
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
        for (code, divisor) in CURRENCIES {
            assert!(
                code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()),
                "{code}"
            );
            assert!([1, 100, 1000, 10000].contains(&divisor), "{code} {divisor}");
        }
        assert_eq!(CURRENCIES.first().unwrap().0, "AED");
        assert_eq!(CURRENCIES.last().unwrap().0, "ZMW");
        // Every code is found by the lookup, with its own divisor.
        for (code, divisor) in CURRENCIES {
            assert_eq!(subunit_to_unit(code), Some(divisor), "{code}");
        }
    }

    #[test]
    fn known_divisors() {
        for (code, divisor) in [
            ("EUR", 100),
            ("USD", 100),
            ("GBP", 100),
            ("HUF", 1), // ISO 4217: 2 decimals
            ("MGA", 1), // ISO 4217: 2 decimals
            ("JPY", 1),
            ("KRW", 1),
            ("XOF", 1),
            ("ISK", 1),
            ("BHD", 1000),
            ("JOD", 1000),
            ("KWD", 1000),
            ("CLF", 10000),
            ("HRK", 100), // retired, ISO's value
            ("MRO", 100), // retired, ISO's value
        ] {
            assert_eq!(subunit_to_unit(code), Some(divisor), "{code}");
        }
        // The ones with a divisor other than 100, all of them.
        let not_100: Vec<&str> = CURRENCIES
            .iter()
            .filter(|(_, divisor)| *divisor != 100)
            .map(|(code, _)| *code)
            .collect();
        assert_eq!(
            not_100,
            [
                "BHD", "BIF", "CLF", "CLP", "DJF", "GNF", "HUF", "ISK", "JOD", "JPY", "KMF", "KRW",
                "KWD", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"
            ]
        );
    }

    #[test]
    fn lookup_tolerates_case_and_whitespace_but_not_unknown_codes() {
        assert_eq!(subunit_to_unit(" huf\n"), Some(1));
        assert_eq!(subunit_to_unit("Eur"), Some(100));
        for unknown in ["", "XYZ", "EU", "EURO", "IQD", "MRU", "BTC", "€"] {
            assert_eq!(subunit_to_unit(unknown), None, "{unknown:?}");
        }
    }

    #[test]
    fn amounts_in_major_units() {
        assert_eq!(amount(Some(1951), Some("HUF")).as_deref(), Some("1951"));
        assert_eq!(
            amount(Some(250_000), Some("MGA")).as_deref(),
            Some("250000")
        );
        assert_eq!(amount(Some(1500), Some("JPY")).as_deref(), Some("1500"));
        assert_eq!(amount(Some(12345), Some("KWD")).as_deref(), Some("12.345"));
        assert_eq!(amount(Some(12345), Some("CLF")).as_deref(), Some("1.2345"));
        assert_eq!(amount(Some(12345), Some("EUR")).as_deref(), Some("123.45"));
        assert_eq!(amount(Some(-5), Some("EUR")).as_deref(), Some("-0.05"));
        assert_eq!(amount(None, Some("EUR")), None);
        assert_eq!(amount(Some(1), None), None);
        assert_eq!(amount(Some(1), Some("XYZ")), None);
    }

    #[test]
    fn require_explains_a_missing_or_unknown_currency() {
        assert_eq!(require(Some("HUF"), "invoice.currency"), Ok(1));
        for missing in [None, Some(""), Some("  ")] {
            let error = require(missing, "invoice.currency").unwrap_err();
            assert!(
                matches!(&error, PlanError::MissingField(m) if m.starts_with("invoice.currency")),
                "{error:?}"
            );
        }
        let error = require(Some("XYZ"), "invoice.currency").unwrap_err();
        let PlanError::MalformedPayload(message) = error else {
            panic!("{error:?}")
        };
        assert_eq!(
            message,
            "invoice.currency \"XYZ\" is not one of the 142 currencies Lago accepts: \
             its amounts cannot be converted"
        );
    }
}
