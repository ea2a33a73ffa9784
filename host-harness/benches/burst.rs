//! The month-start burst: every customer's `customer.created`, `subscription.started` and
//! invoices posted at once by concurrent senders to an in-process `serve`, against the HubSpot
//! emulator enforcing HubSpot's rolling limit (429 `TEN_SECONDLY_ROLLING` over it) and `serve`
//! pacing itself with the same per-portal budget (`--rate-limit`). Batched (`--burst 500`, as
//! shipped) and `--no-batch` (`--burst 1`) side by side, in the same run.
//!
//!     cargo bench -p lago-hubspot --bench burst                     # 200 customers: 2,400 webhooks
//!     cargo bench -p lago-hubspot --bench burst -- --full           # --no-batch at 200 customers too (~8 min)
//!     cargo bench -p lago-hubspot --bench burst -- --customers 50   # a quicker look
//!     cargo bench -p lago-hubspot --bench burst -- --only limit     # or `--only open`
//!
//! Two parts:
//!
//! - At HubSpot's limit (`--limit`, 110 requests / 10 s): what a burst costs in requests and how
//!   long until the queue settles. `--no-batch` needs about two requests per webhook, so at the real
//!   limit a 2,400-webhook burst takes 7+ minutes: it runs at `--no-batch-customers` (default a
//!   tenth of `--customers`), next to batched at that size, and is extrapolated to the full size
//!   (requests per record × records; the extra requests at the budget's pace), marked as such.
//! - With the limit out of the way (`--open-limit`, 110 / 10 ms on both sides): how fast webhooks
//!   are acknowledged (accepted/s, p50/p99 of each POST until its 200) while the workers drain the
//!   queue, batched against `--no-batch`, same size.
//!
//! Requests are every request the emulator logged after set-up: writes, reads, CRM searches
//! (counted apart too: HubSpot limits them on their own, 5/s) and 429s alike; "inputs/batch" is
//! the mean inputs of the `batch/upsert` and `batch/associate` requests. The state is a file
//! (WAL, `synchronous = FULL`) on the build's disk, as `serve` runs (`--memory` for an in-memory
//! store). Each run has its own emulator, store and budget; runs wait out one window after
//! set-up so they start with the whole budget.
//!
//! Needs the component: `make component`.

#[path = "../../tests/testsuite/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use lago_hubspot::queue::EventState;
use lago_hubspot::ratelimit::Rate;
use lago_hubspot::report::table;
use lago_hubspot::server::{DEFAULT_BURST, ServeOptions};
use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Faults, RateLimit};
use serde_json::Value;
use support::*;

struct Args {
    customers: usize,
    invoices: usize,
    posters: usize,
    workers: usize,
    no_batch_customers: usize,
    limit: Rate,
    open_limit: Rate,
    only: Option<String>,
    memory: bool,
    /// Prints every HubSpot request of each run (endpoint, inputs, status).
    verbose: bool,
}

impl Args {
    /// `--customers N`, `--invoices N` (per customer), `--posters N`, `--workers N`,
    /// `--no-batch-customers N`, `--full`, `--limit MAX/MS`, `--open-limit MAX/MS`,
    /// `--only limit|open`, `--memory`, `--verbose`; anything else (`--bench`) is ignored.
    fn parse() -> Args {
        let argv: Vec<String> = std::env::args().skip(1).collect();
        let value = |name: &str| {
            argv.iter()
                .position(|a| a == name)
                .and_then(|i| argv.get(i + 1))
                .cloned()
        };
        let number = |name: &str, default: usize| {
            value(name).map_or(default, |v| v.parse().expect("a number"))
        };
        let rate = |name: &str, default: &str| {
            Rate::parse(&value(name).unwrap_or_else(|| default.into())).expect("MAX/INTERVAL_MS")
        };
        let customers = number("--customers", 200);
        let full = argv.iter().any(|a| a == "--full");
        Args {
            customers,
            invoices: number("--invoices", 10),
            posters: number("--posters", 16),
            workers: number("--workers", 8),
            no_batch_customers: if full {
                customers
            } else {
                number("--no-batch-customers", customers.div_ceil(10))
            },
            limit: rate("--limit", "110/10000"),
            open_limit: rate("--open-limit", "110/10"),
            only: value("--only"),
            memory: argv.iter().any(|a| a == "--memory"),
            verbose: argv.iter().any(|a| a == "--verbose"),
        }
    }
}

