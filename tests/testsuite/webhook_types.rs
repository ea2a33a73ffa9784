//! Every webhook type Lago sends, and what the product does with each, asserted on what a user
//! sees: HubSpot's records, the outcome and its reason, `sync`'s exit code, `backfill`'s counts and
//! `serve`'s event states. The list below is written from lago-api's `SendWebhookJob` (commit
//! 1b1c24a6, `lago.md` §5.2) independently of the product's own table, so a type can never again be
//! forgotten silently: the two must agree.

use std::time::Duration;

use lago_hubspot::queue::EventState;
use lago_hubspot::sync::OutcomeStatus;
use lago_hubspot_guest::webhooks::{Handler, Handling, WEBHOOK_TYPES};
use serde_json::{Value, json};

use crate::support::*;

/// What the product must do with a type: push it (to the records of this handler) or skip it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Push(Handler),
    Skip,
}
use Fate::*;

const LAGO_WEBHOOK_TYPES: &[(&str, Fate)] = &[
    ("alert.triggered", Skip),
    ("billable_metric.created", Skip),
    ("billable_metric.deleted", Skip),
    ("billable_metric.updated", Skip),
    ("credit_note.created", Push(Handler::CreditNote)),
    ("credit_note.generated", Push(Handler::CreditNote)),
    ("credit_note.provider_refund_failure", Skip),
    ("customer.accounting_provider_created", Skip),
    ("customer.accounting_provider_error", Skip),
    ("customer.checkout_url_generated", Skip),
    ("customer.created", Push(Handler::Customer)),
    ("customer.crm_provider_created", Push(Handler::Customer)),
    ("customer.crm_provider_error", Skip),
    ("customer.payment_provider_created", Skip),
    ("customer.payment_provider_error", Skip),
    ("customer.tax_provider_error", Skip),
    ("customer.updated", Push(Handler::Customer)),
    ("customer.vies_check", Skip),
    ("dunning_campaign.finished", Skip),
    ("event.error", Skip),
    ("events.errors", Skip),
    ("feature.created", Skip),
    ("feature.deleted", Skip),
    ("feature.updated", Skip),
    ("fee.created", Skip),
    ("fee.tax_provider_error", Skip),
    ("integration.provider_error", Skip),
    ("invoice.created", Push(Handler::Invoice)),
    ("invoice.deleted", Skip),
    ("invoice.drafted", Skip),
    ("invoice.generated", Push(Handler::Invoice)),
    ("invoice.one_off_created", Push(Handler::Invoice)),
    ("invoice.paid_credit_added", Push(Handler::Invoice)),
    ("invoice.payment_dispute_lost", Push(Handler::Invoice)),
    ("invoice.payment_failure", Skip),
    ("invoice.payment_overdue", Push(Handler::Invoice)),
    ("invoice.payment_status_updated", Push(Handler::Invoice)),
    ("invoice.ready_to_finalize", Skip),
    ("invoice.resynced", Push(Handler::Invoice)),
    ("invoice.voided", Push(Handler::Invoice)),
    ("order.created", Skip),
    ("order.executed", Skip),
    ("order_form.created", Skip),
    ("order_form.expired", Skip),
    ("order_form.signed", Skip),
    ("order_form.voided", Skip),
    ("payment.requires_action", Skip),
    ("payment.succeeded", Skip),
    ("payment_provider.error", Skip),
    ("payment_receipt.created", Skip),
    ("payment_receipt.generated", Skip),
    ("payment_request.created", Skip),
    ("payment_request.payment_failure", Skip),
    ("payment_request.payment_status_updated", Skip),
    ("plan.created", Skip),
    ("plan.deleted", Skip),
    ("plan.updated", Skip),
    ("quote.approved", Skip),
    ("quote.created", Skip),
    ("quote.voided", Skip),
    ("subscription.canceled", Push(Handler::Subscription)),
    ("subscription.incomplete", Push(Handler::Subscription)),
    ("subscription.started", Push(Handler::Subscription)),
    ("subscription.terminated", Push(Handler::Subscription)),
    ("subscription.termination_alert", Skip),
    ("subscription.trial_ended", Push(Handler::Subscription)),
    ("subscription.updated", Push(Handler::Subscription)),
    ("subscription.usage_threshold_reached", Skip),
    ("wallet.created", Skip),
    ("wallet.depleted_ongoing_balance", Skip),
    ("wallet.terminated", Skip),
    ("wallet.updated", Skip),
    ("wallet_transaction.created", Skip),
    ("wallet_transaction.payment_failure", Skip),
    ("wallet_transaction.updated", Skip),
];

