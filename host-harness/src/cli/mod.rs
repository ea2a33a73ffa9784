//! The command line, one file per command (cargo's `commands/` shape): each parses its own
//! arguments and calls the library, which does the work. Clap types live only here.
//!
//! The options every command shares (the state, the connection, HubSpot's URL and token, the
//! component, the log format) are declared once, in [`GlobalArgs`], and are accepted before or
//! after the command's name. The connection settings are declared once, in
//! [`settings::Settings`].

#[macro_use]
pub mod output;

pub mod backfill;
pub mod connect;
pub mod connections;
pub mod demo;
pub mod deploy;
pub mod emulator;
pub mod events;
pub mod link;
pub mod log;
pub mod migrate;
pub mod plan;
pub mod serve;
pub mod settings;
pub mod status;
pub mod sync;
pub mod unlink;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};

use lago_hubspot::config::ConnectionSettings;
use lago_hubspot::connections::{SecretKey, Vault};
use lago_hubspot::hubspot_http::{DEFAULT_HUBSPOT_URL, HubspotClient, Secret};
use lago_hubspot::runtime::{GuestLimits, Plugin};
use lago_hubspot::store::{DatabaseUrl, Store};
use lago_hubspot::sync::Syncer;

use settings::Settings;

/// The state database's name when neither `--state` nor `LAGO_HUBSPOT_STATE` gives one.
pub const DEFAULT_STATE: &str = "lago-hubspot.db";
/// The component's file name, as `make component` builds it and `make install` installs it.
pub const COMPONENT_FILE: &str = "lago_hubspot_guest.wasm";

#[derive(Parser)]
#[command(
    name = "lago-hubspot",
    version,
    about,
    long_about = None,
    after_help = "With no command, runs `demo`. Install: `make install` in the checkout \
                  (the binary and its component)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options every command accepts, before or after its name.
#[derive(Args)]
#[command(next_help_heading = "Global options (before or after the command)")]
pub struct GlobalArgs {
    /// The state database: connections, HubSpot ids, the webhook queue, the sync log.
    /// `connect`, `deploy`, `sync`, `backfill` and `serve` create it; the other commands need
    /// one that exists [default: lago-hubspot.db]
    #[arg(long, global = true, env = "LAGO_HUBSPOT_STATE", value_name = "FILE")]
    pub state: Option<PathBuf>,

    /// Where the state lives, as a URL: postgres://USER[:PASSWORD]@HOST[:PORT]/DB for a
    /// PostgreSQL database that several `serve` instances share (the database must exist; its
    /// tables are created), or sqlite://FILE (or a plain path) for the embedded file. Overrides
    /// --state [default: the --state file]
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub database: Option<String>,

