//! The connection settings, spelled once: each field is a flag (`--lago-app-url`), an
//! environment variable (`LAGO_APP_URL`), a key of the `--config` TOML file (`lago_app_url`) and
//! a line of `--help`. `deploy`, `sync`, `backfill`, `serve`, `plan`, `connect` and
//! `connections update` all take this one struct; a value given overrides the TOML file, which
//! overrides what the state holds (a flag beats its environment variable).

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{ArgAction, Args, builder::BoolishValueParser};
use serde::Deserialize;

use lago_hubspot::config::{ConnectionSettings, DefaultObject, MatchCompanies};
use lago_hubspot::links::default_connection;
use lago_hubspot::store::Store;

#[derive(Debug, Clone, Default, Args, Deserialize)]
#[serde(deny_unknown_fields)]
#[command(
    next_help_heading = "Connection settings (flag, env var or --config key; kept in the state)"
)]
pub struct Settings {
    /// A TOML file of these settings; its keys are the flags' names in snake_case
    /// (`lago_app_url = "…"`, `sync_invoices = false`), plus `connection`.
    #[arg(long, env = "LAGO_HUBSPOT_CONFIG", value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,

    /// The `--config` file's `connection` key (the global --connection beats it).
    #[arg(skip)]
    pub connection: Option<String>,

    /// A name for people [default: the connection's code].
    #[arg(long, env = "LAGO_HUBSPOT_CONNECTION_NAME", value_name = "NAME")]
    pub name: Option<String>,

    /// The HubSpot object that Lago customers without a customer type become [default:
    /// companies].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_DEFAULT_OBJECT",
        value_enum,
        value_name = "OBJECT"
    )]
    pub default_object: Option<DefaultObject>,

    /// The Lago front end, for the `*_link` properties (the links people click in HubSpot)
    /// [default: http://localhost:8080, a placeholder].
    #[arg(long, env = "LAGO_APP_URL", value_name = "URL", value_parser = flag(LAGO_APP_URL))]
    #[serde(default, deserialize_with = "toml_key::lago_app_url")]
    pub lago_app_url: Option<String>,

    /// The Lago organization's slug in those links [default: default, a placeholder].
    #[arg(
        long,
        env = "LAGO_ORGANIZATION_SLUG",
        value_name = "SLUG",
        value_parser = flag(ORGANIZATION_SLUG)
    )]
    #[serde(default, deserialize_with = "toml_key::organization_slug")]
    pub organization_slug: Option<String>,

    /// Sync subscriptions to LagoSubscriptions [default: true].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_SYNC_SUBSCRIPTIONS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub sync_subscriptions: Option<bool>,

    /// Sync invoices to LagoInvoices [default: true].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_SYNC_INVOICES",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub sync_invoices: Option<bool>,

    /// Sync credit notes to a LagoCreditNotes custom object, deployed with the others
    /// [default: false].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_SYNC_CREDIT_NOTES",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub sync_credit_notes: Option<bool>,

    /// Sync customers that carry no HubSpot `integration_customers` entry (self-hosted Lago
    /// creates none); false keeps Lago's own rule [default: true].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_SYNC_UNLINKED_CUSTOMERS",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true",
        action = ArgAction::Set,
        value_parser = BoolishValueParser::new(),
    )]
    pub sync_unlinked_customers: Option<bool>,

    /// On a customer's first sync, adopt the one HubSpot company with its domain (`domain`) or
    /// always create its own (`none`) [default: domain].
    #[arg(
        long,
        env = "LAGO_HUBSPOT_MATCH_COMPANIES",
        value_enum,
        value_name = "HOW"
    )]
    pub match_companies: Option<MatchCompanies>,

    /// Deprecated: `--sync-subscriptions false`.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub no_sync_subscriptions: bool,

    /// Deprecated: `--sync-invoices false`.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub no_sync_invoices: bool,

    /// Deprecated: `--sync-unlinked-customers false`.
    #[arg(long, hide = true)]
    #[serde(skip)]
    pub linked_customers_only: bool,
}

/// A setting whose value is checked where it is read, whichever way it comes (flag,
/// environment variable or `--config` key), before anything is stored or sent.
#[derive(Clone, Copy)]
pub struct Checked {
    flag: &'static str,
    env: &'static str,
    key: &'static str,
    check: fn(&str) -> Result<(), String>,
}

impl Checked {
    /// The value, or an error naming the setting every way it can be given.
    fn read(&self, value: &str) -> Result<String, String> {
        (self.check)(value).map_err(|why| {
            format!(
                "{why} (the {} setting: {}, {} or `{}` in --config)",
                self.key, self.flag, self.env, self.key
            )
        })?;
        Ok(value.to_owned())
    }
}

