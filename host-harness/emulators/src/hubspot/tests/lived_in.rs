//! A lived-in portal (hubspot-api.md §9): contact email conflicts (409 / 207), email
//! validation, reads by `idProperty`, archived and merged records, search, and seeding.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Api, Reply, deploy_company_properties, start, upsert_input};
use crate::hubspot::fixtures::{self, GLOBEX_COMPANY_ID, KENJI_EMAIL};
use crate::hubspot::{
    Emulator, EmulatorConfig, Faults, RateLimit, RunningEmulator, Seed, SeedArgs,
};

const CONTACTS: &str = "/crm/v3/objects/contacts";
const COMPANIES: &str = "/crm/v3/objects/companies";

/// Deploys the unique `lago_customer_id` on contacts, as the sync does.
async fn deploy_contact_key(api: &Api) {
    let created = api
        .post(
            "/crm/v3/properties/contacts",
            json!({ "name": "lago_customer_id", "label": "Lago Customer Id", "type": "string",
                    "fieldType": "text", "groupName": "contactinformation", "hasUniqueValue": true }),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
}

async fn create_contact(api: &Api, properties: Value) -> String {
    let created = api
        .post(CONTACTS, json!({ "properties": properties }))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

async fn create_company(api: &Api, properties: Value) -> String {
    let created = api
        .post(COMPANIES, json!({ "properties": properties }))
        .await;
    assert_eq!(created.status, 201, "{}", created.body);
    created.body["id"].as_str().unwrap().to_owned()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .map(|object| object.keys().map(String::as_str).collect())
        .unwrap_or_default()
}

/// A single-request error: exactly HubSpot's top-level fields, a correlation id in the body
/// and in the header.
fn assert_error(reply: &Reply, status: u16, category: &str, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["status"], "error", "{}", reply.body);
    assert_eq!(reply.body["category"], category, "{}", reply.body);
    assert_eq!(reply.message(), message, "{}", reply.body);
    let correlation = reply.body["correlationId"].as_str().expect("correlationId");
    assert_eq!(correlation.len(), 36);
    assert!(reply.headers.contains_key("x-hubspot-correlation-id"));
}

fn conflict_message(id: &str) -> String {
    format!("Contact already exists. Existing ID: {id}")
}

fn invalid_email_message(address: &str) -> String {
    format!(
        r#"Property values were not valid: [{{"isValid":false,"message":"Email address {address} is invalid","error":"INVALID_EMAIL","name":"email"}}]"#
    )
}

// ---------------------------------------------------------------- 1. contacts unique by email

#[tokio::test]
async fn a_contact_email_held_by_another_contact_is_a_409_naming_it() {
    let (hubspot, api) = start().await;
    let jane = create_contact(&api, json!({ "email": "Jane@Example.com" })).await;

    let create = api
        .post(
            CONTACTS,
            json!({ "properties": { "email": "JANE@example.COM" } }),
        )
        .await;
    assert_error(&create, 409, "CONFLICT", &conflict_message(&jane));
    assert_eq!(
        keys(&create.body),
        BTreeSet::from(["status", "message", "correlationId", "category", "context"])
    );
    assert_eq!(create.body["context"], json!({ "existingId": [jane] }));

    let other = create_contact(&api, json!({ "email": "other@example.com" })).await;
    let patch = api
        .patch(
            &format!("{CONTACTS}/{other}"),
            json!({ "properties": { "email": "jane@example.com" } }),
        )
        .await;
    assert_error(&patch, 409, "CONFLICT", &conflict_message(&jane));
    // Writing a contact's own email again is no conflict.
    let same = api
        .patch(
            &format!("{CONTACTS}/{jane}"),
            json!({ "properties": { "email": "JANE@example.com", "firstname": "Jane" } }),
        )
        .await;
    assert_eq!(same.status, 200, "{}", same.body);
    assert_eq!(hubspot.records("contacts").len(), 2);
}

#[tokio::test]
async fn batch_create_reports_an_email_conflict_per_input_in_a_207() {
    let (hubspot, api) = start().await;
    let jane = create_contact(&api, json!({ "email": "jane@example.com" })).await;
    let traced = api
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [
                { "properties": { "email": "new@example.com" }, "objectWriteTraceId": "t-new" },
                { "properties": { "email": "Jane@example.com" }, "objectWriteTraceId": "t-jane" },
            ]}),
        )
        .await;
    assert_eq!(traced.status, 207, "{}", traced.body);
    assert_eq!(traced.body["status"], "COMPLETE");
    assert_eq!(traced.body["numErrors"], 1);
    assert_eq!(traced.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(
        traced.body["results"][0]["properties"]["email"],
        "new@example.com"
    );
    assert_eq!(
        traced.body["errors"][0],
        json!({
            "status": "error",
            "category": "CONFLICT",
            "message": conflict_message(&jane),
            "context": { "existingId": [jane], "objectWriteTraceId": ["t-jane"] },
            "errors": [],
            "links": {},
        })
    );
    assert_eq!(hubspot.records("contacts").len(), 2);

    // Two inputs of one batch with the same email: the second meets the first.
    let twins = api
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [
                { "properties": { "email": "twin@example.com" }, "objectWriteTraceId": "a" },
                { "properties": { "email": "twin@example.com" }, "objectWriteTraceId": "b" },
            ]}),
        )
        .await;
    assert_eq!(twins.status, 207, "{}", twins.body);
    let first = twins.body["results"][0]["id"].as_str().unwrap();
    assert_eq!(
        twins.body["errors"][0]["context"],
        json!({ "existingId": [first], "objectWriteTraceId": ["b"] })
    );

    // Without trace ids the batch fails as a whole and writes nothing.
    let untraced = api
        .post(
            &format!("{CONTACTS}/batch/create"),
            json!({ "inputs": [
                { "properties": { "email": "third@example.com" } },
                { "properties": { "email": "jane@example.com" } },
            ]}),
        )
        .await;
    assert_error(&untraced, 409, "CONFLICT", &conflict_message(&jane));
    assert_eq!(hubspot.records("contacts").len(), 3);
}