    /// The connection, by its code (Lago's `integration_code`) [default: the only one stored,
    /// else the default one (`connections list`); `hubspot` when none is]
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_CONNECTION",
        value_name = "CODE",
        aliases = ["connection-code", "code"]
    )]
    pub connection: Option<String>,

    /// HubSpot's API [default: https://api.hubapi.com]
    #[arg(long, global = true, env = "HUBSPOT_API_URL", value_name = "URL")]
    pub hubspot_url: Option<String>,

    /// A private-app / service-key token, or an OAuth access token. Without one, the access
    /// `connect` recorded for the connection is used
    #[arg(
        long,
        global = true,
        env = "HUBSPOT_ACCESS_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub token: Option<String>,

    /// The OAuth app's client secret: `connect` exchanges codes with it, and every command
    /// refreshes an OAuth connection's tokens with it
    #[arg(
        long,
        global = true,
        env = "HUBSPOT_CLIENT_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub client_secret: Option<String>,

    /// The sync component [default: lago_hubspot_guest.wasm beside this binary, as `make
    /// install` puts it, else the one the checkout builds with `make component`]
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_COMPONENT",
        value_name = "FILE.wasm"
    )]
    pub component: Option<PathBuf>,

    /// Stop a call into the component that computes for longer, in milliseconds (checked every
    /// 5 ms, up to an hour): its event fails with the reason and is retried like a HubSpot outage
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_GUEST_DEADLINE_MS",
        value_name = "MS",
        default_value_t = 500,
        value_parser = clap::value_parser!(u64).range(1..=3_600_000),
    )]
    pub guest_deadline_ms: u64,

    /// The memory a call into the component may hold, in MiB (2 to 4096; the component starts
    /// with about 1.1 MiB): asking for more fails its event for good (kept as dead, with the reason)
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_GUEST_MEMORY_MIB",
        value_name = "MIB",
        default_value_t = 64,
        value_parser = clap::value_parser!(u64).range(2..=4096),
    )]
    pub guest_memory_mib: u64,

    /// Log lines on stderr as text (colours only on a terminal) or as JSON objects; RUST_LOG
    /// picks what is logged (when unset: warnings; `serve`: every event's outcome)
    #[arg(
        long,
        global = true,
        env = "LAGO_HUBSPOT_LOG_FORMAT",
        value_enum,
        value_name = "FORMAT",
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
pub enum Command {
    /// Start an in-process HubSpot emulator, deploy, sync the bundled sample events and print
    /// HubSpot's records (what runs with no command).
    Demo(demo::DemoArgs),
    /// Serve the HubSpot emulator until stopped.
    Emulator(emulator::EmulatorArgs),
    /// Set up the connection: custom properties and the LagoSubscriptions / LagoInvoices objects.
    Deploy(deploy::DeployArgs),
    /// Sync Lago webhook payloads (files, or `-` for JSON lines on stdin), in order.
    Sync(sync::SyncArgs),
    /// Sync what Lago already holds (its REST API, or exported webhooks with --from): customers,
    /// then subscriptions, then invoices. Re-runs send only what is new, changed or failed.
    Backfill(backfill::BackfillArgs),
    /// Serve Lago's webhooks: verify, store durably, acknowledge, then sync each event exactly once.
    Serve(serve::ServeArgs),
    /// Add the HubSpot connection named by --connection CODE (or renew its access): OAuth in a
    /// browser, or --token for a private-app token; then deploy its properties and objects.
    Connect(connect::ConnectArgs),
    /// List, show, update or remove connections.
    Connections(connections::ConnectionsArgs),
    /// Link a Lago customer (its external_id or lago_id) to an existing HubSpot record, as
    /// Lago's "paste a HubSpot ID" does: its next event updates that record.
    Link(link::LinkArgs),
    /// Remove a customer's link made with `link`.
    Unlink(unlink::UnlinkArgs),
    /// Events by state, the oldest pending one, the last errors, and linked customers.
    Status(status::StatusArgs),
    /// List, show, retry or discard stored events.
    Events(events::EventsArgs),
    /// What was sent to HubSpot for one Lago object (its lago_id, a customer's or subscription's
    /// external_id, or an invoice's or credit note's number), and what HubSpot answered.
    Log(log::LogArgs),
    /// Dry run: print the plan for one Lago webhook payload, its operations and the HubSpot requests they become; sends nothing.
    Plan(plan::PlanArgs),
    /// Copy a state into another database (an SQLite file into PostgreSQL): connections with
    /// their sealed tokens, HubSpot ids, links, backfill progress, the sync log and the queue.
    Migrate(migrate::MigrateArgs),
}

/// Where the state's path came from, to say so when it does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateSource {
    Flag,
    Env,
    Default,
}

/// The parsed global options, with what the commands derive from them.
pub struct Global {
    pub args: GlobalArgs,
    pub state_source: StateSource,
    /// `--database` came from `LAGO_HUBSPOT_DATABASE_URL` (a typed `--state` then wins over it
    /// being an error: the environment is the deployment's, the flag the person's).
    pub database_from_env: bool,
    /// `--hubspot-url` was typed (not taken from `HUBSPOT_API_URL`).
    pub hubspot_url_on_command_line: bool,
    /// Where this command's token came from (`--token` or `HUBSPOT_ACCESS_TOKEN`), if given.
    pub token_from: Option<&'static str>,
    /// A warning for each deprecated spelling on the command line, said once logging is set
    /// up ([`Global::warn_about_deprecations`]).
    pub deprecated: Vec<String>,
}

