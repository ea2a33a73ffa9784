//! Finding a Lago object by what an operator has at hand: its lago_id, a customer's or a
//! subscription's external_id, an invoice's or a credit note's number (`lago-hubspot log`).
//! Lago ids are looked up in the sync log and the queue; the others in the names every sync-log
//! line keeps (whichever mode wrote it) and in the webhooks the queue holds (`serve` keeps each
//! one it received).

use crate::db::Backend;
use crate::sql_params;
use crate::store::{Store, SyncLogEntry};

/// A Lago object a key names, on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundObject {
    pub connection: String,
    pub lago_id: String,
    /// How the key named it: `lago_id`, `customer external_id`, `invoice number`, …
    pub matched: String,
}

/// Where a key may appear in a stored webhook, and where the lago_id of the object it then names
/// is (`None`: the event's own `lago_id`).
const KEYS: &[(&str, &str, Option<&str>)] = &[
    ("customer external_id", "$.customer.external_id", None),
    (
        "subscription external_id",
        "$.subscription.external_id",
        None,
    ),
    ("invoice number", "$.invoice.number", None),
    ("credit note number", "$.credit_note.number", None),
    (
        "customer external_id",
        "$.subscription.customer.external_id",
        Some("$.subscription.customer.lago_id"),
    ),
    (
        "customer external_id",
        "$.invoice.customer.external_id",
        Some("$.invoice.customer.lago_id"),
    ),
];

