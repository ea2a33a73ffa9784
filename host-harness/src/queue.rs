//! The durable event queue: every accepted Lago webhook is a row, committed before Lago hears 200.
//!
//! Events of one Lago customer run in arrival order (an event is only claimable when no earlier
//! event with the same `order_key` is pending or running); different customers run concurrently.
//! A running event records its plan and how far it got, so a restart resumes instead of redoing.

use serde::Serialize;

use crate::clock::now_ms;
use crate::db::{Backend, Row, Tx};
use crate::executor::Progress;
use crate::runtime::{KnownId, Plan};
use crate::sql_params;
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
    /// The instance running it (`host:pid:random`, [`Store`]'s owner) while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_owner: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    New(i64),
    /// Lago redelivered a webhook we already hold (same `X-Lago-Unique-Key`).
    Duplicate,
}

const COLUMNS: &str =
    "id, unique_key, received_at_ms, connection, order_key, webhook_type, lago_id, body,
    state, attempts, next_attempt_ms, plan, progress, last_error, last_status, lease_owner";

fn row_to_event(row: &Row) -> anyhow::Result<StoredEvent> {
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
        lease_owner: row.get(15)?,
    })
}

fn rows_to_events(rows: Vec<Row>) -> anyhow::Result<Vec<StoredEvent>> {
    rows.iter().map(row_to_event).collect()
}

