//! Credit notes (opt-in per connection) and the associations between the custom objects, end to
//! end: the built component, the harness and the emulated HubSpot, which refuses to associate two
//! custom objects whose pair is not defined, as HubSpot does.

use lago_hubspot::config::{
    CREDIT_NOTES_INVOICES_ASSOCIATION, CREDIT_NOTES_SCHEMA, ConnectionSettings, INVOICES_SCHEMA,
    INVOICES_SUBSCRIPTIONS_ASSOCIATION, SUBSCRIPTIONS_SCHEMA,
};
use lago_hubspot::runtime::{KnownId, RecordKey, RecordKind};
use lago_hubspot::store::Store;
use lago_hubspot::sync::OutcomeStatus;
use lago_hubspot_emulators::hubspot::RunningEmulator;
use lago_hubspot_guest::properties::{CUSTOMER_PROPERTIES, INVOICES, SUBSCRIPTIONS};
use serde_json::{Value, json};

use crate::support::*;

const CUS: &str = "cus_cn";

fn with_credit_notes() -> ConnectionSettings {
    ConnectionSettings {
        sync_credit_notes: true,
        ..settings()
    }
}

fn writes(hubspot: &RunningEmulator) -> Vec<String> {
    hubspot
        .request_log()
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

/// The one record of `object_type` whose `property` is `value`.
fn record_by(
    hubspot: &RunningEmulator,
    object_type: &str,
    property: &str,
    value: &str,
) -> lago_hubspot_emulators::hubspot::Record {
    let mut found: Vec<_> = hubspot
        .records(object_type)
        .into_iter()
        .filter(|r| r.properties.get(property).map(String::as_str) == Some(value))
        .collect();
    assert_eq!(found.len(), 1, "{property} = {value}: {found:?}");
    found.remove(0)
}

/// An invoice billing `subscriptions`, listed as `invoice.created` lists them.
fn invoice_billing(lago_id: &str, customer: &Value, subscriptions: &[&Value]) -> Value {
    let mut object = invoice(lago_id, customer, "finalized", "pending");
    object["subscriptions"] = subscriptions
        .iter()
        .map(|s| {
            let mut s = (*s).clone();
            s.as_object_mut().unwrap().remove("customer");
            s
        })
        .collect();
    object
}

fn type_ids(harness: &Harness) -> (String, String, String) {
    let connection = harness.syncer.connection().unwrap();
    (
        connection.subscriptions_object_type_id.unwrap(),
        connection.invoices_object_type_id.unwrap(),
        connection
            .credit_notes_object_type_id
            .expect("LagoCreditNotes is deployed"),
    )
}

#[tokio::test]
async fn a_credit_note_reaches_hubspot_with_its_customer_and_its_invoice() {
    let harness = Harness::new(with_credit_notes()).await;
    let report = harness.syncer.deploy().await.expect("deploy");
    assert!(report.credit_notes_object_type_id.is_some(), "{report:?}");
    let (_, invoices, credit_notes) = type_ids(&harness);
    let customer = customer(CUS, Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &customer))
        .await;
    let company = harness.hubspot.records("companies")[0].id.clone();
    let invoice_object = invoice("inv_cn", &customer, "finalized", "pending");
    harness
        .sync_ok(&invoice_event("invoice.created", &invoice_object))
        .await;
    let invoice_record = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_cn");

    // Customer and invoice known: one upsert, two associations.
    harness.hubspot.clear_request_log();
    let outcome = harness
        .sync_ok(&credit_note_event(
            "credit_note.created",
            &credit_note("cn_1", &invoice_object),
        ))
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    assert_eq!(
        writes(&harness.hubspot),
        [
            format!("POST /crm/v3/objects/{credit_notes}/batch/upsert"),
            format!("POST /crm/v4/associations/{credit_notes}/companies/batch/associate/default"),
            format!("POST /crm/v4/associations/{credit_notes}/{invoices}/batch/associate/default"),
        ]
    );
    let record = record_by(
        &harness.hubspot,
        &credit_notes,
        "lago_credit_note_id",
        "cn_1",
    );
    for (name, value) in [
        ("lago_credit_note_number", "ACME-inv_cn-CN1"),
        ("lago_credit_note_invoice_number", "ACME-inv_cn"),
        ("lago_credit_note_issuing_date", "2026-03-05"),
        ("lago_credit_note_credit_status", "available"),
        ("lago_credit_note_refund_status", "pending"),
        ("lago_credit_note_reason", "order_change"),
        ("lago_credit_note_currency", "EUR"),
        ("lago_credit_note_total_amount", "60"),
        ("lago_credit_note_credit_amount", "20"),
        ("lago_credit_note_refund_amount", "40"),
        ("lago_credit_note_balance_amount", "20"),
        (
            "lago_credit_note_link",
            "https://lago.example.com/acme/customer/cus_cn/credit-notes/cn_1",
        ),
    ] {
        assert_eq!(
            record.properties.get(name).map(String::as_str),
            Some(value),
            "{name}"
        );
    }
    assert_eq!(
        harness
            .hubspot
            .associations(&credit_notes, &record.id, "companies"),
        std::slice::from_ref(&company)
    );
    assert_eq!(
        harness
            .hubspot
            .associations(&credit_notes, &record.id, &invoices),
        std::slice::from_ref(&invoice_record.id)
    );
    // Someone opening the invoice sees its credit note.
    assert_eq!(
        harness
            .hubspot
            .associations(&invoices, &invoice_record.id, &credit_notes),
        std::slice::from_ref(&record.id)
    );

    // The PDF arrives with `credit_note.generated`: the same record gets its link.
    let mut generated = credit_note("cn_1", &invoice_object);
    generated["file_url"] = json!("https://lago.example.com/files/cn_1.pdf");
    harness
        .sync_ok(&credit_note_event("credit_note.generated", &generated))
        .await;
    let record = record_by(
        &harness.hubspot,
        &credit_notes,
        "lago_credit_note_id",
        "cn_1",
    );
    assert_eq!(
        record.properties["lago_credit_note_file_url"],
        "https://lago.example.com/files/cn_1.pdf"
    );
    assert_eq!(harness.hubspot.records(&credit_notes).len(), 1);
}

