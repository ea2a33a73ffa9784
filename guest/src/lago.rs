//! Lago's webhook payloads, read leniently: unknown fields are ignored and nearly every field may be
//! absent or null, so a Lago release that adds or drops a field does not stop the sync.

use crate::prelude::*;

use serde_json::{Map, Value};

use crate::plan::PlanError;
use crate::webhooks::{Envelope, Handler, Route};

/// A parsed webhook: its type and the object it carries.
#[derive(Debug)]
pub struct Event<T> {
    pub webhook_type: String,
    pub object: T,
}

/// What a handler gets from a payload: its object, or the reason the type is not pushed.
#[derive(Debug)]
pub enum Incoming<T> {
    Object(Event<T>),
    Skip(String),
}

/// Read a payload for `handler` through the one envelope reader ([`Envelope::read`]): types the
/// webhook table skips come back as [`Incoming::Skip`]; a type another handler plans is an
/// [`PlanError::UnsupportedEvent`] (the host routed it wrongly).
pub fn read_event<T: FromLago>(payload: &str, handler: Handler) -> Result<Incoming<T>, PlanError> {
    let envelope = match pushed(payload, handler)? {
        Ok(envelope) => envelope,
        Err(reason) => return Ok(Incoming::Skip(reason)),
    };
    let object = T::from_lago(envelope.require_object()?).map_err(|e| {
        PlanError::MalformedPayload(format!("the {} object: {e}", envelope.webhook_type))
    })?;
    Ok(Incoming::Object(Event {
        webhook_type: envelope.webhook_type,
        object,
    }))
}

/// The envelope of a payload `handler` plans, or the reason its type is skipped: the part of
/// [`read_event`] that does not depend on the object read.
fn pushed(payload: &str, handler: Handler) -> Result<Result<Envelope, String>, PlanError> {
    let envelope = Envelope::read(payload)?;
    match envelope.route {
        Route::Skip(reason) => Ok(Err(reason)),
        Route::Push { handler: h, .. } if h != handler => {
            Err(PlanError::UnsupportedEvent(format!(
                "{} is planned by {}, not by {}",
                envelope.webhook_type,
                h.export(),
                handler.export()
            )))
        }
        Route::Push { .. } => Ok(Ok(envelope)),
    }
}

/// A field the mapping cannot do without; `what` names it as in Lago's payload.
pub fn required<'a>(value: &'a Option<String>, what: &str) -> Result<&'a str, PlanError> {
    match value.as_deref().map(str::trim) {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(PlanError::MissingField(format!(
            "{what} is missing or empty"
        ))),
    }
}

#[derive(Debug, Clone, Default)]
pub struct Customer {
    pub lago_id: Option<String>,
    pub external_id: Option<String>,
    pub account_type: Option<String>,
    pub customer_type: Option<String>,
    pub name: Option<String>,
    pub firstname: Option<String>,
    pub lastname: Option<String>,
    pub legal_name: Option<String>,
    pub email: Option<String>,
    pub url: Option<String>,
    pub phone: Option<String>,
    pub tax_identification_number: Option<String>,
    /// `None` when the payload does not include the links at all (e.g. a customer embedded in a
    /// subscription), which is not the same as "linked to nothing".
    pub integration_customers: Option<Vec<IntegrationCustomer>>,
}

/// One entry of `customer.integration_customers`; only HubSpot ones matter here.
#[derive(Debug, Clone, Default)]
pub struct IntegrationCustomer {
    /// `hubspot`, `netsuite`, … (lago-api `V1::IntegrationCustomerSerializer`).
    pub integration_type: Option<String>,
    /// The same, as older payloads and exports name it.
    pub legacy_integration_type: Option<String>,
    pub integration_code: Option<String>,
    /// The HubSpot record id the customer is linked to.
    pub external_customer_id: Option<String>,
    pub targeted_object: Option<String>,
}

impl IntegrationCustomer {
    pub fn is_hubspot(&self) -> bool {
        [&self.integration_type, &self.legacy_integration_type]
            .into_iter()
            .any(|t| t.as_deref().map(str::trim) == Some("hubspot"))
    }

    /// The entry's `integration_code`, when it names one.
    pub fn code(&self) -> Option<&str> {
        self.integration_code
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
    }
}

