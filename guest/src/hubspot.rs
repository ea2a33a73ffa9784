//! The HubSpot requests plans are made of: paths and body shapes, in one place.

use crate::prelude::*;

use serde_json::{Map, Value, json};

use crate::plan::{HttpMethod, KnownId, RecordKey, RecordKind, Step, find_known};

pub const SCHEMAS_PATH: &str = "/crm-object-schemas/v3/schemas";

pub fn properties_path(object_type: &str) -> String {
    format!("/crm/v3/properties/{object_type}")
}

/// `batch/create` of property definitions; 409 means another run created them first.
pub fn create_properties(object_type: &str, definitions: Vec<Value>, description: String) -> Step {
    Step::new(
        HttpMethod::Post,
        format!("{}/batch/create", properties_path(object_type)),
        description,
    )
    .json(&json!({ "inputs": definitions }))
    .accept(409)
}

/// Create-or-update one record keyed on a unique property, capturing its HubSpot id as `{{capture}}`.
/// Upsert rather than search-then-create: search lags behind writes, so it would duplicate records.
pub fn upsert(
    object_type: &str,
    id_property: &str,
    id: &str,
    properties: Map<String, Value>,
    capture: &str,
    store_as: RecordKey,
    description: String,
) -> Step {
    Step::new(
        HttpMethod::Post,
        format!("/crm/v3/objects/{object_type}/batch/upsert"),
        description,
    )
    .json(&json!({ "inputs": [{ "idProperty": id_property, "id": id, "properties": properties }] }))
    .capture(capture, "/results/0/id", Some(store_as))
}

/// Update an existing record by its HubSpot id, capturing that id as `{{capture}}`.
pub fn update(
    object_type: &str,
    record_id: &str,
    properties: Map<String, Value>,
    capture: &str,
    store_as: RecordKey,
    description: String,
) -> Step {
    Step::new(
        HttpMethod::Patch,
        format!("/crm/v3/objects/{object_type}/{record_id}"),
        description,
    )
    .json(&json!({ "properties": properties }))
    .capture(capture, "/id", Some(store_as))
}

/// The default (unlabelled) association between two records; repeating it is harmless.
pub fn associate(
    from_type: &str,
    from_id: &str,
    to_type: &str,
    to_id: &str,
    description: String,
) -> Step {
    Step::new(
        HttpMethod::Post,
        format!("/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"),
        description,
    )
    .json(&json!({ "inputs": [{ "from": { "id": from_id }, "to": { "id": to_id } }] }))
}

/// `{{name}}`: a value captured by an earlier step of the same plan.
pub fn reference(capture: &str) -> String {
    format!("{{{{{capture}}}}}")
}

/// A record of a custom object another plan step associates with, by its Lago id.
pub struct Target<'a> {
    /// The HubSpot object type id of the record (`2-…`).
    pub object_type: &'a str,
    /// Its unique property, e.g. `lago_invoice_id`.
    pub id_property: &'a str,
    pub lago_id: &'a str,
    pub kind: RecordKind,
    /// Capture name for its id when it has to be upserted first.
    pub capture: &'a str,
    /// How summaries and step descriptions name it, e.g. `LagoInvoice ACM-0001`.
    pub noun: String,
    /// Properties that never change once Lago set them (an invoice's number, a subscription's
    /// external id), sent with the stub so a record created for the association is recognisable
    /// before its own event fills it; rewriting them is harmless.
    pub fixed: Vec<(&'static str, String)>,
}

/// Associate `from_id` (a record of `from_type`, often a `{{capture}}`) with `target`: directly
/// when the host knows the target's HubSpot id, else after an upsert of the target that carries
/// only its unique id property and its [`Target::fixed`] ones. That upsert creates a stub the
/// target's own event fills later, or finds the record already there; it writes nothing that can
/// change, so it never overwrites newer data.
pub fn associate_with(
    from_type: &str,
    from_id: &str,
    from_noun: &str,
    target: &Target<'_>,
    known: &[KnownId],
) -> Vec<Step> {
    let description = format!("associate {from_noun} with {}", target.noun);
    match find_known(known, target.kind, target.lago_id) {
        Some(id) => vec![associate(
            from_type,
            from_id,
            target.object_type,
            id,
            description,
        )],
        None => {
            let mut only_id = Map::new();
            only_id.insert(
                target.id_property.to_owned(),
                Value::String(target.lago_id.to_owned()),
            );
            for (name, value) in &target.fixed {
                only_id.insert((*name).to_owned(), Value::String(value.clone()));
            }
            vec![
                upsert(
                    target.object_type,
                    target.id_property,
                    target.lago_id,
                    only_id,
                    target.capture,
                    RecordKey::new(target.kind, target.lago_id),
                    format!("find or create {} by its id", target.noun),
                ),
                associate(
                    from_type,
                    from_id,
                    target.object_type,
                    &reference(target.capture),
                    description,
                ),
            ]
        }
    }
}
