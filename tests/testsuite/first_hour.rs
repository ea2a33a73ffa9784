//! A newcomer's first hour with the `lago-hubspot` binary: a missing state says so, global
//! options go anywhere, each setting has one spelling (the old ones still work, with a warning),
//! the binary finds its component or says how to get it, a closed pipe ends a command quietly,
//! placeholder links are warned about, and the smaller things people trip over.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use lago_hubspot::queue::{EventState, NewEvent};
use lago_hubspot::store::{Store, SyncLogEntry};
use lago_hubspot_emulators::hubspot::RunningEmulator;
use serde_json::json;

use crate::support::*;

/// Every variable the binary reads, so the caller's environment changes nothing.
const ENVIRONMENT: &[&str] = &[
    "LAGO_HUBSPOT_STATE",
    "LAGO_HUBSPOT_CONNECTION",
    "LAGO_HUBSPOT_COMPONENT",
    "LAGO_HUBSPOT_LOG_FORMAT",
    "LAGO_HUBSPOT_GUEST_DEADLINE_MS",
    "LAGO_HUBSPOT_GUEST_MEMORY_MIB",
    "LAGO_HUBSPOT_SECRET_KEY",
    "LAGO_HUBSPOT_CONFIG",
    "LAGO_HUBSPOT_CONNECTION_NAME",
    "LAGO_HUBSPOT_DEFAULT_OBJECT",
    "LAGO_HUBSPOT_SYNC_SUBSCRIPTIONS",
    "LAGO_HUBSPOT_SYNC_INVOICES",
    "LAGO_HUBSPOT_SYNC_CREDIT_NOTES",
    "LAGO_HUBSPOT_SYNC_UNLINKED_CUSTOMERS",
    "LAGO_HUBSPOT_MATCH_COMPANIES",
    "LAGO_APP_URL",
    "LAGO_ORGANIZATION_SLUG",
    "LAGO_API_URL",
    "LAGO_API_KEY",
    "LAGO_WEBHOOK_HMAC_KEY",
    "HUBSPOT_API_URL",
    "HUBSPOT_ACCESS_TOKEN",
    "HUBSPOT_CLIENT_ID",
    "HUBSPOT_CLIENT_SECRET",
    "HUBSPOT_AUTHORIZE_URL",
    "HUBSPOT_TOKEN_URL",
    "RUST_LOG",
];

/// The binary, with this checkout's component, run in `dir`.
fn lago_hubspot(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_lago-hubspot"));
    for name in ENVIRONMENT {
        command.env_remove(name);
    }
    command
        .env("LAGO_HUBSPOT_COMPONENT", component_path())
        .current_dir(dir);
    command
}

/// A fresh directory of its own for a test.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "lago-hubspot-first-hour-{name}-{}",
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs off the async runtime (the emulator answers on it meanwhile).
async fn output(mut command: Command) -> Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{}\n{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// A state with one event of each kind the operator commands show: a synced customer whose
/// sync log names it, an invoice that failed twice and waits, and one never tried.
fn operated_state(path: &Path) {
    let store = Store::open(path).unwrap();
    let mut acme = customer("cus_acme", Some("company"));
    acme["external_id"] = json!("acme-ext");
    let events = [
        customer_event("customer.created", &acme),
        invoice_event(
            "invoice.created",
            &invoice("inv_acme", &acme, "finalized", "pending"),
        ),
        customer_event("customer.updated", &customer("cus_new", None)),
    ];
    for event in &events {
        let object = event["object_type"].as_str().unwrap();
        let lago_id = event[object]["lago_id"].as_str().unwrap();
        store
            .insert_event(&NewEvent {
                unique_key: None,
                connection: "hubspot".into(),
                order_key: lago_id.into(),
                customer_key: String::new(),
                webhook_type: event["webhook_type"].as_str().unwrap().into(),
                lago_id: lago_id.into(),
                body: event.to_string(),
                settled: None,
            })
            .unwrap();
    }
    // As serve runs them: claimed, then settled; the third is never tried.
    assert_eq!(store.claim_ready(2, i64::MAX).unwrap().len(), 2);
    store
        .finish_event(1, EventState::Synced, None, None)
        .unwrap();
    store
        .retry_later(2, 2, 0, "HubSpot answered 502 twice", Some(502))
        .unwrap();
    let mut store = store;
    store
        .log_sync(
            "hubspot",
            &SyncLogEntry {
                at: "2026-03-01T10:00:00Z".into(),
                webhook_type: "customer.created".into(),
                lago_id: "cus_acme".into(),
                outcome: "synced".into(),
                detail: "company 2000001 upserted".into(),
                steps: json!([{"method": "POST", "path": "/crm/v3/objects/companies/batch/upsert",
                    "status": 200, "attempts": 1}])
                .to_string(),
                ..SyncLogEntry::default()
            },
        )
        .unwrap();
}

// 2. A missing state is an error naming it, never a new empty one.

#[test]
fn read_only_commands_never_create_a_state() {
    let dir = workdir("missing-state");
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        customer_event("customer.created", &customer("cus_1", None)).to_string(),
    )
    .unwrap();
    let event = event.to_str().unwrap();
    for args in [
        &["status"][..],
        &["events", "list"],
        &["events", "show", "8"],
        &["log", "cus_1"],
        &["connections", "list"],
        &["connections", "show", "hubspot"],
        &["unlink", "acme"],
        &["plan", "--state", "lago-hubspot.db", event],
    ] {
        let output = lago_hubspot(&dir).args(args).output().unwrap();
        let stderr = text(&output.stderr);
        assert!(!output.status.success(), "{args:?} succeeded");
        assert!(
            stderr.contains("no state database at lago-hubspot.db")
                && stderr.contains("lago-hubspot connect --connection CODE")
                && stderr.contains("--state FILE (or LAGO_HUBSPOT_STATE)"),
            "{args:?}: {stderr}"
        );
        assert!(
            !dir.join("lago-hubspot.db").exists(),
            "{args:?} created a state"
        );
    }
    let output = lago_hubspot(&dir)
        .arg("status")
        .env("LAGO_HUBSPOT_STATE", "elsewhere.db")
        .output()
        .unwrap();
    assert!(
        text(&output.stderr)
            .contains("no state database at elsewhere.db (from LAGO_HUBSPOT_STATE)"),
        "{}",
        text(&output.stderr)
    );
    // A dry run needs no state: without one named, it plans with no known ids.
    let plan = lago_hubspot(&dir).args(["plan", event]).output().unwrap();
    succeeded(&plan);
    assert!(text(&plan.stderr).contains("planning without known HubSpot ids"));
    assert!(!dir.join("lago-hubspot.db").exists());
    let _ = std::fs::remove_dir_all(&dir);
}

