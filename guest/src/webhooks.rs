//! Every webhook type Lago sends, and what this sync does with each: one table, read by the guest's
//! handlers and by the host's router, so a type is never forgotten silently and both sides agree.
//!
//! Source: lago-api `SendWebhookJob::WEBHOOK_SERVICES` and `app/services/webhooks/**` at commit
//! `1b1c24a6` (`lago.md` §5.2 and §7.1). A type missing from the table (a newer Lago) is skipped
//! with a reason that says so, never an error: the event is kept and acknowledged.
//!
//! The envelope is `{"webhook_type": …, "object_type": …, "<object_type>": {…}}`; [`Envelope::read`]
//! is the one reader of it.

use crate::prelude::*;

use serde_json::Value;

use crate::plan::PlanError;

/// The component export that plans a pushed webhook type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Customer,
    Subscription,
    Invoice,
    CreditNote,
}

impl Handler {
    /// The WIT export's name.
    pub fn export(self) -> &'static str {
        match self {
            Self::Customer => "on-customer",
            Self::Subscription => "on-subscription",
            Self::Invoice => "on-invoice",
            Self::CreditNote => "on-credit-note",
        }
    }
}

/// What the sync does with a webhook type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Planned by `handler`, which reads the object at `object` (a JSON pointer into the body).
    /// The handler may still skip one event by its content (a draft, a pending subscription).
    Push {
        handler: Handler,
        object: &'static str,
    },
    /// Nothing to push, for the stated reason: acknowledged and recorded as skipped.
    Skip(&'static str),
}

const fn push(handler: Handler, object: &'static str) -> Handling {
    Handling::Push { handler, object }
}

const CUSTOMER: Handling = push(Handler::Customer, "/customer");
const SUBSCRIPTION: Handling = push(Handler::Subscription, "/subscription");
const INVOICE: Handling = push(Handler::Invoice, "/invoice");
const CREDIT_NOTE: Handling = push(Handler::CreditNote, "/credit_note");

const NOT_BILLING: Handling = Handling::Skip(
    "Lago sends it about its catalogue, usage or configuration, not about a customer's billing records in HubSpot",
);
const OTHER_PROVIDER: Handling = Handling::Skip(
    "it reports on another integration of the customer (payment, accounting or tax provider); the customer's HubSpot properties come from customer.created and customer.updated",
);
const PAYMENT_FLOW: Handling = Handling::Skip(
    "it is about a payment, payment request or receipt; the invoice's payment status reaches HubSpot with invoice.payment_status_updated",
);
const WALLET: Handling = Handling::Skip(
    "wallets are not synced; a paid top-up reaches HubSpot as its invoice (invoice.paid_credit_added)",
);
const SALES: Handling = Handling::Skip(
    "quotes, orders and order forms are not synced; the invoices and subscriptions they lead to are",
);

