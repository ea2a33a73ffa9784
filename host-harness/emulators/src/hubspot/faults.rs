//! Switchable misbehaviour, so that clients are tested against the failures real HubSpot
//! produces: rate limits (429 `TEN_SECONDLY_ROLLING` / `DAILY`), transient errors (5xx, 423,
//! 477), latency, connections dropped after the write was committed, and batches where some
//! inputs fail (207). Everything is off by default.
//!
//! Random choices come from one seeded RNG per emulator, drawn in request arrival order, so
//! a run of sequential requests replays exactly with the same seed.
//!
//! The faults run as a middleware layer inside the edge layer (`hubspot_edge` in `mod.rs`):
//! requests that fail authentication never get here, and the edge logs what was injected
//! (read from the response's [`InjectedFault`] extension).

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{Full, Limited};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::errors::{ApiError, CORRELATION_HEADER, new_correlation_id};
use super::objects::MAX_BATCH_INPUTS;
use super::{Emulator, MAX_BODY_BYTES};

/// Largest batch of the associations v4 write endpoints.
const MAX_ASSOCIATION_BATCH_INPUTS: usize = 2_000;

/// Batch write endpoints whose inputs may fail one by one (objects and associations v4).
const PARTIAL_BATCH_SUFFIXES: [&str; 4] = [
    "/batch/create",
    "/batch/update",
    "/batch/upsert",
    "/batch/associate/default",
];

/// How the emulator misbehaves. `Faults::default()` is a well-behaved HubSpot.
///
/// Deserializes from JSON with every field optional, e.g.
/// `{"rate_limit": {"max": 20, "interval_ms": 200}, "error_rate": 0.1, "seed": 7}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Enforced rolling window per portal; over it, 429 `TEN_SECONDLY_ROLLING`. `None`: not
    /// enforced, but responses still report [`RateLimit::default`] in the rate-limit headers.
    /// Counts every authenticated request, reads included, whatever `writes_only` says, except
    /// searches, which HubSpot limits separately (`search_rate_limit`).
    pub rate_limit: Option<RateLimit>,
    /// Search's own limit per portal (`POST …/search`); over it, 429 `SECONDLY`. Enforced when
    /// set, and at HubSpot's 5 requests per second whenever `rate_limit` is enforced. Search
    /// answers carry no rate-limit headers, as HubSpot's do not.
    pub search_rate_limit: Option<RateLimit>,
    /// Requests allowed since the faults were set (the emulator's "day"); beyond, 429 `DAILY`.
    pub daily_max: Option<u32>,
    /// Probability that a request fails before being processed (no state change) with one
    /// of `error_statuses`, chosen uniformly.
    pub error_rate: f64,
    /// Statuses for `error_rate`: 5xx, 423 (locked), 477 (migrating, `Retry-After: 1`), 429.
    pub error_statuses: Vec<u16>,
    /// Delay before answering, uniform in `[min, max]` milliseconds.
    pub latency_ms: Option<(u64, u64)>,
    /// Probability that a request is processed (state changes) and the connection is then
    /// cut before the client has the complete response.
    pub drop_rate: f64,
    /// On batch create/update/upsert and association batch writes, the probability that each
    /// input fails on its own (not applied) and is reported in a 207's `errors[]`.
    pub partial_batch_rate: f64,
    /// Restricts errors, latency and drops to writes (reads are GETs, `batch/read`, `search`).
    pub writes_only: bool,
    /// Seed for the random choices; `None` picks one, which [`Emulator::faults`] reports.
    pub seed: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            rate_limit: None,
            search_rate_limit: None,
            daily_max: None,
            error_rate: 0.0,
            error_statuses: vec![500, 502, 503, 504, 423, 477],
            latency_ms: None,
            drop_rate: 0.0,
            partial_batch_rate: 0.0,
            writes_only: false,
            seed: None,
        }
    }
}

/// A rolling window: at most `max` requests in any `interval_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimit {
    pub max: u32,
    pub interval_ms: u64,
}

impl Default for RateLimit {
    /// HubSpot's burst limit for public apps: 110 requests per 10 seconds.
    fn default() -> Self {
        Self {
            max: 110,
            interval_ms: 10_000,
        }
    }
}