/// A credit note that overtakes its invoice (or whose invoice predates the id store) finds or
/// creates the invoice record by `lago_invoice_id` alone; the invoice's own event fills that same
/// record, and nothing is duplicated.
#[tokio::test]
async fn a_credit_note_before_its_invoice_leaves_a_record_the_invoice_fills() {
    let harness = Harness::new(with_credit_notes()).await;
    harness.syncer.deploy().await.expect("deploy");
    let (_, invoices, credit_notes) = type_ids(&harness);
    let customer = customer(CUS, Some("individual"));
    let invoice_object = invoice("inv_late", &customer, "finalized", "pending");

    harness.hubspot.clear_request_log();
    harness
        .sync_ok(&credit_note_event(
            "credit_note.created",
            &credit_note("cn_early", &invoice_object),
        ))
        .await;
    // Customer unknown too: it is written first, from the copy the credit note embeds.
    assert_eq!(
        writes(&harness.hubspot),
        [
            "POST /crm/v3/objects/contacts/batch/upsert".to_owned(),
            format!("POST /crm/v3/objects/{credit_notes}/batch/upsert"),
            format!("POST /crm/v4/associations/{credit_notes}/contacts/batch/associate/default"),
            format!("POST /crm/v3/objects/{invoices}/batch/upsert"),
            format!("POST /crm/v4/associations/{credit_notes}/{invoices}/batch/associate/default"),
        ]
    );
    let stub = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_late");
    assert!(
        !stub.properties.contains_key("lago_invoice_total_amount"),
        "only the id is written: {:?}",
        stub.properties
    );
    let record = record_by(
        &harness.hubspot,
        &credit_notes,
        "lago_credit_note_id",
        "cn_early",
    );
    let contact = harness.hubspot.records("contacts")[0].id.clone();
    assert_eq!(
        harness
            .hubspot
            .associations(&credit_notes, &record.id, "contacts"),
        [contact]
    );

    harness
        .sync_ok(&invoice_event("invoice.created", &invoice_object))
        .await;
    let filled = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_late");
    assert_eq!(filled.id, stub.id, "the same record, not a second one");
    assert_eq!(filled.properties["lago_invoice_total_amount"], "123.45");
    assert_eq!(harness.hubspot.records(&invoices).len(), 1);
    assert_eq!(
        harness
            .hubspot
            .associations(&invoices, &filled.id, &credit_notes),
        std::slice::from_ref(&record.id)
    );

    // A second credit note on it now knows the invoice's id: no stub upsert.
    harness.hubspot.clear_request_log();
    harness
        .sync_ok(&credit_note_event(
            "credit_note.created",
            &credit_note("cn_second", &invoice_object),
        ))
        .await;
    assert_eq!(writes(&harness.hubspot).len(), 3);
    // An event of the invoice that carries less never clears what the credit note did not write.
    let filled = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_late");
    assert_eq!(filled.properties["lago_invoice_total_amount"], "123.45");
}

