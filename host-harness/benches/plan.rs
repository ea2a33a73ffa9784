//! Planning only (no HubSpot): what running the mapping as a sandboxed component costs against
//! running the same Rust natively, as ratios measured in the same run.
//!
//!     make component && cargo bench -p lago-hubspot --bench plan
//!     cargo bench -p lago-hubspot --bench plan -- --events 20000 --cold 3   # longer
//!
//! - µs per event over the nine `samples/events/` (route by `webhook_type`, then plan): native
//!   (the guest crate's functions called directly), the component with a fresh store and instance
//!   per call (what `sync`, `backfill` and `serve` do), and one instance reused between calls
//!   (`Plugin::reused_instance`). Each is the median of 5 batches, on one thread, as CPU time
//!   (the thread's own, from `/proc/thread-self/schedstat`: what a shared machine's load does not
//!   inflate) and wall time; ratios are of CPU time (of wall time where there is no schedstat).
//! - Plans/s on one core: 1 / CPU µs per event, single-threaded.
//! - Component load: cold (compiled, no cache) against cached (wasmtime's compiled-code cache, in
//!   a fresh directory under the system's temporary directory), each in a new engine as a
//!   restarted process would.
//! - `.wasm` size with and without its name sections (`name` in each core module,
//!   `component-name`): the sections are found by walking the binary's sections; without them is
//!   the size minus their bytes.

#[path = "../../tests/testsuite/support/mod.rs"]
mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use lago_hubspot::runtime::{Cache, CacheConfig, Connection, Plugin};
use lago_hubspot_guest::webhooks::{Envelope, Handler, Route};

const SAMPLES: [&str; 9] = [
    include_str!("../../samples/events/01-customer-company.json"),
    include_str!("../../samples/events/02-customer-individual.json"),
    include_str!("../../samples/events/03-customer-linked-to-existing-company.json"),
    include_str!("../../samples/events/04-subscription-started.json"),
    include_str!("../../samples/events/05-invoice-created-eur.json"),
    include_str!("../../samples/events/06-invoice-payment-succeeded.json"),
    include_str!("../../samples/events/07-invoice-created-jpy.json"),
    include_str!("../../samples/events/08-invoice-draft.json"),
    include_str!("../../samples/events/09-subscription-terminated.json"),
];

const BATCHES: usize = 5;

struct Args {
    /// Events per batch.
    events: usize,
    /// Cold loads (each compiles the component: ~0.3–1 s).
    cold: usize,
}

impl Args {
    /// `--events N`, `--cold N`; anything else (`--bench`) is ignored.
    fn parse() -> Args {
        let mut args = Args {
            events: 4_000,
            cold: 2,
        };
        let argv: Vec<String> = std::env::args().skip(1).collect();
        for pair in argv.windows(2) {
            let value = || pair[1].parse::<usize>().expect("a number").max(1);
            match pair[0].as_str() {
                "--events" => args.events = value(),
                "--cold" => args.cold = value(),
                _ => {}
            }
        }
        args
    }
}

/// The connection of a deployed portal, so subscriptions and invoices plan in full.
fn connections() -> (Connection, lago_hubspot_guest::Connection) {
    let settings = support::settings();
    let ids = || (Some("2-1001".into()), Some("2-1002".into()), None);
    let (subscriptions, invoices, credit_notes) = ids();
    let wit = settings.to_wit(subscriptions, invoices, credit_notes, true);
    let (subscriptions, invoices, credit_notes) = ids();
    let native = lago_hubspot_guest::Connection {
        code: wit.code.clone(),
        default_targeted_object: lago_hubspot_guest::TargetedObject::Companies,
        lago_app_url: wit.lago_app_url.clone(),
        organization_slug: wit.organization_slug.clone(),
        subscriptions_object_type_id: subscriptions,
        invoices_object_type_id: invoices,
        credit_notes_object_type_id: credit_notes,
        sync_subscriptions: wit.sync_subscriptions,
        sync_invoices: wit.sync_invoices,
        sync_credit_notes: wit.sync_credit_notes,
        sync_unlinked_customers: wit.sync_unlinked_customers,
        sole_connection: wit.sole_connection,
    };
    (wit, native)
}

/// What `Plugin::plan_event` does, natively: route by `webhook_type`, then plan. Returns the
/// number of steps, so nothing is optimised away.
fn plan_natively(connection: &lago_hubspot_guest::Connection, payload: &str) -> usize {
    use lago_hubspot_guest as guest;
    let handler = match Envelope::read(payload) {
        Ok(Envelope {
            route: Route::Push { handler, .. },
            ..
        }) => handler,
        _ => return 0,
    };
    let plan = match handler {
        Handler::Customer => guest::on_customer(connection, &[], payload),
        Handler::Subscription => guest::on_subscription(connection, &[], payload),
        Handler::Invoice => guest::on_invoice(connection, &[], payload),
        Handler::CreditNote => guest::on_credit_note(connection, &[], payload),
    };
    plan.map_or(0, |plan| plan.steps.len())
}