/// HubSpot's search limit: 5 requests per second per portal (hubspot-api.md §3.3).
pub const SEARCH_RATE_LIMIT: RateLimit = RateLimit {
    max: 5,
    interval_ms: 1_000,
};

/// What the emulator did to a request on purpose, as recorded in `LoggedRequest::fault`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// 429 `TEN_SECONDLY_ROLLING`: the rolling window was full; or, on a search, 429
    /// `SECONDLY`: the search limit was reached.
    RateLimited,
    /// 429 `DAILY`: `daily_max` was used up.
    DailyLimited,
    /// A random error from `error_statuses`, answered without processing the request.
    Error,
    /// Processed, then the connection was cut; `status` is what the client did not receive
    /// (the log's own `status` is 0).
    Dropped { status: u16 },
    /// A 207 in which `failed` inputs were refused on purpose.
    PartialBatch { failed: usize },
}

/// Per-emulator fault state, kept in the portal behind its lock.
#[derive(Debug)]
pub(crate) struct FaultState {
    /// The settings, with `seed` always filled in.
    settings: Faults,
    rng: StdRng,
    /// Arrival times of the admitted requests still inside the rolling window.
    window: VecDeque<Instant>,
    /// The same for searches, which have their own limit.
    search_window: VecDeque<Instant>,
    admitted_today: u32,
}

impl FaultState {
    pub(crate) fn new(mut settings: Faults) -> Self {
        let seed = settings.seed.unwrap_or_else(rand::random);
        settings.seed = Some(seed);
        if settings
            != (Faults {
                seed: Some(seed),
                ..Faults::default()
            })
        {
            tracing::info!(
                ?settings,
                "HubSpot emulator faults set (replay with this seed)"
            );
        }
        Self {
            settings,
            rng: StdRng::seed_from_u64(seed),
            window: VecDeque::new(),
            search_window: VecDeque::new(),
            admitted_today: 0,
        }
    }

    /// New settings restart the RNG and the daily count; the rolling window keeps its
    /// history, since those requests really happened.
    pub(crate) fn replace(&mut self, settings: Faults) {
        let window = std::mem::take(&mut self.window);
        let search_window = std::mem::take(&mut self.search_window);
        *self = Self::new(settings);
        self.window = window;
        self.search_window = search_window;
    }

    pub(crate) fn settings(&self) -> &Faults {
        &self.settings
    }

    /// The search limit in force, if any.
    fn search_limit(&self) -> Option<RateLimit> {
        self.settings
            .search_rate_limit
            .or(self.settings.rate_limit.map(|_| SEARCH_RATE_LIMIT))
    }

    /// Admits one request against the limits and draws its faults. A search counts against
    /// the search limit instead of the rolling window (both count against the day).
    fn decide(
        &mut self,
        now: Instant,
        write: bool,
        batch_inputs: usize,
        search: bool,
    ) -> Result<Plan, Refusal> {
        let (enforced, window) = if search {
            (self.search_limit(), &mut self.search_window)
        } else {
            (self.settings.rate_limit, &mut self.window)
        };
        let limit = enforced.unwrap_or_default();
        let interval = Duration::from_millis(limit.interval_ms);
        while window
            .front()
            .is_some_and(|&seen| now.duration_since(seen) >= interval)
        {
            window.pop_front();
        }
        let used = u32::try_from(window.len()).unwrap_or(u32::MAX);
        let mut quota = Quota {
            limit,
            remaining: 0,
            daily: self.settings.daily_max.map(|max| (max, 0)),
        };
        if self
            .settings
            .daily_max
            .is_some_and(|max| self.admitted_today >= max)
        {
            return Err(Refusal::Daily(quota));
        }
        if enforced.is_some() && used >= limit.max {
            return Err(if search {
                Refusal::Secondly
            } else {
                Refusal::Rolling(quota)
            });
        }
        window.push_back(now);
        self.admitted_today = self.admitted_today.saturating_add(1);
        quota.remaining = limit.max.saturating_sub(used.saturating_add(1));
        quota.daily = quota
            .daily
            .map(|(max, _)| (max, max.saturating_sub(self.admitted_today)));

        let mut plan = Plan {
            quota,
            latency: None,
            error: None,
            drop: false,
            failed_inputs: BTreeSet::new(),
        };
        if self.settings.writes_only && !write {
            return Ok(plan);
        }
        if let Some((low, high)) = self.settings.latency_ms {
            let millis = self.rng.random_range(low.min(high)..=high.max(low));
            plan.latency = Some(Duration::from_millis(millis));
        }
        if self.rng.random_bool(probability(self.settings.error_rate)) {
            let statuses = &self.settings.error_statuses;
            plan.error = Some(if statuses.is_empty() {
                500
            } else {
                statuses[self.rng.random_range(0..statuses.len())]
            });
            return Ok(plan);
        }
        plan.drop = self.rng.random_bool(probability(self.settings.drop_rate));
        let input_failure = probability(self.settings.partial_batch_rate);
        plan.failed_inputs = (0..batch_inputs)
            .filter(|_| self.rng.random_bool(input_failure))
            .collect();
        Ok(plan)
    }
}

