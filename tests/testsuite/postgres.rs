//! PostgreSQL as the shared state (`--database postgres://…`): every command against it, and
//! several `serve` instances sharing one queue while HubSpot misbehaves and one instance is
//! killed. The server is the one `LAGO_HUBSPOT_TEST_DATABASE_URL` names
//! (`tools/pg-test-cluster run -- cargo test …`); without it these tests skip with a notice, and
//! fail when `LAGO_HUBSPOT_REQUIRE_PG=1` (CI).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lago_hubspot::queue::EventState;
use lago_hubspot::store::testing::fresh_database_url;
use lago_hubspot_emulators::hubspot::{Faults, InjectedFault, RateLimit, RunningEmulator};
use rand::Rng as _;

use crate::support::binary::{Service, Workspace, lago_hubspot_command};
use crate::support::lago::{Lago, busy};
use crate::support::*;

fn run(args: &[&str], database: &str, hubspot_url: &str) -> std::process::Output {
    lago_hubspot_command()
        .args(args)
        .args(["--database", database, "--hubspot-url", hubspot_url])
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .output()
        .unwrap()
}

fn ok(output: &std::process::Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// deploy, sync, plan, status, events, log, connections and link read and write one
/// PostgreSQL state; a read-only command on a database without one says so and creates nothing.
#[tokio::test(flavor = "multi_thread")]
async fn every_command_reads_and_writes_a_postgresql_state() {
    let Some(database) = fresh_database_url() else {
        return;
    };
    let hubspot = start_hubspot().await;
    let url = hubspot.url.clone();
    let workspace = Workspace::new("pg-cli");
    let customer_file = workspace.dir.join("customer.json");
    std::fs::write(
        &customer_file,
        customer_event("customer.created", &customer("cus_pg", Some("company"))).to_string(),
    )
    .unwrap();
    let customer_path = customer_file.to_str().unwrap().to_owned();
    let db = database.clone();
    tokio::task::spawn_blocking(move || {
        let status = run(&["status"], &db, &url);
        assert!(!status.status.success(), "status created a state");
        let stderr = String::from_utf8_lossy(&status.stderr);
        assert!(stderr.contains("no lago-hubspot state"), "{stderr}");

        let deploy = ok(
            &run(&["deploy", "--organization-slug", "acme"], &db, &url),
            "deploy",
        );
        assert!(deploy.contains("LagoInvoices: 2-"), "{deploy}");
        let sync = ok(&run(&["sync", &customer_path], &db, &url), "sync");
        assert!(sync.starts_with("synced"), "{sync}");
        ok(&run(&["plan", &customer_path], &db, &url), "plan");
        ok(&run(&["status"], &db, &url), "status");
        ok(&run(&["events", "list"], &db, &url), "events list");
        let log = ok(&run(&["log", "cus_pg"], &db, &url), "log");
        assert!(log.contains("synced"), "{log}");
        let connections = ok(
            &run(&["connections", "list"], &db, &url),
            "connections list",
        );
        assert!(!connections.trim().is_empty());
        ok(&run(&["link", "cus_other", "12345"], &db, &url), "link");
    })
    .await
    .unwrap();
    assert_eq!(hubspot.records("companies").len(), 1);
    // The state is the database's: a store opened on it sees what the commands wrote.
    let store = lago_hubspot::store::Store::open_postgres(&database).unwrap();
    assert_eq!(store.links(None).unwrap().len(), 1);
    assert!(
        !store
            .sync_log(&store.connections().unwrap()[0].code, "cus_pg")
            .unwrap()
            .is_empty()
    );
}

/// The portal's limit in the multi-instance runs, scaled down from HubSpot's 110 per 10 s so that
/// the instances meet it.
const RATE_MAX: u32 = 25;
const RATE_INTERVAL_MS: u64 = 1_000;

async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `instances` `serve` processes on one PostgreSQL state receive the webhooks of `customers`
/// customers concurrently through a HubSpot that fails, drops and stalls; instance 0 is
/// SIGKILLed mid-run and restarted later. HubSpot must end as a clean sequential run leaves it,
/// every webhook stored once and synced.
async fn several_instances(instances: usize, customers: usize) {
    let Some(database) = fresh_database_url() else {
        return;
    };
    let mut workspace = Workspace::on_database(&format!("pg-instances-{instances}"), database);
    // Each instance is told the portal's whole limit: only by sharing it do they stay within.
    workspace.rate_limit = format!("{RATE_MAX}/{RATE_INTERVAL_MS}");
    let hubspot = start_hubspot().await;
    let webhooks: Vec<Vec<(String, String)>> = (0..customers).map(customer_lifecycle).collect();
    let total: usize = webhooks.iter().map(Vec::len).sum();
    let reference = tokio::spawn({
        let webhooks = webhooks.clone();
        async move { reference_state(&webhooks).await }
    });

    let mut services = Vec::new();
    for _ in 0..instances {
        services.push(Service::start(&workspace, &hubspot.url, &[]).await);
    }
    hubspot.set_faults(Faults {
        rate_limit: Some(RateLimit {
            max: RATE_MAX,
            interval_ms: RATE_INTERVAL_MS,
        }),
        error_rate: 0.05,
        error_statuses: vec![500, 502, 503],
        latency_ms: Some((5, 30)),
        drop_rate: 0.02,
        seed: Some(0x9e5),
        ..Faults::default()
    });
    let urls = Arc::new(RwLock::new(
        services.iter().map(|s| s.url.clone()).collect::<Vec<_>>(),
    ));
    let lago = Lago::start(urls.clone(), webhooks.clone(), 8, Duration::from_millis(10));

    // Kill instance 0 partway through the posting; Lago's posts to it fail over to the others.
    let at = rand::rng().random_range(total / 5..total / 2);
    wait_for("webhooks before the kill", Duration::from_secs(120), || {
        lago.acknowledged() >= at || lago.done()
    })
    .await;
    services[0].kill();
    let killed_url = services[0].url.clone();
    urls.write().unwrap().retain(|u| *u != killed_url);
    let killed_at = workspace.stats();
    // Later, it comes back on a new port and takes its share again.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    services[0] = Service::start(&workspace, &hubspot.url, &[]).await;
    urls.write().unwrap().push(services[0].url.clone());

    wait_for("Lago to post everything", Duration::from_secs(240), || {
        lago.done()
    })
    .await;
    wait_for(
        "the shared queue to drain",
        Duration::from_secs(240),
        || busy(&workspace.stats()) == 0,
    )
    .await;
    let redeliveries = lago.finished().await;
    for service in services {
        let status = service.terminate().await;
        assert!(
            status.is_some_and(|s| s.success()),
            "clean exit: {status:?}\n{}",
            workspace.log_tail()
        );
    }

    let store = workspace.open();
    let stats = store.queue_stats().unwrap();
    let rows: u64 = stats.counts.iter().map(|(_, n)| n).sum();
    assert_eq!(rows as usize, total, "one row per webhook: {stats:?}");
    assert_eq!(
        stats.count(EventState::Synced) as usize,
        total,
        "every event synced: {stats:?}\n{}",
        workspace.log_tail()
    );
    let keys: BTreeSet<String> = store
        .events(None, total + 10)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.unique_key)
        .collect();
    let sent: BTreeSet<String> = webhooks.iter().flatten().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, sent, "every webhook stored under its own key");
    HubspotState::read(hubspot.emulator()).assert_same_as(&reference.await.unwrap());
    let log = hubspot.request_log();
    let limited = log
        .iter()
        .filter(|r| r.fault == Some(InjectedFault::RateLimited))
        .count();
    assert_eq!(
        limited,
        0,
        "{instances} instances together went over the portal's {RATE_MAX}/{RATE_INTERVAL_MS} ms ({} requests)",
        log.len()
    );
    eprintln!(
        "{instances} instances, {total} webhooks, {} redelivered, {} HubSpot requests, none over the shared limit, instance 0 killed at {killed_at:?}",
        redeliveries,
        log.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_instances_share_the_queue_through_faults_and_a_kill() {
    several_instances(2, 20).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn three_instances_share_the_queue_through_faults_and_a_kill() {
    several_instances(3, 30).await;
}

/// HubSpot's daily limit, met by one instance, pauses the portal on every instance and after a
/// restart: once one instance met the 429 `DAILY`, webhooks that reach another instance, or an
/// instance started later, wait for the reset without a single request to HubSpot.
#[tokio::test(flavor = "multi_thread")]
async fn a_spent_daily_budget_pauses_every_instance_and_survives_a_restart() {
    let Some(database) = fresh_database_url() else {
        return;
    };
    let workspace = Workspace::on_database("pg-daily", database);
    let hubspot = start_hubspot().await;
    let a = Service::start(&workspace, &hubspot.url, &[]).await;
    let b = Service::start(&workspace, &hubspot.url, &[]).await;
    hubspot.set_faults(Faults {
        daily_max: Some(5),
        ..Faults::default()
    });
    let daily = || {
        hubspot
            .request_log()
            .iter()
            .filter(|r| r.fault == Some(InjectedFault::DailyLimited))
            .count()
    };
    // Instance a alone meets the limit.
    let first: Vec<Vec<(String, String)>> = (0..6).map(customer_lifecycle).collect();
    let to_a = Lago::start_one(&a.url, first, 2);
    wait_for("the daily limit", Duration::from_secs(60), || daily() > 0).await;
    to_a.finished().await;
    // Its requests in flight come back; then nothing more goes out. The other instance reads the
    // record at least once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let requests = hubspot.request_log().len();
    let limited = daily();

    // Instance b gets webhooks of other customers, which it has not tried yet.
    let later: Vec<Vec<(String, String)>> = (100..104).map(customer_lifecycle).collect();
    Lago::start_one(&b.url, later, 2).finished().await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hubspot.request_log().len(),
        requests,
        "an instance sent requests after another met the daily limit ({limited} → {} daily 429s)\n{}",
        daily(),
        workspace.log_tail()
    );
    // A restarted instance does not try either.
    for service in [a, b] {
        assert!(service.terminate().await.is_some_and(|s| s.success()));
    }
    let c = Service::start(&workspace, &hubspot.url, &[]).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        hubspot.request_log().len(),
        requests,
        "{}",
        workspace.log_tail()
    );
    let stats = workspace.stats();
    assert!(
        stats.count(EventState::Pending) > 0 && stats.count(EventState::Dead) == 0,
        "the events wait for the reset, none given up: {stats:?}"
    );
    // And `status` says why they wait.
    let status = lago_hubspot_command()
        .args(["status"])
        .args(workspace.state_args())
        .output()
        .unwrap();
    let said = ok(&status, "status");
    assert!(
        said.contains("daily limit of connection hubspot-test is spent until"),
        "{said}"
    );
    assert!(c.terminate().await.is_some_and(|s| s.success()));
}

