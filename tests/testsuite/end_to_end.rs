//! The built component, loaded by the harness, against the HubSpot emulator on loopback.

use lago_hubspot::config::{
    ConnectionSettings, DefaultObject, INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA,
};
use lago_hubspot::runtime::{IdRef, Operation, RecordKind};
use lago_hubspot::samples::SAMPLE_EVENTS;
use lago_hubspot::sync::OutcomeStatus;
use serde_json::{Value, json};

use crate::support::*;

fn writes(hubspot: &lago_hubspot_emulators::hubspot::RunningEmulator) -> usize {
    hubspot
        .request_log()
        .iter()
        .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
        .count()
}

#[tokio::test]
async fn deploy_creates_everything_once_and_a_second_deploy_writes_nothing() {
    let harness = Harness::new(settings()).await;
    let first = harness.syncer.deploy().await.expect("first deploy");
    assert!(first.writes > 0);
    let subscriptions = first
        .subscriptions_object_type_id
        .clone()
        .expect("type id stored");
    let invoices = first
        .invoices_object_type_id
        .clone()
        .expect("type id stored");
    assert!(subscriptions.starts_with("2-") && invoices.starts_with("2-"));

    let companies = harness.hubspot.property_names("companies");
    for name in [
        "lago_customer_id",
        "lago_customer_external_id",
        "lago_billing_email",
        "lago_tax_identification_number",
        "lago_customer_link",
    ] {
        assert!(
            companies.contains(&name.to_owned()),
            "companies lack {name}"
        );
    }
    assert!(
        harness
            .hubspot
            .property_names("contacts")
            .contains(&"lago_customer_id".to_owned())
    );
    let invoice_props = harness.hubspot.property_names(&invoices);
    for name in [
        "lago_invoice_id",
        "lago_invoice_total_amount",
        "lago_invoice_file_url",
        "lago_invoice_payment_overdue",
    ] {
        assert!(
            invoice_props.contains(&name.to_owned()),
            "LagoInvoices lacks {name}"
        );
    }
    assert!(
        harness
            .hubspot
            .property_names(&subscriptions)
            .contains(&"lago_billing_time".to_owned())
    );

    let before = writes(&harness.hubspot);
    let second = harness.syncer.deploy().await.expect("second deploy");
    assert_eq!(
        second.writes, 0,
        "second deploy planned: {}",
        second.summary
    );
    assert_eq!(
        writes(&harness.hubspot),
        before,
        "second deploy sent a write"
    );
    assert_eq!(
        second.invoices_object_type_id.as_deref(),
        Some(invoices.as_str())
    );
}

#[tokio::test]
async fn deploy_adds_properties_missing_on_an_object_that_already_exists() {
    let harness = Harness::new(settings()).await;
    // An older installation: LagoInvoices exists, but without the properties Lago added later.
    let schema = json!({
        "name": "LagoInvoices",
        "labels": {"singular": "LagoInvoice", "plural": "LagoInvoices"},
        "primaryDisplayProperty": "lago_invoice_id",
        "requiredProperties": ["lago_invoice_id"],
        "searchableProperties": ["lago_invoice_id"],
        "associatedObjects": ["COMPANY", "CONTACT"],
        "properties": [
            {"name": "lago_invoice_id", "label": "Lago Invoice Id", "type": "string", "fieldType": "text", "hasUniqueValue": true},
            {"name": "lago_invoice_number", "label": "Lago Invoice Number", "type": "string", "fieldType": "text"}
        ]
    });
    let created = harness
        .client()
        .send(
            http::Method::POST,
            "/crm-object-schemas/v3/schemas",
            Some(schema.to_string().into()),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201, "{}", created.error_summary());
    let type_id = created.json().unwrap()["objectTypeId"]
        .as_str()
        .unwrap()
        .to_owned();

    let report = harness.syncer.deploy().await.expect("deploy");
    assert_eq!(
        report.invoices_object_type_id.as_deref(),
        Some(type_id.as_str())
    );
    let names = harness.hubspot.property_names(&type_id);
    for name in [
        "lago_invoice_url",
        "lago_invoice_purchase_order_number",
        "lago_invoice_total_due_amount",
    ] {
        assert!(
            names.contains(&name.to_owned()),
            "missing property {name} was not added"
        );
    }
    assert_eq!(
        harness.hubspot.schemas().len(),
        2,
        "no second LagoInvoices object"
    );
}

