//! Faults as a client sees them: real HTTP over loopback with reqwest.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use clap::Parser;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use super::{FaultArgs, Faults, InjectedFault, RateLimit};
use crate::hubspot::{Emulator, EmulatorConfig, RunningEmulator};

const TOKEN: &str = "test-token";
const UPSERT_CONTACTS: &str = "/crm/v3/objects/contacts/batch/upsert";

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    fn new(hubspot: &RunningEmulator) -> Self {
        Self {
            base: hubspot.url.clone(),
            http: reqwest::Client::new(),
        }
    }

    /// One call; `Err` when the client got no complete response (dropped connection).
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        token: Option<&str>,
    ) -> Result<Answer, reqwest::Error> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, Some(TOKEN))
            .await
            .expect("complete response")
    }

    async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(&body), Some(TOKEN))
            .await
            .expect("complete response")
    }
}

async fn start(faults: Faults) -> (RunningEmulator, Client) {
    let hubspot = Emulator::start(EmulatorConfig {
        faults,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let client = Client::new(&hubspot);
    (hubspot, client)
}

/// A contacts upsert by email of `emails`, each input traced by its position.
fn contacts_upsert(emails: &[String]) -> Value {
    let inputs: Vec<Value> = emails
        .iter()
        .enumerate()
        .map(|(position, email)| {
            json!({ "id": email, "idProperty": "email", "objectWriteTraceId": format!("t{position}"),
                    "properties": { "firstname": "Ada" } })
        })
        .collect();
    json!({ "inputs": inputs })
}

fn emails(count: usize) -> Vec<String> {
    (0..count).map(|n| format!("ada{n}@example.com")).collect()
}

fn stored_emails(hubspot: &RunningEmulator) -> BTreeSet<String> {
    hubspot
        .records("contacts")
        .into_iter()
        .map(|record| record.properties["email"].clone())
        .collect()
}

#[tokio::test]
async fn faults_are_off_by_default() {
    let (hubspot, client) = start(Faults::default()).await;
    for n in 0..5_u32 {
        let answer = client.get("/crm/v3/properties/contacts").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-hubspot-ratelimit-max"), "110");
        assert_eq!(
            answer.header("x-hubspot-ratelimit-interval-milliseconds"),
            "10000"
        );
        assert_eq!(
            answer.header("x-hubspot-ratelimit-remaining"),
            (109 - n).to_string()
        );
        assert!(answer.headers.get("x-hubspot-ratelimit-daily").is_none());
    }
    let upsert = client
        .post(UPSERT_CONTACTS, contacts_upsert(&emails(3)))
        .await;
    assert_eq!(upsert.status, 200, "{}", upsert.body);
    assert_eq!(stored_emails(&hubspot).len(), 3);
    assert!(
        hubspot
            .request_log()
            .iter()
            .all(|entry| entry.fault.is_none())
    );
    let faults = hubspot.faults();
    assert!(faults.seed.is_some(), "the chosen seed is reported");
    assert_eq!(
        faults,
        Faults {
            seed: faults.seed,
            ..Faults::default()
        }
    );
}

#[tokio::test]
async fn rolling_rate_limit_answers_hubspots_429_then_recovers() {
    let limit = RateLimit {
        max: 10,
        interval_ms: 400,
    };
    let (hubspot, client) = start(Faults {
        rate_limit: Some(limit),
        ..Faults::default()
    })
    .await;
    for n in 1..=limit.max {
        let answer = client.get("/crm/v3/properties/contacts").await;
        assert_eq!(answer.status, 200);
        assert_eq!(answer.header("x-hubspot-ratelimit-max"), "10");
        assert_eq!(
            answer.header("x-hubspot-ratelimit-remaining"),
            (limit.max - n).to_string()
        );
        assert_eq!(
            answer.header("x-hubspot-ratelimit-interval-milliseconds"),
            "400"
        );
    }
    let limited = client.get("/crm/v3/properties/contacts").await;
    assert_eq!(limited.status, 429);
    let correlation_id = limited.body["correlationId"].as_str().unwrap().to_owned();
    assert_eq!(limited.header("x-hubspot-correlation-id"), correlation_id);
    assert_eq!(limited.header("x-hubspot-ratelimit-max"), "10");
    assert_eq!(limited.header("x-hubspot-ratelimit-remaining"), "0");
    assert_eq!(
        limited.header("x-hubspot-ratelimit-interval-milliseconds"),
        "400"
    );
    assert_eq!(limited.body["status"], "error");
    assert_eq!(
        limited.body["message"],
        "You have reached your ten_secondly_rolling limit."
    );
    assert_eq!(limited.body["errorType"], "RATE_LIMIT");
    assert_eq!(limited.body["policyName"], "TEN_SECONDLY_ROLLING");
    assert!(limited.body["groupName"].is_string());

    // Authentication comes first: a bad token is a 401 even when the window is full.
    let anonymous = client
        .send(Method::GET, "/crm/v3/properties/contacts", None, None)
        .await
        .unwrap();
    assert_eq!(anonymous.status, 401);

    tokio::time::sleep(Duration::from_millis(limit.interval_ms)).await;
    let recovered = client.get("/crm/v3/properties/contacts").await;
    assert_eq!(recovered.status, 200);
    assert_eq!(recovered.header("x-hubspot-ratelimit-remaining"), "9");

    let faults: Vec<_> = hubspot
        .request_log()
        .iter()
        .map(|entry| entry.fault)
        .collect();
    assert_eq!(faults[10], Some(InjectedFault::RateLimited));
    assert_eq!(faults.iter().flatten().count(), 1);
}

#[tokio::test]
async fn daily_cap_answers_429_daily() {
    let (hubspot, client) = start(Faults {
        daily_max: Some(2),
        ..Faults::default()
    })
    .await;
    let first = client.get("/crm/v3/properties/contacts").await;
    assert_eq!(first.header("x-hubspot-ratelimit-daily"), "2");
    assert_eq!(first.header("x-hubspot-ratelimit-daily-remaining"), "1");
    assert_eq!(client.get("/crm/v3/properties/contacts").await.status, 200);
    let capped = client.get("/crm/v3/properties/contacts").await;
    assert_eq!(capped.status, 429);
    assert_eq!(capped.body["policyName"], "DAILY");
    assert_eq!(capped.body["message"], "You have reached your daily limit.");
    assert_eq!(capped.body["errorType"], "RATE_LIMIT");
    assert_eq!(capped.header("x-hubspot-ratelimit-daily-remaining"), "0");
    assert_eq!(
        hubspot.request_log()[2].fault,
        Some(InjectedFault::DailyLimited)
    );
    // New faults start a new day.
    hubspot.set_faults(hubspot.faults());
    assert_eq!(client.get("/crm/v3/properties/contacts").await.status, 200);
}

#[tokio::test]
async fn injected_errors_use_the_chosen_statuses_and_change_nothing() {
    let (hubspot, client) = start(Faults {
        error_rate: 1.0,
        seed: Some(1),
        ..Faults::default()
    })
    .await;
    let mut seen = BTreeSet::new();
    for _ in 0..30 {
        let answer = client
            .post(UPSERT_CONTACTS, contacts_upsert(&emails(2)))
            .await;
        seen.insert(answer.status);
        assert_eq!(answer.body["status"], "error", "{}", answer.body);
        assert!(answer.body["category"].is_string());
        assert!(answer.body["correlationId"].is_string());
        assert!(answer.headers.contains_key("x-hubspot-ratelimit-remaining"));
        match answer.status {
            477 => assert_eq!(answer.header("retry-after"), "1"),
            423 => assert_eq!(answer.body["category"], "LOCKED"),
            _ => assert_eq!(answer.body["category"], "INTERNAL_ERROR"),
        }
    }
    assert_eq!(seen, BTreeSet::from([423, 477, 500, 502, 503, 504]));
    assert!(hubspot.records("contacts").is_empty());
    assert!(
        hubspot
            .request_log()
            .iter()
            .all(|entry| entry.fault == Some(InjectedFault::Error))
    );

    // A chosen mix, reads included.
    hubspot.set_faults(Faults {
        error_rate: 1.0,
        error_statuses: vec![503],
        ..Faults::default()
    });
    assert_eq!(client.get("/crm/v3/properties/contacts").await.status, 503);
    hubspot.set_faults(Faults::default());
    let upsert = client
        .post(UPSERT_CONTACTS, contacts_upsert(&emails(2)))
        .await;
    assert_eq!(upsert.status, 200);
}

#[tokio::test]
async fn writes_only_spares_reads() {
    let (_hubspot, client) = start(Faults {
        error_rate: 1.0,
        writes_only: true,
        ..Faults::default()
    })
    .await;
    assert_eq!(client.get("/crm/v3/objects/contacts").await.status, 200);
    let read = client
        .post(
            "/crm/v3/objects/contacts/batch/read",
            json!({ "inputs": [] }),
        )
        .await;
    assert_eq!(read.status, 200, "{}", read.body);
    let write = client
        .post(UPSERT_CONTACTS, contacts_upsert(&emails(1)))
        .await;
    assert!(write.status >= 423, "{}", write.status);
}

#[tokio::test]
async fn dropped_connection_fails_the_client_after_the_write_is_stored() {
    let (hubspot, client) = start(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let body = contacts_upsert(&emails(1));
    let outcome = client
        .send(Method::POST, UPSERT_CONTACTS, Some(&body), Some(TOKEN))
        .await;
    assert!(outcome.is_err(), "the client must not see a clean response");
    assert_eq!(
        stored_emails(&hubspot),
        BTreeSet::from(["ada0@example.com".to_owned()])
    );
    let id = hubspot.records("contacts")[0].id.clone();

    // Bodiless answers (204) are cut too.
    let archive = client
        .send(
            Method::DELETE,
            &format!("/crm/v3/objects/contacts/{id}"),
            None,
            Some(TOKEN),
        )
        .await;
    assert!(archive.is_err());
    assert!(hubspot.records("contacts").is_empty());

    let log = hubspot.request_log();
    assert_eq!(log.len(), 2, "the client did not resend behind our back");
    assert_eq!(log[0].status, 0);
    assert_eq!(log[0].fault, Some(InjectedFault::Dropped { status: 200 }));
    assert_eq!(log[1].fault, Some(InjectedFault::Dropped { status: 204 }));

    hubspot.set_faults(Faults::default());
    assert_eq!(client.get("/crm/v3/objects/contacts").await.status, 200);
}

#[tokio::test]
async fn partial_batch_answers_207_and_stores_only_the_successes() {
    let (hubspot, client) = start(Faults {
        partial_batch_rate: 0.5,
        seed: Some(3),
        ..Faults::default()
    })
    .await;
    let sent = emails(10);
    let answer = client.post(UPSERT_CONTACTS, contacts_upsert(&sent)).await;
    assert_eq!(answer.status, 207, "{}", answer.body);
    let errors = answer.body["errors"].as_array().unwrap();
    let results = answer.body["results"].as_array().unwrap();
    assert!(
        !errors.is_empty() && !results.is_empty(),
        "seed gives a mix"
    );
    assert_eq!(answer.body["numErrors"], errors.len());
    assert_eq!(errors.len() + results.len(), sent.len());

    let mut failed = BTreeSet::new();
    for error in errors {
        assert_eq!(error["status"], "error");
        assert_eq!(error["category"], "INTERNAL_ERROR");
        let trace = error["context"]["objectWriteTraceId"][0].as_str().unwrap();
        let position: usize = trace[1..].parse().unwrap();
        assert_eq!(error["context"]["ids"], json!([sent[position]]));
        failed.insert(sent[position].clone());
    }
    let succeeded: BTreeSet<String> = results
        .iter()
        .map(|record| record["properties"]["email"].as_str().unwrap().to_owned())
        .collect();
    assert!(succeeded.is_disjoint(&failed));
    assert_eq!(stored_emails(&hubspot), succeeded);
    assert_eq!(
        hubspot.request_log()[0].fault,
        Some(InjectedFault::PartialBatch {
            failed: failed.len()
        })
    );
}

#[tokio::test]
async fn batch_where_every_input_fails_is_still_207() {
    let (hubspot, client) = start(Faults {
        partial_batch_rate: 1.0,
        ..Faults::default()
    })
    .await;
    let answer = client
        .post(UPSERT_CONTACTS, contacts_upsert(&emails(3)))
        .await;
    assert_eq!(answer.status, 207, "{}", answer.body);
    assert_eq!(answer.body["results"], json!([]));
    assert_eq!(answer.body["numErrors"], 3);
    assert!(hubspot.records("contacts").is_empty());

    // Association batches fail per input too, naming both ends.
    let contact = hubspot
        .seed_record("contacts", "101", json!({ "email": "x@example.com" }))
        .unwrap();
    let company = hubspot
        .seed_record("companies", "2000001", json!({ "name": "Acme" }))
        .unwrap();
    let associate = client
        .post(
            "/crm/v4/associations/contacts/companies/batch/associate/default",
            json!({ "inputs": [{ "from": { "id": contact.id }, "to": { "id": company.id } }] }),
        )
        .await;
    assert_eq!(associate.status, 207, "{}", associate.body);
    assert_eq!(associate.body["results"], json!([]));
    let context = &associate.body["errors"][0]["context"];
    assert_eq!(context["fromObjectId"], json!([contact.id]));
    assert_eq!(context["toObjectId"], json!([company.id]));
    assert!(
        hubspot
            .associations("contacts", &contact.id, "companies")
            .is_empty()
    );

    // A batch invalid as a whole is still refused as a whole.
    let duplicated = client
        .post(
            UPSERT_CONTACTS,
            contacts_upsert(&["a@example.com".to_owned(), "a@example.com".to_owned()]),
        )
        .await;
    assert_eq!(duplicated.status, 400, "{}", duplicated.body);
}

/// Statuses of `count` GETs, with drops seen as 0.
async fn statuses(client: &Client, count: usize) -> Vec<u16> {
    let mut statuses = Vec::new();
    for _ in 0..count {
        let outcome = client
            .send(Method::GET, "/crm/v3/objects/contacts", None, Some(TOKEN))
            .await;
        statuses.push(outcome.map_or(0, |answer| answer.status));
    }
    statuses
}

#[tokio::test]
async fn same_seed_replays_the_same_faults() {
    let faults = Faults {
        error_rate: 0.3,
        drop_rate: 0.2,
        seed: Some(42),
        ..Faults::default()
    };
    let (first, first_client) = start(faults.clone()).await;
    let (_second, second_client) = start(faults).await;
    let sequence = statuses(&first_client, 20).await;
    assert_eq!(statuses(&second_client, 20).await, sequence);
    assert!(sequence.contains(&200) && sequence.iter().any(|&status| status != 200));

    // Without a seed, the one chosen is reported and replays the run.
    first.set_faults(Faults {
        seed: None,
        ..first.faults()
    });
    let unseeded = statuses(&first_client, 20).await;
    first.set_faults(first.faults());
    assert_eq!(statuses(&first_client, 20).await, unseeded);
}

#[tokio::test]
async fn latency_delays_answers() {
    let (_hubspot, client) = start(Faults {
        latency_ms: Some((40, 50)),
        ..Faults::default()
    })
    .await;
    let started = Instant::now();
    assert_eq!(client.get("/crm/v3/objects/contacts").await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(40));
}

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    faults: FaultArgs,
}

#[test]
fn command_line_and_json_faults() {
    let cli = Cli::try_parse_from([
        "emulator",
        "--rate-limit",
        "20/200",
        "--error-rate",
        "0.1",
        "--error-statuses",
        "500,423",
        "--latency-ms",
        "5..10",
        "--drop-rate",
        "0.05",
        "--partial-batch-rate",
        "0.2",
        "--seed",
        "7",
    ])
    .unwrap();
    let faults = cli.faults.to_faults().unwrap();
    assert_eq!(
        faults,
        Faults {
            rate_limit: Some(RateLimit {
                max: 20,
                interval_ms: 200
            }),
            error_rate: 0.1,
            error_statuses: vec![500, 423],
            latency_ms: Some((5, 10)),
            drop_rate: 0.05,
            partial_batch_rate: 0.2,
            seed: Some(7),
            ..Faults::default()
        }
    );
    for bad in [
        ["emulator", "--rate-limit", "20"],
        ["emulator", "--error-rate", "1.5"],
        ["emulator", "--latency-ms", "9..3"],
    ] {
        assert!(Cli::try_parse_from(bad).is_err(), "{bad:?}");
    }

    let parsed: Faults =
        serde_json::from_str(r#"{"rate_limit": {"max": 5}, "drop_rate": 0.5}"#).unwrap();
    assert_eq!(
        parsed.rate_limit,
        Some(RateLimit {
            max: 5,
            interval_ms: 10_000
        })
    );
    assert_eq!(parsed.drop_rate, 0.5);
    assert_eq!(parsed.error_statuses, Faults::default().error_statuses);
    assert!(serde_json::from_str::<Faults>(r#"{"eror_rate": 1}"#).is_err());
}
