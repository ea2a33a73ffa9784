//! One way through for every event, whatever brought it (`sync` over files, `backfill` over
//! Lago's pages, `serve` over the durable queue): read the envelope → plan with the component →
//! execute (as HubSpot batch requests when there is more than one plan) → classify how it ended
//! ([`EventOutcome`]) → record it (ids, sync log). What differs between the modes is only where
//! plans and progress are kept ([`Recorder`]) and what a failure leads to (the caller reads
//! [`Failure`]).

use std::sync::Mutex;

use crate::batch::{BatchExecutor, Job};
use crate::clock::{next_utc_midnight_ms, now_ms};
use crate::executor::{ExecError, Progress, StepOutcome};
use crate::hubspot_http::TransportError;
use crate::outcome::{EventOutcome, Failure, OutcomeStatus};
use crate::retry::Action;
use crate::runtime::{GuestError, KnownId, Plan, PlanError};
use crate::store::SyncLogEntry;
use crate::sync::{EventRef, Syncer, describe_plan_error};

/// One event to run.
#[derive(Debug, Clone)]
pub struct Input {
    /// The webhook body, exactly as Lago sent it.
    pub payload: String,
    /// Events with the same key run strictly in order (one customer's events).
    pub order_key: String,
    /// A plan stored by an earlier attempt and how far it got: resume it instead of planning
    /// again (serve's crash recovery).
    pub resume: Option<(Plan, Progress)>,
}

impl Input {
    /// A new event: ordered by its customer ([`EventRef::order_key`]).
    pub fn new(payload: impl Into<String>) -> Input {
        let payload = payload.into();
        let order_key = EventRef::from_payload(&payload).order_key(None);
        Input {
            payload,
            order_key,
            resume: None,
        }
    }
}

/// One step of one input that succeeded: the input's index, the plan's progress, the ids the
/// step captured.
pub type StepDone<'a> = (usize, &'a Progress, &'a [KnownId]);

