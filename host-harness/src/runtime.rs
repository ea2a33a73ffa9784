//! Loads the sync component once and runs each call in a fresh, sandboxed instance.
//!
//! One engine and one pre-instantiated component per process; a new store per call, so an
//! instance that trapped is never reused and no state leaks from one event into the next.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{
    RequestOptions, WasiBody, WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView,
};

use lago_hubspot_guest::webhooks::{Envelope, Handler, Route};

use crate::hubspot_http::HubspotClient;

// The WASI interfaces the world imports (pinned under `wit/deps/`) are wasmtime-wasi's own
// bindings, so the host implementations are wasmtime-wasi's and wasmtime-wasi-http's.
wasmtime::component::bindgen!({
    path: "../wit",
    world: "sync-plugin",
    exports: { default: async },
    with: {
        "wasi:io": wasmtime_wasi::p2::bindings::io,
        "wasi:clocks": wasmtime_wasi::p2::bindings::clocks,
        "wasi:cli": wasmtime_wasi::p2::bindings::cli,
        "wasi:http": wasmtime_wasi_http::p2::bindings::http,
    },
    additional_derives: [serde::Serialize, serde::Deserialize],
});

pub use exports::lago::hubspot::planner::{Connection, KnownId, Plan, PlanError};
pub use lago::hubspot::types::{
    Associate, CreateProperties, DefineAssociation, HttpMethod, IdRef, Operation, PropertyValue,
    RecordKey, RecordKind, Request, Step, TargetedObject, Update, Upsert,
};
/// wasmtime's compiled-code cache, for [`Plugin::load_with_cache`].
pub use wasmtime::{Cache, CacheConfig};

/// The authority the guest uses for HubSpot; the host maps it onto the configured base URL.
pub const GUEST_HUBSPOT_AUTHORITY: &str = "api.hubapi.com";

/// Guest stderr kept per call, so a panic message can be reported with the trap.
const GUEST_STDERR_CAPACITY: usize = 64 * 1024;

/// Per-call store data: WASI, wasi:http and the hooks that route guest HTTP to HubSpot.
struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: GuestHttp,
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Serves the guest's `wasi:http/outgoing-handler` through the harness's HubSpot client.
/// Only `https://api.hubapi.com/...` is allowed; the token is added by the client, never seen by the guest.
struct GuestHttp {
    client: Option<Arc<HubspotClient>>,
}

impl WasiHttpHooks for GuestHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        _options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        let client = self.client.clone();
        Box::new(async move {
            use wasmtime_wasi_http::Error;
            let client = client.ok_or(Error::HttpRequestDenied)?;
            let (parts, body) = request.into_parts();
            if parts.uri.authority().map(|a| a.as_str()) != Some(GUEST_HUBSPOT_AUTHORITY) {
                tracing::warn!(uri = %parts.uri, "guest asked for a destination other than HubSpot; refused");
                return Err(Error::HttpRequestDenied);
            }
            let path = parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into());
            let body = body.collect().await?.to_bytes();
            let body = (!body.is_empty()).then_some(body);
            let response = send_read(&client, parts.method, &path, body)
                .await
                .map_err(|e| {
                    tracing::warn!("guest read failed: {e}");
                    Error::DestinationUnavailable
                })?;
            let mut builder = http::Response::builder().status(response.status);
            for (name, value) in &response.headers {
                builder = builder.header(name, value);
            }
            let body: WasiBody = Full::new(response.body)
                .map_err(|never| match never {})
                .boxed_unsync();
            let response = builder
                .body(body)
                .map_err(|_| Error::HttpResponseIncomplete)?;
            let done: Box<dyn Future<Output = Result<(), Error>> + Send> =
                Box::new(async { Ok(()) });
            Ok((response, done))
        })
    }
}

