//! The embedded default: an in-process HubSpot emulator, a deploy, the bundled sample events,
//! and the resulting HubSpot records and associations printed as tables.

use std::fmt::Write as _;
use std::sync::Arc;

use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig, Record, RunningEmulator, Seed};

use crate::config::{ConnectionSettings, INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA};
use crate::hubspot_http::{HubspotClient, Secret};
use crate::report::table;
use crate::runtime::Plugin;
use crate::samples::SAMPLE_EVENTS;
use crate::store::Store;
use crate::sync::Syncer;

const DEMO_TOKEN: &str = "demo-token";

/// The HubSpot records the sample events expect to exist (`samples/hubspot-seed.json`).
const SAMPLE_SEED: &str = include_str!("../../samples/hubspot-seed.json");

/// Runs the whole path on loopback and returns what a person should read.
pub async fn run(plugin: Arc<Plugin>) -> anyhow::Result<String> {
    let emulator = Emulator::start(EmulatorConfig {
        tokens: vec![DEMO_TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await?;
    let client = HubspotClient::new(&emulator.url, Secret::new(DEMO_TOKEN))?;
    let settings = ConnectionSettings {
        organization_slug: "acme-billing".into(),
        lago_app_url: "https://lago.example.com".into(),
        ..ConnectionSettings::default()
    };
    let syncer = Syncer::new(plugin, client, Store::open_in_memory()?, settings)?;

    let mut out = String::new();
    writeln!(out, "HubSpot emulator on {}", emulator.url)?;
    let deployed = syncer.deploy().await?;
    writeln!(
        out,
        "deploy: {} ({} write requests)",
        deployed.summary, deployed.writes
    )?;
    // A company a salesperson created before Lago existed; sample 03 links its Lago customer to
    // it. The same file seeds `lago-hubspot emulator --seed-records` in the README's walkthrough.
    emulator.seed(&serde_json::from_str::<Seed>(SAMPLE_SEED)?)?;
    let again = syncer.deploy().await?;
    writeln!(
        out,
        "deploy again: {} ({} write requests)\n",
        again.summary, again.writes
    )?;

    for (name, payload) in SAMPLE_EVENTS {
        let outcome = syncer.sync_event(payload).await;
        writeln!(out, "{:<8} {name:<40} {}", outcome.status, outcome.detail)?;
    }
    out.push('\n');
    out += &hubspot_state(&emulator);
    Ok(out)
}

/// Companies, contacts, LagoSubscriptions and LagoInvoices with their associations.
pub fn hubspot_state(emulator: &RunningEmulator) -> String {
    let mut out = String::new();
    let prop = |r: &Record, name: &str| r.properties.get(name).cloned().unwrap_or_default();
    let linked = |from_type: &str, id: &str| {
        let mut links: Vec<String> = [("companies", "company"), ("contacts", "contact")]
            .iter()
            .flat_map(|(to, noun)| {
                emulator
                    .associations(from_type, id, to)
                    .into_iter()
                    .map(move |other| format!("{noun} {other}"))
            })
            .collect();
        links.sort();
        links.join(", ")
    };
    let section = |out: &mut String,
                   title: &str,
                   object: &str,
                   headers: &[&str],
                   cells: &dyn Fn(&Record) -> Vec<String>| {
        let records = emulator.records(object);
        let rows: Vec<Vec<String>> = records.iter().map(cells).collect();
        let _ = writeln!(out, "{title} ({})", rows.len());
        *out += &table(headers, &rows);
        out.push('\n');
    };
    section(
        &mut out,
        "Companies",
        "companies",
        &["id", "name", "domain", "lago_customer_id", "external id"],
        &|r| {
            vec![
                r.id.clone(),
                prop(r, "name"),
                prop(r, "domain"),
                prop(r, "lago_customer_id"),
                prop(r, "lago_customer_external_id"),
            ]
        },
    );
    section(
        &mut out,
        "Contacts",
        "contacts",
        &["id", "email", "name", "lago_customer_id", "external id"],
        &|r| {
            vec![
                r.id.clone(),
                prop(r, "email"),
                format!("{} {}", prop(r, "firstname"), prop(r, "lastname"))
                    .trim()
                    .to_owned(),
                prop(r, "lago_customer_id"),
                prop(r, "lago_customer_external_id"),
            ]
        },
    );
    section(
        &mut out,
        "LagoSubscriptions",
        SUBSCRIPTIONS_SCHEMA,
        &[
            "id",
            "external id",
            "plan",
            "status",
            "started",
            "terminated",
            "associated with",
        ],
        &|r| {
            vec![
                r.id.clone(),
                prop(r, "lago_external_subscription_id"),
                prop(r, "lago_subscription_plan_code"),
                prop(r, "lago_subscription_status"),
                prop(r, "lago_subscription_started_at"),
                prop(r, "lago_subscription_terminated_at"),
                linked(SUBSCRIPTIONS_SCHEMA, &r.id),
            ]
        },
    );
    section(
        &mut out,
        "LagoInvoices",
        INVOICES_SCHEMA,
        &[
            "id",
            "number",
            "status",
            "payment",
            "total",
            "currency",
            "associated with",
        ],
        &|r| {
            vec![
                r.id.clone(),
                prop(r, "lago_invoice_number"),
                prop(r, "lago_invoice_status"),
                prop(r, "lago_invoice_payment_status"),
                crate::report::amount(
                    &prop(r, "lago_invoice_total_amount"),
                    &prop(r, "lago_invoice_currency"),
                ),
                prop(r, "lago_invoice_currency"),
                linked(INVOICES_SCHEMA, &r.id),
            ]
        },
    );
    out
}
