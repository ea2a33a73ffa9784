//! The WIT values a handler call takes and returns, as canonical JSON: the shape `lago-hubspot
//! plan --format json` prints and any other host can print too (`tests/second-host/plan.py` does,
//! from Python's `wasmtime`), so two hosts' plans can be compared value for value.
//!
//! - a record: an object keyed by its WIT field names, kebab-case (`store-as`, `object-type`);
//! - a variant case, and a `result`: an object with one key, the case's WIT name
//!   (`{"known": "123"}`, `{"result-of": 0}`, `{"upsert": {…}}`, `{"ok": {…}}`,
//!   `{"err": {"not-deployed": "…"}}`); a case without a payload would be `{"case": null}`;
//! - an enum: its case's WIT name as a string (`"companies"`, `"post"`, `"object-schema"`);
//! - an option: `null` or its value;
//! - a list and a tuple: an array;
//! - a string, a number, a bool: itself.
//!
//! Written field by field from the generated types (not their serde derive, whose names are
//! Rust's), so every WIT name is spelled here once.

use serde_json::{Value, json};

use crate::runtime::{
    Associate, Connection, CreateProperties, DefineAssociation, HttpMethod, IdRef, KnownId,
    Operation, Plan, PlanError, PropertyValue, RecordKey, RecordKind, Request, Step,
    TargetedObject, Update, Upsert,
};

/// A WIT value that has a canonical JSON form.
pub trait WitJson {
    /// The value as canonical JSON (the module's rules).
    fn wit_json(&self) -> Value;
}

/// One handler call as a document: `{"handler": "on-invoice" | null, "connection": {…},
/// "known": [{…}], "result": {"ok": plan} | {"err": plan-error}}`. `handler` is the export the
/// payload was routed to, `null` for a webhook type planned (skipped) without the component.
pub fn call_document(
    handler: Option<&str>,
    connection: &Connection,
    known: &[KnownId],
    result: &Result<Plan, PlanError>,
) -> Value {
    json!({
        "handler": handler,
        "connection": connection.wit_json(),
        "known": known.wit_json(),
        "result": result.wit_json(),
    })
}

impl<T: WitJson> WitJson for [T] {
    fn wit_json(&self) -> Value {
        Value::Array(self.iter().map(WitJson::wit_json).collect())
    }
}

impl<T: WitJson> WitJson for Vec<T> {
    fn wit_json(&self) -> Value {
        self.as_slice().wit_json()
    }
}

impl<T: WitJson> WitJson for Option<T> {
    fn wit_json(&self) -> Value {
        self.as_ref().map_or(Value::Null, WitJson::wit_json)
    }
}

impl<T: WitJson, E: WitJson> WitJson for Result<T, E> {
    fn wit_json(&self) -> Value {
        match self {
            Ok(ok) => json!({ "ok": ok.wit_json() }),
            Err(err) => json!({ "err": err.wit_json() }),
        }
    }
}

impl WitJson for String {
    fn wit_json(&self) -> Value {
        Value::String(self.clone())
    }
}

impl WitJson for u16 {
    fn wit_json(&self) -> Value {
        json!(self)
    }
}

impl WitJson for (String, String) {
    fn wit_json(&self) -> Value {
        json!([self.0, self.1])
    }
}

impl WitJson for TargetedObject {
    fn wit_json(&self) -> Value {
        json!(match self {
            TargetedObject::Companies => "companies",
            TargetedObject::Contacts => "contacts",
        })
    }
}

impl WitJson for RecordKind {
    fn wit_json(&self) -> Value {
        json!(match self {
            RecordKind::Company => "company",
            RecordKind::Contact => "contact",
            RecordKind::Subscription => "subscription",
            RecordKind::Invoice => "invoice",
            RecordKind::ObjectSchema => "object-schema",
            RecordKind::CreditNote => "credit-note",
        })
    }
}

impl WitJson for HttpMethod {
    fn wit_json(&self) -> Value {
        json!(match self {
            HttpMethod::Get => "get",
            HttpMethod::Post => "post",
            HttpMethod::Put => "put",
            HttpMethod::Patch => "patch",
            HttpMethod::Delete => "delete",
        })
    }
}

impl WitJson for Connection {
    fn wit_json(&self) -> Value {
        json!({
            "code": self.code,
            "default-targeted-object": self.default_targeted_object.wit_json(),
            "lago-app-url": self.lago_app_url,
            "organization-slug": self.organization_slug,
            "subscriptions-object-type-id": self.subscriptions_object_type_id,
            "invoices-object-type-id": self.invoices_object_type_id,
            "credit-notes-object-type-id": self.credit_notes_object_type_id,
            "sync-subscriptions": self.sync_subscriptions,
            "sync-invoices": self.sync_invoices,
            "sync-credit-notes": self.sync_credit_notes,
            "sync-unlinked-customers": self.sync_unlinked_customers,
            "sole-connection": self.sole_connection,
        })
    }
}

impl WitJson for RecordKey {
    fn wit_json(&self) -> Value {
        json!({ "kind": self.kind.wit_json(), "lago-id": self.lago_id })
    }
}

impl WitJson for KnownId {
    fn wit_json(&self) -> Value {
        json!({ "key": self.key.wit_json(), "hubspot-id": self.hubspot_id })
    }
}

impl WitJson for IdRef {
    fn wit_json(&self) -> Value {
        match self {
            IdRef::Known(id) => json!({ "known": id }),
            IdRef::ResultOf(step) => json!({ "result-of": step }),
        }
    }
}

