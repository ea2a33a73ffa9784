//! What `serve` tells its operator: one line per settled event (synced, skipped with the reason,
//! retried in N s with the reason, dead with HubSpot's message) with the event's identity as
//! structured fields, and the drain on shutdown; never the token or a payload.

use std::time::Duration;

use lago_hubspot::queue::EventState;
use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Faults, RateLimit};
use serde_json::Value;

use crate::support::binary::{Service, Workspace};
use crate::support::*;

fn generous_limit() -> Option<RateLimit> {
    Some(RateLimit {
        max: 1_000_000,
        interval_ms: 1_000,
    })
}

/// Waits until nothing is pending or running and `done` holds for the stored events.
async fn settled(workspace: &Workspace, done: impl Fn(&Store) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let store = Store::open(&workspace.state()).unwrap();
        let stats = store.queue_stats().unwrap();
        if stats.count(EventState::Pending) + stats.count(EventState::Running) == 0 && done(&store)
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{stats:?}\n{}",
            workspace.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The log line (without colours) that has every one of `parts`.
fn line_with<'a>(logs: &'a str, parts: &[&str]) -> &'a str {
    logs.lines()
        .find(|line| parts.iter().all(|part| line.contains(part)))
        .unwrap_or_else(|| panic!("no log line with all of {parts:?} in\n{logs}"))
}

fn without_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            chars.by_ref().find(|c| *c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_each_event_outcome_and_the_drain() {
    let workspace = Workspace::new("serve-logs");
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        faults: Faults {
            rate_limit: generous_limit(),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let service = Service::start(&workspace, &hubspot.url, &[("NO_COLOR", "1")]).await;
    let client = reqwest::Client::new();
    let post = |body: Value, key: &'static str| {
        let (client, url) = (client.clone(), service.url.clone());
        async move {
            let answer = post_webhook(&client, &url, &body.to_string(), key)
                .await
                .unwrap();
            assert_eq!(answer.status(), 200);
        }
    };

    let acme = customer("cus_log_ok", Some("company"));
    post(customer_event("customer.created", &acme), "log-1").await;
    // Skipped on arrival (a type with nothing to push), and by content in a worker (a draft).
    post(
        invoice_event(
            "invoice.drafted",
            &invoice("inv_log_drafted", &acme, "draft", "pending"),
        ),
        "log-2",
    )
    .await;
    post(
        invoice_event(
            "invoice.created",
            &invoice("inv_log_draft", &acme, "draft", "pending"),
        ),
        "log-3",
    )
    .await;
    // HubSpot refuses it for good: a property value over its length limit.
    let mut refused = customer("cus_log_dead", Some("company"));
    refused["tax_identification_number"] = Value::String("X".repeat(70_000));
    post(customer_event("customer.created", &refused), "log-4").await;
    settled(&workspace, |store| {
        store.queue_stats().unwrap().count(EventState::Dead) == 1
    })
    .await;

    // HubSpot fails every write for a while: the event is tried again later, then synced.
    hubspot.set_faults(Faults {
        rate_limit: generous_limit(),
        error_rate: 1.0,
        error_statuses: vec![503],
        writes_only: true,
        seed: Some(7),
        ..Faults::default()
    });
    post(
        customer_event("customer.created", &customer("cus_log_retry", None)),
        "log-5",
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while !Store::open(&workspace.state())
        .unwrap()
        .events(None, 10)
        .unwrap()
        .iter()
        .any(|e| e.lago_id == "cus_log_retry" && e.attempts > 0)
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}",
            workspace.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    hubspot.set_faults(Faults {
        rate_limit: generous_limit(),
        ..Faults::default()
    });
    settled(&workspace, |store| {
        store.queue_stats().unwrap().count(EventState::Synced) == 2
    })
    .await;
    let exit = service.terminate().await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{}",
        workspace.log_tail()
    );

    let logs = without_ansi(&std::fs::read_to_string(workspace.log()).unwrap());
    let synced = line_with(
        &logs,
        &[
            "INFO",
            "event synced",
            "webhook_type=customer.created",
            "lago_id=cus_log_ok",
            "outcome=\"synced\"",
            "connection=hubspot-test",
        ],
    );
    assert!(synced.contains("event="), "{synced}");
    line_with(
        &logs,
        &[
            "INFO",
            "event skipped",
            "webhook_type=invoice.drafted",
            "lago_id=inv_log_drafted",
            "outcome=\"skipped\"",
            "reason=",
        ],
    );
    line_with(
        &logs,
        &[
            "INFO",
            "event skipped",
            "webhook_type=invoice.created",
            "lago_id=inv_log_draft",
            "reason=",
            "draft",
        ],
    );
    let dead = line_with(
        &logs,
        &[
            "event dead",
            "lago_id=cus_log_dead",
            "outcome=\"dead\"",
            "status=400",
            "error=",
        ],
    );
    // HubSpot's message, cut: it may echo the refused value.
    assert!(dead.len() < 2_000, "{dead}");
    line_with(
        &logs,
        &[
            "INFO",
            "event will be retried in",
            "lago_id=cus_log_retry",
            "outcome=\"retry\"",
            "retry_in_s=",
            "attempts=1",
            "status=503",
            "reason=",
        ],
    );
    line_with(
        &logs,
        &[
            "event synced",
            "lago_id=cus_log_retry",
            "outcome=\"synced\"",
        ],
    );
    line_with(&logs, &["INFO", "draining", "in_flight=", "timeout_s=30"]);
    line_with(&logs, &["INFO", "drained"]);
    // Never the token, never a payload.
    assert!(!logs.contains(TOKEN), "the token is in the logs");
    assert!(
        !logs.contains("\"webhook_type\""),
        "a payload is in the logs"
    );
    assert!(
        !logs.contains(&"X".repeat(1_000)),
        "the refused value is in the logs"
    );
}

