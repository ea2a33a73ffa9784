//! The harness's state: connection settings, Lago id → HubSpot id mappings (including the
//! deployed custom object type ids), a sync log per Lago object, and (in [`crate::queue`],
//! [`crate::links`], [`crate::connections`], [`crate::backfill`]) the webhook queue, links, access
//! tokens and backfill hashes.
//!
//! # Backends
//!
//! One [`Store`] runs on either of two databases, chosen by `--database`
//! ([`DatabaseUrl`]):
//!
//! - **SQLite** (the default, a file beside the binary): one process owns the state. rusqlite,
//!   WAL, `synchronous = FULL`, exactly as before this layer existed.
//! - **PostgreSQL**: any number of `serve` instances (and the other commands) share one state.
//!   The queue claims under expiring leases with `FOR UPDATE SKIP LOCKED`, and transactions that
//!   must be serial across instances take PostgreSQL advisory locks (see [`crate::queue`]).
//!
//! Why rusqlite beside the `postgres` crate (tokio-postgres) rather than sqlx: the store is a
//! synchronous object that every caller (pipeline, worker, server, CLI) uses behind one mutex,
//! and its SQLite side has a released file format, a fixture of 0.1.0 and rusqlite_migration's
//! `user_version` bookkeeping. Keeping rusqlite leaves that path byte-for-byte as it was, with no
//! async rewrite of every caller; sqlx would have made every store call async and replaced the
//! migration bookkeeping of existing files. The blocking `postgres` client is rust-postgres's
//! own synchronous face, so both backends keep the same synchronous interface ([`crate::db`]).
//! Each `Store` holds one connection, like the SQLite one; instances scale by running more
//! processes, which is what the issue asks of PostgreSQL.
//!
//! # One set of migrations
//!
//! [`MIGRATIONS`] are written once, in the SQL both databases accept, and applied in order on
//! open. SQLite records the version reached in `user_version` (rusqlite_migration); PostgreSQL in
//! the one-row table `lago_hubspot_schema`, under an advisory lock so that instances starting
//! together migrate once. [`crate::db::to_postgres`] rewrites the few SQLite spellings (integer
//! keys, the timestamp default) for PostgreSQL; a test applies every step to both.

use std::path::Path;

use anyhow::Context as _;
use rusqlite_migration::{M, Migrations};
use serde::Serialize;

use crate::config::ConnectionSettings;
pub use crate::db::{Backend, DatabaseUrl};
use crate::db::{Db, Row, Tx};
use crate::runtime::{KnownId, RecordKey, RecordKind};
use crate::sql_params;

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
/// is SQLite's `user_version` (PostgreSQL: `lago_hubspot_schema.version`). A released step is
/// never edited: a schema change is a new file, so a state written by any earlier release opens,
/// upgrades and keeps working. Each step is written in the SQL both backends accept.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_release_0_1_0.sql"),
    include_str!("migrations/0002_lookup_indexes.sql"),
    include_str!("migrations/0003_event_dependencies.sql"),
    include_str!("migrations/0004_customer_links.sql"),
    include_str!("migrations/0005_id_map_by_hubspot_id.sql"),
    include_str!("migrations/0006_event_leases.sql"),
    include_str!("migrations/0007_shared_budget_and_refresh.sql"),
    include_str!("migrations/0008_sync_log_names.sql"),
    include_str!("migrations/0009_shared_daily_limit.sql"),
];

/// The schema version this build writes (SQLite `user_version` after [`Store::open`]).
pub const SCHEMA_VERSION: usize = MIGRATIONS.len();

fn too_new() -> anyhow::Error {
    anyhow::anyhow!(
        "the state database was written by a newer lago-hubspot (its schema is past version {SCHEMA_VERSION}); use that release or a newer one"
    )
}

fn migrate_sqlite(db: &mut rusqlite::Connection) -> anyhow::Result<()> {
    let migrations = Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect());
    migrations.to_latest(db).map_err(|error| match error {
        rusqlite_migration::Error::MigrationDefinition(
            rusqlite_migration::MigrationDefinitionError::DatabaseTooFarAhead,
        ) => too_new(),
        other => anyhow::Error::new(other).context("cannot upgrade the state database"),
    })
}

