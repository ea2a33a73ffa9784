//! The `lago-hubspot` binary as a user runs it, against an emulator on loopback.

use std::process::{Command, Stdio};

use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::json;

use crate::support::*;

fn lago_hubspot() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lago-hubspot"));
    command.env("LAGO_HUBSPOT_COMPONENT", component_path());
    command
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .env_remove("HUBSPOT_API_URL");
    command
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("lago-hubspot-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_sync_and_plan_from_the_command_line() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("sync");
    let state = dir.join("state.db");
    let run = |args: &[&str]| {
        let url = hubspot.url.clone();
        let state = state.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                lago_hubspot()
                    .args(&args)
                    .args(["--hubspot-url", &url, "--state", state.to_str().unwrap()])
                    .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
                    .output()
                    .unwrap()
            })
            .await
            .unwrap()
        }
    };

    let deploy = run(&["deploy", "--organization-slug", "acme"]).await;
    assert!(
        deploy.status.success(),
        "{}",
        String::from_utf8_lossy(&deploy.stderr)
    );
    assert!(String::from_utf8_lossy(&deploy.stdout).contains("LagoInvoices: 2-"));

    let customer_file = dir.join("customer.json");
    std::fs::write(
        &customer_file,
        customer_event("customer.created", &customer("cus_cli", Some("company"))).to_string(),
    )
    .unwrap();
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let sync = run(&[
        "sync",
        customer_file.to_str().unwrap(),
        broken.to_str().unwrap(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&sync.stdout);
    assert!(
        !sync.status.success(),
        "a failed event makes the exit code non-zero"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    assert!(lines[0].starts_with("ok"), "{stdout}");
    assert!(
        lines[1].starts_with("error") && lines[1].contains("malformed payload"),
        "{stdout}"
    );
    assert_eq!(hubspot.records("companies").len(), 1);

    // Dry run with the same state: the plan is printed, nothing is sent.
    let before = hubspot.request_log().len();
    let plan = tokio::task::spawn_blocking({
        let state = state.clone();
        let customer_file = customer_file.clone();
        move || {
            lago_hubspot()
                .args([
                    "plan",
                    "--state",
                    state.to_str().unwrap(),
                    customer_file.to_str().unwrap(),
                ])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        plan.status.success(),
        "{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("plan prints JSON");
    // Each step: the operation the component typed, and the HubSpot request it becomes.
    let step = &json["steps"][0];
    assert_eq!(
        step["operation"]["Upsert"]["id_property"],
        "lago_customer_id"
    );
    assert_eq!(
        (&step["request"]["method"], &step["request"]["path"]),
        (
            &json!("POST"),
            &json!("/crm/v3/objects/companies/batch/upsert")
        )
    );
    assert_eq!(
        step["request"]["body"]["inputs"][0]["idProperty"],
        "lago_customer_id"
    );
    assert_eq!(hubspot.request_log().len(), before, "plan sent a request");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_reads_json_lines_from_stdin() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("stdin");
    let state = dir.join("state.db");
    let url = hubspot.url.clone();
    let output = tokio::task::spawn_blocking(move || {
        let mut child = lago_hubspot()
            .args([
                "sync",
                "-",
                "--hubspot-url",
                &url,
                "--state",
                state.to_str().unwrap(),
            ])
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        for id in ["cus_a", "cus_b"] {
            writeln!(
                stdin,
                "{}",
                customer_event("customer.created", &customer(id, Some("individual")))
            )
            .unwrap();
        }
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 2);
    assert_eq!(hubspot.records("contacts").len(), 2);
}

#[test]
fn the_default_run_shows_hubspot_records_from_the_bundled_samples() {
    let output = lago_hubspot().output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}\n{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("deploy again: ") && stdout.contains("(0 write requests)"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");
    for section in [
        "Companies (",
        "Contacts (",
        "LagoSubscriptions (",
        "LagoInvoices (",
    ] {
        assert!(stdout.contains(section), "missing {section} in {stdout}");
    }
}
