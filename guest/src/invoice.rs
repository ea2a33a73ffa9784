//! `invoice.*` → a LagoInvoices record associated with its customer.

use crate::prelude::*;

use crate::currency;
use crate::customer::{Ownership, owner};
use crate::hubspot;
use crate::lago::{Incoming, Invoice, read_event, required};
use crate::plan::{Connection, IdRef, KnownId, Plan, PlanError, RecordKey, RecordKind, Step};
use crate::properties::{INVOICES, Source, values};
use crate::subscription;
use crate::webhooks::Handler;

pub fn plan(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    let invoice = match read_event::<Invoice>(payload, Handler::Invoice)? {
        Incoming::Object(event) => event.object,
        Incoming::Skip(reason) => return Ok(Plan::skip(reason)),
    };
    let lago_id = required(&invoice.lago_id, "invoice.lago_id")?;
    let name = invoice
        .number
        .as_deref()
        .filter(|n| !n.is_empty())
        .unwrap_or(lago_id);
    match required(&invoice.status, "invoice.status")? {
        "finalized" | "voided" => {}
        "draft" => {
            return Ok(Plan::skip(format!(
                "invoice {name} is a draft: drafts are not pushed"
            )));
        }
        other => {
            return Ok(Plan::skip(format!(
                "invoice {name} is {other}: only finalized and voided invoices are pushed"
            )));
        }
    }
    if invoice.self_billed == Some(true) {
        return Ok(Plan::skip(format!(
            "invoice {name} is self-billed: self-billed invoices are not pushed"
        )));
    }
    if !conn.sync_invoices {
        return Ok(Plan::skip(format!(
            "invoice sync is off on connection {}",
            conn.code
        )));
    }
    let type_id = conn
        .invoices_object_type_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PlanError::NotDeployed(format!(
                "LagoInvoices has no object type id on connection {}: run deploy first",
                conn.code
            ))
        })?;
    let mut steps = Vec::new();
    let owner = match owner(
        &mut steps,
        conn,
        known,
        invoice.customer.as_ref(),
        invoice.lago_customer_id.as_deref(),
        "invoice",
    )? {
        Ownership::Skip(reason) => return Ok(Plan::skip(reason)),
        Ownership::Ready(owner) => owner,
    };
    // Every amount property is in the invoice currency: refuse rather than guess its unit.
    currency::require(invoice.currency.as_deref(), "invoice.currency")?;

    let source = Source {
        lago: &invoice,
        conn,
        customer_lago_id: &owner.lago_id,
    };
    let properties = values(INVOICES.properties, &source);
    let key = RecordKey::new(RecordKind::Invoice, lago_id);
    let upsert = hubspot::upsert(
        type_id,
        "lago_invoice_id",
        lago_id,
        properties,
        key,
        format!("upsert LagoInvoice {name}"),
    );
    let this = hubspot::push(&mut steps, upsert);
    let associate = hubspot::associate(
        type_id,
        this.clone(),
        owner.object.path(),
        owner.hubspot_id.clone(),
        format!(
            "associate LagoInvoice {name} with its {}",
            owner.object.noun()
        ),
    );
    steps.push(associate);
    let subscriptions =
        subscription_associations(&mut steps, conn, known, &invoice, type_id, &this, name);
    let mut summary = format!(
        "upsert LagoInvoice {name} and associate it with {}",
        owner.describe()
    );
    if !subscriptions.is_empty() {
        summary.push_str(&format!(
            " and LagoSubscription {}",
            subscriptions.join(", ")
        ));
    }
    Ok(Plan::new(summary, steps))
}

