//! Batched execution: the next steps of many plans that are the same operation are sent together
//! — `upsert`s of one object type as one `batch/upsert` (≤ 100 inputs), `associate`s of one pair
//! of object types as one v4 `batch/associate/default` (≤ 2,000) — instead of one request per
//! step. Other operations go one by one.
//!
//! Plans stay per event (dry runs and the sync log are unchanged); only their execution is
//! coalesced. Results are matched back by the unique id property (HubSpot returns them in any
//! order), partial failures by `objectWriteTraceId`, and a batch HubSpot rejects as a whole is
//! split and retried so one bad record cannot sink the others. Plans that share an order key (one
//! Lago customer) run one after another, so a later event's write always lands last.

use std::collections::{BTreeMap, HashMap, VecDeque};

use bytes::Bytes;
use serde_json::{Value, json};

use crate::executor::operation::HubspotRequest;
use crate::executor::recovery::CustomerUpsert;
use crate::executor::{
    Call, ExecError, Executor, Progress, StepOutcome, apply_result, method_name, partial_failure,
    scalar_to_string,
};
use crate::hubspot_http::TransportError;
use crate::runtime::{HttpMethod, KnownId, Operation, Plan, Step};

/// HubSpot's documented input limits per request.
pub const MAX_UPSERT_INPUTS: usize = 100;
pub const MAX_ASSOCIATION_INPUTS: usize = 2000;

/// One plan to run, with where it stands (a resumed plan starts mid-way).
pub struct Job {
    /// Plans with the same key run in order, one at a time.
    pub order_key: String,
    pub plan: Plan,
    pub progress: Progress,
}

/// What a coalescable step contributes to a batch.
enum Piece {
    Upsert {
        id_property: String,
        id: String,
        input: Value,
    },
    Associate {
        input: Value,
    },
}

/// A step ready to send for one job: either on its own or as a piece of a batch.
struct Ready {
    job: usize,
    request: HubspotRequest,
    path: String,
    body: Option<Bytes>,
    piece: Option<Piece>,
}

pub struct BatchExecutor<'a> {
    executor: Executor<'a>,
}

type JobResult = Result<Vec<StepOutcome>, ExecError>;

impl<'a> BatchExecutor<'a> {
    pub fn new(executor: Executor<'a>) -> Self {
        BatchExecutor { executor }
    }

