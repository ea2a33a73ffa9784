//! `customer.created` / `customer.updated` → a HubSpot company or contact, and the customer
//! resolution that subscriptions and invoices share.

use crate::prelude::*;

use crate::hubspot;
use crate::lago::{Customer, Incoming, IntegrationCustomer, read_event, required};
use crate::plan::{
    Connection, IdRef, KnownId, Plan, PlanError, RecordKey, Step, TargetedObject, find_known,
};
use crate::properties::{Source, customer_properties, values};
use crate::webhooks::Handler;

pub fn plan(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    let customer = match read_event::<Customer>(payload, Handler::Customer)? {
        Incoming::Object(event) => event.object,
        Incoming::Skip(reason) => return Ok(Plan::skip(reason)),
    };
    let lago_id = required(&customer.lago_id, "customer.lago_id")?;
    let target = match decide(conn, known, &customer, lago_id)? {
        Decision::Skip(reason) => return Ok(Plan::skip(reason)),
        Decision::Sync(target) => target,
    };
    let summary = format!(
        "{} for Lago customer {}",
        target.describe(),
        display_name(&customer, lago_id)
    );
    Ok(Plan::new(
        summary,
        vec![write_step(conn, &customer, lago_id, &target)],
    ))
}

/// Where a Lago customer lives in HubSpot for this connection.
pub(crate) struct Target {
    pub object: TargetedObject,
    /// The HubSpot record the customer was linked to in Lago (`external_customer_id`).
    pub linked_record: Option<String>,
}

impl Target {
    fn describe(&self) -> String {
        match &self.linked_record {
            Some(id) => format!("update linked HubSpot {} {id}", self.object.noun()),
            None => format!("upsert HubSpot {}", self.object.noun()),
        }
    }
}

pub(crate) enum Decision {
    Skip(String),
    Sync(Target),
}

/// Whether the customer is synced on this connection, and as what.
pub(crate) fn decide(
    conn: &Connection,
    known: &[KnownId],
    customer: &Customer,
    lago_id: &str,
) -> Result<Decision, PlanError> {
    let who = display_name(customer, lago_id);
    if customer.account_type.as_deref() == Some("partner") {
        return Ok(Decision::Skip(format!(
            "Lago customer {who} is a partner account; partners are not synced"
        )));
    }
    let link = hubspot_link(conn, customer);
    // A customer the host already holds an id for was synced before, whatever this payload says:
    // customers embedded in subscription and invoice events carry no `integration_customers`.
    let known_as = [TargetedObject::Companies, TargetedObject::Contacts]
        .into_iter()
        .find(|t| find_known(known, t.record_kind(), lago_id).is_some());
    if link.is_none() && known_as.is_none() && !conn.sync_unlinked_customers {
        return Ok(Decision::Skip(format!(
            "Lago customer {who} is not linked to HubSpot connection {} and sync_unlinked_customers is off",
            conn.code
        )));
    }
    let object = link
        .and_then(|l| TargetedObject::parse(l.targeted_object.as_deref()?))
        .or(known_as)
        .or(match customer.customer_type.as_deref() {
            Some("company") => Some(TargetedObject::Companies),
            Some("individual") => Some(TargetedObject::Contacts),
            _ => None,
        })
        .unwrap_or(conn.default_targeted_object);
    let linked_record = link
        .and_then(|l| l.external_customer_id.as_deref())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(|id| {
            // It becomes part of a request path, and people paste record URLs into Lago.
            if id.bytes().all(|b| b.is_ascii_digit()) {
                Ok(id.to_owned())
            } else {
                Err(PlanError::MalformedPayload(format!(
                    "Lago customer {who} is linked to HubSpot record \"{id}\", which is not a HubSpot record id (digits only)"
                )))
            }
        })
        .transpose()?;
    Ok(Decision::Sync(Target {
        object,
        linked_record,
    }))
}

/// The customer's HubSpot entry for this connection, by the one link rule.
fn hubspot_link<'a>(conn: &Connection, customer: &'a Customer) -> Option<&'a IntegrationCustomer> {
    crate::lago::hubspot_link(customer, &conn.code, conn.sole_connection)
}

