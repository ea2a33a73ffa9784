//! Writing a customer into a portal that already holds records (hubspot-api.md §9): what to do
//! when HubSpot refuses the upsert of a company or contact for a reason that is not the
//! customer's fault. Used by the executor for single steps and by the batcher for the inputs of
//! a batch, so every mode behaves the same.
//!
//! - **The email belongs to an existing contact** (409 `Contact already exists. Existing ID: N`,
//!   or a 207 error naming it): the contact is adopted (stamped with the `lago_*` properties, its
//!   id captured) unless it already carries another `lago_customer_id` (two Lago customers may
//!   share one billing address), in which case this customer's contact is written without HubSpot's
//!   `email` (the address stays in `lago_billing_email`).
//! - **HubSpot refuses an optional standard property** (400 `INVALID_EMAIL`, an invalid phone or
//!   domain): the record is written without it. Required data (`lago_*`) still fails loudly.
//!
//! - **A company with the customer's domain exists** (`--match-companies domain`): adopted on
//!   the customer's first sync ([`match_companies`]).
//! - **A stored id went stale** (the record was deleted or merged): [`heal_ids`].
//!
//! Each recovery says what it did in a note that reaches the event's outcome.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{Map, Value, json};

use lago_hubspot_guest::lago::{Customer, hubspot_entries};
use lago_hubspot_guest::webhooks::{Envelope, Route};

