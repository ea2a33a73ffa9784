//! The shipped component in a second, independent host: Python's `wasmtime` (wasmtime-py, pinned
//! in `tests/second-host/requirements.txt`) runs `tests/second-host/plan.py`, which links the
//! world's imports from wasmtime-py's own WASI and calls the handler for each sample event; its
//! plans must equal the harness's (`lago-hubspot plan --format json`), value for value.
//!
//! The Python lives in a virtual environment that `tools/second-host.sh` makes in
//! `<target dir>/second-host-venv` (CI runs it first). Without one these tests print a notice and
//! pass, unless `LAGO_HUBSPOT_REQUIRE_SECOND_HOST=1` (set by `.ci/run`): then they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use lago_hubspot::store::Store;
use lago_hubspot_emulators::hubspot::{Emulator, EmulatorConfig};
use serde_json::Value;

use crate::support::binary::{Workspace, lago_hubspot_command};
use crate::support::{TOKEN, component_path, settings, syncer_for};

const REQUIRE: &str = "LAGO_HUBSPOT_REQUIRE_SECOND_HOST";
const README: &str = include_str!("../../README.md");
const README_SECTION: &str = "## Run the component from your own host";

fn checkout() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

fn plan_script() -> PathBuf {
    checkout().join("tests/second-host/plan.py")
}

/// The target directory the component was built in (`<target>/wasm32-wasip2/release/…`).
fn target_dir() -> PathBuf {
    component_path()
        .ancestors()
        .nth(3)
        .expect("the component is in <target>/wasm32-wasip2/release/")
        .to_owned()
}

/// The second host's Python, or `None` (with a notice) when it is not set up and not required.
fn second_host_python() -> Option<PathBuf> {
    let python = target_dir().join("second-host-venv/bin/python");
    let works = Command::new(&python)
        .args(["-c", "import wasmtime.component"])
        .output()
        .is_ok_and(|output| output.status.success());
    if works {
        return Some(python);
    }
    let missing = format!(
        "no second host at {}: run `tools/second-host.sh` (a venv with tests/second-host/requirements.txt)",
        python.display()
    );
    assert!(
        std::env::var(REQUIRE).as_deref() != Ok("1"),
        "{missing}; {REQUIRE}=1 requires it"
    );
    eprintln!("skipped: {missing}");
    None
}

