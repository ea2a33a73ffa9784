//! `subscription.*` → a LagoSubscriptions record associated with its customer.

use crate::prelude::*;

use crate::customer::{Ownership, owner};
use crate::hubspot;
use crate::lago::{Incoming, Subscription, read_event, required};
use crate::plan::{Connection, KnownId, Plan, PlanError, RecordKey, RecordKind};
use crate::properties::{SUBSCRIPTIONS, Source, values};
use crate::webhooks::Handler;

pub fn plan(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    let subscription = match read_event::<Subscription>(payload, Handler::Subscription)? {
        Incoming::Object(event) => event.object,
        Incoming::Skip(reason) => return Ok(Plan::skip(reason)),
    };
    let lago_id = required(&subscription.lago_id, "subscription.lago_id")?;
    let name = subscription
        .external_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .unwrap_or(lago_id);
    let status = subscription.status.as_deref().unwrap_or_default();
    // Future-dated and payment-gated subscriptions may never start; Lago pushes them on activation.
    if matches!(status, "pending" | "incomplete") {
        return Ok(Plan::skip(format!(
            "subscription {name} is {status}: not pushed until active"
        )));
    }
    // Terminating a pending subscription, or a failed activation payment, ends it `canceled`
    // without a start (lago-api `subscriptions/terminate_service.rb`; `lago.md` §7.2): Lago's own
    // integration never shows those, whichever webhook announces them.
    let started = subscription
        .started_at
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    if status == "canceled" && !started {
        return Ok(Plan::skip(format!(
            "subscription {name} was canceled before it started: only subscriptions that became active are pushed"
        )));
    }
    if !conn.sync_subscriptions {
        return Ok(Plan::skip(format!(
            "subscription sync is off on connection {}",
            conn.code
        )));
    }
    let type_id = conn
        .subscriptions_object_type_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PlanError::NotDeployed(format!(
                "LagoSubscriptions has no object type id on connection {}: run deploy first",
                conn.code
            ))
        })?;
    let mut steps = Vec::new();
    let owner = match owner(
        &mut steps,
        conn,
        known,
        subscription.customer.as_ref(),
        subscription.lago_customer_id.as_deref(),
        "subscription",
    )? {
        Ownership::Skip(reason) => return Ok(Plan::skip(reason)),
        Ownership::Ready(owner) => owner,
    };

    let source = Source {
        lago: &subscription,
        conn,
        customer_lago_id: &owner.lago_id,
    };
    let properties = values(SUBSCRIPTIONS.properties, &source);
    let key = RecordKey::new(RecordKind::Subscription, lago_id);
    let upsert = hubspot::upsert(
        type_id,
        "lago_subscription_id",
        lago_id,
        properties,
        key,
        format!("upsert LagoSubscription {name}"),
    );
    let this = hubspot::push(&mut steps, upsert);
    let associate = hubspot::associate(
        type_id,
        this,
        owner.object.path(),
        owner.hubspot_id.clone(),
        format!(
            "associate LagoSubscription {name} with its {}",
            owner.object.noun()
        ),
    );
    let summary = format!(
        "upsert LagoSubscription {name} ({status}) and associate it with {}",
        owner.describe()
    );
    steps.push(associate);
    Ok(Plan::new(summary, steps))
}

