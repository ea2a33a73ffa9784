//! Connection settings: what the host passes to the guest with every call.
//! They come from flags or a small TOML file and are kept in the state database.

use std::path::Path;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::runtime::{Connection, TargetedObject};

/// Names of the custom object schemas the guest deploys; their type ids are stored under these.
pub const SUBSCRIPTIONS_SCHEMA: &str = "LagoSubscriptions";
pub const INVOICES_SCHEMA: &str = "LagoInvoices";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum DefaultObject {
    Companies,
    Contacts,
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
    /// Sync customers that carry no HubSpot `integration_customers` entry (self-hosted Lago has none).
    pub sync_unlinked_customers: bool,
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
            sync_unlinked_customers: true,
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
    /// Only sync customers that carry a HubSpot `integration_customers` entry.
    #[arg(long)]
    pub linked_customers_only: bool,
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
        settings.sync_unlinked_customers &= !self.linked_customers_only;
    }
}

impl ConnectionSettings {
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read connection settings {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("invalid connection settings in {}", path.display()))
    }

    /// The WIT record, with the custom object type ids the store knows.
    pub fn to_wit(
        &self,
        subscriptions_object_type_id: Option<String>,
        invoices_object_type_id: Option<String>,
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
            sync_subscriptions: self.sync_subscriptions,
            sync_invoices: self.sync_invoices,
            sync_unlinked_customers: self.sync_unlinked_customers,
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
}
