//! THE table of HubSpot properties this sync writes. Each row says what the property is (which
//! drives `deploy`) and where its value comes from (which drives the handlers), so the two cannot
//! drift apart.

use crate::prelude::*;

use crate::currency;
use crate::format;
use crate::json;
use crate::lago::{CreditNote, Customer, Invoice, Subscription};
use crate::plan::{Connection, PropertyValue, TargetedObject};

/// What a row's value function reads: the Lago object, the connection (for links) and the Lago id
/// of the customer the object belongs to.
pub struct Source<'a, T> {
    pub lago: &'a T,
    pub conn: &'a Connection,
    pub customer_lago_id: &'a str,
}

/// A property's HubSpot `type`/`fieldType` pair.
#[derive(Debug, Clone, Copy)]
pub enum Field {
    Text,
    File,
    Date,
    Number,
    /// `bool`/`booleancheckbox`; values `"true"`/`"false"`.
    Checkbox,
    /// `enumeration`/`radio` with `(label, value)` options.
    Radio(&'static [(&'static str, &'static str)]),
}

impl Field {
    pub fn hubspot_type(self) -> (&'static str, &'static str) {
        match self {
            Self::Text => ("string", "text"),
            Self::File => ("string", "file"),
            Self::Date => ("date", "date"),
            Self::Number => ("number", "number"),
            Self::Checkbox => ("bool", "booleancheckbox"),
            Self::Radio(_) => ("enumeration", "radio"),
        }
    }

    fn options(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Checkbox => &[("True", "true"), ("False", "false")],
            Self::Radio(options) => options,
            _ => &[],
        }
    }
}

/// What to send when Lago has no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Send `""`, which clears the HubSpot value: Lago is the source of truth for `lago_*` data.
    Always,
    /// Leave the property out, keeping what HubSpot (or a salesperson) already holds.
    WhenPresent,
}

/// Rust-level source of a property value. `None` or an empty string means "Lago has no value".
pub type ValueOf<T> = fn(&Source<'_, T>) -> Option<String>;

#[derive(Clone, Copy)]
pub struct Property<T: 'static> {
    pub name: &'static str,
    pub label: &'static str,
    pub field: Field,
    pub unique: bool,
    /// A standard HubSpot property: filled, never deployed.
    pub built_in: bool,
    pub fill: Fill,
    /// Where the value comes from, in Lago's terms (for docs and the HubSpot description).
    pub from: &'static str,
    pub value: ValueOf<T>,
}

const fn lago<T>(
    name: &'static str,
    label: &'static str,
    field: Field,
    from: &'static str,
    value: ValueOf<T>,
) -> Property<T> {
    Property {
        name,
        label,
        field,
        unique: false,
        built_in: false,
        fill: Fill::Always,
        from,
        value,
    }
}

const fn built_in<T>(name: &'static str, from: &'static str, value: ValueOf<T>) -> Property<T> {
    Property {
        name,
        label: name,
        field: Field::Text,
        unique: false,
        built_in: true,
        fill: Fill::WhenPresent,
        from,
        value,
    }
}

const fn unique<T>(row: Property<T>) -> Property<T> {
    Property {
        unique: true,
        ..row
    }
}

const fn when_present<T>(row: Property<T>) -> Property<T> {
    Property {
        fill: Fill::WhenPresent,
        ..row
    }
}

impl<T> Property<T> {
    /// The `PropertyCreate` JSON. `group` is left out inside a custom-object schema, where HubSpot
    /// puts properties in the object's own `<name>_information` group; `searchable` is
    /// `searchableInGlobalSearch`, for a schema's properties.
    pub fn definition(&self, group: Option<&str>, searchable: Option<bool>) -> String {
        let (kind, field_type) = self.field.hubspot_type();
        let mut definition = json::Object::new()
            .string("name", self.name)
            .string("label", self.label)
            .string("description", &format!("Synced from Lago: {}", self.from))
            .string("type", kind)
            .string("fieldType", field_type)
            .boolean("hasUniqueValue", self.unique);
        if let Some(group) = group {
            definition = definition.string("groupName", group);
        }
        if let Some(searchable) = searchable {
            definition = definition.boolean("searchableInGlobalSearch", searchable);
        }
        let options = self.field.options();
        if !options.is_empty() {
            let options = options.iter().zip(1..).map(|((label, value), order)| {
                json::Object::new()
                    .string("label", label)
                    .string("value", value)
                    .number("displayOrder", order)
                    .finish()
            });
            definition = definition.raw("options", &json::array(options));
        }
        definition.finish()
    }
}

