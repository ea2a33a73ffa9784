//! Schemas API (`/crm-object-schemas/v3/schemas`, alias `/crm/v3/schemas`): custom object
//! types with their properties and association definitions.

use std::collections::{BTreeMap, HashMap};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Emulator;
use super::builtin;
use super::clock::format_iso_millis;
use super::errors::ApiError;
use super::properties::admit_definitions;
use super::state::{
    COMPANIES_TYPE_ID, CONTACTS_TYPE_ID, CustomSchema, ObjectKind, ObjectType, Portal,
    PropertyDefinition, PropertyGroup, record_id_base,
};
use super::validate::{DefinitionContext, PropertyInput};
use super::wire::{ApiResult, QueryParams, parse_json, reply};

/// At most this many properties of one object may be searchable in global search.
const MAX_GLOBAL_SEARCH_PROPERTIES: usize = 3;

/// Names of HubSpot-defined objects, which a custom object may not take.
const RESERVED_OBJECT_NAMES: &[&str] = &[
    "contact",
    "contacts",
    "company",
    "companies",
    "deal",
    "deals",
    "ticket",
    "tickets",
    "product",
    "products",
    "line_item",
    "line_items",
    "quote",
    "quotes",
    "invoice",
    "invoices",
    "subscription",
    "subscriptions",
    "payment",
    "payments",
    "order",
    "orders",
    "note",
    "notes",
    "task",
    "tasks",
    "call",
    "calls",
    "email",
    "emails",
    "meeting",
    "meetings",
];

pub(crate) fn routes(prefix: &str) -> Router<Emulator> {
    Router::new()
        .route(prefix, get(list_schemas).post(create_schema))
        .route(
            &format!("{prefix}/{{object_type}}"),
            get(read_schema).patch(update_schema),
        )
        .route(
            &format!("{prefix}/{{object_type}}/associations"),
            post(create_association_definition),
        )
}

