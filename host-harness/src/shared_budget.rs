//! The per-portal budget shared by several instances on one PostgreSQL state: each request to
//! HubSpot takes a row of `rate_slots` for its portal's window, under an advisory lock per
//! window, and the instances together stay within the portal's limit
//! ([`crate::ratelimit::RateBudget::shared`]). On SQLite one process owns the state, and the
//! budget stays in that process as before.

use std::sync::{Arc, Mutex};

use crate::db::Backend;
use crate::ratelimit::{DailyRecord, Rate, RateBudget, SharedSlots};
use crate::sql_params;
use crate::store::Store;

/// The budget of `portal` (a name every instance gives the same portal: `portal 12345`, or
/// `connection CODE` before the portal id is known) at `api`: shared through `store` on
/// PostgreSQL, this process's own on SQLite.
///
/// On both backends a spent daily budget is recorded in the state
/// ([`crate::ratelimit::DailyRecord`]): every instance, and a restarted one, pauses the portal
/// until the reset.
pub fn budget_for(api: Rate, store: Arc<Mutex<Store>>, portal: &str) -> RateBudget {
    let postgres = store.lock().unwrap_or_else(|p| p.into_inner()).backend() == Backend::Postgres;
    let slots = Arc::new(StoreSlots(store));
    let budget = if postgres {
        RateBudget::shared(api, slots.clone(), portal)
    } else {
        RateBudget::new(api)
    };
    budget.with_daily_record(slots, portal)
}

/// The shared windows in the state's `rate_slots` table.
struct StoreSlots(Arc<Mutex<Store>>);

impl SharedSlots for StoreSlots {
    fn take(
        &self,
        portal: &str,
        window: &str,
        rate: Rate,
        now: i64,
    ) -> anyhow::Result<Result<i64, i64>> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        store.take_rate_slot(portal, window, rate, now)
    }

    fn answered(&self, id: i64, now: i64) -> anyhow::Result<()> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        store.rate_slot_answered(id, now)
    }

    fn recent(&self, portal: &str, window: &str, rate: Rate, now: i64) -> anyhow::Result<Vec<i64>> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        store.recent_rate_slots(portal, window, rate, now)
    }
}

impl DailyRecord for StoreSlots {
    fn spend_day(&self, portal: &str, until_ms: i64) -> anyhow::Result<()> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        store.spend_day(portal, until_ms)
    }

    fn day_spent_until(&self, portal: &str, now_ms: i64) -> anyhow::Result<Option<i64>> {
        let store = self.0.lock().unwrap_or_else(|p| p.into_inner());
        store.day_spent_until(portal, now_ms)
    }
}

