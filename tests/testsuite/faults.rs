//! Fault suite: a thousand-odd signed webhooks posted concurrently to `serve` while HubSpot
//! rate-limits, fails, stalls, drops connections and half-applies batches. The end state must be
//! exactly what a clean sequential sync of the same events produces: nothing lost, nothing twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lago_hubspot::queue::EventState;
use lago_hubspot::ratelimit::Rate;
use lago_hubspot::retry::RetryPolicy;
use lago_hubspot::server::ServeOptions;
use lago_hubspot::store::Store;
use lago_hubspot::worker::QueuePolicy;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Faults, InjectedFault, RateLimit};
use serde_json::Value;

use crate::support::*;

const POSTERS: usize = 24;

/// As shipped: bursts run as HubSpot batch requests, so partial batches hit several events.
#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_webhooks_through_a_misbehaving_hubspot_end_like_a_clean_run() {
    let total = fault_suite(100, ServeOptions::default().burst).await;
    assert!(total >= 1_000, "the suite promises 1,000+ webhooks");
}

/// One request per plan step (`--no-batch`), a smaller run: the executor's own retries.
#[tokio::test(flavor = "multi_thread")]
async fn unbatched_webhooks_through_a_misbehaving_hubspot_end_like_a_clean_run() {
    fault_suite(30, 1).await;
}

/// Posts every webhook of `customers` customers concurrently through a misbehaving HubSpot,
/// checks the end state against a clean run, and returns how many webhooks were posted.
async fn fault_suite(customers: usize, burst: usize) -> usize {
    let started = Instant::now();
    let webhooks: Vec<Vec<(String, String)>> = (0..customers).map(customer_lifecycle).collect();
    let total: usize = webhooks.iter().map(Vec::len).sum();

    // Deploy on a well-behaved portal, then let it misbehave for the sync.
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let options = ServeOptions {
        workers: 16,
        burst,
        policy: QueuePolicy {
            max_attempts: 30,
            base_backoff: Duration::from_millis(5),
            max_backoff: Duration::from_millis(200),
        },
        ..ServeHarness::hmac_options()
    };
    let serve = ServeHarness::start_with(
        hubspot,
        Store::open_in_memory().unwrap(),
        options,
        ClientSetup {
            plugin: None,
            // The portal's limit, scaled down like the emulator's.
            budget: Some(Rate {
                max: 40,
                interval: Duration::from_millis(200),
            }),
            // Waits scaled down with the limit (477's Retry-After capped at 300 ms; a 423 still
            // waits HubSpot's 2 s).
            retry: Some(RetryPolicy {
                max_attempts: 5,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(300),
            }),
            settings: None,
        },
    )
    .await;
    serve.hubspot.set_faults(Faults {
        rate_limit: Some(RateLimit {
            max: 40,
            interval_ms: 200,
        }),
        error_rate: 0.1,
        error_statuses: vec![500, 502, 503, 504, 423, 477],
        latency_ms: Some((1, 5)),
        drop_rate: 0.05,
        partial_batch_rate: 0.03,
        seed: Some(0x1a90),
        ..Faults::default()
    });

    // Another integration on the same portal spends the window now and then, so the service
    // meets real 429s even though its own budget keeps it under the limit.
    let neighbour = tokio::spawn(noisy_neighbour(serve.hubspot.url.clone()));

    // The clean run needs no HubSpot of ours: let it run meanwhile.
    let webhooks = Arc::new(webhooks);
    let reference = tokio::spawn({
        let webhooks = webhooks.clone();
        async move { reference_state(&webhooks).await }
    });

    // Each poster owns some customers and interleaves their events, one customer's events in
    // order (the next is posted once the previous one is acknowledged), like Lago does.
    let client = reqwest::Client::new();
    let mut posters = tokio::task::JoinSet::new();
    for poster in 0..POSTERS {
        let (client, url, webhooks) = (client.clone(), serve.url.clone(), webhooks.clone());
        posters.spawn(async move {
            let mine: Vec<&Vec<(String, String)>> =
                webhooks.iter().skip(poster).step_by(POSTERS).collect();
            let longest = mine.iter().map(|c| c.len()).max().unwrap_or(0);
            let mut answers = BTreeMap::<String, usize>::new();
            for n in 0..longest {
                for customer in &mine {
                    let Some((key, body)) = customer.get(n) else {
                        continue;
                    };
                    let response = post_webhook(&client, &url, body, key)
                        .await
                        .expect("serve answers");
                    assert_eq!(response.status(), 200, "{key}");
                    let answer: Value = response.json().await.unwrap();
                    *answers
                        .entry(answer["status"].as_str().unwrap_or("?").to_owned())
                        .or_default() += 1;
                }
            }
            answers
        });
    }
    let mut answers = BTreeMap::<String, usize>::new();
    while let Some(joined) = posters.join_next().await {
        for (status, count) in joined.expect("poster") {
            *answers.entry(status).or_default() += count;
        }
    }
    let posted = started.elapsed();
    assert_eq!(answers.get("accepted"), Some(&total), "{answers:?}");

    serve.settled(Duration::from_secs(240)).await;
    let synced_at = started.elapsed();
    neighbour.abort();

    // Nothing lost: every webhook is one row, and every row ended synced (none dead or pending).
    {
        let store = serve.syncer.store();
        let stats = store.queue_stats().unwrap();
        let rows: u64 = stats.counts.iter().map(|(_, n)| n).sum();
        assert_eq!(rows as usize, total, "{stats:?}");
        assert_eq!(
            stats.count(EventState::Synced) as usize,
            total,
            "every event synced: {stats:?}, dead: {:?}",
            store
                .events(Some(EventState::Dead), 5)
                .unwrap()
                .iter()
                .map(|e| e.last_error.clone())
                .collect::<Vec<_>>()
        );
    }

    // The faults really happened.
    let log = serve.hubspot.request_log();
    let mut faults = BTreeMap::<&str, usize>::new();
    for entry in log.iter().filter(|e| e.path != NEIGHBOUR_PATH) {
        let kind = match entry.fault {
            None => continue,
            Some(InjectedFault::RateLimited) => "429 rate limited",
            Some(InjectedFault::DailyLimited) => "429 daily",
            Some(InjectedFault::Error) => "injected error",
            Some(InjectedFault::Dropped { .. }) => "dropped connection",
            Some(InjectedFault::PartialBatch { .. }) => "partial batch",
        };
        *faults.entry(kind).or_default() += 1;
    }
    for kind in [
        "429 rate limited",
        "injected error",
        "dropped connection",
        "partial batch",
    ] {
        assert!(
            faults.get(kind).is_some_and(|&n| n > 0),
            "no {kind} in {faults:?}"
        );
    }
    let log: Vec<_> = log.iter().filter(|e| e.path != NEIGHBOUR_PATH).collect();
    let requeued = serve
        .syncer
        .store()
        .events(Some(EventState::Synced), total)
        .unwrap()
        .iter()
        .filter(|e| e.attempts > 0)
        .count();

    // Same HubSpot as a clean run: every record once, same properties, same associations.
    let actual = HubspotState::read(serve.hubspot.emulator());
    let expected = reference.await.expect("reference run");
    assert_eq!(expected.count(INVOICES), 3 * customers);
    assert_eq!(
        expected.count("companies") + expected.count("contacts"),
        customers
    );
    actual.assert_same_as(&expected);
    serve.stop().await.expect("graceful stop");
    eprintln!(
        "burst {burst}: {total} webhooks, {} HubSpot requests, faults {faults:?}, {requeued} \
         events retried by the queue; posted in {posted:?}, synced in {synced_at:?}, total {:?}",
        log.len(),
        started.elapsed()
    );
    total
}

