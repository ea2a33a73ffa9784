//! Connections end to end, on loopback: the `connect` OAuth flow as a person runs it, tokens
//! that expire mid-sync, a revoked grant that waits for a reconnect, and two connections to
//! two portals with events routed by connection code.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lago_hubspot::auth::OAuthApp;
use lago_hubspot::config::{
    ConnectionSettings, DefaultObject, INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA,
};
use lago_hubspot::connections::authorize::{OAuthFlow, SCOPES};
use lago_hubspot::connections::fleet::{Fleet, FleetSetup};
use lago_hubspot::connections::{Access, SecretKey, Vault, connect_oauth, connect_token};
use lago_hubspot::hubspot_http::Secret;
use lago_hubspot::links::LinkedObject;
use lago_hubspot::queue::EventState;
use lago_hubspot::ratelimit::Rate;
use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, OAuthConfig, RunningEmulator};
use serde_json::{Value, json};
use std::io::BufRead as _;

use crate::support::*;

const CLIENT_ID: &str = "lago-app";
const CLIENT_SECRET: &str = "lago-app-secret";
/// 32 bytes, Base64.
const SECRET_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

async fn portal(portal_id: u64, lifetime: Duration) -> RunningEmulator {
    Emulator::start(EmulatorConfig {
        portal_id,
        // Only what OAuth hands out is accepted, unless a test gives a private-app token.
        tokens: vec!["pat-na1-static".into()],
        oauth: OAuthConfig {
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            access_token_lifetime: lifetime,
            ..OAuthConfig::default()
        },
        ..EmulatorConfig::default()
    })
    .await
    .expect("emulator starts")
}

fn app(hubspot: &RunningEmulator) -> OAuthApp {
    OAuthApp {
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        token_url: format!("{}/oauth/v1/token", hubspot.url),
    }
}

fn connection(code: &str) -> ConnectionSettings {
    ConnectionSettings {
        code: code.into(),
        name: format!("HubSpot {code}"),
        lago_app_url: "https://lago.example.com".into(),
        organization_slug: "acme".into(),
        ..ConnectionSettings::default()
    }
}

fn vault() -> Vault {
    Vault::new(
        Arc::new(Mutex::new(Store::open_in_memory().unwrap())),
        Some(SecretKey::parse(SECRET_KEY).unwrap()),
    )
}

/// The OAuth flow in-process, with a test client in the browser's place.
async fn authorize(vault: &Vault, hubspot: &RunningEmulator, code: &str) -> Access {
    let listen: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let flow = OAuthFlow::start(
        &format!("{}/oauth/authorize", hubspot.url),
        CLIENT_ID,
        listen,
        "127.0.0.1",
    )
    .await
    .unwrap();
    let url = flow.authorize_url.clone();
    let browser = tokio::spawn(async move { reqwest::get(url).await.unwrap().status() });
    let access = connect_oauth(
        vault,
        &connection(code),
        &hubspot.url,
        &app(hubspot),
        flow,
        Duration::from_secs(10),
    )
    .await
    .expect("connected");
    assert_eq!(browser.await.unwrap(), 200);
    access
}

