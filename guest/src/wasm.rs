//! Component glue: WIT types <-> plain types, the `planner` export, deploy's reads over
//! `wasi:http/outgoing-handler`, and what a `no_std` component provides itself (its allocator, and
//! a panic handler that writes the message to `wasi:cli/stderr` before trapping).
//!
//! Every binding, WASI's included, is generated from the one world in `wit/`.

use serde_json::Value;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

use crate::plan as p;
use crate::prelude::*;

wit_bindgen::generate!({ path: "../wit", world: "sync-plugin", generate_all });

// `memcmp`, `memcpy`, `memset` and friends, which the Rust std would have brought: wasi-libc's, from
// the toolchain's self-contained libraries (only those members link, and they import nothing).
#[link(name = "c")]
unsafe extern "C" {}

#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

/// The canonical ABI's allocator export, through which the host hands the component its arguments
/// (on wasm32-wasip2 wit-bindgen leaves it to libc, which this component does not link): `align`
/// and sizes in bytes; a zero `old_len` allocates afresh.
#[unsafe(no_mangle)]
unsafe extern "C" fn cabi_realloc(
    old_ptr: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    use alloc::alloc::{Layout, alloc, handle_alloc_error, realloc};
    if new_len == 0 {
        // A zero-sized value needs no memory, only a well-aligned address.
        return align as *mut u8;
    }
    let Ok(layout) = Layout::from_size_align(new_len, align) else {
        core::arch::wasm32::unreachable()
    };
    // SAFETY: the canonical ABI passes back a pointer this function returned, with the size and
    // alignment it was allocated with; `layout` has a non-zero size.
    let ptr = unsafe {
        if old_len == 0 {
            alloc(layout)
        } else {
            let old = Layout::from_size_align_unchecked(old_len, align);
            realloc(old_ptr, old, new_len)
        }
    };
    if ptr.is_null() {
        handle_alloc_error(layout);
    }
    ptr
}

/// `blocking-write-and-flush` takes at most 4096 bytes a call (`wasi:io/streams`).
const STDERR_CHUNK: usize = 4096;

/// A panic is a bug (the handlers answer every payload with a plan or an error): say where and
/// why on stderr, which the host reports with the trap, then trap.
#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    let message = format!("{info}\n");
    let stderr = wasi::cli::stderr::get_stderr();
    for chunk in message.as_bytes().chunks(STDERR_CHUNK) {
        if stderr.blocking_write_and_flush(chunk).is_err() {
            break;
        }
    }
    core::arch::wasm32::unreachable()
}

use exports::lago::hubspot::planner::Guest;
use lago::hubspot::types as wit;

struct Planner;

impl Guest for Planner {
    fn deploy(connection: wit::Connection) -> Result<wit::Plan, wit::PlanError> {
        convert(crate::deploy(&connection.into(), &mut WasiHttpReader))
    }

    fn on_customer(
        connection: wit::Connection,
        known: Vec<wit::KnownId>,
        payload: String,
    ) -> Result<wit::Plan, wit::PlanError> {
        convert(crate::on_customer(
            &connection.into(),
            &known_ids(known),
            &payload,
        ))
    }

    fn on_subscription(
        connection: wit::Connection,
        known: Vec<wit::KnownId>,
        payload: String,
    ) -> Result<wit::Plan, wit::PlanError> {
        convert(crate::on_subscription(
            &connection.into(),
            &known_ids(known),
            &payload,
        ))
    }

    fn on_invoice(
        connection: wit::Connection,
        known: Vec<wit::KnownId>,
        payload: String,
    ) -> Result<wit::Plan, wit::PlanError> {
        convert(crate::on_invoice(
            &connection.into(),
            &known_ids(known),
            &payload,
        ))
    }

    fn on_credit_note(
        connection: wit::Connection,
        known: Vec<wit::KnownId>,
        payload: String,
    ) -> Result<wit::Plan, wit::PlanError> {
        convert(crate::on_credit_note(
            &connection.into(),
            &known_ids(known),
            &payload,
        ))
    }
}

export!(Planner);

/// The authority the host maps onto the connection's HubSpot base URL (and authenticates).
const HUBSPOT_AUTHORITY: &str = "api.hubapi.com";
/// Schema listings with every property definition run to a few hundred KB; more is not HubSpot.
const MAX_BODY: usize = 16 * 1024 * 1024;

struct WasiHttpReader;

impl crate::HubspotReader for WasiHttpReader {
    fn get_json(&mut self, path: &str) -> Result<Value, p::PlanError> {
        let failed = |why: String| p::PlanError::HubspotReadFailed(format!("GET {path}: {why}"));
        let response = get(path).map_err(|e| failed(format!("{e:?}")))?;
        let status = response.status();
        let body = read_body(&response).map_err(failed)?;
        let json: Result<Value, _> = serde_json::from_slice(&body);
        if !(200..300).contains(&status) {
            // HubSpot errors carry a human `message`; fall back to the raw body.
            let message = json
                .ok()
                .and_then(|j| j["message"].as_str().map(str::to_owned));
            let message = message
                .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(500).collect());
            return Err(failed(format!("HTTP {status}: {message}")));
        }
        json.map_err(|e| failed(format!("the response is not JSON ({e})")))
    }
}