impl Global {
    pub fn state_path(&self) -> PathBuf {
        self.args
            .state
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE))
    }

    /// The database `--database` (or `LAGO_HUBSPOT_DATABASE_URL`) names, else the `--state`
    /// file. Errors on a URL of an unsupported kind, and on `--database` and `--state` both
    /// typed on the command line.
    pub fn database(&self) -> anyhow::Result<DatabaseUrl> {
        match &self.args.database {
            // A typed --state beats the environment's database.
            Some(_) if self.state_source == StateSource::Flag && self.database_from_env => {
                Ok(DatabaseUrl::Sqlite(self.state_path()))
            }
            Some(url) => {
                anyhow::ensure!(
                    self.state_source != StateSource::Flag,
                    "give --database or --state, not both (--state FILE is --database sqlite://FILE)"
                );
                DatabaseUrl::parse(url).map_err(|error| {
                    anyhow::anyhow!("--database (or LAGO_HUBSPOT_DATABASE_URL): {error:#}")
                })
            }
            None => Ok(DatabaseUrl::Sqlite(self.state_path())),
        }
    }

    /// The state for a command that writes: created when missing (a PostgreSQL database gets
    /// its tables; the database itself must exist).
    pub fn create_state(&self) -> anyhow::Result<Store> {
        Store::open_url(&self.database()?)
    }

    /// The state for a command that only reads (or changes what exists): never created.
    pub fn existing_state(&self) -> anyhow::Result<Store> {
        match self.database()? {
            DatabaseUrl::Sqlite(path) => {
                if !path.exists() {
                    anyhow::bail!("{}", self.missing_state(&path));
                }
                // An empty file is no state yet: opening it would make it one.
                if path.metadata().is_ok_and(|m| m.is_file() && m.len() == 0) {
                    anyhow::bail!(
                        "{} is an empty file, not a lago-hubspot state (left as it is). A state \
                         is created by `lago-hubspot connect --connection CODE` (or `deploy`, \
                         `sync`, `backfill`, `serve`, `link`)",
                        path.display()
                    );
                }
                Store::open(&path)
            }
            DatabaseUrl::Postgres(url) => Store::open_postgres_existing(&url),
        }
    }

    /// The state when it exists, `None` when the default one does not (a state named with
    /// `--state`, `--database` or their environment variables must exist).
    pub fn state_if_any(&self) -> anyhow::Result<Option<Store>> {
        if self.args.database.is_none() {
            let path = self.state_path();
            if !path.exists() && self.state_source == StateSource::Default {
                return Ok(None);
            }
        }
        self.existing_state().map(Some)
    }

    fn missing_state(&self, path: &Path) -> String {
        let from = match self.state_source {
            StateSource::Flag => "given with --state",
            _ if self.args.database.is_some() && !self.database_from_env => "given with --database",
            _ if self.args.database.is_some() => "from LAGO_HUBSPOT_DATABASE_URL",
            StateSource::Env => "from LAGO_HUBSPOT_STATE",
            StateSource::Default => "the default; no --state or LAGO_HUBSPOT_STATE given",
        };
        let point = if self.args.database.is_some() && self.state_source != StateSource::Flag {
            "--database (or LAGO_HUBSPOT_DATABASE_URL)"
        } else {
            "--state FILE (or LAGO_HUBSPOT_STATE)"
        };
        format!(
            "no state database at {} ({from}). A state is created by `lago-hubspot connect \
             --connection CODE` (or `deploy`, `sync`, `backfill`, `serve`, `link`); point {point} \
             at the one they wrote",
            path.display()
        )
    }

    /// Says what [`Global::deprecated`] holds (a log event each with `--log-format json`).
    pub fn warn_about_deprecations(&self) {
        for warning in &self.deprecated {
            output::warn(warning);
        }
    }

    pub fn connection(&self) -> Option<&str> {
        self.args.connection.as_deref()
    }

    pub fn hubspot_url(&self) -> &str {
        self.args
            .hubspot_url
            .as_deref()
            .unwrap_or(DEFAULT_HUBSPOT_URL)
    }

    pub fn client_secret(&self) -> Option<Secret> {
        self.args.client_secret.clone().map(Secret::new)
    }

    pub fn plugin(&self) -> anyhow::Result<Arc<Plugin>> {
        let path = component_path(self.args.component.as_deref())?;
        Ok(Arc::new(Plugin::load_limited(&path, self.guest_limits())?))
    }

    /// The bounds on every call into the component (`--guest-deadline-ms`, `--guest-memory-mib`).
    pub fn guest_limits(&self) -> GuestLimits {
        GuestLimits {
            deadline: std::time::Duration::from_millis(self.args.guest_deadline_ms),
            memory_bytes: usize::try_from(self.args.guest_memory_mib << 20).unwrap_or(usize::MAX),
        }
    }
}