/// `serve` over the vault's connections, on loopback.
struct Service {
    url: String,
    fleet: Arc<Fleet>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Service {
    async fn start(vault: &Vault, default: Option<&str>) -> Service {
        let metrics = Arc::new(lago_hubspot::metrics::Metrics::new());
        let secret = Secret::new(CLIENT_SECRET);
        let setup = FleetSetup {
            plugin: plugin(),
            vault,
            client_secret: Some(&secret),
            rate: Rate::OAUTH_APP,
            metrics: metrics.clone(),
        };
        let fleet = Arc::new(
            Fleet::new(
                vault.shared_store(),
                setup.syncers().unwrap(),
                default
                    .map(str::to_owned)
                    .or(setup.stored_default().unwrap()),
            )
            .unwrap(),
        );
        for syncer in fleet.syncers() {
            syncer.deploy_if_needed().await.expect("deploy");
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(lago_hubspot::server::serve_connections(
            fleet.clone(),
            metrics,
            listener,
            ServeHarness::hmac_options(),
            async {
                let _ = stopped.await;
            },
        ));
        Service {
            url,
            fleet,
            stop: Some(stop),
            task,
        }
    }

    async fn post(&self, event: &Value, key: &str) {
        let body = event.to_string();
        let response = reqwest::Client::new()
            .post(format!("{}/webhooks/lago", self.url))
            .header(
                "X-Lago-Signature",
                lago_hubspot::signature::hmac_signature(HMAC_KEY, body.as_bytes()),
            )
            .header("X-Lago-Signature-Algorithm", "hmac")
            .header("X-Lago-Unique-Key", key)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["status"], "accepted", "{answer}");
    }

    fn count(&self, state: EventState) -> u64 {
        self.fleet.store().queue_stats().unwrap().count(state)
    }

    async fn settled(&self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count(EventState::Pending) + self.count(EventState::Running) > 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the queue did not settle: {:?}",
                self.fleet.store().queue_stats().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        self.task.await.unwrap().expect("graceful stop");
    }
}

fn linked(lago_id: &str, code: &str) -> Value {
    let mut c = customer(lago_id, Some("company"));
    c["integration_customers"] = json!([{
        "lago_id": format!("ic-{lago_id}"), "type": "hubspot", "integration_code": code,
        "external_customer_id": null, "targeted_object": null
    }]);
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_runs_the_oauth_flow_records_the_portal_and_deploys() {
    let hubspot = portal(4_242_001, Duration::from_secs(1800)).await;
    let dir = std::env::temp_dir().join(format!("lago-hubspot-connect-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let state = dir.join("state.db");
    let bin = env!("CARGO_BIN_EXE_lago-hubspot");
    let mut connect = std::process::Command::new(bin)
        .args(["connect", "--code", "hs-eu", "--name", "HubSpot EU"])
        .args([
            "--default-object",
            "contacts",
            "--organization-slug",
            "acme",
        ])
        .args(["--client-id", CLIENT_ID, "--no-browser"])
        .args([
            "--authorize-url",
            &format!("{}/oauth/authorize", hubspot.url),
        ])
        .args(["--token-url", &format!("{}/oauth/v1/token", hubspot.url)])
        .args(["--hubspot-url", &hubspot.url])
        .args(["--redirect-port", "0", "--redirect-host", "127.0.0.1"])
        .args(["--state", state.to_str().unwrap(), "--timeout-secs", "60"])
        .env("HUBSPOT_CLIENT_SECRET", CLIENT_SECRET)
        .env("LAGO_HUBSPOT_SECRET_KEY", SECRET_KEY)
        .env("LAGO_HUBSPOT_COMPONENT", component_path())
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    // Its output, line by line, as a person reads it.
    let (lines, mut stdout) = tokio::sync::mpsc::unbounded_channel::<String>();
    let output = connect.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines.send(line);
        }
    });
    let authorize_url = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), stdout.recv())
            .await
            .expect("connect prints the authorize URL")
            .expect("connect is still running");
        if line.starts_with("http") {
            break line;
        }
    };
    // Exactly the brief's scopes, space-separated and %20-encoded, and a random state.
    assert!(
        authorize_url.contains(&format!("&scope={}&", SCOPES.join("%20"))),
        "{authorize_url}"
    );
    let url = reqwest::Url::parse(&authorize_url).unwrap();
    let param = |name: &str| {
        url.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };
    let (redirect_uri, state_param) = (param("redirect_uri"), param("state"));
    assert_eq!(state_param.len(), 64);

    // A redirect with another state is refused, and the flow goes on waiting.
    let forged = reqwest::get(format!(
        "{redirect_uri}?code=forged&state=not-{state_param}"
    ))
    .await
    .unwrap();
    assert_eq!(forged.status(), 400);
    assert!(
        forged
            .text()
            .await
            .unwrap()
            .contains("state does not match")
    );

    // The "browser": HubSpot approves and sends it back with a code.
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let approved = browser.get(&authorize_url).send().await.unwrap();
    assert_eq!(approved.status(), 302);
    let back = approved.headers()["location"].to_str().unwrap().to_owned();
    assert!(back.starts_with(&redirect_uri), "{back}");
    let landed = browser.get(&back).send().await.unwrap();
    assert_eq!(landed.status(), 200);
    assert!(landed.text().await.unwrap().contains("portal 4242001"));

    let finished = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || connect.wait()),
    )
    .await
    .expect("connect finishes")
    .unwrap()
    .unwrap();
    let mut rest = String::new();
    while let Some(line) = stdout.recv().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    assert!(finished.success(), "{rest}");
    assert!(
        rest.contains("connected hs-eu (HubSpot EU) to HubSpot portal 4242001"),
        "{rest}"
    );
    assert!(rest.contains("deployed:"), "{rest}");
    assert_eq!(hubspot.schemas().len(), 2, "deployed in the background");

    // The code was single-use.
    let code = reqwest::Url::parse(&back)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let replay = reqwest::Client::new()
        .post(format!("{}/oauth/v1/token", hubspot.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &redirect_uri),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), 400);
    let body: Value = replay.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["status"], "BAD_AUTH_CODE");

    // Secrets at rest: owner-only file, tokens sealed.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&state).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let refresh = hubspot.emulator().live_refresh_tokens();
    assert_eq!(refresh.len(), 1);
    for file in [state.clone(), dir.join("state.db-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&refresh[0]),
            "{} holds the refresh token in clear",
            file.display()
        );
    }

    // Listing and showing never print a token.
    let show = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(["connections", "--state", state.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let list = show(&["list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        list.contains("hs-eu") && list.contains("4242001") && list.contains("oauth"),
        "{list}"
    );
    let shown = show(&["show", "hs-eu"]);
    let shown = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(shown.contains("default object:     contacts"), "{shown}");
    assert!(shown.contains("LagoInvoices:       2-"), "{shown}");
    assert!(!shown.contains(&refresh[0]) && !list.contains(&refresh[0]));

    // A private-app token connects too; its portal is read from HubSpot.
    let token = std::process::Command::new(bin)
        .args(["connect", "--code", "hs-pat", "--no-deploy"])
        .args([
            "--hubspot-url",
            &hubspot.url,
            "--state",
            state.to_str().unwrap(),
        ])
        .env("HUBSPOT_ACCESS_TOKEN", "pat-na1-static")
        .env("LAGO_HUBSPOT_SECRET_KEY", SECRET_KEY)
        .output()
        .unwrap();
    assert!(
        token.status.success(),
        "{}",
        String::from_utf8_lossy(&token.stderr)
    );
    let list = show(&["list"]);
    let list = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(list.contains("hs-pat") && list.contains("token"), "{list}");
    assert!(!list.contains("pat-na1-static"));
    let removed = show(&["remove", "hs-pat"]);
    assert!(removed.status.success());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_emulator_rotates_refresh_tokens_and_refuses_replays_and_expired_tokens() {
    let hubspot = portal(7, Duration::from_secs(1)).await;
    let http = reqwest::Client::new();
    let authorize = |client_id: &str, redirect: &str| {
        format!(
            "{}/oauth/authorize?client_id={client_id}&redirect_uri={redirect}&scope=oauth%20crm.objects.contacts.write&state=s",
            hubspot.url
        )
    };
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let unknown = no_redirects
        .get(authorize("someone-else", "http://127.0.0.1:9/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 400);
    let remote = no_redirects
        .get(authorize(CLIENT_ID, "http://evil.example.com/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        remote.status(),
        400,
        "plain-http redirects only to loopback"
    );
    let approved = no_redirects
        .get(authorize(CLIENT_ID, "http://127.0.0.1:9/cb"))
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status(), 302);
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    let code = location
        .split("code=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap();
    let token = |form: Vec<(&'static str, String)>| {
        let http = http.clone();
        let url = format!("{}/oauth/v1/token", hubspot.url);
        async move {
            let response = http.post(url).form(&form).send().await.unwrap();
            (
                response.status().as_u16(),
                response.json::<Value>().await.unwrap(),
            )
        }
    };
    let exchange = vec![
        ("grant_type", "authorization_code".to_owned()),
        ("code", code.to_owned()),
        ("redirect_uri", "http://127.0.0.1:9/cb".to_owned()),
        ("client_id", CLIENT_ID.to_owned()),
        ("client_secret", CLIENT_SECRET.to_owned()),
    ];
    let (status, first) = token(exchange.clone()).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["hub_id"], 7);
    assert_eq!(first["expires_in"], 1);
    assert_eq!(first["token_type"], "bearer");
    let (status, replay) = token(exchange).await;
    assert_eq!(
        (status, replay["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let refresh = |refresh_token: &str| {
        vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh_token.to_owned()),
            ("client_id", CLIENT_ID.to_owned()),
            ("client_secret", CLIENT_SECRET.to_owned()),
        ]
    };
    let old = first["refresh_token"].as_str().unwrap();
    let (status, second) = token(refresh(old)).await;
    assert_eq!(status, 200);
    assert_ne!(second["refresh_token"], first["refresh_token"], "rotated");
    let (status, spent) = token(refresh(old)).await;
    assert_eq!(status, 400);
    assert_eq!(spent["status"], "BAD_REFRESH_TOKEN");
    assert_eq!(spent["error"], "invalid_grant");

    // An access token past its lifetime: HubSpot's 401.
    let access = second["access_token"].as_str().unwrap().to_owned();
    let call = || {
        http.get(format!("{}/crm/v3/objects/contacts", hubspot.url))
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(call().await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let expired = call().await.unwrap();
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["category"], "EXPIRED_AUTHENTICATION");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("The OAuth token used to make this call expired ")
    );

    // Revocation.
    let live = second["refresh_token"].as_str().unwrap();
    let revoked = http
        .delete(format!("{}/oauth/v1/refresh-tokens/{live}", hubspot.url))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let (status, _) = token(refresh(live)).await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_that_expire_again_and_again_mid_sync_fail_no_event() {
    let hubspot = portal(501, Duration::from_secs(1)).await;
    let vault = vault();
    authorize(&vault, &hubspot, "hs-oauth").await;
    let service = Service::start(&vault, None).await;
    let waves = 6;
    for wave in 0..waves {
        for n in 0..4 {
            let id = format!("cus_{wave}_{n}");
            let event = if n % 2 == 0 {
                customer_event("customer.created", &customer(&id, Some("company")))
            } else {
                let c = customer(&id, Some("individual"));
                invoice_event(
                    "invoice.created",
                    &invoice(&format!("inv_{id}"), &c, "finalized", "pending"),
                )
            };
            service.post(&event, &format!("k-{wave}-{n}")).await;
        }
        if wave == 3 {
            // Cut the current token short: the next call is answered 401 EXPIRED_AUTHENTICATION.
            hubspot.emulator().expire_access_tokens();
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    service.settled(Duration::from_secs(60)).await;
    let events = service.fleet.store().events(None, 100).unwrap();
    assert_eq!(events.len(), waves * 4);
    for event in &events {
        assert_eq!(event.state, EventState::Synced, "{event:?}");
        assert_eq!(event.attempts, 0, "no event failed an attempt: {event:?}");
    }
    let stats = hubspot.emulator().oauth_stats();
    assert!(
        stats.refreshes >= 3,
        "tokens were refreshed several times: {stats:?}"
    );
    assert_eq!(stats.refused, 0);
    // The newest (rotated) refresh token is the one persisted.
    let live = hubspot.emulator().live_refresh_tokens();
    assert_eq!(live.len(), 1);
    assert_eq!(hubspot.records("companies").len(), waves * 2);
    assert_eq!(hubspot.records(INVOICES_SCHEMA).len(), waves * 2);
    service.stop().await;
    // A new service starts from the persisted refresh token.
    let again = Service::start(&vault, None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    again
        .post(
            &customer_event("customer.created", &customer("cus_after", None)),
            "after",
        )
        .await;
    again.settled(Duration::from_secs(30)).await;
    assert_eq!(again.count(EventState::Synced), (waves * 4 + 1) as u64);
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_grant_makes_events_wait_until_the_connection_is_reconnected() {
    let hubspot = portal(502, Duration::from_secs(1)).await;
    let vault = vault();
    authorize(&vault, &hubspot, "hs-oauth").await;
    let service = Service::start(&vault, None).await;
    service
        .post(
            &customer_event("customer.created", &customer("cus_before", Some("company"))),
            "k0",
        )
        .await;
    service.settled(Duration::from_secs(30)).await;

    // The user removes the app's access in HubSpot; the access token runs out.
    hubspot.emulator().revoke_refresh_tokens();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let waiting = customer("cus_waiting", Some("company"));
    service
        .post(&customer_event("customer.created", &waiting), "k1")
        .await;
    service
        .post(
            &subscription_event(
                "subscription.started",
                &subscription("sub_w", &waiting, "active"),
            ),
            "k2",
        )
        .await;
    service
        .post(
            &customer_event(
                "customer.created",
                &customer("cus_other", Some("individual")),
            ),
            "k3",
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let access = vault.store().access("hs-oauth").unwrap().unwrap();
    assert!(access.reconnect_needed.is_some(), "{access:?}");
    assert!(service.fleet.needs_reconnect("hs-oauth"));
    let events = service.fleet.store().events(None, 10).unwrap();
    let waiting_events: Vec<_> = events
        .iter()
        .filter(|e| e.state == EventState::Pending)
        .collect();
    assert_eq!(waiting_events.len(), 3, "{events:?}");
    assert!(
        waiting_events.iter().all(|e| e.attempts == 0),
        "no attempt used up: {events:?}"
    );
    assert_eq!(service.count(EventState::Dead), 0);
    assert_eq!(hubspot.records("companies").len(), 1);

    // Reconnect (a new authorization for the same code): the waiting events go through.
    let reconnected = authorize(&vault, &hubspot, "hs-oauth").await;
    assert!(reconnected.reconnect_needed.is_none());
    assert_eq!(reconnected.generation, access.generation + 1);
    service.settled(Duration::from_secs(30)).await;
    assert_eq!(service.count(EventState::Synced), 4);
    assert_eq!(hubspot.records("companies").len(), 2);
    assert_eq!(hubspot.records("contacts").len(), 1);
    assert_eq!(hubspot.records(SUBSCRIPTIONS_SCHEMA).len(), 1);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_connections_to_two_portals_get_their_own_customers_only() {
    let portal_a = portal(1_111, Duration::from_secs(1800)).await;
    let portal_b = portal(2_222, Duration::from_secs(1800)).await;
    let vault = vault();
    // One OAuth connection, one private-app token; either way the portal id is recorded.
    let a = authorize(&vault, &portal_a, "hs-a").await;
    let b = connect_token(
        &vault,
        &ConnectionSettings {
            default_targeted_object: DefaultObject::Contacts,
            ..connection("hs-b")
        },
        &portal_b.url,
        Secret::new("pat-na1-static"),
    )
    .await
    .unwrap();
    assert_eq!((a.portal_id, b.portal_id), (Some(1_111), Some(2_222)));
    assert!(
        a.is_default && !b.is_default,
        "the first connection is the default"
    );

    let service = Service::start(&vault, None).await;
    let alpha = linked("cus_alpha", "hs-a");
    let beta = linked("cus_beta", "hs-b");
    let gamma = customer("cus_gamma", Some("company"));
    let events = [
        customer_event("customer.created", &alpha),
        customer_event("customer.created", &beta),
        customer_event("customer.created", &gamma),
        // Subscription and invoice payloads embed the customer without its links: they follow
        // the customer's earlier events.
        subscription_event(
            "subscription.started",
            &subscription("sub_beta", &customer("cus_beta", Some("company")), "active"),
        ),
        invoice_event(
            "invoice.created",
            &invoice(
                "inv_alpha",
                &customer("cus_alpha", Some("company")),
                "finalized",
                "pending",
            ),
        ),
    ];
    for (n, event) in events.iter().enumerate() {
        service.post(event, &format!("two-{n}")).await;
    }
    service.settled(Duration::from_secs(60)).await;
    assert_eq!(service.count(EventState::Synced), 5);

    let ids = |hubspot: &RunningEmulator, object: &str, property: &str| -> Vec<String> {
        let mut ids: Vec<String> = hubspot
            .records(object)
            .into_iter()
            .filter_map(|r| r.properties.get(property).cloned())
            .collect();
        ids.sort();
        ids
    };
    assert_eq!(
        ids(&portal_a, "companies", "lago_customer_id"),
        ["cus_alpha", "cus_gamma"]
    );
    assert_eq!(
        ids(&portal_b, "companies", "lago_customer_id"),
        ["cus_beta"]
    );
    assert!(portal_a.records(SUBSCRIPTIONS_SCHEMA).is_empty());
    assert_eq!(
        ids(&portal_b, SUBSCRIPTIONS_SCHEMA, "lago_subscription_id"),
        ["sub_beta"]
    );
    assert_eq!(
        ids(&portal_a, INVOICES_SCHEMA, "lago_invoice_id"),
        ["inv_alpha"]
    );
    assert!(portal_b.records(INVOICES_SCHEMA).is_empty());
    {
        let store = service.fleet.store();
        let routed: Vec<(String, String)> = store
            .events(None, 10)
            .unwrap()
            .into_iter()
            .map(|e| (e.lago_id, e.connection))
            .collect();
        assert!(
            routed.contains(&("sub_beta".into(), "hs-b".into())),
            "{routed:?}"
        );
        assert!(
            routed.contains(&("cus_gamma".into(), "hs-a".into())),
            "{routed:?}"
        );
        assert!(
            store
                .known_ids("hs-b", &["cus_alpha".into()])
                .unwrap()
                .is_empty()
        );
        assert!(
            store
                .known_ids("hs-a", &["cus_beta".into()])
                .unwrap()
                .is_empty()
        );
    }

    // A customer linked by hand on hs-b (`lago-hubspot link --connection hs-b`) whose payload
    // names no connection goes to hs-b, not to the default, and updates the linked company.
    portal_b
        .seed_record(
            "companies",
            "9000001",
            json!({"name": "Delta (from sales)"}),
        )
        .unwrap();
    service
        .fleet
        .store()
        .put_link("hs-b", "ext-cus_delta", "9000001", LinkedObject::Companies)
        .unwrap();
    service
        .post(
            &customer_event("customer.updated", &customer("cus_delta", Some("company"))),
            "two-delta",
        )
        .await;
    service.settled(Duration::from_secs(30)).await;
    assert_eq!(service.count(EventState::Synced), 6);
    assert_eq!(
        portal_b.record("companies", "9000001").unwrap().properties["lago_customer_id"],
        "cus_delta"
    );
    assert_eq!(
        ids(&portal_a, "companies", "lago_customer_id"),
        ["cus_alpha", "cus_gamma"]
    );

    // With several connections, a link naming a code no connection has waits for it.
    let mut cloud = customer("cus_cloud", Some("company"));
    cloud["integration_customers"] = json!([{"type": "hubspot",
        "integration_code": "hs-lago-cloud", "external_customer_id": "9000001"}]);
    service
        .post(&customer_event("customer.created", &cloud), "two-cloud")
        .await;
    let pending = service
        .fleet
        .store()
        .events(Some(EventState::Pending), 10)
        .unwrap();
    assert_eq!(pending.len(), 1, "{pending:?}");
    assert_eq!(pending[0].connection, "hs-lago-cloud");
    assert_eq!(service.count(EventState::Synced), 6);
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn many_requests_needing_a_refresh_share_one() {
    let hubspot = portal(503, Duration::from_secs(1)).await;
    let vault = vault();
    authorize(&vault, &hubspot, "hs-oauth").await;
    let secret = Secret::new(CLIENT_SECRET);
    let tokens = vault.token_source("hs-oauth", Some(&secret)).unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let tokens = tokens.clone();
        calls.spawn(async move { tokens.token().await.unwrap().expose().to_owned() });
    }
    let issued: std::collections::BTreeSet<String> = calls.join_all().await.into_iter().collect();
    assert_eq!(issued.len(), 1, "every caller got the one refreshed token");
    let stats = hubspot.emulator().oauth_stats();
    assert_eq!((stats.refreshes, stats.refused), (1, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_expired_authentication_refreshes_once_and_sends_again() {
    let hubspot = portal(504, Duration::from_secs(1800)).await;
    let vault = vault();
    authorize(&vault, &hubspot, "hs-oauth").await;
    let secret = Secret::new(CLIENT_SECRET);
    let tokens = vault.token_source("hs-oauth", Some(&secret)).unwrap();
    let client =
        lago_hubspot::hubspot_http::HubspotClient::with_tokens(&hubspot.url, tokens).unwrap();
    let get = || client.send(http::Method::GET, "/crm/v3/objects/companies", None);
    assert_eq!(get().await.unwrap().status, 200);
    // HubSpot ends the token early (our clock says it has 30 minutes left).
    hubspot.emulator().expire_access_tokens();
    assert_eq!(get().await.unwrap().status, 200);
    let stats = hubspot.emulator().oauth_stats();
    assert_eq!((stats.expired_calls, stats.refreshes), (1, 1), "{stats:?}");
    // The refreshed token is persisted: a new source starts from it, without refreshing.
    let again = vault.token_source("hs-oauth", Some(&secret)).unwrap();
    let client =
        lago_hubspot::hubspot_http::HubspotClient::with_tokens(&hubspot.url, again).unwrap();
    assert_eq!(
        client
            .send(http::Method::GET, "/crm/v3/objects/companies", None)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(hubspot.emulator().oauth_stats().refreshes, 1);
}

/// Two instances on one PostgreSQL state refresh one short-lived OAuth token at once, again and
/// again: the emulator rotates refresh tokens and refuses a spent one, so a second refresh with
/// the same refresh token would lose the grant. One refresh per expiry, none refused.
#[tokio::test(flavor = "multi_thread")]
async fn two_instances_refreshing_one_short_lived_token_never_lose_the_grant() {
    let Some(database) = lago_hubspot::store::testing::fresh_database_url() else {
        return;
    };
    // Long enough that a loaded machine still finds a token fresh right after its refresh (a
    // token is fresh for four fifths of its life: 6.4 s).
    let lifetime = Duration::from_secs(8);
    let hubspot = portal(505, lifetime).await;
    let instance = || {
        Vault::new(
            Arc::new(Mutex::new(Store::open_postgres(&database).unwrap())),
            Some(SecretKey::parse(SECRET_KEY).unwrap()),
        )
    };
    let (a, b) = (instance(), instance());
    authorize(&a, &hubspot, "hs-shared").await;
    let secret = Secret::new(CLIENT_SECRET);
    let sources = [
        a.token_source("hs-shared", Some(&secret)).unwrap(),
        b.token_source("hs-shared", Some(&secret)).unwrap(),
    ];
    let rounds = 2;
    for round in 1..=rounds {
        tokio::time::sleep(lifetime + Duration::from_millis(100)).await;
        let mut calls = tokio::task::JoinSet::new();
        for n in 0..16 {
            let tokens = sources[n % 2].clone();
            calls.spawn(async move { tokens.token().await.map(|t| t.expose().to_owned()) });
        }
        let issued: std::collections::BTreeSet<String> = calls
            .join_all()
            .await
            .into_iter()
            .map(|token| token.expect("a token, not a lost grant"))
            .collect();
        assert_eq!(
            issued.len(),
            1,
            "round {round}: both instances use one token: {:?}",
            hubspot.emulator().oauth_stats()
        );
        let stats = hubspot.emulator().oauth_stats();
        assert_eq!(
            (stats.refreshes, stats.refused),
            (round, 0),
            "round {round}: {stats:?}"
        );
    }
    assert!(!sources[0].needs_reconnect() && !sources[1].needs_reconnect());
}