#[tokio::test]
async fn customers_become_companies_or_contacts_by_the_targeting_rule() {
    let harness = Harness::deployed().await;
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer("cus_co", Some("company")),
        ))
        .await;
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer("cus_ind", Some("individual")),
        ))
        .await;
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer("cus_none", None),
        ))
        .await;

    let companies = harness.hubspot.records("companies");
    let contacts = harness.hubspot.records("contacts");
    let company = companies
        .iter()
        .find(|r| r.properties["lago_customer_id"] == "cus_co")
        .expect("company");
    assert_eq!(company.properties["name"], "Customer cus_co");
    assert_eq!(company.properties["domain"], "www.cus_co.example.com");
    assert_eq!(
        company.properties["lago_customer_external_id"],
        "ext-cus_co"
    );
    assert_eq!(
        company.properties["lago_tax_identification_number"],
        "FR123456789"
    );
    assert_eq!(
        company.properties["lago_customer_link"],
        "https://lago.example.com/acme/customer/cus_co"
    );
    // Untyped customers follow the connection default (companies here).
    assert!(
        companies
            .iter()
            .any(|r| r.properties["lago_customer_id"] == "cus_none")
    );

    let contact = contacts
        .iter()
        .find(|r| r.properties["lago_customer_id"] == "cus_ind")
        .expect("contact");
    // Lago allows a comma-separated list; HubSpot takes one address.
    assert_eq!(contact.properties["email"], "billing-cus_ind@example.com");
    assert_eq!(
        contact.properties["lago_billing_email"],
        "billing-cus_ind@example.com,finance-cus_ind@example.com"
    );
    assert_eq!(contact.properties["firstname"], "Ada");
    assert_eq!(contact.properties["company"], "cus_ind SAS");

    let id = harness
        .syncer
        .store()
        .hubspot_id("hubspot-test", RecordKind::Contact, "cus_ind")
        .unwrap();
    assert_eq!(
        id.as_deref(),
        Some(contact.id.as_str()),
        "the contact id is stored"
    );
}

#[tokio::test]
async fn the_connection_default_decides_for_untyped_customers() {
    let harness = Harness::new(ConnectionSettings {
        default_targeted_object: DefaultObject::Contacts,
        ..settings()
    })
    .await;
    harness.syncer.deploy().await.unwrap();
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer("cus_x", None),
        ))
        .await;
    assert_eq!(harness.hubspot.records("contacts").len(), 1);
    assert!(harness.hubspot.records("companies").is_empty());
}

