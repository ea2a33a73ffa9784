//! Connection set-up: the `lago_*` properties on companies and contacts, the custom objects
//! (LagoSubscriptions, LagoInvoices, and LagoCreditNotes when credit notes sync) and the association
//! definitions between them. Reads what the account has and plans only what is missing, so a
//! second run plans nothing.

use crate::prelude::*;

use alloc::collections::BTreeSet;

use serde_json::Value;

use crate::hubspot::{SCHEMAS_PATH, create_properties, properties_path, push};
use crate::plan::{
    Connection, DefineAssociation, HttpMethod, IdRef, KnownId, Operation, Plan, PlanError,
    RecordKey, RecordKind, Request, Step, TargetedObject,
};
use crate::properties::{
    CREDIT_NOTES, CREDIT_NOTES_TO_INVOICES, CUSTOMER_PROPERTIES, CustomObject, INVOICES,
    INVOICES_TO_SUBSCRIPTIONS, ObjectAssociation, Property, SUBSCRIPTIONS, customer_property_group,
};

/// The reads deploy makes. Paths are on the HubSpot API (`/crm/v3/...`); the component build
/// sends them through `wasi:http`, tests answer them from fixtures.
pub trait HubspotReader {
    fn get_json(&mut self, path: &str) -> Result<Value, PlanError>;
}

pub fn plan(conn: &Connection, reader: &mut impl HubspotReader) -> Result<Plan, PlanError> {
    let mut plan = Plan::new(String::new(), Vec::new());
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
                .map(|p| p.definition(Some(customer_property_group(target)), None))
                .collect();
            let description = format!("create Lago properties on {}", target.path());
            plan.steps
                .push(create_properties(target.path(), definitions, description));
        }
    }

    let response = reader.get_json(SCHEMAS_PATH)?;
    let schemas = results(&response, SCHEMAS_PATH)?;
    let subscriptions = deploy_object(&SUBSCRIPTIONS, schemas, &mut plan, &mut planned)?;
    let invoices = deploy_object(&INVOICES, schemas, &mut plan, &mut planned)?;
    deploy_association(
        &INVOICES_TO_SUBSCRIPTIONS,
        (&invoices, &subscriptions),
        schemas,
        &mut plan,
        &mut planned,
    );
    // Opt-in: a portal of a connection that does not sync credit notes holds what Lago documents.
    if conn.sync_credit_notes {
        let credit_notes = deploy_object(&CREDIT_NOTES, schemas, &mut plan, &mut planned)?;
        deploy_association(
            &CREDIT_NOTES_TO_INVOICES,
            (&credit_notes, &invoices),
            schemas,
            &mut plan,
            &mut planned,
        );
    }

    plan.summary = if planned.is_empty() {
        format!("everything is in place on connection {}", conn.code)
    } else {
        format!("connection {}: create {}", conn.code, planned.join(", "))
    };
    Ok(plan)
}

/// A custom object's type id as later steps of the plan see it.
enum TypeId {
    /// The account has the object.
    Existing(String),
    /// Created by this plan: the result (`objectTypeId`) of the step creating it.
    Created(IdRef),
}

impl TypeId {
    fn id_ref(&self) -> IdRef {
        match self {
            Self::Existing(id) => IdRef::Known(id.clone()),
            Self::Created(step) => step.clone(),
        }
    }
}

/// Create the custom object, or learn its type id and add the properties it lacks (Lago itself
/// never adds later properties to an existing object, so old accounts reject newer fields).
fn deploy_object<T>(
    object: &CustomObject<T>,
    schemas: &[Value],
    plan: &mut Plan,
    planned: &mut Vec<String>,
) -> Result<TypeId, PlanError> {
    let key = RecordKey::new(RecordKind::ObjectSchema, object.name);
    let Some(schema) = schemas.iter().find(|s| s["name"] == object.name) else {
        planned.push(format!(
            "custom object {} ({} properties)",
            object.name,
            object.properties.len()
        ));
        // HubSpot's schema API has no operation of its own in the contract: a raw request.
        let create = Operation::Request(Request {
            method: HttpMethod::Post,
            path: SCHEMAS_PATH.to_owned(),
            query: Vec::new(),
            body: Some(object.schema()),
            accept_statuses: Vec::new(),
            result_pointer: Some("/objectTypeId".to_owned()),
        });
        let step = Step::new(create, format!("create custom object {}", object.name));
        let created = push(&mut plan.steps, step.store_as(key));
        return Ok(TypeId::Created(created));
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
            .map(|p| p.definition(Some(object.property_group), None))
            .collect();
        plan.steps.push(create_properties(
            type_id,
            definitions,
            format!("add missing properties to {}", object.name),
        ));
    }
    Ok(TypeId::Existing(type_id.to_owned()))
}