/// A rate a user may have typed out of range: NaN and negatives are 0, above 1 is 1.
fn probability(rate: f64) -> f64 {
    if rate.is_nan() {
        0.0
    } else {
        rate.clamp(0.0, 1.0)
    }
}

/// The rate-limit state reported in the response headers.
#[derive(Debug, Clone, Copy)]
struct Quota {
    limit: RateLimit,
    remaining: u32,
    /// (daily max, daily remaining) when a daily cap is set.
    daily: Option<(u32, u32)>,
}

impl Quota {
    fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert("x-hubspot-ratelimit-max", HeaderValue::from(self.limit.max));
        headers.insert(
            "x-hubspot-ratelimit-remaining",
            HeaderValue::from(self.remaining),
        );
        headers.insert(
            "x-hubspot-ratelimit-interval-milliseconds",
            HeaderValue::from(self.limit.interval_ms),
        );
        if let Some((max, remaining)) = self.daily {
            headers.insert("x-hubspot-ratelimit-daily", HeaderValue::from(max));
            headers.insert(
                "x-hubspot-ratelimit-daily-remaining",
                HeaderValue::from(remaining),
            );
        }
    }
}

enum Refusal {
    Rolling(Quota),
    Daily(Quota),
    /// The search limit: no rate-limit headers, as on every search answer.
    Secondly,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (quota, policy, fault) = match self {
            Self::Rolling(quota) => (
                Some(quota),
                "TEN_SECONDLY_ROLLING",
                InjectedFault::RateLimited,
            ),
            Self::Daily(quota) => (Some(quota), "DAILY", InjectedFault::DailyLimited),
            Self::Secondly => (None, "SECONDLY", InjectedFault::RateLimited),
        };
        let mut response = rate_limit_response(policy);
        if let Some(quota) = quota {
            quota.write_headers(response.headers_mut());
        }
        response.extensions_mut().insert(fault);
        response
    }
}

/// What happens to one admitted request.
struct Plan {
    quota: Quota,
    latency: Option<Duration>,
    error: Option<u16>,
    drop: bool,
    /// Positions of the batch inputs that fail on purpose.
    failed_inputs: BTreeSet<usize>,
}

