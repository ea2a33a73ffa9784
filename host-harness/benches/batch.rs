//! Batched vs one-request-per-step execution of a backfill-sized history, against the HubSpot
//! emulator under HubSpot's rate-limit shape (110 requests per window; the window scaled down
//! from 10 s to 100 ms so the slow path ends in minutes).
//!
//!     cargo bench -p lago-hubspot --bench batch                 # 2,000 customers, 2,000 subscriptions, 20,000 invoices
//!     cargo bench -p lago-hubspot --bench batch -- --customers 200   # a quicker look
//!     cargo bench -p lago-hubspot --bench batch -- --scale 0         # the full size only
//!
//! Each mode also runs at `--scale` of the volume (default 0.1: 200 customers, 200
//! subscriptions, 2,000 invoices) in the same run, and the time ratio says whether the cost is
//! linear in volume (target: 10× the records in at most 12× the time).
//!
//! Needs the component: `make component`. The state is in memory so that both modes measure
//! HubSpot traffic, not the disk.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lago_hubspot::config::ConnectionSettings;
use lago_hubspot::hubspot_http::{HubspotClient, Secret};
use lago_hubspot::ratelimit::{Rate, RateBudget};
use lago_hubspot::runtime::Plugin;
use lago_hubspot::store::Store;
use lago_hubspot::sync::{OutcomeStatus, Syncer};
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Faults, RateLimit};
use serde_json::{Value, json};

const TOKEN: &str = "bench-token";
const INVOICES_PER_CUSTOMER: usize = 10;
const WINDOW: Rate = Rate {
    max: 110,
    interval: Duration::from_millis(100),
};

struct Dataset {
    customers: Vec<String>,
    subscriptions: Vec<String>,
    invoices: Vec<String>,
}

fn dataset(customers: usize) -> Dataset {
    let mut data = Dataset {
        customers: Vec::new(),
        subscriptions: Vec::new(),
        invoices: Vec::new(),
    };
    for c in 0..customers {
        let customer = json!({
            "lago_id": format!("cus-{c:06}"), "external_id": format!("ext-{c}"), "name": format!("Customer {c}"),
            "customer_type": if c % 4 == 0 { "individual" } else { "company" },
            "firstname": "Ada", "lastname": "Lovelace", "email": format!("billing{c}@example.com"),
            "url": format!("https://c{c}.example.com"), "currency": "EUR", "integration_customers": []
        });
        let envelope = |kind: &str, webhook: &str, object: Value| {
            json!({"webhook_type": webhook, "object_type": kind, "organization_id": "org", kind: object}).to_string()
        };
        data.customers
            .push(envelope("customer", "customer.created", customer.clone()));
        data.subscriptions.push(envelope("subscription", "subscription.started", json!({
            "lago_id": format!("sub-{c:06}"), "external_id": format!("sub-ext-{c}"), "lago_customer_id": format!("cus-{c:06}"),
            "name": "Pro", "plan_code": "pro", "status": "active", "billing_time": "calendar",
            "subscription_at": "2026-01-01T00:00:00Z", "started_at": "2026-01-01T00:00:00Z", "created_at": "2026-01-01T00:00:00Z",
            "customer": customer
        })));
        for i in 0..INVOICES_PER_CUSTOMER {
            data.invoices.push(envelope("invoice", "invoice.created", json!({
                "lago_id": format!("inv-{c:06}-{i:02}"), "number": format!("INV-{c}-{i}"), "status": "finalized",
                "payment_status": if i % 2 == 0 { "succeeded" } else { "pending" }, "invoice_type": "subscription",
                "currency": "EUR", "issuing_date": "2026-02-01", "payment_due_date": "2026-03-01", "payment_overdue": false,
                "total_amount_cents": 12_000 + i, "total_due_amount_cents": 0, "sub_total_excluding_taxes_amount_cents": 10_000,
                "file_url": format!("https://lago.example.com/inv-{c}-{i}.pdf"), "customer": customer
            })));
        }
    }
    data
}

struct Run {
    requests: Vec<usize>,
    rate_limited: usize,
    failed: usize,
    wall: Duration,
}

