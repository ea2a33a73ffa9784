//! A bounded guest: a component that loops, allocates without end or panics is stopped (by its
//! deadline, its memory cap, its trap), its event fails with the reason, and the same process
//! goes on syncing the other events. The misbehaving component (the guest's `misbehave` feature) plans like
//! the real one, except for a payload that carries one of its markers: here, as the customer's
//! `external_id`.

use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use lago_hubspot::queue::{EventState, StoredEvent};
use lago_hubspot::runtime::{GuestError, GuestLimits, GuestStop, Plugin};
use lago_hubspot::server::ServeOptions;
use lago_hubspot::store::Store;
use lago_hubspot::worker::QueuePolicy;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::{Value, json};

use crate::support::*;

/// The markers `guest/src/misbehave.rs` reacts to.
const LOOP: &str = "misbehave:loop";
const GROW: &str = "misbehave:grow";
const PANIC: &str = "misbehave:panic";

const DEADLINE: Duration = Duration::from_millis(300);
const MEMORY_MIB: usize = 32;

/// The misbehaving component, with a short deadline and a small memory cap.
fn misbehaving() -> Arc<Plugin> {
    static PLUGIN: OnceLock<Arc<Plugin>> = OnceLock::new();
    PLUGIN
        .get_or_init(|| {
            let limits = GuestLimits {
                deadline: DEADLINE,
                memory_bytes: MEMORY_MIB << 20,
            };
            Arc::new(
                Plugin::load_limited(&misbehaving_component_path(), limits)
                    .expect("the misbehaving component loads"),
            )
        })
        .clone()
}

/// `customer.created` for a company whose `external_id` is `external_id`.
fn customer_created(lago_id: &str, external_id: &str) -> Value {
    let mut lago_customer = customer(lago_id, Some("company"));
    lago_customer["external_id"] = json!(external_id);
    customer_event("customer.created", &lago_customer)
}