fn get(path: &str) -> Result<IncomingResponse, ErrorCode> {
    let headers = Fields::from_list(&[("accept".to_owned(), b"application/json".to_vec())])
        .map_err(|e| ErrorCode::InternalError(Some(format!("headers: {e:?}"))))?;
    let request = OutgoingRequest::new(headers);
    let refused =
        |what: &str| ErrorCode::InternalError(Some(format!("the request refused its {what}")));
    request
        .set_method(&Method::Get)
        .map_err(|()| refused("method"))?;
    request
        .set_scheme(Some(&Scheme::Https))
        .map_err(|()| refused("scheme"))?;
    request
        .set_authority(Some(HUBSPOT_AUTHORITY))
        .map_err(|()| refused("authority"))?;
    request
        .set_path_with_query(Some(path))
        .map_err(|()| refused("path"))?;
    let pending = outgoing_handler::handle(request, None)?;
    pending.subscribe().block();
    match pending.get() {
        Some(Ok(result)) => result,
        Some(Err(())) => Err(ErrorCode::InternalError(Some(
            "response taken twice".into(),
        ))),
        None => Err(ErrorCode::InternalError(Some(
            "response not ready after waiting".into(),
        ))),
    }
}

fn read_body(response: &IncomingResponse) -> Result<Vec<u8>, String> {
    let body = response
        .consume()
        .map_err(|()| "the response body was already taken".to_owned())?;
    let stream = body
        .stream()
        .map_err(|()| "the response body stream was already taken".to_owned())?;
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(format!("reading the body: {}", e.to_debug_string()));
            }
        }
        if bytes.len() > MAX_BODY {
            return Err(format!("the response body exceeds {MAX_BODY} bytes"));
        }
    }
    Ok(bytes)
}

fn convert(result: Result<p::Plan, p::PlanError>) -> Result<wit::Plan, wit::PlanError> {
    result.map(Into::into).map_err(Into::into)
}

fn known_ids(known: Vec<wit::KnownId>) -> Vec<p::KnownId> {
    known
        .into_iter()
        .map(|k| p::KnownId {
            key: k.key.into(),
            hubspot_id: k.hubspot_id,
        })
        .collect()
}

impl From<wit::Connection> for p::Connection {
    fn from(c: wit::Connection) -> Self {
        Self {
            code: c.code,
            default_targeted_object: match c.default_targeted_object {
                wit::TargetedObject::Companies => p::TargetedObject::Companies,
                wit::TargetedObject::Contacts => p::TargetedObject::Contacts,
            },
            lago_app_url: c.lago_app_url,
            organization_slug: c.organization_slug,
            subscriptions_object_type_id: c.subscriptions_object_type_id,
            invoices_object_type_id: c.invoices_object_type_id,
            credit_notes_object_type_id: c.credit_notes_object_type_id,
            sync_subscriptions: c.sync_subscriptions,
            sync_invoices: c.sync_invoices,
            sync_credit_notes: c.sync_credit_notes,
            sync_unlinked_customers: c.sync_unlinked_customers,
            sole_connection: c.sole_connection,
        }
    }
}

impl From<wit::RecordKey> for p::RecordKey {
    fn from(k: wit::RecordKey) -> Self {
        let kind = match k.kind {
            wit::RecordKind::Company => p::RecordKind::Company,
            wit::RecordKind::Contact => p::RecordKind::Contact,
            wit::RecordKind::Subscription => p::RecordKind::Subscription,
            wit::RecordKind::Invoice => p::RecordKind::Invoice,
            wit::RecordKind::ObjectSchema => p::RecordKind::ObjectSchema,
            wit::RecordKind::CreditNote => p::RecordKind::CreditNote,
        };
        Self {
            kind,
            lago_id: k.lago_id,
        }
    }
}

impl From<p::RecordKey> for wit::RecordKey {
    fn from(k: p::RecordKey) -> Self {
        let kind = match k.kind {
            p::RecordKind::Company => wit::RecordKind::Company,
            p::RecordKind::Contact => wit::RecordKind::Contact,
            p::RecordKind::Subscription => wit::RecordKind::Subscription,
            p::RecordKind::Invoice => wit::RecordKind::Invoice,
            p::RecordKind::ObjectSchema => wit::RecordKind::ObjectSchema,
            p::RecordKind::CreditNote => wit::RecordKind::CreditNote,
        };
        Self {
            kind,
            lago_id: k.lago_id,
        }
    }
}

impl From<p::Plan> for wit::Plan {
    fn from(plan: p::Plan) -> Self {
        Self {
            summary: plan.summary,
            steps: plan.steps.into_iter().map(Into::into).collect(),
            learned: plan
                .learned
                .into_iter()
                .map(|k| wit::KnownId {
                    key: k.key.into(),
                    hubspot_id: k.hubspot_id,
                })
                .collect(),
        }
    }
}

impl From<p::Step> for wit::Step {
    fn from(step: p::Step) -> Self {
        Self {
            description: step.description,
            method: match step.method {
                p::HttpMethod::Get => wit::HttpMethod::Get,
                p::HttpMethod::Post => wit::HttpMethod::Post,
                p::HttpMethod::Put => wit::HttpMethod::Put,
                p::HttpMethod::Patch => wit::HttpMethod::Patch,
                p::HttpMethod::Delete => wit::HttpMethod::Delete,
            },
            path: step.path,
            query: step.query,
            body: step.body,
            accept_statuses: step.accept_statuses,
            captures: step
                .captures
                .into_iter()
                .map(|c| wit::Capture {
                    name: c.name,
                    pointer: c.pointer,
                    store_as: c.store_as.map(Into::into),
                })
                .collect(),
        }
    }
}

impl From<p::PlanError> for wit::PlanError {
    fn from(error: p::PlanError) -> Self {
        match error {
            p::PlanError::MalformedPayload(m) => Self::MalformedPayload(m),
            p::PlanError::UnsupportedEvent(m) => Self::UnsupportedEvent(m),
            p::PlanError::MissingField(m) => Self::MissingField(m),
            p::PlanError::NotDeployed(m) => Self::NotDeployed(m),
            p::PlanError::HubspotReadFailed(m) => Self::HubspotReadFailed(m),
        }
    }
}