/// Whether [`plan`] pushes the subscription by its content (the statuses it skips aside, it is
/// the same rule): not while `pending` or `incomplete`, never when it was `canceled` before it
/// started. Invoices associate only with subscriptions this holds for.
pub(crate) fn is_pushed(subscription: &Subscription) -> bool {
    let started = subscription
        .started_at
        .as_deref()
        .is_some_and(|s| !s.trim().is_empty());
    match subscription.status.as_deref().unwrap_or_default() {
        "pending" | "incomplete" => false,
        "canceled" => started,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::lago::FromLago as _;
    use crate::plan::HttpMethod;
    use crate::test_support::*;

    const SUB: &str = "5e6b4f0a-8f3d-4f43-9d0e-6a1c2b3d4e5f";

    fn subscription(status: &str) -> Value {
        json!({
            "lago_id": SUB, "external_id": "acme-pro", "lago_customer_id": ACME, "external_customer_id": "acme-1",
            "name": "Pro (yearly)", "plan_code": "pro_yearly", "status": status, "billing_time": "anniversary",
            "subscription_at": "2026-03-01T00:00:00Z", "started_at": "2026-03-01T09:30:12.345Z",
            "created_at": "2026-02-28T18:00:00Z", "ending_at": null, "terminated_at": null, "trial_ended_at": null,
            "plan": {"code": "pro_yearly"},
            "customer": {"lago_id": ACME, "external_id": "acme-1", "customer_type": "company", "name": "Acme Corp"}
        })
    }

    fn run(
        conn: &Connection,
        known: &[KnownId],
        webhook_type: &str,
        object: Value,
    ) -> Result<Plan, PlanError> {
        plan(conn, known, &event(webhook_type, "subscription", object))
    }

    #[test]
    fn known_customer_gets_upsert_then_association() {
        let known = [known(RecordKind::Company, ACME, "501")];
        let plan = run(
            &conn(),
            &known,
            "subscription.started",
            subscription("active"),
        )
        .unwrap();
        let [upsert, associate] = plan.steps.as_slice() else {
            panic!("{plan:?}")
        };
        assert_eq!(
            (request(upsert).0, path(upsert).as_str()),
            (HttpMethod::Post, "/crm/v3/objects/2-100/batch/upsert")
        );
        assert_eq!(
            body(upsert),
            json!({"inputs": [{"idProperty": "lago_subscription_id", "id": SUB, "properties": {
                "lago_subscription_id": SUB,
                "lago_external_subscription_id": "acme-pro",
                "lago_subscription_name": "Pro (yearly)",
                "lago_subscription_plan_code": "pro_yearly",
                "lago_subscription_status": "active",
                "lago_subscription_created_at": "2026-02-28",
                "lago_subscription_started_at": "2026-03-01",
                "lago_subscription_ending_at": "",
                "lago_subscription_at": "2026-03-01",
                "lago_subscription_terminated_at": "",
                "lago_subscription_trial_ended_at": "",
                "lago_subscription_link": format!("https://app.lago.test/acme-org/customer/{ACME}/subscription/{SUB}/overview"),
                "lago_billing_time": "anniversary",
            }}]})
        );
        assert_eq!(
            upsert.store_as,
            Some(RecordKey::new(RecordKind::Subscription, SUB))
        );
        assert_eq!(
            path(associate),
            "/crm/v4/associations/2-100/companies/batch/associate/default"
        );
        assert_eq!(
            body(associate),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "501"}}]})
        );
    }

    #[test]
    fn unknown_customer_is_upserted_first_and_referenced() {
        let plan = run(&conn(), &[], "subscription.started", subscription("active")).unwrap();
        let [customer, _, associate] = plan.steps.as_slice() else {
            panic!("{plan:?}")
        };
        assert_eq!(path(customer), "/crm/v3/objects/companies/batch/upsert");
        assert_eq!(body(customer)["inputs"][0]["id"], ACME);
        assert_eq!(body(associate)["inputs"][0]["to"]["id"], "{{0}}");
    }

    #[test]
    fn linked_customer_is_associated_by_its_record_id() {
        let mut object = subscription("active");
        object["customer"]["integration_customers"] =
            json!([hubspot_link_json("hubspot-prod", Some("9000001"), None)]);
        let plan = run(&conn(), &[], "subscription.updated", object).unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(body(&plan.steps[1])["inputs"][0]["to"]["id"], "9000001");
    }

    #[test]
    fn a_sole_connection_associates_with_a_record_linked_under_another_code() {
        let mut object = subscription("active");
        object["customer"]["integration_customers"] =
            json!([hubspot_link_json("hs-lago-cloud", Some("9000001"), None)]);
        let mut c = conn();
        c.sole_connection = true;
        let plan = run(&c, &[], "subscription.updated", object).unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert_eq!(body(&plan.steps[1])["inputs"][0]["to"]["id"], "9000001");
    }

    #[test]
    fn without_embedded_customer_the_known_id_and_its_kind_are_used() {
        let mut object = subscription("active");
        object.as_object_mut().unwrap().remove("customer");
        let known = [known(RecordKind::Contact, ACME, "802")];
        let plan = run(&conn(), &known, "subscription.updated", object.clone()).unwrap();
        assert_eq!(
            path(&plan.steps[1]),
            "/crm/v4/associations/2-100/contacts/batch/associate/default"
        );
        assert_eq!(body(&plan.steps[1])["inputs"][0]["to"]["id"], "802");

        let error = run(&conn(), &[], "subscription.updated", object).unwrap_err();
        assert!(
            matches!(error, PlanError::MissingField(m) if m.contains("sync the customer first"))
        );
    }

    #[test]
    fn terminated_subscription_carries_its_end() {
        let mut object = subscription("terminated");
        object["terminated_at"] = json!("2026-09-30T23:59:59Z");
        let known = [known(RecordKind::Company, ACME, "501")];
        let plan = run(&conn(), &known, "subscription.terminated", object).unwrap();
        let properties = &body(&plan.steps[0])["inputs"][0]["properties"];
        assert_eq!(properties["lago_subscription_status"], "terminated");
        assert_eq!(properties["lago_subscription_terminated_at"], "2026-09-30");
    }

    #[test]
    fn pending_and_incomplete_wait_for_activation() {
        for status in ["pending", "incomplete"] {
            let plan = run(&conn(), &[], "subscription.updated", subscription(status)).unwrap();
            assert!(plan.steps.is_empty());
            assert!(
                plan.summary.contains("not pushed until active"),
                "{}",
                plan.summary
            );
        }
    }

    #[test]
    fn switch_off_and_not_deployed() {
        let mut c = conn();
        c.sync_subscriptions = false;
        let plan = run(&c, &[], "subscription.started", subscription("active")).unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("off"));

        let mut c = conn();
        c.subscriptions_object_type_id = None;
        let error = run(&c, &[], "subscription.started", subscription("active")).unwrap_err();
        assert!(matches!(error, PlanError::NotDeployed(m) if m.contains("run deploy first")));
    }

    #[test]
    fn unsynced_customer_means_no_subscription() {
        let mut c = conn();
        c.sync_unlinked_customers = false;
        let plan = run(&c, &[], "subscription.started", subscription("active")).unwrap();
        assert!(plan.steps.is_empty());
        assert!(plan.summary.contains("not linked"), "{}", plan.summary);
    }

    #[test]
    fn never_started_subscriptions_stay_out_whatever_the_webhook() {
        let known = [known(RecordKind::Company, ACME, "501")];
        for webhook_type in ["subscription.canceled", "subscription.terminated"] {
            let mut object = subscription("canceled");
            object["started_at"] = json!(null);
            object["canceled_at"] = json!("2026-03-02T10:00:00Z");
            let plan = run(&conn(), &known, webhook_type, object).unwrap();
            assert!(plan.steps.is_empty(), "{webhook_type}: {plan:?}");
            assert!(
                plan.summary.contains("canceled before it started"),
                "{}",
                plan.summary
            );
        }
        // One that did start and then ended is updated as usual.
        let plan = run(
            &conn(),
            &known,
            "subscription.terminated",
            subscription("terminated"),
        )
        .unwrap();
        assert_eq!(plan.steps.len(), 2);
    }

    /// `is_pushed` (what invoices associate with) agrees with what `plan` pushes.
    #[test]
    fn is_pushed_is_the_rule_plan_applies() {
        let known = [known(RecordKind::Company, ACME, "501")];
        for status in ["active", "pending", "incomplete", "canceled", "terminated"] {
            for started_at in [json!("2026-03-01T09:30:12Z"), json!(null), json!(" ")] {
                let mut object = subscription(status);
                object["started_at"] = started_at.clone();
                let pushed = !run(&conn(), &known, "subscription.updated", object.clone())
                    .unwrap()
                    .steps
                    .is_empty();
                let parsed = Subscription::from_lago(&object).unwrap();
                assert_eq!(is_pushed(&parsed), pushed, "{status} {started_at}");
            }
        }
    }

    #[test]
    fn skipped_types_and_other_handlers_types() {
        let plan = run(
            &conn(),
            &[],
            "subscription.termination_alert",
            subscription("active"),
        )
        .unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("reminder"));
        let plan = run(
            &conn(),
            &[],
            "subscription.incomplete",
            subscription("incomplete"),
        )
        .unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("not pushed until active"));
        let error = run(&conn(), &[], "invoice.created", subscription("active")).unwrap_err();
        assert!(matches!(error, PlanError::UnsupportedEvent(m) if m.contains("on-invoice")));
    }
}