// 3. Global options: before or after the command, from the same variables everywhere.

#[tokio::test(flavor = "multi_thread")]
async fn global_options_go_before_or_after_the_command() {
    let dir = workdir("globals");
    let state = dir.join("ops.db");
    operated_state(&state);
    let state = state.to_str().unwrap().to_owned();
    let run = |args: &[&str]| lago_hubspot(&dir).args(args).output().unwrap();

    for args in [
        &["events", "list", "--state", &state][..],
        &["--state", &state, "events", "list"],
        &["events", "--state", &state, "list"],
    ] {
        let listed = succeeded(&run(args));
        assert!(listed.contains("inv_acme"), "{args:?}: {listed}");
    }
    let shown = succeeded(&run(&["events", "show", "1", "--state", &state]));
    assert!(shown.contains("cus_acme"), "{shown}");
    succeeded(&run(&["connections", "list", "--state", &state]));
    let from_env = lago_hubspot(&dir)
        .args(["events", "list"])
        .env("LAGO_HUBSPOT_STATE", &state)
        .output()
        .unwrap();
    assert!(succeeded(&from_env).contains("inv_acme"));

    // The event-state filter has its own name; the old spelling says what to use.
    let pending = succeeded(&run(&[
        "events", "list", "--status", "pending", "--state", &state,
    ]));
    assert!(
        pending.contains("inv_acme") && !pending.contains("cus_acme"),
        "{pending}"
    );
    let old = run(&["events", "list", "--state", "dead"]);
    assert!(!old.status.success());
    assert!(
        text(&old.stderr).contains("use `events list --status dead`"),
        "{}",
        text(&old.stderr)
    );

    // `plan` reads LAGO_HUBSPOT_STATE like every other command.
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        customer_event("customer.updated", &customer("cus_acme", None)).to_string(),
    )
    .unwrap();
    let missing = lago_hubspot(&dir)
        .arg("plan")
        .arg(&event)
        .env("LAGO_HUBSPOT_STATE", dir.join("nowhere.db"))
        .output()
        .unwrap();
    assert!(
        text(&missing.stderr).contains("nowhere.db (from LAGO_HUBSPOT_STATE)"),
        "{}",
        text(&missing.stderr)
    );
    let planned = lago_hubspot(&dir)
        .arg("plan")
        .arg(&event)
        .env("LAGO_HUBSPOT_STATE", &state)
        .output()
        .unwrap();
    succeeded(&planned);
    assert!(!text(&planned.stderr).contains("without known HubSpot ids"));

    // HUBSPOT_API_URL and HUBSPOT_ACCESS_TOKEN are read wherever HubSpot is called.
    let hubspot = start_hubspot().await;
    let mut deploy = lago_hubspot(&dir);
    deploy
        .args(["deploy", "--organization-slug", "acme"])
        .args(["--lago-app-url", "https://lago.example.com"])
        .env("LAGO_HUBSPOT_STATE", dir.join("env.db"))
        .env("HUBSPOT_API_URL", &hubspot.url)
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
        .env("LAGO_HUBSPOT_CONNECTION", "hs-env");
    succeeded(&output(deploy).await);
    let listed = succeeded(&run(&[
        "connections",
        "list",
        "--state",
        dir.join("env.db").to_str().unwrap(),
    ]));
    assert!(listed.contains("hs-env"), "{listed}");
    let _ = std::fs::remove_dir_all(&dir);
}

// 4. One spelling per setting; the previous release's spellings work, with a warning.

