//! Any number of named HubSpot connections, as the product brief has them: each with a unique
//! code, a name, a default targeted object, sync switches (all in [`ConnectionSettings`]), and
//! here its access: the HubSpot base URL, the portal it reaches, and a private-app token or
//! OAuth tokens. Id mappings and the sync log are already kept per connection code.
//!
//! - [`authorize`] runs the OAuth authorization-code flow on a loopback redirect URI;
//! - [`secrets`] seals tokens at rest;
//! - [`fleet`] is what `serve` runs: one syncer per connection, events routed by the customer's
//!   HubSpot `integration_code`, rate budgets shared per portal.

pub mod authorize;
pub mod fleet;
pub mod secrets;

use std::sync::{Arc, Mutex, MutexGuard};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use crate::auth::{OAuthApp, OAuthTokenSource, OAuthTokens, StaticToken, TokenSource, TokenStore};
use crate::config::ConnectionSettings;
use crate::hubspot_http::Secret;
use crate::sql_params;
use crate::store::Store;

pub use self::secrets::{SECRET_KEY_ENV, SecretKey};

/// How a connection authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthKind {
    /// A private-app / service-key token.
    Token,
    OAuth,
}

impl AuthKind {
    fn as_str(self) -> &'static str {
        match self {
            AuthKind::Token => "token",
            AuthKind::OAuth => "oauth",
        }
    }
}

/// What the state knows about a connection's access, without its tokens.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    pub code: String,
    pub hubspot_url: String,
    pub portal_id: Option<u64>,
    pub kind: AuthKind,
    pub client_id: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Vec<String>,
    /// When the stored access token expires (OAuth), epoch milliseconds.
    pub expires_at_ms: Option<i64>,
    /// Takes events of customers that name no connection.
    pub is_default: bool,
    /// Set when HubSpot refused the grant; the connection's events wait for a reconnect.
    pub reconnect_needed: Option<String>,
    /// Bumped by every (re)connect, so a running `serve` notices new credentials.
    pub generation: i64,
    pub connected_at: String,
}

/// The sealed part of a connection's access.
#[derive(Serialize, Deserialize, Default)]
struct SealedTokens {
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lifetime_ms: Option<i64>,
}

/// A connection's tokens, opened.
pub enum Credentials {
    Token(Secret),
    OAuth(OAuthTokens),
}

/// A grant to record: what `connect` obtained.
pub struct Grant {
    pub hubspot_url: String,
    pub portal_id: Option<u64>,
    pub credentials: Credentials,
    /// The OAuth app's client id and token endpoint (OAuth only).
    pub client_id: Option<String>,
    pub token_url: Option<String>,
    pub scopes: Vec<String>,
}

const ACCESS_COLUMNS: &str = "code, hubspot_url, portal_id, kind, client_id, token_url, scopes,
    expires_at_ms, is_default, status, status_detail, generation, connected_at";

fn row_to_access(row: &crate::db::Row) -> anyhow::Result<Access> {
    let kind: String = row.get(3)?;
    let scopes: String = row.get(6)?;
    let status: String = row.get(9)?;
    let detail: Option<String> = row.get(10)?;
    Ok(Access {
        code: row.get(0)?,
        hubspot_url: row.get(1)?,
        portal_id: row.get::<Option<i64>>(2)?.map(|p| p as u64),
        kind: if kind == "oauth" {
            AuthKind::OAuth
        } else {
            AuthKind::Token
        },
        client_id: row.get(4)?,
        token_url: row.get(5)?,
        scopes: scopes.split_whitespace().map(str::to_owned).collect(),
        expires_at_ms: row.get(7)?,
        is_default: row.get::<i64>(8)? != 0,
        reconnect_needed: (status == "reconnect_needed")
            .then(|| detail.unwrap_or_else(|| "HubSpot refused the grant".into())),
        generation: row.get(11)?,
        connected_at: row.get(12)?,
    })
}