/// Every webhook type of lago-api `1b1c24a6`, sorted by name.
pub static WEBHOOK_TYPES: &[(&str, Handling)] = &[
    ("alert.triggered", NOT_BILLING),
    ("billable_metric.created", NOT_BILLING),
    ("billable_metric.deleted", NOT_BILLING),
    ("billable_metric.updated", NOT_BILLING),
    ("credit_note.created", CREDIT_NOTE),
    ("credit_note.generated", CREDIT_NOTE),
    (
        "credit_note.provider_refund_failure",
        Handling::Skip(
            "it carries the payment provider's refund error, not the credit note; the credit note's refund status arrives with its next credit_note event",
        ),
    ),
    ("customer.accounting_provider_created", OTHER_PROVIDER),
    ("customer.accounting_provider_error", OTHER_PROVIDER),
    ("customer.checkout_url_generated", OTHER_PROVIDER),
    ("customer.created", CUSTOMER),
    // Lago's own HubSpot integration linked the customer: the link (`external_customer_id`) is news.
    ("customer.crm_provider_created", CUSTOMER),
    (
        "customer.crm_provider_error",
        Handling::Skip(
            "it reports an error of Lago's own CRM integration and carries no customer to sync",
        ),
    ),
    ("customer.payment_provider_created", OTHER_PROVIDER),
    ("customer.payment_provider_error", OTHER_PROVIDER),
    ("customer.tax_provider_error", OTHER_PROVIDER),
    ("customer.updated", CUSTOMER),
    ("customer.vies_check", OTHER_PROVIDER),
    ("dunning_campaign.finished", PAYMENT_FLOW),
    ("event.error", NOT_BILLING),
    ("events.errors", NOT_BILLING),
    ("feature.created", NOT_BILLING),
    ("feature.deleted", NOT_BILLING),
    ("feature.updated", NOT_BILLING),
    (
        "fee.created",
        Handling::Skip("fees are not synced; the invoice that bills them is (with its totals)"),
    ),
    ("fee.tax_provider_error", OTHER_PROVIDER),
    ("integration.provider_error", OTHER_PROVIDER),
    // Lago's `Invoices::SubscriptionService` and the other finalizing services (§7.1).
    ("invoice.created", INVOICE),
    (
        "invoice.deleted",
        Handling::Skip("Lago deletes only draft invoices, and drafts are never pushed"),
    ),
    (
        "invoice.drafted",
        Handling::Skip("the invoice is a draft; drafts are not pushed until finalized"),
    ),
    // The PDF (`file_url`) now exists.
    ("invoice.generated", INVOICE),
    // `invoices/create_one_off_service.rb`: one-off and add-on invoices.
    ("invoice.one_off_created", INVOICE),
    // `invoices/paid_credit_service.rb`, `finalize_open_credit_service.rb`: wallet top-ups.
    ("invoice.paid_credit_added", INVOICE),
    // `V1::Invoices::PaymentDisputeLostSerializer` nests the invoice; Lago's integration updates it.
    (
        "invoice.payment_dispute_lost",
        push(Handler::Invoice, "/payment_dispute_lost/invoice"),
    ),
    (
        "invoice.payment_failure",
        Handling::Skip(
            "it carries the payment provider's error, not the invoice; the failed payment status arrives with invoice.payment_status_updated",
        ),
    ),
    ("invoice.payment_overdue", INVOICE),
    ("invoice.payment_status_updated", INVOICE),
    (
        "invoice.ready_to_finalize",
        Handling::Skip(
            "the invoice is still a draft waiting for finalization; it is pushed once finalized",
        ),
    ),
    ("invoice.resynced", INVOICE),
    ("invoice.voided", INVOICE),
    ("order.created", SALES),
    ("order.executed", SALES),
    ("order_form.created", SALES),
    ("order_form.expired", SALES),
    ("order_form.signed", SALES),
    ("order_form.voided", SALES),
    ("payment.requires_action", PAYMENT_FLOW),
    ("payment.succeeded", PAYMENT_FLOW),
    ("payment_provider.error", OTHER_PROVIDER),
    ("payment_receipt.created", PAYMENT_FLOW),
    ("payment_receipt.generated", PAYMENT_FLOW),
    ("payment_request.created", PAYMENT_FLOW),
    ("payment_request.payment_failure", PAYMENT_FLOW),
    ("payment_request.payment_status_updated", PAYMENT_FLOW),
    ("plan.created", NOT_BILLING),
    ("plan.deleted", NOT_BILLING),
    ("plan.updated", NOT_BILLING),
    ("quote.approved", SALES),
    ("quote.created", SALES),
    ("quote.voided", SALES),
    // Pending or payment-gated subscriptions that end before starting (§7.2) are skipped by content.
    ("subscription.canceled", SUBSCRIPTION),
    // A payment-gated subscription waiting for its payment: the handler skips it until active.
    ("subscription.incomplete", SUBSCRIPTION),
    ("subscription.started", SUBSCRIPTION),
    ("subscription.terminated", SUBSCRIPTION),
    (
        "subscription.termination_alert",
        Handling::Skip(
            "it is a reminder that the subscription will end; the subscription itself has not changed",
        ),
    ),
    ("subscription.trial_ended", SUBSCRIPTION),
    ("subscription.updated", SUBSCRIPTION),
    (
        "subscription.usage_threshold_reached",
        Handling::Skip(
            "it reports usage crossing a threshold; the subscription's HubSpot properties have not changed",
        ),
    ),
    ("wallet.created", WALLET),
    ("wallet.depleted_ongoing_balance", WALLET),
    ("wallet.terminated", WALLET),
    ("wallet.updated", WALLET),
    ("wallet_transaction.created", WALLET),
    ("wallet_transaction.payment_failure", WALLET),
    ("wallet_transaction.updated", WALLET),
];

