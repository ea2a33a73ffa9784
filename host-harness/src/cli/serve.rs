//! `lago-hubspot serve`: the real-time service.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use lago_hubspot::connections::fleet::{Fleet, FleetSetup};
use lago_hubspot::connections::{SecretKey, Vault};
use lago_hubspot::hubspot_http::Secret;
use lago_hubspot::metrics::Metrics;
use lago_hubspot::ratelimit::Rate;
use lago_hubspot::server::{DEFAULT_WEBHOOK_PATH, ServeOptions, serve_connections};
use lago_hubspot::signature::WebhookAuth;
use lago_hubspot::sync::Syncer;
use lago_hubspot::worker::QueuePolicy;

use super::settings::Settings;
use super::{Global, output, warn_about_placeholders};

#[derive(Args)]
pub struct ServeArgs {
    /// Settings of the connection given with --token (stored connections keep theirs).
    #[command(flatten)]
    pub settings: Settings,
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    #[arg(long, default_value = DEFAULT_WEBHOOK_PATH)]
    pub webhook_path: String,
    /// The Lago organization's HMAC key, for `X-Lago-Signature-Algorithm: hmac`.
    #[arg(long, env = "LAGO_WEBHOOK_HMAC_KEY", hide_env_values = true)]
    pub hmac_key: Option<String>,
    /// Lago's RSA public key (PEM, or Base64 PEM as Lago shows it), for `jwt` signatures.
    #[arg(long, value_name = "FILE")]
    pub jwt_public_key: Option<PathBuf>,
    /// The Lago API URL, the `iss` of Lago's JWTs.
    #[arg(long, env = "LAGO_API_URL", value_name = "URL", alias = "lago-url")]
    pub lago_api_url: Option<String>,
    /// Accept unsigned webhooks (trusted networks only; a warning is logged).
    #[arg(long)]
    pub insecure_skip_signature: bool,
    /// Larger bodies are refused with 413.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    #[arg(long, default_value_t = 8)]
    pub workers: usize,
    /// During a burst, each worker executes up to this many ready events together as HubSpot
    /// batch requests.
    #[arg(long, default_value_t = lago_hubspot::server::DEFAULT_BURST)]
    pub burst: usize,
    /// One HubSpot request per plan step, even in a burst.
    #[arg(long)]
    pub no_batch: bool,
    /// Attempts before an event is dead (kept, visible in `events list --status dead`).
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
    /// First retry delay of an event, in milliseconds; doubles per attempt.
    #[arg(long, default_value_t = 1000)]
    pub retry_base_ms: u64,
    /// Client-side budget per HubSpot portal, MAX/INTERVAL_MS (110/10000 for OAuth apps;
    /// private apps: 100/10000, 190/10000 or 250/10000 by tier).
    #[arg(long, default_value = "110/10000", value_parser = Rate::parse)]
    pub rate_limit: Rate,
    /// The connection for customers whose payload names none (default: the one marked with
    /// `connections update CODE --default`, or the only one).
    #[arg(long)]
    pub default_connection: Option<String>,
}

impl ServeArgs {
    pub fn options(&self) -> anyhow::Result<ServeOptions> {
        let auth = if self.insecure_skip_signature {
            WebhookAuth::disabled()
        } else {
            let mut auth = WebhookAuth::new(self.hmac_key.clone().map(Secret::new));
            if let Some(path) = &self.jwt_public_key {
                let key = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let issuer = self.lago_api_url.as_deref().context(
                    "--jwt-public-key needs --lago-api-url (the issuer of Lago's tokens)",
                )?;
                auth = auth.with_jwt(&key, issuer)?;
            }
            anyhow::ensure!(
                self.hmac_key.is_some() || self.jwt_public_key.is_some(),
                "give --hmac-key and/or --jwt-public-key so webhooks can be verified (or --insecure-skip-signature)"
            );
            auth
        };
        Ok(ServeOptions {
            webhook_path: self.webhook_path.clone(),
            max_body_bytes: self.max_body_bytes,
            auth,
            workers: self.workers,
            policy: QueuePolicy {
                max_attempts: self.max_attempts,
                base_backoff: Duration::from_millis(self.retry_base_ms),
                ..QueuePolicy::default()
            },
            drain_timeout: Duration::from_secs(30),
            burst: if self.no_batch { 1 } else { self.burst },
        })
    }
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("SIGTERM handler");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
    tracing::info!("shutting down: no new webhooks; finishing in-flight events");
}

