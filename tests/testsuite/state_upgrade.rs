//! State files written by earlier releases open with this release, upgrade in place, and keep
//! syncing without duplicates: release 0.1.0's (no schema version; `tests/fixtures/state-0.1.0/make.sh`
//! made it with that release's binary), whose connection, ids, backfill hashes and pending webhook
//! survive, the last one before lago:hubspot@0.2.0's (schema version 4;
//! `tests/fixtures/state-954e37c/make.sh`), whose pending webhook holds a plan of the old format,
//! and the previous release's (schema version 8; `tests/fixtures/state-fa49e5d/make.sh`), whose
//! pending webhook holds a typed plan to resume.

use std::path::PathBuf;

use lago_hubspot::backfill::ObjectKind;
use lago_hubspot::hubspot_http::{HubspotClient, Secret};
use lago_hubspot::queue::EventState;
use lago_hubspot::runtime::RecordKind;
use lago_hubspot::store::{SCHEMA_VERSION, Store};
use lago_hubspot::sync::{OutcomeStatus, Syncer};
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

use crate::support::*;

const FIXTURE_TOKEN: &str = "test-token";
const ACME: &str = "8d1f3c5e-2b7a-4c19-9e3f-6a0b5d7c2e41";
const KENJI: &str = "c4e2a7b9-6d13-4f58-8b2e-91a0f3d6e7c5";

fn fixture_copy(name: &str) -> PathBuf {
    fixture_copy_of("state-0.1.0", name)
}

