//! Associations v4: default (unlabeled) and labeled links between records, per-record
//! listing, pair-level batch endpoints and association type labels.
//!
//! Associations are stored in both directions. A pair of object types can only be linked
//! when an association type exists between them (contacts↔companies, and custom objects
//! with the types named in their schema's `associatedObjects`).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Emulator;
use super::clock::{format_iso_millis, now_millis};
use super::errors::ApiError;
use super::objects::{BatchBody, FlexibleId, ObjectRef, batch_reply, require_inputs};
use super::state::{AssociationEdge, Portal};
use super::wire::{ApiResult, QueryParams, no_content, parse_json, reply};

const MAX_ASSOCIATE_INPUTS: usize = 2_000;
const MAX_READ_INPUTS: usize = 1_000;
const DEFAULT_ASSOCIATION_PAGE: usize = 500;

/// Routes under a record: `/crm/v4/objects/{objectType}/{objectId}/associations/…`.
/// Parameter names match the objects routes so both can share one date-versioned prefix.
pub(crate) fn record_routes(prefix: &str) -> Router<Emulator> {
    let base = format!("{prefix}/{{object_type}}/{{object_id}}/associations");
    Router::new()
        .route(
            &format!("{base}/default/{{to_type}}/{{to_id}}"),
            put(associate_default_one),
        )
        .route(
            &format!("{base}/{{to_type}}/{{to_id}}"),
            put(associate_labeled_one).delete(remove_pair),
        )
        .route(
            &format!("{base}/{{to_type}}"),
            get(list_record_associations),
        )
}

/// Routes for a pair of object types: `/crm/v4/associations/{fromType}/{toType}/…`.
pub(crate) fn pair_routes(prefix: &str) -> Router<Emulator> {
    let base = format!("{prefix}/{{from_type}}/{{to_type}}");
    Router::new()
        .route(
            &format!("{base}/batch/associate/default"),
            post(batch_associate_default),
        )
        .route(&format!("{base}/batch/create"), post(batch_create_labeled))
        .route(&format!("{base}/batch/read"), post(batch_read))
        .route(&format!("{base}/batch/archive"), post(batch_archive))
        .route(&format!("{base}/labels"), get(list_labels))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationSpecInput {
    association_type_id: Option<u32>,
}

#[derive(Debug, Deserialize)]
struct PairInput {
    from: ObjectRef,
    to: ObjectRef,
    #[serde(default)]
    types: Vec<AssociationSpecInput>,
}

#[derive(Debug, Deserialize)]
struct ArchiveInput {
    from: ObjectRef,
    #[serde(default)]
    to: Vec<ObjectRef>,
}

/// Links two existing records with the default type in both directions, plus `labeled`
/// (a specific association type id) in the forward direction. Linking twice adds nothing.
/// Returns the (forward, reverse) default type ids.
pub(crate) fn link_records(
    portal: &mut Portal,
    from_type_id: &str,
    from_id: u64,
    to_type_id: &str,
    to_id: u64,
    labeled: Option<u32>,
) -> Result<(u32, u32), ApiError> {
    let (forward, reverse) = default_types(portal, from_type_id, to_type_id)?;
    let edge = |from_type: &str, from: u64, to_type: &str, to: u64, kind: u32| AssociationEdge {
        from_type_id: from_type.to_owned(),
        from_id: from,
        to_type_id: to_type.to_owned(),
        to_id: to,
        association_type_id: kind,
    };
    portal
        .associations
        .insert(edge(from_type_id, from_id, to_type_id, to_id, forward));
    portal
        .associations
        .insert(edge(to_type_id, to_id, from_type_id, from_id, reverse));
    if let Some(kind) = labeled {
        portal
            .associations
            .insert(edge(from_type_id, from_id, to_type_id, to_id, kind));
    }
    Ok((forward, reverse))
}

/// The default association types of a pair in both directions, or a 400 when the pair has
/// no association defined.
fn default_types(
    portal: &Portal,
    from_type_id: &str,
    to_type_id: &str,
) -> Result<(u32, u32), ApiError> {
    let forward = portal.default_association_type(from_type_id, to_type_id);
    let reverse = portal.default_association_type(to_type_id, from_type_id);
    match (forward, reverse) {
        (Some(forward), Some(reverse)) => Ok((forward.type_id, reverse.type_id)),
        _ => Err(ApiError::validation(format!(
            "No association is defined between object types {from_type_id} and {to_type_id}; a custom object can only be associated with the types in its schema's associatedObjects"
        ))
        .with_sub_category("crm.associations.INVALID_ASSOCIATION_TYPE")),
    }
}

/// Resolves a record id of the given type that must exist.
fn existing_record(portal: &Portal, type_index: usize, raw_id: &str) -> Result<u64, ApiError> {
    let object_type = &portal.object_types[type_index];
    // An id merged away names the merged record.
    object_type.resolve_raw_id(raw_id).ok_or_else(|| {
        ApiError::not_found(format!(
            "No {} with ID {raw_id} exists",
            object_type.upper_name()
        ))
        .with_context("id", [raw_id])
    })
}

fn spec_json(portal: &Portal, from_id: u64, to_id: u64, type_id: u32) -> Value {
    let category = portal
        .association_type(type_id)
        .map_or("HUBSPOT_DEFINED", |kind| kind.category);
    json!({
        "from": { "id": from_id.to_string() },
        "to": { "id": to_id.to_string() },
        "associationSpec": { "associationCategory": category, "associationTypeId": type_id },
    })
}

/// `associationTypes` of the links from one record to another.
fn association_types_json(portal: &Portal, edges: &[&AssociationEdge]) -> Vec<Value> {
    edges
        .iter()
        .filter_map(|edge| portal.association_type(edge.association_type_id))
        .map(|kind| kind.to_label_json())
        .collect()
}

/// All records of `to_type_id` linked from one record, grouped per target record.
fn grouped_links<'a>(
    portal: &'a Portal,
    from_type_id: &'a str,
    from_id: u64,
    to_type_id: &str,
) -> BTreeMap<u64, Vec<&'a AssociationEdge>> {
    let mut grouped: BTreeMap<u64, Vec<&AssociationEdge>> = BTreeMap::new();
    for edge in portal
        .edges_from(from_type_id, from_id)
        .filter(|edge| edge.to_type_id == to_type_id)
    {
        grouped.entry(edge.to_id).or_default().push(edge);
    }
    grouped
}