#[tokio::test(flavor = "multi_thread")]
async fn each_setting_has_one_spelling_and_the_old_ones_still_work() {
    let hubspot = start_hubspot().await;
    let dir = workdir("spellings");
    let with_hubspot = |args: &[&str]| {
        let mut command = lago_hubspot(&dir);
        command
            .args(args)
            .args(["--state", "state.db", "--hubspot-url", &hubspot.url])
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN);
        command
    };
    let show = |code: &str| {
        succeeded(
            &lago_hubspot(&dir)
                .args(["connections", "show", code, "--state", "state.db"])
                .output()
                .unwrap(),
        )
    };
    let links = [
        "--lago-app-url",
        "https://lago.test",
        "--organization-slug",
        "acme",
    ];

    // Old spellings: accepted, each named with its replacement.
    let old = output(with_hubspot(&[
        "deploy",
        "--connection-code",
        "hs-old",
        "--no-sync-invoices",
        "--linked-customers-only",
        links[0],
        links[1],
        links[2],
        links[3],
    ]))
    .await;
    succeeded(&old);
    let stderr = text(&old.stderr);
    for (spelling, replacement) in [
        ("--connection-code", "--connection CODE"),
        ("--no-sync-invoices", "--sync-invoices false"),
        ("--linked-customers-only", "--sync-unlinked-customers false"),
    ] {
        assert!(
            stderr.contains(&format!("`{spelling}` is deprecated"))
                && stderr.contains(&format!("use `{replacement}`")),
            "{stderr}"
        );
    }
    let shown = show("hs-old");
    assert!(shown.contains("sync invoices:      false"), "{shown}");
    assert!(shown.contains("unlinked customers: false"), "{shown}");

    // The new ones: a boolean takes a value (alone, it means true), like the update command.
    let new = output(with_hubspot(&[
        "deploy",
        "--connection",
        "hs-old",
        "--sync-invoices",
        "--sync-unlinked-customers=true",
    ]))
    .await;
    succeeded(&new);
    assert!(!text(&new.stderr).contains("deprecated"));
    let shown = show("hs-old");
    assert!(shown.contains("sync invoices:      true"), "{shown}");
    assert!(shown.contains("unlinked customers: true"), "{shown}");
    succeeded(
        &lago_hubspot(&dir)
            .args([
                "connections",
                "update",
                "hs-old",
                "--sync-invoices",
                "false",
            ])
            .args(["--state", "state.db"])
            .output()
            .unwrap(),
    );
    assert!(show("hs-old").contains("sync invoices:      false"));

    // The TOML file's keys are the flags' names; a variable sets what the file leaves out and
    // a flag beats its variable.
    std::fs::write(
        dir.join("settings.toml"),
        "connection = \"hs-toml\"\ndefault_object = \"contacts\"\n\
         lago_app_url = \"https://lago.test\"\norganization_slug = \"acme\"\n",
    )
    .unwrap();
    let mut from_file = with_hubspot(&["deploy", "--config", "settings.toml"]);
    from_file.env("LAGO_HUBSPOT_SYNC_CREDIT_NOTES", "true");
    succeeded(&output(from_file).await);
    let shown = show("hs-toml");
    assert!(shown.contains("default object:     contacts"), "{shown}");
    assert!(shown.contains("sync credit notes:  true"), "{shown}");
    let flag_beats_env = lago_hubspot(&dir)
        .args([
            "connections",
            "update",
            "hs-toml",
            "--sync-credit-notes",
            "false",
        ])
        .args(["--state", "state.db"])
        .env("LAGO_HUBSPOT_SYNC_CREDIT_NOTES", "true")
        .output()
        .unwrap();
    succeeded(&flag_beats_env);
    assert!(show("hs-toml").contains("sync credit notes:  false"));

    // A file written for the previous release (the stored names) still reads; a typo does not.
    std::fs::write(
        dir.join("old.toml"),
        "code = \"hs-old-file\"\ndefault_targeted_object = \"contacts\"\n\
         lago_app_url = \"https://lago.test\"\norganization_slug = \"acme\"\n",
    )
    .unwrap();
    let old_file = output(with_hubspot(&["deploy", "--config", "old.toml"])).await;
    succeeded(&old_file);
    assert!(show("hs-old-file").contains("default object:     contacts"));
    // Each old key is named once, with its new name, as the old flags are.
    let stderr = text(&old_file.stderr);
    for (old, new) in [
        ("code", "connection"),
        ("default_targeted_object", "default_object"),
    ] {
        let warning = format!(
            "warning: `{old} =` is deprecated and goes away in the next release: use `{new} =`"
        );
        assert_eq!(stderr.matches(&warning).count(), 1, "{stderr}");
    }
    std::fs::write(dir.join("typo.toml"), "sync_invoice = false\n").unwrap();
    let typo = output(with_hubspot(&["deploy", "--config", "typo.toml"])).await;
    assert!(!typo.status.success());
    assert!(
        text(&typo.stderr).contains("invalid connection settings in typo.toml"),
        "{}",
        text(&typo.stderr)
    );

    // `backfill --lago-url` is `--lago-api-url` now, as `serve` spells it.
    let events = dir.join("events.jsonl");
    std::fs::write(
        &events,
        format!(
            "{}\n",
            customer_event("customer.created", &customer("cus_b", None))
        ),
    )
    .unwrap();
    let backfill = output(with_hubspot(&[
        "backfill",
        "--connection",
        "hs-old",
        "--lago-url",
        "http://127.0.0.1:9",
        "--from",
        events.to_str().unwrap(),
        "--progress",
        "none",
    ]))
    .await;
    succeeded(&backfill);
    assert!(
        text(&backfill.stderr).contains("use `--lago-api-url URL`"),
        "{}",
        text(&backfill.stderr)
    );

    // `connect --code` is the global `--connection` now.
    let connect = output(with_hubspot(&[
        "connect",
        "--code",
        "hs-pat",
        "--no-deploy",
        links[0],
        links[1],
        links[2],
        links[3],
    ]))
    .await;
    succeeded(&connect);
    assert!(text(&connect.stderr).contains("`--code` is deprecated"));
    assert!(show("hs-pat").contains("connected"));
    let _ = std::fs::remove_dir_all(&dir);
}

