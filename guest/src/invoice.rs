//! `invoice.*` → a LagoInvoices record associated with its customer.

use crate::customer::{Ownership, owner};
use crate::hubspot;
use crate::lago::{Invoice, parse_event, required};
use crate::plan::{Connection, KnownId, Plan, PlanError, RecordKey, RecordKind};
use crate::properties::{INVOICES, Source, values};

const EVENTS: &[&str] = &[
    "invoice.created",
    "invoice.generated",
    "invoice.payment_status_updated",
    "invoice.payment_overdue",
    "invoice.voided",
    "invoice.resynced",
];

pub fn plan(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    let invoice = parse_event::<Invoice>(payload, "invoice", EVENTS)?.object;
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
    let owner = match owner(
        conn,
        known,
        invoice.customer.as_ref(),
        invoice.lago_customer_id.as_deref(),
        "invoice",
    )? {
        Ownership::Skip(reason) => return Ok(Plan::skip(reason)),
        Ownership::Ready(owner) => owner,
    };

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
        "invoice",
        key,
        format!("upsert LagoInvoice {name}"),
    );
    let associate = hubspot::associate(
        type_id,
        &hubspot::reference("invoice"),
        owner.object.path(),
        &owner.hubspot_id,
        format!(
            "associate LagoInvoice {name} with its {}",
            owner.object.noun()
        ),
    );
    let summary = format!(
        "upsert LagoInvoice {name} and associate it with {}",
        owner.describe()
    );
    let mut steps = owner.steps;
    steps.extend([upsert, associate]);
    Ok(Plan::new(summary, steps))
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
        assert_eq!(upsert.path, "/crm/v3/objects/2-200/batch/upsert");
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
            upsert.captures[0].store_as,
            Some(RecordKey::new(RecordKind::Invoice, INV))
        );
        assert_eq!(
            associate.path,
            "/crm/v4/associations/2-200/companies/batch/associate/default"
        );
        assert_eq!(
            body(associate),
            json!({"inputs": [{"from": {"id": "{{invoice}}"}, "to": {"id": "501"}}]})
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
        let mut object = invoice("finalized");
        object["currency"] = json!("JPY");
        object["total_amount_cents"] = json!(5500);
        object["sub_total_excluding_taxes_amount_cents"] = json!(5000);
        object["total_due_amount_cents"] = json!(0);
        let properties = properties_of(&run(&conn(), "invoice.created", object).unwrap());
        assert_eq!(properties["lago_invoice_total_amount"], "5500");
        assert_eq!(properties["lago_invoice_subtotal_excluding_taxes"], "5000");
        assert_eq!(properties["lago_invoice_total_due_amount"], "0");

        let mut object = invoice("finalized");
        object["currency"] = json!("KWD");
        object["total_amount_cents"] = json!(-12345);
        object["total_due_amount_cents"] = json!(null);
        let properties = properties_of(&run(&conn(), "invoice.created", object).unwrap());
        assert_eq!(properties["lago_invoice_total_amount"], "-12.345");
        assert_eq!(properties["lago_invoice_total_due_amount"], "");
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
        assert_eq!(plan.steps[0].path, "/crm/v3/objects/companies/batch/upsert");
        assert_eq!(
            body(&plan.steps[2])["inputs"][0]["to"]["id"],
            "{{customer}}"
        );
    }

    #[test]
    fn missing_status_and_unsupported_types() {
        let mut object = invoice("finalized");
        object["status"] = json!(null);
        assert!(
            matches!(run(&conn(), "invoice.created", object), Err(PlanError::MissingField(m)) if m.contains("invoice.status"))
        );
        let error = run(&conn(), "invoice.drafted", invoice("draft")).unwrap_err();
        assert!(matches!(error, PlanError::UnsupportedEvent(m) if m.contains("invoice.drafted")));
    }
}
