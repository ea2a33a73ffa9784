//! The durable event queue: every accepted Lago webhook is a row, committed before Lago hears 200.
//!
//! Events of one Lago customer run in arrival order (an event is only claimable when no earlier
//! event with the same `order_key` is pending or running); different customers run concurrently.
//! A running event records its plan and how far it got, so a restart resumes instead of redoing.

use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::clock::now_ms;
use crate::executor::Progress;
use crate::runtime::{KnownId, Plan};
use crate::store::Store;

/// Where an event is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventState {
    /// Waiting to run (first time, or again after a transient failure).
    Pending,
    /// Claimed by a worker.
    Running,
    Synced,
    /// The guest planned nothing (drafts, pending subscriptions, sync switched off…).
    Skipped,
    /// Signed correctly but unusable (malformed, unsupported type): kept, never retried.
    Rejected,
    /// Failed for good (HubSpot refused it, or attempts ran out): kept for the operator.
    Dead,
}

impl EventState {
    pub const ALL: [EventState; 6] = [
        EventState::Pending,
        EventState::Running,
        EventState::Synced,
        EventState::Skipped,
        EventState::Rejected,
        EventState::Dead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventState::Pending => "pending",
            EventState::Running => "running",
            EventState::Synced => "synced",
            EventState::Skipped => "skipped",
            EventState::Rejected => "rejected",
            EventState::Dead => "dead",
        }
    }

    pub fn parse(text: &str) -> Option<EventState> {
        EventState::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A webhook as received, before it is stored.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub unique_key: Option<String>,
    pub connection: String,
    /// Events with the same key run one after another ([`crate::sync::EventRef::order_key`]).
    pub order_key: String,
    /// The customer the event belongs to (empty: none); see [`crate::sync::EventRef::customer_key`].
    pub customer_key: String,
    pub webhook_type: String,
    pub lago_id: String,
    pub body: String,
    /// `Some` settles the event at intake, with its reason: nothing for a worker to do.
    pub settled: Option<Settled>,
}

/// How an event that needs no worker ends at intake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// A webhook type the sync deliberately does not push (the guest crate's table says why).
    Skipped(String),
    /// Signed correctly but not a usable Lago webhook (not JSON, no `webhook_type`, no route).
    Rejected(String),
}

impl Settled {
    pub fn state(&self) -> EventState {
        match self {
            Settled::Skipped(_) => EventState::Skipped,
            Settled::Rejected(_) => EventState::Rejected,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Settled::Skipped(reason) | Settled::Rejected(reason) => reason,
        }
    }
}

/// A stored event, as workers and operators see it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredEvent {
    pub id: i64,
    pub unique_key: Option<String>,
    pub received_at_ms: i64,
    pub connection: String,
    pub order_key: String,
    pub webhook_type: String,
    pub lago_id: String,
    #[serde(skip)]
    pub body: String,
    pub state: EventState,
    pub attempts: u32,
    pub next_attempt_ms: i64,
    #[serde(skip)]
    pub plan: Option<String>,
    #[serde(skip)]
    pub progress: Option<String>,
    pub last_error: Option<String>,
    pub last_status: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(i64),
    /// Lago redelivered a webhook we already hold (same `X-Lago-Unique-Key`).
    Duplicate,
}

const COLUMNS: &str =
    "id, unique_key, received_at_ms, connection, order_key, webhook_type, lago_id, body,
    state, attempts, next_attempt_ms, plan, progress, last_error, last_status";

fn row_to_event(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredEvent> {
    let state: String = row.get(8)?;
    Ok(StoredEvent {
        id: row.get(0)?,
        unique_key: row.get(1)?,
        received_at_ms: row.get(2)?,
        connection: row.get(3)?,
        order_key: row.get(4)?,
        webhook_type: row.get(5)?,
        lago_id: row.get(6)?,
        body: row.get(7)?,
        state: EventState::parse(&state).unwrap_or(EventState::Dead),
        attempts: row.get(9)?,
        next_attempt_ms: row.get(10)?,
        plan: row.get(11)?,
        progress: row.get(12)?,
        last_error: row.get(13)?,
        last_status: row.get(14)?,
    })
}

/// Counts per state and the age of the oldest waiting event, for `status` and `/metrics`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QueueStats {
    pub counts: Vec<(String, u64)>,
    pub oldest_pending_ms: Option<i64>,
}

impl QueueStats {
    /// Events pending or running.
    pub fn depth(&self) -> u64 {
        self.count(EventState::Pending) + self.count(EventState::Running)
    }

    /// Seconds since the oldest pending event arrived (0 when none waits).
    pub fn oldest_pending_age_seconds(&self) -> f64 {
        self.oldest_pending_ms
            .map(|at| (now_ms() - at).max(0) as f64 / 1000.0)
            .unwrap_or(0.0)
    }

