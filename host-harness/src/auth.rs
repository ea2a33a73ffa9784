//! Where a connection's bearer token comes from: a static private-app / service-key token, or
//! OAuth tokens that are refreshed before they expire (hubspot-api.md §4).
//!
//! [`HubspotClient`](crate::hubspot_http::HubspotClient) asks its [`TokenSource`] for a token
//! before every request, so a refresh made for one worker serves all of them. Refreshes are
//! single-flight: one request to the token endpoint at a time per connection, the others wait
//! for its answer. A refresh token HubSpot refuses (`invalid_grant` / `BAD_REFRESH_TOKEN`) puts
//! the connection in "reconnect needed": nothing is sent for it until it is connected again.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::secret::Secret;

/// HubSpot's token endpoint.
pub const DEFAULT_TOKEN_URL: &str = "https://api.hubapi.com/oauth/v1/token";

/// A boxed future, so sources can be used as `dyn TokenSource`.
pub type TokenFuture<'a> = Pin<Box<dyn Future<Output = Result<Secret, AuthError>> + Send + 'a>>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// HubSpot no longer accepts the connection's grant: a person must connect it again.
    #[error(
        "connection {code} needs a reconnect ({reason}): run `lago-hubspot connect --code {code}`"
    )]
    ReconnectNeeded { code: String, reason: String },
    /// The token endpoint could not be reached or failed; trying again later may work.
    #[error("could not refresh the HubSpot access token of connection {code}: {reason}")]
    Refresh { code: String, reason: String },
}

impl AuthError {
    pub fn needs_reconnect(&self) -> bool {
        matches!(self, AuthError::ReconnectNeeded { .. })
    }
}

/// A connection's bearer tokens.
pub trait TokenSource: Send + Sync {
    /// The token to send now, refreshed first when it is about to expire.
    fn token(&self) -> TokenFuture<'_>;
    /// HubSpot answered 401 `EXPIRED_AUTHENTICATION` to `rejected`: the token to retry with
    /// (refreshed once, unless another request already did it).
    fn expired<'a>(&'a self, rejected: &'a Secret) -> TokenFuture<'a>;
    /// True while the connection waits for a person to reconnect it.
    fn needs_reconnect(&self) -> bool {
        false
    }
    /// Whether [`TokenSource::expired`] can yield another token than the one rejected.
    fn refreshes(&self) -> bool {
        false
    }
}

/// A private-app / service-key token: never expires, never refreshes.
pub struct StaticToken(pub Secret);

impl TokenSource for StaticToken {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.0.clone();
        Box::pin(async move { Ok(token) })
    }

    fn expired<'a>(&'a self, _rejected: &'a Secret) -> TokenFuture<'a> {
        self.token()
    }
}

/// The OAuth app a connection was authorized for.
#[derive(Clone)]
pub struct OAuthApp {
    pub client_id: String,
    pub client_secret: Secret,
    pub token_url: String,
}

impl fmt::Debug for OAuthApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthApp")
            .field("client_id", &self.client_id)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

/// An access token with its refresh token and when it expires.
#[derive(Clone)]
pub struct OAuthTokens {
    pub access_token: Secret,
    pub refresh_token: Secret,
    /// Epoch milliseconds.
    pub expires_at_ms: i64,
    /// How long the access token lived when issued (HubSpot: 30 minutes), for the refresh margin.
    pub lifetime_ms: i64,
}

impl fmt::Debug for OAuthTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthTokens")
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
    }
}

impl OAuthTokens {
    /// Refresh this long before expiry: a fifth of the lifetime, at most five minutes.
    fn margin_ms(&self) -> i64 {
        (self.lifetime_ms / 5).clamp(0, 300_000)
    }

    fn fresh(&self, now: i64) -> bool {
        now < self.expires_at_ms - self.margin_ms()
    }
}

