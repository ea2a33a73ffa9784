//! Lago → HubSpot mapping. Each entry point turns one Lago webhook (or a connection set-up) into a
//! HubSpot request [`Plan`]; the host executes it. Plain Rust, so it is tested natively; the
//! component glue lives in `wasm.rs`.

pub mod format;
pub mod lago;
pub mod plan;
pub mod properties;

mod customer;
mod deploy;
mod hubspot;
mod invoice;
mod subscription;

#[cfg(test)]
mod test_support;

#[cfg(target_arch = "wasm32")]
mod wasm;

pub use deploy::HubspotReader;
pub use plan::{
    Capture, Connection, HttpMethod, KnownId, Plan, PlanError, RecordKey, RecordKind, Step, TargetedObject,
};

/// Plan the connection set-up: what `reader` shows missing among the Lago properties on companies
/// and contacts and the LagoSubscriptions / LagoInvoices custom objects.
pub fn deploy(conn: &Connection, reader: &mut impl HubspotReader) -> Result<Plan, PlanError> {
    deploy::plan(conn, reader)
}

/// `customer.created` / `customer.updated`.
pub fn on_customer(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    customer::plan(conn, known, payload)
}

/// `subscription.started|updated|terminated|canceled|trial_ended`.
pub fn on_subscription(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    subscription::plan(conn, known, payload)
}

/// `invoice.created|generated|payment_status_updated|payment_overdue|voided|resynced`.
pub fn on_invoice(conn: &Connection, known: &[KnownId], payload: &str) -> Result<Plan, PlanError> {
    invoice::plan(conn, known, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::conn;

    /// Whatever arrives, the handlers answer with a plan or a typed error, never a panic (a panic
    /// in the component is a trap that kills the instance).
    #[test]
    fn odd_payloads_never_panic() {
        let objects = [
            "null", "1", "\"x\"", "[]", "{}", r#"{"lago_id": null}"#, r#"{"lago_id": ""}"#, r#"{"lago_id": "a", "status": 3}"#,
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
        ];
        let c = conn();
        for object in objects {
            for (webhook_type, key) in kinds {
                let payload = format!(r#"{{"webhook_type":"{webhook_type}","object_type":"{key}","{key}":{object}}}"#);
                for handler in [on_customer, on_subscription, on_invoice] {
                    let _ = handler(&c, &[], &payload);
                }
            }
        }
        for payload in ["", "{", "\u{0}", r#"{"webhook_type": 5}"#, r#"{"webhook_type": "customer.created", "customer": []}"#] {
            for handler in [on_customer, on_subscription, on_invoice] {
                assert!(handler(&c, &[], payload).is_err(), "{payload:?}");
            }
        }
    }
}