impl WitJson for PropertyValue {
    fn wit_json(&self) -> Value {
        json!({ "name": self.name, "value": self.value })
    }
}

impl WitJson for Upsert {
    fn wit_json(&self) -> Value {
        json!({
            "object-type": self.object_type,
            "id-property": self.id_property,
            "id": self.id,
            "properties": self.properties.wit_json(),
        })
    }
}

impl WitJson for Update {
    fn wit_json(&self) -> Value {
        json!({
            "object-type": self.object_type,
            "record-id": self.record_id,
            "properties": self.properties.wit_json(),
        })
    }
}

impl WitJson for Associate {
    fn wit_json(&self) -> Value {
        json!({
            "from-type": self.from_type,
            "from-id": self.from_id.wit_json(),
            "to-type": self.to_type,
            "to-id": self.to_id.wit_json(),
        })
    }
}

impl WitJson for CreateProperties {
    fn wit_json(&self) -> Value {
        json!({ "object-type": self.object_type, "definitions": self.definitions.wit_json() })
    }
}

impl WitJson for DefineAssociation {
    fn wit_json(&self) -> Value {
        json!({ "from-type": self.from_type.wit_json(), "to-type": self.to_type.wit_json() })
    }
}

impl WitJson for Request {
    fn wit_json(&self) -> Value {
        json!({
            "method": self.method.wit_json(),
            "path": self.path,
            "query": self.query.wit_json(),
            "body": self.body,
            "accept-statuses": self.accept_statuses.wit_json(),
            "result-pointer": self.result_pointer,
        })
    }
}

impl WitJson for Operation {
    fn wit_json(&self) -> Value {
        match self {
            Operation::Upsert(op) => json!({ "upsert": op.wit_json() }),
            Operation::Update(op) => json!({ "update": op.wit_json() }),
            Operation::Associate(op) => json!({ "associate": op.wit_json() }),
            Operation::CreateProperties(op) => json!({ "create-properties": op.wit_json() }),
            Operation::DefineAssociation(op) => json!({ "define-association": op.wit_json() }),
            Operation::Request(op) => json!({ "request": op.wit_json() }),
        }
    }
}

impl WitJson for Step {
    fn wit_json(&self) -> Value {
        json!({
            "description": self.description,
            "operation": self.operation.wit_json(),
            "store-as": self.store_as.wit_json(),
        })
    }
}

impl WitJson for Plan {
    fn wit_json(&self) -> Value {
        json!({
            "summary": self.summary,
            "steps": self.steps.wit_json(),
            "learned": self.learned.wit_json(),
        })
    }
}

impl WitJson for PlanError {
    fn wit_json(&self) -> Value {
        match self {
            PlanError::MalformedPayload(m) => json!({ "malformed-payload": m }),
            PlanError::UnsupportedEvent(m) => json!({ "unsupported-event": m }),
            PlanError::MissingField(m) => json!({ "missing-field": m }),
            PlanError::NotDeployed(m) => json!({ "not-deployed": m }),
            PlanError::HubspotReadFailed(m) => json!({ "hubspot-read-failed": m }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every WIT spelling the rules produce: kebab-case fields, variant cases as one-key objects,
    /// enums as strings, options as null, tuples as arrays.
    #[test]
    fn plans_are_written_with_their_wit_names() {
        let plan = Plan {
            summary: "s".into(),
            steps: vec![
                Step {
                    description: "upsert".into(),
                    operation: Operation::Upsert(Upsert {
                        object_type: "companies".into(),
                        id_property: "lago_customer_id".into(),
                        id: "cus_1".into(),
                        properties: vec![PropertyValue {
                            name: "name".into(),
                            value: "Acme".into(),
                        }],
                    }),
                    store_as: Some(RecordKey {
                        kind: RecordKind::ObjectSchema,
                        lago_id: "cus_1".into(),
                    }),
                },
                Step {
                    description: "raw".into(),
                    operation: Operation::Request(Request {
                        method: HttpMethod::Get,
                        path: "/p".into(),
                        query: vec![("a".into(), "b".into())],
                        body: None,
                        accept_statuses: vec![409],
                        result_pointer: Some("/id".into()),
                    }),
                    store_as: None,
                },
                Step {
                    description: "link".into(),
                    operation: Operation::Associate(Associate {
                        from_type: "2-1".into(),
                        from_id: IdRef::ResultOf(0),
                        to_type: "companies".into(),
                        to_id: IdRef::Known("9".into()),
                    }),
                    store_as: None,
                },
            ],
            learned: vec![],
        };
        let written = Ok::<_, PlanError>(plan).wit_json();
        assert_eq!(
            written,
            json!({"ok": {"summary": "s", "learned": [], "steps": [
                {"description": "upsert", "operation": {"upsert": {"object-type": "companies",
                    "id-property": "lago_customer_id", "id": "cus_1",
                    "properties": [{"name": "name", "value": "Acme"}]}},
                 "store-as": {"kind": "object-schema", "lago-id": "cus_1"}},
                {"description": "raw", "operation": {"request": {"method": "get", "path": "/p",
                    "query": [["a", "b"]], "body": null, "accept-statuses": [409],
                    "result-pointer": "/id"}}, "store-as": null},
                {"description": "link", "operation": {"associate": {"from-type": "2-1",
                    "from-id": {"result-of": 0}, "to-type": "companies",
                    "to-id": {"known": "9"}}}, "store-as": null},
            ]}})
        );
        let error = Err::<Plan, _>(PlanError::NotDeployed("run deploy".into())).wit_json();
        assert_eq!(error, json!({"err": {"not-deployed": "run deploy"}}));
    }
}