/// What happens to one webhook type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Push {
        handler: Handler,
        object: &'static str,
    },
    /// Skipped; the reason names the type.
    Skip(String),
}

/// The route of `webhook_type`; a type this release does not know is skipped with a reason.
pub fn route(webhook_type: &str) -> Route {
    match WEBHOOK_TYPES.binary_search_by(|(name, _)| (*name).cmp(webhook_type)) {
        Ok(at) => match WEBHOOK_TYPES[at].1 {
            Handling::Push { handler, object } => Route::Push { handler, object },
            Handling::Skip(why) => Route::Skip(format!("{webhook_type} is not synced: {why}")),
        },
        Err(_) => Route::Skip(format!(
            "{webhook_type} is not a Lago webhook type this release knows (it follows lago-api 1b1c24a6); not synced"
        )),
    }
}

/// A webhook body, read once: its type, its route and the object it carries.
#[derive(Debug, Clone)]
pub struct Envelope {
    pub webhook_type: String,
    pub route: Route,
    /// The object the body carries: at the handler's pointer for a pushed type, under
    /// `object_type` for a skipped one; `None` when absent.
    pub object: Option<Value>,
}

impl Envelope {
    /// Errors only for a body that is not a Lago webhook at all (not JSON, not an object, no
    /// `webhook_type`); everything else is routed.
    pub fn read(payload: &str) -> Result<Envelope, PlanError> {
        let mut body = crate::json::parse(payload)
            .map_err(|e| PlanError::MalformedPayload(format!("the payload is not JSON ({e})")))?;
        if !body.is_object() {
            return Err(PlanError::MalformedPayload(
                "the payload is not a JSON object; expected a Lago webhook body".into(),
            ));
        }
        let webhook_type = match body.get("webhook_type") {
            Some(Value::String(t)) if !t.trim().is_empty() => t.trim().to_owned(),
            _ => {
                return Err(PlanError::MalformedPayload(
                    "no `webhook_type`: this is not a Lago webhook body; send it exactly as Lago posts it"
                        .into(),
                ));
            }
        };
        let route = route(&webhook_type);
        // Taken out of the body, which is dropped: no copy of the object.
        let slot = match &route {
            Route::Push { object, .. } => body.pointer_mut(object),
            // Still read, so a skipped event is logged under its object's id.
            Route::Skip(_) => match body.get("object_type").and_then(Value::as_str) {
                Some(key) => {
                    let key = key.to_owned();
                    body.get_mut(&key)
                }
                None => None,
            },
        };
        let object = slot.filter(|o| o.is_object()).map(Value::take);
        Ok(Envelope {
            webhook_type,
            route,
            object,
        })
    }

    /// The object a handler needs, or why it is missing.
    pub fn require_object(&self) -> Result<&Value, PlanError> {
        let pointer = match &self.route {
            Route::Push { object, .. } => object,
            Route::Skip(_) => "",
        };
        self.object.as_ref().ok_or_else(|| {
            PlanError::MissingField(format!(
                "{}: the {} payload carries no object at `{pointer}`",
                pointer.trim_start_matches('/').replace('/', "."),
                self.webhook_type
            ))
        })
    }

    /// The Lago id of the object (`lago_id`), empty when absent.
    pub fn lago_id(&self) -> String {
        self.text("/lago_id").unwrap_or_default()
    }

    /// The Lago id of the customer the object belongs to: itself for a customer, else its
    /// `lago_customer_id` or embedded `customer.lago_id`.
    pub fn customer_lago_id(&self) -> Option<String> {
        match &self.route {
            Route::Push {
                handler: Handler::Customer,
                ..
            } => self.text("/lago_id"),
            _ => self
                .text("/lago_customer_id")
                .or_else(|| self.text("/customer/lago_id")),
        }
    }

    /// The customer's HubSpot `integration_customers` entries (the embedded customer's, for
    /// subscriptions, invoices and credit notes), as carried.
    pub fn customer(&self) -> Option<&Value> {
        match &self.route {
            Route::Push {
                handler: Handler::Customer,
                ..
            } => self.object.as_ref(),
            _ => self.object.as_ref()?.get("customer"),
        }
    }

