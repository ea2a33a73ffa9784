//! Customers linked to a HubSpot record by hand (`lago-hubspot link CUSTOMER RECORD_ID`): Lago's
//! "paste a HubSpot ID" for self-hosted Lago, which cannot create HubSpot `integration_customers`
//! entries. A link is kept per connection, under the Lago customer's external_id or lago_id as
//! given. Before an event of that customer is planned, [`with_link`] writes the link into the
//! payload as the `integration_customers` entry Lago's own integration would have sent, so the
//! guest's one link path updates the linked record and associates the customer's subscriptions,
//! invoices and credit notes with it.

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Value, json};

use lago_hubspot_guest::webhooks::{Envelope, Handler, Route};

use crate::config::ConnectionSettings;
use crate::db::Row;
use crate::sql_params;
use crate::store::Store;

/// The HubSpot object a linked record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkedObject {
    Companies,
    Contacts,
}

impl LinkedObject {
    /// Lago's `targeted_object` spelling, also the HubSpot object type.
    pub fn as_str(self) -> &'static str {
        match self {
            LinkedObject::Companies => "companies",
            LinkedObject::Contacts => "contacts",
        }
    }

    /// Singular, for people.
    pub fn noun(self) -> &'static str {
        match self {
            LinkedObject::Companies => "company",
            LinkedObject::Contacts => "contact",
        }
    }

    fn parse(text: &str) -> Option<LinkedObject> {
        match text {
            "companies" => Some(LinkedObject::Companies),
            "contacts" => Some(LinkedObject::Contacts),
            _ => None,
        }
    }
}

/// A customer linked to a HubSpot record on one connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerLink {
    pub connection: String,
    /// The Lago customer's external_id or lago_id, as given.
    pub customer_key: String,
    /// The HubSpot record id (digits).
    pub hubspot_id: String,
    pub object: LinkedObject,
    /// When the link was made (or last changed).
    pub created_at: String,
}

const COLUMNS: &str = "connection, customer_key, hubspot_id, object_type, created_at";

fn row_to_link(row: &Row) -> anyhow::Result<Option<CustomerLink>> {
    let object: String = row.get(3)?;
    Ok(LinkedObject::parse(&object).map(|object| CustomerLink {
        connection: row.get(0).unwrap_or_default(),
        customer_key: row.get(1).unwrap_or_default(),
        hubspot_id: row.get(2).unwrap_or_default(),
        object,
        created_at: row.get(4).unwrap_or_default(),
    }))
}

impl Store {
    /// Links a Lago customer (external_id or lago_id) to a HubSpot record on `connection`,
    /// replacing an earlier link of the same key. The record id must be HubSpot's: digits only.
    pub fn put_link(
        &self,
        connection: &str,
        customer_key: &str,
        hubspot_id: &str,
        object: LinkedObject,
    ) -> anyhow::Result<CustomerLink> {
        let customer_key = customer_key.trim();
        anyhow::ensure!(
            !customer_key.is_empty(),
            "give the Lago customer's external_id or lago_id"
        );
        let hubspot_id = hubspot_id.trim();
        anyhow::ensure!(
            !hubspot_id.is_empty() && hubspot_id.bytes().all(|b| b.is_ascii_digit()),
            "{hubspot_id:?} is not a HubSpot record id: give the digits only (the number at the end of the record's URL in HubSpot)"
        );
        self.db.execute(
            "INSERT INTO customer_links (connection, customer_key, hubspot_id, object_type)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connection, customer_key) DO UPDATE SET hubspot_id = excluded.hubspot_id,
                 object_type = excluded.object_type,
                 created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            sql_params![connection, customer_key, hubspot_id, object.as_str()],
        )?;
        self.link_for(connection, &[customer_key.to_owned()])?
            .context("the link was not stored")
    }

    /// Removes the link of `customer_key` on `connection`; false when there was none.
    pub fn remove_link(&self, connection: &str, customer_key: &str) -> anyhow::Result<bool> {
        let removed = self.db.execute(
            "DELETE FROM customer_links WHERE connection = ?1 AND customer_key = ?2",
            sql_params![connection, customer_key.trim()],
        )?;
        Ok(removed > 0)
    }