/// Off by default: a skip with the reason, a success, nothing written and no LagoCreditNotes.
#[tokio::test]
async fn credit_notes_are_skipped_while_the_setting_is_off() {
    let harness = Harness::deployed().await;
    assert!(!harness.syncer.settings().sync_credit_notes);
    assert!(
        harness
            .hubspot
            .schemas()
            .iter()
            .all(|s| s["name"] != CREDIT_NOTES_SCHEMA),
        "not deployed unless asked"
    );
    let customer = customer(CUS, Some("company"));
    let invoice_object = invoice("inv_off", &customer, "finalized", "pending");
    let before = writes(&harness.hubspot).len();
    for webhook_type in ["credit_note.created", "credit_note.generated"] {
        let outcome = harness
            .syncer
            .sync_event(
                &credit_note_event(webhook_type, &credit_note("cn_off", &invoice_object))
                    .to_string(),
            )
            .await;
        assert_eq!(outcome.status, OutcomeStatus::Skipped, "{}", outcome.detail);
        assert_eq!(
            outcome.detail,
            "credit note sync is off on connection hubspot-test"
        );
    }
    assert_eq!(writes(&harness.hubspot).len(), before);
    // Not even its customer was written.
    assert!(harness.hubspot.records("companies").is_empty());
    // And the store does not ask for LagoCreditNotes.
    assert!(harness.syncer.deploy_if_needed().await.unwrap().is_none());
}

