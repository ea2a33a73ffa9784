//! The OAuth 2.0 authorization-code flow of `connect`, on a loopback redirect URI: build
//! HubSpot's authorize URL with exactly the brief's scopes and a random `state`, wait for the
//! browser to come back, check `state`, exchange the code at the token endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use rand::Rng as _;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use url::Url;

use crate::auth::{GrantError, OAuthApp, TokenResponse, request_tokens};
use crate::hubspot_http::Secret;

/// HubSpot's authorize page.
pub const DEFAULT_AUTHORIZE_URL: &str = "https://app.hubspot.com/oauth/authorize";

/// The scopes Lago's HubSpot integration asks for (product brief), in the brief's order.
pub const SCOPES: [&str; 13] = [
    "oauth",
    "crm.objects.companies.read",
    "crm.objects.companies.write",
    "crm.objects.custom.read",
    "crm.objects.custom.write",
    "crm.schemas.companies.read",
    "crm.schemas.companies.write",
    "crm.schemas.custom.read",
    "crm.objects.contacts.read",
    "crm.objects.contacts.write",
    "crm.schemas.contacts.read",
    "crm.schemas.contacts.write",
    "crm.schemas.custom.write",
];

/// The path the browser comes back to.
pub const CALLBACK_PATH: &str = "/oauth-callback";

/// `…/oauth/authorize?client_id=…&redirect_uri=…&scope=a%20b&state=…`: scopes space-separated
/// and `%20`-encoded, as HubSpot's own client builds it. A query already on `base` is kept.
pub fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
) -> anyhow::Result<String> {
    let mut url = Url::parse(base.trim())
        .with_context(|| format!("the HubSpot authorize URL {base:?} is not a valid URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https") && url.has_host(),
        "the HubSpot authorize URL must start with http:// or https://, got {base:?}"
    );
    url.query_pairs_mut()
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &SCOPES.join(" "))
        .append_pair("state", state);
    // Form encoding writes a space as `+` (and a `+` as `%2B`), so every `+` is a space: `%20`.
    let query = url.query().map(|query| query.replace('+', "%20"));
    url.set_query(query.as_deref());
    Ok(url.into())
}

/// 32 random bytes, hex: what ties the browser's return to this flow.
pub fn random_state() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What came back on the redirect URI.
enum Callback {
    Code(String),
    Denied(String),
}

struct Waiting {
    state: String,
    /// The flow answers the browser once it knows how the exchange went.
    tx: mpsc::Sender<(Callback, oneshot::Sender<Response>)>,
}