#[tokio::test]
async fn upserts_conflict_on_another_contacts_email_but_update_their_own() {
    let (hubspot, api) = start().await;
    deploy_contact_key(&api).await;
    let path = format!("{CONTACTS}/batch/upsert");
    let input = |customer: &str, email: &str, trace: Option<&str>| {
        let mut input = json!({ "id": customer, "idProperty": "lago_customer_id",
                                "properties": { "email": email } });
        if let Some(trace) = trace {
            input["objectWriteTraceId"] = json!(trace);
        }
        input
    };
    let salesperson = create_contact(&api, json!({ "email": "ap@globex.com" })).await;

    let single = api
        .post(
            &path,
            json!({ "inputs": [input("cus_1", "AP@globex.com", None)] }),
        )
        .await;
    assert_error(&single, 409, "CONFLICT", &conflict_message(&salesperson));

    let traced = api
        .post(
            &path,
            json!({ "inputs": [
                input("cus_1", "ap@globex.com", Some("job-1")),
                input("cus_2", "kim@globex.com", Some("job-2")),
            ]}),
        )
        .await;
    assert_eq!(traced.status, 207, "{}", traced.body);
    assert_eq!(traced.body["results"].as_array().unwrap().len(), 1);
    assert_eq!(traced.body["results"][0]["new"], true);
    assert_eq!(
        traced.body["errors"][0]["context"],
        json!({ "existingId": [salesperson], "objectWriteTraceId": ["job-1"] })
    );
    assert_eq!(traced.body["errors"][0]["category"], "CONFLICT");

    // cus_2 already holds kim@: upserting it again is an update, not a conflict.
    let again = api
        .post(
            &path,
            json!({ "inputs": [input("cus_2", "Kim@globex.com", None)] }),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.body["results"][0]["new"], false);

    // Upserting by email finds the salesperson's contact: an update too.
    let by_email = api
        .post(
            &path,
            json!({ "inputs": [{ "id": "AP@globex.com", "idProperty": "email",
                                 "properties": { "lago_customer_id": "cus_1" } }] }),
        )
        .await;
    assert_eq!(by_email.status, 200, "{}", by_email.body);
    assert_eq!(by_email.body["results"][0]["id"], salesperson.as_str());
    assert_eq!(by_email.body["results"][0]["new"], false);
    assert_eq!(hubspot.records("contacts").len(), 2);
}

// ---------------------------------------------------------------- 2. email validation