/// Sends one of the guest's reads. No answer at all (HubSpot, or the emulator started in the
/// background a moment ago, not listening yet; a dropped connection) is tried again with the
/// request retry policy's backoff, as every other HubSpot request is; any answer goes to the guest.
async fn send_read(
    client: &HubspotClient,
    method: http::Method,
    path: &str,
    body: Option<bytes::Bytes>,
) -> Result<crate::response::HubspotResponse, crate::hubspot_http::TransportError> {
    let policy = crate::retry::RetryPolicy::default();
    let mut attempt = 1;
    loop {
        match client.send(method.clone(), path, body.clone()).await {
            Err(error @ crate::hubspot_http::TransportError::Network { .. }) => {
                match policy.after_network_error(attempt) {
                    crate::retry::Decision::RetryIn(wait) => {
                        tracing::info!(
                            attempt,
                            "guest read got no answer, retrying in {wait:?}: {error}"
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    crate::retry::Decision::GiveUp => return Err(error),
                }
            }
            other => return other,
        }
    }
}

/// The loaded sync component.
pub struct Plugin {
    engine: Engine,
    pre: SyncPluginPre<CallState>,
    path: PathBuf,
}

impl Plugin {
    /// Compiles the component, or reads it back from wasmtime's compiled-code cache: the one the
    /// `wasmtime` CLI uses (per user, `~/.cache/wasmtime` on Linux; `[cache] directory` in
    /// `~/.config/wasmtime/config.toml` moves it). Without a usable cache it compiles every time.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::load_with_cache(path, default_cache())
    }

    /// [`Plugin::load`] with the given compiled-code cache (`None`: compile every time).
    pub fn load_with_cache(path: &Path, cache: Option<Cache>) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.cache(cache);
        let engine = Engine::new(&config)?;
        let bytes = std::fs::read(path).with_context(|| {
            format!(
                "cannot read the component at {} (build it with `cargo build -p lago-hubspot-guest --target wasm32-wasip2 --release`)",
                path.display()
            )
        })?;
        // Keyed by the component's bytes and the engine's settings: a rebuilt guest or another
        // wasmtime compiles afresh.
        let component = Component::new(&engine, &bytes)?;
        let mut linker = Linker::new(&engine);
        link_world_imports(&mut linker)?;
        let pre = SyncPluginPre::new(linker.instantiate_pre(&component)?)?;
        Ok(Plugin {
            engine,
            pre,
            path: path.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Plans the connection set-up. `client` serves the guest's reads of what already exists.
    pub async fn deploy(
        &self,
        client: Arc<HubspotClient>,
        connection: &Connection,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let (mut store, bindings, stderr) = self.instantiate(Some(client)).await?;
        bindings
            .lago_hubspot_planner()
            .call_deploy(&mut store, connection)
            .await
            .map_err(|trap| trapped(trap, &stderr))
    }

    /// Plans one Lago webhook, routed by its `webhook_type` through the guest crate's table
    /// ([`lago_hubspot_guest::webhooks`]): a type the sync skips gets an empty plan with the
    /// reason, without instantiating the component. The guest gets no network access here.
    pub async fn plan_event(
        &self,
        connection: &Connection,
        known: &[KnownId],
        payload: &str,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let handler = match Envelope::read(payload) {
            Err(error) => return Ok(Err(plan_error(error))),
            Ok(Envelope {
                route: Route::Skip(reason),
                ..
            }) => {
                return Ok(Ok(Plan {
                    summary: reason,
                    steps: Vec::new(),
                    learned: Vec::new(),
                }));
            }
            Ok(Envelope {
                route: Route::Push { handler, .. },
                ..
            }) => handler,
        };
        let (mut store, bindings, stderr) = self.instantiate(None).await?;
        let planner = bindings.lago_hubspot_planner();
        let store = &mut store;
        match handler {
            Handler::Customer => {
                planner
                    .call_on_customer(store, connection, known, payload)
                    .await
            }
            Handler::Subscription => {
                planner
                    .call_on_subscription(store, connection, known, payload)
                    .await
            }
            Handler::Invoice => {
                planner
                    .call_on_invoice(store, connection, known, payload)
                    .await
            }
            Handler::CreditNote => {
                planner
                    .call_on_credit_note(store, connection, known, payload)
                    .await
            }
        }
        .map_err(|trap| trapped(trap, &stderr))
    }

    /// A fresh store and instance: nothing survives from one call to the next.
    async fn instantiate(
        &self,
        client: Option<Arc<HubspotClient>>,
    ) -> anyhow::Result<(Store<CallState>, SyncPlugin, MemoryOutputPipe)> {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let state = CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: GuestHttp { client },
        };
        let mut store = Store::new(&self.engine, state);
        let bindings = self.pre.instantiate_async(&mut store).await?;
        Ok((store, bindings, stderr))
    }
}

/// Links exactly what the world `sync-plugin` imports (`wit/lago-hubspot.wit`), no more: a
/// component that imports anything else fails to instantiate, with the import named.
fn link_world_imports(linker: &mut Linker<CallState>) -> anyhow::Result<()> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView as _};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView as _};
    use wasmtime_wasi::p2::bindings::{cli, clocks, io};
    io::error::add_to_linker::<_, Table>(linker, |state| &mut state.table)?;
    io::poll::add_to_linker::<_, Table>(linker, |state| &mut state.table)?;
    io::streams::add_to_linker::<_, Table>(linker, |state| &mut state.table)?;
    // Only for `wasi:http/types`' `duration` type; linked because the world imports it.
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(linker, CallState::clocks)?;
    cli::stderr::add_to_linker::<_, WasiCli>(linker, CallState::cli)?;
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    Ok(())
}

/// The store data the `wasi:io` host functions work on: the resource table.
struct Table;

impl wasmtime::component::HasData for Table {
    type Data<'a> = &'a mut ResourceTable;
}

/// A trap, with the guest's panic message when it printed one.
fn trapped(trap: wasmtime::Error, stderr: &MemoryOutputPipe) -> anyhow::Error {
    let printed = String::from_utf8_lossy(&stderr.contents())
        .trim()
        .to_owned();
    let error = anyhow::Error::from(trap).context("the sync component trapped");
    if printed.is_empty() {
        error
    } else {
        error.context(format!("guest stderr: {printed}"))
    }
}

/// The guest crate's error, as the component would return it.
pub fn plan_error(error: lago_hubspot_guest::PlanError) -> PlanError {
    use lago_hubspot_guest::PlanError as Guest;
    match error {
        Guest::MalformedPayload(m) => PlanError::MalformedPayload(m),
        Guest::UnsupportedEvent(m) => PlanError::UnsupportedEvent(m),
        Guest::MissingField(m) => PlanError::MissingField(m),
        Guest::NotDeployed(m) => PlanError::NotDeployed(m),
        Guest::HubspotReadFailed(m) => PlanError::HubspotReadFailed(m),
    }
}

/// wasmtime's own cache configuration (its config file if there is one, else its defaults); a
/// cache that cannot be set up (no home directory, a broken config file) only costs the speed-up.
fn default_cache() -> Option<Cache> {
    Cache::from_file(None)
        .inspect_err(|error| {
            tracing::warn!("compiling without wasmtime's cache: {error:#}");
        })
        .ok()
}