/// The Lago front end the `*_link` properties point at: an http(s) URL with a host.
pub const LAGO_APP_URL: Checked = Checked {
    flag: "--lago-app-url",
    env: "LAGO_APP_URL",
    key: "lago_app_url",
    check: |value| {
        let example = "give Lago's front end, like https://app.getlago.com";
        let url = url::Url::parse(value.trim())
            .map_err(|error| format!("{value:?} is not a URL ({error}): {example}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "{value:?} is not an http(s) URL (it is {}:): {example}",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("{value:?} names no host: {example}"));
        }
        Ok(())
    },
};

/// The organization's slug in those links: not empty, one path segment.
pub const ORGANIZATION_SLUG: Checked = Checked {
    flag: "--organization-slug",
    env: "LAGO_ORGANIZATION_SLUG",
    key: "organization_slug",
    check: |value| {
        let slug = value.trim().trim_matches('/');
        if slug.is_empty() {
            return Err("the organization slug is empty: give the one in your Lago URLs, like acme in https://app.getlago.com/acme/customers".to_owned());
        }
        if slug.contains(['/', '?', '#']) || slug.chars().any(char::is_whitespace) {
            return Err(format!(
                "{value:?} is not a slug (one word of a URL path, like acme)"
            ));
        }
        Ok(())
    },
};

/// The flag's and environment variable's parser for a checked setting.
fn flag(setting: Checked) -> impl Fn(&str) -> Result<String, String> + Clone + Send + Sync {
    move |value: &str| setting.read(value)
}

/// The `--config` keys' readers for the checked settings.
mod toml_key {
    use serde::{Deserialize as _, Deserializer, de::Error as _};

    fn read<'de, D: Deserializer<'de>>(
        setting: super::Checked,
        deserializer: D,
    ) -> Result<Option<String>, D::Error> {
        let value = String::deserialize(deserializer)?;
        setting.read(&value).map(Some).map_err(D::Error::custom)
    }

    pub fn lago_app_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(super::LAGO_APP_URL, d)
    }

    pub fn organization_slug<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        read(super::ORGANIZATION_SLUG, d)
    }
}

/// `--config` keys of the previous release (the stored settings' names), still read.
const DEPRECATED_KEYS: &[(&str, &str)] = &[
    ("code", "connection"),
    ("connection_code", "connection"),
    ("default_targeted_object", "default_object"),
];

impl Settings {
    /// Reads a `--config` file.
    pub fn from_toml_file(path: &Path) -> anyhow::Result<Settings> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read connection settings {}", path.display()))?;
        Self::from_toml(&text)
            .with_context(|| format!("invalid connection settings in {}", path.display()))
    }

    /// Reads a TOML file's text; a key of the previous release is read as its new name, with a
    /// warning (once per file and key) naming it, as the deprecated flags get.
    pub fn from_toml(text: &str) -> anyhow::Result<Settings> {
        let (settings, deprecated) = Self::from_toml_noting_deprecated(text)?;
        for (old, new) in deprecated {
            super::warn_once(&super::deprecated(&format!("{old} ="), &format!("{new} =")));
        }
        Ok(settings)
    }

    /// [`Settings::from_toml`], and the deprecated keys it read (old, new).
    fn from_toml_noting_deprecated(
        text: &str,
    ) -> anyhow::Result<(Settings, Vec<(&'static str, &'static str)>)> {
        let mut table: toml::Table = toml::from_str(text)?;
        let mut deprecated = Vec::new();
        for (old, new) in DEPRECATED_KEYS {
            if let Some(value) = table.remove(*old) {
                deprecated.push((*old, *new));
                if table.contains_key(*new) {
                    anyhow::bail!("`{old}` and `{new}` are the same setting: keep `{new}`");
                }
                table.insert((*new).to_owned(), value);
            }
        }
        Ok((table.try_into()?, deprecated))
    }

    /// The `--config` file named, or none.
    pub fn file(&self) -> anyhow::Result<Settings> {
        match &self.config {
            Some(path) => Self::from_toml_file(path),
            None => Ok(Settings::default()),
        }
    }

    /// Sets every setting given; leaves the others as they are.
    pub fn apply(&self, settings: &mut ConnectionSettings) {
        fn set<T: Clone>(value: &Option<T>, target: &mut T) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        // The deprecated spellings count unless the new one is given too.
        let off = |flag: bool| flag.then_some(false);
        set(&self.name, &mut settings.name);
        set(&self.default_object, &mut settings.default_targeted_object);
        set(&self.lago_app_url, &mut settings.lago_app_url);
        set(&self.organization_slug, &mut settings.organization_slug);
        set(
            &self.sync_subscriptions.or(off(self.no_sync_subscriptions)),
            &mut settings.sync_subscriptions,
        );
        set(
            &self.sync_invoices.or(off(self.no_sync_invoices)),
            &mut settings.sync_invoices,
        );
        set(&self.sync_credit_notes, &mut settings.sync_credit_notes);
        set(
            &self
                .sync_unlinked_customers
                .or(off(self.linked_customers_only)),
            &mut settings.sync_unlinked_customers,
        );
        set(&self.match_companies, &mut settings.match_companies);
    }

    /// The connection's settings: what the state holds for it (the `connection` given, else the
    /// one [`default_connection`] names, as for `link`), then the `--config` file, then the flags and environment variables.
    pub fn resolve(
        &self,
        connection: Option<&str>,
        store: &Store,
    ) -> anyhow::Result<ConnectionSettings> {
        let file = self.file()?;
        let code = match connection.or(file.connection.as_deref()) {
            Some(code) => Some(code.to_owned()),
            None => default_connection(store)?,
        };
        let mut settings = match code {
            Some(code) => store
                .connection(&code)?
                .unwrap_or_else(|| new_connection(&code)),
            None => ConnectionSettings::default(),
        };
        file.apply(&mut settings);
        self.apply(&mut settings);
        Ok(settings)
    }
}

