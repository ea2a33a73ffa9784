//! The worker pool of `serve`: claims stored events, runs their plans with a checkpoint after
//! every step, and settles each one (synced, skipped, rejected, retried later, or dead).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::connections::fleet::Fleet;
use crate::executor::Progress;
use crate::metrics::Metrics;
use crate::outcome::{Failure, OutcomeStatus};
use crate::pipeline::{self, Input, Recorder, StepDone};
use crate::queue::{EventState, QueueBatch, StoredEvent};
use crate::retry::Action;
use crate::runtime::Plan;
use crate::sync::Syncer;

/// How often, and how patiently, an event is tried again after transient failures.
#[derive(Debug, Clone)]
pub struct QueuePolicy {
    /// Attempts before an event is dead (it is kept, never dropped).
    pub max_attempts: u32,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for QueuePolicy {
    fn default() -> Self {
        QueuePolicy {
            max_attempts: 8,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl QueuePolicy {
    /// The one backoff ([`crate::retry::backoff`]) with the queue's bounds.
    fn backoff(&self, attempts: u32) -> Duration {
        crate::retry::backoff(self.base_backoff, self.max_backoff, attempts)
    }
}

/// While a batching `serve` finds less than this share of a portal's rate window left (counted
/// over every instance on a shared state), it claims that portal's events only once they fill a
/// whole group (`burst`), or as one group once none of the portal's events runs on any instance:
/// the rest wait in the queue, instead of going out a few at a time and spending what is left of
/// the window on small batches.
pub const HOLD_BELOW_SHARE: f64 = 0.5;

/// While webhooks keep arriving (the last one less than this ago), a batching `serve` lingers:
/// it claims only full groups, so a burst gathers in the queue instead of going out a few events
/// at a time as they trickle in. A single webhook on a quiet queue waits this long, no more.
pub const LINGER_QUIET_MS: i64 = 50;

/// The longest a linger lasts under a steady stream of webhooks: then whatever is ready goes.
pub const LINGER_MAX_MS: i64 = 1000;

/// How often a connection short of budget looks for a full group, or for none of its groups
/// running (each look walks the queue).
const HELD_LOOK_MS: i64 = 100;

pub struct Workers {
    /// The connections events run on: one, or many with events routed per customer.
    pub fleet: Arc<Fleet>,
    pub metrics: Arc<Metrics>,
    pub policy: QueuePolicy,
    pub concurrency: usize,
    /// Poked by the webhook server when a new event is stored.
    pub wake: Arc<Notify>,
    /// How long in-flight events may take to finish on shutdown before they are released.
    pub drain_timeout: Duration,
    /// Most events one worker takes at once during a burst, executed as HubSpot batch requests
    /// (1 turns batching off).
    pub burst: usize,
}

impl Workers {
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let requeued = self.fleet.store().requeue_running()?;
        if requeued > 0 {
            tracing::info!(
                requeued,
                "resuming events that were running when the process stopped"
            );
        }
        let mut tasks: JoinSet<Option<i64>> = JoinSet::new();
        // Per connection: which task runs for which, and until when a spent daily budget parks it.
        let mut running: HashMap<tokio::task::Id, String> = HashMap::new();
        // How many events each task holds, for the drain's count.
        let mut sizes: HashMap<tokio::task::Id, usize> = HashMap::new();
        let mut parked: HashMap<String, i64> = HashMap::new();
        // When each connection short of budget looks for a full group next.
        let mut next_look: HashMap<String, i64> = HashMap::new();
        // The first and the last webhook of the arrivals the pool lingers for.
        let mut arrivals: Option<(i64, i64)> = None;
        // Leases on claimed events are renewed at a third of their length, so another instance
        // on a shared database takes over only from one that stopped.
        let renew_every = self.fleet.store().lease_ms() / 3;
        let mut next_renewal = 0;
        while !*shutdown.borrow() {
            let now = now_ms();
            if now >= next_renewal {
                if let Err(error) = self.fleet.store().renew_leases(now) {
                    tracing::error!("could not renew the leases of running events: {error:#}");
                }
                next_renewal = now + renew_every;
            }
            parked.retain(|_, until| *until > now);
            self.learn_spent_days(&mut parked, now);
            // Connections short of budget, and every connection while webhooks keep arriving,
            // claim only full groups (short of budget: or one group while none runs anywhere):
            // for the rest of the loop they wait like parked ones, until their window is back,
            // the linger ends, or their next look.
            let (mut held, short) = self.held(now);
            if let Some(until) = self.linger_until(&mut arrivals, now) {
                for code in self.runnable(&parked) {
                    if !held.iter().any(|(c, _)| *c == code) {
                        held.push((code, until));
                    }
                }
            }
            next_look.retain(|code, _| held.iter().any(|(c, _)| c == code));
            let mut waiting = parked.clone();
            for (code, until) in &held {
                waiting.entry(code.clone()).or_insert(*until);
            }
            let free = self.concurrency.saturating_sub(tasks.len());
            // A store error (disk full, a lock held by another process beyond the busy timeout)
            // must not end the pool while the server keeps accepting: log it and try again.
            let claimed = if free > 0 {
                self.claim(free, now, &waiting, &running)
                    .unwrap_or_else(|error| {
                        tracing::error!("could not claim events, will try again: {error:#}");
                        Vec::new()
                    })
            } else {
                Vec::new()
            };
            let mut groups = self.with_bursts(claimed, now);
            let left = free.saturating_sub(groups.len());
            groups.extend(self.full_groups(
                left,
                now,
                (&held, &short),
                &parked,
                &running,
                &mut next_look,
            ));
            // No full group yet: look again after a pause, or once the window is back.
            for (code, until) in &held {
                if let Some(&look) = next_look.get(code)
                    && !parked.contains_key(code)
                {
                    waiting.insert(code.clone(), (*until).min(look));
                }
            }
            for group in groups {
                let Some(syncer) = self.fleet.syncer_for(&group[0].connection).cloned() else {
                    continue;
                };
                let connection = group[0].connection.clone();
                let size = group.len();
                let (metrics, policy) = (self.metrics.clone(), self.policy.clone());
                let task =
                    tasks.spawn(async move { process(&syncer, &metrics, &policy, group).await });
                running.insert(task.id(), connection);
                sizes.insert(task.id(), size);
            }
            let idle = self.idle_wait(&waiting).unwrap_or_else(|error| {
                tracing::error!("could not read the queue, will try again: {error:#}");
                Duration::from_secs(1)
            });
            tokio::select! {
                _ = self.wake.notified() => {
                    let at = now_ms();
                    arrivals = Some(arrivals.map_or((at, at), |(first, _)| (first, at)));
                }
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &joined {
                        Ok((id, _)) => *id,
                        Err(error) => error.id(),
                    };
                    let connection = running.remove(&id).unwrap_or_default();
                    sizes.remove(&id);
                    if let Ok((_, Some(until))) = joined {
                        tracing::warn!(%connection, "HubSpot's daily limit is spent; pausing this connection until the reset");
                        parked.insert(connection, until);
                    }
                }
                _ = tokio::time::sleep(idle) => {}
                _ = shutdown.changed() => {}
            }
        }
        // Finish what is in flight; whatever cannot finish in time goes back to the queue.
        let in_flight: usize = sizes.values().sum();
        // One fixed message, the numbers as fields (as every event's line): in JSON they are
        // said once, as numbers.
        tracing::info!(
            in_flight,
            timeout_s = self.drain_timeout.as_secs(),
            "draining"
        );
        let renew_pause = Duration::from_millis(u64::try_from(renew_every.max(1)).unwrap_or(1));
        let drained = tokio::time::timeout(self.drain_timeout, async {
            loop {
                tokio::select! {
                    joined = tasks.join_next() => if joined.is_none() { break },
                    _ = tokio::time::sleep(renew_pause) => {
                        if let Err(error) = self.fleet.store().renew_leases(now_ms()) {
                            tracing::error!("could not renew the leases of running events: {error:#}");
                        }
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let released = self.fleet.store().requeue_running()?;
            tracing::warn!(
                released,
                "released unfinished events to the queue; they run at the next start"
            );
        } else {
            tracing::info!(in_flight, "drained");
        }
        Ok(())
    }

    /// At most one group per claimed slot. In a burst (more events ready than workers), the
    /// slots of a connection also take further ready events of it, up to `burst` per slot, so
    /// they go out as HubSpot batch requests; a quiet queue keeps one event per worker for the
    /// lowest latency.
    ///
    /// A connection's events are grouped by kind (customers, subscriptions, invoices…) into as
    /// few groups of up to `burst` as they fill: each group sends one request per batch endpoint
    /// and step, whatever its size (up to 100 upserts, 2,000 associations per request), so fewer,
    /// fuller groups spend fewer requests of the portal's budget. Any grouping keeps the queue's
    /// order: no two claimed events share an object or a customer dependency.
    fn with_bursts(&self, claimed: Vec<StoredEvent>, now: i64) -> Vec<Vec<StoredEvent>> {
        if self.burst <= 1 {
            return claimed.into_iter().map(|e| vec![e]).collect();
        }
        let mut by_connection: BTreeMap<String, Vec<StoredEvent>> = BTreeMap::new();
        for event in claimed {
            by_connection
                .entry(event.connection.clone())
                .or_default()
                .push(event);
        }
        let mut groups = Vec::new();
        for (code, mut events) in by_connection {
            // Claimed after the heads are `running`, so no extra shares a customer with a head.
            let wanted = events.len() * (self.burst - 1);
            let extra = self.fleet.store().claim_ready_in(&code, wanted, now);
            match extra {
                Ok(extra) => events.extend(extra),
                Err(error) => {
                    tracing::warn!(
                        "could not claim a burst, running one event per worker: {error:#}"
                    );
                    groups.extend(events.into_iter().map(|e| vec![e]));
                    continue;
                }
            }
            let count = events.len().div_ceil(self.burst);
            groups.extend(split_by_kind(events, count));
        }
        groups
    }

    /// For the `held` connections (lingering for arrivals, or short of budget): up to `free`
    /// groups of up to `burst` ready events, in as few groups as they fill, only when they fill
    /// one. A connection short of budget whose window admits a request (`short`) also runs what
    /// is ready as one group when none of its events runs on any instance: one group at a time,
    /// each as full as the wait made it. Else the connection looks again in [`HELD_LOOK_MS`].
    fn full_groups(
        &self,
        mut free: usize,
        now: i64,
        (held, short): (&[(String, i64)], &[String]),
        parked: &HashMap<String, i64>,
        running: &HashMap<tokio::task::Id, String>,
        next_look: &mut HashMap<String, i64>,
    ) -> Vec<Vec<StoredEvent>> {
        let mut groups = Vec::new();
        let size = self.burst;
        for (code, _) in held {
            let busy = running.values().filter(|c| *c == code).count();
            let slots = self.per_connection_cap().saturating_sub(busy).min(free);
            if slots == 0
                || parked.contains_key(code)
                || self.fleet.needs_reconnect(code)
                || next_look.get(code).is_some_and(|&at| at > now)
            {
                continue;
            }
            let claimed = {
                let store = self.fleet.store();
                match store.claim_batch_in(code, size, slots * size, now) {
                    Ok(full) if full.is_empty() && short.contains(code) => {
                        store.claim_when_idle_in(code, size, now)
                    }
                    other => other,
                }
            };
            match claimed {
                Ok(events) if !events.is_empty() => {
                    next_look.remove(code);
                    let count = events.len().div_ceil(size);
                    free -= count;
                    groups.extend(split_by_kind(events, count));
                }
                Ok(_) => {
                    next_look.insert(code.clone(), now + HELD_LOOK_MS);
                }
                Err(error) => {
                    tracing::error!("could not claim events, will try again: {error:#}");
                    next_look.insert(code.clone(), now + HELD_LOOK_MS);
                }
            }
        }
        groups
    }

    /// Until when the pool lingers for `arrivals` (batching only): [`LINGER_QUIET_MS`] after the
    /// last webhook, at most [`LINGER_MAX_MS`] after the first. A linger that ended is forgotten,
    /// so the next webhook starts a new one.
    fn linger_until(&self, arrivals: &mut Option<(i64, i64)>, now: i64) -> Option<i64> {
        let (first, last) = (*arrivals)?;
        let until = (last + LINGER_QUIET_MS).min(first + LINGER_MAX_MS);
        if self.burst <= 1 || until <= now {
            *arrivals = None;
            return None;
        }
        Some(until)
    }

    /// Workers one connection may hold: all of them with one connection, else half, so one
    /// portal's backlog never starves another.
    fn per_connection_cap(&self) -> usize {
        if self.fleet.codes().count() > 1 {
            self.concurrency.div_ceil(2).max(1)
        } else {
            self.concurrency
        }
    }

    /// Connections a batching `serve` holds back now, each with when its budget's window will
    /// have [`HOLD_BELOW_SHARE`] of its size free again; and those of them whose window admits a
    /// request now, which may run one group while none of theirs runs (a group claimed while the
    /// window admits nothing would only wait, with the events that get ready meanwhile behind it).
    fn held(&self, now: i64) -> (Vec<(String, i64)>, Vec<String>) {
        let (mut held, mut some_room) = (Vec::new(), Vec::new());
        if self.burst <= 1 {
            return (held, some_room);
        }
        for code in self.fleet.codes() {
            let Some(budget) = self.budget_of(code) else {
                continue;
            };
            let room = budget.api_room(HOLD_BELOW_SHARE);
            if room.free < room.wanted {
                held.push((code.to_owned(), now + (room.wait.as_millis() as i64).max(1)));
                if room.free > 0 {
                    some_room.push(code.to_owned());
                }
            }
        }
        (held, some_room)
    }

    fn budget_of(&self, code: &str) -> Option<&Arc<crate::ratelimit::RateBudget>> {
        self.fleet.syncer_for(code)?.client().budget()
    }

    /// Parks the connections whose portal's daily budget another instance (or this one before a
    /// restart) found spent, until the reset: none spends a request to learn it again.
    fn learn_spent_days(&self, parked: &mut HashMap<String, i64>, now: i64) {
        for code in self.fleet.codes() {
            if parked.contains_key(code) {
                continue;
            }
            if let Some(until) = self.budget_of(code).and_then(|b| b.day_spent_until(now)) {
                tracing::warn!(connection = %code, "HubSpot's daily limit of this portal is spent (recorded in the state); pausing this connection until the reset");
                parked.insert(code.to_owned(), until);
            }
        }
    }

    /// Connections whose events may run now: not parked, not waiting for a reconnect.
    fn runnable(&self, parked: &HashMap<String, i64>) -> Vec<String> {
        self.fleet
            .codes()
            .filter(|code| !parked.contains_key(*code) && !self.fleet.needs_reconnect(code))
            .map(str::to_owned)
            .collect()
    }

    /// Claims up to `free` events. With several connections, each may hold at most half the
    /// workers and the least busy claims first, so one portal's backlog never starves another.
    fn claim(
        &self,
        free: usize,
        now: i64,
        parked: &HashMap<String, i64>,
        running: &HashMap<tokio::task::Id, String>,
    ) -> anyhow::Result<Vec<crate::queue::StoredEvent>> {
        if self.fleet.is_single() {
            if !parked.is_empty() || self.runnable(parked).is_empty() {
                return Ok(Vec::new());
            }
            return self.fleet.store().claim_ready(free, now);
        }
        let busy = |code: &str| running.values().filter(|c| *c == code).count();
        let mut codes = self.runnable(parked);
        codes.sort_by_key(|code| busy(code));
        let cap = self.per_connection_cap();
        let store = self.fleet.store();
        let mut claimed = Vec::new();
        for code in codes {
            let room = cap.saturating_sub(busy(&code)).min(free - claimed.len());
            if room > 0 {
                claimed.extend(store.claim_ready_in(&code, room, now)?);
            }
        }
        Ok(claimed)
    }

    /// Until the next retry is due (or a park ends), capped so new work is never missed for long.
    fn idle_wait(&self, parked: &HashMap<String, i64>) -> anyhow::Result<Duration> {
        let now = now_ms();
        let due = if self.fleet.is_single() {
            match parked.values().copied().max() {
                Some(until) => Some(until),
                None => self.fleet.store().next_due_ms()?,
            }
        } else {
            // Connections waiting for a reconnect are re-checked by the 1 s cap below.
            let codes = self.runnable(parked);
            let store = self.fleet.store();
            let mut due = parked.values().copied().min();
            for code in codes {
                if let Some(at) = store.next_due_ms_in(&code)? {
                    due = Some(due.map_or(at, |d: i64| d.min(at)));
                }
            }
            due
        };
        let wait = due.map_or(1000, |due| (due - now).clamp(5, 1000));
        Ok(Duration::from_millis(wait as u64))
    }
}

/// `count` groups (at least one per event when fewer) of near-equal size, each a run of events
/// of one kind where the sizes allow: sorted by kind, then by arrival.
fn split_by_kind(mut events: Vec<StoredEvent>, count: usize) -> Vec<Vec<StoredEvent>> {
    let kind = |event: &StoredEvent| -> String {
        let webhook_type = event.webhook_type.as_str();
        webhook_type
            .split_once('.')
            .map_or(webhook_type, |(kind, _)| kind)
            .to_owned()
    };
    events.sort_by(|a, b| kind(a).cmp(&kind(b)).then(a.id.cmp(&b.id)));
    let count = count.clamp(1, events.len().max(1));
    let (size, larger) = (events.len() / count, events.len() % count);
    let mut groups = Vec::with_capacity(count);
    let mut rest = events.into_iter();
    for n in 0..count {
        let group: Vec<StoredEvent> = rest.by_ref().take(size + usize::from(n < larger)).collect();
        if !group.is_empty() {
            groups.push(group);
        }
    }
    groups
}

/// Runs a group of claimed events (one, or a burst executed in batches) through the one
/// [`pipeline`](crate::pipeline), then settles each in the queue. Returns the park deadline when
/// HubSpot's daily budget is spent.
async fn process(
    syncer: &Syncer,
    metrics: &Metrics,
    policy: &QueuePolicy,
    events: Vec<StoredEvent>,
) -> Option<i64> {
    // A stored plan that cannot be read can never run: a dead letter, without running it.
    let mut runnable = Vec::with_capacity(events.len());
    let mut inputs = Vec::with_capacity(events.len());
    let mut unreadable = Vec::new();
    for event in events {
        match resume(&event) {
            Ok(resume) => {
                inputs.push(Input {
                    payload: event.body.clone(),
                    order_key: event.order_key.clone(),
                    resume,
                });
                runnable.push(event);
            }
            Err(error) => unreadable.push((event, error)),
        }
    }
    let dead = Some(Settle::Failed(Failure::Dead { status: None }));
    let settlements: Vec<Settlement<'_>> = unreadable
        .iter()
        .map(|(event, error)| (event, dead, error.as_str()))
        .collect();
    settle_all(syncer, metrics, policy, &settlements).await;
    let recorder = QueueRecorder {
        syncer,
        ids: runnable.iter().map(|e| e.id).collect(),
    };
    let outcomes = pipeline::run(syncer, &inputs, &recorder).await;
    if outcomes
        .iter()
        .any(|o| o.failure == Some(Failure::NotDeployed))
    {
        // Set-up may still be running, or never ran (a connection that waited for a
        // reconnect): deploy now, once for all workers; the retry then finds it deployed.
        if let Err(error) = syncer.deploy_if_needed().await {
            tracing::warn!(connection = %syncer.settings().code, "deploy failed: {error:#}");
        }
    }
    let settlements: Vec<Settlement<'_>> = runnable
        .iter()
        .zip(&outcomes)
        .map(|(event, outcome)| {
            let settle = match outcome.status {
                OutcomeStatus::Synced => None,
                OutcomeStatus::Skipped => Some(Settle::Skipped),
                OutcomeStatus::Failed => Some(Settle::Failed(
                    outcome.failure.unwrap_or(Failure::Retry { status: None }),
                )),
            };
            (event, settle, outcome.detail.as_str())
        })
        .collect();
    settle_all(syncer, metrics, policy, &settlements).await
}

/// The plan an event stored at an earlier attempt and how far it got.
fn resume(event: &StoredEvent) -> Result<Option<(Plan, Progress)>, String> {
    let Some(text) = &event.plan else {
        return Ok(None);
    };
    let plan: Plan = match serde_json::from_str(text) {
        Ok(plan) => plan,
        // Stored by a release before lago:hubspot@0.2.0 (steps were raw requests then): planned
        // again from the payload, which repeats only upserts and associations (harmless).
        Err(error) if text.contains("\"captures\"") => {
            tracing::info!(
                event = event.id,
                "planning again a plan of an earlier release: {error}"
            );
            return Ok(None);
        }
        Err(error) => return Err(format!("the stored plan cannot be read: {error}")),
    };
    let progress: Progress = event
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    Ok(Some((plan, progress)))
}

/// The queue keeps each event's plan before its first step and checkpoints every step with the
/// ids it captured, in one transaction: a crash resumes where it stopped.
struct QueueRecorder<'a> {
    syncer: &'a Syncer,
    /// The queue id of each input.
    ids: Vec<i64>,
}

impl Recorder for QueueRecorder<'_> {
    fn plans_chosen(&self, plans: &[(usize, &Plan)]) -> anyhow::Result<()> {
        if plans.is_empty() {
            return Ok(());
        }
        let ids = &self.ids;
        self.syncer.store().queue_batch(|batch| {
            plans
                .iter()
                .try_for_each(|(index, plan)| batch.save_plan(ids[*index], plan))
        })
    }

    fn steps_done(&self, steps: &[StepDone<'_>]) -> anyhow::Result<()> {
        let code = &self.syncer.settings().code;
        let queue_ids = &self.ids;
        self.syncer.store().queue_batch(|batch| {
            steps.iter().try_for_each(|(index, progress, ids)| {
                batch.checkpoint(queue_ids[*index], code, progress, ids)
            })
        })
    }
}

/// How an event leaves the running state.
#[derive(Debug, Clone, Copy)]
enum Settle {
    Skipped,
    Failed(Failure),
}

/// The queue state an event was moved to, for its log line and metrics.
enum Settled {
    Synced,
    Skipped,
    Rejected,
    /// `attempts`: set when the retries ran out.
    Dead {
        status: Option<u16>,
        error: String,
        attempts: Option<u32>,
    },
    Retry {
        at_ms: i64,
        attempts: u32,
        status: Option<u16>,
    },
    AwaitingReconnect,
    Parked {
        until_ms: i64,
    },
}

/// One event to settle: the event, how it ended, and its outcome's detail.
type Settlement<'a> = (&'a StoredEvent, Option<Settle>, &'a str);

/// Settles a batch of events in one store transaction (one commit for the batch, not one per
/// event), then logs each. An event left `running` would hold up its customer's later events
/// until a restart, so a store that refuses the outcomes (a lock held elsewhere, a full disk) is
/// asked again. Returns the latest park deadline when HubSpot's daily budget is spent.
async fn settle_all(
    syncer: &Syncer,
    metrics: &Metrics,
    policy: &QueuePolicy,
    settlements: &[Settlement<'_>],
) -> Option<i64> {
    if settlements.is_empty() {
        return None;
    }
    let settled = loop {
        let written = syncer.store().queue_batch(|batch| {
            settlements
                .iter()
                .map(|&(event, settle, detail)| {
                    write_settlement(batch, policy, event, settle, detail)
                })
                .collect::<anyhow::Result<Vec<Settled>>>()
        });
        match written {
            Ok(settled) => break settled,
            Err(error) => {
                tracing::error!(
                    events = settlements.len(),
                    "could not record the outcome of {} event(s), will try again: {error:#}",
                    settlements.len()
                );
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    let mut park = None;
    for (&(event, _, detail), settled) in settlements.iter().zip(settled) {
        if let Settled::Parked { until_ms } = settled {
            park = park.max(Some(until_ms));
        }
        report(metrics, policy, event, &settled, detail);
    }
    park
}

/// Moves the event to its next queue state (`None`: synced).
fn write_settlement(
    store: &QueueBatch<'_, '_, '_>,
    policy: &QueuePolicy,
    event: &StoredEvent,
    settle: Option<Settle>,
    detail: &str,
) -> anyhow::Result<Settled> {
    let failure = match settle {
        None => {
            store.finish_event(event.id, EventState::Synced, None, None)?;
            return Ok(Settled::Synced);
        }
        Some(Settle::Skipped) => {
            store.finish_event(event.id, EventState::Skipped, Some(detail), None)?;
            return Ok(Settled::Skipped);
        }
        Some(Settle::Failed(failure)) => failure,
    };
    Ok(match failure {
        Failure::Rejected => {
            store.finish_event(event.id, EventState::Rejected, Some(detail), None)?;
            Settled::Rejected
        }
        Failure::Dead { status } => {
            store.finish_event(event.id, EventState::Dead, Some(detail), status)?;
            Settled::Dead {
                status,
                error: detail.to_owned(),
                attempts: None,
            }
        }
        Failure::Retry { .. } | Failure::NotDeployed => {
            let status = match failure {
                Failure::Retry { status } => status,
                _ => None,
            };
            let attempts = event.attempts + 1;
            if attempts >= policy.max_attempts {
                let error = format!("gave up after {attempts} attempts: {detail}");
                store.finish_event(event.id, EventState::Dead, Some(&error), status)?;
                Settled::Dead {
                    status,
                    error,
                    attempts: Some(attempts),
                }
            } else {
                let at_ms = now_ms() + policy.backoff(attempts).as_millis() as i64;
                store.retry_later(event.id, attempts, at_ms, detail, status)?;
                Settled::Retry {
                    at_ms,
                    attempts,
                    status,
                }
            }
        }
        // A stopped guest settles like the failure the retry table makes of it; the event keeps
        // the reason.
        Failure::Guest { stop, .. } => {
            let failure = match crate::retry::after_guest_stop(stop) {
                Action::BackOff | Action::WaitWindow => Failure::Retry { status: None },
                _ => Failure::Dead { status: None },
            };
            return write_settlement(store, policy, event, Some(Settle::Failed(failure)), detail);
        }
        Failure::StateUnwritable => {
            // Not the event's fault either: the attempt is not counted.
            let at_ms = now_ms() + policy.backoff(event.attempts.max(1)).as_millis() as i64;
            store.retry_later(event.id, event.attempts, at_ms, detail, None)?;
            Settled::Retry {
                at_ms,
                attempts: event.attempts,
                status: None,
            }
        }
        Failure::AwaitReconnect => {
            // Not the event's fault: no attempt is used up, and the claim loop leaves the
            // connection alone until it is reconnected.
            store.retry_later(event.id, event.attempts, now_ms() + 1000, detail, None)?;
            Settled::AwaitingReconnect
        }
        Failure::Park { until_ms } => {
            store.retry_later(event.id, event.attempts, until_ms, detail, Some(429))?;
            Settled::Parked { until_ms }
        }
    })
}

/// The log line and metrics of a settled event.
fn report(
    metrics: &Metrics,
    policy: &QueuePolicy,
    event: &StoredEvent,
    settled: &Settled,
    detail: &str,
) {
    match settled {
        Settled::Synced => {
            metrics.events_synced.inc();
            settled!(tracing::Level::INFO, event, "synced", detail = %clip(detail), "event synced");
        }
        Settled::Skipped => {
            metrics.events_skipped.inc();
            settled!(tracing::Level::INFO, event, "skipped", reason = %clip(detail), "event skipped");
        }
        Settled::Rejected => {
            metrics.events_rejected.inc();
            settled!(tracing::Level::WARN, event, "rejected", reason = %clip(detail), "event rejected");
        }
        Settled::Dead {
            status,
            error,
            attempts,
        } => {
            metrics.events_failed.inc();
            metrics.events_dead.inc();
            let status = *status;
            match attempts {
                None => {
                    settled!(tracing::Level::WARN, event, "dead", status, error = %clip(error), "event dead")
                }
                Some(attempts) => {
                    settled!(tracing::Level::WARN, event, "dead", status, attempts, error = %clip(error), "event dead")
                }
            }
        }
        Settled::Retry {
            at_ms,
            attempts,
            status,
        } => {
            metrics.events_failed.inc();
            let (attempts, status) = (*attempts, *status);
            let max_attempts = policy.max_attempts;
            let retry_in_s = seconds(at_ms - now_ms());
            settled!(tracing::Level::INFO,
                event,
                "retry",
                retry_in_s,
                attempts,
                max_attempts,
                status,
                reason = %clip(detail),
                "event will be retried in {retry_in_s} s"
            );
        }
        Settled::AwaitingReconnect => {
            settled!(tracing::Level::INFO,
                event,
                "awaiting_reconnect",
                reason = %clip(detail),
                "event waits until the connection is reconnected (`lago-hubspot connect`)"
            );
        }
        Settled::Parked { until_ms } => {
            metrics.events_failed.inc();
            let retry_in_s = seconds(until_ms - now_ms());
            settled!(tracing::Level::INFO,
                event,
                "parked",
                retry_in_s,
                reason = %clip(detail),
                "event parked: HubSpot's daily limit is spent, retry in {retry_in_s} s"
            );
        }
    }
}

/// One log line per settled event, at `level` (warn for outcomes that need a person: dead,
/// rejected), with the event's identity as structured fields (never its payload):
/// `settled!(Level::INFO, event, "outcome", more fields…, "message")`.
macro_rules! settled {
    ($level:expr, $event:expr, $outcome:expr, $($rest:tt)+) => {
        tracing::event!(
            $level,
            event = $event.id,
            connection = %$event.connection,
            webhook_type = %$event.webhook_type,
            lago_id = %$event.lago_id,
            outcome = $outcome,
            $($rest)+
        )
    };
}

use settled;

/// Milliseconds as seconds, for log lines.
fn seconds(ms: i64) -> f64 {
    ms.max(0) as f64 / 1000.0
}

/// A reason or HubSpot message as logged: long ones (HubSpot may echo a refused value) are cut.
fn clip(text: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 500;
    match text.char_indices().nth(MAX) {
        None => text.into(),
        Some((end, _)) => format!("{}… ({} bytes)", &text[..end], text.len()).into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: i64, webhook_type: &str) -> StoredEvent {
        StoredEvent {
            id,
            unique_key: None,
            received_at_ms: 0,
            connection: "c".into(),
            order_key: format!("o{id}"),
            webhook_type: webhook_type.into(),
            lago_id: format!("l{id}"),
            body: String::new(),
            state: EventState::Running,
            attempts: 0,
            next_attempt_ms: 0,
            plan: None,
            progress: None,
            last_error: None,
            last_status: None,
            lease_owner: None,
        }
    }

    fn ids(groups: &[Vec<StoredEvent>]) -> Vec<Vec<i64>> {
        groups
            .iter()
            .map(|g| g.iter().map(|e| e.id).collect())
            .collect()
    }

    /// A plan stored by a release before lago:hubspot@0.2.0 is planned again; a stored plan of
    /// this release resumes where it stopped; one that is not a plan at all is an error.
    #[test]
    fn stored_plans_resume_and_plans_of_an_earlier_release_are_planned_again() {
        let mut stored = event(1, "customer.created");
        stored.plan = Some(
            r#"{"summary":"s","steps":[{"description":"d","method":"Post","path":"/p",
                "query":[],"body":null,"accept_statuses":[],"captures":[]}],"learned":[]}"#
                .into(),
        );
        assert!(resume(&stored).unwrap().is_none());

        let plan = Plan {
            summary: "s".into(),
            steps: Vec::new(),
            learned: Vec::new(),
        };
        stored.plan = Some(serde_json::to_string(&plan).unwrap());
        stored.progress = Some(r#"{"next_step":1,"results":{"0":"42"}}"#.into());
        let (resumed, progress) = resume(&stored).unwrap().unwrap();
        assert_eq!(resumed.summary, "s");
        assert_eq!(progress.results.get(&0).map(String::as_str), Some("42"));

        stored.plan = Some("not a plan".into());
        assert!(resume(&stored).unwrap_err().contains("cannot be read"));
    }

    /// A state that could not record a plan or a checkpoint (a database outage) sends the
    /// event back to the queue without using up an attempt; a HubSpot failure uses one.
    #[test]
    fn a_state_that_could_not_write_uses_no_attempt() {
        use crate::queue::testing::event;
        use crate::store::testing::stores;
        for store in stores() {
            for key in ["1", "2"] {
                store.insert_event(&event(key, &format!("o{key}"))).unwrap();
            }
            let claimed = store.claim_ready(2, now_ms()).unwrap();
            let policy = QueuePolicy::default();
            let failures = [
                Failure::StateUnwritable,
                Failure::Retry { status: Some(503) },
            ];
            store
                .queue_batch(|batch| {
                    for (event, failure) in claimed.iter().zip(failures) {
                        let settle = Some(Settle::Failed(failure));
                        write_settlement(batch, &policy, event, settle, "failed")?;
                    }
                    Ok(())
                })
                .unwrap();
            let attempts: Vec<u32> = claimed
                .iter()
                .map(|e| store.event(e.id).unwrap().unwrap())
                .inspect(|e| assert_eq!(e.state, EventState::Pending))
                .map(|e| e.attempts)
                .collect();
            assert_eq!(attempts, [0, 1]);
        }
    }

    #[test]
    fn groups_are_runs_of_one_kind_of_near_equal_size() {
        let events = vec![
            event(1, "customer.created"),
            event(2, "invoice.created"),
            event(3, "subscription.started"),
            event(4, "invoice.created"),
            event(5, "customer.created"),
            event(6, "invoice.paid_credit_added"),
        ];
        assert_eq!(
            ids(&split_by_kind(events.clone(), 3)),
            [vec![1, 5], vec![2, 4], vec![6, 3]]
        );
        assert_eq!(
            ids(&split_by_kind(events.clone(), 1)),
            [vec![1, 5, 2, 4, 6, 3]]
        );
        // Never more groups than events, never an empty one.
        assert_eq!(split_by_kind(events[..2].to_vec(), 5).len(), 2);
        assert!(split_by_kind(Vec::new(), 3).is_empty());
    }
}
