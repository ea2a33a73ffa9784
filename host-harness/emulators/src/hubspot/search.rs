//! CRM search (`POST /crm/v3/objects/{objectType}/search`, hubspot-api.md §1.6): filter
//! groups (ORed) of filters (ANDed), free-text `query`, one sort, `properties`, and paging by
//! an `after` offset, with HubSpot's limits (5 groups, 6 filters per group, 18 in all, 200
//! results per page, 10,000 per query, a 3,000-character request). Archived records are never
//! returned. Unlike real HubSpot, new records are searchable at once (no indexing lag).
//!
//! Rate limiting (5 requests/s, `SECONDLY`, no rate-limit headers) is the fault layer's.

use std::cmp::Ordering;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::Emulator;
use super::clock::{MILLIS_PER_DAY, parse_date, parse_epoch_millis, parse_iso_datetime};
use super::errors::ApiError;
use super::records::{PropertySelection, record_json};
use super::state::{ObjectKind, ObjectType, PropertyDefinition, StoredRecord};
use super::validate::normalize_decimal;
use super::wire::{ApiResult, parse_json, reply};

const MAX_FILTER_GROUPS: usize = 5;
const MAX_FILTERS_PER_GROUP: usize = 6;
const MAX_FILTERS: usize = 18;
const DEFAULT_LIMIT: u64 = 10;
const MAX_LIMIT: u64 = 200;
const MAX_RESULTS_PER_QUERY: u64 = 10_000;
const MAX_REQUEST_CHARS: usize = 3_000;

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SearchBody {
    #[serde(default)]
    filter_groups: Vec<FilterGroup>,
    properties: Option<Vec<String>>,
    sorts: Option<Vec<Value>>,
    query: Option<String>,
    limit: Option<Value>,
    after: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
struct FilterGroup {
    #[serde(default)]
    filters: Vec<Filter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Filter {
    property_name: Option<String>,
    operator: Option<String>,
    value: Option<Value>,
    high_value: Option<Value>,
    values: Option<Vec<Value>>,
}

/// A filter checked against the object type, ready to test records.
struct Condition<'a> {
    definition: &'a PropertyDefinition,
    operator: Operator,
}

enum Operator {
    Eq(String),
    Neq(String),
    Less(String, bool),
    Greater(String, bool),
    Between(String, String),
    In(Vec<String>),
    NotIn(Vec<String>),
    HasProperty,
    NotHasProperty,
    ContainsToken(String),
    NotContainsToken(String),
}

struct Sort<'a> {
    definition: &'a PropertyDefinition,
    descending: bool,
}

pub(crate) async fn search(
    State(emulator): State<Emulator>,
    Path(object_type): Path<String>,
    body: Bytes,
) -> ApiResult {
    if String::from_utf8_lossy(&body).chars().count() > MAX_REQUEST_CHARS {
        return Err(ApiError::validation(format!(
            "The search request is too long: at most {MAX_REQUEST_CHARS} characters are allowed"
        )));
    }
    let body: Option<SearchBody> = parse_json(&body)?;
    let body = body.unwrap_or_default();
    let portal = emulator.lock();
    let index = portal.resolve_object_type(&object_type)?;
    let object_type = &portal.object_types[index];

    let groups = conditions(object_type, &body.filter_groups)?;
    let sort = sort(object_type, body.sorts.as_deref().unwrap_or_default())?;
    let limit = number_field("limit", body.limit.as_ref())?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::validation(format!(
            "limit must be at most {MAX_LIMIT}, got {limit}"
        ))
        .with_context("limit", [limit.to_string()]));
    }
    let after = number_field("after", body.after.as_ref())?.unwrap_or(0);
    if after.saturating_add(limit) > MAX_RESULTS_PER_QUERY {
        return Err(ApiError::validation(format!(
            "Paging past {MAX_RESULTS_PER_QUERY} results is not supported: after {after} with limit {limit}"
        )));
    }
    let terms: Vec<String> = body
        .query
        .as_deref()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let searchable = searchable_properties(object_type);

    let mut matched: Vec<&StoredRecord> = object_type
        .records
        .values()
        .filter(|record| {
            groups.is_empty()
                || groups
                    .iter()
                    .any(|group| group.iter().all(|condition| condition.matches(record)))
        })
        .filter(|record| matches_query(record, &terms, &searchable))
        .collect();
    if let Some(sort) = &sort {
        matched.sort_by(|a, b| sort.compare(a, b));
    }
    let total = matched.len();
    let selection = PropertySelection::from_request(body.properties);
    let start = usize::try_from(after).unwrap_or(usize::MAX).min(total);
    let end = start
        .saturating_add(usize::try_from(limit).unwrap_or(usize::MAX))
        .min(total);
    let results: Vec<Value> = matched[start..end]
        .iter()
        .map(|record| record_json(object_type, record, &selection))
        .collect();
    let mut reply_body = json!({ "total": total, "results": results });
    if end < total {
        reply_body["paging"] = json!({ "next": { "after": end.to_string() } });
    }
    reply(StatusCode::OK, reply_body)
}

