//! Shared fixtures for the unit tests.

use serde_json::{Value, json};

use crate::plan::{Connection, KnownId, RecordKey, RecordKind, Step, TargetedObject};

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

/// The JSON a step would send.
pub fn body(step: &Step) -> Value {
    serde_json::from_str(step.body.as_deref().expect("step has a body")).expect("body is JSON")
}
