//! What each plan operation is as a HubSpot request: the one place the host turns a typed step
//! (`wit/lago-hubspot.wit`, `operation`) into its method, path and JSON body, and knows where the
//! answer holds the step's result. The batcher ([`crate::batch`]) groups steps by operation.

use serde_json::{Map, Value, json};

use crate::runtime::{HttpMethod, IdRef, Operation, PropertyValue};

/// `POST /crm/v3/objects/{type}/batch/upsert`: the record ids are at `/results/{i}/id`.
pub const UPSERT_RESULT: &str = "/results/0/id";

/// One HubSpot request, as a step's operation says it.
#[derive(Debug, Clone, PartialEq)]
pub struct HubspotRequest {
    pub method: HttpMethod,
    /// Path (with its query) on the HubSpot API, e.g. `/crm/v3/objects/companies/batch/upsert`.
    pub path: String,
    pub body: Option<Value>,
    /// Statuses that count as success besides 2xx (a 409 "already exists" during set-up).
    pub accept_statuses: Vec<u16>,
    /// RFC 6901 pointer to the step's result in the JSON answer, for operations that have one.
    pub result_pointer: Option<String>,
}

/// The request `operation` is. `result_of(n)` gives the result of step `n` (0-based) of the same
/// plan; a reference it cannot give is returned as the index it names.
pub fn request(
    operation: &Operation,
    result_of: impl Fn(u32) -> Option<String>,
) -> Result<HubspotRequest, u32> {
    let id = |reference: &IdRef| match reference {
        IdRef::Known(id) => Ok(id.clone()),
        IdRef::ResultOf(step) => result_of(*step).ok_or(*step),
    };
    let request = match operation {
        Operation::Upsert(upsert) => HubspotRequest {
            method: HttpMethod::Post,
            path: format!("/crm/v3/objects/{}/batch/upsert", upsert.object_type),
            body: Some(json!({"inputs": [{
                "idProperty": upsert.id_property,
                "id": upsert.id,
                "properties": properties(&upsert.properties),
            }]})),
            accept_statuses: Vec::new(),
            result_pointer: Some(UPSERT_RESULT.to_owned()),
        },
        Operation::Update(update) => HubspotRequest {
            method: HttpMethod::Patch,
            path: format!(
                "/crm/v3/objects/{}/{}",
                update.object_type, update.record_id
            ),
            body: Some(json!({ "properties": properties(&update.properties) })),
            accept_statuses: Vec::new(),
            result_pointer: Some("/id".to_owned()),
        },
        Operation::Associate(associate) => HubspotRequest {
            method: HttpMethod::Post,
            path: format!(
                "/crm/v4/associations/{}/{}/batch/associate/default",
                associate.from_type, associate.to_type
            ),
            body: Some(json!({"inputs": [{
                "from": { "id": id(&associate.from_id)? },
                "to": { "id": id(&associate.to_id)? },
            }]})),
            accept_statuses: Vec::new(),
            result_pointer: None,
        },
        Operation::CreateProperties(create) => HubspotRequest {
            method: HttpMethod::Post,
            path: format!("/crm/v3/properties/{}/batch/create", create.object_type),
            // A definition that is not JSON goes as a string: HubSpot refuses it with its reason.
            body: Some(json!({"inputs": create
                .definitions
                .iter()
                .map(|d| serde_json::from_str(d).unwrap_or_else(|_| Value::String(d.clone())))
                .collect::<Vec<Value>>()})),
            accept_statuses: vec![409],
            result_pointer: None,
        },
        Operation::DefineAssociation(define) => {
            let (from, to) = (id(&define.from_type)?, id(&define.to_type)?);
            HubspotRequest {
                method: HttpMethod::Post,
                path: format!("/crm-object-schemas/v3/schemas/{from}/associations"),
                body: Some(json!({ "fromObjectTypeId": from, "toObjectTypeId": to })),
                accept_statuses: Vec::new(),
                result_pointer: Some("/id".to_owned()),
            }
        }
        Operation::Request(raw) => {
            let mut path = raw.path.clone();
            if !raw.query.is_empty() {
                let mut query = form_urlencoded::Serializer::new(String::new());
                for (key, value) in &raw.query {
                    query.append_pair(key, value);
                }
                path.push('?');
                path.push_str(&query.finish());
            }
            HubspotRequest {
                method: raw.method,
                path,
                // Sent as the plan wrote it; a body that is not JSON is refused by HubSpot.
                body: raw
                    .body
                    .as_deref()
                    .map(|b| serde_json::from_str(b).unwrap_or_else(|_| Value::String(b.into()))),
                accept_statuses: raw.accept_statuses.clone(),
                result_pointer: raw.result_pointer.clone(),
            }
        }
    };
    Ok(request)
}

/// `{name: value}`, as HubSpot's object writes take `properties`.
fn properties(values: &[PropertyValue]) -> Value {
    Value::Object(
        values
            .iter()
            .map(|v| (v.name.clone(), Value::String(v.value.clone())))
            .collect::<Map<String, Value>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::{Associate, Upsert};

    #[test]
    fn an_upsert_is_one_batch_upsert_input_and_an_association_takes_earlier_results() {
        let upsert = Operation::Upsert(Upsert {
            object_type: "2-200".into(),
            id_property: "lago_invoice_id".into(),
            id: "inv-1".into(),
            properties: vec![PropertyValue {
                name: "lago_invoice_number".into(),
                value: "ACM-1".into(),
            }],
        });
        let sent = request(&upsert, |_| None).unwrap();
        assert_eq!(
            (
                sent.method,
                sent.path.as_str(),
                sent.result_pointer.as_deref()
            ),
            (
                HttpMethod::Post,
                "/crm/v3/objects/2-200/batch/upsert",
                Some(UPSERT_RESULT)
            )
        );
        assert_eq!(
            sent.body.unwrap(),
            json!({"inputs": [{"idProperty": "lago_invoice_id", "id": "inv-1",
                               "properties": {"lago_invoice_number": "ACM-1"}}]})
        );
        let associate = Operation::Associate(Associate {
            from_type: "2-200".into(),
            from_id: IdRef::ResultOf(0),
            to_type: "companies".into(),
            to_id: IdRef::Known("501".into()),
        });
        // Step 0's result unknown: the reference is reported, nothing is sent.
        assert_eq!(request(&associate, |_| None).unwrap_err(), 0);
        let sent = request(&associate, |n| (n == 0).then(|| "9001".to_owned())).unwrap();
        assert_eq!(
            sent.path,
            "/crm/v4/associations/2-200/companies/batch/associate/default"
        );
        assert_eq!(
            sent.body.unwrap(),
            json!({"inputs": [{"from": {"id": "9001"}, "to": {"id": "501"}}]})
        );
    }
}
