//! A portal that is not empty (hubspot-api.md §9): contacts that came in through forms, companies
//! sales created, records deleted and merged. The same Lago sequence runs against an empty
//! portal and a lived-in one, in all three modes (`sync` one by one, batched `backfill`, `serve`),
//! and the final HubSpot state is asserted: no duplicate, nothing blocked, every subscription and
//! invoice associated with the adopted record.

use std::time::Duration;

use lago_hubspot::runtime::RecordKind;
use lago_hubspot::sync::{OutcomeStatus, Syncer};
use lago_hubspot_emulators::hubspot::{Emulator, Faults, RateLimit, Record, RunningEmulator};
use serde_json::{Value, json};

use crate::support::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sync,
    Backfill,
    Serve,
}

const MODES: [Mode; 3] = [Mode::Sync, Mode::Backfill, Mode::Serve];

/// What a salesperson's portal holds before the first sync; none of it has a `lago_*` property.
struct Portal {
    ada: Record,
    hooli: Record,
}

fn seed(hubspot: &RunningEmulator) -> Portal {
    let ada = hubspot
        .seed_records(
            "contacts",
            vec![json!({"email": "ada@lovelace.example.com", "firstname": "Ada", "lifecyclestage": "lead"})],
        )
        .unwrap()
        .remove(0);
    let hooli = hubspot
        .seed_records(
            "companies",
            vec![json!({"name": "Hooli (sales)", "domain": "hooli.example.com"})],
        )
        .unwrap()
        .remove(0);
    Portal { ada, hooli }
}

fn individual(lago_id: &str, email: &str) -> Value {
    let mut c = customer(lago_id, Some("individual"));
    c["email"] = json!(email);
    c["url"] = Value::Null;
    c
}

/// The Lago side: an individual whose email a contact already has, a second customer sharing
/// that billing address, a company whose domain a company already has, and an individual whose
/// email HubSpot refuses; subscriptions and invoices for the adopted ones.
fn lago_sequence() -> Vec<Value> {
    let ada = individual("cus_ada", "ada@lovelace.example.com");
    let ada_twin = individual("cus_ada_twin", "ada@lovelace.example.com");
    let mut hooli = customer("cus_hooli", Some("company"));
    hooli["url"] = json!("https://hooli.example.com/about");
    let odd = individual("cus_odd", "odd@acme.con");
    vec![
        customer_event("customer.created", &ada),
        customer_event("customer.created", &ada_twin),
        customer_event("customer.created", &hooli),
        customer_event("customer.created", &odd),
        subscription_event(
            "subscription.started",
            &subscription("sub_ada", &ada, "active"),
        ),
        invoice_event(
            "invoice.created",
            &invoice("inv_ada", &ada, "finalized", "pending"),
        ),
        subscription_event(
            "subscription.started",
            &subscription("sub_hooli", &hooli, "active"),
        ),
        invoice_event(
            "invoice.created",
            &invoice("inv_hooli", &hooli, "finalized", "pending"),
        ),
        invoice_event(
            "invoice.created",
            &invoice("inv_odd", &odd, "finalized", "pending"),
        ),
    ]
}

