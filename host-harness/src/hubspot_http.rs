//! The one HTTP path to HubSpot. Plan steps and the guest's `wasi:http` reads both go through
//! [`HubspotClient::send`], so auth, destination checks and accounting live in one place.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::metrics::Metrics;
use crate::ratelimit::RateBudget;

pub const DEFAULT_HUBSPOT_URL: &str = "https://api.hubapi.com";

/// A bearer token that never prints itself.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(…)")
    }
}

/// An answer from HubSpot, whatever its status.
#[derive(Debug, Clone)]
pub struct HubspotResponse {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl HubspotResponse {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// HubSpot's own words for a failure: its `message`, plus the correlation id support asks for.
    pub fn error_summary(&self) -> String {
        let json = self.json();
        let message = json
            .as_ref()
            .and_then(|j| j.get("message"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body)
                    .chars()
                    .take(300)
                    .collect()
            });
        let correlation = json
            .as_ref()
            .and_then(|j| j.get("correlationId"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                self.headers
                    .get("x-hubspot-correlation-id")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
        match correlation {
            Some(id) => format!("HTTP {}: {message} (correlation id {id})", self.status),
            None => format!("HTTP {}: {message}", self.status),
        }
    }
}

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
}

/// A client bound to one HubSpot base URL and one token, optionally paced by the portal's
/// budget and counted in the metrics.
#[derive(Clone)]
pub struct HubspotClient {
    base_url: String,
    token: Secret,
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
    pub fn new(base_url: &str, token: Secret) -> anyhow::Result<Self> {
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
            token,
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
        let mut request = self
            .http
            .request(method, &url)
            .bearer_auth(self.token.expose())
            .header(http::header::ACCEPT, "application/json");
        if let Some(body) = body {
            request = request
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        if let Some(budget) = &self.budget {
            budget.acquire(path_and_query).await;
        }
        let network = |source| TransportError::Network {
            url: url.clone(),
            source,
        };
        let result = async {
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
        .await;
        if let Some(metrics) = &self.metrics {
            metrics.hubspot_answered(result.as_ref().map_or(0, |r: &HubspotResponse| r.status));
        }
        if let (Some(budget), Ok(response)) = (&self.budget, &result) {
            budget.observe(path_and_query, response);
        }
        if let Ok(response) = &result {
            tracing::debug!(status = response.status, %url, "hubspot");
        }
        result
    }
}
