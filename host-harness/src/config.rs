//! Connection settings: what the host passes to the guest with every call, kept in the state
//! database as JSON. The command line sets them (flags, environment variables, a TOML file:
//! `cli/settings.rs` in the binary spells them).

use serde::{Deserialize, Serialize};

use crate::runtime::{Connection, TargetedObject};

/// Names of the custom object schemas the guest deploys; their type ids are stored under these.
pub const SUBSCRIPTIONS_SCHEMA: &str = "LagoSubscriptions";
pub const INVOICES_SCHEMA: &str = "LagoInvoices";
/// Deployed only on connections that sync credit notes.
pub const CREDIT_NOTES_SCHEMA: &str = "LagoCreditNotes";
/// Association definitions between the custom objects, whose ids deploy stores under these
/// (object-schema kind); a portal without them was deployed by an earlier release.
pub const INVOICES_SUBSCRIPTIONS_ASSOCIATION: &str =
    lago_hubspot_guest::properties::INVOICES_TO_SUBSCRIPTIONS.key;
pub const CREDIT_NOTES_INVOICES_ASSOCIATION: &str =
    lago_hubspot_guest::properties::CREDIT_NOTES_TO_INVOICES.key;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DefaultObject {
    Companies,
    Contacts,
}

/// How a customer's first sync finds a company HubSpot already holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum MatchCompanies {
    /// Adopt the one company that has the customer's domain and no other Lago customer.
    #[default]
    Domain,
    /// Always create the customer's own company.
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectionSettings {
    /// Unique code of the connection (Lago's `integration_code`).
    pub code: String,
    pub name: String,
    pub default_targeted_object: DefaultObject,
    /// Lago front-end base URL for the `*_link` properties.
    pub lago_app_url: String,
    pub organization_slug: String,
    pub sync_subscriptions: bool,
    pub sync_invoices: bool,
    /// Sync credit notes to a LagoCreditNotes custom object. Off by default (and in settings
    /// stored before it existed), so the portal holds only what Lago's integration documents.
    pub sync_credit_notes: bool,
    /// Sync customers that carry no HubSpot `integration_customers` entry (self-hosted Lago has none).
    pub sync_unlinked_customers: bool,
    /// How a new customer's company is matched to one HubSpot already holds (default: domain).
    pub match_companies: MatchCompanies,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            code: "hubspot".into(),
            name: "HubSpot".into(),
            default_targeted_object: DefaultObject::Companies,
            lago_app_url: "http://localhost:8080".into(),
            organization_slug: "default".into(),
            sync_subscriptions: true,
            sync_invoices: true,
            sync_credit_notes: false,
            sync_unlinked_customers: true,
            match_companies: MatchCompanies::Domain,
        }
    }
}

