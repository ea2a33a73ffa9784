//! Shared fixtures for the unit tests.

use serde_json::{Value, json};

use crate::plan::{
    Connection, HttpMethod, IdRef, KnownId, Operation, PropertyValue, RecordKey, RecordKind, Step,
    TargetedObject,
};

pub const ACME: &str = "1f7b9c2e-3d4a-4b5c-8d6e-7f8091a2b3c4";
pub const JANE: &str = "2a8c0d3f-4e5b-4c6d-9e7f-8091a2b3c4d5";

pub fn conn() -> Connection {
    Connection {
        code: "hubspot-prod".into(),
        default_targeted_object: TargetedObject::Companies,
        lago_app_url: "https://app.lago.test".into(),
        organization_slug: "acme-org".into(),
        subscriptions_object_type_id: Some("2-100".into()),
        invoices_object_type_id: Some("2-200".into()),
        credit_notes_object_type_id: Some("2-300".into()),
        sync_subscriptions: true,
        sync_invoices: true,
        // Off by default, as on a host connection; credit-note tests turn it on.
        sync_credit_notes: false,
        sync_unlinked_customers: true,
        // One of several connections: a link belongs to the connection it names. Tests of a
        // host that serves one connection turn it on.
        sole_connection: false,
    }
}

/// A webhook body exactly as Lago posts it.
pub fn event(webhook_type: &str, object_type: &str, object: Value) -> String {
    let mut envelope = json!({
        "webhook_type": webhook_type,
        "object_type": object_type,
        "organization_id": "0b1c2d3e-0000-4000-8000-000000000001",
    });
    envelope[object_type] = object;
    envelope.to_string()
}

pub fn known(kind: RecordKind, lago_id: &str, hubspot_id: &str) -> KnownId {
    KnownId {
        key: RecordKey::new(kind, lago_id),
        hubspot_id: hubspot_id.into(),
    }
}

pub fn hubspot_link_json(
    code: &str,
    external_customer_id: Option<&str>,
    targeted_object: Option<&str>,
) -> Value {
    json!({
        "lago_id": "9c0d1e2f-0000-4000-8000-0000000000aa", "type": "hubspot", "integration_code": code,
        "external_customer_id": external_customer_id, "targeted_object": targeted_object,
        "sync_with_provider": true, "category": "crm",
    })
}

/// The HubSpot request a step's operation is, as the contract documents it (the host's own
/// mapping is tested against the emulator): method, path and JSON body. A reference to an
/// earlier step's result reads `{{N}}` (its index).
pub fn request(step: &Step) -> (HttpMethod, String, Value) {
    let id = |r: &IdRef| match r {
        IdRef::Known(id) => id.clone(),
        IdRef::ResultOf(n) => format!("{{{{{n}}}}}"),
    };
    match &step.operation {
        Operation::Upsert(u) => (
            HttpMethod::Post,
            format!("/crm/v3/objects/{}/batch/upsert", u.object_type),
            json!({"inputs": [{"idProperty": u.id_property, "id": u.id, "properties": props(&u.properties)}]}),
        ),
        Operation::Update(u) => (
            HttpMethod::Patch,
            format!("/crm/v3/objects/{}/{}", u.object_type, u.record_id),
            json!({"properties": props(&u.properties)}),
        ),
        Operation::Associate(a) => (
            HttpMethod::Post,
            format!(
                "/crm/v4/associations/{}/{}/batch/associate/default",
                a.from_type, a.to_type
            ),
            json!({"inputs": [{"from": {"id": id(&a.from_id)}, "to": {"id": id(&a.to_id)}}]}),
        ),
        Operation::CreateProperties(c) => (
            HttpMethod::Post,
            format!("/crm/v3/properties/{}/batch/create", c.object_type),
            json!({"inputs": c.definitions.iter().map(|d| serde_json::from_str::<Value>(d).unwrap()).collect::<Vec<_>>()}),
        ),
        Operation::DefineAssociation(d) => (
            HttpMethod::Post,
            format!(
                "/crm-object-schemas/v3/schemas/{}/associations",
                id(&d.from_type)
            ),
            json!({"fromObjectTypeId": id(&d.from_type), "toObjectTypeId": id(&d.to_type)}),
        ),
        Operation::Request(r) => (
            r.method,
            r.path.clone(),
            r.body
                .as_deref()
                .map_or(Value::Null, |b| serde_json::from_str(b).unwrap()),
        ),
    }
}

/// The path of the request a step is.
pub fn path(step: &Step) -> String {
    request(step).1
}

/// The JSON body of the request a step is.
pub fn body(step: &Step) -> Value {
    request(step).2
}

/// Property values as the JSON object HubSpot takes.
pub fn props(values: &[PropertyValue]) -> Value {
    values
        .iter()
        .map(|v| (v.name.clone(), Value::String(v.value.clone())))
        .collect::<serde_json::Map<_, _>>()
        .into()
}
