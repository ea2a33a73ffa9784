//! The one HTTP path to HubSpot. Plan steps and the guest's `wasi:http` reads both go through
//! [`HubspotClient::send`], so auth, destination checks and accounting live in one place.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::Method;
use url::Url;

pub use crate::response::HubspotResponse;
pub use crate::secret::Secret;

use crate::auth::{AuthError, StaticToken, TokenSource};
use crate::metrics::Metrics;
use crate::ratelimit::RateBudget;

pub const DEFAULT_HUBSPOT_URL: &str = "https://api.hubapi.com";

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("refused to send to {0}: only relative HubSpot API paths are allowed")]
    ForbiddenDestination(String),
    #[error("could not reach HubSpot at {url}: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// No token to send: the connection needs a reconnect, or a refresh failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
}

/// A client bound to one HubSpot base URL and one connection's tokens, optionally paced by the
/// portal's budget and counted in the metrics.
#[derive(Clone)]
pub struct HubspotClient {
    /// The configured URL as shown (no trailing slash).
    base_url: String,
    /// The same, parsed once; its path ends with `/` so that request paths go under it.
    base: Url,
    tokens: Arc<dyn TokenSource>,
    http: reqwest::Client,
    budget: Option<Arc<RateBudget>>,
    metrics: Option<Arc<Metrics>>,
}

impl fmt::Debug for HubspotClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubspotClient")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl HubspotClient {
    /// A client with a static token (private app, service key, or an access token given as is).
    pub fn new(base_url: &str, token: Secret) -> anyhow::Result<Self> {
        Self::with_tokens(base_url, Arc::new(StaticToken(token)))
    }

    /// A client that asks `tokens` for the bearer token before every request (OAuth refresh).
    pub fn with_tokens(base_url: &str, tokens: Arc<dyn TokenSource>) -> anyhow::Result<Self> {
        let base = base_url_of("HubSpot", base_url)?;
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(HubspotClient {
            base_url,
            base,
            tokens,
            http,
            budget: None,
            metrics: None,
        })
    }

    /// Paces every request by this portal's budget.
    pub fn with_budget(mut self, budget: Arc<RateBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// The portal's budget this client is paced by, if any.
    pub fn budget(&self) -> Option<&Arc<RateBudget>> {
        self.budget.as_ref()
    }

    pub fn with_metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&Arc<Metrics>> {
        self.metrics.as_ref()
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// True while the connection's grant was refused and a person must reconnect it.
    pub fn needs_reconnect(&self) -> bool {
        self.tokens.needs_reconnect()
    }

    /// Where `path_and_query` (`/crm/v3/…?…`) is on the configured HubSpot: under the base URL.
    ///
    /// A plan is data from a sandboxed plugin: it may only name relative paths on the configured
    /// HubSpot. No other host (`//host/…`, `https://host/…`), no way up (`..`), and the joined URL
    /// is checked to be on the base's origin and under its path (`%2e%2e` is a `..` too).
    pub fn url_for(&self, path_and_query: &str) -> Result<Url, TransportError> {
        let forbidden = || TransportError::ForbiddenDestination(path_and_query.to_owned());
        if !path_and_query.starts_with('/')
            || path_and_query.starts_with("//")
            || path_and_query.contains("..")
        {
            return Err(forbidden());
        }
        join_under(&self.base, path_and_query).ok_or_else(forbidden)
    }

    /// Sends one request to `{base_url}{path_and_query}` with the bearer token added.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<HubspotResponse, TransportError> {
        let url = self.url_for(path_and_query)?;
        let mut token = None;
        let result = loop {
            // Not counted as HubSpot's answer in the metrics: HubSpot was not asked.
            if let Some(answer) = self.budget.as_deref().and_then(spent_day_answer) {
                return Ok(answer);
            }
            let taken = match &self.budget {
                Some(budget) => {
                    let taken = budget.acquire(path_and_query).await;
                    // The day may have been spent while this request waited for its slot.
                    if let Some(answer) = spent_day_answer(budget) {
                        budget.answered(path_and_query, taken);
                        return Ok(answer);
                    }
                    Some(taken)
                }
                None => None,
            };
            // Asked after the budget wait, so a token that was fresh then is still fresh now.
            let retry_of = token.take();
            let bearer = match &retry_of {
                None => self.tokens.token().await?,
                Some(rejected) => self.tokens.expired(rejected).await?,
            };
            let result = self
                .send_once(method.clone(), &url, body.clone(), &bearer)
                .await;
            if let (Some(budget), Some(taken)) = (&self.budget, taken) {
                budget.answered(path_and_query, taken);
                if let Ok(response) = &result {
                    budget.observe(path_and_query, response);
                }
            }
            // An access token that expired in flight: refresh once and send again.
            let expired = result.as_ref().is_ok_and(is_expired_token);
            if expired && retry_of.is_none() && self.tokens.refreshes() {
                if let Some(metrics) = &self.metrics {
                    metrics.hubspot_answered(401);
                }
                tracing::info!(%url, "access token expired; refreshing and sending again");
                token = Some(bearer);
                continue;
            }
            break result;
        };
        if let Some(metrics) = &self.metrics {
            metrics.hubspot_answered(result.as_ref().map_or(0, |r: &HubspotResponse| r.status));
        }
        if let Ok(response) = &result {
            tracing::debug!(status = response.status, %url, "hubspot");
        }
        result
    }

    async fn send_once(
        &self,
        method: Method,
        url: &Url,
        body: Option<Bytes>,
        token: &Secret,
    ) -> Result<HubspotResponse, TransportError> {
        let mut request = self
            .http
            .request(method, url.clone())
            .bearer_auth(token.expose())
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let network = |source| TransportError::Network {
            url: url.to_string(),
            source,
        };
        let response = request.send().await.map_err(network)?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.bytes().await.map_err(network)?;
        Ok(HubspotResponse {
            status,
            headers,
            body,
        })
    }
}