#[tokio::test]
async fn emails_need_a_tld_on_ianas_list() {
    let (hubspot, api) = start().await;
    for address in [
        "x@acme.con",
        "x@example.invalidtld",
        "x@acme.test",
        "x@acme.example",
        "x@acme.invalid",
        "x@localhost",
        "not-an-email",
    ] {
        let reply = api
            .post(CONTACTS, json!({ "properties": { "email": address } }))
            .await;
        assert_error(
            &reply,
            400,
            "VALIDATION_ERROR",
            &invalid_email_message(address),
        );
        assert_eq!(
            reply.body["errors"],
            json!([{ "message": format!("Email address {address} is invalid"),
                     "code": "INVALID_EMAIL", "context": { "propertyName": ["email"] } }])
        );
    }
    assert!(hubspot.records("contacts").is_empty());
    for address in [
        "kenji.tanaka@example.jp",
        "billing-cus_ind@example.com",
        "a@acme.io",
    ] {
        create_contact(&api, json!({ "email": address })).await;
    }

    // In a traced batch the invalid input fails alone; untraced, the whole batch fails.
    let path = format!("{CONTACTS}/batch/create");
    let traced = api
        .post(
            &path,
            json!({ "inputs": [
                { "properties": { "email": "ok@acme.io" }, "objectWriteTraceId": "ok" },
                { "properties": { "email": "x@acme.con" }, "objectWriteTraceId": "bad" },
            ]}),
        )
        .await;
    assert_eq!(traced.status, 207, "{}", traced.body);
    assert_eq!(traced.body["errors"][0]["category"], "VALIDATION_ERROR");
    assert_eq!(
        traced.body["errors"][0]["message"],
        invalid_email_message("x@acme.con")
    );
    assert_eq!(
        traced.body["errors"][0]["context"]["objectWriteTraceId"],
        json!(["bad"])
    );
    let untraced = api
        .post(
            &path,
            json!({ "inputs": [
                { "properties": { "email": "ok2@acme.io" } },
                { "properties": { "email": "x@acme.con" } },
            ]}),
        )
        .await;
    assert_error(
        &untraced,
        400,
        "VALIDATION_ERROR",
        &invalid_email_message("x@acme.con"),
    );
    assert_eq!(hubspot.records("contacts").len(), 4);
}

// ---------------------------------------------------------------- 3. read by idProperty

#[tokio::test]
async fn contacts_read_by_email_and_records_by_any_unique_property() {
    let (_hubspot, api) = start().await;
    let jane = create_contact(
        &api,
        json!({ "email": "jane@example.com", "firstname": "Jane" }),
    )
    .await;
    let read = api
        .get(&format!(
            "{CONTACTS}/Jane@Example.com?idProperty=email&properties=firstname"
        ))
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.body["id"], jane.as_str());
    assert_eq!(read.body["properties"]["firstname"], "Jane");

    let missing = api
        .get(&format!("{CONTACTS}/nobody@example.com?idProperty=email"))
        .await;
    assert_error(
        &missing,
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
    );
    assert_eq!(
        missing.body["context"],
        json!({ "id": ["nobody@example.com"] })
    );

    deploy_company_properties(&api).await;
    let upserted = api
        .post(
            &format!("{COMPANIES}/batch/upsert"),
            json!({ "inputs": [upsert_input("cus_1", "Acme")] }),
        )
        .await;
    let company = upserted.body["results"][0]["id"].as_str().unwrap();
    let by_key = api
        .get(&format!("{COMPANIES}/cus_1?idProperty=lago_customer_id"))
        .await;
    assert_eq!(by_key.body["id"], company);
    // `domain` is not unique: it cannot identify a company.
    let by_domain = api
        .get(&format!("{COMPANIES}/acme.io?idProperty=domain"))
        .await;
    assert_eq!(by_domain.status, 400, "{}", by_domain.body);
    assert_eq!(by_domain.body["category"], "VALIDATION_ERROR");
}

// ---------------------------------------------------------------- 4. archive