/// A successful answer of the token endpoint (both grants).
#[derive(Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    /// HubSpot rotates it on refresh (or may send none, in which case the old one stays).
    pub refresh_token: Option<String>,
    pub expires_in: i64,
    /// The portal (account) the grant is for.
    pub hub_id: Option<u64>,
    #[serde(default)]
    pub scopes: Vec<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("hub_id", &self.hub_id)
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    /// The tokens to keep; `previous_refresh` stays when HubSpot sent no new one.
    pub fn into_tokens(self, previous_refresh: Option<&Secret>) -> Option<OAuthTokens> {
        let refresh_token = self
            .refresh_token
            .map(Secret::new)
            .or_else(|| previous_refresh.cloned())?;
        let lifetime_ms = self.expires_in.max(0) * 1000;
        Some(OAuthTokens {
            access_token: Secret::new(self.access_token),
            refresh_token,
            expires_at_ms: now_ms() + lifetime_ms,
            lifetime_ms,
        })
    }
}

/// Why the token endpoint refused a request, from its error body.
#[derive(Debug)]
pub enum GrantError {
    /// `invalid_grant` (`BAD_REFRESH_TOKEN`, `BAD_AUTH_CODE`, `EXPIRED_AUTH_CODE`, …) or
    /// `invalid_client`: retrying the same request cannot work.
    Refused(String),
    /// Network trouble, 429 or 5xx: may work later.
    Transient(String),
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GrantError::Refused(m) | GrantError::Transient(m) => f.write_str(m),
        }
    }
}

/// Posts one form-encoded grant to the token endpoint. Neither the form (it holds the client
/// secret and a token) nor the answer's tokens are ever logged.
pub async fn request_tokens(
    http: &reqwest::Client,
    token_url: &str,
    form: &[(&str, &str)],
) -> Result<TokenResponse, GrantError> {
    let body = {
        let mut body = form_urlencoded::Serializer::new(String::new());
        for (key, value) in form {
            body.append_pair(key, value);
        }
        body.finish()
    };
    let response = http
        .post(token_url)
        .header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .send()
        .await
        .map_err(|e| GrantError::Transient(format!("could not reach {token_url}: {e}")))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| GrantError::Transient(format!("token endpoint answer cut short: {e}")))?;
    if status.is_success() {
        return serde_json::from_str(&text).map_err(|e| {
            GrantError::Transient(format!("token endpoint answered something else: {e}"))
        });
    }
    let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let field = |name: &str| json.get(name).and_then(Value::as_str).unwrap_or_default();
    let described = [field("error"), field("status"), field("message")]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(": ");
    let message = format!(
        "HTTP {}{}{}",
        status.as_u16(),
        if described.is_empty() { "" } else { " " },
        described
    );
    let refused = matches!(field("error"), "invalid_grant" | "invalid_client")
        || matches!(field("status"), "BAD_REFRESH_TOKEN" | "BAD_CLIENT_ID")
        || (status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408);
    Err(if refused {
        GrantError::Refused(message)
    } else {
        GrantError::Transient(message)
    })
}

/// Where an OAuth source keeps its tokens, so the newest refresh token survives a restart and
/// a reconnect made by another process is picked up.
pub trait TokenStore: Send + Sync {
    /// Persists refreshed tokens of credentials `generation`; false when a newer generation
    /// (a reconnect) replaced them meanwhile.
    fn save(&self, generation: i64, tokens: &OAuthTokens) -> anyhow::Result<bool>;
    fn mark_reconnect_needed(&self, generation: i64, reason: &str) -> anyhow::Result<()>;
    /// Credentials newer than `generation` in a usable state, if a reconnect stored some.
    fn newer(&self, generation: i64) -> anyhow::Result<Option<(i64, OAuthTokens)>>;

    /// The tokens stored now for grant `generation` (another instance on a shared state may
    /// have refreshed them); `None` when the store keeps none or the grant was replaced.
    fn stored(&self, _generation: i64) -> anyhow::Result<Option<OAuthTokens>> {
        Ok(None)
    }

    /// Takes the right to refresh this grant for up to `hold_ms` (a lease on the connection's
    /// row: an instance killed mid-refresh frees it by then); `false` while another holds it.
    fn begin_refresh(&self, _hold_ms: i64) -> anyhow::Result<bool> {
        Ok(true)
    }

