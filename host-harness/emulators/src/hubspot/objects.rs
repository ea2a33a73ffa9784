//! CRM objects API (`/crm/v3/objects/{objectType}`): single-record CRUD, listing and the
//! batch endpoints (create, read, update, upsert, archive).

use std::collections::BTreeSet;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value, json};

use super::Emulator;
use super::associations::link_records;
use super::clock::{format_iso_millis, now_millis};
use super::errors::ApiError;
use super::records::{
    PropertySelection, check_id_property, create_record, locate_record, record_json, update_record,
};
use super::state::{ObjectType, Portal};
use super::wire::{ApiResult, QueryParams, no_content, parse_json, reply};

/// HubSpot's cap for every object batch endpoint.
pub(crate) const MAX_BATCH_INPUTS: usize = 100;
const DEFAULT_PAGE_SIZE: usize = 10;
const MAX_PAGE_SIZE: usize = 100;

pub(crate) fn routes(prefix: &str) -> Router<Emulator> {
    Router::new()
        .route(
            &format!("{prefix}/{{object_type}}"),
            get(list_records).post(create_one),
        )
        .route(
            &format!("{prefix}/{{object_type}}/batch/create"),
            post(batch_create),
        )
        .route(
            &format!("{prefix}/{{object_type}}/batch/read"),
            post(batch_read),
        )
        .route(
            &format!("{prefix}/{{object_type}}/batch/update"),
            post(batch_update),
        )
        .route(
            &format!("{prefix}/{{object_type}}/batch/upsert"),
            post(batch_upsert),
        )
        .route(
            &format!("{prefix}/{{object_type}}/batch/archive"),
            post(batch_archive),
        )
        .route(
            &format!("{prefix}/{{object_type}}/search"),
            post(super::search::search),
        )
        .route(
            &format!("{prefix}/{{object_type}}/merge"),
            post(super::merge::merge),
        )
        .route(
            &format!("{prefix}/{{object_type}}/{{object_id}}"),
            get(read_one).patch(update_one).delete(archive_one),
        )
}

/// A record id as clients send it: a JSON string, or a number that HubSpot coerces.
#[derive(Debug, Clone)]
pub(crate) struct FlexibleId(pub String);

impl<'de> Deserialize<'de> for FlexibleId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(text) => Ok(Self(text)),
            Value::Number(number) => Ok(Self(number.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a string id, found {other}"
            ))),
        }
    }
}