/// The property values of a HubSpot write: every row's value, as text, by the row's `fill`.
pub fn values<'p, T: 'static>(
    rows: impl IntoIterator<Item = &'p Property<T>>,
    source: &Source<'_, T>,
) -> Vec<PropertyValue> {
    rows.into_iter()
        .filter_map(|row| {
            let value = (row.value)(source).filter(|v| !v.trim().is_empty());
            let value = match (value, row.fill) {
                (Some(value), _) => value,
                (None, Fill::Always) => String::new(),
                (None, Fill::WhenPresent) => return None,
            };
            Some(PropertyValue {
                name: row.name.to_owned(),
                value,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Customers → companies / contacts

/// The `lago_*` properties deployed to both companies and contacts.
pub static CUSTOMER_PROPERTIES: [Property<Customer>; 5] = [
    unique(lago(
        "lago_customer_id",
        "Lago Customer Id",
        Field::Text,
        "customer.lago_id",
        |s| s.lago.lago_id.clone(),
    )),
    lago(
        "lago_customer_external_id",
        "Lago Customer External Id",
        Field::Text,
        "customer.external_id",
        |s| s.lago.external_id.clone(),
    ),
    lago(
        "lago_billing_email",
        "Lago Billing Email",
        Field::Text,
        "customer.email, as the full list",
        |s| s.lago.email.clone(),
    ),
    lago(
        "lago_tax_identification_number",
        "Lago Tax Identification Number",
        Field::Text,
        "customer.tax_identification_number",
        |s| s.lago.tax_identification_number.clone(),
    ),
    lago(
        "lago_customer_link",
        "Lago Customer Link",
        Field::Text,
        "the customer's page in the Lago app",
        |s| format::customer_link(s.conn, s.customer_lago_id),
    ),
];

pub static COMPANY_BUILT_INS: [Property<Customer>; 2] = [
    built_in("name", "customer.name", |s| s.lago.name.clone()),
    built_in("domain", "host of customer.url", |s| {
        s.lago.url.as_deref().and_then(format::host)
    }),
];

pub static CONTACT_BUILT_INS: [Property<Customer>; 6] = [
    built_in("email", "first address of customer.email", |s| {
        s.lago.email.as_deref().and_then(format::first_email)
    }),
    built_in("firstname", "customer.firstname", |s| {
        s.lago.firstname.clone()
    }),
    built_in("lastname", "customer.lastname", |s| s.lago.lastname.clone()),
    built_in("phone", "customer.phone", |s| s.lago.phone.clone()),
    built_in("company", "customer.legal_name", |s| {
        s.lago.legal_name.clone()
    }),
    built_in("website", "host of customer.url", |s| {
        s.lago.url.as_deref().and_then(format::host)
    }),
];

/// Every property a customer fills on its HubSpot object, custom rows first.
pub fn customer_properties(
    target: TargetedObject,
) -> impl Iterator<Item = &'static Property<Customer>> {
    let built_ins: &[_] = match target {
        TargetedObject::Companies => &COMPANY_BUILT_INS,
        TargetedObject::Contacts => &CONTACT_BUILT_INS,
    };
    CUSTOMER_PROPERTIES.iter().chain(built_ins)
}

/// HubSpot's default property group of each standard object.
pub fn customer_property_group(target: TargetedObject) -> &'static str {
    match target {
        TargetedObject::Companies => "companyinformation",
        TargetedObject::Contacts => "contactinformation",
    }
}

// ---------------------------------------------------------------------------------------------
// Custom objects

/// A custom object schema this sync deploys.
pub struct CustomObject<T: 'static> {
    pub name: &'static str,
    pub singular: &'static str,
    pub plural: &'static str,
    pub description: &'static str,
    pub primary_display: &'static str,
    pub secondary_display: &'static [&'static str],
    pub required: &'static [&'static str],
    pub searchable: &'static [&'static str],
    pub associated_objects: &'static [&'static str],
    /// The group HubSpot creates for the schema's own properties; later additions go there too.
    pub property_group: &'static str,
    pub properties: &'static [Property<T>],
}