/// Runs `events` in `mode` against `hubspot`; returns the syncer (for ids) and every outcome
/// detail (sync and backfill) or every event's stored reason (serve).
async fn run(mode: Mode, hubspot: RunningEmulator, events: &[Value]) -> (Emulator, Vec<String>) {
    let lines: Vec<String> = events.iter().map(Value::to_string).collect();
    match mode {
        Mode::Sync | Mode::Backfill => {
            let syncer = syncer_for(
                &hubspot,
                lago_hubspot::store::Store::open_in_memory().unwrap(),
                settings(),
            );
            syncer.deploy().await.unwrap();
            let outcomes = match mode {
                Mode::Sync => {
                    let mut all = Vec::new();
                    for line in &lines {
                        all.push(syncer.sync_event(line).await);
                    }
                    all
                }
                _ => {
                    // Backfill sends customers first, then the rest, each kind batched.
                    let (customers, rest): (Vec<String>, Vec<String>) = lines
                        .iter()
                        .cloned()
                        .partition(|l| l.contains("\"customer.created\""));
                    let mut all = syncer.sync_batch(&customers).await;
                    all.extend(syncer.sync_batch(&rest).await);
                    all
                }
            };
            for outcome in &outcomes {
                assert_eq!(
                    outcome.status,
                    OutcomeStatus::Synced,
                    "{mode:?} {}: {}",
                    outcome.webhook_type,
                    outcome.detail
                );
            }
            let details = outcomes.into_iter().map(|o| o.detail).collect();
            (hubspot.emulator().clone(), details)
        }
        Mode::Serve => {
            let store = lago_hubspot::store::Store::open_in_memory().unwrap();
            let serve =
                ServeHarness::start_against(hubspot, store, ServeHarness::hmac_options()).await;
            for (n, line) in lines.iter().enumerate() {
                assert_eq!(
                    serve
                        .post_signed(line, &format!("lived-{n}"))
                        .await
                        .status(),
                    200
                );
            }
            serve.settled(Duration::from_secs(60)).await;
            let events = serve.syncer.store().events(None, 100).unwrap();
            for event in &events {
                assert_eq!(
                    event.state,
                    lago_hubspot::queue::EventState::Synced,
                    "serve {}: {:?}",
                    event.webhook_type,
                    event.last_error
                );
            }
            let log: Vec<String> = ["cus_ada", "cus_ada_twin", "cus_hooli", "cus_odd"]
                .iter()
                .flat_map(|id| serve.syncer.store().sync_log(&settings().code, id).unwrap())
                .map(|entry| entry.detail)
                .collect();
            let hubspot = serve.hubspot.emulator().clone();
            serve.stop().await.unwrap();
            (hubspot, log)
        }
    }
}

fn by(hubspot: &Emulator, object_type: &str, property: &str, value: &str) -> Vec<Record> {
    hubspot
        .records(object_type)
        .into_iter()
        .filter(|r| r.properties.get(property).map(String::as_str) == Some(value))
        .collect()
}

fn type_id(hubspot: &Emulator, name: &str) -> String {
    hubspot
        .schemas()
        .into_iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["objectTypeId"].as_str().map(str::to_owned))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn existing_records_are_adopted_in_every_mode() {
    for mode in MODES {
        let hubspot = start_hubspot().await;
        let portal = seed(&hubspot);
        let (hubspot, details) = run(mode, hubspot, &lago_sequence()).await;
        let invoices = type_id(&hubspot, "LagoInvoices");
        let subscriptions = type_id(&hubspot, "LagoSubscriptions");

        // 1. The contact with Ada's email is adopted: stamped, not duplicated. Ada and her twin
        // share the address; `serve` runs different customers concurrently, so there either may
        // come first: the first adopts the contact, the other gets its own without the email.
        let ada = hubspot.record("contacts", &portal.ada.id).unwrap();
        let (first, second) = match (mode, ada.properties["lago_customer_id"].as_str()) {
            (Mode::Serve, "cus_ada_twin") => ("cus_ada_twin", "cus_ada"),
            _ => ("cus_ada", "cus_ada_twin"),
        };
        assert_eq!(ada.properties["lago_customer_id"], first, "{mode:?}");
        assert_eq!(ada.properties["lifecyclestage"], "lead", "{mode:?}: kept");
        assert_eq!(
            by(&hubspot, "contacts", "email", "ada@lovelace.example.com").len(),
            1
        );
        let twin = by(&hubspot, "contacts", "lago_customer_id", second);
        assert_eq!(twin.len(), 1, "{mode:?}");
        assert!(twin[0].properties.get("email").is_none_or(|e| e.is_empty()));
        assert_eq!(
            twin[0].properties["lago_billing_email"], "ada@lovelace.example.com",
            "{mode:?}"
        );
        assert!(
            details
                .iter()
                .any(|d| d.contains("written without HubSpot's email")),
            "{mode:?}: the outcome says so: {details:#?}"
        );
        // 2. An email HubSpot refuses: the contact is written without it, with a warning.
        let odd = by(&hubspot, "contacts", "lago_customer_id", "cus_odd");
        assert_eq!(odd.len(), 1, "{mode:?}");
        assert!(odd[0].properties.get("email").is_none_or(|e| e.is_empty()));
        assert_eq!(odd[0].properties["lago_billing_email"], "odd@acme.con");
        assert!(
            details.iter().any(|d| d.contains("HubSpot refused email")),
            "{mode:?}: {details:#?}"
        );
        // 3. The company with Hooli's domain is adopted.
        let hooli = hubspot.record("companies", &portal.hooli.id).unwrap();
        assert_eq!(
            hooli.properties["lago_customer_id"], "cus_hooli",
            "{mode:?}"
        );
        assert_eq!(
            hubspot.records("companies").len(),
            1,
            "{mode:?}: no second company"
        );
        // Subscriptions and invoices are associated with the adopted records.
        let ada_contact = by(&hubspot, "contacts", "lago_customer_id", "cus_ada")[0]
            .id
            .clone();
        for (object_type, property, lago_id, to_type, to_id) in [
            (
                &subscriptions,
                "lago_subscription_id",
                "sub_ada",
                "contacts",
                &ada_contact,
            ),
            (
                &invoices,
                "lago_invoice_id",
                "inv_ada",
                "contacts",
                &ada_contact,
            ),
            (
                &subscriptions,
                "lago_subscription_id",
                "sub_hooli",
                "companies",
                &portal.hooli.id,
            ),
            (
                &invoices,
                "lago_invoice_id",
                "inv_hooli",
                "companies",
                &portal.hooli.id,
            ),
        ] {
            let record = &by(&hubspot, object_type, property, lago_id)[0];
            assert_eq!(
                hubspot.associations(object_type, &record.id, to_type),
                std::slice::from_ref(to_id),
                "{mode:?} {lago_id}"
            );
        }
        let odd_invoice = &by(&hubspot, &invoices, "lago_invoice_id", "inv_odd")[0];
        assert_eq!(
            hubspot.associations(&invoices, &odd_invoice.id, "contacts"),
            [odd[0].id.clone()]
        );
    }
}