/// A state file of release 0.1.0 moves to PostgreSQL with `migrate` (upgraded on the way) and
/// the commands read it there; a second migrate into the same database is refused.
#[test]
fn migrate_moves_an_old_state_file_to_postgresql() {
    let Some(database) = fresh_database_url() else {
        return;
    };
    let workspace = Workspace::new("pg-migrate");
    let file = workspace.dir.join("state.db");
    std::fs::copy(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/state-0.1.0/state-0.1.0.db"),
        &file,
    )
    .unwrap();
    let before = lago_hubspot::store::Store::open(&file).unwrap();
    let connection = before
        .sole_connection()
        .unwrap()
        .expect("one connection")
        .code;
    let ids = before.all_ids(&connection).unwrap().len();
    let events = before.events(None, 10_000).unwrap().len();
    drop(before);
    assert!(ids > 0 && events > 0);

    let migrate = |to: &str| {
        lago_hubspot_command()
            .args(["migrate", "--from", file.to_str().unwrap(), "--to", to])
            .output()
            .unwrap()
    };
    let out = ok(&migrate(&database), "migrate");
    assert!(out.contains("id_map"), "{out}");
    let after = lago_hubspot::store::Store::open_postgres(&database).unwrap();
    assert_eq!(after.all_ids(&connection).unwrap().len(), ids);
    assert_eq!(after.events(None, 10_000).unwrap().len(), events);
    let status = lago_hubspot_command()
        .args(["status", "--database", &database])
        .output()
        .unwrap();
    ok(&status, "status on the migrated state");
    let again = migrate(&database);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("already holds a state"), "{stderr}");
}

