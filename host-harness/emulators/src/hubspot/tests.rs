//! The emulator as a client sees it: real HTTP over loopback with reqwest.

use reqwest::Method;
use serde_json::{Value, json};

use super::{Emulator, EmulatorConfig, Faults, RateLimit, RunningEmulator};

mod lived_in;

const TOKEN: &str = "test-token";

struct Reply {
    status: u16,
    body: Value,
    headers: reqwest::header::HeaderMap,
}

impl Reply {
    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

struct Api {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl Api {
    fn new(hubspot: &RunningEmulator) -> Self {
        Self {
            base: hubspot.url.clone(),
            token: Some(TOKEN.to_owned()),
            http: reqwest::Client::new(),
        }
    }

    fn with_token(&self, token: Option<&str>) -> Self {
        Self {
            base: self.base.clone(),
            token: token.map(str::to_owned),
            http: self.http.clone(),
        }
    }

    async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("request reaches the emulator");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body, got {text}"))
        };
        Reply {
            status,
            body,
            headers,
        }
    }

    async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.call(Method::POST, path, Some(&body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.call(Method::PATCH, path, Some(&body)).await
    }

    async fn put(&self, path: &str) -> Reply {
        self.call(Method::PUT, path, None).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.call(Method::DELETE, path, None).await
    }
}

async fn start() -> (RunningEmulator, Api) {
    let hubspot = Emulator::start(EmulatorConfig::default())
        .await
        .expect("emulator starts");
    let api = Api::new(&hubspot);
    (hubspot, api)
}

/// The LagoInvoices schema as Lago deploys it (lago.md §2.2), trimmed to a few properties.
fn invoices_schema() -> Value {
    json!({
        "name": "LagoInvoices",
        "description": "Invoices issued by Lago billing engine",
        "labels": { "singular": "LagoInvoice", "plural": "LagoInvoices" },
        "primaryDisplayProperty": "lago_invoice_number",
        "secondaryDisplayProperties": ["lago_invoice_status", "lago_invoice_id"],
        "requiredProperties": ["lago_invoice_id"],
        "searchableProperties": ["lago_invoice_number", "lago_invoice_id"],
        "associatedObjects": ["COMPANY", "CONTACT"],
        "properties": [
            { "name": "lago_invoice_id", "label": "Lago Invoice Id", "type": "string",
              "fieldType": "text", "hasUniqueValue": true, "searchableInGlobalSearch": true },
            { "name": "lago_invoice_number", "label": "Lago Invoice Number", "type": "string",
              "fieldType": "text", "searchableInGlobalSearch": true },
            { "name": "lago_invoice_status", "label": "Lago Invoice Status", "type": "string",
              "fieldType": "text" },
            { "name": "lago_invoice_issuing_date", "label": "Lago Invoice Issuing Date",
              "type": "date", "fieldType": "date" },
            { "name": "lago_invoice_payment_overdue", "label": "Lago Invoice Payment Overdue",
              "type": "bool", "fieldType": "booleancheckbox", "groupName": "LagoInvoices",
              "options": [ { "label": "True", "value": "true" }, { "label": "False", "value": "false" } ] },
            { "name": "lago_invoice_total_amount", "label": "Lago Invoice Total Amount",
              "type": "number", "fieldType": "number" },
            { "name": "lago_billing_time", "label": "Lago Billing Time", "type": "enumeration",
              "fieldType": "radio", "options": [
                { "label": "Calendar", "value": "calendar", "displayOrder": 1 },
                { "label": "Anniversary", "value": "anniversary", "displayOrder": 2 } ] }
        ]
    })
}

/// Creates LagoInvoices and returns its objectTypeId.
async fn deploy_invoices(api: &Api) -> String {
    let created = api
        .post("/crm-object-schemas/v3/schemas", invoices_schema())
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["objectTypeId"].as_str().unwrap().to_owned()
}

/// Deploys the unique `lago_customer_id` on companies, as Lago does.
async fn deploy_company_properties(api: &Api) {
    let created = api
        .post(
            "/crm/v3/properties/companies/batch/create",
            json!({ "inputs": [
                { "name": "lago_customer_id", "label": "Lago Customer Id", "type": "string",
                  "fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": true },
                { "name": "lago_billing_email", "label": "Lago Billing Email", "type": "string",
                  "fieldType": "text", "groupName": "companyinformation" }
            ]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

fn upsert_input(customer_id: &str, name: &str) -> Value {
    json!({ "id": customer_id, "idProperty": "lago_customer_id", "properties": { "name": name } })
}

fn invoice_path(type_id: &str) -> String {
    format!("/crm/v3/objects/{type_id}")
}

#[tokio::test]
async fn schema_create_then_list_and_read_by_every_name() {
    let (hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    assert!(type_id.starts_with("2-"), "{type_id}");

    let listed = api.get("/crm-object-schemas/v3/schemas").await;
    assert_eq!(listed.status, 200);
    let results = listed.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    let schema = &results[0];
    assert_eq!(schema["name"], "LagoInvoices");
    assert_eq!(schema["objectTypeId"], type_id.as_str());
    assert_eq!(schema["fullyQualifiedName"], "p12345678_LagoInvoices");
    assert_eq!(schema["requiredProperties"], json!(["lago_invoice_id"]));
    let associated: Vec<&str> = schema["associations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|definition| definition["fromObjectTypeId"].as_str().unwrap())
        .collect();
    assert!(associated.contains(&"0-1") && associated.contains(&"0-2"));
    let property_names: Vec<&str> = schema["properties"]
        .as_array()
        .unwrap()
        .iter()
        .map(|property| property["name"].as_str().unwrap())
        .collect();
    assert!(property_names.contains(&"lago_invoice_id"));
    assert!(property_names.contains(&"hs_object_id"));

    for reference in [type_id.as_str(), "p12345678_LagoInvoices", "LagoInvoices"] {
        let read = api
            .get(&format!("/crm-object-schemas/v3/schemas/{reference}"))
            .await;
        assert_eq!(read.status, 200, "{reference}: {}", read.body);
        assert_eq!(read.body["objectTypeId"], type_id.as_str());
    }
    let alias = api.get("/crm/v3/schemas").await;
    assert_eq!(alias.body["results"].as_array().unwrap().len(), 1);

    let groups = api
        .get(&format!("/crm/v3/properties/{type_id}/groups"))
        .await;
    let group_names: Vec<&str> = groups.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|group| group["name"].as_str().unwrap())
        .collect();
    assert!(
        group_names.contains(&"lagoinvoices_information"),
        "{group_names:?}"
    );

    let again = api
        .post("/crm-object-schemas/v3/schemas", invoices_schema())
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(hubspot.schemas().len(), 1);
    assert!(
        hubspot
            .property_names("LagoInvoices")
            .contains(&"lago_billing_time".to_owned())
    );
}

#[tokio::test]
async fn schema_must_define_the_properties_it_lists() {
    let (_hubspot, api) = start().await;
    let mut schema = invoices_schema();
    schema["requiredProperties"] = json!(["lago_invoice_missing"]);
    let refused = api.post("/crm-object-schemas/v3/schemas", schema).await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.message().contains("lago_invoice_missing"),
        "{}",
        refused.body
    );

    let mut schema = invoices_schema();
    schema.as_object_mut().unwrap().remove("associatedObjects");
    let refused = api.post("/crm-object-schemas/v3/schemas", schema).await;
    assert_eq!(refused.status, 400);
}

#[tokio::test]
async fn existing_property_name_is_a_conflict() {
    let (_hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let single = api
        .post(
            "/crm/v3/properties/companies",
            json!({ "name": "lago_customer_id", "label": "Again", "type": "string",
                    "fieldType": "text", "groupName": "companyinformation" }),
        )
        .await;
    assert_eq!(single.status, 409, "{}", single.body);
    assert_eq!(single.body["category"], "CONFLICT");

    let batch = api
        .post(
            "/crm/v3/properties/companies/batch/create",
            json!({ "inputs": [
                { "name": "lago_fresh", "label": "Fresh", "type": "string", "fieldType": "text",
                  "groupName": "companyinformation" },
                { "name": "lago_billing_email", "label": "Again", "type": "string",
                  "fieldType": "text", "groupName": "companyinformation" }
            ]}),
        )
        .await;
    assert_eq!(batch.status, 409);
    // The whole batch is refused: the fresh property was not created either.
    let fresh = api.get("/crm/v3/properties/companies/lago_fresh").await;
    assert_eq!(fresh.status, 404);
    // Built-ins are there from the start.
    let name = api.get("/crm/v3/properties/companies/name").await;
    assert_eq!(name.status, 200);
    assert_eq!(name.body["hubspotDefined"], true);
}

#[tokio::test]
async fn property_definitions_are_validated() {
    let (_hubspot, api) = start().await;
    let path = "/crm/v3/properties/companies";
    let wrong_combo = api
        .post(
            path,
            json!({ "name": "lago_x", "label": "X", "type": "string", "fieldType": "number",
                    "groupName": "companyinformation" }),
        )
        .await;
    assert_eq!(wrong_combo.status, 400, "{}", wrong_combo.body);
    let enum_without_options = api
        .post(
            path,
            json!({ "name": "lago_x", "label": "X", "type": "enumeration", "fieldType": "select",
                    "groupName": "companyinformation" }),
        )
        .await;
    assert_eq!(enum_without_options.status, 400);
    let unknown_group = api
        .post(
            path,
            json!({ "name": "lago_x", "label": "X", "type": "string", "fieldType": "text",
                    "groupName": "nope" }),
        )
        .await;
    assert_eq!(unknown_group.status, 400);
    let inputs: Vec<Value> = (0..11)
        .map(|n| {
            json!({ "name": format!("lago_unique_{n}"), "label": "U", "type": "string",
                    "fieldType": "text", "groupName": "companyinformation", "hasUniqueValue": true })
        })
        .collect();
    let too_many_unique = api
        .post(&format!("{path}/batch/create"), json!({ "inputs": inputs }))
        .await;
    assert_eq!(too_many_unique.status, 400);
    assert!(too_many_unique.message().contains("10"));
}

#[tokio::test]
async fn upsert_creates_then_updates_the_same_record() {
    let (hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let path = "/crm/v3/objects/companies/batch/upsert";

    let first = api
        .post(path, json!({ "inputs": [upsert_input("cus_1", "Acme")] }))
        .await;
    assert_eq!(first.status, 200, "{}", first.body);
    let created = &first.body["results"][0];
    assert_eq!(created["new"], true);
    assert_eq!(created["properties"]["lago_customer_id"], "cus_1");
    let id = created["id"].as_str().unwrap().to_owned();

    let second = api
        .post(
            path,
            json!({ "inputs": [upsert_input("cus_1", "Acme Corp")] }),
        )
        .await;
    assert_eq!(second.status, 200);
    let updated = &second.body["results"][0];
    assert_eq!(updated["new"], false);
    assert_eq!(updated["id"], id.as_str());
    assert_eq!(updated["properties"]["name"], "Acme Corp");

    let records = hubspot.records("companies");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].properties["name"], "Acme Corp");
    assert!(records[0].updated_at > records[0].created_at);

    let by_unique = api
        .get("/crm/v3/objects/companies/cus_1?idProperty=lago_customer_id&properties=name,phone")
        .await;
    assert_eq!(by_unique.status, 200);
    assert_eq!(by_unique.body["id"], id.as_str());
    assert_eq!(by_unique.body["properties"]["name"], "Acme Corp");
    assert_eq!(by_unique.body["properties"]["phone"], Value::Null);
}

#[tokio::test]
async fn upsert_results_do_not_follow_input_order() {
    let (_hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let inputs: Vec<Value> = ["cus_a", "cus_b", "cus_c"]
        .iter()
        .map(|id| upsert_input(id, id))
        .collect();
    let reply = api
        .post(
            "/crm/v3/objects/companies/batch/upsert",
            json!({ "inputs": inputs }),
        )
        .await;
    let order: Vec<&str> = reply.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|record| record["properties"]["lago_customer_id"].as_str().unwrap())
        .collect();
    assert_eq!(order.len(), 3);
    assert_ne!(order, vec!["cus_a", "cus_b", "cus_c"]);
}

#[tokio::test]
async fn upsert_needs_a_unique_id_property_and_at_most_100_inputs() {
    let (_hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let path = "/crm/v3/objects/companies/batch/upsert";
    let not_unique = api
        .post(
            path,
            json!({ "inputs": [{ "id": "x@y.com", "idProperty": "lago_billing_email", "properties": {} }] }),
        )
        .await;
    assert_eq!(not_unique.status, 400);
    let inputs: Vec<Value> = (0..101)
        .map(|n| upsert_input(&format!("cus_{n}"), "n"))
        .collect();
    let too_many = api.post(path, json!({ "inputs": inputs })).await;
    assert_eq!(too_many.status, 400);
}

#[tokio::test]
async fn unknown_property_is_refused_with_hubspots_message() {
    let (hubspot, api) = start().await;
    let reply = api
        .post(
            "/crm/v3/objects/companies",
            json!({ "properties": { "name": "Acme", "x": "1" } }),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.body["status"], "error");
    assert_eq!(reply.body["category"], "VALIDATION_ERROR");
    assert_eq!(
        reply.message(),
        r#"Property values were not valid: [{"isValid":false,"message":"Property \"x\" does not exist","error":"PROPERTY_DOESNT_EXIST","name":"x"}]"#
    );
    assert_eq!(reply.body["errors"][0]["code"], "PROPERTY_DOESNT_EXIST");
    let correlation = reply.headers["x-hubspot-correlation-id"].to_str().unwrap();
    assert_eq!(reply.body["correlationId"], correlation);
    assert!(hubspot.records("companies").is_empty());
}

#[tokio::test]
async fn date_values_must_be_calendar_dates_or_midnight_millis() {
    let (hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let create = |issuing: Value| json!({ "properties": { "lago_invoice_id": "inv_1", "lago_invoice_issuing_date": issuing } });

    let slashed = api
        .post(&invoice_path(&type_id), create(json!("2024/01/31")))
        .await;
    assert_eq!(slashed.status, 400);
    assert!(
        slashed.message().contains("INVALID_DATE"),
        "{}",
        slashed.body
    );

    // 2024-01-31T10:20:30Z
    let not_midnight = api
        .post(
            &invoice_path(&type_id),
            create(json!(1_706_696_430_000_i64)),
        )
        .await;
    assert_eq!(not_midnight.status, 400);
    assert!(
        not_midnight
            .message()
            .contains("1706696430000 is at 10:20:30.000 UTC, not midnight!"),
        "{}",
        not_midnight.body
    );

    let midnight = api
        .post(&invoice_path(&type_id), create(json!("1706659200000")))
        .await;
    assert_eq!(midnight.status, 201, "{}", midnight.body);
    assert_eq!(
        midnight.body["properties"]["lago_invoice_issuing_date"],
        "2024-01-31"
    );
    assert_eq!(hubspot.records(&type_id).len(), 1);
}

#[tokio::test]
async fn enumeration_numbers_and_booleans_are_checked() {
    let (_hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let path = invoice_path(&type_id);
    let bad_enum = api
        .post(
            &path,
            json!({ "properties": { "lago_invoice_id": "inv_1", "lago_billing_time": "monthly" } }),
        )
        .await;
    assert_eq!(bad_enum.status, 400);
    assert_eq!(bad_enum.body["errors"][0]["code"], "INVALID_OPTION");

    let bad_number = api
        .post(
            &path,
            json!({ "properties": { "lago_invoice_id": "inv_1", "lago_invoice_total_amount": "12,50" } }),
        )
        .await;
    assert_eq!(bad_number.status, 400);

    let bad_bool = api
        .post(
            &path,
            json!({ "properties": { "lago_invoice_id": "inv_1", "lago_invoice_payment_overdue": "yes" } }),
        )
        .await;
    assert_eq!(bad_bool.status, 400);

    let fine = api
        .post(
            &path,
            json!({ "properties": {
                "lago_invoice_id": "inv_1", "lago_billing_time": "calendar",
                "lago_invoice_total_amount": 100.20, "lago_invoice_payment_overdue": true,
                "lago_invoice_status": null } }),
        )
        .await;
    assert_eq!(fine.status, 201, "{}", fine.body);
    let properties = &fine.body["properties"];
    assert_eq!(properties["lago_invoice_total_amount"], "100.2");
    assert_eq!(properties["lago_invoice_payment_overdue"], "true");
    assert!(properties.get("lago_invoice_status").is_none());
}

#[tokio::test]
async fn contact_emails_are_single_addresses_and_unique() {
    let (hubspot, api) = start().await;
    let list = api
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "a@x.com,b@y.com" } }),
        )
        .await;
    assert_eq!(list.status, 400);
    assert!(
        list.message()
            .contains("Email address a@x.com,b@y.com is invalid"),
        "{}",
        list.body
    );
    assert_eq!(list.body["errors"][0]["code"], "INVALID_EMAIL");

    let first = api
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "Jane@Example.com", "firstname": "Jane" } }),
        )
        .await;
    assert_eq!(first.status, 201);
    let id = first.body["id"].as_str().unwrap().to_owned();
    let again = api
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "jane@example.com" } }),
        )
        .await;
    assert_eq!(again.status, 409);
    assert_eq!(again.body["category"], "CONFLICT");
    assert_eq!(
        again.message(),
        format!("Contact already exists. Existing ID: {id}")
    );
    assert_eq!(hubspot.records("contacts").len(), 1);
}

