//! Validation of property definitions (type/fieldType combinations, options, names) and of
//! property values written to records (existence, option membership, date rules, numbers,
//! booleans, contact emails). Values are normalised to the strings HubSpot stores.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::builtin;
use super::clock::{
    MILLIS_PER_DAY, format_date, format_iso_millis, format_time_of_day, parse_date,
    parse_epoch_millis, parse_iso_datetime,
};
use super::errors::{ApiError, PropertyValueError};
use super::state::{ObjectType, PropertyDefinition, PropertyOption};
use super::tlds::is_known_tld;

pub(crate) const MAX_UNIQUE_PROPERTIES: usize = 10;
pub(crate) const MAX_STRING_LENGTH: usize = 65_536;

/// `PropertyCreate` / `ObjectTypePropertyCreate` as sent by clients. Every field is optional
/// here so that missing ones produce HubSpot-style validation errors, not parse errors.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyInput {
    pub name: Option<String>,
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub property_type: Option<String>,
    pub field_type: Option<String>,
    pub group_name: Option<String>,
    pub description: Option<String>,
    pub options: Option<Vec<OptionInput>>,
    pub display_order: Option<i64>,
    pub has_unique_value: Option<bool>,
    pub hidden: Option<bool>,
    pub form_field: Option<bool>,
    pub searchable_in_global_search: Option<bool>,
    pub calculation_formula: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OptionInput {
    pub label: Option<String>,
    pub value: Option<String>,
    pub description: Option<String>,
    pub display_order: Option<i64>,
    pub hidden: Option<bool>,
}

/// Where a property definition is being created.
pub(crate) enum DefinitionContext<'a> {
    /// The properties API: `groupName`, `type` and `fieldType` are required.
    PropertiesApi,
    /// Inside a schema create: `groupName` defaults to the object's `{name}_information`
    /// group and `type`/`fieldType` default to string/text.
    Schema { default_group: &'a str },
}

/// Valid `fieldType`s for each creatable `type` (hubspot-api.md §2).
pub(crate) fn field_types_for(property_type: &str) -> Option<&'static [&'static str]> {
    Some(match property_type {
        "string" => &[
            "text",
            "textarea",
            "html",
            "phonenumber",
            "file",
            "calculation_equation",
        ],
        "number" => &["number", "calculation_equation"],
        "date" | "datetime" => &["date"],
        "bool" => &["booleancheckbox", "calculation_equation"],
        "enumeration" => &[
            "select",
            "radio",
            "checkbox",
            "booleancheckbox",
            "calculation_equation",
        ],
        "phone_number" => &["phonenumber"],
        _ => return None,
    })
}

