//! What the commands print. Everything for stdout goes through [`out!`] / [`outln!`]: when the
//! reader goes away early (`lago-hubspot sync *.json | head -1`), the rest of the output is
//! dropped without a word, but the command carries on: every event is still synced and
//! recorded, and the exit status still says how they ended (where `println!` would panic on the
//! broken pipe, and stopping there would leave work undone). Messages for people go through
//! [`errln!`], which never panics (stderr may be a closed pipe too).

use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once stdout's reader is gone: what is printed after that is dropped.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);
/// Set when stdout failed otherwise (a full disk): the exit status becomes 1.
static STDOUT_LOST: AtomicBool = AtomicBool::new(false);

/// `print!` that drops the text quietly when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` that drops the text quietly when stdout is a closed pipe.
macro_rules! outln {
    () => {
        $crate::cli::output::stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` that never panics: a message nobody can read is dropped.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes to stdout; once the reader is gone (a closed pipe) the text is dropped and the
/// command goes on. Any other write error is said once and makes the exit status 1
/// ([`stdout_lost`]), the command still going on.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args) {
        stdout_failed(error);
    }
}

/// Flushes what is still buffered; called once before the process exits.
pub fn flush() {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if let Err(error) = std::io::stdout().lock().flush() {
        stdout_failed(error);
    }
}

fn stdout_failed(error: std::io::Error) {
    // Either way the work goes on, unprinted: events are synced and recorded all the same.
    STDOUT_CLOSED.store(true, Ordering::Relaxed);
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        // The reader has what it wanted.
        return;
    }
    // Output that was wanted and lost (a full disk): said once, and the exit status is 1.
    STDOUT_LOST.store(true, Ordering::Relaxed);
    stderr(format_args!(
        "error: cannot write to stdout ({error}); the command goes on without printing\n"
    ));
}

/// Output was lost to a write error other than a closed pipe: the command must exit 1.
pub fn stdout_lost() -> bool {
    STDOUT_LOST.load(Ordering::Relaxed)
}

pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// Where log lines go: stderr, where a line nobody can read (a closed pipe, a full disk) is
/// dropped. Logging never fails what is being logged (tracing's own fallback would panic on a
/// closed stderr, failing the request or the event it was about).
pub struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().lock().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().lock().flush();
        Ok(())
    }
}

/// Set with `--log-format json`: the lines for the operator become log events too.
static JSON_LOGS: AtomicBool = AtomicBool::new(false);

/// With `--log-format json`, [`warn`] and [`note`] go through the logger, so that every line on
/// stderr is a JSON object.
pub fn set_json_logs() {
    JSON_LOGS.store(true, Ordering::Relaxed);
}

/// `warning: {message}` on stderr; a warning log event with `--log-format json`.
pub fn warn(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        tracing::warn!("{message}");
    } else {
        stderr(format_args!("warning: {message}\n"));
    }
}

/// `{message}` on stderr (what a service is doing); an info log event with `--log-format json`.
pub fn note(message: &str) {
    if JSON_LOGS.load(Ordering::Relaxed) {
        tracing::info!("{message}");
    } else {
        stderr(format_args!("{message}\n"));
    }
}