    /// Removes every link of `connection` to HubSpot record `hubspot_id` (it no longer exists);
    /// returns the customers that were linked to it.
    pub fn remove_links_to(
        &self,
        connection: &str,
        hubspot_id: &str,
    ) -> anyhow::Result<Vec<String>> {
        self.db
            .query(
                "DELETE FROM customer_links WHERE connection = ?1 AND hubspot_id = ?2 RETURNING customer_key",
                sql_params![connection, hubspot_id],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Every link, of one connection or of all, by connection and customer.
    pub fn links(&self, connection: Option<&str>) -> anyhow::Result<Vec<CustomerLink>> {
        let rows = self.db.query(
            &format!(
                "SELECT {COLUMNS} FROM customer_links
                 WHERE CAST(?1 AS TEXT) IS NULL OR connection = ?1
                 ORDER BY connection, customer_key"
            ),
            sql_params![connection],
        )?;
        let mut links = Vec::new();
        for row in &rows {
            links.extend(row_to_link(row)?);
        }
        Ok(links)
    }

    /// The link an event's customer has on `connection`, by any of its keys (its lago_id,
    /// its external_id); the latest when several keys are linked.
    pub fn link_for(
        &self,
        connection: &str,
        customer_keys: &[String],
    ) -> anyhow::Result<Option<CustomerLink>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM customer_links WHERE connection = ?1 AND customer_key = ?2"
        );
        let mut found: Option<CustomerLink> = None;
        for key in customer_keys {
            let rows = self.db.query(&sql, sql_params![connection, key])?;
            for row in &rows {
                if let Some(link) = row_to_link(row)?
                    && found
                        .as_ref()
                        .is_none_or(|f| link.created_at > f.created_at)
                {
                    found = Some(link);
                }
            }
        }
        Ok(found)
    }

    /// The connections on which any of these customer keys is linked, latest link first.
    pub fn linked_connections(&self, customer_keys: &[String]) -> anyhow::Result<Vec<String>> {
        let mut found: Vec<(String, String)> = Vec::new();
        for key in customer_keys {
            let rows = self.db.query(
                "SELECT connection, created_at FROM customer_links WHERE customer_key = ?1",
                sql_params![key],
            )?;
            for row in &rows {
                found.push((row.get(0)?, row.get(1)?));
            }
        }
        found.sort_by(|a, b| b.1.cmp(&a.1));
        let mut codes: Vec<String> = Vec::new();
        for (code, _) in found {
            if !codes.contains(&code) {
                codes.push(code);
            }
        }
        Ok(codes)
    }
}

/// The connection a `link` or `unlink` is for: the one given (it must be stored, unless none
/// is yet), else [`default_connection`]; with none stored, the code `sync` uses without one.
pub fn link_connection(store: &Store, given: Option<&str>) -> anyhow::Result<String> {
    if let Some(code) = given {
        let codes: Vec<String> = store.connections()?.into_iter().map(|s| s.code).collect();
        anyhow::ensure!(
            codes.is_empty() || codes.iter().any(|c| c == code),
            "no connection {code} (connections: {})",
            codes.join(", ")
        );
        return Ok(code.to_owned());
    }
    Ok(default_connection(store)?.unwrap_or_else(|| ConnectionSettings::default().code))
}

/// The connection every command uses when none is named (no `--connection`, no `connection`
/// key in `--config`): the only one stored, else the default one (`connections list` shows
/// it; `connect` sets it); `None` when none is stored. Several stored and none the default is
/// an error asking for `--connection`.
pub fn default_connection(store: &Store) -> anyhow::Result<Option<String>> {
    let codes: Vec<String> = store.connections()?.into_iter().map(|s| s.code).collect();
    match codes.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        _ => store
            .accesses()?
            .into_iter()
            .find(|a| a.is_default && codes.contains(&a.code))
            .map(|a| Some(a.code))
            .with_context(|| {
                format!(
                    "several connections ({}) and none is the default: give --connection CODE \
                     (or make one the default: `lago-hubspot connections update CODE --default`)",
                    codes.join(", ")
                )
            }),
    }
}

/// The keys an event's customer may be linked under: its lago_id and external_id (a customer
/// event's own; for a subscription, invoice or credit note, its embedded customer's, or the
/// `lago_customer_id` / `external_customer_id` it names). Empty for a type that is not synced.
pub fn customer_keys(envelope: &Envelope) -> Vec<String> {
    let (Route::Push { handler, .. }, Some(object)) = (&envelope.route, &envelope.object) else {
        return Vec::new();
    };
    let pointers: &[&str] = match handler {
        Handler::Customer => &["/lago_id", "/external_id"],
        _ => &[
            "/customer/lago_id",
            "/customer/external_id",
            "/lago_customer_id",
            "/external_customer_id",
        ],
    };
    let mut keys: Vec<String> = Vec::new();
    for pointer in pointers {
        if let Some(key) = object
            .pointer(pointer)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|k| !k.is_empty())
            && !keys.iter().any(|k| k == key)
        {
            keys.push(key.to_owned());
        }
    }
    keys
}

