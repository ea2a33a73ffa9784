//! A small Lago API served on loopback, for backfill tests: the customer, subscription and
//! invoice lists of REST API v1 over fixtures, paginated as Lago paginates them.
//!
//! What it models, because the backfill depends on it:
//! - `Authorization: Bearer <key>`: any other key, or none, gets Lago's 401 body;
//! - `page` / `per_page` (default 20) and the `meta` block with `next_page` null on the last page;
//! - the subscription list returns only `active` ones unless `status[]` asks for others, and does
//!   not embed the customer; the invoice list embeds it, as Lago's controllers do;
//! - invoice filters `status`, `issuing_date_from`, `issuing_date_to`, `external_customer_id`;
//! - `GET /api/v1/customers/{external_id}`;
//! - [`RunningLagoEmulator::fail_after`] answers 500 once a number of requests has been served,
//!   to interrupt a backfill half-way.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Lago's default page size.
const DEFAULT_PER_PAGE: usize = 20;

/// The objects the emulated organization holds, in the order the lists return them.
#[derive(Debug, Clone, Default)]
pub struct LagoFixtures {
    pub customers: Vec<Value>,
    pub subscriptions: Vec<Value>,
    pub invoices: Vec<Value>,
}

/// One request the emulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedLagoRequest {
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub status: u16,
}

#[derive(Debug)]
struct LagoState {
    api_key: String,
    fixtures: LagoFixtures,
    /// Requests answered normally before every later one gets a 500.
    fail_after: Option<usize>,
    answered: usize,
    log: Vec<LoggedLagoRequest>,
}

#[derive(Debug, Clone)]
struct Shared(Arc<Mutex<LagoState>>);

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LagoState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A served Lago emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningLagoEmulator {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

/// Binds `127.0.0.1:0` and serves `fixtures` to requests carrying `api_key`.
pub async fn start(api_key: &str, fixtures: LagoFixtures) -> anyhow::Result<RunningLagoEmulator> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let shared = Shared(Arc::new(Mutex::new(LagoState {
        api_key: api_key.to_owned(),
        fixtures,
        fail_after: None,
        answered: 0,
        log: Vec::new(),
    })));
    let app = router(shared.clone());
    let task = tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::error!(%error, "Lago emulator stopped");
        }
    });
    Ok(RunningLagoEmulator {
        url: format!("http://{addr}"),
        addr,
        shared,
        task,
    })
}

impl RunningLagoEmulator {
    /// From now on, answer `requests` more requests normally, then 500 to every one after.
    pub fn fail_after(&self, requests: usize) {
        let mut state = self.shared.lock();
        state.fail_after = Some(state.answered + requests);
    }

    /// Stop failing.
    pub fn recover(&self) {
        self.shared.lock().fail_after = None;
    }

    pub fn request_log(&self) -> Vec<LoggedLagoRequest> {
        self.shared.lock().log.clone()
    }

    pub fn clear_request_log(&self) {
        self.shared.lock().log.clear();
    }

    /// Change the organization's data between runs (e.g. a customer edited in Lago).
    pub fn update_fixtures(&self, change: impl FnOnce(&mut LagoFixtures)) {
        change(&mut self.shared.lock().fixtures);
    }
}

impl Drop for RunningLagoEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(shared: Shared) -> Router {
    Router::new()
        .route("/api/v1/customers", get(customers))
        .route("/api/v1/customers/{external_id}", get(customer))
        .route("/api/v1/subscriptions", get(subscriptions))
        .route("/api/v1/invoices", get(invoices))
        .fallback(|| async { lago_error(StatusCode::NOT_FOUND, Some("resource_not_found")) })
        .layer(middleware::from_fn_with_state(shared.clone(), edge))
        .with_state(shared)
}

