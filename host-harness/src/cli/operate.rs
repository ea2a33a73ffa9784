//! `status`, `events …` and `log`: what an operator needs to answer "why is this not in HubSpot?".

use clap::Subcommand;

use lago_hubspot::clock::now_ms;
use lago_hubspot::queue::EventState;
use lago_hubspot::report::table;
use lago_hubspot::store::Store;

#[derive(Subcommand)]
pub enum EventsCommand {
    /// The most recent events, optionally of one state.
    List {
        /// pending, running, synced, skipped, rejected, dead, or failed (pending after a failed attempt).
        #[arg(long, value_parser = parse_filter)]
        state: Option<Filter>,
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One event: its payload, last error and sync log.
    Show { id: i64 },
    /// Run a dead, rejected or skipped event again from the start (or every dead one).
    Retry {
        #[arg(required_unless_present = "all_dead")]
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
    /// Give up on an event without running it; it stays visible as dead.
    Discard { id: i64 },
}

#[derive(Debug, Clone, Copy)]
pub enum Filter {
    State(EventState),
    /// Waiting for another attempt after a failure.
    Failed,
}

fn parse_filter(text: &str) -> Result<Filter, String> {
    if text == "failed" {
        return Ok(Filter::Failed);
    }
    EventState::parse(text).map(Filter::State).ok_or_else(|| {
        let names: Vec<&str> = EventState::ALL.iter().map(|s| s.as_str()).collect();
        format!(
            "unknown state {text:?}; one of {}, failed",
            names.join(", ")
        )
    })
}

fn age(ms: i64) -> String {
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

pub fn status(store: &Store) -> anyhow::Result<()> {
    let stats = store.queue_stats()?;
    let rows: Vec<Vec<String>> = EventState::ALL
        .iter()
        .map(|s| vec![s.as_str().to_owned(), stats.count(*s).to_string()])
        .collect();
    print!("{}", table(&["state", "events"], &rows));
    match stats.oldest_pending_ms {
        Some(at) => println!("oldest pending: {} ago", age(at)),
        None => println!("nothing pending"),
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
        println!("\nlast errors");
        print!(
            "{}",
            table(&["id", "connection", "state", "event", "error"], &failing)
        );
    }
    let links = store.links(None)?;
    if !links.is_empty() {
        println!("\nlinked customers (lago-hubspot link)");
        super::link::print_links(&links, true, 20);
    }
    Ok(())
}

pub fn events(store: &Store, command: EventsCommand) -> anyhow::Result<bool> {
    match command {
        EventsCommand::List { state, limit } => {
            let events = match state {
                None => store.events(None, limit)?,
                Some(Filter::State(state)) => store.events(Some(state), limit)?,
                Some(Filter::Failed) => store.failing_events(limit)?,
            };
            let rows: Vec<Vec<String>> = events
                .into_iter()
                .map(|e| {
                    vec![
                        e.id.to_string(),
                        age(e.received_at_ms),
                        e.state.as_str().into(),
                        e.attempts.to_string(),
                        e.webhook_type,
                        e.lago_id,
                        e.last_error.unwrap_or_default(),
                    ]
                })
                .collect();
            print!(
                "{}",
                table(
                    &[
                        "id",
                        "age",
                        "state",
                        "tries",
                        "event",
                        "lago id",
                        "last error"
                    ],
                    &rows
                )
            );
            Ok(true)
        }
        EventsCommand::Show { id } => {
            let Some(event) = store.event(id)? else {
                eprintln!("no event {id}");
                return Ok(false);
            };
            println!("{}", serde_json::to_string_pretty(&event)?);
            println!("payload: {}", event.body);
            for entry in store.sync_log(&event.connection, &event.lago_id)? {
                println!(
                    "{}  {:<8} {}  {}",
                    entry.at, entry.outcome, entry.webhook_type, entry.detail
                );
            }
            Ok(true)
        }
        EventsCommand::Retry { id, all_dead } => {
            if all_dead {
                println!("{} dead event(s) queued again", store.retry_all_dead()?);
                return Ok(true);
            }
            let id = id.expect("clap requires an id without --all-dead");
            let queued = store.retry_event(id)?;
            println!(
                "{}",
                if queued {
                    format!("event {id} queued again")
                } else {
                    format!("event {id} cannot be retried (unknown, or pending/running)")
                }
            );
            Ok(queued)
        }
        EventsCommand::Discard { id } => {
            let discarded = store.discard_event(id)?;
            println!(
                "{}",
                if discarded {
                    format!("event {id} discarded")
                } else {
                    format!("event {id} cannot be discarded")
                }
            );
            Ok(discarded)
        }
    }
}

/// The sync log of one Lago object, oldest first.
pub fn log(store: &Store, connection: &str, lago_id: &str) -> anyhow::Result<()> {
    let entries = store.sync_log(connection, lago_id)?;
    if entries.is_empty() {
        println!("nothing was synced for {lago_id} on connection {connection}");
    }
    for entry in entries {
        println!(
            "{}  {:<8} {}  {}",
            entry.at, entry.outcome, entry.webhook_type, entry.detail
        );
        let steps: serde_json::Value = serde_json::from_str(&entry.steps).unwrap_or_default();
        for step in steps.as_array().into_iter().flatten() {
            println!(
                "    {} {} → {} ({} attempt(s))",
                step["method"].as_str().unwrap_or(""),
                step["path"].as_str().unwrap_or(""),
                step["status"],
                step["attempts"]
            );
        }
    }
    Ok(())
}