/// `payload` with `link` written into its customer as the first HubSpot `integration_customers`
/// entry, naming connection `code` (so it is the entry the guest's link rule picks). A
/// subscription, invoice or credit note that names its customer without embedding it gets the
/// customer it names. `None` when the payload has no object to write into.
pub fn with_link(payload: &str, code: &str, link: &CustomerLink) -> Option<String> {
    let Route::Push { handler, object } = Envelope::read(payload).ok()?.route else {
        return None;
    };
    let mut body: Value = serde_json::from_str(payload).ok()?;
    let object = body.pointer_mut(object)?.as_object_mut()?;
    let customer = if handler == Handler::Customer {
        object
    } else {
        if !object.get("customer").is_some_and(Value::is_object) {
            let lago_id = object.get("lago_customer_id").filter(|id| id.is_string())?;
            let named =
                json!({"lago_id": lago_id, "external_id": object.get("external_customer_id")});
            object.insert("customer".into(), named);
        }
        object.get_mut("customer")?.as_object_mut()?
    };
    let entry = json!({
        "type": "hubspot",
        "integration_code": code,
        "external_customer_id": link.hubspot_id,
        "targeted_object": link.object.as_str(),
    });
    let mut entries = match customer.remove("integration_customers") {
        Some(Value::Array(entries)) => entries,
        _ => Vec::new(),
    };
    entries.insert(0, entry);
    customer.insert("integration_customers".into(), Value::Array(entries));
    serde_json::to_string(&body).ok()
}

#[cfg(test)]
mod tests {
    use lago_hubspot_guest::lago::{Customer, FromLago as _, hubspot_link};

    use super::*;

    fn link(object: LinkedObject) -> CustomerLink {
        CustomerLink {
            connection: "hubspot".into(),
            customer_key: "acme-ext".into(),
            hubspot_id: "9000001".into(),
            object,
            created_at: String::new(),
        }
    }

    /// The customer the guest reads from a payload, and its HubSpot link by the guest's rule.
    fn linked_record(payload: &str, code: &str) -> Option<(String, String)> {
        let envelope = Envelope::read(payload).unwrap();
        let customer = Customer::from_lago(envelope.customer()?).unwrap();
        let entry = hubspot_link(&customer, code, false)?;
        Some((
            entry.external_customer_id.clone()?,
            entry.targeted_object.clone()?,
        ))
    }

    #[test]
    fn the_link_becomes_the_customers_entry_for_this_connection() {
        let customer = json!({"lago_id": "c1", "external_id": "acme-ext", "integration_customers": [
            {"type": "hubspot", "integration_code": "hubspot", "external_customer_id": "1"},
            {"type": "netsuite", "integration_code": "ns"}]});
        let payloads = [
            json!({"webhook_type": "customer.updated", "object_type": "customer", "customer": customer}),
            json!({"webhook_type": "invoice.created", "object_type": "invoice",
                   "invoice": {"lago_id": "i1", "customer": customer}}),
            json!({"webhook_type": "subscription.started", "object_type": "subscription",
                   "subscription": {"lago_id": "s1", "customer": {"lago_id": "c1"}}}),
            json!({"webhook_type": "credit_note.created", "object_type": "credit_note",
                   "credit_note": {"lago_id": "cn1", "customer": {"lago_id": "c1", "integration_customers": null}}}),
        ];
        for payload in payloads {
            let linked = with_link(
                &payload.to_string(),
                "hubspot",
                &link(LinkedObject::Contacts),
            )
            .unwrap_or_else(|| panic!("{payload}"));
            assert_eq!(
                linked_record(&linked, "hubspot"),
                Some(("9000001".into(), "contacts".into())),
                "{payload}"
            );
            // The entries Lago sent follow it, and everything else is as Lago sent it.
            let strip = |payload: &Value| {
                let mut payload = payload.clone();
                let object = payload["object_type"].as_str().unwrap().to_owned();
                let customer = if payload[&object].get("customer").is_some() {
                    &mut payload[&object]["customer"]
                } else {
                    &mut payload[&object]
                };
                let entries = customer
                    .as_object_mut()
                    .unwrap()
                    .remove("integration_customers");
                (payload, entries.and_then(|e| e.as_array().cloned()))
            };
            let (rest, entries) = strip(&serde_json::from_str(&linked).unwrap());
            let (sent, sent_entries) = strip(&payload);
            assert_eq!(rest, sent);
            assert_eq!(entries.unwrap()[1..], sent_entries.unwrap_or_default());
        }
    }