#[test]
fn the_product_table_covers_exactly_lagos_webhook_types() {
    let product: Vec<(&str, Fate)> = WEBHOOK_TYPES
        .iter()
        .map(|(name, handling)| {
            let fate = match handling {
                Handling::Push { handler, .. } => Push(*handler),
                Handling::Skip(_) => Skip,
            };
            (*name, fate)
        })
        .collect();
    assert_eq!(product, LAGO_WEBHOOK_TYPES);
}

const CUS: &str = "cus_types";

fn writes(harness: &Harness) -> usize {
    harness
        .hubspot
        .request_log()
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .count()
}

/// The body Lago sends for `webhook_type`, shaped like lago-api's serializer for that type.
fn body_for(webhook_type: &str, index: usize) -> Value {
    let customer = customer(CUS, Some("company"));
    let object_type = webhook_type.split('.').next().unwrap();
    match object_type {
        "customer" => customer_event(webhook_type, &customer),
        "subscription" => {
            let status = match webhook_type {
                "subscription.incomplete" => "incomplete",
                "subscription.terminated" => "terminated",
                "subscription.canceled" => "canceled",
                _ => "active",
            };
            let mut object = subscription(&format!("sub_{index}"), &customer, status);
            if status == "canceled" {
                object["started_at"] = Value::Null;
            }
            subscription_event(webhook_type, &object)
        }
        "invoice" => {
            let status = match webhook_type {
                "invoice.drafted" | "invoice.ready_to_finalize" | "invoice.deleted" => "draft",
                "invoice.voided" => "voided",
                _ => "finalized",
            };
            let object = invoice(&format!("inv_{index}"), &customer, status, "pending");
            match webhook_type {
                // lago-api `V1::Invoices::PaymentDisputeLostSerializer`.
                "invoice.payment_dispute_lost" => json!({
                    "webhook_type": webhook_type, "object_type": "payment_dispute_lost",
                    "organization_id": "org-1",
                    "payment_dispute_lost": {"invoice": object, "provider_error": {"message": "lost"}},
                }),
                // `V1::PaymentProviders::InvoicePaymentErrorSerializer`.
                "invoice.payment_failure" => json!({
                    "webhook_type": webhook_type,
                    "object_type": "payment_provider_invoice_payment_error",
                    "organization_id": "org-1",
                    "payment_provider_invoice_payment_error": {
                        "lago_invoice_id": format!("inv_{index}"), "lago_customer_id": CUS,
                        "provider_error": {"message": "card declined", "error_code": "card_declined"},
                    },
                }),
                _ => invoice_event(webhook_type, &object),
            }
        }
        // lago-api `V1::CreditNoteSerializer` with its customer, on an invoice not synced yet.
        "credit_note" if webhook_type != "credit_note.provider_refund_failure" => {
            let object = invoice(&format!("inv_{index}"), &customer, "finalized", "pending");
            credit_note_event(webhook_type, &credit_note(&format!("cn_{index}"), &object))
        }
        other => json!({
            "webhook_type": webhook_type, "object_type": other, "organization_id": "org-1",
            other: {"lago_id": format!("{other}_{index}"), "lago_customer_id": CUS},
        }),
    }
}

