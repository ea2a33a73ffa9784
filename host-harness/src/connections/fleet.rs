//! What `serve` runs: one [`Syncer`] per connection on one shared store, events routed to a
//! connection by the customer's HubSpot `integration_customers` entry, and rate budgets
//! shared by the connections of one portal (HubSpot's limits are per portal, never global).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use lago_hubspot_guest::lago::{Customer, FromLago as _, routing_code};
use lago_hubspot_guest::webhooks::Envelope;

use super::Vault;
use crate::hubspot_http::{HubspotClient, Secret};
use crate::links::customer_keys;
use crate::metrics::Metrics;
use crate::ratelimit::{Rate, RateBudget};
use crate::runtime::Plugin;
use crate::store::Store;
use crate::sync::{EventRef, Syncer};

pub struct Fleet {
    store: Arc<Mutex<Store>>,
    syncers: BTreeMap<String, Arc<Syncer>>,
    default: Option<String>,
}

impl Fleet {
    /// A fleet of one: `serve --token …` without stored connections.
    pub fn single(syncer: Arc<Syncer>) -> Fleet {
        let store = syncer.shared_store();
        Fleet::new(store, vec![syncer], None).expect("one connection is a fleet")
    }

    /// Connections on one store (each syncer must share it). `default` takes customers that
    /// name no connection; a fleet of one takes every event.
    pub fn new(
        store: Arc<Mutex<Store>>,
        syncers: Vec<Arc<Syncer>>,
        default: Option<String>,
    ) -> anyhow::Result<Fleet> {
        let syncers: BTreeMap<String, Arc<Syncer>> = syncers
            .into_iter()
            .map(|s| (s.settings().code.clone(), s))
            .collect();
        anyhow::ensure!(!syncers.is_empty(), "no connection to serve");
        if let Some(code) = &default {
            anyhow::ensure!(
                syncers.contains_key(code),
                "the default connection {code} is not one of the connections served"
            );
        }
        // A fleet of one takes every event, and a HubSpot link naming any code is its own.
        let sole = syncers.len() == 1;
        for syncer in syncers.values() {
            syncer.set_sole_connection(sole);
        }
        // One connection takes everything unless told otherwise.
        let default = default.or_else(|| {
            (syncers.len() == 1).then(|| syncers.keys().next().cloned().unwrap_or_default())
        });
        Ok(Fleet {
            store,
            syncers,
            default,
        })
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One connection: it takes every event, whatever connection the event names.
    pub fn is_single(&self) -> bool {
        self.syncers.len() == 1
    }

    pub fn default_connection(&self) -> Option<&str> {
        self.default.as_deref()
    }

    pub fn syncers(&self) -> impl Iterator<Item = &Arc<Syncer>> {
        self.syncers.values()
    }

    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.syncers.keys().map(String::as_str)
    }

    /// The syncer for an event stored under `code` (the single connection takes all).
    pub fn syncer_for(&self, code: &str) -> Option<&Arc<Syncer>> {
        match self.syncers.get(code) {
            Some(syncer) => Some(syncer),
            None if self.is_single() => self.syncers.values().next(),
            None => None,
        }
    }

    /// True while the connection waits for a person to reconnect it.
    pub fn needs_reconnect(&self, code: &str) -> bool {
        self.syncers
            .get(code)
            .is_some_and(|s| s.client().needs_reconnect())
    }

    /// The connection an event belongs to: the customer's HubSpot `integration_code`, else a
    /// served connection the customer is linked on by hand (`lago-hubspot link`), else where
    /// this customer's earlier events went, else the default connection. A code this
    /// service does not serve is kept as is: its events wait for that connection.
    /// `Err` says why no connection can take the event.
    pub fn route(&self, payload: &str, event: &EventRef) -> Result<String, String> {
        if self.is_single() {
            return Ok(self.syncers.keys().next().cloned().unwrap_or_default());
        }
        if let Some(code) = hubspot_code(payload) {
            if !self.syncers.contains_key(&code) {
                tracing::warn!(
                    connection = %code,
                    "an event names a HubSpot connection this service does not serve; it waits for it"
                );
            }
            return Ok(code);
        }
        match self.linked_connection(payload) {
            Ok(Some(code)) => return Ok(code),
            Ok(None) => {}
            Err(error) => return Err(format!("cannot look up the customer's links: {error:#}")),
        }
        if let Some(customer) = event.customer_id.as_deref().filter(|c| !c.is_empty()) {
            match self.store().customer_connection(customer) {
                Ok(Some(code)) if self.syncers.contains_key(&code) => return Ok(code),
                Ok(_) => {}
                Err(error) => {
                    return Err(format!(
                        "cannot look up the customer's connection: {error:#}"
                    ));
                }
            }
        }
        self.default.clone().ok_or_else(|| {
            "the customer names no HubSpot connection and no default connection is set \
             (lago-hubspot connections update CODE --default)"
                .to_owned()
        })
    }