#[tokio::test]
async fn a_customer_linked_to_an_existing_hubspot_record_updates_that_record() {
    let harness = Harness::deployed().await;
    let existing = harness
        .client()
        .send(
            http::Method::POST,
            "/crm/v3/objects/companies",
            Some(
                json!({"properties": {"name": "Acme (from sales)", "domain": "acme.test"}})
                    .to_string()
                    .into(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(existing.status, 201, "{}", existing.error_summary());
    let existing_id = existing.json().unwrap()["id"].as_str().unwrap().to_owned();

    let mut linked = customer("cus_linked", Some("company"));
    linked["integration_customers"] = json!([{
        "lago_id": "ic-1", "type": "hubspot", "integration_code": "hubspot-test",
        "external_customer_id": existing_id, "targeted_object": "companies", "sync_with_provider": false
    }]);
    harness
        .sync_ok(&customer_event("customer.updated", &linked))
        .await;

    let companies = harness.hubspot.records("companies");
    assert_eq!(companies.len(), 1, "no new company was created");
    assert_eq!(companies[0].id, existing_id);
    assert_eq!(companies[0].properties["lago_customer_id"], "cus_linked");

    // Its subscriptions are associated with the linked record.
    let sub = subscription("sub_l", &linked, "active");
    harness
        .sync_ok(&subscription_event("subscription.started", &sub))
        .await;
    let subs = harness.hubspot.records(SUBSCRIPTIONS_SCHEMA);
    assert_eq!(
        harness
            .hubspot
            .associations(SUBSCRIPTIONS_SCHEMA, &subs[0].id, "companies"),
        vec![existing_id]
    );
}

#[tokio::test]
async fn subscriptions_and_invoices_follow_their_lifecycle_with_associations() {
    let harness = Harness::deployed().await;
    let acme = customer("cus_acme", Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &acme))
        .await;
    let company_id = harness.hubspot.records("companies")[0].id.clone();

    harness
        .sync_ok(&subscription_event(
            "subscription.started",
            &subscription("sub_1", &acme, "active"),
        ))
        .await;
    harness
        .sync_ok(&invoice_event(
            "invoice.created",
            &invoice("inv_1", &acme, "finalized", "pending"),
        ))
        .await;

    let subs = harness.hubspot.records(SUBSCRIPTIONS_SCHEMA);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].properties["lago_subscription_status"], "active");
    assert_eq!(
        subs[0].properties["lago_subscription_started_at"],
        "2026-02-01"
    );
    assert_eq!(subs[0].properties["lago_billing_time"], "anniversary");
    assert_eq!(
        subs[0].properties["lago_subscription_link"],
        "https://lago.example.com/acme/customer/cus_acme/subscription/sub_1/overview"
    );
    assert_eq!(
        harness
            .hubspot
            .associations(SUBSCRIPTIONS_SCHEMA, &subs[0].id, "companies"),
        vec![company_id.clone()]
    );

    let invoices = harness.hubspot.records(INVOICES_SCHEMA);
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        invoices[0].properties["lago_invoice_total_amount"],
        "123.45"
    );
    assert_eq!(
        invoices[0].properties["lago_invoice_subtotal_excluding_taxes"],
        "102.5"
    );
    assert_eq!(
        invoices[0].properties["lago_invoice_payment_status"],
        "pending"
    );
    assert_eq!(
        invoices[0].properties["lago_invoice_issuing_date"],
        "2026-03-01"
    );
    assert_eq!(
        harness
            .hubspot
            .associations(INVOICES_SCHEMA, &invoices[0].id, "companies"),
        vec![company_id.clone()]
    );

    // Payment, void and termination update the same records.
    harness
        .sync_ok(&invoice_event(
            "invoice.payment_status_updated",
            &invoice("inv_1", &acme, "finalized", "succeeded"),
        ))
        .await;
    harness
        .sync_ok(&invoice_event(
            "invoice.voided",
            &invoice("inv_1", &acme, "voided", "succeeded"),
        ))
        .await;
    harness
        .sync_ok(&subscription_event(
            "subscription.terminated",
            &subscription("sub_1", &acme, "terminated"),
        ))
        .await;

    let invoices = harness.hubspot.records(INVOICES_SCHEMA);
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0].properties["lago_invoice_status"], "voided");
    assert_eq!(
        invoices[0].properties["lago_invoice_payment_status"],
        "succeeded"
    );
    let subs = harness.hubspot.records(SUBSCRIPTIONS_SCHEMA);
    assert_eq!(subs.len(), 1);
    assert_eq!(subs[0].properties["lago_subscription_status"], "terminated");
    assert_eq!(
        subs[0].properties["lago_subscription_terminated_at"],
        "2026-06-30"
    );
    assert_eq!(
        harness
            .hubspot
            .associations(INVOICES_SCHEMA, &invoices[0].id, "companies")
            .len(),
        1
    );

    // The sync log answers "what happened to this invoice?".
    let log = harness
        .syncer
        .store()
        .sync_log("hubspot-test", "inv_1")
        .unwrap();
    assert_eq!(log.len(), 3);
    assert!(log.iter().all(|entry| entry.outcome == "synced"));
}