    /// Runs every job to its end or its first failure. `checkpoint` is called once per wave
    /// with every job whose step succeeded in it (job, progress, ids captured), as
    /// [`Executor::run_from`] calls it per step; when it fails, those jobs fail at that step.
    pub async fn run(
        &self,
        jobs: Vec<Job>,
        mut checkpoint: impl FnMut(&[(usize, &Progress, &[KnownId])]) -> anyhow::Result<()>,
    ) -> Vec<JobResult> {
        let count = jobs.len();
        let mut results: Vec<Option<JobResult>> = (0..count).map(|_| None).collect();
        let mut outcomes: Vec<Vec<StepOutcome>> = vec![Vec::new(); count];
        let mut progress: Vec<Progress> = jobs.iter().map(|j| j.progress.clone()).collect();
        // Per order key, the jobs still to run, in submission order.
        let mut lines: BTreeMap<&str, VecDeque<usize>> = BTreeMap::new();
        for (index, job) in jobs.iter().enumerate() {
            lines
                .entry(job.order_key.as_str())
                .or_default()
                .push_back(index);
        }
        loop {
            // The head of every line takes part in this wave.
            let mut active = Vec::new();
            for line in lines.values_mut() {
                while let Some(&head) = line.front() {
                    if progress[head].next_step < jobs[head].plan.steps.len() {
                        active.push(head);
                        break;
                    }
                    if results[head].is_none() {
                        // A plan with nothing (left) to send still records its learned ids.
                        if jobs[head].plan.steps.is_empty()
                            && !jobs[head].plan.learned.is_empty()
                            && let Err(e) =
                                checkpoint(&[(head, &progress[head], &jobs[head].plan.learned)])
                        {
                            results[head] = Some(Err(checkpoint_error(0, &e)));
                        }
                        if results[head].is_none() {
                            results[head] = Some(Ok(std::mem::take(&mut outcomes[head])));
                        }
                    }
                    line.pop_front();
                }
            }
            if active.is_empty() {
                break;
            }
            let mut ready = Vec::new();
            let mut requests: HashMap<usize, HubspotRequest> = HashMap::new();
            for &job in &active {
                match prepare(&jobs[job].plan, &progress[job], job) {
                    Ok(step) => {
                        requests.insert(job, step.request.clone());
                        ready.push(step);
                    }
                    Err(error) => results[job] = Some(Err(error)),
                }
            }
            let answered = self.send_wave(&jobs, &progress, ready).await;
            // The steps that succeeded in this wave, checkpointed together.
            let mut done: Vec<(usize, Vec<KnownId>, StepOutcome)> = Vec::new();
            for (job, answer) in answered {
                let step_index = progress[job].next_step;
                let step = &jobs[job].plan.steps[step_index];
                match answer {
                    Ok((json, status, attempts, path, note)) => {
                        let request = &requests[&job];
                        match apply_result(step, request, step_index, &json, &mut progress[job]) {
                            Ok(mut ids) => {
                                if step_index == 0 {
                                    ids.splice(0..0, jobs[job].plan.learned.iter().cloned());
                                }
                                progress[job].next_step = step_index + 1;
                                let outcome = StepOutcome {
                                    description: step.description.clone(),
                                    method: method_name(request.method).to_owned(),
                                    path,
                                    status,
                                    attempts,
                                    note,
                                };
                                done.push((job, ids, outcome));
                            }
                            Err(error) => results[job] = Some(Err(error)),
                        }
                    }
                    Err(error) => results[job] = Some(Err(error)),
                }
            }
            let entries: Vec<(usize, &Progress, &[KnownId])> = done
                .iter()
                .map(|(job, ids, _)| (*job, &progress[*job], ids.as_slice()))
                .collect();
            let recorded = if entries.is_empty() {
                Ok(())
            } else {
                checkpoint(&entries)
            };
            for (job, _, outcome) in done {
                match &recorded {
                    Ok(()) => outcomes[job].push(outcome),
                    Err(e) => {
                        results[job] = Some(Err(checkpoint_error(progress[job].next_step, e)))
                    }
                }
            }
            // A failed job ends its line: later events of that customer must not overtake it.
            for line in lines.values_mut() {
                if let Some(&head) = line.front()
                    && matches!(results[head], Some(Err(_)))
                {
                    for later in line.drain(1..) {
                        results[later] = Some(Err(ExecError::Blocked {
                            step: progress[later].next_step + 1,
                            description: "waits for an earlier event of the same customer".into(),
                        }));
                    }
                    line.pop_front();
                }
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Ok(Vec::new())))
            .collect()
    }

