//! Properties API (`/crm/v3/properties/{objectType}`): definitions and property groups.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Emulator;
use super::clock::now_millis;
use super::errors::ApiError;
use super::objects::{BatchBody, batch_reply, require_inputs};
use super::state::{ObjectType, PropertyDefinition, PropertyGroup};
use super::validate::{
    DefinitionContext, MAX_UNIQUE_PROPERTIES, OptionInput, PropertyInput,
    build_property_definition, is_valid_property_name,
};
use super::wire::{ApiResult, no_content, parse_json, reply};

const MAX_PROPERTY_BATCH: usize = 100;

pub(crate) fn routes(prefix: &str) -> Router<Emulator> {
    let base = format!("{prefix}/{{object_type}}");
    Router::new()
        .route(&base, get(list_properties).post(create_property))
        .route(&format!("{base}/batch/create"), post(batch_create))
        .route(&format!("{base}/batch/read"), post(batch_read))
        .route(&format!("{base}/batch/archive"), post(batch_archive))
        .route(
            &format!("{base}/groups"),
            get(list_groups).post(create_group),
        )
        .route(&format!("{base}/groups/{{group_name}}"), get(read_group))
        .route(
            &format!("{base}/{{property_name}}"),
            get(read_property)
                .patch(update_property)
                .delete(archive_property),
        )
}

#[derive(Debug, Deserialize)]
struct NameRef {
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct GroupInput {
    name: Option<String>,
    label: Option<String>,
    display_order: Option<i64>,
}

fn property_exists(name: &str) -> ApiError {
    ApiError::conflict(format!("A property named '{name}' already exists."))
        .with_context("name", [name])
}

fn property_not_found(object_type: &ObjectType, name: &str) -> ApiError {
    ApiError::not_found(format!(
        "Property {name} does not exist on object type {}",
        object_type.type_id
    ))
    .with_context("name", [name])
}

/// Validates new definitions for one object type as a unit: any existing name is a 409,
/// groups must exist, and the object may hold at most ten unique-value properties.
pub(crate) fn admit_definitions(
    object_type: &ObjectType,
    inputs: &[PropertyInput],
    context: &DefinitionContext<'_>,
    now: i64,
) -> Result<Vec<PropertyDefinition>, ApiError> {
    for input in inputs {
        if let Some(name) = input.name.as_deref()
            && object_type.property(name).is_some()
        {
            return Err(property_exists(name));
        }
    }
    let mut accepted: Vec<PropertyDefinition> = Vec::with_capacity(inputs.len());
    for (offset, input) in inputs.iter().enumerate() {
        let position = object_type.properties.len() + offset;
        let definition = build_property_definition(input, context, position, now)?;
        if accepted.iter().any(|other| other.name == definition.name) {
            return Err(ApiError::validation(format!(
                "Property '{}' is defined more than once in the request",
                definition.name
            )));
        }
        if matches!(context, DefinitionContext::PropertiesApi)
            && object_type.group(&definition.group_name).is_none()
        {
            return Err(ApiError::validation(format!(
                "Property group {} does not exist on object type {}",
                definition.group_name, object_type.type_id
            ))
            .with_context("groupName", [definition.group_name.as_str()]));
        }
        accepted.push(definition);
    }
    let unique_total = object_type.unique_property_count()
        + accepted.iter().filter(|p| p.has_unique_value).count();
    if unique_total > MAX_UNIQUE_PROPERTIES {
        return Err(ApiError::validation(format!(
            "An object can have at most {MAX_UNIQUE_PROPERTIES} properties with hasUniqueValue; this request would make {unique_total}"
        )));
    }
    Ok(accepted)
}

async fn list_properties(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
) -> ApiResult {
    let portal = emulator.lock();
    let object_type = &portal.object_types[portal.resolve_object_type(&object_type)?];
    let results: Vec<Value> = object_type
        .properties
        .iter()
        .map(PropertyDefinition::to_json)
        .collect();
    reply(StatusCode::OK, json!({ "results": results }))
}

async fn read_property(
    State(emulator): State<Emulator>,
    Path((object_type, property_name)): Path<(String, String)>,
) -> ApiResult {
    let portal = emulator.lock();
    let object_type = &portal.object_types[portal.resolve_object_type(&object_type)?];
    let property = object_type
        .property(&property_name)
        .ok_or_else(|| property_not_found(object_type, &property_name))?;
    reply(StatusCode::OK, property.to_json())
}

async fn create_property(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: PropertyInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    let mut admitted = admit_definitions(
        object_type,
        &[input],
        &DefinitionContext::PropertiesApi,
        now,
    )?;
    let definition = admitted.remove(0);
    let body = definition.to_json();
    object_type.properties.push(definition);
    reply(StatusCode::CREATED, body)
}

async fn batch_create(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<PropertyInput> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_PROPERTY_BATCH)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    let admitted = admit_definitions(object_type, &inputs, &DefinitionContext::PropertiesApi, now)?;
    let results = admitted.iter().map(PropertyDefinition::to_json).collect();
    object_type.properties.extend(admitted);
    batch_reply(StatusCode::CREATED, results, Vec::new(), now)
}

async fn batch_read(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<NameRef> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_PROPERTY_BATCH)?;
    let portal = emulator.lock();
    let object_type = &portal.object_types[portal.resolve_object_type(&object_type)?];
    let mut results = Vec::new();
    let mut errors = Vec::new();
    for input in &inputs {
        match object_type.property(&input.name) {
            Some(property) => results.push(property.to_json()),
            None => errors.push(property_not_found(object_type, &input.name).batch_entry(None)),
        }
    }
    batch_reply(StatusCode::OK, results, errors, now_millis())
}