/// A flow in progress: the loopback listener is bound, the authorize URL is ready.
pub struct OAuthFlow {
    pub authorize_url: String,
    pub redirect_uri: String,
    rx: mpsc::Receiver<(Callback, oneshot::Sender<Response>)>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for OAuthFlow {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn page(status: StatusCode, title: &str, text: &str) -> Response {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    (
        status,
        Html(format!(
            "<!doctype html><html><head><meta charset=\"utf-8\"><title>{0}</title></head>\
             <body><h1>{0}</h1><p>{1}</p></body></html>\n",
            escape(title),
            escape(text)
        )),
    )
        .into_response()
}

async fn callback(
    State(waiting): State<Arc<Waiting>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    // Without the state we handed out, this request did not come from our authorization.
    let state_ok = param("state").is_some_and(|s| {
        s.len() == waiting.state.len()
            && s.bytes()
                .zip(waiting.state.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !state_ok {
        tracing::warn!("refused a redirect whose state does not match this authorization");
        return page(
            StatusCode::BAD_REQUEST,
            "Refused",
            "This redirect's state does not match the authorization lago-hubspot started; nothing was connected.",
        );
    }
    let outcome = match (param("code"), param("error")) {
        (_, Some(error)) => Callback::Denied(format!(
            "{error}{}",
            param("error_description")
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        )),
        (Some(code), None) if !code.is_empty() => Callback::Code(code.to_owned()),
        _ => {
            return page(
                StatusCode::BAD_REQUEST,
                "Refused",
                "The redirect carries no authorization code.",
            );
        }
    };
    let (reply, answer) = oneshot::channel();
    if waiting.tx.send((outcome, reply)).await.is_err() {
        return page(
            StatusCode::GONE,
            "Too late",
            "This authorization is no longer waiting.",
        );
    }
    answer.await.unwrap_or_else(|_| {
        page(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Failed",
            "lago-hubspot stopped before finishing.",
        )
    })
}

impl OAuthFlow {
    /// Binds the loopback listener (port 0: any free one) and builds the authorize URL.
    /// `redirect_host` is how the browser names this machine (`localhost` by default).
    pub async fn start(
        authorize_base: &str,
        client_id: &str,
        listen: SocketAddr,
        redirect_host: &str,
    ) -> anyhow::Result<OAuthFlow> {
        anyhow::ensure!(
            listen.ip().is_loopback(),
            "the redirect listener must be on loopback, not {listen}"
        );
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the OAuth redirect"))?;
        let port = listener.local_addr()?.port();
        let redirect_uri = format!("http://{redirect_host}:{port}{CALLBACK_PATH}");
        let state = random_state();
        let authorize_url = authorize_url(authorize_base, client_id, &redirect_uri, &state)?;
        let (tx, rx) = mpsc::channel(4);
        let app = Router::new()
            .route(CALLBACK_PATH, get(callback))
            .with_state(Arc::new(Waiting { state, tx }));
        let server = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!("the OAuth redirect listener stopped: {error}");
            }
        });
        Ok(OAuthFlow {
            authorize_url,
            redirect_uri,
            rx,
            server,
        })
    }

    /// Waits for the browser, exchanges the code, and lets `finish` decide what the browser is
    /// told (it records the connection). Returns what `finish` returned.
    pub async fn complete<T>(
        mut self,
        app: &OAuthApp,
        timeout: Duration,
        finish: impl AsyncFnOnce(TokenResponse) -> anyhow::Result<(T, String)>,
    ) -> anyhow::Result<T> {
        let (callback, reply) = tokio::time::timeout(timeout, self.rx.recv())
            .await
            .map_err(|_| {
                anyhow::anyhow!("no authorization came back within {}s", timeout.as_secs())
            })?
            .context("the redirect listener stopped")?;
        let code = match callback {
            Callback::Code(code) => code,
            Callback::Denied(reason) => {
                let _ = reply.send(page(
                    StatusCode::BAD_REQUEST,
                    "Not connected",
                    &format!("HubSpot did not grant access: {reason}"),
                ));
                anyhow::bail!("HubSpot did not grant access: {reason}");
            }
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        let exchanged = exchange_code(&http, app, &code, &self.redirect_uri).await;
        let tokens = match exchanged {
            Ok(tokens) => tokens,
            Err(error) => {
                let _ = reply.send(page(
                    StatusCode::BAD_GATEWAY,
                    "Not connected",
                    &format!("The authorization code could not be exchanged: {error}"),
                ));
                anyhow::bail!("the authorization code could not be exchanged: {error}");
            }
        };
        match finish(tokens).await {
            Ok((value, message)) => {
                let _ = reply.send(page(StatusCode::OK, "Connected", &message));
                Ok(value)
            }
            Err(error) => {
                let _ = reply.send(page(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Not connected",
                    &format!("{error:#}"),
                ));
                Err(error)
            }
        }
    }
}

/// The `authorization_code` grant, form-encoded.
pub async fn exchange_code(
    http: &reqwest::Client,
    app: &OAuthApp,
    code: &str,
    redirect_uri: &str,
) -> Result<TokenResponse, GrantError> {
    request_tokens(
        http,
        &app.token_url,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("client_id", &app.client_id),
            ("client_secret", app.client_secret.expose()),
        ],
    )
    .await
}

/// The portal a private-app / service-key token belongs to (`GET /account-info/v3/details`).
pub async fn portal_of_token(hubspot_url: &str, token: &Secret) -> anyhow::Result<u64> {
    let client = crate::hubspot_http::HubspotClient::new(hubspot_url, token.clone())?;
    let response = client
        .send(http::Method::GET, "/account-info/v3/details", None)
        .await?;
    anyhow::ensure!(
        response.is_success(),
        "HubSpot refused the token: {}",
        response.error_summary()
    );
    response
        .json()
        .and_then(|j| j.get("portalId").and_then(Value::as_u64))
        .context("HubSpot's account details carry no portalId")
}

/// Opens `url` in a browser when this machine has a display and `xdg-open` (or macOS `open`).
pub fn open_browser(url: &str) -> bool {
    let has_display = cfg!(target_os = "macos")
        || std::env::var_os("DISPLAY").is_some()
        || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !has_display {
        return false;
    }
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    std::process::Command::new(opener)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorize_url_has_the_brief_scopes_space_separated_and_percent_encoded() {
        let url = authorize_url(
            DEFAULT_AUTHORIZE_URL,
            "client-1",
            "http://localhost:7000/oauth-callback",
            "s1",
        )
        .unwrap();
        assert_eq!(
            url,
            "https://app.hubspot.com/oauth/authorize?client_id=client-1\
             &redirect_uri=http%3A%2F%2Flocalhost%3A7000%2Foauth-callback\
             &scope=oauth%20crm.objects.companies.read%20crm.objects.companies.write\
             %20crm.objects.custom.read%20crm.objects.custom.write%20crm.schemas.companies.read\
             %20crm.schemas.companies.write%20crm.schemas.custom.read%20crm.objects.contacts.read\
             %20crm.objects.contacts.write%20crm.schemas.contacts.read%20crm.schemas.contacts.write\
             %20crm.schemas.custom.write&state=s1"
        );
        assert_ne!(random_state(), random_state());
    }

    #[test]
    fn the_authorize_url_keeps_a_query_of_its_base_and_refuses_a_non_url() {
        let url =
            authorize_url("http://127.0.0.1:9/oauth/authorize?portal=1", "c", "r", "s").unwrap();
        assert!(
            url.starts_with("http://127.0.0.1:9/oauth/authorize?portal=1&client_id=c&redirect_uri=r&scope=oauth%20crm."),
            "{url}"
        );
        assert!(url.ends_with("&state=s"), "{url}");
        assert!(authorize_url("app.hubspot.com/oauth/authorize", "c", "r", "s").is_err());
    }
}
