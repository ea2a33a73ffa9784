//! The HubSpot operations plans are made of, built in one place. Which request each one becomes
//! is the contract's (`wit/lago-hubspot.wit`, `operation`); the host sends it.

use crate::prelude::*;

use crate::plan::{
    Associate, CreateProperties, IdRef, KnownId, Operation, PropertyValue, RecordKey, RecordKind,
    Step, Update, Upsert, find_known,
};

pub const SCHEMAS_PATH: &str = "/crm-object-schemas/v3/schemas";

pub fn properties_path(object_type: &str) -> String {
    format!("/crm/v3/properties/{object_type}")
}

/// Appends `step` to `steps`; returns the reference later steps use for its result.
pub fn push(steps: &mut Vec<Step>, step: Step) -> IdRef {
    steps.push(step);
    IdRef::result_of(steps.len() - 1)
}

/// Create property definitions (HubSpot property JSON objects) on `object_type`; a 409 means
/// another run created them first.
pub fn create_properties(object_type: &str, definitions: Vec<String>, description: String) -> Step {
    Step::new(
        Operation::CreateProperties(CreateProperties {
            object_type: object_type.to_owned(),
            definitions,
        }),
        description,
    )
}

/// Create-or-update one record keyed on a unique property, storing its HubSpot id under
/// `store_as`. Upsert rather than search-then-create: search lags behind writes, so it would
/// duplicate records.
pub fn upsert(
    object_type: &str,
    id_property: &str,
    id: &str,
    properties: Vec<PropertyValue>,
    store_as: RecordKey,
    description: String,
) -> Step {
    Step::new(
        Operation::Upsert(Upsert {
            object_type: object_type.to_owned(),
            id_property: id_property.to_owned(),
            id: id.to_owned(),
            properties,
        }),
        description,
    )
    .store_as(store_as)
}

/// Update an existing record by its HubSpot id, storing that id under `store_as`.
pub fn update(
    object_type: &str,
    record_id: &str,
    properties: Vec<PropertyValue>,
    store_as: RecordKey,
    description: String,
) -> Step {
    Step::new(
        Operation::Update(Update {
            object_type: object_type.to_owned(),
            record_id: record_id.to_owned(),
            properties,
        }),
        description,
    )
    .store_as(store_as)
}

/// The default (unlabelled) association between two records; repeating it is harmless.
pub fn associate(
    from_type: &str,
    from_id: IdRef,
    to_type: &str,
    to_id: IdRef,
    description: String,
) -> Step {
    Step::new(
        Operation::Associate(Associate {
            from_type: from_type.to_owned(),
            from_id,
            to_type: to_type.to_owned(),
            to_id,
        }),
        description,
    )
}

/// A record of a custom object another plan step associates with, by its Lago id.
pub struct Target<'a> {
    /// The HubSpot object type id of the record (`2-…`).
    pub object_type: &'a str,
    /// Its unique property, e.g. `lago_invoice_id`.
    pub id_property: &'a str,
    pub lago_id: &'a str,
    pub kind: RecordKind,
    /// How summaries and step descriptions name it, e.g. `LagoInvoice ACM-0001`.
    pub noun: String,
    /// Properties that never change once Lago set them (an invoice's number, a subscription's
    /// external id), sent with the stub so a record created for the association is recognisable
    /// before its own event fills it; rewriting them is harmless.
    pub fixed: Vec<(&'static str, String)>,
}

/// Associate `from_id` (a record of `from_type`) with `target`, appending to `steps`: directly
/// when the host knows the target's HubSpot id, else after an upsert of the target that carries
/// only its unique id property and its [`Target::fixed`] ones. That upsert creates a stub the
/// target's own event fills later, or finds the record already there; it writes nothing that can
/// change, so it never overwrites newer data.
pub fn associate_with(
    steps: &mut Vec<Step>,
    from_type: &str,
    from_id: &IdRef,
    from_noun: &str,
    target: &Target<'_>,
    known: &[KnownId],
) {
    let description = format!("associate {from_noun} with {}", target.noun);
    let to_id = match find_known(known, target.kind, target.lago_id) {
        Some(id) => IdRef::Known(id.to_owned()),
        None => {
            let mut only_id = vec![property(target.id_property, target.lago_id)];
            only_id.extend(
                target
                    .fixed
                    .iter()
                    .map(|(name, value)| property(name, value)),
            );
            push(
                steps,
                upsert(
                    target.object_type,
                    target.id_property,
                    target.lago_id,
                    only_id,
                    RecordKey::new(target.kind, target.lago_id),
                    format!("find or create {} by its id", target.noun),
                ),
            )
        }
    };
    steps.push(associate(
        from_type,
        from_id.clone(),
        target.object_type,
        to_id,
        description,
    ));
}

/// One property value.
pub fn property(name: &str, value: &str) -> PropertyValue {
    PropertyValue {
        name: name.to_owned(),
        value: value.to_owned(),
    }
}