/// Connection access in the state database.
impl Store {
    pub fn access(&self, code: &str) -> anyhow::Result<Option<Access>> {
        self.db
            .query_opt(
                &format!("SELECT {ACCESS_COLUMNS} FROM connection_access WHERE code = ?1"),
                sql_params![code],
            )?
            .as_ref()
            .map(row_to_access)
            .transpose()
    }

    /// Every connection that has access recorded, by code.
    pub fn accesses(&self) -> anyhow::Result<Vec<Access>> {
        self.db
            .query(
                &format!("SELECT {ACCESS_COLUMNS} FROM connection_access ORDER BY code"),
                &[],
            )?
            .iter()
            .map(row_to_access)
            .collect()
    }

    /// Every stored connection's settings, by code (with or without recorded access).
    pub fn connections(&self) -> anyhow::Result<Vec<ConnectionSettings>> {
        let rows: Vec<String> = self
            .db
            .query("SELECT settings FROM connections ORDER BY code", &[])?
            .iter()
            .map(|row| row.get(0))
            .collect::<anyhow::Result<_>>()?;
        rows.iter()
            .map(|t| serde_json::from_str(t).context("stored connection settings are corrupt"))
            .collect()
    }

    /// A connection's access and its sealed tokens, read in one statement: another instance's
    /// refresh writes both at once, and a read in two could pair the new tokens with the old
    /// expiry (which made an instance refresh again a token it had just adopted).
    fn access_with_tokens(&self, code: &str) -> anyhow::Result<Option<(Access, String)>> {
        self.db
            .query_opt(
                &format!("SELECT {ACCESS_COLUMNS}, secrets FROM connection_access WHERE code = ?1"),
                sql_params![code],
            )?
            .map(|row| {
                let sealed: Option<String> = row.get(13)?;
                Ok((row_to_access(&row)?, sealed))
            })
            .transpose()
            .map(|found: Option<(Access, Option<String>)>| {
                found.and_then(|(access, sealed)| Some((access, sealed?)))
            })
    }

    pub fn set_default_connection(&self, code: &str) -> anyhow::Result<bool> {
        let changed = self.db.transaction(|tx| {
            tx.execute("UPDATE connection_access SET is_default = 0", &[])?;
            tx.execute(
                "UPDATE connection_access SET is_default = 1 WHERE code = ?1",
                sql_params![code],
            )
        })?;
        Ok(changed == 1)
    }

    pub fn set_hubspot_url(&self, code: &str, url: &str) -> anyhow::Result<bool> {
        Ok(self.db.execute(
            "UPDATE connection_access SET hubspot_url = ?2,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE code = ?1",
            sql_params![code, url],
        )? == 1)
    }

    /// Forgets a connection's settings and access. Its id mappings and sync log stay, so
    /// connecting again with the same code resumes; its waiting events stay pending.
    pub fn remove_connection(&self, code: &str) -> anyhow::Result<bool> {
        let removed = self.db.transaction(|tx| {
            let settings =
                tx.execute("DELETE FROM connections WHERE code = ?1", sql_params![code])?;
            let access = tx.execute(
                "DELETE FROM connection_access WHERE code = ?1",
                sql_params![code],
            )?;
            Ok(settings + access)
        })?;
        Ok(removed > 0)
    }

    /// Events of a connection still waiting (pending or running).
    pub fn waiting_events(&self, code: &str) -> anyhow::Result<u64> {
        self.db
            .query_one(
                "SELECT COUNT(*) FROM events WHERE connection = ?1 AND state IN ('pending', 'running')",
                sql_params![code],
            )?
            .get(0)
    }

    /// The connection an earlier event of this customer went to, or the only connection that
    /// holds a HubSpot id for it: subscription and invoice payloads name no connection.
    pub fn customer_connection(&self, customer_id: &str) -> anyhow::Result<Option<String>> {
        let routed: Option<String> = self
            .db
            .query_opt(
                "SELECT connection FROM events WHERE customer_key = ?1 AND connection != ''
                 ORDER BY id DESC LIMIT 1",
                sql_params![customer_id],
            )?
            .map(|row| row.get(0))
            .transpose()?;
        if routed.is_some() {
            return Ok(routed);
        }
        let known: Vec<String> = self
            .db
            .query(
                "SELECT DISTINCT connection FROM id_map
                 WHERE lago_id = ?1 AND kind IN ('company', 'contact') LIMIT 2",
                sql_params![customer_id],
            )?
            .iter()
            .map(|row| row.get(0))
            .collect::<anyhow::Result<_>>()?;
        Ok(match known.as_slice() {
            [one] => Some(one.clone()),
            _ => None,
        })
    }
}

