//! Backfill: sync what Lago already holds (customers, then subscriptions, then invoices) through
//! the same guest handlers the webhooks use.
//!
//! Records come from Lago's REST API v1 lists ([`from_lago`]) or from a file of exported webhook
//! payloads, one per line ([`from_jsonl`]). Each becomes a webhook-shaped payload and goes through
//! [`Syncer::sync_event`], so the guest's rules decide what is pushed. The hash of every payload
//! synced (or skipped by those rules) is kept in the state database: a re-run sends only what is
//! new, changed or failed before, which makes an interrupted backfill resumable.

mod progress;
mod state;
mod summary;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use lago_hubspot_guest::webhooks::{Envelope, Handler, Route};
use serde::Serialize;
use serde_json::{Value, json};

use crate::hubspot_http::Secret;
use crate::lago_api::{DEFAULT_PER_PAGE, Filters, LagoApiError, LagoClient, LagoList, Page};
use crate::sync::{OutcomeStatus, Syncer};

pub use progress::ProgressMode;
pub use state::{canonical_json, content_hash};
pub use summary::{Counts, ReasonGroup, Summary};

use progress::Progress;
use summary::Ending;

/// Individual failures printed while running; the rest are in the summary's groups.
const FAILURES_SHOWN: usize = 10;

/// The kinds of Lago object a backfill syncs, in the order it syncs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Customers,
    Subscriptions,
    Invoices,
    /// Credit notes come only from `--from` files (and only sync when the connection syncs them).
    #[value(skip)]
    CreditNotes,
    /// A line of a `--from` file that names no customer, subscription, invoice or credit note.
    #[value(skip)]
    Other,
}

impl ObjectKind {
    /// The kind a webhook's handler plans (the order a `--from` file is sent in).
    fn of(handler: Handler) -> ObjectKind {
        match handler {
            Handler::Customer => ObjectKind::Customers,
            Handler::Subscription => ObjectKind::Subscriptions,
            Handler::Invoice => ObjectKind::Invoices,
            Handler::CreditNote => ObjectKind::CreditNotes,
        }
    }

    fn list(self) -> Option<LagoList> {
        match self {
            ObjectKind::Customers => Some(LagoList::Customers),
            ObjectKind::Subscriptions => Some(LagoList::Subscriptions),
            ObjectKind::Invoices => Some(LagoList::Invoices),
            ObjectKind::CreditNotes | ObjectKind::Other => None,
        }
    }

    /// The key in the state database.
    fn state_name(self) -> &'static str {
        match self {
            ObjectKind::Customers => "customer",
            ObjectKind::Subscriptions => "subscription",
            ObjectKind::Invoices => "invoice",
            ObjectKind::CreditNotes => "credit_note",
            ObjectKind::Other => "other",
        }
    }

    pub fn plural(self) -> &'static str {
        match self {
            ObjectKind::Customers => "customers",
            ObjectKind::Subscriptions => "subscriptions",
            ObjectKind::Invoices => "invoices",
            ObjectKind::CreditNotes => "credit notes",
            ObjectKind::Other => "other events",
        }
    }
}

/// Subscription statuses read by default: all of them, so the summary counts the pending and
/// incomplete ones the guest does not push. Lago returns only `active` when none is given.
pub const ALL_SUBSCRIPTION_STATUSES: [&str; 5] =
    ["active", "terminated", "canceled", "pending", "incomplete"];

/// What to read from Lago.
#[derive(Debug, Clone)]
pub struct LagoOptions {
    /// Kinds to sync; empty means all.
    pub kinds: Vec<ObjectKind>,
    pub per_page: u32,
    pub subscription_statuses: Vec<String>,
    pub invoice_status: Option<String>,
    pub invoices_issued_from: Option<String>,
    pub invoices_issued_to: Option<String>,
}

impl Default for LagoOptions {
    fn default() -> Self {
        LagoOptions {
            kinds: Vec::new(),
            per_page: DEFAULT_PER_PAGE,
            subscription_statuses: ALL_SUBSCRIPTION_STATUSES.map(String::from).to_vec(),
            invoice_status: None,
            invoices_issued_from: None,
            invoices_issued_to: None,
        }
    }
}