/// The one link rule, shared by the guest (which record to update) and the host (which
/// connection to route to): a customer's HubSpot entries, in payload order.
pub fn hubspot_entries(customer: &Customer) -> impl Iterator<Item = &IntegrationCustomer> {
    customer
        .integration_customers
        .iter()
        .flatten()
        .filter(|entry| entry.is_hubspot())
}

/// The connection code the host routes a customer's events to: the first HubSpot entry that
/// names one.
pub fn routing_code(customer: &Customer) -> Option<&str> {
    hubspot_entries(customer).find_map(IntegrationCustomer::code)
}

/// The customer's HubSpot entry for connection `code`: the one naming it, else one that names
/// no connection (it belongs to any), else, when `sole` (the host serves only this connection),
/// the first HubSpot entry whatever code it names: customers migrating from Lago's own
/// integration carry the code their Lago Cloud integration was given. An event routed by
/// [`routing_code`] to `code` always finds the entry it was routed by, and a connection that
/// takes every event finds an entry whenever the customer has one.
pub fn hubspot_link<'a>(
    customer: &'a Customer,
    code: &str,
    sole: bool,
) -> Option<&'a IntegrationCustomer> {
    hubspot_entries(customer)
        .find(|entry| entry.code() == Some(code))
        .or_else(|| hubspot_entries(customer).find(|entry| entry.code().is_none()))
        .or_else(|| hubspot_entries(customer).find(|_| sole))
}

#[derive(Debug, Clone, Default)]
pub struct Subscription {
    pub lago_id: Option<String>,
    pub external_id: Option<String>,
    pub lago_customer_id: Option<String>,
    pub name: Option<String>,
    pub plan_code: Option<String>,
    pub status: Option<String>,
    pub billing_time: Option<String>,
    pub created_at: Option<String>,
    pub started_at: Option<String>,
    pub ending_at: Option<String>,
    pub subscription_at: Option<String>,
    pub terminated_at: Option<String>,
    pub trial_ended_at: Option<String>,
    pub plan: Option<PlanRef>,
    pub customer: Option<Customer>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanRef {
    pub code: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct Invoice {
    pub lago_id: Option<String>,
    pub number: Option<String>,
    pub purchase_order_number: Option<String>,
    pub issuing_date: Option<String>,
    pub payment_due_date: Option<String>,
    pub payment_overdue: Option<bool>,
    pub invoice_type: Option<String>,
    pub status: Option<String>,
    pub payment_status: Option<String>,
    pub currency: Option<String>,
    pub total_amount_cents: Option<i64>,
    pub total_due_amount_cents: Option<i64>,
    pub sub_total_excluding_taxes_amount_cents: Option<i64>,
    pub file_url: Option<String>,
    pub web_url: Option<String>,
    pub self_billed: Option<bool>,
    pub customer: Option<Customer>,
    /// Not in Lago's serializer today; read in case a payload names the customer without embedding it.
    pub lago_customer_id: Option<String>,
    /// The subscriptions the invoice bills (`V1::SubscriptionSerializer` objects), in the payloads
    /// that include them (`invoice.created`, `invoice.voided`); `None` when not included.
    pub subscriptions: Option<Vec<Subscription>>,
}

/// A credit note (lago-api `V1::CreditNoteSerializer`, with its `customer` included as in the
/// `credit_note.*` webhooks). Amounts are in the credit note's `currency`.
#[derive(Debug, Clone, Default)]
pub struct CreditNote {
    pub lago_id: Option<String>,
    pub number: Option<String>,
    /// The invoice the credit note is issued on.
    pub lago_invoice_id: Option<String>,
    pub invoice_number: Option<String>,
    pub issuing_date: Option<String>,
    /// `available`, `consumed` or `voided`.
    pub credit_status: Option<String>,
    /// `pending`, `succeeded` or `failed`; null without a refund.
    pub refund_status: Option<String>,
    /// `duplicated_charge`, `product_unsatisfactory`, `order_change`, `order_cancellation`,
    /// `fraudulent_charge` or `other`.
    pub reason: Option<String>,
    pub currency: Option<String>,
    pub total_amount_cents: Option<i64>,
    pub credit_amount_cents: Option<i64>,
    pub refund_amount_cents: Option<i64>,
    pub balance_amount_cents: Option<i64>,
    pub file_url: Option<String>,
    /// Whether the invoice it credits is self-billed.
    pub self_billed: Option<bool>,
    pub customer: Option<Customer>,
    /// Not in Lago's serializer; read in case a payload names the customer without embedding it.
    pub lago_customer_id: Option<String>,
}

/// A Lago object read by hand from the parsed payload: only the fields the mapping uses, each
/// absent or `null` as `None`; a field of another JSON type is an error naming it. (No serde
/// derives: in the component they were a fifth of the code.)
pub trait FromLago: Sized {
    /// `value` must be a JSON object; the error says which field is wrong and what it holds.
    fn from_lago(value: &Value) -> Result<Self, String>;
}

/// The fields of one JSON object being read; remembers the first field of the wrong type, so an
/// object's reader is one plain struct expression (no early return per field).
struct Fields<'a> {
    map: &'a Map<String, Value>,
    error: Option<String>,
}

impl<'a> Fields<'a> {
    fn of(value: &'a Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => Ok(Fields { map, error: None }),
            other => Err(format!("expected an object, found {}", kind(other))),
        }
    }