/// Appends the steps associating the invoice (`this`) with the LagoSubscriptions records of the
/// subscriptions its payload lists; returns their names. Only subscriptions that are pushed (see
/// [`subscription::is_pushed`]) and only when subscriptions sync on a deployed LagoSubscriptions;
/// payloads without a `subscriptions` list (`invoice.generated`, payment updates) add none.
fn subscription_associations(
    steps: &mut Vec<Step>,
    conn: &Connection,
    known: &[KnownId],
    invoice: &Invoice,
    invoices_type_id: &str,
    this: &IdRef,
    name: &str,
) -> Vec<String> {
    let subscriptions_type_id = conn
        .subscriptions_object_type_id
        .as_deref()
        .filter(|id| !id.is_empty());
    let (Some(subscriptions_type_id), true) = (subscriptions_type_id, conn.sync_subscriptions)
    else {
        return Vec::new();
    };
    let mut seen = Vec::new();
    let mut names = Vec::new();
    for subscription in invoice.subscriptions.iter().flatten() {
        let Some(lago_id) = subscription
            .lago_id
            .as_deref()
            .map(str::trim)
            .filter(|id| !id.is_empty())
        else {
            continue;
        };
        if !subscription::is_pushed(subscription) || seen.contains(&lago_id) {
            continue;
        }
        seen.push(lago_id);
        let display = subscription
            .external_id
            .as_deref()
            .filter(|id| !id.trim().is_empty())
            .unwrap_or(lago_id);
        let target = hubspot::Target {
            object_type: subscriptions_type_id,
            id_property: "lago_subscription_id",
            lago_id,
            kind: RecordKind::Subscription,
            noun: format!("LagoSubscription {display}"),
            fixed: subscription
                .external_id
                .iter()
                .map(|id| id.trim())
                .filter(|id| !id.is_empty())
                .map(|id| ("lago_external_subscription_id", id.to_owned()))
                .collect(),
        };
        hubspot::associate_with(
            steps,
            invoices_type_id,
            this,
            &format!("LagoInvoice {name}"),
            &target,
            known,
        );
        names.push(display.to_owned());
    }
    names
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::*;

    const INV: &str = "1a2b3c4d-0000-4000-8000-00000000f001";

    fn invoice(status: &str) -> Value {
        json!({
            "lago_id": INV, "number": "ACM-2026-0001", "purchase_order_number": "PO-77", "status": status,
            "issuing_date": "2026-03-01", "payment_due_date": "2026-03-31", "payment_overdue": false,
            "invoice_type": "subscription", "payment_status": "pending", "currency": "EUR",
            "total_amount_cents": 12000, "total_due_amount_cents": 12000, "sub_total_excluding_taxes_amount_cents": 10000,
            "file_url": null, "web_url": null, "self_billed": false,
            "customer": {"lago_id": ACME, "external_id": "acme-1", "customer_type": "company", "name": "Acme Corp"}
        })
    }

    fn properties_of(plan: &Plan) -> Value {
        body(&plan.steps[plan.steps.len() - 2])["inputs"][0]["properties"].clone()
    }

    fn run(conn: &Connection, webhook_type: &str, object: Value) -> Result<Plan, PlanError> {
        let known = [known(RecordKind::Company, ACME, "501")];
        plan(conn, &known, &event(webhook_type, "invoice", object))
    }

    #[test]
    fn finalized_invoice_is_upserted_and_associated() {
        let plan = run(&conn(), "invoice.created", invoice("finalized")).unwrap();
        let [upsert, associate] = plan.steps.as_slice() else {
            panic!("{plan:?}")
        };
        assert_eq!(path(upsert), "/crm/v3/objects/2-200/batch/upsert");
        assert_eq!(
            body(upsert),
            json!({"inputs": [{"idProperty": "lago_invoice_id", "id": INV, "properties": {
                "lago_invoice_id": INV,
                "lago_invoice_number": "ACM-2026-0001",
                "lago_invoice_purchase_order_number": "PO-77",
                "lago_invoice_issuing_date": "2026-03-01",
                "lago_invoice_payment_due_date": "2026-03-31",
                "lago_invoice_payment_overdue": "false",
                "lago_invoice_type": "subscription",
                "lago_invoice_status": "finalized",
                "lago_invoice_payment_status": "pending",
                "lago_invoice_currency": "EUR",
                "lago_invoice_total_amount": "120.00",
                "lago_invoice_total_due_amount": "120.00",
                "lago_invoice_subtotal_excluding_taxes": "100.00",
                "lago_invoice_url": format!("https://app.lago.test/acme-org/customer/{ACME}/invoice/{INV}/overview"),
            }}]})
        );
        assert_eq!(
            upsert.store_as,
            Some(RecordKey::new(RecordKind::Invoice, INV))
        );
        assert_eq!(
            path(associate),
            "/crm/v4/associations/2-200/companies/batch/associate/default"
        );
        assert_eq!(
            body(associate),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "501"}}]})
        );
        assert!(plan.summary.contains("ACM-2026-0001"));
    }

    #[test]
    fn pdf_link_web_url_and_overdue_flag_when_lago_has_them() {
        let mut object = invoice("finalized");
        object["file_url"] =
            json!("https://api.lago.test/rails/active_storage/blobs/x/ACM-2026-0001.pdf");
        object["web_url"] = json!("https://app.lago.test/acme-org/customer/c/invoice/i/overview");
        object["payment_overdue"] = json!(true);
        let properties = properties_of(&run(&conn(), "invoice.payment_overdue", object).unwrap());
        assert_eq!(
            properties["lago_invoice_file_url"],
            "https://api.lago.test/rails/active_storage/blobs/x/ACM-2026-0001.pdf"
        );
        assert_eq!(
            properties["lago_invoice_url"],
            "https://app.lago.test/acme-org/customer/c/invoice/i/overview"
        );
        assert_eq!(properties["lago_invoice_payment_overdue"], "true");
    }

    #[test]
    fn amounts_follow_the_currency() {
        let amounts = |currency: &str, total: i64, subtotal: i64, due: Value| {
            let mut object = invoice("finalized");
            object["currency"] = json!(currency);
            object["total_amount_cents"] = json!(total);
            object["sub_total_excluding_taxes_amount_cents"] = json!(subtotal);
            object["total_due_amount_cents"] = due;
            let properties = properties_of(&run(&conn(), "invoice.created", object).unwrap());
            [
                "lago_invoice_total_amount",
                "lago_invoice_subtotal_excluding_taxes",
                "lago_invoice_total_due_amount",
            ]
            .map(|name| properties[name].as_str().unwrap().to_owned())
        };
        // HUF and MGA amounts are whole units in Lago (ISO 4217 would say 2 decimals).
        assert_eq!(
            amounts("HUF", 1951, 1600, json!(1951)),
            ["1951", "1600", "1951"]
        );
        assert_eq!(
            amounts("MGA", 250_000, 200_000, json!(0)),
            ["250000", "200000", "0"]
        );
        assert_eq!(amounts("JPY", 5500, 5000, json!(0)), ["5500", "5000", "0"]);
        assert_eq!(
            amounts("EUR", 12345, 10000, json!(5)),
            ["123.45", "100.00", "0.05"]
        );
        assert_eq!(
            amounts("KWD", -12345, 7, json!(null)),
            ["-12.345", "0.007", ""]
        );
        assert_eq!(
            amounts("CLF", 12345, 10000, json!(1)),
            ["1.2345", "1.0000", "0.0001"]
        );
    }

    #[test]
    fn an_invoice_without_a_currency_is_refused() {
        for currency in [json!(null), json!(""), json!(" ")] {
            let mut object = invoice("finalized");
            object["currency"] = currency;
            let error = run(&conn(), "invoice.created", object).unwrap_err();
            assert!(
                matches!(&error, PlanError::MissingField(m) if m.contains("invoice.currency")),
                "{error:?}"
            );
        }
        // A draft is skipped before its currency matters.
        let mut object = invoice("draft");
        object["currency"] = json!(null);
        assert!(run(&conn(), "invoice.created", object).is_ok());
    }

    #[test]
    fn an_unknown_currency_is_refused_by_name() {
        let mut object = invoice("finalized");
        object["currency"] = json!("XYZ");
        let error = run(&conn(), "invoice.created", object).unwrap_err();
        let PlanError::MalformedPayload(message) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.contains("\"XYZ\"")
                && message.contains("not one of the 142 currencies Lago accepts"),
            "{message}"
        );
        assert!(error.to_string().contains("XYZ"), "{error}");
    }

    #[test]
    fn one_off_and_prepaid_credit_invoices_are_pushed_like_created() {
        let created = run(&conn(), "invoice.created", invoice("finalized")).unwrap();
        for (webhook_type, invoice_type) in [
            ("invoice.one_off_created", "one_off"),
            ("invoice.paid_credit_added", "credit"),
        ] {
            let mut object = invoice("finalized");
            object["invoice_type"] = json!(invoice_type);
            let plan = run(&conn(), webhook_type, object).unwrap();
            assert_eq!(plan.steps.len(), created.steps.len(), "{webhook_type}");
            assert_eq!(properties_of(&plan)["lago_invoice_type"], invoice_type);
            assert_eq!(path(&plan.steps[0]), path(&created.steps[0]));
        }
    }

    #[test]
    fn a_lost_dispute_updates_the_invoice_it_nests() {
        let payload = json!({
            "webhook_type": "invoice.payment_dispute_lost", "object_type": "payment_dispute_lost",
            "payment_dispute_lost": {"invoice": invoice("finalized"), "provider_error": {"message": "lost"}},
        });
        let known = [known(RecordKind::Company, ACME, "501")];
        let plan = plan(&conn(), &known, &payload.to_string()).unwrap();
        assert_eq!(properties_of(&plan)["lago_invoice_id"], INV);
    }

    #[test]
    fn voided_invoices_are_pushed() {
        let plan = run(&conn(), "invoice.voided", invoice("voided")).unwrap();
        assert_eq!(properties_of(&plan)["lago_invoice_status"], "voided");
    }

    #[test]
    fn drafts_other_statuses_and_self_billed_are_skipped() {
        for (status, reason) in [
            ("draft", "drafts are not pushed"),
            ("failed", "only finalized and voided"),
            ("pending", "only finalized"),
        ] {
            let plan = run(&conn(), "invoice.generated", invoice(status)).unwrap();
            assert!(plan.steps.is_empty());
            assert!(plan.summary.contains(reason), "{}", plan.summary);
        }
        let mut object = invoice("finalized");
        object["self_billed"] = json!(true);
        let plan = run(&conn(), "invoice.created", object).unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("self-billed"));
    }

    #[test]
    fn switch_off_and_not_deployed() {
        let mut c = conn();
        c.sync_invoices = false;
        assert!(
            run(&c, "invoice.created", invoice("finalized"))
                .unwrap()
                .steps
                .is_empty()
        );

        let mut c = conn();
        c.invoices_object_type_id = Some(String::new());
        let error = run(&c, "invoice.created", invoice("finalized")).unwrap_err();
        assert!(matches!(error, PlanError::NotDeployed(m) if m.contains("LagoInvoices")));
    }

    #[test]
    fn unknown_customer_is_written_first() {
        let plan = plan(
            &conn(),
            &[],
            &event("invoice.created", "invoice", invoice("finalized")),
        )
        .unwrap();
        assert_eq!(plan.steps.len(), 3);
        assert_eq!(
            path(&plan.steps[0]),
            "/crm/v3/objects/companies/batch/upsert"
        );
        assert_eq!(body(&plan.steps[2])["inputs"][0]["to"]["id"], "{{0}}");
    }

    /// The subscriptions an `invoice.created` payload lists (`V1::SubscriptionSerializer`).
    fn billing(object: &mut Value, subscriptions: Value) {
        object["subscriptions"] = subscriptions;
    }

    fn sub(lago_id: &str, status: &str, started_at: Value) -> Value {
        json!({"lago_id": lago_id, "external_id": format!("ext-{lago_id}"), "lago_customer_id": ACME,
               "plan_code": "pro", "status": status, "started_at": started_at})
    }

    #[test]
    fn the_invoice_is_associated_with_the_subscriptions_it_bills() {
        let mut object = invoice("finalized");
        billing(
            &mut object,
            json!([
                sub("sub-known", "active", json!("2026-02-01T00:00:00Z")),
                sub("sub-new", "terminated", json!("2026-01-01T00:00:00Z")),
                sub("sub-known", "active", json!("2026-02-01T00:00:00Z")),
                // Never started: never pushed, so never associated.
                sub("sub-pending", "pending", json!(null)),
                sub("sub-canceled", "canceled", json!(null)),
            ]),
        );
        let known = [
            known(RecordKind::Company, ACME, "501"),
            known(RecordKind::Subscription, "sub-known", "8001"),
        ];
        let plan = plan(
            &conn(),
            &known,
            &event("invoice.created", "invoice", object),
        )
        .unwrap();
        let paths: Vec<_> = plan.steps.iter().map(path).collect();
        assert_eq!(
            paths,
            [
                "/crm/v3/objects/2-200/batch/upsert",
                "/crm/v4/associations/2-200/companies/batch/associate/default",
                "/crm/v4/associations/2-200/2-100/batch/associate/default",
                "/crm/v3/objects/2-100/batch/upsert",
                "/crm/v4/associations/2-200/2-100/batch/associate/default",
            ]
        );
        assert_eq!(
            body(&plan.steps[2]),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "8001"}}]})
        );
        // Unknown: found or created by its ids alone (the external id never changes), never
        // overwriting what its own events wrote.
        assert_eq!(
            body(&plan.steps[3]),
            json!({"inputs": [{"idProperty": "lago_subscription_id", "id": "sub-new",
                               "properties": {"lago_subscription_id": "sub-new",
                                              "lago_external_subscription_id": "ext-sub-new"}}]})
        );
        assert_eq!(
            plan.steps[3].store_as,
            Some(RecordKey::new(RecordKind::Subscription, "sub-new"))
        );
        assert_eq!(body(&plan.steps[4])["inputs"][0]["to"]["id"], "{{3}}");
        assert!(
            plan.summary.contains("ext-sub-known") && plan.summary.contains("ext-sub-new"),
            "{}",
            plan.summary
        );
    }

    #[test]
    fn no_subscription_association_without_subscription_sync_or_a_list() {
        let mut object = invoice("finalized");
        billing(
            &mut object,
            json!([sub("sub-1", "active", json!("2026-02-01T00:00:00Z"))]),
        );
        for c in [
            Connection {
                sync_subscriptions: false,
                ..conn()
            },
            Connection {
                subscriptions_object_type_id: None,
                ..conn()
            },
        ] {
            let plan = run(&c, "invoice.created", object.clone()).unwrap();
            assert_eq!(plan.steps.len(), 2, "{plan:?}");
        }
        // `invoice.generated` and payment updates carry no `subscriptions`.
        let plan = run(&conn(), "invoice.generated", invoice("finalized")).unwrap();
        assert_eq!(plan.steps.len(), 2);
    }

    #[test]
    fn missing_status_and_unsupported_types() {
        let mut object = invoice("finalized");
        object["status"] = json!(null);
        assert!(
            matches!(run(&conn(), "invoice.created", object), Err(PlanError::MissingField(m)) if m.contains("invoice.status"))
        );
        let plan = run(&conn(), "invoice.drafted", invoice("draft")).unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("invoice.drafted is not synced"));
    }
}
