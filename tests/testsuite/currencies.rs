//! Every currency Lago accepts: an invoice in each lands in HubSpot with its amounts in major
//! units of that currency, and an invoice in a currency Lago does not accept is refused.

use std::collections::BTreeMap;

use lago_hubspot::config::INVOICES_SCHEMA;
use lago_hubspot::sync::OutcomeStatus;
use serde_json::json;

use crate::support::*;

/// The 142 currencies Lago accepts and how many `*_amount_cents` make one unit: the money gem's
/// `subunit_to_unit` (lago-api pins money 7.0.2), copied from `shared/reference/lago-currencies.tsv`
/// independently of the guest's table. HUF and MGA are 1 (ISO 4217 says 2 decimals).
#[rustfmt::skip]
const LAGO_CURRENCIES: [(&str, u32); 142] = [
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

/// What HubSpot holds for each amount the test sends, by divisor: total 1951, due 250000 and
/// subtotal 123456 subunits. HubSpot echoes numbers without trailing zeros (`2500.00` → `2500`).
fn expected(subunit_to_unit: u32) -> [&'static str; 3] {
    match subunit_to_unit {
        1 => ["1951", "250000", "123456"],
        100 => ["19.51", "2500", "1234.56"],
        1000 => ["1.951", "250", "123.456"],
        10000 => ["0.1951", "25", "12.3456"],
        other => panic!("no Lago currency has {other} subunits to the unit"),
    }
}

const AMOUNTS: [&str; 3] = [
    "lago_invoice_total_amount",
    "lago_invoice_total_due_amount",
    "lago_invoice_subtotal_excluding_taxes",
];

#[tokio::test(flavor = "multi_thread")]
async fn an_invoice_in_each_lago_currency_lands_with_its_amounts_in_major_units() {
    let harness = Harness::deployed().await;
    let acme = customer("cus_fx", Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &acme))
        .await;

    let invoice_in = |code: &str| {
        let mut object = invoice(&format!("inv_{code}"), &acme, "finalized", "pending");
        object["currency"] = json!(code);
        object["total_amount_cents"] = json!(1951);
        object["total_due_amount_cents"] = json!(250_000);
        object["sub_total_excluding_taxes_amount_cents"] = json!(123_456);
        invoice_event("invoice.created", &object).to_string()
    };
    let mut payloads: Vec<String> = LAGO_CURRENCIES
        .iter()
        .map(|(code, _)| invoice_in(code))
        .collect();
    // Not a currency Lago accepts: refused by name, nothing written for it.
    payloads.push(invoice_in("XYZ"));

    let outcomes = harness.syncer.sync_batch(&payloads).await;
    assert_eq!(outcomes.len(), payloads.len());
    for ((code, _), outcome) in LAGO_CURRENCIES.iter().zip(&outcomes) {
        assert_eq!(
            outcome.status,
            OutcomeStatus::Synced,
            "{code}: {}",
            outcome.detail
        );
    }
    let refused = outcomes.last().unwrap();
    assert_eq!(refused.status, OutcomeStatus::Failed, "{}", refused.detail);
    assert!(
        refused.detail.contains("\"XYZ\"")
            && refused
                .detail
                .contains("not one of the 142 currencies Lago accepts"),
        "{}",
        refused.detail
    );

    let records: BTreeMap<String, BTreeMap<String, String>> = harness
        .hubspot
        .records(INVOICES_SCHEMA)
        .into_iter()
        .map(|record| {
            (
                record.properties["lago_invoice_id"].clone(),
                record.properties,
            )
        })
        .collect();
    assert_eq!(records.len(), LAGO_CURRENCIES.len());
    assert!(!records.contains_key("inv_XYZ"));
    let mut wrong = Vec::new();
    for (code, subunit_to_unit) in LAGO_CURRENCIES {
        let record = &records[&format!("inv_{code}")];
        assert_eq!(record["lago_invoice_currency"], code);
        for (property, want) in AMOUNTS.iter().zip(expected(subunit_to_unit)) {
            let got = record.get(*property).map(String::as_str);
            if got != Some(want) {
                wrong.push(format!("{code} {property}: want {want}, got {got:?}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong amounts:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // HUF and MGA, where ISO 4217 would have shown 19.51 and 2500.00.
    assert_eq!(records["inv_HUF"]["lago_invoice_total_amount"], "1951");
    assert_eq!(
        records["inv_MGA"]["lago_invoice_total_due_amount"],
        "250000"
    );
}