#[tokio::test]
async fn an_archived_record_is_gone_and_frees_its_unique_values() {
    let (hubspot, api) = start().await;
    deploy_contact_key(&api).await;
    let company = create_company(&api, json!({ "name": "Acme" })).await;
    let contact = create_contact(
        &api,
        json!({ "email": "jane@example.com", "lago_customer_id": "cus_1" }),
    )
    .await;
    let link =
        format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}");
    assert_eq!(api.put(&link).await.status, 200);

    let deleted = api.delete(&format!("{CONTACTS}/{contact}")).await;
    assert_eq!(deleted.status, 204);
    assert!(hubspot.record("contacts", &contact).is_none());
    assert!(
        hubspot
            .associations("companies", &company, "contacts")
            .is_empty()
    );

    let not_found = "Object not found.  objectId are usually numeric.";
    let read = api.get(&format!("{CONTACTS}/{contact}")).await;
    assert_error(&read, 404, "OBJECT_NOT_FOUND", not_found);
    assert_eq!(read.body["context"], json!({ "id": [contact] }));
    let update = api
        .patch(
            &format!("{CONTACTS}/{contact}"),
            json!({ "properties": { "firstname": "Jane" } }),
        )
        .await;
    assert_error(&update, 404, "OBJECT_NOT_FOUND", not_found);
    let by_email = api
        .get(&format!("{CONTACTS}/jane@example.com?idProperty=email"))
        .await;
    assert_eq!(by_email.status, 404);
    let relink = api.put(&link).await;
    assert_error(
        &relink,
        404,
        "OBJECT_NOT_FOUND",
        &format!("No CONTACT with ID {contact} exists"),
    );

    let batch = api
        .post(
            "/crm/v4/associations/companies/contacts/batch/associate/default",
            json!({ "inputs": [{ "from": { "id": company }, "to": { "id": contact } }] }),
        )
        .await;
    assert_eq!(batch.status, 207, "{}", batch.body);
    assert_eq!(batch.body["numErrors"], 1);
    assert_eq!(
        batch.body["errors"][0],
        json!({
            "status": "error",
            "category": "VALIDATION_ERROR",
            "subCategory": "crm.associations.INVALID_OBJECT_IDS",
            "message": format!("No CONTACT with ID {contact} exists"),
            "context": {
                "fromObjectId": [company],
                "toObjectId": [contact],
                "objectId": [contact],
                "objectType": ["CONTACT"],
                "INVALID_OBJECT_IDS": [format!("CONTACT={contact} is not valid")],
            },
            "errors": [],
            "links": {},
        })
    );
    let batch_read = api
        .post(
            &format!("{CONTACTS}/batch/read"),
            json!({ "inputs": [{ "id": contact }] }),
        )
        .await;
    assert_eq!(batch_read.status, 207);
    assert_eq!(batch_read.body["errors"][0]["category"], "OBJECT_NOT_FOUND");

    // The email and lago_customer_id are free again: an upsert creates a new contact.
    let upsert = api
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [{ "id": "cus_1", "idProperty": "lago_customer_id",
                                 "properties": { "email": "jane@example.com" } }] }),
        )
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    assert_eq!(upsert.body["results"][0]["new"], true);
    assert_ne!(upsert.body["results"][0]["id"], contact.as_str());
    // Archiving what is already gone is still a 204.
    assert_eq!(
        api.delete(&format!("{CONTACTS}/{contact}")).await.status,
        204
    );
}

// ---------------------------------------------------------------- 5. merge

