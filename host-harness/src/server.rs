//! `serve`: the HTTP endpoint a self-hosted Lago points its webhooks at.
//!
//! A webhook is verified, committed durably to the queue and only then acknowledged; the worker
//! pool syncs it afterwards. Unusable but correctly signed webhooks are kept with their reason and
//! acknowledged, so Lago stops redelivering them and an operator can see them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use lago_hubspot_guest::webhooks::{Envelope, Route};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};

use crate::arrivals::ArrivalListener;
use crate::connections::fleet::Fleet;
use crate::metrics::Metrics;
use crate::queue::{Inserted, NewEvent, Settled};
use crate::runtime::plan_error;
use crate::signature::WebhookAuth;
use crate::sync::{EventRef, Syncer, describe_plan_error};
use crate::worker::{QueuePolicy, Workers};

pub const DEFAULT_WEBHOOK_PATH: &str = "/webhooks/lago";
pub const UNIQUE_KEY_HEADER: &str = "x-lago-unique-key";

pub struct ServeOptions {
    pub webhook_path: String,
    pub max_body_bytes: usize,
    pub auth: WebhookAuth,
    pub workers: usize,
    pub policy: QueuePolicy,
    pub drain_timeout: Duration,
    /// Most events a worker executes together in a burst, as HubSpot batch requests (1 = off).
    pub burst: usize,
}

/// Events per worker in a burst. A group sends one request per batch endpoint and step whatever
/// its size (up to 100 upserts and 2,000 associations each), so a month-start burst goes out in
/// few, full requests: five full upserts of one kind per group.
pub const DEFAULT_BURST: usize = 500;

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            webhook_path: DEFAULT_WEBHOOK_PATH.into(),
            max_body_bytes: 1024 * 1024,
            auth: WebhookAuth::new(None),
            workers: 8,
            policy: QueuePolicy::default(),
            drain_timeout: Duration::from_secs(30),
            burst: DEFAULT_BURST,
        }
    }
}

#[derive(Clone)]
struct App {
    fleet: Arc<Fleet>,
    auth: Arc<WebhookAuth>,
    metrics: Arc<Metrics>,
    wake: Arc<Notify>,
}

/// The queue row of a webhook `text` delivered under `unique_key` (`X-Lago-Unique-Key`): one
/// customer's events share an order key, and a webhook the sync does not push (skipped) or
/// cannot use (rejected, with the reason) is settled at once. `route` names the connection that
/// runs it, or why none can (the event is then kept as rejected with that reason).
pub fn queued_event(
    text: String,
    unique_key: Option<String>,
    route: impl FnOnce(&str, &EventRef) -> Result<String, String>,
) -> NewEvent {
    let event = EventRef::from_payload(&text);
    // Types the sync deliberately does not push are settled here: no worker, no guest call.
    let settled = match Envelope::read(&text) {
        Err(error) => Some(Settled::Rejected(describe_plan_error(&plan_error(error)))),
        Ok(Envelope {
            route: Route::Skip(reason),
            ..
        }) => Some(Settled::Skipped(reason)),
        // A pushed type without its object can never be planned: say so now.
        Ok(envelope) => envelope
            .require_object()
            .err()
            .map(|error| Settled::Rejected(describe_plan_error(&plan_error(error)))),
    };
    // Events of one customer stay in order; anything else orders by itself.
    let order_key = event.order_key(unique_key.as_deref());
    let customer_key = event.customer_key();
    let (connection, settled) = match route(&text, &event) {
        Ok(code) => (code, settled),
        Err(reason) => (String::new(), settled.or(Some(Settled::Rejected(reason)))),
    };
    NewEvent {
        unique_key,
        connection,
        order_key,
        customer_key,
        webhook_type: event.webhook_type,
        lago_id: event.lago_id,
        body: text,
        settled,
    }
}

/// Serves webhooks and runs the workers until `shutdown` resolves, then stops accepting,
/// lets in-flight events finish (or releases them) and returns.
pub async fn serve(
    syncer: Arc<Syncer>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let fleet = Arc::new(Fleet::single(syncer));
    serve_connections(fleet, metrics, listener, options, shutdown).await
}