async fn associate_default_one(
    State(emulator): State<Emulator>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
) -> ApiResult {
    let started = now_millis();
    let mut portal = emulator.lock();
    let from_index = portal.resolve_object_type(&from_type)?;
    let to_index = portal.resolve_object_type(&to_type)?;
    let from_type_id = portal.object_types[from_index].type_id.clone();
    let to_type_id = portal.object_types[to_index].type_id.clone();
    default_types(&portal, &from_type_id, &to_type_id)?;
    let from_id = existing_record(&portal, from_index, &from_id)?;
    let to_id = existing_record(&portal, to_index, &to_id)?;
    let (forward, reverse) = link_records(
        &mut portal,
        &from_type_id,
        from_id,
        &to_type_id,
        to_id,
        None,
    )?;
    let results = vec![
        spec_json(&portal, from_id, to_id, forward),
        spec_json(&portal, to_id, from_id, reverse),
    ];
    reply(
        StatusCode::OK,
        json!({
            "status": "COMPLETE",
            "results": results,
            "startedAt": format_iso_millis(started),
            "completedAt": format_iso_millis(now_millis()),
        }),
    )
}

/// Checks the association type ids of a labeled request against the pair.
fn labeled_types(
    portal: &Portal,
    from_type_id: &str,
    to_type_id: &str,
    specs: &[AssociationSpecInput],
) -> Result<Vec<u32>, ApiError> {
    if specs.is_empty() {
        return Err(ApiError::validation(
            "At least one association type is required",
        ));
    }
    specs
        .iter()
        .map(|spec| {
            let type_id = spec.association_type_id.unwrap_or_default();
            portal
                .association_type(type_id)
                .filter(|kind| kind.from_type_id == from_type_id && kind.to_type_id == to_type_id)
                .map(|kind| kind.type_id)
                .ok_or_else(|| {
                    ApiError::validation(format!(
                        "associationTypeId {type_id} is not a valid association type from {from_type_id} to {to_type_id}"
                    ))
                })
        })
        .collect()
}