#[tokio::test]
async fn merged_contacts_get_a_new_id_that_both_old_ids_reach() {
    let (hubspot, api) = start().await;
    deploy_contact_key(&api).await;
    let acme = create_company(&api, json!({ "name": "Acme" })).await;
    let globex = create_company(&api, json!({ "name": "Globex" })).await;
    let primary = create_contact(
        &api,
        json!({ "email": "jane@acme.io", "firstname": "Jane", "lago_customer_id": "cus_1" }),
    )
    .await;
    let other = create_contact(
        &api,
        json!({ "email": "j.doe@globex.com", "firstname": "J.", "lastname": "Doe",
                "lago_customer_id": "cus_2" }),
    )
    .await;
    for (contact, company) in [(&primary, &acme), (&other, &globex)] {
        let link =
            format!("/crm/v4/objects/contacts/{contact}/associations/default/companies/{company}");
        assert_eq!(api.put(&link).await.status, 200);
    }

    let merged = api
        .post(
            &format!("{CONTACTS}/merge"),
            json!({ "primaryObjectId": primary, "objectIdToMerge": other }),
        )
        .await;
    assert_eq!(merged.status, 200, "{}", merged.body);
    let new_id = merged.body["id"].as_str().unwrap().to_owned();
    assert!(new_id != primary && new_id != other, "{new_id}");
    let properties = &merged.body["properties"];
    assert_eq!(properties["hs_object_id"], new_id.as_str());
    assert_eq!(properties["email"], "jane@acme.io", "primary wins");
    assert_eq!(properties["firstname"], "Jane", "primary wins");
    assert_eq!(properties["lastname"], "Doe", "the other fills gaps");
    assert_eq!(properties["lago_customer_id"], "cus_1");
    assert_eq!(properties["hs_additional_emails"], "j.doe@globex.com");
    let mut old = [primary.clone(), other.clone()];
    old.sort_by_key(|id| id.parse::<u64>().unwrap());
    assert_eq!(properties["hs_merged_object_ids"], old.join(";"));
    assert_eq!(merged.body["archived"], false);

    // Both old ids read, update and associate the merged record.
    for old_id in [&primary, &other] {
        let read = api.get(&format!("{CONTACTS}/{old_id}")).await;
        assert_eq!(read.status, 200, "{}", read.body);
        assert_eq!(read.body["id"], new_id.as_str());
    }
    let patched = api
        .patch(
            &format!("{CONTACTS}/{other}"),
            json!({ "properties": { "jobtitle": "CFO" } }),
        )
        .await;
    assert_eq!(patched.body["id"], new_id.as_str());
    assert_eq!(
        hubspot.record("contacts", &new_id).unwrap().properties["jobtitle"],
        "CFO"
    );
    assert_eq!(hubspot.record("contacts", &primary).unwrap().id, new_id);
    assert_eq!(
        hubspot.associations("contacts", &new_id, "companies"),
        vec![acme.clone(), globex.clone()]
    );
    assert_eq!(
        hubspot.associations("companies", &globex, "contacts"),
        vec![new_id.clone()]
    );
    let batch = api
        .post(
            "/crm/v4/associations/companies/contacts/batch/associate/default",
            json!({ "inputs": [{ "from": { "id": acme }, "to": { "id": primary } }] }),
        )
        .await;
    assert_eq!(batch.status, 200, "{}", batch.body);
    // Results come in no particular order: both directions name the new id.
    let linked: BTreeSet<&str> = batch.body["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|result| [&result["from"]["id"], &result["to"]["id"]])
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(linked, BTreeSet::from([acme.as_str(), new_id.as_str()]));
    assert_eq!(hubspot.records("contacts").len(), 1);

    // Unique values belong to the merged record, the other's email included.
    let by_old_email = api
        .get(&format!("{CONTACTS}/J.Doe@globex.com?idProperty=email"))
        .await;
    assert_eq!(by_old_email.body["id"], new_id.as_str());
    let taken = api
        .post(
            CONTACTS,
            json!({ "properties": { "email": "j.doe@globex.com" } }),
        )
        .await;
    assert_error(&taken, 409, "CONFLICT", &conflict_message(&new_id));
    let upsert = api
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [{ "id": "cus_1", "idProperty": "lago_customer_id",
                                 "properties": { "lastname": "Dupont" } }] }),
        )
        .await;
    assert_eq!(upsert.body["results"][0]["id"], new_id.as_str());
    assert_eq!(upsert.body["results"][0]["new"], false);
    // The losing lago_customer_id is dropped, so free again.
    let freed = api
        .post(
            &format!("{CONTACTS}/batch/upsert"),
            json!({ "inputs": [{ "id": "cus_2", "idProperty": "lago_customer_id",
                                 "properties": {} }] }),
        )
        .await;
    assert_eq!(freed.body["results"][0]["new"], true);

    // Merging again through an old id chains: every earlier id reaches the newest record.
    let third = freed.body["results"][0]["id"].as_str().unwrap().to_owned();
    let again = api
        .post(
            &format!("{CONTACTS}/merge"),
            json!({ "primaryObjectId": third, "objectIdToMerge": primary }),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.body);
    let newest = again.body["id"].as_str().unwrap();
    let listed: Vec<&str> = again.body["properties"]["hs_merged_object_ids"]
        .as_str()
        .unwrap()
        .split(';')
        .collect();
    for id in [&primary, &other, &new_id, &third] {
        assert!(listed.contains(&id.as_str()), "{listed:?} lacks {id}");
        let read = api.get(&format!("{CONTACTS}/{id}")).await;
        assert_eq!(read.body["id"], newest);
    }
}

