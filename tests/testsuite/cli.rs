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
    assert!(lines[0].starts_with("synced"), "{stdout}");
    assert!(
        lines[1].starts_with("failed") && lines[1].contains("malformed payload"),
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

/// `sync -` with `input` on stdin, against a fresh emulator: its output and the contacts it holds.
async fn sync_stdin(name: &str, input: String) -> (std::process::Output, usize) {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir(name);
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
        stdin.write_all(input.as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    (output, hubspot.records("contacts").len())
}

fn contact_events() -> Vec<serde_json::Value> {
    ["cus_a", "cus_b"]
        .iter()
        .map(|id| customer_event("customer.created", &customer(id, Some("individual"))))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_reads_json_lines_and_pretty_printed_json_from_stdin() {
    let lines: String = contact_events().iter().map(|e| format!("{e}\n")).collect();
    let pretty: String = contact_events()
        .iter()
        .map(|e| serde_json::to_string_pretty(e).unwrap() + "\n")
        .collect();
    let pretty_lines = pretty.lines().count();
    for (name, input, second_line) in [
        ("stdin-lines", lines, 2),
        ("stdin-pretty", pretty, pretty_lines / 2 + 1),
    ] {
        let (output, contacts) = sync_stdin(name, input).await;
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let results: Vec<&str> = stdout.lines().collect();
        assert_eq!(results.len(), 2, "{name}: one line per event\n{stdout}");
        assert!(
            results[0].starts_with("synced   stdin:1 "),
            "{name}: {stdout}"
        );
        assert!(
            results[1].starts_with(&format!("synced   stdin:{second_line} ")),
            "{name}: {stdout}"
        );
        assert_eq!(contacts, 2, "{name}");
    }

    // A broken value is one failed event; the others still sync.
    let events = contact_events();
    let broken = format!(
        "{}\n{{\n  \"webhook_type\": \"customer.created\",\n  oops\n}}\n{}\n",
        serde_json::to_string_pretty(&events[0]).unwrap(),
        serde_json::to_string_pretty(&events[1]).unwrap()
    );
    let (output, contacts) = sync_stdin("stdin-broken", broken).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!output.status.success(), "{stdout}");
    let failed: Vec<&str> = stdout.lines().filter(|l| l.starts_with("failed")).collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(failed[0].contains("not JSON"), "{stdout}");
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("synced")).count(),
        2,
        "{stdout}"
    );
    assert_eq!(contacts, 2);
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
    // The same words as `sync` prints.
    assert!(
        !stdout.lines().any(|line| line.starts_with("failed")),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|line| line.starts_with("synced ")),
        "{stdout}"
    );
    for section in [
        "Companies (",
        "Contacts (",
        "LagoSubscriptions (",
        "LagoInvoices (",
    ] {
        assert!(stdout.contains(section), "missing {section} in {stdout}");
    }
}

/// `lago-hubspot ARGS` against `hubspot` with the state `state`, its stdout a pipe whose reader
/// is already gone (`… | true`): its exit status and stderr.
async fn run_with_stdout_closed(
    hubspot: &lago_hubspot_emulators::hubspot::RunningEmulator,
    state: &std::path::Path,
    args: &[&str],
) -> (std::process::ExitStatus, String) {
    let mut command = lago_hubspot();
    command
        .args(args)
        .args([
            "--hubspot-url",
            &hubspot.url,
            "--state",
            state.to_str().unwrap(),
        ])
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().unwrap();
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_stops_the_printing_never_the_syncing() {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let dir = temp_dir("closed-stdout");
    let state = dir.join("state.db");
    let files: Vec<String> = ["cus_p1", "cus_p2", "cus_p3"]
        .iter()
        .map(|id| {
            let file = dir.join(format!("{id}.json"));
            let event = customer_event("customer.created", &customer(id, Some("individual")));
            std::fs::write(&file, event.to_string()).unwrap();
            file.to_str().unwrap().to_owned()
        })
        .collect();
    let mut args = vec!["sync"];
    args.extend(files.iter().map(String::as_str));
    let (status, stderr) = run_with_stdout_closed(&hubspot, &state, &args).await;
    assert!(status.success(), "{status}: {stderr}");
    assert_eq!(hubspot.records("contacts").len(), 3, "{stderr}");
    // Every event is in the sync log too.
    let log = lago_hubspot()
        .args(["log", "cus_p3", "--state", state.to_str().unwrap()])
        .output()
        .unwrap();
    let log_text = String::from_utf8_lossy(&log.stdout);
    assert!(
        log.status.success() && log_text.contains("synced"),
        "{log_text}{}",
        String::from_utf8_lossy(&log.stderr)
    );

    // The exit status still tells of a failed event nobody could read about.
    let broken = dir.join("broken.json");
    std::fs::write(&broken, "{ not json").unwrap();
    let fourth = dir.join("cus_p4.json");
    std::fs::write(
        &fourth,
        customer_event("customer.created", &customer("cus_p4", Some("individual"))).to_string(),
    )
    .unwrap();
    let (status, stderr) = run_with_stdout_closed(
        &hubspot,
        &state,
        &["sync", broken.to_str().unwrap(), fourth.to_str().unwrap()],
    )
    .await;
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("1 event(s) failed"), "{stderr}");
    assert_eq!(hubspot.records("contacts").len(), 4, "{stderr}");

    // Output lost otherwise (a full disk) is said, and fails the run, but the events still sync.
    let fifth = dir.join("cus_p5.json");
    std::fs::write(
        &fifth,
        customer_event("customer.created", &customer("cus_p5", Some("individual"))).to_string(),
    )
    .unwrap();
    let mut full = lago_hubspot();
    full.args(["sync", fifth.to_str().unwrap(), &files[0]])
        .args([
            "--hubspot-url",
            &hubspot.url,
            "--state",
            state.to_str().unwrap(),
        ])
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .stdout(
            std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .unwrap(),
        );
    let output = tokio::task::spawn_blocking(move || full.output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot write to stdout"), "{stderr}");
    assert_eq!(hubspot.records("contacts").len(), 5, "{stderr}");
}