// `--help` texts, compared with tests/fixtures/help/ (UPDATE_HELP=1 rewrites them).

#[test]
fn help_texts_match_their_snapshots() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/help");
    let update = std::env::var_os("UPDATE_HELP").is_some();
    let mut stale = Vec::new();
    for command in [
        &[][..],
        &["deploy"],
        &["sync"],
        &["backfill"],
        &["serve"],
        &["connect"],
        &["connections", "update"],
        &["events", "list"],
        &["status"],
        &["log"],
        &["plan"],
    ] {
        // No variable of the caller's shows up as a value in the help.
        let output = Command::new(env!("CARGO_BIN_EXE_lago-hubspot"))
            .env_clear()
            .args(command)
            .arg("--help")
            .output()
            .unwrap();
        let help = succeeded(&output);
        let name = std::iter::once("lago-hubspot")
            .chain(command.iter().copied())
            .collect::<Vec<_>>()
            .join("-");
        let file = fixtures.join(format!("{name}.txt"));
        if update {
            std::fs::create_dir_all(&fixtures).unwrap();
            std::fs::write(&file, &help).unwrap();
        } else if std::fs::read_to_string(&file).ok().as_deref() != Some(help.as_str()) {
            stale.push(format!("{}:\n{help}", file.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "help changed; if on purpose, run with UPDATE_HELP=1 and commit tests/fixtures/help/:\n{}",
        stale.join("\n")
    );
    // One default state name, documented.
    let top = std::fs::read_to_string(fixtures.join("lago-hubspot.txt")).unwrap();
    assert!(top.contains("[default: lago-hubspot.db]"), "{top}");
}

// 5. An installed binary finds its component beside it, or says how to get it.

#[test]
fn an_installed_binary_finds_its_component_beside_it_or_says_how_to_get_it() {
    let installed = Path::new(env!("CARGO_TARGET_TMPDIR")).join("first-hour-install/bin");
    let _ = std::fs::remove_dir_all(&installed);
    std::fs::create_dir_all(&installed).unwrap();
    let binary = installed.join("lago-hubspot");
    // A hard link (a 400 MB debug binary is not copied) runs as if installed there.
    std::fs::hard_link(env!("CARGO_BIN_EXE_lago-hubspot"), &binary)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_lago-hubspot"), &binary).map(drop))
        .unwrap();
    let dir = workdir("install");
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        customer_event("customer.created", &customer("cus_1", None)).to_string(),
    )
    .unwrap();
    let plan = || {
        let mut command = Command::new(&binary);
        for name in ENVIRONMENT {
            command.env_remove(name);
        }
        command
            .current_dir(&dir)
            .arg("plan")
            .arg(&event)
            .output()
            .unwrap()
    };

    let missing = plan();
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    let beside = installed.join("lago_hubspot_guest.wasm");
    assert!(
        stderr.contains("lago_hubspot_guest.wasm is not installed")
            && stderr.contains(&beside.display().to_string())
            && stderr.contains("`make install`")
            && stderr.contains("--component FILE.wasm (or LAGO_HUBSPOT_COMPONENT)"),
        "{stderr}"
    );

    std::fs::hard_link(component_path(), &beside)
        .or_else(|_| std::fs::copy(component_path(), &beside).map(drop))
        .unwrap();
    let found = plan();
    assert!(succeeded(&found).contains("lago_customer_id"));

    let named = lago_hubspot(&dir)
        .args(["--component", "missing.wasm", "plan"])
        .arg(&event)
        .output()
        .unwrap();
    assert!(
        text(&named.stderr).contains("no component at missing.wasm")
            && text(&named.stderr).contains("`make install`"),
        "{}",
        text(&named.stderr)
    );
    let _ = std::fs::remove_dir_all(&installed);
    let _ = std::fs::remove_dir_all(&dir);
}

// 5 and 6: one install command, and a first `make demo` that shows the build.

#[test]
fn make_install_installs_both_and_make_demo_shows_the_build() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let makefile = std::fs::read_to_string(root.join("Makefile")).unwrap();
    let recipe = |target: &str| -> Vec<String> {
        makefile
            .lines()
            .skip_while(|line| !line.starts_with(&format!("{target}:")))
            .skip(1)
            .take_while(|line| line.starts_with('\t'))
            .map(|line| line.trim().to_owned())
            .collect()
    };
    let demo = recipe("demo");
    assert_eq!(
        demo.first().map(String::as_str),
        Some("$(CARGO) build -p lago-hubspot"),
        "the harness is built with cargo's progress shown: {demo:?}"
    );
    let install = recipe("install").join("\n");
    assert!(
        install.contains("$(CARGO) install --path host-harness --locked")
            && install.contains("$(COMPONENT)")
            && install.contains("lago_hubspot_guest.wasm"),
        "{install}"
    );
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    assert!(
        readme.contains("make install") && readme.contains("Rust 1.95"),
        "the README says how to install and what a build needs"
    );
}

// 7. Logs: plain text off a terminal, JSON on request, RUST_LOG honoured.