    #[test]
    fn a_customer_named_but_not_embedded_is_written_in() {
        let payload = json!({"webhook_type": "invoice.created", "object_type": "invoice",
            "invoice": {"lago_id": "i1", "lago_customer_id": "c1"}});
        let linked: Value = serde_json::from_str(
            &with_link(&payload.to_string(), "hs", &link(LinkedObject::Companies)).unwrap(),
        )
        .unwrap();
        assert_eq!(linked["invoice"]["customer"]["lago_id"], "c1");
        assert_eq!(
            linked_record(&linked.to_string(), "hs"),
            Some(("9000001".into(), "companies".into()))
        );
        // Nothing names the customer, or the type is not synced: nothing to write into.
        let anonymous = json!({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {"lago_id": "i1"}});
        assert!(with_link(&anonymous.to_string(), "hs", &link(LinkedObject::Companies)).is_none());
        let skipped = json!({"webhook_type": "wallet.created", "object_type": "wallet", "wallet": {"customer": {}}});
        assert!(with_link(&skipped.to_string(), "hs", &link(LinkedObject::Companies)).is_none());
    }

    #[test]
    fn customer_keys_are_the_lago_and_external_ids() {
        let keys = |payload: Value| customer_keys(&Envelope::read(&payload.to_string()).unwrap());
        assert_eq!(
            keys(
                json!({"webhook_type": "customer.created", "object_type": "customer",
                "customer": {"lago_id": "c1", "external_id": "acme-ext"}})
            ),
            ["c1", "acme-ext"]
        );
        assert_eq!(
            keys(
                json!({"webhook_type": "subscription.started", "object_type": "subscription",
                "subscription": {"lago_id": "s1", "lago_customer_id": "c1", "external_customer_id": "acme-ext",
                                 "customer": {"lago_id": "c1", "external_id": "acme-ext"}}})
            ),
            ["c1", "acme-ext"]
        );
        assert_eq!(
            keys(
                json!({"webhook_type": "invoice.created", "object_type": "invoice",
                "invoice": {"lago_id": "i1", "lago_customer_id": "c1"}})
            ),
            ["c1"]
        );
        assert!(
            keys(
                json!({"webhook_type": "wallet.created", "object_type": "wallet",
                "wallet": {"lago_customer_id": "c1"}})
            )
            .is_empty()
        );
    }

    #[test]
    fn links_are_kept_per_connection_and_checked() {
        for store in crate::store::testing::stores() {
            let made = store
                .put_link("hs-a", " acme-ext ", "9000001", LinkedObject::Companies)
                .unwrap();
            assert_eq!(made.customer_key, "acme-ext");
            store
                .put_link("hs-b", "c1", "77", LinkedObject::Contacts)
                .unwrap();
            let keys = ["c1".to_owned(), "acme-ext".to_owned()];
            assert_eq!(
                store.link_for("hs-a", &keys).unwrap().unwrap().hubspot_id,
                "9000001"
            );
            assert_eq!(
                store.link_for("hs-b", &keys).unwrap().unwrap().object,
                LinkedObject::Contacts
            );
            assert!(store.link_for("hs-c", &keys).unwrap().is_none());
            assert_eq!(store.linked_connections(&keys).unwrap().len(), 2);
            assert_eq!(store.links(None).unwrap().len(), 2);
            assert_eq!(store.links(Some("hs-b")).unwrap().len(), 1);

            let refused = store
                .put_link(
                    "hs-a",
                    "acme-ext",
                    "https://app.hubspot.com/contacts/1/record/0-2/9000001",
                    LinkedObject::Companies,
                )
                .unwrap_err();
            assert!(refused.to_string().contains("digits only"), "{refused}");
            assert!(
                store
                    .put_link("hs-a", " ", "1", LinkedObject::Companies)
                    .is_err()
            );
            // Linking again replaces.
            store
                .put_link("hs-a", "acme-ext", "9000002", LinkedObject::Contacts)
                .unwrap();
            assert_eq!(store.links(Some("hs-a")).unwrap()[0].hubspot_id, "9000002");

            assert!(store.remove_link("hs-a", "acme-ext").unwrap());
            assert!(!store.remove_link("hs-a", "acme-ext").unwrap());
            assert!(store.link_for("hs-a", &keys).unwrap().is_none());
        }
    }

    #[test]
    fn the_link_command_finds_its_connection() {
        for store in crate::store::testing::stores() {
            assert_eq!(link_connection(&store, None).unwrap(), "hubspot");
            assert_eq!(link_connection(&store, Some("hs-x")).unwrap(), "hs-x");
            let settings = |code: &str| ConnectionSettings {
                code: code.into(),
                ..ConnectionSettings::default()
            };
            store.save_connection(&settings("hs-a")).unwrap();
            assert_eq!(link_connection(&store, None).unwrap(), "hs-a");
            assert!(link_connection(&store, Some("hs-x")).is_err());
            store.save_connection(&settings("hs-b")).unwrap();
            let error = link_connection(&store, None).unwrap_err().to_string();
            assert!(error.contains("--connection"), "{error}");
            assert_eq!(link_connection(&store, Some("hs-b")).unwrap(), "hs-b");
        }
    }
}
