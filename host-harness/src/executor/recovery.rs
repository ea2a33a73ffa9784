//! Writing a customer's record into a portal that already holds records (hubspot-api.md §9):
//! what to do when HubSpot refuses a write for a reason that is not the customer's fault. Used
//! by [`Executor`] for single steps and by the batcher for the inputs of a batch, so every mode
//! behaves the same.
//!
//! - **The email belongs to an existing contact** (409 `Contact already exists. Existing ID: N`,
//!   or a 207 error naming it): the contact is adopted (stamped with the `lago_*` properties, its
//!   id captured) unless it already carries another `lago_customer_id` (two Lago customers may
//!   share one billing address) or this customer already has its own contact, in which case the
//!   customer's own contact is written without HubSpot's `email` (it stays in
//!   `lago_billing_email`).
//! - **HubSpot refuses an optional standard property** (400 `INVALID_EMAIL`, an invalid phone or
//!   domain): the record is written without it. Required data (`lago_*`) still fails loudly.
//! - **A linked record cannot take the customer's id** because the record written for it before
//!   holds it: that record lets go of it ([`recover_linked_update`]).
//!
//! Each recovery says what it did in a note that reaches the event's outcome. What needs more
//! than one request (matching companies, healing stale ids) lives in [`crate::portal`].

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use super::{Call, ExecError, Executor};
use crate::runtime::{HttpMethod, Operation};

/// The standard objects a Lago customer becomes.
const CUSTOMER_OBJECTS: [&str; 2] = ["companies", "contacts"];

/// A single-input `batch/upsert` of a company or contact, as plans and batches send it.
#[derive(Debug, Clone)]
pub struct CustomerUpsert {
    /// `companies` or `contacts`.
    pub object_type: String,
    /// `{"idProperty", "id", "properties"}`.
    pub input: Value,
}

impl CustomerUpsert {
    /// The operation, when it is an `upsert` of a company or contact: its one input as the
    /// request carries it ([`super::operation`]).
    pub fn of_operation(operation: &Operation) -> Option<CustomerUpsert> {
        let Operation::Upsert(upsert) = operation else {
            return None;
        };
        if !CUSTOMER_OBJECTS.contains(&upsert.object_type.as_str()) {
            return None;
        }
        let request = super::operation::request(operation, |_| None).ok()?;
        Some(CustomerUpsert {
            object_type: upsert.object_type.clone(),
            input: request.body?.pointer("/inputs/0")?.clone(),
        })
    }

    fn properties(&self) -> Map<String, Value> {
        self.input["properties"]
            .as_object()
            .cloned()
            .unwrap_or_default()
    }

    fn lago_customer_id(&self) -> Option<&str> {
        self.input["properties"]["lago_customer_id"].as_str()
    }

    fn without(&self, names: &[String]) -> CustomerUpsert {
        let mut input = self.input.clone();
        if let Some(properties) = input["properties"].as_object_mut() {
            for name in names {
                properties.remove(name);
            }
        }
        input
            .as_object_mut()
            .map(|i| i.remove("objectWriteTraceId"));
        CustomerUpsert {
            object_type: self.object_type.clone(),
            input,
        }
    }
}

/// What a recovery sent and got: the answer as the original upsert would have given it (so the
/// step's result is at `/results/0/id`), and a note for the outcome.
#[derive(Debug, Clone)]
pub struct Recovered {
    pub json: Value,
    pub status: u16,
    pub attempts: u32,
    pub note: String,
}

/// Why HubSpot refused the upsert, read from the error the executor or the batcher made of it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Refusal {
    /// Another contact holds the email.
    ContactExists { existing_id: String },
    /// Optional properties HubSpot will not take (by name), with its words.
    InvalidOptional {
        properties: Vec<String>,
        reason: String,
    },
}

fn refusal(error: &ExecError) -> Option<Refusal> {
    let ExecError::Rejected {
        status,
        message,
        category,
        ..
    } = error
    else {
        return None;
    };
    let category = category.as_deref().unwrap_or_default();
    if *status == 409 || matches!(category, "CONFLICT" | "OBJECT_ALREADY_EXISTS") {
        let existing_id = existing_id(message)?;
        return Some(Refusal::ContactExists { existing_id });
    }
    if *status == 400 || category == "VALIDATION_ERROR" {
        let properties = refused_properties(message);
        let optional = !properties.is_empty() && properties.iter().all(|p| !p.starts_with("lago_"));
        if optional {
            return Some(Refusal::InvalidOptional {
                properties,
                reason: message.clone(),
            });
        }
    }
    None
}