/// HubSpot's answer once the portal's daily budget is spent, made here without sending: a 429
/// `DAILY` (hubspot-api.md §3.3) that says until when, so every layer treats it as the one retry
/// table says (the event waits for the reset) and no request is spent to learn it again.
fn spent_day_answer(budget: &RateBudget) -> Option<HubspotResponse> {
    let until = budget.day_spent_until(crate::clock::now_ms())?;
    let at = crate::clock::rfc3339(until);
    let body = serde_json::json!({
        "status": "error",
        "message": format!("not sent: HubSpot's daily limit of this portal is spent until {at} (recorded in the state)"),
        "category": "RATE_LIMITS",
        "policyName": "DAILY",
    });
    Some(HubspotResponse {
        status: 429,
        headers: http::HeaderMap::new(),
        body: Bytes::from(body.to_string()),
    })
}

/// A configured base URL (`what` names it in errors), parsed once: `http(s)` with a host, no query
/// or fragment, and its path ending with `/` so that [`join_under`] keeps any path prefix.
pub fn base_url_of(what: &str, text: &str) -> anyhow::Result<Url> {
    let text = text.trim();
    let mut base =
        Url::parse(text).with_context(|| format!("the {what} URL {text:?} is not a valid URL"))?;
    anyhow::ensure!(
        matches!(base.scheme(), "http" | "https") && base.has_host(),
        "the {what} URL must start with http:// or https://, got {text:?}"
    );
    anyhow::ensure!(
        base.query().is_none() && base.fragment().is_none(),
        "the {what} URL must not carry a query or fragment, got {text:?}"
    );
    if !base.path().ends_with('/') {
        let directory = format!("{}/", base.path());
        base.set_path(&directory);
    }
    Ok(base)
}

/// `path_and_query` (`/a/b?c=d`) under `base` (whose path ends with `/`), or `None` if the result
/// would leave the base's origin or path.
pub fn join_under(base: &Url, path_and_query: &str) -> Option<Url> {
    // `./` keeps a first segment with a colon (`https:…`) from reading as a scheme.
    let url = base
        .join(&format!("./{}", path_and_query.trim_start_matches('/')))
        .ok()?;
    (url.origin() == base.origin() && url.path().starts_with(base.path())).then_some(url)
}

/// HubSpot's 401 for an OAuth access token past its lifetime, by the one retry table.
fn is_expired_token(response: &HubspotResponse) -> bool {
    crate::retry::classify_response(response, 1) == crate::retry::Action::RefreshAuth
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(base: &str) -> HubspotClient {
        HubspotClient::new(base, Secret::new("t")).unwrap()
    }

    #[test]
    fn paths_join_under_the_configured_url() {
        let hubspot = client("https://api.hubapi.com/");
        assert_eq!(hubspot.base_url(), "https://api.hubapi.com");
        assert_eq!(
            hubspot
                .url_for("/crm/v3/objects/contacts?limit=1")
                .unwrap()
                .as_str(),
            "https://api.hubapi.com/crm/v3/objects/contacts?limit=1"
        );
        // A base with a path (a proxy, the emulator behind one) keeps it.
        let proxied = client("http://127.0.0.1:9/hubspot");
        assert_eq!(proxied.base_url(), "http://127.0.0.1:9/hubspot");
        assert_eq!(
            proxied.url_for("/crm/v3/schemas").unwrap().as_str(),
            "http://127.0.0.1:9/hubspot/crm/v3/schemas"
        );
        for bad in [
            "api.hubapi.com",
            "ftp://api.hubapi.com",
            "https://",
            "https://h/?x=1",
            " ",
        ] {
            assert!(HubspotClient::new(bad, Secret::new("t")).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn a_plan_may_only_name_relative_paths_on_the_configured_hubspot() {
        let proxied = client("http://127.0.0.1:9/hubspot");
        for path in [
            "//evil.test/crm/v3/objects",
            "https://evil.test/crm/v3/objects",
            "crm/v3/objects",
            "/crm/../../oauth/v1/token",
            "/crm/%2e%2e/%2E%2E/oauth/v1/token",
        ] {
            let refused = proxied.send(Method::GET, path, None).await;
            assert!(
                matches!(refused, Err(TransportError::ForbiddenDestination(_))),
                "{path}: {refused:?}"
            );
        }
        // What only looks like another host is a path on this one.
        for path in [
            "/http:evil.test/x",
            "/\\evil.test/x",
            "/crm/v3/objects?next=//evil.test",
        ] {
            let url = proxied.url_for(path).unwrap();
            assert_eq!(url.host_str(), Some("127.0.0.1"), "{path}");
            assert!(url.path().starts_with("/hubspot/"), "{path}: {url}");
        }
    }
}