#[tokio::test]
async fn merge_refusals_and_company_merges() {
    let (hubspot, api) = start().await;
    let a = create_company(&api, json!({ "name": "Acme", "domain": "acme.io" })).await;
    let b = create_company(&api, json!({ "name": "Acme Inc", "city": "Paris" })).await;
    let path = format!("{COMPANIES}/merge");

    let itself = api
        .post(&path, json!({ "primaryObjectId": a, "objectIdToMerge": a }))
        .await;
    assert_eq!(itself.status, 400, "{}", itself.body);
    assert_eq!(itself.body["category"], "VALIDATION_ERROR");
    let missing = api
        .post(
            &path,
            json!({ "primaryObjectId": a, "objectIdToMerge": "424242" }),
        )
        .await;
    assert_error(
        &missing,
        404,
        "OBJECT_NOT_FOUND",
        "Object not found.  objectId are usually numeric.",
    );
    let incomplete = api.post(&path, json!({ "primaryObjectId": a })).await;
    assert_error(
        &incomplete,
        400,
        "VALIDATION_ERROR",
        "Missing required field(s): objectIdToMerge",
    );
    let schema = api
        .post("/crm-object-schemas/v3/schemas", super::invoices_schema())
        .await;
    let invoices = schema.body["objectTypeId"].as_str().unwrap();
    let custom = api
        .post(
            &format!("/crm/v3/objects/{invoices}/merge"),
            json!({ "primaryObjectId": "1", "objectIdToMerge": "2" }),
        )
        .await;
    assert_eq!(custom.status, 400, "{}", custom.body);
    assert_eq!(hubspot.records("companies").len(), 2);

    let merged = api
        .post(
            &path,
            json!({ "primaryObjectId": b.parse::<u64>().unwrap(), "objectIdToMerge": a }),
        )
        .await;
    assert_eq!(merged.status, 200, "{}", merged.body);
    assert_eq!(merged.body["properties"]["name"], "Acme Inc");
    assert_eq!(merged.body["properties"]["domain"], "acme.io");
    assert_eq!(merged.body["properties"]["city"], "Paris");
    assert!(
        merged.body["properties"]
            .get("hs_additional_emails")
            .is_none()
    );
    assert_eq!(hubspot.records("companies").len(), 1);
}

// ---------------------------------------------------------------- 6. search

async fn search(api: &Api, object_type: &str, body: Value) -> Reply {
    api.post(&format!("/crm/v3/objects/{object_type}/search"), body)
        .await
}

fn eq(property: &str, value: &str) -> Value {
    json!({ "filters": [{ "propertyName": property, "operator": "EQ", "value": value }] })
}