/// One customer's month start, in the order Lago sends it: created, its subscription started,
/// `invoices` invoices created. Each webhook comes with the unique key Lago gives it.
fn month_start(index: usize, invoices: usize) -> Vec<(String, String)> {
    let id = format!("cus_{index:04}");
    let kind = if index.is_multiple_of(3) {
        "individual"
    } else {
        "company"
    };
    let lago_customer = customer(&id, Some(kind));
    let mut events = vec![
        customer_event("customer.created", &lago_customer),
        subscription_event(
            "subscription.started",
            &subscription(&format!("sub_{index:04}"), &lago_customer, "active"),
        ),
    ];
    for n in 0..invoices {
        events.push(invoice_event(
            "invoice.created",
            &invoice(
                &format!("inv_{index:04}_{n:02}"),
                &lago_customer,
                "finalized",
                if n % 2 == 0 { "succeeded" } else { "pending" },
            ),
        ));
    }
    events
        .into_iter()
        .enumerate()
        .map(|(n, event)| (format!("{id}-{n:02}"), event.to_string()))
        .collect()
}

type Webhooks = Vec<Vec<(String, String)>>;

/// Posts every webhook from `posters` concurrent senders, each owning every `posters`-th
/// customer and sending its customers' n-th webhooks before their (n+1)-th, one at a time (the
/// next once the previous is answered), as Lago's webhook jobs do at a month start. Returns the
/// time until the last 200 and each POST's time to its 200 (ms).
async fn post_all(url: &str, webhooks: &Arc<Webhooks>, posters: usize) -> (Duration, Vec<f64>) {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for poster in 0..posters {
        let (client, url, webhooks) = (client.clone(), url.to_owned(), webhooks.clone());
        tasks.spawn(async move {
            let mine: Vec<&Vec<(String, String)>> =
                webhooks.iter().skip(poster).step_by(posters).collect();
            let longest = mine.iter().map(|c| c.len()).max().unwrap_or(0);
            let mut acks = Vec::new();
            for n in 0..longest {
                for (key, body) in mine.iter().filter_map(|c| c.get(n)) {
                    let sent = Instant::now();
                    let answer = post_webhook(&client, &url, body, key).await.unwrap();
                    acks.push(sent.elapsed().as_secs_f64() * 1000.0);
                    assert_eq!(answer.status(), 200, "{key}");
                }
            }
            acks
        });
    }
    let mut acks = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        acks.extend(joined.unwrap());
    }
    (started.elapsed(), sorted(acks))
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

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Batched,
    NoBatch,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Batched => "batched",
            Mode::NoBatch => "--no-batch",
        }
    }

    fn burst(self) -> usize {
        match self {
            Mode::Batched => DEFAULT_BURST,
            Mode::NoBatch => 1,
        }
    }
}

struct Run {
    mode: Mode,
    customers: usize,
    records: usize,
    requests: usize,
    /// CRM searches among them (HubSpot limits them apart: 5/s).
    searches: usize,
    rate_limited: usize,
    /// Mean inputs per batch write request (0 when none was sent).
    inputs_per_batch: f64,
    /// From the first POST until nothing is pending or running.
    settled: Duration,
    posted: Duration,
    acks: Vec<f64>,
}

impl Run {
    fn per_record(&self) -> f64 {
        self.requests as f64 / self.records as f64
    }

    fn accepted_per_s(&self) -> f64 {
        self.records as f64 / self.posted.as_secs_f64()
    }
}

struct Scratch {
    dir: std::path::PathBuf,
    runs: usize,
    memory: bool,
}

impl Scratch {
    /// A new store for one run: a file on the build's disk (fsync is real), or in memory.
    fn store(&mut self) -> Store {
        self.runs += 1;
        if self.memory {
            Store::open_in_memory().unwrap()
        } else {
            Store::open(&self.dir.join(format!("state-{}.db", self.runs))).unwrap()
        }
    }
}