/// Internal property names: lower-case letters, digits and underscores, starting with a letter.
pub(crate) fn is_valid_property_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Builds a definition from client input, checking everything that does not depend on the
/// target object (name clashes, group existence and the unique-property cap are the caller's).
pub(crate) fn build_property_definition(
    input: &PropertyInput,
    context: &DefinitionContext<'_>,
    position: usize,
    now: i64,
) -> Result<PropertyDefinition, ApiError> {
    let in_schema = matches!(context, DefinitionContext::Schema { .. });
    let name = input.name.clone().unwrap_or_default();
    let label_text = input.label.clone().unwrap_or_default();
    let mut missing = Vec::new();
    if name.is_empty() {
        missing.push("name");
    }
    if label_text.is_empty() {
        missing.push("label");
    }
    if !in_schema {
        if input
            .property_type
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            missing.push("type");
        }
        if input.field_type.as_deref().unwrap_or_default().is_empty() {
            missing.push("fieldType");
        }
        if input.group_name.as_deref().unwrap_or_default().is_empty() {
            missing.push("groupName");
        }
    }
    let subject = if name.is_empty() {
        "Property definition".to_owned()
    } else {
        format!("Property '{name}'")
    };
    if !missing.is_empty() {
        return Err(ApiError::validation(format!(
            "{subject} is missing required field(s): {}",
            missing.join(", ")
        ))
        .with_context("missingFields", missing));
    }
    if !is_valid_property_name(&name) {
        return Err(ApiError::validation(format!(
            "Property name '{name}' is invalid: it must start with a lower-case letter and contain only lower-case letters, digits and underscores"
        ))
        .with_context("name", [name.as_str()]));
    }
    if name.starts_with("hs_") {
        return Err(ApiError::validation(format!(
            "Property name '{name}' is invalid: the prefix 'hs_' is reserved for HubSpot-defined properties"
        )));
    }

    let property_type = input
        .property_type
        .clone()
        .unwrap_or_else(|| "string".to_owned());
    let field_type = input
        .field_type
        .clone()
        .unwrap_or_else(|| "text".to_owned());
    let Some(valid_field_types) = field_types_for(&property_type) else {
        return Err(ApiError::validation(format!(
            "{subject} has type '{property_type}', which cannot be created. Valid types: string, number, date, datetime, bool, enumeration"
        )));
    };
    if !valid_field_types.contains(&field_type.as_str()) {
        return Err(ApiError::validation(format!(
            "{subject}: fieldType '{field_type}' is not valid for type '{property_type}'. Valid field types: {}",
            valid_field_types.join(", ")
        )));
    }
    if field_type == "calculation_equation" && input.calculation_formula.is_none() {
        return Err(ApiError::validation(format!(
            "{subject}: a calculation_equation property needs a calculationFormula"
        )));
    }

    let options = build_options(input.options.as_deref().unwrap_or_default(), &subject)?;
    let options = match property_type.as_str() {
        "enumeration" if options.is_empty() => {
            return Err(ApiError::validation(format!(
                "{subject}: enumeration properties need at least one option"
            )));
        }
        "bool" if options.is_empty() => builtin::default_bool_options(),
        "enumeration" | "bool" => options,
        // Options are meaningless for other types; HubSpot drops them.
        _ => Vec::new(),
    };

    let group_name = match (input.group_name.as_deref(), context) {
        (Some(group), _) if !group.is_empty() => group.to_owned(),
        (_, DefinitionContext::Schema { default_group }) => (*default_group).to_owned(),
        _ => String::new(),
    };

    Ok(PropertyDefinition {
        name,
        label: label_text,
        property_type,
        field_type,
        group_name,
        description: input.description.clone().unwrap_or_default(),
        options,
        display_order: input.display_order.unwrap_or(position as i64),
        has_unique_value: input.has_unique_value.unwrap_or(false),
        hidden: input.hidden.unwrap_or(false),
        form_field: input.form_field.unwrap_or(false),
        hubspot_defined: false,
        read_only_value: false,
        searchable_in_global_search: input.searchable_in_global_search.unwrap_or(false),
        calculation_formula: input.calculation_formula.clone(),
        created_at: now,
        updated_at: now,
    })
}

fn build_options(inputs: &[OptionInput], subject: &str) -> Result<Vec<PropertyOption>, ApiError> {
    let mut options: Vec<PropertyOption> = Vec::with_capacity(inputs.len());
    for (position, input) in inputs.iter().enumerate() {
        let (Some(label), Some(value)) = (input.label.as_deref(), input.value.as_deref()) else {
            return Err(ApiError::validation(format!(
                "{subject}: option {position} needs both a label and a value"
            )));
        };
        if label.is_empty() || value.is_empty() {
            return Err(ApiError::validation(format!(
                "{subject}: option {position} has an empty label or value"
            )));
        }
        if options.iter().any(|option| option.value == value) {
            return Err(ApiError::validation(format!(
                "{subject}: option value '{value}' appears more than once"
            )));
        }
        options.push(PropertyOption {
            label: label.to_owned(),
            value: value.to_owned(),
            description: input.description.clone().unwrap_or_default(),
            display_order: input.display_order.unwrap_or(position as i64),
            hidden: input.hidden.unwrap_or(false),
        });
    }
    Ok(options)
}

/// Checks and normalises the `properties` of a record write. The result maps each property to
/// the string to store; an empty string means "clear the value".
pub(crate) fn normalize_property_values(
    object_type: &ObjectType,
    input: &Map<String, Value>,
    existing: Option<&BTreeMap<String, String>>,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut normalized = BTreeMap::new();
    let mut invalid = Vec::new();
    for (name, raw) in input {
        let Some(definition) = object_type.property(name) else {
            invalid.push(PropertyValueError::new(
                name,
                "PROPERTY_DOESNT_EXIST",
                format!("Property \"{name}\" does not exist"),
            ));
            continue;
        };
        let text = match raw {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            Value::Bool(flag) => flag.to_string(),
            Value::Null => String::new(),
            Value::Array(_) | Value::Object(_) => {
                invalid.push(PropertyValueError::new(
                    name,
                    "INVALID_PROPERTY_VALUE",
                    format!("{raw} is not a valid value for property \"{name}\""),
                ));
                continue;
            }
        };
        if definition.read_only_value {
            invalid.push(PropertyValueError::new(
                name,
                "READ_ONLY_VALUE",
                format!("\"{name}\" is a read only property; its value cannot be set."),
            ));
            continue;
        }
        // An empty string clears the value, whatever the property type.
        if text.is_empty() {
            normalized.insert(name.clone(), text);
            continue;
        }
        let previous = existing.and_then(|properties| properties.get(name));
        match normalize_value(object_type, definition, &text, previous.map(String::as_str)) {
            Ok(value) => {
                normalized.insert(name.clone(), value);
            }
            Err(error) => invalid.push(error),
        }
    }
    if invalid.is_empty() {
        Ok(normalized)
    } else {
        Err(ApiError::property_values(invalid))
    }
}