impl<T> CustomObject<T> {
    /// The `POST /crm-object-schemas/v3/schemas` body, every property inline.
    pub fn schema(&self) -> String {
        // HubSpot allows three searchable properties per object; the ids are what people type.
        let properties = self
            .properties
            .iter()
            .map(|p| p.definition(None, Some(self.searchable.contains(&p.name))));
        json::Object::new()
            .string("name", self.name)
            .string("description", self.description)
            .raw(
                "labels",
                &json::Object::new()
                    .string("singular", self.singular)
                    .string("plural", self.plural)
                    .finish(),
            )
            .string("primaryDisplayProperty", self.primary_display)
            .strings("secondaryDisplayProperties", self.secondary_display)
            .strings("requiredProperties", self.required)
            .strings("searchableProperties", self.searchable)
            .strings("associatedObjects", self.associated_objects)
            .raw("properties", &json::array(properties))
            .finish()
    }
}

fn day(value: &Option<String>) -> Option<String> {
    value.as_deref().and_then(format::date)
}

pub static SUBSCRIPTIONS: CustomObject<Subscription> = CustomObject {
    name: "LagoSubscriptions",
    singular: "LagoSubscription",
    plural: "LagoSubscriptions",
    description: "Subscriptions synced from Lago billing",
    primary_display: "lago_subscription_id",
    secondary_display: &["lago_external_subscription_id"],
    required: &["lago_subscription_id"],
    searchable: &["lago_subscription_id", "lago_external_subscription_id"],
    associated_objects: &["COMPANY", "CONTACT"],
    property_group: "lagosubscriptions_information",
    properties: &SUBSCRIPTION_PROPERTIES,
};

static SUBSCRIPTION_PROPERTIES: [Property<Subscription>; 13] = [
    unique(lago(
        "lago_subscription_id",
        "Lago Subscription Id",
        Field::Text,
        "subscription.lago_id",
        |s| s.lago.lago_id.clone(),
    )),
    lago(
        "lago_external_subscription_id",
        "Lago External Subscription Id",
        Field::Text,
        "subscription.external_id",
        |s| s.lago.external_id.clone(),
    ),
    lago(
        "lago_subscription_name",
        "Lago Subscription Name",
        Field::Text,
        "subscription.name",
        |s| s.lago.name.clone(),
    ),
    lago(
        "lago_subscription_plan_code",
        "Lago Subscription Plan Code",
        Field::Text,
        "subscription.plan_code",
        |s| {
            s.lago
                .plan_code
                .clone()
                .or_else(|| s.lago.plan.as_ref()?.code.clone())
        },
    ),
    lago(
        "lago_subscription_status",
        "Lago Subscription Status",
        Field::Text,
        "subscription.status",
        |s| s.lago.status.clone(),
    ),
    lago(
        "lago_subscription_created_at",
        "Lago Subscription Created At",
        Field::Date,
        "subscription.created_at",
        |s| day(&s.lago.created_at),
    ),
    lago(
        "lago_subscription_started_at",
        "Lago Subscription Started At",
        Field::Date,
        "subscription.started_at",
        |s| day(&s.lago.started_at),
    ),
    lago(
        "lago_subscription_ending_at",
        "Lago Subscription Ending At",
        Field::Date,
        "subscription.ending_at",
        |s| day(&s.lago.ending_at),
    ),
    lago(
        "lago_subscription_at",
        "Lago Subscription At",
        Field::Date,
        "subscription.subscription_at",
        |s| day(&s.lago.subscription_at),
    ),
    lago(
        "lago_subscription_terminated_at",
        "Lago Subscription Terminated At",
        Field::Date,
        "subscription.terminated_at",
        |s| day(&s.lago.terminated_at),
    ),
    lago(
        "lago_subscription_trial_ended_at",
        "Lago Subscription Trial Ended At",
        Field::Date,
        "subscription.trial_ended_at",
        |s| day(&s.lago.trial_ended_at),
    ),
    lago(
        "lago_subscription_link",
        "Lago Subscription Link",
        Field::Text,
        "the subscription's page in the Lago app",
        |s| {
            format::customer_record_link(
                s.conn,
                s.customer_lago_id,
                "subscription",
                s.lago.lago_id.as_deref()?,
            )
        },
    ),
    lago(
        "lago_billing_time",
        "Lago Billing Time",
        Field::Radio(&[("Calendar", "calendar"), ("Anniversary", "anniversary")]),
        "subscription.billing_time",
        |s| s.lago.billing_time.clone(),
    ),
];