/// Parses the command line, warning about deprecated spellings.
pub fn parse() -> (Global, Option<Command>) {
    let args: Vec<OsString> = std::env::args_os().collect();
    let matches = Cli::command().get_matches_from(&args);
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|error| error.exit());
    let state_source = match source(&matches, "state") {
        Some(ValueSource::CommandLine) => StateSource::Flag,
        Some(ValueSource::EnvVariable) => StateSource::Env,
        _ => StateSource::Default,
    };
    let global = Global {
        deprecated: deprecations(&args),
        database_from_env: source(&matches, "database") == Some(ValueSource::EnvVariable),
        hubspot_url_on_command_line: source(&matches, "hubspot_url")
            == Some(ValueSource::CommandLine),
        token_from: match source(&matches, "token") {
            Some(ValueSource::CommandLine) => Some("--token"),
            Some(ValueSource::EnvVariable) => Some("HUBSPOT_ACCESS_TOKEN"),
            _ => None,
        },
        state_source,
        args: cli.global,
    };
    (global, cli.command)
}

/// Where a global option's value came from, at whichever level it was given.
fn source(matches: &ArgMatches, id: &str) -> Option<ValueSource> {
    let mut found = None;
    let mut level = Some(matches);
    while let Some(matches) = level {
        if let Ok(Some(source)) = matches.try_get_raw(id).map(|_| matches.value_source(id)) {
            found = found.max(Some(source));
        }
        level = matches.subcommand().map(|(_, sub)| sub);
    }
    found
}

/// Spellings of the previous release, still accepted for this one.
const DEPRECATED: &[(&str, &str)] = &[
    ("--code", "--connection CODE"),
    ("--connection-code", "--connection CODE"),
    ("--no-sync-subscriptions", "--sync-subscriptions false"),
    ("--no-sync-invoices", "--sync-invoices false"),
    ("--linked-customers-only", "--sync-unlinked-customers false"),
    ("--lago-url", "--lago-api-url URL"),
];

/// A warning for each deprecated spelling on the command line.
pub fn deprecations(args: &[OsString]) -> Vec<String> {
    args.iter()
        .skip(1)
        .map(|arg| arg.to_string_lossy())
        .take_while(|arg| arg != "--")
        .filter_map(|arg| {
            let name = arg.split('=').next().unwrap_or_default().to_owned();
            DEPRECATED
                .iter()
                .find(|(old, _)| *old == name)
                .map(|(old, new)| deprecated(old, new))
        })
        .collect()
}

/// The warning for a deprecated spelling (a flag, a `--config` key).
pub fn deprecated(old: &str, new: &str) -> String {
    format!("`{old}` is deprecated and goes away in the next release: use `{new}`")
}

/// Prints `warning: {message}` on stderr, once per process whatever reads it again (a
/// `--config` file is read by every connection a command resolves).
pub fn warn_once(message: &str) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let mut said = SAID.lock().unwrap_or_else(|p| p.into_inner());
    if !said.iter().any(|s| s == message) {
        output::warn(message);
        said.push(message.to_owned());
    }
}

