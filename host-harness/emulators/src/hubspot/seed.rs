//! A portal that is not empty: records and associations created "before the sync ran" (a
//! salesperson's contacts and companies, records without any `lago_*` property), plus the
//! archive and merge operations that happen to records while the sync is away
//! (hubspot-api.md §9).
//!
//! Seeding validates like an API write (property names, value formats, email rules, unique
//! values) but is not an HTTP request: it is not logged, counted or subject to faults.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::associations::link_records;
use super::merge::merge_records;
use super::objects::archive_record;
use super::records::create_record_with_id;
use super::{Emulator, Record, to_public_record};

/// What `lago-hubspot emulator --seed-records FILE.json` reads, and [`Emulator::seed`] takes:
///
/// ```json
/// { "companies": [ { "id": "9000001", "properties": { "name": "Globex", "domain": "globex.example" } } ],
///   "contacts":  [ { "properties": { "email": "kenji.tanaka@example.jp", "firstname": "Kenji" } } ],
///   "associations": [ { "from": { "type": "contacts", "id": "1000001" },
///                       "to":   { "type": "companies", "id": "9000001" } } ] }
/// ```
///
/// Every list is optional. Companies are created first, then contacts (in file order), then
/// the associations (default type, both directions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Seed {
    #[serde(default)]
    pub companies: Vec<SeedRecord>,
    #[serde(default)]
    pub contacts: Vec<SeedRecord>,
    #[serde(default)]
    pub associations: Vec<SeedAssociation>,
}

/// One record to seed: its properties (validated like an API create; only properties that
/// exist may be set, so `lago_*` ones need a deploy first) and optionally its id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRecord {
    /// A fixed record id (numeric, as a string or a number); the next free one when absent.
    #[serde(default, deserialize_with = "optional_id")]
    pub id: Option<String>,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

/// A default association between two seeded (or existing) records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedAssociation {
    pub from: SeedRef,
    pub to: SeedRef,
}

/// A record named by object type (`contacts`, `companies`, `0-1`, …) and id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SeedRef {
    #[serde(rename = "type")]
    pub object_type: String,
    #[serde(deserialize_with = "required_id")]
    pub id: String,
}

/// The records a [`Seed`] created, in its order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seeded {
    pub companies: Vec<Record>,
    pub contacts: Vec<Record>,
}

fn id_text(value: Value) -> Result<String, String> {
    match value {
        Value::String(text) => Ok(text),
        Value::Number(number) => Ok(number.to_string()),
        other => Err(format!("expected a record id, found {other}")),
    }
}

fn optional_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(value) => id_text(value).map(Some).map_err(serde::de::Error::custom),
    }
}

fn required_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    id_text(Value::deserialize(deserializer)?).map_err(serde::de::Error::custom)
}

/// The long help of `--seed-records`: the file format.
const SEED_HELP: &str = r#"Start with a lived-in portal: create the records of FILE.json before serving.

FILE.json:
  {"companies": [{"id": "9000001", "properties": {"name": "Globex", "domain": "globex.example"}}],
   "contacts": [{"properties": {"email": "kenji.tanaka@example.jp", "firstname": "Kenji"}}],
   "associations": [{"from": {"type": "contacts", "id": "1000001"},
                     "to": {"type": "companies", "id": "9000001"}}]}

Every list is optional. "id" is optional: without it a record gets the next free id
(contacts 1000001, 1000002…, companies 2000001…). Companies are created first, then contacts,
then the associations (default type, both directions). Properties are validated like API
writes: only HubSpot's standard properties exist before a deploy, and contact emails must be
valid (a top-level domain on IANA's list) and unique. Any error aborts the start."#;

/// `lago-hubspot emulator --seed-records FILE.json` (`--seed N` is the faults' random seed).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SeedArgs {
    /// Start with a lived-in portal: create the records of FILE.json first (see --help).
    #[arg(long = "seed-records", value_name = "FILE.json", long_help = SEED_HELP)]
    pub seed_file: Option<PathBuf>,
}

impl SeedArgs {
    /// Seeds `emulator` from the file, if one was given.
    pub fn apply(&self, emulator: &Emulator) -> anyhow::Result<Option<Seeded>> {
        self.seed_file
            .as_deref()
            .map(|path| emulator.seed_file(path))
            .transpose()
    }
}