/// A copy of `tests/fixtures/{fixture}/{fixture}.db`, to open and upgrade.
fn fixture_copy_of(fixture: &str, name: &str) -> PathBuf {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../tests/fixtures/{fixture}/{fixture}.db"));
    let dir = std::env::temp_dir().join(format!(
        "lago-hubspot-upgrade-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("state.db");
    std::fs::copy(fixture, &copy).unwrap();
    copy
}

fn sample(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../samples/events")
        .join(name);
    std::fs::read_to_string(path).unwrap()
}

/// The events the fixture's release synced, in its order.
const SYNCED_SAMPLES: [&str; 7] = [
    "01-customer-company.json",
    "02-customer-individual.json",
    "04-subscription-started.json",
    "05-invoice-created-eur.json",
    "06-invoice-payment-succeeded.json",
    "07-invoice-created-jpy.json",
    "09-subscription-terminated.json",
];

/// The last release before lago:hubspot@0.2.0 left a webhook pending with the raw-HTTP plan it
/// had stored before HubSpot became unreachable. This release upgrades the file (4 → current),
/// plans that event again in the typed format and syncs it once, next to the records the old
/// release wrote, without a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_event_planned_by_the_release_before_0_2_is_planned_again_and_synced_once() {
    pending_event_of_an_earlier_release_syncs_once("state-954e37c", |plan| {
        plan.contains("\"path\"")
    })
    .await;
}

/// The release before this one (schema 8, before the shared daily limit) left a webhook pending
/// with its typed plan stored. This release upgrades the file (8 → current), resumes that plan and
/// syncs the event once, next to the records the old release wrote, without a duplicate.
#[tokio::test(flavor = "multi_thread")]
async fn a_pending_event_of_the_previous_release_resumes_and_syncs_once() {
    pending_event_of_an_earlier_release_syncs_once("state-fa49e5d", |plan| {
        plan.contains("\"Upsert\"") && !plan.contains("\"path\"")
    })
    .await;
}

/// Opens `fixture` (samples 01, 02, 04, 05 synced; 07 pending with a stored plan that
/// `stored_plan` recognises) with this release beside a portal rebuilt as the fixture's release
/// left it, and serves until the pending event is synced: once, associated with the old records.
async fn pending_event_of_an_earlier_release_syncs_once(
    fixture: &str,
    stored_plan: fn(&str) -> bool,
) {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let mut settings = settings();
    settings.code = "hubspot".into();
    // The portal the fixture was synced to: the same writes in the same order give the same ids.
    let rebuild = Syncer::new(
        plugin(),
        HubspotClient::new(&hubspot.url, Secret::new(TOKEN)).unwrap(),
        Store::open_in_memory().unwrap(),
        settings.clone(),
    )
    .unwrap();
    rebuild.deploy().await.unwrap();
    for name in &SYNCED_SAMPLES[..4] {
        let outcome = rebuild.sync_event(&sample(name)).await;
        assert_eq!(
            outcome.status,
            OutcomeStatus::Synced,
            "{name}: {}",
            outcome.detail
        );
    }
    let before = |object: &str| hubspot.records(object).len();
    let (companies, contacts, invoices) = (
        before("companies"),
        before("contacts"),
        before("2-30000002"),
    );
    assert_eq!((companies, contacts, invoices), (1, 1, 1));

    let store = Store::open(&fixture_copy_of(fixture, fixture)).expect("it opens");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    let pending = store.events(Some(EventState::Pending), 10).unwrap();
    assert_eq!(pending.len(), 1);
    assert!(
        pending[0].plan.as_deref().is_some_and(stored_plan),
        "{:?}",
        pending[0].plan
    );
    assert_eq!(pending[0].attempts, 1);

    let serve = ServeHarness::start_with(
        hubspot,
        store,
        ServeHarness::hmac_options(),
        ClientSetup {
            settings: Some(settings),
            ..ClientSetup::default()
        },
    )
    .await;
    serve.settled(std::time::Duration::from_secs(30)).await;
    let event = serve.syncer.store().event(pending[0].id).unwrap().unwrap();
    assert_eq!(event.state, EventState::Synced, "{:?}", event.last_error);
    let hubspot = &serve.hubspot;
    assert_eq!(hubspot.records("companies").len(), companies);
    assert_eq!(hubspot.records("contacts").len(), contacts);
    let all = hubspot.records("2-30000002");
    assert_eq!(all.len(), invoices + 1, "the pending invoice, once");
    let added = all
        .iter()
        .find(|r| r.properties["lago_invoice_number"] == "ACM-202611-002")
        .expect("the pending invoice is in HubSpot");
    assert_eq!(
        hubspot.associations("2-30000002", &added.id, "contacts"),
        ["1000001"],
        "associated with the contact the old release created"
    );
    serve.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_file_of_release_0_1_0_upgrades_and_keeps_syncing_without_duplicates() {
    // The HubSpot portal the fixture was synced to: the emulator numbers records per object type,
    // so the same writes in the same order give the same ids.
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![FIXTURE_TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = || HubspotClient::new(&hubspot.url, Secret::new(FIXTURE_TOKEN)).unwrap();
    let mut settings = lago_hubspot::config::ConnectionSettings {
        organization_slug: "acme".into(),
        lago_app_url: "https://lago.example.com".into(),
        ..Default::default()
    };
    settings.code = "hubspot".into();
    let rebuild = Syncer::new(
        plugin(),
        client(),
        Store::open_in_memory().unwrap(),
        settings,
    )
    .unwrap();
    rebuild.deploy().await.unwrap();
    for name in SYNCED_SAMPLES {
        let outcome = rebuild.sync_event(&sample(name)).await;
        assert_eq!(
            outcome.status,
            OutcomeStatus::Synced,
            "{name}: {}",
            outcome.detail
        );
    }
    let backfilled = customer_event(
        "customer.created",
        &json!({"lago_id": "cus-backfill", "external_id": "bf-1", "name": "Backfilled Ltd", "customer_type": "company"}),
    );
    rebuild.sync_event(&backfilled.to_string()).await;
    let companies = hubspot.records("companies").len();
    let contacts = hubspot.records("contacts").len();
    assert_eq!((companies, contacts), (2, 1));

    // The old file, opened by this release.
    let path = fixture_copy("sync");
    let store = Store::open(&path).expect("a 0.1.0 state file opens");
    let version: usize = store.schema_version().expect("user_version is readable");
    assert_eq!(version, SCHEMA_VERSION);
    let stored = store
        .connection("hubspot")
        .unwrap()
        .expect("its connection settings load");
    assert_eq!(stored.organization_slug, "acme");
    assert_eq!(
        store
            .hubspot_id("hubspot", RecordKind::Company, ACME)
            .unwrap()
            .as_deref(),
        Some("2000001")
    );
    assert!(
        store
            .backfill_hash("hubspot", ObjectKind::Customers, "cus-backfill")
            .unwrap()
            .is_some(),
        "backfill hashes survive, so a re-run sends nothing"
    );
    let pending = store.events(Some(EventState::Pending), 10).unwrap();
    assert_eq!(
        pending.len(),
        1,
        "the webhook waiting for its connection is still waiting"
    );
    assert_eq!(pending[0].connection, "hs-eu");
    assert!(pending[0].body.contains("cus-waiting"));
    let access = store.access("hubspot").unwrap().expect("its access loads");
    assert_eq!(access.code, "hubspot");

    // It keeps syncing: the same invoice again, a new one for a known customer, a new subscription.
    let syncer = Syncer::new(plugin(), client(), store, stored).unwrap();
    let invoices_type = syncer
        .connection()
        .unwrap()
        .invoices_object_type_id
        .unwrap();
    assert_eq!(
        invoices_type, "2-30000002",
        "the stored type id matches the portal"
    );
    let mut new_invoice: Value =
        serde_json::from_str(&sample("05-invoice-created-eur.json")).unwrap();
    new_invoice["invoice"]["lago_id"] = json!("inv-after-upgrade");
    new_invoice["invoice"]["number"] = json!("ACM-202612-001");
    let mut new_subscription: Value =
        serde_json::from_str(&sample("04-subscription-started.json")).unwrap();
    new_subscription["subscription"]["lago_id"] = json!("sub-after-upgrade");
    new_subscription["subscription"]["external_id"] = json!("sub-after-upgrade");
    for payload in [
        sample("05-invoice-created-eur.json"),
        new_invoice.to_string(),
        new_subscription.to_string(),
    ] {
        let outcome = syncer.sync_event(&payload).await;
        assert_eq!(outcome.status, OutcomeStatus::Synced, "{}", outcome.detail);
    }
    assert_eq!(
        hubspot.records("companies").len(),
        companies,
        "no duplicate company"
    );
    assert_eq!(
        hubspot.records("contacts").len(),
        contacts,
        "no duplicate contact"
    );
    let invoices = hubspot.records(&invoices_type);
    assert_eq!(
        invoices.len(),
        3,
        "one new invoice, the re-sent one updated in place"
    );
    let added = invoices
        .iter()
        .find(|r| r.properties["lago_invoice_id"] == "inv-after-upgrade")
        .unwrap();
    assert_eq!(
        hubspot.associations(&invoices_type, &added.id, "companies"),
        ["2000001"]
    );
    assert_eq!(
        syncer
            .store()
            .hubspot_id("hubspot", RecordKind::Contact, KENJI)
            .unwrap()
            .as_deref(),
        Some("1000001")
    );
}

#[test]
fn opening_twice_is_a_no_op_and_a_newer_file_is_refused_clearly() {
    let path = fixture_copy("versions");
    drop(Store::open(&path).unwrap());
    let store = Store::open(&path).expect("an upgraded file opens again");
    assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    drop(store);

    let db = rusqlite_connection(&path);
    db.pragma_update(None, "user_version", SCHEMA_VERSION as i64 + 1)
        .unwrap();
    drop(db);
    let error = Store::open(&path).err().expect("a newer schema is refused");
    let message = format!("{error:#}");
    assert!(
        message.contains("written by a newer lago-hubspot"),
        "{message}"
    );
}

fn rusqlite_connection(path: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}