const INVOICES: &str = lago_hubspot::config::INVOICES_SCHEMA;
const NEIGHBOUR_PATH: &str = "/account-info/v3/details";

async fn wait_until(what: &str, ready: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Bursts of reads that fill the portal's rolling window, every few hundred milliseconds.
async fn noisy_neighbour(hubspot_url: String) {
    let client = reqwest::Client::new();
    loop {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..40 {
            let request = client
                .get(format!("{hubspot_url}{NEIGHBOUR_PATH}"))
                .bearer_auth(TOKEN)
                .send();
            burst.spawn(async move {
                let _ = request.await;
            });
        }
        burst.join_all().await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_outlive_a_database_locked_longer_than_the_busy_timeout() {
    let dir = std::env::temp_dir().join(format!("lago-hubspot-faults-lock-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.db");
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let serve = ServeHarness::start_with(
        hubspot,
        Store::open(&state).unwrap(),
        ServeOptions {
            policy: QueuePolicy {
                max_attempts: 30,
                base_backoff: Duration::from_millis(1500),
                max_backoff: Duration::from_secs(2),
            },
            ..ServeHarness::hmac_options()
        },
        ClientSetup {
            plugin: None,
            budget: None,
            // Give up on a step at once, so the event goes back to the queue to wait.
            retry: Some(RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            }),
            settings: None,
        },
    )
    .await;
    let event_state = |key: &str| {
        serve
            .syncer
            .store()
            .events(None, 10)
            .unwrap()
            .into_iter()
            .find(|e| e.unique_key.as_deref() == Some(key))
            .map(|e| (e.state, e.attempts))
    };
    // One customer's event fails once and waits in the queue for its next attempt, due while
    // the database is locked (the pool must not die on the failed claim)...
    serve.hubspot.set_faults(Faults {
        error_rate: 1.0,
        error_statuses: vec![503],
        ..Faults::default()
    });
    let (waiting_key, body) = &customer_lifecycle(7)[0];
    assert_eq!(serve.post_signed(body, waiting_key).await.status(), 200);
    wait_until(
        "a failed attempt",
        || matches!(event_state(waiting_key), Some((EventState::Pending, n)) if n >= 1),
    )
    .await;
    // ...and another's is at HubSpot when the lock is taken, so its outcome cannot be recorded
    // (it must not stay `running`, holding up its customer).
    serve.hubspot.set_faults(Faults {
        latency_ms: Some((1500, 1500)),
        ..Faults::default()
    });
    let (running_key, body) = &customer_lifecycle(8)[0];
    assert_eq!(serve.post_signed(body, running_key).await.status(), 200);
    wait_until("an event in flight", || {
        matches!(event_state(running_key), Some((EventState::Running, _)))
    })
    .await;
    // Another process (an operator's sqlite3, a backup tool) holds the write lock for longer
    // than the store's 5 s busy timeout, twice over.
    let (locked, is_locked) = std::sync::mpsc::channel();
    let holder = std::thread::spawn(move || {
        let db = rusqlite::Connection::open(&state).unwrap();
        db.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_secs(13));
        db.execute_batch("COMMIT").unwrap();
    });
    is_locked.recv().unwrap();
    serve.hubspot.set_faults(Faults::default());
    tokio::task::spawn_blocking(move || holder.join().unwrap())
        .await
        .unwrap();
    // Once the lock is gone, both are synced without a restart.
    serve.settled(Duration::from_secs(60)).await;
    assert_eq!(
        serve
            .syncer
            .store()
            .queue_stats()
            .unwrap()
            .count(EventState::Synced),
        2
    );
    assert_eq!(
        serve.hubspot.records("companies").len() + serve.hubspot.records("contacts").len(),
        2
    );
    serve.stop().await.expect("graceful stop");
    let _ = std::fs::remove_dir_all(&dir);
}
