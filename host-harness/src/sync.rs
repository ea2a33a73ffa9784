//! Runs Lago events and connection set-up through the component and HubSpot, and records the
//! outcome: ids learned go to the store, every event gets a sync-log line.

use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use lago_hubspot_guest::webhooks::Envelope;

use crate::config::{
    CREDIT_NOTES_INVOICES_ASSOCIATION, CREDIT_NOTES_SCHEMA, ConnectionSettings, INVOICES_SCHEMA,
    INVOICES_SUBSCRIPTIONS_ASSOCIATION, SUBSCRIPTIONS_SCHEMA,
};
use crate::executor::{Executor, StepOutcome};
use crate::hubspot_http::HubspotClient;
use crate::retry::RetryPolicy;
use crate::runtime::{Connection, KnownId, Plan, PlanError, Plugin, RecordKind};
use crate::store::{Store, SyncLogEntry};

/// The Lago ids an event is about, read from the envelope `{webhook_type, object_type, <object>}`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventRef {
    pub webhook_type: String,
    /// The Lago id of the object under `object_type`.
    pub lago_id: String,
    /// The Lago id of the customer the object belongs to.
    pub customer_id: Option<String>,
    /// Lago ids of the records the object is associated with besides its customer (a credit
    /// note's invoice, an invoice's subscriptions), so their HubSpot ids are looked up too.
    pub referenced_ids: Vec<String>,
}

impl EventRef {
    /// Read through the one envelope reader ([`Envelope::read`]). Best effort: a payload too
    /// broken to read still gets a log line, just with empty ids.
    pub fn from_payload(payload: &str) -> EventRef {
        match Envelope::read(payload) {
            Ok(envelope) => EventRef {
                lago_id: envelope.lago_id(),
                customer_id: envelope.customer_lago_id(),
                referenced_ids: envelope.referenced_lago_ids(),
                webhook_type: envelope.webhook_type,
            },
            Err(_) => EventRef {
                webhook_type: if serde_json::from_str::<Value>(payload).is_ok() {
                    "(unknown)".into()
                } else {
                    "(not JSON)".into()
                },
                ..EventRef::default()
            },
        }
    }
}

/// How one event ended.
#[derive(Debug, Clone, Serialize)]
pub struct EventOutcome {
    pub webhook_type: String,
    pub lago_id: String,
    pub status: OutcomeStatus,
    /// The plan's summary, or the reason it failed (with HubSpot's message).
    pub detail: String,
    pub steps: Vec<StepOutcome>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeStatus {
    Synced,
    Skipped,
    Failed,
}

impl OutcomeStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            OutcomeStatus::Synced => "synced",
            OutcomeStatus::Skipped => "skipped",
            OutcomeStatus::Failed => "failed",
        }
    }
}

/// What `deploy` did.
#[derive(Debug, Clone, Serialize)]
pub struct DeployReport {
    pub summary: String,
    pub writes: usize,
    pub subscriptions_object_type_id: Option<String>,
    pub invoices_object_type_id: Option<String>,
    /// Only deployed on connections that sync credit notes.
    pub credit_notes_object_type_id: Option<String>,
}

pub struct Syncer {
    plugin: Arc<Plugin>,
    client: Arc<HubspotClient>,
    /// Shared by every connection of a `serve`: one database, one writer.
    store: Arc<Mutex<Store>>,
    settings: ConnectionSettings,
    retry: RetryPolicy,
    /// One deploy at a time, so workers that find the connection undeployed don't race.
    deploying: tokio::sync::Mutex<()>,
}

impl Syncer {
    pub fn new(
        plugin: Arc<Plugin>,
        client: HubspotClient,
        store: Store,
        settings: ConnectionSettings,
    ) -> anyhow::Result<Self> {
        Self::shared(plugin, client, Arc::new(Mutex::new(store)), settings)
    }

