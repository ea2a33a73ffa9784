//! The one HTTP path to HubSpot. Plan steps and the guest's `wasi:http` reads both go through
//! [`HubspotClient::send`], so auth, destination checks and accounting live in one place.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::Method;

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
    base_url: String,
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
        let base_url = base_url.trim_end_matches('/').to_owned();
        anyhow::ensure!(
            base_url.starts_with("http://") || base_url.starts_with("https://"),
            "the HubSpot URL must start with http:// or https://, got {base_url:?}"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(HubspotClient {
            base_url,
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

    /// Sends one request to `{base_url}{path_and_query}` with the bearer token added.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        body: Option<Bytes>,
    ) -> Result<HubspotResponse, TransportError> {
        // A plan is data from a sandboxed plugin: it may only name paths on the configured HubSpot.
        if !path_and_query.starts_with('/')
            || path_and_query.starts_with("//")
            || path_and_query.contains("..")
        {
            return Err(TransportError::ForbiddenDestination(
                path_and_query.to_owned(),
            ));
        }
        let url = format!("{}{}", self.base_url, path_and_query);
        let mut token = None;
        let result = loop {
            if let Some(budget) = &self.budget {
                budget.acquire(path_and_query).await;
            }
            // Asked after the budget wait, so a token that was fresh then is still fresh now.
            let retry_of = token.take();
            let bearer = match &retry_of {
                None => self.tokens.token().await?,
                Some(rejected) => self.tokens.expired(rejected).await?,
            };
            let result = self
                .send_once(method.clone(), &url, body.clone(), &bearer)
                .await;
            if let (Some(budget), Ok(response)) = (&self.budget, &result) {
                budget.observe(path_and_query, response);
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
        url: &str,
        body: Option<Bytes>,
        token: &Secret,
    ) -> Result<HubspotResponse, TransportError> {
        let mut request = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let network = |source| TransportError::Network {
            url: url.to_owned(),
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

/// HubSpot's 401 for an OAuth access token past its lifetime, by the one retry table.
fn is_expired_token(response: &HubspotResponse) -> bool {
    crate::retry::classify_response(response, 1) == crate::retry::Action::RefreshAuth
}