    /// The value read, or the first error met.
    fn done<T>(self, value: T) -> Result<T, String> {
        match self.error {
            None => Ok(value),
            Some(error) => Err(error),
        }
    }

    /// `name` read by `read`, `None` when absent or null; `expected` names the type it wants.
    #[inline(never)]
    fn field<T>(
        &mut self,
        name: &str,
        expected: &str,
        read: fn(&'a Value) -> Option<T>,
    ) -> Option<T> {
        let value = self.map.get(name).filter(|v| !v.is_null())?;
        let read = read(value);
        if read.is_none() && self.error.is_none() {
            self.error = Some(format!("`{name}` is {}, expected {expected}", kind(value)));
        }
        read
    }

    fn text(&mut self, name: &str) -> Option<String> {
        self.field(name, "a string", |v| v.as_str().map(str::to_owned))
    }

    /// A date or date-time string ([`crate::format::date`] reads it). One that does not read as
    /// a date is an error naming it: mapped as missing, it would clear the HubSpot property the
    /// record already holds. An empty (or blank) string is kept as a way of saying "none".
    fn date(&mut self, name: &str) -> Option<String> {
        let text = self.text(name)?;
        if !text.trim().is_empty() && crate::format::date(&text).is_none() && self.error.is_none() {
            self.error = Some(format!(
                "`{name}` is {text:?}, expected a date (YYYY-MM-DD) or an RFC 3339 date-time"
            ));
        }
        Some(text)
    }

    /// An integer that fits `i64` (Lago's `*_cents` amounts).
    fn integer(&mut self, name: &str) -> Option<i64> {
        self.field(name, "an integer", Value::as_i64)
    }

    fn flag(&mut self, name: &str) -> Option<bool> {
        self.field(name, "a boolean", Value::as_bool)
    }

    /// A nested object; its errors are prefixed with `name`.
    fn nested<T: FromLago>(&mut self, name: &str) -> Option<T> {
        let value = self.map.get(name).filter(|v| !v.is_null())?;
        match T::from_lago(value) {
            Ok(read) => Some(read),
            Err(error) => {
                self.error.get_or_insert(format!("`{name}`: {error}"));
                None
            }
        }
    }

    /// A list of nested objects; its errors name the entry (`name[i]`).
    fn list<T: FromLago>(&mut self, name: &str) -> Option<Vec<T>> {
        let items = self.field(name, "an array", Value::as_array)?;
        let mut read = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match T::from_lago(item) {
                Ok(entry) => read.push(entry),
                Err(error) => {
                    self.error.get_or_insert(format!("`{name}[{i}]`: {error}"));
                    return None;
                }
            }
        }
        Some(read)
    }
}

/// How an error message names a JSON value's type.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl FromLago for Customer {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let read = Customer {
            lago_id: f.text("lago_id"),
            external_id: f.text("external_id"),
            account_type: f.text("account_type"),
            customer_type: f.text("customer_type"),
            name: f.text("name"),
            firstname: f.text("firstname"),
            lastname: f.text("lastname"),
            legal_name: f.text("legal_name"),
            email: f.text("email"),
            url: f.text("url"),
            phone: f.text("phone"),
            tax_identification_number: f.text("tax_identification_number"),
            integration_customers: f.list("integration_customers"),
        };
        f.done(read)
    }
}