/// The state's connections with the key their tokens are sealed with.
#[derive(Clone)]
pub struct Vault {
    store: Arc<Mutex<Store>>,
    key: Option<SecretKey>,
}

impl Vault {
    pub fn new(store: Arc<Mutex<Store>>, key: Option<SecretKey>) -> Vault {
        Vault { store, key }
    }

    pub fn store(&self) -> MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn shared_store(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// Records settings and a new grant. A reconnect must reach the portal the connection
    /// already syncs to: its stored HubSpot ids mean nothing in another portal.
    pub fn record(&self, settings: &ConnectionSettings, grant: &Grant) -> anyhow::Result<Access> {
        let code = &settings.code;
        let sealed = match &grant.credentials {
            Credentials::Token(token) => SealedTokens {
                token: Some(token.expose().to_owned()),
                ..SealedTokens::default()
            },
            Credentials::OAuth(tokens) => SealedTokens {
                access_token: Some(tokens.access_token.expose().to_owned()),
                refresh_token: Some(tokens.refresh_token.expose().to_owned()),
                lifetime_ms: Some(tokens.lifetime_ms),
                ..SealedTokens::default()
            },
        };
        let sealed = secrets::seal(self.key.as_ref(), code, &serde_json::to_string(&sealed)?)?;
        let (kind, expires_at_ms) = match &grant.credentials {
            Credentials::Token(_) => (AuthKind::Token, None),
            Credentials::OAuth(tokens) => (AuthKind::OAuth, Some(tokens.expires_at_ms)),
        };
        let store = self.store();
        if let Some(existing) = store.access(code)?
            && let (Some(before), Some(now)) = (existing.portal_id, grant.portal_id)
        {
            anyhow::ensure!(
                before == now,
                "connection {code} syncs to HubSpot portal {before}, but this grant is for portal {now}; \
                 connect that portal under a new code"
            );
        }
        let settings_json = serde_json::to_string(settings)?;
        let portal_id = grant.portal_id.map(|p| p as i64);
        let scopes = grant.scopes.join(" ");
        store.db.transaction(|tx| {
            tx.execute(
                "INSERT INTO connections (code, settings) VALUES (?1, ?2)
             ON CONFLICT (code) DO UPDATE SET settings = excluded.settings,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
                sql_params![code, settings_json],
            )?;
            // The first connection takes customers that name none, until told otherwise.
            let first: bool = tx
                .query_opt(
                    "SELECT COUNT(*) = 0 FROM connection_access WHERE code != ?1",
                    sql_params![code],
                )?
                .context("COUNT returned no row")?
                .get(0)?;
            tx.execute(
            "INSERT INTO connection_access (code, hubspot_url, portal_id, kind, secrets, client_id,
                 token_url, scopes, expires_at_ms, is_default)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
             ON CONFLICT (code) DO UPDATE SET hubspot_url = excluded.hubspot_url,
                 portal_id = excluded.portal_id, kind = excluded.kind, secrets = excluded.secrets,
                 client_id = excluded.client_id, token_url = excluded.token_url,
                 scopes = excluded.scopes, expires_at_ms = excluded.expires_at_ms,
                 status = 'connected', status_detail = NULL, generation = connection_access.generation + 1,
                 connected_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            sql_params![
                code,
                grant.hubspot_url,
                portal_id,
                kind.as_str(),
                sealed,
                grant.client_id,
                grant.token_url,
                scopes,
                expires_at_ms,
                first,
            ],
        )?;
            Ok(())
        })?;
        restrict_to_owner(&store);
        store
            .access(code)?
            .context("the connection was just recorded")
    }

