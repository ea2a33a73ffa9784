//! What HubSpot answered to one request, whatever its status: the type every layer that decides
//! on an answer (retry, rate budget, executor) reads, below the HTTP client that produces it.

use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;

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