impl FromLago for IntegrationCustomer {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let read = IntegrationCustomer {
            integration_type: f.text("type"),
            legacy_integration_type: f.text("integration_type"),
            integration_code: f.text("integration_code"),
            external_customer_id: f.text("external_customer_id"),
            targeted_object: f.text("targeted_object"),
        };
        f.done(read)
    }
}

impl FromLago for Subscription {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let read = Subscription {
            lago_id: f.text("lago_id"),
            external_id: f.text("external_id"),
            lago_customer_id: f.text("lago_customer_id"),
            name: f.text("name"),
            plan_code: f.text("plan_code"),
            status: f.text("status"),
            billing_time: f.text("billing_time"),
            created_at: f.date("created_at"),
            started_at: f.date("started_at"),
            ending_at: f.date("ending_at"),
            subscription_at: f.date("subscription_at"),
            terminated_at: f.date("terminated_at"),
            trial_ended_at: f.date("trial_ended_at"),
            plan: f.nested("plan"),
            customer: f.nested("customer"),
        };
        f.done(read)
    }
}

impl FromLago for PlanRef {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let code = f.text("code");
        f.done(PlanRef { code })
    }
}

impl FromLago for Invoice {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let read = Invoice {
            lago_id: f.text("lago_id"),
            number: f.text("number"),
            purchase_order_number: f.text("purchase_order_number"),
            issuing_date: f.date("issuing_date"),
            payment_due_date: f.date("payment_due_date"),
            payment_overdue: f.flag("payment_overdue"),
            invoice_type: f.text("invoice_type"),
            status: f.text("status"),
            payment_status: f.text("payment_status"),
            currency: f.text("currency"),
            total_amount_cents: f.integer("total_amount_cents"),
            total_due_amount_cents: f.integer("total_due_amount_cents"),
            sub_total_excluding_taxes_amount_cents: f
                .integer("sub_total_excluding_taxes_amount_cents"),
            file_url: f.text("file_url"),
            web_url: f.text("web_url"),
            self_billed: f.flag("self_billed"),
            customer: f.nested("customer"),
            lago_customer_id: f.text("lago_customer_id"),
            subscriptions: f.list("subscriptions"),
        };
        f.done(read)
    }
}

impl FromLago for CreditNote {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let mut f = Fields::of(value)?;
        let read = CreditNote {
            lago_id: f.text("lago_id"),
            number: f.text("number"),
            lago_invoice_id: f.text("lago_invoice_id"),
            invoice_number: f.text("invoice_number"),
            issuing_date: f.date("issuing_date"),
            credit_status: f.text("credit_status"),
            refund_status: f.text("refund_status"),
            reason: f.text("reason"),
            currency: f.text("currency"),
            total_amount_cents: f.integer("total_amount_cents"),
            credit_amount_cents: f.integer("credit_amount_cents"),
            refund_amount_cents: f.integer("refund_amount_cents"),
            balance_amount_cents: f.integer("balance_amount_cents"),
            file_url: f.text("file_url"),
            self_billed: f.flag("self_billed"),
            customer: f.nested("customer"),
            lago_customer_id: f.text("lago_customer_id"),
        };
        f.done(read)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn customer(entries: serde_json::Value) -> Customer {
        Customer::from_lago(&json!({"lago_id": "c1", "integration_customers": entries})).unwrap()
    }

    /// A date that does not read is refused by name: mapped as missing, it would clear the
    /// HubSpot property the record holds. Null, absent and empty stay "none".
    #[test]
    fn a_date_that_does_not_read_is_an_error_naming_it() {
        for bad in ["2026-13-45", "yesterday", "2026-02-30"] {
            let error = Invoice::from_lago(&json!({"lago_id": "i1", "issuing_date": bad}))
                .expect_err("refused");
            assert!(
                error.contains("`issuing_date`") && error.contains(bad),
                "{error}"
            );
            let error = Subscription::from_lago(&json!({"lago_id": "s1", "terminated_at": bad}))
                .expect_err("refused");
            assert!(error.contains("`terminated_at`"), "{error}");
        }
        for fine in [
            json!(null),
            json!(""),
            json!("2026-11-01"),
            json!("2026-11-01T10:00:00Z"),
        ] {
            let invoice = Invoice::from_lago(&json!({"lago_id": "i1", "issuing_date": fine}));
            assert!(invoice.is_ok(), "{fine}: {invoice:?}");
        }
        let note = CreditNote::from_lago(&json!({"lago_id": "n1", "issuing_date": "31/12/2026"}));
        assert!(note.is_err());
    }