/// A failed creation or upgrade of the tables at `url`, with where; a refused permission also
/// says the usual cause and its remedy.
fn tables_in(url: &str, error: anyhow::Error) -> anyhow::Error {
    let denied = error.chain().any(|cause| {
        cause
            .downcast_ref::<postgres::Error>()
            .and_then(postgres::Error::code)
            .is_some_and(|code| *code == postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    });
    let at = DatabaseUrl::Postgres(url.to_owned()).display();
    if denied {
        error.context(format!(
            "cannot create the lago-hubspot tables in {at}: the role needs CREATE on the \
             database's schema (from PostgreSQL 15 on, only the database owner has it on `public`: \
             GRANT CREATE ON SCHEMA public TO the role, or connect as the owner)"
        ))
    } else if error.chain().any(|cause| cause.is::<postgres::Error>()) {
        error.context(format!(
            "cannot create or upgrade the lago-hubspot tables in {at}"
        ))
    } else {
        error
    }
}

/// The advisory lock key that serialises schema upgrades across instances ("lagohs01").
const MIGRATION_LOCK: i64 = 0x6c61_676f_6873_3031;

fn migrate_postgres(db: &Db) -> anyhow::Result<()> {
    // An up-to-date state needs no DDL, so a role with only its tables' rights (the owner
    // migrated) runs every command: PostgreSQL checks CREATE even for `IF NOT EXISTS`.
    let exists: bool = db
        .query_one("SELECT to_regclass('lago_hubspot_schema') IS NOT NULL", &[])?
        .get(0)?;
    if exists {
        let version: Option<usize> = db
            .query_opt("SELECT version FROM lago_hubspot_schema", &[])?
            .map(|row| row.get(0))
            .transpose()?;
        match version {
            Some(version) if version > SCHEMA_VERSION => return Err(too_new()),
            Some(SCHEMA_VERSION) => return Ok(()),
            _ => {}
        }
    }
    db.transaction(|tx| {
        tx.execute(
            "SELECT pg_advisory_xact_lock(?1)",
            sql_params![MIGRATION_LOCK],
        )?;
        // `IF NOT EXISTS` tells a NOTICE on every start when the table exists: nothing to say.
        tx.batch(
            "SET LOCAL client_min_messages = warning;
             CREATE TABLE IF NOT EXISTS lago_hubspot_schema (version BIGINT NOT NULL);
             INSERT INTO lago_hubspot_schema (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM lago_hubspot_schema);",
        )?;
        let version: usize = tx
            .query_opt("SELECT version FROM lago_hubspot_schema", &[])?
            .context("the schema version row is missing")?
            .get(0)?;
        if version > SCHEMA_VERSION {
            return Err(too_new());
        }
        for (step, sql) in MIGRATIONS.iter().enumerate().skip(version) {
            tx.batch(&crate::db::to_postgres(sql)).with_context(|| {
                format!("cannot upgrade the state database to version {}", step + 1)
            })?;
        }
        tx.execute(
            "UPDATE lago_hubspot_schema SET version = ?1",
            sql_params![SCHEMA_VERSION],
        )?;
        Ok(())
    })
}

/// The state database. Modules with their own tables extend it with `impl Store` blocks of their
/// own (their tables are created by [`MIGRATIONS`]), so one connection and one transaction can
/// span ids, events and progress.
pub struct Store {
    pub(crate) db: Db,
    /// Who this store's queue claims are for: unique per open store (host, process, random).
    pub(crate) owner: String,
    /// How long a claim holds an event without renewal ([`Store::renew_leases`]), ms.
    pub(crate) lease_ms: i64,
}

/// How long a claimed event stays with its instance without a renewal, by default.
pub const DEFAULT_LEASE: std::time::Duration = std::time::Duration::from_secs(10);

fn new_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    format!(
        "{host}:{}:{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

impl Store {
    /// Opens (creating when missing, readable by its owner only) the SQLite state file at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        create_owner_only(path)?;
        let db = rusqlite::Connection::open(path)
            .with_context(|| format!("cannot open the state database {}", path.display()))?;
        Self::init_sqlite(db)
    }

    pub fn open_in_memory() -> anyhow::Result<Self> {
        Self::init_sqlite(rusqlite::Connection::open_in_memory()?)
    }

    /// Opens the state `url` names: an SQLite file (created when missing) or a PostgreSQL
    /// database (which must exist; its tables are created or upgraded).
    pub fn open_url(url: &DatabaseUrl) -> anyhow::Result<Self> {
        match url {
            DatabaseUrl::Sqlite(path) => Self::open(path),
            DatabaseUrl::Postgres(url) => Self::open_postgres(url),
        }
    }

    /// Connects to PostgreSQL at `url` (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`, libpq's
    /// query options such as `?options=-csearch_path%3Dname` allowed) and upgrades its schema.
    pub fn open_postgres(url: &str) -> anyhow::Result<Self> {
        let connection = crate::db::PgConnection::connect(url)?;
        let db = Db::Postgres(Box::new(std::cell::RefCell::new(connection)));
        migrate_postgres(&db).map_err(|error| tables_in(url, error))?;
        Ok(Store::with(db))
    }

    /// Like [`Store::open_postgres`], for commands that never create a state: errors when the
    /// database holds no lago-hubspot state yet.
    pub fn open_postgres_existing(url: &str) -> anyhow::Result<Self> {
        let connection = crate::db::PgConnection::connect(url)?;
        let db = Db::Postgres(Box::new(std::cell::RefCell::new(connection)));
        let exists: bool = db
            .query_one("SELECT to_regclass('lago_hubspot_schema') IS NOT NULL", &[])?
            .get(0)?;
        anyhow::ensure!(
            exists,
            "no lago-hubspot state in the database {}: a state is created by `lago-hubspot connect \
             --connection CODE` (or `deploy`, `sync`, `backfill`, `serve`, `link`) with the same --database",
            DatabaseUrl::Postgres(url.to_owned()).display()
        );
        migrate_postgres(&db).map_err(|error| tables_in(url, error))?;
        Ok(Store::with(db))
    }

    fn init_sqlite(mut db: rusqlite::Connection) -> anyhow::Result<Self> {
        // WAL keeps readers off the writer's back; FULL makes every commit durable.
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        migrate_sqlite(&mut db)?;
        Ok(Store::with(Db::Sqlite(db)))
    }

    fn with(db: Db) -> Store {
        Store {
            db,
            owner: new_owner(),
            lease_ms: DEFAULT_LEASE.as_millis() as i64,
        }
    }

    /// Which database this store runs on.
    pub fn backend(&self) -> Backend {
        self.db.backend()
    }

    /// The URL of a PostgreSQL state (`None` for a SQLite file), for a connection of one's own
    /// ([`crate::arrivals`]).
    pub fn postgres_url(&self) -> Option<String> {
        self.db.postgres_url()
    }

    /// The schema version of the open database (SQLite `user_version`).
    pub fn schema_version(&self) -> anyhow::Result<usize> {
        match &self.db {
            Db::Sqlite(db) => {
                let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
                Ok(usize::try_from(version)?)
            }
            Db::Postgres(_) => self
                .db
                .query_one("SELECT version FROM lago_hubspot_schema", &[])?
                .get(0),
        }
    }

    pub fn save_connection(&self, settings: &ConnectionSettings) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT INTO connections (code, settings) VALUES (?1, ?2)
             ON CONFLICT (code) DO UPDATE SET settings = excluded.settings,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            sql_params![settings.code, serde_json::to_string(settings)?],
        )?;
        Ok(())
    }

    pub fn connection(&self, code: &str) -> anyhow::Result<Option<ConnectionSettings>> {
        let text: Option<String> = self
            .db
            .query_opt(
                "SELECT settings FROM connections WHERE code = ?1",
                sql_params![code],
            )?
            .map(|row| row.get(0))
            .transpose()?;
        text.map(|t| serde_json::from_str(&t).context("stored connection settings are corrupt"))
            .transpose()
    }

    /// The only connection, when exactly one is stored.
    pub fn sole_connection(&self) -> anyhow::Result<Option<ConnectionSettings>> {
        let rows = self
            .db
            .query("SELECT settings FROM connections LIMIT 2", &[])?;
        match rows.as_slice() {
            [one] => Ok(Some(serde_json::from_str(&one.get::<String>(0)?)?)),
            _ => Ok(None),
        }
    }

    /// Stores ids a plan captured or learned, all in one transaction.
    pub fn put_ids(&mut self, connection: &str, ids: &[KnownId]) -> anyhow::Result<()> {
        self.db.transaction(|tx| put_ids_in(tx, connection, ids))
    }

    /// The Lago id stored for HubSpot record `hubspot_id` of `kind`, if any.
    pub fn lago_id_for(
        &self,
        connection: &str,
        kind: RecordKind,
        hubspot_id: &str,
    ) -> anyhow::Result<Option<String>> {
        self.db
            .query_opt(
                "SELECT lago_id FROM id_map WHERE connection = ?1 AND hubspot_id = ?2 AND kind = ?3
                 LIMIT 1",
                sql_params![connection, hubspot_id, kind_name(kind)],
            )?
            .map(|row| row.get(0))
            .transpose()
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
            sql_params![connection, kind_name(kind), lago_id],
        )? > 0)
    }

    pub fn hubspot_id(
        &self,
        connection: &str,
        kind: RecordKind,
        lago_id: &str,
    ) -> anyhow::Result<Option<String>> {
        self.db
            .query_opt(
                "SELECT hubspot_id FROM id_map WHERE connection = ?1 AND kind = ?2 AND lago_id = ?3",
                sql_params![connection, kind_name(kind), lago_id],
            )?
            .map(|row| row.get(0))
            .transpose()
    }

    /// Every mapping the store holds for any of these Lago ids.
    pub fn known_ids(&self, connection: &str, lago_ids: &[String]) -> anyhow::Result<Vec<KnownId>> {
        let mut known = Vec::new();
        for lago_id in lago_ids {
            let rows = self.db.query(
                "SELECT kind, lago_id, hubspot_id FROM id_map WHERE connection = ?1 AND lago_id = ?2",
                sql_params![connection, lago_id],
            )?;
            for row in rows {
                known.extend(row_to_known(&row)?);
            }
        }
        Ok(known)
    }

    pub fn all_ids(&self, connection: &str) -> anyhow::Result<Vec<KnownId>> {
        let rows = self.db.query(
            "SELECT kind, lago_id, hubspot_id FROM id_map WHERE connection = ?1 ORDER BY kind, lago_id",
            sql_params![connection],
        )?;
        let mut known = Vec::new();
        for row in rows {
            known.extend(row_to_known(&row)?);
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
        self.db.transaction(|tx| {
            for entry in entries {
                tx.execute(
                    "INSERT INTO sync_log (connection, webhook_type, lago_id, outcome, detail, steps,
                         object_type, external_id, number)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    sql_params![
                        connection,
                        entry.webhook_type,
                        entry.lago_id,
                        entry.outcome,
                        entry.detail,
                        entry.steps,
                        entry.names.object_type,
                        entry.names.external_id,
                        entry.names.number
                    ],
                )?;
            }
            Ok(())
        })
    }

    /// The sync log of one Lago object, oldest first: "why is this invoice not in HubSpot?"
    pub fn sync_log(&self, connection: &str, lago_id: &str) -> anyhow::Result<Vec<SyncLogEntry>> {
        self.db
            .query(
                "SELECT at, webhook_type, lago_id, outcome, detail, steps, object_type, external_id,
                     number
                 FROM sync_log WHERE connection = ?1 AND lago_id = ?2 ORDER BY id",
                sql_params![connection, lago_id],
            )?
            .iter()
            .map(|row| {
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
            })
            .collect()
    }
}