impl LagoOptions {
    /// Refuses dates that are not `YYYY-MM-DD` and page sizes Lago does not take, before
    /// anything is read.
    pub fn check(&self) -> anyhow::Result<()> {
        for date in [&self.invoices_issued_from, &self.invoices_issued_to]
            .into_iter()
            .flatten()
        {
            anyhow::ensure!(
                is_iso_date(date),
                "invoice issuing dates are YYYY-MM-DD, got {date:?}"
            );
        }
        anyhow::ensure!(
            (1..=1000).contains(&self.per_page),
            "--per-page must be between 1 and 1000"
        );
        Ok(())
    }

    /// The kinds to read with their lists, in sync order.
    fn kinds(&self) -> Vec<(ObjectKind, LagoList)> {
        let mut kinds: Vec<(ObjectKind, LagoList)> = match self.kinds.as_slice() {
            [] => vec![
                ObjectKind::Customers,
                ObjectKind::Subscriptions,
                ObjectKind::Invoices,
            ],
            chosen => chosen.to_vec(),
        }
        .into_iter()
        .filter_map(|kind| Some((kind, kind.list()?)))
        .collect();
        kinds.sort();
        kinds.dedup();
        kinds
    }

    fn filters(&self, kind: ObjectKind) -> Filters {
        let mut filters = Filters::new();
        match kind {
            ObjectKind::Subscriptions => {
                for status in &self.subscription_statuses {
                    filters.push(("status[]".into(), status.clone()));
                }
            }
            ObjectKind::Invoices => {
                let optional = [
                    ("status", &self.invoice_status),
                    ("issuing_date_from", &self.invoices_issued_from),
                    ("issuing_date_to", &self.invoices_issued_to),
                ];
                for (key, value) in optional {
                    if let Some(value) = value {
                        filters.push((key.into(), value.clone()));
                    }
                }
            }
            ObjectKind::Customers | ObjectKind::CreditNotes | ObjectKind::Other => {}
        }
        filters
    }
}

/// How to run, whatever the source.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Ignore stored hashes and send everything again.
    pub force: bool,
    pub progress: ProgressMode,
    /// Coalesce records into HubSpot batch requests (`--no-batch` turns it off).
    pub batch: bool,
}

/// Records planned and executed together when batching: enough to fill HubSpot's 100-input
/// batches many times over, small enough that progress stays visible.
const BATCH_RECORDS: usize = 2000;

/// Where a backfill reads its records.
#[derive(Debug, Clone)]
pub enum Source {
    /// Lago's REST API.
    Lago {
        url: String,
        api_key: Secret,
        options: LagoOptions,
    },
    /// Exported webhook payloads, one per line ([`from_jsonl`]).
    File(PathBuf),
}

/// The `backfill` command's work: reads the source and syncs it. The caller prints the
/// summary; [`Summary::is_success`] says whether a record failed or the run was interrupted.
pub async fn run(
    syncer: &Syncer,
    source: &Source,
    options: &RunOptions,
) -> anyhow::Result<Summary> {
    match source {
        Source::File(path) => from_jsonl(syncer, path, options).await,
        Source::Lago {
            url,
            api_key,
            options: lago,
        } => {
            lago.check()?;
            let client = LagoClient::new(url, api_key.clone())?;
            from_lago(syncer, &client, lago, options).await
        }
    }
}

