//! Batched execution: the same HubSpot state as one request per step, with far fewer requests.

use std::collections::BTreeMap;

use lago_hubspot::config::{INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA};
use lago_hubspot::sync::OutcomeStatus;
use lago_hubspot_emulators::hubspot::{Faults, RunningEmulator};
use serde_json::Value;

use crate::support::*;

/// Customers, then their subscriptions and invoices (each invoice created, then paid).
fn history(customers: usize) -> (Vec<String>, Vec<String>) {
    let mut first = Vec::new();
    let mut rest = Vec::new();
    for c in 0..customers {
        let kind = if c % 3 == 0 { "individual" } else { "company" };
        let customer = customer(&format!("cus_b{c}"), Some(kind));
        first.push(customer_event("customer.created", &customer).to_string());
        rest.push(
            subscription_event(
                "subscription.started",
                &subscription(&format!("sub_b{c}"), &customer, "active"),
            )
            .to_string(),
        );
        for i in 0..3 {
            let id = format!("inv_b{c}_{i}");
            rest.push(
                invoice_event(
                    "invoice.created",
                    &invoice(&id, &customer, "finalized", "pending"),
                )
                .to_string(),
            );
            rest.push(
                invoice_event(
                    "invoice.payment_status_updated",
                    &invoice(&id, &customer, "finalized", "succeeded"),
                )
                .to_string(),
            );
        }
    }
    (first, rest)
}

/// Records by their Lago id, without HubSpot's own ids and timestamps; associations by Lago id.
fn state(hubspot: &RunningEmulator) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut state = BTreeMap::new();
    let lago_of = |object: &str, id: &str, key: &str| {
        hubspot
            .record(object, id)
            .and_then(|r| r.properties.get(key).cloned())
            .unwrap_or_default()
    };
    for (object, key) in [
        ("companies", "lago_customer_id"),
        ("contacts", "lago_customer_id"),
        (SUBSCRIPTIONS_SCHEMA, "lago_subscription_id"),
        (INVOICES_SCHEMA, "lago_invoice_id"),
    ] {
        for record in hubspot.records(object) {
            let mut properties: BTreeMap<String, String> = record
                .properties
                .iter()
                .filter(|(k, _)| {
                    k.starts_with("lago_") || ["name", "email", "domain"].contains(&k.as_str())
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if object == SUBSCRIPTIONS_SCHEMA || object == INVOICES_SCHEMA {
                for to in ["companies", "contacts"] {
                    let linked: Vec<String> = hubspot
                        .associations(object, &record.id, to)
                        .iter()
                        .map(|id| lago_of(to, id, "lago_customer_id"))
                        .collect();
                    properties.insert(format!("associated {to}"), linked.join(","));
                }
            }
            let lago_id = properties.get(key).cloned().unwrap_or_default();
            assert!(
                state
                    .insert(format!("{object}/{lago_id}"), properties)
                    .is_none(),
                "duplicate {object} {lago_id}"
            );
        }
    }
    state
}

fn writes(hubspot: &RunningEmulator) -> usize {
    hubspot
        .request_log()
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn batched_execution_reaches_the_same_state_with_far_fewer_requests() {
    let (customers, rest) = history(30);

    let one_by_one = Harness::deployed().await;
    one_by_one.hubspot.clear_request_log();
    for payload in customers.iter().chain(&rest) {
        let outcome = one_by_one.syncer.sync_event(payload).await;
        assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    }

    let batched = Harness::deployed().await;
    batched.hubspot.clear_request_log();
    for phase in [&customers, &rest] {
        for outcome in batched.syncer.sync_batch(phase).await {
            assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
        }
    }

    assert_eq!(state(&batched.hubspot), state(&one_by_one.hubspot));
    let (slow, fast) = (writes(&one_by_one.hubspot), writes(&batched.hubspot));
    // 30 customers + 30 subscriptions × 2 steps + 180 invoice events × 2 steps.
    assert_eq!(slow, 30 + 60 + 360);
    assert!(fast * 10 < slow, "batched {fast} vs one by one {slow}");
    // Every payment status landed: the later event of each invoice won.
    for record in batched.hubspot.records(INVOICES_SCHEMA) {
        assert_eq!(
            record.properties["lago_invoice_payment_status"],
            "succeeded"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_bad_record_does_not_sink_the_batch() {
    let harness = Harness::deployed().await;
    let mut payloads = Vec::new();
    for c in 0..20 {
        let mut person = customer(&format!("cus_p{c}"), Some("individual"));
        if c == 7 {
            // HubSpot refuses the whole batch for one invalid required value (an invalid email
            // no longer fails a customer: it is written without it).
            person["tax_identification_number"] = Value::String("X".repeat(70_000));
        }
        payloads.push(customer_event("customer.created", &person).to_string());
    }
    let outcomes = harness.syncer.sync_batch(&payloads).await;
    for (c, outcome) in outcomes.iter().enumerate() {
        if c == 7 {
            assert_eq!(outcome.status, OutcomeStatus::Failed);
            // HubSpot's own words reach the operator, as a refusal (not retried blindly).
            assert!(
                outcome.detail.contains("HTTP 400")
                    && outcome.detail.contains("lago_tax_identification_number"),
                "{}",
                outcome.detail
            );
        } else {
            assert_eq!(
                outcome.status,
                OutcomeStatus::Synced,
                "{c}: {}",
                outcome.detail
            );
        }
    }
    assert_eq!(harness.hubspot.records("contacts").len(), 19);
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_failures_are_mapped_to_their_records_and_heal_on_a_rerun() {
    let harness = Harness::deployed().await;
    let (customers, rest) = history(25);
    harness.hubspot.set_faults(Faults {
        partial_batch_rate: 0.2,
        seed: Some(7),
        ..Faults::default()
    });
    let mut failed = 0;
    for phase in [&customers, &rest] {
        let mut todo: Vec<String> = phase.to_vec();
        for _round in 0..20 {
            let outcomes = harness.syncer.sync_batch(&todo).await;
            let again: Vec<String> = todo
                .iter()
                .zip(&outcomes)
                .filter(|(_, o)| o.status == OutcomeStatus::Failed)
                .map(|(p, _)| p.clone())
                .collect();
            failed += again.len();
            todo = again;
            if todo.is_empty() {
                break;
            }
        }
        assert!(todo.is_empty(), "{} records never synced", todo.len());
    }
    assert!(failed > 0, "the emulator injected partial failures");
    harness.hubspot.set_faults(Faults::default());
    // Every record exactly once (`state` asserts no duplicates), every association in place.
    let state = state(&harness.hubspot);
    assert_eq!(state.len(), 25 + 25 + 75);
    assert!(
        state
            .iter()
            .filter(|(k, _)| k.starts_with(INVOICES_SCHEMA))
            .all(|(_, p)| {
                !p["associated companies"].is_empty() || !p["associated contacts"].is_empty()
            })
    );
}
