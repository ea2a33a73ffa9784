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
    let envelope = Envelope::read(payload)?;
    match envelope.route {
        Route::Skip(reason) => return Ok(Incoming::Skip(reason)),
        Route::Push { handler: h, .. } if h != handler => {
            return Err(PlanError::UnsupportedEvent(format!(
                "{} is planned by {}, not by {}",
                envelope.webhook_type,
                h.export(),
                handler.export()
            )));
        }
        Route::Push { .. } => {}
    }
    let object = T::from_lago(envelope.require_object()?).map_err(|e| {
        PlanError::MalformedPayload(format!("the {} object: {e}", envelope.webhook_type))
    })?;
    Ok(Incoming::Object(Event {
        webhook_type: envelope.webhook_type,
        object,
    }))
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

/// The fields of a JSON object.
fn fields(value: &Value) -> Result<&Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("expected an object, found {}", kind(value)))
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

/// `fields[name]` as `T`, `None` when absent or null; `read` says what it holds otherwise.
fn field<'a, T>(
    fields: &'a Map<String, Value>,
    name: &str,
    expected: &str,
    read: impl FnOnce(&'a Value) -> Option<T>,
) -> Result<Option<T>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => read(value)
            .map(Some)
            .ok_or_else(|| format!("`{name}` is {}, expected {expected}", kind(value))),
    }
}

fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, String> {
    field(fields, name, "a string", |v| v.as_str().map(str::to_owned))
}

/// An integer that fits `i64` (Lago's `*_cents` amounts).
fn integer(fields: &Map<String, Value>, name: &str) -> Result<Option<i64>, String> {
    field(fields, name, "an integer", Value::as_i64)
}

fn flag(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, String> {
    field(fields, name, "a boolean", Value::as_bool)
}

/// A nested object; its errors are prefixed with `name`.
fn nested<T: FromLago>(fields: &Map<String, Value>, name: &str) -> Result<Option<T>, String> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => T::from_lago(value)
            .map(Some)
            .map_err(|e| format!("`{name}`: {e}")),
    }
}

/// A list of nested objects; its errors name the entry (`name[i]`).
fn list<T: FromLago>(fields: &Map<String, Value>, name: &str) -> Result<Option<Vec<T>>, String> {
    let Some(items) = field(fields, name, "an array", Value::as_array)? else {
        return Ok(None);
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| T::from_lago(item).map_err(|e| format!("`{name}[{i}]`: {e}")))
        .collect::<Result<Vec<T>, String>>()
        .map(Some)
}

impl FromLago for Customer {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let f = fields(value)?;
        Ok(Customer {
            lago_id: text(f, "lago_id")?,
            external_id: text(f, "external_id")?,
            account_type: text(f, "account_type")?,
            customer_type: text(f, "customer_type")?,
            name: text(f, "name")?,
            firstname: text(f, "firstname")?,
            lastname: text(f, "lastname")?,
            legal_name: text(f, "legal_name")?,
            email: text(f, "email")?,
            url: text(f, "url")?,
            phone: text(f, "phone")?,
            tax_identification_number: text(f, "tax_identification_number")?,
            integration_customers: list(f, "integration_customers")?,
        })
    }
}

impl FromLago for IntegrationCustomer {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let f = fields(value)?;
        Ok(IntegrationCustomer {
            integration_type: text(f, "type")?,
            legacy_integration_type: text(f, "integration_type")?,
            integration_code: text(f, "integration_code")?,
            external_customer_id: text(f, "external_customer_id")?,
            targeted_object: text(f, "targeted_object")?,
        })
    }
}

impl FromLago for Subscription {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let f = fields(value)?;
        Ok(Subscription {
            lago_id: text(f, "lago_id")?,
            external_id: text(f, "external_id")?,
            lago_customer_id: text(f, "lago_customer_id")?,
            name: text(f, "name")?,
            plan_code: text(f, "plan_code")?,
            status: text(f, "status")?,
            billing_time: text(f, "billing_time")?,
            created_at: text(f, "created_at")?,
            started_at: text(f, "started_at")?,
            ending_at: text(f, "ending_at")?,
            subscription_at: text(f, "subscription_at")?,
            terminated_at: text(f, "terminated_at")?,
            trial_ended_at: text(f, "trial_ended_at")?,
            plan: nested(f, "plan")?,
            customer: nested(f, "customer")?,
        })
    }
}

impl FromLago for PlanRef {
    fn from_lago(value: &Value) -> Result<Self, String> {
        Ok(PlanRef {
            code: text(fields(value)?, "code")?,
        })
    }
}

impl FromLago for Invoice {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let f = fields(value)?;
        Ok(Invoice {
            lago_id: text(f, "lago_id")?,
            number: text(f, "number")?,
            purchase_order_number: text(f, "purchase_order_number")?,
            issuing_date: text(f, "issuing_date")?,
            payment_due_date: text(f, "payment_due_date")?,
            payment_overdue: flag(f, "payment_overdue")?,
            invoice_type: text(f, "invoice_type")?,
            status: text(f, "status")?,
            payment_status: text(f, "payment_status")?,
            currency: text(f, "currency")?,
            total_amount_cents: integer(f, "total_amount_cents")?,
            total_due_amount_cents: integer(f, "total_due_amount_cents")?,
            sub_total_excluding_taxes_amount_cents: integer(
                f,
                "sub_total_excluding_taxes_amount_cents",
            )?,
            file_url: text(f, "file_url")?,
            web_url: text(f, "web_url")?,
            self_billed: flag(f, "self_billed")?,
            customer: nested(f, "customer")?,
            lago_customer_id: text(f, "lago_customer_id")?,
            subscriptions: list(f, "subscriptions")?,
        })
    }
}

impl FromLago for CreditNote {
    fn from_lago(value: &Value) -> Result<Self, String> {
        let f = fields(value)?;
        Ok(CreditNote {
            lago_id: text(f, "lago_id")?,
            number: text(f, "number")?,
            lago_invoice_id: text(f, "lago_invoice_id")?,
            invoice_number: text(f, "invoice_number")?,
            issuing_date: text(f, "issuing_date")?,
            credit_status: text(f, "credit_status")?,
            refund_status: text(f, "refund_status")?,
            reason: text(f, "reason")?,
            currency: text(f, "currency")?,
            total_amount_cents: integer(f, "total_amount_cents")?,
            credit_amount_cents: integer(f, "credit_amount_cents")?,
            refund_amount_cents: integer(f, "refund_amount_cents")?,
            balance_amount_cents: integer(f, "balance_amount_cents")?,
            file_url: text(f, "file_url")?,
            self_billed: flag(f, "self_billed")?,
            customer: nested(f, "customer")?,
            lago_customer_id: text(f, "lago_customer_id")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn customer(entries: serde_json::Value) -> Customer {
        Customer::from_lago(&json!({"lago_id": "c1", "integration_customers": entries})).unwrap()
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