/// Applies a partial definition change; `name` and `hasUniqueValue` are fixed for life.
async fn update_property(
    State(emulator): State<Emulator>,
    Path((object_type, property_name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let patch: PropertyInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    let position = object_type
        .properties
        .iter()
        .position(|property| property.name == property_name)
        .ok_or_else(|| property_not_found(object_type, &property_name))?;
    let current = &object_type.properties[position];
    if current.hubspot_defined {
        return Err(ApiError::validation(format!(
            "Property {property_name} is defined by HubSpot and its definition is read-only"
        )));
    }
    if patch
        .has_unique_value
        .is_some_and(|unique| unique != current.has_unique_value)
    {
        return Err(ApiError::validation(
            "hasUniqueValue cannot be changed after a property is created",
        ));
    }
    let merged = PropertyInput {
        name: Some(current.name.clone()),
        label: patch.label.or_else(|| Some(current.label.clone())),
        property_type: patch
            .property_type
            .or_else(|| Some(current.property_type.clone())),
        field_type: patch
            .field_type
            .or_else(|| Some(current.field_type.clone())),
        group_name: patch
            .group_name
            .or_else(|| Some(current.group_name.clone())),
        description: patch
            .description
            .or_else(|| Some(current.description.clone())),
        options: patch.options.or_else(|| {
            Some(
                current
                    .options
                    .iter()
                    .map(|option| OptionInput {
                        label: Some(option.label.clone()),
                        value: Some(option.value.clone()),
                        description: Some(option.description.clone()),
                        display_order: Some(option.display_order),
                        hidden: Some(option.hidden),
                    })
                    .collect(),
            )
        }),
        display_order: patch.display_order.or(Some(current.display_order)),
        has_unique_value: Some(current.has_unique_value),
        hidden: patch.hidden.or(Some(current.hidden)),
        form_field: patch.form_field.or(Some(current.form_field)),
        searchable_in_global_search: patch
            .searchable_in_global_search
            .or(Some(current.searchable_in_global_search)),
        calculation_formula: patch
            .calculation_formula
            .or_else(|| current.calculation_formula.clone()),
    };
    let mut updated =
        build_property_definition(&merged, &DefinitionContext::PropertiesApi, position, now)?;
    if object_type.group(&updated.group_name).is_none() {
        return Err(ApiError::validation(format!(
            "Property group {} does not exist on object type {}",
            updated.group_name, object_type.type_id
        )));
    }
    updated.created_at = current.created_at;
    let body = updated.to_json();
    object_type.properties[position] = updated;
    reply(StatusCode::OK, body)
}

/// Removes a custom property and its values. Unknown names are not an error.
fn archive_named(object_type: &mut ObjectType, name: &str) -> Result<(), ApiError> {
    let Some(property) = object_type.property(name) else {
        return Ok(());
    };
    if property.hubspot_defined {
        return Err(ApiError::validation(format!(
            "Property {name} is defined by HubSpot and cannot be archived"
        )));
    }
    if object_type
        .required_properties()
        .iter()
        .any(|required| required == name)
    {
        return Err(ApiError::validation(format!(
            "Property {name} is required by the object schema and cannot be archived"
        )));
    }
    object_type
        .properties
        .retain(|property| property.name != name);
    for record in object_type.records.values_mut() {
        record.properties.remove(name);
    }
    object_type.unique_index.remove(name);
    Ok(())
}

async fn archive_property(
    State(emulator): State<Emulator>,
    Path((object_type, property_name)): Path<(String, String)>,
) -> ApiResult {
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    archive_named(&mut portal.object_types[index], &property_name)?;
    no_content()
}

async fn batch_archive(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: BatchBody<NameRef> = parse_json(&body)?;
    let inputs = require_inputs(body.inputs, MAX_PROPERTY_BATCH)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    for input in &inputs {
        archive_named(&mut portal.object_types[index], &input.name)?;
    }
    no_content()
}

async fn list_groups(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
) -> ApiResult {
    let portal = emulator.lock();
    let object_type = &portal.object_types[portal.resolve_object_type(&object_type)?];
    let results: Vec<Value> = object_type
        .groups
        .iter()
        .map(PropertyGroup::to_json)
        .collect();
    reply(StatusCode::OK, json!({ "results": results }))
}

async fn read_group(
    State(emulator): State<Emulator>,
    Path((object_type, group_name)): Path<(String, String)>,
) -> ApiResult {
    let portal = emulator.lock();
    let object_type = &portal.object_types[portal.resolve_object_type(&object_type)?];
    let group = object_type.group(&group_name).ok_or_else(|| {
        ApiError::not_found(format!("Property group {group_name} does not exist"))
    })?;
    reply(StatusCode::OK, group.to_json())
}

async fn create_group(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: GroupInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let object_type = &mut portal.object_types[index];
    let (Some(name), Some(label)) = (input.name, input.label) else {
        return Err(ApiError::validation(
            "A property group needs both name and label",
        ));
    };
    if !is_valid_property_name(&name) {
        return Err(ApiError::validation(format!(
            "Property group name '{name}' is invalid: use lower-case letters, digits and underscores, starting with a letter"
        )));
    }
    if object_type.group(&name).is_some() {
        return Err(
            ApiError::conflict(format!("A property group named '{name}' already exists."))
                .with_context("name", [name.as_str()]),
        );
    }
    let group = PropertyGroup {
        name,
        label,
        display_order: input.display_order.unwrap_or(-1),
    };
    let body = group.to_json();
    object_type.groups.push(group);
    reply(StatusCode::CREATED, body)
}