/// Failure injection, authentication and the request log, around every route.
async fn edge(State(shared): State<Shared>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let early = {
        let mut state = shared.lock();
        let failing = state
            .fail_after
            .is_some_and(|limit| state.answered >= limit);
        state.answered += 1;
        if failing {
            Some(lago_error(StatusCode::INTERNAL_SERVER_ERROR, None))
        } else if presented.as_deref() != Some(state.api_key.as_str()) {
            Some(lago_error(StatusCode::UNAUTHORIZED, None))
        } else {
            None
        }
    };
    let response = match early {
        Some(response) => response,
        None => next.run(request).await,
    };
    shared.lock().log.push(LoggedLagoRequest {
        path,
        query,
        status: response.status().as_u16(),
    });
    response
}

/// Lago's error body: `{"status", "error", "code"?}`.
fn lago_error(status: StatusCode, code: Option<&str>) -> Response {
    let mut body = json!({
        "status": status.as_u16(),
        "error": status.canonical_reason().unwrap_or("Error"),
    });
    if let Some(code) = code {
        body["code"] = json!(code);
    }
    (status, axum::Json(body)).into_response()
}

/// The query string as pairs; `status[]` may repeat.
fn pairs(query: Option<String>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn text<'a>(record: &'a Value, key: &str) -> &'a str {
    record.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// One page of `records` under `collection`, with Lago's `meta` block.
fn paginate(collection: &str, records: Vec<Value>, pairs: &[(String, String)]) -> Response {
    let number = |key, default| {
        first(pairs, key)
            .map(|v| v.parse::<usize>().ok().filter(|n| *n > 0))
            .unwrap_or(Some(default))
    };
    let (Some(page), Some(per_page)) = (number("page", 1), number("per_page", DEFAULT_PER_PAGE))
    else {
        return lago_error(StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_pagination"));
    };
    let total_count = records.len();
    let total_pages = total_count.div_ceil(per_page);
    let items: Vec<Value> = records
        .into_iter()
        .skip((page - 1).saturating_mul(per_page))
        .take(per_page)
        .collect();
    axum::Json(json!({
        collection: items,
        "meta": {
            "current_page": page,
            "next_page": if page < total_pages { json!(page + 1) } else { Value::Null },
            "prev_page": if page > 1 { json!(page - 1) } else { Value::Null },
            "total_pages": total_pages,
            "total_count": total_count,
        }
    }))
    .into_response()
}

async fn customers(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let records = shared.lock().fixtures.customers.clone();
    paginate("customers", records, &pairs(query))
}

async fn customer(State(shared): State<Shared>, Path(external_id): Path<String>) -> Response {
    let found = shared
        .lock()
        .fixtures
        .customers
        .iter()
        .find(|c| text(c, "external_id") == external_id)
        .cloned();
    match found {
        Some(customer) => axum::Json(json!({ "customer": customer })).into_response(),
        None => lago_error(StatusCode::NOT_FOUND, Some("customer_not_found")),
    }
}

async fn subscriptions(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let pairs = pairs(query);
    let mut statuses: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "status[]")
        .map(|(_, v)| v.as_str())
        .collect();
    if statuses.is_empty() {
        statuses.push("active");
    }
    let customer = first(&pairs, "external_customer_id");
    let records = shared
        .lock()
        .fixtures
        .subscriptions
        .iter()
        .filter(|s| statuses.contains(&text(s, "status")))
        .filter(|s| customer.is_none_or(|c| text(s, "external_customer_id") == c))
        .map(|s| {
            let mut listed = s.clone();
            if let Some(object) = listed.as_object_mut() {
                object.remove("customer");
            }
            listed
        })
        .collect();
    paginate("subscriptions", records, &pairs)
}