#[tokio::test]
async fn duplicate_ids_reject_the_whole_batch() {
    let (hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let reply = api
        .post(
            "/crm/v3/objects/companies/batch/upsert",
            json!({ "inputs": [
                upsert_input("cus_1", "A"), upsert_input("cus_2", "B"), upsert_input("cus_1", "C")
            ]}),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.message(),
        "Duplicate IDs found in batch input: [cus_1]. IDs must be unique"
    );
    assert_eq!(reply.body["context"]["ids"], json!(["cus_1"]));
    assert!(hubspot.records("companies").is_empty());
}

#[tokio::test]
async fn unique_values_cannot_be_shared() {
    let (hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let path = invoice_path(&type_id);
    let body = json!({ "properties": { "lago_invoice_id": "inv_1" } });
    assert_eq!(api.post(&path, body.clone()).await.status, 201);
    let collision = api.post(&path, body).await;
    assert_eq!(collision.status, 400);
    assert!(
        collision.message().contains("already has that value"),
        "{}",
        collision.body
    );
    assert!(collision.message().contains("lago_invoice_id"));
    assert_eq!(hubspot.records("LagoInvoices").len(), 1);

    let other = api
        .post(
            &path,
            json!({ "properties": { "lago_invoice_id": "inv_2" } }),
        )
        .await;
    let other_id = other.body["id"].as_str().unwrap();
    let moved_onto_first = api
        .patch(
            &format!("{path}/{other_id}"),
            json!({ "properties": { "lago_invoice_id": "inv_1" } }),
        )
        .await;
    assert_eq!(moved_onto_first.status, 400);
}

#[tokio::test]
async fn required_properties_must_be_set_on_create() {
    let (_hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let reply = api
        .post(
            &invoice_path(&type_id),
            json!({ "properties": { "lago_invoice_number": "F-1" } }),
        )
        .await;
    assert_eq!(reply.status, 400);
    assert_eq!(
        reply.message(),
        "Error creating LagoInvoices.  Some required properties were not set."
    );
    assert_eq!(
        reply.body["context"]["properties"],
        json!(["lago_invoice_id"])
    );
}

#[tokio::test]
async fn traced_batches_report_partial_failures_with_207() {
    let (hubspot, api) = start().await;
    deploy_company_properties(&api).await;
    let path = "/crm/v3/objects/companies/batch/upsert";
    let mut bad = upsert_input("cus_bad", "Bad");
    bad["properties"]["nope"] = json!("1");

    let untraced = api
        .post(
            path,
            json!({ "inputs": [upsert_input("cus_ok", "Ok"), bad.clone()] }),
        )
        .await;
    assert_eq!(untraced.status, 400);
    assert!(hubspot.records("companies").is_empty(), "nothing written");

    let mut good = upsert_input("cus_ok", "Ok");
    good["objectWriteTraceId"] = json!("trace-ok");
    bad["objectWriteTraceId"] = json!("trace-bad");
    let traced = api.post(path, json!({ "inputs": [good, bad] })).await;
    assert_eq!(traced.status, 207, "{}", traced.body);
    assert_eq!(traced.body["numErrors"], 1);
    assert_eq!(
        traced.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["trace-bad"])
    );
    assert_eq!(traced.body["results"].as_array().unwrap().len(), 1);
    let records = hubspot.records("companies");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].properties["lago_customer_id"], "cus_ok");

    let create = api
        .post(
            "/crm/v3/objects/companies/batch/create",
            json!({ "inputs": [
                { "properties": { "name": "Fine" }, "objectWriteTraceId": "a" },
                { "properties": { "lago_customer_id": "cus_ok" }, "objectWriteTraceId": "b" }
            ]}),
        )
        .await;
    assert_eq!(create.status, 207);
    assert_eq!(
        create.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["b"])
    );
}