use crate::config::MatchCompanies;
use crate::executor::{ExecError, Executor};
use crate::runtime::{HttpMethod, Plan, RecordKind, Step};
use crate::sync::{EventRef, Syncer};

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
    /// The upsert in a request, when the request is one (path and a body of one input).
    pub fn of_request(path: &str, body: &Value) -> Option<CustomerUpsert> {
        let object_type = path
            .strip_prefix("/crm/v3/objects/")?
            .strip_suffix("/batch/upsert")?;
        if !CUSTOMER_OBJECTS.contains(&object_type) {
            return None;
        }
        match body.get("inputs")?.as_array()?.as_slice() {
            [input] => Some(CustomerUpsert {
                object_type: object_type.to_owned(),
                input: input.clone(),
            }),
            _ => None,
        }
    }

    /// The upsert of one input of a batch.
    pub fn of_input(path: &str, input: &Value) -> Option<CustomerUpsert> {
        CustomerUpsert::of_request(path, &json!({ "inputs": [input] }))
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
/// step's captures read `/results/0/id`), and a note for the outcome.
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
    let read = step(
        HttpMethod::Get,
        &path,
        "read the contact that holds the email",
    );
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
            let patch = step(
                HttpMethod::Patch,
                &path,
                "adopt the contact that holds the email",
            );
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
    path: &str,
    body: &Value,
    error: &ExecError,
) -> Option<Result<Recovered, ExecError>> {
    if !holds_lago_customer_id(error) {
        return None;
    }
    let rest = path.strip_prefix("/crm/v3/objects/")?;
    let (object_type, target) = rest.split_once('/')?;
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
    let read = step(
        HttpMethod::Get,
        &find,
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
        let release = step(HttpMethod::Patch, &path, "release the customer's id");
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
    let update = step(HttpMethod::Patch, &path, "update the linked record");
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

/// Every recovery a refused request may have: a single-input customer upsert, or the update of
/// a linked customer record.
pub async fn recover_request(
    executor: &Executor<'_>,
    method: HttpMethod,
    path: &str,
    body: Option<&[u8]>,
    error: &ExecError,
) -> Option<Result<Recovered, ExecError>> {
    let body: Value = serde_json::from_slice(body?).ok()?;
    match method {
        HttpMethod::Post => {
            let upsert = CustomerUpsert::of_request(path, &body)?;
            recover(executor, &upsert, error).await
        }
        HttpMethod::Patch => recover_linked_update(executor, path, &body, error).await,
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
    let request = step(HttpMethod::Post, &path, "upsert again");
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

fn step(method: HttpMethod, path: &str, description: &str) -> Step {
    Step {
        description: description.to_owned(),
        method,
        path: path.to_owned(),
        query: Vec::new(),
        body: None,
        accept_statuses: Vec::new(),
        captures: Vec::new(),
    }
}

fn short(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() > 160 {
        format!("{}…", text.chars().take(160).collect::<String>())
    } else {
        text.to_owned()
    }
}

/// `--match-companies domain`: before a new company is written for a customer HubSpot has no id
/// for yet, look up the companies that already have its domain (one search per 100 domains,
/// within search's own budget of 5 requests/s); when exactly one does and it belongs to no
/// other Lago customer, the plan updates that company instead of creating one next to it. Run
/// before a plan is recorded, so a resumed plan never creates the duplicate either.
pub async fn match_companies<'p>(syncer: &Syncer, plans: impl Iterator<Item = &'p mut Plan>) {
    if syncer.settings().match_companies == MatchCompanies::None {
        return;
    }
    let code = syncer.settings().code.clone();
    // The plans whose first step would create a company for a customer not seen before.
    let mut wanted: Vec<(&'p mut Plan, String, String)> = Vec::new();
    for plan in plans {
        let Some((lago_id, domain)) = new_company(plan) else {
            continue;
        };
        let known = syncer
            .store()
            .hubspot_id(&code, RecordKind::Company, &lago_id)
            .ok()
            .flatten();
        if known.is_none() {
            wanted.push((plan, lago_id, domain));
        }
    }
    if wanted.is_empty() {
        return;
    }
    // HubSpot keeps domains without `www.`; a customer's URL often has it.
    let mut domains: Vec<String> = wanted
        .iter()
        .flat_map(|(_, _, d)| [d.clone(), format!("www.{d}")])
        .collect();
    domains.sort();
    domains.dedup();
    let holders = match companies_by_domain(&syncer.executor(), &domains).await {
        Ok(holders) => holders,
        Err(error) => {
            tracing::warn!("could not look up existing companies by domain: {error}");
            return;
        }
    };
    for (plan, lago_id, domain) in wanted {
        let Some([(id, holder)]) = holders.get(&domain).map(Vec::as_slice) else {
            continue;
        };
        if holder.as_deref().is_some_and(|other| other != lago_id) {
            continue;
        }
        // Search lags behind writes, and other plans of this run or of other workers may be
        // adopting it right now: the company must not be claimed by another customer, in the
        // store or in this process.
        let stored = syncer
            .store()
            .lago_id_for(&code, RecordKind::Company, id)
            .ok()
            .flatten();
        let portal = syncer.client().base_url();
        if stored.is_some_and(|other| other != lago_id) || !claim_company(portal, id, &lago_id) {
            continue;
        }
        let step = &mut plan.steps[0];
        let body: Value = step
            .body
            .as_deref()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or_default();
        let properties = body["inputs"][0]["properties"].clone();
        step.method = HttpMethod::Patch;
        step.path = format!("/crm/v3/objects/companies/{id}");
        step.body = Some(json!({ "properties": properties }).to_string());
        step.description =
            format!("adopt HubSpot company {id}, which already has the domain {domain}");
        for capture in &mut step.captures {
            if capture.pointer == "/results/0/id" {
                capture.pointer = "/id".into();
            }
        }
        plan.summary = format!(
            "{} (adopting HubSpot company {id}, which has the domain {domain})",
            plan.summary
        );
    }
}

/// Claims HubSpot company `id` of the portal at `portal` (its API URL) for `lago_id` in this
/// process; false when another customer has.
fn claim_company(portal: &str, id: &str, lago_id: &str) -> bool {
    static CLAIMS: std::sync::LazyLock<std::sync::Mutex<HashMap<(String, String), String>>> =
        std::sync::LazyLock::new(Default::default);
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    let holder = claims
        .entry((portal.to_owned(), id.to_owned()))
        .or_insert_with(|| lago_id.to_owned());
    holder == lago_id
}

/// A domain as HubSpot keeps it: lower case, without `www.`.
fn bare_domain(domain: &str) -> String {
    let domain = domain.trim().to_ascii_lowercase();
    domain
        .strip_prefix("www.")
        .map(str::to_owned)
        .unwrap_or(domain)
}

/// The Lago id and domain of a plan whose first step upserts a company by `lago_customer_id`.
fn new_company(plan: &Plan) -> Option<(String, String)> {
    let step = plan.steps.first()?;
    if step.method != HttpMethod::Post || step.path != "/crm/v3/objects/companies/batch/upsert" {
        return None;
    }
    let body: Value = serde_json::from_str(step.body.as_deref()?).ok()?;
    let input = match body["inputs"].as_array()?.as_slice() {
        [input] => input.clone(),
        _ => return None,
    };
    if input["idProperty"] != "lago_customer_id" {
        return None;
    }
    let lago_id = input["id"].as_str()?.to_owned();
    let domain = bare_domain(input["properties"]["domain"].as_str()?);
    (!domain.is_empty()).then_some((lago_id, domain))
}

/// Companies holding each domain: their ids and the `lago_customer_id` they carry.
async fn companies_by_domain(
    executor: &Executor<'_>,
    domains: &[String],
) -> Result<HashMap<String, Vec<(String, Option<String>)>>, ExecError> {
    let path = "/crm/v3/objects/companies/search";
    let mut holders: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    for chunk in domains.chunks(100) {
        let mut after: Option<String> = None;
        loop {
            let mut request = json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "domain", "operator": "IN", "values": chunk}
                ]}],
                "properties": ["domain", "lago_customer_id"],
                "limit": 200,
            });
            if let Some(after) = &after {
                request["after"] = json!(after);
            }
            let search = step(HttpMethod::Post, path, "find companies by domain");
            let body = Bytes::from(request.to_string());
            let (response, _) = executor
                .send_with_retries(&search, 1, path, Some(body))
                .await?;
            if !response.is_success() {
                return Err(ExecError::rejected(1, &search.description, &response));
            }
            let json = response.json().unwrap_or(Value::Null);
            for result in json["results"].as_array().into_iter().flatten() {
                let (Some(id), Some(domain)) = (
                    result["id"].as_str(),
                    result["properties"]["domain"].as_str(),
                ) else {
                    continue;
                };
                let holder = result["properties"]["lago_customer_id"]
                    .as_str()
                    .filter(|h| !h.trim().is_empty())
                    .map(str::to_owned);
                holders
                    .entry(bare_domain(domain))
                    .or_default()
                    .push((id.to_owned(), holder));
            }
            after = json.pointer("/paging/next/after").and_then(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .or_else(|| a.as_u64().map(|n| n.to_string()))
            });
            if after.is_none() {
                break;
            }
        }
    }
    Ok(holders)
}

