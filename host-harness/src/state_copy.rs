//! Moving a state to another database (`lago-hubspot migrate --from FILE --to URL`): every table
//! a user would otherwise rebuild by resyncing (connections with their sealed tokens, HubSpot id
//! mappings, links, backfill hashes, the sync log and the webhook queue) is copied as it is, in
//! one transaction on the target, so the move is all or nothing.

use crate::db::{Backend, Value};
use crate::store::Store;

/// The tables copied, with their columns (ids included: the sync log and the queue keep their
/// numbers, so `events show ID` still finds an event after the move).
const TABLES: &[(&str, &str)] = &[
    ("connections", "code, settings, updated_at"),
    (
        "connection_access",
        "code, hubspot_url, portal_id, kind, secrets, client_id, token_url, scopes, expires_at_ms,
         is_default, status, status_detail, generation, connected_at, updated_at",
    ),
    (
        "id_map",
        "connection, kind, lago_id, hubspot_id, updated_at",
    ),
    (
        "customer_links",
        "connection, customer_key, hubspot_id, object_type, created_at",
    ),
    (
        "backfill_hashes",
        "connection, object_kind, lago_id, content_hash, outcome, updated_at",
    ),
    (
        "sync_log",
        "id, at, connection, webhook_type, lago_id, outcome, detail, steps, object_type,
         external_id, number",
    ),
    (
        "events",
        "id, unique_key, received_at_ms, connection, order_key, webhook_type, lago_id, body, state,
         attempts, next_attempt_ms, plan, progress, last_error, last_status, updated_at_ms,
         customer_key",
    ),
    // A daily limit met on the source holds on the target until its reset.
    ("portal_daily_limit", "portal, until_ms"),
];

