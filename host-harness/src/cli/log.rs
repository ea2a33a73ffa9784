//! `lago-hubspot log`: what was sent to HubSpot for one Lago object, and HubSpot's answers.

use std::process::ExitCode;

use clap::Args;

use lago_hubspot::store::SyncLogEntry;

use super::Global;

/// The connection is the global --connection (default: every connection).
#[derive(Args)]
pub struct LogArgs {
    /// The object: its lago_id, a customer's or subscription's external_id, or an invoice's or
    /// credit note's number, whether `sync`, `backfill` or `serve` synced it.
    #[arg(value_name = "ID")]
    pub id: String,
}

pub fn run(global: &Global, args: LogArgs) -> anyhow::Result<ExitCode> {
    let store = global.existing_state()?;
    let key = args.id.trim();
    let objects = store.find_objects(key, global.connection())?;
    let on = global
        .connection()
        .map_or_else(String::new, |code| format!(" on connection {code}"));
    if objects.is_empty() {
        outln!(
            "nothing was synced for {key}{on} (looked for it as a lago_id, a customer's or \
             subscription's external_id, and an invoice's or credit note's number)"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let several = objects.len() > 1;
    for (object, entries) in store.sync_logs(&objects)? {
        if several || object.matched != "lago_id" {
            outln!(
                "{} {} on connection {} ({} {key})",
                if object.matched.starts_with("customer") {
                    "customer"
                } else if object.matched.starts_with("subscription") {
                    "subscription"
                } else if object.matched.starts_with("invoice") {
                    "invoice"
                } else if object.matched.starts_with("credit") {
                    "credit note"
                } else {
                    "object"
                },
                object.lago_id,
                object.connection,
                object.matched
            );
        }
        if entries.is_empty() {
            outln!(
                "nothing was synced for {} on connection {} yet",
                object.lago_id,
                object.connection
            );
        }
        for entry in entries {
            print_entry(&entry);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_entry(entry: &SyncLogEntry) {
    outln!(
        "{}  {:<8} {}  {}",
        entry.at,
        entry.outcome,
        entry.webhook_type,
        entry.detail
    );
    let steps: serde_json::Value = serde_json::from_str(&entry.steps).unwrap_or_default();
    for step in steps.as_array().into_iter().flatten() {
        outln!(
            "    {} {} → {} ({} attempt(s))",
            step["method"].as_str().unwrap_or(""),
            step["path"].as_str().unwrap_or(""),
            step["status"],
            step["attempts"]
        );
    }
}
