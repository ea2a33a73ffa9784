//! `connect` and `connections list | show | update | remove`. Tokens are never printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use lago_hubspot::auth::{DEFAULT_TOKEN_URL, OAuthApp};
use lago_hubspot::clock::now_ms;
use lago_hubspot::config::{ConnectionSettings, DefaultObject, SettingsFlags};
use lago_hubspot::connections::authorize::{DEFAULT_AUTHORIZE_URL, OAuthFlow, open_browser};
use lago_hubspot::connections::{Access, AuthKind, SecretKey, Vault, connect_oauth, connect_token};
use lago_hubspot::hubspot_http::{DEFAULT_HUBSPOT_URL, HubspotClient, Secret};
use lago_hubspot::report::table;
use lago_hubspot::runtime::Plugin;
use lago_hubspot::store::Store;
use lago_hubspot::sync::Syncer;

#[derive(Args)]
pub struct ConnectArgs {
    /// The connection's unique code (Lago's `integration_code`). Connecting an existing code
    /// again renews its access (reconnect) and keeps its settings unless flags change them.
    #[arg(long)]
    pub code: String,
    /// A name for people; defaults to the code.
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub settings: SettingsFlags,
    /// Make this the connection for customers that name none.
    #[arg(long)]
    pub default: bool,
    /// Connect with a private-app / service-key token instead of OAuth.
    #[arg(long, env = "HUBSPOT_ACCESS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// The OAuth app's client id.
    #[arg(long, env = "HUBSPOT_CLIENT_ID")]
    pub client_id: Option<String>,
    /// The OAuth app's client secret (needed again by `serve` to refresh tokens).
    #[arg(long, env = "HUBSPOT_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    #[arg(long, env = "HUBSPOT_API_URL", default_value = DEFAULT_HUBSPOT_URL)]
    pub hubspot_url: String,
    #[arg(long, default_value = DEFAULT_AUTHORIZE_URL)]
    pub authorize_url: String,
    #[arg(long, env = "HUBSPOT_TOKEN_URL", default_value = DEFAULT_TOKEN_URL)]
    pub token_url: String,
    /// Port of the loopback redirect URI (`http://HOST:PORT/oauth-callback`, as registered in
    /// the app's auth settings); 0 picks a free one.
    #[arg(long, default_value_t = 3400)]
    pub redirect_port: u16,
    /// How the browser names this machine in the redirect URI.
    #[arg(long, default_value = "localhost")]
    pub redirect_host: String,
    /// Only print the authorize URL; don't try to open a browser.
    #[arg(long)]
    pub no_browser: bool,
    /// Record the connection without deploying its properties and objects now (`serve` and
    /// `sync` deploy before their first write).
    #[arg(long)]
    pub no_deploy: bool,
    /// How long to wait for the browser to come back.
    #[arg(long, default_value_t = 600)]
    pub timeout_secs: u64,
    #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
    pub state: PathBuf,
}

impl ConnectArgs {
    fn settings(&self, existing: Option<ConnectionSettings>) -> ConnectionSettings {
        let mut settings = existing.unwrap_or_else(|| ConnectionSettings {
            code: self.code.clone(),
            name: self.code.clone(),
            ..ConnectionSettings::default()
        });
        if let Some(name) = &self.name {
            settings.name = name.clone();
        }
        self.settings.apply(&mut settings);
        settings
    }
}

fn open_vault(state: &std::path::Path) -> anyhow::Result<Vault> {
    let store = Store::open(state)?;
    Ok(Vault::new(
        Arc::new(Mutex::new(store)),
        SecretKey::from_env()?,
    ))
}