/// Lago's concurrent senders in the benchmark (each sends a customer's webhooks in order).
const SENDERS: usize = 64;

/// One benchmark run: `instances` `serve` processes on a fresh PostgreSQL state receive
/// `webhooks` from Lago's [`SENDERS`] senders.
struct Run {
    /// Webhooks acknowledged per second, from the first post to the last 200.
    ingested_per_s: f64,
    /// Events synced per second, from the first post until the queue is empty.
    synced_per_s: f64,
    /// HubSpot requests of the run, and how many HubSpot refused with 429.
    requests: usize,
    limited: usize,
    seconds: f64,
    events: usize,
}

/// The portal's limit (max, ms) the emulator enforces, `None` for none. Without a limit the
/// emulator still reports HubSpot's default window in its headers, and the instances would wait
/// on them: it then reports one that never runs out.
fn enforce_limit(hubspot: &RunningEmulator, limit: Option<(u32, u64)>) {
    let (max, interval_ms) = limit.unwrap_or((u32::MAX, 1_000));
    hubspot.set_faults(Faults {
        rate_limit: Some(RateLimit { max, interval_ms }),
        ..Faults::default()
    });
}

/// Runs `webhooks` through `instances` instances; `limit` is the portal's limit (max, ms) the
/// emulator enforces and the instances are told, `None` for none.
async fn measure(
    name: &str,
    instances: usize,
    webhooks: &[Vec<(String, String)>],
    limit: Option<(u32, u64)>,
) -> Option<Run> {
    let database = fresh_database_url()?;
    let hubspot = start_hubspot().await;
    let mut workspace = Workspace::on_database(&format!("pg-bench-{name}-{instances}"), database);
    if let Some((max, interval_ms)) = limit {
        workspace.rate_limit = format!("{max}/{interval_ms}");
    }
    let mut services = Vec::new();
    for _ in 0..instances {
        services.push(Service::start(&workspace, &hubspot.url, &[]).await);
    }
    enforce_limit(&hubspot, limit);
    let before = hubspot.request_log().len();
    let urls = Arc::new(RwLock::new(
        services.iter().map(|s| s.url.clone()).collect::<Vec<_>>(),
    ));
    let total: usize = webhooks.iter().map(Vec::len).sum();
    let started = std::time::Instant::now();
    let lago = Lago::start(urls, webhooks.to_vec(), SENDERS, Duration::from_millis(10));
    wait_for("posting", Duration::from_secs(600), || lago.done()).await;
    let ingested = started.elapsed();
    wait_for("draining", Duration::from_secs(600), || {
        busy(&workspace.stats()) == 0
    })
    .await;
    let synced = started.elapsed();
    lago.finished().await;
    let log = hubspot.request_log();
    for service in services {
        service.terminate().await;
    }
    Some(Run {
        ingested_per_s: total as f64 / ingested.as_secs_f64(),
        synced_per_s: total as f64 / synced.as_secs_f64(),
        requests: log.len() - before,
        limited: log[before..].iter().filter(|r| r.status == 429).count(),
        seconds: synced.as_secs_f64(),
        events: total,
    })
}

