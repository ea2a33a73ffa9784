//! `lago-hubspot unlink`: removes a customer's link made with `link`.

use std::process::ExitCode;

use clap::Args;

use lago_hubspot::links::link_connection;

use super::{Global, exit};

/// The connection is the global --connection (default: the only one, or the default one).
#[derive(Args)]
pub struct UnlinkArgs {
    /// The Lago customer, as it was linked: its external_id or its lago_id.
    pub customer: String,
}

pub fn run(global: &Global, args: UnlinkArgs) -> anyhow::Result<ExitCode> {
    let store = global.existing_state()?;
    let connection = link_connection(&store, global.connection())?;
    let customer = args.customer.trim();
    let removed = store.remove_link(&connection, customer)?;
    if removed {
        outln!("unlinked Lago customer {customer} on connection {connection}");
    } else {
        outln!("Lago customer {customer} has no link on connection {connection}; nothing removed");
    }
    Ok(exit(removed))
}
