//! The HubSpot requests plans are made of: paths and body shapes, in one place.

use serde_json::{Map, Value, json};

use crate::plan::{HttpMethod, RecordKey, Step};

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