/// The shared windows (PostgreSQL: several instances on one state).
impl Store {
    /// Takes a slot in `portal`'s `window` (`api` or `search`) at `now` (ms since the epoch):
    /// `Ok(id)` when fewer than `rate.max` requests were taken in the last `rate.interval` by
    /// all instances together, else `Err(ms)` until the oldest ages out. Serialised per window
    /// with an advisory lock on PostgreSQL.
    pub fn take_rate_slot(
        &self,
        portal: &str,
        window: &str,
        rate: Rate,
        now: i64,
    ) -> anyhow::Result<Result<i64, i64>> {
        let interval = i64::try_from(rate.interval.as_millis()).unwrap_or(i64::MAX);
        let key = format!("{portal}/{window}");
        self.db.transaction(|tx| {
            if tx.backend() == Backend::Postgres {
                tx.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '/' || ?1))",
                    sql_params![key],
                )?;
            }
            tx.execute(
                "DELETE FROM rate_slots WHERE portal = ?1 AND rate_window = ?2 AND at_ms < ?3",
                sql_params![portal, window, now.saturating_sub(interval)],
            )?;
            let row = tx
                .query_opt(
                    "SELECT COUNT(*), MIN(at_ms) FROM rate_slots
                     WHERE portal = ?1 AND rate_window = ?2",
                    sql_params![portal, window],
                )?
                .ok_or_else(|| anyhow::anyhow!("COUNT returned no row"))?;
            let (count, oldest): (i64, Option<i64>) = (row.get(0)?, row.get(1)?);
            if count < i64::from(rate.max) {
                let id: i64 = tx
                    .query_opt(
                        "INSERT INTO rate_slots (portal, rate_window, at_ms) VALUES (?1, ?2, ?3)
                         RETURNING id",
                        sql_params![portal, window, now],
                    )?
                    .ok_or_else(|| anyhow::anyhow!("INSERT returned no id"))?
                    .get(0)?;
                Ok(Ok(id))
            } else {
                Ok(Err(oldest.unwrap_or(now) + interval - now))
            }
        })
    }

    /// The slots all instances hold in `portal`'s `window` within `rate.interval` before `now`,
    /// oldest first (ms since the epoch): at most `rate.max`, what the window's room needs.
    pub fn recent_rate_slots(
        &self,
        portal: &str,
        window: &str,
        rate: Rate,
        now: i64,
    ) -> anyhow::Result<Vec<i64>> {
        let interval = i64::try_from(rate.interval.as_millis()).unwrap_or(i64::MAX);
        let rows = self.db.query(
            "SELECT at_ms FROM rate_slots
             WHERE portal = ?1 AND rate_window = ?2 AND at_ms > ?3
             ORDER BY at_ms LIMIT ?4",
            sql_params![portal, window, now.saturating_sub(interval), rate.max],
        )?;
        rows.iter().map(|row| row.get(0)).collect()
    }

    /// `portal`'s daily budget is spent until `until_ms` (ms since the epoch); a later end
    /// already recorded stays.
    pub fn spend_day(&self, portal: &str, until_ms: i64) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT INTO portal_daily_limit (portal, until_ms) VALUES (?1, ?2)
             ON CONFLICT (portal) DO UPDATE SET until_ms = excluded.until_ms
             WHERE excluded.until_ms > portal_daily_limit.until_ms",
            sql_params![portal, until_ms],
        )?;
        Ok(())
    }

    /// Until when `portal`'s daily budget is spent, if it still is at `now_ms`.
    pub fn day_spent_until(&self, portal: &str, now_ms: i64) -> anyhow::Result<Option<i64>> {
        let row = self.db.query_opt(
            "SELECT until_ms FROM portal_daily_limit WHERE portal = ?1 AND until_ms > ?2",
            sql_params![portal, now_ms],
        )?;
        row.map(|row| row.get(0)).transpose()
    }

    /// Every portal whose daily budget is still spent at `now_ms`, with until when, by portal.
    pub fn spent_days(&self, now_ms: i64) -> anyhow::Result<Vec<(String, i64)>> {
        let rows = self.db.query(
            "SELECT portal, until_ms FROM portal_daily_limit WHERE until_ms > ?1 ORDER BY portal",
            sql_params![now_ms],
        )?;
        rows.iter()
            .map(|row| Ok((row.get(0)?, row.get(1)?)))
            .collect()
    }

    /// The request of slot `id` was answered at `now`: it counts from then on, as HubSpot
    /// counts it from when it arrived.
    pub fn rate_slot_answered(&self, id: i64, now: i64) -> anyhow::Result<()> {
        self.db.execute(
            "UPDATE rate_slots SET at_ms = ?2 WHERE id = ?1",
            sql_params![id, now],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Two instances on one database take slots of one portal's window: together they get
    /// `max`, then both wait until the oldest ages out; another portal is not affected.
    #[test]
    fn instances_share_one_window_per_portal() {
        let Some(url) = crate::store::testing::fresh_database_url() else {
            return;
        };
        let a = Store::open_postgres(&url).unwrap();
        let b = Store::open_postgres(&url).unwrap();
        let rate = Rate {
            max: 4,
            interval: Duration::from_millis(1000),
        };
        let t0 = 1_000_000;
        for (n, store) in [&a, &b, &a, &b].into_iter().enumerate() {
            let slot = store.take_rate_slot("portal 1", "api", rate, t0 + n as i64);
            assert!(slot.unwrap().is_ok(), "slot {n}");
        }
        assert_eq!(
            b.take_rate_slot("portal 1", "api", rate, t0 + 10).unwrap(),
            Err(990),
            "the fifth waits for the first to age out"
        );
        assert!(
            a.take_rate_slot("portal 2", "api", rate, t0 + 10)
                .unwrap()
                .is_ok()
        );
        assert!(
            a.take_rate_slot("portal 1", "search", rate, t0 + 10)
                .unwrap()
                .is_ok()
        );
        // An answer moves the slot to when it came: the window frees later.
        let one = Rate { max: 1, ..rate };
        let id = b
            .take_rate_slot("portal 3", "api", one, t0)
            .unwrap()
            .unwrap();
        a.rate_slot_answered(id, t0 + 500).unwrap();
        assert_eq!(
            b.take_rate_slot("portal 3", "api", one, t0 + 1001).unwrap(),
            Err(499)
        );
        // What every instance took in the window, oldest first, for the room.
        assert_eq!(
            b.recent_rate_slots("portal 1", "api", rate, t0 + 10)
                .unwrap(),
            vec![t0, t0 + 1, t0 + 2, t0 + 3]
        );
        assert_eq!(
            a.recent_rate_slots("portal 1", "api", rate, t0 + 1001)
                .unwrap(),
            vec![t0 + 2, t0 + 3]
        );
    }

    /// A spent day is recorded in the state on both backends: a later end wins, and it is
    /// over at the reset.
    #[test]
    fn a_spent_day_is_kept_in_the_state() {
        for store in crate::store::testing::stores() {
            assert_eq!(store.day_spent_until("portal 1", 0).unwrap(), None);
            store.spend_day("portal 1", 5_000).unwrap();
            store.spend_day("portal 1", 4_000).unwrap();
            assert_eq!(store.day_spent_until("portal 1", 0).unwrap(), Some(5_000));
            assert_eq!(store.day_spent_until("portal 1", 5_000).unwrap(), None);
            assert_eq!(store.day_spent_until("portal 2", 0).unwrap(), None);
            store.spend_day("portal 1", 9_000).unwrap();
            assert_eq!(
                store.day_spent_until("portal 1", 5_000).unwrap(),
                Some(9_000)
            );
            assert_eq!(
                store.spent_days(5_000).unwrap(),
                [("portal 1".to_owned(), 9_000)]
            );
            assert!(store.spent_days(9_000).unwrap().is_empty());
        }
    }

    /// On SQLite (one process) the budget is this process's alone, as before.
    #[test]
    fn a_sqlite_state_keeps_the_budget_in_the_process() {
        let store = Arc::new(Mutex::new(Store::open_in_memory().unwrap()));
        let budget = budget_for(Rate::OAUTH_APP, store, "portal 1");
        assert!(!budget.is_shared());
    }
}