    /// Sends one wave: singles on their own, pieces grouped by endpoint and chunked.
    async fn send_wave(
        &self,
        jobs: &[Job],
        progress: &[Progress],
        ready: Vec<Ready>,
    ) -> Vec<(usize, Answer)> {
        let mut answers = Vec::new();
        let mut groups: BTreeMap<String, Vec<Ready>> = BTreeMap::new();
        for step in ready {
            if step.piece.is_some() {
                groups.entry(step.path.clone()).or_default().push(step);
            } else {
                let plan_step = &jobs[step.job].plan.steps[progress[step.job].next_step];
                let number = progress[step.job].next_step + 1;
                let result = self
                    .send_single(plan_step, &step.request, number, &step.path, step.body)
                    .await;
                answers.push((
                    step.job,
                    result.map(|(json, status, attempts, note)| {
                        (json, status, attempts, step.path, note)
                    }),
                ));
            }
        }
        // Company and contact upserts HubSpot refuses for a lived-in portal's reasons are
        // written again one by one (see [`crate::executor::recovery`]).
        let mut customer_upserts: HashMap<usize, CustomerUpsert> = HashMap::new();
        for ready in groups.values().flatten() {
            let step = &jobs[ready.job].plan.steps[progress[ready.job].next_step];
            if let Some(upsert) = CustomerUpsert::of_operation(&step.operation) {
                customer_upserts.insert(ready.job, upsert);
            }
        }
        for (path, pieces) in groups {
            let limit = match pieces[0].piece {
                Some(Piece::Associate { .. }) => MAX_ASSOCIATION_INPUTS,
                _ => MAX_UPSERT_INPUTS,
            };
            let mut queue: VecDeque<Vec<Ready>> = VecDeque::new();
            let mut pieces = pieces;
            while !pieces.is_empty() {
                let rest = pieces.split_off(pieces.len().min(limit));
                queue.push_back(pieces);
                pieces = rest;
            }
            while let Some(chunk) = queue.pop_front() {
                match self.send_chunk(&path, &chunk).await {
                    ChunkAnswer::Done(done) => answers.extend(done),
                    // Rejected as a whole: halve it and try the halves, down to single inputs.
                    ChunkAnswer::Split if chunk.len() > 1 => {
                        let mut first = chunk;
                        let second = first.split_off(first.len() / 2);
                        queue.push_front(second);
                        queue.push_front(first);
                    }
                    ChunkAnswer::Split => unreachable!("a single input is answered, never split"),
                }
            }
        }
        for (job, answer) in &mut answers {
            let (Err(error), Some(upsert)) = (&*answer, customer_upserts.get(job)) else {
                continue;
            };
            match crate::executor::recovery::recover(&self.executor, upsert, error).await {
                Some(Ok(recovered)) => {
                    let path = format!("/crm/v3/objects/{}/batch/upsert", upsert.object_type);
                    *answer = Ok((
                        recovered.json,
                        recovered.status,
                        recovered.attempts,
                        path,
                        Some(recovered.note),
                    ));
                }
                Some(Err(next)) => *answer = Err(next),
                None => {}
            }
        }
        answers
    }

