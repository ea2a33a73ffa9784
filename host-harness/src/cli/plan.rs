//! `lago-hubspot plan`: the plan for one webhook payload, its operations and the HubSpot requests
//! they become; sends nothing and changes nothing.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::{Value, json};

use lago_hubspot::executor::{method_name, operation};
use lago_hubspot::hubspot_http::{DEFAULT_HUBSPOT_URL, HubspotClient, Secret};
use lago_hubspot::runtime::Plan;
use lago_hubspot::store::Store;
use lago_hubspot::sync::{Syncer, describe_plan_error};
use lago_hubspot::wit_json::call_document;

use super::Global;
use super::settings::Settings;

/// Known HubSpot ids and deployed object type ids come from the state when there is one (a
/// state named with --state or LAGO_HUBSPOT_STATE must exist).
#[derive(Args)]
pub struct PlanArgs {
    /// What to print
    #[arg(long, value_enum, default_value_t)]
    pub format: PlanFormat,

    #[command(flatten)]
    pub settings: Settings,

    /// The Lago webhook payload: a file, or `-` for stdin.
    #[arg(value_name = "EVENT.json")]
    pub event: PathBuf,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PlanFormat {
    /// The plan's steps: each one's operation and the HubSpot request it becomes
    #[default]
    Requests,
    /// The handler call as canonical JSON of its WIT values, the shape any host can print:
    /// `{"handler", "connection", "known", "result": {"ok": plan} | {"err": plan-error}}` (see
    /// the README's "Run the component from your own host")
    Json,
}

pub async fn run(global: &Global, args: PlanArgs) -> anyhow::Result<ExitCode> {
    let plugin = global.plugin()?;
    let store = match global.state_if_any()? {
        Some(store) => store,
        None => {
            errln!(
                "no state at {}: planning without known HubSpot ids",
                global.state_path().display()
            );
            Store::open_in_memory()?
        }
    };
    let settings = args.settings.resolve(global.connection(), &store)?;
    // A plan never sends anything; the client is only there to satisfy the syncer.
    let client = HubspotClient::new(DEFAULT_HUBSPOT_URL, Secret::new(""))?;
    let syncer = Syncer::read_only(plugin, client, store, settings);
    let payload = if args.event.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?
    } else {
        std::fs::read_to_string(&args.event)
            .with_context(|| format!("cannot read {}", args.event.display()))?
    };
    if args.format == PlanFormat::Json {
        let call = syncer.plan_call(&payload).await?;
        let document = call_document(call.handler, &call.connection, &call.known, &call.result);
        outln!("{}", serde_json::to_string_pretty(&document)?);
        return Ok(match &call.result {
            Ok(_) => ExitCode::SUCCESS,
            Err(error) => {
                errln!("error: {}", describe_plan_error(error));
                ExitCode::FAILURE
            }
        });
    }
    match syncer.plan(&payload).await? {
        Ok(plan) => {
            outln!("{}", serde_json::to_string_pretty(&plan_json(&plan))?);
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            errln!("error: {}", describe_plan_error(&error));
            Ok(ExitCode::FAILURE)
        }
    }
}

/// The plan as JSON: each step's operation as the component typed it, and the HubSpot request it
/// becomes, with the result of an earlier step shown as `{result of step N}` (1-based).
fn plan_json(plan: &Plan) -> Value {
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|step| {
            let request = operation::request(&step.operation, |n| {
                Some(format!("{{result of step {}}}", n + 1))
            });
            let request = match request {
                Ok(request) => json!({
                    "method": method_name(request.method),
                    "path": request.path,
                    "body": request.body,
                    "accept_statuses": request.accept_statuses,
                    "result": request.result_pointer,
                }),
                // Every reference is shown, never missing.
                Err(step) => json!(format!("refers to step {}", step + 1)),
            };
            json!({
                "description": step.description,
                "operation": step.operation,
                "store_as": step.store_as,
                "request": request,
            })
        })
        .collect();
    json!({ "summary": plan.summary, "steps": steps, "learned": plan.learned })
}