impl Store {
    /// The objects `key` names, on `connection` or on any: by lago_id when the sync log or the
    /// queue knows it, else by the external ids and numbers of the stored webhooks.
    pub fn find_objects(
        &self,
        key: &str,
        connection: Option<&str>,
    ) -> anyhow::Result<Vec<FoundObject>> {
        // Objects without an external_id or a number keep them empty: an empty key names none.
        if key.is_empty() {
            return Ok(Vec::new());
        }
        let found: Vec<FoundObject> = self
            .db
            .query(
                "SELECT connection, lago_id FROM sync_log WHERE lago_id = ?1
                     AND (CAST(?2 AS TEXT) IS NULL OR connection = ?2)
                 UNION SELECT connection, lago_id FROM events WHERE lago_id = ?1
                     AND (CAST(?2 AS TEXT) IS NULL OR connection = ?2)
                 ORDER BY 1",
                sql_params![key, connection],
            )?
            .iter()
            .map(|row| {
                Ok(FoundObject {
                    connection: row.get(0)?,
                    lago_id: row.get(1)?,
                    matched: "lago_id".into(),
                })
            })
            .collect::<anyhow::Result<_>>()?;
        if !found.is_empty() {
            return Ok(found);
        }
        let mut found = if self.backend() == Backend::Postgres {
            self.find_in_bodies(key, connection)?
        } else {
            self.find_in_json(key, connection)?
        };
        // Every mode names the objects of its sync log (`sync` and `backfill` keep no webhooks).
        let logged = self.db.query(
            "SELECT connection, lago_id, replace(object_type, '_', ' ') || ' external_id'
                 FROM sync_log WHERE external_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR connection = ?2)
             UNION SELECT connection, lago_id, replace(object_type, '_', ' ') || ' number'
                 FROM sync_log WHERE number = ?1 AND (CAST(?2 AS TEXT) IS NULL OR connection = ?2)",
            sql_params![key, connection],
        )?;
        for row in &logged {
            found.push(FoundObject {
                connection: row.get(0)?,
                lago_id: row.get(1)?,
                matched: row.get(2)?,
            });
        }
        found.retain(|object| !object.lago_id.is_empty());
        found.sort_by(|a, b| {
            (&a.connection, &a.lago_id, &a.matched).cmp(&(&b.connection, &b.lago_id, &b.matched))
        });
        found.dedup();
        Ok(found)
    }

    /// [`Store::find_objects`] by key on SQLite: the stored webhooks' JSON, read in SQL.
    fn find_in_json(
        &self,
        key: &str,
        connection: Option<&str>,
    ) -> anyhow::Result<Vec<FoundObject>> {
        let selects: Vec<String> = KEYS
            .iter()
            .map(|(matched, path, lago_id)| {
                let lago_id = lago_id.map_or("lago_id".to_owned(), |p| {
                    format!("json_extract(doc, '{p}')")
                });
                format!(
                    "SELECT connection, {lago_id}, '{matched}' FROM docs
                     WHERE json_extract(doc, '{path}') = ?1"
                )
            })
            .collect();
        // Unreadable bodies (kept as rejected) read as an empty object.
        let sql = format!(
            "WITH docs AS (
                 SELECT connection, lago_id,
                        CASE WHEN json_valid(body) THEN body ELSE '{{}}' END AS doc
                 FROM events WHERE CAST(?2 AS TEXT) IS NULL OR connection = ?2)
             SELECT DISTINCT * FROM ({}) ORDER BY 1, 2",
            selects.join(" UNION ")
        );
        self.db
            .query(&sql, sql_params![key, connection])?
            .iter()
            .map(|row| {
                Ok(FoundObject {
                    connection: row.get(0)?,
                    lago_id: row.get::<Option<String>>(1)?.unwrap_or_default(),
                    matched: row.get(2)?,
                })
            })
            .collect()
    }

    /// [`Store::find_objects`] by key on PostgreSQL: the webhooks whose text holds the key, read
    /// here (PostgreSQL 15 cannot test a text for JSON in SQL, and unreadable bodies are kept).
    fn find_in_bodies(
        &self,
        key: &str,
        connection: Option<&str>,
    ) -> anyhow::Result<Vec<FoundObject>> {
        let rows = self.db.query(
            "SELECT connection, lago_id, body FROM events
             WHERE (CAST(?2 AS TEXT) IS NULL OR connection = ?2) AND strpos(body, ?1) > 0",
            sql_params![key, connection],
        )?;
        let pointer = |path: &str| path.trim_start_matches('$').replace('.', "/");
        let mut found: Vec<FoundObject> = Vec::new();
        for row in &rows {
            let Ok(doc) = serde_json::from_str::<serde_json::Value>(&row.get::<String>(2)?) else {
                continue;
            };
            for (matched, path, lago_id) in KEYS {
                if doc.pointer(&pointer(path)).and_then(|v| v.as_str()) != Some(key) {
                    continue;
                }
                let lago_id = match lago_id {
                    None => row.get::<String>(1)?,
                    Some(p) => doc
                        .pointer(&pointer(p))
                        .and_then(|v| v.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                };
                let object = FoundObject {
                    connection: row.get(0)?,
                    lago_id,
                    matched: (*matched).to_owned(),
                };
                if !object.lago_id.is_empty() && !found.contains(&object) {
                    found.push(object);
                }
            }
        }
        found.sort_by(|a, b| {
            (&a.connection, &a.lago_id, &a.matched).cmp(&(&b.connection, &b.lago_id, &b.matched))
        });
        Ok(found)
    }

    /// [`Store::sync_log`] of each object found, in the order found.
    pub fn sync_logs(
        &self,
        objects: &[FoundObject],
    ) -> anyhow::Result<Vec<(FoundObject, Vec<SyncLogEntry>)>> {
        objects
            .iter()
            .map(|object| {
                Ok((
                    object.clone(),
                    self.sync_log(&object.connection, &object.lago_id)?,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::NewEvent;
    use serde_json::json;

    fn receive(store: &Store, connection: &str, lago_id: &str, body: serde_json::Value) {
        receive_text(store, connection, lago_id, body.to_string());
    }

    fn receive_text(store: &Store, connection: &str, lago_id: &str, body: String) {
        store
            .insert_event(&NewEvent {
                unique_key: None,
                connection: connection.into(),
                order_key: lago_id.into(),
                customer_key: String::new(),
                webhook_type: String::new(),
                lago_id: lago_id.into(),
                body,
                settled: None,
            })
            .unwrap();
    }

    #[test]
    fn objects_are_found_by_external_id_and_number() {
        for store in crate::store::testing::stores() {
            receive(
                &store,
                "hs",
                "cus_1",
                json!({"webhook_type": "customer.created", "customer": {"lago_id": "cus_1", "external_id": "acme"}}),
            );
            receive(
                &store,
                "hs",
                "inv_1",
                json!({"webhook_type": "invoice.created", "invoice": {"lago_id": "inv_1", "number": "ACME-001",
                    "customer": {"lago_id": "cus_1", "external_id": "acme"}}}),
            );
            receive(&store, "hs", "", json!("not an object"));
            receive_text(&store, "hs", "", "{ not json".into());
            let found = |key: &str| -> Vec<(String, String)> {
                store
                    .find_objects(key, None)
                    .unwrap()
                    .into_iter()
                    .map(|o| (o.lago_id, o.matched))
                    .collect()
            };
            assert_eq!(
                found("acme"),
                [("cus_1".to_owned(), "customer external_id".to_owned())]
            );
            assert_eq!(
                found("ACME-001"),
                [("inv_1".to_owned(), "invoice number".to_owned())]
            );
            assert_eq!(found("inv_1"), [("inv_1".to_owned(), "lago_id".to_owned())]);
            assert!(found("nothing").is_empty());
            assert!(found("").is_empty());
            assert!(
                store
                    .find_objects("acme", Some("other"))
                    .unwrap()
                    .is_empty()
            );
        }
    }
}