/// The same sequence against an empty portal: everything is created, nothing else changes.
#[tokio::test(flavor = "multi_thread")]
async fn the_same_sequence_on_an_empty_portal_creates_everything() {
    for mode in MODES {
        let hubspot = start_hubspot().await;
        let (hubspot, _) = run(mode, hubspot, &lago_sequence()).await;
        assert_eq!(
            hubspot.records("contacts").len(),
            3,
            "{mode:?}: ada, the twin, odd"
        );
        assert_eq!(hubspot.records("companies").len(), 1, "{mode:?}");
        // Ada and her twin share an address: the second is written without HubSpot's email.
        assert_eq!(
            by(&hubspot, "contacts", "email", "ada@lovelace.example.com").len(),
            1
        );
    }
}

/// 6. Ids that went stale heal: a company deleted in HubSpot is written again on the customer's
/// next event; a merged one is followed to its new id. The events succeed.
#[tokio::test(flavor = "multi_thread")]
async fn deleted_and_merged_records_heal() {
    let harness = Harness::deployed().await;
    let hubspot = harness.hubspot.emulator();
    let invoices = harness
        .syncer
        .connection()
        .unwrap()
        .invoices_object_type_id
        .unwrap();
    let gone = customer("cus_gone", Some("company"));
    let merged = customer("cus_merged", Some("company"));
    for c in [&gone, &merged] {
        harness
            .sync_ok(&customer_event("customer.created", c))
            .await;
    }
    let company_of = |syncer: &Syncer, lago_id: &str| {
        syncer
            .store()
            .hubspot_id(&settings().code, RecordKind::Company, lago_id)
            .unwrap()
            .unwrap()
    };
    let gone_id = company_of(&harness.syncer, "cus_gone");
    hubspot.archive("companies", &gone_id).unwrap();
    let merged_id = company_of(&harness.syncer, "cus_merged");
    let other = hubspot
        .seed_records(
            "companies",
            vec![json!({"name": "Duplicate made by sales"})],
        )
        .unwrap()
        .remove(0);
    let merged_record = hubspot.merge("companies", &merged_id, &other.id).unwrap();
    assert_ne!(merged_record.id, merged_id);

    for (c, lago_id) in [(&gone, "inv_gone"), (&merged, "inv_merged")] {
        let outcome = harness
            .syncer
            .sync_event(
                &invoice_event(
                    "invoice.created",
                    &invoice(lago_id, c, "finalized", "pending"),
                )
                .to_string(),
            )
            .await;
        assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    }
    let new_gone = company_of(&harness.syncer, "cus_gone");
    assert_ne!(new_gone, gone_id, "written again");
    assert_eq!(
        hubspot.record("companies", &new_gone).unwrap().properties["lago_customer_id"],
        "cus_gone"
    );
    // A merged record keeps answering to its old id, so the event needs no healing; when the
    // ids are checked (as a failing event of that customer does), the new id is stored.
    let event = lago_hubspot::sync::EventRef::from_payload(
        &invoice_event(
            "invoice.created",
            &invoice("inv_merged", &merged, "finalized", "pending"),
        )
        .to_string(),
    );
    let payload = invoice_event(
        "invoice.created",
        &invoice("inv_merged", &merged, "finalized", "pending"),
    )
    .to_string();
    assert_eq!(
        lago_hubspot::portal::heal_ids(&harness.syncer, &event, &payload)
            .await
            .unwrap()
            .changed,
        1
    );
    assert_eq!(company_of(&harness.syncer, "cus_merged"), merged_record.id);
    for (lago_id, company) in [
        ("inv_gone", new_gone),
        ("inv_merged", merged_record.id.clone()),
    ] {
        let record = &by(hubspot, &invoices, "lago_invoice_id", lago_id)[0];
        assert_eq!(
            hubspot.associations(&invoices, &record.id, "companies"),
            [company],
            "{lago_id}"
        );
    }
}

