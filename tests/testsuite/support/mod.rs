//! Shared set-up for the end-to-end tests: the built component, an emulated HubSpot on loopback,
//! and Lago webhook payloads shaped like the ones Lago posts.
#![allow(dead_code)]

pub mod binary;
pub mod lago;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use lago_hubspot::config::ConnectionSettings;
use lago_hubspot::hubspot_http::{HubspotClient, Secret};
use lago_hubspot::ratelimit::{Rate, RateBudget};
use lago_hubspot::retry::RetryPolicy;
use lago_hubspot::runtime::Plugin;
use lago_hubspot::store::Store;
use lago_hubspot::sync::Syncer;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, RunningEmulator};
use serde_json::{Value, json};

pub const TOKEN: &str = "e2e-token";

/// The built component: in the target directory this test binary runs from
/// (`<target>/debug/deps/…`, whatever `CARGO_TARGET_DIR` says), else the checkout's `target/`.
pub fn component_path() -> PathBuf {
    built_component("wasm32-wasip2/release/lago_hubspot_guest.wasm")
}

/// The test-only component that misbehaves on demand (the guest's `misbehave` feature), which `make
/// component` builds in the target directory's `test-guests/`.
pub fn misbehaving_component_path() -> PathBuf {
    built_component("test-guests/wasm32-wasip2/release/lago_hubspot_misbehaving_guest.wasm")
}

/// `relative` in the target directory of this test binary, else in the checkout's `target/`.
fn built_component(relative: &str) -> PathBuf {
    let beside_this_build = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join(relative)));
    let in_checkout = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target")
        .join(relative);
    let path = beside_this_build
        .filter(|p| p.exists())
        .unwrap_or(in_checkout);
    assert!(
        path.exists(),
        "the component is not built: run `make component` (or `make test`) first; looked for {}",
        path.display()
    );
    path
}

/// One compiled component shared by every test in a binary (compiling is the slow part).
pub fn plugin() -> Arc<Plugin> {
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| Arc::new(Plugin::load(&component_path()).expect("component loads")))
        .clone()
}

pub struct Harness {
    pub hubspot: RunningEmulator,
    pub syncer: Syncer,
}

