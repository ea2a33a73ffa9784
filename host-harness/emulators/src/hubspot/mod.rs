//! An in-memory HubSpot CRM served over HTTP on loopback.
//!
//! HubSpot cannot be reached from where this project is built and tested, so every test runs
//! against this emulator. It implements the v3/v4 endpoints the sync uses (properties,
//! schemas, objects with batch upsert, search and merge, associations) with HubSpot's status
//! codes, error bodies and validation rules, strictly enough that a wrong request plan fails
//! here as it would against the real API. See `/work/shared/reference/hubspot-api.md` for the
//! behaviour modelled. On demand it also misbehaves like HubSpot does (rate limits, 5xx,
//! dropped connections, partial batch failures): see [`Faults`].
//!
//! A portal need not start empty: [`Emulator::seed`] (or `lago-hubspot emulator
//! --seed-records FILE.json`) creates records someone made by hand, [`Emulator::archive`] and
//! [`Emulator::merge`] change them behind the sync's back, and [`fixtures::lived_in_portal`]
//! seeds a typical one. Contacts are unique by email (409 / 207 `CONFLICT`), emails need a
//! top-level domain on IANA's list, archived ids answer 404 and merged ids keep answering with
//! the merged record.
//!
//! ```no_run
//! # async fn demo() -> anyhow::Result<()> {
//! use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
//! let hubspot = Emulator::start(EmulatorConfig::default()).await?;
//! // point the client at hubspot.url with "Authorization: Bearer test-token" …
//! assert!(hubspot.records("companies").is_empty());
//! # Ok(()) }
//! ```

mod associations;
mod builtin;
mod clock;
mod errors;
mod faults;
pub mod fixtures;
mod merge;
mod oauth;
mod objects;
mod properties;
mod records;
mod schemas;
mod search;
mod seed;
mod state;
mod tlds;
mod validate;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use self::clock::format_iso_millis;
use self::errors::{ApiError, CORRELATION_HEADER, new_correlation_id};
use self::state::Portal;

pub use self::faults::{FaultArgs, Faults, InjectedFault, RateLimit};
pub use self::oauth::{KNOWN_SCOPES, OAuthConfig, OAuthStats};
pub use self::seed::{Seed, SeedArgs, SeedAssociation, SeedRecord, SeedRef, Seeded};

/// Largest request body the emulator accepts (HubSpot rejects far smaller payloads anyway).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Date-versioned path segments served as twins of the v3/v4 paths.
const DATED_VERSIONS: [&str; 2] = ["2026-03", "2026-09"];

/// How the emulated portal is set up.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The HubSpot account (hub) id; appears in `fullyQualifiedName` as `p{portal_id}_{name}`.
    pub portal_id: u64,
    /// Bearer tokens accepted in `Authorization`; any other token, or none, gets a 401.
    pub tokens: Vec<String>,
    /// Misbehaviour to start with (rate limits, errors, drops…); none by default. Can be
    /// changed later with [`Emulator::set_faults`].
    pub faults: Faults,
    /// The OAuth app this portal knows; tokens it issues are accepted alongside `tokens`.
    pub oauth: OAuthConfig,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            portal_id: 12_345_678,
            tokens: vec!["test-token".to_owned()],
            faults: Faults::default(),
            oauth: OAuthConfig::default(),
        }
    }
}

/// A snapshot of one CRM record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: String,
    /// Every stored property, values as HubSpot returns them (strings).
    pub properties: BTreeMap<String, String>,
    /// ISO 8601, as in the API's `createdAt`.
    pub created_at: String,
    /// ISO 8601, as in the API's `updatedAt`.
    pub updated_at: String,
}

/// One request the emulator answered, for tests that count calls or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`; empty when there was none.
    pub query: String,
    pub status: u16,
    /// The request body as text (lossy UTF-8).
    pub body: String,
    /// What the emulator did on purpose, if anything. A dropped connection is logged with
    /// `status: 0` (the client got no complete answer) and the handler's status here.
    pub fault: Option<InjectedFault>,
}

