//! HubSpot's OAuth 2.0 endpoints as an installed app meets them (hubspot-api.md §4): an authorize
//! page that approves at once and redirects back with a code, the token endpoint (grants
//! `authorization_code` and `refresh_token`, with refresh-token rotation), revocation and
//! introspection, and the bearer check every API call goes through. An access token past its
//! lifetime gets 401 `EXPIRED_AUTHENTICATION`, as HubSpot answers it.
//!
//! These routes sit outside the edge and fault layers: they authenticate apps (client id and
//! secret), not bearer tokens, and HubSpot serves them from other hosts than the CRM API.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rand::Rng as _;
use serde_json::{Value, json};

use super::Emulator;
use super::errors::{ApiError, new_correlation_id};
use super::state::Portal;

/// Every scope the emulated HubSpot knows; a request for any other is refused.
pub const KNOWN_SCOPES: &[&str] = &[
    "oauth",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.objects.custom.read",
    "crm.objects.custom.write",
    "crm.schemas.custom.read",
    "crm.schemas.custom.write",
    "crm.objects.invoices.read",
    "crm.objects.invoices.write",
    "crm.schemas.invoices.write",
    "crm.objects.subscriptions.read",
    "crm.objects.subscriptions.write",
    "crm.schemas.subscriptions.write",
    "crm.objects.custom.sensitive.read.v2",
];

/// The OAuth app the emulated portal knows, and how long what it hands out lives.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    pub client_id: String,
    pub client_secret: String,
    /// HubSpot: 30 minutes. Tests use a second or so to see tokens expire mid-run.
    pub access_token_lifetime: Duration,
    /// Authorization codes are single-use and short-lived.
    pub code_lifetime: Duration,
    /// Redirect URIs registered for the app. Loopback ones match on any port (RFC 8252 §7.3).
    /// Empty: any loopback URI, or any https URI.
    pub redirect_uris: Vec<String>,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self {
            client_id: "emulator-client-id".to_owned(),
            client_secret: "emulator-client-secret".to_owned(),
            access_token_lifetime: Duration::from_secs(1800),
            code_lifetime: Duration::from_secs(600),
            redirect_uris: Vec::new(),
        }
    }
}

/// What the OAuth endpoints did, for tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OAuthStats {
    /// Approved authorize requests (codes handed out).
    pub authorizations: u32,
    /// Codes exchanged for tokens.
    pub codes_exchanged: u32,
    /// Successful refresh-token grants.
    pub refreshes: u32,
    /// Token requests refused (bad client, code or refresh token).
    pub refused: u32,
    /// API calls refused with 401 `EXPIRED_AUTHENTICATION`.
    pub expired_calls: u32,
    pub revocations: u32,
}

#[derive(Debug)]
struct PendingCode {
    redirect_uri: String,
    scopes: Vec<String>,
    issued: Instant,
    used: bool,
}

#[derive(Debug)]
struct AccessGrant {
    expires: Instant,
    scopes: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct OAuthState {
    config: OAuthConfig,
    codes: HashMap<String, PendingCode>,
    /// Live refresh tokens and their scopes; a rotated or revoked token is removed.
    refresh_tokens: HashMap<String, Vec<String>>,
    access_tokens: HashMap<String, AccessGrant>,
    stats: OAuthStats,
}

impl OAuthState {
    pub(crate) fn new(config: OAuthConfig) -> Self {
        Self {
            config,
            codes: HashMap::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            stats: OAuthStats::default(),
        }
    }

    /// A fresh access and refresh token pair, as the token endpoint answers it.
    fn issue(&mut self, portal_id: u64, scopes: Vec<String>) -> Value {
        let now = Instant::now();
        // Expired tokens are kept a while so a late call can be told how long ago they expired.
        self.access_tokens.retain(|_, grant| {
            now.saturating_duration_since(grant.expires) < Duration::from_secs(3600)
        });
        let access = format!("CK{}", random_token(48));
        let refresh = format!("na1-{}", random_token(32));
        let lifetime = self.config.access_token_lifetime;
        self.access_tokens.insert(
            access.clone(),
            AccessGrant {
                expires: now + lifetime,
                scopes: scopes.clone(),
            },
        );
        self.refresh_tokens.insert(refresh.clone(), scopes.clone());
        json!({
            "token_type": "bearer",
            "access_token": access,
            "refresh_token": refresh,
            "expires_in": lifetime.as_secs(),
            "hub_id": portal_id,
            "scopes": scopes,
        })
    }
}

/// Checks the bearer token of an API call: a configured static token (private app / service
/// key) or a live OAuth access token. Expired OAuth tokens get HubSpot's 401.
pub(crate) fn authenticate(portal: &mut Portal, token: Option<&str>) -> Result<(), ApiError> {
    let Some(token) = token else {
        return Err(ApiError::unauthenticated());
    };
    if portal.access_tokens.iter().any(|t| t == token) {
        return Ok(());
    }
    let now = Instant::now();
    let expired_for = match portal.oauth.access_tokens.get(token) {
        None => return Err(ApiError::unauthenticated()),
        Some(grant) if grant.expires > now => return Ok(()),
        Some(grant) => now.duration_since(grant.expires),
    };
    portal.oauth.stats.expired_calls += 1;
    let seconds = expired_for.as_secs();
    let expired_at = super::clock::now_millis() - expired_for.as_millis() as i64;
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "EXPIRED_AUTHENTICATION",
        format!("The OAuth token used to make this call expired {seconds} second(s) ago."),
    )
    .with_context("expire time", [expired_at.to_string()]))
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn routes(emulator: Emulator) -> Router {
    Router::new()
        .route("/oauth/authorize", get(authorize))
        .route("/oauth/v1/token", post(token))
        .route("/oauth/v3/token", post(token))
        .route("/oauth/2026-03/token", post(token))
        .route("/oauth/v3/token/revoke", post(revoke_form))
        .route("/oauth/v1/access-tokens/{token}", get(access_token_info))
        .route(
            "/oauth/v1/refresh-tokens/{token}",
            get(refresh_token_info).delete(revoke_path),
        )
        .with_state(emulator)
}