/// An invoice is associated with the LagoSubscriptions records of the subscriptions it bills (the
/// `subscriptions` its payload lists), so a subscription in HubSpot shows its invoices: by the
/// known id, or, for a subscription HubSpot has not seen yet, through an upsert of its id alone
/// that its own event fills later. Never-started subscriptions stay out.
#[tokio::test]
async fn an_invoice_is_associated_with_the_subscriptions_it_bills() {
    let harness = Harness::deployed().await;
    let connection = harness.syncer.connection().unwrap();
    let subscriptions = connection.subscriptions_object_type_id.unwrap();
    let invoices = connection.invoices_object_type_id.unwrap();
    let acme = customer("cus_billed", Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &acme))
        .await;
    let started = subscription("sub_billed", &acme, "active");
    harness
        .sync_ok(&subscription_event("subscription.started", &started))
        .await;
    let mut never_started = subscription("sub_pending", &acme, "pending");
    never_started["started_at"] = Value::Null;
    let listed = |subscriptions: &[&Value]| -> Value {
        subscriptions
            .iter()
            .map(|s| {
                let mut s = (*s).clone();
                s.as_object_mut().unwrap().remove("customer");
                s
            })
            .collect()
    };
    let mut billing = invoice("inv_billed", &acme, "finalized", "pending");
    billing["subscriptions"] = listed(&[&started, &never_started]);

    // Customer and subscription known: upsert, company, subscription.
    let before = harness.hubspot.request_log().len();
    harness
        .sync_ok(&invoice_event("invoice.created", &billing))
        .await;
    let sent: Vec<String> = harness.hubspot.request_log()[before..]
        .iter()
        .map(|r| r.path.clone())
        .collect();
    assert_eq!(
        sent,
        [
            format!("/crm/v3/objects/{invoices}/batch/upsert"),
            format!("/crm/v4/associations/{invoices}/companies/batch/associate/default"),
            format!("/crm/v4/associations/{invoices}/{subscriptions}/batch/associate/default"),
        ]
    );
    let invoice_id = harness.hubspot.records(&invoices)[0].id.clone();
    let subscription_id = harness.hubspot.records(&subscriptions)[0].id.clone();
    assert_eq!(
        harness
            .hubspot
            .associations(&subscriptions, &subscription_id, &invoices),
        std::slice::from_ref(&invoice_id),
        "the subscription shows its invoice"
    );
    assert_eq!(
        harness.hubspot.records(&subscriptions).len(),
        1,
        "the never-started subscription is not pushed"
    );

    // An invoice billing a subscription whose own event has not arrived yet.
    let renewed = subscription("sub_later", &acme, "active");
    let mut second = invoice("inv_later", &acme, "finalized", "pending");
    second["subscriptions"] = listed(&[&renewed]);
    let before = harness.hubspot.request_log().len();
    harness
        .sync_ok(&invoice_event("invoice.created", &second))
        .await;
    assert_eq!(harness.hubspot.request_log().len() - before, 4);
    let stub = harness
        .hubspot
        .records(&subscriptions)
        .into_iter()
        .find(|r| r.properties["lago_subscription_id"] == "sub_later")
        .expect("found or created by its id");
    assert!(!stub.properties.contains_key("lago_subscription_status"));
    harness
        .sync_ok(&subscription_event("subscription.started", &renewed))
        .await;
    let filled: Vec<_> = harness
        .hubspot
        .records(&subscriptions)
        .into_iter()
        .filter(|r| r.properties["lago_subscription_id"] == "sub_later")
        .collect();
    assert_eq!(filled.len(), 1, "the same record, filled");
    assert_eq!(filled[0].id, stub.id);
    assert_eq!(filled[0].properties["lago_subscription_status"], "active");
    let second_id = harness
        .hubspot
        .records(&invoices)
        .into_iter()
        .find(|r| r.properties["lago_invoice_id"] == "inv_later")
        .unwrap()
        .id;
    assert_eq!(
        harness
            .hubspot
            .associations(&subscriptions, &stub.id, &invoices),
        [second_id]
    );

    // `invoice.generated` lists no subscriptions: the association stays, nothing else is sent.
    let before = harness.hubspot.request_log().len();
    harness
        .sync_ok(&invoice_event(
            "invoice.generated",
            &invoice("inv_billed", &acme, "finalized", "pending"),
        ))
        .await;
    assert_eq!(harness.hubspot.request_log().len() - before, 2);
    assert_eq!(
        harness
            .hubspot
            .associations(&invoices, &invoice_id, &subscriptions),
        [subscription_id]
    );
}

#[tokio::test]
async fn amounts_use_the_currency_exponent() {
    let harness = Harness::deployed().await;
    let acme = customer("cus_fx", Some("company"));
    let mut yen = invoice("inv_jpy", &acme, "finalized", "pending");
    yen["currency"] = json!("JPY");
    yen["total_amount_cents"] = json!(1500);
    let mut dinar = invoice("inv_kwd", &acme, "finalized", "pending");
    dinar["currency"] = json!("KWD");
    dinar["total_amount_cents"] = json!(12345);
    harness
        .sync_ok(&invoice_event("invoice.created", &yen))
        .await;
    harness
        .sync_ok(&invoice_event("invoice.created", &dinar))
        .await;
    let invoices = harness.hubspot.records(INVOICES_SCHEMA);
    let total = |id: &str| {
        invoices
            .iter()
            .find(|r| r.properties["lago_invoice_id"] == id)
            .unwrap()
            .properties["lago_invoice_total_amount"]
            .clone()
    };
    assert_eq!(total("inv_jpy"), "1500");
    assert_eq!(total("inv_kwd"), "12.345");
}