/// The PostgreSQL advisory lock of the queue, keyed ("lahq", the schema) so that states in other
/// schemas of one database never wait on each other: intake holds it shared, a claim exclusively,
/// so a claim sees every event that got an earlier id (see [`Store::claim`]).
const QUEUE_LOCK: i32 = 0x6c61_6871;

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
    /// Commits the event durably; a redelivery with a known unique key is not stored twice
    /// (across instances too: the key is unique in the table).
    pub fn insert_event(&self, event: &NewEvent) -> anyhow::Result<Inserted> {
        let now = now_ms();
        let state = event
            .settled
            .as_ref()
            .map_or(EventState::Pending, Settled::state);
        let inserted = self.db.transaction(|tx| {
            if tx.backend() == Backend::Postgres {
                tx.execute(
                    "SELECT pg_advisory_xact_lock_shared(?1, hashtext(current_schema()))",
                    sql_params![QUEUE_LOCK],
                )?;
            }
            let inserted = tx.query_opt(
                "INSERT INTO events (unique_key, received_at_ms, connection, order_key, webhook_type,
                     lago_id, body, state, last_error, updated_at_ms, customer_key)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?2, ?10)
                 ON CONFLICT (unique_key) DO NOTHING RETURNING id",
                sql_params![
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
            if inserted.is_some() && state == EventState::Pending {
                announce(tx)?;
            }
            Ok(inserted)
        })?;
        Ok(match inserted {
            Some(row) => Inserted::New(row.get(0)?),
            None => Inserted::Duplicate,
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

    /// Like [`Store::claim_ready_in`], only while none of the connection's events runs, on any
    /// instance: a portal short of HubSpot budget runs one group at a time, and the events that
    /// get ready meanwhile go out together in the next one instead of in many small ones.
    pub fn claim_when_idle_in(
        &self,
        connection: &str,
        limit: usize,
        now: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        self.claim_if(Some(connection), 1, limit, now, true)
    }

    /// The one claim. On PostgreSQL, several instances claim from one table: each claim holds the
    /// queue's advisory lock exclusively (intake holds it shared), so it sees every event with
    /// an earlier id committed and no two claims judge "first in line" at once; the rows are
    /// locked `FOR UPDATE SKIP LOCKED` against operator actions. Events whose lease ran out
    /// (their instance died) are released first. Each event claimed is leased to this store
    /// until `now` + the lease.
    fn claim(
        &self,
        connection: Option<&str>,
        min: usize,
        limit: usize,
        now: i64,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        self.claim_if(connection, min, limit, now, false)
    }

    /// [`Store::claim`]; with `when_idle`, nothing while an event of `connection` runs.
    fn claim_if(
        &self,
        connection: Option<&str>,
        min: usize,
        limit: usize,
        now: i64,
        when_idle: bool,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        if limit == 0 || limit < min {
            return Ok(Vec::new());
        }
        let (owner, until) = (self.owner.as_str(), now.saturating_add(self.lease_ms));
        self.db.transaction(|tx| {
            let postgres = tx.backend() == Backend::Postgres;
            if postgres {
                tx.execute(
                    "SELECT pg_advisory_xact_lock(?1, hashtext(current_schema()))",
                    sql_params![QUEUE_LOCK],
                )?;
                release_expired(tx, now)?;
            }
            if when_idle {
                let running = tx.query_opt(
                    "SELECT 1 FROM events INDEXED BY events_running_by_lease
                     WHERE state = 'running' AND connection = ?1 LIMIT 1",
                    sql_params![connection],
                )?;
                if running.is_some() {
                    return Ok(Vec::new());
                }
            }
            let sql = format!(
                "SELECT {COLUMNS} FROM events e INDEXED BY events_pending_by_id
                 WHERE e.state = 'pending' AND e.next_attempt_ms <= ?1
                   AND (CAST(?3 AS TEXT) IS NULL OR e.connection = ?3)
                   AND NOT EXISTS (SELECT 1 FROM events p
                       WHERE p.order_key = e.order_key AND p.id < e.id
                         AND p.state IN ('pending', 'running'))
                   AND (e.customer_key = '' OR NOT EXISTS (SELECT 1 FROM events c
                       WHERE c.customer_key = e.customer_key AND c.id < e.id
                         AND c.state IN ('pending', 'running')
                         AND (c.order_key = c.customer_key OR e.order_key = e.customer_key)))
                 ORDER BY e.id LIMIT ?2{}",
                if postgres {
                    " FOR UPDATE SKIP LOCKED"
                } else {
                    ""
                }
            );
            let events = rows_to_events(tx.query(&sql, sql_params![now, limit, connection])?)?;
            if events.len() < min {
                // Nothing written: the transaction commits no change.
                return Ok(Vec::new());
            }
            for event in &events {
                tx.execute(
                    "UPDATE events SET state = 'running', updated_at_ms = ?2, lease_owner = ?3,
                         lease_until_ms = ?4
                     WHERE id = ?1",
                    sql_params![event.id, now, owner, until],
                )?;
            }
            Ok(events)
        })
    }

    /// Extends this store's leases on the events it runs to `now` + the lease; the number
    /// renewed. `serve` calls it well within every lease, so only a stopped instance loses its
    /// events.
    pub fn renew_leases(&self, now: i64) -> anyhow::Result<usize> {
        self.db.execute(
            "UPDATE events SET lease_until_ms = ?2 WHERE state = 'running' AND lease_owner = ?1",
            sql_params![self.owner, now.saturating_add(self.lease_ms)],
        )
    }

    /// How long this store's claims last without renewal, ms.
    pub fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// How long this store's claims last without renewal (default [`crate::store::DEFAULT_LEASE`]).
    pub fn set_lease(&mut self, lease: std::time::Duration) {
        self.lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX).max(1);
    }

    /// When the next waiting event of one connection becomes due.
    pub fn next_due_ms_in(&self, connection: &str) -> anyhow::Result<Option<i64>> {
        self.db
            .query_one(
                "SELECT MIN(next_attempt_ms) FROM events WHERE state = 'pending' AND connection = ?1",
                sql_params![connection],
            )?
            .get(0)
    }

    /// After a crash or a forced stop, events left running go back to the queue: on SQLite
    /// (one process) all of them; on PostgreSQL this store's own, since other instances' events
    /// are theirs until their lease runs out.
    pub fn requeue_running(&self) -> anyhow::Result<usize> {
        match self.backend() {
            // Through the partial index of running events, which holds exactly the rows to
            // change, not the state index: a search by state alone reads like a scan in a plan.
            Backend::Sqlite => self.db.execute(
                "UPDATE events INDEXED BY events_running_by_lease
                 SET state = 'pending', lease_owner = NULL, updated_at_ms = ?1
                 WHERE state = 'running'",
                sql_params![now_ms()],
            ),
            Backend::Postgres => self.db.execute(
                "UPDATE events SET state = 'pending', lease_owner = NULL, updated_at_ms = ?1
                 WHERE state = 'running' AND lease_owner = ?2",
                sql_params![now_ms(), self.owner],
            ),
        }
    }

    /// Runs `work`'s queue writes as one transaction: one durable commit however many events
    /// they touch, all of them or none. `serve` records a batch's plans, each wave's checkpoints
    /// and the batch's outcomes this way, so the webhook intake waits for one commit per batch,
    /// not one per event.
    pub fn queue_batch<T: Send>(
        &self,
        work: impl for<'t, 'a, 'c> FnOnce(&QueueBatch<'t, 'a, 'c>) -> anyhow::Result<T> + Send,
    ) -> anyhow::Result<T> {
        let owner = self.owner.as_str();
        self.db.transaction(|tx| work(&QueueBatch { tx, owner }))
    }

    /// [`QueueBatch::save_plan`] on its own.
    pub fn save_plan(&self, id: i64, plan: &Plan) -> anyhow::Result<()> {
        self.queue_batch(|batch| batch.save_plan(id, plan))
    }

    /// [`QueueBatch::checkpoint`] on its own.
    pub fn checkpoint(
        &self,
        id: i64,
        connection: &str,
        progress: &Progress,
        ids: &[KnownId],
    ) -> anyhow::Result<()> {
        self.queue_batch(|batch| batch.checkpoint(id, connection, progress, ids))
    }

    /// [`QueueBatch::finish_event`] on its own.
    pub fn finish_event(
        &self,
        id: i64,
        state: EventState,
        detail: Option<&str>,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        self.queue_batch(|batch| batch.finish_event(id, state, detail, status))
    }

    /// [`QueueBatch::retry_later`] on its own.
    pub fn retry_later(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        self.queue_batch(|batch| batch.retry_later(id, attempts, next_attempt_ms, error, status))
    }

    /// Operator action: run a dead (or rejected, or skipped) event again from the start.
    pub fn retry_event(&self, id: i64) -> anyhow::Result<bool> {
        self.db.transaction(|tx| {
            let retried = tx.execute(
                "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = 0,
                     plan = NULL, progress = NULL, updated_at_ms = ?2
                 WHERE id = ?1 AND state IN ('dead', 'rejected', 'skipped', 'synced')",
                sql_params![id, now_ms()],
            )? == 1;
            if retried {
                announce(tx)?;
            }
            Ok(retried)
        })
    }

    pub fn retry_all_dead(&self) -> anyhow::Result<usize> {
        self.db.transaction(|tx| {
            let retried = tx.execute(
                "UPDATE events SET state = 'pending', attempts = 0, next_attempt_ms = 0,
                     plan = NULL, progress = NULL, updated_at_ms = ?1 WHERE state = 'dead'",
                sql_params![now_ms()],
            )?;
            if retried > 0 {
                announce(tx)?;
            }
            Ok(retried)
        })
    }

    /// Operator action: give up on an event without running it (it stays visible as dead).
    pub fn discard_event(&self, id: i64) -> anyhow::Result<bool> {
        Ok(self.db.execute(
            "UPDATE events SET state = 'dead', last_error = 'discarded by the operator',
                 updated_at_ms = ?2 WHERE id = ?1 AND state IN ('pending', 'dead', 'rejected')",
            sql_params![id, now_ms()],
        )? == 1)
    }

    pub fn event(&self, id: i64) -> anyhow::Result<Option<StoredEvent>> {
        self.db
            .query_opt(
                &format!("SELECT {COLUMNS} FROM events WHERE id = ?1"),
                sql_params![id],
            )?
            .as_ref()
            .map(row_to_event)
            .transpose()
    }

    pub fn events(
        &self,
        state: Option<EventState>,
        limit: usize,
    ) -> anyhow::Result<Vec<StoredEvent>> {
        rows_to_events(self.db.query(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE (CAST(?1 AS TEXT) IS NULL OR state = ?1)
                 ORDER BY id DESC LIMIT ?2"
            ),
            sql_params![state.map(EventState::as_str), limit],
        )?)
    }

    /// Events waiting for another attempt after a failure, most recent first.
    pub fn failing_events(&self, limit: usize) -> anyhow::Result<Vec<StoredEvent>> {
        rows_to_events(self.db.query(
            &format!(
                "SELECT {COLUMNS} FROM events WHERE state = 'pending' AND last_error IS NOT NULL
                 ORDER BY id DESC LIMIT ?1"
            ),
            sql_params![limit],
        )?)
    }

    pub fn queue_stats(&self) -> anyhow::Result<QueueStats> {
        let counts = self
            .db
            .query(
                "SELECT state, COUNT(*) FROM events GROUP BY state ORDER BY state",
                &[],
            )?
            .iter()
            .map(|row| Ok((row.get::<String>(0)?, row.get::<u64>(1)?)))
            .collect::<anyhow::Result<_>>()?;
        let oldest_pending_ms = self
            .db
            .query_one(
                "SELECT MIN(received_at_ms) FROM events WHERE state IN ('pending', 'running')",
                &[],
            )?
            .get(0)?;
        Ok(QueueStats {
            counts,
            oldest_pending_ms,
        })
    }

    /// When the next waiting event becomes due, so workers can sleep until then.
    pub fn next_due_ms(&self) -> anyhow::Result<Option<i64>> {
        self.db
            .query_one(
                "SELECT MIN(next_attempt_ms) FROM events WHERE state = 'pending'",
                &[],
            )?
            .get(0)
    }
}

