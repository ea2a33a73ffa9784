//! The worker pool of `serve`: claims stored events, runs their plans with a checkpoint after
//! every step, and settles each one (synced, skipped, rejected, retried later, or dead).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::clock::now_ms;
use crate::connections::fleet::Fleet;
use crate::executor::{ExecError, Progress, StepOutcome};
use crate::hubspot_http::TransportError;
use crate::metrics::Metrics;
use crate::queue::{EventState, StoredEvent};
use crate::retry::Action;
use crate::runtime::{Plan, PlanError};
use crate::sync::{EventOutcome, OutcomeStatus, Syncer, describe_plan_error};

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

/// What became of one attempt.
#[derive(Clone)]
enum Verdict {
    Synced {
        summary: String,
        steps: Vec<StepOutcome>,
    },
    Skipped(String),
    Rejected(String),
    Retry {
        error: String,
        status: Option<u16>,
    },
    Dead {
        error: String,
        status: Option<u16>,
    },
    /// The portal's daily budget is spent: wait for the reset without using up an attempt.
    Park {
        until_ms: i64,
        error: String,
    },
    /// HubSpot refused the connection's grant: wait, without using up an attempt, until a
    /// person reconnects it.
    AwaitReconnect(String),
}

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
        let mut parked: HashMap<String, i64> = HashMap::new();
        while !*shutdown.borrow() {
            let now = now_ms();
            parked.retain(|_, until| *until > now);
            let free = self.concurrency.saturating_sub(tasks.len());
            // A store error (disk full, a lock held by another process beyond the busy timeout)
            // must not end the pool while the server keeps accepting: log it and try again.
            let claimed = if free > 0 {
                self.claim(free, now, &parked, &running)
                    .unwrap_or_else(|error| {
                        tracing::error!("could not claim events, will try again: {error:#}");
                        Vec::new()
                    })
            } else {
                Vec::new()
            };
            for group in self.with_bursts(claimed, now) {
                let Some(syncer) = self.fleet.syncer_for(&group[0].connection).cloned() else {
                    continue;
                };
                let connection = group[0].connection.clone();
                let (metrics, policy) = (self.metrics.clone(), self.policy.clone());
                let task =
                    tasks.spawn(async move { process(&syncer, &metrics, &policy, group).await });
                running.insert(task.id(), connection);
            }
            let idle = self.idle_wait(&parked).unwrap_or_else(|error| {
                tracing::error!("could not read the queue, will try again: {error:#}");
                Duration::from_secs(1)
            });
            tokio::select! {
                _ = self.wake.notified() => {}
                Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                    let id = match &joined {
                        Ok((id, _)) => *id,
                        Err(error) => error.id(),
                    };
                    let connection = running.remove(&id).unwrap_or_default();
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
        let drained = tokio::time::timeout(self.drain_timeout, async {
            while tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let released = self.fleet.store().requeue_running()?;
            tracing::warn!(
                released,
                "shutdown: released unfinished events to the queue"
            );
        }
        Ok(())
    }

    /// One group per claimed slot. In a burst (more events ready than workers), each slot also
    /// takes further ready events of its connection, up to `burst`, so they go out as HubSpot
    /// batch requests; a quiet queue keeps one event per worker for the lowest latency.
    fn with_bursts(&self, claimed: Vec<StoredEvent>, now: i64) -> Vec<Vec<StoredEvent>> {
        let mut groups: Vec<Vec<StoredEvent>> = claimed.into_iter().map(|e| vec![e]).collect();
        if self.burst <= 1 {
            return groups;
        }
        let mut connections: Vec<String> = groups.iter().map(|g| g[0].connection.clone()).collect();
        connections.sort();
        connections.dedup();
        for code in connections {
            let slots: Vec<usize> = (0..groups.len())
                .filter(|&i| groups[i][0].connection == code)
                .collect();
            // Claimed after the heads are `running`, so no extra shares a customer with a head.
            let extra =
                match self
                    .fleet
                    .store()
                    .claim_ready_in(&code, slots.len() * (self.burst - 1), now)
                {
                    Ok(extra) => extra,
                    Err(error) => {
                        tracing::warn!(
                            "could not claim a burst, running one event per worker: {error:#}"
                        );
                        continue;
                    }
                };
            for (n, event) in extra.into_iter().enumerate() {
                groups[slots[n % slots.len()]].push(event);
            }
        }
        groups
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
        let cap = if self.fleet.codes().count() > 1 {
            self.concurrency.div_ceil(2).max(1)
        } else {
            self.concurrency
        };
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

/// Runs one event and records how it ended. Returns the park deadline when HubSpot's daily
/// budget is spent.
/// Runs a group of events (one, or a burst executed in batches) and records how each ended.
/// Returns the park deadline when HubSpot's daily budget is spent.
async fn process(
    syncer: &Syncer,
    metrics: &Metrics,
    policy: &QueuePolicy,
    events: Vec<StoredEvent>,
) -> Option<i64> {
    let verdicts = match events.as_slice() {
        [event] => vec![attempt(syncer, event).await],
        _ => attempt_burst(syncer, &events).await,
    };
    let mut park = None;
    for (event, verdict) in events.iter().zip(verdicts) {
        // An event left `running` would hold up its customer's later events until a restart, so
        // a store that refuses the outcome (a lock held elsewhere, a full disk) is asked again.
        let (status, detail, steps, parked) = loop {
            match settle(syncer, metrics, policy, event, verdict.clone()) {
                Ok(settled) => break settled,
                Err(error) => {
                    tracing::error!(
                        event = event.id,
                        "could not record an event's outcome, will try again: {error:#}"
                    );
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        park = park.max(parked);
        syncer.log(&EventOutcome {
            webhook_type: event.webhook_type.clone(),
            lago_id: event.lago_id.clone(),
            status,
            detail,
            steps,
        });
    }
    park
}

/// A burst: every event's plan, executed together with coalesced batch requests, each event
/// checkpointed on its own as in [`attempt`].
async fn attempt_burst(syncer: &Syncer, events: &[StoredEvent]) -> Vec<Verdict> {
    let mut verdicts: Vec<Option<Verdict>> = vec![None; events.len()];
    let mut jobs = Vec::new();
    let mut owners = Vec::new();
    for (index, event) in events.iter().enumerate() {
        match planned(syncer, event).await {
            Ok((plan, progress)) => {
                jobs.push(crate::batch::Job {
                    order_key: event.order_key.clone(),
                    plan,
                    progress,
                });
                owners.push(index);
            }
            Err(verdict) => verdicts[index] = Some(verdict),
        }
    }
    let summaries: Vec<String> = jobs.iter().map(|j| j.plan.summary.clone()).collect();
    let code = syncer.settings().code.clone();
    let results = crate::batch::BatchExecutor::new(syncer.executor())
        .run(jobs, |job, progress, ids| {
            syncer
                .store()
                .checkpoint(events[owners[job]].id, &code, progress, ids)
        })
        .await;
    for ((index, result), summary) in owners.into_iter().zip(results).zip(summaries) {
        verdicts[index] = Some(match result {
            Ok(steps) => Verdict::Synced { summary, steps },
            Err(error) => classify(error),
        });
    }
    verdicts
        .into_iter()
        .map(|v| v.expect("every event of a burst has a verdict"))
        .collect()
}

async fn attempt(syncer: &Syncer, event: &StoredEvent) -> Verdict {
    let (plan, progress) = match planned(syncer, event).await {
        Ok(planned) => planned,
        Err(verdict) => return verdict,
    };
    let code = syncer.settings().code.clone();
    let result = syncer
        .executor()
        .run_from(&plan, progress, |progress, ids| {
            syncer.store().checkpoint(event.id, &code, progress, ids)
        })
        .await;
    match result {
        Ok(steps) => Verdict::Synced {
            summary: plan.summary,
            steps,
        },
        Err(error) => classify(error),
    }
}

/// The plan an event runs (stored at its first attempt) and how far it got, or why it won't run.
async fn planned(syncer: &Syncer, event: &StoredEvent) -> Result<(Plan, Progress), Verdict> {
    let plan: Plan = match &event.plan {
        Some(text) => match serde_json::from_str(text) {
            Ok(plan) => plan,
            Err(e) => {
                return Err(Verdict::Dead {
                    error: format!("the stored plan cannot be read: {e}"),
                    status: None,
                });
            }
        },
        None => match syncer.plan(&event.body).await {
            Err(error) => {
                return Err(Verdict::Retry {
                    error: format!("{error:#}"),
                    status: None,
                });
            }
            // Set-up may still be running, or never ran (a connection that waited for a
            // reconnect): deploy now, once for all workers; the retry then finds it deployed.
            Ok(Err(error @ PlanError::NotDeployed(_))) => {
                if let Err(deploy) = syncer.deploy_if_needed().await {
                    tracing::warn!(connection = %syncer.settings().code, "deploy failed: {deploy:#}");
                }
                return Err(Verdict::Retry {
                    error: describe_plan_error(&error),
                    status: None,
                });
            }
            Ok(Err(error)) => return Err(Verdict::Rejected(describe_plan_error(&error))),
            Ok(Ok(plan)) if plan.steps.is_empty() => return Err(Verdict::Skipped(plan.summary)),
            Ok(Ok(plan)) => {
                if let Err(error) = syncer.store().save_plan(event.id, &plan) {
                    return Err(Verdict::Retry {
                        error: format!("could not store the plan: {error:#}"),
                        status: None,
                    });
                }
                plan
            }
        },
    };
    let progress: Progress = event
        .progress
        .as_deref()
        .and_then(|p| serde_json::from_str(p).ok())
        .unwrap_or_default();
    Ok((plan, progress))
}

/// What the queue does with an event whose plan stopped on `error`: by the one retry table
/// ([`crate::retry::RULES`]), plus what only the queue knows (a connection waiting for a person
/// to reconnect it; results that could not be recorded).
fn classify(error: ExecError) -> Verdict {
    let message = error.to_string();
    let status = error.status();
    match &error {
        ExecError::Transport {
            source: TransportError::Auth(auth),
            ..
        } if auth.needs_reconnect() => return Verdict::AwaitReconnect(message),
        // A refresh that failed may heal; a checkpoint, a capture or a partial batch is re-run.
        ExecError::Transport {
            source: TransportError::Auth(_),
            ..
        }
        | ExecError::MissingCapture { .. }
        | ExecError::Checkpoint { .. }
        | ExecError::Blocked { .. }
        | ExecError::Partial { .. } => {
            return Verdict::Retry {
                error: message,
                status,
            };
        }
        _ => {}
    }
    match error.action() {
        Action::ParkUntilReset => Verdict::Park {
            until_ms: next_utc_midnight_ms(now_ms()),
            error: message,
        },
        // Still expired after the client's one refresh: try the event again later.
        Action::WaitWindow | Action::BackOff | Action::RefreshAuth => Verdict::Retry {
            error: message,
            status,
        },
        Action::Accept | Action::SplitBatch | Action::GiveUp => Verdict::Dead {
            error: message,
            status,
        },
    }
}

type Settled = (OutcomeStatus, String, Vec<StepOutcome>, Option<i64>);

fn settle(
    syncer: &Syncer,
    metrics: &Metrics,
    policy: &QueuePolicy,
    event: &StoredEvent,
    verdict: Verdict,
) -> anyhow::Result<Settled> {
    let store = syncer.store();
    Ok(match verdict {
        Verdict::Synced { summary, steps } => {
            store.finish_event(event.id, EventState::Synced, None, None)?;
            metrics.events_synced.inc();
            (OutcomeStatus::Synced, summary, steps, None)
        }
        Verdict::Skipped(reason) => {
            store.finish_event(event.id, EventState::Skipped, Some(&reason), None)?;
            metrics.events_skipped.inc();
            (OutcomeStatus::Skipped, reason, vec![], None)
        }
        Verdict::Rejected(reason) => {
            store.finish_event(event.id, EventState::Rejected, Some(&reason), None)?;
            metrics.events_rejected.inc();
            (OutcomeStatus::Failed, reason, vec![], None)
        }
        Verdict::Dead { error, status } => {
            store.finish_event(event.id, EventState::Dead, Some(&error), status)?;
            metrics.events_failed.inc();
            metrics.events_dead.inc();
            (OutcomeStatus::Failed, error, vec![], None)
        }
        Verdict::Retry { error, status } => {
            metrics.events_failed.inc();
            let attempts = event.attempts + 1;
            if attempts >= policy.max_attempts {
                let error = format!("gave up after {attempts} attempts: {error}");
                store.finish_event(event.id, EventState::Dead, Some(&error), status)?;
                metrics.events_dead.inc();
                (OutcomeStatus::Failed, error, vec![], None)
            } else {
                let next = now_ms() + policy.backoff(attempts).as_millis() as i64;
                store.retry_later(event.id, attempts, next, &error, status)?;
                let detail = format!("attempt {attempts} failed, will retry: {error}");
                (OutcomeStatus::Failed, detail, vec![], None)
            }
        }
        Verdict::AwaitReconnect(error) => {
            // Not the event's fault: no attempt is used up, and the claim loop leaves the
            // connection alone until it is reconnected.
            store.retry_later(event.id, event.attempts, now_ms() + 1000, &error, None)?;
            (
                OutcomeStatus::Failed,
                format!("waiting for a reconnect: {error}"),
                vec![],
                None,
            )
        }
        Verdict::Park { until_ms, error } => {
            store.retry_later(event.id, event.attempts, until_ms, &error, Some(429))?;
            metrics.events_failed.inc();
            (
                OutcomeStatus::Failed,
                format!("parked until the daily reset: {error}"),
                vec![],
                Some(until_ms),
            )
        }
    })
}

/// HubSpot resets the daily limit at midnight in the portal's time zone, which we don't know:
/// midnight UTC is a safe first guess, and a still-spent budget simply parks again.
fn next_utc_midnight_ms(now: i64) -> i64 {
    const DAY: i64 = 86_400_000;
    (now / DAY + 1) * DAY
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_errors_are_dead_and_transient_ones_retried() {
        let rejected = |status: u16, policy: Option<&str>| ExecError::Rejected {
            step: 1,
            description: "upsert".into(),
            status,
            message: "m".into(),
            rate_limit_policy: policy.map(str::to_owned),
            category: None,
        };
        assert!(matches!(
            classify(rejected(400, None)),
            Verdict::Dead { .. }
        ));
        assert!(matches!(
            classify(rejected(403, None)),
            Verdict::Dead { .. }
        ));
        assert!(matches!(
            classify(rejected(503, None)),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(rejected(429, Some("TEN_SECONDLY_ROLLING"))),
            Verdict::Retry { .. }
        ));
        assert!(matches!(
            classify(rejected(429, Some("DAILY"))),
            Verdict::Park { .. }
        ));
    }

    #[test]
    fn the_daily_park_ends_at_the_next_midnight() {
        assert_eq!(next_utc_midnight_ms(86_400_000 + 5), 2 * 86_400_000);
    }
}