#[tokio::test]
async fn search_filters_pages_and_returns_hubspots_shape() {
    let (_hubspot, api) = start().await;
    for n in 0..7 {
        create_company(
            &api,
            json!({ "name": format!("Company {n}"), "domain": format!("c{}.io", n % 3),
                    "numberofemployees": n * 10 }),
        )
        .await;
    }
    let kenji = create_contact(
        &api,
        json!({ "email": KENJI_EMAIL, "firstname": "Kenji", "lastname": "Tanaka" }),
    )
    .await;
    create_contact(&api, json!({ "firstname": "Samir" })).await;

    let by_email = search(
        &api,
        "contacts",
        json!({ "filterGroups": [eq("email", "Kenji.Tanaka@example.jp")],
                "properties": ["email", "lastname"] }),
    )
    .await;
    assert_eq!(by_email.status, 200, "{}", by_email.body);
    assert_eq!(by_email.body["total"], 1);
    assert!(by_email.body.get("paging").is_none());
    let found = &by_email.body["results"][0];
    assert_eq!(found["id"], kenji.as_str());
    assert_eq!(found["properties"]["lastname"], "Tanaka");
    assert_eq!(found["archived"], false);
    assert!(!by_email.headers.contains_key("x-hubspot-ratelimit-max"));

    let by_domain = search(
        &api,
        "companies",
        json!({ "filterGroups": [eq("domain", "c1.io")], "properties": ["name", "domain"],
                "limit": 2 }),
    )
    .await;
    assert_eq!(by_domain.body["total"], 2, "{}", by_domain.body);
    assert_eq!(by_domain.body["results"].as_array().unwrap().len(), 2);

    // ORed groups, ANDed filters, one sort, paging by `after`.
    let body = |after: Option<&str>| {
        let mut body = json!({
            "filterGroups": [
                { "filters": [
                    { "propertyName": "numberofemployees", "operator": "GTE", "value": "20" },
                    { "propertyName": "domain", "operator": "NEQ", "value": "c2.io" } ] },
                eq("name", "Company 0"),
            ],
            "sorts": [{ "propertyName": "numberofemployees", "direction": "DESCENDING" }],
            "properties": ["name"],
            "limit": 2,
        });
        if let Some(after) = after {
            body["after"] = json!(after);
        }
        body
    };
    let first = search(&api, "companies", body(None)).await;
    assert_eq!(first.body["total"], 4, "{}", first.body);
    let names = |reply: &Reply| -> Vec<String> {
        reply.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["properties"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["Company 6", "Company 4"]);
    let after = first.body["paging"]["next"]["after"].as_str().unwrap();
    assert_eq!(after, "2");
    let second = search(&api, "companies", body(Some(after))).await;
    assert_eq!(names(&second), ["Company 3", "Company 0"]);
    assert!(second.body.get("paging").is_none());

    let operators = search(
        &api,
        "contacts",
        json!({ "filterGroups": [{ "filters": [
            { "propertyName": "email", "operator": "NOT_HAS_PROPERTY" } ] }] }),
    )
    .await;
    assert_eq!(operators.body["total"], 1);
    let listed = search(
        &api,
        "companies",
        json!({ "filterGroups": [{ "filters": [
            { "propertyName": "domain", "operator": "IN", "values": ["c0.io", "C1.io"] } ] }] }),
    )
    .await;
    assert_eq!(listed.body["total"], 3, "IN values are not case-folded");
    let query = search(&api, "contacts", json!({ "query": "tanaka" })).await;
    assert_eq!(query.body["total"], 1);
    let everything = search(&api, "companies", json!({})).await;
    assert_eq!(everything.body["total"], 7);
    assert_eq!(everything.body["results"].as_array().unwrap().len(), 7);
    let default_page = search(&api, "companies", json!({ "limit": null, "after": 5 })).await;
    assert_eq!(default_page.body["results"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn search_refuses_what_hubspot_refuses() {
    let (_hubspot, api) = start().await;
    let five_groups: Vec<Value> = (0..6).map(|n| eq("name", &n.to_string())).collect();
    let too_many_filters: Vec<Value> = (0..7)
        .map(|n| json!({ "propertyName": "name", "operator": "EQ", "value": n.to_string() }))
        .collect();
    let cases = [
        json!({ "limit": 201 }),
        json!({ "after": "9950", "limit": 100 }),
        json!({ "filterGroups": five_groups }),
        json!({ "filterGroups": [{ "filters": too_many_filters }] }),
        json!({ "filterGroups": [{ "filters": [
            { "propertyName": "name", "operator": "LIKE", "value": "x" } ] }] }),
        json!({ "filterGroups": [eq("no_such_property", "x")] }),
        json!({ "filterGroups": [{ "filters": [{ "propertyName": "name", "operator": "EQ" }] }] }),
        json!({ "sorts": ["name", "-domain"] }),
        json!({ "query": "x".repeat(3_001) }),
    ];
    for body in cases {
        let reply = search(&api, "companies", body.clone()).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert_eq!(reply.body["category"], "VALIDATION_ERROR", "{body}");
    }
    let unknown = search(&api, "butterflies", json!({})).await;
    assert_eq!(unknown.status, 400);
}

async fn start_with(faults: Faults) -> (RunningEmulator, Api) {
    let hubspot = Emulator::start(EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts");
    let api = Api::new(&hubspot);
    (hubspot, api)
}

#[tokio::test]
async fn search_has_its_own_limit_of_five_per_second() {
    let (hubspot, api) = start_with(Faults {
        rate_limit: Some(RateLimit {
            max: 100,
            interval_ms: 10_000,
        }),
        ..Faults::default()
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(search(&api, "contacts", json!({})).await);
    }
    let codes: Vec<u16> = statuses.iter().map(|reply| reply.status).collect();
    assert_eq!(codes, [200, 200, 200, 200, 200, 429]);
    let limited = &statuses[5];
    assert_eq!(limited.body["policyName"], "SECONDLY");
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.message(), "You have reached your secondly limit.");
    assert!(
        !limited
            .headers
            .contains_key("x-hubspot-ratelimit-remaining")
    );
    // Searches do not spend the burst window; other calls still go through and report it.
    let read = api.get("/crm/v3/properties/contacts").await;
    assert_eq!(read.status, 200);
    assert_eq!(read.headers["x-hubspot-ratelimit-remaining"], "99");
    assert_eq!(
        hubspot.request_log()[5].fault,
        Some(crate::hubspot::InjectedFault::RateLimited)
    );

    // Without any rate limit, searches are not limited either.
    let (_free, api) = start_with(Faults::default()).await;
    for _ in 0..8 {
        assert_eq!(search(&api, "contacts", json!({})).await.status, 200);
    }
}

// ---------------------------------------------------------------- 7. seeding

#[tokio::test]
async fn seeded_portals_are_validated_all_or_nothing() {
    let (hubspot, api) = start().await;
    let seeded = hubspot
        .seed_records(
            "contacts",
            vec![
                json!({ "email": "a@acme.io" }),
                json!({ "firstname": "No email" }),
            ],
        )
        .expect("seeded");
    assert_eq!(seeded.len(), 2);
    assert_ne!(seeded[0].id, seeded[1].id);
    let conflict = api
        .post(CONTACTS, json!({ "properties": { "email": "A@acme.io" } }))
        .await;
    assert_error(&conflict, 409, "CONFLICT", &conflict_message(&seeded[0].id));

    for refused in [
        vec![
            json!({ "email": "b@acme.io" }),
            json!({ "email": "x@acme.con" }),
        ],
        vec![
            json!({ "email": "c@acme.io" }),
            json!({ "email": "a@acme.io" }),
        ],
        vec![
            json!({ "email": "d@acme.io" }),
            json!({ "lago_customer_id": "x" }),
        ],
        vec![json!("not an object")],
    ] {
        assert!(hubspot.seed_records("contacts", refused).is_err());
    }
    assert_eq!(hubspot.records("contacts").len(), 2, "nothing half-seeded");

    let seed: Seed = serde_json::from_value(json!({
        "companies": [{ "id": 9000001, "properties": { "name": "Globex", "domain": "globex.example" } }],
        "contacts": [{ "id": "1000100", "properties": { "email": "ap@globex.com" } }],
        "associations": [{ "from": { "type": "contacts", "id": "1000100" },
                           "to": { "type": "companies", "id": "9000001" } }],
    }))
    .expect("seed format");
    let path = std::env::temp_dir().join(format!("seed-{}.json", std::process::id()));
    std::fs::write(&path, serde_json::to_string(&seed).unwrap()).unwrap();
    let args = <SeedArgsCli as clap::Parser>::parse_from([
        "emulator",
        "--seed",
        "7",
        "--seed-records",
        path.to_str().unwrap(),
    ]);
    let from_file = args
        .seed
        .apply(hubspot.emulator())
        .expect("seeded from file");
    std::fs::remove_file(&path).ok();
    let from_file = from_file.expect("a file was given");
    assert_eq!(from_file.companies[0].id, "9000001");
    assert_eq!(
        hubspot.associations("companies", "9000001", "contacts"),
        vec!["1000100".to_owned()]
    );
    // The same seed again collides on ids: refused, and nothing more is created.
    assert!(hubspot.seed(&seed).is_err());
    assert_eq!(hubspot.records("companies").len(), 1);
    assert!(serde_json::from_value::<Seed>(json!({ "deals": [] })).is_err());
}

/// `lago-hubspot emulator` flattens both: their flags must not clash.
#[derive(clap::Parser)]
struct SeedArgsCli {
    #[command(flatten)]
    faults: crate::hubspot::FaultArgs,
    #[command(flatten)]
    seed: SeedArgs,
}

#[tokio::test]
async fn the_lived_in_fixture_and_the_archive_and_merge_helpers() {
    let (hubspot, api) = start().await;
    let portal = fixtures::lived_in_portal(hubspot.emulator()).expect("seeded");
    assert_eq!(portal.globex.id, GLOBEX_COMPANY_ID);
    assert_eq!(portal.kenji.properties["email"], KENJI_EMAIL);
    assert!(!portal.samir.properties.contains_key("email"));
    for record in hubspot
        .records("contacts")
        .iter()
        .chain(&hubspot.records("companies"))
    {
        assert!(
            record
                .properties
                .keys()
                .all(|name| !name.starts_with("lago_")),
            "{record:?}"
        );
    }
    assert_eq!(
        hubspot.associations("contacts", &portal.peter.id, "companies"),
        vec![portal.initech.id.clone()]
    );
    let kenji = api
        .post(CONTACTS, json!({ "properties": { "email": KENJI_EMAIL } }))
        .await;
    assert_error(&kenji, 409, "CONFLICT", &conflict_message(&portal.kenji.id));

    let merged = hubspot
        .merge("companies", &portal.acme.id, &portal.initech.id)
        .expect("merged");
    assert_eq!(merged.properties["name"], "Acme Corporation");
    assert_eq!(
        hubspot.associations("contacts", &portal.peter.id, "companies"),
        vec![merged.id.clone()]
    );
    let read = api.get(&format!("{COMPANIES}/{}", portal.initech.id)).await;
    assert_eq!(read.body["id"], merged.id.as_str());

    hubspot
        .archive("contacts", &portal.kenji.id)
        .expect("archived");
    assert!(hubspot.archive("contacts", &portal.kenji.id).is_err());
    create_contact(&api, json!({ "email": KENJI_EMAIL })).await;
    assert!(
        hubspot
            .merge("contacts", &portal.peter.id, &portal.peter.id)
            .is_err()
    );
}
