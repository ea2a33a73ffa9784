//! The one retry decision: what an answer from HubSpot (or its absence) means for what to do
//! next, as one table ([`RULES`]) read by every layer. The client refreshes the token on
//! [`Action::RefreshAuth`]; the executor waits and sends again on [`Action::WaitWindow`] and
//! [`Action::BackOff`]; the batcher halves a batch on [`Action::SplitBatch`]; the queue turns what
//! is left into "retry the event later", "park the connection" or "dead letter"; backfill's Lago
//! reads back off by the same [`backoff`].
//!
//! Facts: hubspot-api.md §3.2 (statuses), §3.3 (rate limits: `policyName`, the
//! `X-HubSpot-RateLimit-*` headers), §4 (401 `EXPIRED_AUTHENTICATION`), §7 (what HubSpot's own
//! clients retry). Bettered: rate limits wait for the window HubSpot names instead of a fixed
//! guess, DAILY is never retried blindly, and validation or scope errors are never retried.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use serde_json::Value;

use crate::response::HubspotResponse;

/// What to do about one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 2xx: done.
    Accept,
    /// Send again after the window HubSpot names (`Retry-After`, the rate-limit interval) or,
    /// without one, the rule's own wait.
    WaitWindow,
    /// Transient: send again after an exponential backoff with jitter ([`backoff`]).
    BackOff,
    /// The OAuth access token expired in flight: refresh once and send again.
    RefreshAuth,
    /// The portal's daily budget is spent: nothing goes through before the reset.
    ParkUntilReset,
    /// HubSpot refused a whole batch for one bad input: halve it until the input stands alone.
    SplitBatch,
    /// Permanent (validation, scope, not found…): retrying cannot help.
    GiveUp,
}

/// Why the host stopped a call into the sync component (see [`crate::runtime::GuestLimits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestStop {
    /// It computed past its deadline (`--guest-deadline-ms`).
    Deadline,
    /// It asked for more linear memory than its cap (`--guest-memory-mib`).
    Memory,
    /// It trapped: a panic (its message is on the guest's stderr), `unreachable`, an
    /// out-of-bounds access…
    Trap,
}

/// What a stopped guest call means for its event: one row per way the host stops the component.
/// The component is a pure function of the payload (and the ids and settings the host passes):
/// a trap or the memory cap on a payload happens again on every attempt, so the event is a dead
/// letter with its reason at once, never a hot loop; a deadline depends on how busy the machine
/// is too, so it is retried with the queue's backoff, then dead after its attempts.
pub static GUEST_RULES: &[(GuestStop, Action, &str)] = &[
    (
        GuestStop::Deadline,
        Action::BackOff,
        "a busy machine may have slowed it: retried with the queue's backoff, dead after its attempts",
    ),
    (
        GuestStop::Memory,
        Action::GiveUp,
        "the same payload asks for the same memory on every attempt",
    ),
    (
        GuestStop::Trap,
        Action::GiveUp,
        "the same payload traps the same component on every attempt",
    ),
];

/// The action for an event whose guest call was stopped, by [`GUEST_RULES`].
pub fn after_guest_stop(stop: GuestStop) -> Action {
    GUEST_RULES
        .iter()
        .find(|(row, _, _)| *row == stop)
        .map_or(Action::GiveUp, |(_, action, _)| *action)
}

/// What a rule matches on: HubSpot's status, its error `category` and 429 `policyName`, and how
/// many inputs the request carried.
#[derive(Debug, Clone, Copy, Default)]
pub struct Answer<'a> {
    /// `None`: no answer at all (network error, dropped connection, timeout).
    pub status: Option<u16>,
    pub category: Option<&'a str>,
    pub policy_name: Option<&'a str>,
    /// Inputs of a batch request (1 for a single-record request).
    pub inputs: usize,
}

/// One row of the table: the first row that matches decides.
pub struct Rule {
    /// Inclusive status range; `None` matches "no answer".
    pub status: Option<(u16, u16)>,
    pub category: Option<&'static str>,
    pub policy_name: Option<&'static str>,
    /// Only for requests with more than one input.
    pub batch_only: bool,
    pub action: Action,
    /// The wait for [`Action::WaitWindow`] when HubSpot names none.
    pub default_wait: Duration,
    pub why: &'static str,
}

const fn rule(status: Option<(u16, u16)>, action: Action, why: &'static str) -> Rule {
    Rule {
        status,
        category: None,
        policy_name: None,
        batch_only: false,
        action,
        default_wait: Duration::ZERO,
        why,
    }
}

const fn status(code: u16) -> Option<(u16, u16)> {
    Some((code, code))
}