    /// A served connection the customer is linked on by hand, the latest link first.
    fn linked_connection(&self, payload: &str) -> anyhow::Result<Option<String>> {
        let Ok(envelope) = Envelope::read(payload) else {
            return Ok(None);
        };
        let keys = customer_keys(&envelope);
        if keys.is_empty() {
            return Ok(None);
        }
        Ok(self
            .store()
            .linked_connections(&keys)?
            .into_iter()
            .find(|code| self.syncers.contains_key(code)))
    }
}

/// The connection code of the customer's HubSpot entry (the customer object itself, or the one
/// a subscription, invoice or credit note embeds), by the guest's own link rule
/// ([`lago_hubspot_guest::lago::routing_code`]), so the guest of that connection finds the
/// entry the event was routed by.
fn hubspot_code(payload: &str) -> Option<String> {
    let envelope = Envelope::read(payload).ok()?;
    let customer = Customer::from_lago(envelope.customer()?).ok()?;
    routing_code(&customer).map(str::to_owned)
}

/// How `serve` builds the syncers of stored connections.
pub struct FleetSetup<'a> {
    pub plugin: Arc<Plugin>,
    pub vault: &'a Vault,
    /// The OAuth app's client secret, needed to refresh OAuth connections.
    pub client_secret: Option<&'a Secret>,
    pub rate: Rate,
    pub metrics: Arc<Metrics>,
}

