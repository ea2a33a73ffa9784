//! `lago-hubspot status`: events by state, the oldest pending one, the last errors, and the
//! customers linked by hand.

use std::process::ExitCode;

use clap::Args;

use lago_hubspot::queue::EventState;
use lago_hubspot::report::{cut, fitted, output_width, table, whole, wrapped};

use super::Global;
use super::events::age;

#[derive(Args)]
pub struct StatusArgs {}

pub fn run(global: &Global, _args: StatusArgs) -> anyhow::Result<ExitCode> {
    let store = global.existing_state()?;
    let stats = store.queue_stats()?;
    let rows: Vec<Vec<String>> = EventState::ALL
        .iter()
        .map(|s| vec![s.as_str().to_owned(), stats.count(*s).to_string()])
        .collect();
    out!("{}", table(&["state", "events"], &rows));
    let running = stats.count(EventState::Running);
    match stats.oldest_pending_ms {
        Some(at) if stats.count(EventState::Pending) > 0 => {
            outln!("oldest pending: {} ago", age(at));
        }
        // Running events are not waiting (after a crash, `serve` resumes them at its start).
        _ if running > 0 => outln!("nothing pending ({running} running)"),
        _ => outln!("nothing pending"),
    }
    for (portal, until) in store.spent_days(lago_hubspot::clock::now_ms())? {
        outln!(
            "HubSpot's daily limit of {portal} is spent until {}: its events wait",
            lago_hubspot::clock::rfc3339(until)
        );
    }
    let failing: Vec<Vec<String>> = store
        .events(Some(EventState::Dead), 10)?
        .into_iter()
        .chain(
            store
                .events(Some(EventState::Pending), 200)?
                .into_iter()
                .filter(|e| e.last_error.is_some())
                .take(10),
        )
        .map(|e| {
            vec![
                e.id.to_string(),
                e.connection,
                e.state.as_str().into(),
                e.webhook_type,
                e.last_error.unwrap_or_default(),
            ]
        })
        .collect();
    if !failing.is_empty() {
        outln!("\nlast errors");
        let columns = [
            whole("id"),
            cut("connection", 1),
            whole("state"),
            cut("event", 3),
            wrapped("error"),
        ];
        out!("{}", fitted(&columns, &failing, output_width()));
    }
    let links = store.links(None)?;
    if !links.is_empty() {
        outln!("\nlinked customers (lago-hubspot link)");
        super::link::print_links(&links, true, 20);
    }
    Ok(ExitCode::SUCCESS)
}