/// The write that creates or updates the customer's record, storing its HubSpot id.
pub(crate) fn write_step(
    conn: &Connection,
    customer: &Customer,
    lago_id: &str,
    target: &Target,
) -> Step {
    let source = Source {
        lago: customer,
        conn,
        customer_lago_id: lago_id,
    };
    let properties = values(customer_properties(target.object), &source);
    let object = target.object;
    let key = RecordKey::new(object.record_kind(), lago_id);
    match &target.linked_record {
        Some(id) => hubspot::update(object.path(), id, properties, key, target.describe()),
        None => hubspot::upsert(
            object.path(),
            "lago_customer_id",
            lago_id,
            properties,
            key,
            target.describe(),
        ),
    }
}

/// The HubSpot customer a subscription or invoice is associated with.
pub(crate) struct Owner {
    pub object: TargetedObject,
    /// A known record id, or the result of the step that writes the customer first.
    pub hubspot_id: IdRef,
    pub lago_id: String,
}

impl Owner {
    pub fn describe(&self) -> String {
        if let IdRef::Known(id) = &self.hubspot_id {
            format!("{} {id}", self.object.noun())
        } else {
            format!(
                "the {} of Lago customer {} (written first)",
                self.object.noun(),
                self.lago_id
            )
        }
    }
}

pub(crate) enum Ownership {
    Skip(String),
    Ready(Owner),
}

/// Resolve the owner of a `record` ("subscription", "invoice") from its embedded customer, or,
/// without one, from the host's known ids. An owner HubSpot has not seen yet is written first (an
/// upsert appended to `steps`), so an event that overtakes its `customer.created` never creates a
/// duplicate.
pub(crate) fn owner(
    steps: &mut Vec<Step>,
    conn: &Connection,
    known: &[KnownId],
    embedded: Option<&Customer>,
    lago_customer_id: Option<&str>,
    record: &str,
) -> Result<Ownership, PlanError> {
    let Some(customer) = embedded else {
        let lago_id = lago_customer_id.map(str::trim).filter(|id| !id.is_empty()).ok_or_else(|| {
            PlanError::MissingField(format!("{record}.customer: the payload names no customer to associate the {record} with"))
        })?;
        return [TargetedObject::Companies, TargetedObject::Contacts]
            .into_iter()
            .find_map(|object| {
                let id = find_known(known, object.record_kind(), lago_id)?;
                Some(Ownership::Ready(Owner { object, hubspot_id: IdRef::Known(id.to_owned()), lago_id: lago_id.to_owned() }))
            })
            .ok_or_else(|| {
                PlanError::MissingField(format!(
                    "{record}.customer is not in the payload and Lago customer {lago_id} has not been synced; sync the customer first"
                ))
            });
    };
    let lago_id = required(&customer.lago_id, &format!("{record}.customer.lago_id"))?;
    let target = match decide(conn, known, customer, lago_id)? {
        Decision::Skip(reason) => {
            return Ok(Ownership::Skip(format!("{record} not synced: {reason}")));
        }
        Decision::Sync(target) => target,
    };
    let object = target.object;
    let existing = target
        .linked_record
        .clone()
        .or_else(|| find_known(known, object.record_kind(), lago_id).map(str::to_owned));
    let hubspot_id = match existing {
        Some(id) => IdRef::Known(id),
        None => hubspot::push(steps, write_step(conn, customer, lago_id, &target)),
    };
    Ok(Ownership::Ready(Owner {
        object,
        hubspot_id,
        lago_id: lago_id.to_owned(),
    }))
}