/// Each customer, subscription, invoice and credit note type through the whole product, one at a
/// time, against a deployed portal of a connection that syncs credit notes: pushed types reach
/// HubSpot (or are skipped by their content, with the reason), skipped types are a success with a
/// reason naming the type, and write nothing. (Credit notes with the setting off: `credit_notes.rs`.)
#[tokio::test]
async fn each_customer_subscription_and_invoice_type_ends_as_stated() {
    let harness = Harness::new(lago_hubspot::config::ConnectionSettings {
        sync_credit_notes: true,
        ..settings()
    })
    .await;
    harness.syncer.deploy().await.expect("deploy");
    let credit_notes = harness
        .syncer
        .connection()
        .unwrap()
        .credit_notes_object_type_id
        .unwrap();
    let invoices = harness
        .syncer
        .connection()
        .unwrap()
        .invoices_object_type_id
        .unwrap();
    let subscriptions = harness
        .syncer
        .connection()
        .unwrap()
        .subscriptions_object_type_id
        .unwrap();
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer(CUS, Some("company")),
        ))
        .await;
    let company = harness.hubspot.records("companies")[0].id.clone();

    for (index, (webhook_type, fate)) in LAGO_WEBHOOK_TYPES.iter().enumerate() {
        if !["customer.", "subscription.", "invoice.", "credit_note."]
            .iter()
            .any(|p| webhook_type.starts_with(p))
        {
            continue;
        }
        let before = writes(&harness);
        let outcome = harness
            .syncer
            .sync_event(&body_for(webhook_type, index).to_string())
            .await;
        let wrote = writes(&harness) - before;
        let what = format!("{webhook_type}: {:?} {}", outcome.status, outcome.detail);
        match (fate, *webhook_type) {
            (Skip, _) => {
                assert_eq!(outcome.status, OutcomeStatus::Skipped, "{what}");
                assert!(
                    outcome.detail.contains(webhook_type),
                    "the reason names the type: {what}"
                );
                assert_eq!(wrote, 0, "{what}");
            }
            // Skipped by content: never started, or waiting for its payment.
            (_, "subscription.canceled" | "subscription.incomplete") => {
                assert_eq!(outcome.status, OutcomeStatus::Skipped, "{what}");
                assert_eq!(wrote, 0, "{what}");
                let id = format!("sub_{index}");
                assert!(
                    !harness
                        .hubspot
                        .records(&subscriptions)
                        .iter()
                        .any(|r| r.properties["lago_subscription_id"] == id),
                    "{what}"
                );
            }
            (Push(Handler::Customer), _) => {
                assert_eq!(outcome.status, OutcomeStatus::Synced, "{what}");
                assert_eq!(harness.hubspot.records("companies").len(), 1, "{what}");
            }
            (Push(Handler::Subscription), _) => {
                assert_eq!(outcome.status, OutcomeStatus::Synced, "{what}");
                let id = format!("sub_{index}");
                let record = harness
                    .hubspot
                    .records(&subscriptions)
                    .into_iter()
                    .find(|r| r.properties["lago_subscription_id"] == id)
                    .unwrap_or_else(|| panic!("no LagoSubscription: {what}"));
                assert_eq!(
                    harness
                        .hubspot
                        .associations(&subscriptions, &record.id, "companies"),
                    std::slice::from_ref(&company),
                    "{what}"
                );
            }
            (Push(Handler::Invoice), _) => {
                assert_eq!(outcome.status, OutcomeStatus::Synced, "{what}");
                let id = format!("inv_{index}");
                let record = harness
                    .hubspot
                    .records(&invoices)
                    .into_iter()
                    .find(|r| r.properties["lago_invoice_id"] == id)
                    .unwrap_or_else(|| panic!("no LagoInvoice: {what}"));
                assert_eq!(record.properties["lago_invoice_total_amount"], "123.45");
                assert_eq!(
                    harness
                        .hubspot
                        .associations(&invoices, &record.id, "companies"),
                    std::slice::from_ref(&company),
                    "{what}"
                );
            }
            (Push(Handler::CreditNote), _) => {
                assert_eq!(outcome.status, OutcomeStatus::Synced, "{what}");
                let id = format!("cn_{index}");
                let record = harness
                    .hubspot
                    .records(&credit_notes)
                    .into_iter()
                    .find(|r| r.properties["lago_credit_note_id"] == id)
                    .unwrap_or_else(|| panic!("no LagoCreditNote: {what}"));
                assert_eq!(record.properties["lago_credit_note_total_amount"], "60");
                assert_eq!(
                    harness
                        .hubspot
                        .associations(&credit_notes, &record.id, "companies"),
                    std::slice::from_ref(&company),
                    "{what}"
                );
                // Its invoice has no event yet: found or created by its id, and associated.
                let invoice_id = format!("inv_{index}");
                let invoice = harness
                    .hubspot
                    .records(&invoices)
                    .into_iter()
                    .find(|r| r.properties["lago_invoice_id"] == invoice_id)
                    .unwrap_or_else(|| panic!("no LagoInvoice {invoice_id}: {what}"));
                assert_eq!(
                    harness
                        .hubspot
                        .associations(&credit_notes, &record.id, &invoices),
                    [invoice.id],
                    "{what}"
                );
            }
        }
    }
}

