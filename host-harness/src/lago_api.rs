//! A small client for Lago's REST API v1: the paginated customer, subscription and invoice lists
//! the backfill reads, and one customer by external id.
//!
//! Lists answer `{"<collection>": [...], "meta": {current_page, next_page, prev_page, total_pages,
//! total_count}}` and take `page` / `per_page`; every request carries `Authorization: Bearer <key>`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
use url::{Position, Url};

use crate::hubspot_http::base_url_of;
use crate::retry::RetryPolicy;
use crate::secret::Secret;

/// Records asked for per page; Lago's own default is 20, which makes large backfills chatty.
pub const DEFAULT_PER_PAGE: u32 = 100;

/// The lists the backfill reads, in the order it syncs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LagoList {
    Customers,
    Subscriptions,
    Invoices,
}

impl LagoList {
    pub const ALL: [LagoList; 3] = [
        LagoList::Customers,
        LagoList::Subscriptions,
        LagoList::Invoices,
    ];

    pub fn path(self) -> &'static str {
        match self {
            LagoList::Customers => "/api/v1/customers",
            LagoList::Subscriptions => "/api/v1/subscriptions",
            LagoList::Invoices => "/api/v1/invoices",
        }
    }

    /// The key holding the records in a list answer.
    pub fn collection(self) -> &'static str {
        match self {
            LagoList::Customers => "customers",
            LagoList::Subscriptions => "subscriptions",
            LagoList::Invoices => "invoices",
        }
    }
}

/// Lago's pagination block. Only `current_page` is required by its schema; the rest is read
/// leniently so an older Lago that omits a field still pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct PageMeta {
    #[serde(default)]
    pub current_page: u32,
    pub next_page: Option<u32>,
    pub prev_page: Option<u32>,
    pub total_pages: Option<u32>,
    pub total_count: Option<u64>,
}

/// One page of a list.
#[derive(Debug, Clone)]
pub struct Page {
    pub records: Vec<Value>,
    pub meta: PageMeta,
}

