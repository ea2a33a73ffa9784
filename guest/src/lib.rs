//! Lago → HubSpot mapping. Each entry point turns one Lago webhook (or a connection set-up) into a
//! HubSpot request [`Plan`]; the host executes it. Plain Rust, so it is tested natively; the
//! component glue lives in `wasm.rs`.
//!
//! The component is built without the Rust std (see `Cargo.toml`): the mapping needs only `core`
//! and `alloc`, which [`prelude`] brings into every module; natively the crate keeps `std`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

/// What the std prelude would give each module, from `alloc` (identical items natively).
mod prelude {
    pub use alloc::borrow::ToOwned;
    pub use alloc::format;
    pub use alloc::string::{String, ToString};
    pub use alloc::vec;
    pub use alloc::vec::Vec;
}

/// Everything generated from the world `sync-plugin` in `wit/`: the plan types
/// (`lago::hubspot::types`, re-exported by [`plan`]), the `planner` export and the WASI imports.
/// The same code natively and in the component; only the component calls the imports.
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "sync-plugin",
        generate_all,
        additional_derives: [PartialEq, Eq],
        // It holds a `wasi:io/error` resource, which has no equality.
        additional_derives_ignore: ["stream-error"],
    });
}

pub mod currency;
pub mod format;
pub mod lago;
pub mod plan;
pub mod properties;

mod credit_note;
mod customer;
mod deploy;
mod hubspot;
mod invoice;
mod json;
mod subscription;
pub mod webhooks;

#[cfg(test)]
mod test_support;

#[cfg(all(target_arch = "wasm32", feature = "component"))]
mod wasm;

#[cfg(feature = "misbehave")]
mod misbehave;

pub use deploy::HubspotReader;
pub use plan::{
    Connection, HttpMethod, IdRef, KnownId, Operation, Plan, PlanError, RecordKey, RecordKind,
    Step, TargetedObject,
};

/// Plan the connection set-up: what `reader` shows missing among the Lago properties on companies
/// and contacts, the LagoSubscriptions / LagoInvoices custom objects (and LagoCreditNotes when the
/// connection syncs credit notes), and the association definitions between those objects.
pub fn deploy(conn: &Connection, reader: &mut impl HubspotReader) -> Result<Plan, PlanError> {
    deploy::plan(conn, reader)
}

/// `customer.created` / `customer.updated`.
pub fn on_customer(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    customer::plan(conn, known, payload)
}

/// `subscription.started|updated|terminated|canceled|trial_ended`.
pub fn on_subscription(
    conn: &Connection,
    known: &[KnownId],
    payload: &str,
) -> Result<Plan, PlanError> {
    subscription::plan(conn, known, payload)
}

/// `invoice.created|generated|payment_status_updated|payment_overdue|voided|resynced`.
pub fn on_invoice(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    invoice::plan(conn, known, payload)
}

