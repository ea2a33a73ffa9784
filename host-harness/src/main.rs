//! `lago-hubspot`: sync Lago billing data into HubSpot through a sandboxed WebAssembly component.

use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::Value;

use lago_hubspot::config::{ConnectionSettings, SettingsFlags};
use lago_hubspot::connections::{SecretKey, Vault};
use lago_hubspot::hubspot_http::{DEFAULT_HUBSPOT_URL, HubspotClient, Secret};
use lago_hubspot::runtime::{Plan, Plugin};
use lago_hubspot::store::Store;
use lago_hubspot::sync::{OutcomeStatus, Syncer, describe_plan_error};
#[cfg(feature = "emulators")]
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, OAuthConfig};

mod cli;

const COMPONENT_FILE: &str = "lago_hubspot_guest.wasm";

#[derive(Parser)]
#[command(name = "lago-hubspot", version, about, long_about = None)]
struct Cli {
    /// The sync component (.wasm). Defaults to the one built in this checkout.
    #[arg(long, env = "LAGO_HUBSPOT_COMPONENT", global = true)]
    component: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Start an in-process HubSpot emulator, deploy, sync the bundled sample events and print
    /// HubSpot's records (what runs with no subcommand).
    #[cfg(feature = "emulators")]
    Demo,
    /// Not in this build: it was built without the `emulators` feature.
    #[cfg(not(feature = "emulators"))]
    Demo,
    /// Serve the HubSpot emulator until stopped.
    #[cfg(feature = "emulators")]
    Emulator {
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: std::net::SocketAddr,
        /// Bearer tokens the emulator accepts.
        #[arg(long = "token", default_value = "test-token")]
        tokens: Vec<String>,
        /// The emulated portal (hub) id.
        #[arg(long, default_value_t = 12_345_678)]
        portal_id: u64,
        /// The OAuth app the emulator knows (authorize at /oauth/authorize, tokens at
        /// /oauth/v1/token).
        #[arg(long, default_value = "emulator-client-id")]
        oauth_client_id: String,
        #[arg(long, default_value = "emulator-client-secret")]
        oauth_client_secret: String,
        /// Lifetime of the access tokens it issues (HubSpot: 1800).
        #[arg(long, default_value_t = 1800)]
        oauth_token_lifetime_secs: u64,
        /// Misbehave like real HubSpot: rate limits, errors, latency, drops, 207s.
        #[command(flatten)]
        faults: lago_hubspot_emulators::hubspot::FaultArgs,
        /// Start with a lived-in portal: `--seed-records FILE.json` (format in its help).
        #[command(flatten)]
        seed: lago_hubspot_emulators::hubspot::SeedArgs,
    },
    /// Not in this build: it was built without the `emulators` feature.
    #[cfg(not(feature = "emulators"))]
    Emulator {
        #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Set up the connection: custom properties and the LagoSubscriptions / LagoInvoices objects.
    Deploy {
        #[command(flatten)]
        hubspot: HubspotArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
    },
    /// Sync Lago webhook payloads (files, or `-` for JSON lines on stdin), in order.
    Sync {
        #[command(flatten)]
        hubspot: HubspotArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(required = true, value_name = "EVENT.json")]
        events: Vec<PathBuf>,
    },
    /// Sync what Lago already holds (its REST API, or exported webhooks with --from): customers,
    /// then subscriptions, then invoices. Re-runs send only what is new, changed or failed.
    Backfill {
        #[command(flatten)]
        hubspot: HubspotArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        backfill: lago_hubspot::backfill::BackfillArgs,
    },
    /// Serve Lago's webhooks: verify, store durably, acknowledge, then sync each event exactly once.
    Serve {
        #[command(flatten)]
        hubspot: HubspotArgs,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[command(flatten)]
        serve: cli::serve::ServeArgs,
    },
    /// Add a HubSpot connection (or renew one's access): OAuth in a browser, or --token for a
    /// private-app token; then deploy its properties and objects.
    Connect(cli::connections::ConnectArgs),
    /// List, show, update or remove connections.
    Connections {
        #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
        state: PathBuf,
        #[command(subcommand)]
        command: cli::connections::ConnectionsCommand,
    },
    /// Link a Lago customer (its external_id or lago_id) to an existing HubSpot record, as
    /// Lago's "paste a HubSpot ID" does: its next event updates that record.
    Link(cli::link::LinkArgs),
    /// Remove a customer's link made with `link`.
    Unlink(cli::link::UnlinkArgs),
    /// Events by state, the oldest pending one, the last errors, and linked customers.
    Status {
        #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
        state: PathBuf,
    },
    /// List, show, retry or discard stored events.
    Events {
        /// The state database (given before the subcommand: `events --state FILE list`).
        #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
        state: PathBuf,
        #[command(subcommand)]
        command: cli::operate::EventsCommand,
    },
    /// The sync log of one Lago object (customer, subscription or invoice lago_id).
    Log {
        #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
        state: PathBuf,
        #[arg(long, default_value = "hubspot")]
        connection_code: String,
        lago_id: String,
    },
    /// Dry run: print the HubSpot request plan for one Lago webhook payload; sends nothing.
    Plan {
        /// State database to take known HubSpot ids and deployed object type ids from.
        #[arg(long)]
        state: Option<PathBuf>,
        #[command(flatten)]
        connection: ConnectionArgs,
        #[arg(value_name = "EVENT.json")]
        event: PathBuf,
    },
}