/// HubSpot's error page, reduced to what a client can act on.
fn authorize_error(message: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("HubSpot could not authorize this app: {message}\n"),
    )
        .into_response()
}

fn is_loopback(url: &url::Url) -> bool {
    matches!(
        url.host_str(),
        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
    )
}

fn redirect_allowed(config: &OAuthConfig, redirect_uri: &str) -> bool {
    let Ok(url) = url::Url::parse(redirect_uri) else {
        return false;
    };
    if config.redirect_uris.is_empty() {
        return is_loopback(&url) || url.scheme() == "https";
    }
    config.redirect_uris.iter().any(|registered| {
        if registered == redirect_uri {
            return true;
        }
        let Ok(registered) = url::Url::parse(registered) else {
            return false;
        };
        is_loopback(&url)
            && url.scheme() == registered.scheme()
            && url.host_str() == registered.host_str()
            && url.path() == registered.path()
    })
}

/// `GET /oauth/authorize`: the user "approves" at once; redirects with a single-use code.
async fn authorize(
    State(emulator): State<Emulator>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut portal = emulator.lock();
    let config = portal.oauth.config.clone();
    let param = |name: &str| query.get(name).map(String::as_str).unwrap_or_default();
    if param("client_id") != config.client_id {
        return authorize_error("unknown client_id");
    }
    let redirect_uri = param("redirect_uri").to_owned();
    if !redirect_allowed(&config, &redirect_uri) {
        return authorize_error("redirect_uri does not match the app's redirect URLs");
    }
    let scopes: Vec<String> = param("scope")
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return authorize_error("no scope requested");
    }
    let unknown: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !KNOWN_SCOPES.contains(scope))
        .collect();
    if !unknown.is_empty() {
        return authorize_error(&format!("Couldn't find scopes: {}", unknown.join(", ")));
    }
    let code = random_token(36);
    portal.oauth.codes.insert(
        code.clone(),
        PendingCode {
            redirect_uri: redirect_uri.clone(),
            scopes,
            issued: Instant::now(),
            used: false,
        },
    );
    portal.oauth.stats.authorizations += 1;
    let mut back = form_urlencoded::Serializer::new(String::new());
    back.append_pair("code", &code);
    if let Some(state) = query.get("state") {
        back.append_pair("state", state);
    }
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    let location = format!("{redirect_uri}{separator}{}", back.finish());
    (StatusCode::FOUND, [(header::LOCATION, location)]).into_response()
}

/// The OAuth error body: RFC 6749 fields plus HubSpot's legacy `status` and `message`.
fn oauth_error(status: StatusCode, error: &str, hubspot_status: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({
            "status": hubspot_status,
            "message": message,
            "correlationId": new_correlation_id(),
            "error": error,
            "error_description": message,
        })),
    )
        .into_response()
}