#[tokio::test]
async fn missing_or_wrong_token_is_401() {
    let (hubspot, api) = start().await;
    for client in [api.with_token(None), api.with_token(Some("wrong"))] {
        let reply = client.get("/crm/v3/properties/companies").await;
        assert_eq!(reply.status, 401);
        assert_eq!(reply.body["category"], "INVALID_AUTHENTICATION");
        assert!(reply.headers.contains_key("x-hubspot-correlation-id"));
    }
    let ok = api.get("/crm/v3/properties/companies").await;
    assert_eq!(ok.status, 200);
    assert!(ok.headers.contains_key("x-hubspot-ratelimit-max"));
    assert!(ok.headers.contains_key("x-hubspot-ratelimit-remaining"));
    assert_eq!(
        ok.headers["x-hubspot-ratelimit-interval-milliseconds"],
        "10000"
    );
    let log = hubspot.request_log();
    assert_eq!(log.len(), 3);
    assert_eq!((log[0].method.as_str(), log[0].status), ("GET", 401));
    assert_eq!(log[2].path, "/crm/v3/properties/companies");
}

#[tokio::test]
async fn associations_are_stored_both_ways_once() {
    let (hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let company = api
        .post(
            "/crm/v3/objects/companies",
            json!({ "properties": { "name": "Acme" } }),
        )
        .await;
    let company_id = company.body["id"].as_str().unwrap().to_owned();
    let invoice = api
        .post(
            &invoice_path(&type_id),
            json!({ "properties": { "lago_invoice_id": "inv_1" } }),
        )
        .await;
    let invoice_id = invoice.body["id"].as_str().unwrap().to_owned();

    let link = format!(
        "/crm/v4/objects/{type_id}/{invoice_id}/associations/default/companies/{company_id}"
    );
    for _ in 0..2 {
        let reply = api.put(&link).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.body["status"], "COMPLETE");
    }
    assert_eq!(
        hubspot.associations("LagoInvoices", &invoice_id, "companies"),
        vec![company_id.clone()]
    );
    assert_eq!(
        hubspot.associations("companies", &company_id, &type_id),
        vec![invoice_id.clone()]
    );
    let from_company = api
        .get(&format!(
            "/crm/v4/objects/companies/{company_id}/associations/{type_id}"
        ))
        .await;
    let results = from_company.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["toObjectId"].to_string(), invoice_id);
    assert_eq!(
        results[0]["associationTypes"][0]["category"],
        "USER_DEFINED"
    );

    let labels = api
        .get(&format!("/crm/v4/associations/{type_id}/companies/labels"))
        .await;
    assert_eq!(labels.body["results"].as_array().unwrap().len(), 1);

    let batch = api
        .post(
            &format!("/crm/v4/associations/{type_id}/companies/batch/associate/default"),
            json!({ "inputs": [
                { "from": { "id": invoice_id }, "to": { "id": company_id } },
                { "from": { "id": invoice_id }, "to": { "id": "999" } }
            ]}),
        )
        .await;
    assert_eq!(batch.status, 207, "{}", batch.body);
    assert_eq!(
        hubspot
            .associations("LagoInvoices", &invoice_id, "companies")
            .len(),
        1
    );

    let missing = api
        .put(&format!(
            "/crm/v4/objects/{type_id}/{invoice_id}/associations/default/companies/999"
        ))
        .await;
    assert_eq!(missing.status, 404);
}