/// The table. Order matters: specific rows before the ranges that contain them.
pub static RULES: &[Rule] = &[
    rule(Some((200, 299)), Action::Accept, "success"),
    Rule {
        category: Some("EXPIRED_AUTHENTICATION"),
        ..rule(
            status(401),
            Action::RefreshAuth,
            "an OAuth access token past its lifetime (§4)",
        )
    },
    Rule {
        policy_name: Some("DAILY"),
        ..rule(
            status(429),
            Action::ParkUntilReset,
            "the daily request budget is spent until the reset (§3.3)",
        )
    },
    Rule {
        policy_name: Some("SECONDLY"),
        default_wait: Duration::from_secs(1),
        ..rule(
            status(429),
            Action::WaitWindow,
            "the per-second limit (§3.3)",
        )
    },
    Rule {
        default_wait: Duration::from_secs(10),
        ..rule(
            status(429),
            Action::WaitWindow,
            "TEN_SECONDLY_ROLLING or unnamed: wait the window HubSpot reports (§3.3)",
        )
    },
    Rule {
        default_wait: Duration::from_secs(2),
        ..rule(
            status(423),
            Action::WaitWindow,
            "locked while HubSpot processes a large write; the lock lasts 2 s (§3.2)",
        )
    },
    Rule {
        default_wait: Duration::from_secs(60),
        ..rule(
            status(477),
            Action::WaitWindow,
            "portal migrating between data centres; HubSpot says how long (§3.2)",
        )
    },
    rule(status(408), Action::BackOff, "request timeout: transient"),
    Rule {
        batch_only: true,
        ..rule(
            status(400),
            Action::SplitBatch,
            "one bad input makes HubSpot refuse a whole batch (§1.5)",
        )
    },
    rule(
        status(501),
        Action::GiveUp,
        "not implemented: waiting does not heal it",
    ),
    rule(
        Some((522, 526)),
        Action::GiveUp,
        "the SSL/connection family does not heal by waiting",
    ),
    rule(Some((500, 599)), Action::BackOff, "server error: transient"),
    rule(
        None,
        Action::BackOff,
        "no answer (network error, dropped connection): transient",
    ),
    rule(
        Some((0, u16::MAX)),
        Action::GiveUp,
        "validation, scope, not found, conflict: permanent",
    ),
];

impl Rule {
    fn matches(&self, answer: &Answer<'_>) -> bool {
        let status = match (self.status, answer.status) {
            (None, None) => true,
            (Some((low, high)), Some(status)) => (low..=high).contains(&status),
            _ => false,
        };
        status
            && self.category.is_none_or(|c| answer.category == Some(c))
            && self
                .policy_name
                .is_none_or(|p| answer.policy_name == Some(p))
            && (!self.batch_only || answer.inputs > 1)
    }
}

