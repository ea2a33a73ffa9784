//! Shared set-up for the end-to-end tests: the built component, an emulated HubSpot on loopback,
//! and Lago webhook payloads shaped like the ones Lago posts.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use lago_hubspot::config::ConnectionSettings;
use lago_hubspot::emulator::{Emulator, EmulatorConfig, RunningEmulator};
use lago_hubspot::hubspot_http::{HubspotClient, Secret};
use lago_hubspot::runtime::Plugin;
use lago_hubspot::store::Store;
use lago_hubspot::sync::Syncer;
use serde_json::{Value, json};

pub const TOKEN: &str = "e2e-token";

pub fn component_path() -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/lago_hubspot_guest.wasm");
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
        let metrics = Arc::new(lago_hubspot::metrics::Metrics::new());
        let client = HubspotClient::new(&hubspot.url, Secret::new(TOKEN))
            .unwrap()
            .with_metrics(metrics.clone());
        let syncer = Arc::new(Syncer::new(plugin(), client, store, settings()).unwrap());
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