pub static INVOICES: CustomObject<Invoice> = CustomObject {
    name: "LagoInvoices",
    singular: "LagoInvoice",
    plural: "LagoInvoices",
    description: "Invoices issued by Lago billing engine",
    primary_display: "lago_invoice_number",
    secondary_display: &["lago_invoice_status", "lago_invoice_id"],
    required: &["lago_invoice_id"],
    searchable: &["lago_invoice_number", "lago_invoice_id"],
    associated_objects: &["COMPANY", "CONTACT"],
    property_group: "lagoinvoices_information",
    properties: &INVOICE_PROPERTIES,
};

/// An invoice amount in the invoice's currency (checked up front by `invoice::plan`).
fn amount(cents: Option<i64>, invoice: &Invoice) -> Option<String> {
    currency::amount(cents, invoice.currency.as_deref())
}

static INVOICE_PROPERTIES: [Property<Invoice>; 15] = [
    unique(lago(
        "lago_invoice_id",
        "Lago Invoice Id",
        Field::Text,
        "invoice.lago_id",
        |s| s.lago.lago_id.clone(),
    )),
    lago(
        "lago_invoice_number",
        "Lago Invoice Number",
        Field::Text,
        "invoice.number",
        |s| s.lago.number.clone(),
    ),
    lago(
        "lago_invoice_purchase_order_number",
        "Lago Purchase Order Number",
        Field::Text,
        "invoice.purchase_order_number",
        |s| s.lago.purchase_order_number.clone(),
    ),
    lago(
        "lago_invoice_issuing_date",
        "Lago Invoice Issuing Date",
        Field::Date,
        "invoice.issuing_date",
        |s| day(&s.lago.issuing_date),
    ),
    lago(
        "lago_invoice_payment_due_date",
        "Lago Invoice Payment Due Date",
        Field::Date,
        "invoice.payment_due_date",
        |s| day(&s.lago.payment_due_date),
    ),
    lago(
        "lago_invoice_payment_overdue",
        "Lago Invoice Payment Overdue",
        Field::Checkbox,
        "invoice.payment_overdue",
        |s| Some(s.lago.payment_overdue.unwrap_or(false).to_string()),
    ),
    lago(
        "lago_invoice_type",
        "Lago Invoice Type",
        Field::Text,
        "invoice.invoice_type",
        |s| s.lago.invoice_type.clone(),
    ),
    lago(
        "lago_invoice_status",
        "Lago Invoice Status",
        Field::Text,
        "invoice.status",
        |s| s.lago.status.clone(),
    ),
    lago(
        "lago_invoice_payment_status",
        "Lago Invoice Payment Status",
        Field::Text,
        "invoice.payment_status",
        |s| s.lago.payment_status.clone(),
    ),
    lago(
        "lago_invoice_currency",
        "Lago Invoice Currency",
        Field::Text,
        "invoice.currency",
        |s| s.lago.currency.clone(),
    ),
    lago(
        "lago_invoice_total_amount",
        "Lago Invoice Total Amount",
        Field::Number,
        "invoice.total_amount_cents in major units",
        |s| amount(s.lago.total_amount_cents, s.lago),
    ),
    lago(
        "lago_invoice_total_due_amount",
        "Lago Invoice Total Due Amount",
        Field::Number,
        "invoice.total_due_amount_cents in major units",
        |s| amount(s.lago.total_due_amount_cents, s.lago),
    ),
    lago(
        "lago_invoice_subtotal_excluding_taxes",
        "Lago Invoice Subtotal Excluding Taxes",
        Field::Number,
        "invoice.sub_total_excluding_taxes_amount_cents in major units",
        |s| amount(s.lago.sub_total_excluding_taxes_amount_cents, s.lago),
    ),
    // Lago fills the PDF link a little after the invoice exists: a later event sets it, an earlier
    // one must not clear it.
    when_present(lago(
        "lago_invoice_file_url",
        "Lago Invoice File URL",
        Field::File,
        "invoice.file_url (the PDF)",
        |s| s.lago.file_url.clone(),
    )),
    lago(
        "lago_invoice_url",
        "Lago Invoice Link",
        Field::Text,
        "invoice.web_url, else the invoice's page in the Lago app",
        |s| {
            s.lago
                .web_url
                .clone()
                .filter(|u| !u.trim().is_empty())
                .or_else(|| {
                    format::customer_record_link(
                        s.conn,
                        s.customer_lago_id,
                        "invoice",
                        s.lago.lago_id.as_deref()?,
                    )
                })
        },
    ),
];