/// Runs the command (`demo` when none is given).
pub async fn run(global: Global, command: Option<Command>) -> anyhow::Result<ExitCode> {
    match command.unwrap_or(Command::Demo(demo::DemoArgs {})) {
        Command::Demo(args) => demo::run(&global, args).await,
        Command::Emulator(args) => emulator::run(&global, args).await,
        Command::Deploy(args) => deploy::run(&global, args).await,
        Command::Sync(args) => sync::run(&global, args).await,
        Command::Backfill(args) => backfill::run(&global, args).await,
        Command::Serve(args) => serve::run(&global, args).await,
        Command::Connect(args) => connect::run(&global, args).await,
        Command::Connections(args) => connections::run(&global, args),
        Command::Link(args) => link::run(&global, args),
        Command::Unlink(args) => unlink::run(&global, args),
        Command::Status(args) => status::run(&global, args),
        Command::Events(args) => events::run(&global, args),
        Command::Log(args) => log::run(&global, args),
        Command::Plan(args) => plan::run(&global, args).await,
        Command::Migrate(args) => migrate::run(args),
    }
}

/// Success when `ok`, else failure.
pub fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A syncer for `deploy`, `sync` and `backfill`: the component, the state (created when
/// missing), the connection's settings and HubSpot access.
pub fn syncer(global: &Global, settings: &Settings) -> anyhow::Result<Syncer> {
    // The component first: without it, nothing is created.
    let plugin = global.plugin()?;
    // The settings are checked before the state is created (a flag's or environment variable's
    // value was checked as it was parsed; a `--config` file's is now).
    settings.file()?;
    let store = Arc::new(Mutex::new(global.create_state()?));
    let resolved = settings.resolve(global.connection(), &lock(&store))?;
    // One per-portal budget in every mode: `sync` and `backfill` pace themselves like `serve`
    // (and on a shared database, together with every `serve` instance on the portal).
    let portal = lock(&store)
        .access(&resolved.code)?
        .and_then(|access| access.portal_id)
        .map_or_else(
            || format!("connection {}", resolved.code),
            |portal| format!("portal {portal}"),
        );
    let budget = Arc::new(lago_hubspot::shared_budget::budget_for(
        lago_hubspot::ratelimit::Rate::OAUTH_APP,
        store.clone(),
        &portal,
    ));
    let client = client_for(global, &store, &resolved.code)?.with_budget(budget);
    Syncer::shared(plugin, client, store, resolved)
}

pub fn lock(store: &Mutex<Store>) -> std::sync::MutexGuard<'_, Store> {
    store.lock().unwrap_or_else(|p| p.into_inner())
}

/// `--token` when given, else the access `connect` recorded for the connection.
pub fn client_for(
    global: &Global,
    store: &Arc<Mutex<Store>>,
    code: &str,
) -> anyhow::Result<HubspotClient> {
    if let Some(token) = &global.args.token {
        return HubspotClient::new(global.hubspot_url(), Secret::new(token.clone()));
    }
    let Some(access) = lock(store).access(code)? else {
        anyhow::bail!(
            "no HubSpot access for connection {code}: give --token (or HUBSPOT_ACCESS_TOKEN), or record the connection with `lago-hubspot connect --connection {code}`"
        );
    };
    let vault = Vault::new(store.clone(), SecretKey::from_env()?);
    let tokens = vault.token_source(code, global.client_secret().as_ref())?;
    HubspotClient::with_tokens(&access.hubspot_url, tokens)
}

/// Says so when the links written to HubSpot would point at the built-in placeholders.
pub fn warn_about_placeholders(settings: &ConnectionSettings) {
    let placeholders = settings.placeholder_link_settings();
    if placeholders.is_empty() {
        return;
    }
    let flags: Vec<String> = placeholders
        .iter()
        .map(|name| format!("--{}", name.replace('_', "-")))
        .collect();
    output::warn(&format!(
        "connection {}: {} not set, so the links written to HubSpot point at \
         placeholders, like {}. Set {} (or LAGO_APP_URL / LAGO_ORGANIZATION_SLUG, or \
         `lago-hubspot connections update {} {}`); records are updated on their next event.",
        settings.code,
        flags.join(" and "),
        settings.customer_link_example(),
        if flags.len() == 1 { "it" } else { "them" },
        settings.code,
        flags
            .iter()
            .map(|flag| format!("{flag} …"))
            .collect::<Vec<_>>()
            .join(" "),
    ));
}

