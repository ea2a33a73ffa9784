//! Lago's side of the webhook tests that kill and restart `serve`: every customer's webhooks in
//! order (the next once the previous got its 200), several customers at a time, posted to the
//! instances in turn; a webhook that gets no 200 (its instance was killed, or is restarting) is
//! redelivered with the same unique key, to the next instance, until one answers 200.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use lago_hubspot::queue::{EventState, QueueStats};

use super::post_webhook;

pub struct Lago {
    /// Where the instances listen (they move on every restart).
    instances: Arc<RwLock<Vec<String>>>,
    acknowledged: Arc<AtomicUsize>,
    redeliveries: Arc<AtomicUsize>,
    done: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Lago {
    /// Starts `posters` senders over `webhooks` (per customer: (unique key, body), in order);
    /// `retry_pause` between a failed delivery and the next.
    pub fn start(
        instances: Arc<RwLock<Vec<String>>>,
        webhooks: Vec<Vec<(String, String)>>,
        posters: usize,
        retry_pause: Duration,
    ) -> Lago {
        let acknowledged = Arc::new(AtomicUsize::new(0));
        let redeliveries = Arc::new(AtomicUsize::new(0));
        let done = Arc::new(AtomicBool::new(false));
        let webhooks = Arc::new(webhooks);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let (urls, ack, redo, finished) = (
            instances.clone(),
            acknowledged.clone(),
            redeliveries.clone(),
            done.clone(),
        );
        let task = tokio::spawn(async move {
            let mut tasks = tokio::task::JoinSet::new();
            for poster in 0..posters {
                let (client, urls, webhooks, ack, redo) = (
                    client.clone(),
                    urls.clone(),
                    webhooks.clone(),
                    ack.clone(),
                    redo.clone(),
                );
                tasks.spawn(async move {
                    let mine: Vec<&Vec<(String, String)>> =
                        webhooks.iter().skip(poster).step_by(posters).collect();
                    let longest = mine.iter().map(|c| c.len()).max().unwrap_or(0);
                    let mut turn = poster;
                    for n in 0..longest {
                        for (key, body) in mine.iter().filter_map(|c| c.get(n)) {
                            loop {
                                turn += 1;
                                let base = {
                                    let urls = urls.read().unwrap();
                                    urls[turn % urls.len()].clone()
                                };
                                let answer = post_webhook(&client, &base, body, key).await;
                                if answer.is_ok_and(|r| r.status() == 200) {
                                    ack.fetch_add(1, Ordering::SeqCst);
                                    break;
                                }
                                redo.fetch_add(1, Ordering::SeqCst);
                                tokio::time::sleep(retry_pause).await;
                            }
                        }
                    }
                });
            }
            while let Some(joined) = tasks.join_next().await {
                joined.expect("poster");
            }
            finished.store(true, Ordering::SeqCst);
        });
        Lago {
            instances,
            acknowledged,
            redeliveries,
            done,
            task,
        }
    }

    /// One instance at `url`, redelivering every 25 ms while it is down.
    pub fn start_one(url: &str, webhooks: Vec<Vec<(String, String)>>, posters: usize) -> Lago {
        let instances = Arc::new(RwLock::new(vec![url.to_owned()]));
        Lago::start(instances, webhooks, posters, Duration::from_millis(25))
    }

    /// From now on, every delivery goes to `url` (the one instance, restarted elsewhere).
    pub fn point_at(&self, url: &str) {
        *self.instances.write().unwrap() = vec![url.to_owned()];
    }

    pub fn acknowledged(&self) -> usize {
        self.acknowledged.load(Ordering::SeqCst)
    }

    /// Waits for every sender to finish; how many deliveries were made again.
    pub async fn finished(self) -> usize {
        self.task.await.expect("Lago's senders");
        self.redeliveries.load(Ordering::SeqCst)
    }

    pub fn done(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }
}

/// Events still to settle: pending or running.
pub fn busy(stats: &QueueStats) -> u64 {
    stats.count(EventState::Pending) + stats.count(EventState::Running)
}