/// An association definition between two of the custom objects, which `deploy` adds (HubSpot
/// refuses to associate two custom objects whose pair is not defined). The host stores the
/// definition's id under the `object-schema` key [`ObjectAssociation::key`], so it can tell a
/// portal deployed before the definition existed.
pub struct ObjectAssociation {
    /// The schema the definition is created on.
    pub from: &'static str,
    pub to: &'static str,
    /// `from/to`, the store key.
    pub key: &'static str,
}

/// A LagoInvoices record is associated with the LagoSubscriptions records it bills.
pub const INVOICES_TO_SUBSCRIPTIONS: ObjectAssociation = ObjectAssociation {
    from: "LagoInvoices",
    to: "LagoSubscriptions",
    key: "LagoInvoices/LagoSubscriptions",
};

/// A LagoCreditNotes record is associated with the LagoInvoices record it credits.
pub const CREDIT_NOTES_TO_INVOICES: ObjectAssociation = ObjectAssociation {
    from: "LagoCreditNotes",
    to: "LagoInvoices",
    key: "LagoCreditNotes/LagoInvoices",
};

// ---------------------------------------------------------------------------------------------
// Credit notes (opt-in: `sync_credit_notes`)

pub static CREDIT_NOTES: CustomObject<CreditNote> = CustomObject {
    name: "LagoCreditNotes",
    singular: "LagoCreditNote",
    plural: "LagoCreditNotes",
    description: "Credit notes issued by Lago billing engine",
    primary_display: "lago_credit_note_number",
    secondary_display: &["lago_credit_note_credit_status", "lago_credit_note_id"],
    required: &["lago_credit_note_id"],
    searchable: &["lago_credit_note_number", "lago_credit_note_id"],
    associated_objects: &["COMPANY", "CONTACT"],
    property_group: "lagocreditnotes_information",
    properties: &CREDIT_NOTE_PROPERTIES,
};

/// A credit note amount in the credit note's currency (checked up front by `credit_note::plan`).
fn credit_note_amount(cents: Option<i64>, credit_note: &CreditNote) -> Option<String> {
    currency::amount(cents, credit_note.currency.as_deref())
}

