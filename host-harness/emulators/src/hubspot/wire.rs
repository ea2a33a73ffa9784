//! Request/response plumbing shared by the handlers: JSON bodies with HubSpot-style parse
//! errors, query strings with repeated or comma-separated lists, and JSON replies.

use axum::Json;
use axum::extract::{FromRequestParts, Query};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::errors::ApiError;

pub(crate) type ApiResult = Result<Response, ApiError>;

/// Parses a JSON request body; malformed or mistyped JSON is a 400 like HubSpot's.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let text: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"null"
    } else {
        body
    };
    serde_json::from_slice(text).map_err(|error| ApiError::invalid_json(&error))
}

pub(crate) fn reply(status: StatusCode, body: Value) -> ApiResult {
    Ok((status, Json(body)).into_response())
}

pub(crate) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Query parameters in arrival order, so that both `?properties=a,b` and
/// `?properties=a&properties=b` work.
#[derive(Debug, Default)]
pub(crate) struct QueryParams(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, ApiError> {
        let Query(pairs) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri)
            .map_err(|rejection| ApiError::validation(rejection.body_text()))?;
        Ok(Self(pairs))
    }
}

impl QueryParams {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    /// All values of a list parameter, split on commas, without blanks.
    pub(crate) fn list(&self, key: &str) -> Option<Vec<String>> {
        let values: Vec<String> = self
            .0
            .iter()
            .filter(|(name, _)| name == key)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|value| !value.is_empty())
            .map(str::to_owned)
            .collect();
        self.0.iter().any(|(name, _)| name == key).then_some(values)
    }

    pub(crate) fn flag(&self, key: &str) -> Option<bool> {
        self.get(key)
            .map(|value| value.eq_ignore_ascii_case("true"))
    }

    /// A non-negative integer parameter; anything else is a validation error.
    pub(crate) fn number(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.get(key)
            .map(|value| {
                value.parse().map_err(|_| {
                    ApiError::validation(format!(
                        "Invalid value '{value}' for query parameter '{key}'"
                    ))
                })
            })
            .transpose()
    }
}