/// Reads the lists from Lago and syncs them: customers, then subscriptions, then invoices.
///
/// Fails before writing anything when Lago refuses the key or cannot be read at all; once
/// records are flowing, a Lago error ends the run with [`Summary::interrupted`] set instead, and
/// what was done stays done.
pub async fn from_lago(
    syncer: &Syncer,
    client: &LagoClient,
    lago: &LagoOptions,
    options: &RunOptions,
) -> anyhow::Result<Summary> {
    let kinds = lago.kinds();
    // First pages up front: a wrong key or URL fails here, and the totals size the progress bar.
    let mut first_pages = HashMap::new();
    for (kind, list) in &kinds {
        let page = client
            .page(*list, 1, lago.per_page, &lago.filters(*kind))
            .await
            .with_context(|| format!("cannot read the {} from Lago", kind.plural()))?;
        first_pages.insert(*kind, page);
    }
    let total = first_pages
        .values()
        .map(|page: &Page| page.meta.total_count.unwrap_or(page.records.len() as u64))
        .sum();
    let mut backfill = Backfill::start(syncer, options, total).await?;
    let mut customers = Customers {
        keep: first_pages.contains_key(&ObjectKind::Subscriptions),
        by_lago_id: HashMap::new(),
    };
    for (kind, list) in kinds {
        let filters = lago.filters(kind);
        let mut page = first_pages.remove(&kind).unwrap_or_else(|| Page {
            records: Vec::new(),
            meta: Default::default(),
        });
        loop {
            let next = page.next();
            for record in std::mem::take(&mut page.records) {
                let payload = match kind {
                    ObjectKind::Customers => {
                        customers.remember(&record);
                        envelope(kind, record)
                    }
                    _ => {
                        let mut record = record;
                        if let Err(error) = customers.attach(client, &mut record).await {
                            return Ok(backfill
                                .interrupted(format!(
                                    "reading a customer of the {} from Lago: {error}",
                                    kind.plural()
                                ))
                                .await);
                        }
                        envelope(kind, record)
                    }
                };
                backfill.record(Item::from_payload(kind, payload)).await;
            }
            let Some(next) = next else { break };
            page = match client.page(list, next, lago.per_page, &filters).await {
                Ok(page) => page,
                Err(error) => {
                    return Ok(backfill
                        .interrupted(format!(
                            "reading page {next} of the {} from Lago: {error}",
                            kind.plural()
                        ))
                        .await);
                }
            };
        }
    }
    Ok(backfill.finish().await)
}

/// Syncs exported webhook payloads, one per line or pretty-printed one after another.
///
/// Events Lago sends about other things (plans, fees, …) or that the guest does not handle
/// (e.g. `invoice.drafted`) are counted as skipped. When the file holds several events for the
/// same object, only the last one the guest handles is sent: webhooks carry the whole object,
/// so the last one is its latest state, and a re-run then finds every object unchanged.
/// Objects are sent customers first, then subscriptions, then invoices, each in file order.
pub async fn from_jsonl(
    syncer: &Syncer,
    path: &Path,
    options: &RunOptions,
) -> anyhow::Result<Summary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let payloads = crate::json_stream::values(&text);
    if let Some(array) = an_array(&payloads) {
        anyhow::bail!(
            "{} holds {array}, not payloads: --from expects Lago webhook payloads one after \
             another, one per line or pretty-printed (`jq -c '.[]' FILE` turns an array of \
             payloads into that)",
            path.display()
        );
    }
    let lines: Vec<(usize, &str)> = payloads.iter().map(|p| (p.line, p.text)).collect();
    let mut backfill = Backfill::start(syncer, options, lines.len() as u64).await?;

    let mut candidates = Vec::new();
    for (number, line) in lines {
        let item = Item::from_line(number, line);
        // Types the sync does not push are counted here, by the same table `serve` uses.
        match Envelope::read(line).map(|envelope| envelope.route) {
            Ok(Route::Skip(reason)) => backfill.count(&item, Ending::Skipped(reason)),
            _ => candidates.push(item),
        }
    }
    let mut latest: HashMap<(ObjectKind, String), usize> = HashMap::new();
    for (position, item) in candidates.iter().enumerate() {
        if !item.lago_id.is_empty() {
            latest.insert((item.kind, item.lago_id.clone()), position);
        }
    }
    let read = candidates.len();
    // Not every event carries the whole object: of Lago's invoice webhooks only `created`,
    // `voided` and `resynced` list the invoice's subscriptions (which never change). The latest
    // event of an invoice takes that list from an earlier one when it lacks it, so the invoice
    // is still associated with its subscriptions.
    let mut subscriptions: HashMap<String, Value> = HashMap::new();
    for item in &candidates {
        if item.kind == ObjectKind::Invoices
            && let Some(list) = object_field(&item.payload, "subscriptions")
                .filter(|list| list.as_array().is_some_and(|l| !l.is_empty()))
        {
            subscriptions.insert(item.lago_id.clone(), list);
        }
    }
    let mut kept: Vec<(usize, Item)> = candidates
        .into_iter()
        .enumerate()
        .filter(|(position, item)| {
            item.lago_id.is_empty()
                || latest.get(&(item.kind, item.lago_id.clone())) == Some(position)
        })
        .map(|(position, mut item)| {
            if item.kind == ObjectKind::Invoices
                && object_field(&item.payload, "subscriptions").is_none()
                && let Some(list) = subscriptions.get(&item.lago_id)
            {
                item = item.with_object_field("subscriptions", list.clone());
            }
            (position, item)
        })
        .collect();
    kept.sort_by_key(|(position, item)| (item.kind, *position));
    backfill.supersede(read - kept.len());
    for (_, item) in kept {
        backfill.record(item).await;
    }
    Ok(backfill.finish().await)
}