/// `Contact already exists. Existing ID: 12345` (single answers and 207 errors alike).
fn existing_id(message: &str) -> Option<String> {
    let (_, rest) = message.split_once("Existing ID:")?;
    let id: String = rest
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    (!id.is_empty()).then_some(id)
}

/// The properties a validation error names: HubSpot lists them as `"name":"email"` inside its
/// message (`Property values were not valid: [{…,"name":"email"}]`).
fn refused_properties(message: &str) -> Vec<String> {
    let mut names = Vec::new();
    for marker in ["\"name\":\"", "\\\"name\\\":\\\""] {
        let mut rest = message;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// The first error of a 207 (or a 200 carrying `errors`) for a single-input request, as the
/// error a single answer would have been: 409 for a conflict, 400 for a validation refusal.
pub fn error_of_207(json: &Value, step: usize, description: &str) -> Option<ExecError> {
    let first = json.get("errors")?.as_array()?.first()?;
    let category = first.get("category").and_then(Value::as_str)?.to_owned();
    let status = match category.as_str() {
        "CONFLICT" | "OBJECT_ALREADY_EXISTS" => 409,
        "VALIDATION_ERROR" => 400,
        "OBJECT_NOT_FOUND" => 404,
        _ => return None,
    };
    let mut message = first
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("no message")
        .to_owned();
    // The existing contact may only be named in `context.existingId`.
    if let Some(id) = first.pointer("/context/existingId/0").and_then(|v| {
        v.as_str()
            .map(str::to_owned)
            .or_else(|| v.as_u64().map(|n| n.to_string()))
    }) && existing_id(&message).is_none()
    {
        message = format!("{message} Existing ID: {id}");
    }
    Some(ExecError::Rejected {
        step,
        description: description.to_owned(),
        status,
        message: format!("HTTP {status} (in a batch answer): {message}"),
        rate_limit_policy: None,
        category: Some(category),
    })
}

/// Writes `upsert` despite `error` when the refusal is one a lived-in portal explains; `None`
/// when it is not (the caller keeps the error). At most two recoveries chain (an adopted
/// contact whose phone HubSpot then refuses).
pub async fn recover(
    executor: &Executor<'_>,
    upsert: &CustomerUpsert,
    error: &ExecError,
) -> Option<Result<Recovered, ExecError>> {
    let mut notes = Vec::new();
    let mut upsert = upsert.clone();
    let mut next = refusal(error)?;
    for round in 1.. {
        let attempt = match next {
            Refusal::ContactExists { existing_id } if upsert.object_type == "contacts" => {
                adopt_contact(executor, &upsert, &existing_id, &mut notes).await
            }
            Refusal::ContactExists { .. } => return None,
            Refusal::InvalidOptional { properties, reason } => {
                notes.push(format!(
                    "HubSpot refused {} ({}); written without {}",
                    properties.join(", "),
                    short(&reason),
                    if properties.len() == 1 { "it" } else { "them" }
                ));
                upsert = upsert.without(&properties);
                send_upsert(executor, &upsert).await
            }
        };
        match attempt {
            Ok(mut recovered) => {
                recovered.note = notes.join("; ");
                return Some(Ok(recovered));
            }
            Err(error) => match refusal(&error) {
                Some(refused) if round < 3 => next = refused,
                _ => return Some(Err(error)),
            },
        }
    }
    unreachable!("the loop returns")
}

/// The contact that holds the email: adopted when it is free or already this customer's; else
/// this customer gets its own contact without `email`.
async fn adopt_contact(
    executor: &Executor<'_>,
    upsert: &CustomerUpsert,
    existing_id: &str,
    notes: &mut Vec<String>,
) -> Result<Recovered, ExecError> {
    // Two customers sharing an address may meet the same contact at once (two workers): one at
    // a time reads who holds it and stamps it, so the second sees the first's claim.
    let _one_at_a_time = adoption_lock(existing_id).lock_owned().await;
    let path = format!("/crm/v3/objects/contacts/{existing_id}?properties=lago_customer_id");
    let read = Call::new(HttpMethod::Get, "read the contact that holds the email");
    let (response, mut attempts) = executor.send_with_retries(&read, 1, &path, None).await?;
    if !response.is_success() {
        return Err(ExecError::rejected(1, &read.description, &response));
    }
    let holder = response
        .json()
        .and_then(|j| {
            j["properties"]["lago_customer_id"]
                .as_str()
                .map(str::to_owned)
        })
        .filter(|id| !id.trim().is_empty());
    match holder {
        Some(other) if Some(other.as_str()) != upsert.lago_customer_id() => {
            notes.push(format!(
                "the email belongs to HubSpot contact {existing_id} of Lago customer {other}; this customer's contact is written without HubSpot's email (it stays in lago_billing_email)"
            ));
            let mut recovered = send_upsert(executor, &upsert.without(&["email".into()])).await?;
            recovered.attempts += attempts;
            Ok(recovered)
        }
        _ => {
            let path = format!("/crm/v3/objects/contacts/{existing_id}");
            let patch = Call::new(HttpMethod::Patch, "adopt the contact that holds the email");
            let body = Bytes::from(json!({ "properties": upsert.properties() }).to_string());
            let (response, more) = executor
                .send_with_retries(&patch, 1, &path, Some(body))
                .await?;
            attempts += more;
            if !response.is_success() {
                let refused = ExecError::rejected(1, &patch.description, &response);
                // This customer already has its own contact (its email changed to one another
                // contact holds): keep that one, without HubSpot's email.
                if holds_lago_customer_id(&refused) {
                    notes.push(format!(
                        "the email belongs to HubSpot contact {existing_id}; this customer keeps its own contact, without HubSpot's email (it stays in lago_billing_email)"
                    ));
                    let mut recovered =
                        send_upsert(executor, &upsert.without(&["email".into()])).await?;
                    recovered.attempts += attempts;
                    return Ok(recovered);
                }
                return Err(refused);
            }
            // A merged contact answers with its new id.
            let id = response
                .json()
                .and_then(|j| j["id"].as_str().map(str::to_owned))
                .unwrap_or_else(|| existing_id.to_owned());
            notes.push(format!(
                "adopted HubSpot contact {id}, which already had this email"
            ));
            Ok(Recovered {
                json: json!({"status": "COMPLETE", "results": [{"id": id}]}),
                status: response.status,
                attempts,
                note: String::new(),
            })
        }
    }
}

/// HubSpot refused a write because another record holds this `lago_customer_id`.
fn holds_lago_customer_id(error: &ExecError) -> bool {
    matches!(error, ExecError::Rejected { status: 400, message, .. }
        if message.contains("lago_customer_id")
            && (message.contains("INVALID_UNIQUE_VALUE") || message.contains("already has that value")))
}

/// `PATCH /crm/v3/objects/{companies|contacts}/{id}` of a customer linked to that record
/// (Lago's `integration_customers` entry, or `lago-hubspot link`), refused because another
/// record (the customer's own, written before the link) holds its `lago_customer_id`: that
/// record lets go of it, and the linked one is written. The link is what the user asked for.
pub async fn recover_linked_update(
    executor: &Executor<'_>,
    object_type: &str,
    target: &str,
    body: &Value,
    error: &ExecError,
) -> Option<Result<Recovered, ExecError>> {
    if !holds_lago_customer_id(error) {
        return None;
    }
    if !CUSTOMER_OBJECTS.contains(&object_type) || !target.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let lago_id = body["properties"]["lago_customer_id"].as_str()?.to_owned();
    Some(release_and_update(executor, object_type, target, &lago_id, body).await)
}

async fn release_and_update(
    executor: &Executor<'_>,
    object_type: &str,
    target: &str,
    lago_id: &str,
    body: &Value,
) -> Result<Recovered, ExecError> {
    let encoded: String = form_urlencoded::byte_serialize(lago_id.as_bytes()).collect();
    let find = format!("/crm/v3/objects/{object_type}/{encoded}?idProperty=lago_customer_id");
    let read = Call::new(
        HttpMethod::Get,
        "find the record that holds the customer's id",
    );
    let (response, mut attempts) = executor.send_with_retries(&read, 1, &find, None).await?;
    let holder = response
        .json()
        .and_then(|j| j["id"].as_str().map(str::to_owned))
        .filter(|_| response.is_success());
    let mut note = String::new();
    if let Some(holder) = holder.filter(|h| h != target) {
        let path = format!("/crm/v3/objects/{object_type}/{holder}");
        let release = Call::new(HttpMethod::Patch, "release the customer's id");
        let body = Bytes::from(json!({"properties": {"lago_customer_id": ""}}).to_string());
        let (response, more) = executor
            .send_with_retries(&release, 1, &path, Some(body))
            .await?;
        attempts += more;
        if !response.is_success() {
            return Err(ExecError::rejected(1, &release.description, &response));
        }
        note = format!(
            "the customer is linked to HubSpot record {target}: record {holder}, written for it before, no longer carries its lago_customer_id"
        );
    }
    let path = format!("/crm/v3/objects/{object_type}/{target}");
    let update = Call::new(HttpMethod::Patch, "update the linked record");
    let (response, more) = executor
        .send_with_retries(&update, 1, &path, Some(Bytes::from(body.to_string())))
        .await?;
    attempts += more;
    if !response.is_success() {
        return Err(ExecError::rejected(1, &update.description, &response));
    }
    Ok(Recovered {
        json: response.json().unwrap_or(Value::Null),
        status: response.status,
        attempts,
        note,
    })
}

/// Every recovery a refused step may have, by its operation: the `upsert` of a company or
/// contact, or the `update` of a linked one. `body` is the request the step was sent as.
pub async fn recover_request(
    executor: &Executor<'_>,
    operation: &Operation,
    body: Option<&[u8]>,
    error: &ExecError,
) -> Option<Result<Recovered, ExecError>> {
    match operation {
        Operation::Upsert(_) => {
            let upsert = CustomerUpsert::of_operation(operation)?;
            recover(executor, &upsert, error).await
        }
        Operation::Update(update) => {
            let body: Value = serde_json::from_slice(body?).ok()?;
            recover_linked_update(
                executor,
                &update.object_type,
                &update.record_id,
                &body,
                error,
            )
            .await
        }
        _ => None,
    }
}

/// The lock for adopting one HubSpot contact, shared by every worker of the process.
fn adoption_lock(contact_id: &str) -> std::sync::Arc<tokio::sync::Mutex<()>> {
    static LOCKS: std::sync::LazyLock<
        std::sync::Mutex<HashMap<String, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut locks = LOCKS.lock().unwrap_or_else(|p| p.into_inner());
    // Adoptions are rare and short: drop the locks nobody holds, so the map stays small.
    locks.retain(|_, lock| std::sync::Arc::strong_count(lock) > 1);
    locks.entry(contact_id.to_owned()).or_default().clone()
}

async fn send_upsert(
    executor: &Executor<'_>,
    upsert: &CustomerUpsert,
) -> Result<Recovered, ExecError> {
    let path = format!("/crm/v3/objects/{}/batch/upsert", upsert.object_type);
    let request = Call::new(HttpMethod::Post, "upsert again");
    let body = Bytes::from(json!({ "inputs": [upsert.input] }).to_string());
    let (response, attempts) = executor
        .send_with_retries(&request, 1, &path, Some(body))
        .await?;
    if !response.is_success() {
        return Err(ExecError::rejected(1, &request.description, &response));
    }
    Ok(Recovered {
        json: response.json().unwrap_or(Value::Null),
        status: response.status,
        attempts,
        note: String::new(),
    })
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, category: &str, message: &str) -> ExecError {
        ExecError::Rejected {
            step: 1,
            description: "upsert".into(),
            status,
            message: message.into(),
            rate_limit_policy: None,
            category: Some(category.into()),
        }
    }

    #[test]
    fn refusals_a_lived_in_portal_explains() {
        assert_eq!(
            refusal(&rejected(
                409,
                "CONFLICT",
                "HTTP 409: Contact already exists. Existing ID: 4242 (correlation id x)"
            )),
            Some(Refusal::ContactExists {
                existing_id: "4242".into()
            })
        );
        let invalid = r#"HTTP 400: Property values were not valid: [{"isValid":false,"message":"Email address a@acme.con is invalid","error":"INVALID_EMAIL","name":"email"}]"#;
        assert!(matches!(
            refusal(&rejected(400, "VALIDATION_ERROR", invalid)),
            Some(Refusal::InvalidOptional { properties, .. }) if properties == ["email"]
        ));
        // Required data still fails loudly.
        let required =
            r#"Property values were not valid: [{"name":"lago_customer_id"},{"name":"email"}]"#;
        assert_eq!(refusal(&rejected(400, "VALIDATION_ERROR", required)), None);
        assert_eq!(refusal(&rejected(403, "MISSING_SCOPES", "no")), None);
    }

    #[test]
    fn only_company_and_contact_upserts_are_recovered() {
        let upsert = |object_type: &str| {
            Operation::Upsert(crate::runtime::Upsert {
                object_type: object_type.into(),
                id_property: "lago_customer_id".into(),
                id: "c".into(),
                properties: Vec::new(),
            })
        };
        let contact = CustomerUpsert::of_operation(&upsert("contacts")).unwrap();
        assert_eq!(
            (contact.object_type.as_str(), contact.input),
            (
                "contacts",
                json!({"idProperty": "lago_customer_id", "id": "c", "properties": {}})
            )
        );
        assert!(CustomerUpsert::of_operation(&upsert("2-100")).is_none());
    }
}
