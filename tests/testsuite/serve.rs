//! `serve` end to end: signed webhooks in, HubSpot records out, on loopback.

use std::time::Duration;

use lago_hubspot::config::{INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA};
use lago_hubspot::queue::EventState;
use lago_hubspot::server::ServeOptions;
use lago_hubspot::signature::WebhookAuth;
use lago_hubspot_emulators::hubspot::Faults;
use serde_json::Value;

use crate::support::*;

#[tokio::test(flavor = "multi_thread")]
async fn signed_webhooks_are_stored_acknowledged_and_synced_in_customer_order() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    let acme = customer("cus_serve", Some("company"));
    let events = [
        customer_event("customer.created", &acme),
        subscription_event(
            "subscription.started",
            &subscription("sub_s", &acme, "active"),
        ),
        invoice_event(
            "invoice.created",
            &invoice("inv_s", &acme, "finalized", "pending"),
        ),
        invoice_event(
            "invoice.payment_status_updated",
            &invoice("inv_s", &acme, "finalized", "succeeded"),
        ),
    ];
    for (n, event) in events.iter().enumerate() {
        let response = serve
            .post_signed(&event.to_string(), &format!("key-{n}"))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "accepted");
    }
    serve.settled(Duration::from_secs(30)).await;
    assert_eq!(serve.hubspot.records("companies").len(), 1);
    assert_eq!(serve.hubspot.records(SUBSCRIPTIONS_SCHEMA).len(), 1);
    let invoices = serve.hubspot.records(INVOICES_SCHEMA);
    assert_eq!(invoices.len(), 1);
    // The later event of the same customer won: order was kept.
    assert_eq!(
        invoices[0].properties["lago_invoice_payment_status"],
        "succeeded"
    );
    assert_eq!(
        serve
            .syncer
            .store()
            .queue_stats()
            .unwrap()
            .count(EventState::Synced),
        4
    );
    serve.stop().await.expect("graceful stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn redelivered_webhooks_are_acknowledged_and_processed_once() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    let body =
        customer_event("customer.created", &customer("cus_dup", Some("company"))).to_string();
    assert_eq!(
        serve
            .post_signed(&body, "same-key")
            .await
            .json::<Value>()
            .await
            .unwrap()["status"],
        "accepted"
    );
    let again = serve.post_signed(&body, "same-key").await;
    assert_eq!(again.status(), 200);
    assert_eq!(again.json::<Value>().await.unwrap()["status"], "duplicate");
    serve.settled(Duration::from_secs(30)).await;
    assert_eq!(serve.syncer.store().events(None, 10).unwrap().len(), 1);
    assert_eq!(serve.hubspot.records("companies").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unsigned_forged_and_oversized_requests_are_refused_and_nothing_is_stored() {
    let serve = ServeHarness::start(ServeOptions {
        max_body_bytes: 4096,
        ..ServeHarness::hmac_options()
    })
    .await;
    let client = reqwest::Client::new();
    let url = format!("{}/webhooks/lago", serve.url);
    let body = customer_event("customer.created", &customer("cus_x", None)).to_string();

    let unsigned = client.post(&url).body(body.clone()).send().await.unwrap();
    assert_eq!(unsigned.status(), 401);
    let forged = client
        .post(&url)
        .header(
            "X-Lago-Signature",
            lago_hubspot::signature::hmac_signature("not-the-key", body.as_bytes()),
        )
        .header("X-Lago-Signature-Algorithm", "hmac")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
    // A real signature replayed with another body.
    let other = customer_event("customer.created", &customer("cus_evil", None)).to_string();
    let replayed = client
        .post(&url)
        .header(
            "X-Lago-Signature",
            lago_hubspot::signature::hmac_signature(HMAC_KEY, body.as_bytes()),
        )
        .header("X-Lago-Signature-Algorithm", "hmac")
        .body(other)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 401);
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(10_000));
    let oversized = serve.post_signed(&huge, "big").await;
    assert_eq!(oversized.status(), 413);

    assert!(serve.syncer.store().events(None, 10).unwrap().is_empty());
    assert!(serve.hubspot.records("companies").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn jwt_signed_webhooks_are_verified_against_lagos_public_key() {
    let public = include_str!("../fixtures/lago-webhook-test-public.pem");
    let private = include_str!("../fixtures/lago-webhook-test-private.pem");
    let serve = ServeHarness::start(ServeOptions {
        auth: WebhookAuth::new(None)
            .with_jwt(public, "https://lago-api.example.com")
            .unwrap(),
        ..ServeHarness::hmac_options()
    })
    .await;
    let body =
        customer_event("customer.created", &customer("cus_jwt", Some("company"))).to_string();
    let sign = |data: &str| {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(private.as_bytes()).unwrap();
        let claims = serde_json::json!({"data": data, "iss": "https://lago-api.example.com"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
            &claims,
            &key,
        )
        .unwrap()
    };
    let post = |signature: String, body: String| {
        let url = format!("{}/webhooks/lago", serve.url);
        async move {
            reqwest::Client::new()
                .post(url)
                .header("X-Lago-Signature", signature)
                .header("X-Lago-Signature-Algorithm", "jwt")
                .header("X-Lago-Unique-Key", "jwt-1")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    let other = customer_event("customer.created", &customer("cus_other", None)).to_string();
    assert_eq!(
        post(sign(&body), other).await,
        401,
        "a token for another body"
    );
    assert_eq!(post(sign(&body), body.clone()).await, 200);
    serve.settled(Duration::from_secs(30)).await;
    assert_eq!(serve.hubspot.records("companies").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn unusable_payloads_are_kept_with_their_reason_and_acknowledged() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    for (n, (body, status)) in [
        ("{ not json", "rejected"),
        (
            r#"{"webhook_type":"customer.created","object_type":"customer"}"#,
            "rejected",
        ),
        // A type the sync deliberately ignores is a success with a reason, not an error.
        (
            r#"{"webhook_type":"plan.created","object_type":"plan","plan":{}}"#,
            "skipped",
        ),
    ]
    .iter()
    .enumerate()
    {
        let response = serve.post_signed(body, &format!("bad-{n}")).await;
        assert_eq!(
            response.status(),
            200,
            "acknowledged so Lago stops redelivering"
        );
        let answer = response.json::<Value>().await.unwrap();
        assert_eq!(answer["status"], *status, "{body}");
        assert!(answer["reason"].as_str().is_some_and(|r| !r.is_empty()));
    }
    // A payload that routes but the guest refuses (no customer lago_id) is rejected by the worker.
    let missing =
        r#"{"webhook_type":"customer.created","object_type":"customer","customer":{"name":"x"}}"#;
    serve.post_signed(missing, "bad-3").await;
    serve.settled(Duration::from_secs(30)).await;
    let skipped = serve
        .syncer
        .store()
        .events(Some(EventState::Skipped), 10)
        .unwrap();
    assert_eq!(skipped.len(), 1);
    assert!(
        skipped[0]
            .last_error
            .as_deref()
            .unwrap()
            .contains("plan.created is not synced")
    );
    let rejected = serve
        .syncer
        .store()
        .events(Some(EventState::Rejected), 10)
        .unwrap();
    assert_eq!(rejected.len(), 3);
    assert!(
        rejected
            .iter()
            .all(|e| e.last_error.as_deref().is_some_and(|r| !r.is_empty()))
    );
    // The process keeps serving.
    let ok = serve
        .post_signed(
            &customer_event("customer.created", &customer("cus_ok", None)).to_string(),
            "good",
        )
        .await;
    assert_eq!(ok.status(), 200);
    serve.settled(Duration::from_secs(30)).await;
    assert_eq!(serve.hubspot.records("companies").len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn hubspot_validation_errors_go_to_dead_letters_with_hubspots_message() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    // The emulator refuses this contact's required data like HubSpot would; retrying cannot help.
    let mut bad = customer("cus_bad_email", Some("individual"));
    bad["tax_identification_number"] = Value::String("X".repeat(70_000));
    serve
        .post_signed(
            &customer_event("customer.created", &bad).to_string(),
            "bad-email",
        )
        .await;
    serve.settled(Duration::from_secs(30)).await;
    let dead = serve
        .syncer
        .store()
        .events(Some(EventState::Dead), 10)
        .unwrap();
    assert_eq!(dead.len(), 1);
    let error = dead[0].last_error.clone().unwrap();
    assert!(
        error.contains("HTTP 400") && error.contains("correlation id"),
        "{error}"
    );
    assert_eq!(dead[0].attempts, 0, "no blind retry of a validation error");
    let log = serve
        .syncer
        .store()
        .sync_log("hubspot-test", "cus_bad_email")
        .unwrap();
    assert_eq!(log.len(), 1);
    assert!(!log[0].detail.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn health_and_metrics_are_served() {
    let serve = ServeHarness::start(ServeHarness::hmac_options()).await;
    serve
        .post_signed(
            &customer_event("customer.created", &customer("cus_m", None)).to_string(),
            "m1",
        )
        .await;
    serve.settled(Duration::from_secs(30)).await;
    let health = reqwest::get(format!("{}/healthz", serve.url))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("{}/metrics", serve.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "lago_hubspot_events_received_total 1",
        "lago_hubspot_events_synced_total 1",
        "lago_hubspot_queue_depth 0",
        "lago_hubspot_hubspot_requests_total{status=\"200\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    serve.stop().await.unwrap();
}

/// While the portal's budget runs low, a batching `serve` lets a burst gather in the queue and
/// sends it in one full group once the window is back, not a few events at a time.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_that_meets_a_spent_budget_waits_and_goes_out_in_one_group() {
    use lago_hubspot::ratelimit::Rate;
    use lago_hubspot::store::Store;
    use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};

    let rate = Rate {
        max: 10,
        interval: Duration::from_secs(2),
    };
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let serve = ServeHarness::start_with(
        hubspot,
        Store::open_in_memory().unwrap(),
        ServeOptions {
            workers: 4,
            ..ServeHarness::hmac_options()
        },
        ClientSetup {
            plugin: None,
            budget: Some(rate),
            retry: None,
            ..ClientSetup::default()
        },
    )
    .await;
    // Let the set-up's requests age out, then spend the whole window at once: the burst arrives
    // with nothing left, and half the window is back only an interval later.
    tokio::time::sleep(rate.interval).await;
    let budget = serve.syncer.client().budget().unwrap().clone();
    for _ in 0..rate.max {
        budget
            .acquire("/crm/v3/objects/contacts/batch/upsert")
            .await;
    }
    serve.hubspot.clear_request_log();
    let mut posts = tokio::task::JoinSet::new();
    for c in 0..40 {
        let (url, body) = (
            serve.url.clone(),
            customer_event(
                "customer.created",
                &customer(&format!("cus_held{c}"), Some("individual")),
            )
            .to_string(),
        );
        posts.spawn(async move {
            let client = reqwest::Client::new();
            post_webhook(&client, &url, &body, &format!("held-{c}"))
                .await
                .unwrap()
                .status()
        });
    }
    for status in posts.join_all().await {
        assert_eq!(status, 200);
    }
    serve.settled(Duration::from_secs(30)).await;
    let writes: Vec<(String, usize)> = serve
        .hubspot
        .request_log()
        .iter()
        .filter(|r| r.method != "GET")
        .map(|r| {
            let inputs = serde_json::from_str::<Value>(&r.body)
                .ok()
                .and_then(|b| b["inputs"].as_array().map(Vec::len))
                .unwrap_or(0);
            (r.path.clone(), inputs)
        })
        .collect();
    assert_eq!(
        writes,
        [("/crm/v3/objects/contacts/batch/upsert".to_owned(), 40)],
        "the 40 contacts in one request"
    );
    assert_eq!(serve.hubspot.records("contacts").len(), 40);
    serve.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_goes_out_as_batch_requests_with_the_same_result() {
    let mut writes = Vec::new();
    let mut states = Vec::new();
    for burst in [1, 50] {
        let serve = ServeHarness::start(ServeOptions {
            workers: 2,
            burst,
            ..ServeHarness::hmac_options()
        })
        .await;
        serve.hubspot.clear_request_log();
        // A slow HubSpot keeps both workers busy while the webhooks arrive: a backlog builds up.
        serve.hubspot.set_faults(Faults {
            latency_ms: Some((30, 30)),
            ..Default::default()
        });
        for c in 0..120 {
            let body = customer_event(
                "customer.created",
                &customer(&format!("cus_burst{c}"), Some("company")),
            );
            assert_eq!(
                serve
                    .post_signed(&body.to_string(), &format!("burst-{c}"))
                    .await
                    .status(),
                200
            );
        }
        serve.settled(Duration::from_secs(60)).await;
        assert_eq!(
            serve
                .syncer
                .store()
                .queue_stats()
                .unwrap()
                .count(EventState::Synced),
            120
        );
        writes.push(
            serve
                .hubspot
                .request_log()
                .iter()
                .filter(|r| r.method != "GET" && !r.path.ends_with("/search"))
                .count(),
        );
        let mut ids: Vec<String> = serve
            .hubspot
            .records("companies")
            .iter()
            .map(|r| r.properties["lago_customer_id"].clone())
            .collect();
        ids.sort();
        states.push(ids);
    }
    assert_eq!(states[0], states[1]);
    assert_eq!(states[0].len(), 120);
    assert_eq!(writes[0], 120, "one request per event without batching");
    assert!(
        writes[1] < writes[0],
        "a burst used {} requests for 120 events",
        writes[1]
    );
}
