//! The portal model: object types with their property definitions, groups and records,
//! association types and the association edges between records.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::builtin;
use super::clock::{MonotonicClock, format_iso_millis};
use super::errors::ApiError;
use super::faults::FaultState;
use super::{EmulatorConfig, LoggedRequest};

pub(crate) const CONTACTS_TYPE_ID: &str = "0-1";
pub(crate) const COMPANIES_TYPE_ID: &str = "0-2";

/// Read-only property listing the ids merged into a record (`;`-separated).
pub(crate) const MERGED_OBJECT_IDS: &str = "hs_merged_object_ids";
/// Read-only contact property holding the emails of contacts merged into it (`;`-separated).
pub(crate) const ADDITIONAL_EMAILS: &str = "hs_additional_emails";

/// HubSpot-defined association type ids between contacts and companies.
pub(crate) const CONTACT_TO_COMPANY: u32 = 279;
pub(crate) const COMPANY_TO_CONTACT: u32 = 280;
pub(crate) const CONTACT_TO_PRIMARY_COMPANY: u32 = 1;
pub(crate) const COMPANY_TO_PRIMARY_CONTACT: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PropertyOption {
    pub label: String,
    pub value: String,
    pub description: String,
    pub display_order: i64,
    pub hidden: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct PropertyDefinition {
    pub name: String,
    pub label: String,
    pub property_type: String,
    pub field_type: String,
    pub group_name: String,
    pub description: String,
    pub options: Vec<PropertyOption>,
    pub display_order: i64,
    pub has_unique_value: bool,
    pub hidden: bool,
    pub form_field: bool,
    pub hubspot_defined: bool,
    /// Maintained by HubSpot itself (ids, timestamps); writes are refused.
    pub read_only_value: bool,
    pub searchable_in_global_search: bool,
    pub calculation_formula: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl PropertyDefinition {
    pub(crate) fn to_json(&self) -> Value {
        let options: Vec<Value> = self
            .options
            .iter()
            .map(|option| {
                json!({
                    "label": option.label,
                    "value": option.value,
                    "description": option.description,
                    "displayOrder": option.display_order,
                    "hidden": option.hidden,
                })
            })
            .collect();
        let mut property = json!({
            "name": self.name,
            "label": self.label,
            "type": self.property_type,
            "fieldType": self.field_type,
            "description": self.description,
            "groupName": self.group_name,
            "options": options,
            "displayOrder": self.display_order,
            "calculated": self.calculation_formula.is_some(),
            "externalOptions": false,
            "hasUniqueValue": self.has_unique_value,
            "hidden": self.hidden,
            "hubspotDefined": self.hubspot_defined,
            "formField": self.form_field,
            "searchableInGlobalSearch": self.searchable_in_global_search,
            "dataSensitivity": "non_sensitive",
            "modificationMetadata": {
                "archivable": !self.hubspot_defined,
                "readOnlyDefinition": self.hubspot_defined,
                "readOnlyValue": self.read_only_value,
            },
            "createdAt": format_iso_millis(self.created_at),
            "updatedAt": format_iso_millis(self.updated_at),
            "archived": false,
        });
        if let Some(formula) = &self.calculation_formula {
            property["calculationFormula"] = json!(formula);
        }
        property
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PropertyGroup {
    pub name: String,
    pub label: String,
    pub display_order: i64,
}

impl PropertyGroup {
    pub(crate) fn to_json(&self) -> Value {
        json!({
            "name": self.name,
            "label": self.label,
            "displayOrder": self.display_order,
            "archived": false,
        })
    }
}

#[derive(Debug, Clone)]
pub(crate) struct StoredRecord {
    pub id: u64,
    pub properties: BTreeMap<String, String>,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct CustomSchema {
    pub schema_id: u64,
    pub name: String,
    pub fully_qualified_name: String,
    pub singular_label: String,
    pub plural_label: String,
    pub description: Option<String>,
    pub primary_display_property: Option<String>,
    pub secondary_display_properties: Vec<String>,
    pub searchable_properties: Vec<String>,
    pub required_properties: Vec<String>,
    pub allows_sensitive_properties: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum ObjectKind {
    Standard {
        plural: &'static str,
        singular: &'static str,
    },
    Custom(Box<CustomSchema>),
}

#[derive(Debug, Clone)]
pub(crate) struct ObjectType {
    pub type_id: String,
    pub kind: ObjectKind,
    pub properties: Vec<PropertyDefinition>,
    pub groups: Vec<PropertyGroup>,
    pub records: BTreeMap<u64, StoredRecord>,
    pub next_record_id: u64,
    /// Value → record id for every unique property (and contact emails), so look-ups by
    /// `idProperty` and uniqueness checks stay constant-time on large portals.
    pub unique_index: HashMap<String, HashMap<String, u64>>,
    /// Ids merged away → the id of the record they were merged into (HubSpot keeps old ids
    /// pointing at the merged record). The target may itself have been merged again later.
    pub merged_into: HashMap<u64, u64>,
}

impl ObjectType {
    pub(crate) fn property(&self, name: &str) -> Option<&PropertyDefinition> {
        self.properties
            .iter()
            .find(|property| property.name == name)
    }

    pub(crate) fn group(&self, name: &str) -> Option<&PropertyGroup> {
        self.groups.iter().find(|group| group.name == name)
    }

    pub(crate) fn is_contacts(&self) -> bool {
        self.type_id == CONTACTS_TYPE_ID
    }

    pub(crate) fn custom_schema(&self) -> Option<&CustomSchema> {
        match &self.kind {
            ObjectKind::Custom(schema) => Some(schema),
            ObjectKind::Standard { .. } => None,
        }
    }

    /// The name used in messages such as "Could not get some CONTACT objects".
    pub(crate) fn upper_name(&self) -> String {
        match &self.kind {
            ObjectKind::Standard { singular, .. } => singular.to_uppercase(),
            ObjectKind::Custom(schema) => schema.name.to_uppercase(),
        }
    }

    /// The name HubSpot puts in "Error creating <name>." messages.
    pub(crate) fn creation_name(&self) -> String {
        match &self.kind {
            ObjectKind::Standard { singular, .. } => singular.to_uppercase(),
            ObjectKind::Custom(schema) => schema.name.clone(),
        }
    }

    /// Lower-case singular name, used in association type names (`contact_to_company`).
    pub(crate) fn association_name(&self) -> String {
        match &self.kind {
            ObjectKind::Standard { singular, .. } => (*singular).to_owned(),
            ObjectKind::Custom(schema) => schema.name.to_lowercase(),
        }
    }

    /// Key under which a record's `associations` map lists records of this type.
    pub(crate) fn association_key(&self) -> String {
        match &self.kind {
            ObjectKind::Standard { plural, .. } => (*plural).to_owned(),
            ObjectKind::Custom(schema) => schema.fully_qualified_name.to_lowercase(),
        }
    }

    /// Property holding the creation time (`hs_createdate` on custom objects).
    pub(crate) fn created_property(&self) -> &'static str {
        match self.kind {
            ObjectKind::Custom(_) => "hs_createdate",
            ObjectKind::Standard { .. } => "createdate",
        }
    }

    /// Properties returned by a read that does not name any.
    pub(crate) fn default_read_properties(&self) -> Vec<&'static str> {
        let mut names = vec![
            self.created_property(),
            "hs_lastmodifieddate",
            "hs_object_id",
        ];
        match self.type_id.as_str() {
            CONTACTS_TYPE_ID => {
                names.extend(["email", "firstname", "lastname", "lastmodifieddate"])
            }
            COMPANIES_TYPE_ID => names.extend(["name", "domain"]),
            _ => {}
        }
        names
    }

    pub(crate) fn required_properties(&self) -> &[String] {
        self.custom_schema()
            .map(|schema| schema.required_properties.as_slice())
            .unwrap_or(&[])
    }

    pub(crate) fn unique_property_count(&self) -> usize {
        self.properties
            .iter()
            .filter(|property| property.has_unique_value && !property.hubspot_defined)
            .count()
    }

    /// Whether `name` may serve as `idProperty`: a unique-value property, the record id,
    /// or a contact's email.
    pub(crate) fn is_identifier_property(&self, name: &str) -> bool {
        name == "hs_object_id"
            || (self.is_contacts() && name == "email")
            || self.property(name).is_some_and(|p| p.has_unique_value)
    }

    /// Canonical form of an identifier value (contact emails are case-insensitive).
    pub(crate) fn canonical_identifier(&self, property: &str, value: &str) -> String {
        if self.is_contacts() && property == "email" {
            value.trim().to_lowercase()
        } else {
            value.to_owned()
        }
    }

    fn is_indexed(&self, property: &str) -> bool {
        (self.is_contacts() && property == "email")
            || self.property(property).is_some_and(|p| p.has_unique_value)
    }

    /// The (property, value) pairs of a record that the unique index holds: its unique
    /// values, and for a contact its email plus the additional emails a merge left it.
    fn indexed_entries(&self, record: &StoredRecord) -> Vec<(String, String)> {
        let mut entries = Vec::new();
        for (name, value) in &record.properties {
            if self.is_indexed(name) {
                entries.push((name.clone(), value.clone()));
            } else if self.is_contacts() && name == ADDITIONAL_EMAILS {
                entries.extend(
                    value
                        .split(';')
                        .filter(|email| !email.is_empty())
                        .map(|email| ("email".to_owned(), email.to_owned())),
                );
            }
        }
        entries
    }

    /// Adds a stored record's unique values to the index (after it was written).
    pub(crate) fn index_record(&mut self, id: u64) {
        let Some(record) = self.records.get(&id) else {
            return;
        };
        for (name, value) in self.indexed_entries(record) {
            self.unique_index.entry(name).or_default().insert(value, id);
        }
    }

    /// Drops a record's unique values from the index (before it changes or goes).
    pub(crate) fn unindex_record(&mut self, id: u64) {
        let Some(record) = self.records.get(&id) else {
            return;
        };
        for (name, value) in self.indexed_entries(record) {
            if let Some(values) = self.unique_index.get_mut(&name)
                && values.get(&value) == Some(&id)
            {
                values.remove(&value);
            }
        }
    }

    /// The live record an id names: the record itself, or the record it was merged into
    /// (following later merges too). `None` once that record is archived, or never existed.
    pub(crate) fn resolve_id(&self, id: u64) -> Option<u64> {
        let mut current = id;
        // Each merge creates a new id, so the chain is short and acyclic; the bound is a guard.
        for _ in 0..=self.merged_into.len() {
            if self.records.contains_key(&current) {
                return Some(current);
            }
            current = *self.merged_into.get(&current)?;
        }
        None
    }

    /// A record id as a client sends it (a string), resolved like [`Self::resolve_id`].
    pub(crate) fn resolve_raw_id(&self, raw: &str) -> Option<u64> {
        raw.parse().ok().and_then(|id| self.resolve_id(id))
    }

    /// Whether an id was ever handed out here: a live record or one merged away.
    pub(crate) fn id_taken(&self, id: u64) -> bool {
        self.records.contains_key(&id) || self.merged_into.contains_key(&id)
    }

    /// Removes a record with its unique values (archive). Returns whether it existed.
    pub(crate) fn remove_record(&mut self, id: u64) -> Option<StoredRecord> {
        self.unindex_record(id);
        self.records.remove(&id)
    }

    /// The record whose `property` holds `value`.
    pub(crate) fn find_by_property(&self, property: &str, value: &str) -> Option<u64> {
        if property == "hs_object_id" {
            return self.resolve_raw_id(value);
        }
        let wanted = self.canonical_identifier(property, value);
        if self.is_indexed(property) {
            return self.unique_index.get(property)?.get(&wanted).copied();
        }
        self.records
            .values()
            .find(|record| record.properties.get(property) == Some(&wanted))
            .map(|record| record.id)
    }

    /// The next free record id; ids taken by seeded records are skipped.
    pub(crate) fn allocate_record_id(&mut self) -> u64 {
        while self.id_taken(self.next_record_id) {
            self.next_record_id += 1;
        }
        let id = self.next_record_id;
        self.next_record_id += 1;
        id
    }
}

/// A directional association type, e.g. contact → company (279).
#[derive(Debug, Clone)]
pub(crate) struct AssociationType {
    pub type_id: u32,
    pub from_type_id: String,
    pub to_type_id: String,
    pub category: &'static str,
    pub label: Option<String>,
    /// The unlabeled type used by the `default` endpoints.
    pub is_default: bool,
    pub name: String,
}

impl AssociationType {
    pub(crate) fn to_label_json(&self) -> Value {
        json!({ "category": self.category, "typeId": self.type_id, "label": self.label })
    }
}

/// One direction of an association between two records. Both directions are stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct AssociationEdge {
    pub from_type_id: String,
    pub from_id: u64,
    pub to_type_id: String,
    pub to_id: u64,
    pub association_type_id: u32,
}

/// The whole emulated HubSpot account.
#[derive(Debug)]
pub(crate) struct Portal {
    pub portal_id: u64,
    pub access_tokens: Vec<String>,
    pub object_types: Vec<ObjectType>,
    pub association_types: Vec<AssociationType>,
    pub associations: BTreeSet<AssociationEdge>,
    pub request_log: Vec<LoggedRequest>,
    pub faults: FaultState,
    pub oauth: super::oauth::OAuthState,
    pub clock: MonotonicClock,
    pub next_schema_id: u64,
    pub next_association_type_id: u32,
}

impl Portal {
    pub(crate) fn new(config: &EmulatorConfig) -> Self {
        let mut clock = MonotonicClock::default();
        let now = clock.tick();
        let standard_type = |type_id: &str, plural, singular, ordinal: u64| ObjectType {
            type_id: type_id.to_owned(),
            kind: ObjectKind::Standard { plural, singular },
            properties: builtin::standard_properties(type_id, now),
            groups: builtin::standard_groups(type_id),
            records: BTreeMap::new(),
            next_record_id: record_id_base(ordinal),
            unique_index: HashMap::new(),
            merged_into: HashMap::new(),
        };
        let contacts = standard_type(CONTACTS_TYPE_ID, "contacts", "contact", 1);
        let companies = standard_type(COMPANIES_TYPE_ID, "companies", "company", 2);
        let hubspot_defined =
            |type_id, from: &str, to: &str, label: Option<&str>, is_default| AssociationType {
                type_id,
                from_type_id: from.to_owned(),
                to_type_id: to.to_owned(),
                category: "HUBSPOT_DEFINED",
                label: label.map(str::to_owned),
                is_default,
                name: String::new(),
            };
        let association_types = vec![
            AssociationType {
                name: "contact_to_company".to_owned(),
                ..hubspot_defined(
                    CONTACT_TO_COMPANY,
                    CONTACTS_TYPE_ID,
                    COMPANIES_TYPE_ID,
                    None,
                    true,
                )
            },
            AssociationType {
                name: "company_to_contact".to_owned(),
                ..hubspot_defined(
                    COMPANY_TO_CONTACT,
                    COMPANIES_TYPE_ID,
                    CONTACTS_TYPE_ID,
                    None,
                    true,
                )
            },
            AssociationType {
                name: "contact_to_company_primary".to_owned(),
                ..hubspot_defined(
                    CONTACT_TO_PRIMARY_COMPANY,
                    CONTACTS_TYPE_ID,
                    COMPANIES_TYPE_ID,
                    Some("Primary"),
                    false,
                )
            },
            AssociationType {
                name: "company_to_contact_primary".to_owned(),
                ..hubspot_defined(
                    COMPANY_TO_PRIMARY_CONTACT,
                    COMPANIES_TYPE_ID,
                    CONTACTS_TYPE_ID,
                    Some("Primary"),
                    false,
                )
            },
        ];
        Self {
            portal_id: config.portal_id,
            access_tokens: config.tokens.clone(),
            object_types: vec![contacts, companies],
            association_types,
            associations: BTreeSet::new(),
            request_log: Vec::new(),
            faults: FaultState::new(config.faults.clone()),
            oauth: super::oauth::OAuthState::new(config.oauth.clone()),
            clock,
            next_schema_id: 30_000_001,
            next_association_type_id: 1_001,
        }
    }

    /// Resolves `{objectType}` the way the v3 objects/properties endpoints do: standard
    /// names and singulars, `0-x`, `2-x`, `p{portal}_{name}` and `p_{name}`. A bare custom
    /// object name is refused, as HubSpot has done since 2025.
    pub(crate) fn resolve_object_type(&self, raw: &str) -> Result<usize, ApiError> {
        let lowered = raw.to_lowercase();
        let found = match lowered.as_str() {
            "contacts" | "contact" => self.index_of_type_id(CONTACTS_TYPE_ID),
            "companies" | "company" => self.index_of_type_id(COMPANIES_TYPE_ID),
            _ if lowered.starts_with("0-") || lowered.starts_with("2-") => {
                self.index_of_type_id(&lowered)
            }
            _ => self.index_of_qualified_name(&lowered),
        };
        found.ok_or_else(|| ApiError::unknown_object_type(raw))
    }

    /// Resolves a schema reference: type id, fully qualified name or the schema's name.
    pub(crate) fn resolve_schema(&self, raw: &str) -> Option<usize> {
        let lowered = raw.to_lowercase();
        self.object_types.iter().position(|object_type| {
            object_type.custom_schema().is_some_and(|schema| {
                object_type.type_id == lowered
                    || schema.fully_qualified_name.to_lowercase() == lowered
                    || schema.name.to_lowercase() == lowered
            })
        })
    }

    /// Lenient resolution for the inspection API: anything the API accepts plus schema names.
    pub(crate) fn resolve_for_inspection(&self, raw: &str) -> Option<usize> {
        self.resolve_object_type(raw)
            .ok()
            .or_else(|| self.resolve_schema(raw))
    }

    fn index_of_type_id(&self, type_id: &str) -> Option<usize> {
        self.object_types
            .iter()
            .position(|object_type| object_type.type_id == type_id)
    }

    fn index_of_qualified_name(&self, lowered: &str) -> Option<usize> {
        let short_prefix_name = lowered.strip_prefix("p_");
        self.object_types.iter().position(|object_type| {
            object_type.custom_schema().is_some_and(|schema| {
                schema.fully_qualified_name.to_lowercase() == lowered
                    || short_prefix_name == Some(schema.name.to_lowercase().as_str())
            })
        })
    }

    pub(crate) fn type_index(&self, type_id: &str) -> Option<usize> {
        self.index_of_type_id(type_id)
    }

    pub(crate) fn association_types_between(
        &self,
        from_type_id: &str,
        to_type_id: &str,
    ) -> Vec<&AssociationType> {
        self.association_types
            .iter()
            .filter(|kind| kind.from_type_id == from_type_id && kind.to_type_id == to_type_id)
            .collect()
    }

    pub(crate) fn default_association_type(
        &self,
        from_type_id: &str,
        to_type_id: &str,
    ) -> Option<&AssociationType> {
        self.association_types_between(from_type_id, to_type_id)
            .into_iter()
            .find(|kind| kind.is_default)
    }

    pub(crate) fn association_type(&self, type_id: u32) -> Option<&AssociationType> {
        self.association_types
            .iter()
            .find(|kind| kind.type_id == type_id)
    }

    /// Defines the default association types in both directions between a custom object and
    /// another type. Returns the id of the `other → custom` type, which HubSpot reports as the
    /// schema's association definition id.
    pub(crate) fn define_custom_association(
        &mut self,
        custom_type_id: &str,
        other_type_id: &str,
    ) -> u32 {
        if let Some(existing) = self.default_association_type(other_type_id, custom_type_id) {
            return existing.type_id;
        }
        let name_of = |portal: &Self, type_id: &str| {
            portal
                .type_index(type_id)
                .map(|index| portal.object_types[index].association_name())
                .unwrap_or_default()
        };
        let custom_name = name_of(self, custom_type_id);
        let other_name = name_of(self, other_type_id);
        let inbound_id = self.next_association_type_id;
        let outbound_id = inbound_id + 1;
        self.next_association_type_id += 2;
        self.association_types.push(AssociationType {
            type_id: inbound_id,
            from_type_id: other_type_id.to_owned(),
            to_type_id: custom_type_id.to_owned(),
            category: "USER_DEFINED",
            label: None,
            is_default: true,
            name: format!("{other_name}_to_{custom_name}"),
        });
        self.association_types.push(AssociationType {
            type_id: outbound_id,
            from_type_id: custom_type_id.to_owned(),
            to_type_id: other_type_id.to_owned(),
            category: "USER_DEFINED",
            label: None,
            is_default: true,
            name: format!("{custom_name}_to_{other_name}"),
        });
        inbound_id
    }

    /// Ids of the records of `to_type_id` associated with one record, ascending.
    pub(crate) fn associated_ids(
        &self,
        from_type_id: &str,
        from_id: u64,
        to_type_id: &str,
    ) -> Vec<u64> {
        let ids: BTreeSet<u64> = self
            .edges_from(from_type_id, from_id)
            .filter(|edge| edge.to_type_id == to_type_id)
            .map(|edge| edge.to_id)
            .collect();
        ids.into_iter().collect()
    }

    pub(crate) fn edges_from<'a>(
        &'a self,
        from_type_id: &'a str,
        from_id: u64,
    ) -> impl Iterator<Item = &'a AssociationEdge> + 'a {
        self.associations
            .iter()
            .filter(move |edge| edge.from_type_id == from_type_id && edge.from_id == from_id)
    }

    /// Drops every association touching a record (used when it is archived).
    pub(crate) fn forget_record_associations(&mut self, type_id: &str, id: u64) {
        self.associations.retain(|edge| {
            !((edge.from_type_id == type_id && edge.from_id == id)
                || (edge.to_type_id == type_id && edge.to_id == id))
        });
    }
}

/// First record id of the n-th object type. Each type gets its own range so that an id used
/// with the wrong object type is caught as "not found" instead of silently matching.
pub(crate) fn record_id_base(ordinal: u64) -> u64 {
    ordinal * 1_000_000 + 1
}
