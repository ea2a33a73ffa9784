//! The harness's embedded database (SQLite): connection settings, Lago id → HubSpot id mappings
//! (including the deployed custom object type ids), and a sync log per Lago object.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{OptionalExtension, params};
use rusqlite_migration::{M, Migrations};
use serde::Serialize;

use crate::config::ConnectionSettings;
use crate::runtime::{KnownId, RecordKey, RecordKind};

/// One line of the sync log: what was sent for a Lago object and what HubSpot answered.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SyncLogEntry {
    pub at: String,
    pub webhook_type: String,
    pub lago_id: String,
    /// How an operator names the object, as Lago does (`lago-hubspot log` finds it by these).
    #[serde(flatten)]
    pub names: LagoNames,
    /// `synced`, `skipped` or `failed`.
    pub outcome: String,
    pub detail: String,
    /// JSON array of executed steps (method, path, status, attempts).
    pub steps: String,
}

/// The names Lago gives an object besides its `lago_id`; empty when it has none.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LagoNames {
    /// Lago's `object_type`: `customer`, `subscription`, `invoice`, `credit_note`, ...
    pub object_type: String,
    /// A customer's or a subscription's `external_id`.
    pub external_id: String,
    /// An invoice's or a credit note's `number`.
    pub number: String,
}

/// Every version of the state schema, oldest first, applied in order on open; the version reached
/// is SQLite's `user_version`. A released step is never edited: a schema change is a new file, so
/// a state file written by any earlier release opens, upgrades and keeps working.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_release_0_1_0.sql"),
    include_str!("migrations/0002_lookup_indexes.sql"),
    include_str!("migrations/0003_event_dependencies.sql"),
    include_str!("migrations/0004_customer_links.sql"),
    include_str!("migrations/0005_id_map_by_hubspot_id.sql"),
    include_str!("migrations/0006_sync_log_names.sql"),
];

/// The schema version this build writes (SQLite `user_version` after [`Store::open`]).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn migrate(db: &mut rusqlite::Connection) -> anyhow::Result<()> {
    let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
    migrations.to_latest(db).map_err(|error| match error {
        rusqlite_migration::Error::MigrationDefinition(
            rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
        ) => anyhow::anyhow!(
            "the state database was written by a newer lago-hubspot (its schema is past version {SCHEMA_VERSION}); use that release or a newer one"
        ),
        other => anyhow::Error::new(other).context("cannot upgrade the state database"),
    })
}

/// The state database. Modules with their own tables extend it with `impl Store` blocks of their
/// own (their tables are created by [`MIGRATIONS`]), so one connection and one transaction can
/// span ids, events and progress.
pub struct Store {
    pub(crate) db: rusqlite::Connection,
}

