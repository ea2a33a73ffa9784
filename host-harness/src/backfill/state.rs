//! What the backfill remembers between runs: per Lago object, the hash of the payload it last
//! synced (or saw skipped by the guest's rules). A re-run skips objects whose hash is unchanged,
//! so an interrupted backfill resumes and a finished one writes nothing.

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ObjectKind;
use crate::sql_params;
use crate::store::Store;
use crate::sync::OutcomeStatus;

impl Store {
    /// The hash stored for this object by an earlier backfill, if any.
    pub fn backfill_hash(
        &self,
        connection: &str,
        kind: ObjectKind,
        lago_id: &str,
    ) -> anyhow::Result<Option<String>> {
        self.db
            .query_opt(
                "SELECT content_hash FROM backfill_hashes
                 WHERE connection = ?1 AND object_kind = ?2 AND lago_id = ?3",
                sql_params![connection, kind.state_name(), lago_id],
            )?
            .map(|row| row.get(0))
            .transpose()
    }

    /// Remembers that this content is done: synced, or skipped by the guest's rules. Failures
    /// are never stored, so the next run tries them again.
    pub fn put_backfill_hash(
        &self,
        connection: &str,
        kind: ObjectKind,
        lago_id: &str,
        content_hash: &str,
        outcome: OutcomeStatus,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            outcome != OutcomeStatus::Failed,
            "a failed sync is not stored as done"
        );
        self.db.execute(
            "INSERT INTO backfill_hashes (connection, object_kind, lago_id, content_hash, outcome)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (connection, object_kind, lago_id) DO UPDATE SET
                 content_hash = excluded.content_hash, outcome = excluded.outcome,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            sql_params![
                connection,
                kind.state_name(),
                lago_id,
                content_hash,
                outcome.as_str()
            ],
        )?;
        Ok(())
    }

    /// How many objects of a connection the backfill holds as done.
    pub fn backfill_done_count(&self, connection: &str) -> anyhow::Result<usize> {
        let count: i64 = self
            .db
            .query_one(
                "SELECT COUNT(*) FROM backfill_hashes WHERE connection = ?1",
                sql_params![connection],
            )?
            .get(0)?;
        Ok(usize::try_from(count).unwrap_or_default())
    }
}

/// JSON with object keys sorted at every level and no whitespace, so the same content always
/// hashes the same whatever order Lago or an export wrote the keys in.
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 (hex) of what decides the sync's result: the connection settings and the payload.
/// Settings are included because they change the plan (links, targets, switches) for the same
/// payload.
pub fn content_hash(canonical_settings: &str, canonical_payload: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(canonical_settings.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_payload.as_bytes());
    format!("{:x}", hasher.finalize())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn key_order_does_not_change_the_hash_but_content_does() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"é\""}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":"é\"","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), canonical_json(&b));
        assert_eq!(
            canonical_json(&a),
            r#"{"a":{"x":"é\"","y":[1,{"c":3,"d":2}]},"b":1}"#
        );
        let settings = canonical_json(&json!({"code": "hs"}));
        let hash = content_hash(&settings, &canonical_json(&a));
        assert_eq!(hash.len(), 64);
        assert_eq!(hash, content_hash(&settings, &canonical_json(&b)));
        assert_ne!(
            hash,
            content_hash(&settings, &canonical_json(&json!({"b": 2})))
        );
        assert_ne!(
            hash,
            content_hash(
                &canonical_json(&json!({"code": "other"})),
                &canonical_json(&a)
            )
        );
    }

    #[test]
    fn only_successes_are_stored_and_they_are_per_connection_and_kind() {
        for store in crate::store::testing::stores() {
            store
                .put_backfill_hash(
                    "hs",
                    ObjectKind::Invoices,
                    "inv_1",
                    "h1",
                    OutcomeStatus::Synced,
                )
                .unwrap();
            store
                .put_backfill_hash(
                    "hs",
                    ObjectKind::Invoices,
                    "inv_1",
                    "h2",
                    OutcomeStatus::Skipped,
                )
                .unwrap();
            assert!(
                store
                    .put_backfill_hash(
                        "hs",
                        ObjectKind::Invoices,
                        "inv_2",
                        "h",
                        OutcomeStatus::Failed
                    )
                    .is_err()
            );
            assert_eq!(
                store
                    .backfill_hash("hs", ObjectKind::Invoices, "inv_1")
                    .unwrap()
                    .as_deref(),
                Some("h2")
            );
            assert_eq!(
                store
                    .backfill_hash("hs", ObjectKind::Customers, "inv_1")
                    .unwrap(),
                None
            );
            assert_eq!(
                store
                    .backfill_hash("other", ObjectKind::Invoices, "inv_1")
                    .unwrap(),
                None
            );
            assert_eq!(store.backfill_done_count("hs").unwrap(), 1);
        }
    }
}
