//! Connection set-up: the `lago_*` properties on companies and contacts and the two custom objects.
//! Reads what the account has and plans only what is missing, so a second run plans nothing.

use std::collections::HashSet;

use serde_json::Value;

use crate::hubspot::{SCHEMAS_PATH, create_properties, properties_path};
use crate::plan::{
    Connection, HttpMethod, KnownId, Plan, PlanError, RecordKey, RecordKind, Step, TargetedObject,
};
use crate::properties::{
    CUSTOMER_PROPERTIES, CustomObject, INVOICES, Property, SUBSCRIPTIONS, customer_property_group,
};

/// The reads deploy makes. Paths are on the HubSpot API (`/crm/v3/...`); the component build
/// sends them through `wasi:http`, tests answer them from fixtures.
pub trait HubspotReader {
    fn get_json(&mut self, path: &str) -> Result<Value, PlanError>;
}

pub fn plan(conn: &Connection, reader: &mut impl HubspotReader) -> Result<Plan, PlanError> {
    let mut plan = Plan::default();
    let mut planned = Vec::new();

    for target in [TargetedObject::Companies, TargetedObject::Contacts] {
        let path = properties_path(target.path());
        let response = reader.get_json(&path)?;
        let existing = names(results(&response, &path)?);
        let missing = missing(&CUSTOMER_PROPERTIES, &existing);
        if !missing.is_empty() {
            planned.push(format!("{} {} properties", missing.len(), target.noun()));
            let definitions = missing
                .iter()
                .map(|p| p.definition(Some(customer_property_group(target))))
                .collect();
            let description = format!("create Lago properties on {}", target.path());
            plan.steps
                .push(create_properties(target.path(), definitions, description));
        }
    }

    let response = reader.get_json(SCHEMAS_PATH)?;
    let schemas = results(&response, SCHEMAS_PATH)?;
    deploy_object(&SUBSCRIPTIONS, schemas, &mut plan, &mut planned)?;
    deploy_object(&INVOICES, schemas, &mut plan, &mut planned)?;

    plan.summary = if planned.is_empty() {
        format!("everything is in place on connection {}", conn.code)
    } else {
        format!("connection {}: create {}", conn.code, planned.join(", "))
    };
    Ok(plan)
}

/// Create the custom object, or learn its type id and add the properties it lacks (Lago itself
/// never adds later properties to an existing object, so old accounts reject newer fields).
fn deploy_object<T>(
    object: &CustomObject<T>,
    schemas: &[Value],
    plan: &mut Plan,
    planned: &mut Vec<String>,
) -> Result<(), PlanError> {
    let key = RecordKey::new(RecordKind::ObjectSchema, object.name);
    let Some(schema) = schemas.iter().find(|s| s["name"] == object.name) else {
        planned.push(format!(
            "custom object {} ({} properties)",
            object.name,
            object.properties.len()
        ));
        plan.steps.push(
            Step::new(
                HttpMethod::Post,
                SCHEMAS_PATH,
                format!("create custom object {}", object.name),
            )
            .json(&object.schema())
            .capture(object.type_id_capture, "/objectTypeId", Some(key)),
        );
        return Ok(());
    };
    let type_id = schema["objectTypeId"]
        .as_str()
        .filter(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        })
        .ok_or_else(|| {
            PlanError::HubspotReadFailed(format!(
                "schema {} in GET {SCHEMAS_PATH} has no usable objectTypeId",
                object.name
            ))
        })?;
    plan.learned.push(KnownId {
        key,
        hubspot_id: type_id.to_owned(),
    });

    let existing = names(
        schema["properties"]
            .as_array()
            .map_or(&[][..], Vec::as_slice),
    );
    let missing = missing(object.properties, &existing);
    if !missing.is_empty() {
        planned.push(format!("{} {} properties", missing.len(), object.name));
        let definitions = missing
            .iter()
            .map(|p| p.definition(Some(object.property_group)))
            .collect();
        plan.steps.push(create_properties(
            type_id,
            definitions,
            format!("add missing properties to {}", object.name),
        ));
    }
    Ok(())
}

fn results<'v>(response: &'v Value, path: &str) -> Result<&'v [Value], PlanError> {
    response["results"]
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| {
            PlanError::HubspotReadFailed(format!("GET {path} answered without a `results` list"))
        })
}

fn names(items: &[Value]) -> HashSet<&str> {
    items
        .iter()
        .filter_map(|item| item["name"].as_str())
        .collect()
}

