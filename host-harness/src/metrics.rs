//! Prometheus metrics for `/metrics`: what came in, how it ended, and how HubSpot answered.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    /// HTTP status, or 0 when the request got no answer (network error, dropped connection).
    pub status: u16,
}

pub struct Metrics {
    registry: Registry,
    pub events_received: Counter,
    pub events_duplicate: Counter,
    pub events_rejected: Counter,
    pub events_synced: Counter,
    pub events_skipped: Counter,
    /// Attempts that failed (the event may still succeed later).
    pub events_failed: Counter,
    pub events_dead: Counter,
    pub hubspot_requests: Family<StatusLabel, Counter>,
    pub hubspot_retries: Counter,
    queue_depth: Gauge,
    oldest_pending_age_seconds: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("lago_hubspot");
        let metrics = Metrics {
            events_received: Counter::default(),
            events_duplicate: Counter::default(),
            events_rejected: Counter::default(),
            events_synced: Counter::default(),
            events_skipped: Counter::default(),
            events_failed: Counter::default(),
            events_dead: Counter::default(),
            hubspot_requests: Family::default(),
            hubspot_retries: Counter::default(),
            queue_depth: Gauge::default(),
            oldest_pending_age_seconds: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "events_received",
            "Webhooks accepted and stored",
            metrics.events_received.clone(),
        );
        registry.register(
            "events_duplicate",
            "Redelivered webhooks acknowledged without processing",
            metrics.events_duplicate.clone(),
        );
        registry.register(
            "events_rejected",
            "Signed webhooks kept but unusable (malformed, unsupported)",
            metrics.events_rejected.clone(),
        );
        registry.register(
            "events_synced",
            "Events synced to HubSpot",
            metrics.events_synced.clone(),
        );
        registry.register(
            "events_skipped",
            "Events the mapping decided not to push",
            metrics.events_skipped.clone(),
        );
        registry.register(
            "events_failed",
            "Failed attempts (the event is retried unless dead)",
            metrics.events_failed.clone(),
        );
        registry.register(
            "events_dead",
            "Events that failed for good",
            metrics.events_dead.clone(),
        );
        registry.register(
            "hubspot_requests",
            "HubSpot requests by answer status",
            metrics.hubspot_requests.clone(),
        );
        registry.register(
            "hubspot_retries",
            "HubSpot requests sent again after a transient failure",
            metrics.hubspot_retries.clone(),
        );
        registry.register(
            "queue_depth",
            "Events pending or running",
            metrics.queue_depth.clone(),
        );
        registry.register(
            "oldest_pending_age_seconds",
            "Age of the oldest pending event",
            metrics.oldest_pending_age_seconds.clone(),
        );
        Metrics {
            registry,
            ..metrics
        }
    }

    pub fn hubspot_answered(&self, status: u16) {
        self.hubspot_requests
            .get_or_create(&StatusLabel { status })
            .inc();
    }

    /// The text exposition, with the queue gauges as read from the database at scrape time:
    /// events pending or running, and the age of the oldest pending one in seconds.
    pub fn render(&self, queue_depth: u64, oldest_pending_age_seconds: f64) -> String {
        self.queue_depth.set(queue_depth as i64);
        self.oldest_pending_age_seconds
            .set(oldest_pending_age_seconds);
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}