/// The settings of a connection not stored yet: the defaults, named by their code.
pub fn new_connection(code: &str) -> ConnectionSettings {
    ConnectionSettings {
        code: code.to_owned(),
        name: code.to_owned(),
        ..ConnectionSettings::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn parse(args: &[&str]) -> Settings {
        Cli::try_parse_from(std::iter::once("x").chain(args.iter().copied()))
            .unwrap()
            .settings
    }

    #[test]
    fn toml_keys_are_the_flags_names_and_typos_are_refused() {
        let file = Settings::from_toml(
            "connection = \"hs-prod\"\ndefault_object = \"contacts\"\nsync_invoices = false",
        )
        .unwrap();
        assert_eq!(file.connection.as_deref(), Some("hs-prod"));
        let mut settings = ConnectionSettings::default();
        file.apply(&mut settings);
        assert_eq!(settings.default_targeted_object, DefaultObject::Contacts);
        assert!(!settings.sync_invoices);
        assert!(settings.sync_subscriptions);
        assert!(Settings::from_toml("sync_invoice = false").is_err());
        assert!(Settings::from_toml("config = \"x.toml\"").is_err());
    }

    /// A file written for the previous release (the stored settings' key names) still reads.
    #[test]
    fn toml_files_of_the_previous_release_still_read() {
        let (file, deprecated) = Settings::from_toml_noting_deprecated(
            "code = \"hs-prod\"\nname = \"Prod\"\ndefault_targeted_object = \"contacts\"\n\
             lago_app_url = \"https://lago.test\"\norganization_slug = \"acme\"\n\
             sync_subscriptions = true\nsync_invoices = false\nsync_credit_notes = true\n\
             sync_unlinked_customers = false\nmatch_companies = \"none\"",
        )
        .unwrap();
        assert_eq!(
            deprecated,
            [
                ("code", "connection"),
                ("default_targeted_object", "default_object")
            ]
        );
        assert_eq!(file.connection.as_deref(), Some("hs-prod"));
        let mut settings = ConnectionSettings::default();
        file.apply(&mut settings);
        assert_eq!(settings.name, "Prod");
        assert_eq!(settings.default_targeted_object, DefaultObject::Contacts);
        assert!(!settings.sync_invoices && settings.sync_credit_notes);
        assert!(!settings.sync_unlinked_customers);
        assert_eq!(settings.match_companies, MatchCompanies::None);
    }

    #[test]
    fn booleans_take_a_value_or_mean_true_alone() {
        let settings = parse(&["--sync-credit-notes", "--sync-invoices", "false"]);
        assert_eq!(settings.sync_credit_notes, Some(true));
        assert_eq!(settings.sync_invoices, Some(false));
        assert_eq!(parse(&["--sync-invoices=no"]).sync_invoices, Some(false));
        assert_eq!(parse(&[]).sync_invoices, None);
    }

    #[test]
    fn deprecated_spellings_still_work() {
        let mut settings = ConnectionSettings::default();
        parse(&[
            "--no-sync-invoices",
            "--no-sync-subscriptions",
            "--linked-customers-only",
        ])
        .apply(&mut settings);
        assert!(!settings.sync_invoices);
        assert!(!settings.sync_subscriptions);
        assert!(!settings.sync_unlinked_customers);
        // Leaving a setting out never changes it.
        Settings::default().apply(&mut settings);
        assert!(!settings.sync_invoices);
    }
}