fn form(body: &Bytes) -> HashMap<String, String> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// `POST /oauth/v1/token` (and its v3 / dated twins): form fields in the body only.
async fn token(State(emulator): State<Emulator>, headers: HeaderMap, body: Bytes) -> Response {
    let mut portal = emulator.lock();
    let portal_id = portal.portal_id;
    let oauth = &mut portal.oauth;
    let refuse = |oauth: &mut OAuthState, error, status, message: &str| {
        oauth.stats.refused += 1;
        oauth_error(StatusCode::BAD_REQUEST, error, status, message)
    };
    if !is_form(&headers) {
        return refuse(
            oauth,
            "invalid_request",
            "BAD_REQUEST",
            "the token endpoint takes application/x-www-form-urlencoded",
        );
    }
    let fields = form(&body);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    if field("client_id") != oauth.config.client_id
        || field("client_secret") != oauth.config.client_secret
    {
        return refuse(
            oauth,
            "invalid_client",
            "BAD_CLIENT_ID",
            "missing or invalid client_id or client_secret",
        );
    }
    match field("grant_type") {
        "authorization_code" => {
            let lifetime = oauth.config.code_lifetime;
            let Some(pending) = oauth.codes.get_mut(field("code")) else {
                return refuse(
                    oauth,
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    "missing or unknown auth code",
                );
            };
            if pending.used {
                return refuse(
                    oauth,
                    "invalid_grant",
                    "BAD_AUTH_CODE",
                    "auth code has already been used",
                );
            }
            if pending.issued.elapsed() > lifetime {
                return refuse(
                    oauth,
                    "invalid_grant",
                    "EXPIRED_AUTH_CODE",
                    "auth code is expired",
                );
            }
            if pending.redirect_uri != field("redirect_uri") {
                return refuse(
                    oauth,
                    "invalid_grant",
                    "BAD_REDIRECT_URI",
                    "redirect_uri does not match the one the code was issued for",
                );
            }
            // Single use, even if what follows fails.
            pending.used = true;
            let scopes = pending.scopes.clone();
            oauth.stats.codes_exchanged += 1;
            axum::Json(oauth.issue(portal_id, scopes)).into_response()
        }
        "refresh_token" => {
            // Rotation: the presented refresh token is spent; the answer carries its successor.
            let Some(scopes) = oauth.refresh_tokens.remove(field("refresh_token")) else {
                return refuse(
                    oauth,
                    "invalid_grant",
                    "BAD_REFRESH_TOKEN",
                    "refresh token is invalid, expired or revoked",
                );
            };
            oauth.stats.refreshes += 1;
            axum::Json(oauth.issue(portal_id, scopes)).into_response()
        }
        other => refuse(
            oauth,
            "unsupported_grant_type",
            "BAD_GRANT_TYPE",
            &format!("unsupported grant_type {other:?}"),
        ),
    }
}

fn revoke(emulator: &Emulator, token: &str) -> Response {
    let mut portal = emulator.lock();
    if portal.oauth.refresh_tokens.remove(token).is_some() {
        portal.oauth.stats.revocations += 1;
        StatusCode::NO_CONTENT.into_response()
    } else {
        ApiError::not_found("refresh token not found").into_response()
    }
}

/// `DELETE /oauth/v1/refresh-tokens/{token}`. Access tokens already out live to their expiry.
async fn revoke_path(State(emulator): State<Emulator>, Path(token): Path<String>) -> Response {
    revoke(&emulator, &token)
}

/// `POST /oauth/v3/token/revoke` with `token`, `client_id`, `client_secret` in a form.
async fn revoke_form(State(emulator): State<Emulator>, body: Bytes) -> Response {
    let fields = form(&body);
    let field = |name: &str| fields.get(name).map(String::as_str).unwrap_or_default();
    {
        let portal = emulator.lock();
        let config = &portal.oauth.config;
        if field("client_id") != config.client_id || field("client_secret") != config.client_secret
        {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_client",
                "BAD_CLIENT_ID",
                "missing or invalid client_id or client_secret",
            );
        }
    }
    revoke(&emulator, field("token"))
}

async fn access_token_info(
    State(emulator): State<Emulator>,
    Path(token): Path<String>,
) -> Response {
    let portal = emulator.lock();
    let Some(grant) = portal.oauth.access_tokens.get(&token) else {
        return ApiError::not_found("access token not found").into_response();
    };
    let left = grant.expires.saturating_duration_since(Instant::now());
    axum::Json(json!({
        "token": token,
        "hub_id": portal.portal_id,
        "app_id": 1,
        "scopes": grant.scopes,
        "expires_in": left.as_secs(),
        "token_type": "access",
        "user": "lago-hubspot@example.com",
    }))
    .into_response()
}

async fn refresh_token_info(
    State(emulator): State<Emulator>,
    Path(token): Path<String>,
) -> Response {
    let portal = emulator.lock();
    let Some(scopes) = portal.oauth.refresh_tokens.get(&token) else {
        return ApiError::not_found("refresh token not found").into_response();
    };
    axum::Json(json!({
        "token": token,
        "hub_id": portal.portal_id,
        "client_id": portal.oauth.config.client_id,
        "scopes": scopes,
        "token_type": "refresh",
    }))
    .into_response()
}

/// Test hooks on the OAuth side of the emulated portal.
impl Emulator {
    pub fn oauth_stats(&self) -> OAuthStats {
        self.lock().oauth.stats
    }

    /// Revokes every refresh token, as when a user removes the app's access in HubSpot.
    pub fn revoke_refresh_tokens(&self) {
        let mut portal = self.lock();
        let revoked = portal.oauth.refresh_tokens.len() as u32;
        portal.oauth.refresh_tokens.clear();
        portal.oauth.stats.revocations += revoked;
    }

    /// Ends the life of every access token handed out so far (their next use gets a 401).
    pub fn expire_access_tokens(&self) {
        let now = Instant::now();
        for grant in self.lock().oauth.access_tokens.values_mut() {
            grant.expires = grant.expires.min(now);
        }
    }

    /// The live refresh tokens, for tests that check rotation.
    pub fn live_refresh_tokens(&self) -> Vec<String> {
        self.lock().oauth.refresh_tokens.keys().cloned().collect()
    }
}
