//! `lago-hubspot connect`: OAuth in a browser (or a private-app token), the connection
//! recorded, then deployed. Tokens are never printed.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use lago_hubspot::auth::{DEFAULT_TOKEN_URL, OAuthApp};
use lago_hubspot::config::ConnectionSettings;
use lago_hubspot::connections::authorize::{DEFAULT_AUTHORIZE_URL, OAuthFlow, open_browser};
use lago_hubspot::connections::{Access, SecretKey, Vault, connect_oauth, connect_token};
use lago_hubspot::hubspot_http::{HubspotClient, Secret};
use lago_hubspot::sync::Syncer;

use super::settings::{Settings, new_connection};
use super::{Global, warn_about_placeholders};

/// `--connection CODE` (global) names the connection. Connecting an existing code again renews
/// its access (reconnect) and keeps its settings unless flags change them.
#[derive(Args)]
pub struct ConnectArgs {
    #[command(flatten)]
    pub settings: Settings,
    /// Make this the connection for customers that name none.
    #[arg(long)]
    pub default: bool,
    /// The OAuth app's client id.
    #[arg(long, env = "HUBSPOT_CLIENT_ID", value_name = "ID")]
    pub client_id: Option<String>,
    /// HubSpot's authorize page.
    #[arg(long, env = "HUBSPOT_AUTHORIZE_URL", value_name = "URL", default_value = DEFAULT_AUTHORIZE_URL)]
    pub authorize_url: String,
    /// HubSpot's token endpoint.
    #[arg(long, env = "HUBSPOT_TOKEN_URL", value_name = "URL", default_value = DEFAULT_TOKEN_URL)]
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
}

/// `connect`: OAuth (or a token), record the connection, then deploy it in the background.
pub async fn run(global: &Global, args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let file = args.settings.file()?;
    let code = global
        .connection()
        .or(file.connection.as_deref())
        .map(str::trim)
        .filter(|code| !code.is_empty())
        .context(
            "give the connection's code: --connection CODE (or LAGO_HUBSPOT_CONNECTION), Lago's integration_code",
        )?
        .to_owned();
    let store = global.create_state()?;
    let vault = Vault::new(Arc::new(Mutex::new(store)), SecretKey::from_env()?);
    let existing = vault.store().connection(&code)?;
    let reconnecting = existing.is_some();
    let mut settings = existing.unwrap_or_else(|| new_connection(&code));
    file.apply(&mut settings);
    args.settings.apply(&mut settings);
    warn_about_placeholders(&settings);
    let client_secret = global.client_secret();
    let access = match &global.args.token {
        Some(token) => {
            connect_token(
                &vault,
                &settings,
                global.hubspot_url(),
                Secret::new(token.clone()),
            )
            .await?
        }
        None => oauth(global, &args, &vault, &settings, client_secret.clone()).await?,
    };
    if args.default {
        vault.store().set_default_connection(&code)?;
    }
    outln!(
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
    let tokens = vault.token_source(&code, client_secret.as_ref())?;
    let client = HubspotClient::with_tokens(&access.hubspot_url, tokens)?;
    let syncer = Syncer::shared(global.plugin()?, client, vault.shared_store(), settings)?;
    errln!("deploying Lago's properties and custom objects in the background…");
    let deploy = tokio::spawn(async move { syncer.deploy().await });
    match deploy.await? {
        Ok(report) => {
            outln!("deployed: {}", report.summary);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            errln!(
                "error: the connection is recorded, but deploying failed: {error:#}\n\
                 `lago-hubspot deploy --connection {code}` or `serve` will try again"
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

async fn oauth(
    global: &Global,
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
    outln!(
        "Open this URL in a browser and grant access to HubSpot:\n{}",
        flow.authorize_url
    );
    errln!(
        "waiting for HubSpot to send the browser back to {} …",
        flow.redirect_uri
    );
    if !args.no_browser && open_browser(&flow.authorize_url) {
        errln!("(opened in your browser)");
    }
    let app = OAuthApp {
        client_id,
        client_secret,
        token_url: args.token_url.clone(),
    };
    let timeout = Duration::from_secs(args.timeout_secs);
    connect_oauth(vault, settings, global.hubspot_url(), &app, flow, timeout).await
}
