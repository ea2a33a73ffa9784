//! `lago-hubspot sync`: webhook payloads from files or stdin, one line per event.

use std::io::{BufRead as _, IsTerminal as _};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use lago_hubspot::sync::OutcomeStatus;
use lago_hubspot_guest::webhooks::Envelope;

use super::settings::Settings;
use super::{Global, syncer};

#[derive(Args)]
pub struct SyncArgs {
    #[command(flatten)]
    pub settings: Settings,

    /// Lago webhook payloads: files, or `-` for JSON lines on stdin.
    #[arg(required = true, value_name = "EVENT.json")]
    pub events: Vec<PathBuf>,
}

pub async fn run(global: &Global, args: SyncArgs) -> anyhow::Result<ExitCode> {
    let syncer = syncer(global, &args.settings)?;
    if let Some(report) = syncer.deploy_if_needed().await? {
        errln!("deployed first: {}", report.summary);
    }
    let events = read_events(&args.events)?;
    let layout = Layout::for_stdout(&events);
    let mut failed = 0;
    for event in events {
        let (source, payload) = match event {
            Ok(event) => event,
            Err(error) => {
                failed += 1;
                outln!(
                    "{}",
                    layout.line("error", "", "", "", &format!("{error:#}"))
                );
                continue;
            }
        };
        let outcome = syncer.sync_event(&payload).await;
        let status = match outcome.status {
            OutcomeStatus::Failed => {
                failed += 1;
                "error"
            }
            OutcomeStatus::Synced => "ok",
            OutcomeStatus::Skipped => "skipped",
        };
        outln!(
            "{}",
            layout.line(
                status,
                &source,
                &outcome.webhook_type,
                &outcome.lago_id,
                &outcome.detail
            )
        );
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        errln!("{failed} event(s) failed");
        ExitCode::FAILURE
    })
}

/// Events from files, or JSON lines on stdin for `-`; each with a label for the output line.
fn read_events(sources: &[PathBuf]) -> anyhow::Result<Vec<anyhow::Result<(String, String)>>> {
    let mut events = Vec::new();
    for source in sources {
        if source.as_os_str() == "-" {
            for (number, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("cannot read stdin")?;
                if !line.trim().is_empty() {
                    events.push(Ok((format!("stdin:{}", number + 1), line)));
                }
            }
        } else {
            events.push(
                std::fs::read_to_string(source)
                    .map(|text| (source.display().to_string(), text))
                    .with_context(|| format!("cannot read {}", source.display())),
            );
        }
    }
    Ok(events)
}

/// How a result line is laid out: for a terminal, columns aligned over all the events and each
/// line cut to the terminal's width; for a pipe or a file, each line whole, for grep and scripts.
#[derive(Debug, Default)]
struct Layout {
    /// The widths of the source, type and id columns, and of the terminal.
    fit: Option<([usize; 3], usize)>,
}

impl Layout {
    const WIDEST_COLUMN: usize = 40;

    fn for_stdout(events: &[anyhow::Result<(String, String)>]) -> Layout {
        if !std::io::stdout().is_terminal() {
            return Layout::default();
        }
        let width = console::Term::stdout()
            .size_checked()
            .map_or(100, |(_, columns)| usize::from(columns));
        Layout::fitted(events, width)
    }

    fn fitted(events: &[anyhow::Result<(String, String)>], width: usize) -> Layout {
        let mut widths = [0; 3];
        for (source, payload) in events.iter().flatten() {
            let envelope = Envelope::read(payload).ok();
            let cells = [
                source.chars().count(),
                envelope
                    .as_ref()
                    .map_or(0, |e| e.webhook_type.chars().count()),
                envelope.as_ref().map_or(0, |e| e.lago_id().chars().count()),
            ];
            for (widest, cell) in widths.iter_mut().zip(cells) {
                *widest = (*widest).max(cell.min(Self::WIDEST_COLUMN));
            }
        }
        Layout {
            fit: Some((widths, width)),
        }
    }

    fn line(&self, status: &str, source: &str, kind: &str, id: &str, detail: &str) -> String {
        let Some(([source_width, kind_width, id_width], width)) = self.fit else {
            return format!("{status:<8} {source}  {kind} {id}  {detail}");
        };
        let line = format!(
            "{status:<8} {source:<source_width$}  {kind:<kind_width$} {id:<id_width$}  {detail}"
        );
        let line = line.trim_end();
        if line.chars().count() <= width {
            return line.to_owned();
        }
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
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

    #[test]
    fn a_terminal_gets_aligned_lines_cut_to_its_width() {
        let events = [
            event("a.json", "customer.created", "cus_1"),
            event("samples/long-name.json", "customer.updated", "cus_22"),
        ];
        let layout = Layout::fitted(&events, 60);
        let first = layout.line("ok", "a.json", "customer.created", "cus_1", "company 1");
        let second = layout.line(
            "skipped",
            "samples/long-name.json",
            "customer.updated",
            "cus_22",
            &"a very long reason ".repeat(20),
        );
        assert_eq!(
            first.find("customer.created"),
            second.find("customer.updated"),
            "{first}\n{second}"
        );
        assert_eq!(first.find("company"), second.find("a very"));
        assert_eq!(second.chars().count(), 60);
        assert!(second.ends_with('…'));
    }

    #[test]
    fn a_pipe_gets_whole_lines() {
        let detail = "x".repeat(300);
        let line = Layout::default().line("ok", "a.json", "customer.created", "cus_1", &detail);
        assert_eq!(
            line,
            format!("ok       a.json  customer.created cus_1  {detail}")
        );
    }
}
