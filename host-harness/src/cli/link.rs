//! `lago-hubspot link`: Lago's "paste a HubSpot ID", for self-hosted Lago, which cannot create
//! HubSpot `integration_customers` entries. The work is in [`lago_hubspot::links`].

use std::process::ExitCode;

use clap::Args;

use lago_hubspot::links::{CustomerLink, LinkedObject, link_connection};
use lago_hubspot::report::table;

use super::Global;

/// The connection is the global --connection (default: the only one, or the default one).
#[derive(Args)]
pub struct LinkArgs {
    /// The Lago customer: its external_id or its lago_id.
    pub customer: String,
    /// The HubSpot record id: digits, the number at the end of the record's URL.
    pub record_id: String,
    /// The record is a company (the default).
    #[arg(long, conflicts_with = "contact")]
    pub company: bool,
    /// The record is a contact.
    #[arg(long)]
    pub contact: bool,
}

/// `link`: records the link; the customer's next event updates the record.
pub fn run(global: &Global, args: LinkArgs) -> anyhow::Result<ExitCode> {
    // A link may come before the first sync: it creates the state like `sync` does.
    let store = global.create_state()?;
    let connection = link_connection(&store, global.connection())?;
    let object = if args.contact {
        LinkedObject::Contacts
    } else {
        LinkedObject::Companies
    };
    let link = store.put_link(&connection, &args.customer, &args.record_id, object)?;
    outln!(
        "linked Lago customer {} to HubSpot {} {} on connection {}: its next event updates that record",
        link.customer_key,
        link.object.noun(),
        link.hubspot_id,
        link.connection
    );
    Ok(ExitCode::SUCCESS)
}

/// Links as a short table, with their connection when `with_connection`; at most `limit` rows.
pub fn print_links(links: &[CustomerLink], with_connection: bool, limit: usize) {
    let rows: Vec<Vec<String>> = links
        .iter()
        .take(limit)
        .map(|link| {
            let mut row = vec![
                link.customer_key.clone(),
                link.hubspot_id.clone(),
                link.object.noun().to_owned(),
            ];
            if with_connection {
                row.insert(0, link.connection.clone());
            }
            row
        })
        .collect();
    let mut headers = vec!["Lago customer", "HubSpot record", "object"];
    if with_connection {
        headers.insert(0, "connection");
    }
    out!("{}", table(&headers, &rows));
    if links.len() > limit {
        outln!(
            "… and {} more (lago-hubspot connections show CODE)",
            links.len() - limit
        );
    }
}