impl Harness {
    pub async fn new(settings: ConnectionSettings) -> Harness {
        let hubspot = Emulator::start(EmulatorConfig {
            tokens: vec![TOKEN.into()],
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        let syncer = syncer_for(&hubspot, Store::open_in_memory().unwrap(), settings);
        Harness { hubspot, syncer }
    }

    pub async fn deployed() -> Harness {
        let harness = Harness::new(settings()).await;
        harness.syncer.deploy().await.expect("deploy");
        harness
    }

    pub fn client(&self) -> HubspotClient {
        HubspotClient::new(&self.hubspot.url, Secret::new(TOKEN)).unwrap()
    }

    /// Syncs and asserts the event did not fail.
    pub async fn sync_ok(&self, payload: &Value) -> lago_hubspot::sync::EventOutcome {
        let outcome = self.syncer.sync_event(&payload.to_string()).await;
        assert_ne!(
            outcome.status,
            lago_hubspot::sync::OutcomeStatus::Failed,
            "{} failed: {}",
            outcome.webhook_type,
            outcome.detail
        );
        outcome
    }
}

/// A HubSpot emulator on loopback that takes the test token.
pub async fn start_hubspot() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .expect("the HubSpot emulator starts")
}

pub fn syncer_for(hubspot: &RunningEmulator, store: Store, settings: ConnectionSettings) -> Syncer {
    let client = HubspotClient::new(&hubspot.url, Secret::new(TOKEN)).unwrap();
    Syncer::new(plugin(), client, store, settings).unwrap()
}

pub fn settings() -> ConnectionSettings {
    ConnectionSettings {
        code: "hubspot-test".into(),
        lago_app_url: "https://lago.example.com".into(),
        organization_slug: "acme".into(),
        ..ConnectionSettings::default()
    }
}

pub fn customer(lago_id: &str, customer_type: Option<&str>) -> Value {
    json!({
        "lago_id": lago_id,
        "external_id": format!("ext-{lago_id}"),
        "account_type": "customer",
        "name": format!("Customer {lago_id}"),
        "firstname": "Ada",
        "lastname": "Lovelace",
        "customer_type": customer_type,
        "email": format!("billing-{lago_id}@example.com,finance-{lago_id}@example.com"),
        "url": format!("https://www.{lago_id}.example.com/about"),
        "phone": "+33 1 23 45 67 89",
        "legal_name": format!("{lago_id} SAS"),
        "tax_identification_number": "FR123456789",
        "currency": "EUR",
        "created_at": "2026-01-05T10:00:00Z",
        "updated_at": "2026-01-05T10:00:00Z",
        "integration_customers": []
    })
}

pub fn customer_event(webhook_type: &str, customer: &Value) -> Value {
    json!({
        "webhook_type": webhook_type,
        "object_type": "customer",
        "organization_id": "org-1",
        "customer": customer
    })
}

pub fn subscription(lago_id: &str, customer: &Value, status: &str) -> Value {
    json!({
        "lago_id": lago_id,
        "external_id": format!("ext-{lago_id}"),
        "lago_customer_id": customer["lago_id"],
        "external_customer_id": customer["external_id"],
        "name": "Pro plan",
        "plan_code": "pro_monthly",
        "status": status,
        "billing_time": "anniversary",
        "subscription_at": "2026-02-01T00:00:00Z",
        "started_at": "2026-02-01T09:30:12.345Z",
        "created_at": "2026-01-31T17:00:00Z",
        "ending_at": null,
        "terminated_at": if status == "terminated" { json!("2026-06-30T23:10:00Z") } else { Value::Null },
        "trial_ended_at": null,
        "customer": customer
    })
}

pub fn subscription_event(webhook_type: &str, subscription: &Value) -> Value {
    json!({
        "webhook_type": webhook_type,
        "object_type": "subscription",
        "organization_id": "org-1",
        "subscription": subscription
    })
}

pub fn invoice(lago_id: &str, customer: &Value, status: &str, payment_status: &str) -> Value {
    json!({
        "lago_id": lago_id,
        "sequential_id": 7,
        "number": format!("ACME-{lago_id}"),
        "issuing_date": "2026-03-01",
        "payment_due_date": "2026-03-31",
        "payment_overdue": false,
        "invoice_type": "subscription",
        "status": status,
        "payment_status": payment_status,
        "currency": "EUR",
        "fees_amount_cents": 10000,
        "taxes_amount_cents": 2050,
        "sub_total_excluding_taxes_amount_cents": 10250,
        "total_amount_cents": 12345,
        "total_due_amount_cents": 12345,
        "file_url": format!("https://lago.example.com/files/{lago_id}.pdf"),
        "self_billed": false,
        "customer": customer
    })
}

pub fn invoice_event(webhook_type: &str, invoice: &Value) -> Value {
    json!({
        "webhook_type": webhook_type,
        "object_type": "invoice",
        "organization_id": "org-1",
        "invoice": invoice
    })
}

/// A credit note on `invoice`, shaped like lago-api's `V1::CreditNoteSerializer` with the
/// `customer`, `items` and `applied_taxes` that `credit_note.created` includes.
pub fn credit_note(lago_id: &str, invoice: &Value) -> Value {
    json!({
        "lago_id": lago_id,
        "billing_entity_code": "acme",
        "sequential_id": 1,
        "number": format!("{}-CN1", invoice["number"].as_str().unwrap_or("ACME")),
        "lago_invoice_id": invoice["lago_id"],
        "invoice_number": invoice["number"],
        "issuing_date": "2026-03-05",
        "credit_status": "available",
        "refund_status": "pending",
        "reason": "order_change",
        "description": "Downgraded mid-period",
        "currency": invoice["currency"],
        "total_amount_cents": 6000,
        "precise_total_amount_cents": "6000.0",
        "taxes_amount_cents": 1000,
        "precise_taxes_amount_cents": "1000.0",
        "sub_total_excluding_taxes_amount_cents": 5000,
        "balance_amount_cents": 2000,
        "credit_amount_cents": 2000,
        "refund_amount_cents": 4000,
        "applied_to_source_invoice_amount_cents": 0,
        "coupons_adjustment_amount_cents": 0,
        "taxes_rate": 20.0,
        "created_at": "2026-03-05T10:00:00Z",
        "updated_at": "2026-03-05T10:00:00Z",
        "file_url": null,
        "xml_url": null,
        "self_billed": false,
        "customer": invoice["customer"],
        "items": [],
        "applied_taxes": []
    })
}

pub fn credit_note_event(webhook_type: &str, credit_note: &Value) -> Value {
    json!({
        "webhook_type": webhook_type,
        "object_type": "credit_note",
        "organization_id": "org-1",
        "credit_note": credit_note
    })
}

/// `serve` running in-process on loopback, against an emulated HubSpot.
pub struct ServeHarness {
    pub hubspot: RunningEmulator,
    pub url: String,
    pub syncer: Arc<Syncer>,
    pub metrics: Arc<lago_hubspot::metrics::Metrics>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub const HMAC_KEY: &str = "org-hmac-key";

/// How `ServeHarness::start_with` builds its HubSpot client (and which component it runs).
#[derive(Default)]
pub struct ClientSetup {
    /// The component [default: the real one, `plugin()`].
    pub plugin: Option<Arc<Plugin>>,
    /// Client-side budget per portal (`HubspotClient::with_budget`).
    pub budget: Option<Rate>,
    /// Per-request retries inside a plan step (`Syncer::with_retry`).
    pub retry: Option<RetryPolicy>,
    /// The connection served [default: `settings()`].
    pub settings: Option<ConnectionSettings>,
}

impl ServeHarness {
    pub async fn start(options: lago_hubspot::server::ServeOptions) -> ServeHarness {
        let hubspot = Emulator::start(EmulatorConfig {
            tokens: vec![TOKEN.into()],
            ..EmulatorConfig::default()
        })
        .await
        .expect("emulator starts");
        Self::start_against(hubspot, Store::open_in_memory().unwrap(), options).await
    }

