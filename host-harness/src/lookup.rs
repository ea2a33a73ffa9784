//! Finding a Lago object by what an operator has at hand: its lago_id, a customer's or a
//! subscription's external_id, an invoice's or a credit note's number (`lago-hubspot log`).
//! Lago ids are looked up in the sync log and the queue; the others in the names every sync-log
//! line keeps (whichever mode wrote it) and in the webhooks the queue holds (`serve` keeps each
//! one it received).

use rusqlite::params;

use crate::store::{Store, SyncLogEntry};

/// A Lago object a key names, on one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundObject {
    pub connection: String,
    pub lago_id: String,
    /// How the key named it: `lago_id`, `customer external_id`, `invoice number`, …
    pub matched: String,
}

/// Where a key may appear in a stored webhook, and the lago_id of the object it then names.
const KEYS: &[(&str, &str, &str)] = &[
    ("customer external_id", "$.customer.external_id", "lago_id"),
    (
        "subscription external_id",
        "$.subscription.external_id",
        "lago_id",
    ),
    ("invoice number", "$.invoice.number", "lago_id"),
    ("credit note number", "$.credit_note.number", "lago_id"),
    (
        "customer external_id",
        "$.subscription.customer.external_id",
        "json_extract(doc, '$.subscription.customer.lago_id')",
    ),
    (
        "customer external_id",
        "$.invoice.customer.external_id",
        "json_extract(doc, '$.invoice.customer.lago_id')",
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
        let mut by_id = self.db.prepare(
            "SELECT connection, lago_id FROM sync_log WHERE lago_id = ?1
                 AND (?2 IS NULL OR connection = ?2)
             UNION SELECT connection, lago_id FROM events WHERE lago_id = ?1
                 AND (?2 IS NULL OR connection = ?2)
             ORDER BY 1",
        )?;
        let found: Vec<FoundObject> = by_id
            .query_map(params![key, connection], |row| {
                Ok(FoundObject {
                    connection: row.get(0)?,
                    lago_id: row.get(1)?,
                    matched: "lago_id".into(),
                })
            })?
            .collect::<Result<_, _>>()?;
        if !found.is_empty() {
            return Ok(found);
        }
        // Unreadable bodies (kept as rejected) read as an empty object.
        let selects: Vec<String> = KEYS
            .iter()
            .map(|(matched, path, lago_id)| {
                format!(
                    "SELECT connection, {lago_id}, '{matched}' FROM docs
                     WHERE json_extract(doc, '{path}') = ?1"
                )
            })
            .collect();
        // Every mode names the objects of its sync log (`sync` and `backfill` keep no webhooks).
        let logged = "SELECT connection, lago_id, replace(object_type, '_', ' ') || ' external_id'
                 FROM sync_log WHERE external_id = ?1 AND (?2 IS NULL OR connection = ?2)
             UNION SELECT connection, lago_id, replace(object_type, '_', ' ') || ' number'
                 FROM sync_log WHERE number = ?1 AND (?2 IS NULL OR connection = ?2)";
        let sql = format!(
            "WITH docs AS (
                 SELECT connection, lago_id,
                        CASE WHEN json_valid(body) THEN body ELSE '{{}}' END AS doc
                 FROM events WHERE ?2 IS NULL OR connection = ?2)
             SELECT DISTINCT * FROM ({} UNION {logged}) ORDER BY 1, 2",
            selects.join(" UNION ")
        );
        let mut by_key = self.db.prepare(&sql)?;
        let found = by_key
            .query_map(params![key, connection], |row| {
                Ok(FoundObject {
                    connection: row.get(0)?,
                    lago_id: row.get::<_, Option<String>>(1)?.unwrap_or_default(),
                    matched: row.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(found
            .into_iter()
            .filter(|object| !object.lago_id.is_empty())
            .collect())
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
        let store = Store::open_in_memory().unwrap();
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