pub async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let metrics = Arc::new(Metrics::new());
    let plugin = global.plugin()?;
    // A bad `--config` file stops it before the state is created.
    args.settings.file()?;
    let store = Arc::new(Mutex::new(global.create_state()?));
    // A `--token` connection is a fleet of one: one path for every service.
    let fleet = fleet(plugin, store, global, &args, metrics.clone())?;
    run_connections(fleet, metrics, &args).await?;
    Ok(ExitCode::SUCCESS)
}

/// Every connection recorded by `connect` (plus the `--token` one, if given), on one store.
pub fn fleet(
    plugin: Arc<lago_hubspot::runtime::Plugin>,
    store: Arc<Mutex<lago_hubspot::store::Store>>,
    global: &Global,
    args: &ServeArgs,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<Fleet>> {
    let vault = Vault::new(store.clone(), SecretKey::from_env()?);
    let client_secret = global.client_secret();
    let setup = FleetSetup {
        plugin: plugin.clone(),
        vault: &vault,
        client_secret: client_secret.as_ref(),
        rate: args.rate_limit,
        metrics: metrics.clone(),
    };
    let mut syncers = setup.syncers()?;
    // A connection given with --token joins (or overrides its stored access).
    if let Some(token) = &global.args.token {
        let settings = args.settings.resolve(global.connection(), &vault.store())?;
        syncers.retain(|s| s.settings().code != settings.code);
        let client = lago_hubspot::hubspot_http::HubspotClient::new(
            global.hubspot_url(),
            Secret::new(token.clone()),
        )?
        .with_budget(Arc::new(lago_hubspot::shared_budget::budget_for(
            args.rate_limit,
            store.clone(),
            &format!("connection {}", settings.code),
        )))
        .with_metrics(metrics);
        syncers.push(Arc::new(Syncer::shared(
            plugin,
            client,
            store.clone(),
            settings,
        )?));
    }
    anyhow::ensure!(
        !syncers.is_empty(),
        "no HubSpot connection: add one with `lago-hubspot connect`, or give --token"
    );
    let default = match &args.default_connection {
        Some(code) => Some(code.clone()),
        None => setup.stored_default()?,
    };
    Ok(Arc::new(Fleet::new(store, syncers, default)?))
}

/// Serves every connection of `fleet`. Set-up runs first; a connection whose deploy fails
/// (e.g. it needs a reconnect) is deployed later, before its first event.
pub async fn run_connections(
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    args: &ServeArgs,
) -> anyhow::Result<()> {
    let options = args.options()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    for syncer in fleet.syncers() {
        warn_about_placeholders(syncer.settings());
        let code = &syncer.settings().code;
        match syncer.deploy_if_needed().await {
            Ok(Some(report)) => output::note(&format!("{code}: deployed: {}", report.summary)),
            Ok(None) => {}
            Err(error) => output::warn(&format!(
                "{code}: deploy failed, will try again later: {error:#}"
            )),
        }
    }
    output::note(&format!(
        "serving {} connection(s) ({}), default: {}",
        fleet.codes().count(),
        fleet.codes().collect::<Vec<_>>().join(", "),
        fleet.default_connection().unwrap_or("none")
    ));
    output::note(&format!(
        "listening on http://{}{} (health: /healthz, metrics: /metrics)",
        listener.local_addr()?,
        options.webhook_path
    ));
    serve_connections(fleet, metrics, listener, options, shutdown_signal()).await
}