/// The one-off and prepaid-credit invoices Lago announces with their own webhooks reach HubSpot
/// with their type, exactly like `invoice.created` ones.
#[tokio::test]
async fn one_off_and_prepaid_credit_invoices_reach_hubspot() {
    let harness = Harness::deployed().await;
    let invoices = harness
        .syncer
        .connection()
        .unwrap()
        .invoices_object_type_id
        .unwrap();
    let customer = customer(CUS, Some("company"));
    for (webhook_type, lago_id, invoice_type) in [
        ("invoice.one_off_created", "inv_one_off", "one_off"),
        ("invoice.paid_credit_added", "inv_credit", "credit"),
    ] {
        let mut object = invoice(lago_id, &customer, "finalized", "succeeded");
        object["invoice_type"] = json!(invoice_type);
        let outcome = harness.sync_ok(&invoice_event(webhook_type, &object)).await;
        assert_eq!(outcome.status, OutcomeStatus::Synced);
        let record = harness
            .hubspot
            .records(&invoices)
            .into_iter()
            .find(|r| r.properties["lago_invoice_id"] == lago_id)
            .expect("the invoice is in HubSpot");
        assert_eq!(record.properties["lago_invoice_type"], invoice_type);
        assert_eq!(
            record.properties["lago_invoice_payment_status"],
            "succeeded"
        );
        let company = harness.hubspot.records("companies")[0].id.clone();
        assert_eq!(
            harness
                .hubspot
                .associations(&invoices, &record.id, "companies"),
            [company]
        );
    }
}

/// A subscription that ends without ever starting stays out of HubSpot, whichever webhook carries
/// it; one that did start is updated as usual when it ends.
#[tokio::test]
async fn subscriptions_that_never_started_stay_out_of_hubspot() {
    let harness = Harness::deployed().await;
    let subscriptions = harness
        .syncer
        .connection()
        .unwrap()
        .subscriptions_object_type_id
        .unwrap();
    let customer = customer(CUS, Some("company"));
    // Pending, terminated before its start date; payment-gated, whose payment failed.
    let mut pending = subscription("sub_pending", &customer, "canceled");
    pending["started_at"] = Value::Null;
    pending["canceled_at"] = json!("2026-02-10T08:00:00Z");
    let mut gated = subscription("sub_gated", &customer, "canceled");
    gated["started_at"] = Value::Null;
    gated["cancellation_reason"] = json!("payment_failed");
    for event in [
        subscription_event("subscription.canceled", &pending),
        subscription_event("subscription.terminated", &gated),
    ] {
        let outcome = harness.sync_ok(&event).await;
        assert_eq!(outcome.status, OutcomeStatus::Skipped, "{}", outcome.detail);
        assert!(
            outcome.detail.contains("canceled before it started"),
            "{}",
            outcome.detail
        );
    }
    assert!(harness.hubspot.records(&subscriptions).is_empty());
    assert!(
        harness.hubspot.records("companies").is_empty(),
        "not even its customer is written for it"
    );

    let active = subscription("sub_real", &customer, "active");
    harness
        .sync_ok(&subscription_event("subscription.started", &active))
        .await;
    let ended = subscription("sub_real", &customer, "terminated");
    harness
        .sync_ok(&subscription_event("subscription.terminated", &ended))
        .await;
    let records = harness.hubspot.records(&subscriptions);
    assert_eq!(records.len(), 1);
    assert_eq!(
        records[0].properties["lago_subscription_status"],
        "terminated"
    );
    assert_eq!(
        records[0].properties["lago_subscription_terminated_at"],
        "2026-06-30"
    );
}