/// `credit_note.created|generated`, when the connection syncs credit notes (a skip otherwise).
pub fn on_credit_note(
    conn: &Connection,
    known: &[KnownId],
    payload: &str,
) -> Result<Plan, PlanError> {
    credit_note::plan(conn, known, payload)
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::test_support::{body, conn, path};

    /// `samples/events/`, in sync order.
    const SAMPLES: [(&str, &str); 9] = [
        (
            "01",
            include_str!("../../samples/events/01-customer-company.json"),
        ),
        (
            "02",
            include_str!("../../samples/events/02-customer-individual.json"),
        ),
        (
            "03",
            include_str!("../../samples/events/03-customer-linked-to-existing-company.json"),
        ),
        (
            "04",
            include_str!("../../samples/events/04-subscription-started.json"),
        ),
        (
            "05",
            include_str!("../../samples/events/05-invoice-created-eur.json"),
        ),
        (
            "06",
            include_str!("../../samples/events/06-invoice-payment-succeeded.json"),
        ),
        (
            "07",
            include_str!("../../samples/events/07-invoice-created-jpy.json"),
        ),
        (
            "08",
            include_str!("../../samples/events/08-invoice-draft.json"),
        ),
        (
            "09",
            include_str!("../../samples/events/09-subscription-terminated.json"),
        ),
    ];

    /// The samples through the handlers, with the host's id store played by `known`.
    #[test]
    fn samples_sync_in_order() {
        let mut c = conn();
        c.code = "hubspot".into();
        let mut known: Vec<KnownId> = Vec::new();
        let mut plans = Vec::new();
        for (name, payload) in SAMPLES {
            let webhook_type =
                serde_json::from_str::<Value>(payload).unwrap()["webhook_type"].clone();
            let handler = match webhook_type.as_str().unwrap().split('.').next() {
                Some("customer") => on_customer,
                Some("subscription") => on_subscription,
                _ => on_invoice,
            };
            let plan = handler(&c, &known, payload).unwrap_or_else(|e| panic!("{name}: {e}"));
            // What the host would store after running the plan.
            let captured = plan.steps.iter().filter_map(|s| s.store_as.clone());
            known.extend(captured.map(|key| KnownId {
                hubspot_id: format!("hs-{}", key.lago_id),
                key,
            }));
            plans.push(plan);
        }
        let paths = |i: usize| plans[i].steps.iter().map(path).collect::<Vec<_>>();
        let properties =
            |i: usize, step: usize| body(&plans[i].steps[step])["inputs"][0]["properties"].clone();

        assert_eq!(paths(0), ["/crm/v3/objects/companies/batch/upsert"]);
        assert_eq!(properties(0, 0)["domain"], "www.acme.example");
        assert_eq!(paths(1), ["/crm/v3/objects/contacts/batch/upsert"]);
        assert_eq!(properties(1, 0)["email"], "kenji.tanaka@example.jp");
        assert_eq!(paths(2), ["/crm/v3/objects/companies/9000001"]);
        // Acme is known from sample 01: upsert and associate only.
        assert_eq!(paths(3).len(), 2);
        assert_eq!(
            properties(3, 0)["lago_subscription_started_at"],
            "2026-10-01"
        );
        assert_eq!(properties(4, 0)["lago_invoice_total_amount"], "118.80");
        // Sample 05 bills sample 04's subscription, whose id is known by then: associated directly.
        let billed = plans[4].steps.last().unwrap();
        assert_eq!(
            path(billed),
            "/crm/v4/associations/2-200/2-100/batch/associate/default"
        );
        assert_eq!(
            body(billed)["inputs"][0]["to"]["id"],
            "hs-a7f3e9c1-4b2d-4e6a-9c8f-3d1b5e7a2c90"
        );
        assert_eq!(properties(5, 0)["lago_invoice_payment_status"], "succeeded");
        assert_eq!(properties(5, 0)["lago_invoice_total_due_amount"], "0.00");
        assert_eq!(properties(6, 0)["lago_invoice_total_amount"], "5500");
        assert_eq!(
            body(&plans[6].steps[1])["inputs"][0]["to"]["id"],
            format!("hs-{}", "c4e2a7b9-6d13-4f58-8b2e-91a0f3d6e7c5")
        );
        assert!(plans[7].steps.is_empty() && plans[7].summary.contains("draft"));
        assert_eq!(
            properties(8, 0)["lago_subscription_terminated_at"],
            "2026-11-20"
        );
    }

    /// Whatever arrives, the handlers answer with a plan or a typed error, never a panic (a panic
    /// in the component is a trap that kills the instance).
    #[test]
    fn odd_payloads_never_panic() {
        let objects = [
            "null",
            "1",
            "\"x\"",
            "[]",
            "{}",
            r#"{"lago_id": null}"#,
            r#"{"lago_id": ""}"#,
            r#"{"lago_id": "a", "status": 3}"#,
            r#"{"lago_id": "a", "status": "finalized", "customer": null}"#,
            r#"{"lago_id": "a", "status": "active", "customer": {"lago_id": "c", "integration_customers": [{"type": "hubspot", "external_customer_id": "../x"}]}}"#,
            r#"{"lago_id": "a", "status": "finalized", "currency": "EUR", "total_amount_cents": -9223372036854775808, "issuing_date": "2026-99-99", "customer": {"lago_id": "c", "url": "://", "email": ","}}"#,
            r#"{"lago_id": "a", "status": "active", "started_at": "2026-03-01T25:61:00+99:99", "customer": {"lago_id": "c"}}"#,
            r#"{"lago_id": "a", "status": "finalized", "customer": {"lago_id": "ü", "url": "[::1", "customer_type": 7}}"#,
        ];
        let kinds = [
            ("customer.created", "customer"),
            ("subscription.started", "subscription"),
            ("invoice.created", "invoice"),
            ("credit_note.created", "credit_note"),
        ];
        let c = Connection {
            sync_credit_notes: true,
            ..conn()
        };
        for object in objects {
            for (webhook_type, key) in kinds {
                let payload = format!(
                    r#"{{"webhook_type":"{webhook_type}","object_type":"{key}","{key}":{object}}}"#
                );
                for handler in [on_customer, on_subscription, on_invoice, on_credit_note] {
                    let _ = handler(&c, &[], &payload);
                }
            }
        }
        for payload in [
            "",
            "{",
            "\u{0}",
            r#"{"webhook_type": 5}"#,
            r#"{"webhook_type": "customer.created", "customer": []}"#,
        ] {
            for handler in [on_customer, on_subscription, on_invoice, on_credit_note] {
                assert!(handler(&c, &[], payload).is_err(), "{payload:?}");
            }
        }
    }
}
