//! Connection settings: what the host passes to the guest with every call.
//! They come from flags or a small TOML file and are kept in the state database.

use std::path::Path;

use anyhow::Context as _;
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

/// Connection settings given as flags; each one given overrides the stored or file value.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SettingsFlags {
    /// The HubSpot object Lago customers without a customer type become.
    #[arg(long, value_enum)]
    pub default_object: Option<DefaultObject>,
    #[arg(long)]
    pub lago_app_url: Option<String>,
    #[arg(long)]
    pub organization_slug: Option<String>,
    #[arg(long)]
    pub no_sync_subscriptions: bool,
    #[arg(long)]
    pub no_sync_invoices: bool,
    /// Also sync credit notes, to a LagoCreditNotes custom object (deployed with the others).
    #[arg(long)]
    pub sync_credit_notes: bool,
    /// Only sync customers that carry a HubSpot `integration_customers` entry.
    #[arg(long)]
    pub linked_customers_only: bool,
    /// On a customer's first sync, adopt the one HubSpot company with its domain (`domain`,
    /// the default) or always create its own (`none`).
    #[arg(long, value_enum)]
    pub match_companies: Option<MatchCompanies>,
}

impl SettingsFlags {
    pub fn apply(&self, settings: &mut ConnectionSettings) {
        if let Some(object) = self.default_object {
            settings.default_targeted_object = object;
        }
        if let Some(url) = &self.lago_app_url {
            settings.lago_app_url = url.clone();
        }
        if let Some(slug) = &self.organization_slug {
            settings.organization_slug = slug.clone();
        }
        settings.sync_subscriptions &= !self.no_sync_subscriptions;
        settings.sync_invoices &= !self.no_sync_invoices;
        settings.sync_credit_notes |= self.sync_credit_notes;
        settings.sync_unlinked_customers &= !self.linked_customers_only;
        if let Some(matching) = self.match_companies {
            settings.match_companies = matching;
        }
    }
}

impl ConnectionSettings {
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read connection settings {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid connection settings in {}", path.display()))
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

    #[test]
    fn toml_fills_missing_keys_with_defaults_and_rejects_typos() {
        let settings: ConnectionSettings =
            toml::from_str("code = \"hs-prod\"\ndefault_targeted_object = \"contacts\"").unwrap();
        assert_eq!(settings.code, "hs-prod");
        assert_eq!(settings.default_targeted_object, DefaultObject::Contacts);
        assert!(settings.sync_invoices);
        assert!(toml::from_str::<ConnectionSettings>("sync_invoice = false").is_err());
    }

    /// Settings stored by the release before credit notes load, with credit notes off; the flag
    /// turns them on and leaving it out never turns them off.
    #[test]
    fn credit_notes_are_opt_in() {
        assert!(!ConnectionSettings::default().sync_credit_notes);
        let stored = r#"{"code":"hs","name":"HubSpot","default_targeted_object":"companies",
            "lago_app_url":"https://app.lago.test","organization_slug":"acme",
            "sync_subscriptions":true,"sync_invoices":true,"sync_unlinked_customers":true}"#;
        let mut settings: ConnectionSettings = serde_json::from_str(stored).unwrap();
        assert!(!settings.sync_credit_notes);
        assert!(settings.sync_invoices);
        SettingsFlags::default().apply(&mut settings);
        assert!(!settings.sync_credit_notes);
        let flags = SettingsFlags {
            sync_credit_notes: true,
            ..SettingsFlags::default()
        };
        flags.apply(&mut settings);
        assert!(settings.sync_credit_notes);
        SettingsFlags::default().apply(&mut settings);
        assert!(settings.sync_credit_notes);
        let wit = settings.to_wit(None, None, Some("2-3".into()), true);
        assert!(wit.sync_credit_notes);
        assert_eq!(wit.credit_notes_object_type_id.as_deref(), Some("2-3"));
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