async fn run(scratch: &mut Scratch, args: &Args, mode: Mode, customers: usize, limit: Rate) -> Run {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            rate_limit: Some(RateLimit {
                max: limit.max,
                interval_ms: limit.interval.as_millis() as u64,
            }),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let serve = ServeHarness::start_with(
        hubspot,
        scratch.store(),
        ServeOptions {
            workers: args.workers,
            burst: mode.burst(),
            ..ServeHarness::hmac_options()
        },
        ClientSetup {
            plugin: None,
            budget: Some(limit),
            ..ClientSetup::default()
        },
    )
    .await;
    // Warm up connections and the component's instances on a customer of its own, then let the
    // set-up's requests age out of both windows: the burst starts with the whole budget.
    let warm: Arc<Webhooks> = Arc::new(vec![month_start(900_000, 2)]);
    post_all(&serve.url, &warm, 1).await;
    serve.settled(Duration::from_secs(120)).await;
    tokio::time::sleep(limit.interval + Duration::from_millis(100)).await;
    serve.hubspot.clear_request_log();

    let webhooks: Arc<Webhooks> = Arc::new(
        (0..customers)
            .map(|c| month_start(c, args.invoices))
            .collect(),
    );
    let records: usize = webhooks.iter().map(Vec::len).sum();
    let started = Instant::now();
    // With `--verbose`, a timeline: every 500 ms, requests and 429s so far, and the queue.
    let timeline = args.verbose.then(|| {
        let (hubspot, syncer) = (serve.hubspot.emulator().clone(), serve.syncer.clone());
        tokio::spawn(async move {
            let mut lines = Vec::new();
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let log = hubspot.request_log();
                let stats = syncer.store().queue_stats().unwrap();
                lines.push(format!(
                    "{:.1}s {}req {}x429 {}p {}r {}s",
                    started.elapsed().as_secs_f64(),
                    log.len(),
                    log.iter().filter(|r| r.status == 429).count(),
                    stats.count(EventState::Pending),
                    stats.count(EventState::Running),
                    stats.count(EventState::Synced),
                ));
                if lines.len() % 10 == 0 {
                    println!("    {}", lines[lines.len() - 10..].join(" | "));
                }
            }
        })
    });
    let (posted, acks) = post_all(&serve.url, &webhooks, args.posters).await;
    serve.settled(Duration::from_secs(3600)).await;
    let settled = started.elapsed();
    if let Some(timeline) = timeline {
        timeline.abort();
        println!("    posted in {:.1} s", posted.as_secs_f64());
    }

    let stats = serve.syncer.store().queue_stats().unwrap();
    assert_eq!(
        stats.count(EventState::Synced) as usize,
        records + warm[0].len(),
        "every event synced: {stats:?}"
    );
    let log = serve.hubspot.request_log();
    let batches: Vec<usize> = log
        .iter()
        .filter(|r| r.path.contains("/batch/upsert") || r.path.contains("/batch/associate"))
        .filter(|r| r.status / 100 == 2)
        .filter_map(|r| serde_json::from_str::<Value>(&r.body).ok())
        .map(|body| body["inputs"].as_array().map_or(0, Vec::len))
        .collect();
    if args.verbose {
        // Every request in order: endpoint (last path segments), inputs, status.
        let line: Vec<String> = log
            .iter()
            .map(|r| {
                let segments: Vec<&str> = r.path.rsplit('/').take(3).collect();
                let inputs = serde_json::from_str::<Value>(&r.body)
                    .ok()
                    .and_then(|b| b["inputs"].as_array().map(Vec::len));
                format!(
                    "{} {}{}{}",
                    r.method,
                    segments.into_iter().rev().collect::<Vec<_>>().join("/"),
                    inputs.map_or(String::new(), |n| format!(" ×{n}")),
                    if r.status / 100 == 2 {
                        String::new()
                    } else {
                        format!(" [{}]", r.status)
                    }
                )
            })
            .collect();
        println!("    requests: {}", line.join(", "));
    }
    let objects = |t: &str| serve.hubspot.records(t).len();
    assert_eq!(
        objects("companies") + objects("contacts"),
        customers + 1,
        "one HubSpot record per customer"
    );
    assert_eq!(
        objects(lago_hubspot::config::INVOICES_SCHEMA),
        customers * args.invoices + 2
    );
    let result = Run {
        mode,
        customers,
        records,
        requests: log.len(),
        searches: log
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/search"))
            .count(),
        rate_limited: log.iter().filter(|r| r.status == 429).count(),
        inputs_per_batch: if batches.is_empty() {
            0.0
        } else {
            batches.iter().sum::<usize>() as f64 / batches.len() as f64
        },
        settled,
        posted,
        acks,
    };
    serve.stop().await.unwrap();
    println!(
        "  {} at {} customers: {} requests, settled in {:.1} s",
        mode.name(),
        customers,
        result.requests,
        result.settled.as_secs_f64()
    );
    result
}