#[derive(Debug, Deserialize)]
pub(crate) struct BatchBody<T> {
    pub inputs: Option<Vec<T>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct ObjectRef {
    pub id: FlexibleId,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationSpecInput {
    association_type_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct InlineAssociation {
    to: ObjectRef,
    #[serde(default)]
    types: Vec<AssociationSpecInput>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateInput {
    #[serde(default)]
    properties: Map<String, Value>,
    #[serde(default)]
    associations: Vec<InlineAssociation>,
    object_write_trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateInput {
    id: FlexibleId,
    id_property: Option<String>,
    #[serde(default)]
    properties: Map<String, Value>,
    object_write_trace_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PatchBody {
    #[serde(default)]
    properties: Map<String, Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BatchReadBody {
    inputs: Option<Vec<ObjectRef>>,
    properties: Option<Vec<String>>,
    id_property: Option<String>,
}

/// Checks the `inputs` list of a batch request: present and within the size cap.
pub(crate) fn require_inputs<T>(inputs: Option<Vec<T>>, max: usize) -> Result<Vec<T>, ApiError> {
    let inputs = inputs.ok_or_else(|| ApiError::validation("Missing required field: inputs"))?;
    if inputs.len() > max {
        return Err(ApiError::validation(format!(
            "Batch input of {} exceeds the limit of {max} inputs per request",
            inputs.len()
        ))
        .with_context("limit", [max.to_string()]));
    }
    Ok(inputs)
}

/// A repeated id rejects the whole batch, as HubSpot does.
fn reject_duplicate_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Result<(), ApiError> {
    let mut seen = BTreeSet::new();
    let mut duplicates = Vec::new();
    for id in ids {
        if !seen.insert(id) && !duplicates.contains(&id) {
            duplicates.push(id);
        }
    }
    if duplicates.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "Duplicate IDs found in batch input: [{}]. IDs must be unique",
        duplicates.join(", ")
    ))
    .with_context("ids", duplicates))
}

/// Multi-status is enabled only when every input carries an `objectWriteTraceId`.
fn every_input_traced<T>(inputs: &[T], trace_of: impl Fn(&T) -> Option<&str>) -> bool {
    !inputs.is_empty() && inputs.iter().all(|input| trace_of(input).is_some())
}

/// The batch response envelope. Results are returned in reverse input order on purpose:
/// HubSpot does not keep input order, and clients must match results by id or unique value.
pub(crate) fn batch_reply(
    success_status: StatusCode,
    mut results: Vec<Value>,
    errors: Vec<Value>,
    started_at: i64,
) -> ApiResult {
    results.reverse();
    let mut body = json!({
        "status": "COMPLETE",
        "results": results,
        "requestedAt": format_iso_millis(started_at),
        "startedAt": format_iso_millis(started_at),
        "completedAt": format_iso_millis(now_millis().max(started_at)),
    });
    if errors.is_empty() {
        return reply(success_status, body);
    }
    body["numErrors"] = json!(errors.len());
    body["errors"] = Value::Array(errors);
    reply(StatusCode::MULTI_STATUS, body)
}

fn missing_records_error(object_type: &ObjectType, ids: Vec<String>) -> Value {
    ApiError::not_found(format!(
        "Could not get some {} objects, they may be deleted or not exist. Check that ids are valid.",
        object_type.upper_name()
    ))
    .with_context("ids", ids)
    .batch_entry(None)
}

/// Adds the `associations` map of a record read for the requested target types.
fn attach_associations(
    portal: &Portal,
    object_type: &ObjectType,
    record_id: u64,
    targets: &[String],
    record: &mut Value,
) -> Result<(), ApiError> {
    let mut associations = Map::new();
    for target in targets {
        let target_type = &portal.object_types[portal.resolve_object_type(target)?];
        let results: Vec<Value> = portal
            .edges_from(&object_type.type_id, record_id)
            .filter(|edge| edge.to_type_id == target_type.type_id)
            .map(|edge| {
                let type_name = portal
                    .association_type(edge.association_type_id)
                    .map(|kind| kind.name.clone())
                    .unwrap_or_default();
                json!({ "id": edge.to_id.to_string(), "type": type_name })
            })
            .collect();
        if !results.is_empty() {
            associations.insert(target_type.association_key(), json!({ "results": results }));
        }
    }
    if !associations.is_empty() {
        record["associations"] = Value::Object(associations);
    }
    Ok(())
}

/// Resolves the `associations` of a create request into (to type, to id, association type).
fn plan_inline_associations(
    portal: &Portal,
    from: &ObjectType,
    associations: &[InlineAssociation],
) -> Result<Vec<(String, u64, u32)>, ApiError> {
    let mut planned = Vec::new();
    for association in associations {
        if association.types.is_empty() {
            return Err(ApiError::validation(
                "Each association needs at least one entry in types",
            ));
        }
        for spec in &association.types {
            let type_id = spec.association_type_id.unwrap_or_default();
            let kind = portal
                .association_type(type_id)
                .filter(|kind| kind.from_type_id == from.type_id)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "associationTypeId {type_id} is not a valid association type from {}",
                        from.upper_name()
                    ))
                })?;
            let target_index = portal.type_index(&kind.to_type_id).unwrap_or_default();
            let target = &portal.object_types[target_index];
            let raw_id = &association.to.id.0;
            let to_id = target.resolve_raw_id(raw_id).ok_or_else(|| {
                ApiError::validation(format!(
                    "Cannot associate to {} {raw_id}: no such record",
                    target.upper_name()
                ))
                .with_context("id", [raw_id.as_str()])
            })?;
            planned.push((kind.to_type_id.clone(), to_id, type_id));
        }
    }
    Ok(planned)
}

fn apply_inline_associations(
    portal: &mut Portal,
    from_type_id: &str,
    from_id: u64,
    planned: Vec<(String, u64, u32)>,
) -> Result<(), ApiError> {
    for (to_type_id, to_id, type_id) in planned {
        link_records(
            portal,
            from_type_id,
            from_id,
            &to_type_id,
            to_id,
            Some(type_id),
        )?;
    }
    Ok(())
}

async fn create_one(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: CreateInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let planned =
        plan_inline_associations(&portal, &portal.object_types[index], &input.associations)?;
    let id = create_record(&mut portal.object_types[index], &input.properties, now)?;
    let type_id = portal.object_types[index].type_id.clone();
    apply_inline_associations(&mut portal, &type_id, id, planned)?;
    let object_type = &portal.object_types[index];
    let record = record_json(
        object_type,
        &object_type.records[&id],
        &PropertySelection::All,
    );
    reply(StatusCode::CREATED, record)
}

