//! `lago-hubspot sync`: webhook payloads from files or stdin, one line per event.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use lago_hubspot::json_stream;
use lago_hubspot::report::{Column, Layout, cut, output_width, whole, wrapped};
use lago_hubspot::sync::OutcomeStatus;
use lago_hubspot_guest::webhooks::Envelope;

use super::settings::Settings;
use super::{Global, syncer};

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub settings: Settings,

    /// Lago webhook payloads: files, or `-` for stdin; each may hold several, one per line or
    /// pretty-printed one after another.
    #[arg(required = true, value_name = "EVENT.json")]
    pub events: Vec<PathBuf>,
}

/// The columns of the result lines: the outcome comes last, wrapped rather than cut.
/// The lago id gives way first: the detail names the object too.
const COLUMNS: [Column<'static>; 5] = [
    whole("outcome"),
    cut("source", 2),
    cut("event", 3),
    cut("lago id", 1),
    wrapped("detail"),
];

pub async fn run(global: &Global, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let syncer = syncer(global, &args.settings)?;
    if let Some(report) = syncer.deploy_if_needed().await? {
        errln!("deployed first: {}", report.summary);
    }
    let events = read_events(&args.events)?;
    let layout = layout(&events, output_width());
    let mut failed = 0;
    for event in events {
        let (source, payload) = match event {
            Ok(event) => event,
            Err(error) => {
                failed += 1;
                let cells = [
                    OutcomeStatus::Failed.to_string(),
                    String::new(),
                    String::new(),
                    String::new(),
                    format!("{error:#}"),
                ];
                out!("{}", layout.row(&cells));
                continue;
            }
        };
        let outcome = syncer.sync_event(&payload).await;
        if outcome.status == OutcomeStatus::Failed {
            failed += 1;
        }
        out!(
            "{}",
            layout.row(&[
                outcome.status.to_string(),
                source,
                outcome.webhook_type,
                outcome.lago_id,
                outcome.detail
            ])
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        errln!("{failed} event(s) failed");
        ExitCode::FAILURE
    })
}

/// Every payload of the files, or of stdin for `-`, whether one per line or pretty-printed;
/// each with a label for its result line (`FILE`, or `FILE:LINE` when it holds several).
fn read_events(sources: &[PathBuf]) -> anyhow::Result<Vec<anyhow::Result<(String, String)>>> {
    let mut events = Vec::new();
    for source in sources {
        let (name, text) = if source.as_os_str() == "-" {
            let text = std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?;
            ("stdin".to_owned(), text)
        } else {
            let name = source.display().to_string();
            match std::fs::read_to_string(source) {
                Ok(text) => (name, text),
                Err(error) => {
                    events.push(Err(
                        anyhow::Error::new(error).context(format!("cannot read {name}"))
                    ));
                    continue;
                }
            }
        };
        let values = json_stream::values(&text);
        if values.is_empty() && name != "stdin" {
            events.push(Err(anyhow::anyhow!(
                "{name} holds no webhook payload (it is empty)"
            )));
        }
        let several = values.len() > 1 || name == "stdin";
        for value in values {
            let label = if several {
                format!("{name}:{}", value.line)
            } else {
                name.clone()
            };
            events.push(Ok((label, value.text.to_owned())));
        }
    }
    Ok(events)
}

/// The result lines' columns, sized over every event's source, type and id (the detail is
/// known only once each has run).
fn layout(events: &[anyhow::Result<(String, String)>], width: Option<usize>) -> Layout {
    let rows: Vec<Vec<String>> = events
        .iter()
        .flatten()
        .map(|(source, payload)| {
            let envelope = Envelope::read(payload).ok();
            vec![
                OutcomeStatus::Skipped.to_string(),
                source.clone(),
                envelope
                    .as_ref()
                    .map(|e| e.webhook_type.clone())
                    .unwrap_or_default(),
                envelope.as_ref().map(Envelope::lago_id).unwrap_or_default(),
            ]
        })
        .collect();
    Layout::new(&COLUMNS, &rows, width)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(source: &str, kind: &str, id: &str) -> anyhow::Result<(String, String)> {
        Ok((
            source.to_owned(),
            serde_json::json!({"webhook_type": kind, "object_type": "customer",
                "customer": {"lago_id": id}})
            .to_string(),
        ))
    }

    fn cells(status: &str, source: &str, kind: &str, id: &str, detail: &str) -> Vec<String> {
        [status, source, kind, id, detail]
            .map(str::to_owned)
            .to_vec()
    }

    #[test]
    fn a_terminal_gets_aligned_lines_fitted_to_its_width_with_the_whole_detail() {
        let events = [
            event("a.json", "customer.created", "cus_1"),
            event(
                "samples/a-very-long-directory-name/long-name.json",
                "customer.updated",
                "cus_22",
            ),
        ];
        let layout = layout(&events, Some(80));
        let first = layout.row(&cells(
            "synced",
            "a.json",
            "customer.created",
            "cus_1",
            "company 1",
        ));
        let detail = "a very long reason ".repeat(10);
        let second = layout.row(&cells(
            "skipped",
            "samples/a-very-long-directory-name/long-name.json",
            "customer.updated",
            "cus_22",
            &detail,
        ));
        // Where a value starts, in characters.
        let column = |line: &str, value: &str| line[..line.find(value).unwrap()].chars().count();
        assert_eq!(
            column(&first, "customer.created"),
            column(&second, "customer.updated"),
            "{first}{second}"
        );
        assert_eq!(
            column(&first, "company"),
            column(&second, "a very"),
            "{first}{second}"
        );
        // The file's start and end, around the cut.
        assert!(
            second.contains("samples…") && second.contains("…g-name.json"),
            "{second}"
        );
        assert!(second.lines().all(|l| l.chars().count() <= 80), "{second}");
        let words: Vec<&str> = second.lines().flat_map(|l| l.split_whitespace()).collect();
        assert!(words.join(" ").ends_with(detail.trim_end()), "{second}");
    }

    #[test]
    fn each_payload_of_a_file_is_an_event_and_an_empty_file_is_an_error() {
        let dir =
            std::env::temp_dir().join(format!("lago-hubspot-sync-read-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (one, several, empty) = (
            dir.join("one.json"),
            dir.join("several.json"),
            dir.join("empty.json"),
        );
        std::fs::write(&one, "{\n  \"webhook_type\": \"customer.created\"\n}\n").unwrap();
        std::fs::write(&several, "{\"a\": 1}\n{\"b\": 2}\n").unwrap();
        std::fs::write(&empty, "\n").unwrap();
        let events = read_events(&[one.clone(), several.clone(), empty.clone()]).unwrap();
        let labels: Vec<String> = events
            .iter()
            .map(|e| match e {
                Ok((label, _)) => label.clone(),
                Err(error) => format!("{error:#}"),
            })
            .collect();
        let (one, several, empty) = (one.display(), several.display(), empty.display());
        assert_eq!(
            labels,
            [
                one.to_string(),
                format!("{several}:1"),
                format!("{several}:2"),
                format!("{empty} holds no webhook payload (it is empty)"),
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_pipe_gets_whole_lines() {
        let detail = "x".repeat(300);
        let events = [event("a.json", "customer.created", "cus_1")];
        let line = layout(&events, None).row(&cells(
            "synced",
            "a.json",
            "customer.created",
            "cus_1",
            &detail,
        ));
        assert_eq!(
            line,
            format!("synced   a.json  customer.created  cus_1    {detail}\n")
        );
    }
}