#[tokio::test]
async fn an_invoice_before_its_customer_creates_the_customer_once() {
    let harness = Harness::deployed().await;
    let early = customer("cus_early", Some("company"));
    harness
        .sync_ok(&invoice_event(
            "invoice.created",
            &invoice("inv_e", &early, "finalized", "pending"),
        ))
        .await;
    harness
        .sync_ok(&customer_event("customer.created", &early))
        .await;
    harness
        .sync_ok(&subscription_event(
            "subscription.started",
            &subscription("sub_e", &early, "active"),
        ))
        .await;
    assert_eq!(harness.hubspot.records("companies").len(), 1);
    let invoice_id = harness.hubspot.records(INVOICES_SCHEMA)[0].id.clone();
    assert_eq!(
        harness
            .hubspot
            .associations(INVOICES_SCHEMA, &invoice_id, "companies")
            .len(),
        1
    );
}

#[tokio::test]
async fn drafts_and_pending_subscriptions_are_not_pushed() {
    let harness = Harness::deployed().await;
    let acme = customer("cus_d", Some("company"));
    let draft = harness
        .syncer
        .sync_event(
            &invoice_event(
                "invoice.drafted",
                &invoice("inv_d", &acme, "draft", "pending"),
            )
            .to_string(),
        )
        .await;
    let pending = harness
        .syncer
        .sync_event(
            &subscription_event(
                "subscription.updated",
                &subscription("sub_p", &acme, "pending"),
            )
            .to_string(),
        )
        .await;
    // invoice.drafted is not an invoice event the product syncs; either way nothing is written.
    assert_ne!(draft.status, OutcomeStatus::Synced);
    assert_eq!(pending.status, OutcomeStatus::Skipped, "{}", pending.detail);
    let created = harness
        .syncer
        .sync_event(
            &invoice_event(
                "invoice.created",
                &invoice("inv_d", &acme, "draft", "pending"),
            )
            .to_string(),
        )
        .await;
    assert_eq!(created.status, OutcomeStatus::Skipped, "{}", created.detail);
    assert!(harness.hubspot.records(INVOICES_SCHEMA).is_empty());
    assert!(harness.hubspot.records(SUBSCRIPTIONS_SCHEMA).is_empty());
}