/// The first JSON array among a `--from` file's values (an export of payloads as one array),
/// before anything is sent: "a JSON array of 2 values at line 1".
fn an_array(payloads: &[crate::json_stream::Chunk<'_>]) -> Option<String> {
    payloads.iter().find_map(|payload| {
        let values = serde_json::from_str::<Value>(payload.text).ok()?;
        let values = values.as_array()?;
        Some(format!(
            "a JSON array of {} values at line {}",
            values.len(),
            payload.line
        ))
    })
}

/// A field of the object a webhook carries (at its handler's pointer).
fn object_field(payload: &str, field: &str) -> Option<Value> {
    Envelope::read(payload).ok()?.object?.get(field).cloned()
}

/// One record to sync.
struct Item {
    kind: ObjectKind,
    /// Empty when the payload names none; such records are never stored as done.
    lago_id: String,
    /// How the summary names it: the Lago id, or the line of a file.
    label: String,
    payload: String,
    /// `None` when the payload is not JSON (it will fail, and is retried every run).
    canonical: Option<String>,
    /// The record's ids and names, blanked out of reasons so like records group together.
    identifiers: Vec<String>,
}

impl Item {
    fn from_payload(kind: ObjectKind, payload: Value) -> Item {
        let object = payload.get(object_type(kind)).cloned().unwrap_or_default();
        let lago_id = text(&object, "lago_id").to_owned();
        Item {
            kind,
            label: if lago_id.is_empty() {
                "(no lago_id)".into()
            } else {
                lago_id.clone()
            },
            lago_id,
            canonical: Some(canonical_json(&payload)),
            identifiers: identifiers(&object),
            payload: payload.to_string(),
        }
    }

    /// The same event with `field` set on the object it carries.
    fn with_object_field(mut self, field: &str, value: Value) -> Item {
        let Ok(Envelope {
            route: Route::Push { object, .. },
            ..
        }) = Envelope::read(&self.payload)
        else {
            return self;
        };
        let Ok(mut body) = serde_json::from_str::<Value>(&self.payload) else {
            return self;
        };
        if let Some(Value::Object(target)) = body.pointer_mut(object) {
            target.insert(field.to_owned(), value);
            self.payload = body.to_string();
            self.canonical = Some(canonical_json(&body));
        }
        self
    }

    fn from_line(number: usize, line: &str) -> Item {
        let parsed = serde_json::from_str::<Value>(line).ok();
        let envelope = Envelope::read(line).ok();
        let kind = match envelope.as_ref() {
            Some(Envelope {
                route: Route::Push { handler, .. },
                ..
            }) => ObjectKind::of(*handler),
            // A skipped type is still counted with the records it is about (`invoice.drafted`).
            Some(envelope) => match envelope.webhook_type.split('.').next() {
                Some("customer") => ObjectKind::Customers,
                Some("subscription") => ObjectKind::Subscriptions,
                Some("invoice") => ObjectKind::Invoices,
                Some("credit_note") => ObjectKind::CreditNotes,
                _ => ObjectKind::Other,
            },
            None => ObjectKind::Other,
        };
        let object = envelope.and_then(|e| e.object).unwrap_or_default();
        let lago_id = match kind {
            ObjectKind::Other => String::new(),
            _ => text(&object, "lago_id").to_owned(),
        };
        Item {
            kind,
            label: match lago_id.as_str() {
                "" => format!("line {number}"),
                id => format!("{id} (line {number})"),
            },
            lago_id,
            canonical: parsed.as_ref().map(canonical_json),
            identifiers: identifiers(&object),
            payload: line.to_owned(),
        }
    }
}

/// Runs records through the syncer and keeps count.
struct Backfill<'a> {
    syncer: &'a Syncer,
    force: bool,
    batch: bool,
    /// Records waiting to be sent together, with the hash to store once they synced.
    waiting: Vec<(Item, Option<String>)>,
    settings: String,
    progress: Progress,
    summary: Summary,
    failures_shown: usize,
}

