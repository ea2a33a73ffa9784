//! How an event ended: the one outcome type of `sync`, `backfill` and `serve`.

use crate::executor::StepOutcome;
use crate::retry::GuestStop;

/// How one event ended: the one outcome type of `sync`, `backfill` and `serve`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EventOutcome {
    pub webhook_type: String,
    pub lago_id: String,
    pub status: OutcomeStatus,
    /// The plan's summary, the reason it was skipped, or why it failed (with HubSpot's message).
    pub detail: String,
    pub steps: Vec<StepOutcome>,
    /// For a failed event: what trying again can do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    Synced,
    Skipped,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Synced => "synced",
            OutcomeStatus::Skipped => "skipped",
            OutcomeStatus::Failed => "failed",
        }
    }
}

/// The one word for an outcome, wherever it is shown (`sync`, `demo`, the sync log).
impl std::fmt::Display for OutcomeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// What a failure means for the event, by the one retry table ([`crate::retry::RULES`]) and
/// what only the pipeline knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The payload cannot be planned as it is (malformed, a required field missing): trying
    /// again gives the same answer.
    Rejected,
    /// Transient: the same event may succeed later.
    Retry { status: Option<u16> },
    /// HubSpot refused it for good (validation, scope, not found): keep it for a person.
    Dead { status: Option<u16> },
    /// The portal's daily budget is spent: nothing for this connection before `until_ms`.
    Park { until_ms: i64 },
    /// HubSpot refused the connection's grant: nothing until a person reconnects it.
    AwaitReconnect,
    /// The state could not record the event's plan or progress (its database unreachable, a
    /// full disk): not the event's fault, so it runs again after the queue's backoff without
    /// using up an attempt.
    StateUnwritable,
    /// The connection's custom objects are not deployed yet: deploy, then try again.
    NotDeployed,
    /// The host stopped the component while it planned the event (`handler`, a WIT export such
    /// as `on-customer`), or it trapped; the outcome's detail says why. A deadline is retried,
    /// a trap or the memory cap is a dead letter ([`crate::retry::after_guest_stop`]).
    Guest {
        handler: &'static str,
        stop: GuestStop,
    },
}