/// On PostgreSQL, tells every `serve` on this state that events are ready, with the commit
/// ([`crate::arrivals`]); nothing on SQLite, whose one `serve` stored them itself or finds them
/// at its next look.
fn announce(tx: &Tx<'_, '_>) -> anyhow::Result<()> {
    if tx.backend() == Backend::Postgres {
        tx.execute(
            &format!(
                "SELECT pg_notify('{}', current_schema())",
                crate::arrivals::CHANNEL
            ),
            &[],
        )?;
    }
    Ok(())
}

/// Inside a claim: running events whose lease ran out go back to waiting (their plan and
/// progress kept, so the next run resumes where the stopped instance was).
fn release_expired(tx: &Tx<'_, '_>, now: i64) -> anyhow::Result<usize> {
    let released = tx.execute(
        "UPDATE events SET state = 'pending', lease_owner = NULL, updated_at_ms = ?1
         WHERE state = 'running' AND lease_until_ms < ?1",
        sql_params![now],
    )?;
    if released > 0 {
        tracing::warn!(
            released,
            "took over {released} event(s) whose instance stopped renewing its lease"
        );
    }
    Ok(released)
}

/// The condition of every write about a running event: this store still holds its lease (the
/// owner is parameter `?{owner}`). A worker whose lease ran out must not overwrite what happened
/// since: the event settled by another instance, or waiting again.
fn held_by(owner: usize) -> String {
    format!("state = 'running' AND lease_owner = ?{owner}")
}