/// Where plans and progress are kept while events run. Each call covers every input of a
/// batch that reached that point together, so a durable recorder commits once per batch.
pub trait Recorder: Sync {
    /// New plans (input index, plan), before their first step runs.
    fn plans_chosen(&self, plans: &[(usize, &Plan)]) -> anyhow::Result<()>;
    /// Steps that succeeded, one per input at most.
    fn steps_done(&self, steps: &[StepDone<'_>]) -> anyhow::Result<()>;
    /// Ids kept back to be stored once, when the run ends.
    fn ids_at_end(&self) -> Vec<KnownId> {
        Vec::new()
    }
}

/// `sync` and `backfill`: ids are stored once for the whole run (a durable commit per step
/// would cost more than the HubSpot requests saved; a re-run upserts the same records again and
/// learns the ids then). Plans are not kept.
#[derive(Default)]
pub struct IdsAtEnd {
    ids: Mutex<Vec<KnownId>>,
}

impl Recorder for IdsAtEnd {
    fn plans_chosen(&self, _: &[(usize, &Plan)]) -> anyhow::Result<()> {
        Ok(())
    }

    fn steps_done(&self, steps: &[StepDone<'_>]) -> anyhow::Result<()> {
        let mut kept = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        for (_, _, ids) in steps {
            kept.extend_from_slice(ids);
        }
        Ok(())
    }

    fn ids_at_end(&self) -> Vec<KnownId> {
        std::mem::take(&mut *self.ids.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Plans every input, executes the plans (batched when more than one), and returns one outcome
/// per input, in order. Every outcome is also written to the sync log; ids go to the store
/// through `recorder` (and, for [`IdsAtEnd`], at the end).
///
/// In a lived-in portal (hubspot-api.md §9): a new company may adopt the one HubSpot already
/// holds for its domain ([`crate::portal::match_companies`]); a contact whose email exists is
/// adopted and a refused optional property dropped ([`crate::executor::recovery::recover`]); and an event that
/// fails on a HubSpot id that went stale (deleted or merged) heals its ids and runs once more.
pub async fn run(syncer: &Syncer, inputs: &[Input], recorder: &dyn Recorder) -> Vec<EventOutcome> {
    let events: Vec<EventRef> = inputs
        .iter()
        .map(|input| EventRef::from_payload(&input.payload))
        .collect();
    let all: Vec<usize> = (0..inputs.len()).collect();
    let mut outcomes = attempt(syncer, inputs, &events, &all, recorder).await;
    let healed = heal(syncer, inputs, &events, &outcomes).await;
    if !healed.is_empty() {
        // Run again with what healing changed in the inputs (a link to a record that is gone
        // is dropped), under the same indexes.
        let mut again_inputs = inputs.to_vec();
        let mut stale = Vec::new();
        let mut notes = Vec::new();
        for (index, payload, note) in healed {
            if let Some(payload) = payload {
                again_inputs[index].payload = payload;
                again_inputs[index].resume = None;
            }
            stale.push(index);
            notes.push(note);
        }
        let again = attempt(syncer, &again_inputs, &events, &stale, recorder).await;
        for ((index, mut outcome), note) in stale.iter().zip(again).zip(notes) {
            if !note.is_empty() {
                outcome.detail = format!("{}; {note}", outcome.detail);
            }
            outcomes[*index] = outcome;
        }
    }
    let outcomes: Vec<EventOutcome> = all
        .iter()
        .zip(outcomes)
        .map(|(index, outcome)| outcome.about(&events[*index]))
        .collect();
    record(syncer, recorder, &outcomes, &events);
    outcomes
}

/// One pass over the inputs at `indexes`: plan (fresh plans may adopt existing companies before
/// they are recorded), execute, classify. Returns one result per index, in order.
async fn attempt(
    syncer: &Syncer,
    inputs: &[Input],
    events: &[EventRef],
    indexes: &[usize],
    recorder: &dyn Recorder,
) -> Vec<Ended> {
    let mut ended: Vec<Option<Ended>> = (0..indexes.len()).map(|_| None).collect();
    let mut planned = Vec::new();
    for (slot, &index) in indexes.iter().enumerate() {
        match plan(syncer, &inputs[index], &events[index]).await {
            Ok(fresh) => planned.push((slot, index, fresh)),
            Err(outcome) => ended[slot] = Some(outcome),
        }
    }
    let matched = crate::portal::match_companies(
        syncer,
        planned
            .iter_mut()
            .filter(|(_, _, (_, _, fresh))| *fresh)
            .map(|(slot, _, (plan, _, _))| (*slot, plan)),
    )
    .await;
    if let Err((slots, error)) = matched {
        tracing::warn!(
            events = slots.len(),
            "could not look up existing companies by domain; their events wait: {error}"
        );
        for &slot in &slots {
            ended[slot] = Some(Ended::failed(&error));
        }
        planned.retain(|(slot, _, _)| !slots.contains(slot));
    }
    // Every fresh plan is stored before any of them runs, in one go.
    let fresh: Vec<(usize, &Plan)> = planned
        .iter()
        .filter(|(_, _, (_, _, fresh))| *fresh)
        .map(|(_, index, (plan, _, _))| (*index, plan))
        .collect();
    let stored = recorder.plans_chosen(&fresh);
    let mut jobs = Vec::new();
    let mut owners = Vec::new();
    for (slot, index, (plan, progress, fresh)) in planned {
        if fresh && let Err(error) = &stored {
            ended[slot] = Some(Ended::failure(
                format!("could not store the plan: {error:#}"),
                Failure::StateUnwritable,
            ));
            continue;
        }
        jobs.push(Job {
            order_key: inputs[index].order_key.clone(),
            plan,
            progress,
        });
        owners.push((slot, index));
    }
    let summaries: Vec<String> = jobs.iter().map(|job| job.plan.summary.clone()).collect();
    let results = if jobs.len() == 1 {
        let job = jobs.pop().expect("one job");
        let index = owners[0].1;
        vec![
            syncer
                .executor()
                .run_from(&job.plan, job.progress, |progress, ids| {
                    recorder.steps_done(&[(index, progress, ids)])
                })
                .await,
        ]
    } else {
        BatchExecutor::new(syncer.executor())
            .run(jobs, |done| {
                let steps: Vec<StepDone<'_>> = done
                    .iter()
                    .map(|&(job, progress, ids)| (owners[job].1, progress, ids))
                    .collect();
                recorder.steps_done(&steps)
            })
            .await
    };
    for (((slot, _), result), summary) in owners.iter().zip(results).zip(summaries) {
        ended[*slot] = Some(match result {
            Ok(steps) => Ended::synced(summary, steps),
            Err(error) => Ended::failed(&error),
        });
    }
    ended
        .into_iter()
        .map(|e| e.expect("every input has a result"))
        .collect()
}

/// For events that failed because HubSpot no longer knows an id (404, an association naming a
/// missing record), checks every id the event used: a record that is gone loses its mapping
/// (the customer is then upserted again from the copy every payload embeds), a merged one is
/// stored under its new id, and a link to a record that is gone is dropped (from the state, and
/// from the payload for this run). Returns the events to run again, with their changed payload
/// and a note for the outcome.
async fn heal(
    syncer: &Syncer,
    inputs: &[Input],
    events: &[EventRef],
    ended: &[Ended],
) -> Vec<(usize, Option<String>, String)> {
    let mut again = Vec::new();
    for (index, outcome) in ended.iter().enumerate() {
        if !outcome.names_a_missing_record() {
            continue;
        }
        match crate::portal::heal_ids(syncer, &events[index], &inputs[index].payload).await {
            Ok(healed) if healed.changed > 0 => again.push((index, healed.payload, healed.note)),
            Ok(_) => {}
            Err(error) => tracing::warn!("could not check the event's HubSpot ids: {error:#}"),
        }
    }
    again
}

/// Stores the ids a run kept for the end, and a sync-log line per event, each in one
/// transaction. A failure here is reported, never fatal: the records are in HubSpot, and a
/// re-run learns the ids again.
fn record(
    syncer: &Syncer,
    recorder: &dyn Recorder,
    outcomes: &[EventOutcome],
    events: &[EventRef],
) {
    let code = &syncer.settings().code;
    let ids = recorder.ids_at_end();
    if !ids.is_empty()
        && let Err(error) = syncer.store().put_ids(code, &ids)
    {
        tracing::error!("could not store the ids of a run: {error:#}");
    }
    let entries: Vec<SyncLogEntry> = outcomes
        .iter()
        .zip(events)
        .map(|(outcome, event)| log_entry(outcome, event))
        .collect();
    if let Err(error) = syncer.store().log_sync_many(code, &entries) {
        tracing::error!("could not write the sync log: {error:#}");
    }
}

fn log_entry(outcome: &EventOutcome, event: &EventRef) -> SyncLogEntry {
    SyncLogEntry {
        names: event.names.clone(),
        at: String::new(),
        webhook_type: outcome.webhook_type.clone(),
        lago_id: outcome.lago_id.clone(),
        outcome: outcome.status.as_str().into(),
        detail: outcome.detail.clone(),
        steps: serde_json::to_string(&outcome.steps).unwrap_or_else(|_| "[]".into()),
    }
}

/// The plan an input runs and how far it got: resumed (`false`), or planned now (`true`, to be
/// recorded before it runs); or how it ended without running.
async fn plan(
    syncer: &Syncer,
    input: &Input,
    event: &EventRef,
) -> Result<(Plan, Progress, bool), Ended> {
    if let Some((plan, progress)) = &input.resume {
        return Ok((plan.clone(), progress.clone(), false));
    }
    let plan = match syncer.plan_for(event, &input.payload).await {
        Err(error) => {
            return Err(match error.downcast_ref::<GuestError>() {
                // The host stopped the component, or it trapped: the guest rows of the retry
                // table decide.
                Some(stopped) => Ended::failure(
                    stopped.to_string(),
                    Failure::Guest {
                        handler: stopped.handler,
                        stop: stopped.stop,
                    },
                ),
                // The store could not be read, or the host could not run the component: may heal.
                None => Ended::failure(format!("{error:#}"), Failure::Retry { status: None }),
            });
        }
        Ok(Err(error)) => return Err(Ended::plan_error(&error)),
        Ok(Ok(plan)) => plan,
    };
    if plan.steps.is_empty() && plan.learned.is_empty() {
        return Err(Ended::skipped(plan.summary));
    }
    Ok((plan, Progress::default(), true))
}

/// An outcome before it is tied to its event.
struct Ended {
    status: OutcomeStatus,
    detail: String,
    steps: Vec<StepOutcome>,
    failure: Option<Failure>,
}

impl Ended {
    /// Synced; what recoveries did (an adopted record, a refused property) follows the summary.
    fn synced(summary: String, steps: Vec<StepOutcome>) -> Ended {
        let notes: Vec<&str> = steps
            .iter()
            .filter_map(|s| s.note.as_deref())
            .filter(|n| !n.is_empty())
            .collect();
        let detail = if notes.is_empty() {
            summary
        } else {
            format!("{summary}; {}", notes.join("; "))
        };
        Ended {
            status: OutcomeStatus::Synced,
            detail,
            steps,
            failure: None,
        }
    }

    /// A failure HubSpot explains by a record it does not have (any more).
    fn names_a_missing_record(&self) -> bool {
        let detail = self.detail.to_ascii_lowercase();
        self.status == OutcomeStatus::Failed
            && (matches!(self.failure, Some(Failure::Dead { status: Some(404) }))
                || detail.contains("object_not_found")
                || detail.contains("not found")
                || detail.contains("does not exist")
                || (detail.contains(" with id ") && detail.contains(" exists")))
    }

    fn skipped(reason: String) -> Ended {
        Ended {
            status: OutcomeStatus::Skipped,
            detail: reason,
            steps: Vec::new(),
            failure: None,
        }
    }

    fn failure(detail: String, failure: Failure) -> Ended {
        Ended {
            status: OutcomeStatus::Failed,
            detail,
            steps: Vec::new(),
            failure: Some(failure),
        }
    }

    /// The component could not plan the payload: trying again gives the same answer (except
    /// a read HubSpot failed during planning, which may heal).
    fn plan_error(error: &PlanError) -> Ended {
        let failure = match error {
            PlanError::HubspotReadFailed(_) => Failure::Retry { status: None },
            PlanError::NotDeployed(_) => Failure::NotDeployed,
            _ => Failure::Rejected,
        };
        Ended::failure(describe_plan_error(error), failure)
    }

    /// A plan that stopped on `error`: by the one retry table, plus what only the pipeline
    /// knows (a connection waiting for a reconnect; results that could not be recorded).
    fn failed(error: &ExecError) -> Ended {
        let status = error.status();
        let failure = match error {
            ExecError::Transport {
                source: TransportError::Auth(auth),
                ..
            } if auth.needs_reconnect() => Failure::AwaitReconnect,
            // A refresh that failed may heal; a missing result or a partial batch is run again;
            // a checkpoint the state could not write, too, without using an attempt.
            ExecError::Transport {
                source: TransportError::Auth(_),
                ..
            }
            | ExecError::MissingResult { .. }
            | ExecError::Blocked { .. }
            | ExecError::Partial { .. } => Failure::Retry { status },
            ExecError::Checkpoint { .. } => Failure::StateUnwritable,
            _ => match error.action() {
                Action::ParkUntilReset => Failure::Park {
                    until_ms: next_utc_midnight_ms(now_ms()),
                },
                // Still expired after the client's one refresh: try the event again later.
                Action::WaitWindow | Action::BackOff | Action::RefreshAuth => {
                    Failure::Retry { status }
                }
                Action::Accept | Action::SplitBatch | Action::GiveUp => Failure::Dead { status },
            },
        };
        Ended::failure(error.to_string(), failure)
    }

    fn about(&self, event: &EventRef) -> EventOutcome {
        EventOutcome {
            webhook_type: event.webhook_type.clone(),
            lago_id: event.lago_id.clone(),
            status: self.status,
            detail: self.detail.clone(),
            steps: self.steps.clone(),
            failure: self.failure,
        }
    }
}

/// The pipeline as a [`Syncer`] offers it to `sync`, `backfill`, the demo and the tests.
impl Syncer {
    /// Plans and executes one Lago webhook payload through the [`pipeline`](crate::pipeline).
    /// Never panics on bad input: every way an event can end is an [`EventOutcome`] and a
    /// sync-log line.
    pub async fn sync_event(&self, payload: &str) -> EventOutcome {
        let inputs = [Input::new(payload)];
        let mut outcomes = run(self, &inputs, &IdsAtEnd::default()).await;
        outcomes.pop().expect("one outcome per input")
    }

    /// Plans every payload and executes the plans together, coalescing their steps into HubSpot
    /// batch requests (see [`crate::batch`]). Events of one customer keep their order. Returns one
    /// outcome per payload, in order, each also written to the sync log.
    pub async fn sync_batch(&self, payloads: &[String]) -> Vec<EventOutcome> {
        let inputs: Vec<Input> = payloads.iter().map(Input::new).collect();
        run(self, &inputs, &IdsAtEnd::default()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure_of(error: &ExecError) -> Option<Failure> {
        Ended::failed(error).failure
    }

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
            failure_of(&rejected(400, None)),
            Some(Failure::Dead { .. })
        ));
        assert!(matches!(
            failure_of(&rejected(403, None)),
            Some(Failure::Dead { .. })
        ));
        assert!(matches!(
            failure_of(&rejected(503, None)),
            Some(Failure::Retry { .. })
        ));
        assert!(matches!(
            failure_of(&rejected(429, Some("TEN_SECONDLY_ROLLING"))),
            Some(Failure::Retry { .. })
        ));
        assert!(matches!(
            failure_of(&rejected(429, Some("DAILY"))),
            Some(Failure::Park { .. })
        ));
    }
}
