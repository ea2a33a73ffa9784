//! Arrivals on a shared queue: on PostgreSQL, every instance hears of an event another instance
//! stored, so its workers wake (and linger for the burst, as for their own webhooks) at once
//! instead of at their next look at the queue (at most 1 s later).
//!
//! Intake announces each new event with `pg_notify(CHANNEL, current_schema())` inside the
//! transaction that stores it, so the news comes with the commit and never before; operator
//! actions that make events runnable again (`events retry`) announce too. Each `serve` listens
//! on a connection of its own, in a thread of its own (the `postgres` client blocks), and
//! counts only the news of its own schema: states in other schemas of one database share the
//! channel but not the queue. A lost connection is opened again; until then polling still
//! finds every event, a little later. (PostgreSQL documentation, "NOTIFY" and "LISTEN".)

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use postgres::fallible_iterator::FallibleIterator as _;
use tokio::sync::Notify;

use crate::db::mask_password;

/// The channel intake announces new events on.
pub const CHANNEL: &str = "lago_hubspot_queue";

/// How often the listening thread looks at its stop flag while no news comes.
const STOP_LOOK: Duration = Duration::from_millis(200);

/// A thread that wakes `wake` for each event stored in the state at `url` by any instance; it
/// ends when dropped.
pub struct ArrivalListener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ArrivalListener {
    /// Starts listening to the PostgreSQL state at `url` (the `--database` URL, its
    /// `search_path` option included).
    pub fn start(url: String, wake: Arc<Notify>) -> anyhow::Result<ArrivalListener> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("queue-arrivals".into())
            .spawn({
                let stop = stop.clone();
                move || listen(&url, &wake, &stop)
            })
            .context("cannot start the thread that listens for other instances' events")?;
        Ok(ArrivalListener {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for ArrivalListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Listens until `stop`, connecting again after a failure (waits of 0.1 s doubling to 5 s).
fn listen(url: &str, wake: &Notify, stop: &AtomicBool) {
    let mut pause = Duration::from_millis(100);
    while !stop.load(Ordering::Relaxed) {
        match listen_once(url, wake, stop) {
            Ok(()) => return,
            Err(error) => {
                tracing::warn!(
                    "not hearing of other instances' events (they are still found, within 1 s): {error:#}"
                );
                let until = std::time::Instant::now() + pause;
                while std::time::Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(STOP_LOOK.min(pause));
                }
                pause = (pause * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn listen_once(url: &str, wake: &Notify, stop: &AtomicBool) -> anyhow::Result<()> {
    let config: postgres::Config = url
        .parse()
        .with_context(|| format!("cannot read the database URL {}", mask_password(url)))?;
    let mut client = config
        .connect(postgres::NoTls)
        .with_context(|| format!("cannot connect to {}", mask_password(url)))?;
    let schema: String = client.query_one("SELECT current_schema()", &[])?.get(0);
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    while !stop.load(Ordering::Relaxed) {
        let mut notifications = client.notifications();
        let mut news = notifications.timeout_iter(STOP_LOOK);
        while let Some(note) = news.next()? {
            if note.payload() == schema {
                wake.notify_one();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::NewEvent;
    use crate::store::Store;

    fn event(key: &str) -> NewEvent {
        crate::queue::testing::event(key, "cus_1")
    }

    /// An event another instance stores wakes this one's workers; an event of a state in
    /// another schema of the same database does not, nor does a redelivery.
    #[tokio::test(flavor = "multi_thread")]
    async fn another_instances_event_wakes_this_one() {
        let Some(url) = crate::store::testing::fresh_database_url() else {
            return;
        };
        let other_state = crate::store::testing::fresh_database_url().unwrap();
        let here = Store::open_postgres(&url).unwrap();
        let there = Store::open_postgres(&url).unwrap();
        let elsewhere = Store::open_postgres(&other_state).unwrap();
        let wake = Arc::new(Notify::new());
        let _listener = ArrivalListener::start(here.postgres_url().unwrap(), wake.clone()).unwrap();
        // The listener is up once a first announcement comes through.
        let heard = |within_ms| {
            let wake = wake.clone();
            async move {
                tokio::time::timeout(Duration::from_millis(within_ms), wake.notified())
                    .await
                    .is_ok()
            }
        };
        let mut up = false;
        for n in 0..50 {
            there.insert_event(&event(&format!("warm-{n}"))).unwrap();
            if heard(100).await {
                up = true;
                break;
            }
        }
        assert!(up, "the listener never heard an insert");
        while heard(600).await {}

        elsewhere.insert_event(&event("other-schema")).unwrap();
        assert!(!heard(500).await, "another state's event woke this one");
        there.insert_event(&event("warm-0")).unwrap();
        assert!(!heard(500).await, "a redelivery woke this one");
        there.insert_event(&event("new")).unwrap();
        assert!(
            heard(2000).await,
            "another instance's new event did not wake this one"
        );
    }
}
