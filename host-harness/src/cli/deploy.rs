//! `lago-hubspot deploy`: the connection's custom properties and objects.

use std::process::ExitCode;

use clap::Args;

use super::settings::Settings;
use super::{Global, syncer, warn_about_placeholders};

#[derive(Args)]
pub struct DeployArgs {
    #[command(flatten)]
    pub settings: Settings,
}

pub async fn run(global: &Global, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let syncer = syncer(global, &args.settings)?;
    warn_about_placeholders(syncer.settings());
    let report = syncer.deploy().await?;
    outln!("{}", report.summary);
    outln!(
        "LagoSubscriptions: {}\nLagoInvoices: {}",
        report
            .subscriptions_object_type_id
            .as_deref()
            .unwrap_or("-"),
        report.invoices_object_type_id.as_deref().unwrap_or("-")
    );
    if let Some(credit_notes) = &report.credit_notes_object_type_id {
        outln!("LagoCreditNotes: {credit_notes}");
    }
    Ok(ExitCode::SUCCESS)
}