/// How fast `instances` instances drain a backlog of `webhooks` stored before they start (as
/// after an outage, Lago's redeliveries in): their sync alone, without the senders' pace. One
/// instance deploys first; the run counts from the first instance's start to an empty queue.
async fn measure_backlog(instances: usize, webhooks: &[Vec<(String, String)>]) -> Option<Run> {
    let database = fresh_database_url()?;
    let hubspot = start_hubspot().await;
    enforce_limit(&hubspot, None);
    let workspace = Workspace::on_database(&format!("pg-bench-backlog-{instances}"), database);
    Service::start(&workspace, &hubspot.url, &[])
        .await
        .terminate()
        .await;
    // Stored as the instances store webhooks, in the order Lago sends them: the n-th webhook of
    // every customer before the (n+1)-th of any.
    let store = workspace.open();
    let longest = webhooks.iter().map(Vec::len).max().unwrap_or(0);
    for n in 0..longest {
        for (key, body) in webhooks.iter().filter_map(|c| c.get(n)) {
            let event =
                lago_hubspot::server::queued_event(body.clone(), Some(key.clone()), |_, _| {
                    Ok("hubspot-test".into())
                });
            store.insert_event(&event).unwrap();
        }
    }
    drop(store);
    let total: usize = webhooks.iter().map(Vec::len).sum();
    let before = hubspot.request_log().len();
    let started = std::time::Instant::now();
    let mut services = Vec::new();
    for _ in 0..instances {
        services.push(Service::start(&workspace, &hubspot.url, &[]).await);
    }
    wait_for("draining", Duration::from_secs(600), || {
        busy(&workspace.stats()) == 0
    })
    .await;
    let synced = started.elapsed();
    let log = hubspot.request_log();
    for service in services {
        service.terminate().await;
    }
    Some(Run {
        ingested_per_s: 0.0,
        synced_per_s: total as f64 / synced.as_secs_f64(),
        requests: log.len() - before,
        limited: log[before..].iter().filter(|r| r.status == 429).count(),
        seconds: synced.as_secs_f64(),
        events: total,
    })
}

