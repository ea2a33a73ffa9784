//! HubSpot's error bodies: `{"status":"error","message","correlationId","category",…}`.
//!
//! Every handler fails with an [`ApiError`]; it renders the exact body shape and the
//! `X-HubSpot-Correlation-Id` header, and can be turned into one entry of a batch
//! response's `errors[]` (207 multi-status).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

pub(crate) const CORRELATION_HEADER: &str = "x-hubspot-correlation-id";

/// Error categories used by HubSpot's CRM APIs.
pub(crate) mod category {
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    pub const OBJECT_NOT_FOUND: &str = "OBJECT_NOT_FOUND";
    pub const CONFLICT: &str = "CONFLICT";
    pub const INVALID_AUTHENTICATION: &str = "INVALID_AUTHENTICATION";
}

/// One entry of the structured `errors[]` list.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ErrorDetail {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(rename = "in", skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub context: BTreeMap<String, Vec<String>>,
}

/// One invalid property value, in the form HubSpot JSON-encodes into the error message:
/// `{"isValid":false,"message":"…","error":"PROPERTY_DOESNT_EXIST","name":"x"}`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PropertyValueError {
    pub is_valid: bool,
    pub message: String,
    pub error: String,
    pub name: String,
}

impl PropertyValueError {
    pub(crate) fn new(name: &str, error: &str, message: impl Into<String>) -> Self {
        Self {
            is_valid: false,
            message: message.into(),
            error: error.to_owned(),
            name: name.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    // Static strings keep the error small: it travels in every handler's `Result`.
    pub category: &'static str,
    pub message: String,
    pub sub_category: Option<&'static str>,
    pub errors: Vec<ErrorDetail>,
    pub context: BTreeMap<String, Vec<String>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody<'a> {
    status: &'static str,
    message: &'a str,
    correlation_id: &'a str,
    category: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_category: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ErrorDetail]>::is_empty")]
    errors: &'a [ErrorDetail],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    context: &'a BTreeMap<String, Vec<String>>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        category: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            category,
            message: message.into(),
            sub_category: None,
            errors: Vec::new(),
            context: BTreeMap::new(),
        }
    }

    pub(crate) fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, category::VALIDATION_ERROR, message)
    }

    pub(crate) fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, category::CONFLICT, message)
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, category::OBJECT_NOT_FOUND, message)
    }

    /// A record id (or idProperty value) that matches nothing.
    pub(crate) fn record_not_found(id: &str) -> Self {
        Self::not_found("Object not found.  objectId are usually numeric.").with_context("id", [id])
    }

    /// HubSpot's answer for an object type it cannot resolve (including bare custom-object
    /// names, which stopped working in 2025).
    pub(crate) fn unknown_object_type(raw: &str) -> Self {
        Self::validation(format!("Unable to infer object type from: {raw}"))
    }

    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            category::INVALID_AUTHENTICATION,
            "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
        )
    }

    /// A request body that is not the JSON the endpoint expects.
    pub(crate) fn invalid_json(error: &serde_json::Error) -> Self {
        Self::validation(format!(
            "Invalid input JSON on line {}, column {}: {}",
            error.line(),
            error.column(),
            error
        ))
    }

    /// Invalid property values: the list is JSON-encoded into the message (as HubSpot does)
    /// and repeated in structured form in `errors[]`.
    pub(crate) fn property_values(invalid: Vec<PropertyValueError>) -> Self {
        let encoded = serde_json::to_string(&invalid).unwrap_or_default();
        let mut error = Self::validation(format!("Property values were not valid: {encoded}"));
        error.errors = invalid
            .into_iter()
            .map(|value_error| ErrorDetail {
                message: value_error.message,
                code: Some(value_error.error),
                location: None,
                context: BTreeMap::from([("propertyName".to_owned(), vec![value_error.name])]),
            })
            .collect();
        error
    }

    pub(crate) fn with_context<I, S>(mut self, key: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.context
            .entry(key.to_owned())
            .or_default()
            .extend(values.into_iter().map(Into::into));
        self
    }

    pub(crate) fn with_sub_category(mut self, sub_category: &'static str) -> Self {
        self.sub_category = Some(sub_category);
        self
    }

    pub(crate) fn body(&self, correlation_id: &str) -> Value {
        serde_json::to_value(ErrorBody {
            status: "error",
            message: &self.message,
            correlation_id,
            category: self.category,
            sub_category: self.sub_category,
            errors: &self.errors,
            context: &self.context,
        })
        .unwrap_or(Value::Null)
    }

    /// This error as one entry of a batch response's `errors[]`, tagged with the input's
    /// `objectWriteTraceId` so the client can tell which input failed.
    pub(crate) fn batch_entry(&self, trace_id: Option<&str>) -> Value {
        let mut context = self.context.clone();
        if let Some(trace_id) = trace_id {
            context
                .entry("objectWriteTraceId".to_owned())
                .or_default()
                .push(trace_id.to_owned());
        }
        let mut entry = json!({
            "status": "error",
            "category": self.category,
            "message": self.message,
            "context": context,
            "errors": self.errors,
            "links": {},
        });
        if let Some(sub_category) = self.sub_category {
            entry["subCategory"] = json!(sub_category);
        }
        entry
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let correlation_id = new_correlation_id();
        let mut response = (self.status, axum::Json(self.body(&correlation_id))).into_response();
        if let Ok(value) = HeaderValue::from_str(&correlation_id) {
            response.headers_mut().insert(CORRELATION_HEADER, value);
        }
        response
    }
}

/// A UUID-v4-shaped id, unique within the process; good enough to correlate logs.
pub(crate) fn new_correlation_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let sequence = COUNTER.fetch_add(1, Ordering::Relaxed);
    let seed = super::clock::now_millis() as u64;
    let high = mix(seed ^ sequence.rotate_left(32));
    let low = mix(high ^ sequence);
    let bytes: Vec<u8> = high
        .to_be_bytes()
        .into_iter()
        .chain(low.to_be_bytes())
        .enumerate()
        .map(|(index, byte)| match index {
            6 => (byte & 0x0f) | 0x40,
            8 => (byte & 0x3f) | 0x80,
            _ => byte,
        })
        .collect();
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A 64-bit finaliser: spreads counter bits over the whole word.
fn mix(mut value: u64) -> u64 {
    value = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    value = (value ^ (value >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    value = (value ^ (value >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    value ^ (value >> 31)
}