    async fn send_single(
        &self,
        step: &Step,
        request: &HubspotRequest,
        number: usize,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(Value, u16, u32, Option<String>), ExecError> {
        let call = Call::new(request.method, &step.description);
        let (response, attempts) = self
            .executor
            .send_with_retries(&call, number, path, body.clone())
            .await?;
        if !(response.is_success() || request.accept_statuses.contains(&response.status)) {
            let error = ExecError::rejected(number, &step.description, &response);
            // The update of a linked customer record (see [`crate::executor::recovery`]).
            return match crate::executor::recovery::recover_request(
                &self.executor,
                &step.operation,
                body.as_deref(),
                &error,
            )
            .await
            {
                Some(Ok(recovered)) => Ok((
                    recovered.json,
                    recovered.status,
                    attempts + recovered.attempts,
                    Some(recovered.note),
                )),
                Some(Err(next)) => Err(next),
                None => Err(error),
            };
        }
        let json = if response.is_success() {
            response.json().unwrap_or(Value::Null)
        } else {
            Value::Null
        };
        if let Some(message) = partial_failure(&json) {
            return Err(ExecError::Partial {
                step: number,
                description: step.description.clone(),
                message,
            });
        }
        Ok((json, response.status, attempts, None))
    }

    async fn send_chunk(&self, path: &str, chunk: &[Ready]) -> ChunkAnswer {
        let upsert = matches!(chunk[0].piece, Some(Piece::Upsert { .. }));
        // Duplicate ids in one batch make HubSpot refuse the whole request: they become one input
        // whose properties are the earlier ones overridden by the later ones, as sending them in
        // turn would leave the record (an id-only upsert then adds nothing to a full one).
        let mut inputs: Vec<Value> = Vec::new();
        let mut slot_of_id: HashMap<String, usize> = HashMap::new();
        for ready in chunk {
            match &ready.piece {
                Some(Piece::Upsert { id, input, .. }) => {
                    let mut input = input.clone();
                    input["objectWriteTraceId"] = json!(trace_id(ready.job));
                    match slot_of_id.get(id) {
                        Some(&slot) => {
                            if let (Some(earlier), Some(later)) = (
                                inputs[slot]["properties"].as_object(),
                                input["properties"].as_object(),
                            ) {
                                let mut merged = earlier.clone();
                                merged.extend(later.clone());
                                input["properties"] = Value::Object(merged);
                            }
                            inputs[slot] = input;
                        }
                        None => {
                            slot_of_id.insert(id.clone(), inputs.len());
                            inputs.push(input);
                        }
                    }
                }
                Some(Piece::Associate { input }) => inputs.push(input.clone()),
                None => unreachable!("only pieces are chunked"),
            }
        }
        let description = format!(
            "batch {} of {} input(s)",
            if upsert { "upsert" } else { "association" },
            inputs.len()
        );
        let batch_step = Call::new(HttpMethod::Post, &description);
        let body = Bytes::from(json!({ "inputs": inputs }).to_string());
        let sent = self
            .executor
            .send_with_retries(&batch_step, 1, path, Some(body))
            .await;
        let (response, attempts) = match sent {
            Ok(sent) => sent,
            Err(error) => {
                return ChunkAnswer::Done(
                    chunk
                        .iter()
                        .map(|r| (r.job, Err(clone_error(&error))))
                        .collect(),
                );
            }
        };
        if crate::retry::classify_response(&response, chunk.len())
            == crate::retry::Action::SplitBatch
        {
            return ChunkAnswer::Split;
        }
        if !response.is_success() {
            let error = ExecError::rejected(1, &description, &response);
            return ChunkAnswer::Done(
                chunk
                    .iter()
                    .map(|r| (r.job, Err(clone_error(&error))))
                    .collect(),
            );
        }
        let json = response.json().unwrap_or(Value::Null);
        let failures = failures_by_key(&json);
        let mut answers = Vec::with_capacity(chunk.len());
        for ready in chunk {
            let answer = match &ready.piece {
                Some(Piece::Upsert {
                    id_property, id, ..
                }) => {
                    if let Some(failure) = failures
                        .get(&trace_id(ready.job))
                        .or_else(|| failures.get(id))
                    {
                        Err(failure.clone().into_error(&description))
                    } else {
                        match find_result(&json, id_property, id) {
                            Some(result) => Ok((
                                json!({ "results": [result] }),
                                response.status,
                                attempts,
                                path.to_owned(),
                                None,
                            )),
                            None => Err(ExecError::Partial {
                                step: 1,
                                description: description.clone(),
                                message: format!(
                                    "HubSpot returned no result for {id_property} {id}"
                                ),
                            }),
                        }
                    }
                }
                Some(Piece::Associate { input }) => {
                    let from = input
                        .pointer("/from/id")
                        .and_then(scalar_to_string)
                        .unwrap_or_default();
                    let to = input
                        .pointer("/to/id")
                        .and_then(scalar_to_string)
                        .unwrap_or_default();
                    match failures
                        .get(&format!("{from}->{to}"))
                        .or_else(|| failures.get(&from))
                    {
                        Some(failure) => Err(failure.clone().into_error(&description)),
                        None => Ok((
                            Value::Null,
                            response.status,
                            attempts,
                            path.to_owned(),
                            None,
                        )),
                    }
                }
                None => unreachable!("only pieces are chunked"),
            };
            answers.push((ready.job, answer));
        }
        ChunkAnswer::Done(answers)
    }
}

/// A job's answer to one step: the JSON its result is read from, status, attempts and the path sent.
/// A step's answer: its JSON, status, attempts, path, and a note when [`crate::executor::recovery`]
/// recovered it.
type Answer = Result<(Value, u16, u32, String, Option<String>), ExecError>;

enum ChunkAnswer {
    Done(Vec<(usize, Answer)>),
    Split,
}

fn trace_id(job: usize) -> String {
    format!("job-{job}")
}

/// The next step of a job as its request, and whether it can join a batch: by its operation.
fn prepare(plan: &Plan, progress: &Progress, job: usize) -> Result<Ready, ExecError> {
    let step = &plan.steps[progress.next_step];
    let request = progress.request(step, progress.next_step + 1)?;
    let input = || request.body.as_ref()?.pointer("/inputs/0").cloned();
    let piece = match &step.operation {
        Operation::Upsert(upsert) => input().map(|input| Piece::Upsert {
            id_property: upsert.id_property.clone(),
            id: upsert.id.clone(),
            input,
        }),
        Operation::Associate(_) => input().map(|input| Piece::Associate { input }),
        _ => None,
    };
    Ok(Ready {
        job,
        path: request.path.clone(),
        body: request.body.as_ref().map(|b| Bytes::from(b.to_string())),
        request,
        piece,
    })
}

/// The result whose unique property (or id) is the input's id.
fn find_result<'j>(json: &'j Value, id_property: &str, id: &str) -> Option<&'j Value> {
    json.get("results")?.as_array()?.iter().find(|result| {
        result
            .pointer(&format!("/properties/{id_property}"))
            .and_then(scalar_to_string)
            .is_some_and(|value| value == id)
    })
}