fn labeled_result(
    portal: &Portal,
    from_type_id: &str,
    from_id: u64,
    to_type_id: &str,
    to_id: u64,
) -> Value {
    let links = grouped_links(portal, from_type_id, from_id, to_type_id);
    let labels: Vec<Value> = links
        .get(&to_id)
        .into_iter()
        .flatten()
        .filter_map(|edge| portal.association_type(edge.association_type_id))
        .filter_map(|kind| kind.label.clone())
        .map(Value::String)
        .collect();
    json!({
        "fromObjectTypeId": from_type_id,
        "fromObjectId": from_id,
        "toObjectTypeId": to_type_id,
        "toObjectId": to_id,
        "labels": labels,
    })
}

async fn associate_labeled_one(
    State(emulator): State<Emulator>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult {
    let specs: Vec<AssociationSpecInput> = parse_json(&body)?;
    let mut portal = emulator.lock();
    let from_index = portal.resolve_object_type(&from_type)?;
    let to_index = portal.resolve_object_type(&to_type)?;
    let from_type_id = portal.object_types[from_index].type_id.clone();
    let to_type_id = portal.object_types[to_index].type_id.clone();
    let type_ids = labeled_types(&portal, &from_type_id, &to_type_id, &specs)?;
    let from_id = existing_record(&portal, from_index, &from_id)?;
    let to_id = existing_record(&portal, to_index, &to_id)?;
    for type_id in type_ids {
        link_records(
            &mut portal,
            &from_type_id,
            from_id,
            &to_type_id,
            to_id,
            Some(type_id),
        )?;
    }
    let result = labeled_result(&portal, &from_type_id, from_id, &to_type_id, to_id);
    reply(StatusCode::CREATED, result)
}

/// Removes every association between two records, in both directions.
fn unlink(portal: &mut Portal, from_type_id: &str, from_id: u64, to_type_id: &str, to_id: u64) {
    portal.associations.retain(|edge| {
        let forward = edge.from_type_id == from_type_id
            && edge.from_id == from_id
            && edge.to_type_id == to_type_id
            && edge.to_id == to_id;
        let backward = edge.from_type_id == to_type_id
            && edge.from_id == to_id
            && edge.to_type_id == from_type_id
            && edge.to_id == from_id;
        !(forward || backward)
    });
}

async fn remove_pair(
    State(emulator): State<Emulator>,
    Path((from_type, from_id, to_type, to_id)): Path<(String, String, String, String)>,
) -> ApiResult {
    let mut portal = emulator.lock();
    let from_index = portal.resolve_object_type(&from_type)?;
    let to_index = portal.resolve_object_type(&to_type)?;
    let from_type_id = portal.object_types[from_index].type_id.clone();
    let to_type_id = portal.object_types[to_index].type_id.clone();
    let from_id = portal.object_types[from_index].resolve_raw_id(&from_id);
    let to_id = portal.object_types[to_index].resolve_raw_id(&to_id);
    if let (Some(from_id), Some(to_id)) = (from_id, to_id) {
        unlink(&mut portal, &from_type_id, from_id, &to_type_id, to_id);
    }
    no_content()
}

async fn list_record_associations(
    State(emulator): State<Emulator>,
    Path((from_type, from_id, to_type)): Path<(String, String, String)>,
    query: QueryParams,
) -> ApiResult {
    let portal = emulator.lock();
    let from_index = portal.resolve_object_type(&from_type)?;
    let to_index = portal.resolve_object_type(&to_type)?;
    let from_id = existing_record(&portal, from_index, &from_id)?;
    let limit = query
        .number("limit")?
        .map_or(DEFAULT_ASSOCIATION_PAGE, |limit| limit as usize)
        .clamp(1, DEFAULT_ASSOCIATION_PAGE);
    let after = query.number("after")?.unwrap_or(0);
    let from_type_id = &portal.object_types[from_index].type_id;
    let to_type_id = &portal.object_types[to_index].type_id;
    let links = grouped_links(&portal, from_type_id, from_id, to_type_id);
    let mut page = links.range(after..);
    let results: Vec<Value> = page
        .by_ref()
        .take(limit)
        .map(|(to_id, edges)| {
            json!({
                "toObjectId": to_id,
                "associationTypes": association_types_json(&portal, edges),
            })
        })
        .collect();
    let mut body = json!({ "results": results });
    if let Some((next_id, _)) = page.next() {
        body["paging"] = json!({ "next": { "after": next_id.to_string() } });
    }
    reply(StatusCode::OK, body)
}

/// Resolves the path's pair of object types to (from index, to index).
fn resolve_pair(
    portal: &Portal,
    from_type: &str,
    to_type: &str,
) -> Result<(usize, usize), ApiError> {
    Ok((
        portal.resolve_object_type(from_type)?,
        portal.resolve_object_type(to_type)?,
    ))
}

/// Per-input error for a batch association naming a record that does not exist (never
/// created, archived, or of another type). Like the emulator's other 207 entries it carries
/// the input's `fromObjectId` and `toObjectId`, so a client matches it to its input; the
/// missing ids are named in the message and, as HubSpot's own association errors do, in
/// `context.objectId` / `objectType` / `INVALID_OBJECT_IDS`.
fn missing_records_entry(
    portal: &Portal,
    missing: &[(usize, &str)],
    from: &str,
    to: Option<&str>,
) -> Value {
    let described: Vec<(String, &str)> = missing
        .iter()
        .map(|(type_index, raw_id)| (portal.object_types[*type_index].upper_name(), *raw_id))
        .collect();
    let message = described
        .iter()
        .map(|(kind, raw_id)| format!("No {kind} with ID {raw_id} exists"))
        .collect::<Vec<_>>()
        .join("; ");
    let mut error = ApiError::validation(message)
        .with_sub_category("crm.associations.INVALID_OBJECT_IDS")
        .with_context("fromObjectId", [from]);
    if let Some(to) = to {
        error = error.with_context("toObjectId", [to]);
    }
    error
        .with_context("objectId", described.iter().map(|(_, raw_id)| *raw_id))
        .with_context("objectType", described.iter().map(|(kind, _)| kind.clone()))
        .with_context(
            "INVALID_OBJECT_IDS",
            described
                .iter()
                .map(|(kind, raw_id)| format!("{kind}={raw_id} is not valid")),
        )
        .batch_entry(None)
}

/// Both ends of a batch input, or the error entry naming the missing one(s).
fn pair_records(
    portal: &Portal,
    (from_index, to_index): (usize, usize),
    from: &FlexibleId,
    to: &FlexibleId,
) -> Result<(u64, u64), Value> {
    let from_id = existing_record(portal, from_index, &from.0);
    let to_id = existing_record(portal, to_index, &to.0);
    match (from_id, to_id) {
        (Ok(from_id), Ok(to_id)) => Ok((from_id, to_id)),
        (from_id, to_id) => {
            let mut missing = Vec::new();
            if from_id.is_err() {
                missing.push((from_index, from.0.as_str()));
            }
            if to_id.is_err() {
                missing.push((to_index, to.0.as_str()));
            }
            Err(missing_records_entry(
                portal,
                &missing,
                &from.0,
                Some(&to.0),
            ))
        }
    }
}

async fn batch_associate_default(
    State(emulator): State<Emulator>,
    Path((from_type, to_type)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let started = now_millis();
    let body: BatchBody<PairInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_ASSOCIATE_INPUTS)?;
    let mut portal = emulator.lock();
    let pair = resolve_pair(&portal, &from_type, &to_type)?;
    let from_type_id = portal.object_types[pair.0].type_id.clone();
    let to_type_id = portal.object_types[pair.1].type_id.clone();
    default_types(&portal, &from_type_id, &to_type_id)?;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        match pair_records(&portal, pair, &input.from.id, &input.to.id) {
            Ok((from_id, to_id)) => {
                let (forward, reverse) = link_records(
                    &mut portal,
                    &from_type_id,
                    from_id,
                    &to_type_id,
                    to_id,
                    None,
                )?;
                results.push(spec_json(&portal, from_id, to_id, forward));
                results.push(spec_json(&portal, to_id, from_id, reverse));
            }
            Err(entry) => errors.push(entry),
        }
    }
    batch_reply(StatusCode::OK, results, errors, started)
}