/// HubSpot's 429 body for a policy (`TEN_SECONDLY_ROLLING`, `DAILY`, `SECONDLY`).
fn rate_limit_response(policy: &str) -> Response {
    let correlation_id = new_correlation_id();
    let message = match policy {
        "DAILY" => "You have reached your daily limit.".to_owned(),
        other => format!(
            "You have reached your {} limit.",
            other.to_ascii_lowercase()
        ),
    };
    let mut body = json!({
        "status": "error",
        "message": message,
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id,
        "policyName": policy,
        "requestId": new_correlation_id(),
    });
    if policy == "TEN_SECONDLY_ROLLING" {
        // HubSpot names the limit group of the app on burst limits.
        body["groupName"] = json!("publicapi:emulator");
    }
    let mut response = (StatusCode::TOO_MANY_REQUESTS, axum::Json(body)).into_response();
    if let Ok(value) = HeaderValue::from_str(&correlation_id) {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    response
}

/// A transient error as HubSpot sends it. HubSpot documents the statuses but not every
/// body; these follow its usual error shape.
fn injected_error(status: u16) -> Response {
    if status == 429 {
        return rate_limit_response("TEN_SECONDLY_ROLLING");
    }
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (category, message) = match code.as_u16() {
        // Real HubSpot locks for 2 s; the emulator only says so and locks nothing.
        423 => (
            "LOCKED",
            "The portal is locked while a large volume of records is processed. Retry in 2 seconds.",
        ),
        477 => (
            "MIGRATION_IN_PROGRESS",
            "This account is being migrated to another data center. Retry after the Retry-After delay.",
        ),
        502 => (
            "INTERNAL_ERROR",
            "Bad gateway: the request hit a processing limit.",
        ),
        503 => (
            "INTERNAL_ERROR",
            "The service is temporarily unavailable. Please try again later.",
        ),
        504 => (
            "INTERNAL_ERROR",
            "Gateway timeout: the request took too long to process.",
        ),
        _ => ("INTERNAL_ERROR", "internal error"),
    };
    let mut response = ApiError::new(code, category, message).into_response();
    if code.as_u16() == 477 {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    response
}

/// Whether a request is a CRM search (`POST /crm/v3/objects/{type}/search`).
fn is_search(method: &Method, path: &str) -> bool {
    method == Method::POST && path.ends_with("/search")
}

/// Whether a request changes state: everything but GETs, batch reads and searches.
fn is_write(method: &Method, path: &str) -> bool {
    method != Method::GET
        && method != Method::HEAD
        && !path.ends_with("/batch/read")
        && !path.ends_with("/search")
}

/// The `inputs` of a batch write eligible for partial failure. Batches the handler must
/// reject as a whole (too many inputs, repeated ids, unreadable JSON) are left alone, so
/// that removing failed inputs cannot turn an invalid batch into a valid one.
fn partial_batch_inputs(method: &Method, path: &str, body: &[u8]) -> Option<Vec<Value>> {
    if method != Method::POST
        || !PARTIAL_BATCH_SUFFIXES
            .iter()
            .any(|suffix| path.ends_with(suffix))
    {
        return None;
    }
    let Ok(Value::Object(mut body)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let Some(Value::Array(inputs)) = body.remove("inputs") else {
        return None;
    };
    let cap = if path.contains("/associations/") {
        MAX_ASSOCIATION_BATCH_INPUTS
    } else {
        MAX_BATCH_INPUTS
    };
    let ids: Vec<String> = inputs
        .iter()
        .filter_map(|input| input.get("id"))
        .map(Value::to_string)
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    (inputs.len() <= cap && unique.len() == ids.len()).then_some(inputs)
}

/// One `errors[]` entry for an input failed on purpose, naming it the way a client can
/// match: `objectWriteTraceId`, the record `id`, or both association ends.
fn input_failure(input: &Value) -> Value {
    let mut error = ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "INTERNAL_ERROR",
        "internal error: this input was not processed, retry it",
    );
    let id_of = |value: Option<&Value>| match value {
        Some(Value::String(text)) => Some(text.clone()),
        Some(Value::Number(number)) => Some(number.to_string()),
        _ => None,
    };
    if let Some(id) = id_of(input.get("id")) {
        error = error.with_context("ids", [id]);
    }
    for (side, key) in [("from", "fromObjectId"), ("to", "toObjectId")] {
        if let Some(id) = id_of(input.get(side).and_then(|end| end.get("id"))) {
            error = error.with_context(key, [id]);
        }
    }
    let trace_id = input.get("objectWriteTraceId").and_then(Value::as_str);
    error.batch_entry(trace_id)
}

/// Runs the batch without its failed inputs, then reports them in a 207 beside the
/// handler's own results and errors. A handler refusing the whole batch is answered as is.
async fn run_partial_batch(
    request: Request,
    body: &[u8],
    inputs: Vec<Value>,
    failed: &BTreeSet<usize>,
    next: Next,
) -> Response {
    let Ok(Value::Object(mut reduced)) = serde_json::from_slice::<Value>(body) else {
        return next.run(request).await;
    };
    let mut failures = Vec::new();
    let mut kept = Vec::new();
    for (position, input) in inputs.into_iter().enumerate() {
        if failed.contains(&position) {
            failures.push(input_failure(&input));
        } else {
            kept.push(input);
        }
    }
    reduced.insert("inputs".to_owned(), Value::Array(kept));
    let (mut parts, _) = request.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let body = serde_json::to_vec(&reduced).unwrap_or_default();
    let response = next.run(Request::from_parts(parts, Body::from(body))).await;

    if !matches!(response.status().as_u16(), 200 | 201 | 207) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let Ok(Value::Object(mut reply)) = serde_json::from_slice::<Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    let failed_count = failures.len();
    let mut errors = match reply.remove("errors") {
        Some(Value::Array(errors)) => errors,
        _ => Vec::new(),
    };
    errors.extend(failures);
    reply.insert("numErrors".to_owned(), json!(errors.len()));
    reply.insert("errors".to_owned(), Value::Array(errors));
    parts.status = StatusCode::MULTI_STATUS;
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(InjectedFault::PartialBatch {
        failed: failed_count,
    });
    Response::from_parts(
        parts,
        Body::from(serde_json::to_vec(&reply).unwrap_or_default()),
    )
}

/// Cuts the connection after the handler has committed, like a server dying mid-answer:
/// the body fails after its first byte, which makes hyper abort the connection, so the
/// client gets no response or a truncated one, never a clean one.
async fn cut_off(response: Response) -> Response {
    let status = response.status().as_u16();
    let (mut parts, body) = response.into_parts();
    let mut bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    if bytes.len() < 2 {
        // A body is needed to fail in; a 204 would not even be polled for one.
        bytes = Bytes::from_static(b"{}");
        parts.status = StatusCode::OK;
    }
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.extensions.insert(InjectedFault::Dropped { status });
    // `Limited` errors on a frame larger than its limit: the whole body is one frame.
    let failing = Limited::new(Full::new(bytes), 1);
    Response::from_parts(parts, Body::new(failing))
}

/// The fault layer: rate limits, then latency, a random error or the real handler (maybe
/// with a partial batch), then maybe a dropped connection.
pub(crate) async fn inject(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let now = Instant::now();
    let (parts, body) = request.into_parts();
    // The edge layer has already buffered the body, so this cannot fail on size.
    let body = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .unwrap_or_default();
    let path = parts.uri.path();
    let write = is_write(&parts.method, path);
    let search = is_search(&parts.method, path);
    let batch = partial_batch_inputs(&parts.method, path, &body);
    let batch_len = batch.as_ref().map_or(0, Vec::len);
    let decided = emulator.lock().faults.decide(now, write, batch_len, search);
    let plan = match decided {
        Ok(plan) => plan,
        Err(refusal) => return refusal.into_response(),
    };
    if let Some(delay) = plan.latency {
        tokio::time::sleep(delay).await;
    }
    let mut response = match (plan.error, batch) {
        (Some(status), _) => {
            let mut response = injected_error(status);
            response.extensions_mut().insert(InjectedFault::Error);
            response
        }
        (None, Some(inputs)) if !plan.failed_inputs.is_empty() => {
            let request = Request::from_parts(parts, Body::empty());
            run_partial_batch(request, &body, inputs, &plan.failed_inputs, next).await
        }
        (None, _) => next.run(Request::from_parts(parts, Body::from(body))).await,
    };
    if !search {
        plan.quota.write_headers(response.headers_mut());
    }
    if plan.drop {
        response = cut_off(response).await;
    }
    response
}

/// `lago-hubspot emulator` switches for [`Faults`]; flags override the file's fields.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FaultArgs {
    /// JSON `Faults`, e.g. {"rate_limit":{"max":20,"interval_ms":200},"latency_ms":[5,10]}.
    #[arg(long = "faults", value_name = "FILE.json")]
    pub faults_file: Option<PathBuf>,
    /// Enforce a rolling window of MAX requests per INTERVAL_MS (HubSpot: 110/10000).
    #[arg(long, value_name = "MAX/INTERVAL_MS", value_parser = parse_rate_limit)]
    pub rate_limit: Option<RateLimit>,
    /// Limit searches to MAX per INTERVAL_MS (429 SECONDLY); with --rate-limit, HubSpot's 5/1000.
    #[arg(long, value_name = "MAX/INTERVAL_MS", value_parser = parse_rate_limit)]
    pub search_rate_limit: Option<RateLimit>,
    /// Answer 429 DAILY once this many requests were served.
    #[arg(long, value_name = "N")]
    pub daily_max: Option<u32>,
    /// Probability of an injected error before processing.
    #[arg(long, value_name = "F", value_parser = parse_probability)]
    pub error_rate: Option<f64>,
    /// Statuses injected errors pick from (default 500,502,503,504,423,477).
    #[arg(long, value_name = "CODES", value_delimiter = ',')]
    pub error_statuses: Option<Vec<u16>>,
    /// Delay every answer by a uniform MIN..MAX milliseconds.
    #[arg(long, value_name = "MIN..MAX", value_parser = parse_latency)]
    pub latency_ms: Option<(u64, u64)>,
    /// Probability of processing a request, then dropping the connection.
    #[arg(long, value_name = "F", value_parser = parse_probability)]
    pub drop_rate: Option<f64>,
    /// Probability that each input of a batch write fails (207).
    #[arg(long, value_name = "F", value_parser = parse_probability)]
    pub partial_batch_rate: Option<f64>,
    /// Apply errors, latency and drops to writes only.
    #[arg(long)]
    pub writes_only: bool,
    /// Seed of the random choices, to replay a run.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

impl FaultArgs {
    pub fn to_faults(&self) -> anyhow::Result<Faults> {
        let mut faults = match &self.faults_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|error| {
                    anyhow::anyhow!("cannot read faults file {}: {error}", path.display())
                })?;
                serde_json::from_str(&text).map_err(|error| {
                    anyhow::anyhow!("invalid faults file {}: {error}", path.display())
                })?
            }
            None => Faults::default(),
        };
        faults.rate_limit = self.rate_limit.or(faults.rate_limit);
        faults.search_rate_limit = self.search_rate_limit.or(faults.search_rate_limit);
        faults.daily_max = self.daily_max.or(faults.daily_max);
        faults.error_rate = self.error_rate.unwrap_or(faults.error_rate);
        if let Some(statuses) = &self.error_statuses {
            faults.error_statuses.clone_from(statuses);
        }
        faults.latency_ms = self.latency_ms.or(faults.latency_ms);
        faults.drop_rate = self.drop_rate.unwrap_or(faults.drop_rate);
        faults.partial_batch_rate = self.partial_batch_rate.unwrap_or(faults.partial_batch_rate);
        faults.writes_only |= self.writes_only;
        faults.seed = self.seed.or(faults.seed);
        Ok(faults)
    }
}

fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (max, interval) = text
        .split_once('/')
        .ok_or_else(|| "expected MAX/INTERVAL_MS, e.g. 110/10000".to_owned())?;
    let max = max
        .trim()
        .parse()
        .map_err(|error| format!("MAX: {error}"))?;
    let interval_ms: u64 = interval
        .trim()
        .parse()
        .map_err(|error| format!("INTERVAL_MS: {error}"))?;
    if interval_ms == 0 {
        return Err("INTERVAL_MS must be positive".to_owned());
    }
    Ok(RateLimit { max, interval_ms })
}

fn parse_probability(text: &str) -> Result<f64, String> {
    let rate: f64 = text.trim().parse().map_err(|error| format!("{error}"))?;
    if (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err("expected a probability between 0 and 1".to_owned())
    }
}

fn parse_latency(text: &str) -> Result<(u64, u64), String> {
    let (low, high) = text.split_once("..").unwrap_or((text, text));
    let parse = |part: &str| {
        part.trim()
            .parse::<u64>()
            .map_err(|error| error.to_string())
    };
    let (low, high) = (parse(low)?, parse(high)?);
    if low > high {
        return Err("MIN must not exceed MAX".to_owned());
    }
    Ok((low, high))
}

#[cfg(test)]
mod tests;
