//! Record writes and reads on one object type: value validation, required and unique
//! properties, contact email conflicts, system properties and the JSON record shape.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::clock::format_iso_millis;
use super::errors::{ApiError, PropertyValueError};
use super::state::{ObjectType, StoredRecord};
use super::validate::normalize_property_values;

/// Which properties a record reply carries.
#[derive(Debug, Clone)]
pub(crate) enum PropertySelection {
    /// Everything that has a value (replies to writes).
    All,
    /// The object's default read properties (a read that names none).
    Defaults,
    /// The named properties plus the system ones; unset ones come back as `null`.
    Named(Vec<String>),
}

impl PropertySelection {
    pub(crate) fn from_request(names: Option<Vec<String>>) -> Self {
        match names {
            Some(names) if !names.is_empty() => Self::Named(names),
            _ => Self::Defaults,
        }
    }
}

pub(crate) fn record_json(
    object_type: &ObjectType,
    record: &StoredRecord,
    selection: &PropertySelection,
) -> Value {
    let value_of = |name: &str| {
        record
            .properties
            .get(name)
            .map_or(Value::Null, |value| json!(value))
    };
    let properties: Map<String, Value> = match selection {
        PropertySelection::All => record
            .properties
            .iter()
            .map(|(name, value)| (name.clone(), json!(value)))
            .collect(),
        PropertySelection::Defaults => object_type
            .default_read_properties()
            .into_iter()
            .filter(|name| object_type.property(name).is_some())
            .map(|name| (name.to_owned(), value_of(name)))
            .collect(),
        PropertySelection::Named(names) => {
            let system = [
                object_type.created_property(),
                "hs_lastmodifieddate",
                "hs_object_id",
            ];
            system
                .into_iter()
                .chain(names.iter().map(String::as_str))
                // HubSpot silently skips requested properties that do not exist.
                .filter(|name| object_type.property(name).is_some())
                .map(|name| (name.to_owned(), value_of(name)))
                .collect()
        }
    };
    json!({
        "id": record.id.to_string(),
        "properties": properties,
        "createdAt": format_iso_millis(record.created_at),
        "updatedAt": format_iso_millis(record.updated_at),
        "archived": false,
    })
}

/// Checks that `id_property` may identify records of this type.
pub(crate) fn check_id_property(
    object_type: &ObjectType,
    id_property: &str,
) -> Result<(), ApiError> {
    if object_type.is_identifier_property(id_property) {
        Ok(())
    } else if object_type.property(id_property).is_none() {
        Err(ApiError::validation(format!(
            "Property \"{id_property}\" does not exist on {}, so it cannot be used as idProperty",
            object_type.upper_name()
        ))
        .with_context("idProperty", [id_property]))
    } else {
        Err(ApiError::validation(format!(
            "Property {id_property} is not a unique identifier property of {} and cannot be used as idProperty",
            object_type.upper_name()
        ))
        .with_context("idProperty", [id_property]))
    }
}

/// Finds a record by record id, or by the value of `id_property` when given.
pub(crate) fn locate_record(
    object_type: &ObjectType,
    raw_id: &str,
    id_property: Option<&str>,
) -> Result<u64, ApiError> {
    let found = match id_property {
        // An id merged away still names the merged record.
        None => object_type.resolve_raw_id(raw_id),
        Some(property) => {
            check_id_property(object_type, property)?;
            object_type.find_by_property(property, raw_id)
        }
    };
    found.ok_or_else(|| ApiError::record_not_found(raw_id))
}

/// Validates and stores a new record; returns its id.
pub(crate) fn create_record(
    object_type: &mut ObjectType,
    input: &Map<String, Value>,
    now: i64,
) -> Result<u64, ApiError> {
    create_record_with_id(object_type, input, now, None)
}