fn rate_text(rate: Rate) -> String {
    format!("{} per {} ms", rate.max, rate.interval.as_millis())
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
    let per_customer = 2 + args.invoices;
    println!(
        "burst bench: {} customers × (customer.created, subscription.started, {} invoice.created) = {} webhooks, \
         {} posters, {} workers, state {}",
        args.customers,
        args.invoices,
        args.customers * per_customer,
        args.posters,
        args.workers,
        if args.memory {
            "in memory"
        } else {
            "file (WAL, synchronous=FULL)"
        },
    );
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("burst-bench");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut scratch = Scratch {
        dir: dir.clone(),
        runs: 0,
        memory: args.memory,
    };

    if args.only.as_deref().is_none_or(|only| only == "limit") {
        println!(
            "\nat HubSpot's limit: emulator enforces {}, serve's budget the same",
            rate_text(args.limit)
        );
        let small = args.no_batch_customers;
        let mut runs = vec![
            run(
                &mut scratch,
                &args,
                Mode::Batched,
                args.customers,
                args.limit,
            )
            .await,
        ];
        if small != args.customers {
            runs.push(run(&mut scratch, &args, Mode::Batched, small, args.limit).await);
        }
        runs.push(run(&mut scratch, &args, Mode::NoBatch, small, args.limit).await);
        let mut rows: Vec<Vec<String>> = runs
            .iter()
            .map(|r| {
                vec![
                    r.mode.name().to_owned(),
                    r.customers.to_string(),
                    r.records.to_string(),
                    r.requests.to_string(),
                    r.searches.to_string(),
                    format!("{:.3}", r.per_record()),
                    format!("{:.1}", r.inputs_per_batch),
                    format!("{:.1}", r.settled.as_secs_f64()),
                    r.rate_limited.to_string(),
                ]
            })
            .collect();
        let no_batch = runs.last().unwrap();
        if small != args.customers {
            // Requests scale with records; the extra requests go out at the budget's pace.
            let records = args.customers * per_customer;
            let requests = no_batch.per_record() * records as f64;
            let extra = (requests - no_batch.requests as f64).max(0.0);
            let wall = no_batch.settled.as_secs_f64()
                + extra / args.limit.max as f64 * args.limit.interval.as_secs_f64();
            rows.push(vec![
                "--no-batch (extrapolated)".into(),
                args.customers.to_string(),
                records.to_string(),
                format!("≈ {requests:.0}"),
                "-".into(),
                format!("{:.3}", no_batch.per_record()),
                "-".into(),
                format!("≈ {wall:.0}"),
                "-".into(),
            ]);
        }
        print!(
            "{}",
            table(
                &[
                    "mode",
                    "customers",
                    "webhooks",
                    "requests",
                    "searches",
                    "req/record",
                    "inputs/batch",
                    "settled s",
                    "429s",
                ],
                &rows,
            )
        );
        let batched = &runs[0];
        println!(
            "target ≤ 0.05 requests per record: batched {:.3} at {} customers ({})",
            batched.per_record(),
            batched.customers,
            if batched.per_record() <= 0.05 {
                "met"
            } else {
                "MISSED"
            }
        );
        let same_size = runs
            .iter()
            .find(|r| r.mode == Mode::Batched && r.customers == small)
            .unwrap();
        println!(
            "same size ({small} customers): --no-batch / batched = {:.1}× the requests, {:.1}× the time",
            no_batch.requests as f64 / same_size.requests as f64,
            no_batch.settled.as_secs_f64() / same_size.settled.as_secs_f64()
        );
    }

    if args.only.as_deref().is_none_or(|only| only == "open") {
        println!(
            "\nlimit out of the way: emulator and budget at {}",
            rate_text(args.open_limit)
        );
        let batched = run(
            &mut scratch,
            &args,
            Mode::Batched,
            args.customers,
            args.open_limit,
        )
        .await;
        let single = run(
            &mut scratch,
            &args,
            Mode::NoBatch,
            args.customers,
            args.open_limit,
        )
        .await;
        let rows: Vec<Vec<String>> = [&batched, &single]
            .iter()
            .map(|r| {
                vec![
                    r.mode.name().to_owned(),
                    r.records.to_string(),
                    format!("{:.0}", r.accepted_per_s()),
                    format!(
                        "{:.1} / {:.1}",
                        percentile(&r.acks, 50.0),
                        percentile(&r.acks, 99.0)
                    ),
                    format!("{:.1}", r.settled.as_secs_f64()),
                    r.requests.to_string(),
                    format!("{:.3}", r.per_record()),
                    r.rate_limited.to_string(),
                ]
            })
            .collect();
        print!(
            "{}",
            table(
                &[
                    "mode",
                    "webhooks",
                    "accepted/s",
                    "ack p50 / p99 ms",
                    "settled s",
                    "requests",
                    "req/record",
                    "429s",
                ],
                &rows,
            )
        );
        let throughput = single.accepted_per_s() / batched.accepted_per_s();
        let p99 = percentile(&batched.acks, 99.0) / percentile(&single.acks, 99.0);
        let verdict = |ratio: f64| if ratio <= 1.5 { "met" } else { "MISSED" };
        println!(
            "target: batched within 1.5× of --no-batch: accepted/s {throughput:.2}× ({}), p99 {p99:.2}× ({})",
            verdict(throughput),
            verdict(p99)
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