/// `limit` / `after`: a non-negative integer, as a JSON number or a numeric string.
fn number_field(name: &str, value: Option<&Value>) -> Result<Option<u64>, ApiError> {
    let parsed = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(number)) => number.as_u64(),
        Some(Value::String(text)) => text.trim().parse().ok(),
        Some(_) => None,
    };
    parsed.map(Some).ok_or_else(|| {
        ApiError::validation(format!(
            "Invalid value {} for {name}: expected a non-negative integer",
            value.map(Value::to_string).unwrap_or_default()
        ))
    })
}

fn scalar(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn conditions<'a>(
    object_type: &'a ObjectType,
    groups: &[FilterGroup],
) -> Result<Vec<Vec<Condition<'a>>>, ApiError> {
    if groups.len() > MAX_FILTER_GROUPS {
        return Err(ApiError::validation(format!(
            "Too many filter groups: {} (at most {MAX_FILTER_GROUPS})",
            groups.len()
        )));
    }
    let total: usize = groups.iter().map(|group| group.filters.len()).sum();
    if let Some(group) = groups
        .iter()
        .find(|group| group.filters.len() > MAX_FILTERS_PER_GROUP)
    {
        return Err(ApiError::validation(format!(
            "Too many filters in a filter group: {} (at most {MAX_FILTERS_PER_GROUP})",
            group.filters.len()
        )));
    }
    if total > MAX_FILTERS {
        return Err(ApiError::validation(format!(
            "Too many filters: {total} (at most {MAX_FILTERS} across all filter groups)"
        )));
    }
    groups
        .iter()
        .map(|group| {
            group
                .filters
                .iter()
                .map(|filter| condition(object_type, filter))
                .collect()
        })
        .collect()
}

fn condition<'a>(object_type: &'a ObjectType, filter: &Filter) -> Result<Condition<'a>, ApiError> {
    let Some(name) = filter.property_name.as_deref().filter(|n| !n.is_empty()) else {
        return Err(ApiError::validation(
            "Each filter needs a propertyName and an operator",
        ));
    };
    let operator_name = filter.operator.as_deref().unwrap_or_default();
    let definition = object_type.property(name).ok_or_else(|| {
        ApiError::validation(format!(
            "Invalid filter: property \"{name}\" does not exist on {}",
            object_type.upper_name()
        ))
        .with_context("propertyName", [name])
    })?;
    let value = |field: Option<&Value>, field_name: &str| -> Result<String, ApiError> {
        field.and_then(scalar).ok_or_else(|| {
            ApiError::validation(format!(
                "Filter on {name} with operator {operator_name} needs a {field_name}"
            ))
        })
    };
    let values = || -> Result<Vec<String>, ApiError> {
        let values = filter.values.as_deref().unwrap_or_default();
        let parsed: Option<Vec<String>> = values.iter().map(scalar).collect();
        parsed.filter(|list| !list.is_empty()).ok_or_else(|| {
            ApiError::validation(format!(
                "Filter on {name} with operator {operator_name} needs a non-empty values list"
            ))
        })
    };
    let operator = match operator_name {
        "EQ" => Operator::Eq(value(filter.value.as_ref(), "value")?),
        "NEQ" => Operator::Neq(value(filter.value.as_ref(), "value")?),
        "LT" => Operator::Less(value(filter.value.as_ref(), "value")?, false),
        "LTE" => Operator::Less(value(filter.value.as_ref(), "value")?, true),
        "GT" => Operator::Greater(value(filter.value.as_ref(), "value")?, false),
        "GTE" => Operator::Greater(value(filter.value.as_ref(), "value")?, true),
        "BETWEEN" => Operator::Between(
            value(filter.value.as_ref(), "value")?,
            value(filter.high_value.as_ref(), "highValue")?,
        ),
        "IN" => Operator::In(values()?),
        "NOT_IN" => Operator::NotIn(values()?),
        "HAS_PROPERTY" => Operator::HasProperty,
        "NOT_HAS_PROPERTY" => Operator::NotHasProperty,
        "CONTAINS_TOKEN" => Operator::ContainsToken(value(filter.value.as_ref(), "value")?),
        "NOT_CONTAINS_TOKEN" => Operator::NotContainsToken(value(filter.value.as_ref(), "value")?),
        other => {
            return Err(ApiError::validation(format!(
                "Unknown filter operator {other:?}. Valid operators: EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN"
            )));
        }
    };
    Ok(Condition {
        definition,
        operator,
    })
}

