//! Executes a plan against HubSpot: turns each step's operation into its request
//! ([`operation`]), giving it the results of earlier steps, checks each answer, retries what
//! HubSpot says is transient, and reports what the plan taught us.

pub mod operation;
pub mod recovery;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hubspot_http::{HubspotClient, HubspotResponse, TransportError};
use crate::retry::{Action, Answer, Decision, RetryPolicy, classify};
use crate::runtime::{HttpMethod, KnownId, Plan, Step};
use operation::HubspotRequest;

/// What one step did, for the sync log and the CLI.
#[derive(Debug, Clone, Serialize)]
pub struct StepOutcome {
    pub description: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub attempts: u32,
    /// What the step did besides the plan: an adopted record, a property HubSpot refused
    /// ([`recovery`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub note: Option<String>,
}

/// How far a plan got: the next step to run and the results (HubSpot ids) of the steps that ran,
/// by step index (0-based), for the steps that refer to them. Persisted after every step, so a
/// restarted process resumes instead of starting over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub next_step: usize,
    #[serde(default)]
    pub results: BTreeMap<usize, String>,
}

impl Progress {
    /// The request step `index` of `plan` is, with the results of earlier steps filled in.
    pub(crate) fn request(&self, step: &Step, number: usize) -> Result<HubspotRequest, ExecError> {
        operation::request(&step.operation, |n| {
            self.results.get(&(n as usize)).cloned()
        })
        .map_err(|missing| ExecError::UnknownReference {
            step: number,
            description: step.description.clone(),
            referenced: missing as usize + 1,
        })
    }
}

/// A request the host sends (one of a plan's, or one of its own) and how logs and errors name it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: HttpMethod,
    pub description: String,
}

impl Call {
    pub fn new(method: HttpMethod, description: &str) -> Self {
        Call {
            method,
            description: description.to_owned(),
        }
    }
}

/// A plan that ran to the end.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Executed {
    /// Captured and learned ids the host should store (Lago id → HubSpot id).
    pub stored: Vec<KnownId>,
    pub steps: Vec<StepOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("step {step} ({description}) was refused by HubSpot: {message}")]
    Rejected {
        step: usize,
        description: String,
        status: u16,
        message: String,
        /// `policyName` of a 429 (`DAILY`, `TEN_SECONDLY_ROLLING`, …).
        rate_limit_policy: Option<String>,
        /// HubSpot's error `category` (`VALIDATION_ERROR`, `EXPIRED_AUTHENTICATION`, …).
        category: Option<String>,
    },
    #[error("step {step} ({description}): {source}")]
    Transport {
        step: usize,
        description: String,
        #[source]
        source: TransportError,
    },
    #[error("step {step} ({description}): HubSpot's answer has no id at {pointer}")]
    MissingResult {
        step: usize,
        description: String,
        pointer: String,
    },
    #[error(
        "step {step} ({description}) takes the result of step {referenced}, which has none (yet)"
    )]
    UnknownReference {
        step: usize,
        description: String,
        /// 1-based, as steps are numbered in messages.
        referenced: usize,
    },
    #[error("step {step} ({description}) succeeded but its result could not be recorded: {reason}")]
    Checkpoint {
        step: usize,
        description: String,
        reason: String,
    },
    #[error("step {step} ({description}) partly failed in HubSpot: {message}")]
    Partial {
        step: usize,
        description: String,
        message: String,
    },
    #[error("step {step} ({description})")]
    Blocked { step: usize, description: String },
}

impl ExecError {
    /// HubSpot refused a step: its status, message and correlation id, and the 429 policy.
    pub(crate) fn rejected(step: usize, description: &str, response: &HubspotResponse) -> Self {
        ExecError::Rejected {
            step,
            description: description.to_owned(),
            status: response.status,
            message: response.error_summary(),
            rate_limit_policy: response
                .json()
                .and_then(|j| j.get("policyName")?.as_str().map(str::to_owned)),
            category: response
                .json()
                .and_then(|j| j.get("category")?.as_str().map(str::to_owned)),
        }
    }

    /// What the one retry table ([`crate::retry::RULES`]) says about this failure, for a plan
    /// that stopped on it (one input per request).
    pub fn action(&self) -> Action {
        match self {
            ExecError::Rejected {
                status,
                rate_limit_policy,
                category,
                ..
            } => classify(&Answer {
                status: Some(*status),
                category: category.as_deref(),
                policy_name: rate_limit_policy.as_deref(),
                inputs: 1,
            }),
            // No answer: what the table says of a network error.
            ExecError::Transport {
                source: TransportError::Network { .. },
                ..
            } => classify(&Answer::default()),
            _ => Action::GiveUp,
        }
    }

    /// The HTTP status HubSpot answered, when it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ExecError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

pub struct Executor<'a> {
    client: &'a HubspotClient,
    retry: RetryPolicy,
}

impl<'a> Executor<'a> {
    pub fn new(client: &'a HubspotClient, retry: RetryPolicy) -> Self {
        Executor { client, retry }
    }

    /// Runs the whole plan and returns every id it captured or learned.
    pub async fn run(&self, plan: &Plan) -> Result<Executed, ExecError> {
        let mut stored = Vec::new();
        let steps = self
            .run_from(plan, Progress::default(), |_, ids| {
                stored.extend_from_slice(ids);
                Ok(())
            })
            .await?;
        Ok(Executed { stored, steps })
    }