    /// Lago ids of the other records the object refers to and a handler associates it with, so
    /// the host can pass their HubSpot ids: a credit note's `lago_invoice_id`, an invoice's
    /// `subscriptions[].lago_id`. Empty for a skipped type.
    pub fn referenced_lago_ids(&self) -> Vec<String> {
        let handler = match &self.route {
            Route::Push { handler, .. } => *handler,
            Route::Skip(_) => return Vec::new(),
        };
        let mut ids = Vec::new();
        match handler {
            Handler::CreditNote => ids.extend(self.text("/lago_invoice_id")),
            Handler::Invoice => {
                let subscriptions = self
                    .object
                    .as_ref()
                    .and_then(|o| o.get("subscriptions"))
                    .and_then(Value::as_array);
                for subscription in subscriptions.into_iter().flatten() {
                    if let Some(id) = subscription
                        .get("lago_id")
                        .and_then(Value::as_str)
                        .map(str::trim)
                        .filter(|id| !id.is_empty() && !ids.iter().any(|known| known == id))
                    {
                        ids.push(id.to_owned());
                    }
                }
            }
            Handler::Customer | Handler::Subscription => {}
        }
        ids
    }

    fn text(&self, pointer: &str) -> Option<String> {
        self.object
            .as_ref()?
            .pointer(pointer)?
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_and_unique() {
        for pair in WEBHOOK_TYPES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn unknown_types_are_skipped_with_a_reason() {
        let Route::Skip(reason) = route("invoice.teleported") else {
            panic!()
        };
        assert!(
            reason.contains("invoice.teleported") && reason.contains("not a Lago webhook type")
        );
    }

    #[test]
    fn the_dispute_webhook_nests_its_invoice() {
        let body = r#"{"webhook_type":"invoice.payment_dispute_lost","object_type":"payment_dispute_lost",
            "payment_dispute_lost":{"invoice":{"lago_id":"inv-1","customer":{"lago_id":"cus-1"}},"provider_error":{}}}"#;
        let envelope = Envelope::read(body).unwrap();
        assert_eq!(envelope.lago_id(), "inv-1");
        assert_eq!(envelope.customer_lago_id().as_deref(), Some("cus-1"));
    }

    #[test]
    fn referenced_ids_are_the_credit_notes_invoice_and_the_invoices_subscriptions() {
        let credit_note = r#"{"webhook_type":"credit_note.created","object_type":"credit_note",
            "credit_note":{"lago_id":"cn-1","lago_invoice_id":"inv-1","customer":{"lago_id":"cus-1"}}}"#;
        let envelope = Envelope::read(credit_note).unwrap();
        assert_eq!(envelope.referenced_lago_ids(), ["inv-1"]);
        assert_eq!(envelope.customer_lago_id().as_deref(), Some("cus-1"));
        let invoice = r#"{"webhook_type":"invoice.created","object_type":"invoice",
            "invoice":{"lago_id":"inv-1","subscriptions":[{"lago_id":"sub-1"},{"lago_id":"sub-2"},
            {"lago_id":"sub-1"},{"lago_id":null},{}]}}"#;
        assert_eq!(
            Envelope::read(invoice).unwrap().referenced_lago_ids(),
            ["sub-1", "sub-2"]
        );
        let skipped = r#"{"webhook_type":"credit_note.provider_refund_failure","object_type":"credit_note",
            "credit_note":{"lago_id":"cn-1","lago_invoice_id":"inv-1"}}"#;
        assert!(
            Envelope::read(skipped)
                .unwrap()
                .referenced_lago_ids()
                .is_empty()
        );
    }

    #[test]
    fn not_a_webhook_is_an_error_and_a_missing_object_is_named() {
        assert!(Envelope::read("[]").is_err());
        assert!(Envelope::read(r#"{"webhook_type": ""}"#).is_err());
        let envelope = Envelope::read(r#"{"webhook_type":"invoice.created"}"#).unwrap();
        let error = envelope.require_object().unwrap_err();
        assert!(matches!(error, PlanError::MissingField(m) if m.starts_with("invoice:")));
    }
}
