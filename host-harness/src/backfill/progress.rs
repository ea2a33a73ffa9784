//! Progress on stderr: a bar on a terminal, plain periodic lines otherwise (logs, CI, pipes).

use std::io::IsTerminal as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressMode {
    /// A bar when stderr is a terminal, plain lines otherwise.
    #[default]
    Auto,
    Bar,
    Lines,
    /// Nothing until the summary.
    #[value(name = "none")]
    Quiet,
}

/// Plain lines come at least this often in records…
const LINE_EVERY_RECORDS: u64 = 500;
/// …or in time, whichever comes first.
const LINE_EVERY: Duration = Duration::from_secs(5);

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    started: Instant,
    last_line: Instant,
    done: u64,
    total: u64,
    failed: u64,
    done_at_last_line: u64,
}

impl Progress {
    pub fn new(mode: ProgressMode, total: u64) -> Progress {
        let terminal = std::io::stderr().is_terminal();
        let (bar, lines) = match mode {
            ProgressMode::Auto if terminal => (true, false),
            ProgressMode::Auto => (false, true),
            ProgressMode::Bar => (true, false),
            ProgressMode::Lines => (false, true),
            ProgressMode::Quiet => (false, false),
        };
        let bar = bar.then(|| {
            let bar = ProgressBar::new(total);
            let style = ProgressStyle::with_template(
                "{elapsed_precise} [{wide_bar}] {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message("0 failed");
            bar
        });
        let now = Instant::now();
        Progress {
            bar,
            lines,
            started: now,
            last_line: now,
            done: 0,
            total,
            failed: 0,
            done_at_last_line: 0,
        }
    }

    /// One record finished.
    pub fn advance(&mut self, failed: bool) {
        self.done += 1;
        // Lago's counts can move while we read (records created mid-run).
        self.total = self.total.max(self.done);
        self.failed += u64::from(failed);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
            bar.inc(1);
            if failed {
                bar.set_message(format!("{} failed", self.failed));
            }
        }
        if self.lines
            && (self.done - self.done_at_last_line >= LINE_EVERY_RECORDS
                || self.last_line.elapsed() >= LINE_EVERY)
        {
            self.line();
        }
    }

    /// Records counted in the total that will not be processed (superseded events of a file).
    pub fn shrink_total(&mut self, by: u64) {
        self.total = self.total.saturating_sub(by).max(self.done);
        if let Some(bar) = &self.bar {
            bar.set_length(self.total);
        }
    }

    /// A message that must not be lost under the bar (deploy, individual failures).
    pub fn note(&self, message: &str) {
        match &self.bar {
            Some(bar) => bar.println(message),
            // A closed stderr (`2>&1 | true`) only loses the progress, never the run.
            None if self.lines => {
                let _ = writeln!(std::io::stderr(), "{message}");
            }
            None => {}
        }
    }

    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.lines && self.done != self.done_at_last_line {
            self.line();
        }
    }

    fn line(&mut self) {
        let _ = writeln!(
            std::io::stderr(),
            "{}",
            status_line(self.done, self.total, self.failed, self.started.elapsed())
        );
        self.last_line = Instant::now();
        self.done_at_last_line = self.done;
    }
}

fn status_line(done: u64, total: u64, failed: u64, elapsed: Duration) -> String {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        done as f64 / seconds
    } else {
        0.0
    };
    let percent = (done * 100).checked_div(total).unwrap_or(100);
    let eta = if done >= total {
        "done".to_owned()
    } else if rate > 0.0 {
        format!(
            "ETA {}",
            human(Duration::from_secs_f64((total - done) as f64 / rate))
        )
    } else {
        "ETA unknown".to_owned()
    };
    format!(
        "backfill: {done}/{total} records ({percent}%), {rate:.1}/s, {eta}, {failed} failed, {} elapsed",
        human(elapsed)
    )
}

/// `42s`, `3m07s`, `2h05m`.
fn human(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        _ => format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_say_done_total_rate_eta_and_failures() {
        assert_eq!(
            status_line(100, 400, 2, Duration::from_secs(10)),
            "backfill: 100/400 records (25%), 10.0/s, ETA 30s, 2 failed, 10s elapsed"
        );
        assert_eq!(
            status_line(400, 400, 0, Duration::from_secs(125)),
            "backfill: 400/400 records (100%), 3.2/s, done, 0 failed, 2m05s elapsed"
        );
        assert_eq!(human(Duration::from_secs(7500)), "2h05m");
    }
}
