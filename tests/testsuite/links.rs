//! Customers linked to an existing HubSpot record: by Lago's own integration under any code
//! (a service with one connection), and by hand with `lago-hubspot link` (self-hosted Lago).

use std::process::Output;

use lago_hubspot::config::{ConnectionSettings, INVOICES_SCHEMA, SUBSCRIPTIONS_SCHEMA};
use lago_hubspot::runtime::Operation;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::json;

use crate::support::binary::{Workspace, lago_hubspot_command};
use crate::support::*;

const LINKED: &str = "9000001";

/// A customer migrating from Lago Cloud carries the code its Lago Cloud integration was given;
/// `sync` (one connection, code `hubspot`) updates the record it names and associates the
/// customer's subscriptions and invoices with it.
#[tokio::test]
async fn one_connection_honours_a_link_naming_another_code() {
    let harness = Harness::new(ConnectionSettings {
        code: "hubspot".into(),
        ..settings()
    })
    .await;
    harness.syncer.deploy().await.expect("deploy");
    harness
        .hubspot
        .seed_record("companies", LINKED, json!({"name": "Acme (from sales)"}))
        .unwrap();

    let mut acme = customer("cus_cloud", Some("company"));
    acme["integration_customers"] = json!([{
        "lago_id": "ic-1", "type": "hubspot", "integration_code": "hs-lago-cloud",
        "external_customer_id": LINKED, "targeted_object": "companies", "sync_with_provider": true
    }]);
    let updated = customer_event("customer.updated", &acme);

    // One of several connections: the link belongs to the connection it names.
    harness.syncer.set_sole_connection(false);
    let plan = harness
        .syncer
        .plan(&updated.to_string())
        .await
        .unwrap()
        .unwrap();
    let Operation::Upsert(upsert) = &plan.steps[0].operation else {
        panic!("{:?}", plan.steps[0])
    };
    assert_eq!(upsert.object_type, "companies");
    harness.syncer.set_sole_connection(true);

    harness.sync_ok(&updated).await;
    let companies = harness.hubspot.records("companies");
    assert_eq!(companies.len(), 1, "no second company");
    assert_eq!(companies[0].id, LINKED);
    assert_eq!(companies[0].properties["lago_customer_id"], "cus_cloud");
    assert_eq!(companies[0].properties["name"], "Customer cus_cloud");

    harness
        .sync_ok(&subscription_event(
            "subscription.started",
            &subscription("sub_cloud", &acme, "active"),
        ))
        .await;
    harness
        .sync_ok(&invoice_event(
            "invoice.created",
            &invoice("inv_cloud", &acme, "finalized", "pending"),
        ))
        .await;
    let subscription = &harness.hubspot.records(SUBSCRIPTIONS_SCHEMA)[0];
    assert_eq!(
        harness
            .hubspot
            .associations(SUBSCRIPTIONS_SCHEMA, &subscription.id, "companies"),
        [LINKED]
    );
    let invoice = &harness.hubspot.records(INVOICES_SCHEMA)[0];
    assert_eq!(
        harness
            .hubspot
            .associations(INVOICES_SCHEMA, &invoice.id, "companies"),
        [LINKED]
    );
    assert_eq!(harness.hubspot.records("companies").len(), 1);
}

/// `lago-hubspot` on the command line, on the workspace's state (`LAGO_HUBSPOT_STATE`, which
/// every command reads), with a token for HubSpot.
async fn run(workspace: &Workspace, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let state = workspace.state();
    tokio::task::spawn_blocking(move || {
        lago_hubspot_command()
            .args(&args)
            .env("LAGO_HUBSPOT_STATE", state)
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout(output),
        String::from_utf8_lossy(&output.stderr)
    );
    stdout(output)
}

/// Self-hosted Lago cannot link a customer: `link` does, and the customer's next events update
/// the linked company and associate with it; `unlink` removes the link.
#[tokio::test(flavor = "multi_thread")]
async fn a_customer_linked_by_hand_updates_the_linked_record() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let workspace = Workspace::new("link");
    let url = hubspot.url.as_str();
    succeeded(
        &run(
            &workspace,
            &[
                "deploy",
                "--hubspot-url",
                url,
                "--organization-slug",
                "acme",
            ],
        )
        .await,
    );
    hubspot
        .seed_record("companies", LINKED, json!({"name": "Acme (from sales)"}))
        .unwrap();

    let pasted = run(
        &workspace,
        &[
            "link",
            "acme-ext",
            "https://app.hubspot.com/contacts/1/record/0-2/9000001",
        ],
    )
    .await;
    assert!(!pasted.status.success());
    assert!(
        String::from_utf8_lossy(&pasted.stderr).contains("not a HubSpot record id"),
        "{}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    let linked = succeeded(&run(&workspace, &["link", "acme-ext", LINKED]).await);
    assert!(
        linked.contains("company 9000001") && linked.contains("connection hubspot"),
        "{linked}"
    );

    let mut acme = customer("cus_acme", Some("company"));
    acme["external_id"] = json!("acme-ext");
    let events = [
        customer_event("customer.updated", &acme),
        invoice_event(
            "invoice.created",
            &invoice("inv_acme", &acme, "finalized", "pending"),
        ),
    ];
    for (index, event) in events.iter().enumerate() {
        let file = workspace.dir.join(format!("event-{index}.json"));
        std::fs::write(&file, event.to_string()).unwrap();
        let synced = succeeded(
            &run(
                &workspace,
                &["sync", "--hubspot-url", url, file.to_str().unwrap()],
            )
            .await,
        );
        assert!(synced.starts_with("synced"), "{synced}");
    }
    let companies = hubspot.records("companies");
    assert_eq!(companies.len(), 1, "no second company");
    assert_eq!(companies[0].id, LINKED);
    assert_eq!(companies[0].properties["lago_customer_id"], "cus_acme");
    assert_eq!(
        companies[0].properties["lago_customer_external_id"],
        "acme-ext"
    );
    let patched = hubspot
        .request_log()
        .iter()
        .any(|r| r.method == "PATCH" && r.path.ends_with(&format!("/companies/{LINKED}")));
    assert!(patched, "the linked company is updated by id");
    let invoice = &hubspot.records(INVOICES_SCHEMA)[0];
    assert_eq!(
        hubspot.associations(INVOICES_SCHEMA, &invoice.id, "companies"),
        [LINKED]
    );

    // The links are listed where operators look.
    let show = succeeded(&run(&workspace, &["connections", "show", "hubspot"]).await);
    assert!(show.contains("linked customers:   1"), "{show}");
    let row = show
        .lines()
        .find(|l| l.starts_with("acme-ext"))
        .unwrap_or_else(|| panic!("{show}"));
    assert!(row.contains(LINKED) && row.contains("company"), "{show}");
    let status = succeeded(&run(&workspace, &["status"]).await);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("hubspot") && l.contains("acme-ext") && l.contains(LINKED)),
        "{status}"
    );

    let unlinked = succeeded(&run(&workspace, &["unlink", "acme-ext"]).await);
    assert!(
        unlinked.contains("unlinked Lago customer acme-ext"),
        "{unlinked}"
    );
    let again = run(&workspace, &["unlink", "acme-ext"]).await;
    assert!(!again.status.success());
    assert!(
        stdout(&again).contains("nothing removed"),
        "{}",
        stdout(&again)
    );
    let show = succeeded(&run(&workspace, &["connections", "show", "hubspot"]).await);
    assert!(show.contains("linked customers:   0"), "{show}");
}
