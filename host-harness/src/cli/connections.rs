//! `connections list | show | update | remove`. Tokens are never printed.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};

use lago_hubspot::clock::now_ms;
use lago_hubspot::connections::{Access, AuthKind};
use lago_hubspot::report::{cut, fitted, output_width, whole, wrapped};

use super::settings::Settings;
use super::{Global, exit};

#[derive(Args)]
pub struct ConnectionsArgs {
    #[command(subcommand)]
    pub command: ConnectionsCommand,
}

#[derive(Subcommand)]
pub enum ConnectionsCommand {
    /// Every connection: code, name, portal, how it authenticates, its state.
    List,
    /// One connection's settings and access (tokens are never shown).
    Show {
        /// The connection's code [default: the global --connection].
        code: Option<String>,
    },
    /// Change a connection's settings (and, with the global --hubspot-url, its HubSpot URL).
    /// A running `serve` picks them up when restarted.
    Update {
        /// The connection's code [default: the global --connection].
        code: Option<String>,
        #[command(flatten)]
        settings: Settings,
        /// Make this the connection for customers that name none.
        #[arg(long)]
        default: bool,
    },
    /// Forget a connection's settings and access. Its HubSpot id mappings and sync log stay
    /// (connecting the same code again resumes); its waiting events stay pending.
    Remove {
        /// The connection's code [default: the global --connection].
        code: Option<String>,
    },
}

/// The positional code, else the global --connection.
fn code(given: Option<String>, global: &Global) -> anyhow::Result<String> {
    given
        .or_else(|| global.connection().map(str::to_owned))
        .context("give the connection's code: `connections show CODE` (or --connection CODE)")
}

/// The connection's access; without a stored one, each command brings its token: say where
/// this one's came from, or how to give one.
fn status(access: Option<&Access>, token_from: Option<&str>) -> String {
    match access {
        None => match token_from {
            Some(from) => format!("no stored access (this command's token comes from {from})"),
            None => "no stored access (each command needs --token or HUBSPOT_ACCESS_TOKEN; \
                     `lago-hubspot connect` stores one)"
                .into(),
        },
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

pub fn run(global: &Global, args: ConnectionsArgs) -> anyhow::Result<ExitCode> {
    connections(global, args.command).map(exit)
}

fn connections(global: &Global, command: ConnectionsCommand) -> anyhow::Result<bool> {
    let store = global.existing_state()?;
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
                        status(access, global.token_from),
                    ]
                })
                .collect();
            if rows.is_empty() {
                outln!("no connections: add one with `lago-hubspot connect`");
            } else {
                let columns = [
                    whole("code"),
                    cut("name", 1),
                    whole("portal"),
                    whole("auth"),
                    whole("object"),
                    whole("default"),
                    wrapped("status"),
                ];
                out!("{}", fitted(&columns, &rows, output_width()));
            }
            Ok(true)
        }
        ConnectionsCommand::Show { code: given } => {
            let code = code(given, global)?;
            let Some(settings) = store.connection(&code)? else {
                errln!("no connection {code}");
                return Ok(false);
            };
            let access = access_of(&code);
            outln!("code:               {}", settings.code);
            outln!("name:               {}", settings.name);
            outln!(
                "default object:     {}",
                format!("{:?}", settings.default_targeted_object).to_lowercase()
            );
            outln!("sync subscriptions: {}", settings.sync_subscriptions);
            outln!("sync invoices:      {}", settings.sync_invoices);
            outln!("sync credit notes:  {}", settings.sync_credit_notes);
            outln!("unlinked customers: {}", settings.sync_unlinked_customers);
            outln!("lago app url:       {}", settings.lago_app_url);
            outln!("organization slug:  {}", settings.organization_slug);
            outln!("status:             {}", status(access, global.token_from));
            if let Some(a) = access {
                outln!("hubspot url:        {}", a.hubspot_url);
                outln!(
                    "portal:             {}",
                    a.portal_id.map_or_else(|| "?".into(), |p| p.to_string())
                );
                outln!("default connection: {}", a.is_default);
                match a.kind {
                    AuthKind::Token => outln!("auth:               private-app token (stored)"),
                    AuthKind::OAuth => {
                        outln!(
                            "auth:               OAuth, client id {}",
                            a.client_id.as_deref().unwrap_or("?")
                        );
                        if let Some(at) = a.expires_at_ms {
                            outln!(
                                "access token:       expires {} (refreshed before)",
                                in_words(at - now_ms())
                            );
                        }
                        outln!("scopes:             {}", a.scopes.join(" "));
                    }
                }
                if let Some(reason) = &a.reconnect_needed {
                    outln!("reconnect reason:   {reason}");
                }
                outln!("connected at:       {}", a.connected_at);
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
            outln!(
                "LagoSubscriptions:  {}",
                schema(lago_hubspot::config::SUBSCRIPTIONS_SCHEMA)
            );
            outln!(
                "LagoInvoices:       {}",
                schema(lago_hubspot::config::INVOICES_SCHEMA)
            );
            outln!(
                "LagoCreditNotes:    {}",
                schema(lago_hubspot::config::CREDIT_NOTES_SCHEMA)
            );
            outln!("mapped ids:         {}", ids.len());
            outln!("waiting events:     {}", store.waiting_events(&code)?);
            let links = store.links(Some(&code))?;
            outln!("linked customers:   {}", links.len());
            if !links.is_empty() {
                super::link::print_links(&links, false, usize::MAX);
            }
            Ok(true)
        }
        ConnectionsCommand::Update {
            code: given,
            settings: flags,
            default,
        } => {
            let code = code(given, global)?;
            let Some(mut settings) = store.connection(&code)? else {
                errln!("no connection {code}");
                return Ok(false);
            };
            flags.file()?.apply(&mut settings);
            flags.apply(&mut settings);
            store.save_connection(&settings)?;
            // Only a URL typed here: HUBSPOT_API_URL in the environment changes no connection.
            let hubspot_url = global
                .hubspot_url_on_command_line
                .then(|| global.hubspot_url().to_owned());
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
            outln!("connection {code} updated (a running serve picks it up when restarted)");
            super::warn_about_placeholders(&settings);
            Ok(true)
        }
        ConnectionsCommand::Remove { code: given } => {
            let code = code(given, global)?;
            if !store.remove_connection(&code)? {
                errln!("no connection {code}");
                return Ok(false);
            }
            let waiting = store.waiting_events(&code)?;
            outln!("connection {code} removed");
            if waiting > 0 {
                outln!(
                    "{waiting} event(s) of it stay pending until a connection with code {code} is served again"
                );
            }
            Ok(true)
        }
    }
}
