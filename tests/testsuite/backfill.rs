//! Backfill: Lago's REST API (the Lago emulator) or exported webhooks, through the built
//! component, into the HubSpot emulator, all on loopback.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use lago_hubspot::backfill::{self, LagoOptions, ObjectKind, ProgressMode, RunOptions, Summary};
use lago_hubspot::config::{INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA};
use lago_hubspot::hubspot_http::Secret;
use lago_hubspot::lago_api::LagoClient;
use lago_hubspot::retry::RetryPolicy;
use lago_hubspot::store::Store;
use lago_hubspot::sync::Syncer;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, RunningEmulator};
use lago_hubspot_emulators::lago::{self as lago_emulator, LagoFixtures, RunningLagoEmulator};
use serde_json::{Value, json};

use crate::support::*;

const LAGO_KEY: &str = "lago-test-key";

fn customer_id(i: usize) -> String {
    format!("cus_{i:02}")
}

/// 25 customers (every third an individual, so a contact), 25 subscriptions (5 pending, some
/// terminated or canceled), 60 invoices (10 drafts, some voided).
fn fixtures() -> LagoFixtures {
    let customers: Vec<Value> = (0..25)
        .map(|i| {
            let kind = if i % 3 == 0 { "individual" } else { "company" };
            customer(&customer_id(i), Some(kind))
        })
        .collect();
    let subscriptions = (0..25)
        .map(|i| {
            let status = match i {
                _ if i % 5 == 4 => "pending",
                _ if i % 7 == 3 => "terminated",
                6 => "canceled",
                _ => "active",
            };
            subscription(&format!("sub_{i:02}"), &customers[i], status)
        })
        .collect();
    let invoices = (0..60)
        .map(|i| {
            let status = match i {
                _ if i % 6 == 5 => "draft",
                _ if i % 10 == 2 => "voided",
                _ => "finalized",
            };
            invoice(
                &format!("inv_{i:02}"),
                &customers[i % 25],
                status,
                "pending",
            )
        })
        .collect();
    LagoFixtures {
        customers,
        subscriptions,
        invoices,
    }
}

fn pushed_subscriptions() -> Vec<String> {
    (0..25)
        .filter(|i| i % 5 != 4)
        .map(|i| format!("sub_{i:02}"))
        .collect()
}

fn pushed_invoices() -> Vec<String> {
    (0..60)
        .filter(|i| i % 6 != 5)
        .map(|i| format!("inv_{i:02}"))
        .collect()
}

struct World {
    hubspot: RunningEmulator,
    lago: RunningLagoEmulator,
    state: PathBuf,
}

impl World {
    async fn new(name: &str, fixtures: LagoFixtures) -> World {
        let hubspot = Emulator::start(EmulatorConfig {
            tokens: vec![TOKEN.into()],
            ..EmulatorConfig::default()
        })
        .await
        .expect("HubSpot emulator starts");
        let lago = lago_emulator::start(LAGO_KEY, fixtures)
            .await
            .expect("Lago emulator starts");
        World {
            hubspot,
            lago,
            state: temp_dir(name).join("state.db"),
        }
    }

    /// A syncer over the state file, as a new process would open it.
    fn syncer(&self) -> Syncer {
        syncer_for(&self.hubspot, Store::open(&self.state).unwrap(), settings())
    }

    fn lago_client(&self, key: &str) -> LagoClient {
        LagoClient::new(&self.lago.url, Secret::new(key))
            .unwrap()
            .with_retry(RetryPolicy {
                max_attempts: 2,
                base_delay: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
            })
    }

    async fn backfill(&self, per_page: u32) -> Summary {
        backfill::from_lago(
            &self.syncer(),
            &self.lago_client(LAGO_KEY),
            &LagoOptions {
                per_page,
                ..LagoOptions::default()
            },
            &quiet(),
        )
        .await
        .expect("the backfill runs")
    }