    /// The connection's access and opened tokens.
    pub fn credentials(&self, code: &str) -> anyhow::Result<Option<(Access, Credentials)>> {
        let store = self.store();
        let Some((access, sealed)) = store.access_with_tokens(code)? else {
            return Ok(None);
        };
        drop(store);
        let credentials = self.open(&access, &sealed)?;
        Ok(Some((access, credentials)))
    }

    fn open(&self, access: &Access, sealed: &str) -> anyhow::Result<Credentials> {
        let text = secrets::open(self.key.as_ref(), &access.code, sealed)?;
        let tokens: SealedTokens =
            serde_json::from_str(&text).context("the stored tokens are corrupt")?;
        Ok(match access.kind {
            AuthKind::Token => Credentials::Token(Secret::new(
                tokens.token.context("the stored token is missing")?,
            )),
            AuthKind::OAuth => Credentials::OAuth(OAuthTokens {
                access_token: Secret::new(tokens.access_token.unwrap_or_default()),
                refresh_token: Secret::new(
                    tokens
                        .refresh_token
                        .context("the stored refresh token is missing")?,
                ),
                expires_at_ms: access.expires_at_ms.unwrap_or(0),
                lifetime_ms: tokens.lifetime_ms.unwrap_or(1_800_000),
            }),
        })
    }

    /// The token source requests of this connection use. OAuth needs the app's client secret.
    pub fn token_source(
        &self,
        code: &str,
        client_secret: Option<&Secret>,
    ) -> anyhow::Result<Arc<dyn TokenSource>> {
        let (access, credentials) = self.credentials(code)?.with_context(|| {
            format!(
                "connection {code} has no recorded access: run `lago-hubspot connect --code {code}`"
            )
        })?;
        Ok(match credentials {
            Credentials::Token(token) => Arc::new(StaticToken(token)),
            Credentials::OAuth(tokens) => {
                let client_secret = client_secret.with_context(|| {
                    format!(
                        "connection {code} uses OAuth: give the app's client secret (--client-secret or HUBSPOT_CLIENT_SECRET) so its tokens can be refreshed"
                    )
                })?;
                let app = OAuthApp {
                    client_id: access.client_id.clone().unwrap_or_default(),
                    client_secret: client_secret.clone(),
                    token_url: access
                        .token_url
                        .clone()
                        .unwrap_or_else(|| crate::auth::DEFAULT_TOKEN_URL.into()),
                };
                Arc::new(OAuthTokenSource::new(
                    code,
                    app,
                    tokens,
                    access.generation,
                    access.reconnect_needed.clone(),
                    Arc::new(VaultTokens {
                        vault: self.clone(),
                        code: code.to_owned(),
                    }),
                )?)
            }
        })
    }
}

/// Persists one connection's refreshed tokens in the vault.
struct VaultTokens {
    vault: Vault,
    code: String,
}

impl TokenStore for VaultTokens {
    fn save(&self, generation: i64, tokens: &OAuthTokens) -> anyhow::Result<bool> {
        let sealed = SealedTokens {
            access_token: Some(tokens.access_token.expose().to_owned()),
            refresh_token: Some(tokens.refresh_token.expose().to_owned()),
            lifetime_ms: Some(tokens.lifetime_ms),
            ..SealedTokens::default()
        };
        let sealed = secrets::seal(
            self.vault.key.as_ref(),
            &self.code,
            &serde_json::to_string(&sealed)?,
        )?;
        Ok(self.vault.store().db.execute(
            "UPDATE connection_access SET secrets = ?3, expires_at_ms = ?4,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE code = ?1 AND generation = ?2",
            sql_params![self.code, generation, sealed, tokens.expires_at_ms],
        )? == 1)
    }

    fn mark_reconnect_needed(&self, generation: i64, reason: &str) -> anyhow::Result<()> {
        self.vault.store().db.execute(
            "UPDATE connection_access SET status = 'reconnect_needed', status_detail = ?3,
                 updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE code = ?1 AND generation = ?2",
            sql_params![self.code, generation, reason],
        )?;
        Ok(())
    }