/// Define the association between two custom objects unless the account has it: a schema
/// created by this plan has none yet; an existing one lists its definitions under `associations`
/// (in either direction: HubSpot lists a pair on both schemas). A definition found is learned
/// under its key, so the host knows this portal has it.
fn deploy_association(
    association: &ObjectAssociation,
    (from, to): (&TypeId, &TypeId),
    schemas: &[Value],
    plan: &mut Plan,
    planned: &mut Vec<String>,
) {
    let key = RecordKey::new(RecordKind::ObjectSchema, association.key);
    if let (TypeId::Existing(from), TypeId::Existing(to)) = (from, to)
        && let Some(id) = existing_association(schemas, from, to)
    {
        plan.learned.push(KnownId {
            key,
            hubspot_id: id,
        });
        return;
    }
    planned.push(format!(
        "association {} ↔ {}",
        association.from, association.to
    ));
    let define = Operation::DefineAssociation(DefineAssociation {
        from_type: from.id_ref(),
        to_type: to.id_ref(),
    });
    let description = format!(
        "define the association {} ↔ {}",
        association.from, association.to
    );
    plan.steps
        .push(Step::new(define, description).store_as(key));
}

/// The id of a definition between `a` and `b` in any schema's `associations`, if there is one.
fn existing_association(schemas: &[Value], a: &str, b: &str) -> Option<String> {
    schemas
        .iter()
        .filter_map(|schema| schema["associations"].as_array())
        .flatten()
        .find(|definition| {
            let from = definition["fromObjectTypeId"].as_str();
            let to = definition["toObjectTypeId"].as_str();
            (from, to) == (Some(a), Some(b)) || (from, to) == (Some(b), Some(a))
        })
        .map(|definition| match &definition["id"] {
            Value::String(id) if !id.is_empty() => id.clone(),
            // Association definition ids are integers (`typeId`s).
            Value::Number(id) if id.is_u64() => id.as_u64().unwrap_or_default().to_string(),
            // Defined, whatever its id: the host only needs to know it is there.
            _ => format!("{a}/{b}"),
        })
}

fn results<'v>(response: &'v Value, path: &str) -> Result<&'v [Value], PlanError> {
    response["results"]
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| {
            PlanError::HubspotReadFailed(format!("GET {path} answered without a `results` list"))
        })
}

/// The `name`s of `items`, inserted one by one (collecting would sort them first).
fn names(items: &[Value]) -> BTreeSet<&str> {
    let mut names = BTreeSet::new();
    for name in items.iter().filter_map(|item| item["name"].as_str()) {
        names.insert(name);
    }
    names
}