/// A new state file is created readable by its owner only: it holds HubSpot tokens. SQLite
/// gives its `-wal` and `-shm` files the same permissions.
fn create_owner_only(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    if !path.exists() && !crate::db::is_memory(path) {
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
pub(crate) fn put_ids_in(tx: &Tx<'_, '_>, connection: &str, ids: &[KnownId]) -> anyhow::Result<()> {
    for id in ids {
        tx.execute(
            "INSERT INTO id_map (connection, kind, lago_id, hubspot_id) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (connection, kind, lago_id) DO UPDATE SET hubspot_id = excluded.hubspot_id,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            sql_params![
                connection,
                kind_name(id.key.kind),
                id.key.lago_id,
                id.hubspot_id
            ],
        )?;
    }
    Ok(())
}

fn row_to_known(row: &Row) -> anyhow::Result<Option<KnownId>> {
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

/// Stores for tests on both backends: PostgreSQL is the server `LAGO_HUBSPOT_TEST_DATABASE_URL`
/// names (`tools/pg-test-cluster run -- …` starts one and sets it), each store in a schema of its
/// own. Without the variable the PostgreSQL half is skipped with a notice, unless
/// `LAGO_HUBSPOT_REQUIRE_PG=1` (CI), where it fails.
pub mod testing {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::Store;

    /// The environment variable naming the test server.
    pub const DATABASE_ENV: &str = "LAGO_HUBSPOT_TEST_DATABASE_URL";
    /// Set to 1 where a missing test server is an error (CI).
    pub const REQUIRE_ENV: &str = "LAGO_HUBSPOT_REQUIRE_PG";

    /// The test server's URL, or `None` (with a notice on stderr) when there is none.
    ///
    /// # Panics
    /// When there is none and `LAGO_HUBSPOT_REQUIRE_PG=1`.
    pub fn server_url() -> Option<String> {
        match std::env::var(DATABASE_ENV) {
            Ok(url) if !url.trim().is_empty() => Some(url),
            _ if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") => panic!(
                "{REQUIRE_ENV}=1 but {DATABASE_ENV} is unset: run the tests under tools/pg-test-cluster run -- …"
            ),
            _ => {
                eprintln!(
                    "notice: {DATABASE_ENV} is unset, skipping the PostgreSQL half of this test (tools/pg-test-cluster run -- cargo test …)"
                );
                None
            }
        }
    }

    /// A URL on the test server whose tables live in a new, empty schema (`None` as
    /// [`server_url`]): stores opened on it see only each other.
    pub fn fresh_database_url() -> Option<String> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let url = server_url()?;
        let schema = format!(
            "t_{}_{}_{:06x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>() & 0xff_ffff
        );
        let run = || -> anyhow::Result<()> {
            let mut client = postgres::Client::connect(&url, postgres::NoTls)?;
            client.batch_execute(&format!("CREATE SCHEMA {schema}"))?;
            Ok(())
        };
        crate::db::off_runtime(run).expect("cannot create a schema on the test server");
        let separator = if url.contains('?') { '&' } else { '?' };
        Some(format!("{url}{separator}options=-csearch_path%3D{schema}"))
    }

    /// An in-memory SQLite store, and a PostgreSQL one in a fresh schema when a test server is
    /// there: a test runs its body on each.
    pub fn stores() -> Vec<Store> {
        let mut stores = vec![Store::open_in_memory().expect("an in-memory store opens")];
        if let Some(url) = fresh_database_url() {
            stores.push(Store::open_postgres(&url).expect("the test server's store opens"));
        }
        stores
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every store call an event makes (intake, routing, links, claim, lease renewal, plan,
    /// checkpoints, ids, sync log, outcome, backfill hashes, the shared rate budget), and the
    /// requeue at start-up: the statements both halves of `every_per_event_query_is_indexed`
    /// check are the ones these calls run.
    fn per_event_calls(store: &mut Store) {
        use crate::backfill::ObjectKind;
        use crate::queue::{EventState, NewEvent};
        use crate::ratelimit::Rate;
        use crate::sync::OutcomeStatus;

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
        store.renew_leases(i64::MAX).unwrap();
        store
            .known_ids("a", &["inv_1".into(), "cus_1".into()])
            .unwrap();
        store.hubspot_id("a", RecordKind::Company, "cus_1").unwrap();
        store.lago_id_for("a", RecordKind::Company, "1").unwrap();
        // Each request to HubSpot takes a slot of the portal's window, answered later.
        let rate = Rate {
            max: 10,
            interval: std::time::Duration::from_secs(10),
        };
        let slot = store
            .take_rate_slot("portal 1", "api", rate, 1_000)
            .unwrap()
            .unwrap();
        store.rate_slot_answered(slot, 1_100).unwrap();
        // The room before a group is claimed, and the daily record each request reads.
        store
            .recent_rate_slots("portal 1", "api", rate, 1_200)
            .unwrap();
        store.spend_day("portal 1", 86_400_000).unwrap();
        store.day_spent_until("portal 1", 1_200).unwrap();
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
        store.requeue_running().unwrap();
    }

    /// The statements a query plan applies to (SELECT, UPDATE, DELETE, INSERT, INSERT…SELECT),
    /// each once, in the order they first ran.
    fn plannable(statements: Vec<String>) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let queries: Vec<String> = statements
            .into_iter()
            .filter(|sql| {
                let head = sql.trim_start().to_ascii_uppercase();
                ["SELECT", "UPDATE", "DELETE", "INSERT"]
                    .iter()
                    .any(|verb| head.starts_with(verb))
            })
            .filter(|sql| seen.insert(sql.clone()))
            .collect();
        assert!(queries.len() >= 15, "{queries:#?}");
        queries
    }

    /// [`per_event_calls`] on SQLite: each statement, captured as SQLite runs it, is checked
    /// with `EXPLAIN QUERY PLAN`: none may scan a whole table.
    #[test]
    fn every_per_event_query_is_indexed() {
        use std::sync::Mutex;

        static TRACED: Mutex<Vec<String>> = Mutex::new(Vec::new());
        // The statement text as prepared (`?` placeholders): its plan is the one SQLite runs.
        fn trace(event: rusqlite::trace::TraceEvent<'_>) {
            if let rusqlite::trace::TraceEvent::Stmt(_, sql) = event {
                TRACED.lock().unwrap().push(sql.to_owned());
            }
        }

        let mut store = Store::open_in_memory().unwrap();
        store.db.sqlite().unwrap().trace_v2(
            rusqlite::trace::TraceEventCodes::SQLITE_TRACE_STMT,
            Some(trace),
        );
        per_event_calls(&mut store);
        store
            .db
            .sqlite()
            .unwrap()
            .trace_v2(rusqlite::trace::TraceEventCodes::empty(), None);

        let traced = std::mem::take(&mut *TRACED.lock().unwrap());
        for sql in plannable(traced) {
            let mut plan = store
                .db
                .sqlite()
                .unwrap()
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

    /// [`per_event_calls`] on PostgreSQL: each statement, captured as sent (after
    /// [`crate::db::to_postgres`]), is prepared and its generic plan (any parameter values)
    /// explained without running it. With sequential scans disabled the planner still picks
    /// one where no index applies, so a `Seq Scan` in a plan is a statement without an index.
    /// It may also read a whole table through an index instead (an index scan with no
    /// `Index Cond` on the index's first column, for an order or a later column): that is a
    /// scan too, unless the index is partial (it holds only pending or running events).
    #[test]
    fn every_per_event_query_is_indexed_on_postgres() {
        let Some(url) = testing::fresh_database_url() else {
            return;
        };
        let mut store = Store::open_postgres(&url).unwrap();
        let ((), sent) = crate::db::capture_postgres(|| per_event_calls(&mut store));
        drop(store);

        // A session of its own, in the store's schema (the URL sets the search path).
        let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
        client
            .batch_execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan")
            .unwrap();
        // Each index of the schema: its first column, and whether it is partial.
        let indexes: std::collections::HashMap<String, (String, bool)> = client
            .query(
                "SELECT c.relname::TEXT, a.attname::TEXT, i.indpred IS NOT NULL
                 FROM pg_index i
                 JOIN pg_class c ON c.oid = i.indexrelid
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
                 WHERE c.relnamespace = current_schema()::regnamespace",
                &[],
            )
            .unwrap()
            .iter()
            .map(|row| (row.get(0), (row.get(1), row.get(2))))
            .collect();
        assert!(
            indexes.values().any(|(_, partial)| *partial),
            "the queue's partial indexes are there: {indexes:?}"
        );
        let mut explain = |sql: &str| -> anyhow::Result<Vec<String>> {
            client.batch_execute(&format!("PREPARE q AS {sql}"))?;
            let parameters: i32 = client
                .query_one(
                    "SELECT cardinality(parameter_types) FROM pg_prepared_statements
                     WHERE name = 'q'",
                    &[],
                )?
                .get(0);
            let nulls = vec!["NULL"; usize::try_from(parameters)?].join(", ");
            let execute = if nulls.is_empty() {
                "EXPLAIN EXECUTE q".to_owned()
            } else {
                format!("EXPLAIN EXECUTE q({nulls})")
            };
            let plan = client
                .query(&execute, &[])?
                .iter()
                .map(|row| row.get(0))
                .collect();
            client.batch_execute("DEALLOCATE q")?;
            Ok(plan)
        };
        for sql in plannable(sent) {
            let plan = explain(&sql).unwrap_or_else(|error| panic!("{sql}\n  {error:#}"));
            let shown = plan.join("\n");
            let seq_scan = plan.iter().any(|line| line.contains("Seq Scan on "));
            assert!(
                !seq_scan,
                "{sql}\n  scans a whole table on PostgreSQL:\n{shown}"
            );
            for (at, line) in plan.iter().enumerate() {
                let Some(index) = scanned_index(line) else {
                    continue;
                };
                let (first, partial) = indexes
                    .get(index)
                    .unwrap_or_else(|| panic!("{index} is not an index of the schema"));
                // A node's details follow it, up to the next node. A condition on a later
                // column only still reads the whole index.
                let searched = plan[at + 1..]
                    .iter()
                    .take_while(|detail| !detail.contains("->"))
                    .filter_map(|detail| detail.trim_start().strip_prefix("Index Cond:"))
                    .any(|condition| condition.contains(&format!("({first} ")));
                assert!(
                    searched || *partial,
                    "{sql}\n  reads all of {index} on PostgreSQL (no condition on {first}):\n{shown}"
                );
            }
        }
    }

    /// The index a line of a PostgreSQL plan scans, if it is an index scan node.
    fn scanned_index(line: &str) -> Option<&str> {
        let after = match line.split_once("Bitmap Index Scan on ") {
            Some((_, after)) => after,
            None if line.contains("Index Scan") || line.contains("Index Only Scan") => {
                line.split_once(" using ")?.1
            }
            None => return None,
        };
        after.split_whitespace().next()
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

#[cfg(test)]
mod postgres_tests {
    use super::*;

    /// An up-to-date state runs under a role with only its tables' rights (the owner migrated):
    /// no command needs CREATE on the schema then.
    #[test]
    fn a_role_with_table_rights_only_runs_an_up_to_date_state() {
        let Some(url) = testing::fresh_database_url() else {
            return;
        };
        let owner = Store::open_postgres(&url).unwrap();
        let schema: String = owner
            .db
            .query_one("SELECT current_schema()", &[])
            .unwrap()
            .get(0)
            .unwrap();
        let role = format!("r_{schema}");
        owner
            .db
            .transaction(|tx| {
                tx.batch(&format!(
                    "CREATE ROLE {role} LOGIN;
                     GRANT USAGE ON SCHEMA {schema} TO {role};
                     GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};
                     GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {role};"
                ))
            })
            .unwrap();
        let limited_url = url.replacen("://postgres@", &format!("://{role}@"), 1);
        assert_ne!(
            limited_url, url,
            "the test server's URL names its user: {url}"
        );
        let limited = Store::open_postgres_existing(&limited_url).unwrap();
        limited
            .insert_event(&crate::queue::testing::event("k", "cus_1"))
            .unwrap();
        assert_eq!(limited.claim_ready(1, i64::MAX).unwrap().len(), 1);
        Store::open_postgres(&limited_url).expect("serve opens it too");
    }

    /// A server that closes the store's connection (a restart, an administrator) costs the call
    /// that meets it, not the store: the next call connects again, in the same schema.
    #[test]
    fn a_closed_connection_is_opened_again() {
        let Some(url) = testing::fresh_database_url() else {
            return;
        };
        let store = Store::open_postgres(&url).unwrap();
        store
            .save_connection(&ConnectionSettings {
                code: "hs".into(),
                ..ConnectionSettings::default()
            })
            .unwrap();
        let pid: i64 = store
            .db
            .query_one("SELECT pg_backend_pid()", &[])
            .unwrap()
            .get(0)
            .unwrap();
        let admin = Store::open_postgres(&url).unwrap();
        admin
            .db
            .execute(
                "SELECT pg_terminate_backend(CAST(?1 AS INT4))",
                sql_params![pid],
            )
            .unwrap();
        // Terminating is a signal: wait until the backend is gone.
        for _ in 0..200 {
            let alive: i64 = admin
                .db
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = CAST(?1 AS INT4)",
                    sql_params![pid],
                )
                .unwrap()
                .get(0)
                .unwrap();
            if alive == 0 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let first = store.connection("hs");
        let second = store.connection("hs").expect("connected again");
        assert_eq!(second.map(|c| c.code).as_deref(), Some("hs"), "{first:?}");
    }
}