static CREDIT_NOTE_PROPERTIES: [Property<CreditNote>; 14] = [
    unique(lago(
        "lago_credit_note_id",
        "Lago Credit Note Id",
        Field::Text,
        "credit_note.lago_id",
        |s| s.lago.lago_id.clone(),
    )),
    lago(
        "lago_credit_note_number",
        "Lago Credit Note Number",
        Field::Text,
        "credit_note.number",
        |s| s.lago.number.clone(),
    ),
    lago(
        "lago_credit_note_invoice_number",
        "Lago Credit Note Invoice Number",
        Field::Text,
        "credit_note.invoice_number (the invoice it credits)",
        |s| s.lago.invoice_number.clone(),
    ),
    lago(
        "lago_credit_note_issuing_date",
        "Lago Credit Note Issuing Date",
        Field::Date,
        "credit_note.issuing_date",
        |s| day(&s.lago.issuing_date),
    ),
    lago(
        "lago_credit_note_credit_status",
        "Lago Credit Note Credit Status",
        Field::Text,
        "credit_note.credit_status",
        |s| s.lago.credit_status.clone(),
    ),
    lago(
        "lago_credit_note_refund_status",
        "Lago Credit Note Refund Status",
        Field::Text,
        "credit_note.refund_status",
        |s| s.lago.refund_status.clone(),
    ),
    lago(
        "lago_credit_note_reason",
        "Lago Credit Note Reason",
        Field::Text,
        "credit_note.reason",
        |s| s.lago.reason.clone(),
    ),
    lago(
        "lago_credit_note_currency",
        "Lago Credit Note Currency",
        Field::Text,
        "credit_note.currency",
        |s| s.lago.currency.clone(),
    ),
    lago(
        "lago_credit_note_total_amount",
        "Lago Credit Note Total Amount",
        Field::Number,
        "credit_note.total_amount_cents in major units",
        |s| credit_note_amount(s.lago.total_amount_cents, s.lago),
    ),
    lago(
        "lago_credit_note_credit_amount",
        "Lago Credit Note Credit Amount",
        Field::Number,
        "credit_note.credit_amount_cents in major units",
        |s| credit_note_amount(s.lago.credit_amount_cents, s.lago),
    ),
    lago(
        "lago_credit_note_refund_amount",
        "Lago Credit Note Refund Amount",
        Field::Number,
        "credit_note.refund_amount_cents in major units",
        |s| credit_note_amount(s.lago.refund_amount_cents, s.lago),
    ),
    lago(
        "lago_credit_note_balance_amount",
        "Lago Credit Note Balance Amount",
        Field::Number,
        "credit_note.balance_amount_cents (credit left to use) in major units",
        |s| credit_note_amount(s.lago.balance_amount_cents, s.lago),
    ),
    // As for invoices, the PDF exists a little after the credit note (`credit_note.generated`).
    when_present(lago(
        "lago_credit_note_file_url",
        "Lago Credit Note File URL",
        Field::File,
        "credit_note.file_url (the PDF)",
        |s| s.lago.file_url.clone(),
    )),
    lago(
        "lago_credit_note_link",
        "Lago Credit Note Link",
        Field::Text,
        "the credit note's page in the Lago app",
        |s| {
            let customer = format::customer_link(s.conn, s.customer_lago_id)?;
            let id = s.lago.lago_id.as_deref().filter(|id| !id.is_empty())?;
            Some(format!("{customer}/credit-notes/{id}"))
        },
    ),
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn every_object_has_one_unique_id_and_no_duplicate_names() {
        fn check<T>(rows: &[Property<T>]) {
            let mut names: Vec<_> = rows.iter().map(|r| r.name).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), rows.len());
            assert_eq!(rows.iter().filter(|r| r.unique).count(), 1);
        }
        check(&CUSTOMER_PROPERTIES);
        check(SUBSCRIPTIONS.properties);
        check(INVOICES.properties);
        check(CREDIT_NOTES.properties);
    }

    #[test]
    fn schema_lists_only_defined_properties() {
        fn check<T>(object: &CustomObject<T>) {
            let defined: Vec<_> = object.properties.iter().map(|p| p.name).collect();
            let named = [object.primary_display]
                .into_iter()
                .chain(object.secondary_display.iter().copied());
            for name in named
                .chain(object.required.iter().copied())
                .chain(object.searchable.iter().copied())
            {
                assert!(
                    defined.contains(&name),
                    "{name} is not a property of {}",
                    object.name
                );
            }
        }
        check(&SUBSCRIPTIONS);
        check(&INVOICES);
        check(&CREDIT_NOTES);
    }

    #[test]
    fn checkbox_and_radio_definitions_carry_options() {
        let overdue = INVOICES
            .properties
            .iter()
            .find(|p| p.name == "lago_invoice_payment_overdue")
            .unwrap();
        let parse = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap();
        assert_eq!(
            parse(overdue.definition(Some("g"), None)),
            json!({
                "name": "lago_invoice_payment_overdue", "label": "Lago Invoice Payment Overdue",
                "description": "Synced from Lago: invoice.payment_overdue",
                "type": "bool", "fieldType": "booleancheckbox", "hasUniqueValue": false, "groupName": "g",
                "options": [{"label": "True", "value": "true", "displayOrder": 1},
                            {"label": "False", "value": "false", "displayOrder": 2}]
            })
        );
        let billing_time = SUBSCRIPTIONS
            .properties
            .iter()
            .find(|p| p.name == "lago_billing_time")
            .unwrap();
        let definition = parse(billing_time.definition(None, None));
        assert_eq!(definition["type"], "enumeration");
        assert_eq!(definition["fieldType"], "radio");
        assert_eq!(definition["options"][1]["value"], "anniversary");
        assert!(definition.get("groupName").is_none());
    }
}