/// A property value in a form that compares the way HubSpot's index does.
#[derive(Debug, PartialEq, PartialOrd)]
enum Key {
    Number(f64),
    Text(String),
}

fn key(definition: &PropertyDefinition, text: &str) -> Key {
    let millis = match definition.property_type.as_str() {
        "number" => {
            return normalize_decimal(text.trim())
                .and_then(|n| n.parse().ok())
                .map_or_else(|| Key::Text(text.to_lowercase()), Key::Number);
        }
        "date" | "datetime" => parse_epoch_millis(text.trim())
            .or_else(|| parse_iso_datetime(text.trim()))
            .or_else(|| parse_date(text.trim()).map(|days| days * MILLIS_PER_DAY)),
        _ => None,
    };
    match millis {
        Some(millis) => Key::Number(millis as f64),
        // Enumerations are case-sensitive; other text compares case-insensitively.
        None if definition.property_type == "enumeration" => Key::Text(text.to_owned()),
        None => Key::Text(text.to_lowercase()),
    }
}

impl Condition<'_> {
    fn matches(&self, record: &StoredRecord) -> bool {
        let stored = record
            .properties
            .get(&self.definition.name)
            .filter(|value| !value.is_empty());
        let definition = self.definition;
        // A multi-select value matches through any of its options.
        let candidates: Vec<&str> = match stored {
            None => Vec::new(),
            Some(value) if definition.field_type == "checkbox" => value.split(';').collect(),
            Some(value) => vec![value.as_str()],
        };
        let any = |test: &dyn Fn(Key) -> bool| candidates.iter().any(|c| test(key(definition, c)));
        match &self.operator {
            Operator::HasProperty => stored.is_some(),
            Operator::NotHasProperty => stored.is_none(),
            Operator::Eq(value) => any(&|k| k == key(definition, value)),
            Operator::Neq(value) => !any(&|k| k == key(definition, value)),
            Operator::Less(value, inclusive) => any(&|k| {
                let bound = key(definition, value);
                k < bound || (*inclusive && k == bound)
            }),
            Operator::Greater(value, inclusive) => any(&|k| {
                let bound = key(definition, value);
                k > bound || (*inclusive && k == bound)
            }),
            Operator::Between(low, high) => {
                any(&|k| k >= key(definition, low) && k <= key(definition, high))
            }
            // String IN values must be lower case (HubSpot's index is): they are not folded.
            Operator::In(values) => any(&|k| values.iter().any(|v| k == in_key(definition, v))),
            Operator::NotIn(values) => !any(&|k| values.iter().any(|v| k == in_key(definition, v))),
            Operator::ContainsToken(token) => candidates.iter().any(|c| contains_token(c, token)),
            Operator::NotContainsToken(token) => {
                !candidates.iter().any(|c| contains_token(c, token))
            }
        }
    }
}

