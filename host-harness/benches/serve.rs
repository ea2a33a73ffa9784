//! `serve` under load, against the HubSpot emulator, as ratios against baselines measured in the
//! same run (absolute numbers depend on the machine; ratios much less).
//!
//!     cargo bench -p lago-hubspot --bench serve                       # 200 customers: 2,200 webhooks
//!     cargo bench -p lago-hubspot --bench serve -- --customers 50     # a quicker look
//!     cargo test -p lago-hubspot --bench serve                        # the same in debug (~1 min)
//!
//! `serve` runs as shipped (8 workers, bursts executed as HubSpot batch requests).
//!
//! - Accepted webhooks/s: 16 concurrent posters (each customer's webhooks in order), every POST
//!   answered 200 only after the event is committed. Baseline: a bare endpoint on the same HTTP
//!   stack that verifies the HMAC signature and answers 200 without storing anything — the most a
//!   webhook receiver can do here. The in-memory row shows what durability (fsync) costs.
//! - Webhook-to-HubSpot latency: from the webhook being received to its event being marked synced
//!   (the record is in HubSpot by then), from the store's timestamps (ms). "burst" is every event of
//!   the throughput run (mostly time spent queued behind the backlog); "1 in flight" posts one
//!   webhook, waits until it is synced, then posts the next. Baseline: the same events synced
//!   directly with `Syncer::sync_event` (plan + HubSpot requests, no queue, no durable commits).
//!
//! Needs the component: `make component`.

#[path = "../../tests/testsuite/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use lago_hubspot::hubspot_http::Secret;
use lago_hubspot::queue::EventState;
use lago_hubspot::server::ServeOptions;
use lago_hubspot::signature::WebhookAuth;
use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::Value;
use support::*;

struct Args {
    customers: usize,
    posters: usize,
    one_by_one: usize,
}

impl Args {
    /// `--customers N`, `--posters N`, `--one-by-one N`; anything else (`--bench`) is ignored.
    fn parse() -> Args {
        let mut args = Args {
            customers: 200,
            posters: 16,
            one_by_one: 110,
        };
        let argv: Vec<String> = std::env::args().skip(1).collect();
        for pair in argv.windows(2) {
            let value = || pair[1].parse().expect("a number");
            match pair[0].as_str() {
                "--customers" => args.customers = value(),
                "--posters" => args.posters = value(),
                "--one-by-one" => args.one_by_one = value(),
                _ => {}
            }
        }
        args
    }
}

type Webhooks = Vec<Vec<(String, String)>>;