/// A portal deployed by the previous release (both objects, no association definitions, no
/// LagoCreditNotes): the next deploy adds exactly what is missing, and the one after writes
/// nothing. `deploy_if_needed` (what `serve`, `sync` and `backfill` run first) notices it.
#[tokio::test]
async fn a_portal_deployed_before_gets_what_it_lacks_from_the_next_deploy() {
    let harness = Harness::new(settings()).await;
    let client = harness.client();
    let post = |path: String, body: Value| {
        let client = &client;
        async move {
            let response = client
                .send(http::Method::POST, &path, Some(body.to_string().into()))
                .await
                .unwrap();
            assert!(
                [200, 201].contains(&response.status),
                "{path}: {}",
                response.error_summary()
            );
            response.json().unwrap()
        }
    };
    // What the previous release deployed: the same property table, no association definitions.
    for (object, group) in [
        ("companies", "companyinformation"),
        ("contacts", "contactinformation"),
    ] {
        let inputs: Vec<Value> = CUSTOMER_PROPERTIES
            .iter()
            .map(|p| serde_json::from_str(&p.definition(Some(group), None)).unwrap())
            .collect();
        post(
            format!("/crm/v3/properties/{object}/batch/create"),
            json!({ "inputs": inputs }),
        )
        .await;
    }
    let subscriptions = post(
        "/crm-object-schemas/v3/schemas".into(),
        serde_json::from_str(&SUBSCRIPTIONS.schema()).unwrap(),
    )
    .await["objectTypeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let invoices = post(
        "/crm-object-schemas/v3/schemas".into(),
        serde_json::from_str(&INVOICES.schema()).unwrap(),
    )
    .await["objectTypeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let id = |name: &str, hubspot_id: &str| KnownId {
        key: RecordKey {
            kind: RecordKind::ObjectSchema,
            lago_id: name.into(),
        },
        hubspot_id: hubspot_id.into(),
    };
    harness
        .syncer
        .store()
        .put_ids(
            "hubspot-test",
            &[
                id(SUBSCRIPTIONS_SCHEMA, &subscriptions),
                id(INVOICES_SCHEMA, &invoices),
            ],
        )
        .unwrap();

    // Without the definition HubSpot refuses the invoice → subscription association.
    let customer = customer(CUS, Some("company"));
    let started = subscription("sub_old", &customer, "active");
    let billing = invoice_billing("inv_old", &customer, &[&started]);
    harness
        .sync_ok(&subscription_event("subscription.started", &started))
        .await;
    let refused = harness
        .syncer
        .sync_event(&invoice_event("invoice.created", &billing).to_string())
        .await;
    assert_eq!(refused.status, OutcomeStatus::Failed, "{}", refused.detail);
    assert!(
        refused.detail.contains("No association is defined"),
        "{}",
        refused.detail
    );

    harness.hubspot.clear_request_log();
    let report = harness
        .syncer
        .deploy_if_needed()
        .await
        .unwrap()
        .expect("a portal without the definition is deployed again");
    assert_eq!(
        writes(&harness.hubspot),
        [format!(
            "POST /crm-object-schemas/v3/schemas/{invoices}/associations"
        )],
        "{}",
        report.summary
    );
    assert!(harness.syncer.deploy_if_needed().await.unwrap().is_none());
    // The event again (as `serve` retries it): now associated.
    harness
        .sync_ok(&invoice_event("invoice.created", &billing))
        .await;
    let invoice_record = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_old");
    let subscription_record = record_by(
        &harness.hubspot,
        &subscriptions,
        "lago_subscription_id",
        "sub_old",
    );
    assert_eq!(
        harness
            .hubspot
            .associations(&invoices, &invoice_record.id, &subscriptions),
        std::slice::from_ref(&subscription_record.id)
    );

    // Credit notes turned on for the connection (a syncer with the new settings, as a restarted
    // `serve` has): LagoCreditNotes and its definition with LagoInvoices are added.
    let syncer = syncer_for(
        &harness.hubspot,
        Store::open_in_memory().unwrap(),
        with_credit_notes(),
    );
    harness.hubspot.clear_request_log();
    let report = syncer
        .deploy_if_needed()
        .await
        .unwrap()
        .expect("credit notes on, LagoCreditNotes unknown");
    let credit_notes = report
        .credit_notes_object_type_id
        .clone()
        .expect("LagoCreditNotes deployed");
    assert_eq!(
        writes(&harness.hubspot),
        [
            "POST /crm-object-schemas/v3/schemas".to_owned(),
            format!("POST /crm-object-schemas/v3/schemas/{credit_notes}/associations"),
        ],
        "{}",
        report.summary
    );
    for key in [
        INVOICES_SUBSCRIPTIONS_ASSOCIATION,
        CREDIT_NOTES_INVOICES_ASSOCIATION,
    ] {
        assert!(
            syncer
                .store()
                .hubspot_id("hubspot-test", RecordKind::ObjectSchema, key)
                .unwrap()
                .is_some(),
            "{key} stored"
        );
    }
    let schema = harness
        .hubspot
        .schemas()
        .into_iter()
        .find(|s| s["name"] == CREDIT_NOTES_SCHEMA)
        .unwrap();
    let associated: Vec<&str> = schema["associations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|a| [a["fromObjectTypeId"].as_str(), a["toObjectTypeId"].as_str()])
        .flatten()
        .collect();
    for other in ["0-1", "0-2", invoices.as_str()] {
        assert!(associated.contains(&other), "{other}: {associated:?}");
    }

    // A second deploy writes nothing.
    let before = writes(&harness.hubspot).len();
    let second = syncer.deploy().await.unwrap();
    assert_eq!(second.writes, 0, "{}", second.summary);
    assert_eq!(writes(&harness.hubspot).len(), before);
    assert!(syncer.deploy_if_needed().await.unwrap().is_none());

    // And a credit note on the old invoice links both ways.
    syncer
        .sync_event(&customer_event("customer.created", &customer).to_string())
        .await;
    let outcome = syncer
        .sync_event(
            &credit_note_event("credit_note.created", &credit_note("cn_old", &billing)).to_string(),
        )
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    let record = record_by(
        &harness.hubspot,
        &credit_notes,
        "lago_credit_note_id",
        "cn_old",
    );
    assert_eq!(
        harness
            .hubspot
            .associations(&credit_notes, &record.id, &invoices),
        [invoice_record.id]
    );
}

/// The same events through `sync_batch` (what `backfill` uses), whose plans are all made before
/// any is sent: every credit note and invoice still ends associated with its records, and the
/// id-only upserts never duplicate a record or clear its properties.
#[tokio::test]
async fn batched_credit_notes_and_invoices_keep_their_associations() {
    let harness = Harness::new(with_credit_notes()).await;
    harness.syncer.deploy().await.expect("deploy");
    let (subscriptions, invoices, credit_notes) = type_ids(&harness);
    harness.hubspot.clear_request_log();
    let mut payloads = Vec::new();
    for n in 0..3 {
        let customer = customer(&format!("cus_b{n}"), Some("company"));
        let started = subscription(&format!("sub_b{n}"), &customer, "active");
        let billing = invoice_billing(&format!("inv_b{n}"), &customer, &[&started]);
        payloads.push(customer_event("customer.created", &customer));
        payloads.push(subscription_event("subscription.started", &started));
        payloads.push(invoice_event("invoice.created", &billing));
        payloads.push(credit_note_event(
            "credit_note.created",
            &credit_note(&format!("cn_b{n}"), &billing),
        ));
    }
    // A credit note whose invoice comes later in the same batch.
    let late_customer = customer("cus_late", Some("company"));
    let late_invoice = invoice("inv_b_late", &late_customer, "finalized", "pending");
    payloads.push(credit_note_event(
        "credit_note.created",
        &credit_note("cn_b_late", &late_invoice),
    ));
    payloads.push(invoice_event("invoice.created", &late_invoice));
    let payloads: Vec<String> = payloads.iter().map(Value::to_string).collect();

    let outcomes = harness.syncer.sync_batch(&payloads).await;
    for outcome in &outcomes {
        assert_eq!(
            outcome.status,
            OutcomeStatus::Synced,
            "{}: {}",
            outcome.webhook_type,
            outcome.detail
        );
    }
    assert_eq!(harness.hubspot.records(&subscriptions).len(), 3);
    assert_eq!(harness.hubspot.records(&invoices).len(), 4);
    assert_eq!(harness.hubspot.records(&credit_notes).len(), 4);
    for n in ["0", "1", "2", "_late"] {
        let invoice = record_by(
            &harness.hubspot,
            &invoices,
            "lago_invoice_id",
            &format!("inv_b{n}"),
        );
        assert_eq!(invoice.properties["lago_invoice_total_amount"], "123.45");
        let credit_note = record_by(
            &harness.hubspot,
            &credit_notes,
            "lago_credit_note_id",
            &format!("cn_b{n}"),
        );
        assert_eq!(
            harness
                .hubspot
                .associations(&credit_notes, &credit_note.id, &invoices),
            std::slice::from_ref(&invoice.id),
            "cn_b{n}"
        );
        if n != "_late" {
            let subscription = record_by(
                &harness.hubspot,
                &subscriptions,
                "lago_subscription_id",
                &format!("sub_b{n}"),
            );
            assert_eq!(
                subscription.properties["lago_subscription_status"],
                "active"
            );
            assert_eq!(
                harness
                    .hubspot
                    .associations(&subscriptions, &subscription.id, &invoices),
                std::slice::from_ref(&invoice.id),
                "sub_b{n}"
            );
        }
    }
    // Coalesced: far fewer requests than steps.
    let batch_writes = writes(&harness.hubspot)
        .iter()
        .filter(|w| w.contains("/batch/"))
        .count();
    assert!(batch_writes < payloads.len() * 2, "{batch_writes}");
}

/// `backfill --from` keeps what each event carries: an invoice's later events (`generated`,
/// `payment_status_updated`) do not list its subscriptions, so the earlier `created` is sent
/// too and the association survives; credit notes are records of their own kind, remembered as
/// done, so a second run sends nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_from_exported_webhooks_keeps_associations_and_runs_once() {
    use lago_hubspot::backfill::{self, ObjectKind, ProgressMode, RunOptions};

    let harness = Harness::new(with_credit_notes()).await;
    harness.syncer.deploy().await.unwrap();
    let customer = customer(CUS, Some("company"));
    let started = subscription("sub_bf", &customer, "active");
    let created = invoice_billing("inv_bf", &customer, &[&started]);
    let mut generated = invoice("inv_bf", &customer, "finalized", "succeeded");
    generated["file_url"] = json!("https://lago.example.com/files/inv_bf-final.pdf");
    let note = credit_note("cn_bf", &created);
    let lines = [
        customer_event("customer.created", &customer),
        subscription_event("subscription.started", &started),
        invoice_event("invoice.created", &created),
        invoice_event("invoice.generated", &generated),
        credit_note_event("credit_note.created", &note),
        credit_note_event("credit_note.generated", &note),
    ];
    let dir = std::env::temp_dir().join(format!("lago-hubspot-bf-from-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let text: Vec<String> = lines.iter().map(Value::to_string).collect();
    std::fs::write(&file, text.join("\n")).unwrap();
    let options = RunOptions {
        force: false,
        progress: ProgressMode::Quiet,
        batch: true,
    };

    let summary = backfill::from_jsonl(&harness.syncer, &file, &options)
        .await
        .unwrap();
    assert!(summary.is_success(), "{summary:?}");
    let connection = harness.syncer.connection().unwrap();
    let (invoices, subscriptions) = (
        connection.invoices_object_type_id.unwrap(),
        connection.subscriptions_object_type_id.unwrap(),
    );
    let invoice = record_by(&harness.hubspot, &invoices, "lago_invoice_id", "inv_bf");
    assert_eq!(
        invoice.properties["lago_invoice_file_url"],
        "https://lago.example.com/files/inv_bf-final.pdf",
        "the latest event's state"
    );
    assert_eq!(
        invoice.properties["lago_invoice_payment_status"],
        "succeeded"
    );
    let subscription = record_by(
        &harness.hubspot,
        &subscriptions,
        "lago_subscription_id",
        "sub_bf",
    );
    assert_eq!(
        harness
            .hubspot
            .associations(&invoices, &invoice.id, &subscriptions),
        std::slice::from_ref(&subscription.id),
        "the invoice is associated with the subscription it bills"
    );
    let credit_notes = connection.credit_notes_object_type_id.unwrap();
    assert_eq!(harness.hubspot.records(&credit_notes).len(), 1);
    let counts = |summary: &lago_hubspot::backfill::Summary, kind| {
        summary.counts.get(&kind).map(|c| (c.synced, c.unchanged))
    };
    assert_eq!(counts(&summary, ObjectKind::CreditNotes), Some((1, 0)));

    let before = writes(&harness.hubspot).len();
    let again = backfill::from_jsonl(&harness.syncer, &file, &options)
        .await
        .unwrap();
    assert_eq!(
        writes(&harness.hubspot).len(),
        before,
        "a finished backfill sends nothing"
    );
    assert_eq!(counts(&again, ObjectKind::CreditNotes), Some((0, 1)));
}
