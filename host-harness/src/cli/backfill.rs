//! `lago-hubspot backfill`: what Lago already holds, from its REST API or exported webhooks.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;

use lago_hubspot::backfill::{
    ALL_SUBSCRIPTION_STATUSES, LagoOptions, ObjectKind, ProgressMode, RunOptions, Source,
};
use lago_hubspot::hubspot_http::Secret;
use lago_hubspot::lago_api::DEFAULT_PER_PAGE;

use super::settings::Settings;
use super::{Global, exit, syncer};

#[derive(Args)]
pub struct BackfillArgs {
    #[command(flatten)]
    pub settings: Settings,

    /// Lago's API, e.g. https://api.getlago.com or a self-hosted http://localhost:3000.
    #[arg(
        long,
        env = "LAGO_API_URL",
        value_name = "URL",
        alias = "lago-url",
        required_unless_present = "from"
    )]
    pub lago_api_url: Option<String>,

    /// A Lago API key of the organization (Developers → API keys).
    #[arg(
        long,
        env = "LAGO_API_KEY",
        hide_env_values = true,
        value_name = "KEY",
        required_unless_present = "from"
    )]
    pub lago_api_key: Option<String>,

    /// Read exported Lago webhook payloads instead of the API: one per line, or pretty-printed
    /// one after another.
    #[arg(long, value_name = "FILE.jsonl")]
    pub from: Option<PathBuf>,

    /// Only these kinds (default: all three, in the order customers, subscriptions, invoices).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub only: Vec<ObjectKind>,

    /// Subscription statuses to read (Lago's `status[]`).
    #[arg(
        long = "subscription-status",
        value_delimiter = ',',
        default_values_t = ALL_SUBSCRIPTION_STATUSES.map(String::from)
    )]
    pub subscription_statuses: Vec<String>,

    /// Only invoices with this status (Lago's `status`, e.g. finalized); default: all.
    #[arg(long)]
    pub invoice_status: Option<String>,

    /// Only invoices issued on or after this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub invoices_issued_from: Option<String>,

    /// Only invoices issued on or before this date (YYYY-MM-DD).
    #[arg(long, value_name = "DATE")]
    pub invoices_issued_to: Option<String>,

    /// Records per Lago API page.
    #[arg(long, default_value_t = DEFAULT_PER_PAGE)]
    pub per_page: u32,

    /// Send every record again, even those a previous backfill already synced unchanged.
    #[arg(long)]
    pub force: bool,

    /// One HubSpot request per plan step instead of coalescing records into batch requests
    /// (for comparison and debugging).
    #[arg(long)]
    pub no_batch: bool,

    /// A bar on a terminal, plain lines otherwise (auto), or none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

impl BackfillArgs {
    fn source(&self) -> anyhow::Result<Source> {
        if let Some(path) = &self.from {
            return Ok(Source::File(path.clone()));
        }
        let url = self
            .lago_api_url
            .clone()
            .context("--lago-api-url (or LAGO_API_URL) is needed unless --from is given")?;
        let key = self
            .lago_api_key
            .clone()
            .context("--lago-api-key (or LAGO_API_KEY) is needed unless --from is given")?;
        let options = LagoOptions {
            kinds: self.only.clone(),
            per_page: self.per_page,
            subscription_statuses: self.subscription_statuses.clone(),
            invoice_status: self.invoice_status.clone(),
            invoices_issued_from: self.invoices_issued_from.clone(),
            invoices_issued_to: self.invoices_issued_to.clone(),
        };
        options.check()?;
        Ok(Source::Lago {
            url,
            api_key: Secret::new(key),
            options,
        })
    }
}

pub async fn run(global: &Global, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let source = args.source()?;
    let syncer = syncer(global, &args.settings)?;
    let options = RunOptions {
        force: args.force,
        progress: args.progress,
        batch: !args.no_batch,
    };
    let summary = lago_hubspot::backfill::run(&syncer, &source, &options).await?;
    out!("{summary}");
    Ok(exit(summary.is_success()))
}