    /// Gives the right to refresh back.
    fn end_refresh(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// How long a refresh may hold a connection's row: the token endpoint's timeout and then some.
const REFRESH_HOLD_MS: i64 = 45_000;
/// How long an instance waits for another one's refresh before it gives up for now.
const REFRESH_WAIT_MS: i64 = 60_000;

struct Current {
    tokens: OAuthTokens,
    generation: i64,
    /// Why HubSpot refused the grant, while the connection waits for a reconnect.
    reconnect: Option<String>,
    last_reload_check_ms: i64,
}

/// OAuth tokens of one connection, refreshed before they expire, once for all workers.
pub struct OAuthTokenSource {
    code: String,
    app: OAuthApp,
    http: reqwest::Client,
    current: Mutex<Current>,
    /// Held for the whole refresh: the single flight.
    refreshing: tokio::sync::Mutex<()>,
    store: Arc<dyn TokenStore>,
}

impl OAuthTokenSource {
    /// `reconnect` is the stored reason when the connection already waits for a reconnect.
    pub fn new(
        code: &str,
        app: OAuthApp,
        tokens: OAuthTokens,
        generation: i64,
        reconnect: Option<String>,
        store: Arc<dyn TokenStore>,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(OAuthTokenSource {
            code: code.to_owned(),
            app,
            http,
            current: Mutex::new(Current {
                tokens,
                generation,
                reconnect,
                last_reload_check_ms: 0,
            }),
            refreshing: tokio::sync::Mutex::new(()),
            store,
        })
    }

    fn current(&self) -> std::sync::MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// While waiting for a reconnect, looks (at most once a second) for newer credentials.
    fn reconnect_reason(&self) -> Option<String> {
        let mut current = self.current();
        let reason = current.reconnect.clone()?;
        let now = now_ms();
        if now - current.last_reload_check_ms < 1000 {
            return Some(reason);
        }
        current.last_reload_check_ms = now;
        match self.store.newer(current.generation) {
            Ok(Some((generation, tokens))) => {
                tracing::info!(connection = %self.code, "reconnected: using the new grant");
                current.tokens = tokens;
                current.generation = generation;
                current.reconnect = None;
                None
            }
            Ok(None) => Some(reason),
            Err(error) => {
                tracing::error!(connection = %self.code, "cannot read the stored credentials: {error:#}");
                Some(reason)
            }
        }
    }

    fn reconnect_error(&self, reason: String) -> AuthError {
        AuthError::ReconnectNeeded {
            code: self.code.clone(),
            reason,
        }
    }

    /// A token that is fresh now, if there is one and no reconnect is pending.
    fn fresh_token(&self) -> Result<Option<Secret>, AuthError> {
        if let Some(reason) = self.reconnect_reason() {
            return Err(self.reconnect_error(reason));
        }
        let current = self.current();
        Ok(current
            .tokens
            .fresh(now_ms())
            .then(|| current.tokens.access_token.clone()))
    }

    /// Takes the tokens another instance stored for this grant, if they differ from ours; their
    /// access token when it is fresh.
    fn adopt_stored(&self, generation: i64) -> Option<Secret> {
        let stored = match self.store.stored(generation) {
            Ok(stored) => stored?,
            Err(error) => {
                tracing::error!(connection = %self.code, "cannot read the stored tokens: {error:#}");
                return None;
            }
        };
        let mut current = self.current();
        if current.generation != generation
            || (stored.access_token.expose() == current.tokens.access_token.expose()
                && stored.refresh_token.expose() == current.tokens.refresh_token.expose())
        {
            return None;
        }
        current.tokens = stored;
        current
            .tokens
            .fresh(now_ms())
            .then(|| current.tokens.access_token.clone())
    }

    /// One refresh for every instance on the state; the caller holds `refreshing`. The instance
    /// that takes the connection's row refreshes with the latest stored refresh token and
    /// stores the new pair; the others wait and take what it stored, so a rotated refresh
    /// token is never presented twice.
    async fn refresh(&self) -> Result<Secret, AuthError> {
        let generation = self.current().generation;
        let deadline = now_ms() + REFRESH_WAIT_MS;
        loop {
            if let Some(token) = self.adopt_stored(generation) {
                return Ok(token);
            }
            match self.store.begin_refresh(REFRESH_HOLD_MS) {
                Ok(true) => break,
                Ok(false) if now_ms() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Ok(false) => {
                    return Err(AuthError::Refresh {
                        code: self.code.clone(),
                        reason: "another instance has been refreshing the token for a minute"
                            .into(),
                    });
                }
                Err(error) => {
                    tracing::error!(connection = %self.code, "cannot take the refresh lock, refreshing unlocked: {error:#}");
                    break;
                }
            }
        }
        // Another instance may have stored new tokens just before the lock was ours.
        let result = match self.adopt_stored(generation) {
            Some(token) => Ok(token),
            None => self.refresh_now().await,
        };
        if let Err(error) = self.store.end_refresh() {
            tracing::error!(connection = %self.code, "cannot release the refresh lock: {error:#}");
        }
        result
    }

    /// One refresh-token grant; the caller holds the refresh lock.
    async fn refresh_now(&self) -> Result<Secret, AuthError> {
        let (refresh_token, generation) = {
            let current = self.current();
            (current.tokens.refresh_token.clone(), current.generation)
        };
        let answer = request_tokens(
            &self.http,
            &self.app.token_url,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token.expose()),
                ("client_id", &self.app.client_id),
                ("client_secret", self.app.client_secret.expose()),
            ],
        )
        .await;
        let tokens = match answer {
            Ok(response) => response.into_tokens(Some(&refresh_token)),
            Err(GrantError::Refused(reason)) => {
                // A reconnect made meanwhile (by `connect` in another process) is not lost.
                if let Ok(Some((newer, tokens))) = self.store.newer(generation) {
                    let mut current = self.current();
                    current.tokens = tokens;
                    current.generation = newer;
                    return Ok(current.tokens.access_token.clone());
                }
                tracing::error!(connection = %self.code, "HubSpot refused the refresh token: {reason}; the connection needs a reconnect");
                if let Err(error) = self.store.mark_reconnect_needed(generation, &reason) {
                    tracing::error!(connection = %self.code, "cannot record the reconnect state: {error:#}");
                }
                let mut current = self.current();
                current.reconnect = Some(reason.clone());
                current.last_reload_check_ms = now_ms();
                return Err(self.reconnect_error(reason));
            }
            Err(GrantError::Transient(reason)) => {
                return Err(AuthError::Refresh {
                    code: self.code.clone(),
                    reason,
                });
            }
        };
        let Some(tokens) = tokens else {
            return Err(AuthError::Refresh {
                code: self.code.clone(),
                reason: "the token endpoint sent no refresh token".into(),
            });
        };
        // The old refresh token is spent (rotation): persist the new one before using it.
        match self.store.save(generation, &tokens) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(connection = %self.code, "credentials were replaced by a reconnect meanwhile")
            }
            Err(error) => {
                tracing::error!(connection = %self.code, "cannot persist the refreshed tokens: {error:#}")
            }
        }
        tracing::debug!(connection = %self.code, expires_in_ms = tokens.lifetime_ms, "access token refreshed");
        let access = tokens.access_token.clone();
        self.current().tokens = tokens;
        Ok(access)
    }
}

impl TokenSource for OAuthTokenSource {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(async move {
            if let Some(token) = self.fresh_token()? {
                return Ok(token);
            }
            let _flight = self.refreshing.lock().await;
            // Another worker may have refreshed while this one waited.
            if let Some(token) = self.fresh_token()? {
                return Ok(token);
            }
            self.refresh().await
        })
    }

    fn expired<'a>(&'a self, rejected: &'a Secret) -> TokenFuture<'a> {
        Box::pin(async move {
            let _flight = self.refreshing.lock().await;
            if let Some(reason) = self.reconnect_reason() {
                return Err(self.reconnect_error(reason));
            }
            let current = self.current().tokens.access_token.clone();
            if current.expose() != rejected.expose() {
                return Ok(current);
            }
            self.refresh().await
        })
    }

    fn needs_reconnect(&self) -> bool {
        self.reconnect_reason().is_some()
    }

    fn refreshes(&self) -> bool {
        true
    }
}