/// What [`heal_ids`] changed.
#[derive(Debug, Default)]
pub struct Healed {
    /// Mappings forgotten or moved, and links dropped.
    pub changed: usize,
    /// The payload without the HubSpot links to records that are gone, when it had any.
    pub payload: Option<String>,
    /// What happened, for the outcome.
    pub note: String,
}

/// Checks every HubSpot id an event used (the ids the store holds for its object, its customer
/// and the records it references, and the record its customer is linked to): an id HubSpot no
/// longer has is forgotten, one that was merged away is replaced by the merged record's id
/// (HubSpot answers a read by the old id with the new one), and a link to a record that is gone
/// is dropped.
pub async fn heal_ids(syncer: &Syncer, event: &EventRef, payload: &str) -> anyhow::Result<Healed> {
    let (connection, known) = syncer.context_for(event)?;
    let code = syncer.settings().code.clone();
    let executor = syncer.executor();
    let mut healed = Healed::default();
    let mut notes = Vec::new();
    for id in known {
        let object_type = match id.key.kind {
            RecordKind::Company => Some("companies".to_owned()),
            RecordKind::Contact => Some("contacts".to_owned()),
            RecordKind::Subscription => connection.subscriptions_object_type_id.clone(),
            RecordKind::Invoice => connection.invoices_object_type_id.clone(),
            RecordKind::CreditNote => connection.credit_notes_object_type_id.clone(),
            _ => None,
        };
        let Some(object_type) = object_type else {
            continue;
        };
        match read_id(&executor, &object_type, &id.hubspot_id).await {
            Some(Read::Gone) => {
                tracing::info!(
                    kind = ?id.key.kind, lago_id = %id.key.lago_id, hubspot_id = %id.hubspot_id,
                    "HubSpot no longer has this record; forgetting its id"
                );
                syncer
                    .store()
                    .forget_id(&code, id.key.kind, &id.key.lago_id)?;
                notes.push(format!(
                    "HubSpot record {} ({:?} {}) was deleted: written again",
                    id.hubspot_id, id.key.kind, id.key.lago_id
                ));
                healed.changed += 1;
            }
            Some(Read::Moved(current)) => {
                tracing::info!(
                    kind = ?id.key.kind, lago_id = %id.key.lago_id,
                    old = %id.hubspot_id, new = %current, "the record was merged; storing its new id"
                );
                syncer.store().put_ids(
                    &code,
                    &[crate::runtime::KnownId {
                        key: id.key.clone(),
                        hubspot_id: current,
                    }],
                )?;
                healed.changed += 1;
            }
            _ => {}
        }
    }
    // The record the customer is linked to (Lago's entry, or a link made by hand).
    let with_stored_link = syncer.linked_payload(payload)?;
    let linked = linked_records(with_stored_link.as_deref().unwrap_or(payload));
    let mut gone_links = Vec::new();
    for (object_type, id) in &linked {
        if let Some(Read::Gone) = read_id(&executor, object_type, id).await {
            gone_links.push(id.clone());
            let unlinked = syncer.store().remove_links_to(&code, id)?;
            notes.push(format!(
                "the HubSpot record {id} this customer is linked to no longer exists: {}",
                if unlinked.is_empty() {
                    "written as its own record (update or remove the link in Lago)".to_owned()
                } else {
                    "the link made with `lago-hubspot link` is removed".to_owned()
                }
            ));
        }
    }
    if !gone_links.is_empty() {
        healed.changed += gone_links.len();
        healed.payload = without_links(payload, &gone_links);
    }
    healed.note = notes.join("; ");
    Ok(healed)
}