    pub async fn start_against(
        hubspot: RunningEmulator,
        store: Store,
        options: lago_hubspot::server::ServeOptions,
    ) -> ServeHarness {
        Self::start_with(hubspot, store, options, ClientSetup::default()).await
    }

    /// Like `start_against`, with the HubSpot client paced by a budget and/or retrying by
    /// another policy than the default.
    pub async fn start_with(
        hubspot: RunningEmulator,
        store: Store,
        options: lago_hubspot::server::ServeOptions,
        setup: ClientSetup,
    ) -> ServeHarness {
        let metrics = Arc::new(lago_hubspot::metrics::Metrics::new());
        let mut client = HubspotClient::new(&hubspot.url, Secret::new(TOKEN))
            .unwrap()
            .with_metrics(metrics.clone());
        if let Some(rate) = setup.budget {
            client = client.with_budget(Arc::new(RateBudget::new(rate)));
        }
        let plugin = setup.plugin.unwrap_or_else(plugin);
        let settings = setup.settings.unwrap_or_else(settings);
        let mut syncer = Syncer::new(plugin, client, store, settings).unwrap();
        if let Some(retry) = setup.retry {
            syncer = syncer.with_retry(retry);
        }
        let syncer = Arc::new(syncer);
        syncer.deploy().await.expect("deploy");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(lago_hubspot::server::serve(
            syncer.clone(),
            metrics.clone(),
            listener,
            options,
            async {
                let _ = rx.await;
            },
        ));
        ServeHarness {
            hubspot,
            url,
            syncer,
            metrics,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    pub fn hmac_options() -> lago_hubspot::server::ServeOptions {
        lago_hubspot::server::ServeOptions {
            auth: lago_hubspot::signature::WebhookAuth::new(Some(Secret::new(HMAC_KEY))),
            policy: lago_hubspot::worker::QueuePolicy {
                base_backoff: std::time::Duration::from_millis(20),
                max_backoff: std::time::Duration::from_millis(500),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    /// Posts a webhook signed like Lago signs it with `hmac`.
    pub async fn post_signed(&self, body: &str, unique_key: &str) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/webhooks/lago", self.url))
            .header(
                "X-Lago-Signature",
                lago_hubspot::signature::hmac_signature(HMAC_KEY, body.as_bytes()),
            )
            .header("X-Lago-Signature-Algorithm", "hmac")
            .header("X-Lago-Unique-Key", unique_key)
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("serve answers")
    }

    /// Waits until nothing is pending or running.
    pub async fn settled(&self, timeout: std::time::Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let stats = self.syncer.store().queue_stats().unwrap();
            let busy = stats.count(lago_hubspot::queue::EventState::Pending)
                + stats.count(lago_hubspot::queue::EventState::Running);
            if busy == 0 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "queue did not settle: {stats:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task.take().unwrap().await.unwrap()
    }
}

/// One customer's life as Lago reports it, in the order Lago sends it: created, a subscription
/// started, updated and terminated, invoices created then paid, failed or voided, and a final
/// rename. Later events change what earlier ones wrote, so a run that breaks a customer's order
/// ends in a different HubSpot state. Each webhook comes with the unique key Lago gives it.
pub fn customer_lifecycle(index: usize) -> Vec<(String, String)> {
    let id = format!("cus_{index:04}");
    // A third are people (contacts), the rest companies.
    let kind = if index.is_multiple_of(3) {
        "individual"
    } else {
        "company"
    };
    let mut lago_customer = customer(&id, Some(kind));
    let sub = format!("sub_{index:04}");
    let mut updated = subscription(&sub, &lago_customer, "active");
    updated["name"] = json!("Pro plan (yearly)");
    updated["plan_code"] = json!("pro_yearly");
    let inv = |n: usize| format!("inv_{index:04}_{n}");
    let mut events = vec![
        customer_event("customer.created", &lago_customer),
        subscription_event(
            "subscription.started",
            &subscription(&sub, &lago_customer, "active"),
        ),
        invoice_event(
            "invoice.created",
            &invoice(&inv(1), &lago_customer, "finalized", "pending"),
        ),
        subscription_event("subscription.updated", &updated),
        invoice_event(
            "invoice.payment_status_updated",
            &invoice(&inv(1), &lago_customer, "finalized", "succeeded"),
        ),
        invoice_event(
            "invoice.created",
            &invoice(&inv(2), &lago_customer, "finalized", "pending"),
        ),
        invoice_event(
            "invoice.voided",
            &invoice(&inv(2), &lago_customer, "voided", "pending"),
        ),
        invoice_event(
            "invoice.created",
            &invoice(&inv(3), &lago_customer, "finalized", "pending"),
        ),
        invoice_event(
            "invoice.payment_status_updated",
            &invoice(&inv(3), &lago_customer, "finalized", "failed"),
        ),
    ];
    let mut terminated = subscription(&sub, &lago_customer, "terminated");
    terminated["name"] = json!("Pro plan (yearly)");
    terminated["plan_code"] = json!("pro_yearly");
    events.push(subscription_event("subscription.terminated", &terminated));
    lago_customer["name"] = json!(format!("Customer {id} (renamed)"));
    lago_customer["updated_at"] = json!("2026-07-01T08:00:00Z");
    events.push(customer_event("customer.updated", &lago_customer));
    events
        .into_iter()
        .enumerate()
        .map(|(n, event)| (format!("{id}-{n:02}"), event.to_string()))
        .collect()
}

/// The key property of each synced object type.
pub const SYNCED_TYPES: [(&str, &str); 4] = [
    ("companies", "lago_customer_id"),
    ("contacts", "lago_customer_id"),
    (
        lago_hubspot::config::SUBSCRIPTIONS_SCHEMA,
        "lago_subscription_id",
    ),
    (lago_hubspot::config::INVOICES_SCHEMA, "lago_invoice_id"),
];

/// Properties HubSpot fills itself (ids, timestamps): they differ between two equal syncs.
const HUBSPOT_OWN_PROPERTIES: [&str; 5] = [
    "hs_object_id",
    "createdate",
    "hs_createdate",
    "hs_lastmodifieddate",
    "lastmodifieddate",
];

/// What HubSpot holds, independent of the ids it assigned: records per object type by their
/// `lago_*_id`, and associations named by Lago ids on both ends.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HubspotState {
    /// Object type → Lago id → properties (HubSpot's own ids and timestamps left out).
    pub records: std::collections::BTreeMap<
        String,
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    >,
    /// `"<object type> <lago id>"` of each subscription and invoice → the Lago ids of the
    /// customers (companies or contacts) it is associated with.
    pub associations: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
    /// Records whose Lago id was already taken by another record of the same type.
    pub duplicates: Vec<String>,
    /// Records without their key property.
    pub unkeyed: usize,
}

impl HubspotState {
    pub fn read(hubspot: &Emulator) -> HubspotState {
        use std::collections::{BTreeMap, BTreeSet};
        let mut state = HubspotState::default();
        // HubSpot id of each customer record → its Lago id, to name association ends.
        let mut customers: BTreeMap<(&str, String), String> = BTreeMap::new();
        for (object_type, key) in SYNCED_TYPES {
            let by_lago_id = state.records.entry(object_type.to_owned()).or_default();
            for record in hubspot.records(object_type) {
                let Some(lago_id) = record.properties.get(key).cloned() else {
                    state.unkeyed += 1;
                    continue;
                };
                if matches!(object_type, "companies" | "contacts") {
                    customers.insert((object_type, record.id.clone()), lago_id.clone());
                }
                let properties = record
                    .properties
                    .into_iter()
                    .filter(|(name, _)| !HUBSPOT_OWN_PROPERTIES.contains(&name.as_str()))
                    .collect();
                if by_lago_id.insert(lago_id.clone(), properties).is_some() {
                    state.duplicates.push(format!("{object_type} {lago_id}"));
                }
            }
        }
        for (object_type, key) in &SYNCED_TYPES[2..] {
            for record in hubspot.records(object_type) {
                let Some(lago_id) = record.properties.get(*key) else {
                    continue;
                };
                let mut ends = BTreeSet::new();
                for customer_type in ["companies", "contacts"] {
                    for id in hubspot.associations(object_type, &record.id, customer_type) {
                        ends.insert(
                            customers
                                .get(&(customer_type, id.clone()))
                                .cloned()
                                .unwrap_or_else(|| format!("{customer_type} {id} (no lago id)")),
                        );
                    }
                }
                state
                    .associations
                    .insert(format!("{object_type} {lago_id}"), ends);
            }
        }
        state
    }

    pub fn count(&self, object_type: &str) -> usize {
        self.records.get(object_type).map_or(0, |r| r.len())
    }

    /// Panics with the first differences (not the whole state) when the two differ.
    pub fn assert_same_as(&self, expected: &HubspotState) {
        assert!(
            self.duplicates.is_empty(),
            "duplicate records: {:?}",
            self.duplicates
        );
        assert_eq!(self.unkeyed, 0, "records without their lago id");
        let mut differences = Vec::new();
        for (object_type, _) in SYNCED_TYPES {
            let empty = Default::default();
            let ours = self.records.get(object_type).unwrap_or(&empty);
            let theirs = expected.records.get(object_type).unwrap_or(&empty);
            for (lago_id, properties) in theirs {
                match ours.get(lago_id) {
                    None => differences.push(format!("{object_type} {lago_id}: missing")),
                    Some(got) if got != properties => {
                        let changed: Vec<String> = properties
                            .iter()
                            .filter(|(k, v)| got.get(*k) != Some(*v))
                            .map(|(k, v)| format!("{k}: want {v:?}, got {:?}", got.get(k)))
                            .chain(
                                got.keys()
                                    .filter(|k| !properties.contains_key(*k))
                                    .map(|k| format!("{k}: unexpected {:?}", got[k])),
                            )
                            .collect();
                        differences.push(format!("{object_type} {lago_id}: {changed:?}"));
                    }
                    Some(_) => {}
                }
            }
            for lago_id in ours.keys().filter(|id| !theirs.contains_key(*id)) {
                differences.push(format!("{object_type} {lago_id}: unexpected record"));
            }
        }
        for (record, ends) in &expected.associations {
            if self.associations.get(record) != Some(ends) {
                differences.push(format!(
                    "{record}: associated with {:?}, want {ends:?}",
                    self.associations.get(record)
                ));
            }
        }
        assert!(
            differences.is_empty(),
            "{} difference(s) from the reference run, first ones:\n{}",
            differences.len(),
            differences
                .iter()
                .take(15)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// The state a clean, sequential sync of `webhooks` leaves in a fresh HubSpot: what any other
/// way of running the same events must end in.
pub async fn reference_state(webhooks: &[Vec<(String, String)>]) -> HubspotState {
    let harness = Harness::deployed().await;
    for customer in webhooks {
        for (_, body) in customer {
            harness
                .sync_ok(&serde_json::from_str(body).expect("JSON"))
                .await;
        }
    }
    HubspotState::read(harness.hubspot.emulator())
}

/// Posts a webhook signed like Lago signs it with `hmac`; `Err` when no answer came back.
pub async fn post_webhook(
    client: &reqwest::Client,
    base_url: &str,
    body: &str,
    unique_key: &str,
) -> reqwest::Result<reqwest::Response> {
    client
        .post(format!("{base_url}/webhooks/lago"))
        .header(
            "X-Lago-Signature",
            lago_hubspot::signature::hmac_signature(HMAC_KEY, body.as_bytes()),
        )
        .header("X-Lago-Signature-Algorithm", "hmac")
        .header("X-Lago-Unique-Key", unique_key)
        .header("Content-Type", "application/json")
        .body(body.to_owned())
        .send()
        .await
}