/// `connect`: OAuth (or a token), record the connection, then deploy it in the background.
pub async fn connect(
    plugin: impl FnOnce() -> anyhow::Result<Arc<Plugin>>,
    args: ConnectArgs,
) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(!args.code.trim().is_empty(), "--code must not be empty");
    let vault = open_vault(&args.state)?;
    let existing = vault.store().connection(&args.code)?;
    let reconnecting = existing.is_some();
    let settings = args.settings(existing);
    let client_secret = args.client_secret.clone().map(Secret::new);
    let access = match &args.token {
        Some(token) => {
            connect_token(
                &vault,
                &settings,
                &args.hubspot_url,
                Secret::new(token.clone()),
            )
            .await?
        }
        None => oauth(&args, &vault, &settings, client_secret.clone()).await?,
    };
    if args.default {
        vault.store().set_default_connection(&args.code)?;
    }
    println!(
        "{} {} ({}) to HubSpot portal {}",
        if reconnecting {
            "reconnected"
        } else {
            "connected"
        },
        settings.code,
        settings.name,
        access
            .portal_id
            .map_or_else(|| "?".to_owned(), |p| p.to_string())
    );
    if args.no_deploy {
        return Ok(ExitCode::SUCCESS);
    }
    // The custom properties and objects go in after the connection is recorded: the browser
    // already has its answer, and a failed deploy is retried by `serve` before its first write.
    let tokens = vault.token_source(&args.code, client_secret.as_ref())?;
    let client = HubspotClient::with_tokens(&access.hubspot_url, tokens)?;
    let syncer = Syncer::shared(plugin()?, client, vault.shared_store(), settings)?;
    eprintln!("deploying Lago's properties and custom objects in the background…");
    let deploy = tokio::spawn(async move { syncer.deploy().await });
    match deploy.await? {
        Ok(report) => {
            println!("deployed: {}", report.summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!(
                "error: the connection is recorded, but deploying failed: {error:#}\n\
                 `lago-hubspot deploy --connection-code {}` or `serve` will try again",
                args.code
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn oauth(
    args: &ConnectArgs,
    vault: &Vault,
    settings: &ConnectionSettings,
    client_secret: Option<Secret>,
) -> anyhow::Result<Access> {
    let client_id = args.client_id.clone().context(
        "give the OAuth app's --client-id and --client-secret (or HUBSPOT_CLIENT_ID / HUBSPOT_CLIENT_SECRET), or --token for a private-app token",
    )?;
    let client_secret =
        client_secret.context("give the OAuth app's --client-secret (or HUBSPOT_CLIENT_SECRET)")?;
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, args.redirect_port));
    let flow =
        OAuthFlow::start(&args.authorize_url, &client_id, listen, &args.redirect_host).await?;
    println!(
        "Open this URL in a browser and grant access to HubSpot:\n{}",
        flow.authorize_url
    );
    eprintln!(
        "waiting for HubSpot to send the browser back to {} …",
        flow.redirect_uri
    );
    if !args.no_browser && open_browser(&flow.authorize_url) {
        eprintln!("(opened in your browser)");
    }
    let app = OAuthApp {
        client_id,
        client_secret,
        token_url: args.token_url.clone(),
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    connect_oauth(vault, settings, &args.hubspot_url, &app, flow, timeout).await
}

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// Every connection: code, name, portal, how it authenticates, its state.
    List,
    /// One connection's settings and access (tokens are never shown).
    Show { code: String },
    /// Change a connection's settings.
    Update {
        code: String,
        #[arg(long)]
        name: Option<String>,
        #[arg(long, value_enum)]
        default_object: Option<DefaultObject>,
        #[arg(long)]
        lago_app_url: Option<String>,
        #[arg(long)]
        organization_slug: Option<String>,
        #[arg(long)]
        sync_subscriptions: Option<bool>,
        #[arg(long)]
        sync_invoices: Option<bool>,
        /// Sync credit notes to LagoCreditNotes (deployed before the next write once on).
        #[arg(long)]
        sync_credit_notes: Option<bool>,
        #[arg(long)]
        sync_unlinked_customers: Option<bool>,
        #[arg(long)]
        hubspot_url: Option<String>,
        /// Make this the connection for customers that name none.
        #[arg(long)]
        default: bool,
    },
    /// Forget a connection's settings and access. Its HubSpot id mappings and sync log stay
    /// (connecting the same code again resumes); its waiting events stay pending.
    Remove { code: String },
}

fn status(access: Option<&Access>) -> String {
    match access {
        None => "no stored access (token given on the command line)".into(),
        Some(a) if a.reconnect_needed.is_some() => "reconnect needed".into(),
        Some(_) => "connected".into(),
    }
}

fn in_words(ms: i64) -> String {
    let secs = ms.abs() / 1000;
    let text = match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    };
    if ms < 0 {
        format!("{text} ago")
    } else {
        format!("in {text}")
    }
}

pub fn connections(state: &std::path::Path, command: ConnectionsCommand) -> anyhow::Result<bool> {
    let store = Store::open(state)?;
    let accesses = store.accesses()?;
    let access_of = |code: &str| accesses.iter().find(|a| a.code == code);
    match command {
        ConnectionsCommand::List => {
            let rows: Vec<Vec<String>> = store
                .connections()?
                .into_iter()
                .map(|s| {
                    let access = access_of(&s.code);
                    vec![
                        s.code.clone(),
                        s.name,
                        access
                            .and_then(|a| a.portal_id)
                            .map_or_else(|| "-".into(), |p| p.to_string()),
                        access
                            .map_or("-", |a| match a.kind {
                                AuthKind::OAuth => "oauth",
                                AuthKind::Token => "token",
                            })
                            .into(),
                        format!("{:?}", s.default_targeted_object).to_lowercase(),
                        if access.is_some_and(|a| a.is_default) {
                            "yes".into()
                        } else {
                            String::new()
                        },
                        status(access),
                    ]
                })
                .collect();
            if rows.is_empty() {
                println!("no connections: add one with `lago-hubspot connect`");
            } else {
                print!(
                    "{}",
                    table(
                        &[
                            "code", "name", "portal", "auth", "object", "default", "status"
                        ],
                        &rows
                    )
                );
            }
            Ok(true)
        }
        ConnectionsCommand::Show { code } => {
            let Some(settings) = store.connection(&code)? else {
                eprintln!("no connection {code}");
                return Ok(false);
            };
            let access = access_of(&code);
            println!("code:               {}", settings.code);
            println!("name:               {}", settings.name);
            println!(
                "default object:     {}",
                format!("{:?}", settings.default_targeted_object).to_lowercase()
            );
            println!("sync subscriptions: {}", settings.sync_subscriptions);
            println!("sync invoices:      {}", settings.sync_invoices);
            println!("sync credit notes:  {}", settings.sync_credit_notes);
            println!("unlinked customers: {}", settings.sync_unlinked_customers);
            println!("lago app url:       {}", settings.lago_app_url);
            println!("organization slug:  {}", settings.organization_slug);
            println!("status:             {}", status(access));
            if let Some(a) = access {
                println!("hubspot url:        {}", a.hubspot_url);
                println!(
                    "portal:             {}",
                    a.portal_id.map_or_else(|| "?".into(), |p| p.to_string())
                );
                println!("default connection: {}", a.is_default);
                match a.kind {
                    AuthKind::Token => println!("auth:               private-app token (stored)"),
                    AuthKind::OAuth => {
                        println!(
                            "auth:               OAuth, client id {}",
                            a.client_id.as_deref().unwrap_or("?")
                        );
                        if let Some(at) = a.expires_at_ms {
                            println!(
                                "access token:       expires {} (refreshed before)",
                                in_words(at - now_ms())
                            );
                        }
                        println!("scopes:             {}", a.scopes.join(" "));
                    }
                }
                if let Some(reason) = &a.reconnect_needed {
                    println!("reconnect reason:   {reason}");
                }
                println!("connected at:       {}", a.connected_at);
            }
            let ids = store.all_ids(&code)?;
            let schema = |name: &str| {
                ids.iter()
                    .find(|id| {
                        id.key.kind == lago_hubspot::runtime::RecordKind::ObjectSchema
                            && id.key.lago_id == name
                    })
                    .map_or("-".to_owned(), |id| id.hubspot_id.clone())
            };
            println!(
                "LagoSubscriptions:  {}",
                schema(lago_hubspot::config::SUBSCRIPTIONS_SCHEMA)
            );
            println!(
                "LagoInvoices:       {}",
                schema(lago_hubspot::config::INVOICES_SCHEMA)
            );
            println!(
                "LagoCreditNotes:    {}",
                schema(lago_hubspot::config::CREDIT_NOTES_SCHEMA)
            );
            println!("mapped ids:         {}", ids.len());
            println!("waiting events:     {}", store.waiting_events(&code)?);
            let links = store.links(Some(&code))?;
            println!("linked customers:   {}", links.len());
            if !links.is_empty() {
                super::link::print_links(&links, false, usize::MAX);
            }
            Ok(true)
        }
        ConnectionsCommand::Update {
            code,
            name,
            default_object,
            lago_app_url,
            organization_slug,
            sync_subscriptions,
            sync_invoices,
            sync_credit_notes,
            sync_unlinked_customers,
            hubspot_url,
            default,
        } => {
            let Some(mut settings) = store.connection(&code)? else {
                eprintln!("no connection {code}");
                return Ok(false);
            };
            if let Some(name) = name {
                settings.name = name;
            }
            if let Some(object) = default_object {
                settings.default_targeted_object = object;
            }
            if let Some(url) = lago_app_url {
                settings.lago_app_url = url;
            }
            if let Some(slug) = organization_slug {
                settings.organization_slug = slug;
            }
            if let Some(on) = sync_subscriptions {
                settings.sync_subscriptions = on;
            }
            if let Some(on) = sync_invoices {
                settings.sync_invoices = on;
            }
            if let Some(on) = sync_credit_notes {
                settings.sync_credit_notes = on;
            }
            if let Some(on) = sync_unlinked_customers {
                settings.sync_unlinked_customers = on;
            }
            store.save_connection(&settings)?;
            if let Some(url) = hubspot_url {
                anyhow::ensure!(
                    store.set_hubspot_url(&code, &url)?,
                    "connection {code} has no stored access to change the HubSpot URL of"
                );
            }
            if default {
                anyhow::ensure!(
                    store.set_default_connection(&code)?,
                    "connection {code} has no stored access; connect it first"
                );
            }
            println!("connection {code} updated (a running serve picks it up when restarted)");
            Ok(true)
        }
        ConnectionsCommand::Remove { code } => {
            if !store.remove_connection(&code)? {
                eprintln!("no connection {code}");
                return Ok(false);
            }
            let waiting = store.waiting_events(&code)?;
            println!("connection {code} removed");
            if waiting > 0 {
                println!(
                    "{waiting} event(s) of it stay pending until a connection with code {code} is served again"
                );
            }
            Ok(true)
        }
    }
}