/// This thread's time on a CPU so far (Linux), else `None`.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(
        stat.split_whitespace().next()?.parse().ok()?,
    ))
}

/// Time per event: CPU time of this thread (when known) and wall time.
#[derive(Debug, Clone, Copy)]
struct Timing {
    cpu: Option<Duration>,
    wall: Duration,
}

impl Timing {
    /// CPU time when known, else wall time.
    fn cost(self) -> Duration {
        self.cpu.unwrap_or(self.wall)
    }
}

/// Median over [`BATCHES`] batches of the mean time per event of `events` calls of `one`.
async fn per_event<F, Fut>(events: usize, mut one: F) -> Timing
where
    F: FnMut(&'static str) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let mut steps = 0;
    // Warm-up: caches, the allocator, lazily initialised state.
    for payload in SAMPLES.iter().cycle().take(SAMPLES.len() * 20) {
        steps += one(payload).await;
    }
    let (mut walls, mut cpus) = (Vec::with_capacity(BATCHES), Vec::with_capacity(BATCHES));
    for _ in 0..BATCHES {
        let (started, cpu_before) = (Instant::now(), thread_cpu());
        for payload in SAMPLES.iter().cycle().take(events) {
            steps += one(payload).await;
        }
        walls.push(started.elapsed() / events as u32);
        if let (Some(before), Some(after)) = (cpu_before, thread_cpu()) {
            cpus.push((after - before) / events as u32);
        }
    }
    assert!(steps > 0, "nothing was planned");
    Timing {
        cpu: (cpus.len() == BATCHES).then(|| median(cpus)),
        wall: median(walls),
    }
}

fn cache_in(dir: &Path) -> anyhow::Result<Cache> {
    let mut config = CacheConfig::new();
    config.with_directory(dir);
    Ok(Cache::new(config)?)
}

fn timed_load(load: impl FnOnce() -> anyhow::Result<Plugin>) -> anyhow::Result<Timing> {
    let (started, cpu_before) = (Instant::now(), thread_cpu());
    let plugin = load()?;
    let wall = started.elapsed();
    let cpu = cpu_before
        .zip(thread_cpu())
        .map(|(before, after)| after - before);
    drop(plugin);
    Ok(Timing { cpu, wall })
}