/// The rule that decides this answer.
pub fn rule_for(answer: &Answer<'_>) -> &'static Rule {
    RULES
        .iter()
        .find(|rule| rule.matches(answer))
        .expect("the table ends with a catch-all row")
}

/// The action for this answer.
pub fn classify(answer: &Answer<'_>) -> Action {
    rule_for(answer).action
}

/// Reads what the table matches on from a HubSpot response.
pub fn read(
    response: &HubspotResponse,
    inputs: usize,
) -> (Option<String>, Option<String>, u16, usize) {
    let json = response.json();
    let text = |key: &str| {
        json.as_ref()
            .and_then(|j| j.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    (
        text("category"),
        text("policyName"),
        response.status,
        inputs,
    )
}

/// The action for a HubSpot response to a request of `inputs` inputs.
pub fn classify_response(response: &HubspotResponse, inputs: usize) -> Action {
    let (category, policy, status, inputs) = read(response, inputs);
    classify(&Answer {
        status: Some(status),
        category: category.as_deref(),
        policy_name: policy.as_deref(),
        inputs,
    })
}

/// The one backoff: `base` doubled per attempt up to `max`, of which a random half to all is
/// waited (jitter), so many workers don't come back in lockstep. `attempt` counts from 1.
pub fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    // backon adds a jitter of up to the delay itself: start from half, to land in [half, full).
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(base / 2)
        .with_max_delay(max / 2)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build();
    delays
        .nth(attempt.saturating_sub(1).min(30) as usize)
        .unwrap_or(max)
        .min(max)
}

/// The wait HubSpot names on an answer: `Retry-After` (seconds), else the rate-limit interval.
pub fn named_wait(response: &HubspotResponse) -> Option<Duration> {
    retry_after(&response.headers).or_else(|| {
        header_number(
            &response.headers,
            "x-hubspot-ratelimit-interval-milliseconds",
        )
        .map(Duration::from_millis)
    })
}

/// `Retry-After` in seconds, as HubSpot (477) and Lago send it.
pub fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    header_number(headers, "retry-after").map(Duration::from_secs)
}

/// A numeric header, trimmed.
pub fn header_number(headers: &http::HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The in-request decision the executor and Lago reads act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    GiveUp,
    RetryIn(Duration),
}

/// How patiently one request is sent again within a run.
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
    /// What to do after `response` to a single-input request, by [`RULES`].
    pub fn after_response(&self, response: &HubspotResponse, attempt: u32) -> Decision {
        let (category, policy, status, inputs) = read(response, 1);
        let answer = Answer {
            status: Some(status),
            category: category.as_deref(),
            policy_name: policy.as_deref(),
            inputs,
        };
        let rule = rule_for(&answer);
        self.decide(rule, attempt, || named_wait(response))
    }

    /// What to do after a request got no answer.
    pub fn after_network_error(&self, attempt: u32) -> Decision {
        self.decide(rule_for(&Answer::default()), attempt, || None)
    }

    fn decide(
        &self,
        rule: &Rule,
        attempt: u32,
        named: impl FnOnce() -> Option<Duration>,
    ) -> Decision {
        if attempt >= self.max_attempts {
            return Decision::GiveUp;
        }
        match rule.action {
            Action::WaitWindow => {
                Decision::RetryIn(named().unwrap_or(rule.default_wait).min(self.max_delay))
            }
            Action::BackOff => Decision::RetryIn(self.backoff(attempt)),
            // Refreshing is the client's job, splitting the batcher's, parking the queue's.
            Action::Accept
            | Action::RefreshAuth
            | Action::ParkUntilReset
            | Action::SplitBatch
            | Action::GiveUp => Decision::GiveUp,
        }
    }

    /// [`backoff`] with this policy's bounds.
    pub fn backoff(&self, attempt: u32) -> Duration {
        backoff(self.base_delay, self.max_delay, attempt)
    }
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

    /// The table, row by row: what every layer does with each kind of answer.
    #[test]
    fn one_table_decides_every_answer() {
        // (status, category, policyName, inputs, action)
        type Case = (
            Option<u16>,
            Option<&'static str>,
            Option<&'static str>,
            usize,
            Action,
        );
        let cases: &[Case] = &[
            (Some(200), None, None, 1, Action::Accept),
            (Some(207), None, None, 100, Action::Accept),
            (
                Some(401),
                Some("EXPIRED_AUTHENTICATION"),
                None,
                1,
                Action::RefreshAuth,
            ),
            (
                Some(401),
                Some("INVALID_AUTHENTICATION"),
                None,
                1,
                Action::GiveUp,
            ),
            (Some(429), None, Some("DAILY"), 1, Action::ParkUntilReset),
            (Some(429), None, Some("SECONDLY"), 1, Action::WaitWindow),
            (
                Some(429),
                None,
                Some("TEN_SECONDLY_ROLLING"),
                1,
                Action::WaitWindow,
            ),
            (Some(429), None, None, 1, Action::WaitWindow),
            (Some(423), None, None, 1, Action::WaitWindow),
            (Some(477), None, None, 1, Action::WaitWindow),
            (Some(408), None, None, 1, Action::BackOff),
            (
                Some(400),
                Some("VALIDATION_ERROR"),
                None,
                100,
                Action::SplitBatch,
            ),
            (Some(400), Some("VALIDATION_ERROR"), None, 1, Action::GiveUp),
            (Some(403), None, None, 1, Action::GiveUp),
            (Some(404), None, None, 1, Action::GiveUp),
            (Some(409), None, None, 1, Action::GiveUp),
            (Some(500), None, None, 1, Action::BackOff),
            (Some(501), None, None, 1, Action::GiveUp),
            (Some(502), None, None, 1, Action::BackOff),
            (Some(503), None, None, 100, Action::BackOff),
            (Some(525), None, None, 1, Action::GiveUp),
            (None, None, None, 1, Action::BackOff),
        ];
        for &(status, category, policy_name, inputs, action) in cases {
            let answer = Answer {
                status,
                category,
                policy_name,
                inputs,
            };
            assert_eq!(classify(&answer), action, "{answer:?}");
        }
    }

    /// A trap or the memory cap is a dead letter at once; a deadline is tried again.
    #[test]
    fn a_stopped_guest_is_retried_only_past_its_deadline() {
        assert_eq!(after_guest_stop(GuestStop::Deadline), Action::BackOff);
        assert_eq!(after_guest_stop(GuestStop::Memory), Action::GiveUp);
        assert_eq!(after_guest_stop(GuestStop::Trap), Action::GiveUp);
        for stop in [GuestStop::Deadline, GuestStop::Memory, GuestStop::Trap] {
            assert_eq!(
                GUEST_RULES
                    .iter()
                    .filter(|(row, _, _)| *row == stop)
                    .count(),
                1,
                "one row for {stop:?}"
            );
        }
    }

    #[test]
    fn the_backoff_doubles_with_jitter_within_its_bounds() {
        let (base, max) = (Duration::from_millis(100), Duration::from_secs(1));
        for _ in 0..50 {
            let first = backoff(base, max, 1);
            assert!(first >= base / 2 && first <= base, "{first:?}");
            let third = backoff(base, max, 3);
            assert!(third >= base * 2 && third <= base * 4, "{third:?}");
            assert!(backoff(base, max, 30) <= max);
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
