//! Crash suite: the real `lago-hubspot serve` binary is killed (SIGKILL) at random points while
//! Lago posts webhooks and while the workers talk to HubSpot, then restarted on the same state
//! file; Lago redelivers whatever got no answer. The end state must equal a clean run's, with
//! nothing lost and nothing written twice. A SIGTERM must drain, exit 0 and lose nothing.

use std::time::Duration;

use lago_hubspot::queue::EventState;
use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{
    Emulator, EmulatorConfig, Faults, RateLimit, RunningEmulator,
};
use rand::Rng as _;

use crate::support::binary::{Service, Workspace};
use crate::support::lago::{Lago, busy};
use crate::support::*;

/// A HubSpot slow enough that events are mid-plan when the process dies. The rate limit is set
/// high only so the headers never report a spent window.
async fn slow_hubspot() -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            rate_limit: Some(RateLimit {
                max: 1_000_000,
                interval_ms: 1_000,
            }),
            latency_ms: Some((20, 60)),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap()
}

/// Polls until `condition` holds; panics with `what` after `timeout`.
async fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nothing lost, nothing twice, and HubSpot as a clean run leaves it.
async fn assert_complete(
    workspace: &Workspace,
    hubspot: &RunningEmulator,
    webhooks: &[Vec<(String, String)>],
) {
    let total: usize = webhooks.iter().map(Vec::len).sum();
    let store = Store::open(&workspace.state()).unwrap();
    let stats = store.queue_stats().unwrap();
    let rows: u64 = stats.counts.iter().map(|(_, n)| n).sum();
    assert_eq!(rows as usize, total, "one row per webhook: {stats:?}");
    assert_eq!(
        stats.count(EventState::Synced) as usize,
        total,
        "every event synced: {stats:?}\n{}",
        workspace.log_tail()
    );
    let keys: std::collections::BTreeSet<String> = store
        .events(None, total + 10)
        .unwrap()
        .into_iter()
        .filter_map(|e| e.unique_key)
        .collect();
    let sent: std::collections::BTreeSet<String> = webhooks
        .iter()
        .flatten()
        .map(|(key, _)| key.clone())
        .collect();
    assert_eq!(keys, sent, "every webhook stored under its own key");
    HubspotState::read(hubspot.emulator()).assert_same_as(&reference_state(webhooks).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_and_restarted_serve_loses_nothing_and_duplicates_nothing() {
    let workspace = Workspace::new("crash-kill");
    let hubspot = slow_hubspot().await;
    let webhooks: Vec<Vec<(String, String)>> = (0..30).map(customer_lifecycle).collect();
    let total: usize = webhooks.iter().map(Vec::len).sum();

    let mut service = Service::start(&workspace, &hubspot.url, &[]).await;
    let lago = Lago::start_one(&service.url, webhooks.clone(), 8);
    let mut rng = rand::rng();
    let mut kills = Vec::new();
    // Two kills while Lago is still posting, at random depths into the stream.
    for round in 0..2 {
        let at = lago.acknowledged() + rng.random_range(30..90);
        wait_for(
            "webhooks acknowledged before a kill",
            Duration::from_secs(120),
            || lago.acknowledged() >= at || lago.done(),
        )
        .await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..40))).await;
        service.kill();
        kills.push(format!(
            "kill {round} during posting after {} acknowledged",
            lago.acknowledged()
        ));
        service = Service::start(&workspace, &hubspot.url, &[]).await;
        lago.point_at(&service.url);
    }
    wait_for("Lago to post everything", Duration::from_secs(180), || {
        lago.done()
    })
    .await;
    // Then kills while the workers are working through the backlog.
    let mut in_flight_kills = 0;
    for round in 2..5 {
        tokio::time::sleep(Duration::from_millis(rng.random_range(50..400))).await;
        let stats = workspace.stats();
        if busy(&stats) > 0 {
            in_flight_kills += 1;
        }
        service.kill();
        kills.push(format!("kill {round} during processing at {stats:?}"));
        service = Service::start(&workspace, &hubspot.url, &[]).await;
        lago.point_at(&service.url);
    }
    wait_for(
        "the queue to drain after the last restart",
        Duration::from_secs(180),
        || busy(&workspace.stats()) == 0,
    )
    .await;
    let redeliveries = lago.finished().await;
    let status = service.terminate().await;
    assert!(
        status.is_some_and(|s| s.success()),
        "clean exit after the crashes: {status:?}\n{}",
        workspace.log_tail()
    );
    assert!(
        in_flight_kills > 0,
        "no kill landed while events were in flight: {kills:#?}"
    );
    assert_complete(&workspace, &hubspot, &webhooks).await;
    eprintln!(
        "{total} webhooks, {} redelivered by Lago, kills: {kills:#?}",
        redeliveries
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_exits_zero_and_a_restart_finishes_the_rest() {
    let workspace = Workspace::new("crash-term");
    let hubspot = slow_hubspot().await;
    let webhooks: Vec<Vec<(String, String)>> = (100..115).map(customer_lifecycle).collect();

    let service = Service::start(&workspace, &hubspot.url, &[]).await;
    let lago = Lago::start_one(&service.url, webhooks.clone(), 4);
    // Stop while Lago is mid-stream and the workers have a backlog.
    wait_for("a backlog", Duration::from_secs(120), || {
        lago.acknowledged() >= 60 && busy(&workspace.stats()) > 0
    })
    .await;
    let status = service.terminate().await;
    assert_eq!(
        status.and_then(|s| s.code()),
        Some(0),
        "SIGTERM exits 0\n{}",
        workspace.log_tail()
    );
    let after = workspace.stats();
    assert_eq!(
        after.count(EventState::Running),
        0,
        "nothing is left claimed after a graceful stop: {after:?}"
    );
    let service = Service::start(&workspace, &hubspot.url, &[]).await;
    lago.point_at(&service.url);
    lago.finished().await;
    wait_for("the queue to drain", Duration::from_secs(180), || {
        busy(&workspace.stats()) == 0
    })
    .await;
    let status = service.terminate().await;
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert_complete(&workspace, &hubspot, &webhooks).await;
}