#[derive(Args)]
struct HubspotArgs {
    #[arg(long, env = "HUBSPOT_API_URL", default_value = DEFAULT_HUBSPOT_URL)]
    hubspot_url: String,
    /// Private-app / service-key token, or an OAuth access token. Without one, the connection
    /// recorded by `lago-hubspot connect` is used.
    #[arg(long, env = "HUBSPOT_ACCESS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The OAuth app's client secret, to refresh the tokens of OAuth connections.
    #[arg(long, env = "HUBSPOT_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
    /// The embedded state database (created if missing).
    #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
    state: PathBuf,
}

/// Connection settings; each flag overrides the TOML file, which overrides what the state holds.
#[derive(Args, Default)]
struct ConnectionArgs {
    /// TOML file with connection settings (keys as in `ConnectionSettings`).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    connection_code: Option<String>,
    #[command(flatten)]
    settings: SettingsFlags,
}

impl ConnectionArgs {
    fn resolve(&self, store: &Store) -> anyhow::Result<ConnectionSettings> {
        let mut settings = match (&self.config, &self.connection_code) {
            (Some(path), _) => ConnectionSettings::from_toml_file(path)?,
            (None, Some(code)) => store
                .connection(code)?
                .unwrap_or_else(|| ConnectionSettings {
                    code: code.clone(),
                    ..ConnectionSettings::default()
                }),
            (None, None) => store.sole_connection()?.unwrap_or_default(),
        };
        if let Some(code) = &self.connection_code {
            settings.code = code.clone();
        }
        self.settings.apply(&mut settings);
        Ok(settings)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let component = || load_plugin(cli.component.as_deref());
    match cli.command.unwrap_or(Command::Demo) {
        #[cfg(feature = "emulators")]
        Command::Demo => {
            print!("{}", lago_hubspot::demo::run(component()?).await?);
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(not(feature = "emulators"))]
        Command::Demo => Err(not_in_this_build("demo")),
        #[cfg(not(feature = "emulators"))]
        Command::Emulator { .. } => Err(not_in_this_build("emulator")),
        #[cfg(feature = "emulators")]
        Command::Emulator {
            listen,
            tokens,
            portal_id,
            oauth_client_id,
            oauth_client_secret,
            oauth_token_lifetime_secs,
            faults,
            seed,
        } => {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("cannot listen on {listen}"))?;
            eprintln!(
                "HubSpot emulator listening on http://{}",
                listener.local_addr()?
            );
            let emulator = Emulator::new(EmulatorConfig {
                tokens,
                portal_id,
                faults: faults.to_faults()?,
                oauth: OAuthConfig {
                    client_id: oauth_client_id,
                    client_secret: oauth_client_secret,
                    access_token_lifetime: std::time::Duration::from_secs(
                        oauth_token_lifetime_secs,
                    ),
                    ..OAuthConfig::default()
                },
            });
            if let Some(seeded) = seed.apply(&emulator)? {
                eprintln!(
                    "seeded {} companies and {} contacts",
                    seeded.companies.len(),
                    seeded.contacts.len()
                );
            }
            tokio::select! {
                served = emulator.serve(listener) => served?,
                _ = tokio::signal::ctrl_c() => {}
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Deploy {
            hubspot,
            connection,
        } => {
            let syncer = syncer(component()?, &hubspot, &connection)?;
            let report = syncer.deploy().await?;
            println!("{}", report.summary);
            println!(
                "LagoSubscriptions: {}\nLagoInvoices: {}",
                report
                    .subscriptions_object_type_id
                    .as_deref()
                    .unwrap_or("-"),
                report.invoices_object_type_id.as_deref().unwrap_or("-")
            );
            if let Some(credit_notes) = &report.credit_notes_object_type_id {
                println!("LagoCreditNotes: {credit_notes}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync {
            hubspot,
            connection,
            events,
        } => {
            let syncer = syncer(component()?, &hubspot, &connection)?;
            if let Some(report) = syncer.deploy_if_needed().await? {
                eprintln!("deployed first: {}", report.summary);
            }
            let mut failed = 0;
            for event in read_events(&events)? {
                let (source, payload) = match event {
                    Ok(event) => event,
                    Err(error) => {
                        failed += 1;
                        println!("{:<8} {error:#}", "error");
                        continue;
                    }
                };
                let outcome = syncer.sync_event(&payload).await;
                let status = match outcome.status {
                    OutcomeStatus::Failed => {
                        failed += 1;
                        "error"
                    }
                    OutcomeStatus::Synced => "ok",
                    OutcomeStatus::Skipped => "skipped",
                };
                println!(
                    "{status:<8} {source}  {} {}  {}",
                    outcome.webhook_type, outcome.lago_id, outcome.detail
                );
            }
            Ok(if failed == 0 {
                ExitCode::SUCCESS
            } else {
                eprintln!("{failed} event(s) failed");
                ExitCode::FAILURE
            })
        }
        Command::Backfill {
            hubspot,
            connection,
            backfill,
        } => {
            let syncer = syncer(component()?, &hubspot, &connection)?;
            lago_hubspot::backfill::run(&syncer, &backfill).await
        }
        Command::Serve {
            hubspot,
            connection,
            serve,
        } => {
            let metrics = Arc::new(lago_hubspot::metrics::Metrics::new());
            let store = Arc::new(Mutex::new(Store::open(&hubspot.state)?));
            // A `--token` connection is a fleet of one: one path for every service.
            let fleet = cli::serve::fleet(
                component()?,
                store,
                &hubspot,
                &connection,
                &serve,
                metrics.clone(),
            )?;
            cli::serve::run_connections(fleet, metrics, &serve).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Connect(args) => cli::connections::connect(component, args).await,
        Command::Connections { state, command } => {
            let ok = cli::connections::connections(&state, command)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Link(args) => {
            cli::link::link(args)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Unlink(args) => Ok(if cli::link::unlink(args)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Command::Status { state } => {
            cli::operate::status(&Store::open(&state)?)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Events { state, command } => {
            let ok = cli::operate::events(&Store::open(&state)?, command)?;
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Log {
            state,
            connection_code,
            lago_id,
        } => {
            cli::operate::log(&Store::open(&state)?, &connection_code, &lago_id)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan {
            state,
            connection,
            event,
        } => {
            let store = match &state {
                Some(path) => Store::open(path)?,
                None => Store::open_in_memory()?,
            };
            let settings = connection.resolve(&store)?;
            // A plan never sends anything; the client is only there to satisfy the syncer.
            let client = HubspotClient::new(DEFAULT_HUBSPOT_URL, Secret::new(""))?;
            let syncer = Syncer::new(component()?, client, store, settings)?;
            let payload = std::fs::read_to_string(&event)
                .with_context(|| format!("cannot read {}", event.display()))?;
            match syncer.plan(&payload).await? {
                Ok(plan) => {
                    println!("{}", serde_json::to_string_pretty(&plan_json(&plan))?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {}", describe_plan_error(&error));
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}

fn syncer(
    plugin: Arc<Plugin>,
    hubspot: &HubspotArgs,
    connection: &ConnectionArgs,
) -> anyhow::Result<Syncer> {
    let store = Arc::new(Mutex::new(Store::open(&hubspot.state)?));
    let settings = connection.resolve(&lock(&store))?;
    // One per-portal budget in every mode: `sync` and `backfill` pace themselves like `serve`.
    let budget = Arc::new(lago_hubspot::ratelimit::RateBudget::new(
        lago_hubspot::ratelimit::Rate::OAUTH_APP,
    ));
    let client = client_for(hubspot, &store, &settings.code)?.with_budget(budget);
    Syncer::shared(plugin, client, store, settings)
}

fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// `--token` when given, else the access `connect` recorded for the connection.
fn client_for(
    hubspot: &HubspotArgs,
    store: &Arc<Mutex<Store>>,
    code: &str,
) -> anyhow::Result<HubspotClient> {
    if let Some(token) = &hubspot.token {
        return HubspotClient::new(&hubspot.hubspot_url, Secret::new(token.clone()));
    }
    let Some(access) = lock(store).access(code)? else {
        anyhow::bail!(
            "no HubSpot access for connection {code}: give --token (or HUBSPOT_ACCESS_TOKEN), or record the connection with `lago-hubspot connect --code {code}`"
        );
    };
    let vault = Vault::new(store.clone(), SecretKey::from_env()?);
    let secret = hubspot.client_secret.clone().map(Secret::new);
    let tokens = vault.token_source(code, secret.as_ref())?;
    HubspotClient::with_tokens(&access.hubspot_url, tokens)
}

/// The component named on the command line, or the one this checkout builds.
/// `demo` and `emulator` need the HubSpot emulator, which a `--no-default-features` build leaves out.
#[cfg(not(feature = "emulators"))]
fn not_in_this_build(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`{command}` is not in this build: lago-hubspot was built without the `emulators` feature \
         (rebuild with default features); see `lago-hubspot --help` for the commands it has"
    )
}

fn load_plugin(explicit: Option<&Path>) -> anyhow::Result<Arc<Plugin>> {
    let path = match explicit {
        Some(path) => path.to_owned(),
        None => default_component_path(),
    };
    Ok(Arc::new(Plugin::load(&path)?))
}

fn default_component_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let beside = exe.with_file_name(COMPONENT_FILE);
    if beside.exists() {
        return beside;
    }
    // target/<profile>/lago-hubspot → target/wasm32-wasip2/release/lago_hubspot_guest.wasm
    exe.parent()
        .and_then(Path::parent)
        .map(|target| target.join("wasm32-wasip2/release").join(COMPONENT_FILE))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("target/wasm32-wasip2/release").join(COMPONENT_FILE))
}

/// Events from files, or JSON lines on stdin for `-`; each with a label for the output line.
fn read_events(sources: &[PathBuf]) -> anyhow::Result<Vec<anyhow::Result<(String, String)>>> {
    let mut events = Vec::new();
    for source in sources {
        if source.as_os_str() == "-" {
            for (number, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("cannot read stdin")?;
                if !line.trim().is_empty() {
                    events.push(Ok((format!("stdin:{}", number + 1), line)));
                }
            }
        } else {
            events.push(
                std::fs::read_to_string(source)
                    .map(|text| (source.display().to_string(), text))
                    .with_context(|| format!("cannot read {}", source.display())),
            );
        }
    }
    Ok(events)
}

/// The plan as JSON, with request bodies shown as JSON rather than escaped strings.
fn plan_json(plan: &Plan) -> Value {
    let mut json = serde_json::to_value(plan).unwrap_or(Value::Null);
    if let Some(steps) = json.get_mut("steps").and_then(Value::as_array_mut) {
        for step in steps {
            if let Some(body) = step.get("body").and_then(Value::as_str)
                && let Ok(parsed) = serde_json::from_str::<Value>(body)
            {
                step["body"] = parsed;
            }
        }
    }
    json
}