impl Emulator {
    /// Creates records of one type with the next free ids, as someone working in HubSpot
    /// would have (`properties` are JSON objects, validated like an API create). All or
    /// nothing: on an error no record is created.
    pub fn seed_records(
        &self,
        object_type: &str,
        records: Vec<Value>,
    ) -> anyhow::Result<Vec<Record>> {
        let records = records
            .into_iter()
            .map(|properties| match properties {
                Value::Object(properties) => Ok(SeedRecord {
                    id: None,
                    properties,
                }),
                _ => Err(anyhow::anyhow!("properties must be a JSON object")),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.seed_typed(object_type, &records)
    }

    fn seed_typed(&self, object_type: &str, records: &[SeedRecord]) -> anyhow::Result<Vec<Record>> {
        let mut portal = self.lock();
        let index = portal
            .resolve_for_inspection(object_type)
            .ok_or_else(|| anyhow::anyhow!("unknown object type {object_type}"))?;
        let mut draft = portal.object_types[index].clone();
        let mut ids = Vec::with_capacity(records.len());
        for (position, record) in records.iter().enumerate() {
            let chosen = record
                .id
                .as_deref()
                .map(|id| {
                    id.parse::<u64>()
                        .map_err(|_| anyhow::anyhow!("record ids are numeric, got {id}"))
                })
                .transpose()?;
            let now = portal.clock.tick();
            let id = create_record_with_id(&mut draft, &record.properties, now, chosen)
                .map_err(|error| anyhow::anyhow!("{object_type} #{position}: {}", error.message))?;
            ids.push(id);
        }
        let seeded = ids
            .iter()
            .map(|id| to_public_record(&draft.records[id]))
            .collect();
        portal.object_types[index] = draft;
        Ok(seeded)
    }

    /// Seeds a whole [`Seed`]: companies, contacts, then associations. All or nothing.
    pub fn seed(&self, seed: &Seed) -> anyhow::Result<Seeded> {
        let snapshot = {
            let portal = self.lock();
            (portal.object_types.clone(), portal.associations.clone())
        };
        let outcome = self.seed_unguarded(seed);
        if outcome.is_err() {
            let mut portal = self.lock();
            (portal.object_types, portal.associations) = snapshot;
        }
        outcome
    }

    fn seed_unguarded(&self, seed: &Seed) -> anyhow::Result<Seeded> {
        let companies = self.seed_typed("companies", &seed.companies)?;
        let contacts = self.seed_typed("contacts", &seed.contacts)?;
        for association in &seed.associations {
            self.seed_association(
                &association.from.object_type,
                &association.from.id,
                &association.to.object_type,
                &association.to.id,
            )?;
        }
        Ok(Seeded {
            companies,
            contacts,
        })
    }

    /// Seeds from a JSON file in the [`Seed`] format.
    pub fn seed_file(&self, path: &Path) -> anyhow::Result<Seeded> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            anyhow::anyhow!("cannot read seed file {}: {error}", path.display())
        })?;
        let seed: Seed = serde_json::from_str(&text)
            .map_err(|error| anyhow::anyhow!("invalid seed file {}: {error}", path.display()))?;
        self.seed(&seed)
            .map_err(|error| anyhow::anyhow!("seed file {}: {error}", path.display()))
    }

    /// Associates two existing records with their pair's default type (both directions), as
    /// `PUT /crm/v4/objects/{from}/{id}/associations/default/{to}/{id}` does.
    pub fn seed_association(
        &self,
        from_type: &str,
        from_id: &str,
        to_type: &str,
        to_id: &str,
    ) -> anyhow::Result<()> {
        let mut portal = self.lock();
        let resolve = |object_type: &str, raw_id: &str| {
            let index = portal
                .resolve_for_inspection(object_type)
                .ok_or_else(|| anyhow::anyhow!("unknown object type {object_type}"))?;
            let object_type_ref = &portal.object_types[index];
            let id = object_type_ref.resolve_raw_id(raw_id).ok_or_else(|| {
                anyhow::anyhow!("no {object_type} record with id {raw_id} to associate")
            })?;
            anyhow::Ok((object_type_ref.type_id.clone(), id))
        };
        let (from_type_id, from_id) = resolve(from_type, from_id)?;
        let (to_type_id, to_id) = resolve(to_type, to_id)?;
        link_records(
            &mut portal,
            &from_type_id,
            from_id,
            &to_type_id,
            to_id,
            None,
        )
        .map_err(|error| anyhow::anyhow!("{}", error.message))?;
        Ok(())
    }

    /// Archives (deletes) a record as `DELETE /crm/v3/objects/{type}/{id}` does: reads,
    /// updates and associations by its id then fail with 404, its associations are gone and
    /// its unique values (email, `lago_customer_id`…) are free again. An error when there is
    /// no such record.
    pub fn archive(&self, object_type: &str, id: &str) -> anyhow::Result<()> {
        let mut portal = self.lock();
        let index = portal
            .resolve_for_inspection(object_type)
            .ok_or_else(|| anyhow::anyhow!("unknown object type {object_type}"))?;
        if archive_record(&mut portal, index, id) {
            Ok(())
        } else {
            anyhow::bail!("no {object_type} record with id {id} to archive")
        }
    }

    /// Merges two contacts or two companies as `POST /crm/v3/objects/{type}/merge` does: the
    /// merged record gets a new id, both old ids resolve to it, the primary's values win.
    pub fn merge(
        &self,
        object_type: &str,
        primary_id: &str,
        id_to_merge: &str,
    ) -> anyhow::Result<Record> {
        let mut portal = self.lock();
        let index = portal
            .resolve_for_inspection(object_type)
            .ok_or_else(|| anyhow::anyhow!("unknown object type {object_type}"))?;
        let id = merge_records(&mut portal, index, primary_id, id_to_merge)
            .map_err(|error| anyhow::anyhow!("{}", error.message))?;
        Ok(to_public_record(&portal.object_types[index].records[&id]))
    }
}