/// With `--log-format json`, the shutdown and the drain are events like the others: a fixed
/// message, the numbers as fields.
#[tokio::test(flavor = "multi_thread")]
async fn serve_logs_the_drain_as_structured_events_in_json() {
    let workspace = Workspace::new("serve-logs-json");
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    // A deprecated spelling's warning is a JSON line too.
    let old = workspace.dir.join("old.toml");
    std::fs::write(&old, "default_targeted_object = \"companies\"\n").unwrap();
    let service = Service::start(
        &workspace,
        &hubspot.url,
        &[
            ("LAGO_HUBSPOT_LOG_FORMAT", "json"),
            ("LAGO_HUBSPOT_CONFIG", old.to_str().unwrap()),
        ],
    )
    .await;
    let exit = service.terminate().await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{}",
        workspace.log_tail()
    );
    let logs = std::fs::read_to_string(workspace.log()).unwrap();
    // Every line, the service's own notices included.
    let events: Vec<Value> = logs
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    for (level, start) in [
        ("INFO", "listening on http://127.0.0.1:"),
        ("WARN", "`default_targeted_object =` is deprecated"),
    ] {
        assert!(
            events.iter().any(|event| event["level"] == level
                && event["fields"]["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(start))),
            "{logs}"
        );
    }
    let fields = |message: &str| -> Value {
        events
            .iter()
            .find(|event| event["fields"]["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} event in\n{logs}"))["fields"]
            .clone()
    };
    let draining = fields("draining");
    assert_eq!(draining["in_flight"], 0, "{draining}");
    assert_eq!(draining["timeout_s"], 30, "{draining}");
    assert_eq!(fields("drained")["in_flight"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stderr_never_breaks_a_request_an_event_or_the_exit_status() {
    let workspace = Workspace::new("serve-closed-stderr");
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let service = Service::start_with_closed_stderr(&workspace, &hubspot.url, &[]).await;
    let client = reqwest::Client::new();
    // Refused with a warning nobody can read: still its 401.
    let unsigned = client
        .post(format!("{}/webhooks/lago", service.url))
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(unsigned.status(), 401);
    let acme = customer("cus_quiet", Some("company"));
    let answer = post_webhook(
        &client,
        &service.url,
        &customer_event("customer.created", &acme).to_string(),
        "quiet-1",
    )
    .await
    .expect("an answer, not a dropped connection");
    assert_eq!(answer.status(), 200);
    settled(&workspace, |store| {
        store.queue_stats().unwrap().count(EventState::Synced) == 1
    })
    .await;
    assert_eq!(hubspot.records("companies").len(), 1);
    let status = service.terminate().await.expect("serve stops on SIGTERM");
    assert!(status.success(), "{status}");
}
