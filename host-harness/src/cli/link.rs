//! `link` and `unlink`: Lago's "paste a HubSpot ID", for self-hosted Lago, which cannot create
//! HubSpot `integration_customers` entries. The work is in [`lago_hubspot::links`].

use std::path::PathBuf;

use clap::Args;

use lago_hubspot::links::{CustomerLink, LinkedObject, link_connection};
use lago_hubspot::report::table;
use lago_hubspot::store::Store;

#[derive(Args)]
pub struct LinkArgs {
    #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
    pub state: PathBuf,
    /// The connection the link is for (default: the only one, or the default one).
    #[arg(long, visible_alias = "connection-code")]
    pub connection: Option<String>,
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

#[derive(Args)]
pub struct UnlinkArgs {
    #[arg(long, env = "LAGO_HUBSPOT_STATE", default_value = "lago-hubspot.db")]
    pub state: PathBuf,
    /// The connection the link is on (default: the only one, or the default one).
    #[arg(long, visible_alias = "connection-code")]
    pub connection: Option<String>,
    /// The Lago customer, as it was linked: its external_id or its lago_id.
    pub customer: String,
}

/// `link`: records the link; the customer's next event updates the record.
pub fn link(args: LinkArgs) -> anyhow::Result<()> {
    let store = Store::open(&args.state)?;
    let connection = link_connection(&store, args.connection.as_deref())?;
    let object = if args.contact {
        LinkedObject::Contacts
    } else {
        LinkedObject::Companies
    };
    let link = store.put_link(&connection, &args.customer, &args.record_id, object)?;
    println!(
        "linked Lago customer {} to HubSpot {} {} on connection {}: its next event updates that record",
        link.customer_key,
        link.object.noun(),
        link.hubspot_id,
        link.connection
    );
    Ok(())
}

/// `unlink`: whether a link was removed.
pub fn unlink(args: UnlinkArgs) -> anyhow::Result<bool> {
    let store = Store::open(&args.state)?;
    let connection = link_connection(&store, args.connection.as_deref())?;
    let customer = args.customer.trim();
    let removed = store.remove_link(&connection, customer)?;
    if removed {
        println!("unlinked Lago customer {customer} on connection {connection}");
    } else {
        println!(
            "Lago customer {customer} has no link on connection {connection}; nothing removed"
        );
    }
    Ok(removed)
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
    print!("{}", table(&headers, &rows));
    if links.len() > limit {
        println!(
            "… and {} more (lago-hubspot connections show CODE)",
            links.len() - limit
        );
    }
}