fn display_name(customer: &Customer, lago_id: &str) -> String {
    match customer.external_id.as_deref().filter(|id| !id.is_empty()) {
        Some(external_id) => format!("{external_id} ({lago_id})"),
        None => lago_id.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::plan::{HttpMethod, RecordKind};
    use crate::test_support::*;

    fn acme() -> serde_json::Value {
        json!({
            "lago_id": ACME, "external_id": "acme-1", "account_type": "customer", "customer_type": "company",
            "name": "Acme Corp", "legal_name": "Acme Corporation SAS", "email": "billing@acme.test, finance@acme.test",
            "url": "https://www.Acme.test/pricing", "phone": "+33 1 23 45 67 89", "tax_identification_number": "FR123",
            "integration_customers": []
        })
    }

    fn run(conn: &Connection, customer: serde_json::Value) -> Plan {
        plan(conn, &[], &event("customer.created", "customer", customer)).unwrap()
    }

    #[test]
    fn company_is_upserted_on_lago_customer_id() {
        let plan = run(&conn(), acme());
        assert_eq!(plan.steps.len(), 1);
        let step = &plan.steps[0];
        assert_eq!(
            (request(step).0, path(step).as_str()),
            (HttpMethod::Post, "/crm/v3/objects/companies/batch/upsert")
        );
        assert_eq!(
            body(step),
            json!({"inputs": [{"idProperty": "lago_customer_id", "id": ACME, "properties": {
                "lago_customer_id": ACME,
                "lago_customer_external_id": "acme-1",
                "lago_billing_email": "billing@acme.test, finance@acme.test",
                "lago_tax_identification_number": "FR123",
                "lago_customer_link": format!("https://app.lago.test/acme-org/customer/{ACME}"),
                "name": "Acme Corp",
                "domain": "www.acme.test",
            }}]})
        );
        assert_eq!(
            step.store_as,
            Some(RecordKey::new(RecordKind::Company, ACME))
        );
        assert!(plan.summary.contains("acme-1"), "{}", plan.summary);
    }

    #[test]
    fn individual_becomes_a_contact_with_its_first_email() {
        let customer = json!({
            "lago_id": JANE, "external_id": "jane", "customer_type": "individual", "firstname": "Jane", "lastname": "Doe",
            "email": "jane@doe.test,jane.doe@work.test", "phone": "+1 555 0100", "legal_name": "Doe Consulting",
            "url": "doe.test/about"
        });
        let step = &run(&conn(), customer).steps[0];
        assert_eq!(path(step), "/crm/v3/objects/contacts/batch/upsert");
        let properties = &body(step)["inputs"][0]["properties"];
        assert_eq!(properties["email"], "jane@doe.test");
        assert_eq!(
            properties["lago_billing_email"],
            "jane@doe.test,jane.doe@work.test"
        );
        assert_eq!(properties["firstname"], "Jane");
        assert_eq!(properties["lastname"], "Doe");
        assert_eq!(properties["phone"], "+1 555 0100");
        assert_eq!(properties["company"], "Doe Consulting");
        assert_eq!(properties["website"], "doe.test");
        assert_eq!(properties["lago_tax_identification_number"], "");
        assert!(properties.get("name").is_none() && properties.get("domain").is_none());
        assert_eq!(
            step.store_as,
            Some(RecordKey::new(RecordKind::Contact, JANE))
        );
    }

    #[test]
    fn explicit_link_target_beats_customer_type() {
        let mut customer = acme();
        customer["integration_customers"] =
            json!([hubspot_link_json("hubspot-prod", None, Some("contacts"))]);
        assert_eq!(
            path(&run(&conn(), customer).steps[0]),
            "/crm/v3/objects/contacts/batch/upsert"
        );
    }

    #[test]
    fn without_customer_type_the_connection_default_decides() {
        let mut customer = acme();
        customer["customer_type"] = json!(null);
        let mut c = conn();
        for (default, expected) in [
            (
                TargetedObject::Contacts,
                "/crm/v3/objects/contacts/batch/upsert",
            ),
            (
                TargetedObject::Companies,
                "/crm/v3/objects/companies/batch/upsert",
            ),
        ] {
            c.default_targeted_object = default;
            assert_eq!(path(&run(&c, customer.clone()).steps[0]), expected);
        }
    }

    #[test]
    fn a_customer_known_as_contact_stays_a_contact() {
        let known = [known(RecordKind::Contact, ACME, "77")];
        let plan = plan(
            &conn(),
            &known,
            &event("customer.updated", "customer", acme()),
        )
        .unwrap();
        assert_eq!(
            path(&plan.steps[0]),
            "/crm/v3/objects/contacts/batch/upsert"
        );
    }

    #[test]
    fn linked_record_is_patched_in_place() {
        let mut customer = acme();
        customer["integration_customers"] =
            json!([hubspot_link_json("hubspot-prod", Some("9000001"), None)]);
        let plan = run(&conn(), customer);
        let step = &plan.steps[0];
        assert_eq!(
            (request(step).0, path(step).as_str()),
            (HttpMethod::Patch, "/crm/v3/objects/companies/9000001")
        );
        let body = body(step);
        assert_eq!(body["properties"]["lago_customer_id"], ACME);
        assert_eq!(body["properties"]["name"], "Acme Corp");
        assert!(body.get("inputs").is_none());
        assert_eq!(
            step.store_as,
            Some(RecordKey::new(RecordKind::Company, ACME))
        );
        assert!(plan.summary.contains("9000001"), "{}", plan.summary);
    }

    #[test]
    fn a_pasted_url_is_not_taken_as_a_record_id() {
        let mut customer = acme();
        let url = "https://app.hubspot.com/contacts/1/record/0-2/9000001";
        customer["integration_customers"] =
            json!([hubspot_link_json("hubspot-prod", Some(url), None)]);
        let error = plan(
            &conn(),
            &[],
            &event("customer.created", "customer", customer),
        )
        .unwrap_err();
        assert!(
            matches!(error, PlanError::MalformedPayload(m) if m.contains("not a HubSpot record id"))
        );
    }

    #[test]
    fn unlinked_customers_follow_the_connection_switch() {
        let mut c = conn();
        c.sync_unlinked_customers = false;
        let plan = run(&c, acme());
        assert!(plan.steps.is_empty());
        assert!(plan.summary.contains("not linked"), "{}", plan.summary);

        // A link for another connection is no link for this one (when the host serves others);
        // one without a code counts.
        let mut customer = acme();
        customer["integration_customers"] = json!([hubspot_link_json("hubspot-other", None, None)]);
        assert!(run(&c, customer.clone()).steps.is_empty());
        c.sole_connection = true;
        assert_eq!(run(&c, customer.clone()).steps.len(), 1);
        c.sole_connection = false;
        customer["integration_customers"] =
            json!([{"type": "hubspot", "external_customer_id": null}]);
        assert_eq!(run(&c, customer).steps.len(), 1);
    }

    /// A customer linked by Lago Cloud's integration (its own code) keeps its record when the
    /// host serves one connection; with several, the link belongs to the connection it names.
    #[test]
    fn a_sole_connection_updates_a_record_linked_under_another_code() {
        let mut customer = acme();
        customer["integration_customers"] = json!([hubspot_link_json(
            "hs-lago-cloud",
            Some("9000001"),
            Some("companies")
        )]);
        let mut c = conn();
        c.sole_connection = true;
        let step = &run(&c, customer.clone()).steps[0];
        assert_eq!(
            (request(step).0, path(step).as_str()),
            (HttpMethod::Patch, "/crm/v3/objects/companies/9000001")
        );
        c.sole_connection = false;
        assert_eq!(
            path(&run(&c, customer).steps[0]),
            "/crm/v3/objects/companies/batch/upsert"
        );
    }

    #[test]
    fn partners_are_skipped() {
        let mut customer = acme();
        customer["account_type"] = json!("partner");
        let plan = run(&conn(), customer);
        assert!(plan.steps.is_empty());
        assert!(plan.summary.contains("partner"));
    }

    #[test]
    fn absent_values_clear_lago_properties_and_spare_built_ins() {
        let customer = json!({"lago_id": ACME, "customer_type": "company", "email": null});
        let properties = body(&run(&conn(), customer).steps[0])["inputs"][0]["properties"].clone();
        assert_eq!(
            properties,
            json!({
                "lago_customer_id": ACME, "lago_customer_external_id": "", "lago_billing_email": "",
                "lago_tax_identification_number": "",
                "lago_customer_link": format!("https://app.lago.test/acme-org/customer/{ACME}"),
            })
        );
    }

    #[test]
    fn payload_errors_are_typed() {
        let c = conn();
        let err = |payload: &str| plan(&c, &[], payload).unwrap_err();
        assert!(matches!(err("not json"), PlanError::MalformedPayload(_)));
        assert!(matches!(err("[1,2]"), PlanError::MalformedPayload(_)));
        assert!(
            matches!(err(r#"{"customer": {}}"#), PlanError::MalformedPayload(m) if m.contains("webhook_type"))
        );
        assert!(
            matches!(err(r#"{"webhook_type": "customer.created"}"#), PlanError::MissingField(m) if m.contains("customer"))
        );
        assert!(matches!(
            err(&event("customer.created", "customer", json!({"external_id": "x"}))),
            PlanError::MissingField(m) if m.contains("customer.lago_id")
        ));
        assert!(matches!(
            err(&event("customer.created", "customer", json!({"lago_id": 42}))),
            PlanError::MalformedPayload(m) if m.contains("customer")
        ));
        match err(&event("invoice.created", "invoice", json!({}))) {
            PlanError::UnsupportedEvent(m) => {
                assert!(
                    m.contains("planned by on-invoice, not by on-customer"),
                    "{m}"
                )
            }
            other => panic!("{other:?}"),
        }
    }
}