async fn run(plugin: Arc<Plugin>, data: &Dataset, batched: bool) -> anyhow::Result<Run> {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            rate_limit: Some(RateLimit {
                max: WINDOW.max,
                interval_ms: WINDOW.interval.as_millis() as u64,
            }),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await?;
    let dir = std::env::temp_dir().join(format!(
        "lago-hubspot-bench-{}-{batched}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir)?;
    let _ = std::fs::remove_file(dir.join("state.db"));
    let client = HubspotClient::new(&hubspot.url, Secret::new(TOKEN))?
        .with_budget(Arc::new(RateBudget::new(WINDOW)));
    let syncer = Syncer::new(
        plugin,
        client,
        Store::open_in_memory()?,
        ConnectionSettings::default(),
    )?;
    syncer.deploy().await?;
    hubspot.clear_request_log();
    let start = Instant::now();
    let mut requests = Vec::new();
    let mut failed = 0;
    for phase in [&data.customers, &data.subscriptions, &data.invoices] {
        let before = hubspot.request_log().len();
        if batched {
            for chunk in phase.chunks(2000) {
                failed += syncer
                    .sync_batch(chunk)
                    .await
                    .iter()
                    .filter(|o| o.status == OutcomeStatus::Failed)
                    .count();
            }
        } else {
            for payload in phase.iter() {
                failed +=
                    usize::from(syncer.sync_event(payload).await.status == OutcomeStatus::Failed);
            }
        }
        requests.push(hubspot.request_log().len() - before);
    }
    let wall = start.elapsed();
    let rate_limited = hubspot
        .request_log()
        .iter()
        .filter(|r| r.status == 429)
        .count();
    Ok(Run {
        requests,
        rate_limited,
        failed,
        wall,
    })
}

struct Measured {
    name: &'static str,
    data: Dataset,
    run: Run,
}

impl Measured {
    fn records(&self) -> usize {
        self.data.customers.len() + self.data.subscriptions.len() + self.data.invoices.len()
    }

    fn requests(&self) -> usize {
        self.run.requests.iter().sum()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|n| n.parse::<f64>().ok())
    };
    let customers = value("--customers").map_or(2000, |n| n as usize);
    let scale = value("--scale").unwrap_or(0.1);
    let small = ((customers as f64 * scale).round() as usize).clamp(1, customers);
    let sizes: Vec<usize> = if scale > 0.0 && small < customers {
        vec![small, customers]
    } else {
        vec![customers]
    };
    let component = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/lago_hubspot_guest.wasm");
    let plugin = Arc::new(Plugin::load(&component)?);
    println!(
        "datasets: {} customers, as many subscriptions, {INVOICES_PER_CUSTOMER} invoices each; emulated limit {} requests / {} ms",
        sizes
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" and "),
        WINDOW.max,
        WINDOW.interval.as_millis()
    );
    let mut measured = Vec::new();
    for (name, batched) in [("batched", true), ("--no-batch", false)] {
        for &size in &sizes {
            let data = dataset(size);
            let run = run(plugin.clone(), &data, batched).await?;
            println!(
                "  {name} at {size} customers: {:.1} s",
                run.wall.as_secs_f64()
            );
            measured.push(Measured { name, data, run });
        }
    }
    println!(
        "\n{:<12} {:>9} {:>10} {:>13} {:>9} {:>9} {:>6} {:>7}",
        "mode", "records", "requests", "req/record", "wall s", "ms/record", "429s", "failed"
    );
    for m in &measured {
        let records = m.records();
        println!(
            "{:<12} {records:>9} {:>10} {:>13.4} {:>9.1} {:>9.3} {:>6} {:>7}",
            m.name,
            m.requests(),
            m.requests() as f64 / records as f64,
            m.run.wall.as_secs_f64(),
            m.run.wall.as_secs_f64() * 1000.0 / records as f64,
            m.run.rate_limited,
            m.run.failed
        );
    }
    let full: Vec<&Measured> = measured
        .iter()
        .filter(|m| m.data.customers.len() == customers)
        .collect();
    let (batched, single) = (&full[0], &full[1]);
    println!(
        "\nrequests: --no-batch / batched = {:.1}×",
        single.requests() as f64 / batched.requests() as f64
    );
    println!(
        "wall time: --no-batch / batched = {:.1}×",
        single.run.wall.as_secs_f64() / batched.run.wall.as_secs_f64()
    );
    if sizes.len() == 2 {
        for name in ["batched", "--no-batch"] {
            let [small, large] = [0, 1].map(|n| {
                measured
                    .iter()
                    .filter(|m| m.name == name)
                    .nth(n)
                    .expect("two sizes")
            });
            let records = large.records() as f64 / small.records() as f64;
            let time = large.run.wall.as_secs_f64() / small.run.wall.as_secs_f64();
            println!(
                "linearity, {name}: {records:.0}× the records in {time:.1}× the time (target ≤ {:.0}×: {})",
                records * 1.2,
                if time <= records * 1.2 {
                    "met"
                } else {
                    "MISSED"
                }
            );
        }
    }
    // Per-phase requests per record, scaled to a larger history.
    let scale = |m: &Measured| {
        let per = |phase: usize, count: usize| m.run.requests[phase] as f64 / count as f64;
        per(0, m.data.customers.len()) * 10_000.0
            + per(1, m.data.subscriptions.len()) * 10_000.0
            + per(2, m.data.invoices.len()) * 100_000.0
    };
    println!(
        "extrapolated to 10k customers + 10k subscriptions + 100k invoices: batched ≈ {:.0} requests, --no-batch ≈ {:.0} requests",
        scale(batched),
        scale(single)
    );
    Ok(())
}