/// An event with nothing to push is a success with a reason in all three modes: `sync` prints
/// `skipped …` and exits 0, `backfill` counts it skipped and exits 0, `serve` acknowledges it and
/// shows it skipped. Only payloads the product cannot understand are errors.
#[tokio::test(flavor = "multi_thread")]
async fn skipped_means_the_same_in_sync_backfill_and_serve() {
    let customer = customer(CUS, Some("company"));
    let draft = invoice("inv_draft", &customer, "draft", "pending");
    let nothing_to_push = [
        invoice_event("invoice.drafted", &draft),
        // Pushed type, skipped by its content.
        invoice_event("invoice.created", &draft),
        subscription_event(
            "subscription.termination_alert",
            &subscription("sub_alert", &customer, "active"),
        ),
        body_for("fee.created", 1),
    ];

    // sync, as a user runs it.
    let harness = Harness::deployed().await;
    let dir = std::env::temp_dir().join(format!("lago-hubspot-types-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let jsonl = dir.join("events.jsonl");
    let lines: Vec<String> = nothing_to_push.iter().map(Value::to_string).collect();
    std::fs::write(&jsonl, lines.join("\n") + "\n").unwrap();
    let files: Vec<String> = lines
        .iter()
        .enumerate()
        .map(|(n, line)| {
            let path = dir.join(format!("{n}.json"));
            std::fs::write(&path, line).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let state = dir.join("state.db");
    let url = harness.hubspot.url.clone();
    let run = move |args: Vec<String>| {
        let state = state.clone();
        let url = url.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_lago-hubspot"))
                .env("LAGO_HUBSPOT_COMPONENT", component_path())
                .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
                .args(&args)
                .args(["--hubspot-url", &url, "--state", state.to_str().unwrap()])
                .output()
                .unwrap()
        })
    };
    let before = harness.hubspot.request_log().len();
    let mut args = vec!["sync".to_owned()];
    args.extend(files);
    let output = run(args).await.unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "nothing failed, so exit 0: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{stdout}");
    assert!(lines.iter().all(|l| l.starts_with("skipped")), "{stdout}");
    assert!(stdout.contains("draft"), "{stdout}");

    // backfill from exported webhooks.
    let output = run(vec![
        "backfill".into(),
        "--from".into(),
        jsonl.to_str().unwrap().into(),
        "--progress".into(),
        "none".into(),
    ])
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains("4 records: 0 synced, 0 unchanged, 4 skipped, 0 failed"),
        "{stdout}"
    );
    let writes_after: usize = harness.hubspot.request_log()[before..]
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .count();
    assert_eq!(writes_after, 0, "nothing to push means nothing written");

    // serve.
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    for (n, body) in lines_of(&nothing_to_push).iter().enumerate() {
        let response = serve.post_signed(body, &format!("skip-{n}")).await;
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert!(
            ["skipped", "accepted"].contains(&answer["status"].as_str().unwrap()),
            "{answer}"
        );
    }
    serve.settled(Duration::from_secs(30)).await;
    let store = serve.syncer.store();
    let skipped = store.events(Some(EventState::Skipped), 10).unwrap();
    assert_eq!(skipped.len(), 4, "{skipped:?}");
    assert!(
        skipped
            .iter()
            .all(|e| e.last_error.as_deref().is_some_and(|r| !r.is_empty()))
    );
    assert!(
        store
            .events(Some(EventState::Rejected), 10)
            .unwrap()
            .is_empty()
    );
    assert!(store.events(Some(EventState::Dead), 10).unwrap().is_empty());
}

fn lines_of(events: &[Value]) -> Vec<String> {
    events.iter().map(Value::to_string).collect()
}