/// The emulated HubSpot: shared portal state plus the HTTP surface over it. Cloning shares
/// the same state.
#[derive(Debug, Clone)]
pub struct Emulator {
    portal: Arc<Mutex<Portal>>,
}

impl Emulator {
    pub fn new(config: EmulatorConfig) -> Self {
        Self {
            portal: Arc::new(Mutex::new(Portal::new(&config))),
        }
    }

    /// Serves the API on `listener` until the future is dropped or its task aborted.
    pub async fn serve(self, listener: TcpListener) -> anyhow::Result<()> {
        axum::serve(listener, router(self)).await?;
        Ok(())
    }

    /// Binds `127.0.0.1:0`, serves in a background task and returns a handle that stops the
    /// server when dropped.
    pub async fn start(config: EmulatorConfig) -> anyhow::Result<RunningEmulator> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let emulator = Self::new(config);
        let serving = emulator.clone();
        let task = tokio::spawn(async move {
            if let Err(error) = serving.serve(listener).await {
                tracing::error!(%error, "HubSpot emulator stopped");
            }
        });
        Ok(RunningEmulator {
            url: format!("http://{addr}"),
            addr,
            emulator,
            task,
        })
    }

    /// The router serving this emulator's state, for mounting elsewhere.
    pub fn router(&self) -> Router {
        router(self.clone())
    }

    pub fn portal_id(&self) -> u64 {
        self.lock().portal_id
    }

    /// Records of an object type ("companies", "contacts", "0-2", "2-…", a fully qualified
    /// or plain schema name), ordered by id. Unknown types give an empty list.
    pub fn records(&self, object_type: &str) -> Vec<Record> {
        let portal = self.lock();
        portal
            .resolve_for_inspection(object_type)
            .map(|index| {
                portal.object_types[index]
                    .records
                    .values()
                    .map(to_public_record)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One record by id, if it exists. An id merged away gives the merged record (with its
    /// new id), as the API does.
    pub fn record(&self, object_type: &str, id: &str) -> Option<Record> {
        let portal = self.lock();
        let index = portal.resolve_for_inspection(object_type)?;
        let object_type = &portal.object_types[index];
        let id = object_type.resolve_raw_id(id)?;
        object_type.records.get(&id).map(to_public_record)
    }

    /// Adds a record as if someone had created it in HubSpot before the sync ran, e.g. the
    /// company a sample event links to by id. `properties` is a JSON object validated like an
    /// API write (so `lago_*` properties must be deployed first); `id` fixes the record id.
    pub fn seed_record(
        &self,
        object_type: &str,
        id: &str,
        properties: Value,
    ) -> anyhow::Result<Record> {
        let mut portal = self.lock();
        let index = portal
            .resolve_for_inspection(object_type)
            .ok_or_else(|| anyhow::anyhow!("unknown object type {object_type}"))?;
        let id: u64 = id
            .parse()
            .map_err(|_| anyhow::anyhow!("record ids are numeric, got {id}"))?;
        let Value::Object(properties) = properties else {
            anyhow::bail!("properties must be a JSON object");
        };
        let now = portal.clock.tick();
        let object_type = &mut portal.object_types[index];
        records::create_record_with_id(object_type, &properties, now, Some(id))
            .map_err(|error| anyhow::anyhow!("{}", error.message))?;
        Ok(to_public_record(&object_type.records[&id]))
    }

    /// Ids of the `to_type` records associated with one record, ascending (an id merged away
    /// names the merged record).
    pub fn associations(&self, from_type: &str, from_id: &str, to_type: &str) -> Vec<String> {
        let portal = self.lock();
        let (Some(from_index), Some(to_index)) = (
            portal.resolve_for_inspection(from_type),
            portal.resolve_for_inspection(to_type),
        ) else {
            return Vec::new();
        };
        let Some(from_id) = portal.object_types[from_index].resolve_raw_id(from_id) else {
            return Vec::new();
        };
        portal
            .associated_ids(
                &portal.object_types[from_index].type_id,
                from_id,
                &portal.object_types[to_index].type_id,
            )
            .into_iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// Every custom object schema, as `GET /crm-object-schemas/v3/schemas` returns them.
    pub fn schemas(&self) -> Vec<Value> {
        let portal = self.lock();
        portal
            .object_types
            .iter()
            .filter(|object_type| object_type.custom_schema().is_some())
            .map(|object_type| schemas::schema_json(&portal, object_type, true))
            .collect()
    }

    /// Names of the properties defined on an object type, built-in ones included.
    pub fn property_names(&self, object_type: &str) -> Vec<String> {
        let portal = self.lock();
        portal
            .resolve_for_inspection(object_type)
            .map(|index| {
                portal.object_types[index]
                    .properties
                    .iter()
                    .map(|property| property.name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every request answered so far, oldest first.
    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.lock().request_log.clone()
    }

    pub fn clear_request_log(&self) {
        self.lock().request_log.clear();
    }

    /// Switches faults on or off for the following requests. Restarts the random sequence
    /// from the seed and the daily count; the rolling rate-limit window keeps its history.
    pub fn set_faults(&self, faults: Faults) {
        self.lock().faults.replace(faults);
    }

    /// The current faults, with `seed` filled in even when none was given, so that
    /// `set_faults(emulator.faults())` replays the same random sequence.
    pub fn faults(&self) -> Faults {
        self.lock().faults.settings().clone()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Portal> {
        // A handler panicking mid-request must not take the whole emulator down with it.
        self.portal.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn to_public_record(record: &state::StoredRecord) -> Record {
    Record {
        id: record.id.to_string(),
        properties: record.properties.clone(),
        created_at: format_iso_millis(record.created_at),
        updated_at: format_iso_millis(record.updated_at),
    }
}

/// A served emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct RunningEmulator {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    pub addr: SocketAddr,
    emulator: Emulator,
    task: JoinHandle<()>,
}

impl RunningEmulator {
    /// The emulator behind the server (shares its state).
    pub fn emulator(&self) -> &Emulator {
        &self.emulator
    }

    pub fn records(&self, object_type: &str) -> Vec<Record> {
        self.emulator.records(object_type)
    }

    pub fn record(&self, object_type: &str, id: &str) -> Option<Record> {
        self.emulator.record(object_type, id)
    }

    pub fn associations(&self, from_type: &str, from_id: &str, to_type: &str) -> Vec<String> {
        self.emulator.associations(from_type, from_id, to_type)
    }

    pub fn seed_record(
        &self,
        object_type: &str,
        id: &str,
        properties: Value,
    ) -> anyhow::Result<Record> {
        self.emulator.seed_record(object_type, id, properties)
    }

    pub fn seed_records(
        &self,
        object_type: &str,
        records: Vec<Value>,
    ) -> anyhow::Result<Vec<Record>> {
        self.emulator.seed_records(object_type, records)
    }

    pub fn seed(&self, seed: &Seed) -> anyhow::Result<Seeded> {
        self.emulator.seed(seed)
    }

    pub fn seed_association(
        &self,
        from_type: &str,
        from_id: &str,
        to_type: &str,
        to_id: &str,
    ) -> anyhow::Result<()> {
        self.emulator
            .seed_association(from_type, from_id, to_type, to_id)
    }

    pub fn archive(&self, object_type: &str, id: &str) -> anyhow::Result<()> {
        self.emulator.archive(object_type, id)
    }

    pub fn merge(
        &self,
        object_type: &str,
        primary_id: &str,
        id_to_merge: &str,
    ) -> anyhow::Result<Record> {
        self.emulator.merge(object_type, primary_id, id_to_merge)
    }

    pub fn schemas(&self) -> Vec<Value> {
        self.emulator.schemas()
    }

    pub fn property_names(&self, object_type: &str) -> Vec<String> {
        self.emulator.property_names(object_type)
    }

    pub fn request_log(&self) -> Vec<LoggedRequest> {
        self.emulator.request_log()
    }

    pub fn clear_request_log(&self) {
        self.emulator.clear_request_log()
    }

    pub fn set_faults(&self, faults: Faults) {
        self.emulator.set_faults(faults)
    }

    pub fn faults(&self) -> Faults {
        self.emulator.faults()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The full HubSpot surface over `state`: v3/v4 paths, their date-versioned twins, the
/// `/crm/v3/schemas` alias, the edge layer (auth, logging) and inside it the fault layer
/// (rate limits and their headers, injected failures).
pub fn router(state: Emulator) -> Router {
    let mut app = Router::new()
        .merge(objects::routes("/crm/v3/objects"))
        .merge(properties::routes("/crm/v3/properties"))
        .merge(schemas::routes("/crm-object-schemas/v3/schemas"))
        .merge(schemas::routes("/crm/v3/schemas"))
        .merge(associations::record_routes("/crm/v4/objects"))
        .merge(associations::pair_routes("/crm/v4/associations"))
        .route("/account-info/v3/details", get(account_details));
    for version in DATED_VERSIONS {
        let objects_prefix = format!("/crm/objects/{version}");
        app = app
            .merge(objects::routes(&objects_prefix))
            .merge(associations::record_routes(&objects_prefix))
            .merge(properties::routes(&format!("/crm/properties/{version}")))
            .merge(schemas::routes(&format!(
                "/crm-object-schemas/{version}/schemas"
            )))
            .merge(associations::pair_routes(&format!(
                "/crm/associations/{version}"
            )));
    }
    app.fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            faults::inject,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), hubspot_edge))
        .with_state(state.clone())
        // Outside the edge and fault layers: OAuth authenticates apps, not bearer tokens.
        .merge(oauth::routes(state))
}

async fn account_details(State(emulator): State<Emulator>) -> Response {
    let portal_id = emulator.portal_id();
    axum::Json(json!({
        "portalId": portal_id,
        "accountType": "STANDARD",
        "timeZone": "US/Eastern",
        "companyCurrency": "USD",
        "additionalCurrencies": [],
        "utcOffset": "-05:00",
        "utcOffsetMilliseconds": -18_000_000,
        "uiDomain": "app.hubspot.com",
        "dataHostingLocation": "na1",
    }))
    .into_response()
}

async fn unknown_route() -> ApiError {
    ApiError::not_found("resource not found")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "VALIDATION_ERROR",
        "HTTP method not allowed for this resource",
    )
}

fn bearer_token(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// What HubSpot does before and after every handler: authenticate the bearer token, add the
/// correlation header, and log (with any fault the inner fault layer injected).
async fn hubspot_edge(State(emulator): State<Emulator>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or_default().to_owned();
    let (parts, body) = request.into_parts();
    let body_bytes = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(_) => {
            let response = ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "VALIDATION_ERROR",
                "Request body too large",
            )
            .into_response();
            log_request(&emulator, method, path, query, &response, String::new());
            return response;
        }
    };
    let body_text = String::from_utf8_lossy(&body_bytes).into_owned();
    let request = Request::from_parts(parts, Body::from(body_bytes));

    let authorized = oauth::authenticate(&mut emulator.lock(), bearer_token(&request));
    let mut response = match authorized {
        Err(refusal) => refusal.into_response(),
        Ok(()) => next.run(request).await,
    };
    if !response.headers().contains_key(CORRELATION_HEADER)
        && let Ok(value) = HeaderValue::from_str(&new_correlation_id())
    {
        response.headers_mut().insert(CORRELATION_HEADER, value);
    }
    log_request(&emulator, method, path, query, &response, body_text);
    response
}

fn log_request(
    emulator: &Emulator,
    method: String,
    path: String,
    query: String,
    response: &Response,
    body: String,
) {
    let fault = response.extensions().get::<InjectedFault>().copied();
    let status = match fault {
        Some(InjectedFault::Dropped { .. }) => 0,
        _ => response.status().as_u16(),
    };
    tracing::debug!(%method, %path, status, ?fault, "HubSpot emulator request");
    emulator.lock().request_log.push(LoggedRequest {
        method,
        path,
        query,
        status,
        body,
        fault,
    });
}