fn normalize_value(
    object_type: &ObjectType,
    definition: &PropertyDefinition,
    text: &str,
    previous: Option<&str>,
) -> Result<String, PropertyValueError> {
    let name = definition.name.as_str();
    if object_type.is_contacts() && name == "email" {
        let address = text.trim();
        return if is_valid_email(address) {
            Ok(address.to_lowercase())
        } else {
            Err(PropertyValueError::new(
                name,
                "INVALID_EMAIL",
                format!("Email address {text} is invalid"),
            ))
        };
    }
    match definition.property_type.as_str() {
        "number" => normalize_decimal(text.trim()).ok_or_else(|| {
            PropertyValueError::new(
                name,
                "INVALID_NUMBER",
                format!("{text} was not a valid number."),
            )
        }),
        "bool" => normalize_bool(text, definition),
        "date" => normalize_date(name, text.trim()),
        "datetime" => normalize_datetime(name, text.trim()),
        "enumeration" => normalize_enumeration(definition, text, previous),
        _ if text.chars().count() > MAX_STRING_LENGTH => Err(PropertyValueError::new(
            name,
            "INVALID_STRING_LENGTH",
            format!("Property \"{name}\" values are limited to {MAX_STRING_LENGTH} characters"),
        )),
        _ => Ok(text.to_owned()),
    }
}

/// A plain decimal (`-12.50`) or scientific notation, returned without redundant zeros the way
/// HubSpot echoes numbers back (`10.50` → `10.5`).
pub(crate) fn normalize_decimal(text: &str) -> Option<String> {
    let (negative, unsigned) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (integer, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let plain = !(integer.is_empty() && fraction.is_empty())
        && integer.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !plain {
        // Scientific notation, as produced by JSON number serialisers.
        if !unsigned.contains(['e', 'E']) {
            return None;
        }
        let value: f64 = text.parse().ok()?;
        return value.is_finite().then(|| format!("{value}"));
    }
    let integer = integer.trim_start_matches('0');
    let fraction = fraction.trim_end_matches('0');
    let integer = if integer.is_empty() { "0" } else { integer };
    let magnitude = if fraction.is_empty() {
        integer.to_owned()
    } else {
        format!("{integer}.{fraction}")
    };
    Some(if negative && magnitude != "0" {
        format!("-{magnitude}")
    } else {
        magnitude
    })
}

fn normalize_bool(
    text: &str,
    definition: &PropertyDefinition,
) -> Result<String, PropertyValueError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" => Ok("true".to_owned()),
        "false" => Ok("false".to_owned()),
        _ => Err(PropertyValueError::new(
            &definition.name,
            "INVALID_OPTION",
            format!("{text} was not one of the allowed options: [true, false]"),
        )),
    }
}

/// `date` properties take `YYYY-MM-DD` or epoch milliseconds at exactly midnight UTC.
fn normalize_date(name: &str, text: &str) -> Result<String, PropertyValueError> {
    if let Some(days) = parse_date(text) {
        return Ok(format_date(days));
    }
    if let Some(millis) = parse_epoch_millis(text) {
        if millis.rem_euclid(MILLIS_PER_DAY) != 0 {
            return Err(PropertyValueError::new(
                name,
                "INVALID_DATE",
                format!(
                    "{text} is at {} UTC, not midnight!",
                    format_time_of_day(millis)
                ),
            ));
        }
        return Ok(format_date(millis.div_euclid(MILLIS_PER_DAY)));
    }
    Err(PropertyValueError::new(
        name,
        "INVALID_DATE",
        format!("{text} is not a valid date. Use YYYY-MM-DD or epoch milliseconds at midnight UTC"),
    ))
}