async fn batch_create_labeled(
    State(emulator): State<Emulator>,
    Path((from_type, to_type)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let started = now_millis();
    let body: BatchBody<PairInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_ASSOCIATE_INPUTS)?;
    let mut portal = emulator.lock();
    let pair = resolve_pair(&portal, &from_type, &to_type)?;
    let from_type_id = portal.object_types[pair.0].type_id.clone();
    let to_type_id = portal.object_types[pair.1].type_id.clone();
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let type_ids = labeled_types(&portal, &from_type_id, &to_type_id, &input.types)?;
        match pair_records(&portal, pair, &input.from.id, &input.to.id) {
            Ok((from_id, to_id)) => {
                for type_id in type_ids {
                    link_records(
                        &mut portal,
                        &from_type_id,
                        from_id,
                        &to_type_id,
                        to_id,
                        Some(type_id),
                    )?;
                }
                results.push(labeled_result(
                    &portal,
                    &from_type_id,
                    from_id,
                    &to_type_id,
                    to_id,
                ));
            }
            Err(entry) => errors.push(entry),
        }
    }
    batch_reply(StatusCode::CREATED, results, errors, started)
}

async fn batch_read(
    State(emulator): State<Emulator>,
    Path((from_type, to_type)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let started = now_millis();
    let body: BatchBody<ObjectRef> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_READ_INPUTS)?;
    let portal = emulator.lock();
    let (from_index, to_index) = resolve_pair(&portal, &from_type, &to_type)?;
    let from_type_id = &portal.object_types[from_index].type_id;
    let to_type_id = &portal.object_types[to_index].type_id;
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        let Ok(from_id) = existing_record(&portal, from_index, &input.id.0) else {
            errors.push(missing_records_entry(
                &portal,
                &[(from_index, input.id.0.as_str())],
                &input.id.0,
                None,
            ));
            continue;
        };
        let links = grouped_links(&portal, from_type_id, from_id, to_type_id);
        if links.is_empty() {
            errors.push(
                ApiError::not_found(format!(
                    "No {} is associated with {} {from_id}.",
                    portal.object_types[to_index].association_name(),
                    portal.object_types[from_index].association_name(),
                ))
                .with_sub_category("crm.associations.NO_ASSOCIATIONS_FOUND")
                .with_context("fromId", [from_id.to_string()])
                .batch_entry(None),
            );
            continue;
        }
        let targets: Vec<Value> = links
            .iter()
            .map(|(to_id, edges)| {
                json!({
                    "toObjectId": to_id,
                    "associationTypes": association_types_json(&portal, edges),
                })
            })
            .collect();
        results.push(json!({ "from": { "id": from_id.to_string() }, "to": targets }));
    }
    batch_reply(StatusCode::OK, results, errors, started)
}