impl FleetSetup<'_> {
    /// A syncer for every connection with recorded access; connections of one portal share
    /// one rate budget.
    pub fn syncers(&self) -> anyhow::Result<Vec<Arc<Syncer>>> {
        let accesses = self.vault.store().accesses()?;
        let mut budgets: HashMap<String, Arc<RateBudget>> = HashMap::new();
        let mut syncers = Vec::new();
        for access in accesses {
            let settings = self
                .vault
                .store()
                .connection(&access.code)?
                .ok_or_else(|| anyhow::anyhow!("connection {} has no settings", access.code))?;
            let tokens = self.vault.token_source(&access.code, self.client_secret)?;
            let portal = match access.portal_id {
                Some(portal) => format!("portal {portal}"),
                None => format!("connection {}", access.code),
            };
            let budget = budgets
                .entry(portal)
                .or_insert_with_key(|portal| {
                    Arc::new(crate::shared_budget::budget_for(
                        self.rate,
                        self.vault.shared_store(),
                        portal,
                    ))
                })
                .clone();
            let client = HubspotClient::with_tokens(&access.hubspot_url, tokens)?
                .with_budget(budget)
                .with_metrics(self.metrics.clone());
            syncers.push(Arc::new(Syncer::shared(
                self.plugin.clone(),
                client,
                self.vault.shared_store(),
                settings,
            )?));
        }
        Ok(syncers)
    }

    /// The stored default connection, if one is marked.
    pub fn stored_default(&self) -> anyhow::Result<Option<String>> {
        Ok(self
            .vault
            .store()
            .accesses()?
            .into_iter()
            .find(|a| a.is_default)
            .map(|a| a.code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_connection_code_comes_from_the_customer_or_the_embedded_customer() {
        let customer = json!({"lago_id": "c1", "integration_customers": [
            {"type": "netsuite", "integration_code": "ns"},
            {"type": "hubspot", "integration_code": "hs-eu"}]});
        let event = json!({"webhook_type": "customer.created", "object_type": "customer", "customer": customer});
        assert_eq!(hubspot_code(&event.to_string()).as_deref(), Some("hs-eu"));
        let invoice = json!({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {"customer": customer}});
        assert_eq!(hubspot_code(&invoice.to_string()).as_deref(), Some("hs-eu"));
        let bare = json!({"webhook_type": "invoice.created", "object_type": "invoice", "invoice": {"customer": {"lago_id": "c1"}}});
        assert_eq!(hubspot_code(&bare.to_string()), None);
    }

    /// The host routes an event to the connection its guest then finds the link of: the same
    /// payloads through both, for every shape of `integration_customers`. With several
    /// connections, an event naming a code goes to that code (and waits when it is not served)
    /// and its guest finds the entry naming it; a fleet of one takes every event, and its guest
    /// (`sole`) finds an entry whenever the customer has a HubSpot one, whatever code it names.
    #[test]
    fn host_routing_and_guest_linking_agree() {
        use lago_hubspot_guest::lago::{hubspot_entries, hubspot_link};

        let entries = [
            json!([{"type": "hubspot", "integration_code": "hs-eu", "external_customer_id": "1"}]),
            json!([{"integration_type": "hubspot", "integration_code": "hs-eu", "external_customer_id": "2"}]),
            json!([{"type": "hubspot", "integration_code": "", "external_customer_id": "3"},
                   {"type": "hubspot", "integration_code": "hs-us", "external_customer_id": "4"}]),
            json!([{"type": "netsuite", "integration_code": "hs-eu"},
                   {"type": "hubspot", "integration_code": "hs-us", "external_customer_id": "5"}]),
            json!([{"type": "hubspot", "integration_code": "hs-a", "external_customer_id": "6"},
                   {"type": "hubspot", "integration_code": "hs-b", "external_customer_id": "7"}]),
            json!([{"type": "hubspot", "external_customer_id": "8"}]),
            json!([{"type": "hubspot", "integration_code": "hs-lago-cloud", "external_customer_id": "9"}]),
            json!([{"type": "netsuite", "integration_code": "ns", "external_customer_id": "10"}]),
            json!([]),
        ];
        for entries in entries {
            let customer = json!({"lago_id": "c1", "integration_customers": entries});
            for payload in [
                json!({"webhook_type": "customer.updated", "object_type": "customer", "customer": customer}),
                json!({"webhook_type": "subscription.started", "object_type": "subscription",
                       "subscription": {"lago_id": "s1", "customer": customer}}),
            ] {
                let routed = hubspot_code(&payload.to_string());
                let parsed = Customer::from_lago(&customer).unwrap();
                // Several connections.
                match &routed {
                    Some(code) => {
                        let link = hubspot_link(&parsed, code, false)
                            .unwrap_or_else(|| panic!("routed to {code} but no link: {payload}"));
                        assert_eq!(link.code(), Some(code.as_str()), "{payload}");
                    }
                    // Routed by default: only an entry without a code may link.
                    None => {
                        if let Some(link) = hubspot_link(&parsed, "hs-default", false) {
                            assert_eq!(link.code(), None, "{payload}");
                        }
                    }
                }
                // A fleet of one, whatever its code: the entry naming it, else one naming none,
                // else the first HubSpot entry.
                for code in ["hubspot", "hs-eu", "hs-b"] {
                    let link = hubspot_link(&parsed, code, true);
                    assert_eq!(
                        link.is_some(),
                        hubspot_entries(&parsed).next().is_some(),
                        "{code}: {payload}"
                    );
                    if routed.as_deref() == Some(code) {
                        assert_eq!(link.and_then(|l| l.code()), Some(code), "{payload}");
                    }
                    if let Some(link) = link
                        && link.code().is_some_and(|c| c != code)
                    {
                        assert!(
                            hubspot_entries(&parsed).all(|e| e.code().is_some_and(|c| c != code)),
                            "another code's entry only when none names {code} or none: {payload}"
                        );
                        assert_eq!(
                            link.external_customer_id,
                            hubspot_entries(&parsed)
                                .next()
                                .unwrap()
                                .external_customer_id,
                            "the first HubSpot entry: {payload}"
                        );
                    }
                }
            }
        }
    }
}