impl<'a> Backfill<'a> {
    /// Deploys first when the connection has no custom objects yet, as `sync` does.
    async fn start(
        syncer: &'a Syncer,
        options: &RunOptions,
        total: u64,
    ) -> anyhow::Result<Backfill<'a>> {
        let progress = Progress::new(options.progress, total);
        let deployed = syncer
            .deploy_if_needed()
            .await
            .context("the connection could not be deployed before the backfill")?;
        if let Some(report) = &deployed {
            progress.note(&format!("deployed first: {}", report.summary));
        }
        let settings = serde_json::to_value(syncer.settings())?;
        Ok(Backfill {
            syncer,
            force: options.force,
            batch: options.batch,
            waiting: Vec::new(),
            settings: canonical_json(&settings),
            progress,
            summary: Summary {
                connection: syncer.settings().code.clone(),
                deployed: deployed.map(|report| report.summary),
                ..Summary::default()
            },
            failures_shown: 0,
        })
    }

    fn supersede(&mut self, superseded: usize) {
        self.summary.superseded += superseded;
        self.progress.shrink_total(superseded as u64);
    }

    async fn record(&mut self, item: Item) {
        let code = self.syncer.settings().code.clone();
        // Only records that name their object can be remembered as done.
        let keyed = !item.lago_id.is_empty() && item.kind != ObjectKind::Other;
        let stored_under = match &item.canonical {
            Some(canonical) if keyed => Some(content_hash(&self.settings, canonical)),
            _ => None,
        };
        if let Some(hash) = &stored_under
            && !self.force
        {
            let stored = self
                .syncer
                .store()
                .backfill_hash(&code, item.kind, &item.lago_id);
            match stored {
                Ok(Some(stored)) if &stored == hash => {
                    return self.count(&item, Ending::Unchanged);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!("cannot read the backfill state: {error:#}"),
            }
        }
        if !self.batch {
            let outcome = self.syncer.sync_event(&item.payload).await;
            return self.settle(item, stored_under, outcome);
        }
        // A new kind starts only when the previous one is in HubSpot (customers before their
        // subscriptions and invoices), so its records find their customers' ids.
        if self
            .waiting
            .first()
            .is_some_and(|(first, _)| first.kind != item.kind)
        {
            self.flush().await;
        }
        self.waiting.push((item, stored_under));
        if self.waiting.len() >= BATCH_RECORDS {
            self.flush().await;
        }
    }

    /// Sends the waiting records together.
    async fn flush(&mut self) {
        if self.waiting.is_empty() {
            return;
        }
        let waiting = std::mem::take(&mut self.waiting);
        let payloads: Vec<String> = waiting
            .iter()
            .map(|(item, _)| item.payload.clone())
            .collect();
        let outcomes = self.syncer.sync_batch(&payloads).await;
        for ((item, hash), outcome) in waiting.into_iter().zip(outcomes) {
            self.settle(item, hash, outcome);
        }
    }

    /// Counts a record and, when it is in HubSpot (or skipped by rule), remembers its hash.
    fn settle(
        &mut self,
        item: Item,
        stored_under: Option<String>,
        outcome: crate::sync::EventOutcome,
    ) {
        let code = self.syncer.settings().code.clone();
        let ending = match outcome.status {
            OutcomeStatus::Synced => Ending::Synced,
            OutcomeStatus::Skipped => Ending::Skipped(outcome.detail.clone()),
            OutcomeStatus::Failed => Ending::Failed(outcome.detail.clone()),
        };
        if let Some(hash) = &stored_under
            && outcome.status != OutcomeStatus::Failed
        {
            let stored = self.syncer.store().put_backfill_hash(
                &code,
                item.kind,
                &item.lago_id,
                hash,
                outcome.status,
            );
            if let Err(error) = stored {
                // The record is in HubSpot; the next run will just send it again.
                tracing::warn!("cannot write the backfill state: {error:#}");
            }
        }
        self.count(&item, ending);
    }

    fn count(&mut self, item: &Item, ending: Ending) {
        let failed = matches!(ending, Ending::Failed(_));
        if let Ending::Failed(reason) = &ending {
            if self.failures_shown < FAILURES_SHOWN {
                self.progress.note(&format!(
                    "failed: {} {}: {reason}",
                    item.kind.plural(),
                    item.label
                ));
            } else if self.failures_shown == FAILURES_SHOWN {
                self.progress
                    .note("further failures are grouped in the summary");
            }
            self.failures_shown += 1;
        }
        self.summary
            .add(item.kind, ending, &item.label, &item.identifiers);
        self.progress.advance(failed);
    }

    async fn interrupted(mut self, reason: String) -> Summary {
        self.flush().await;
        self.progress.note(&format!("interrupted: {reason}"));
        self.summary.interrupted = Some(reason);
        self.finish().await
    }

    async fn finish(mut self) -> Summary {
        self.flush().await;
        self.progress.finish();
        self.summary
    }
}