    pub fn count(&self, state: EventState) -> u64 {
        self.counts
            .iter()
            .find(|(s, _)| s == state.as_str())
            .map(|(_, n)| *n)
            .unwrap_or(0)
    }
}

impl Store {
    /// Commits the event durably; a redelivery with a known unique key is not stored twice.
    pub fn insert_event(&self, event: &NewEvent) -> anyhow::Result<Inserted> {
        let now = now_ms();
        let state = event
            .settled
            .as_ref()
            .map_or(EventState::Pending, Settled::state);
        let changed = self.db.execute(
            "INSERT INTO events (unique_key, received_at_ms, connection, order_key, webhook_type,
                 lago_id, body, state, last_error, updated_at_ms, customer_key)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?2, ?10)
             ON CONFLICT (unique_key) DO NOTHING",
            params![
                event.unique_key,
                now,
                event.connection,
                event.order_key,
                event.webhook_type,
                event.lago_id,
                event.body,
                state.as_str(),
                event.settled.as_ref().map(Settled::reason),
                event.customer_key
            ],
        )?;
        Ok(if changed == 0 {
            Inserted::Duplicate
        } else {
            Inserted::New(self.db.last_insert_rowid())
        })
    }

    /// Claims up to `limit` events that are due and first in line for their customer.
    pub fn claim_ready(&self, limit: usize, now: i64) -> anyhow::Result<Vec<StoredEvent>> {
        self.claim(None, 1, limit, now)
    }

    /// Like [`Store::claim_ready`], for the events of one connection only: `serve` with many
    /// connections claims per connection, so one portal's backlog never takes every worker.
    pub fn claim_ready_in(
        &self,
        connection: &str,
        limit: usize,
        now: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        self.claim(Some(connection), 1, limit, now)
    }

    /// Like [`Store::claim_ready_in`], all or nothing: claims only when at least `min` events of
    /// the connection are ready (a batching `serve` short of HubSpot budget waits for full
    /// groups).
    pub fn claim_batch_in(
        &self,
        connection: &str,
        min: usize,
        limit: usize,
        now: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        self.claim(Some(connection), min.max(1), limit, now)
    }

    fn claim(
        &self,
        connection: Option<&str>,
        min: usize,
        limit: usize,
        now: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        if limit == 0 || limit < min {
            return Ok(Vec::new());
        }
        let tx = self.db.unchecked_transaction()?;
        let events: Vec<StoredEvent> = {
            let mut stmt = tx.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM events e INDEXED BY events_pending_by_id
                 WHERE e.state = 'pending' AND e.next_attempt_ms <= ?1
                   AND (?3 IS NULL OR e.connection = ?3)
                   AND NOT EXISTS (SELECT 1 FROM events p
                       WHERE p.order_key = e.order_key AND p.id < e.id
                         AND p.state IN ('pending', 'running'))
                   AND (e.customer_key = '' OR NOT EXISTS (SELECT 1 FROM events c
                       WHERE c.customer_key = e.customer_key AND c.id < e.id
                         AND c.state IN ('pending', 'running')
                         AND (c.order_key = c.customer_key OR e.order_key = e.customer_key)))
                 ORDER BY e.id LIMIT ?2"
            ))?;
            stmt.query_map(params![now, limit as i64, connection], row_to_event)?
                .collect::<Result<_, _>>()?
        };
        if events.len() < min {
            // Nothing written: dropping the transaction leaves every event as it was.
            return Ok(Vec::new());
        }
        {
            let mut claim = tx.prepare_cached(
                "UPDATE events SET state = 'running', updated_at_ms = ?2 WHERE id = ?1",
            )?;
            for event in &events {
                claim.execute(params![event.id, now])?;
            }
        }
        tx.commit()?;
        Ok(events)
    }

    /// When the next waiting event of one connection becomes due.
    pub fn next_due_ms_in(&self, connection: &str) -> anyhow::Result<Option<i64>> {
        Ok(self.db.query_row(
            "SELECT MIN(next_attempt_ms) FROM events WHERE state = 'pending' AND connection = ?1",
            [connection],
            |row| row.get(0),
        )?)
    }

    /// After a crash or a forced stop, events left running go back to the queue.
    pub fn requeue_running(&self) -> anyhow::Result<usize> {
        Ok(self.db.execute(
            "UPDATE events SET state = 'pending', updated_at_ms = ?1 WHERE state = 'running'",
            [now_ms()],
        )?)
    }

    /// The plan an event will run, stored before its first step so a restart runs the same plan.
    pub fn save_plan(&self, id: i64, plan: &Plan) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE events SET plan = ?2, progress = NULL, updated_at_ms = ?3 WHERE id = ?1",
            params![id, serde_json::to_string(plan)?, now_ms()],
        )?;
        Ok(())
    }

    /// Records a finished step and the ids it captured in one transaction: a crash can lose a
    /// step's answer (the step is then re-sent, which is harmless for upserts) but never half of it.
    pub fn checkpoint(
        &mut self,
        id: i64,
        connection: &str,
        progress: &Progress,
        ids: &[KnownId],
    ) -> anyhow::Result<()> {
        self.in_one_transaction(|store| {
            store.db.execute(
                "UPDATE events SET progress = ?2, updated_at_ms = ?3 WHERE id = ?1",
                params![id, serde_json::to_string(progress)?, now_ms()],
            )?;
            crate::store::put_ids_in(&store.db, connection, ids)
        })
    }

    pub fn finish_event(
        &self,
        id: i64,
        state: EventState,
        detail: Option<&str>,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE events SET state = ?2, last_error = ?3, last_status = ?4, updated_at_ms = ?5
             WHERE id = ?1",
            params![id, state.as_str(), detail, status, now_ms()],
        )?;
        Ok(())
    }

    /// Back to the queue after a transient failure, to run again at `next_attempt_ms`.
    pub fn retry_later(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE events SET state = 'pending', attempts = ?2, next_attempt_ms = ?3,
                 last_error = ?4, last_status = ?5, updated_at_ms = ?6 WHERE id = ?1",
            params![id, attempts, next_attempt_ms, error, status, now_ms()],
        )?;
        Ok(())
    }

    /// Operator action: run a dead (or rejected, or skipped) event again from the start.
    pub fn retry_event(&self, id: i64) -> anyhow::Result<bool> {
        Ok(self.db.execute(
            "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = 0, plan = NULL,
                 progress = NULL, updated_at_ms = ?2
             WHERE id = ?1 AND state IN ('dead', 'rejected', 'skipped', 'synced')",
            params![id, now_ms()],
        )? == 1)
    }

    pub fn retry_all_dead(&self) -> anyhow::Result<usize> {
        Ok(self.db.execute(
            "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = 0, plan = NULL,
                 progress = NULL, updated_at_ms = ?1 WHERE state = 'dead'",
            [now_ms()],
        )?)
    }

    /// Operator action: give up on an event without running it (it stays visible as dead).
    pub fn discard_event(&self, id: i64) -> anyhow::Result<bool> {
        Ok(self.db.execute(
            "UPDATE events SET state = 'dead', last_error = 'discarded by the operator',
                 updated_at_ms = ?2 WHERE id = ?1 AND state IN ('pending', 'dead', 'rejected')",
            params![id, now_ms()],
        )? == 1)
    }

    pub fn event(&self, id: i64) -> anyhow::Result<Option<StoredEvent>> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
                [id],
                row_to_event,
            )
            .optional()?)
    }

    pub fn events(
        &self,
        state: Option<EventState>,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE (?1 IS NULL OR state = ?1) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![state.map(EventState::as_str), limit as i64],
            row_to_event,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Events waiting for another attempt after a failure, most recent first.
    pub fn failing_events(&self, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        let mut stmt = self.db.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE state = 'pending' AND last_error IS NOT NULL
             ORDER BY id DESC LIMIT ?1"
        ))?;
        let rows = stmt.query_map([limit as i64], row_to_event)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn queue_stats(&self) -> anyhow::Result<QueueStats> {
        let mut stmt = self
            .db
            .prepare_cached("SELECT state, COUNT(*) FROM events GROUP BY state ORDER BY state")?;
        let counts = stmt
            .query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, u64>(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let oldest_pending_ms = self.db.query_row(
            "SELECT MIN(received_at_ms) FROM events WHERE state IN ('pending', 'running')",
            [],
            |row| row.get::<_, Option<i64>>(0),
        )?;
        Ok(QueueStats {
            counts,
            oldest_pending_ms,
        })
    }

    /// When the next waiting event becomes due, so workers can sleep until then.
    pub fn next_due_ms(&self) -> anyhow::Result<Option<i64>> {
        Ok(self.db.query_row(
            "SELECT MIN(next_attempt_ms) FROM events WHERE state = 'pending'",
            [],
            |row| row.get(0),
        )?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, order: &str) -> NewEvent {
        NewEvent {
            unique_key: Some(key.into()),
            connection: "c".into(),
            order_key: order.into(),
            customer_key: order.into(),
            webhook_type: "customer.updated".into(),
            lago_id: order.into(),
            body: "{}".into(),
            settled: None,
        }
    }

    #[test]
    fn redeliveries_are_stored_once() {
        let store = Store::open_in_memory().unwrap();
        assert!(matches!(
            store.insert_event(&event("k1", "a")).unwrap(),
            Inserted::New(_)
        ));
        assert_eq!(
            store.insert_event(&event("k1", "a")).unwrap(),
            Inserted::Duplicate
        );
    }

    #[test]
    fn one_customer_runs_in_order_while_others_run_alongside() {
        let store = Store::open_in_memory().unwrap();
        for (key, order) in [("1", "a"), ("2", "a"), ("3", "b")] {
            store.insert_event(&event(key, order)).unwrap();
        }
        let first: Vec<_> = store
            .claim_ready(10, now_ms())
            .unwrap()
            .iter()
            .map(|e| e.unique_key.clone().unwrap())
            .collect();
        assert_eq!(first, ["1", "3"], "the second event of customer a waits");
        assert!(store.claim_ready(10, now_ms()).unwrap().is_empty());
        let a1 = store
            .events(None, 10)
            .unwrap()
            .into_iter()
            .find(|e| e.unique_key.as_deref() == Some("1"))
            .unwrap();
        // A transient failure keeps the customer's later event waiting behind it.
        store
            .retry_later(a1.id, 1, now_ms() + 60_000, "503", Some(503))
            .unwrap();
        assert!(store.claim_ready(10, now_ms()).unwrap().is_empty());
        store
            .finish_event(a1.id, EventState::Synced, None, None)
            .unwrap();
        let next = store.claim_ready(10, now_ms()).unwrap();
        assert_eq!(next[0].unique_key.as_deref(), Some("2"));
    }

    /// A customer's invoices run alongside each other, after its earlier customer events and
    /// before its later ones; one object's events stay in order.
    #[test]
    fn a_customers_objects_run_alongside_but_wait_for_its_customer_events() {
        let store = Store::open_in_memory().unwrap();
        let events = [
            ("created", "cus"),
            ("i1", "inv-1"),
            ("i2", "inv-2"),
            ("i1-paid", "inv-1"),
            ("updated", "cus"),
            ("i3", "inv-3"),
        ];
        for (key, order) in events {
            store
                .insert_event(&NewEvent {
                    customer_key: "cus".into(),
                    ..event(key, order)
                })
                .unwrap();
        }
        let claim_and_finish = || -> Vec<String> {
            let claimed = store.claim_ready(10, now_ms()).unwrap();
            for event in &claimed {
                store
                    .finish_event(event.id, EventState::Synced, None, None)
                    .unwrap();
            }
            claimed.into_iter().filter_map(|e| e.unique_key).collect()
        };
        assert_eq!(claim_and_finish(), ["created"]);
        assert_eq!(claim_and_finish(), ["i1", "i2"]);
        assert_eq!(claim_and_finish(), ["i1-paid"]);
        assert_eq!(claim_and_finish(), ["updated"]);
        assert_eq!(claim_and_finish(), ["i3"]);
        assert!(claim_and_finish().is_empty());
    }

    #[test]
    fn claims_per_connection_take_only_that_connections_events() {
        let store = Store::open_in_memory().unwrap();
        for (key, connection) in [("1", "a"), ("2", "b"), ("3", "a")] {
            store
                .insert_event(&NewEvent {
                    connection: connection.into(),
                    ..event(key, key)
                })
                .unwrap();
        }
        let keys = |events: Vec<StoredEvent>| -> Vec<String> {
            events.into_iter().filter_map(|e| e.unique_key).collect()
        };
        assert_eq!(keys(store.claim_ready_in("a", 1, now_ms()).unwrap()), ["1"]);
        assert_eq!(keys(store.claim_ready_in("b", 5, now_ms()).unwrap()), ["2"]);
        assert!(store.claim_ready_in("b", 5, now_ms()).unwrap().is_empty());
        assert!(store.next_due_ms_in("b").unwrap().is_none());
        assert!(store.next_due_ms_in("a").unwrap().is_some());
    }

    #[test]
    fn a_batch_claim_takes_all_or_nothing() {
        let store = Store::open_in_memory().unwrap();
        for key in ["1", "2", "3"] {
            store.insert_event(&event(key, key)).unwrap();
        }
        assert!(
            store
                .claim_batch_in("c", 4, 10, now_ms())
                .unwrap()
                .is_empty()
        );
        assert_eq!(store.queue_stats().unwrap().count(EventState::Pending), 3);
        assert_eq!(store.claim_batch_in("c", 3, 10, now_ms()).unwrap().len(), 3);
        assert_eq!(store.queue_stats().unwrap().count(EventState::Running), 3);
    }

    #[test]
    fn running_events_are_requeued_after_a_crash() {
        let store = Store::open_in_memory().unwrap();
        store.insert_event(&event("1", "a")).unwrap();
        assert_eq!(store.claim_ready(10, now_ms()).unwrap().len(), 1);
        assert_eq!(store.requeue_running().unwrap(), 1);
        assert_eq!(store.claim_ready(10, now_ms()).unwrap().len(), 1);
    }
}