#[derive(Debug, Deserialize)]
struct LabelsInput {
    singular: Option<String>,
    plural: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaInput {
    name: Option<String>,
    description: Option<String>,
    labels: Option<LabelsInput>,
    primary_display_property: Option<String>,
    secondary_display_properties: Option<Vec<String>>,
    searchable_properties: Option<Vec<String>>,
    required_properties: Option<Vec<String>>,
    properties: Option<Vec<PropertyInput>>,
    associated_objects: Option<Vec<String>>,
    allows_sensitive_properties: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SchemaPatch {
    description: Option<String>,
    labels: Option<LabelsInput>,
    primary_display_property: Option<String>,
    secondary_display_properties: Option<Vec<String>>,
    searchable_properties: Option<Vec<String>>,
    required_properties: Option<Vec<String>>,
    allows_sensitive_properties: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociationDefinitionInput {
    from_object_type_id: Option<String>,
    to_object_type_id: Option<String>,
}

/// The schema JSON of a custom object type, with its association definitions.
pub(crate) fn schema_json(
    portal: &Portal,
    object_type: &ObjectType,
    with_properties: bool,
) -> Value {
    let Some(schema) = object_type.custom_schema() else {
        return Value::Null;
    };
    let associations: Vec<Value> = portal
        .association_types
        .iter()
        .filter(|kind| kind.is_default && kind.to_type_id == object_type.type_id)
        .map(|kind| {
            json!({
                "id": kind.type_id.to_string(),
                "fromObjectTypeId": kind.from_type_id,
                "toObjectTypeId": kind.to_type_id,
                "name": kind.name,
                "cardinality": "ONE_TO_MANY",
                "inverseCardinality": "ONE_TO_MANY",
                "createdAt": format_iso_millis(schema.created_at),
                "updatedAt": format_iso_millis(schema.updated_at),
            })
        })
        .collect();
    let properties: Vec<Value> = if with_properties {
        object_type
            .properties
            .iter()
            .map(PropertyDefinition::to_json)
            .collect()
    } else {
        Vec::new()
    };
    json!({
        "id": schema.schema_id.to_string(),
        "objectTypeId": object_type.type_id,
        "fullyQualifiedName": schema.fully_qualified_name,
        "name": schema.name,
        "labels": { "singular": schema.singular_label, "plural": schema.plural_label },
        "description": schema.description,
        "primaryDisplayProperty": schema.primary_display_property,
        "secondaryDisplayProperties": schema.secondary_display_properties,
        "searchableProperties": schema.searchable_properties,
        "requiredProperties": schema.required_properties,
        "properties": properties,
        "associations": associations,
        "allowsSensitiveProperties": schema.allows_sensitive_properties,
        "metaType": "PORTAL_SPECIFIC",
        "portalId": portal.portal_id,
        "archived": false,
        "createdAt": format_iso_millis(schema.created_at),
        "updatedAt": format_iso_millis(schema.updated_at),
    })
}

/// Object names: letters, digits and underscores, starting with a letter.
fn is_valid_object_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Maps an `associatedObjects` entry ("COMPANY", "CONTACT", "0-1", "2-…") to a type id.
fn associated_type_id(portal: &Portal, raw: &str) -> Result<String, ApiError> {
    match raw.to_uppercase().as_str() {
        "CONTACT" | "CONTACTS" => Ok(CONTACTS_TYPE_ID.to_owned()),
        "COMPANY" | "COMPANIES" => Ok(COMPANIES_TYPE_ID.to_owned()),
        _ => portal
            .resolve_object_type(raw)
            .map(|index| portal.object_types[index].type_id.clone()),
    }
}

/// Names listed in a schema's display/search/required lists must be defined properties.
fn check_references(
    definitions: &[PropertyDefinition],
    list_name: &str,
    names: &[String],
) -> Result<(), ApiError> {
    let undefined: Vec<&String> = names
        .iter()
        .filter(|name| !definitions.iter().any(|property| &property.name == *name))
        .collect();
    if undefined.is_empty() {
        return Ok(());
    }
    let listed: Vec<&str> = undefined.iter().map(|name| name.as_str()).collect();
    Err(ApiError::validation(format!(
        "Properties listed in {list_name} are not defined in properties: [{}]",
        listed.join(", ")
    ))
    .with_context("propertyName", listed))
}

fn check_all_references(
    definitions: &[PropertyDefinition],
    primary: Option<&String>,
    secondary: &[String],
    searchable: &[String],
    required: &[String],
) -> Result<(), ApiError> {
    check_references(
        definitions,
        "primaryDisplayProperty",
        primary.map(std::slice::from_ref).unwrap_or_default(),
    )?;
    check_references(definitions, "secondaryDisplayProperties", secondary)?;
    check_references(definitions, "searchableProperties", searchable)?;
    check_references(definitions, "requiredProperties", required)
}

fn labels_of(labels: Option<LabelsInput>) -> Result<(String, String), ApiError> {
    let labels = labels.ok_or_else(|| ApiError::validation("Missing required field: labels"))?;
    match (labels.singular, labels.plural) {
        (Some(singular), Some(plural)) if !singular.is_empty() && !plural.is_empty() => {
            Ok((singular, plural))
        }
        _ => Err(ApiError::validation(
            "labels needs both a singular and a plural label",
        )),
    }
}

async fn list_schemas(State(emulator): State<Emulator>, query: QueryParams) -> ApiResult {
    let portal = emulator.lock();
    let with_properties = query.flag("includePropertyDefinitions").unwrap_or(true);
    let results: Vec<Value> = portal
        .object_types
        .iter()
        .filter(|object_type| object_type.custom_schema().is_some())
        .map(|object_type| schema_json(&portal, object_type, with_properties))
        .collect();
    reply(StatusCode::OK, json!({ "results": results }))
}

fn schema_index(portal: &Portal, raw: &str) -> Result<usize, ApiError> {
    portal.resolve_schema(raw).ok_or_else(|| {
        ApiError::not_found(format!("Unable to find object schema for {raw}"))
            .with_context("objectType", [raw])
    })
}

async fn read_schema(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
) -> ApiResult {
    let portal = emulator.lock();
    let index = schema_index(&portal, &object_type)?;
    reply(
        StatusCode::OK,
        schema_json(&portal, &portal.object_types[index], true),
    )
}

async fn create_schema(State(emulator): State<Emulator>, body: Bytes) -> ApiResult {
    let input: SchemaInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let now = portal.clock.tick();

    let name = input
        .name
        .filter(|name| !name.is_empty())
        .ok_or_else(|| ApiError::validation("Missing required field: name"))?;
    if !is_valid_object_name(&name) {
        return Err(ApiError::validation(format!(
            "Object name '{name}' is invalid: use letters, digits and underscores, starting with a letter"
        )));
    }
    // Standard object names would make `{objectType}` paths ambiguous.
    if portal.resolve_object_type(&name).is_ok()
        || RESERVED_OBJECT_NAMES.contains(&name.to_lowercase().as_str())
    {
        return Err(ApiError::validation(format!(
            "Object name '{name}' is reserved for a HubSpot-defined object"
        )));
    }
    if portal.resolve_schema(&name).is_some() {
        return Err(
            ApiError::conflict(format!("An object type with name {name} already exists"))
                .with_context("name", [name.as_str()]),
        );
    }
    let (singular_label, plural_label) = labels_of(input.labels)?;
    let (Some(property_inputs), Some(required), Some(associated)) = (
        input.properties,
        input.required_properties,
        input.associated_objects,
    ) else {
        return Err(ApiError::validation(
            "A schema needs name, labels, properties, requiredProperties and associatedObjects",
        ));
    };
    let associated_type_ids = associated
        .iter()
        .map(|raw| associated_type_id(&portal, raw))
        .collect::<Result<Vec<_>, _>>()?;

    let default_group = format!("{}_information", name.to_lowercase());
    let mut object_type = ObjectType {
        type_id: String::new(),
        kind: ObjectKind::Standard {
            plural: "",
            singular: "",
        },
        properties: builtin::custom_object_properties(&default_group, now),
        groups: vec![PropertyGroup {
            name: default_group.clone(),
            label: format!("{singular_label} information"),
            display_order: 0,
        }],
        records: BTreeMap::new(),
        next_record_id: record_id_base(portal.object_types.len() as u64 + 1),
        unique_index: HashMap::new(),
        merged_into: HashMap::new(),
    };
    let context = DefinitionContext::Schema {
        default_group: &default_group,
    };
    let definitions = admit_definitions(&object_type, &property_inputs, &context, now)?;
    let in_global_search = definitions
        .iter()
        .filter(|property| property.searchable_in_global_search)
        .count();
    if in_global_search > MAX_GLOBAL_SEARCH_PROPERTIES {
        return Err(ApiError::validation(format!(
            "At most {MAX_GLOBAL_SEARCH_PROPERTIES} properties can be searchableInGlobalSearch; {in_global_search} were given"
        )));
    }
    let secondary = input.secondary_display_properties.unwrap_or_default();
    let searchable = input.searchable_properties.unwrap_or_default();
    check_all_references(
        &definitions,
        input.primary_display_property.as_ref(),
        &secondary,
        &searchable,
        &required,
    )?;
    // A groupName other than the default group gets its own group, as HubSpot accepts it.
    for definition in &definitions {
        if object_type.group(&definition.group_name).is_none() {
            object_type.groups.push(PropertyGroup {
                name: definition.group_name.clone(),
                label: definition.group_name.clone(),
                display_order: object_type.groups.len() as i64,
            });
        }
    }
    object_type.properties.extend(definitions);

    let schema_id = portal.next_schema_id;
    portal.next_schema_id += 1;
    object_type.type_id = format!("2-{schema_id}");
    object_type.kind = ObjectKind::Custom(Box::new(CustomSchema {
        schema_id,
        fully_qualified_name: format!("p{}_{name}", portal.portal_id),
        name,
        singular_label,
        plural_label,
        description: input.description,
        primary_display_property: input.primary_display_property,
        secondary_display_properties: secondary,
        searchable_properties: searchable,
        required_properties: required,
        allows_sensitive_properties: input.allows_sensitive_properties.unwrap_or(false),
        created_at: now,
        updated_at: now,
    }));
    let type_id = object_type.type_id.clone();
    portal.object_types.push(object_type);
    for other in associated_type_ids {
        portal.define_custom_association(&type_id, &other);
    }
    let index = portal.object_types.len() - 1;
    reply(
        StatusCode::CREATED,
        schema_json(&portal, &portal.object_types[index], true),
    )
}

async fn update_schema(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let patch: SchemaPatch = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = schema_index(&portal, &object_type)?;
    let now = portal.clock.tick();
    let object_type = &mut portal.object_types[index];
    let ObjectKind::Custom(current) = &object_type.kind else {
        return Err(ApiError::unknown_object_type(&object_type.type_id));
    };
    let mut schema = current.clone();
    if let Some(labels) = patch.labels {
        schema.singular_label = labels.singular.unwrap_or(schema.singular_label);
        schema.plural_label = labels.plural.unwrap_or(schema.plural_label);
    }
    if patch.description.is_some() {
        schema.description = patch.description;
    }
    if patch.primary_display_property.is_some() {
        schema.primary_display_property = patch.primary_display_property;
    }
    if let Some(secondary) = patch.secondary_display_properties {
        schema.secondary_display_properties = secondary;
    }
    if let Some(searchable) = patch.searchable_properties {
        schema.searchable_properties = searchable;
    }
    if let Some(required) = patch.required_properties {
        schema.required_properties = required;
    }
    if let Some(allows) = patch.allows_sensitive_properties {
        schema.allows_sensitive_properties = allows;
    }
    check_all_references(
        &object_type.properties,
        schema.primary_display_property.as_ref(),
        &schema.secondary_display_properties,
        &schema.searchable_properties,
        &schema.required_properties,
    )?;
    schema.updated_at = now;
    object_type.kind = ObjectKind::Custom(schema);
    reply(
        StatusCode::OK,
        schema_json(&portal, &portal.object_types[index], true),
    )
}

async fn create_association_definition(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    let input: AssociationDefinitionInput = parse_json(&body)?;
    let mut portal = emulator.lock();
    let index = schema_index(&portal, &object_type)?;
    let custom_type_id = portal.object_types[index].type_id.clone();
    let (Some(from), Some(to)) = (input.from_object_type_id, input.to_object_type_id) else {
        return Err(ApiError::validation(
            "fromObjectTypeId and toObjectTypeId are required",
        ));
    };
    let from = associated_type_id(&portal, &from)?;
    let to = associated_type_id(&portal, &to)?;
    let other = match (from == custom_type_id, to == custom_type_id) {
        (true, _) => to,
        (false, true) => from,
        (false, false) => {
            return Err(ApiError::validation(format!(
                "One side of the association must be {custom_type_id}"
            )));
        }
    };
    let inbound = portal.define_custom_association(&custom_type_id, &other);
    let created_at = portal.object_types[index]
        .custom_schema()
        .map_or(0, |schema| schema.created_at);
    let kind = portal
        .association_type(inbound)
        .cloned()
        .ok_or_else(|| ApiError::validation("association definition could not be created"))?;
    reply(
        StatusCode::CREATED,
        json!({
            "id": kind.type_id.to_string(),
            "fromObjectTypeId": kind.from_type_id,
            "toObjectTypeId": kind.to_type_id,
            "name": kind.name,
            "createdAt": format_iso_millis(created_at),
            "updatedAt": format_iso_millis(created_at),
        }),
    )
}