async fn batch_archive(
    State(emulator): State<Emulator>,
    Path((from_type, to_type)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<ArchiveInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_ASSOCIATE_INPUTS)?;
    let mut portal = emulator.lock();
    let (from_index, to_index) = resolve_pair(&portal, &from_type, &to_type)?;
    let from_type_id = portal.object_types[from_index].type_id.clone();
    let to_type_id = portal.object_types[to_index].type_id.clone();
    for input in &inputs {
        let Some(from_id) = portal.object_types[from_index].resolve_raw_id(&input.from.id.0) else {
            continue;
        };
        for target in &input.to {
            if let Some(to_id) = portal.object_types[to_index].resolve_raw_id(&target.id.0) {
                unlink(&mut portal, &from_type_id, from_id, &to_type_id, to_id);
            }
        }
    }
    no_content()
}

async fn list_labels(
    State(emulator): State<Emulator>,
    Path((from_type, to_type)): Path<(String, String)>,
) -> ApiResult {
    let portal = emulator.lock();
    let (from_index, to_index) = resolve_pair(&portal, &from_type, &to_type)?;
    let results: Vec<Value> = portal
        .association_types_between(
            &portal.object_types[from_index].type_id,
            &portal.object_types[to_index].type_id,
        )
        .into_iter()
        .map(|kind| kind.to_label_json())
        .collect();
    reply(StatusCode::OK, json!({ "results": results }))
}