/// [`serve`] for many connections: each event goes to its customer's connection.
pub async fn serve_connections(
    fleet: Arc<Fleet>,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    options: ServeOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    if options.auth.is_disabled() {
        tracing::warn!(
            "webhook signature verification is OFF: anyone who can reach this port can inject events"
        );
    }
    let wake = Arc::new(Notify::new());
    // On a shared PostgreSQL state, other instances' webhooks wake these workers too.
    let postgres = fleet.store().postgres_url();
    let _arrivals = match postgres {
        Some(url) => Some(ArrivalListener::start(url, wake.clone())?),
        None => None,
    };
    let (stop_workers, stop_signal) = watch::channel(false);
    let workers = Workers {
        fleet: fleet.clone(),
        metrics: metrics.clone(),
        policy: options.policy,
        concurrency: options.workers.max(1),
        wake: wake.clone(),
        drain_timeout: options.drain_timeout,
        burst: options.burst.max(1),
    };
    let workers = tokio::spawn(workers.run(stop_signal));
    let app = App {
        fleet,
        auth: Arc::new(options.auth),
        metrics,
        wake,
    };
    let router = Router::new()
        .route(&options.webhook_path, post(receive))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics_text))
        .layer(DefaultBodyLimit::max(options.max_body_bytes))
        .with_state(app);
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await;
    let _ = stop_workers.send(true);
    let drained = workers.await;
    served?;
    drained??;
    Ok(())
}

fn answer(status: StatusCode, body: serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}

async fn receive(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(error) = app.auth.verify(&headers, &body) {
        tracing::warn!("webhook refused: {error}");
        return answer(
            StatusCode::UNAUTHORIZED,
            json!({"error": error.to_string()}),
        );
    }
    let text = String::from_utf8_lossy(&body).into_owned();
    let event = EventRef::from_payload(&text);
    let (webhook_type, lago_id) = (event.webhook_type.clone(), event.lago_id.clone());
    let unique_key = headers
        .get(UNIQUE_KEY_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Routing may read the store, and a durable commit waits for the disk: both stay off the
    // async threads.
    let fleet = app.fleet.clone();
    let inserted = tokio::task::spawn_blocking(move || {
        let new = queued_event(text, unique_key, |text, event| fleet.route(text, event));
        let settled = new.settled.clone();
        fleet
            .store()
            .insert_event(&new)
            .map(|inserted| (inserted, settled))
    })
    .await;
    match inserted {
        Ok(Ok((Inserted::New(id), settled))) => {
            app.metrics.events_received.inc();
            match settled {
                Some(Settled::Rejected(reason)) => {
                    app.metrics.events_rejected.inc();
                    tracing::warn!(
                        event = id,
                        %webhook_type,
                        %lago_id,
                        outcome = "rejected",
                        %reason,
                        "kept an unusable webhook"
                    );
                    answer(
                        StatusCode::OK,
                        json!({"status": "rejected", "id": id, "reason": reason}),
                    )
                }
                Some(Settled::Skipped(reason)) => {
                    app.metrics.events_skipped.inc();
                    tracing::info!(
                        event = id,
                        %webhook_type,
                        %lago_id,
                        outcome = "skipped",
                        %reason,
                        "event skipped"
                    );
                    answer(
                        StatusCode::OK,
                        json!({"status": "skipped", "id": id, "reason": reason}),
                    )
                }
                None => {
                    app.wake.notify_one();
                    answer(StatusCode::OK, json!({"status": "accepted", "id": id}))
                }
            }
        }
        Ok(Ok((Inserted::Duplicate, _))) => {
            app.metrics.events_duplicate.inc();
            answer(StatusCode::OK, json!({"status": "duplicate"}))
        }
        Ok(Err(error)) => {
            // Not stored: answer 5xx so Lago delivers it again.
            tracing::error!("could not store a webhook: {error:#}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "could not store the event"}),
            )
        }
        Err(error) => {
            tracing::error!("storing a webhook panicked: {error}");
            answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "could not store the event"}),
            )
        }
    }
}

async fn healthz(State(app): State<App>) -> Response {
    match app.fleet.store().queue_stats() {
        Ok(_) => (StatusCode::OK, "ok\n").into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("database: {error:#}\n"),
        )
            .into_response(),
    }
}

async fn metrics_text(State(app): State<App>) -> Response {
    let stats = app.fleet.store().queue_stats().unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics
            .render(stats.depth(), stats.oldest_pending_age_seconds()),
    )
        .into_response()
}