/// The deployable rows of `rows` the account does not have yet.
fn missing<'p, T>(rows: &'p [Property<T>], existing: &HashSet<&str>) -> Vec<&'p Property<T>> {
    rows.iter()
        .filter(|p| !p.built_in && !existing.contains(p.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::test_support::{body, conn};

    /// Answers GETs from fixtures; anything else is a 404 as the component would report it.
    struct Fixtures(HashMap<&'static str, Value>);

    impl HubspotReader for Fixtures {
        fn get_json(&mut self, path: &str) -> Result<Value, PlanError> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| PlanError::HubspotReadFailed(format!("GET {path}: 404 not found")))
        }
    }

    fn property_list(names: &[&str]) -> Value {
        json!({ "results": names.iter().map(|n| json!({"name": n, "type": "string"})).collect::<Vec<_>>() })
    }

    fn schema<T>(object: &CustomObject<T>, type_id: &str, without: &[&str]) -> Value {
        let names: Vec<_> = object
            .properties
            .iter()
            .map(|p| p.name)
            .filter(|n| !without.contains(n))
            .collect();
        json!({"name": object.name, "objectTypeId": type_id, "fullyQualifiedName": format!("p1_{}", object.name),
               "properties": property_list(&names)["results"]})
    }

    fn account(companies: &[&str], contacts: &[&str], schemas: Vec<Value>) -> Fixtures {
        Fixtures(HashMap::from([
            ("/crm/v3/properties/companies", property_list(companies)),
            ("/crm/v3/properties/contacts", property_list(contacts)),
            (
                "/crm-object-schemas/v3/schemas",
                json!({ "results": schemas }),
            ),
        ]))
    }

    const ALL_CUSTOMER: [&str; 7] = [
        "name",
        "domain",
        "lago_customer_id",
        "lago_customer_external_id",
        "lago_billing_email",
        "lago_tax_identification_number",
        "lago_customer_link",
    ];

    #[test]
    fn empty_account_gets_everything() {
        let plan = plan(
            &conn(),
            &mut account(&["name", "domain"], &["email"], vec![]),
        )
        .unwrap();
        let paths: Vec<_> = plan.steps.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/crm/v3/properties/companies/batch/create",
                "/crm/v3/properties/contacts/batch/create",
                "/crm-object-schemas/v3/schemas",
                "/crm-object-schemas/v3/schemas",
            ]
        );
        assert!(plan.learned.is_empty());

        let companies = body(&plan.steps[0]);
        let inputs = companies["inputs"].as_array().unwrap();
        assert_eq!(inputs.len(), 5);
        assert_eq!(
            inputs[0],
            json!({"name": "lago_customer_id", "label": "Lago Customer Id", "type": "string", "fieldType": "text",
                   "hasUniqueValue": true, "groupName": "companyinformation",
                   "description": "Synced from Lago: customer.lago_id"})
        );
        assert!(
            inputs
                .iter()
                .all(|p| p["name"].as_str().unwrap().starts_with("lago_")),
            "built-ins are never deployed"
        );
        assert_eq!(plan.steps[0].accept_statuses, [409]);
        let contacts = body(&plan.steps[1]);
        assert_eq!(contacts["inputs"].as_array().unwrap().len(), 5);
        assert!(
            contacts["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["groupName"] == "contactinformation")
        );

        let subscriptions = body(&plan.steps[2]);
        assert_eq!(subscriptions["name"], "LagoSubscriptions");
        assert_eq!(
            subscriptions["labels"],
            json!({"singular": "LagoSubscription", "plural": "LagoSubscriptions"})
        );
        assert_eq!(
            subscriptions["primaryDisplayProperty"],
            "lago_subscription_id"
        );
        assert_eq!(
            subscriptions["secondaryDisplayProperties"],
            json!(["lago_external_subscription_id"])
        );
        assert_eq!(
            subscriptions["requiredProperties"],
            json!(["lago_subscription_id"])
        );
        assert_eq!(
            subscriptions["searchableProperties"],
            json!(["lago_subscription_id", "lago_external_subscription_id"])
        );
        assert_eq!(
            subscriptions["associatedObjects"],
            json!(["COMPANY", "CONTACT"])
        );
        let properties = subscriptions["properties"].as_array().unwrap();
        assert_eq!(properties.len(), 13);
        assert!(properties.iter().all(|p| p.get("groupName").is_none()));
        let capture = &plan.steps[2].captures[0];
        assert_eq!(
            (capture.name.as_str(), capture.pointer.as_str()),
            ("subscriptions_object_type_id", "/objectTypeId")
        );
        assert_eq!(
            capture.store_as,
            Some(RecordKey::new(
                RecordKind::ObjectSchema,
                "LagoSubscriptions"
            ))
        );

        let invoices = body(&plan.steps[3]);
        assert_eq!(invoices["name"], "LagoInvoices");
        assert_eq!(invoices["primaryDisplayProperty"], "lago_invoice_number");
        assert_eq!(
            invoices["secondaryDisplayProperties"],
            json!(["lago_invoice_status", "lago_invoice_id"])
        );
        assert_eq!(invoices["properties"].as_array().unwrap().len(), 15);
        let invoice_url = invoices["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "lago_invoice_url")
            .unwrap();
        assert_eq!(invoice_url["label"], "Lago Invoice Link");
        assert_eq!(plan.steps[3].captures[0].name, "invoices_object_type_id");
        assert!(plan.summary.contains("LagoInvoices"), "{}", plan.summary);
    }

    #[test]
    fn set_up_account_needs_nothing() {
        let schemas = vec![
            json!({"name": "Unrelated", "objectTypeId": "2-9"}),
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            schema(&INVOICES, "2-200", &[]),
        ];
        let plan = plan(&conn(), &mut account(&ALL_CUSTOMER, &ALL_CUSTOMER, schemas)).unwrap();
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert!(plan.summary.contains("everything is in place"));
        assert_eq!(
            plan.learned,
            [
                KnownId {
                    key: RecordKey::new(RecordKind::ObjectSchema, "LagoSubscriptions"),
                    hubspot_id: "2-100".into()
                },
                KnownId {
                    key: RecordKey::new(RecordKind::ObjectSchema, "LagoInvoices"),
                    hubspot_id: "2-200".into()
                },
            ]
        );
    }

    #[test]
    fn existing_schema_gets_only_its_missing_properties() {
        let missing = ["lago_invoice_purchase_order_number", "lago_invoice_url"];
        let schemas = vec![
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            schema(&INVOICES, "2-200", &missing),
        ];
        let plan = plan(&conn(), &mut account(&ALL_CUSTOMER, &ALL_CUSTOMER, schemas)).unwrap();
        let [step] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps)
        };
        assert_eq!(
            (step.method, step.path.as_str()),
            (HttpMethod::Post, "/crm/v3/properties/2-200/batch/create")
        );
        assert_eq!(step.accept_statuses, [409]);
        let inputs = body(step)["inputs"].as_array().unwrap().clone();
        let names: Vec<_> = inputs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, missing);
        assert!(
            inputs
                .iter()
                .all(|p| p["groupName"] == "lagoinvoices_information")
        );
        assert_eq!(plan.learned.len(), 2);
    }

    #[test]
    fn one_missing_contact_property() {
        let contacts: Vec<_> = ALL_CUSTOMER
            .into_iter()
            .filter(|n| *n != "lago_tax_identification_number")
            .collect();
        let schemas = vec![
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            schema(&INVOICES, "2-200", &[]),
        ];
        let plan = plan(&conn(), &mut account(&ALL_CUSTOMER, &contacts, schemas)).unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(
            body(&plan.steps[0])["inputs"][0]["name"],
            "lago_tax_identification_number"
        );
    }

    #[test]
    fn read_failures_and_odd_answers_are_reported() {
        let mut reader = Fixtures(HashMap::new());
        assert!(
            matches!(plan(&conn(), &mut reader), Err(PlanError::HubspotReadFailed(m)) if m.contains("404"))
        );

        let mut reader = account(&ALL_CUSTOMER, &ALL_CUSTOMER, vec![]);
        reader
            .0
            .insert("/crm-object-schemas/v3/schemas", json!({"status": "error"}));
        assert!(
            matches!(plan(&conn(), &mut reader), Err(PlanError::HubspotReadFailed(m)) if m.contains("results"))
        );

        let bad = json!({"name": "LagoInvoices", "objectTypeId": "2-1/../../x"});
        let mut reader = account(&ALL_CUSTOMER, &ALL_CUSTOMER, vec![bad]);
        assert!(
            matches!(plan(&conn(), &mut reader), Err(PlanError::HubspotReadFailed(m)) if m.contains("objectTypeId"))
        );
    }
}