/// Like [`create_record`], optionally with a chosen record id (for seeding pre-existing data).
pub(crate) fn create_record_with_id(
    object_type: &mut ObjectType,
    input: &Map<String, Value>,
    now: i64,
    chosen_id: Option<u64>,
) -> Result<u64, ApiError> {
    if let Some(id) = chosen_id
        && object_type.id_taken(id)
    {
        return Err(ApiError::conflict(format!(
            "A record with ID {id} already exists"
        )));
    }
    let values: BTreeMap<String, String> = normalize_property_values(object_type, input, None)?
        .into_iter()
        .filter(|(_, value)| !value.is_empty())
        .collect();
    check_required_properties(object_type, &values)?;
    check_unique_values(object_type, &values, None)?;
    let id = chosen_id.unwrap_or_else(|| object_type.allocate_record_id());
    let mut properties = values;
    properties.insert("hs_object_id".to_owned(), id.to_string());
    properties
        .entry(object_type.created_property().to_owned())
        .or_insert_with(|| format_iso_millis(now));
    stamp_modification(object_type, &mut properties, now);
    object_type.records.insert(
        id,
        StoredRecord {
            id,
            properties,
            created_at: now,
            updated_at: now,
        },
    );
    object_type.index_record(id);
    Ok(id)
}

/// Validates and applies a partial update; only the properties sent change, and an empty
/// string clears one. The modification time moves only when something changed.
pub(crate) fn update_record(
    object_type: &mut ObjectType,
    id: u64,
    input: &Map<String, Value>,
    now: i64,
) -> Result<(), ApiError> {
    let existing = object_type
        .records
        .get(&id)
        .ok_or_else(|| ApiError::record_not_found(&id.to_string()))?;
    let values = normalize_property_values(object_type, input, Some(&existing.properties))?;
    check_unique_values(object_type, &values, Some(id))?;
    let mut properties = existing.properties.clone();
    for (name, value) in values {
        if value.is_empty() {
            properties.remove(&name);
        } else {
            properties.insert(name, value);
        }
    }
    if properties == existing.properties {
        return Ok(());
    }
    stamp_modification(object_type, &mut properties, now);
    object_type.unindex_record(id);
    if let Some(record) = object_type.records.get_mut(&id) {
        record.properties = properties;
        record.updated_at = now;
    }
    object_type.index_record(id);
    Ok(())
}

fn stamp_modification(
    object_type: &ObjectType,
    properties: &mut BTreeMap<String, String>,
    now: i64,
) {
    let stamp = format_iso_millis(now);
    properties.insert("hs_lastmodifieddate".to_owned(), stamp.clone());
    if object_type.property("lastmodifieddate").is_some() {
        properties.insert("lastmodifieddate".to_owned(), stamp);
    }
}

/// A custom object's `requiredProperties` must all be set when a record is created.
fn check_required_properties(
    object_type: &ObjectType,
    values: &BTreeMap<String, String>,
) -> Result<(), ApiError> {
    let missing: Vec<&String> = object_type
        .required_properties()
        .iter()
        .filter(|name| !values.contains_key(*name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::validation(format!(
        "Error creating {}.  Some required properties were not set.",
        object_type.creation_name()
    ))
    .with_context("properties", missing.into_iter().cloned()))
}

/// Unique-value properties may not repeat a value held by another record; a contact email
/// held by another contact is a 409 naming the existing contact.
fn check_unique_values(
    object_type: &ObjectType,
    values: &BTreeMap<String, String>,
    own_id: Option<u64>,
) -> Result<(), ApiError> {
    let mut collisions = Vec::new();
    for (name, value) in values.iter().filter(|(_, value)| !value.is_empty()) {
        let is_contact_email = object_type.is_contacts() && name == "email";
        let unique = object_type
            .property(name)
            .is_some_and(|property| property.has_unique_value);
        if !unique && !is_contact_email {
            continue;
        }
        let Some(holder) = object_type
            .find_by_property(name, value)
            .filter(|holder| Some(*holder) != own_id)
        else {
            continue;
        };
        if is_contact_email {
            return Err(ApiError::conflict(format!(
                "Contact already exists. Existing ID: {holder}"
            ))
            .with_context("existingId", [holder.to_string()]));
        }
        collisions.push(PropertyValueError::new(
            name,
            "INVALID_UNIQUE_VALUE",
            format!("Another record already has that value for unique property {name}: {value}"),
        ));
    }
    if collisions.is_empty() {
        Ok(())
    } else {
        Err(ApiError::property_values(collisions))
    }
}
