//! The harness's embedded database (SQLite): connection settings, Lago id → HubSpot id mappings
//! (including the deployed custom object type ids), and a sync log per Lago object.

use std::path::Path;

use anyhow::Context as _;
use rusqlite::{OptionalExtension, params};
use serde::Serialize;

use crate::config::ConnectionSettings;
use crate::runtime::{KnownId, RecordKey, RecordKind};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    code       TEXT PRIMARY KEY,
    settings   TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE TABLE IF NOT EXISTS id_map (
    connection TEXT NOT NULL,
    kind       TEXT NOT NULL,
    lago_id    TEXT NOT NULL,
    hubspot_id TEXT NOT NULL,
    updated_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (connection, kind, lago_id)
);
CREATE TABLE IF NOT EXISTS sync_log (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    connection   TEXT NOT NULL,
    webhook_type TEXT NOT NULL,
    lago_id      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    detail       TEXT NOT NULL,
    steps        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sync_log_by_object ON sync_log (connection, lago_id);
";

/// One line of the sync log: what was sent for a Lago object and what HubSpot answered.
#[derive(Debug, Clone, Serialize)]
pub struct SyncLogEntry {
    pub at: String,
    pub webhook_type: String,
    pub lago_id: String,
    /// `synced`, `skipped` or `failed`.
    pub outcome: String,
    pub detail: String,
    /// JSON array of executed steps (method, path, status, attempts).
    pub steps: String,
}

/// Every module that keeps state adds its tables here; they all live in one database file.
const SCHEMAS: &[&str] = &[
    SCHEMA,
    crate::queue::SCHEMA,
    crate::backfill::SCHEMA,
    crate::connections::SCHEMA,
];

/// The state database. Modules with their own tables extend it with `impl Store` blocks of their
/// own (see `SCHEMAS`), so one connection and one transaction can span ids, events and progress.
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

    pub fn open_in_memory() -> anyhow::Result<Self> {
        Self::init(rusqlite::Connection::open_in_memory()?)
    }

    fn init(db: rusqlite::Connection) -> anyhow::Result<Self> {
        // WAL keeps readers off the writer's back; FULL makes every commit durable.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        for schema in SCHEMAS {
            db.execute_batch(schema)?;
        }
        Ok(Store { db })
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
                "INSERT INTO sync_log (connection, webhook_type, lago_id, outcome, detail, steps)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for entry in entries {
                stmt.execute(params![
                    connection,
                    entry.webhook_type,
                    entry.lago_id,
                    entry.outcome,
                    entry.detail,
                    entry.steps
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The sync log of one Lago object, oldest first: "why is this invoice not in HubSpot?"
    pub fn sync_log(&self, connection: &str, lago_id: &str) -> anyhow::Result<Vec<SyncLogEntry>> {
        let mut stmt = self.db.prepare(
            "SELECT at, webhook_type, lago_id, outcome, detail, steps FROM sync_log
             WHERE connection = ?1 AND lago_id = ?2 ORDER BY id",
        )?;
        let rows = stmt.query_map(params![connection, lago_id], |row| {
            Ok(SyncLogEntry {
                at: row.get(0)?,
                webhook_type: row.get(1)?,
                lago_id: row.get(2)?,
                outcome: row.get(3)?,
                detail: row.get(4)?,
                steps: row.get(5)?,
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
    tx: &rusqlite::Transaction<'_>,
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
    }
}

fn kind_from_name(name: &str) -> Option<RecordKind> {
    Some(match name {
        "company" => RecordKind::Company,
        "contact" => RecordKind::Contact,
        "subscription" => RecordKind::Subscription,
        "invoice" => RecordKind::Invoice,
        "object-schema" => RecordKind::ObjectSchema,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