/// How many rows of each table a copy wrote, in [`TABLES`] order.
pub type Copied = Vec<(&'static str, usize)>;

impl Store {
    /// Copies this state into `target`, which must hold none yet (no connection, no event, no
    /// mapping): an error says so and writes nothing. Events that were running when the source
    /// stopped are copied as waiting, to run again (from their checkpoint) on the target.
    pub fn copy_into(&self, target: &Store) -> anyhow::Result<Copied> {
        // Every table the copy writes, so nothing of the target's is merged with the source's.
        for (table, _) in TABLES {
            let rows: i64 = target
                .db
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])?
                .get(0)?;
            anyhow::ensure!(
                rows == 0,
                "the target already holds a state ({rows} {} in {table}); migrate copies into an empty one only",
                if rows == 1 { "row" } else { "rows" }
            );
        }
        let mut data = Vec::new();
        for (table, columns) in TABLES {
            data.push((
                *table,
                *columns,
                self.db
                    .query(&format!("SELECT {columns} FROM {table}"), &[])?,
            ));
        }
        target.db.transaction(|tx| {
            let mut copied = Vec::new();
            for (table, columns, rows) in &data {
                let count = columns.split(',').count();
                let placeholders: Vec<String> = (1..=count).map(|n| format!("?{n}")).collect();
                let sql = format!(
                    "INSERT INTO {table} ({columns}) VALUES ({})",
                    placeholders.join(", ")
                );
                for row in rows {
                    let mut values: Vec<Value> = row.0.clone();
                    if *table == "events" && values.get(8) == Some(&Value::Text("running".into())) {
                        values[8] = Value::Text("pending".into());
                    }
                    tx.execute(&sql, &values)?;
                }
                copied.push((*table, rows.len()));
            }
            // Identity columns go on from the copied ids.
            if tx.backend() == Backend::Postgres {
                for table in ["events", "sync_log"] {
                    tx.execute(
                        &format!(
                            "SELECT setval(pg_get_serial_sequence('{table}', 'id'),
                                 GREATEST((SELECT MAX(id) FROM {table}), 1))"
                        ),
                        &[],
                    )?;
                }
            }
            Ok(copied)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::{EventState, NewEvent};
    use crate::runtime::{KnownId, RecordKey, RecordKind};

    /// What the copy leaves behind, each with why: state of the instances running on the source
    /// (leases, shared windows), which means nothing to the target's instances.
    const NOT_COPIED: &[(&str, &str)] = &[
        ("events.lease_owner", "a running event is copied as waiting"),
        (
            "events.lease_until_ms",
            "a running event is copied as waiting",
        ),
        (
            "connection_access.refresh_owner",
            "an OAuth refresh in progress on the source",
        ),
        (
            "connection_access.refresh_until_ms",
            "an OAuth refresh in progress on the source",
        ),
        ("rate_slots", "the requests of the last seconds"),
    ];

    fn event(key: &str) -> NewEvent {
        crate::queue::testing::event(key, "cus_1")
    }

    /// Every column of every table of the schema is copied or named in [`NOT_COPIED`]: a
    /// migration that adds one must say which, or this fails.
    #[test]
    fn every_column_of_the_schema_is_copied_or_said_not_to_be() {
        let store = Store::open_in_memory().unwrap();
        let tables = store
            .db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table'
                 AND name NOT LIKE 'sqlite_%'",
                &[],
            )
            .unwrap();
        let left: Vec<&str> = NOT_COPIED.iter().map(|(name, _)| *name).collect();
        let mut missing = Vec::new();
        for row in tables {
            let table: String = row.get(0).unwrap();
            if left.contains(&table.as_str()) {
                continue;
            }
            let copied = TABLES
                .iter()
                .find(|(name, _)| *name == table)
                .map(|(_, columns)| columns.split(',').map(str::trim).collect::<Vec<_>>());
            let columns = store
                .db
                .query(
                    &format!("SELECT name FROM pragma_table_info('{table}')"),
                    &[],
                )
                .unwrap();
            for column in columns {
                let column: String = column.get(0).unwrap();
                let name = format!("{table}.{column}");
                let is_copied = copied
                    .as_ref()
                    .is_some_and(|c| c.contains(&column.as_str()));
                if !is_copied && !left.contains(&name.as_str()) {
                    missing.push(name);
                }
            }
        }
        assert!(
            missing.is_empty(),
            "neither copied nor said not to be: {missing:?}"
        );
    }

    /// Mappings, links, the queue (a running event waits again) and the ids go across; a
    /// target that holds a state is refused untouched; new events go on after the copied ids.
    #[test]
    fn a_state_moves_to_postgresql_whole() {
        let Some(url) = crate::store::testing::fresh_database_url() else {
            return;
        };
        let mut source = Store::open_in_memory().unwrap();
        source
            .put_ids(
                "hs",
                &[KnownId {
                    key: RecordKey {
                        kind: RecordKind::Company,
                        lago_id: "cus_1".into(),
                    },
                    hubspot_id: "101".into(),
                }],
            )
            .unwrap();
        source
            .put_link("hs", "cus_2", "202", crate::links::LinkedObject::Contacts)
            .unwrap();
        source.insert_event(&event("k1")).unwrap();
        source.insert_event(&event("k2")).unwrap();
        let running = source.claim_ready(1, i64::MAX).unwrap()[0].id;
        let target = Store::open_postgres(&url).unwrap();
        let copied = source.copy_into(&target).unwrap();
        assert!(copied.contains(&("events", 2)) && copied.contains(&("id_map", 1)));
        assert_eq!(
            target
                .hubspot_id("hs", RecordKind::Company, "cus_1")
                .unwrap()
                .as_deref(),
            Some("101")
        );
        assert_eq!(target.links(Some("hs")).unwrap().len(), 1);
        assert_eq!(
            target.event(running).unwrap().unwrap().state,
            EventState::Pending
        );
        let crate::queue::Inserted::New(next) = target.insert_event(&event("k3")).unwrap() else {
            panic!("a new key is new");
        };
        assert!(next > running + 1, "ids go on after the copied ones");
        assert_eq!(
            target.insert_event(&event("k1")).unwrap(),
            crate::queue::Inserted::Duplicate,
            "dedup holds across the move"
        );
        let again = source.copy_into(&target).unwrap_err().to_string();
        assert!(again.contains("already holds a state"), "{again}");
        // A target holding only a link (made there by hand) is not merged into either.
        let linked =
            Store::open_postgres(&crate::store::testing::fresh_database_url().unwrap()).unwrap();
        linked
            .put_link("hs", "cus_9", "909", crate::links::LinkedObject::Companies)
            .unwrap();
        let merged = source.copy_into(&linked).unwrap_err().to_string();
        assert!(merged.contains("1 row in customer_links"), "{merged}");
    }
}