/// Customers read so far, to embed in subscriptions: Lago's subscription list does not include
/// them, while the webhooks do (the invoice list does).
struct Customers {
    /// Off when no subscriptions are read, so a large customer list is not held for nothing.
    keep: bool,
    by_lago_id: HashMap<String, Value>,
}

impl Customers {
    fn remember(&mut self, customer: &Value) {
        let lago_id = text(customer, "lago_id");
        if self.keep && !lago_id.is_empty() {
            self.by_lago_id.insert(lago_id.to_owned(), customer.clone());
        }
    }

    /// Embeds the record's customer unless it already is: one read from the list, else fetched
    /// by external id (created after the list was read, or not read because of `--only`).
    async fn attach(
        &mut self,
        client: &LagoClient,
        record: &mut Value,
    ) -> Result<(), LagoApiError> {
        if record.get("customer").is_some_and(Value::is_object) {
            return Ok(());
        }
        let mut customer = self
            .by_lago_id
            .get(text(record, "lago_customer_id"))
            .cloned();
        let external_id = text(record, "external_customer_id").to_owned();
        if customer.is_none() && !external_id.is_empty() {
            customer = client.customer(&external_id).await?;
            if let Some(found) = &customer {
                self.remember(found);
            }
        }
        if let (Some(customer), Some(object)) = (customer, record.as_object_mut()) {
            object.insert("customer".into(), customer);
        }
        Ok(())
    }
}

/// The webhook Lago would have sent last for the object's current state. The guest maps the
/// object, not the event name, so this only makes the sync log read naturally.
fn webhook_type(kind: ObjectKind, object: &Value) -> &'static str {
    let status = text(object, "status");
    match kind {
        ObjectKind::Customers => "customer.updated",
        ObjectKind::Subscriptions => match status {
            "active" => "subscription.started",
            "terminated" => "subscription.terminated",
            "canceled" => "subscription.canceled",
            _ => "subscription.updated",
        },
        ObjectKind::Invoices | ObjectKind::Other => match status {
            "voided" => "invoice.voided",
            _ => "invoice.created",
        },
        ObjectKind::CreditNotes => "credit_note.created",
    }
}

fn object_type(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Customers => "customer",
        ObjectKind::Subscriptions => "subscription",
        ObjectKind::Invoices | ObjectKind::Other => "invoice",
        ObjectKind::CreditNotes => "credit_note",
    }
}

/// `{"webhook_type", "object_type", "organization_id", <object>}` as Lago posts it. The lists
/// do not say which organization the key belongs to, and the guest does not read it.
fn envelope(kind: ObjectKind, object: Value) -> Value {
    let key = object_type(kind);
    json!({
        "webhook_type": webhook_type(kind, &object),
        "object_type": key,
        "organization_id": Value::Null,
        key: object,
    })
}

fn text<'v>(value: &'v Value, key: &str) -> &'v str {
    value.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Ids and names a reason may quote for this object (the guest names records by them).
fn identifiers(object: &Value) -> Vec<String> {
    let own = [
        "lago_id",
        "external_id",
        "number",
        "name",
        "lago_customer_id",
        "external_customer_id",
    ]
    .into_iter()
    .map(|key| text(object, key));
    let customer = object.get("customer").cloned().unwrap_or_default();
    let embedded = ["lago_id", "external_id", "name"]
        .into_iter()
        .map(|key| text(&customer, key).to_owned())
        .collect::<Vec<_>>();
    own.map(str::to_owned)
        .chain(embedded)
        .filter(|id| !id.is_empty())
        .collect()
}