fn connection() -> lago_hubspot::runtime::Connection {
    settings().to_wit(None, None, None, true)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_looping_a_greedy_and_a_panicking_guest_are_each_stopped_with_their_reason() {
    let plugin = misbehaving();
    let cases = [
        (LOOP, GuestStop::Deadline, "ran past its 300 ms deadline"),
        (
            GROW,
            GuestStop::Memory,
            "more than its 32 MiB (--guest-memory-mib)",
        ),
        (
            PANIC,
            GuestStop::Trap,
            "the payload asked this component to panic",
        ),
    ];
    for (marker, stop, says) in cases {
        let payload = customer_created("cus_bad", marker).to_string();
        let started = Instant::now();
        let error = plugin
            .plan_event(&connection(), &[], &payload)
            .await
            .expect_err("the host stops the call");
        let took = started.elapsed();
        let stopped = error
            .downcast_ref::<GuestError>()
            .unwrap_or_else(|| panic!("{marker}: not a guest stop: {error:#}"));
        assert_eq!(stopped.stop, stop, "{marker}: {stopped}");
        assert_eq!(stopped.handler, "on-customer");
        assert!(stopped.to_string().contains(says), "{marker}: {stopped}");
        // Stopped at the deadline at the latest (a tick, and a busy machine's scheduling, after).
        let latest = DEADLINE + Duration::from_millis(600);
        assert!(took < latest, "{marker} ran for {took:?}");
        if stop == GuestStop::Deadline {
            assert!(took >= DEADLINE, "stopped before its deadline: {took:?}");
        }
    }
    // The same component plans a well-behaved event right after.
    let plan = plugin
        .plan_event(
            &connection(),
            &[],
            &customer_created("cus_good", "ext-good").to_string(),
        )
        .await
        .expect("no stop")
        .expect("a plan");
    assert!(!plan.steps.is_empty(), "{plan:?}");
}

/// The real component's start-up memory does not fit in 1 MiB: every call is refused with the
/// memory reason (not a bare trap).
#[tokio::test(flavor = "multi_thread")]
async fn a_memory_cap_below_what_the_component_starts_with_names_the_cap() {
    let limits = GuestLimits {
        deadline: DEADLINE,
        memory_bytes: 1 << 20,
    };
    let plugin = Plugin::load_limited(&component_path(), limits).unwrap();
    let error = plugin
        .plan_event(
            &connection(),
            &[],
            &customer_created("cus_1", "ext-1").to_string(),
        )
        .await
        .expect_err("refused");
    let stopped = error.downcast_ref::<GuestError>().expect("a guest stop");
    assert_eq!(stopped.stop, GuestStop::Memory, "{stopped}");
    assert!(stopped.reason.contains("more than its 1 MiB"), "{stopped}");
}

fn event_with_key(events: &[StoredEvent], key: &str) -> StoredEvent {
    events
        .iter()
        .find(|e| e.unique_key.as_deref() == Some(key))
        .unwrap_or_else(|| panic!("no event {key}"))
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_keeps_syncing_while_misbehaving_events_are_stopped_and_kept_with_their_reason() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let options = ServeOptions {
        workers: 4,
        policy: QueuePolicy {
            max_attempts: 2,
            base_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
        },
        ..ServeHarness::hmac_options()
    };
    let serve = ServeHarness::start_with(
        hubspot,
        Store::open_in_memory().unwrap(),
        options,
        ClientSetup {
            plugin: Some(misbehaving()),
            ..ClientSetup::default()
        },
    )
    .await;

    // Misbehaving and well-behaved customers, posted together.
    let posted = [
        ("k-loop", customer_created("cus_loop", LOOP)),
        ("k-grow", customer_created("cus_grow", GROW)),
        ("k-panic", customer_created("cus_panic", PANIC)),
        (
            "k-alongside",
            customer_created("cus_alongside", "ext-alongside"),
        ),
    ];
    for (key, body) in &posted {
        let response = serve.post_signed(&body.to_string(), key).await;
        assert_eq!(response.status(), 200, "{key}");
    }
    serve.settled(Duration::from_secs(60)).await;
    // And one posted after they were all stopped.
    let response = serve
        .post_signed(
            &customer_created("cus_after", "ext-after").to_string(),
            "k-after",
        )
        .await;
    assert_eq!(response.status(), 200);
    serve.settled(Duration::from_secs(30)).await;

    let synced: Vec<String> = serve
        .hubspot
        .records("companies")
        .into_iter()
        .filter_map(|company| company.properties.get("lago_customer_id").cloned())
        .collect();
    let mut synced_sorted = synced.clone();
    synced_sorted.sort();
    assert_eq!(synced_sorted, ["cus_after", "cus_alongside"], "{synced:?}");

    let events = serve.syncer.store().events(None, 100).unwrap();
    for key in ["k-alongside", "k-after"] {
        assert_eq!(
            event_with_key(&events, key).state,
            EventState::Synced,
            "{key}"
        );
    }
    // A trap and the memory cap are dead letters at first sight; the deadline was retried per
    // the queue's policy (2 attempts here) before it was given up.
    for (key, says) in [
        ("k-grow", "more than its 32 MiB"),
        ("k-panic", "the payload asked this component to panic"),
        ("k-loop", "ran past its 300 ms deadline"),
    ] {
        let event = event_with_key(&events, key);
        let error = event.last_error.clone().unwrap_or_default();
        assert_eq!(event.state, EventState::Dead, "{key}: {error}");
        assert!(error.contains(says), "{key}: {error}");
        assert!(error.contains("`on-customer`"), "{key}: {error}");
        assert_eq!(
            error.starts_with("gave up after 2 attempts"),
            key == "k-loop",
            "{key}: {error}"
        );
    }
    serve.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_reports_a_stopped_guest_per_event_and_exits_non_zero() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = std::env::temp_dir().join(format!("lago-hubspot-bounded-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut files = Vec::new();
    for (name, event) in [
        ("good", customer_created("cus_good", "ext-good")),
        ("loop", customer_created("cus_loop", LOOP)),
        ("panic", customer_created("cus_panic", PANIC)),
    ] {
        let file = dir.join(format!("{name}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        files.push(file);
    }
    let (url, state) = (hubspot.url.clone(), dir.join("state.db"));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_lago-hubspot"))
            .env_remove("HUBSPOT_API_URL")
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
            .arg("sync")
            .args(&files)
            .args(["--hubspot-url", &url])
            .arg("--state")
            .arg(&state)
            .arg("--component")
            .arg(misbehaving_component_path())
            .args(["--guest-deadline-ms", "250"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(lines[0].starts_with("synced"), "{stdout}");
    assert!(
        lines[1].starts_with("failed")
            && lines[1].contains("`on-customer`")
            && lines[1].contains("ran past its 250 ms deadline (--guest-deadline-ms)"),
        "{stdout}"
    );
    assert!(
        lines[2].starts_with("failed")
            && lines[2].contains("trapped")
            && lines[2].contains("the payload asked this component to panic"),
        "{stdout}"
    );
    assert!(stderr.contains("2 event(s) failed"), "{stderr}");
    let companies = hubspot.records("companies");
    assert_eq!(companies.len(), 1);
    assert_eq!(companies[0].properties["lago_customer_id"], "cus_good");
    let _ = std::fs::remove_dir_all(&dir);
}
