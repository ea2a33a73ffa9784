//! `lago-hubspot events list | show | retry | discard`: the stored webhooks of `serve`.

use std::process::ExitCode;

use clap::{Args, Subcommand};

use lago_hubspot::clock::now_ms;
use lago_hubspot::queue::{EventState, StoredEvent};
use lago_hubspot::report::{cut, fitted, output_width, whole, wrapped};
use lago_hubspot_guest::webhooks::{Envelope, Route};

use super::{DEFAULT_STATE, Global, StateSource, exit};

#[derive(Args)]
pub struct EventsArgs {
    #[command(subcommand)]
    pub command: EventsCommand,
}

#[derive(Subcommand)]
pub enum EventsCommand {
    /// The most recent events, optionally of one status.
    List {
        /// Only events in this state: pending, running, synced, skipped, rejected, dead, or
        /// failed (pending after a failed attempt).
        #[arg(long, value_name = "STATUS", value_parser = parse_filter)]
        status: Option<Filter>,
        /// How many, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One event: its payload, last error and sync log.
    Show { id: i64 },
    /// Run a dead, rejected or skipped event again from the start (or every dead one).
    Retry {
        #[arg(required_unless_present = "all_dead")]
        id: Option<i64>,
        #[arg(long, conflicts_with = "id")]
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
            "unknown status {text:?}; one of {}, failed",
            names.join(", ")
        )
    })
}

/// How long ago, in words.
pub fn age(ms: i64) -> String {
    let secs = (now_ms() - ms).max(0) / 1000;
    match secs {
        0..=119 => format!("{secs}s"),
        120..=7199 => format!("{}m", secs / 60),
        _ => format!("{}h", secs / 3600),
    }
}

/// The last error of an event discarded by `events discard` (it did not run again).
const DISCARDED: &str = "discarded by the operator";

/// How many times a worker ran the event, the first time included. The queue counts failed
/// attempts: a running event is in one more, and a settled one ended with one more, unless
/// it was settled when it arrived (skipped by type, or rejected as unreadable) and never ran.
pub fn tries(event: &StoredEvent) -> u32 {
    let settled_on_arrival = || match Envelope::read(&event.body) {
        Err(_) => true,
        Ok(envelope) => matches!(envelope.route, Route::Skip(_)),
    };
    match event.state {
        EventState::Pending => event.attempts,
        EventState::Dead if event.last_error.as_deref() == Some(DISCARDED) => event.attempts,
        EventState::Running | EventState::Synced | EventState::Dead => event.attempts + 1,
        EventState::Skipped | EventState::Rejected if settled_on_arrival() => 0,
        EventState::Skipped | EventState::Rejected => event.attempts + 1,
    }
}

pub fn run(global: &Global, args: EventsArgs) -> anyhow::Result<ExitCode> {
    let store = match global.existing_state() {
        Ok(store) => store,
        // `events list --state dead` was the filter's spelling: say what it is now.
        Err(error) => {
            let state = global.state_path();
            let looks_like_a_filter = global.state_source == StateSource::Flag
                && state
                    .to_str()
                    .is_some_and(|name| name == "failed" || EventState::parse(name).is_some());
            if looks_like_a_filter {
                anyhow::bail!(
                    "{error:#}\n`--state` names the state database ({DEFAULT_STATE} by default); \
                     to list the events of one status, use `events list --status {}`",
                    state.display()
                );
            }
            return Err(error);
        }
    };
    match args.command {
        EventsCommand::List { status, limit } => {
            let events = match status {
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
                        tries(&e).to_string(),
                        e.webhook_type,
                        e.lago_id,
                        e.last_error.unwrap_or_default(),
                    ]
                })
                .collect();
            let columns = [
                whole("id"),
                whole("age"),
                whole("state"),
                whole("tries"),
                cut("event", 3),
                cut("lago id", 2),
                wrapped("last error"),
            ];
            out!("{}", fitted(&columns, &rows, output_width()));
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Show { id } => {
            let Some(event) = store.event(id)? else {
                errln!("no event {id}");
                return Ok(ExitCode::FAILURE);
            };
            let mut json = serde_json::to_value(&event)?;
            json["tries"] = tries(&event).into();
            outln!("{}", serde_json::to_string_pretty(&json)?);
            outln!("payload: {}", event.body);
            for entry in store.sync_log(&event.connection, &event.lago_id)? {
                outln!(
                    "{}  {:<8} {}  {}",
                    entry.at,
                    entry.outcome,
                    entry.webhook_type,
                    entry.detail
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        EventsCommand::Retry { id, all_dead } => {
            if all_dead {
                outln!("{} dead event(s) queued again", store.retry_all_dead()?);
                return Ok(ExitCode::SUCCESS);
            }
            let id = id.expect("clap requires an id without --all-dead");
            let queued = store.retry_event(id)?;
            if queued {
                outln!("event {id} queued again");
            } else {
                outln!("event {id} cannot be retried (unknown, or pending/running)");
            }
            Ok(exit(queued))
        }
        EventsCommand::Discard { id } => {
            let discarded = store.discard_event(id)?;
            if discarded {
                outln!("event {id} discarded");
            } else {
                outln!("event {id} cannot be discarded");
            }
            Ok(exit(discarded))
        }
    }
}