/// Posts every webhook from `posters` concurrent tasks, each customer's in order; returns the
/// time until the last one was answered 200.
async fn post_all(url: &str, webhooks: &Arc<Webhooks>, posters: usize) -> Duration {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for poster in 0..posters {
        let (client, url, webhooks) = (client.clone(), url.to_owned(), webhooks.clone());
        tasks.spawn(async move {
            let mine: Vec<&Vec<(String, String)>> =
                webhooks.iter().skip(poster).step_by(posters).collect();
            let longest = mine.iter().map(|c| c.len()).max().unwrap_or(0);
            for n in 0..longest {
                for (key, body) in mine.iter().filter_map(|c| c.get(n)) {
                    let answer = post_webhook(&client, &url, body, key).await.unwrap();
                    assert_eq!(answer.status(), 200, "{key}");
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        joined.unwrap();
    }
    started.elapsed()
}

/// The least a webhook receiver does: check the signature and answer.
async fn bare_endpoint() -> (String, tokio::task::JoinHandle<()>) {
    let auth = Arc::new(WebhookAuth::new(Some(Secret::new(HMAC_KEY))));
    let router = axum::Router::new().route(
        "/webhooks/lago",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let auth = auth.clone();
            async move {
                match auth.verify(&headers, &body) {
                    Ok(()) => (
                        StatusCode::OK,
                        axum::Json(serde_json::json!({"status": "accepted"})),
                    ),
                    Err(_) => (StatusCode::UNAUTHORIZED, axum::Json(Value::Null)),
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    (url, task)
}

/// Milliseconds at the given percentile (nearest rank).
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

struct ServeRun {
    accepted_per_s: f64,
    synced_per_s: f64,
    burst: Vec<f64>,
    one_by_one: Vec<f64>,
}

async fn hubspot() -> lago_hubspot_emulators::hubspot::RunningEmulator {
    Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// Synced-minus-received (ms) of the synced events with one of `keys`, read through a second
/// connection: `updated_at_ms` is when the event was marked synced, and the store's API does not
/// expose it.
fn latencies<'a>(database: &str, keys: impl IntoIterator<Item = &'a String>) -> Vec<f64> {
    let keys: std::collections::HashSet<&String> = keys.into_iter().collect();
    let db = rusqlite::Connection::open(database).unwrap();
    let mut query = db
        .prepare(
            "SELECT unique_key, updated_at_ms - received_at_ms FROM events
             WHERE state = 'synced'",
        )
        .unwrap();
    query
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .filter(|(key, _)| keys.contains(key))
        .map(|(_, ms)| ms as f64)
        .collect()
}

/// `database`: a file, or a shared in-memory SQLite URI (no disk, no fsync).
async fn serve_run(
    database: &str,
    burst: &Arc<Webhooks>,
    one_by_one: &[(String, String)],
    posters: usize,
) -> ServeRun {
    let serve = ServeHarness::start_against(
        hubspot().await,
        Store::open(std::path::Path::new(database)).unwrap(),
        ServeOptions {
            workers: 8,
            ..ServeHarness::hmac_options()
        },
    )
    .await;
    // Warm up connections and the component's instances.
    let warm: Arc<Webhooks> = Arc::new((900_000..900_002).map(customer_lifecycle).collect());
    post_all(&serve.url, &warm, 2).await;
    serve.settled(Duration::from_secs(300)).await;

    let started = Instant::now();
    let posted = post_all(&serve.url, burst, posters).await;
    serve.settled(Duration::from_secs(600)).await;
    let drained = started.elapsed();
    let total: usize = burst.iter().map(Vec::len).sum();
    let burst_latency = latencies(database, burst.iter().flatten().map(|(key, _)| key));

    let client = reqwest::Client::new();
    for (key, body) in one_by_one {
        let answer: Value = post_webhook(&client, &serve.url, body, key)
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let id = answer["id"].as_i64().expect("accepted");
        loop {
            let state = serve.syncer.store().event(id).unwrap().unwrap().state;
            if !matches!(state, EventState::Pending | EventState::Running) {
                assert_eq!(state, EventState::Synced);
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let one_latency = latencies(database, one_by_one.iter().map(|(key, _)| key));
    serve.stop().await.unwrap();
    ServeRun {
        accepted_per_s: total as f64 / posted.as_secs_f64(),
        synced_per_s: total as f64 / drained.as_secs_f64(),
        burst: sorted(burst_latency),
        one_by_one: sorted(one_latency),
    }
}

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(bench(args));
}

async fn bench(args: Args) {
    let burst: Arc<Webhooks> = Arc::new((0..args.customers).map(customer_lifecycle).collect());
    let total: usize = burst.iter().map(Vec::len).sum();
    // Customers of their own, apart from the burst's.
    let one_by_one: Vec<(String, String)> = (500_000..)
        .flat_map(customer_lifecycle)
        .take(args.one_by_one)
        .collect();
    println!(
        "serve bench: {total} webhooks for {} customers, {} posters; {} webhooks one by one",
        args.customers,
        args.posters,
        one_by_one.len()
    );

    let (bare_url, bare_task) = bare_endpoint().await;
    post_all(
        &bare_url,
        &Arc::new(burst[..2.min(burst.len())].to_vec()),
        2,
    )
    .await;
    let bare = total as f64
        / post_all(&bare_url, &burst, args.posters)
            .await
            .as_secs_f64();
    bare_task.abort();

    // The same events synced directly, one at a time: the work itself, with no queue around it.
    let direct = {
        let harness = Harness::deployed().await;
        let mut times = Vec::new();
        for (_, body) in &one_by_one {
            let payload: Value = serde_json::from_str(body).unwrap();
            let started = Instant::now();
            harness.sync_ok(&payload).await;
            times.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        sorted(times)
    };

    // Both stores live in a scratch directory on the same disk as the build (not a tmpfs, so
    // fsync is real); `Store::open` leaves an empty placeholder named after the in-memory URI.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("serve-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::env::set_current_dir(&dir).unwrap();
    let memory = serve_run(
        "file:serve-bench-memory?mode=memory&cache=shared",
        &burst,
        &one_by_one,
        args.posters,
    )
    .await;
    let file = serve_run("state.db", &burst, &one_by_one, args.posters).await;
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    let direct_p50 = percentile(&direct, 50.0);
    let mut rows = vec![vec![
        "bare endpoint (HMAC check, 200, no store)".to_owned(),
        format!("{bare:.0}"),
        "1.00".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
    ]];
    for (name, run) in [
        ("serve, in-memory store (no fsync)", &memory),
        ("serve, state file (WAL, synchronous=FULL)", &file),
    ] {
        let one_p50 = percentile(&run.one_by_one, 50.0);
        rows.push(vec![
            name.to_owned(),
            format!("{:.0}", run.accepted_per_s),
            format!("{:.3}", run.accepted_per_s / bare),
            format!("{:.0}", run.synced_per_s),
            format!(
                "{:.0} / {:.0}",
                percentile(&run.burst, 50.0),
                percentile(&run.burst, 99.0)
            ),
            format!("{one_p50:.0} / {:.0}", percentile(&run.one_by_one, 99.0)),
            format!("{:.2}", one_p50 / direct_p50),
        ]);
    }
    rows.push(vec![
        "direct sync (Syncer::sync_event, no queue)".to_owned(),
        "-".into(),
        "-".into(),
        "-".into(),
        "-".into(),
        format!("{direct_p50:.1} / {:.1}", percentile(&direct, 99.0)),
        "1.00".into(),
    ]);
    print!(
        "{}",
        lago_hubspot::report::table(
            &[
                "",
                "accepted/s",
                "x bare",
                "synced/s",
                "burst p50/p99 ms",
                "1 in flight p50/p99 ms",
                "x direct p50",
            ],
            &rows,
        )
    );
}