fn in_key(definition: &PropertyDefinition, value: &str) -> Key {
    match key(definition, value) {
        Key::Text(_) if definition.property_type == "string" => Key::Text(value.to_owned()),
        other => other,
    }
}

/// `CONTAINS_TOKEN`: a word of the value equals the token (case-insensitive), or matches it
/// with `*` wildcards (`*@acme.io`).
fn contains_token(value: &str, token: &str) -> bool {
    let value = value.to_lowercase();
    let token = token.to_lowercase();
    if token.contains('*') {
        return glob(&value, &token)
            || value
                .split(|c: char| c.is_whitespace())
                .any(|word| glob(word, &token));
    }
    value == token
        || value
            .split(|c: char| !c.is_alphanumeric())
            .any(|word| word == token)
}

fn glob(text: &str, pattern: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middles @ .., last] = parts.as_slice() else {
        return text == pattern;
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    for middle in middles {
        match rest.find(middle) {
            Some(at) => rest = &rest[at + middle.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The properties the free-text `query` looks at (HubSpot's default searchable properties,
/// or a custom object's `searchableProperties`).
fn searchable_properties(object_type: &ObjectType) -> Vec<String> {
    match &object_type.kind {
        ObjectKind::Custom(schema) => schema.searchable_properties.clone(),
        ObjectKind::Standard { .. } if object_type.is_contacts() => [
            "firstname",
            "lastname",
            "email",
            "hs_additional_emails",
            "phone",
            "mobilephone",
            "company",
        ]
        .map(str::to_owned)
        .to_vec(),
        ObjectKind::Standard { .. } => ["name", "domain", "website", "phone"]
            .map(str::to_owned)
            .to_vec(),
    }
}

fn matches_query(record: &StoredRecord, terms: &[String], searchable: &[String]) -> bool {
    terms.iter().all(|term| {
        searchable.iter().any(|name| {
            record
                .properties
                .get(name)
                .is_some_and(|value| value.to_lowercase().contains(term.as_str()))
        })
    })
}

/// HubSpot takes one sort: `{"propertyName","direction"}`, or a string (`"-createdate"`
/// descending). Without one, records come in id order.
fn sort<'a>(object_type: &'a ObjectType, sorts: &[Value]) -> Result<Option<Sort<'a>>, ApiError> {
    let [sort] = sorts else {
        if sorts.is_empty() {
            return Ok(None);
        }
        return Err(ApiError::validation(format!(
            "Only one sort is supported, got {}",
            sorts.len()
        )));
    };
    let (name, descending) = match sort {
        Value::String(text) => match text.strip_prefix('-') {
            Some(name) => (name.to_owned(), true),
            None => (text.clone(), false),
        },
        Value::Object(fields) => {
            let name = fields
                .get("propertyName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let direction = fields
                .get("direction")
                .and_then(Value::as_str)
                .unwrap_or("ASCENDING");
            match direction {
                "ASCENDING" => (name, false),
                "DESCENDING" => (name, true),
                other => {
                    return Err(ApiError::validation(format!(
                        "Invalid sort direction {other:?}: use ASCENDING or DESCENDING"
                    )));
                }
            }
        }
        other => {
            return Err(ApiError::validation(format!("Invalid sort {other}")));
        }
    };
    let definition = object_type.property(&name).ok_or_else(|| {
        ApiError::validation(format!(
            "Invalid sort: property \"{name}\" does not exist on {}",
            object_type.upper_name()
        ))
    })?;
    Ok(Some(Sort {
        definition,
        descending,
    }))
}

impl Sort<'_> {
    /// Records without a value come last either way; ties keep id order.
    fn compare(&self, a: &StoredRecord, b: &StoredRecord) -> Ordering {
        let value = |record: &StoredRecord| {
            record
                .properties
                .get(&self.definition.name)
                .filter(|value| !value.is_empty())
                .map(|value| key(self.definition, value))
        };
        match (value(a), value(b)) {
            (Some(x), Some(y)) => {
                let ordering = x.partial_cmp(&y).unwrap_or(Ordering::Equal);
                if self.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            }
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        }
    }
}
