//! Loads the sync component once and runs each call in a fresh, sandboxed, bounded instance.
//!
//! One engine and one pre-instantiated component per process; a new store per call, so an
//! instance that trapped is never reused and no state leaks from one event into the next.
//!
//! Every call is bounded ([`GuestLimits`]): a deadline (epoch interruption, one ticker thread per
//! engine) and a memory cap (`StoreLimits`, growth past it traps). A call the host stops, or one
//! that traps, ends in a [`GuestError`] naming the handler and the reason ([`GuestStop`]), which
//! the pipeline turns into a failure of that event; the worker that ran it goes on to the next.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use http_body_util::{BodyExt, Full};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{
    Config, Engine, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
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

pub use crate::retry::GuestStop;
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

/// How long one call into the component may compute by default: 500 ms (a plan takes well
/// under 1 ms).
pub const DEFAULT_GUEST_DEADLINE: Duration = Duration::from_millis(500);
/// The linear memory one instance may hold by default: 64 MiB (a plan needs about 1 MiB).
pub const DEFAULT_GUEST_MEMORY_BYTES: usize = 64 << 20;
/// How often each engine's ticker advances its epoch: a call is stopped at most one tick after
/// its deadline, and a call still within it yields to other tasks once per tick.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// The bounds on every call into the component.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuestLimits {
    /// The time the guest may compute per call, wall clock, from the call into it to its answer
    /// (time it waits on its HubSpot reads, during `deploy`, does not count). Past it, the call
    /// is stopped within one [`EPOCH_TICK`] with [`GuestStop::Deadline`].
    pub deadline: Duration,
    /// Bytes of linear memory per instance; growing past them traps with [`GuestStop::Memory`].
    pub memory_bytes: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            deadline: DEFAULT_GUEST_DEADLINE,
            memory_bytes: DEFAULT_GUEST_MEMORY_BYTES,
        }
    }
}

/// A call into the component that did not answer: which handler, and why it was stopped. The
/// pipeline reads it from the `anyhow::Error` of [`Plugin::plan_event`] (`downcast_ref`) to fail
/// the event ([`crate::outcome::Failure::Guest`]).
#[derive(Debug, Clone, thiserror::Error)]
#[error("the sync component was stopped in `{handler}`: {reason}")]
pub struct GuestError {
    /// The WIT export called: `deploy`, `on-customer`, `on-subscription`, `on-invoice`,
    /// `on-credit-note`.
    pub handler: &'static str,
    pub stop: GuestStop,
    /// For a person: the deadline or cap that was hit (and the option that sets it), or the trap
    /// with what the guest printed (a panic's message).
    pub reason: String,
}

/// Per-call store data: WASI, wasi:http and the hooks that route guest HTTP to HubSpot, and
/// the call's bounds.
struct CallState {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    table: ResourceTable,
    hooks: GuestHttp,
    memory: MemoryCap,
    clock: CallClock,
}

/// The time a call has computed, against its deadline.
struct CallClock {
    deadline: Duration,
    started: Instant,
    /// Nanoseconds the call spent waiting on HubSpot reads (shared with [`GuestHttp`]).
    waiting: Arc<AtomicU64>,
}

impl CallClock {
    fn restart(&mut self) {
        self.started = Instant::now();
        self.waiting.store(0, Ordering::Relaxed);
    }

    fn computed(&self) -> Duration {
        let waited = Duration::from_nanos(self.waiting.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(waited)
    }
}

/// What the epoch callback returns when a call is past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the call ran past its deadline")]
struct DeadlineExceeded;

/// wasmtime's `StoreLimits` (memory growth past the cap traps), remembering what was refused.
struct MemoryCap {
    limits: StoreLimits,
    cap: usize,
    /// The size in bytes a refused growth asked for.
    refused: Option<usize>,
}

impl MemoryCap {
    fn new(cap: usize) -> MemoryCap {
        MemoryCap {
            limits: StoreLimitsBuilder::new()
                .memory_size(cap)
                .trap_on_grow_failure(true)
                .build(),
            cap,
            refused: None,
        }
    }
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum);
        if !matches!(allowed, Ok(true)) {
            self.refused = Some(desired);
        }
        allowed
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
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
    /// Where the time spent on each read is added ([`CallClock::waiting`]).
    waiting: Arc<AtomicU64>,
}