/// The writes that run events through the queue, inside one transaction ([`Store::queue_batch`]).
pub struct QueueBatch<'t, 'a, 'c> {
    tx: &'t Tx<'a, 'c>,
    /// The store's lease owner ([`Store`]'s `owner`).
    owner: &'t str,
}

impl QueueBatch<'_, '_, '_> {
    /// Whether this store still holds event `id`'s lease after a write that `changed` rows on
    /// the condition [`held_by`]; when it does not (the lease ran out while the state was
    /// unreachable, and the event went back to the queue or to another instance), says so: the
    /// write is left undone, and whoever runs the event now decides.
    fn held(&self, id: i64, changed: usize, what: &str) -> bool {
        if changed == 0 {
            tracing::warn!(
                event = id,
                "lost the lease of this event (not renewed in time); {what} left to whoever runs it now"
            );
        }
        changed > 0
    }

    /// The plan an event will run, stored before its first step so a restart runs the same plan.
    pub fn save_plan(&self, id: i64, plan: &Plan) -> anyhow::Result<()> {
        let changed = self.tx.execute(
            &format!(
                "UPDATE events SET plan = ?2, progress = NULL, updated_at_ms = ?3
                 WHERE id = ?1 AND {}",
                held_by(4)
            ),
            sql_params![id, serde_json::to_string(plan)?, now_ms(), self.owner],
        )?;
        // A worker that lost the lease stops here: its plan is not run twice at once.
        anyhow::ensure!(
            self.held(id, changed, "its plan"),
            "lost the lease of event {id}"
        );
        Ok(())
    }

    /// Records a finished step and the ids it captured together: a crash can lose a step's
    /// answer (the step is then re-sent, which is harmless for upserts) but never half of it.
    pub fn checkpoint(
        &self,
        id: i64,
        connection: &str,
        progress: &Progress,
        ids: &[KnownId],
    ) -> anyhow::Result<()> {
        let changed = self.tx.execute(
            &format!(
                "UPDATE events SET progress = ?2, updated_at_ms = ?3 WHERE id = ?1 AND {}",
                held_by(4)
            ),
            sql_params![id, serde_json::to_string(progress)?, now_ms(), self.owner],
        )?;
        crate::store::put_ids_in(self.tx, connection, ids)?;
        // A worker that lost the lease stops at this checkpoint rather than send the plan's next
        // steps beside the instance that runs the event now (the batch's checkpoints roll back;
        // each plan resumes from its last one, repeating an upsert at most).
        anyhow::ensure!(
            self.held(id, changed, "its progress"),
            "lost the lease of event {id}"
        );
        Ok(())
    }

    /// Settles an event this store runs. An event whose lease ran out (this instance could not
    /// renew it) is left as it is now: back in the queue, with another instance, or settled.
    pub fn finish_event(
        &self,
        id: i64,
        state: EventState,
        detail: Option<&str>,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        let changed = self.tx.execute(
            &format!(
                "UPDATE events SET state = ?2, last_error = ?3, last_status = ?4,
                     updated_at_ms = ?5, lease_owner = NULL
                 WHERE id = ?1 AND {}",
                held_by(6)
            ),
            sql_params![id, state.as_str(), detail, status, now_ms(), self.owner],
        )?;
        self.held(id, changed, "its outcome");
        Ok(())
    }

    /// Back to the queue after a transient failure, to run again at `next_attempt_ms` (left to
    /// the instance that took the event over, as [`QueueBatch::finish_event`]).
    pub fn retry_later(
        &self,
        id: i64,
        attempts: u32,
        next_attempt_ms: i64,
        error: &str,
        status: Option<u16>,
    ) -> anyhow::Result<()> {
        let changed = self.tx.execute(
            &format!(
                "UPDATE events SET state = 'pending', attempts = ?2, next_attempt_ms = ?3,
                     last_error = ?4, last_status = ?5, updated_at_ms = ?6, lease_owner = NULL
                 WHERE id = ?1 AND {}",
                held_by(7)
            ),
            sql_params![
                id,
                attempts,
                next_attempt_ms,
                error,
                status,
                now_ms(),
                self.owner
            ],
        )?;
        self.held(id, changed, "its retry");
        Ok(())
    }
}