#[tokio::test]
async fn replaying_the_sample_events_creates_no_duplicates() {
    let harness = Harness::deployed().await;
    // Sample 03 links its customer to a company a salesperson created; the service has one
    // connection, so the link is honoured whatever code it names.
    harness
        .hubspot
        .seed_record(
            "companies",
            "9000001",
            json!({"name": "Globex (created in HubSpot)"}),
        )
        .unwrap();
    for round in 0..2 {
        for (name, payload) in SAMPLE_EVENTS {
            let outcome = harness.syncer.sync_event(payload).await;
            assert_ne!(
                outcome.status,
                OutcomeStatus::Failed,
                "round {round}, {name}: {}",
                outcome.detail
            );
        }
        let counts: Vec<usize> = [
            "companies",
            "contacts",
            SUBSCRIPTIONS_SCHEMA,
            INVOICES_SCHEMA,
        ]
        .iter()
        .map(|t| harness.hubspot.records(t).len())
        .collect();
        if round == 0 {
            assert!(
                counts.iter().sum::<usize>() >= 4,
                "samples created records: {counts:?}"
            );
        }
        let again: Vec<usize> = [
            "companies",
            "contacts",
            SUBSCRIPTIONS_SCHEMA,
            INVOICES_SCHEMA,
        ]
        .iter()
        .map(|t| harness.hubspot.records(t).len())
        .collect();
        assert_eq!(counts, again);
    }
    // A fresh state database (the host forgot every id) still creates nothing twice.
    let before: usize = [
        "companies",
        "contacts",
        SUBSCRIPTIONS_SCHEMA,
        INVOICES_SCHEMA,
    ]
    .iter()
    .map(|t| harness.hubspot.records(t).len())
    .sum();
    let forgetful = syncer_for(
        &harness.hubspot,
        lago_hubspot::store::Store::open_in_memory().unwrap(),
        settings(),
    );
    forgetful.deploy().await.unwrap();
    for (_, payload) in SAMPLE_EVENTS {
        forgetful.sync_event(payload).await;
    }
    let after: usize = [
        "companies",
        "contacts",
        SUBSCRIPTIONS_SCHEMA,
        INVOICES_SCHEMA,
    ]
    .iter()
    .map(|t| harness.hubspot.records(t).len())
    .sum();
    assert_eq!(before, after);
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_the_next_event_still_syncs() {
    let harness = Harness::deployed().await;
    let cases: Vec<(String, &str)> = vec![
        ("this is not json".into(), "malformed payload"),
        (json!({"hello": "world"}).to_string(), "malformed payload"),
        (json!({"webhook_type": "customer.created", "object_type": "customer"}).to_string(), "missing field"),
        (json!({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {"status": "finalized"}}).to_string(), "missing field"),
    ];
    for (payload, expected) in cases {
        let outcome = harness.syncer.sync_event(&payload).await;
        assert_eq!(outcome.status, OutcomeStatus::Failed, "{payload}");
        assert!(
            outcome.detail.starts_with(expected),
            "{payload}: {}",
            outcome.detail
        );
    }
    // A type the sync ignores on purpose, or one this release does not know, is a success
    // with a reason, not an error.
    for (payload, expected) in [
        (
            json!({"webhook_type": "plan.created", "object_type": "plan", "plan": {}}),
            "plan.created is not synced",
        ),
        (
            json!({"webhook_type": "customer.deleted", "object_type": "customer", "customer": customer("c", None)}),
            "not a Lago webhook type this release knows",
        ),
    ] {
        let outcome = harness.syncer.sync_event(&payload.to_string()).await;
        assert_eq!(outcome.status, OutcomeStatus::Skipped, "{payload}");
        assert!(outcome.detail.contains(expected), "{}", outcome.detail);
    }
    harness
        .sync_ok(&customer_event(
            "customer.created",
            &customer("cus_after", Some("company")),
        ))
        .await;
    assert_eq!(harness.hubspot.records("companies").len(), 1);
}

#[tokio::test]
async fn hubspot_errors_are_reported_with_hubspots_message() {
    // Not deployed: the guest says so instead of sending requests HubSpot would reject.
    let harness = Harness::new(settings()).await;
    let acme = customer("cus_nd", Some("company"));
    let outcome = harness
        .syncer
        .sync_event(
            &invoice_event(
                "invoice.created",
                &invoice("inv_nd", &acme, "finalized", "pending"),
            )
            .to_string(),
        )
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Failed);
    assert!(
        outcome.detail.starts_with("not deployed"),
        "{}",
        outcome.detail
    );

    // A wrong token: HubSpot's 401 message and correlation id reach the operator.
    let wrong = lago_hubspot::sync::Syncer::new(
        plugin(),
        lago_hubspot::hubspot_http::HubspotClient::new(
            &harness.hubspot.url,
            lago_hubspot::hubspot_http::Secret::new("wrong"),
        )
        .unwrap(),
        lago_hubspot::store::Store::open_in_memory().unwrap(),
        settings(),
    )
    .unwrap();
    let outcome = wrong
        .sync_event(&customer_event("customer.created", &acme).to_string())
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Failed);
    assert!(outcome.detail.contains("HTTP 401"), "{}", outcome.detail);
    assert!(
        outcome.detail.contains("correlation id"),
        "{}",
        outcome.detail
    );
    assert!(
        !outcome.detail.contains("wrong"),
        "the token leaked into the error: {}",
        outcome.detail
    );
}

#[tokio::test]
async fn the_plan_names_no_secret_and_skips_lookups_the_store_can_answer() {
    let harness = Harness::deployed().await;
    let acme = customer("cus_p", Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &acme))
        .await;
    let plan = harness
        .syncer
        .plan(
            &subscription_event(
                "subscription.started",
                &subscription("sub_p", &acme, "active"),
            )
            .to_string(),
        )
        .await
        .unwrap()
        .expect("a plan");
    let text = serde_json::to_string(&plan).unwrap();
    assert!(!text.contains(TOKEN));
    // The customer's id is known, so the plan is the upsert and the association only.
    assert_eq!(plan.steps.len(), 2, "{text}");
    let company_id = harness.hubspot.records("companies")[0].id.clone();
    let Operation::Associate(association) = &plan.steps[1].operation else {
        panic!("{text}")
    };
    assert!(
        matches!(&association.to_id, IdRef::Known(id) if *id == company_id),
        "{text}"
    );
}