/// `datetime` properties take ISO 8601 or epoch milliseconds; stored as ISO 8601 UTC.
fn normalize_datetime(name: &str, text: &str) -> Result<String, PropertyValueError> {
    let millis = parse_epoch_millis(text)
        .or_else(|| parse_iso_datetime(text))
        .or_else(|| parse_date(text).map(|days| days * MILLIS_PER_DAY));
    millis.map(format_iso_millis).ok_or_else(|| {
        PropertyValueError::new(
            name,
            "INVALID_DATETIME",
            format!("{text} is not a valid datetime. Use ISO 8601 or epoch milliseconds"),
        )
    })
}

/// Single-choice values must be one option's `value`; multi-select (`checkbox`) values are
/// `;`-separated, and a leading `;` appends to the current selection.
fn normalize_enumeration(
    definition: &PropertyDefinition,
    text: &str,
    previous: Option<&str>,
) -> Result<String, PropertyValueError> {
    let is_option = |value: &str| {
        definition
            .options
            .iter()
            .any(|option| option.value == value)
    };
    let invalid = |value: &str| {
        let allowed: Vec<&str> = definition
            .options
            .iter()
            .map(|option| option.value.as_str())
            .collect();
        PropertyValueError::new(
            &definition.name,
            "INVALID_OPTION",
            format!(
                "{value} was not one of the allowed options: [{}]",
                allowed.join(", ")
            ),
        )
    };
    if definition.field_type != "checkbox" {
        return if is_option(text) {
            Ok(text.to_owned())
        } else {
            Err(invalid(text))
        };
    }
    let mut selected: Vec<String> = match (text.starts_with(';'), previous) {
        (true, Some(previous)) => previous
            .split(';')
            .filter(|part| !part.is_empty())
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    };
    for part in text.split(';').filter(|part| !part.is_empty()) {
        if !is_option(part) {
            return Err(invalid(part));
        }
        if !selected.iter().any(|chosen| chosen == part) {
            selected.push(part.to_owned());
        }
    }
    Ok(selected.join(";"))
}

/// One plain address as HubSpot takes it: `local@domain.tld`, no spaces, no lists, and a
/// domain ending in a top-level domain on IANA's list (so `@acme.con` and the reserved
/// `@x.test`, `@x.example`, `@x.invalid`, `@localhost` are refused).
pub(crate) fn is_valid_email(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| is_known_tld(tld));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_validated_and_normalised() {
        assert_eq!(normalize_decimal("10.50").as_deref(), Some("10.5"));
        assert_eq!(normalize_decimal("-0.0").as_deref(), Some("0"));
        assert_eq!(normalize_decimal("007").as_deref(), Some("7"));
        assert_eq!(normalize_decimal(".5").as_deref(), Some("0.5"));
        assert_eq!(normalize_decimal("1e3").as_deref(), Some("1000"));
        assert_eq!(normalize_decimal("1,5"), None);
        assert_eq!(normalize_decimal("12abc"), None);
        assert_eq!(normalize_decimal("."), None);
        assert_eq!(normalize_decimal("1.2.3"), None);
    }

    #[test]
    fn emails_must_be_single_addresses() {
        assert!(is_valid_email("billing@acme.io"));
        assert!(is_valid_email("first.last+tag@sub.example.com"));
        assert!(!is_valid_email("a@x.com,b@y.com"));
        assert!(!is_valid_email("a@x.com; b@y.com"));
        assert!(!is_valid_email("no-at-sign.com"));
        assert!(!is_valid_email("a@localhost"));
        assert!(!is_valid_email("a b@x.com"));
    }

    #[test]
    fn email_domains_must_end_in_a_delegated_tld() {
        for valid in [
            "kenji.tanaka@example.jp",
            "billing-cus_ind@example.com",
            "a@Sub.Example.COM",
            "x@acme.io",
            "x@acme.xn--p1ai",
        ] {
            assert!(is_valid_email(valid), "{valid}");
        }
        for invalid in [
            "x@acme.con",
            "x@example.invalidtld",
            "x@acme.test",
            "x@acme.example",
            "x@acme.invalid",
            "x@host.localhost",
            "x@acme.c0m",
        ] {
            assert!(!is_valid_email(invalid), "{invalid}");
        }
    }

    #[test]
    fn property_names() {
        assert!(is_valid_property_name("lago_customer_id"));
        assert!(!is_valid_property_name("Lago_customer_id"));
        assert!(!is_valid_property_name("1abc"));
        assert!(!is_valid_property_name("with-dash"));
    }
}