/// Benchmark (run on demand): webhook ingestion and sync throughput of 1, 2 and 3 `serve`
/// instances on one PostgreSQL.
/// - Without a rate limit: what the instances themselves can do on this machine.
/// - At HubSpot's limit (110 requests per 10 s per portal, enforced by the emulator; each
///   instance told the whole limit, so only sharing keeps them within): where the portal binds.
///
/// `cargo build --release -p lago-hubspot && LAGO_HUBSPOT_BIN=target/release/lago-hubspot
/// tools/pg-test-cluster run -- cargo test -p lago-hubspot --test testsuite --
/// --ignored postgres::benchmark_instances --nocapture --test-threads 1` (`BENCH_CUSTOMERS`,
/// default 1,000 of 11 webhooks each, sets the size; `BENCH_LIMIT=MAX/MS` the portal's limit).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run on demand"]
async fn benchmark_instances_on_one_database() {
    let size = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let webhooks: Vec<Vec<(String, String)>> = (0..size("BENCH_CUSTOMERS", 1000))
        .map(customer_lifecycle)
        .collect();
    // HubSpot's limit by default; `BENCH_LIMIT=MAX/MS` scales it (a smaller window binds sooner).
    let limit = std::env::var("BENCH_LIMIT")
        .ok()
        .and_then(|v| {
            let (max, ms) = v.split_once('/')?;
            Some((max.parse().ok()?, ms.parse().ok()?))
        })
        .unwrap_or((110, 10_000));
    let per_s = f64::from(limit.0) * 1000.0 / limit.1 as f64;
    let mut rows = Vec::new();
    for instances in 1..=3 {
        let Some(unlimited) = measure("free", instances, &webhooks, None).await else {
            return;
        };
        let limited = measure("bound", instances, &webhooks, Some(limit))
            .await
            .unwrap();
        let backlog = measure_backlog(instances, &webhooks).await.unwrap();
        rows.push((instances, unlimited, limited, backlog));
    }
    let events = rows[0].1.events;
    eprintln!(
        "\n{events} webhooks of {} customers from {SENDERS} senders",
        webhooks.len()
    );
    eprintln!("\nwithout a rate limit: what the instances do on this machine");
    eprintln!(
        "instances | ingested webhooks/s | synced events/s while ingesting | backlog drained, events/s | requests per event (backlog)"
    );
    for (n, run, _, backlog) in &rows {
        eprintln!(
            "{n} | {:.0} | {:.0} | {:.0} | {:.3}",
            run.ingested_per_s,
            run.synced_per_s,
            backlog.synced_per_s,
            backlog.requests as f64 / backlog.events as f64
        );
    }
    eprintln!(
        "\nat the portal's limit, {} requests / {} ms, each instance told the whole limit",
        limit.0, limit.1
    );
    eprintln!(
        "instances | synced events/s | HubSpot requests/s (share of the limit) | requests per event | 429s"
    );
    for (n, _, run, _) in &rows {
        let rate = run.requests as f64 / run.seconds;
        eprintln!(
            "{n} | {:.0} | {rate:.2} ({:.0} %) | {:.3} | {}",
            run.synced_per_s,
            100.0 * rate / per_s,
            run.requests as f64 / run.events as f64,
            run.limited
        );
    }
    // Where N instances are bound: the portal admits `per_s` requests/s, i.e. per_s / (requests
    // per event at the limit) events/s, whatever the instances; the instances sync what they
    // drained a backlog at.
    eprintln!("\nwhere a deployment is bound (one portal):");
    for (n, _, bound, free) in &rows {
        let portal = per_s / (bound.requests as f64 / bound.events as f64);
        eprintln!(
            "{n} instance(s): can sync {:.0} events/s; the portal admits {portal:.0} (at {:.3} requests per event): bound by {}",
            free.synced_per_s,
            bound.requests as f64 / bound.events as f64,
            if free.synced_per_s >= portal {
                "HubSpot"
            } else {
                "the instances"
            }
        );
    }
}