    fn linked_id<'a>(customer: &'a Customer, code: &str, sole: bool) -> Option<&'a str> {
        hubspot_link(customer, code, sole)?
            .external_customer_id
            .as_deref()
    }

    #[test]
    fn the_entry_naming_the_connection_wins_then_one_naming_none() {
        let c = customer(json!([
            {"type": "hubspot", "integration_code": "hs-other", "external_customer_id": "1"},
            {"type": "hubspot", "external_customer_id": "2"},
            {"type": "hubspot", "integration_code": "hs-prod", "external_customer_id": "3"},
        ]));
        for sole in [false, true] {
            assert_eq!(linked_id(&c, "hs-prod", sole), Some("3"));
            assert_eq!(linked_id(&c, "hs-eu", sole), Some("2"));
        }
    }

    /// Customers migrating from Lago's own integration carry the code their Lago Cloud
    /// integration was given: a connection served alone honours it.
    #[test]
    fn a_sole_connection_takes_a_link_naming_any_code() {
        let c = customer(json!([
            {"type": "netsuite", "integration_code": "ns", "external_customer_id": "0"},
            {"type": "hubspot", "integration_code": "hs-lago-cloud", "external_customer_id": "1"},
            {"integration_type": "hubspot", "integration_code": "hs-old", "external_customer_id": "2"},
        ]));
        assert_eq!(linked_id(&c, "hubspot", false), None);
        assert_eq!(linked_id(&c, "hubspot", true), Some("1"));
        // Only HubSpot entries count, even alone.
        let other = customer(json!([{"type": "netsuite", "integration_code": "ns"}]));
        assert!(hubspot_link(&other, "hubspot", true).is_none());
        assert!(hubspot_link(&customer(json!([])), "hubspot", true).is_none());
        let absent = Customer::from_lago(&json!({"lago_id": "c1"})).unwrap();
        assert!(hubspot_link(&absent, "hubspot", true).is_none());
    }

    #[test]
    fn routing_names_the_first_entry_with_a_code() {
        let c = customer(json!([
            {"type": "hubspot", "integration_code": " ", "external_customer_id": "1"},
            {"type": "hubspot", "integration_code": "hs-b", "external_customer_id": "2"},
            {"type": "hubspot", "integration_code": "hs-a", "external_customer_id": "3"},
        ]));
        assert_eq!(routing_code(&c), Some("hs-b"));
        // The connection an event is routed to finds the entry it was routed by.
        assert_eq!(linked_id(&c, "hs-b", false), Some("2"));
    }

    /// Absent and null are `None`; another type is an error naming the field and what it holds.
    #[test]
    fn fields_of_another_type_are_named() {
        let c = Customer::from_lago(&json!({"lago_id": "c1", "email": null})).unwrap();
        assert_eq!((c.lago_id.as_deref(), c.email), (Some("c1"), None));
        assert_eq!(
            Customer::from_lago(&json!({"lago_id": 42})).unwrap_err(),
            "`lago_id` is a number, expected a string"
        );
        assert_eq!(
            Customer::from_lago(&json!([])).unwrap_err(),
            "expected an object, found an array"
        );
        let invoice = json!({"total_amount_cents": 1.5, "customer": {"lago_id": "c1"}});
        assert_eq!(
            Invoice::from_lago(&invoice).unwrap_err(),
            "`total_amount_cents` is a number, expected an integer"
        );
        let invoice = json!({"subscriptions": [{"lago_id": "s1"}, {"plan": {"code": 7}}]});
        assert_eq!(
            Invoice::from_lago(&invoice).unwrap_err(),
            "`subscriptions[1]`: `plan`: `code` is a number, expected a string"
        );
        let invoice = Invoice::from_lago(&json!({"total_amount_cents": -9223372036854775808i64}));
        assert_eq!(invoice.unwrap().total_amount_cents, Some(i64::MIN));
    }
}
