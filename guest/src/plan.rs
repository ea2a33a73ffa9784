//! The plan types are the ones generated from the WIT contract (`lago:hubspot/types`, see
//! [`crate::bindings`]): the mapping builds them directly, natively as in the component. This
//! module adds the helpers the mapping uses.

use crate::prelude::*;

pub use crate::bindings::lago::hubspot::types::{
    Associate, Connection, CreateProperties, DefineAssociation, HttpMethod, IdRef, KnownId,
    Operation, Plan, PlanError, PropertyValue, RecordKey, RecordKind, Request, Step,
    TargetedObject, Update, Upsert,
};

impl TargetedObject {
    /// Lago's spelling, which is also the HubSpot object type in API paths.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "companies" => Some(Self::Companies),
            "contacts" => Some(Self::Contacts),
            _ => None,
        }
    }

    /// The HubSpot object type in API paths: `companies` or `contacts`.
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

impl RecordKey {
    pub fn new(kind: RecordKind, lago_id: &str) -> Self {
        Self {
            kind,
            lago_id: lago_id.to_owned(),
        }
    }
}

/// The HubSpot id stored under `kind`/`lago_id`, if any.
pub fn find_known<'a>(known: &'a [KnownId], kind: RecordKind, lago_id: &str) -> Option<&'a str> {
    known
        .iter()
        .find(|k| k.key.kind == kind && k.key.lago_id == lago_id && !k.hubspot_id.is_empty())
        .map(|k| k.hubspot_id.as_str())
}

impl Step {
    /// A step whose result, if its operation has one, is not stored.
    pub fn new(operation: Operation, description: impl Into<String>) -> Self {
        Self {
            description: description.into(),
            operation,
            store_as: None,
        }
    }

    /// Store the step's result (a HubSpot id) under `key` once the step ran.
    pub fn store_as(mut self, key: RecordKey) -> Self {
        self.store_as = Some(key);
        self
    }
}

impl IdRef {
    /// The result of the step at `index` of the same plan.
    pub fn result_of(index: usize) -> Self {
        // Plans hold a handful of steps; an index beyond u32 cannot be planned.
        Self::ResultOf(u32::try_from(index).unwrap_or(u32::MAX))
    }
}

impl Plan {
    /// An empty plan; `reason` tells a person why nothing is sent.
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::new(reason, Vec::new())
    }

    pub fn new(summary: impl Into<String>, steps: Vec<Step>) -> Self {
        Self {
            summary: summary.into(),
            steps,
            learned: Vec::new(),
        }
    }
}

impl PlanError {
    /// What went wrong, for a person.
    pub fn message(&self) -> String {
        match self {
            Self::MalformedPayload(m) => format!("malformed Lago payload: {m}"),
            Self::UnsupportedEvent(m) => format!("unsupported event: {m}"),
            Self::MissingField(m) => format!("missing field: {m}"),
            Self::NotDeployed(m) => format!("connection not deployed: {m}"),
            Self::HubspotReadFailed(m) => format!("HubSpot read failed: {m}"),
        }
    }
}