/// A calendar day written `YYYY-MM-DD` (as Lago's `issuing_date_*` filters take it).
fn is_iso_date(date: &str) -> bool {
    // Ten characters: `[year]` alone would also take a sign (`+2026-…`).
    date.len() == 10
        && time::Date::parse(
            date,
            time::macros::format_description!("[year]-[month]-[day]"),
        )
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_become_the_webhooks_lago_would_send() {
        let sub = json!({"lago_id": "sub_1", "status": "terminated"});
        let payload = envelope(ObjectKind::Subscriptions, sub.clone());
        assert_eq!(payload["webhook_type"], "subscription.terminated");
        assert_eq!(payload["object_type"], "subscription");
        assert_eq!(payload["subscription"], sub);
        assert_eq!(
            envelope(ObjectKind::Invoices, json!({"status": "voided"}))["webhook_type"],
            "invoice.voided"
        );
        assert_eq!(
            envelope(ObjectKind::Invoices, json!({"status": "draft"}))["webhook_type"],
            "invoice.created"
        );
        assert_eq!(
            envelope(ObjectKind::Customers, json!({}))["webhook_type"],
            "customer.updated"
        );
    }

    #[test]
    fn lines_name_their_object_or_their_line() {
        let item = Item::from_line(
            3,
            r#"{"webhook_type":"invoice.created","object_type":"invoice","invoice":{"lago_id":"inv_9","number":"N-9"}}"#,
        );
        assert_eq!(
            (item.kind, item.lago_id.as_str(), item.label.as_str()),
            (ObjectKind::Invoices, "inv_9", "inv_9 (line 3)")
        );
        assert_eq!(item.identifiers, vec!["inv_9", "N-9"]);
        let broken = Item::from_line(4, "{ not json");
        assert_eq!(
            (broken.kind, broken.label.as_str()),
            (ObjectKind::Other, "line 4")
        );
        assert!(broken.canonical.is_none());
    }

    #[test]
    fn filters_follow_lagos_query_parameters() {
        let options = LagoOptions {
            invoices_issued_from: Some("2026-01-01".into()),
            invoice_status: Some("finalized".into()),
            ..LagoOptions::default()
        };
        assert_eq!(
            options.filters(ObjectKind::Subscriptions),
            ALL_SUBSCRIPTION_STATUSES
                .iter()
                .map(|s| ("status[]".to_owned(), (*s).to_owned()))
                .collect::<Vec<_>>()
        );
        assert_eq!(
            options.filters(ObjectKind::Invoices),
            vec![
                ("status".to_owned(), "finalized".to_owned()),
                ("issuing_date_from".to_owned(), "2026-01-01".to_owned())
            ]
        );
        assert!(options.filters(ObjectKind::Customers).is_empty());
        let only = LagoOptions {
            kinds: vec![
                ObjectKind::Invoices,
                ObjectKind::Customers,
                ObjectKind::Invoices,
            ],
            ..LagoOptions::default()
        };
        assert_eq!(
            only.kinds(),
            vec![
                (ObjectKind::Customers, LagoList::Customers),
                (ObjectKind::Invoices, LagoList::Invoices)
            ]
        );
        assert!(is_iso_date("2026-02-28"));
        assert!(!is_iso_date("2026-2-28"));
    }

    #[test]
    fn an_array_of_payloads_is_named_before_anything_is_sent() {
        let payload = json!({"webhook_type": "customer.created", "customer": {"lago_id": "c"}});
        let values = |text: &str| an_array(&crate::json_stream::values(text));
        let pretty = serde_json::to_string_pretty(&payload).unwrap();
        assert_eq!(values(&format!("{payload}\n{payload}\nnot json\n")), None);
        assert_eq!(values(&format!("{pretty}\n{pretty}\n")), None);
        let array = serde_json::to_string_pretty(&json!([payload, payload])).unwrap();
        assert_eq!(
            values(&array).as_deref(),
            Some("a JSON array of 2 values at line 1")
        );
        assert_eq!(
            values(&format!("{payload}\n{}\n", json!([payload]))).as_deref(),
            Some("a JSON array of 1 values at line 2")
        );
    }

    #[test]
    fn issuing_dates_are_days_of_the_calendar() {
        assert!(is_iso_date("2024-02-29"));
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "+2026-01-01",
            "2026-01-01T00:00:00Z",
            "",
        ] {
            assert!(!is_iso_date(bad), "{bad}");
        }
    }
}
