//! Runs Lago events and connection set-up through the component and HubSpot, and records the
//! outcome: ids learned go to the store, every event gets a sync-log line.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

use lago_hubspot_guest::webhooks::{Envelope, Handler, Route};

use crate::config::{
    CREDIT_NOTES_INVOICES_ASSOCIATION, CREDIT_NOTES_SCHEMA, ConnectionSettings, INVOICES_SCHEMA,
    INVOICES_SUBSCRIPTIONS_ASSOCIATION, SUBSCRIPTIONS_SCHEMA,
};
use crate::executor::Executor;
use crate::hubspot_http::HubspotClient;
use crate::links::{customer_keys, with_link};
use crate::retry::RetryPolicy;
use crate::runtime::{Connection, KnownId, Plan, PlanError, Plugin, RecordKind};
use crate::store::{LagoNames, Store};

/// One handler call of a dry run ([`Syncer::plan_call`]): what the component was handed and
/// what it answered.
#[derive(Debug)]
pub struct PlanCall {
    /// The export the payload was routed to (`on-invoice`), `None` for a webhook type skipped
    /// without calling the component.
    pub handler: Option<&'static str>,
    pub connection: Connection,
    /// The HubSpot ids the store knows for the records the event names.
    pub known: Vec<KnownId>,
    pub result: Result<Plan, PlanError>,
}

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
    /// How an operator names the object (its kind, external_id or number), for the sync log.
    pub names: LagoNames,
}

impl EventRef {
    /// Read through the one envelope reader ([`Envelope::read`]). Best effort: a payload too
    /// broken to read still gets a log line, just with empty ids.
    pub fn from_payload(payload: &str) -> EventRef {
        match Envelope::read(payload) {
            Ok(envelope) => EventRef {
                names: lago_names(&envelope),
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

    /// The key that keeps one object's events in order: a customer event's customer, else the
    /// object's Lago id, else the webhook's unique key. Events with other keys may run
    /// alongside; the queue still orders a customer's events against its subscriptions',
    /// invoices' and credit notes' (see [`EventRef::customer_key`]).
    pub fn order_key(&self, unique_key: Option<&str>) -> String {
        let customer_event = self.webhook_type.starts_with("customer.");
        [
            self.customer_id.as_deref().filter(|_| customer_event),
            Some(self.lago_id.as_str()),
            self.customer_id.as_deref(),
            unique_key,
        ]
        .into_iter()
        .flatten()
        .find(|key| !key.is_empty())
        .unwrap_or_default()
        .to_owned()
    }

    /// The customer the event belongs to (empty when the payload names none): a customer's
    /// events wait for the earlier events of its objects, and those for its earlier customer
    /// events, so a newer customer write always lands last.
    pub fn customer_key(&self) -> String {
        self.customer_id.clone().unwrap_or_default()
    }
}

/// The names the envelope's object goes by: its kind (the handler's, else the webhook type's
/// object, as in `wallet.created`), its `external_id` and its `number`.
fn lago_names(envelope: &Envelope) -> LagoNames {
    let object_type = match envelope.route {
        Route::Push { handler, .. } => match handler {
            Handler::Customer => "customer",
            Handler::Subscription => "subscription",
            Handler::Invoice => "invoice",
            Handler::CreditNote => "credit_note",
        },
        Route::Skip(_) => envelope
            .webhook_type
            .split_once('.')
            .map_or("", |(object, _)| object),
    };
    let text = |field: &str| {
        envelope
            .object
            .as_ref()
            .and_then(|object| object.get(field))
            .and_then(Value::as_str)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned()
    };
    LagoNames {
        object_type: object_type.to_owned(),
        external_id: text("external_id"),
        number: text("number"),
    }
}

pub use crate::outcome::{EventOutcome, Failure, OutcomeStatus};

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
    /// The host serves only this connection, so a customer's HubSpot link naming any code
    /// belongs to it (the guest's `connection.sole-connection`). True for `sync`, `backfill`,
    /// `deploy` and `plan`; a `serve` fleet sets it ([`Syncer::set_sole_connection`]).
    sole_connection: AtomicBool,
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

    /// A syncer that plans without writing to `store`: its settings are not saved (`plan`,
    /// a dry run, reads the state as it is).
    pub fn read_only(
        plugin: Arc<Plugin>,
        client: HubspotClient,
        store: Store,
        settings: ConnectionSettings,
    ) -> Self {
        Syncer {
            plugin,
            client: Arc::new(client),
            store: Arc::new(Mutex::new(store)),
            settings,
            retry: RetryPolicy::default(),
            sole_connection: AtomicBool::new(true),
            deploying: tokio::sync::Mutex::new(()),
        }
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
            sole_connection: AtomicBool::new(true),
            deploying: tokio::sync::Mutex::new(()),
        })
    }

    /// Whether the host serves only this connection; set by the fleet that serves it (true for
    /// a fleet of one, false otherwise).
    pub fn set_sole_connection(&self, sole: bool) {
        self.sole_connection.store(sole, Ordering::Relaxed);
    }

    pub fn is_sole_connection(&self) -> bool {
        self.sole_connection.load(Ordering::Relaxed)
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
            self.is_sole_connection(),
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
        self.plan_for(&EventRef::from_payload(payload), payload)
            .await
    }

    /// [`Syncer::plan`], with what the component was handed: the `lago-hubspot plan --format
    /// json` document ([`crate::wit_json::call_document`]).
    pub async fn plan_call(&self, payload: &str) -> anyhow::Result<PlanCall> {
        let event = EventRef::from_payload(payload);
        let (connection, known) = self.context_for(&event)?;
        let linked = self.linked_payload(payload)?;
        let payload = linked.as_deref().unwrap_or(payload);
        let result = self.plugin.plan_event(&connection, &known, payload).await?;
        let handler = match Envelope::read(payload) {
            Ok(Envelope {
                route: Route::Push { handler, .. },
                ..
            }) => Some(handler.export()),
            _ => None,
        };
        Ok(PlanCall {
            handler,
            connection,
            known,
            result,
        })
    }

    /// The component's plan for an event, with the connection and the ids the store knows for
    /// the records it names, and the customer's link made by hand (`lago-hubspot link`), if any.
    pub(crate) async fn plan_for(
        &self,
        event: &EventRef,
        payload: &str,
    ) -> anyhow::Result<Result<Plan, PlanError>> {
        let (connection, known) = self.context_for(event)?;
        let linked = self.linked_payload(payload)?;
        self.plugin
            .plan_event(&connection, &known, linked.as_deref().unwrap_or(payload))
            .await
    }

    /// The payload with the customer's stored link written in ([`with_link`]), when the
    /// customer has one on this connection.
    pub(crate) fn linked_payload(&self, payload: &str) -> anyhow::Result<Option<String>> {
        let Ok(envelope) = Envelope::read(payload) else {
            return Ok(None);
        };
        let keys = customer_keys(&envelope);
        if keys.is_empty() {
            return Ok(None);
        }
        let link = self.store().link_for(&self.settings.code, &keys)?;
        Ok(link.and_then(|link| with_link(payload, &self.settings.code, &link)))
    }

    pub(crate) fn context_for(
        &self,
        event: &EventRef,
    ) -> anyhow::Result<(Connection, Vec<KnownId>)> {
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
