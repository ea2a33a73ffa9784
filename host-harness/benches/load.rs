//! Loading the sync component: compiled from scratch (cold, then stored in wasmtime's
//! compiled-code cache) vs read back from that cache, as `Plugin::load` does on every start.
//!
//!     cargo bench -p lago-hubspot --bench load              # 3 cold loads, 9 cached ones
//!     cargo bench -p lago-hubspot --bench load -- --runs 5  # more cold loads
//!
//! Needs the component: `make component`. Uses fresh cache directories under the system's
//! temporary directory, never the user's cache.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lago_hubspot::runtime::{Cache, CacheConfig, Plugin};

/// Loads from the cache after each cold one (each in a new engine, as a restarted process would).
const CACHED_PER_COLD: usize = 3;

fn cache_in(dir: &Path) -> anyhow::Result<Cache> {
    let mut config = CacheConfig::new();
    config.with_directory(dir);
    Ok(Cache::new(config)?)
}

fn timed(load: impl FnOnce() -> anyhow::Result<Plugin>) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let plugin = load()?;
    let elapsed = started.elapsed();
    drop(plugin);
    Ok(elapsed)
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() -> anyhow::Result<()> {
    let mut runs = 3;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--runs" {
            runs = args
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(runs)
                .max(1);
        }
    }
    let component = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/lago_hubspot_guest.wasm");
    anyhow::ensure!(
        component.exists(),
        "{} is missing: run `make component` first",
        component.display()
    );
    let root: PathBuf =
        std::env::temp_dir().join(format!("lago-hubspot-load-{}", std::process::id()));

    let mut cold = Vec::new();
    let mut cached = Vec::new();
    for run in 0..runs {
        let dir = root.join(run.to_string());
        std::fs::create_dir_all(&dir)?;
        cold.push(timed(|| {
            Plugin::load_with_cache(&component, Some(cache_in(&dir)?))
        })?);
        for _ in 0..CACHED_PER_COLD {
            cached.push(timed(|| {
                Plugin::load_with_cache(&component, Some(cache_in(&dir)?))
            })?);
        }
    }
    let _ = std::fs::remove_dir_all(&root);

    let (cold, cached) = (median(cold), median(cached));
    println!(
        "Plugin::load of {} ({} KB), median of {runs} cold and {} cached loads:",
        component.display(),
        std::fs::metadata(&component)?.len() / 1024,
        runs * CACHED_PER_COLD
    );
    println!("  cold (compile + store): {cold:>10.1?}");
    println!("  cached:                 {cached:>10.1?}");
    println!(
        "  ratio:                  {:>9.1}x",
        cold.as_secs_f64() / cached.as_secs_f64()
    );
    Ok(())
}
