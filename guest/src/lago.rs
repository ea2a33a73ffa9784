//! Lago's webhook payloads, read leniently: unknown fields are ignored and nearly every field may be
//! absent or null, so a Lago release that adds or drops a field does not stop the sync.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::plan::PlanError;

/// A parsed webhook: its type and the object it carries.
#[derive(Debug)]
pub struct Event<T> {
    pub webhook_type: String,
    pub object: T,
}

/// Parse `{"webhook_type": …, "object_type": …, "<object_type>": {…}}` for a handler that takes
/// the webhook types in `accepted` and reads the object under `key`.
pub fn parse_event<T: DeserializeOwned>(
    payload: &str,
    key: &str,
    accepted: &[&str],
) -> Result<Event<T>, PlanError> {
    let envelope: Value = serde_json::from_str(payload)
        .map_err(|e| PlanError::MalformedPayload(format!("the payload is not JSON ({e})")))?;
    let Value::Object(mut envelope) = envelope else {
        return Err(PlanError::MalformedPayload(
            "the payload is not a JSON object; expected a Lago webhook body".into(),
        ));
    };
    let webhook_type = match envelope.get("webhook_type") {
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        // Without it this is not a Lago webhook at all, rather than one lacking a field.
        _ => {
            return Err(PlanError::MalformedPayload(
                "no `webhook_type`: this is not a Lago webhook body; send it exactly as Lago posts it"
                    .into(),
            ));
        }
    };
    if !accepted.contains(&webhook_type.as_str()) {
        return Err(PlanError::UnsupportedEvent(format!(
            "{webhook_type} is not handled here; this handler takes {}",
            accepted.join(", ")
        )));
    }
    let object = match envelope.remove(key) {
        Some(object @ Value::Object(_)) => object,
        _ => {
            return Err(PlanError::MissingField(format!(
                "{key}: the {webhook_type} payload carries no `{key}` object"
            )));
        }
    };
    let object = serde_json::from_value(object)
        .map_err(|e| PlanError::MalformedPayload(format!("the `{key}` object: {e}")))?;
    Ok(Event {
        webhook_type,
        object,
    })
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

#[derive(Debug, Clone, Default, Deserialize)]
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
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IntegrationCustomer {
    #[serde(rename = "type")]
    pub integration_type: Option<String>,
    pub integration_code: Option<String>,
    /// The HubSpot record id the customer is linked to.
    pub external_customer_id: Option<String>,
    pub targeted_object: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
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

#[derive(Debug, Clone, Default, Deserialize)]
pub struct PlanRef {
    pub code: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
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
}
