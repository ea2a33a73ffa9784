//! The lived-in portal at the level of whole events (hubspot-api.md §9), for the
//! [`pipeline`](crate::pipeline): a new company adopts the one HubSpot already holds for its
//! domain ([`match_companies`]), and an event that failed on an id that went stale (a record
//! deleted or merged, a linked record that is gone) heals its ids ([`heal_ids`]) and runs again.
//! Single refused writes are recovered by [`crate::executor::recovery`].

use std::collections::HashMap;

use bytes::Bytes;
use lago_hubspot_guest::lago::{Customer, FromLago as _, hubspot_entries};
use lago_hubspot_guest::webhooks::{Envelope, Route};
use serde_json::{Value, json};

use crate::config::MatchCompanies;
use crate::executor::{Call, ExecError, Executor};
use crate::runtime::{HttpMethod, Operation, Plan, RecordKind, Update};
use crate::sync::{EventRef, Syncer};

/// `--match-companies domain`: before a new company is written for a customer HubSpot has no id
/// for yet, look up the companies that already have its domain (one search per 100 domains,
/// within search's own budget of 5 requests/s); when exactly one does and it belongs to no
/// other Lago customer, the plan updates that company instead of creating one next to it. Run
/// before a plan is recorded, so a resumed plan never creates the duplicate either.
///
/// `plans` come with a key of the caller's (its slot). When the lookup fails (HubSpot refused
/// it, or did not answer), the keys of the plans that needed it come back with the error:
/// writing them anyway could create the duplicate the lookup is there to prevent, so their
/// events end as the retry table says of the error (retried later, or parked until the daily
/// reset), and the other plans go on.
pub async fn match_companies<'p, K>(
    syncer: &Syncer,
    plans: impl Iterator<Item = (K, &'p mut Plan)>,
) -> Result<(), (Vec<K>, ExecError)> {
    if syncer.settings().match_companies == MatchCompanies::None {
        return Ok(());
    }
    let code = syncer.settings().code.clone();
    // The plans whose first step would create a company for a customer not seen before.
    let mut wanted: Vec<(K, &'p mut Plan, String, String)> = Vec::new();
    for (key, plan) in plans {
        let Some((lago_id, domain)) = new_company(plan) else {
            continue;
        };
        let known = syncer
            .store()
            .hubspot_id(&code, RecordKind::Company, &lago_id)
            .ok()
            .flatten();
        if known.is_none() {
            wanted.push((key, plan, lago_id, domain));
        }
    }
    if wanted.is_empty() {
        return Ok(());
    }
    // HubSpot keeps domains without `www.`; a customer's URL often has it.
    let mut domains: Vec<String> = wanted
        .iter()
        .flat_map(|(_, _, _, d)| [d.clone(), format!("www.{d}")])
        .collect();
    domains.sort();
    domains.dedup();
    let holders = match companies_by_domain(&syncer.executor(), &domains).await {
        Ok(holders) => holders,
        Err(error) => {
            let keys = wanted.into_iter().map(|(key, ..)| key).collect();
            return Err((keys, error));
        }
    };
    for (_, plan, lago_id, domain) in wanted {
        let Some([(id, holder)]) = holders.get(&domain).map(Vec::as_slice) else {
            continue;
        };
        if holder.as_deref().is_some_and(|other| other != lago_id) {
            continue;
        }
        // Search lags behind writes, and other plans of this run or of other workers may be
        // adopting it right now: the company must not be claimed by another customer, in the
        // store or in this process.
        let stored = syncer
            .store()
            .lago_id_for(&code, RecordKind::Company, id)
            .ok()
            .flatten();
        let portal = syncer.client().base_url();
        if stored.is_some_and(|other| other != lago_id) || !claim_company(portal, id, &lago_id) {
            continue;
        }
        // The upsert becomes an update of the company found: same properties, same stored key.
        let step = &mut plan.steps[0];
        let Operation::Upsert(upsert) = &mut step.operation else {
            continue;
        };
        step.operation = Operation::Update(Update {
            object_type: std::mem::take(&mut upsert.object_type),
            record_id: id.clone(),
            properties: std::mem::take(&mut upsert.properties),
        });
        step.description =
            format!("adopt HubSpot company {id}, which already has the domain {domain}");
        plan.summary = format!(
            "{} (adopting HubSpot company {id}, which has the domain {domain})",
            plan.summary
        );
    }
    Ok(())
}

/// Claims HubSpot company `id` of the portal at `portal` (its API URL) for `lago_id` in this
/// process; false when another customer has.
fn claim_company(portal: &str, id: &str, lago_id: &str) -> bool {
    static CLAIMS: std::sync::LazyLock<std::sync::Mutex<HashMap<(String, String), String>>> =
        std::sync::LazyLock::new(Default::default);
    let mut claims = CLAIMS.lock().unwrap_or_else(|p| p.into_inner());
    let holder = claims
        .entry((portal.to_owned(), id.to_owned()))
        .or_insert_with(|| lago_id.to_owned());
    holder == lago_id
}

/// A domain as HubSpot keeps it: lower case, without `www.`.
fn bare_domain(domain: &str) -> String {
    let domain = domain.trim().to_ascii_lowercase();
    domain
        .strip_prefix("www.")
        .map(str::to_owned)
        .unwrap_or(domain)
}

/// The Lago id and domain of a plan whose first step upserts a company by `lago_customer_id`.
fn new_company(plan: &Plan) -> Option<(String, String)> {
    let Operation::Upsert(upsert) = &plan.steps.first()?.operation else {
        return None;
    };
    if upsert.object_type != "companies" || upsert.id_property != "lago_customer_id" {
        return None;
    }
    let domain = upsert.properties.iter().find(|p| p.name == "domain")?;
    let domain = bare_domain(&domain.value);
    (!domain.is_empty()).then(|| (upsert.id.clone(), domain))
}

/// Companies holding each domain: their ids and the `lago_customer_id` they carry.
async fn companies_by_domain(
    executor: &Executor<'_>,
    domains: &[String],
) -> Result<HashMap<String, Vec<(String, Option<String>)>>, ExecError> {
    let path = "/crm/v3/objects/companies/search";
    let mut holders: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    for chunk in domains.chunks(100) {
        let mut after: Option<String> = None;
        loop {
            let mut request = json!({
                "filterGroups": [{"filters": [
                    {"propertyName": "domain", "operator": "IN", "values": chunk}
                ]}],
                "properties": ["domain", "lago_customer_id"],
                "limit": 200,
            });
            if let Some(after) = &after {
                request["after"] = json!(after);
            }
            let search = Call::new(HttpMethod::Post, "find companies by domain");
            let body = Bytes::from(request.to_string());
            let (response, _) = executor
                .send_with_retries(&search, 1, path, Some(body))
                .await?;
            if !response.is_success() {
                return Err(ExecError::rejected(1, &search.description, &response));
            }
            let json = response.json().unwrap_or(Value::Null);
            for result in json["results"].as_array().into_iter().flatten() {
                let (Some(id), Some(domain)) = (
                    result["id"].as_str(),
                    result["properties"]["domain"].as_str(),
                ) else {
                    continue;
                };
                let holder = result["properties"]["lago_customer_id"]
                    .as_str()
                    .filter(|h| !h.trim().is_empty())
                    .map(str::to_owned);
                holders
                    .entry(bare_domain(domain))
                    .or_default()
                    .push((id.to_owned(), holder));
            }
            after = json.pointer("/paging/next/after").and_then(|a| {
                a.as_str()
                    .map(str::to_owned)
                    .or_else(|| a.as_u64().map(|n| n.to_string()))
            });
            if after.is_none() {
                break;
            }
        }
    }
    Ok(holders)
}

/// What [`heal_ids`] changed.
#[derive(Debug, Default)]
pub struct Healed {
    /// Mappings forgotten or moved, and links dropped.
    pub changed: usize,
    /// The payload without the HubSpot links to records that are gone, when it had any.
    pub payload: Option<String>,
    /// What happened, for the outcome.
    pub note: String,
}

/// Checks every HubSpot id an event used (the ids the store holds for its object, its customer
/// and the records it references, and the record its customer is linked to): an id HubSpot no
/// longer has is forgotten, one that was merged away is replaced by the merged record's id
/// (HubSpot answers a read by the old id with the new one), and a link to a record that is gone
/// is dropped.
pub async fn heal_ids(syncer: &Syncer, event: &EventRef, payload: &str) -> anyhow::Result<Healed> {
    let (connection, known) = syncer.context_for(event)?;
    let code = syncer.settings().code.clone();
    let executor = syncer.executor();
    let mut healed = Healed::default();
    let mut notes = Vec::new();
    for id in known {
        let object_type = match id.key.kind {
            RecordKind::Company => Some("companies".to_owned()),
            RecordKind::Contact => Some("contacts".to_owned()),
            RecordKind::Subscription => connection.subscriptions_object_type_id.clone(),
            RecordKind::Invoice => connection.invoices_object_type_id.clone(),
            RecordKind::CreditNote => connection.credit_notes_object_type_id.clone(),
            _ => None,
        };
        let Some(object_type) = object_type else {
            continue;
        };
        match read_id(&executor, &object_type, &id.hubspot_id).await {
            Some(Read::Gone) => {
                tracing::info!(
                    kind = ?id.key.kind, lago_id = %id.key.lago_id, hubspot_id = %id.hubspot_id,
                    "HubSpot no longer has this record; forgetting its id"
                );
                syncer
                    .store()
                    .forget_id(&code, id.key.kind, &id.key.lago_id)?;
                notes.push(format!(
                    "HubSpot record {} ({:?} {}) was deleted: written again",
                    id.hubspot_id, id.key.kind, id.key.lago_id
                ));
                healed.changed += 1;
            }
            Some(Read::Moved(current)) => {
                tracing::info!(
                    kind = ?id.key.kind, lago_id = %id.key.lago_id,
                    old = %id.hubspot_id, new = %current, "the record was merged; storing its new id"
                );
                syncer.store().put_ids(
                    &code,
                    &[crate::runtime::KnownId {
                        key: id.key.clone(),
                        hubspot_id: current,
                    }],
                )?;
                healed.changed += 1;
            }
            _ => {}
        }
    }
    // The record the customer is linked to (Lago's entry, or a link made by hand).
    let with_stored_link = syncer.linked_payload(payload)?;
    let linked = linked_records(with_stored_link.as_deref().unwrap_or(payload));
    let mut gone_links = Vec::new();
    for (object_type, id) in &linked {
        if let Some(Read::Gone) = read_id(&executor, object_type, id).await {
            gone_links.push(id.clone());
            let unlinked = syncer.store().remove_links_to(&code, id)?;
            notes.push(format!(
                "the HubSpot record {id} this customer is linked to no longer exists: {}",
                if unlinked.is_empty() {
                    "written as its own record (update or remove the link in Lago)".to_owned()
                } else {
                    "the link made with `lago-hubspot link` is removed".to_owned()
                }
            ));
        }
    }
    if !gone_links.is_empty() {
        healed.changed += gone_links.len();
        healed.payload = without_links(payload, &gone_links);
    }
    healed.note = notes.join("; ");
    Ok(healed)
}

enum Read {
    Same,
    Gone,
    Moved(String),
}

async fn read_id(executor: &Executor<'_>, object_type: &str, id: &str) -> Option<Read> {
    let path = format!("/crm/v3/objects/{object_type}/{id}");
    let read = Call::new(HttpMethod::Get, "check a HubSpot id");
    let (response, _) = executor
        .send_with_retries(&read, 1, &path, None)
        .await
        .ok()?;
    match response.status {
        404 => Some(Read::Gone),
        200..=299 => {
            let current = response
                .json()
                .and_then(|j| j["id"].as_str().map(str::to_owned));
            Some(match current {
                Some(current) if current != id => Read::Moved(current),
                _ => Read::Same,
            })
        }
        _ => None,
    }
}

/// The HubSpot records a payload's customer is linked to: `(object type, id)`.
fn linked_records(payload: &str) -> Vec<(String, String)> {
    let Some(customer) = Envelope::read(payload)
        .ok()
        .and_then(|e| Customer::from_lago(e.customer()?).ok())
    else {
        return Vec::new();
    };
    hubspot_entries(&customer)
        .filter_map(|entry| {
            let id = entry.external_customer_id.as_deref()?.trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let object_type = match entry.targeted_object.as_deref() {
                Some("contacts") => "contacts",
                _ => "companies",
            };
            Some((object_type.to_owned(), id.to_owned()))
        })
        .collect()
}

/// The payload without the customer's HubSpot links to `gone` records.
fn without_links(payload: &str, gone: &[String]) -> Option<String> {
    let Route::Push { object, .. } = Envelope::read(payload).ok()?.route else {
        return None;
    };
    let mut body: Value = serde_json::from_str(payload).ok()?;
    let customer = if object == "/customer" {
        body.pointer_mut(object)?
    } else {
        body.pointer_mut(&format!("{object}/customer"))?
    };
    let entries = customer.get_mut("integration_customers")?.as_array_mut()?;
    entries.retain(|entry| {
        let id = entry["external_customer_id"]
            .as_str()
            .map(|i| i.trim().to_owned())
            .or_else(|| {
                entry["external_customer_id"]
                    .as_u64()
                    .map(|n| n.to_string())
            });
        !id.is_some_and(|id| gone.contains(&id))
    });
    Some(body.to_string())
}