fn stdout_json(what: &str, output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "{what} printed no JSON ({error}); exit {:?}, stderr:\n{}",
            output.status.code(),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The harness's dry run, as the document `plan --format json` prints.
fn harness_plan(dir: &Path, state: Option<&Path>, event: &Path) -> (Output, Value) {
    let mut command = lago_hubspot_command();
    command.current_dir(dir).args(["plan", "--format", "json"]);
    if let Some(state) = state {
        command.arg("--state").arg(state);
    }
    let output = command.arg(event).output().unwrap();
    let document = stdout_json(&format!("lago-hubspot plan {}", event.display()), &output);
    (output, document)
}

/// The second host's plan for `event`, handed the `connection` and `known` of `context` (a
/// document the harness printed, or any JSON with those keys).
fn python_plan(python: &Path, context: Option<&Path>, event: &Path) -> (Output, Value) {
    let mut command = Command::new(python);
    command.arg(plan_script());
    if let Some(context) = context {
        command.arg("--context").arg(context);
    }
    let output = command.arg(component_path()).arg(event).output().unwrap();
    let document = stdout_json(&format!("plan.py {}", event.display()), &output);
    (output, document)
}

fn samples() -> Vec<PathBuf> {
    let mut samples: Vec<PathBuf> = std::fs::read_dir(checkout().join("samples/events"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    samples.sort();
    samples
}

/// A state a user would have after `deploy` and syncing the first customer and subscription:
/// the custom objects have type ids and some records have HubSpot ids, so the plans of the
/// other samples use them.
async fn deployed_state(state: &Path) {
    let hubspot = Emulator::start(EmulatorConfig {
        tokens: vec![TOKEN.into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let syncer = syncer_for(&hubspot, Store::open(state).unwrap(), settings());
    syncer.deploy().await.expect("deploy");
    for sample in ["01-customer-company.json", "04-subscription-started.json"] {
        let payload =
            std::fs::read_to_string(checkout().join("samples/events").join(sample)).unwrap();
        let outcome = syncer.sync_event(&payload).await;
        assert_eq!(
            outcome.status,
            lago_hubspot::sync::OutcomeStatus::Synced,
            "{sample}: {}",
            outcome.detail
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn python_wasmtime_plans_every_sample_as_the_harness_does() {
    let Some(python) = second_host_python() else {
        return;
    };
    let workspace = Workspace::new("second-host");
    let state = workspace.state();
    deployed_state(&state).await;

    let mut documents: Vec<(String, Value)> = Vec::new();
    for event in samples() {
        let name = event.file_name().unwrap().to_string_lossy().into_owned();
        let (harness_output, harness) = harness_plan(&workspace.dir, Some(&state), &event);
        assert!(
            harness_output.status.success(),
            "{name}: lago-hubspot could not plan it: {}",
            String::from_utf8_lossy(&harness_output.stderr)
        );
        let context = workspace.dir.join(format!("context-{name}"));
        std::fs::write(&context, harness_output.stdout).unwrap();
        let (python_output, second) = python_plan(&python, Some(&context), &event);
        assert!(
            python_output.status.success(),
            "{name}: plan.py failed: {}",
            String::from_utf8_lossy(&python_output.stderr)
        );
        assert_eq!(
            second, harness,
            "{name}: the second host's plan differs from the harness's"
        );
        documents.push((name, harness));
    }

    // What was compared is the real thing: each sample's plan, a different one each time, with
    // operations that use the deployed objects and the ids the state knows.
    assert_eq!(documents.len(), 9, "the samples in samples/events");
    for (i, (name, document)) in documents.iter().enumerate() {
        let plan = &document["result"]["ok"];
        assert!(plan["summary"].as_str().is_some_and(|s| !s.is_empty()));
        for (other, earlier) in &documents[..i] {
            assert_ne!(earlier["result"], document["result"], "{name} and {other}");
        }
    }
    let steps = |name: &str| -> usize {
        let (_, document) = documents.iter().find(|(n, _)| n == name).unwrap();
        document["result"]["ok"]["steps"].as_array().unwrap().len()
    };
    assert!(steps("01-customer-company.json") >= 1);
    assert!(
        steps("05-invoice-created-eur.json") >= 2,
        "upsert and associate"
    );
    assert_eq!(steps("08-invoice-draft.json"), 0, "a draft is not pushed");
    let invoice = &documents[4].1;
    assert_eq!(invoice["handler"], "on-invoice");
    let invoice_type = invoice["connection"]["invoices-object-type-id"]
        .as_str()
        .expect("deployed: LagoInvoices has a type id");
    let known = invoice["known"].as_array().unwrap();
    assert!(
        !known.is_empty(),
        "the invoice's customer is known: {invoice:#}"
    );
    let text = invoice.to_string();
    assert!(text.contains(&format!("\"object-type\":\"{invoice_type}\"")));
    assert!(text.contains(&format!("{{\"known\":{}}}", known[0]["hubspot-id"])));

    // And the comparison can fail: the same event handed other settings plans otherwise.
    let (_, harness) = harness_plan(&workspace.dir, Some(&state), &samples()[4]);
    let mut context = harness.clone();
    context["connection"]["sync-invoices"] = Value::Bool(false);
    let other = workspace.dir.join("context-no-invoices.json");
    std::fs::write(&other, context.to_string()).unwrap();
    let (_, second) = python_plan(&python, Some(&other), &samples()[4]);
    assert_ne!(second["result"], harness["result"]);
    assert_eq!(second["result"]["ok"]["steps"], serde_json::json!([]));
}

/// The README's example, run as written (its `target/` being this build's target directory):
/// it prints exactly what `lago-hubspot plan --format json` prints for the same event.
#[test]
fn the_readme_runs_the_component_from_python() {
    let Some(python) = second_host_python() else {
        return;
    };
    let section = README
        .split_once(README_SECTION)
        .expect("the README has its \"Run the component from your own host\" section")
        .1;
    let section = section.split("\n## ").next().unwrap();
    let block = section
        .split_once("```sh\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the section has an sh block")
        .0;
    assert!(
        block.contains("pip install -r tests/second-host/requirements.txt"),
        "{block}"
    );
    let command = block.replace("\\\n", " ");
    let command = command
        .lines()
        .find(|line| line.contains("tests/second-host/plan.py"))
        .expect("the block runs tests/second-host/plan.py");
    let words: Vec<&str> = command.split_whitespace().collect();
    assert_eq!(words[0], ".venv/bin/python", "{command}");
    let args: Vec<String> = words[1..]
        .iter()
        .map(|word| match word.strip_prefix("target/") {
            Some(rest) => target_dir().join(rest).to_string_lossy().into_owned(),
            None => (*word).to_owned(),
        })
        .collect();
    let output = Command::new(&python)
        .args(&args)
        .current_dir(checkout())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let event = checkout().join(words.last().unwrap());
    let workspace = Workspace::new("second-host-readme");
    let (harness_output, _) = harness_plan(&workspace.dir, None, &event);
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&harness_output.stdout),
        "{command} and lago-hubspot plan --format json print different plans"
    );
    // The output the README shows is the one it prints.
    let shown = section
        .split_once("```json\n")
        .and_then(|(_, rest)| rest.split_once("```"))
        .expect("the section shows the output")
        .0;
    let printed = String::from_utf8_lossy(&output.stdout);
    for line in shown.lines().map(str::trim).filter(|l| !l.contains('…')) {
        assert!(
            printed.lines().any(|p| p.trim() == line),
            "the README shows `{line}`, which {command} does not print:\n{printed}"
        );
    }
}