enum Read {
    Same,
    Gone,
    Moved(String),
}

async fn read_id(executor: &Executor<'_>, object_type: &str, id: &str) -> Option<Read> {
    let path = format!("/crm/v3/objects/{object_type}/{id}");
    let read = step(HttpMethod::Get, &path, "check a HubSpot id");
    let (response, _) = executor
        .send_with_retries(&read, 1, &path, None)
        .await
        .ok()?;
    match response.status {
        404 => Some(Read::Gone),
        200..=299 => {
            let current = response
                .json()
                .and_then(|j| j["id"].as_str().map(str::to_owned));
            Some(match current {
                Some(current) if current != id => Read::Moved(current),
                _ => Read::Same,
            })
        }
        _ => None,
    }
}

/// The HubSpot records a payload's customer is linked to: `(object type, id)`.
fn linked_records(payload: &str) -> Vec<(String, String)> {
    let Some(customer) = Envelope::read(payload)
        .ok()
        .and_then(|e| e.customer().cloned())
        .and_then(|c| serde_json::from_value::<Customer>(c).ok())
    else {
        return Vec::new();
    };
    hubspot_entries(&customer)
        .filter_map(|entry| {
            let id = entry.external_customer_id.as_deref()?.trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let object_type = match entry.targeted_object.as_deref() {
                Some("contacts") => "contacts",
                _ => "companies",
            };
            Some((object_type.to_owned(), id.to_owned()))
        })
        .collect()
}

/// The payload without the customer's HubSpot links to `gone` records.
fn without_links(payload: &str, gone: &[String]) -> Option<String> {
    let Route::Push { object, .. } = Envelope::read(payload).ok()?.route else {
        return None;
    };
    let mut body: Value = serde_json::from_str(payload).ok()?;
    let customer = if object == "/customer" {
        body.pointer_mut(object)?
    } else {
        body.pointer_mut(&format!("{object}/customer"))?
    };
    let entries = customer.get_mut("integration_customers")?.as_array_mut()?;
    entries.retain(|entry| {
        let id = entry["external_customer_id"]
            .as_str()
            .map(|i| i.trim().to_owned())
            .or_else(|| {
                entry["external_customer_id"]
                    .as_u64()
                    .map(|n| n.to_string())
            });
        !id.is_some_and(|id| gone.contains(&id))
    });
    Some(body.to_string())
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
    fn only_single_customer_upserts_are_recovered() {
        let body =
            json!({"inputs": [{"idProperty": "lago_customer_id", "id": "c", "properties": {}}]});
        assert!(
            CustomerUpsert::of_request("/crm/v3/objects/contacts/batch/upsert", &body).is_some()
        );
        assert!(CustomerUpsert::of_request("/crm/v3/objects/2-100/batch/upsert", &body).is_none());
        let two = json!({"inputs": [{}, {}]});
        assert!(
            CustomerUpsert::of_request("/crm/v3/objects/contacts/batch/upsert", &two).is_none()
        );
    }
}