    /// A syncer on a store other connections use too.
    pub fn shared(
        plugin: Arc<Plugin>,
        client: HubspotClient,
        store: Arc<Mutex<Store>>,
        settings: ConnectionSettings,
    ) -> anyhow::Result<Self> {
        store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .save_connection(&settings)?;
        Ok(Syncer {
            plugin,
            client: Arc::new(client),
            store,
            settings,
            retry: RetryPolicy::default(),
            deploying: tokio::sync::Mutex::new(()),
        })
    }

    /// The store this syncer writes to, for others that share it.
    pub fn shared_store(&self) -> Arc<Mutex<Store>> {
        self.store.clone()
    }

    /// This connection's HubSpot client.
    pub fn client(&self) -> &HubspotClient {
        &self.client
    }

    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// An executor on this connection's HubSpot client and retry policy.
    pub fn executor(&self) -> Executor<'_> {
        Executor::new(&self.client, self.retry.clone())
    }

    /// Appends a sync-log line for an event; a log failure is reported, never fatal.
    pub fn log(&self, outcome: &EventOutcome) {
        if let Err(error) = self
            .store()
            .log_sync(&self.settings.code, &log_entry(outcome))
        {
            tracing::error!("could not write the sync log: {error:#}");
        }
    }

    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    pub fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection as the guest sees it, with the deployed object type ids from the store.
    pub fn connection(&self) -> anyhow::Result<Connection> {
        let store = self.store();
        let type_id =
            |schema| store.hubspot_id(&self.settings.code, RecordKind::ObjectSchema, schema);
        Ok(self.settings.to_wit(
            type_id(SUBSCRIPTIONS_SCHEMA)?,
            type_id(INVOICES_SCHEMA)?,
            type_id(CREDIT_NOTES_SCHEMA)?,
        ))
    }

    /// Plans the set-up with the guest (which reads what exists), executes it, stores type ids.
    pub async fn deploy(&self) -> anyhow::Result<DeployReport> {
        let connection = self.connection()?;
        let plan = self
            .plugin
            .deploy(self.client.clone(), &connection)
            .await?
            .map_err(|e| {
                anyhow::anyhow!("deploy could not be planned: {}", describe_plan_error(&e))
            })?;
        let executed = self
            .executor()
            .run(&plan)
            .await
            .map_err(|e| anyhow::anyhow!("deploy failed: {e}"))?;
        self.store()
            .put_ids(&self.settings.code, &executed.stored)?;
        let connection = self.connection()?;
        Ok(DeployReport {
            summary: plan.summary,
            writes: executed.steps.len(),
            subscriptions_object_type_id: connection.subscriptions_object_type_id,
            invoices_object_type_id: connection.invoices_object_type_id,
            credit_notes_object_type_id: connection.credit_notes_object_type_id,
        })
    }

    /// Deploys when the store lacks a custom object type id or association definition this
    /// connection needs (none yet, a portal deployed by an earlier release, or credit notes just
    /// turned on), as Lago deploys lazily before its first write. Returns the report when it
    /// deployed.
    pub async fn deploy_if_needed(&self) -> anyhow::Result<Option<DeployReport>> {
        let _one_at_a_time = self.deploying.lock().await;
        if self.deployed()? {
            return Ok(None);
        }
        self.deploy().await.map(Some)
    }

    /// Whether the store holds every id deploy learns for this connection's settings.
    fn deployed(&self) -> anyhow::Result<bool> {
        let mut needed = vec![
            SUBSCRIPTIONS_SCHEMA,
            INVOICES_SCHEMA,
            INVOICES_SUBSCRIPTIONS_ASSOCIATION,
        ];
        if self.settings.sync_credit_notes {
            needed.extend([CREDIT_NOTES_SCHEMA, CREDIT_NOTES_INVOICES_ASSOCIATION]);
        }
        let store = self.store();
        for key in needed {
            if store
                .hubspot_id(&self.settings.code, RecordKind::ObjectSchema, key)?
                .is_none()
            {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Dry run: the plan for one event, with what the store knows. Sends nothing.
    pub async fn plan(&self, payload: &str) -> anyhow::Result<Result<Plan, PlanError>> {
        let (connection, known) = self.context_for(&EventRef::from_payload(payload))?;
        self.plugin.plan_event(&connection, &known, payload).await
    }

    /// Plans and executes one Lago webhook payload. Never panics on bad input: every way an event
    /// can end is an [`EventOutcome`] and a sync-log line.
    pub async fn sync_event(&self, payload: &str) -> EventOutcome {
        let event = EventRef::from_payload(payload);
        let outcome = match self.try_sync(&event, payload).await {
            Ok(outcome) => outcome,
            Err(error) => EventOutcome {
                webhook_type: event.webhook_type.clone(),
                lago_id: event.lago_id.clone(),
                status: OutcomeStatus::Failed,
                detail: format!("{error:#}"),
                steps: Vec::new(),
            },
        };
        self.log(&outcome);
        outcome
    }

    /// Plans every payload and executes the plans together, coalescing their steps into HubSpot
    /// batch requests (see [`crate::batch`]). Events of one customer keep their order. Returns one
    /// outcome per payload, in order, each also written to the sync log.
    pub async fn sync_batch(&self, payloads: &[String]) -> Vec<EventOutcome> {
        let mut outcomes: Vec<Option<EventOutcome>> = vec![None; payloads.len()];
        let mut jobs = Vec::new();
        let mut job_events = Vec::new();
        for (index, payload) in payloads.iter().enumerate() {
            let event = EventRef::from_payload(payload);
            let finish = |status, detail: String| EventOutcome {
                webhook_type: event.webhook_type.clone(),
                lago_id: event.lago_id.clone(),
                status,
                detail,
                steps: Vec::new(),
            };
            let planned = match self.context_for(&event) {
                Ok((connection, known)) => {
                    self.plugin.plan_event(&connection, &known, payload).await
                }
                Err(error) => Err(error),
            };
            match planned {
                Err(error) => {
                    outcomes[index] = Some(finish(OutcomeStatus::Failed, format!("{error:#}")))
                }
                Ok(Err(error)) => {
                    outcomes[index] =
                        Some(finish(OutcomeStatus::Failed, describe_plan_error(&error)))
                }
                Ok(Ok(plan)) if plan.steps.is_empty() => {
                    outcomes[index] = Some(finish(OutcomeStatus::Skipped, plan.summary))
                }
                Ok(Ok(plan)) => {
                    let order_key = event
                        .customer_id
                        .clone()
                        .filter(|id| !id.is_empty())
                        .unwrap_or_else(|| event.lago_id.clone());
                    jobs.push(crate::batch::Job {
                        order_key,
                        plan,
                        progress: Default::default(),
                    });
                    job_events.push((index, event));
                }
            }
        }
        let summaries: Vec<String> = jobs.iter().map(|job| job.plan.summary.clone()).collect();
        // Ids are written once for the whole batch: a durable commit per step would cost more
        // than the HubSpot requests saved. If the process dies first, a re-run upserts the same
        // records again and learns the ids then.
        let mut learned = Vec::new();
        let results = crate::batch::BatchExecutor::new(self.executor())
            .run(jobs, |_, _, ids| {
                learned.extend_from_slice(ids);
                Ok(())
            })
            .await;
        if let Err(error) = self.store().put_ids(&self.settings.code, &learned) {
            tracing::error!("could not store the ids of a batch: {error:#}");
        }
        for (((index, event), result), summary) in
            job_events.into_iter().zip(results).zip(summaries)
        {
            let (status, detail, steps) = match result {
                Ok(steps) => (OutcomeStatus::Synced, summary, steps),
                Err(error) => (OutcomeStatus::Failed, error.to_string(), Vec::new()),
            };
            outcomes[index] = Some(EventOutcome {
                webhook_type: event.webhook_type,
                lago_id: event.lago_id,
                status,
                detail,
                steps,
            });
        }
        let outcomes: Vec<EventOutcome> = outcomes
            .into_iter()
            .map(|outcome| outcome.expect("every payload has an outcome"))
            .collect();
        let entries: Vec<SyncLogEntry> = outcomes.iter().map(log_entry).collect();
        if let Err(error) = self.store().log_sync_many(&self.settings.code, &entries) {
            tracing::error!("could not write the sync log: {error:#}");
        }
        outcomes
    }

    async fn try_sync(&self, event: &EventRef, payload: &str) -> anyhow::Result<EventOutcome> {
        let (connection, known) = self.context_for(event)?;
        let finish = |status, detail, steps| EventOutcome {
            webhook_type: event.webhook_type.clone(),
            lago_id: event.lago_id.clone(),
            status,
            detail,
            steps,
        };
        let plan = match self.plugin.plan_event(&connection, &known, payload).await? {
            Ok(plan) => plan,
            Err(error) => {
                return Ok(finish(
                    OutcomeStatus::Failed,
                    describe_plan_error(&error),
                    vec![],
                ));
            }
        };
        if plan.steps.is_empty() {
            return Ok(finish(OutcomeStatus::Skipped, plan.summary, vec![]));
        }
        match Executor::new(&self.client, self.retry.clone())
            .run(&plan)
            .await
        {
            Ok(executed) => {
                self.store()
                    .put_ids(&self.settings.code, &executed.stored)?;
                Ok(finish(OutcomeStatus::Synced, plan.summary, executed.steps))
            }
            Err(error) => Ok(finish(OutcomeStatus::Failed, error.to_string(), vec![])),
        }
    }

    fn context_for(&self, event: &EventRef) -> anyhow::Result<(Connection, Vec<KnownId>)> {
        let connection = self.connection()?;
        let lago_ids: Vec<String> = [Some(event.lago_id.clone()), event.customer_id.clone()]
            .into_iter()
            .flatten()
            .chain(event.referenced_ids.iter().cloned())
            .filter(|id| !id.is_empty())
            .collect();
        let known = self.store().known_ids(&self.settings.code, &lago_ids)?;
        Ok((connection, known))
    }
}

fn log_entry(outcome: &EventOutcome) -> SyncLogEntry {
    SyncLogEntry {
        at: String::new(),
        webhook_type: outcome.webhook_type.clone(),
        lago_id: outcome.lago_id.clone(),
        outcome: outcome.status.as_str().into(),
        detail: outcome.detail.clone(),
        steps: serde_json::to_string(&outcome.steps).unwrap_or_else(|_| "[]".into()),
    }
}

/// One line a person can act on.
pub fn describe_plan_error(error: &PlanError) -> String {
    match error {
        PlanError::MalformedPayload(m) => format!("malformed payload: {m}"),
        PlanError::UnsupportedEvent(m) => format!("unsupported event: {m}"),
        PlanError::MissingField(m) => format!("missing field: {m}"),
        PlanError::NotDeployed(m) => format!("not deployed: {m}"),
        PlanError::HubspotReadFailed(m) => format!("HubSpot read failed: {m}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_refs_come_from_the_envelope() {
        let sub = r#"{"webhook_type":"subscription.started","object_type":"subscription",
            "subscription":{"lago_id":"sub_1","lago_customer_id":"cus_1"}}"#;
        let event = EventRef::from_payload(sub);
        assert_eq!(event.webhook_type, "subscription.started");
        assert_eq!(event.lago_id, "sub_1");
        assert_eq!(event.customer_id.as_deref(), Some("cus_1"));
        let inv = r#"{"webhook_type":"invoice.created","object_type":"invoice",
            "invoice":{"lago_id":"inv_1","customer":{"lago_id":"cus_2"}}}"#;
        assert_eq!(
            EventRef::from_payload(inv).customer_id.as_deref(),
            Some("cus_2")
        );
        assert_eq!(EventRef::from_payload("nope").webhook_type, "(not JSON)");
        let credit_note = r#"{"webhook_type":"credit_note.created","object_type":"credit_note",
            "credit_note":{"lago_id":"cn_1","lago_invoice_id":"inv_1","customer":{"lago_id":"cus_3"}}}"#;
        let event = EventRef::from_payload(credit_note);
        assert_eq!(
            (event.lago_id.as_str(), event.customer_id.as_deref()),
            ("cn_1", Some("cus_3"))
        );
        assert_eq!(event.referenced_ids, ["inv_1"]);
    }
}