impl Page {
    /// The page to ask for next, if any. A `next_page` that does not move forward ends the walk
    /// rather than looping forever on a misbehaving server.
    pub fn next(&self) -> Option<u32> {
        self.meta
            .next_page
            .filter(|next| *next > self.meta.current_page && !self.records.is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LagoApiError {
    #[error(
        "Lago refused the API key (HTTP 401 on {path}): check --lago-api-key / LAGO_API_KEY \
         (Lago → Developers → API keys) and that --lago-url points at this organization's Lago"
    )]
    Unauthorized { path: String },
    #[error("Lago answered HTTP {status} on {path}: {message}")]
    Status {
        status: u16,
        path: String,
        message: String,
    },
    #[error("could not reach Lago at {url}: {source}")]
    Network {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("Lago's answer on {path} is not what the API documents: {reason}")]
    UnexpectedBody { path: String, reason: String },
}

/// Query parameters for one list request, besides `page` and `per_page`.
pub type Filters = Vec<(String, String)>;

#[derive(Debug, Clone)]
pub struct LagoClient {
    /// The configured URL as shown (no trailing slash, no `/api/v1`).
    base_url: String,
    /// The same, parsed once; its path ends with `/`.
    base: Url,
    api_key: Secret,
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl LagoClient {
    /// `base_url` is where Lago's API is served (`https://api.getlago.com`, or a self-hosted
    /// `http://localhost:3000`); a trailing `/api/v1` is accepted and dropped.
    pub fn new(base_url: &str, api_key: Secret) -> anyhow::Result<Self> {
        let mut base = base_url_of("Lago", base_url)?;
        if let Some(root) = base.path().strip_suffix("/api/v1/") {
            let root = format!("{root}/");
            base.set_path(&root);
        }
        let base_url = base.as_str().trim_end_matches('/').to_owned();
        anyhow::ensure!(
            !api_key.expose().trim().is_empty(),
            "the Lago API key is empty"
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()?;
        Ok(LagoClient {
            base_url,
            base,
            api_key,
            http,
            retry: RetryPolicy::default(),
        })
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `path` (one of ours, `/api/v1/…`) under the base URL, then `segment` if given, encoded as
    /// one path segment (an external id may hold `/`, `?` or spaces).
    fn url(&self, path: &str, segment: Option<&str>) -> Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("an http(s) URL with a host has path segments")
            .pop_if_empty()
            .extend(path.split('/').filter(|s| !s.is_empty()))
            .extend(segment);
        url
    }

    /// One page of `list`, retried on network errors, 429 and 5xx.
    pub async fn page(
        &self,
        list: LagoList,
        page: u32,
        per_page: u32,
        filters: &Filters,
    ) -> Result<Page, LagoApiError> {
        let mut url = self.url(list.path(), None);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("page", &page.to_string());
            query.append_pair("per_page", &per_page.to_string());
            for (key, value) in filters {
                query.append_pair(key, value);
            }
        }
        let path = url[Position::BeforePath..].to_owned();
        let mut body = self.get_json(url).await?;
        let unexpected = |reason: String| LagoApiError::UnexpectedBody {
            path: path.clone(),
            reason,
        };
        let records = match body.get_mut(list.collection()).map(Value::take) {
            Some(Value::Array(records)) => records,
            _ => {
                return Err(unexpected(format!(
                    "no `{}` array in the answer",
                    list.collection()
                )));
            }
        };
        let meta = match body.get_mut("meta").map(Value::take) {
            Some(meta) => serde_json::from_value(meta)
                .map_err(|e| unexpected(format!("its `meta` block: {e}")))?,
            // Without pagination info, the page is all there is.
            None => PageMeta {
                current_page: page,
                ..PageMeta::default()
            },
        };
        Ok(Page { records, meta })
    }

    /// A customer by its external id (`GET /api/v1/customers/{external_id}`); `None` on 404.
    pub async fn customer(&self, external_id: &str) -> Result<Option<Value>, LagoApiError> {
        let url = self.url(LagoList::Customers.path(), Some(external_id));
        match self.get_json(url).await {
            Ok(mut body) => Ok(body.get_mut("customer").map(Value::take)),
            Err(LagoApiError::Status { status: 404, .. }) => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn get_json(&self, url: Url) -> Result<Value, LagoApiError> {
        // Errors name what was asked for: the path and query.
        let path = &url[Position::BeforePath..];
        let mut attempt = 1;
        loop {
            let sent = self
                .http
                .get(url.clone())
                .bearer_auth(self.api_key.expose())
                .header(http::header::ACCEPT, "application/json")
                .send()
                .await;
            let wait = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    let retry_after = crate::retry::retry_after(response.headers());
                    let body = response
                        .bytes()
                        .await
                        .map_err(|source| LagoApiError::Network {
                            url: url.to_string(),
                            source,
                        });
                    let retryable = status == 429 || (500..=599).contains(&status);
                    match body {
                        Ok(body) if (200..300).contains(&status) => {
                            return serde_json::from_slice(&body).map_err(|e| {
                                LagoApiError::UnexpectedBody {
                                    path: path.to_owned(),
                                    reason: format!("not JSON ({e})"),
                                }
                            });
                        }
                        Ok(_) if status == 401 => {
                            return Err(LagoApiError::Unauthorized {
                                path: path.to_owned(),
                            });
                        }
                        Ok(body) if !retryable || attempt >= self.retry.max_attempts => {
                            return Err(LagoApiError::Status {
                                status,
                                path: path.to_owned(),
                                message: error_message(&body),
                            });
                        }
                        Err(error) if attempt >= self.retry.max_attempts => return Err(error),
                        _ => retry_after
                            .map(|d| d.min(self.retry.max_delay))
                            .unwrap_or_else(|| self.retry.backoff(attempt)),
                    }
                }
                Err(source) if attempt >= self.retry.max_attempts => {
                    return Err(LagoApiError::Network {
                        url: url.to_string(),
                        source,
                    });
                }
                Err(_) => self.retry.backoff(attempt),
            };
            tracing::debug!(attempt, ?wait, %path, "retrying Lago");
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }
}

/// Lago's error bodies look like `{"status":422,"error":"Unprocessable Entity","code":"…",
/// "error_details":{…}}`; anything else is shown as text, shortened.
fn error_message(body: &[u8]) -> String {
    let text = || {
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            text.chars().take(300).collect()
        }
    };
    let Ok(json) = serde_json::from_slice::<Value>(body) else {
        return text();
    };
    let field = |key| json.get(key).and_then(Value::as_str);
    let mut message = match (field("error"), field("code")) {
        (Some(error), Some(code)) => format!("{error} ({code})"),
        (Some(error), None) => error.to_owned(),
        (None, Some(code)) => code.to_owned(),
        (None, None) => return text(),
    };
    if let Some(details) = json.get("error_details").filter(|d| !d.is_null()) {
        message += &format!(": {details}");
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_prefix_and_trailing_slash_are_optional() {
        let key = || Secret::new("k");
        for url in [
            "http://lago.test:3000",
            "http://lago.test:3000/",
            "http://lago.test:3000/api/v1",
            "http://lago.test:3000/api/v1/",
        ] {
            assert_eq!(
                LagoClient::new(url, key()).unwrap().base_url(),
                "http://lago.test:3000"
            );
        }
        assert!(LagoClient::new("lago.test", key()).is_err());
        assert!(LagoClient::new("http://lago.test:99999", key()).is_err());
        assert!(LagoClient::new("http://lago.test", Secret::new(" ")).is_err());
    }

    #[test]
    fn requests_go_under_the_configured_url() {
        let lago = LagoClient::new("https://lago.test/lago/api/v1", Secret::new("k")).unwrap();
        assert_eq!(lago.base_url(), "https://lago.test/lago");
        assert_eq!(
            lago.url(LagoList::Invoices.path(), None).as_str(),
            "https://lago.test/lago/api/v1/invoices"
        );
        assert_eq!(
            lago.url(LagoList::Customers.path(), Some("ext 1/?#%"))
                .as_str(),
            "https://lago.test/lago/api/v1/customers/ext%201%2F%3F%23%25"
        );
    }

    #[test]
    fn paging_stops_at_the_last_page_or_when_the_server_does_not_move_on() {
        let page = |current, next, records: usize| Page {
            records: vec![Value::Null; records],
            meta: PageMeta {
                current_page: current,
                next_page: next,
                ..PageMeta::default()
            },
        };
        assert_eq!(page(1, Some(2), 10).next(), Some(2));
        assert_eq!(page(3, None, 10).next(), None);
        assert_eq!(page(2, Some(2), 10).next(), None);
        assert_eq!(page(2, Some(3), 0).next(), None);
    }

    #[test]
    fn error_messages_use_lagos_fields() {
        assert_eq!(
            error_message(br#"{"status":404,"error":"Not Found","code":"customer_not_found"}"#),
            "Not Found (customer_not_found)"
        );
        assert_eq!(
            error_message(
                br#"{"status":422,"error":"Unprocessable Entity","code":"validation_errors","error_details":{"per_page":["invalid"]}}"#
            ),
            r#"Unprocessable Entity (validation_errors): {"per_page":["invalid"]}"#
        );
        assert_eq!(error_message(b"<html>oops</html>"), "<html>oops</html>");
        assert_eq!(error_message(b""), "(empty body)");
    }
}