/// Adds the time from its creation to its drop to a call's waiting time.
struct Waiting {
    since: Instant,
    total: Arc<AtomicU64>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let nanos = u64::try_from(self.since.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.total.fetch_add(nanos, Ordering::Relaxed);
    }
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
        let waiting = Waiting {
            since: Instant::now(),
            total: self.waiting.clone(),
        };
        Box::new(async move {
            use wasmtime_wasi_http::Error;
            let _waiting = waiting;
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
    limits: GuestLimits,
}

impl Plugin {
    /// Compiles the component, or reads it back from wasmtime's compiled-code cache: the one the
    /// `wasmtime` CLI uses (per user, `~/.cache/wasmtime` on Linux; `[cache] directory` in
    /// `~/.config/wasmtime/config.toml` moves it). Without a usable cache it compiles every time.
    /// Calls get the default [`GuestLimits`].
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        Self::load_with(path, GuestLimits::default(), default_cache())
    }

    /// [`Plugin::load`] with the given bounds on every call.
    pub fn load_limited(path: &Path, limits: GuestLimits) -> anyhow::Result<Self> {
        Self::load_with(path, limits, default_cache())
    }

    /// [`Plugin::load`] with the given compiled-code cache (`None`: compile every time).
    pub fn load_with_cache(path: &Path, cache: Option<Cache>) -> anyhow::Result<Self> {
        Self::load_with(path, GuestLimits::default(), cache)
    }

    /// [`Plugin::load`] with the given bounds on every call and compiled-code cache (`None`:
    /// compile every time). Errors: the file cannot be read, is not a component of this world,
    /// or the epoch ticker thread cannot start.
    pub fn load_with(
        path: &Path,
        limits: GuestLimits,
        cache: Option<Cache>,
    ) -> anyhow::Result<Self> {
        let mut config = Config::new();
        config.cache(cache);
        // Compiled code checks the engine's epoch at function entries and loop heads: the
        // deadline needs no cooperation from the guest.
        config.epoch_interruption(true);
        // The component model's async ABI (p3) is not used: no per-store state for it, and
        // cheaper calls (a plan is one synchronous call per instance).
        config.concurrency_support(false);
        let engine = Engine::new(&config)?;
        start_epoch_ticker(&engine)?;
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
            limits,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The bounds every call gets.
    pub fn limits(&self) -> GuestLimits {
        self.limits
    }

    /// Plans the connection set-up. `client` serves the guest's reads of what already exists.
    /// A call the host stopped is an error holding a [`GuestError`].
    pub async fn deploy(
        &self,
        client: Arc<HubspotClient>,
        connection: &Connection,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let handler = "deploy";
        let mut call = self.instantiate(Some(client), handler).await?;
        call.start();
        let result = call
            .bindings
            .lago_hubspot_planner()
            .call_deploy(&mut call.store, connection)
            .await;
        result.map_err(|error| call.stopped(handler, error))
    }

    /// Plans one Lago webhook, routed by its `webhook_type` through the guest crate's table
    /// ([`lago_hubspot_guest::webhooks`]): a type the sync skips gets an empty plan with the
    /// reason, without instantiating the component. The guest gets no network access here.
    /// A call the host stopped (deadline, memory cap) or that trapped is an error holding a
    /// [`GuestError`].
    pub async fn plan_event(
        &self,
        connection: &Connection,
        known: &[KnownId],
        payload: &str,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let handler = match route(payload) {
            Err(done) => return Ok(done),
            Ok(handler) => handler,
        };
        let mut call = self.instantiate(None, handler.export()).await?;
        call.plan(handler, connection, known, payload).await
    }

    /// One instance for many events in a row, for [`ReusedInstance::plan_event`].
    pub fn reused_instance(&self) -> ReusedInstance<'_> {
        ReusedInstance {
            plugin: self,
            call: None,
        }
    }

    /// A fresh store and instance: nothing survives from one call to the next.
    async fn instantiate(
        &self,
        client: Option<Arc<HubspotClient>>,
        handler: &'static str,
    ) -> anyhow::Result<Call> {
        let stderr = MemoryOutputPipe::new(GUEST_STDERR_CAPACITY);
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let waiting = Arc::new(AtomicU64::new(0));
        let state = CallState {
            wasi,
            http: WasiHttpCtx::new(),
            table: ResourceTable::new(),
            hooks: GuestHttp {
                client,
                waiting: waiting.clone(),
            },
            memory: MemoryCap::new(self.limits.memory_bytes),
            clock: CallClock {
                deadline: self.limits.deadline,
                started: Instant::now(),
                waiting,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        // Past the deadline: stop. Within it: let other tasks run, look again next tick.
        store.epoch_deadline_callback(|store| {
            if store.data().clock.computed() >= store.data().clock.deadline {
                Err(wasmtime::Error::new(DeadlineExceeded))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store.set_epoch_deadline(1);
        match self.pre.instantiate_async(&mut store).await {
            Ok(bindings) => Ok(Call {
                store,
                bindings,
                stderr,
            }),
            // Instantiation runs the guest's start-up code, under the same bounds.
            Err(error) => Err(Call::classify(handler, error, &store, &stderr)),
        }
    }
}

/// The handler that plans `payload`, or the answer without calling one (a skip, or an envelope
/// that cannot be read).
fn route(payload: &str) -> Result<Handler, Result<Plan, PlanError>> {
    match Envelope::read(payload) {
        Err(error) => Err(Err(plan_error(error))),
        Ok(Envelope {
            route: Route::Skip(reason),
            ..
        }) => Err(Ok(Plan {
            summary: reason,
            steps: Vec::new(),
            learned: Vec::new(),
        })),
        Ok(Envelope {
            route: Route::Push { handler, .. },
            ..
        }) => Ok(handler),
    }
}

/// One instance of the component with its store.
struct Call {
    store: Store<CallState>,
    bindings: SyncPlugin,
    stderr: MemoryOutputPipe,
}

impl Call {
    /// The deadline counts from here.
    fn start(&mut self) {
        self.store.data_mut().clock.restart();
        self.store.set_epoch_deadline(1);
    }

    async fn plan(
        &mut self,
        handler: Handler,
        connection: &Connection,
        known: &[KnownId],
        payload: &str,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        self.start();
        let planner = self.bindings.lago_hubspot_planner();
        let store = &mut self.store;
        let result = match handler {
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
        };
        result.map_err(|error| self.stopped(handler.export(), error))
    }

    fn stopped(&self, handler: &'static str, error: wasmtime::Error) -> anyhow::Error {
        Self::classify(handler, error, &self.store, &self.stderr)
    }

    /// Why a call failed: a [`GuestError`] when the host stopped it or it trapped, else the
    /// error as it came (a failure of the host's own).
    fn classify(
        handler: &'static str,
        error: wasmtime::Error,
        store: &Store<CallState>,
        stderr: &MemoryOutputPipe,
    ) -> anyhow::Error {
        let state = store.data();
        let mib = |bytes: usize| bytes as f64 / f64::from(1 << 20);
        let (stop, reason) = if error.is::<DeadlineExceeded>() {
            (
                GuestStop::Deadline,
                format!(
                    "it ran past its {} ms deadline (--guest-deadline-ms)",
                    state.clock.deadline.as_millis()
                ),
            )
        } else if let Some(asked) = state.memory.refused {
            (
                GuestStop::Memory,
                format!(
                    "it asked for {:.1} MiB of memory, more than its {:.0} MiB (--guest-memory-mib)",
                    mib(asked),
                    mib(state.memory.cap)
                ),
            )
        } else if let Some(trap) = error.downcast_ref::<wasmtime::Trap>() {
            (GuestStop::Trap, format!("it trapped: {trap}"))
        } else {
            let error = anyhow::Error::from(error);
            return with_stderr(
                error.context(format!("the sync component's `{handler}` failed")),
                stderr,
            );
        };
        tracing::debug!(handler, "guest call stopped: {error:?}");
        let printed = printed(stderr);
        let reason = if printed.is_empty() {
            reason
        } else {
            format!("{reason}; guest stderr: {printed}")
        };
        anyhow::Error::new(GuestError {
            handler,
            stop,
            reason,
        })
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

/// One instance planning event after event, where that is safe: the component keeps nothing
/// from one call to the next (its mapping is a pure function of the call's arguments), so reusing
/// its instance only saves instantiating it (≈ 30 µs a call). Each call gets the plugin's deadline;
/// the memory cap holds for the instance's whole life. A call that fails drops the instance (a
/// trapped instance refuses further calls); the next call gets a fresh one.
pub struct ReusedInstance<'a> {
    plugin: &'a Plugin,
    call: Option<Call>,
}

impl ReusedInstance<'_> {
    /// [`Plugin::plan_event`] on the kept instance.
    pub async fn plan_event(
        &mut self,
        connection: &Connection,
        known: &[KnownId],
        payload: &str,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let handler = match route(payload) {
            Err(done) => return Ok(done),
            Ok(handler) => handler,
        };
        let mut call = match self.call.take() {
            Some(call) => call,
            None => self.plugin.instantiate(None, handler.export()).await?,
        };
        let result = call.plan(handler, connection, known, payload).await;
        if result.is_ok() {
            self.call = Some(call);
        }
        result
    }
}

/// Advances `engine`'s epoch every [`EPOCH_TICK`] until the engine is dropped.
fn start_epoch_ticker(engine: &Engine) -> anyhow::Result<()> {
    let engine = engine.weak();
    std::thread::Builder::new()
        .name("guest-epoch".into())
        .spawn(move || {
            while let Some(engine) = engine.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .context("cannot start the thread that times calls into the component")?;
    Ok(())
}

/// What the guest printed on stderr (a panic's message), on one line, without Rust's hint
/// about backtraces (a component has none to show).
fn printed(stderr: &MemoryOutputPipe) -> String {
    String::from_utf8_lossy(&stderr.contents())
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("note: run with `RUST_BACKTRACE"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A failure, with the guest's stderr when it printed something.
fn with_stderr(error: anyhow::Error, stderr: &MemoryOutputPipe) -> anyhow::Error {
    let printed = printed(stderr);
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