/// A company sales created, with the domain `initech.example` and no Lago id.
fn seed_initech(hubspot: &RunningEmulator) -> Record {
    hubspot
        .seed_records(
            "companies",
            vec![json!({"name": "Initech", "domain": "initech.example"})],
        )
        .unwrap()
        .remove(0)
}

/// Two new customers with one domain in one batch: only the first adopts the company; a
/// customer's URL with `www.` still finds the company HubSpot keeps without it.
#[tokio::test(flavor = "multi_thread")]
async fn one_company_is_adopted_by_one_customer_only() {
    let harness = Harness::deployed().await;
    let initech = seed_initech(&harness.hubspot);
    let mut eu = customer("cus_initech_eu", Some("company"));
    eu["url"] = json!("https://www.initech.example/");
    let mut us = customer("cus_initech_us", Some("company"));
    us["url"] = json!("initech.example");
    let outcomes = harness
        .syncer
        .sync_batch(&[
            customer_event("customer.created", &eu).to_string(),
            customer_event("customer.created", &us).to_string(),
        ])
        .await;
    assert!(outcomes.iter().all(|o| o.status == OutcomeStatus::Synced));
    let adopted = harness.hubspot.record("companies", &initech.id).unwrap();
    assert_eq!(adopted.properties["lago_customer_id"], "cus_initech_eu");
    let hubspot = harness.hubspot.emulator();
    assert_eq!(
        by(hubspot, "companies", "lago_customer_id", "cus_initech_us").len(),
        1
    );
    assert_eq!(hubspot.records("companies").len(), 2);
}