/// Benchmark (run on demand): how long the events an instance held take to be picked up by
/// another after it is SIGKILLed, over `BENCH_KILLS` kills (default 3) at random points of the
/// lease's renewal cycle. HubSpot answers slowly (1.5 s), so the killed instance holds events.
///
/// `cargo build --release -p lago-hubspot && LAGO_HUBSPOT_BIN=target/release/lago-hubspot
/// tools/pg-test-cluster run -- cargo test -p lago-hubspot --test testsuite --
/// --ignored postgres::benchmark_orphaned --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark: run on demand"]
async fn benchmark_orphaned_lease_pickup() {
    let kills: usize = std::env::var("BENCH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let mut pickups: Vec<f64> = Vec::new();
    for kill in 0..kills {
        let Some(database) = fresh_database_url() else {
            return;
        };
        let hubspot = start_hubspot().await;
        let workspace = Workspace::on_database(&format!("pg-orphan-{kill}"), database);
        let mut victim = Service::start(&workspace, &hubspot.url, &[]).await;
        let survivor = Service::start(&workspace, &hubspot.url, &[]).await;
        hubspot.set_faults(Faults {
            latency_ms: Some((1500, 1500)),
            ..Faults::default()
        });
        let webhooks: Vec<Vec<(String, String)>> = (0..20).map(customer_lifecycle).collect();
        let urls = Arc::new(RwLock::new(vec![victim.url.clone(), survivor.url.clone()]));
        let lago = Lago::start(urls.clone(), webhooks, 8, Duration::from_millis(10));
        let pid = format!(":{}:", victim.child.id());
        let held = || {
            workspace
                .open()
                .events(Some(EventState::Running), 10_000)
                .unwrap()
                .into_iter()
                .filter(|e| e.lease_owner.as_deref().is_some_and(|o| o.contains(&pid)))
                .map(|e| e.id)
                .collect::<Vec<i64>>()
        };
        wait_for("the victim to hold events", Duration::from_secs(60), || {
            !held().is_empty()
        })
        .await;
        // A random point of the 3.3 s renewal cycle.
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(0..3400))).await;
        victim.kill();
        let killed = std::time::Instant::now();
        urls.write().unwrap().retain(|u| *u != victim.url);
        let orphans = held();
        let mut left: Vec<i64> = orphans.clone();
        while !left.is_empty() {
            assert!(
                killed.elapsed() < Duration::from_secs(60),
                "never picked up"
            );
            let store = workspace.open();
            left.retain(|id| {
                let event = store.event(*id).unwrap().unwrap();
                let taken = event.state != EventState::Running
                    || !event
                        .lease_owner
                        .as_deref()
                        .is_some_and(|o| o.contains(&pid));
                if taken {
                    pickups.push(killed.elapsed().as_secs_f64());
                }
                !taken
            });
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        lago.finished().await;
        survivor.terminate().await;
        eprintln!("kill {kill}: {} orphaned events picked up", orphans.len());
    }
    pickups.sort_by(f64::total_cmp);
    let at = |q: f64| pickups[((pickups.len() - 1) as f64 * q).round() as usize];
    eprintln!(
        "orphaned events picked up after the kill: min {:.2} s, median {:.2} s, max {:.2} s ({} events, lease 10 s renewed every 3.3 s)",
        at(0.0),
        at(0.5),
        at(1.0),
        pickups.len()
    );
}