/// The component: the one named (`--component`, `LAGO_HUBSPOT_COMPONENT`), else
/// `lago_hubspot_guest.wasm` beside this binary (`make install` puts it there), else, for a
/// binary in a checkout's `target/<profile>/`, the one that checkout builds (`make component`).
pub fn component_path(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    const HOW: &str = "Install it with `make install` in the lago-hubspot checkout (the binary \
                       and its component), build it there with `make component`, or give its \
                       path: --component FILE.wasm (or LAGO_HUBSPOT_COMPONENT)";
    if let Some(path) = explicit {
        anyhow::ensure!(
            path.is_file(),
            "no component at {} (given with --component or LAGO_HUBSPOT_COMPONENT). {HOW}",
            path.display()
        );
        return Ok(path.to_owned());
    }
    let candidates = component_candidates();
    if let Some(found) = candidates.iter().find(|path| path.is_file()) {
        return Ok(found.clone());
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "the sync component {COMPONENT_FILE} is not installed (looked for {}). {HOW}",
        looked.join(", ")
    )
}

fn component_candidates() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    let built = Path::new("wasm32-wasip2/release").join(COMPONENT_FILE);
    if let Ok(exe) = std::env::current_exe() {
        candidates.push(exe.with_file_name(COMPONENT_FILE));
        // target/<profile>/lago-hubspot → target/wasm32-wasip2/release/lago_hubspot_guest.wasm
        if let Some(target) = exe.parent().and_then(Path::parent) {
            candidates.push(target.join(&built));
        }
    }
    candidates
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn deprecated_spellings_are_named_with_their_replacement() {
        let args: Vec<OsString> = [
            "lago-hubspot",
            "connect",
            "--code=hs",
            "--no-sync-invoices",
            "--name",
            "x",
            "--",
            "--lago-url",
        ]
        .map(OsString::from)
        .to_vec();
        let warnings = deprecations(&args);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings[0].contains("`--code`") && warnings[0].contains("--connection CODE"));
        assert!(warnings[1].contains("--sync-invoices false"));
    }

    #[test]
    fn guest_bounds_come_from_flags_or_their_defaults_and_zero_is_refused() {
        let parse = |args: &[&str]| {
            let matches = Cli::command().try_get_matches_from(args)?;
            Cli::from_arg_matches(&matches)
        };
        let cli = parse(&["lago-hubspot", "status"]).unwrap();
        assert_eq!(
            (cli.global.guest_deadline_ms, cli.global.guest_memory_mib),
            (500, 64)
        );
        let cli = parse(&[
            "lago-hubspot",
            "sync",
            "x.json",
            "--guest-deadline-ms",
            "250",
            "--guest-memory-mib=16",
        ])
        .unwrap();
        let global = Global {
            args: cli.global,
            state_source: StateSource::Default,
            hubspot_url_on_command_line: false,
            database_from_env: false,
            token_from: None,
            deprecated: Vec::new(),
        };
        assert_eq!(
            global.guest_limits(),
            GuestLimits {
                deadline: std::time::Duration::from_millis(250),
                memory_bytes: 16 << 20,
            }
        );
        let error = parse(&["lago-hubspot", "status", "--guest-deadline-ms", "0"])
            .err()
            .expect("0 ms is refused");
        assert!(error.to_string().contains("--guest-deadline-ms"), "{error}");
        assert!(parse(&["lago-hubspot", "status", "--guest-memory-mib", "5000"]).is_err());
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        for args in [
            &["lago-hubspot", "--state", "x.db", "events", "show", "8"][..],
            &["lago-hubspot", "events", "--state", "x.db", "show", "8"],
            &["lago-hubspot", "events", "show", "8", "--state", "x.db"],
        ] {
            let matches = Cli::command().try_get_matches_from(args).unwrap();
            assert_eq!(source(&matches, "state"), Some(ValueSource::CommandLine));
            let cli = Cli::from_arg_matches(&matches).unwrap();
            assert_eq!(cli.global.state.as_deref(), Some(Path::new("x.db")));
        }
    }
}