fn median_timing(times: Vec<Timing>) -> Timing {
    let cpus: Vec<Duration> = times.iter().filter_map(|t| t.cpu).collect();
    Timing {
        cpu: (cpus.len() == times.len()).then(|| median(cpus)),
        wall: median(times.iter().map(|t| t.wall).collect()),
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

/// Bytes of the name sections (`name`, `component-name`) of a core module or component,
/// nested modules and components included, with their section headers.
fn name_section_bytes(binary: &[u8]) -> anyhow::Result<usize> {
    fn leb(bytes: &[u8], at: &mut usize) -> anyhow::Result<usize> {
        let (mut value, mut shift) = (0usize, 0);
        loop {
            let byte = *bytes
                .get(*at)
                .ok_or_else(|| anyhow::anyhow!("truncated LEB128 at byte {at}"))?;
            *at += 1;
            value |= usize::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
            shift += 7;
            anyhow::ensure!(shift < 64, "LEB128 too long");
        }
    }
    anyhow::ensure!(binary.starts_with(b"\0asm"), "not a wasm binary");
    // Byte 6 of the header: 0 for a core module, 1 for a component (its "layer").
    let component = binary.get(6) == Some(&1);
    let mut at = 8;
    let mut total = 0;
    while at < binary.len() {
        let start = at;
        let id = binary[at];
        at += 1;
        let size = leb(binary, &mut at)?;
        let payload = binary
            .get(at..at + size)
            .ok_or_else(|| anyhow::anyhow!("section {id} overruns the binary"))?;
        match id {
            0 => {
                let mut name_at = 0;
                let name_len = leb(payload, &mut name_at)?;
                let name = payload.get(name_at..name_at + name_len).unwrap_or_default();
                if name == b"name" || name == b"component-name" {
                    total += at + size - start;
                }
            }
            // A component's core module (1) and nested component (4) sections hold whole binaries.
            1 | 4 if component => total += name_section_bytes(payload)?,
            _ => {}
        }
        at += size;
    }
    Ok(total)
}

fn ratio(a: Timing, b: Timing) -> f64 {
    a.cost().as_secs_f64() / b.cost().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = support::component_path();
    // One thread: the numbers are per core.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (wit, native) = connections();

    // Load: cold (compile), then from a fresh cache the cold load filled.
    let root = std::env::temp_dir().join(format!("lago-hubspot-plan-bench-{}", std::process::id()));
    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for run in 0..args.cold {
        let dir = root.join(run.to_string());
        std::fs::create_dir_all(&dir)?;
        cold.push(timed_load(|| Plugin::load_with_cache(&path, None))?);
        // Fill the cache, then read it back.
        timed_load(|| Plugin::load_with_cache(&path, Some(cache_in(&dir)?)))?;
        for _ in 0..5 {
            cached.push(timed_load(|| {
                Plugin::load_with_cache(&path, Some(cache_in(&dir)?))
            })?);
        }
    }
    let _ = std::fs::remove_dir_all(&root);
    let (cold, cached) = (median_timing(cold), median_timing(cached));

    let plugin = Plugin::load(&path)?;
    let (native_us, fresh_us, reused_us) = runtime.block_on(async {
        let native_us = per_event(args.events, |payload| {
            std::future::ready(plan_natively(&native, payload))
        })
        .await;
        let fresh_us = per_event(args.events, |payload| {
            let (plugin, wit) = (&plugin, &wit);
            async move {
                let plan = plugin.plan_event(wit, &[], payload).await;
                plan.expect("no trap").map_or(0, |plan| plan.steps.len())
            }
        })
        .await;
        // (An async lock only to lend the instance to each call's future: one thread, no contention.)
        let reused = tokio::sync::Mutex::new(plugin.reused_instance());
        let reused_us = per_event(args.events, |payload| {
            let (reused, wit) = (&reused, &wit);
            async move {
                let mut reused = reused.lock().await;
                let plan = reused.plan_event(wit, &[], payload).await;
                plan.expect("no trap").map_or(0, |plan| plan.steps.len())
            }
        })
        .await;
        (native_us, fresh_us, reused_us)
    });

    let bytes = std::fs::read(&path)?;
    let names = name_section_bytes(&bytes)?;
    let kb = |n: usize| n as f64 / 1024.0;
    let micros = |t: Timing| match t.cpu {
        Some(cpu) => format!(
            "{:.1} µs CPU ({:.1} µs wall)",
            cpu.as_secs_f64() * 1e6,
            t.wall.as_secs_f64() * 1e6
        ),
        None => format!("{:.1} µs wall", t.wall.as_secs_f64() * 1e6),
    };
    let millis = |t: Timing| match t.cpu {
        Some(cpu) => format!(
            "{:.2} ms CPU ({:.2} ms wall)",
            cpu.as_secs_f64() * 1e3,
            t.wall.as_secs_f64() * 1e3
        ),
        None => format!("{:.2} ms wall", t.wall.as_secs_f64() * 1e3),
    };
    let per_second = |t: Timing| 1.0 / t.cost().as_secs_f64();

    println!(
        "Planning the 9 sample events ({} per batch, median of {BATCHES} batches, one thread), {}:",
        args.events,
        path.display()
    );
    println!();
    println!("| measure | per event / load | plans/s on one core | ratio |");
    println!("|---|---|---|---|");
    for (name, timing, against) in [
        ("native (guest crate, no sandbox)", native_us, "native"),
        ("component, fresh store per call", fresh_us, "native"),
        ("component, instance reused", reused_us, "native"),
    ] {
        println!(
            "| {name} | {} | {:.0} | {:.2}× {against} |",
            micros(timing),
            per_second(timing),
            ratio(timing, native_us)
        );
    }
    println!(
        "| load, cold (compile, no cache) | {} | | {:.0}× cached |",
        millis(cold),
        ratio(cold, cached)
    );
    println!(
        "| load, cached (wasmtime's cache) | {} | | 1.00× |",
        millis(cached)
    );
    println!("| `.wasm` size | {:.1} KB | | 1.00× |", kb(bytes.len()));
    println!(
        "| `.wasm` without name sections | {:.1} KB ({:.1} KB of names) | | {:.2}× |",
        kb(bytes.len() - names),
        kb(names),
        (bytes.len() - names) as f64 / bytes.len() as f64
    );
    println!();
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    println!(
        "Targets: component within 2× native per event: fresh store {:.2}× ({}), reused {:.2}× ({}); \
         ≥ 20,000 plans/s on one core: fresh {:.0}/s ({}), reused {:.0}/s ({}); \
         cached load ≤ 5 ms: {:.2} ms ({}).",
        ratio(fresh_us, native_us),
        verdict(ratio(fresh_us, native_us) <= 2.0),
        ratio(reused_us, native_us),
        verdict(ratio(reused_us, native_us) <= 2.0),
        per_second(fresh_us),
        verdict(per_second(fresh_us) >= 20_000.0),
        per_second(reused_us),
        verdict(per_second(reused_us) >= 20_000.0),
        cached.cost().as_secs_f64() * 1e3,
        verdict(cached.cost() <= Duration::from_millis(5)),
    );
    Ok(())
}
