//! Merging two contacts or two companies (`POST /crm/v3/objects/{objectType}/merge`), the way
//! HubSpot has done since its 2024 merge change (hubspot-api.md §9):
//!
//! - the merged record gets a **new id**, and both old ids keep pointing at it (reads, updates
//!   and associations by an old id reach the merged record, which answers with its new `id`);
//! - the primary record's property values win; the other record fills in what the primary
//!   lacks; `hs_merged_object_ids` lists every id merged away (`;`-separated);
//! - associations of both records move to the merged record;
//! - unique values belong to the merged record. A contact's email that lost to the primary's
//!   becomes one of its `hs_additional_emails`, and still identifies it (`?idProperty=email`,
//!   the 409 of a new contact with that email); another unique property's losing value is
//!   dropped and free again.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;

use super::Emulator;
use super::errors::ApiError;
use super::objects::FlexibleId;
use super::records::{PropertySelection, record_json};
use super::state::{
    ADDITIONAL_EMAILS, AssociationEdge, COMPANIES_TYPE_ID, CONTACTS_TYPE_ID, MERGED_OBJECT_IDS,
    Portal, StoredRecord,
};
use super::wire::{ApiResult, parse_json, reply};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct MergeBody {
    primary_object_id: Option<FlexibleId>,
    object_id_to_merge: Option<FlexibleId>,
}

pub(crate) async fn merge(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: MergeBody = parse_json(&body)?;
    let (Some(primary), Some(to_merge)) = (&body.primary_object_id, &body.object_id_to_merge)
    else {
        let missing: Vec<&str> = [
            ("primaryObjectId", body.primary_object_id.is_none()),
            ("objectIdToMerge", body.object_id_to_merge.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        return Err(ApiError::validation(format!(
            "Missing required field(s): {}",
            missing.join(", ")
        ))
        .with_context("missingFields", missing));
    };
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let id = merge_records(&mut portal, index, &primary.0, &to_merge.0)?;
    let object_type = &portal.object_types[index];
    let record = record_json(
        object_type,
        &object_type.records[&id],
        &PropertySelection::All,
    );
    reply(StatusCode::OK, record)
}

/// Merges `to_merge_raw` into `primary_raw` (ids as clients send them; ids merged away earlier
/// resolve to their merged record). Returns the merged record's new id.
pub(crate) fn merge_records(
    portal: &mut Portal,
    index: usize,
    primary_raw: &str,
    to_merge_raw: &str,
) -> Result<u64, ApiError> {
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    if object_type.type_id != CONTACTS_TYPE_ID && object_type.type_id != COMPANIES_TYPE_ID {
        return Err(ApiError::validation(format!(
            "Merging is not supported for {} objects; only contacts and companies can be merged through this API",
            object_type.upper_name()
        )));
    }
    let primary_id = object_type
        .resolve_raw_id(primary_raw)
        .ok_or_else(|| ApiError::record_not_found(primary_raw))?;
    let other_id = object_type
        .resolve_raw_id(to_merge_raw)
        .ok_or_else(|| ApiError::record_not_found(to_merge_raw))?;
    if primary_id == other_id {
        return Err(ApiError::validation(format!(
            "Cannot merge {} {primary_raw} with itself: {to_merge_raw} is already the same record",
            object_type.upper_name()
        ))
        .with_context("ids", [primary_raw, to_merge_raw]));
    }
    let primary = object_type
        .remove_record(primary_id)
        .expect("resolved ids are live");
    let other = object_type
        .remove_record(other_id)
        .expect("resolved ids are live");
    let new_id = object_type.allocate_record_id();

    // The other record fills the gaps; the primary's values win.
    let mut properties: BTreeMap<String, String> = other.properties.clone();
    properties.extend(primary.properties.clone());
    let mut merged_ids: BTreeSet<u64> = [primary_id, other_id].into();
    for record in [&primary, &other] {
        if let Some(listed) = record.properties.get(MERGED_OBJECT_IDS) {
            merged_ids.extend(listed.split(';').filter_map(|id| id.parse::<u64>().ok()));
        }
    }
    let listed: Vec<String> = merged_ids.iter().map(u64::to_string).collect();
    properties.insert(MERGED_OBJECT_IDS.to_owned(), listed.join(";"));
    properties.insert("hs_object_id".to_owned(), new_id.to_string());
    if object_type.is_contacts() {
        merge_emails(&mut properties, &primary, &other);
    }
    let stamp = super::clock::format_iso_millis(now);
    properties.insert("hs_lastmodifieddate".to_owned(), stamp.clone());
    if object_type.property("lastmodifieddate").is_some() {
        properties.insert("lastmodifieddate".to_owned(), stamp);
    }
    object_type.records.insert(
        new_id,
        StoredRecord {
            id: new_id,
            properties,
            created_at: primary.created_at,
            updated_at: now,
        },
    );
    object_type.index_record(new_id);
    object_type.merged_into.insert(primary_id, new_id);
    object_type.merged_into.insert(other_id, new_id);

    let type_id = object_type.type_id.clone();
    move_associations(portal, &type_id, [primary_id, other_id], new_id);
    Ok(new_id)
}

/// The merged contact keeps the primary's email (or the other's when the primary had none);
/// every other address of both becomes an additional email.
fn merge_emails(
    properties: &mut BTreeMap<String, String>,
    primary: &StoredRecord,
    other: &StoredRecord,
) {
    let main = properties.get("email").cloned().unwrap_or_default();
    let mut additional: Vec<String> = Vec::new();
    for record in [primary, other] {
        let emails = record.properties.get("email").into_iter().cloned().chain(
            record
                .properties
                .get(ADDITIONAL_EMAILS)
                .into_iter()
                .flat_map(|list| list.split(';').map(str::to_owned).collect::<Vec<_>>()),
        );
        for email in emails {
            if !email.is_empty() && email != main && !additional.contains(&email) {
                additional.push(email);
            }
        }
    }
    if additional.is_empty() {
        properties.remove(ADDITIONAL_EMAILS);
    } else {
        properties.insert(ADDITIONAL_EMAILS.to_owned(), additional.join(";"));
    }
}

/// Re-points every association of the old records at the merged one (both directions).
fn move_associations(portal: &mut Portal, type_id: &str, old_ids: [u64; 2], new_id: u64) {
    let touches = |edge: &AssociationEdge| {
        (edge.from_type_id == type_id && old_ids.contains(&edge.from_id))
            || (edge.to_type_id == type_id && old_ids.contains(&edge.to_id))
    };
    let moved: Vec<AssociationEdge> = portal
        .associations
        .iter()
        .filter(|edge| touches(edge))
        .cloned()
        .collect();
    portal.associations.retain(|edge| !touches(edge));
    for mut edge in moved {
        if edge.from_type_id == type_id && old_ids.contains(&edge.from_id) {
            edge.from_id = new_id;
        }
        if edge.to_type_id == type_id && old_ids.contains(&edge.to_id) {
            edge.to_id = new_id;
        }
        portal.associations.insert(edge);
    }
}