    fn writes(&self) -> Vec<lago_hubspot_emulators::hubspot::LoggedRequest> {
        self.hubspot
            .request_log()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
            .collect()
    }

    /// The HubSpot record of a Lago customer, as (object type, id).
    fn customer_record(&self, lago_id: &str) -> (&'static str, String) {
        for object in ["companies", "contacts"] {
            let found: Vec<_> = self
                .hubspot
                .records(object)
                .into_iter()
                .filter(|r| {
                    r.properties.get("lago_customer_id").map(String::as_str) == Some(lago_id)
                })
                .collect();
            if let [record] = found.as_slice() {
                return (object, record.id.clone());
            }
            assert!(
                found.is_empty(),
                "{lago_id} is in {object} {} times",
                found.len()
            );
        }
        panic!("customer {lago_id} is not in HubSpot");
    }

    /// Every record of a custom object: its Lago id → associated customer records.
    fn associated(&self, schema: &str, id_property: &str) -> Vec<(String, Vec<(String, String)>)> {
        let mut out: Vec<_> = self
            .hubspot
            .records(schema)
            .into_iter()
            .map(|record| {
                let mut owners = Vec::new();
                for object in ["companies", "contacts"] {
                    for id in self.hubspot.associations(schema, &record.id, object) {
                        owners.push((object.to_owned(), id));
                    }
                }
                (record.properties[id_property].clone(), owners)
            })
            .collect();
        out.sort();
        out
    }

    /// HubSpot holds exactly the expected records, each associated with its own customer only.
    fn assert_hubspot_matches_fixtures(&self) {
        let fixtures = fixtures();
        assert_eq!(self.hubspot.records("companies").len(), 16);
        assert_eq!(self.hubspot.records("contacts").len(), 9);
        let owner_of = |customer: &Value| {
            let (object, id) = self.customer_record(customer["lago_id"].as_str().unwrap());
            vec![(object.to_owned(), id)]
        };
        let expected_subscriptions: Vec<_> = fixtures
            .subscriptions
            .iter()
            .filter(|s| pushed_subscriptions().contains(&s["lago_id"].as_str().unwrap().to_owned()))
            .map(|s| {
                (
                    s["lago_id"].as_str().unwrap().to_owned(),
                    owner_of(&s["customer"]),
                )
            })
            .collect();
        assert_eq!(
            self.associated(SUBSCRIPTIONS_SCHEMA, "lago_subscription_id"),
            expected_subscriptions
        );
        let expected_invoices: Vec<_> = fixtures
            .invoices
            .iter()
            .filter(|i| pushed_invoices().contains(&i["lago_id"].as_str().unwrap().to_owned()))
            .map(|i| {
                (
                    i["lago_id"].as_str().unwrap().to_owned(),
                    owner_of(&i["customer"]),
                )
            })
            .collect();
        assert_eq!(
            self.associated(INVOICES_SCHEMA, "lago_invoice_id"),
            expected_invoices
        );
    }
}

