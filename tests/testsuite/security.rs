//! Security of `serve`: the HubSpot token stays out of logs, state and plans; malformed requests
//! are refused, or kept and acknowledged, as the README says.

use std::time::Duration;

use lago_hubspot::queue::EventState;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Faults, RateLimit};
use serde_json::Value;

use crate::support::binary::{Service, Workspace, lago_hubspot_command};
use crate::support::*;

/// Distinctive, so finding it anywhere is unambiguous.
const SECRET_TOKEN: &str = "pat-na1-0ddba11-5ec2e7-70ken-never-print-me";

#[tokio::test(flavor = "multi_thread")]
async fn the_hubspot_token_never_reaches_logs_state_or_plans() {
    let workspace = Workspace::new("security-token");
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![SECRET_TOKEN.into()],
        faults: Faults {
            rate_limit: Some(RateLimit {
                max: 1_000_000,
                interval_ms: 1_000,
            }),
            ..Faults::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    // Debug everywhere, and trace for the HTTP stack that puts the header on the wire.
    let service = Service::start(
        &workspace,
        &hubspot.url,
        &[
            ("HUBSPOT_ACCESS_TOKEN", SECRET_TOKEN),
            (
                "RUST_LOG",
                "debug,reqwest=trace,hyper=trace,hyper_util=trace",
            ),
        ],
    )
    .await;
    // HubSpot answers errors too: transient ones that are retried, and a validation error
    // (the contact's email) that sends the event to dead letters.
    hubspot.set_faults(Faults {
        rate_limit: Some(RateLimit {
            max: 1_000_000,
            interval_ms: 1_000,
        }),
        error_rate: 0.3,
        error_statuses: vec![500, 503],
        seed: Some(5),
        ..Faults::default()
    });
    let client = reqwest::Client::new();
    let mut bad_email = customer("cus_sec_bad", Some("individual"));
    bad_email["tax_identification_number"] = Value::String("X".repeat(70_000));
    let mut webhooks: Vec<(String, String)> = (0..3).flat_map(customer_lifecycle).collect();
    webhooks.push((
        "sec-bad".into(),
        customer_event("customer.created", &bad_email).to_string(),
    ));
    for (key, body) in &webhooks {
        let answer = post_webhook(&client, &service.url, body, key)
            .await
            .unwrap();
        assert_eq!(answer.status(), 200);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let stats = workspace.stats();
        if stats.count(EventState::Pending) + stats.count(EventState::Running) == 0 {
            assert_eq!(stats.count(EventState::Dead), 1, "{stats:?}");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{stats:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let exit = service.terminate().await;
    assert!(exit.is_some_and(|s| s.success()));
    // The token was really used: HubSpot holds what was synced.
    assert_eq!(hubspot.records("companies").len(), 2);

    let logs = without_colours(&std::fs::read_to_string(workspace.log()).unwrap());
    // (The validation error may come back inside a 207 batch answer: not checked here.)
    for expected in ["DEBUG", "TRACE", "retrying", "status=503"] {
        assert!(
            logs.contains(expected),
            "the logs are verbose and cover HubSpot's errors: no {expected:?} in\n{}",
            workspace.log_tail()
        );
    }
    assert!(!logs.contains(SECRET_TOKEN), "the token is in the logs");

    // Nowhere in the database either: events, plans, checkpoints, errors, sync log, settings.
    for file in ["state.db", "state.db-wal"] {
        let path = workspace.dir.join(file);
        if let Ok(bytes) = std::fs::read(&path) {
            assert!(
                !bytes
                    .windows(SECRET_TOKEN.len())
                    .any(|w| w == SECRET_TOKEN.as_bytes()),
                "the token is stored in {file}"
            );
        }
    }

    // Nor in what the operator commands print, dry-run plans included.
    let event_file = workspace.dir.join("event.json");
    std::fs::write(&event_file, &webhooks[2].1).unwrap();
    let dead = workspace
        .stats()
        .counts
        .iter()
        .any(|(state, n)| state == "dead" && *n == 1);
    assert!(dead);
    let dead_id = lago_hubspot::store::Store::open(&workspace.state())
        .unwrap()
        .events(Some(EventState::Dead), 1)
        .unwrap()[0]
        .id
        .to_string();
    let state = workspace.state();
    let state = state.to_str().unwrap();
    for args in [
        vec!["plan", "--state", state, event_file.to_str().unwrap()],
        vec!["status", "--state", state],
        vec!["events", "--state", state, "show", &dead_id],
        vec!["events", "--state", state, "list"],
        vec![
            "log",
            "--state",
            state,
            "--connection-code",
            "hubspot-test",
            "cus_sec_bad",
        ],
    ] {
        let output = lago_hubspot_command()
            .env("HUBSPOT_ACCESS_TOKEN", SECRET_TOKEN)
            .env("RUST_LOG", "debug")
            .args(&args)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        for stream in [&output.stdout, &output.stderr] {
            assert!(
                !String::from_utf8_lossy(stream).contains(SECRET_TOKEN),
                "{args:?} printed the token"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_refused_or_kept_as_documented() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhooks/lago", serve.url);
    let signed = |body: &[u8], key: &str, content_type: &str| {
        client
            .post(&url)
            .header(
                "X-Lago-Signature",
                lago_hubspot::signature::hmac_signature(HMAC_KEY, body),
            )
            .header("X-Lago-Signature-Algorithm", "hmac")
            .header("X-Lago-Unique-Key", key)
            .header("Content-Type", content_type)
            .body(body.to_vec())
            .send()
    };
    let status_of = |response: reqwest::Response| async move {
        let code = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (code, body["status"].as_str().unwrap_or_default().to_owned())
    };

    // Correctly signed but unusable: kept as rejected and acknowledged, so Lago stops.
    let not_utf8: &[u8] = b"{\"webhook_type\":\"customer.created\",\"x\":\"\xff\xfe\"}";
    for (key, body) in [
        ("not-utf8", not_utf8),
        ("empty", b"".as_slice()),
        ("array", b"[]".as_slice()),
        ("null", b"null".as_slice()),
    ] {
        let answer = signed(body, key, "application/json").await.unwrap();
        assert_eq!(
            status_of(answer).await,
            (200, "rejected".into()),
            "{key} is kept as rejected"
        );
    }
    // Unsigned, or signed with an algorithm Lago does not use: 401, nothing stored.
    let unsigned = client.post(&url).body("").send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let body = customer_event("customer.created", &customer("cus_ct", None)).to_string();
    let odd_algorithm = client
        .post(&url)
        .header(
            "X-Lago-Signature",
            lago_hubspot::signature::hmac_signature(HMAC_KEY, body.as_bytes()),
        )
        .header("X-Lago-Signature-Algorithm", "md5")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(odd_algorithm.status(), 401);
    // Other methods on the webhook path are not webhooks.
    for method in [reqwest::Method::GET, reqwest::Method::PUT] {
        let answer = client.request(method, &url).send().await.unwrap();
        assert_eq!(answer.status(), 405);
    }
    assert_eq!(
        client
            .post(format!("{}/webhooks/other", serve.url))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    // The signature covers the bytes; the content type is not what makes a webhook valid.
    let answer = signed(body.as_bytes(), "text-plain", "text/plain")
        .await
        .unwrap();
    assert_eq!(status_of(answer).await, (200, "accepted".into()));

    serve.settled(Duration::from_secs(30)).await;
    let events = serve.syncer.store().events(None, 20).unwrap();
    assert_eq!(events.len(), 5, "only the signed requests are stored");
    let rejected: Vec<_> = events
        .iter()
        .filter(|e| e.state == EventState::Rejected)
        .collect();
    assert_eq!(rejected.len(), 4);
    assert!(
        rejected
            .iter()
            .all(|e| e.last_error.as_deref().is_some_and(|r| !r.is_empty()))
    );
    assert_eq!(serve.hubspot.records("companies").len(), 1);
    serve.stop().await.unwrap();
}

/// The log text without terminal colour codes (`ESC [ … m`).
fn without_colours(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