async fn read_one(
    State(emulator): State<Emulator>,
    Path((object_type, object_id)): Path<(String, String)>,
    query: QueryParams,
) -> ApiResult {
    let portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let object_type = &portal.object_types[index];
    let id = locate_record(object_type, &object_id, query.get("idProperty"))?;
    let selection = PropertySelection::from_request(query.list("properties"));
    let mut record = record_json(object_type, &object_type.records[&id], &selection);
    if let Some(targets) = query.list("associations") {
        attach_associations(&portal, object_type, id, &targets, &mut record)?;
    }
    reply(StatusCode::OK, record)
}

async fn update_one(
    State(emulator): State<Emulator>,
    Path((object_type, object_id)): Path<(String, String)>,
    query: QueryParams,
    body: Bytes,
) -> ApiResult {
    let input: PatchBody = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    let id = locate_record(object_type, &object_id, query.get("idProperty"))?;
    update_record(object_type, id, &input.properties, now)?;
    let record = record_json(
        object_type,
        &object_type.records[&id],
        &PropertySelection::All,
    );
    reply(StatusCode::OK, record)
}

/// Archives one record (HubSpot's recycle bin: gone from reads, writes and associations,
/// its unique values free again). An id merged away archives the merged record. Returns
/// whether a record was archived.
pub(crate) fn archive_record(portal: &mut Portal, index: usize, raw_id: &str) -> bool {
    let object_type = &mut portal.object_types[index];
    let Some(id) = object_type.resolve_raw_id(raw_id) else {
        return false;
    };
    object_type.remove_record(id);
    let type_id = object_type.type_id.clone();
    portal.forget_record_associations(&type_id, id);
    true
}

async fn archive_one(
    State(emulator): State<Emulator>,
    Path((object_type, object_id)): Path<(String, String)>,
) -> ApiResult {
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    // Archiving an absent record is not an error (HubSpot answers 204 either way).
    archive_record(&mut portal, index, &object_id);
    no_content()
}

async fn list_records(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    query: QueryParams,
) -> ApiResult {
    let portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let object_type = &portal.object_types[index];
    let limit = query
        .number("limit")?
        .map_or(DEFAULT_PAGE_SIZE, |limit| limit as usize)
        .clamp(1, MAX_PAGE_SIZE);
    let after = query.number("after")?.unwrap_or(0);
    let selection = PropertySelection::from_request(query.list("properties"));
    let targets = query.list("associations").unwrap_or_default();
    let mut page = object_type.records.range(after..);
    let mut results = Vec::new();
    for (id, record) in page.by_ref().take(limit) {
        let mut json = record_json(object_type, record, &selection);
        attach_associations(&portal, object_type, *id, &targets, &mut json)?;
        results.push(json);
    }
    let mut body = json!({ "results": results });
    // The cursor is the id of the first record not returned.
    if let Some((next_id, _)) = page.next() {
        body["paging"] = json!({
            "next": {
                "after": next_id.to_string(),
                "link": format!("?after={next_id}"),
            }
        });
    }
    reply(StatusCode::OK, body)
}

async fn batch_create(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<CreateInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_BATCH_INPUTS)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let traced = every_input_traced(&inputs, |input| input.object_write_trace_id.as_deref());
    // Writes go to a draft so that a failing untraced batch leaves nothing behind.
    let mut draft = portal.object_types[index].clone();
    let mut created = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let outcome = plan_inline_associations(&portal, &draft, &input.associations)
            .and_then(|planned| Ok((create_record(&mut draft, &input.properties, now)?, planned)));
        match outcome {
            Ok(done) => created.push(done),
            Err(error) if traced => {
                errors.push(error.batch_entry(input.object_write_trace_id.as_deref()))
            }
            Err(error) => return Err(error),
        }
    }
    let type_id = draft.type_id.clone();
    portal.object_types[index] = draft;
    for (id, planned) in &created {
        apply_inline_associations(&mut portal, &type_id, *id, planned.clone())?;
    }
    let object_type = &portal.object_types[index];
    let results = created
        .iter()
        .map(|(id, _)| {
            record_json(
                object_type,
                &object_type.records[id],
                &PropertySelection::All,
            )
        })
        .collect();
    batch_reply(StatusCode::CREATED, results, errors, now)
}

async fn batch_read(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchReadBody = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_BATCH_INPUTS)?;
    reject_duplicate_ids(inputs.iter().map(|input| input.id.0.as_str()))?;
    let portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let object_type = &portal.object_types[index];
    let id_property = body.id_property.as_deref();
    if let Some(property) = id_property {
        check_id_property(object_type, property)?;
    }
    let selection = PropertySelection::from_request(body.properties);
    let mut results = Vec::new();
    let mut missing = Vec::new();
    for input in &inputs {
        match locate_record(object_type, &input.id.0, id_property) {
            Ok(id) => results.push(record_json(
                object_type,
                &object_type.records[&id],
                &selection,
            )),
            Err(_) => missing.push(input.id.0.clone()),
        }
    }
    let errors = if missing.is_empty() {
        Vec::new()
    } else {
        vec![missing_records_error(object_type, missing)]
    };
    batch_reply(StatusCode::OK, results, errors, now_millis())
}