fn quiet() -> RunOptions {
    RunOptions {
        force: false,
        progress: ProgressMode::Quiet,
        batch: true,
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lago-hubspot-backfill-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// (synced, unchanged, skipped, failed) of one kind.
fn counts(summary: &Summary, kind: ObjectKind) -> (usize, usize, usize, usize) {
    let c = summary.counts(kind);
    (c.synced, c.unchanged, c.skipped, c.failed)
}

#[tokio::test]
async fn a_paginated_backfill_ends_with_exactly_the_expected_records_and_associations() {
    let world = World::new("full", fixtures()).await;
    let summary = world.backfill(10).await;

    assert!(summary.is_success(), "{summary}");
    assert!(
        summary.deployed.is_some(),
        "the connection was deployed first"
    );
    assert_eq!(counts(&summary, ObjectKind::Customers), (25, 0, 0, 0));
    assert_eq!(counts(&summary, ObjectKind::Subscriptions), (20, 0, 5, 0));
    assert_eq!(counts(&summary, ObjectKind::Invoices), (50, 0, 10, 0));
    let reasons: Vec<(&str, usize)> = summary
        .skipped
        .iter()
        .map(|g| (g.reason.as_str(), g.count))
        .collect();
    assert_eq!(
        reasons,
        vec![
            ("subscription … is pending: not pushed until active", 5),
            ("invoice … is a draft: drafts are not pushed", 10)
        ],
        "{summary}"
    );
    world.assert_hubspot_matches_fixtures();

    // Lago was read page by page, with the statuses Lago would otherwise leave out.
    let log = world.lago.request_log();
    let pages = |path: &str| {
        log.iter()
            .filter(|r| r.path == path && r.query.contains("per_page=10"))
            .count()
    };
    assert_eq!(pages("/api/v1/customers"), 3);
    assert_eq!(pages("/api/v1/subscriptions"), 3);
    assert_eq!(pages("/api/v1/invoices"), 6);
    assert!(log.iter().all(|r| r.status == 200), "{log:?}");
    let subscriptions = log
        .iter()
        .find(|r| r.path == "/api/v1/subscriptions")
        .unwrap();
    for status in ["active", "terminated", "canceled", "pending"] {
        assert!(
            subscriptions
                .query
                .contains(&format!("status%5B%5D={status}")),
            "{}",
            subscriptions.query
        );
    }
}

#[tokio::test]
async fn an_interrupted_backfill_resumes_without_duplicates_or_resending_what_is_done() {
    let world = World::new("interrupted", fixtures()).await;
    // The three first pages, customers' pages 2 and 3, subscriptions' page 2: then Lago fails.
    world.lago.fail_after(6);
    let first = world.backfill(10).await;

    let reason = first
        .interrupted
        .as_deref()
        .expect("the run was interrupted");
    assert!(
        reason.contains("page 3 of the subscriptions") && reason.contains("HTTP 500"),
        "{reason}"
    );
    assert!(!first.is_success());
    assert!(first.to_string().contains("Run the same command again"));
    assert_eq!(counts(&first, ObjectKind::Customers), (25, 0, 0, 0));
    assert_eq!(counts(&first, ObjectKind::Subscriptions), (16, 0, 4, 0));
    assert_eq!(counts(&first, ObjectKind::Invoices), (0, 0, 0, 0));

    world.lago.recover();
    world.hubspot.clear_request_log();
    let second = world.backfill(10).await;

    assert!(second.is_success(), "{second}");
    assert_eq!(counts(&second, ObjectKind::Customers), (0, 25, 0, 0));
    assert_eq!(counts(&second, ObjectKind::Subscriptions), (4, 20, 1, 0));
    assert_eq!(counts(&second, ObjectKind::Invoices), (50, 0, 10, 0));
    world.assert_hubspot_matches_fixtures();

    // Nothing of the first part went to HubSpot again.
    let writes = world.writes();
    assert!(!writes.is_empty());
    for write in &writes {
        assert!(
            !write.path.contains("/objects/companies/batch")
                && !write.path.contains("/objects/contacts/batch"),
            "a customer was written again: {} {}",
            write.method,
            write.path
        );
        for i in 0..20 {
            let id = format!("\"sub_{i:02}\"");
            assert!(
                !write.body.contains(&id),
                "{id} was sent again: {} {}",
                write.method,
                write.path
            );
        }
    }
}

#[tokio::test]
async fn a_finished_backfill_run_again_writes_nothing_and_picks_up_changes() {
    let world = World::new("rerun", fixtures()).await;
    assert!(world.backfill(7).await.is_success());

    world.hubspot.clear_request_log();
    let again = world.backfill(7).await;
    assert!(again.is_success(), "{again}");
    assert_eq!(counts(&again, ObjectKind::Customers), (0, 25, 0, 0));
    assert_eq!(counts(&again, ObjectKind::Subscriptions), (0, 25, 0, 0));
    assert_eq!(counts(&again, ObjectKind::Invoices), (0, 60, 0, 0));
    assert_eq!(
        world.writes(),
        vec![],
        "a finished backfill wrote to HubSpot"
    );

    // One invoice paid in Lago since: only it is sent.
    world.lago.update_fixtures(|f| {
        f.invoices[0]["payment_status"] = json!("succeeded");
    });
    let changed = world.backfill(7).await;
    assert_eq!(counts(&changed, ObjectKind::Invoices), (1, 59, 0, 0));
    assert_eq!(counts(&changed, ObjectKind::Customers), (0, 25, 0, 0));
    let paid = world
        .hubspot
        .records(INVOICES_SCHEMA)
        .into_iter()
        .find(|r| r.properties["lago_invoice_id"] == "inv_00")
        .unwrap();
    assert_eq!(paid.properties["lago_invoice_payment_status"], "succeeded");
    world.assert_hubspot_matches_fixtures();
}

#[tokio::test]
async fn exported_webhooks_from_a_jsonl_file() {
    let world = World::new("jsonl", LagoFixtures::default()).await;
    let acme = customer("cus_j1", Some("company"));
    let ada = customer("cus_j2", Some("individual"));
    let lines = [
        customer_event("customer.created", &acme).to_string(),
        customer_event("customer.created", &ada).to_string(),
        String::new(),
        subscription_event("subscription.started", &subscription("sub_j1", &acme, "active"))
            .to_string(),
        invoice_event(
            "invoice.created",
            &invoice("inv_j1", &ada, "finalized", "pending"),
        )
        .to_string(),
        json!({"webhook_type": "plan.created", "object_type": "plan", "plan": {"lago_id": "plan_1"}})
            .to_string(),
        invoice_event("invoice.drafted", &invoice("inv_j2", &acme, "draft", "pending")).to_string(),
        "{ not json".to_owned(),
        subscription_event("subscription.updated", &subscription("sub_j2", &acme, "pending"))
            .to_string(),
        // The same invoice, paid: the later event is the one sent.
        invoice_event(
            "invoice.payment_status_updated",
            &invoice("inv_j1", &ada, "finalized", "succeeded"),
        )
        .to_string(),
    ];
    let file = world.state.with_file_name("events.jsonl");
    std::fs::write(&file, lines.join("\n")).unwrap();

    let summary = backfill::from_jsonl(&world.syncer(), &file, &quiet())
        .await
        .unwrap();
    assert_eq!(counts(&summary, ObjectKind::Customers), (2, 0, 0, 0));
    assert_eq!(counts(&summary, ObjectKind::Subscriptions), (1, 0, 1, 0));
    assert_eq!(counts(&summary, ObjectKind::Invoices), (1, 0, 1, 0));
    assert_eq!(counts(&summary, ObjectKind::Other), (0, 0, 1, 1));
    assert_eq!(summary.superseded, 1);
    assert!(!summary.is_success(), "the broken line is a failure");
    assert_eq!(summary.failed[0].examples, vec!["line 8"]);
    assert!(
        summary.failed[0].reason.starts_with("malformed payload"),
        "{summary}"
    );

    let invoices = world.hubspot.records(INVOICES_SCHEMA);
    assert_eq!(invoices.len(), 1);
    assert_eq!(
        invoices[0].properties["lago_invoice_payment_status"],
        "succeeded"
    );
    let (object, contact) = world.customer_record("cus_j2");
    assert_eq!(object, "contacts");
    assert_eq!(
        world
            .hubspot
            .associations(INVOICES_SCHEMA, &invoices[0].id, "contacts"),
        vec![contact]
    );
    assert_eq!(world.hubspot.records(SUBSCRIPTIONS_SCHEMA).len(), 1);

    // Again: nothing is written; the broken line fails again, as it should.
    world.hubspot.clear_request_log();
    let again = backfill::from_jsonl(&world.syncer(), &file, &quiet())
        .await
        .unwrap();
    assert_eq!(counts(&again, ObjectKind::Customers), (0, 2, 0, 0));
    assert_eq!(counts(&again, ObjectKind::Subscriptions), (0, 2, 0, 0));
    assert_eq!(counts(&again, ObjectKind::Invoices), (0, 1, 1, 0));
    assert_eq!(counts(&again, ObjectKind::Other), (0, 0, 1, 1));
    assert_eq!(world.writes(), vec![]);
}

#[tokio::test]
async fn a_wrong_lago_api_key_is_a_clear_error_before_anything_is_written() {
    let world = World::new("wrong-key", fixtures()).await;
    let error = backfill::from_lago(
        &world.syncer(),
        &world.lago_client("not-the-key"),
        &LagoOptions::default(),
        &quiet(),
    )
    .await
    .expect_err("a wrong key fails");
    let message = format!("{error:#}");
    assert!(
        message.contains("Lago refused the API key (HTTP 401"),
        "{message}"
    );
    assert!(
        !message.contains("not-the-key"),
        "the key leaked: {message}"
    );
    assert_eq!(
        world.hubspot.request_log(),
        vec![],
        "HubSpot was called before Lago answered"
    );
}

// The binary as a user runs it.

fn lago_hubspot(world: &World, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_lago-hubspot"))
        .env("LAGO_HUBSPOT_COMPONENT", component_path())
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .env_remove("HUBSPOT_API_URL")
        .env_remove("LAGO_API_URL")
        .env_remove("LAGO_API_KEY")
        .arg("backfill")
        .args(args)
        .args([
            "--hubspot-url",
            &world.hubspot.url,
            "--state",
            world.state.to_str().unwrap(),
            "--organization-slug",
            "acme",
        ])
        .output()
        .unwrap()
}

async fn run_cli(world: &World, args: &[&str]) -> (Output, String, String) {
    let output = tokio::task::block_in_place(|| lago_hubspot(world, args));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    (output, stdout, stderr)
}

fn path_arg(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_backfill_command_reports_progress_and_a_summary_and_sets_the_exit_code() {
    let world = World::new("cli", fixtures()).await;
    let url = world.lago.url.clone();

    let (output, _, stderr) =
        run_cli(&world, &["--lago-url", &url, "--lago-api-key", "wrong"]).await;
    assert!(!output.status.success());
    assert!(
        stderr.contains("error:") && stderr.contains("Lago refused the API key"),
        "{stderr}"
    );

    let (output, stdout, stderr) = run_cli(
        &world,
        &[
            "--lago-url",
            &format!("{url}/api/v1"),
            "--lago-api-key",
            LAGO_KEY,
            "--per-page",
            "20",
        ],
    )
    .await;
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("110 records: 95 synced, 0 unchanged, 15 skipped, 0 failed"),
        "{stdout}"
    );
    assert!(stdout.contains("invoice … is a draft"), "{stdout}");
    // Not a terminal: plain progress lines, the last one complete.
    assert!(
        stderr.contains("backfill: 110/110 records (100%)"),
        "{stderr}"
    );

    let events = world.state.with_file_name("events.jsonl");
    std::fs::write(
        &events,
        format!(
            "{}\nnot json\n",
            customer_event("customer.created", &customer("cus_00", Some("individual")))
        ),
    )
    .unwrap();
    let (output, stdout, _) = run_cli(&world, &["--from", path_arg(&events)]).await;
    assert!(!output.status.success(), "a failed line fails the run");
    assert!(
        // Not the payload the API run built (another webhook type), so it is sent once.
        stdout.contains("2 records: 1 synced, 0 unchanged, 0 skipped, 1 failed"),
        "{stdout}"
    );
    world.assert_hubspot_matches_fixtures();
}