    /// Runs the plan from `progress.next_step`. After every step, `checkpoint` gets the new
    /// progress and the ids that step captured (the plan's `learned` ids come with the first).
    pub async fn run_from(
        &self,
        plan: &Plan,
        mut progress: Progress,
        mut checkpoint: impl FnMut(&Progress, &[KnownId]) -> anyhow::Result<()>,
    ) -> Result<Vec<StepOutcome>, ExecError> {
        let mut outcomes = Vec::with_capacity(plan.steps.len());
        for (index, step) in plan.steps.iter().enumerate().skip(progress.next_step) {
            let number = index + 1;
            let request = progress.request(step, number)?;
            let path = request.path.clone();
            let body = request.body.as_ref().map(|b| Bytes::from(b.to_string()));
            let call = Call::new(request.method, &step.description);
            let (response, attempts) = self
                .send_with_retries(&call, number, &path, body.clone())
                .await?;
            let accepted =
                response.is_success() || request.accept_statuses.contains(&response.status);
            let json = if response.is_success() {
                response.json().unwrap_or(Value::Null)
            } else {
                Value::Null
            };
            let refused = if !accepted {
                Some(ExecError::rejected(number, &step.description, &response))
            } else {
                partial_failure(&json).map(|message| {
                    recovery::error_of_207(&json, number, &step.description).unwrap_or(
                        ExecError::Partial {
                            step: number,
                            description: step.description.clone(),
                            message,
                        },
                    )
                })
            };
            // A portal that already holds the customer's email, or refuses an optional property.
            let (json, status, attempts, note) = match refused {
                None => (json, response.status, attempts, None),
                Some(error) => {
                    let recovered =
                        recovery::recover_request(self, &step.operation, body.as_deref(), &error)
                            .await;
                    match recovered {
                        Some(Ok(recovered)) => (
                            recovered.json,
                            recovered.status,
                            attempts + recovered.attempts,
                            Some(recovered.note),
                        ),
                        Some(Err(error)) => return Err(error),
                        None => return Err(error),
                    }
                }
            };
            let mut ids = if index == 0 {
                plan.learned.clone()
            } else {
                Vec::new()
            };
            if (200..300).contains(&status) {
                ids.extend(apply_result(step, &request, index, &json, &mut progress)?);
            }
            progress.next_step = index + 1;
            checkpoint(&progress, &ids).map_err(|e| ExecError::Checkpoint {
                step: number,
                description: step.description.clone(),
                reason: format!("{e:#}"),
            })?;
            outcomes.push(StepOutcome {
                description: step.description.clone(),
                method: method_name(request.method).to_owned(),
                path,
                status,
                attempts,
                note,
            });
        }
        if plan.steps.is_empty() && !plan.learned.is_empty() {
            checkpoint(&progress, &plan.learned).map_err(|e| ExecError::Checkpoint {
                step: 0,
                description: "store learned ids".into(),
                reason: format!("{e:#}"),
            })?;
        }
        Ok(outcomes)
    }

    pub(crate) async fn send_with_retries(
        &self,
        step: &Call,
        number: usize,
        path: &str,
        body: Option<Bytes>,
    ) -> Result<(HubspotResponse, u32), ExecError> {
        let mut attempt = 1;
        loop {
            let result = self
                .client
                .send(to_method(step.method), path, body.clone())
                .await;
            let decision = match &result {
                Ok(response) => self.retry.after_response(response, attempt),
                Err(TransportError::Network { .. }) => self.retry.after_network_error(attempt),
                Err(TransportError::ForbiddenDestination(_)) => Decision::GiveUp,
                // A failed refresh may heal; a connection waiting for a reconnect will not.
                Err(TransportError::Auth(error)) if !error.needs_reconnect() => {
                    self.retry.after_network_error(attempt)
                }
                Err(TransportError::Auth(_)) => Decision::GiveUp,
            };
            match (decision, result) {
                (Decision::RetryIn(delay), _) => {
                    if let Some(metrics) = self.client.metrics() {
                        metrics.hubspot_retries.inc();
                    }
                    tracing::info!(
                        step = number,
                        attempt,
                        ?delay,
                        "retrying {}",
                        step.description
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                (_, Ok(response)) => return Ok((response, attempt)),
                (_, Err(source)) => {
                    return Err(ExecError::Transport {
                        step: number,
                        description: step.description.clone(),
                        source,
                    });
                }
            }
        }
    }
}

pub fn method_name(method: HttpMethod) -> &'static str {
    match method {
        HttpMethod::Get => "GET",
        HttpMethod::Post => "POST",
        HttpMethod::Put => "PUT",
        HttpMethod::Patch => "PATCH",
        HttpMethod::Delete => "DELETE",
    }
}

pub(crate) fn to_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
    }
}

/// Takes a step's result (a HubSpot id) from its answer into `progress`; returns it as the id to
/// store when the step names a key.
pub(crate) fn apply_result(
    step: &Step,
    request: &HubspotRequest,
    index: usize,
    json: &Value,
    progress: &mut Progress,
) -> Result<Vec<KnownId>, ExecError> {
    let Some(pointer) = &request.result_pointer else {
        return Ok(Vec::new());
    };
    let value = json
        .pointer(pointer)
        .and_then(scalar_to_string)
        .ok_or_else(|| ExecError::MissingResult {
            step: index + 1,
            description: step.description.clone(),
            pointer: pointer.clone(),
        })?;
    progress.results.insert(index, value.clone());
    Ok(step
        .store_as
        .iter()
        .map(|key| KnownId {
            key: key.clone(),
            hubspot_id: value.clone(),
        })
        .collect())
}

/// A 207 (or 200) batch answer whose `errors` say some inputs were not written.
pub(crate) fn partial_failure(json: &Value) -> Option<String> {
    let errors = json.get("errors")?.as_array()?;
    let first = errors.first()?;
    let message = first
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message");
    let category = first
        .get("category")
        .and_then(Value::as_str)
        .unwrap_or("unknown category");
    Some(format!(
        "{} input(s) failed; first: {category}: {message}",
        errors.len()
    ))
}

pub(crate) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}