/// Events for tests of the queue and of what builds on it.
pub mod testing {
    use super::NewEvent;

    /// A waiting `customer.updated` event of customer `order_key` (its order key, customer key
    /// and Lago id), delivered under `key`, on connection `c`.
    pub fn event(key: &str, order_key: &str) -> NewEvent {
        NewEvent {
            unique_key: Some(key.into()),
            connection: "c".into(),
            order_key: order_key.into(),
            customer_key: order_key.into(),
            webhook_type: "customer.updated".into(),
            lago_id: order_key.into(),
            body: "{}".into(),
            settled: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::testing::event;

    #[test]
    fn redeliveries_are_stored_once() {
        for store in crate::store::testing::stores() {
            assert!(matches!(
                store.insert_event(&event("k1", "a")).unwrap(),
                Inserted::New(_)
            ));
            assert_eq!(
                store.insert_event(&event("k1", "a")).unwrap(),
                Inserted::Duplicate
            );
        }
    }

    #[test]
    fn one_customer_runs_in_order_while_others_run_alongside() {
        for store in crate::store::testing::stores() {
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
            // An outcome of a worker that no longer runs it changes nothing.
            store
                .finish_event(a1.id, EventState::Synced, None, None)
                .unwrap();
            assert_eq!(
                store.event(a1.id).unwrap().unwrap().state,
                EventState::Pending
            );
            // Its retry, when due, settles it; then the customer's next event runs.
            let retried = store.claim_ready(10, now_ms() + 60_001).unwrap();
            assert_eq!(retried[0].id, a1.id);
            store
                .finish_event(a1.id, EventState::Synced, None, None)
                .unwrap();
            let next = store.claim_ready(10, now_ms()).unwrap();
            assert_eq!(next[0].unique_key.as_deref(), Some("2"));
        }
    }

    /// A customer's invoices run alongside each other, after its earlier customer events and
    /// before its later ones; one object's events stay in order.
    #[test]
    fn a_customers_objects_run_alongside_but_wait_for_its_customer_events() {
        for store in crate::store::testing::stores() {
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
    }

    #[test]
    fn claims_per_connection_take_only_that_connections_events() {
        for store in crate::store::testing::stores() {
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
    }

    #[test]
    fn a_batch_claim_takes_all_or_nothing() {
        for store in crate::store::testing::stores() {
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
    }

    #[test]
    fn running_events_are_requeued_after_a_crash() {
        for store in crate::store::testing::stores() {
            store.insert_event(&event("1", "a")).unwrap();
            assert_eq!(store.claim_ready(10, now_ms()).unwrap().len(), 1);
            assert_eq!(store.requeue_running().unwrap(), 1);
            assert_eq!(store.claim_ready(10, now_ms()).unwrap().len(), 1);
        }
    }
}

/// The queue shared by several instances (PostgreSQL): each test opens one store per instance on
/// one schema of the test server.
#[cfg(test)]
mod shared_tests {
    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::store::testing::fresh_database_url;

    fn event(key: &str, order: &str, customer: &str) -> NewEvent {
        NewEvent {
            unique_key: Some(key.into()),
            connection: "c".into(),
            order_key: order.into(),
            customer_key: customer.into(),
            webhook_type: "customer.updated".into(),
            lago_id: order.into(),
            body: "{}".into(),
            settled: None,
        }
    }

    /// Three instances claim and finish a backlog at once: each event runs exactly once, and the
    /// events of one customer never overlap and finish in arrival order.
    #[test]
    fn instances_share_the_queue_without_doubles_and_keep_each_customers_order() {
        let Some(url) = fresh_database_url() else {
            return;
        };
        let intake = Store::open_postgres(&url).unwrap();
        let customers = 6;
        let per_customer = 15;
        for n in 0..per_customer {
            for c in 0..customers {
                let customer = format!("cus_{c}");
                // Every third event of a customer is one of its invoices (its own order key).
                let order = if n % 3 == 1 {
                    format!("inv_{c}_{n}")
                } else {
                    customer.clone()
                };
                intake
                    .insert_event(&event(&format!("{c}-{n}"), &order, &customer))
                    .unwrap();
            }
        }
        // Each instance logs (event id, customer) as it starts and finishes events, in one
        // shared, ordered journal.
        let journal = std::sync::Mutex::new(Vec::<(bool, i64, String)>::new());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                let (url, journal) = (url.clone(), &journal);
                scope.spawn(move || {
                    let store = Store::open_postgres(&url).unwrap();
                    let mut idle = 0;
                    while idle < 20 {
                        let claimed = store.claim_ready(4, now_ms()).unwrap();
                        if claimed.is_empty() {
                            idle += 1;
                            std::thread::sleep(Duration::from_millis(5));
                            continue;
                        }
                        idle = 0;
                        for e in &claimed {
                            journal
                                .lock()
                                .unwrap()
                                .push((true, e.id, e.order_key.clone()));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                        for e in &claimed {
                            journal
                                .lock()
                                .unwrap()
                                .push((false, e.id, e.order_key.clone()));
                            store
                                .finish_event(e.id, EventState::Synced, None, None)
                                .unwrap();
                        }
                    }
                });
            }
        });
        let journal = journal.into_inner().unwrap();
        let started: Vec<i64> = journal.iter().filter(|j| j.0).map(|j| j.1).collect();
        let mut unique = started.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            started.len(),
            "an event ran twice: {started:?}"
        );
        assert_eq!(started.len(), customers * per_customer, "events were lost");
        // Per order key: starts in id order, never two at once.
        let mut running: HashMap<String, i64> = HashMap::new();
        let mut last: HashMap<String, i64> = HashMap::new();
        for (start, id, key) in &journal {
            if *start {
                assert!(
                    !running.contains_key(key),
                    "{key}: event {id} started while {:?} ran",
                    running.get(key)
                );
                assert!(
                    last.get(key).is_none_or(|l| l < id),
                    "{key}: {id} ran out of order"
                );
                running.insert(key.clone(), *id);
                last.insert(key.clone(), *id);
            } else {
                running.remove(key);
            }
        }
        assert_eq!(intake.queue_stats().unwrap().count(EventState::Synced), 90);
    }

    /// An instance that stops renewing (killed) loses its events once the lease runs out; the
    /// instance that takes them over resumes them (plan kept) and the stopped one can no longer
    /// settle them. One that renews keeps its events.
    #[test]
    fn a_stopped_instances_events_are_taken_over_after_its_lease() {
        let Some(url) = fresh_database_url() else {
            return;
        };
        let mut dead = Store::open_postgres(&url).unwrap();
        let mut alive = Store::open_postgres(&url).unwrap();
        dead.set_lease(Duration::from_millis(200));
        alive.set_lease(Duration::from_millis(200));
        dead.insert_event(&event("1", "a", "a")).unwrap();
        let id = dead.claim_ready(1, now_ms()).unwrap()[0].id;
        dead.save_plan(
            id,
            &Plan {
                summary: "update".into(),
                steps: Vec::new(),
                learned: Vec::new(),
            },
        )
        .unwrap();
        let t0 = now_ms();
        // Within the lease (renewed once), the event stays with its instance.
        assert!(dead.renew_leases(t0).unwrap() == 1);
        assert!(alive.claim_ready(1, t0 + 100).unwrap().is_empty());
        // Past it, another instance takes it over, plan and all.
        let taken = alive.claim_ready(1, t0 + 1000).unwrap();
        assert_eq!(taken.len(), 1);
        assert!(
            taken[0].plan.is_some(),
            "the plan is kept for the new instance"
        );
        // The stopped instance's late answer changes nothing; the new owner's does. Its next
        // checkpoint fails, so it sends none of the plan's further steps.
        let late = dead.checkpoint(id, "hs", &Default::default(), &[]);
        assert!(
            late.unwrap_err().to_string().contains("lost the lease"),
            "a worker without the lease stops at its checkpoint"
        );
        dead.finish_event(id, EventState::Dead, Some("late"), None)
            .unwrap();
        assert_eq!(alive.event(id).unwrap().unwrap().state, EventState::Running);
        // Restarting the stopped instance does not take back what another instance runs.
        assert_eq!(dead.requeue_running().unwrap(), 0);
        alive
            .finish_event(id, EventState::Synced, None, None)
            .unwrap();
        assert_eq!(alive.event(id).unwrap().unwrap().state, EventState::Synced);
    }

    /// Webhooks redelivered to other instances at once are stored once.
    #[test]
    fn a_redelivery_to_another_instance_is_stored_once() {
        let Some(url) = fresh_database_url() else {
            return;
        };
        let news = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..4 {
                let (url, news) = (url.clone(), &news);
                scope.spawn(move || {
                    let store = Store::open_postgres(&url).unwrap();
                    for n in 0..20 {
                        if let Inserted::New(_) = store
                            .insert_event(&event(&format!("k{n}"), "a", "a"))
                            .unwrap()
                        {
                            news.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        assert_eq!(news.into_inner(), 20);
    }
}