async fn batch_update(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<UpdateInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_BATCH_INPUTS)?;
    reject_duplicate_ids(inputs.iter().map(|input| input.id.0.as_str()))?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let traced = every_input_traced(&inputs, |input| input.object_write_trace_id.as_deref());
    let mut draft = portal.object_types[index].clone();
    let mut updated = Vec::new();
    let mut missing = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let id = match locate_record(&draft, &input.id.0, input.id_property.as_deref()) {
            Ok(id) => id,
            // Unknown ids are reported in one OBJECT_NOT_FOUND entry of a 207.
            Err(error) if error.status == StatusCode::NOT_FOUND => {
                missing.push(input.id.0.clone());
                continue;
            }
            Err(error) if traced => {
                errors.push(error.batch_entry(input.object_write_trace_id.as_deref()));
                continue;
            }
            Err(error) => return Err(error),
        };
        match update_record(&mut draft, id, &input.properties, now) {
            Ok(()) => updated.push(id),
            Err(error) if traced => {
                errors.push(error.batch_entry(input.object_write_trace_id.as_deref()))
            }
            Err(error) => return Err(error),
        }
    }
    if !missing.is_empty() {
        errors.push(missing_records_error(&draft, missing));
    }
    portal.object_types[index] = draft;
    let object_type = &portal.object_types[index];
    let results = updated
        .iter()
        .map(|id| {
            record_json(
                object_type,
                &object_type.records[id],
                &PropertySelection::All,
            )
        })
        .collect();
    batch_reply(StatusCode::OK, results, errors, now)
}

async fn batch_upsert(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<UpdateInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_BATCH_INPUTS)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let draft = &portal.object_types[index];
    // Every input names a unique property; the record id cannot be upserted on.
    let mut keys = Vec::with_capacity(inputs.len());
    for input in &inputs {
        let Some(id_property) = input.id_property.as_deref() else {
            return Err(ApiError::validation(
                "Each batch upsert input needs an idProperty naming a unique-value property",
            ));
        };
        if id_property == "hs_object_id" {
            return Err(ApiError::validation(
                "hs_object_id cannot be used as idProperty for upserts; use a unique-value property",
            ));
        }
        check_id_property(draft, id_property)?;
        keys.push(draft.canonical_identifier(id_property, &input.id.0));
    }
    reject_duplicate_ids(keys.iter().map(String::as_str))?;
    let traced = every_input_traced(&inputs, |input| input.object_write_trace_id.as_deref());
    // All or nothing without trace ids: keep a copy to roll back to. A single input is
    // validated before anything changes, and traced batches keep what succeeded, so they
    // need no copy (copying a large portal per request made big runs quadratic).
    let backup = (!traced && inputs.len() > 1).then(|| portal.object_types[index].clone());
    let draft = &mut portal.object_types[index];
    let mut written = Vec::new();
    let mut errors = Vec::new();
    let mut failed = None;
    for (input, key) in inputs.iter().zip(&keys) {
        let id_property = input.id_property.as_deref().unwrap_or_default();
        // A match is an update (the record already holds the key, possibly as an additional
        // email a merge left it); otherwise the key is written with the new record.
        let outcome = match draft.find_by_property(id_property, key) {
            Some(id) => update_record(draft, id, &input.properties, now).map(|()| (id, false)),
            None => {
                let mut properties = input.properties.clone();
                properties.insert(id_property.to_owned(), Value::String(key.clone()));
                create_record(draft, &properties, now).map(|id| (id, true))
            }
        };
        match outcome {
            Ok(done) => written.push(done),
            Err(error) if traced => {
                errors.push(error.batch_entry(input.object_write_trace_id.as_deref()))
            }
            Err(error) => {
                failed = Some(error);
                break;
            }
        }
    }
    if let Some(error) = failed {
        if let Some(backup) = backup {
            portal.object_types[index] = backup;
        }
        return Err(error);
    }
    let object_type = &portal.object_types[index];
    let results = written
        .iter()
        .map(|(id, is_new)| {
            let mut record = record_json(
                object_type,
                &object_type.records[id],
                &PropertySelection::All,
            );
            record["new"] = json!(is_new);
            record
        })
        .collect();
    batch_reply(StatusCode::OK, results, errors, now)
}

async fn batch_archive(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<ObjectRef> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_BATCH_INPUTS)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    for input in &inputs {
        archive_record(&mut portal, index, &input.id.0);
    }
    no_content()
}
