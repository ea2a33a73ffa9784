//! `lago-hubspot emulator`: the in-memory HubSpot of the tests, served until stopped.

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[cfg(feature = "emulators")]
#[derive(Args)]
pub struct EmulatorArgs {
    #[arg(long, default_value = "127.0.0.1:8090")]
    pub listen: std::net::SocketAddr,
    /// More bearer tokens the emulator accepts, besides `test-token` and the global --token
    /// (HUBSPOT_ACCESS_TOKEN).
    #[arg(long = "accept-token", value_name = "TOKEN")]
    pub tokens: Vec<String>,
    /// The emulated portal (hub) id.
    #[arg(long, default_value_t = 12_345_678)]
    pub portal_id: u64,
    /// The OAuth app the emulator knows (authorize at /oauth/authorize, tokens at
    /// /oauth/v1/token).
    #[arg(long, default_value = "emulator-client-id")]
    pub oauth_client_id: String,
    #[arg(long, default_value = "emulator-client-secret")]
    pub oauth_client_secret: String,
    /// Lifetime of the access tokens it issues (HubSpot: 1800).
    #[arg(long, default_value_t = 1800)]
    pub oauth_token_lifetime_secs: u64,
    /// Misbehave like real HubSpot: rate limits, errors, latency, drops, 207s.
    #[command(flatten)]
    pub faults: lago_hubspot_emulators::hubspot::FaultArgs,
    /// Start with a lived-in portal: `--seed-records FILE.json` (format in its help).
    #[command(flatten)]
    pub seed: lago_hubspot_emulators::hubspot::SeedArgs,
}

/// Not in this build: it was built without the `emulators` feature.
#[cfg(not(feature = "emulators"))]
#[derive(Args)]
pub struct EmulatorArgs {
    #[arg(hide = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

#[cfg(feature = "emulators")]
pub async fn run(global: &Global, args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context as _;
    use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, OAuthConfig};

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    errln!(
        "HubSpot emulator listening on http://{}",
        listener.local_addr()?
    );
    let mut tokens = vec!["test-token".to_owned()];
    tokens.extend(global.args.token.clone());
    tokens.extend(args.tokens);
    let emulator = Emulator::new(EmulatorConfig {
        tokens,
        portal_id: args.portal_id,
        faults: args.faults.to_faults()?,
        oauth: OAuthConfig {
            client_id: args.oauth_client_id,
            client_secret: args.oauth_client_secret,
            access_token_lifetime: std::time::Duration::from_secs(args.oauth_token_lifetime_secs),
            ..OAuthConfig::default()
        },
    });
    if let Some(seeded) = args.seed.apply(&emulator)? {
        errln!(
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

#[cfg(not(feature = "emulators"))]
pub async fn run(_global: &Global, _args: EmulatorArgs) -> anyhow::Result<ExitCode> {
    Err(not_in_this_build("emulator"))
}

/// `demo` and `emulator` need the HubSpot emulator, which a `--no-default-features` build
/// leaves out.
#[cfg(not(feature = "emulators"))]
pub fn not_in_this_build(command: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "`{command}` is not in this build: lago-hubspot was built without the `emulators` feature \
         (rebuild with default features); see `lago-hubspot --help` for the commands it has"
    )
}