async fn invoices(State(shared): State<Shared>, RawQuery(query): RawQuery) -> Response {
    let pairs = pairs(query);
    let status = first(&pairs, "status");
    let from = first(&pairs, "issuing_date_from");
    let to = first(&pairs, "issuing_date_to");
    let customer = first(&pairs, "external_customer_id");
    let records = shared
        .lock()
        .fixtures
        .invoices
        .iter()
        .filter(|i| status.is_none_or(|s| text(i, "status") == s))
        // ISO dates compare as text.
        .filter(|i| from.is_none_or(|d| text(i, "issuing_date") >= d))
        .filter(|i| to.is_none_or(|d| text(i, "issuing_date") <= d))
        .filter(|i| {
            customer.is_none_or(|c| {
                i.pointer("/customer/external_id").and_then(Value::as_str) == Some(c)
            })
        })
        .cloned()
        .collect();
    paginate("invoices", records, &pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn get(url: &str, key: &str) -> (u16, Value) {
        let response = reqwest::Client::new()
            .get(url)
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
    }

    fn fixtures() -> LagoFixtures {
        let customer =
            |i: usize| json!({"lago_id": format!("c{i}"), "external_id": format!("e{i}")});
        LagoFixtures {
            customers: (0..5).map(customer).collect(),
            subscriptions: vec![
                json!({"lago_id": "s1", "status": "active", "customer": customer(0)}),
                json!({"lago_id": "s2", "status": "pending"}),
            ],
            invoices: vec![
                json!({"lago_id": "i1", "status": "draft", "issuing_date": "2026-01-10"}),
                json!({"lago_id": "i2", "status": "finalized", "issuing_date": "2026-02-10"}),
            ],
        }
    }

    #[tokio::test]
    async fn lists_page_filter_and_check_the_key() {
        let lago = start("key", fixtures()).await.unwrap();
        let (status, body) = get(
            &format!("{}/api/v1/customers?page=2&per_page=2", lago.url),
            "key",
        )
        .await;
        assert_eq!(status, 200);
        assert_eq!(body["customers"][0]["lago_id"], "c2");
        assert_eq!(
            body["meta"],
            json!({"current_page": 2, "next_page": 3, "prev_page": 1, "total_pages": 3, "total_count": 5})
        );
        let (_, last) = get(
            &format!("{}/api/v1/customers?page=3&per_page=2", lago.url),
            "key",
        )
        .await;
        assert_eq!(last["meta"]["next_page"], Value::Null);

        let (_, active) = get(&format!("{}/api/v1/subscriptions", lago.url), "key").await;
        assert_eq!(active["meta"]["total_count"], 1);
        assert!(active["subscriptions"][0].get("customer").is_none());
        let (_, both) = get(
            &format!(
                "{}/api/v1/subscriptions?status%5B%5D=active&status[]=pending",
                lago.url
            ),
            "key",
        )
        .await;
        assert_eq!(both["meta"]["total_count"], 2);

        let (_, issued) = get(
            &format!("{}/api/v1/invoices?issuing_date_from=2026-02-01", lago.url),
            "key",
        )
        .await;
        assert_eq!(issued["invoices"][0]["lago_id"], "i2");
        assert_eq!(issued["meta"]["total_count"], 1);

        let (status, body) = get(&format!("{}/api/v1/customers/e3", lago.url), "key").await;
        assert_eq!(
            (status, body["customer"]["lago_id"].clone()),
            (200, json!("c3"))
        );

        let (status, body) = get(&format!("{}/api/v1/customers", lago.url), "wrong").await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "Unauthorized");
    }

    #[tokio::test]
    async fn fails_after_the_requests_it_was_told_then_recovers() {
        let lago = start("key", fixtures()).await.unwrap();
        lago.fail_after(1);
        let url = format!("{}/api/v1/customers", lago.url);
        assert_eq!(get(&url, "key").await.0, 200);
        assert_eq!(get(&url, "key").await.0, 500);
        assert_eq!(get(&url, "key").await.0, 500);
        lago.recover();
        assert_eq!(get(&url, "key").await.0, 200);
        let statuses: Vec<u16> = lago.request_log().iter().map(|r| r.status).collect();
        assert_eq!(statuses, vec![200, 500, 500, 200]);
    }
}
