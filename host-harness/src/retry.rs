//! When to try a HubSpot request again, and how long to wait first.
//!
//! Learned from HubSpot's own clients (hubspot-api.md §7) and bettered: rate-limit answers wait
//! for the window HubSpot names instead of a fixed guess, DAILY is never retried blindly, and
//! validation or scope errors are never retried at all.

use std::time::Duration;

use rand::Rng;
use serde_json::Value;

use crate::hubspot_http::HubspotResponse;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    GiveUp,
    RetryIn(Duration),
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Total attempts, the first one included.
    pub max_attempts: u32,
    /// First backoff for 5xx and network errors; doubles per attempt, with jitter.
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    pub fn after_response(&self, response: &HubspotResponse, attempt: u32) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        match response.status {
            429 => self.after_rate_limit(response),
            // Locked while HubSpot processes a large write; the lock lasts 2 s.
            423 => Decision::RetryIn(Duration::from_secs(2)),
            // Portal migrating between data centres: HubSpot says how long.
            477 => Decision::RetryIn(
                retry_after(response)
                    .unwrap_or(Duration::from_secs(60))
                    .min(self.max_delay),
            ),
            // 501 and the SSL/connection family (522, 525, 526) do not heal by waiting.
            501 | 522 | 525 | 526 => Decision::GiveUp,
            500..=599 => Decision::RetryIn(self.backoff(attempt)),
            _ => Decision::GiveUp,
        }
    }

    pub fn after_network_error(&self, attempt: u32) -> Decision {
        if attempt >= self.max_attempts {
            Decision::GiveUp
        } else {
            Decision::RetryIn(self.backoff(attempt))
        }
    }

    /// Exponential backoff with full jitter, so many workers don't retry in lockstep.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    fn after_rate_limit(&self, response: &HubspotResponse) -> Decision {
        let policy = response.json().and_then(|j| {
            j.get("policyName")
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        match policy.as_deref() {
            // The daily budget is gone until midnight in the portal's time zone.
            Some("DAILY") => Decision::GiveUp,
            Some("SECONDLY") => Decision::RetryIn(Duration::from_secs(1)),
            // TEN_SECONDLY_ROLLING or unnamed: wait for the window HubSpot reports.
            _ => Decision::RetryIn(
                retry_after(response)
                    .or_else(|| {
                        header_millis(response, "x-hubspot-ratelimit-interval-milliseconds")
                    })
                    .unwrap_or(Duration::from_secs(10))
                    .min(self.max_delay),
            ),
        }
    }
}

fn header(response: &HubspotResponse, name: &str) -> Option<u64> {
    response
        .headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

fn header_millis(response: &HubspotResponse, name: &str) -> Option<Duration> {
    header(response, name).map(Duration::from_millis)
}

fn retry_after(response: &HubspotResponse) -> Option<Duration> {
    header(response, "retry-after").map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str, headers: &[(&str, &str)]) -> HubspotResponse {
        let mut map = http::HeaderMap::new();
        for (k, v) in headers {
            map.insert(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        HubspotResponse {
            status,
            headers: map,
            body: bytes::Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn validation_and_scope_errors_are_not_retried() {
        let policy = RetryPolicy::default();
        for status in [400, 401, 403, 404, 409] {
            assert_eq!(
                policy.after_response(&answer(status, "{}", &[]), 1),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn rate_limits_wait_for_their_window_and_daily_gives_up() {
        let policy = RetryPolicy::default();
        let ten = answer(
            429,
            r#"{"policyName":"TEN_SECONDLY_ROLLING"}"#,
            &[("x-hubspot-ratelimit-interval-milliseconds", "10000")],
        );
        assert_eq!(
            policy.after_response(&ten, 1),
            Decision::RetryIn(Duration::from_secs(10))
        );
        let secondly = answer(429, r#"{"policyName":"SECONDLY"}"#, &[]);
        assert_eq!(
            policy.after_response(&secondly, 1),
            Decision::RetryIn(Duration::from_secs(1))
        );
        let daily = answer(429, r#"{"policyName":"DAILY"}"#, &[]);
        assert_eq!(policy.after_response(&daily, 1), Decision::GiveUp);
        let migrating = answer(477, "", &[("retry-after", "3")]);
        assert_eq!(
            policy.after_response(&migrating, 1),
            Decision::RetryIn(Duration::from_secs(3))
        );
    }

    #[test]
    fn server_errors_back_off_until_attempts_run_out() {
        let policy = RetryPolicy::default();
        let busy = answer(503, "", &[]);
        assert!(matches!(
            policy.after_response(&busy, 1),
            Decision::RetryIn(_)
        ));
        assert_eq!(
            policy.after_response(&busy, policy.max_attempts),
            Decision::GiveUp
        );
        assert!(policy.backoff(3) <= policy.base_delay * 4);
        assert!(policy.backoff(3) >= policy.base_delay * 2);
    }
}