/// One input's failure inside a 207.
#[derive(Clone)]
struct InputFailure {
    category: String,
    message: String,
}

impl InputFailure {
    /// Validation, conflicts and missing records fail again as they are: those are refusals,
    /// not transient trouble, so callers don't retry them blindly.
    fn into_error(self, description: &str) -> ExecError {
        let status = match self.category.as_str() {
            "VALIDATION_ERROR" => Some(400),
            "CONFLICT" | "OBJECT_ALREADY_EXISTS" => Some(409),
            "OBJECT_NOT_FOUND" => Some(404),
            _ => None,
        };
        let message = format!("{}: {}", self.category, self.message);
        match status {
            Some(status) => ExecError::Rejected {
                step: 1,
                description: description.to_owned(),
                status,
                message: format!("HTTP {status} (in a 207 batch answer): {message}"),
                rate_limit_policy: None,
                category: Some(self.category.clone()),
            },
            None => ExecError::Partial {
                step: 1,
                description: description.to_owned(),
                message,
            },
        }
    }
}

/// `errors[]` of a 207, keyed by trace id, by id, and by `from->to` for associations.
fn failures_by_key(json: &Value) -> HashMap<String, InputFailure> {
    let mut failures = HashMap::new();
    for error in json
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let text = |key: &str, default: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or(default)
                .to_owned()
        };
        let context = error.get("context");
        let mut message = InputFailure {
            category: text("category", "ERROR"),
            message: text("message", "no message"),
        };
        // A conflicting contact may be named only in the context (hubspot-api.md §3.2).
        if let Some(id) = context
            .and_then(|c| c.pointer("/existingId/0"))
            .and_then(scalar_to_string)
            && !message.message.contains("Existing ID")
        {
            message.message = format!("{} Existing ID: {id}", message.message);
        }
        let values = |key: &str| -> Vec<String> {
            context
                .and_then(|c| c.get(key))
                .map(|v| match v {
                    Value::Array(items) => items.iter().filter_map(scalar_to_string).collect(),
                    other => scalar_to_string(other).into_iter().collect(),
                })
                .unwrap_or_default()
        };
        for key in values("objectWriteTraceId")
            .into_iter()
            .chain(values("ids"))
        {
            failures.insert(key, message.clone());
        }
        let (from, to) = (values("fromObjectId"), values("toObjectId"));
        if let (Some(from), Some(to)) = (from.first(), to.first()) {
            failures.insert(format!("{from}->{to}"), message.clone());
        }
    }
    failures
}

fn checkpoint_error(step: usize, error: &anyhow::Error) -> ExecError {
    ExecError::Checkpoint {
        step,
        description: "record progress".into(),
        reason: format!("{error:#}"),
    }
}

/// Errors are shared by every job of a failed chunk, each job keeping what its retry decision
/// reads (status, category, policy; an auth failure stays one, so a connection waiting for a
/// reconnect uses up no attempt). A network error does not clone: it is restated with its text,
/// and is retried either way.
fn clone_error(error: &ExecError) -> ExecError {
    match error {
        ExecError::Transport {
            step,
            description,
            source: TransportError::Auth(auth),
        } => ExecError::Transport {
            step: *step,
            description: description.clone(),
            source: TransportError::Auth(auth.clone()),
        },
        ExecError::Rejected {
            step,
            description,
            status,
            message,
            rate_limit_policy,
            category,
        } => ExecError::Rejected {
            step: *step,
            description: description.clone(),
            status: *status,
            message: message.clone(),
            rate_limit_policy: rate_limit_policy.clone(),
            category: category.clone(),
        },
        other => ExecError::Partial {
            step: 1,
            description: "batch".into(),
            message: other.to_string(),
        },
    }
}