#[test]
fn logs_are_plain_text_off_a_terminal_and_json_on_request() {
    let dir = workdir("logs");
    let event = dir.join("event.json");
    std::fs::write(
        &event,
        customer_event("customer.created", &customer("cus_1", None)).to_string(),
    )
    .unwrap();
    let plan = |format: &str| {
        lago_hubspot(&dir)
            .args(["plan", "--log-format", format])
            .arg(&event)
            .env("RUST_LOG", "debug")
            .output()
            .unwrap()
    };
    let text_logs = plan("text");
    let stderr = text(&text_logs.stderr);
    assert!(stderr.contains(" DEBUG "), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "colour codes off a terminal");
    let json_logs = plan("json");
    let stderr = text(&json_logs.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with('{')).collect();
    assert!(!lines.is_empty(), "{stderr}");
    for line in lines {
        let entry: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(entry["level"].is_string() && entry["fields"].is_object());
    }
    let quiet = lago_hubspot(&dir).arg("plan").arg(&event).output().unwrap();
    assert!(!text(&quiet.stderr).contains("DEBUG"));
    let _ = std::fs::remove_dir_all(&dir);
}

// 8. A reader that goes away (`… | head -1`) ends the command quietly, with status 0.

#[tokio::test(flavor = "multi_thread")]
async fn a_closed_pipe_ends_a_command_quietly() {
    let hubspot = start_hubspot().await;
    let dir = workdir("pipe");
    operated_state(&dir.join("lago-hubspot.db"));
    let events = dir.join("events.jsonl");
    let lines: Vec<String> = (0..3)
        .map(|i| {
            customer_event("customer.created", &customer(&format!("cus_{i}"), None)).to_string()
        })
        .collect();
    std::fs::write(&events, lines.join("\n")).unwrap();
    let events = events.to_str().unwrap();
    let event = dir.join("event.json");
    std::fs::write(&event, &lines[0]).unwrap();
    let event = event.to_str().unwrap();
    let url = hubspot.url.as_str();
    for args in [
        &["--help"][..],
        &["status"],
        &["events", "list"],
        &["events", "show", "1"],
        &["log", "cus_acme"],
        &["connections", "list"],
        &["sync", "--hubspot-url", url, events],
        &[
            "backfill",
            "--hubspot-url",
            url,
            "--from",
            events,
            "--force",
        ],
        &["plan", event],
    ] {
        let mut command = lago_hubspot(&dir);
        command.args(args).env("HUBSPOT_ACCESS_TOKEN", TOKEN);
        let status = tokio::task::spawn_blocking(move || {
            // The reading end is closed before the command writes anything, as `head -1`
            // leaves it once it has its line.
            let (reader, writer) = std::io::pipe().unwrap();
            drop(reader);
            command
                .stdout(Stdio::from(writer))
                .stderr(Stdio::piped())
                .output()
                .unwrap()
        })
        .await
        .unwrap();
        let stderr = text(&status.stderr);
        assert!(
            status.status.success(),
            "{args:?}: {:?}\n{stderr}",
            status.status
        );
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// 9. Placeholder links are named at deploy and connect time.

#[tokio::test(flavor = "multi_thread")]
async fn placeholder_links_are_warned_about_at_deploy_and_connect() {
    let hubspot = start_hubspot().await;
    let dir = workdir("placeholders");
    let run = |args: &[&str]| {
        let mut command = lago_hubspot(&dir);
        command
            .args(args)
            .args(["--hubspot-url", &hubspot.url])
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN);
        output(command)
    };
    let deploy = run(&["deploy"]).await;
    succeeded(&deploy);
    let stderr = text(&deploy.stderr);
    assert!(
        stderr.contains(
            "warning: connection hubspot: --lago-app-url and --organization-slug not set"
        ) && stderr.contains("http://localhost:8080/default/customer/<lago_id>")
            && stderr.contains("connections update hubspot"),
        "{stderr}"
    );
    let one = run(&["deploy", "--lago-app-url", "https://lago.example.com"]).await;
    let stderr = text(&one.stderr);
    assert!(
        stderr.contains("--organization-slug not set")
            && stderr.contains("https://lago.example.com/default/customer/<lago_id>")
            && !stderr.contains("--lago-app-url and"),
        "{stderr}"
    );
    let set = run(&["deploy", "--organization-slug", "acme"]).await;
    succeeded(&set);
    assert!(
        !text(&set.stderr).contains("warning"),
        "{}",
        text(&set.stderr)
    );
    let connect = run(&["connect", "--connection", "hs-2", "--no-deploy"]).await;
    succeeded(&connect);
    assert!(
        text(&connect.stderr)
            .contains("warning: connection hs-2: --lago-app-url and --organization-slug not set"),
        "{}",
        text(&connect.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// 11. The smaller ones.

#[test]
fn log_finds_objects_by_external_id_and_invoice_number() {
    let dir = workdir("log");
    operated_state(&dir.join("lago-hubspot.db"));
    let log = |key: &str| succeeded(&lago_hubspot(&dir).args(["log", key]).output().unwrap());
    let by_id = log("cus_acme");
    assert!(
        by_id.contains("synced   customer.created  company 2000001 upserted")
            && by_id.contains("POST /crm/v3/objects/companies/batch/upsert → 200"),
        "{by_id}"
    );
    let by_external_id = log("acme-ext");
    assert!(
        by_external_id
            .contains("customer cus_acme on connection hubspot (customer external_id acme-ext)")
            && by_external_id.contains("company 2000001 upserted"),
        "{by_external_id}"
    );
    let by_number = log("ACME-inv_acme");
    assert!(
        by_number.contains("invoice inv_acme on connection hubspot (invoice number ACME-inv_acme)")
            && by_number.contains("nothing was synced for inv_acme on connection hubspot yet"),
        "{by_number}"
    );
    let unknown = log("nobody");
    assert!(
        unknown.contains("nothing was synced for nobody"),
        "{unknown}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_list_counts_tries_including_the_first() {
    let dir = workdir("tries");
    operated_state(&dir.join("lago-hubspot.db"));
    let listed = succeeded(
        &lago_hubspot(&dir)
            .args(["events", "list"])
            .output()
            .unwrap(),
    );
    let tries = |lago_id: &str| -> String {
        let row = listed
            .lines()
            .find(|line| line.contains(lago_id))
            .unwrap_or_else(|| panic!("{listed}"));
        row.split_whitespace().nth(3).unwrap().to_owned()
    };
    assert_eq!(tries("cus_acme"), "1", "synced on its first try: {listed}");
    assert_eq!(tries("inv_acme"), "2", "failed twice, waiting: {listed}");
    assert_eq!(tries("cus_new"), "0", "never tried: {listed}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_reads_pretty_printed_payloads_and_says_how_to_spread_an_array() {
    let hubspot = start_hubspot().await;
    let dir = workdir("pretty");
    let payloads = [
        customer_event("customer.created", &customer("cus_1", None)),
        customer_event("customer.created", &customer("cus_2", None)),
    ];
    let backfill = |file: &str| {
        let mut command = lago_hubspot(&dir);
        command
            .args(["backfill", "--hubspot-url", &hubspot.url, "--from", file])
            .args(["--organization-slug", "acme"])
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN);
        command
    };
    let array = dir.join("export.json");
    std::fs::write(
        &array,
        serde_json::to_string_pretty(&json!(payloads)).unwrap(),
    )
    .unwrap();
    let refused = output(backfill("export.json")).await;
    assert!(!refused.status.success());
    let stderr = text(&refused.stderr);
    assert!(
        stderr.contains("export.json holds a JSON array of 2 values at line 1, not payloads")
            && stderr.contains("jq -c '.[]'"),
        "{stderr}"
    );
    assert!(hubspot.records("companies").is_empty(), "nothing was sent");

    let pretty: String = payloads
        .iter()
        .map(|p| serde_json::to_string_pretty(p).unwrap() + "\n")
        .collect();
    std::fs::write(dir.join("pretty.json"), pretty).unwrap();
    succeeded(&output(backfill("pretty.json")).await);
    assert_eq!(hubspot.records("companies").len(), 2);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_demo_shows_amounts_with_their_currencys_decimals() {
    let dir = workdir("demo");
    let demo = succeeded(&lago_hubspot(&dir).arg("demo").output().unwrap());
    let invoices: Vec<&str> = demo
        .lines()
        .skip_while(|line| !line.starts_with("LagoInvoices ("))
        .skip(3)
        .take_while(|line| !line.is_empty())
        .collect();
    assert!(!invoices.is_empty(), "{demo}");
    for row in invoices {
        let cells: Vec<&str> = row.split_whitespace().collect();
        let (total, currency) = (cells[4], cells[5]);
        let decimals = total.split_once('.').map_or(0, |(_, d)| d.len());
        let expected = match currency {
            "JPY" | "HUF" => 0,
            _ => 2,
        };
        assert_eq!(decimals, expected, "{row}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

// 12. A fresh-user review's remaining findings.

/// `sync` (file or stdin) or `backfill` against the emulator, from `dir`, with the token in the
/// environment.
fn against(dir: &Path, hubspot: &RunningEmulator, args: &[&str]) -> Command {
    let mut command = lago_hubspot(dir);
    command
        .args(args)
        .args(["--hubspot-url", &hubspot.url, "--organization-slug", "acme"])
        .env("HUBSPOT_ACCESS_TOKEN", TOKEN);
    command
}

#[tokio::test(flavor = "multi_thread")]
async fn log_finds_what_sync_and_backfill_did_by_external_id_and_number() {
    let hubspot = start_hubspot().await;
    let dir = workdir("log-modes");
    let acme = customer("cus_acme", Some("company"));
    let exported = dir.join("export.jsonl");
    std::fs::write(
        &exported,
        format!("{}\n", customer_event("customer.created", &acme)),
    )
    .unwrap();
    succeeded(
        &output(against(
            &dir,
            &hubspot,
            &["backfill", "--from", "export.jsonl"],
        ))
        .await,
    );
    let event = dir.join("invoice.json");
    let invoice = invoice("inv_acme", &acme, "finalized", "pending");
    std::fs::write(
        &event,
        invoice_event("invoice.created", &invoice).to_string(),
    )
    .unwrap();
    succeeded(&output(against(&dir, &hubspot, &["sync", "invoice.json"])).await);

    let log = |key: &str| succeeded(&lago_hubspot(&dir).args(["log", key]).output().unwrap());
    let by_external_id = log("ext-cus_acme");
    assert!(
        by_external_id.contains(
            "customer cus_acme on connection hubspot (customer external_id ext-cus_acme)"
        ) && by_external_id.contains("synced   customer.created"),
        "{by_external_id}"
    );
    let by_number = log("ACME-inv_acme");
    assert!(
        by_number.contains("invoice inv_acme on connection hubspot (invoice number ACME-inv_acme)")
            && by_number.contains("synced   invoice.created"),
        "{by_number}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn events_list_and_status_fit_80_columns_and_keep_the_error_whole() {
    let dir = workdir("narrow");
    let path = dir.join("lago-hubspot.db");
    operated_state(&path);
    let uuid = "8d1f3c5e-2b7a-4c19-9e3f-6a0b5d7c2e41";
    let error = "HubSpot answered 400: Property values were not valid: lago_payment_status \
                 was not one of the allowed options (correlation id 7f3e0c1a-55b2-4e7e-9d8f)";
    let store = Store::open(&path).unwrap();
    store
        .insert_event(&NewEvent {
            unique_key: None,
            connection: "hubspot".into(),
            order_key: uuid.into(),
            customer_key: String::new(),
            webhook_type: "invoice.payment_status_updated".into(),
            lago_id: uuid.into(),
            body: "{}".into(),
            settled: None,
        })
        .unwrap();
    // As serve runs it: claimed, then settled; the others claimed with it wait as they were.
    let claimed = store.claim_ready(10, i64::MAX).unwrap();
    assert!(claimed.iter().any(|e| e.id == 4), "{claimed:?}");
    for other in claimed.iter().filter(|e| e.id != 4) {
        let error = other.last_error.as_deref().unwrap_or_default();
        store
            .retry_later(
                other.id,
                other.attempts,
                other.next_attempt_ms,
                error,
                other.last_status,
            )
            .unwrap();
    }
    store.retry_later(4, 1, 0, error, Some(400)).unwrap();
    drop(store);
    // The error, whichever way it was wrapped.
    let unspaced = |text: &str| text.split_whitespace().collect::<String>();
    for command in [&["events", "list"][..], &["status"]] {
        let narrow = succeeded(
            &lago_hubspot(&dir)
                .args(command)
                .env("COLUMNS", "80")
                .output()
                .unwrap(),
        );
        assert!(
            narrow.lines().all(|line| line.chars().count() <= 80),
            "{command:?}:\n{narrow}"
        );
        assert!(
            unspaced(&narrow).contains(&unspaced(error)),
            "{command:?}:\n{narrow}"
        );
        // Off a terminal, without COLUMNS: whole lines, for grep.
        let whole = succeeded(&lago_hubspot(&dir).args(command).output().unwrap());
        assert!(
            whole
                .lines()
                .any(|line| line.contains(error) && line.contains("invoice.payment_status_updated")),
            "{command:?}:\n{whole}"
        );
    }
    let listed = succeeded(
        &lago_hubspot(&dir)
            .args(["events", "list"])
            .env("COLUMNS", "80")
            .output()
            .unwrap(),
    );
    // The least important values give way (the lago id, then the event's middle); the ids and
    // states stay whole.
    assert!(
        listed.contains("invoice.…")
            && listed
                .lines()
                .any(|line| line.starts_with("4 ") && line.contains(" pending  1  ")),
        "{listed}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn status_and_connections_show_say_what_is_so() {
    let dir = workdir("what-is-so");
    let path = dir.join("lago-hubspot.db");
    let store = Store::open(&path).unwrap();
    store.save_connection(&settings()).unwrap();
    store
        .insert_event(&NewEvent {
            unique_key: None,
            connection: "hubspot".into(),
            order_key: "cus_1".into(),
            customer_key: "cus_1".into(),
            webhook_type: "customer.created".into(),
            lago_id: "cus_1".into(),
            body: customer_event("customer.created", &customer("cus_1", None)).to_string(),
            settled: None,
        })
        .unwrap();
    // A worker holds it: nothing waits.
    assert_eq!(store.claim_ready(1, i64::MAX).unwrap().len(), 1);
    drop(store);
    let status = succeeded(&lago_hubspot(&dir).arg("status").output().unwrap());
    assert!(
        status.contains("nothing pending (1 running)") && !status.contains("oldest pending"),
        "{status}"
    );

    let code = settings().code;
    let show = |command: &mut Command| {
        succeeded(
            &command
                .args(["connections", "show", &code])
                .output()
                .unwrap(),
        )
    };
    let from_env = show(lago_hubspot(&dir).env("HUBSPOT_ACCESS_TOKEN", TOKEN));
    assert!(
        from_env
            .contains("no stored access (this command's token comes from HUBSPOT_ACCESS_TOKEN)"),
        "{from_env}"
    );
    let from_flag = show(lago_hubspot(&dir).args(["--token", TOKEN]));
    assert!(
        from_flag.contains("no stored access (this command's token comes from --token)"),
        "{from_flag}"
    );
    let without = show(&mut lago_hubspot(&dir));
    assert!(
        without.contains("no stored access (each command needs --token or HUBSPOT_ACCESS_TOKEN"),
        "{without}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Two connections: every command without --connection uses the default one, as `link` does.

#[tokio::test(flavor = "multi_thread")]
async fn with_two_connections_every_command_uses_the_default_one() {
    let hubspot = start_hubspot().await;
    let dir = workdir("two-connections");
    let run = |args: &[&str], token: bool| {
        let mut command = lago_hubspot(&dir);
        command.args(args).args(["--hubspot-url", &hubspot.url]);
        if token {
            command.env("HUBSPOT_ACCESS_TOKEN", TOKEN);
        }
        output(command)
    };
    for (code, slug) in [("hs-a", "acme-a"), ("hs-b", "acme-b")] {
        succeeded(
            &run(
                &[
                    "connect",
                    "--connection",
                    code,
                    "--token",
                    TOKEN,
                    "--lago-app-url",
                    "https://lago.example.com",
                    "--organization-slug",
                    slug,
                    "--no-deploy",
                ],
                false,
            )
            .await,
        );
    }
    let list = succeeded(&run(&["connections", "list"], false).await);
    assert!(
        list.lines()
            .any(|l| l.starts_with("hs-a") && l.contains("yes")),
        "{list}"
    );

    let event = dir.join("customer.json");
    std::fs::write(
        &event,
        customer_event("customer.created", &customer("cus_two", Some("individual"))).to_string(),
    )
    .unwrap();
    let event = event.to_str().unwrap();
    let plan = succeeded(&run(&["plan", event], false).await);
    assert!(
        plan.contains("https://lago.example.com/acme-a/customer/cus_two"),
        "{plan}"
    );
    succeeded(&run(&["deploy"], false).await);
    let sync = run(&["sync", event], false).await;
    assert!(
        succeeded(&sync).starts_with("synced"),
        "{}",
        text(&sync.stderr)
    );
    let contacts = hubspot.records("contacts");
    assert_eq!(contacts.len(), 1);
    assert_eq!(
        contacts[0]
            .properties
            .get("lago_customer_link")
            .map(String::as_str),
        Some("https://lago.example.com/acme-a/customer/cus_two")
    );
    // A token for the run does not make a third connection.
    succeeded(&run(&["sync", event], true).await);
    let list = succeeded(&run(&["connections", "list"], false).await);
    assert!(!list.lines().any(|l| l.starts_with("hubspot")), "{list}");
    let log_a = succeeded(&run(&["log", "cus_two", "--connection", "hs-a"], false).await);
    assert_eq!(log_a.matches("synced").count(), 2, "{log_a}");
    let log_b = succeeded(&run(&["log", "cus_two", "--connection", "hs-b"], false).await);
    assert!(
        log_b.contains("nothing was synced for cus_two on connection hs-b"),
        "{log_b}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

// Connection settings are checked as they are read, before anything is stored or sent.

#[tokio::test(flavor = "multi_thread")]
async fn bad_connection_settings_are_refused_naming_the_setting_before_anything_is_stored() {
    let hubspot = start_hubspot().await;
    let dir = workdir("bad-settings");
    let event = dir.join("customer.json");
    std::fs::write(
        &event,
        customer_event("customer.created", &customer("cus_bad", Some("company"))).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("bad.toml"), "organization_slug = \"\"\n").unwrap();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = lago_hubspot(&dir);
        command
            .args(args)
            .args(["--hubspot-url", &hubspot.url])
            .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
            .envs(env.iter().copied());
        output(command)
    };
    let event = event.to_str().unwrap();
    for (args, env, named) in [
        (
            &["sync", event, "--lago-app-url", "ftp://lago.example.com"][..],
            &[][..],
            "--lago-app-url",
        ),
        (
            &["sync", event],
            &[("LAGO_APP_URL", "not-a-url")][..],
            "LAGO_APP_URL",
        ),
        (
            &["deploy", "--organization-slug", ""],
            &[],
            "--organization-slug",
        ),
        (
            &["sync", event, "--config", "bad.toml"],
            &[],
            "organization_slug",
        ),
    ] {
        let refused = run(args, env).await;
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success(), "{args:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(named) && !stderr.contains("panicked"),
            "{args:?} {env:?}: {stderr}"
        );
        assert!(
            !dir.join("lago-hubspot.db").exists(),
            "{args:?} {env:?}: a state was written"
        );
    }
    assert!(hubspot.request_log().is_empty(), "something was sent");

    // A stored connection keeps its settings when an update is refused.
    succeeded(
        &run(
            &["deploy", "--lago-app-url", "https://lago.example.com"],
            &[],
        )
        .await,
    );
    let update = run(
        &[
            "connections",
            "update",
            "hubspot",
            "--lago-app-url",
            "lago.example.com",
        ],
        &[],
    )
    .await;
    assert!(!update.status.success(), "{}", text(&update.stderr));
    let shown = succeeded(&run(&["connections", "show", "hubspot"], &[]).await);
    assert!(shown.contains("https://lago.example.com"), "{shown}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn plan_reads_stdin_an_empty_file_stays_empty_and_retry_takes_an_id_or_all_dead() {
    let dir = workdir("smaller-ones");
    let event = customer_event("customer.created", &customer("cus_stdin", Some("company")));
    let mut plan = lago_hubspot(&dir)
        .args(["plan", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = plan.stdin.take().unwrap();
        stdin.write_all(event.to_string().as_bytes()).unwrap();
    }
    let planned = succeeded(&plan.wait_with_output().unwrap());
    assert!(planned.contains("cus_stdin"), "{planned}");

    // A read-only command leaves an empty file as it found it.
    std::fs::write(dir.join("empty.db"), "").unwrap();
    for args in [
        &["status", "--state", "empty.db"][..],
        &["events", "list", "--state", "empty.db"],
    ] {
        let refused = lago_hubspot(&dir).args(args).output().unwrap();
        let stderr = text(&refused.stderr);
        assert!(!refused.status.success(), "{args:?}: {stderr}");
        assert!(
            stderr.contains("empty.db is an empty file"),
            "{args:?}: {stderr}"
        );
        assert_eq!(std::fs::metadata(dir.join("empty.db")).unwrap().len(), 0);
    }

    let both = lago_hubspot(&dir)
        .args(["events", "retry", "5", "--all-dead", "--state", "empty.db"])
        .output()
        .unwrap();
    let stderr = text(&both.stderr);
    assert_eq!(both.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--all-dead") && stderr.contains("cannot be used with"),
        "{stderr}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