#[tokio::test]
async fn custom_objects_only_associate_with_their_declared_types() {
    let (_hubspot, api) = start().await;
    let invoices = deploy_invoices(&api).await;
    let mut schema = invoices_schema();
    schema["name"] = json!("LagoSubscriptions");
    schema["associatedObjects"] = json!(["COMPANY"]);
    let subscriptions = api
        .post("/crm-object-schemas/v3/schemas", schema)
        .await
        .body["objectTypeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let contact = api
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "a@b.co" } }),
        )
        .await;
    let contact_id = contact.body["id"].as_str().unwrap().to_owned();
    let subscription = api
        .post(
            &invoice_path(&subscriptions),
            json!({ "properties": { "lago_invoice_id": "sub_1" } }),
        )
        .await;
    let subscription_id = subscription.body["id"].as_str().unwrap().to_owned();
    let refused = api
        .put(&format!(
            "/crm/v4/objects/{subscriptions}/{subscription_id}/associations/default/contacts/{contact_id}"
        ))
        .await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    let between_customs = api
        .put(&format!(
            "/crm/v4/objects/{subscriptions}/{subscription_id}/associations/default/{invoices}/1"
        ))
        .await;
    assert_eq!(between_customs.status, 400);
}

/// Two custom objects associate only once their pair is defined on a schema
/// (`POST …/schemas/{objectType}/associations`), in both directions, as in HubSpot.
#[tokio::test]
async fn custom_object_pairs_associate_once_defined() {
    let (_hubspot, api) = start().await;
    let invoices = deploy_invoices(&api).await;
    let mut schema = invoices_schema();
    schema["name"] = json!("LagoSubscriptions");
    let subscriptions = api
        .post("/crm-object-schemas/v3/schemas", schema)
        .await
        .body["objectTypeId"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut ids = Vec::new();
    for (type_id, id) in [(&invoices, "inv_1"), (&subscriptions, "sub_1")] {
        let created = api
            .post(
                &invoice_path(type_id),
                json!({ "properties": { "lago_invoice_id": id } }),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let [invoice_id, subscription_id] = [ids[0].clone(), ids[1].clone()];
    let associate =
        json!({"inputs": [{"from": {"id": invoice_id}, "to": {"id": subscription_id}}]});
    let path = format!("/crm/v4/associations/{invoices}/{subscriptions}/batch/associate/default");
    let refused = api.post(&path, associate.clone()).await;
    assert_eq!(refused.status, 400, "{}", refused.body);
    assert!(
        refused.message().contains("No association is defined"),
        "{}",
        refused.body
    );

    let defined = api
        .post(
            &format!("/crm-object-schemas/v3/schemas/{invoices}/associations"),
            json!({"fromObjectTypeId": invoices, "toObjectTypeId": subscriptions}),
        )
        .await;
    assert_eq!(defined.status, 201, "{}", defined.body);
    assert!(defined.body["id"].as_str().is_some_and(|id| !id.is_empty()));
    // Both schemas list the pair.
    for type_id in [&invoices, &subscriptions] {
        let read = api
            .get(&format!("/crm-object-schemas/v3/schemas/{type_id}"))
            .await;
        let pairs: Vec<(String, String)> = read.body["associations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["fromObjectTypeId"].as_str().unwrap().to_owned(),
                    a["toObjectTypeId"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert!(
            pairs
                .iter()
                .any(|(from, to)| [from, to].contains(&&invoices)
                    && [from, to].contains(&&subscriptions)),
            "{type_id}: {pairs:?}"
        );
    }
    let linked = api.post(&path, associate).await;
    assert_eq!(linked.status, 200, "{}", linked.body);
    let reverse = api
        .get(&format!(
            "/crm/v4/objects/{subscriptions}/{subscription_id}/associations/{invoices}"
        ))
        .await;
    assert_eq!(
        reverse.body["results"][0]["toObjectId"].to_string(),
        invoice_id
    );
}

#[tokio::test]
async fn bare_custom_object_name_is_not_an_object_type() {
    let (_hubspot, api) = start().await;
    let type_id = deploy_invoices(&api).await;
    let body = json!({ "properties": { "lago_invoice_id": "inv_1" } });
    let bare = api.post("/crm/v3/objects/LagoInvoices", body.clone()).await;
    assert_eq!(bare.status, 400);
    assert_eq!(
        bare.message(),
        "Unable to infer object type from: LagoInvoices"
    );
    let qualified = api
        .post("/crm/v3/objects/p12345678_LagoInvoices", body)
        .await;
    assert_eq!(qualified.status, 201, "{}", qualified.body);
    let id = qualified.body["id"].as_str().unwrap();
    let read = api.get(&format!("{}/{id}", invoice_path(&type_id))).await;
    assert_eq!(read.status, 200);
    let unknown = api.get("/crm/v3/objects/butterflies").await;
    assert_eq!(
        unknown.message(),
        "Unable to infer object type from: butterflies"
    );
    let missing = api.get(&format!("{}/424242", invoice_path(&type_id))).await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["category"], "OBJECT_NOT_FOUND");
}

#[tokio::test]
async fn list_pages_with_after_cursor_and_batch_read_reports_missing_ids() {
    let (_hubspot, api) = start().await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let created = api
            .post(
                "/crm/v3/objects/companies",
                json!({ "properties": { "name": format!("C{n}") } }),
            )
            .await;
        ids.push(created.body["id"].as_str().unwrap().to_owned());
    }
    let first = api.get("/crm/v3/objects/companies?limit=3").await;
    assert_eq!(first.body["results"].as_array().unwrap().len(), 3);
    let after = first.body["paging"]["next"]["after"].as_str().unwrap();
    let second = api
        .get(&format!("/crm/v3/objects/companies?limit=3&after={after}"))
        .await;
    assert_eq!(second.body["results"].as_array().unwrap().len(), 2);
    assert!(second.body.get("paging").is_none());

    let read = api
        .post(
            "/crm/v3/objects/companies/batch/read",
            json!({ "inputs": [{ "id": ids[0] }, { "id": "1" }], "properties": ["name"] }),
        )
        .await;
    assert_eq!(read.status, 207);
    assert_eq!(read.body["errors"][0]["context"]["ids"], json!(["1"]));
    assert_eq!(read.body["results"][0]["properties"]["name"], "C0");

    let update = api
        .post(
            "/crm/v3/objects/companies/batch/update",
            json!({ "inputs": [{ "id": ids[1], "properties": { "name": "Renamed" } }] }),
        )
        .await;
    assert_eq!(update.status, 200, "{}", update.body);
    assert_eq!(update.body["results"][0]["properties"]["name"], "Renamed");
}

#[tokio::test]
async fn enforced_rate_limit_answers_429() {
    let hubspot = Emulator::start(EmulatorConfig {
        faults: Faults {
            rate_limit: Some(RateLimit {
                max: 2,
                interval_ms: 10_000,
            }),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let api = Api::new(&hubspot);
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(api.get("/crm/v3/properties/contacts").await.status);
    }
    assert_eq!(statuses, vec![200, 200, 429]);
}

#[tokio::test]
async fn contacts_upsert_by_email_and_patch_by_id_property() {
    let (hubspot, api) = start().await;
    let upsert = api
        .post(
            "/crm/v3/objects/contacts/batch/upsert",
            json!({ "inputs": [{ "id": "Ada@Example.com", "idProperty": "email",
                                 "properties": { "firstname": "Ada" } }] }),
        )
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    assert_eq!(
        upsert.body["results"][0]["properties"]["email"],
        "ada@example.com"
    );

    let patched = api
        .patch(
            "/crm/v3/objects/contacts/ada@example.com?idProperty=email",
            json!({ "properties": { "lastname": "Lovelace", "firstname": "" } }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let contact = &hubspot.records("0-1")[0];
    assert_eq!(contact.properties["lastname"], "Lovelace");
    assert!(
        !contact.properties.contains_key("firstname"),
        "empty string clears"
    );

    let read_only = api
        .patch(
            &format!("/crm/v3/objects/contacts/{}", contact.id),
            json!({ "properties": { "hs_object_id": "1" } }),
        )
        .await;
    assert_eq!(read_only.status, 400);
    assert_eq!(read_only.body["errors"][0]["code"], "READ_ONLY_VALUE");
}

#[tokio::test]
async fn dated_paths_and_v3_association_reads() {
    let (_hubspot, api) = start().await;
    let company = api
        .post(
            "/crm/objects/2026-03/companies",
            json!({ "properties": { "name": "Acme" } }),
        )
        .await;
    assert_eq!(company.status, 201, "{}", company.body);
    let company_id = company.body["id"].as_str().unwrap().to_owned();
    let contact = api
        .post(
            "/crm/v3/objects/contacts",
            json!({ "properties": { "email": "x@acme.io" },
                    "associations": [{ "to": { "id": company_id },
                      "types": [{ "associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 279 }] }] }),
        )
        .await;
    assert_eq!(contact.status, 201, "{}", contact.body);
    let contact_id = contact.body["id"].as_str().unwrap();
    let read = api
        .get(&format!(
            "/crm/v3/objects/companies/{company_id}?associations=contacts"
        ))
        .await;
    assert_eq!(
        read.body["associations"]["contacts"]["results"][0]["id"],
        contact_id
    );
    let dated = api
        .get(&format!(
            "/crm/objects/2026-03/contacts/{contact_id}/associations/companies"
        ))
        .await;
    assert_eq!(dated.status, 200, "{}", dated.body);
    assert_eq!(
        dated.body["results"][0]["toObjectId"].to_string(),
        company_id
    );
}

#[tokio::test]
async fn seeded_records_keep_their_id_and_are_reachable_through_the_api() {
    let (hubspot, api) = start().await;
    let seeded = hubspot
        .seed_record("companies", "9000001", json!({ "name": "Globex" }))
        .expect("seeded");
    assert_eq!(seeded.id, "9000001");
    assert!(
        hubspot
            .seed_record("companies", "9000001", json!({}))
            .is_err()
    );
    assert!(
        hubspot
            .seed_record("companies", "9000002", json!({ "nope": "1" }))
            .is_err()
    );
    let patched = api
        .patch(
            "/crm/v3/objects/companies/9000001",
            json!({ "properties": { "name": "Globex Inc" } }),
        )
        .await;
    assert_eq!(patched.status, 200, "{}", patched.body);
    let created = api
        .post(
            "/crm/v3/objects/companies",
            json!({ "properties": { "name": "Other" } }),
        )
        .await;
    assert_ne!(created.body["id"], "9000001");
}