impl Store {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        create_owner_only(path)?;
        let db = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open the state database {}", path.display()))?;
        Self::init(db)
    }

    /// Runs `work` as one transaction: one durable commit (one fsync under `synchronous = FULL`)
    /// however many writes it makes, all of them or none. A batch of events records its plans,
    /// checkpoints and outcomes this way, so the webhook intake waits for one commit per batch,
    /// not one per event. Called inside another transaction, it joins that one.
    ///
    /// `work` must not open a transaction of its own (`Connection::transaction`).
    pub fn in_one_transaction<T>(
        &mut self,
        work: impl FnOnce(&mut Store) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        if !self.db.is_autocommit() {
            return work(self);
        }
        self.db.execute_batch("BEGIN IMMEDIATE")?;
        let done = work(self).and_then(|value| {
            self.db.execute_batch("COMMIT")?;
            Ok(value)
        });
        if done.is_err() && !self.db.is_autocommit() {
            // Nothing of the batch is kept; the caller retries it whole.
            let _ = self.db.execute_batch("ROLLBACK");
        }
        done
    }

    pub fn open_in_memory() -> anyhow::Result<Self> {
        Self::init(rusqlite::Connection::open_in_memory()?)
    }

    fn init(mut db: rusqlite::Connection) -> anyhow::Result<Self> {
        // WAL keeps readers off the writer's back; FULL makes every commit durable.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate(&mut db)?;
        Ok(Store { db })
    }

    /// The schema version of the open database (SQLite `user_version`).
    pub fn schema_version(&self) -> anyhow::Result<usize> {
        let version: i64 = self
            .db
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        Ok(usize::try_from(version)?)
    }

    pub fn save_connection(&self, settings: &ConnectionSettings) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT INTO connections (code, settings) VALUES (?1, ?2)
             ON CONFLICT (code) DO UPDATE SET settings = excluded.settings,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![settings.code, serde_json::to_string(settings)?],
        )?;
        Ok(())
    }

    pub fn connection(&self, code: &str) -> anyhow::Result<Option<ConnectionSettings>> {
        let text: Option<String> = self
            .db
            .query_row(
                "SELECT settings FROM connections WHERE code = ?1",
                [code],
                |row| row.get(0),
            )
            .optional()?;
        text.map(|t| serde_json::from_str(&t).context("stored connection settings are corrupt"))
            .transpose()
    }

    /// The only connection, when exactly one is stored.
    pub fn sole_connection(&self) -> anyhow::Result<Option<ConnectionSettings>> {
        let mut stmt = self
            .db
            .prepare("SELECT settings FROM connections LIMIT 2")?;
        let rows: Vec<String> = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        match rows.as_slice() {
            [one] => Ok(Some(serde_json::from_str(one)?)),
            _ => Ok(None),
        }
    }

    /// Stores ids a plan captured or learned, all in one transaction.
    pub fn put_ids(&mut self, connection: &str, ids: &[KnownId]) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        put_ids_in(&tx, connection, ids)?;
        tx.commit()?;
        Ok(())
    }

    /// The Lago id stored for HubSpot record `hubspot_id` of `kind`, if any.
    pub fn lago_id_for(
        &self,
        connection: &str,
        kind: RecordKind,
        hubspot_id: &str,
    ) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .query_row(
                "SELECT lago_id FROM id_map WHERE connection = ?1 AND hubspot_id = ?2 AND kind = ?3
                 LIMIT 1",
                params![connection, hubspot_id, kind_name(kind)],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Drops one mapping (HubSpot no longer has the record); `true` if there was one.
    pub fn forget_id(
        &self,
        connection: &str,
        kind: RecordKind,
        lago_id: &str,
    ) -> anyhow::Result<bool> {
        Ok(self.db.execute(
            "DELETE FROM id_map WHERE connection = ?1 AND kind = ?2 AND lago_id = ?3",
            params![connection, kind_name(kind), lago_id],
        )? > 0)
    }

    pub fn hubspot_id(
        &self,
        connection: &str,
        kind: RecordKind,
        lago_id: &str,
    ) -> anyhow::Result<Option<String>> {
        Ok(self
            .db
            .query_row(
                "SELECT hubspot_id FROM id_map WHERE connection = ?1 AND kind = ?2 AND lago_id = ?3",
                params![connection, kind_name(kind), lago_id],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Every mapping the store holds for any of these Lago ids.
    pub fn known_ids(&self, connection: &str, lago_ids: &[String]) -> anyhow::Result<Vec<KnownId>> {
        let mut stmt = self.db.prepare_cached(
            "SELECT kind, lago_id, hubspot_id FROM id_map WHERE connection = ?1 AND lago_id = ?2",
        )?;
        let mut known = Vec::new();
        for lago_id in lago_ids {
            let rows = stmt.query_map(params![connection, lago_id], row_to_known)?;
            for row in rows {
                known.extend(row?);
            }
        }
        Ok(known)
    }

    pub fn all_ids(&self, connection: &str) -> anyhow::Result<Vec<KnownId>> {
        let mut stmt = self.db.prepare(
            "SELECT kind, lago_id, hubspot_id FROM id_map WHERE connection = ?1 ORDER BY kind, lago_id",
        )?;
        let rows = stmt.query_map([connection], row_to_known)?;
        let mut known = Vec::new();
        for row in rows {
            known.extend(row?);
        }
        Ok(known)
    }

    pub fn log_sync(&mut self, connection: &str, entry: &SyncLogEntry) -> anyhow::Result<()> {
        self.log_sync_many(connection, std::slice::from_ref(entry))
    }

    /// Appends many sync-log lines in one transaction.
    pub fn log_sync_many(
        &mut self,
        connection: &str,
        entries: &[SyncLogEntry],
    ) -> anyhow::Result<()> {
        let tx = self.db.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO sync_log (connection, webhook_type, lago_id, outcome, detail, steps,
                     object_type, external_id, number)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for entry in entries {
                stmt.execute(params![
                    connection,
                    entry.webhook_type,
                    entry.lago_id,
                    entry.outcome,
                    entry.detail,
                    entry.steps,
                    entry.names.object_type,
                    entry.names.external_id,
                    entry.names.number
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The sync log of one Lago object, oldest first: "why is this invoice not in HubSpot?"
    pub fn sync_log(&self, connection: &str, lago_id: &str) -> anyhow::Result<Vec<SyncLogEntry>> {
        let mut stmt = self.db.prepare(
            "SELECT at, webhook_type, lago_id, outcome, detail, steps, object_type, external_id,
                 number
             FROM sync_log WHERE connection = ?1 AND lago_id = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![connection, lago_id], |row| {
            Ok(SyncLogEntry {
                at: row.get(0)?,
                webhook_type: row.get(1)?,
                lago_id: row.get(2)?,
                outcome: row.get(3)?,
                detail: row.get(4)?,
                steps: row.get(5)?,
                names: LagoNames {
                    object_type: row.get(6)?,
                    external_id: row.get(7)?,
                    number: row.get(8)?,
                },
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A new state file is created readable by its owner only: it holds HubSpot tokens. SQLite
/// gives its `-wal` and `-shm` files the same permissions.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    if !path.exists() {
        use std::os::unix::fs::OpenOptionsExt as _;
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map(drop)
            .or_else(|error| match error.kind() {
                // Created meanwhile by another process: its permissions stand.
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(error),
            })
            .with_context(|| format!("cannot create the state database {}", path.display()))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Upserts id mappings inside a caller's transaction.
pub(crate) fn put_ids_in(
    tx: &rusqlite::Connection,
    connection: &str,
    ids: &[KnownId],
) -> anyhow::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO id_map (connection, kind, lago_id, hubspot_id) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (connection, kind, lago_id) DO UPDATE SET hubspot_id = excluded.hubspot_id,
             updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
    )?;
    for id in ids {
        stmt.execute(params![
            connection,
            kind_name(id.key.kind),
            id.key.lago_id,
            id.hubspot_id
        ])?;
    }
    Ok(())
}

fn row_to_known(row: &rusqlite::Row<'_>) -> rusqlite::Result<Option<KnownId>> {
    let kind: String = row.get(0)?;
    Ok(kind_from_name(&kind).map(|kind| KnownId {
        key: RecordKey {
            kind,
            lago_id: row.get(1).unwrap_or_default(),
        },
        hubspot_id: row.get(2).unwrap_or_default(),
    }))
}

pub fn kind_name(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Company => "company",
        RecordKind::Contact => "contact",
        RecordKind::Subscription => "subscription",
        RecordKind::Invoice => "invoice",
        RecordKind::ObjectSchema => "object-schema",
        RecordKind::CreditNote => "credit-note",
    }
}

fn kind_from_name(name: &str) -> Option<RecordKind> {
    Some(match name {
        "company" => RecordKind::Company,
        "contact" => RecordKind::Contact,
        "subscription" => RecordKind::Subscription,
        "invoice" => RecordKind::Invoice,
        "object-schema" => RecordKind::ObjectSchema,
        "credit-note" => RecordKind::CreditNote,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every statement an event runs through the store (intake, routing, links, claim, plan,
    /// checkpoints, ids, sync log, outcome, backfill hashes), captured as SQLite runs it and
    /// checked with `EXPLAIN QUERY PLAN`: none may scan a whole table.
    #[test]
    fn every_per_event_query_is_indexed() {
        use std::sync::Mutex;

        use crate::backfill::ObjectKind;
        use crate::queue::{EventState, NewEvent};
        use crate::sync::OutcomeStatus;

        static TRACED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        // The statement text as prepared (`?` placeholders): its plan is the one SQLite runs.
        fn trace(event: rusqlite::trace::TraceEvent<'_>) {
            if let rusqlite::trace::TraceEvent::Stmt(_, sql) = event {
                TRACED.lock().unwrap().push(sql.to_owned());
            }
        }

        let mut store = Store::open_in_memory().unwrap();
        store.db.trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
            Some(trace),
        );
        let event = NewEvent {
            unique_key: Some("key-1".into()),
            connection: "a".into(),
            order_key: "cus_1".into(),
            customer_key: "cus_1".into(),
            webhook_type: "invoice.created".into(),
            lago_id: "inv_1".into(),
            body: "{}".into(),
            settled: None,
        };
        store.insert_event(&event).unwrap();
        store.customer_connection("cus_1").unwrap();
        store.customer_connection("cus_unknown").unwrap();
        // Links made by hand: looked up by routing and before planning.
        let customer_keys = ["cus_1".to_owned(), "ext-1".to_owned()];
        store.linked_connections(&customer_keys).unwrap();
        store.link_for("a", &customer_keys).unwrap();
        let claimed = store.claim_ready(8, i64::MAX).unwrap();
        store.claim_ready_in("a", 8, i64::MAX).unwrap();
        let id = claimed[0].id;
        store
            .known_ids("a", &["inv_1".into(), "cus_1".into()])
            .unwrap();
        store.hubspot_id("a", RecordKind::Company, "cus_1").unwrap();
        store.lago_id_for("a", RecordKind::Company, "1").unwrap();
        store
            .checkpoint(
                id,
                "a",
                &Default::default(),
                &[id_of(RecordKind::Invoice, "inv_1", "9")],
            )
            .unwrap();
        store
            .put_ids("a", &[id_of(RecordKind::Company, "cus_1", "1")])
            .unwrap();
        store
            .retry_later(id, 1, 0, "HubSpot answered 503", Some(503))
            .unwrap();
        store
            .finish_event(id, EventState::Synced, None, None)
            .unwrap();
        store.event(id).unwrap();
        store
            .log_sync(
                "a",
                &SyncLogEntry {
                    at: String::new(),
                    webhook_type: "invoice.created".into(),
                    lago_id: "inv_1".into(),
                    outcome: "synced".into(),
                    detail: String::new(),
                    steps: "[]".into(),
                    names: LagoNames::default(),
                },
            )
            .unwrap();
        store.sync_log("a", "inv_1").unwrap();
        store
            .backfill_hash("a", ObjectKind::Invoices, "inv_1")
            .unwrap();
        store
            .put_backfill_hash(
                "a",
                ObjectKind::Invoices,
                "inv_1",
                "h",
                OutcomeStatus::Synced,
            )
            .unwrap();
        store
            .db
            .trace_v2(rusqlite::trace::TraceEventCodes::empty(), None);

        let traced = std::mem::take(&mut *TRACED.lock().unwrap());
        let queries: Vec<&String> = traced
            .iter()
            .filter(|sql| {
                let head = sql.trim_start().to_ascii_uppercase();
                ["SELECT", "UPDATE", "DELETE", "INSERT"]
                    .iter()
                    .any(|verb| head.starts_with(verb))
            })
            .collect();
        assert!(queries.len() >= 15, "{queries:#?}");
        for sql in queries {
            let mut plan = store
                .db
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap();
            let unbound = vec![rusqlite::types::Null; plan.parameter_count()];
            let details: Vec<String> = plan
                .query_map(rusqlite::params_from_iter(unbound), |row| {
                    row.get::<_, String>(3)
                })
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap();
            for detail in &details {
                let full_scan = detail.starts_with("SCAN ") && !detail.contains(" USING ");
                assert!(!full_scan, "{sql}\n  scans a whole table: {details:?}");
                // A search on columns every row of a connection shares is a scan too.
                if let Some((_, constraints)) = detail
                    .strip_prefix("SEARCH ")
                    .and_then(|d| d.rsplit_once('('))
                {
                    let selective = constraints
                        .trim_end_matches(')')
                        .split(" AND ")
                        .map(|c| c.split(['=', '<', '>']).next().unwrap_or_default().trim())
                        .any(|column| {
                            !["connection", "state", "kind", "object_kind"].contains(&column)
                        });
                    assert!(selective, "{sql}\n  is not selective: {details:?}");
                }
            }
        }
    }

    fn id_of(kind: RecordKind, lago: &str, hubspot: &str) -> KnownId {
        KnownId {
            key: RecordKey {
                kind,
                lago_id: lago.into(),
            },
            hubspot_id: hubspot.into(),
        }
    }

    fn id(kind: RecordKind, lago: &str, hubspot: &str) -> KnownId {
        KnownId {
            key: RecordKey {
                kind,
                lago_id: lago.into(),
            },
            hubspot_id: hubspot.into(),
        }
    }

    #[test]
    fn ids_survive_reopening_and_are_scoped_per_connection() {
        let dir = std::env::temp_dir().join(format!("lago-hubspot-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("state.db");
        let _ = std::fs::remove_file(&path);
        {
            let mut store = Store::open(&path).unwrap();
            store
                .put_ids("a", &[id(RecordKind::Company, "cus_1", "101")])
                .unwrap();
            store
                .put_ids("a", &[id(RecordKind::Company, "cus_1", "102")])
                .unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store
                .hubspot_id("a", RecordKind::Company, "cus_1")
                .unwrap()
                .as_deref(),
            Some("102")
        );
        assert!(store.known_ids("b", &["cus_1".into()]).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
