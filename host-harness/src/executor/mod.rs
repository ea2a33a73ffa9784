//! Executes a plan against HubSpot: substitutes captured values into later steps, checks each
//! answer, retries what HubSpot says is transient, and reports what the plan taught us.

pub mod recovery;

use std::collections::BTreeMap;

use bytes::Bytes;
use http::Method;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::hubspot_http::{HubspotClient, HubspotResponse, TransportError};
use crate::retry::{Action, Answer, Decision, RetryPolicy, classify};
use crate::runtime::{HttpMethod, KnownId, Plan, Step};

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

/// How far a plan got: the next step to run and the values earlier steps captured.
/// Persisted after every step, so a restarted process resumes instead of starting over.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub next_step: usize,
    pub captured: BTreeMap<String, String>,
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
    #[error(
        "step {step} ({description}): HubSpot's answer has no value at {pointer} for capture {name:?}"
    )]
    MissingCapture {
        step: usize,
        description: String,
        name: String,
        pointer: String,
    },
    #[error("step {step} ({description}) uses {{{{{name}}}}}, which no earlier step captured")]
    UnknownReference {
        step: usize,
        description: String,
        name: String,
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
    #[error("step {step} ({description}) has a body that is not JSON: {reason}")]
    InvalidBody {
        step: usize,
        description: String,
        reason: String,
    },
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
            let path = substitute_path(step, number, &progress.captured)?;
            let body = substitute_body(step, number, &progress.captured)?;
            let (response, attempts) = self
                .send_with_retries(step, number, &path, body.clone())
                .await?;
            let accepted = response.is_success() || step.accept_statuses.contains(&response.status);
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
                    let recovered = recovery::recover_request(
                        self,
                        step.method,
                        &path,
                        body.as_deref(),
                        &error,
                    )
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
                ids.extend(apply_captures(step, number, &json, &mut progress)?);
            }
            progress.next_step = index + 1;
            checkpoint(&progress, &ids).map_err(|e| ExecError::Checkpoint {
                step: number,
                description: step.description.clone(),
                reason: format!("{e:#}"),
            })?;
            outcomes.push(StepOutcome {
                description: step.description.clone(),
                method: method_name(step.method).to_owned(),
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
        step: &Step,
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

/// Takes a step's captures from its answer into `progress`; returns those to store.
pub(crate) fn apply_captures(
    step: &Step,
    number: usize,
    json: &Value,
    progress: &mut Progress,
) -> Result<Vec<KnownId>, ExecError> {
    let mut ids = Vec::new();
    for capture in &step.captures {
        let value = json
            .pointer(&capture.pointer)
            .and_then(scalar_to_string)
            .ok_or_else(|| ExecError::MissingCapture {
                step: number,
                description: step.description.clone(),
                name: capture.name.clone(),
                pointer: capture.pointer.clone(),
            })?;
        if let Some(key) = &capture.store_as {
            ids.push(KnownId {
                key: key.clone(),
                hubspot_id: value.clone(),
            });
        }
        progress.captured.insert(capture.name.clone(), value);
    }
    Ok(ids)
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

/// Replaces every `{{name}}` in `text` with its captured value.
fn fill(
    text: &str,
    captured: &BTreeMap<String, String>,
) -> Result<String, String /* unknown name */> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let name = &rest[start + 2..start + 2 + len];
        let value = captured.get(name).ok_or_else(|| name.to_owned())?;
        out.push_str(&rest[..start]);
        out.push_str(value);
        rest = &rest[start + 2 + len + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

pub(crate) fn substitute_path(
    step: &Step,
    number: usize,
    captured: &BTreeMap<String, String>,
) -> Result<String, ExecError> {
    let unknown = |name| ExecError::UnknownReference {
        step: number,
        description: step.description.clone(),
        name,
    };
    let mut path = fill(&step.path, captured).map_err(unknown)?;
    if !step.query.is_empty() {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (key, value) in &step.query {
            query.append_pair(key, &fill(value, captured).map_err(unknown)?);
        }
        path.push('?');
        path.push_str(&query.finish());
    }
    Ok(path)
}

/// Fills references inside JSON string values only, so a captured value can never break the JSON.
pub(crate) fn substitute_body(
    step: &Step,
    number: usize,
    captured: &BTreeMap<String, String>,
) -> Result<Option<Bytes>, ExecError> {
    let Some(body) = &step.body else {
        return Ok(None);
    };
    let mut json: Value = serde_json::from_str(body).map_err(|e| ExecError::InvalidBody {
        step: number,
        description: step.description.clone(),
        reason: e.to_string(),
    })?;
    fill_strings(&mut json, captured).map_err(|name| ExecError::UnknownReference {
        step: number,
        description: step.description.clone(),
        name,
    })?;
    Ok(Some(Bytes::from(json.to_string())))
}

fn fill_strings(value: &mut Value, captured: &BTreeMap<String, String>) -> Result<(), String> {
    match value {
        Value::String(s) if s.contains("{{") => *s = fill(s, captured)?,
        Value::Array(items) => {
            for item in items {
                fill_strings(item, captured)?;
            }
        }
        Value::Object(map) => {
            for item in map.values_mut() {
                fill_strings(item, captured)?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_references_and_reports_unknown_ones() {
        let captured = BTreeMap::from([("customer".to_owned(), "42".to_owned())]);
        assert_eq!(fill("/x/{{customer}}/y", &captured).unwrap(), "/x/42/y");
        assert_eq!(fill("no refs", &captured).unwrap(), "no refs");
        assert_eq!(fill("{{nope}}", &captured).unwrap_err(), "nope");
    }

    #[test]
    fn body_references_stay_inside_json_strings() {
        let captured = BTreeMap::from([("id".to_owned(), "1\"2".to_owned())]);
        let mut json: Value = serde_json::json!({"inputs": [{"from": {"id": "{{id}}"}}]});
        fill_strings(&mut json, &captured).unwrap();
        assert_eq!(json["inputs"][0]["from"]["id"], "1\"2");
    }
}
