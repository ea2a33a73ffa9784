//! `lago-hubspot demo` (and a run with no command): the whole path against an in-process
//! HubSpot emulator, with the bundled sample events.

use std::process::ExitCode;

use clap::Args;

use super::Global;

#[derive(Args)]
pub struct DemoArgs {}

#[cfg(feature = "emulators")]
pub async fn run(global: &Global, _args: DemoArgs) -> anyhow::Result<ExitCode> {
    out!("{}", lago_hubspot::demo::run(global.plugin()?).await?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "emulators"))]
pub async fn run(_global: &Global, _args: DemoArgs) -> anyhow::Result<ExitCode> {
    Err(super::emulator::not_in_this_build("demo"))
}
