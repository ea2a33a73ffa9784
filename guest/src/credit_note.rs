//! `credit_note.created` / `credit_note.generated` → a LagoCreditNotes record associated with its
//! customer and with the LagoInvoices record of the invoice it credits. Opt-in per connection
//! (`sync_credit_notes`): Lago's own integration does not sync credit notes.

use crate::prelude::*;

use crate::currency;
use crate::customer::{Ownership, owner};
use crate::hubspot;
use crate::lago::{CreditNote, Incoming, read_event, required};
use crate::plan::{Connection, KnownId, Plan, PlanError, RecordKey, RecordKind};
use crate::properties::{CREDIT_NOTES, Source, values};
use crate::webhooks::Handler;

pub fn plan(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    let credit_note = match read_event::<CreditNote>(payload, Handler::CreditNote)? {
        Incoming::Object(event) => event.object,
        Incoming::Skip(reason) => return Ok(Plan::skip(reason)),
    };
    // Off: nothing in the payload matters, and nothing is written.
    if !conn.sync_credit_notes {
        return Ok(Plan::skip(format!(
            "credit note sync is off on connection {}",
            conn.code
        )));
    }
    let lago_id = required(&credit_note.lago_id, "credit_note.lago_id")?;
    let name = credit_note
        .number
        .as_deref()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or(lago_id);
    if credit_note.self_billed == Some(true) {
        return Ok(Plan::skip(format!(
            "credit note {name} credits a self-billed invoice: self-billed invoices and their credit notes are not pushed"
        )));
    }
    let type_id = conn
        .credit_notes_object_type_id
        .as_deref()
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            PlanError::NotDeployed(format!(
                "LagoCreditNotes has no object type id on connection {}: run deploy first",
                conn.code
            ))
        })?;
    let mut steps = Vec::new();
    let owner = match owner(
        &mut steps,
        conn,
        known,
        credit_note.customer.as_ref(),
        credit_note.lago_customer_id.as_deref(),
        "credit_note",
    )? {
        Ownership::Skip(reason) => return Ok(Plan::skip(reason)),
        Ownership::Ready(owner) => owner,
    };
    // Every amount property is in the credit note's currency: refuse rather than guess its unit.
    currency::require(credit_note.currency.as_deref(), "credit_note.currency")?;

    let source = Source {
        lago: &credit_note,
        conn,
        customer_lago_id: &owner.lago_id,
    };
    let properties = values(CREDIT_NOTES.properties, &source);
    let noun = format!("LagoCreditNote {name}");
    let upsert = hubspot::upsert(
        type_id,
        "lago_credit_note_id",
        lago_id,
        properties,
        RecordKey::new(RecordKind::CreditNote, lago_id),
        format!("upsert {noun}"),
    );
    let this = hubspot::push(&mut steps, upsert);
    let associate = hubspot::associate(
        type_id,
        this.clone(),
        owner.object.path(),
        owner.hubspot_id.clone(),
        format!("associate {noun} with its {}", owner.object.noun()),
    );
    let mut summary = format!("upsert {noun} and associate it with {}", owner.describe());
    steps.push(associate);

    // Its invoice: a LagoInvoices record only exists when invoices sync on a deployed object.
    let invoices_type_id = conn
        .invoices_object_type_id
        .as_deref()
        .filter(|id| conn.sync_invoices && !id.is_empty());
    let invoice_id = credit_note
        .lago_invoice_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    match (invoices_type_id, invoice_id) {
        (Some(invoices_type_id), Some(invoice_id)) => {
            let invoice_name = credit_note
                .invoice_number
                .as_deref()
                .filter(|n| !n.trim().is_empty())
                .unwrap_or(invoice_id);
            let target = hubspot::Target {
                object_type: invoices_type_id,
                id_property: "lago_invoice_id",
                lago_id: invoice_id,
                kind: RecordKind::Invoice,
                noun: format!("LagoInvoice {invoice_name}"),
                fixed: credit_note
                    .invoice_number
                    .iter()
                    .map(|n| n.trim())
                    .filter(|n| !n.is_empty())
                    .map(|n| ("lago_invoice_number", n.to_owned()))
                    .collect(),
            };
            summary.push_str(&format!(" and {}", target.noun));
            hubspot::associate_with(&mut steps, type_id, &this, &noun, &target, known);
        }
        (None, Some(_)) => {
            summary.push_str(" (invoice sync is off: not associated with its invoice)")
        }
        (_, None) => summary.push_str(" (the payload names no invoice)"),
    }
    Ok(Plan::new(summary, steps))
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::test_support::*;

    const CN: &str = "7c1d2e3f-0000-4000-8000-00000000c001";
    const INV: &str = "1a2b3c4d-0000-4000-8000-00000000f001";

    /// lago-api `V1::CreditNoteSerializer` with `customer`, `items` and `applied_taxes` included,
    /// as `credit_note.created` sends it.
    fn credit_note() -> Value {
        json!({
            "lago_id": CN, "billing_entity_code": "acme", "sequential_id": 1, "number": "ACM-2026-0001-CN1",
            "lago_invoice_id": INV, "invoice_number": "ACM-2026-0001", "issuing_date": "2026-03-05",
            "credit_status": "available", "refund_status": "pending", "reason": "order_change",
            "description": "Downgrade", "currency": "EUR",
            "total_amount_cents": 6000, "precise_total_amount_cents": "6000.0", "taxes_amount_cents": 1000,
            "precise_taxes_amount_cents": "1000.0", "sub_total_excluding_taxes_amount_cents": 5000,
            "balance_amount_cents": 2000, "credit_amount_cents": 2000, "refund_amount_cents": 4000,
            "applied_to_source_invoice_amount_cents": 0, "coupons_adjustment_amount_cents": 0,
            "taxes_rate": 20.0, "created_at": "2026-03-05T10:00:00Z", "updated_at": "2026-03-05T10:00:00Z",
            "file_url": null, "xml_url": null, "self_billed": false,
            "customer": {"lago_id": ACME, "external_id": "acme-1", "customer_type": "company", "name": "Acme Corp"},
            "items": [{"lago_id": "item-1", "amount_cents": 5000, "amount_currency": "EUR", "fee": {}}],
            "applied_taxes": []
        })
    }

    fn on() -> Connection {
        Connection {
            sync_credit_notes: true,
            ..conn()
        }
    }

    fn run(conn: &Connection, known: &[KnownId], object: Value) -> Result<Plan, PlanError> {
        plan(
            conn,
            known,
            &event("credit_note.created", "credit_note", object),
        )
    }

    fn paths(plan: &Plan) -> Vec<String> {
        plan.steps.iter().map(path).collect()
    }

    #[test]
    fn credit_note_is_upserted_and_associated_with_its_company_and_known_invoice() {
        let known = [
            known(RecordKind::Company, ACME, "501"),
            known(RecordKind::Invoice, INV, "7001"),
        ];
        let plan = run(&on(), &known, credit_note()).unwrap();
        assert_eq!(
            paths(&plan),
            [
                "/crm/v3/objects/2-300/batch/upsert",
                "/crm/v4/associations/2-300/companies/batch/associate/default",
                "/crm/v4/associations/2-300/2-200/batch/associate/default",
            ]
        );
        let upsert = &plan.steps[0];
        assert_eq!(
            body(upsert),
            json!({"inputs": [{"idProperty": "lago_credit_note_id", "id": CN, "properties": {
                "lago_credit_note_id": CN,
                "lago_credit_note_number": "ACM-2026-0001-CN1",
                "lago_credit_note_invoice_number": "ACM-2026-0001",
                "lago_credit_note_issuing_date": "2026-03-05",
                "lago_credit_note_credit_status": "available",
                "lago_credit_note_refund_status": "pending",
                "lago_credit_note_reason": "order_change",
                "lago_credit_note_currency": "EUR",
                "lago_credit_note_total_amount": "60.00",
                "lago_credit_note_credit_amount": "20.00",
                "lago_credit_note_refund_amount": "40.00",
                "lago_credit_note_balance_amount": "20.00",
                "lago_credit_note_link": format!("https://app.lago.test/acme-org/customer/{ACME}/credit-notes/{CN}"),
            }}]})
        );
        assert_eq!(
            upsert.store_as,
            Some(RecordKey::new(RecordKind::CreditNote, CN))
        );
        assert_eq!(
            body(&plan.steps[1]),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "501"}}]})
        );
        assert_eq!(
            body(&plan.steps[2]),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "7001"}}]})
        );
        assert!(
            plan.summary.contains("ACM-2026-0001-CN1") && plan.summary.contains("ACM-2026-0001"),
            "{}",
            plan.summary
        );
    }

    #[test]
    fn an_unknown_invoice_is_found_or_created_by_its_id_only() {
        let known = [known(RecordKind::Company, ACME, "501")];
        let plan = run(&on(), &known, credit_note()).unwrap();
        assert_eq!(
            paths(&plan),
            [
                "/crm/v3/objects/2-300/batch/upsert",
                "/crm/v4/associations/2-300/companies/batch/associate/default",
                "/crm/v3/objects/2-200/batch/upsert",
                "/crm/v4/associations/2-300/2-200/batch/associate/default",
            ]
        );
        let stub = &plan.steps[2];
        assert_eq!(
            body(stub),
            json!({"inputs": [{"idProperty": "lago_invoice_id", "id": INV,
                               "properties": {"lago_invoice_id": INV,
                                              "lago_invoice_number": "ACM-2026-0001"}}]})
        );
        assert_eq!(
            stub.store_as,
            Some(RecordKey::new(RecordKind::Invoice, INV))
        );
        assert_eq!(
            body(&plan.steps[3]),
            json!({"inputs": [{"from": {"id": "{{0}}"}, "to": {"id": "{{2}}"}}]})
        );
    }

    #[test]
    fn an_unknown_customer_is_written_first() {
        let plan = run(&on(), &[], credit_note()).unwrap();
        assert_eq!(plan.steps.len(), 5);
        assert_eq!(
            path(&plan.steps[0]),
            "/crm/v3/objects/companies/batch/upsert"
        );
        assert_eq!(body(&plan.steps[2])["inputs"][0]["to"]["id"], "{{0}}");
    }

    #[test]
    fn amounts_follow_the_currency_and_a_missing_one_is_refused() {
        let mut object = credit_note();
        object["currency"] = json!("JPY");
        object["total_amount_cents"] = json!(5500);
        object["refund_amount_cents"] = json!(0);
        object["balance_amount_cents"] = json!(null);
        let plan = run(&on(), &[], object).unwrap();
        let properties = &body(&plan.steps[1])["inputs"][0]["properties"];
        assert_eq!(properties["lago_credit_note_total_amount"], "5500");
        assert_eq!(properties["lago_credit_note_refund_amount"], "0");
        assert_eq!(properties["lago_credit_note_balance_amount"], "");

        let mut object = credit_note();
        object["currency"] = json!(null);
        let error = run(&on(), &[], object).unwrap_err();
        assert!(
            matches!(&error, PlanError::MissingField(m) if m.contains("credit_note.currency")),
            "{error:?}"
        );
        let mut object = credit_note();
        object["currency"] = json!("XYZ");
        assert!(matches!(
            run(&on(), &[], object),
            Err(PlanError::MalformedPayload(m)) if m.contains("XYZ")
        ));
    }

    #[test]
    fn the_pdf_link_is_sent_only_when_lago_has_it() {
        let plan = run(&on(), &[], credit_note()).unwrap();
        let properties = &body(&plan.steps[1])["inputs"][0]["properties"];
        assert!(properties.get("lago_credit_note_file_url").is_none());
        let mut object = credit_note();
        object["file_url"] = json!("https://api.lago.test/blobs/cn.pdf");
        let plan = super::plan(
            &on(),
            &[],
            &event("credit_note.generated", "credit_note", object),
        )
        .unwrap();
        assert_eq!(
            body(&plan.steps[1])["inputs"][0]["properties"]["lago_credit_note_file_url"],
            "https://api.lago.test/blobs/cn.pdf"
        );
    }

    #[test]
    fn off_by_default_is_a_skip_with_the_reason() {
        // Not even a broken credit note is an error when the setting is off.
        for object in [credit_note(), json!({"lago_id": null})] {
            let plan = run(&conn(), &[], object).unwrap();
            assert!(plan.steps.is_empty());
            assert_eq!(
                plan.summary,
                "credit note sync is off on connection hubspot-prod"
            );
        }
    }

    #[test]
    fn on_but_not_deployed() {
        let mut c = on();
        c.credit_notes_object_type_id = None;
        let error = run(&c, &[], credit_note()).unwrap_err();
        assert!(
            matches!(&error, PlanError::NotDeployed(m) if m.contains("LagoCreditNotes")),
            "{error:?}"
        );
    }

    #[test]
    fn without_invoice_sync_or_invoice_id_only_the_customer_is_associated() {
        let known = [known(RecordKind::Company, ACME, "501")];
        let mut c = on();
        c.sync_invoices = false;
        let plan = run(&c, &known, credit_note()).unwrap();
        assert_eq!(plan.steps.len(), 2);
        assert!(
            plan.summary.contains("invoice sync is off"),
            "{}",
            plan.summary
        );

        let mut object = credit_note();
        object["lago_invoice_id"] = json!(null);
        let plan = run(&on(), &known, object).unwrap();
        assert_eq!(plan.steps.len(), 2);
    }

    #[test]
    fn self_billed_partners_and_missing_ids_are_not_pushed() {
        let mut object = credit_note();
        object["self_billed"] = json!(true);
        let plan = run(&on(), &[], object).unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("self-billed"));

        let mut object = credit_note();
        object["customer"]["account_type"] = json!("partner");
        let plan = run(&on(), &[], object).unwrap();
        assert!(plan.steps.is_empty() && plan.summary.contains("partner"));

        let mut object = credit_note();
        object["lago_id"] = json!("");
        assert!(matches!(
            run(&on(), &[], object),
            Err(PlanError::MissingField(m)) if m.contains("credit_note.lago_id")
        ));
    }

    #[test]
    fn other_types_are_skipped_or_refused() {
        let payload = event(
            "credit_note.provider_refund_failure",
            "credit_note",
            credit_note(),
        );
        let skipped = plan(&on(), &[], &payload).unwrap();
        assert!(skipped.steps.is_empty());
        assert!(
            skipped
                .summary
                .contains("credit_note.provider_refund_failure")
        );
        let payload = event("invoice.created", "invoice", credit_note());
        assert!(matches!(
            plan(&on(), &[], &payload),
            Err(PlanError::UnsupportedEvent(m)) if m.contains("on-invoice")
        ));
    }
}