impl ConnectionSettings {
    /// The settings of the links written to HubSpot (`lago_app_url`, `organization_slug`) that
    /// still hold their placeholder default: links built from them lead nowhere.
    pub fn placeholder_link_settings(&self) -> Vec<&'static str> {
        let defaults = ConnectionSettings::default();
        let mut placeholders = Vec::new();
        if self.lago_app_url.trim().trim_end_matches('/') == defaults.lago_app_url {
            placeholders.push("lago_app_url");
        }
        if self.organization_slug.trim().trim_matches('/') == defaults.organization_slug {
            placeholders.push("organization_slug");
        }
        placeholders
    }

    /// What a customer's link in HubSpot looks like with these settings (as the component
    /// writes it: `{lago_app_url}/{organization_slug}/customer/{lago_id}`).
    pub fn customer_link_example(&self) -> String {
        format!(
            "{}/{}/customer/<lago_id>",
            self.lago_app_url.trim().trim_end_matches('/'),
            self.organization_slug.trim().trim_matches('/')
        )
    }

    /// The WIT record, with the custom object type ids the store knows. `sole_connection`: the
    /// host serves only this connection (`sync`, `backfill`, `deploy`, `plan`, a `serve` of
    /// one), so a HubSpot link naming any code belongs to it.
    pub fn to_wit(
        &self,
        subscriptions_object_type_id: Option<String>,
        invoices_object_type_id: Option<String>,
        credit_notes_object_type_id: Option<String>,
        sole_connection: bool,
    ) -> Connection {
        Connection {
            code: self.code.clone(),
            default_targeted_object: match self.default_targeted_object {
                DefaultObject::Companies => TargetedObject::Companies,
                DefaultObject::Contacts => TargetedObject::Contacts,
            },
            lago_app_url: self.lago_app_url.clone(),
            organization_slug: self.organization_slug.clone(),
            subscriptions_object_type_id,
            invoices_object_type_id,
            credit_notes_object_type_id,
            sync_subscriptions: self.sync_subscriptions,
            sync_invoices: self.sync_invoices,
            sync_credit_notes: self.sync_credit_notes,
            sync_unlinked_customers: self.sync_unlinked_customers,
            sole_connection,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Settings stored by the release before credit notes load, with credit notes off.
    #[test]
    fn credit_notes_are_opt_in() {
        assert!(!ConnectionSettings::default().sync_credit_notes);
        let stored = r#"{"code":"hs","name":"HubSpot","default_targeted_object":"companies",
            "lago_app_url":"https://app.lago.test","organization_slug":"acme",
            "sync_subscriptions":true,"sync_invoices":true,"sync_unlinked_customers":true}"#;
        let mut settings: ConnectionSettings = serde_json::from_str(stored).unwrap();
        assert!(!settings.sync_credit_notes);
        assert!(settings.sync_invoices);
        assert_eq!(settings.match_companies, MatchCompanies::Domain);
        settings.sync_credit_notes = true;
        let wit = settings.to_wit(None, None, Some("2-3".into()), true);
        assert!(wit.sync_credit_notes);
        assert_eq!(wit.credit_notes_object_type_id.as_deref(), Some("2-3"));
    }

    /// The JSON each release stored loads as it was written (the stored names never change:
    /// flags and TOML keys are spelled in the CLI, this is the state's format).
    #[test]
    fn settings_stored_by_earlier_releases_load() {
        let stored = r#"{"code":"hs","name":"HubSpot","default_targeted_object":"contacts",
            "lago_app_url":"https://app.lago.test","organization_slug":"acme",
            "sync_subscriptions":false,"sync_invoices":true,"sync_credit_notes":true,
            "sync_unlinked_customers":false,"match_companies":"none"}"#;
        let settings: ConnectionSettings = serde_json::from_str(stored).unwrap();
        assert_eq!(settings.default_targeted_object, DefaultObject::Contacts);
        assert!(!settings.sync_subscriptions && settings.sync_credit_notes);
        assert_eq!(settings.match_companies, MatchCompanies::None);
        let again: ConnectionSettings =
            serde_json::from_str(&serde_json::to_string(&settings).unwrap()).unwrap();
        assert_eq!(again, settings);
    }

    #[test]
    fn placeholder_links_are_named() {
        let defaults = ConnectionSettings::default();
        assert_eq!(
            defaults.placeholder_link_settings(),
            ["lago_app_url", "organization_slug"]
        );
        assert_eq!(
            defaults.customer_link_example(),
            "http://localhost:8080/default/customer/<lago_id>"
        );
        let real = ConnectionSettings {
            lago_app_url: "https://lago.example.com/".into(),
            organization_slug: "acme".into(),
            ..defaults
        };
        assert!(real.placeholder_link_settings().is_empty());
        assert_eq!(
            real.customer_link_example(),
            "https://lago.example.com/acme/customer/<lago_id>"
        );
    }

    #[test]
    fn store_keys_match_the_guests_objects() {
        use lago_hubspot_guest::properties::{CREDIT_NOTES, INVOICES, SUBSCRIPTIONS};
        assert_eq!(SUBSCRIPTIONS_SCHEMA, SUBSCRIPTIONS.name);
        assert_eq!(INVOICES_SCHEMA, INVOICES.name);
        assert_eq!(CREDIT_NOTES_SCHEMA, CREDIT_NOTES.name);
        assert_eq!(
            INVOICES_SUBSCRIPTIONS_ASSOCIATION,
            format!("{INVOICES_SCHEMA}/{SUBSCRIPTIONS_SCHEMA}")
        );
        assert_eq!(
            CREDIT_NOTES_INVOICES_ASSOCIATION,
            format!("{CREDIT_NOTES_SCHEMA}/{INVOICES_SCHEMA}")
        );
    }
}
