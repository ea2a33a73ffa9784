//! Plain-Rust mirrors of the WIT types (`lago:hubspot/types`), so the mapping code and its tests
//! run natively; `wasm.rs` converts them at the component boundary.

use crate::prelude::*;

use core::fmt;

/// Which HubSpot standard object a Lago customer becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetedObject {
    Companies,
    Contacts,
}

impl TargetedObject {
    /// Lago's spelling, which is also the HubSpot object type in API paths.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "companies" => Some(Self::Companies),
            "contacts" => Some(Self::Contacts),
            _ => None,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Self::Companies => "companies",
            Self::Contacts => "contacts",
        }
    }

    /// Singular, for summaries.
    pub fn noun(self) -> &'static str {
        match self {
            Self::Companies => "company",
            Self::Contacts => "contact",
        }
    }

    pub fn record_kind(self) -> RecordKind {
        match self {
            Self::Companies => RecordKind::Company,
            Self::Contacts => RecordKind::Contact,
        }
    }
}

/// Connection settings the host passes with every call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub code: String,
    pub default_targeted_object: TargetedObject,
    pub lago_app_url: String,
    pub organization_slug: String,
    pub subscriptions_object_type_id: Option<String>,
    pub invoices_object_type_id: Option<String>,
    /// LagoCreditNotes, deployed only when `sync_credit_notes` is on.
    pub credit_notes_object_type_id: Option<String>,
    pub sync_subscriptions: bool,
    pub sync_invoices: bool,
    /// Opt-in: credit notes are not part of Lago's own integration.
    pub sync_credit_notes: bool,
    pub sync_unlinked_customers: bool,
    /// The host serves only this connection: a HubSpot link naming any code belongs to it.
    pub sole_connection: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Company,
    Contact,
    Subscription,
    Invoice,
    /// A schema name, or two joined by `/` for an association definition between them.
    ObjectSchema,
    CreditNote,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey {
    pub kind: RecordKind,
    pub lago_id: String,
}

impl RecordKey {
    pub fn new(kind: RecordKind, lago_id: &str) -> Self {
        Self {
            kind,
            lago_id: lago_id.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownId {
    pub key: RecordKey,
    pub hubspot_id: String,
}

/// The HubSpot id stored under `kind`/`lago_id`, if any.
pub fn find_known<'a>(known: &'a [KnownId], kind: RecordKind, lago_id: &str) -> Option<&'a str> {
    known
        .iter()
        .find(|k| k.key.kind == kind && k.key.lago_id == lago_id && !k.hubspot_id.is_empty())
        .map(|k| k.hubspot_id.as_str())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capture {
    pub name: String,
    pub pointer: String,
    pub store_as: Option<RecordKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub description: String,
    pub method: HttpMethod,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub body: Option<String>,
    pub accept_statuses: Vec<u16>,
    pub captures: Vec<Capture>,
}

impl Step {
    pub fn new(
        method: HttpMethod,
        path: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        Self {
            description: description.into(),
            method,
            path: path.into(),
            query: Vec::new(),
            body: None,
            accept_statuses: Vec::new(),
            captures: Vec::new(),
        }
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    pub fn accept(mut self, status: u16) -> Self {
        self.accept_statuses.push(status);
        self
    }

    /// Take `pointer` from the response as `{{name}}`, and store it under `store_as` when given.
    pub fn capture(mut self, name: &str, pointer: &str, store_as: Option<RecordKey>) -> Self {
        self.captures.push(Capture {
            name: name.to_owned(),
            pointer: pointer.to_owned(),
            store_as,
        });
        self
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub summary: String,
    pub steps: Vec<Step>,
    pub learned: Vec<KnownId>,
}

impl Plan {
    /// An empty plan; `reason` tells a person why nothing is sent.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self {
            summary: reason.into(),
            ..Self::default()
        }
    }

    pub fn new(summary: impl Into<String>, steps: Vec<Step>) -> Self {
        Self {
            summary: summary.into(),
            steps,
            learned: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    MalformedPayload(String),
    UnsupportedEvent(String),
    MissingField(String),
    NotDeployed(String),
    HubspotReadFailed(String),
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedPayload(m) => write!(f, "malformed Lago payload: {m}"),
            Self::UnsupportedEvent(m) => write!(f, "unsupported event: {m}"),
            Self::MissingField(m) => write!(f, "missing field: {m}"),
            Self::NotDeployed(m) => write!(f, "connection not deployed: {m}"),
            Self::HubspotReadFailed(m) => write!(f, "HubSpot read failed: {m}"),
        }
    }
}

impl core::error::Error for PlanError {}