/// The deployable rows of `rows` the account does not have yet.
fn missing<'p, T>(rows: &'p [Property<T>], existing: &BTreeSet<&str>) -> Vec<&'p Property<T>> {
    rows.iter()
        .filter(|p| !p.built_in && !existing.contains(p.name))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::*;
    use crate::test_support::{body, conn, path, request};

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

    /// `schema` with an association definition listed, as HubSpot lists them on a schema.
    fn associated(mut schema: Value, from: &str, to: &str, id: &str) -> Value {
        let definition = json!({"id": id, "fromObjectTypeId": from, "toObjectTypeId": to,
                                "name": format!("{from}_to_{to}")});
        match schema["associations"].as_array_mut() {
            Some(list) => list.push(definition),
            None => schema["associations"] = json!([definition]),
        }
        schema
    }

    /// LagoSubscriptions and LagoInvoices as this release deploys them (with their association).
    fn deployed_objects() -> Vec<Value> {
        vec![
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            associated(schema(&INVOICES, "2-200", &[]), "2-100", "2-200", "51"),
        ]
    }

    fn paths(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(path).collect()
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
        assert_eq!(
            paths(&plan),
            [
                "/crm/v3/properties/companies/batch/create",
                "/crm/v3/properties/contacts/batch/create",
                "/crm-object-schemas/v3/schemas",
                "/crm-object-schemas/v3/schemas",
                "/crm-object-schemas/v3/schemas/{{3}}/associations",
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
        assert!(matches!(
            plan.steps[0].operation,
            Operation::CreateProperties(_)
        ));
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
        let Operation::Request(create) = &plan.steps[2].operation else {
            panic!("{:?}", plan.steps[2])
        };
        assert_eq!(create.result_pointer.as_deref(), Some("/objectTypeId"));
        assert_eq!(
            plan.steps[2].store_as,
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
        assert!(plan.summary.contains("LagoInvoices"), "{}", plan.summary);

        // Both objects are created by this plan: the definition takes both captured type ids.
        let association = &plan.steps[4];
        assert_eq!(
            body(association),
            json!({"fromObjectTypeId": "{{3}}",
                   "toObjectTypeId": "{{2}}"})
        );
        assert_eq!(
            (
                matches!(association.operation, Operation::DefineAssociation(_)),
                association.store_as.clone()
            ),
            (
                true,
                Some(RecordKey::new(
                    RecordKind::ObjectSchema,
                    "LagoInvoices/LagoSubscriptions"
                ))
            )
        );
        assert!(
            plan.summary.contains("LagoInvoices ↔ LagoSubscriptions"),
            "{}",
            plan.summary
        );
        assert!(
            !plan.summary.contains("LagoCreditNotes"),
            "credit notes are opt-in: {}",
            plan.summary
        );
    }

    #[test]
    fn set_up_account_needs_nothing() {
        let mut schemas = deployed_objects();
        schemas.insert(0, json!({"name": "Unrelated", "objectTypeId": "2-9"}));
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
                KnownId {
                    key: RecordKey::new(RecordKind::ObjectSchema, "LagoInvoices/LagoSubscriptions"),
                    hubspot_id: "51".into()
                },
            ]
        );
    }

    #[test]
    fn existing_schema_gets_only_its_missing_properties() {
        let missing = ["lago_invoice_purchase_order_number", "lago_invoice_url"];
        let schemas = vec![
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            associated(schema(&INVOICES, "2-200", &missing), "2-100", "2-200", "51"),
        ];
        let plan = plan(&conn(), &mut account(&ALL_CUSTOMER, &ALL_CUSTOMER, schemas)).unwrap();
        let [step] = plan.steps.as_slice() else {
            panic!("{:?}", plan.steps)
        };
        assert_eq!(
            (request(step).0, path(step).as_str()),
            (HttpMethod::Post, "/crm/v3/properties/2-200/batch/create")
        );
        assert!(matches!(step.operation, Operation::CreateProperties(_)));
        let inputs = body(step)["inputs"].as_array().unwrap().clone();
        let names: Vec<_> = inputs.iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, missing);
        assert!(
            inputs
                .iter()
                .all(|p| p["groupName"] == "lagoinvoices_information")
        );
        assert_eq!(plan.learned.len(), 3);
    }

    #[test]
    fn one_missing_contact_property() {
        let contacts: Vec<_> = ALL_CUSTOMER
            .into_iter()
            .filter(|n| *n != "lago_tax_identification_number")
            .collect();
        let plan = plan(
            &conn(),
            &mut account(&ALL_CUSTOMER, &contacts, deployed_objects()),
        )
        .unwrap();
        assert_eq!(plan.steps.len(), 1);
        assert_eq!(
            body(&plan.steps[0])["inputs"][0]["name"],
            "lago_tax_identification_number"
        );
    }

    fn credit_notes_on() -> Connection {
        Connection {
            sync_credit_notes: true,
            ..conn()
        }
    }

    #[test]
    fn credit_notes_on_an_empty_account_get_their_object_and_associations() {
        let plan = plan(
            &credit_notes_on(),
            &mut account(&["name"], &["email"], vec![]),
        )
        .unwrap();
        assert_eq!(
            paths(&plan)[4..],
            [
                "/crm-object-schemas/v3/schemas/{{3}}/associations",
                "/crm-object-schemas/v3/schemas",
                "/crm-object-schemas/v3/schemas/{{5}}/associations",
            ]
        );
        let credit_notes = body(&plan.steps[5]);
        assert_eq!(credit_notes["name"], "LagoCreditNotes");
        assert_eq!(
            credit_notes["labels"],
            json!({"singular": "LagoCreditNote", "plural": "LagoCreditNotes"})
        );
        assert_eq!(
            credit_notes["primaryDisplayProperty"],
            "lago_credit_note_number"
        );
        assert_eq!(
            credit_notes["requiredProperties"],
            json!(["lago_credit_note_id"])
        );
        assert_eq!(
            credit_notes["associatedObjects"],
            json!(["COMPANY", "CONTACT"])
        );
        let properties = credit_notes["properties"].as_array().unwrap();
        assert_eq!(properties.len(), 14);
        let unique: Vec<_> = properties
            .iter()
            .filter(|p| p["hasUniqueValue"] == true)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(unique, ["lago_credit_note_id"]);
        assert!(
            properties
                .iter()
                .filter(|p| p["searchableInGlobalSearch"] == true)
                .count()
                <= 3
        );
        assert_eq!(
            plan.steps[5].store_as,
            Some(RecordKey::new(RecordKind::ObjectSchema, "LagoCreditNotes"))
        );
        assert_eq!(
            body(&plan.steps[6]),
            json!({"fromObjectTypeId": "{{5}}",
                   "toObjectTypeId": "{{3}}"})
        );
        assert_eq!(
            plan.steps[6].store_as,
            Some(RecordKey::new(
                RecordKind::ObjectSchema,
                "LagoCreditNotes/LagoInvoices"
            ))
        );
    }

    /// A portal deployed by the previous release: both objects, no association definition, no
    /// LagoCreditNotes. Existing type ids go in as they are, new ones as the results of earlier steps.
    #[test]
    fn a_portal_deployed_before_gets_the_definitions_and_credit_notes_it_lacks() {
        let schemas = vec![
            schema(&SUBSCRIPTIONS, "2-100", &[]),
            // Company and contact definitions only, as Lago's own deploy leaves them.
            associated(schema(&INVOICES, "2-200", &[]), "0-2", "2-200", "40"),
        ];
        let plan = plan(
            &credit_notes_on(),
            &mut account(&ALL_CUSTOMER, &ALL_CUSTOMER, schemas),
        )
        .unwrap();
        assert_eq!(
            paths(&plan),
            [
                "/crm-object-schemas/v3/schemas/2-200/associations",
                "/crm-object-schemas/v3/schemas",
                "/crm-object-schemas/v3/schemas/{{1}}/associations",
            ]
        );
        assert_eq!(
            body(&plan.steps[0]),
            json!({"fromObjectTypeId": "2-200", "toObjectTypeId": "2-100"})
        );
        assert_eq!(
            body(&plan.steps[2]),
            json!({"fromObjectTypeId": "{{1}}", "toObjectTypeId": "2-200"})
        );
        assert_eq!(plan.learned.len(), 2, "{:?}", plan.learned);
    }

    #[test]
    fn definitions_are_found_in_either_direction_on_either_schema() {
        let schemas = vec![
            // As the subscriptions schema lists the pair: from the other side.
            associated(schema(&SUBSCRIPTIONS, "2-100", &[]), "2-200", "2-100", "61"),
            schema(&INVOICES, "2-200", &[]),
            associated(schema(&CREDIT_NOTES, "2-300", &[]), "2-300", "2-200", "62"),
        ];
        let plan = plan(
            &credit_notes_on(),
            &mut account(&ALL_CUSTOMER, &ALL_CUSTOMER, schemas),
        )
        .unwrap();
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        let learned: Vec<_> = plan
            .learned
            .iter()
            .map(|k| (k.key.lago_id.as_str(), k.hubspot_id.as_str()))
            .collect();
        assert_eq!(
            learned,
            [
                ("LagoSubscriptions", "2-100"),
                ("LagoInvoices", "2-200"),
                ("LagoInvoices/LagoSubscriptions", "61"),
                ("LagoCreditNotes", "2-300"),
                ("LagoCreditNotes/LagoInvoices", "62"),
            ]
        );
        // The same portal, credit notes off: LagoCreditNotes is left alone, not even learned.
        let plan = super::plan(
            &conn(),
            &mut account(
                &ALL_CUSTOMER,
                &ALL_CUSTOMER,
                vec![
                    associated(schema(&SUBSCRIPTIONS, "2-100", &[]), "2-200", "2-100", "61"),
                    schema(&INVOICES, "2-200", &[]),
                    schema(&CREDIT_NOTES, "2-300", &["lago_credit_note_reason"]),
                ],
            ),
        )
        .unwrap();
        assert!(plan.steps.is_empty(), "{:?}", plan.steps);
        assert_eq!(plan.learned.len(), 3);
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
