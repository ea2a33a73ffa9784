//! Component glue: WIT types <-> plain types, the `planner` export, deploy's reads over
//! `wasi:http/outgoing-handler`, and what a `no_std` component provides itself (its allocator, and
//! a panic handler that writes the message to `wasi:cli/stderr` before trapping).
//!
//! Every binding, WASI's included, is generated from the one world in `wit/`.

use serde_json::Value;

use crate::bindings::exports::lago::hubspot::planner::Guest;
use crate::bindings::wasi;
use crate::plan::{Connection, KnownId, Plan, PlanError};
use crate::prelude::*;
use wasi::http::outgoing_handler;
use wasi::http::types::{ErrorCode, Fields, IncomingResponse, Method, OutgoingRequest, Scheme};
use wasi::io::streams::StreamError;

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

struct Planner;

/// The plan types are the generated ones ([`crate::plan`]): no conversion at the boundary.
impl Guest for Planner {
    fn deploy(connection: Connection) -> Result<Plan, PlanError> {
        crate::deploy(&connection, &mut WasiHttpReader)
    }

    fn on_customer(
        connection: Connection,
        known: Vec<KnownId>,
        payload: String,
    ) -> Result<Plan, PlanError> {
        #[cfg(feature = "misbehave")]
        crate::misbehave::if_asked(&payload);
        crate::on_customer(&connection, &known, &payload)
    }

    fn on_subscription(
        connection: Connection,
        known: Vec<KnownId>,
        payload: String,
    ) -> Result<Plan, PlanError> {
        #[cfg(feature = "misbehave")]
        crate::misbehave::if_asked(&payload);
        crate::on_subscription(&connection, &known, &payload)
    }

    fn on_invoice(
        connection: Connection,
        known: Vec<KnownId>,
        payload: String,
    ) -> Result<Plan, PlanError> {
        #[cfg(feature = "misbehave")]
        crate::misbehave::if_asked(&payload);
        crate::on_invoice(&connection, &known, &payload)
    }

    fn on_credit_note(
        connection: Connection,
        known: Vec<KnownId>,
        payload: String,
    ) -> Result<Plan, PlanError> {
        #[cfg(feature = "misbehave")]
        crate::misbehave::if_asked(&payload);
        crate::on_credit_note(&connection, &known, &payload)
    }
}

crate::bindings::export!(Planner with_types_in crate::bindings);

/// The authority the host maps onto the connection's HubSpot base URL (and authenticates).
const HUBSPOT_AUTHORITY: &str = "api.hubapi.com";
/// Schema listings with every property definition run to a few hundred KB; more is not HubSpot.
const MAX_BODY: usize = 16 * 1024 * 1024;

struct WasiHttpReader;

impl crate::HubspotReader for WasiHttpReader {
    fn get_json(&mut self, path: &str) -> Result<Value, PlanError> {
        let failed = |why: String| PlanError::HubspotReadFailed(format!("GET {path}: {why}"));
        let response = get(path).map_err(|e| failed(describe(&e)))?;
        let status = response.status();
        let body = read_body(&response).map_err(failed)?;
        let text =
            core::str::from_utf8(&body).map_err(|_| failed("the response is not UTF-8".into()));
        let json = text.clone().and_then(|text| {
            crate::json::parse(text).map_err(|e| failed(format!("the response is not JSON ({e})")))
        });
        if !(200..300).contains(&status) {
            // HubSpot errors carry a human `message`; fall back to the start of the raw body.
            let message = match (&json, text) {
                (Ok(json), _) if json["message"].is_string() => {
                    json["message"].as_str().unwrap_or_default().to_owned()
                }
                (_, Ok(text)) => text.chars().take(500).collect(),
                (_, Err(_)) => "(a body that is not UTF-8)".to_owned(),
            };
            return Err(failed(format!("HTTP {status}: {message}")));
        }
        json
    }
}

fn get(path: &str) -> Result<IncomingResponse, ErrorCode> {
    let headers = Fields::from_list(&[("accept".to_owned(), b"application/json".to_vec())])
        .map_err(|_| ErrorCode::InternalError(Some("the host refused the headers".into())))?;
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

/// The `wasi:http` errors this host answers with, in words (a `Debug` of `error-code` would
/// bring its forty variants' names and string escaping into the component).
fn describe(error: &ErrorCode) -> String {
    match error {
        ErrorCode::HttpRequestDenied => "the host refused the request".into(),
        ErrorCode::DestinationUnavailable => "HubSpot did not answer".into(),
        ErrorCode::HttpResponseIncomplete => "HubSpot's answer was incomplete".into(),
        ErrorCode::InternalError(Some(message)) => message.clone(),
        _ => "the request failed (a wasi:http error-code)".into(),
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