/// A company lookup HubSpot refuses (search's own limit, spent by another client) never turns
/// into a blind create next to the company that has the domain: the customer's event fails, to
/// be retried, and its retry adopts the company.
#[tokio::test(flavor = "multi_thread")]
async fn a_refused_company_lookup_waits_instead_of_creating_a_duplicate() {
    let harness = Harness::deployed().await;
    let initech = seed_initech(&harness.hubspot);
    harness.hubspot.set_faults(Faults {
        search_rate_limit: Some(RateLimit {
            max: 1,
            interval_ms: 600_000,
        }),
        ..Faults::default()
    });
    let spent = reqwest::Client::new()
        .post(format!(
            "{}/crm/v3/objects/companies/search",
            harness.hubspot.url
        ))
        .bearer_auth(TOKEN)
        .json(&json!({"filterGroups": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(spent.status(), 200);
    let mut initech_customer = customer("cus_initech", Some("company"));
    initech_customer["url"] = json!("https://initech.example");
    let event = customer_event("customer.created", &initech_customer).to_string();
    let outcome = harness
        .syncer
        .sync_batch(std::slice::from_ref(&event))
        .await;
    assert_eq!(outcome[0].status, OutcomeStatus::Failed, "{outcome:?}");
    assert!(
        outcome[0].detail.contains("find companies by domain"),
        "{}",
        outcome[0].detail
    );
    let hubspot = harness.hubspot.emulator();
    assert_eq!(hubspot.records("companies").len(), 1, "no company created");

    harness.hubspot.set_faults(Faults::default());
    let again = harness.syncer.sync_batch(&[event]).await;
    assert_eq!(again[0].status, OutcomeStatus::Synced, "{again:?}");
    let adopted = harness.hubspot.record("companies", &initech.id).unwrap();
    assert_eq!(adopted.properties["lago_customer_id"], "cus_initech");
    assert_eq!(hubspot.records("companies").len(), 1);
}

/// A customer whose billing email changes to one a CRM contact already has keeps its own
/// contact (without HubSpot's email): never blocked.
#[tokio::test(flavor = "multi_thread")]
async fn an_email_change_to_a_crm_contacts_email_does_not_block_the_customer() {
    let harness = Harness::deployed().await;
    let cfo = harness
        .hubspot
        .seed_records("contacts", vec![json!({"email": "cfo@example.net"})])
        .unwrap()
        .remove(0);
    let mut kim = individual("cus_kim", "kim@example.org");
    harness
        .sync_ok(&customer_event("customer.created", &kim))
        .await;
    kim["email"] = json!("cfo@example.net");
    let outcome = harness
        .sync_ok(&customer_event("customer.updated", &kim))
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    let hubspot = harness.hubspot.emulator();
    let own = by(hubspot, "contacts", "lago_customer_id", "cus_kim");
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].properties["lago_billing_email"], "cfo@example.net");
    assert!(
        hubspot
            .record("contacts", &cfo.id)
            .unwrap()
            .properties
            .get("lago_customer_id")
            .is_none_or(|v| v.is_empty())
    );
}

/// A customer linked (in Lago, or with `lago-hubspot link`) to another record than the one
/// written for it before: the link wins; a linked record that is deleted heals.
#[tokio::test(flavor = "multi_thread")]
async fn links_win_over_earlier_records_and_heal_when_the_record_is_gone() {
    let harness = Harness::deployed().await;
    let original = harness
        .hubspot
        .seed_records("companies", vec![json!({"name": "Umbrella (CRM)"})])
        .unwrap()
        .remove(0);
    let umbrella = customer("cus_umbrella", Some("company"));
    harness
        .sync_ok(&customer_event("customer.created", &umbrella))
        .await;
    let hubspot = harness.hubspot.emulator();
    let duplicate = by(hubspot, "companies", "lago_customer_id", "cus_umbrella")[0]
        .id
        .clone();
    assert_ne!(duplicate, original.id);
    harness
        .syncer
        .store()
        .put_link(
            &settings().code,
            "cus_umbrella",
            &original.id,
            lago_hubspot::links::LinkedObject::Companies,
        )
        .unwrap();
    let outcome = harness
        .sync_ok(&customer_event("customer.updated", &umbrella))
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    assert_eq!(
        hubspot
            .record("companies", &original.id)
            .unwrap()
            .properties["lago_customer_id"],
        "cus_umbrella"
    );
    let invoices = harness
        .syncer
        .connection()
        .unwrap()
        .invoices_object_type_id
        .unwrap();
    harness
        .sync_ok(&invoice_event(
            "invoice.created",
            &invoice("inv_umbrella", &umbrella, "finalized", "pending"),
        ))
        .await;
    let record = &by(hubspot, &invoices, "lago_invoice_id", "inv_umbrella")[0];
    assert_eq!(
        hubspot.associations(&invoices, &record.id, "companies"),
        std::slice::from_ref(&original.id)
    );

    // The linked record is deleted in HubSpot: the customer is written as its own again.
    hubspot.archive("companies", &original.id).unwrap();
    let outcome = harness
        .sync_ok(&customer_event("customer.updated", &umbrella))
        .await;
    assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    assert!(
        outcome.detail.contains("no longer exists"),
        "{}",
        outcome.detail
    );
    assert_eq!(
        by(hubspot, "companies", "lago_customer_id", "cus_umbrella").len(),
        1
    );
    assert!(
        harness.syncer.store().links(None).unwrap().is_empty(),
        "the stale link is removed"
    );
}