    fn stored(&self, generation: i64) -> anyhow::Result<Option<OAuthTokens>> {
        Ok(match self.vault.credentials(&self.code)? {
            Some((access, Credentials::OAuth(tokens))) if access.generation == generation => {
                Some(tokens)
            }
            _ => None,
        })
    }

    fn begin_refresh(&self, hold_ms: i64) -> anyhow::Result<bool> {
        let store = self.vault.store();
        let now = crate::clock::now_ms();
        Ok(store.db.execute(
            "UPDATE connection_access SET refresh_owner = ?2, refresh_until_ms = ?3
             WHERE code = ?1 AND (refresh_until_ms < ?4 OR refresh_owner = ?2)",
            sql_params![self.code, store.owner, now.saturating_add(hold_ms), now],
        )? == 1)
    }

    fn end_refresh(&self) -> anyhow::Result<()> {
        let store = self.vault.store();
        store.db.execute(
            "UPDATE connection_access SET refresh_owner = NULL, refresh_until_ms = 0
             WHERE code = ?1 AND refresh_owner = ?2",
            sql_params![self.code, store.owner],
        )?;
        Ok(())
    }

    fn newer(&self, generation: i64) -> anyhow::Result<Option<(i64, OAuthTokens)>> {
        let access = self.vault.store().access(&self.code)?;
        let Some(access) = access.filter(|a| a.generation > generation) else {
            return Ok(None);
        };
        if access.reconnect_needed.is_some() {
            return Ok(None);
        }
        match self.vault.credentials(&self.code)? {
            Some((access, Credentials::OAuth(tokens))) => Ok(Some((access.generation, tokens))),
            _ => Ok(None),
        }
    }
}

/// Tokens live in the state file: keep it (and SQLite's side files) to its owner.
fn restrict_to_owner(store: &Store) {
    #[cfg(unix)]
    if let Some(path) = store
        .db
        .sqlite()
        .and_then(|db| db.path())
        .filter(|p| !p.is_empty())
    {
        use std::os::unix::fs::PermissionsExt as _;
        for file in [
            path.to_owned(),
            format!("{path}-wal"),
            format!("{path}-shm"),
        ] {
            if let Ok(meta) = std::fs::metadata(&file)
                && meta.permissions().mode() & 0o077 != 0
            {
                let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = store;
}

/// Waits for the browser to come back through `flow`, exchanges the code, and records the
/// connection (settings, tokens, portal). The browser is told how it went.
pub async fn connect_oauth(
    vault: &Vault,
    settings: &ConnectionSettings,
    hubspot_url: &str,
    app: &OAuthApp,
    flow: authorize::OAuthFlow,
    timeout: std::time::Duration,
) -> anyhow::Result<Access> {
    flow.complete(app, timeout, async |answer| {
        let portal = answer.hub_id;
        let scopes = answer.scopes.clone();
        let tokens = answer
            .into_tokens(None)
            .context("HubSpot's token answer has no refresh token")?;
        let access = vault.record(
            settings,
            &Grant {
                hubspot_url: hubspot_url.to_owned(),
                portal_id: portal,
                credentials: Credentials::OAuth(tokens),
                client_id: Some(app.client_id.clone()),
                token_url: Some(app.token_url.clone()),
                scopes,
            },
        )?;
        let message = format!(
            "lago-hubspot is connected to HubSpot portal {} as {}. Lago's properties and objects \
             are being deployed; you can close this tab.",
            portal.map_or_else(|| "?".to_owned(), |p| p.to_string()),
            settings.code
        );
        Ok((access, message))
    })
    .await
}

/// Records a connection that uses a private-app / service-key token; the portal is read from
/// HubSpot.
pub async fn connect_token(
    vault: &Vault,
    settings: &ConnectionSettings,
    hubspot_url: &str,
    token: Secret,
) -> anyhow::Result<Access> {
    let portal = authorize::portal_of_token(hubspot_url, &token).await?;
    vault.record(
        settings,
        &Grant {
            hubspot_url: hubspot_url.to_owned(),
            portal_id: Some(portal),
            credentials: Credentials::Token(token),
            client_id: None,
            token_url: None,
            scopes: Vec::new(),
        },
    )
}
