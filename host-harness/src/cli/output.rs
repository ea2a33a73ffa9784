//! What the commands print. Everything for stdout goes through [`out!`] / [`outln!`]: when the
//! reader goes away early (`lago-hubspot events list | head -1`), the command stops quietly with
//! exit status 0, as Unix tools do, where `println!` would panic on the broken pipe. Messages for
//! people go through [`errln!`], which never panics (stderr may be a closed pipe too).

use std::io::Write as _;

/// `print!` that stops the process quietly when stdout is a closed pipe.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::stdout(format_args!($($arg)*))
    };
}

/// `println!` that stops the process quietly when stdout is a closed pipe.
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

/// Writes to stdout; a closed pipe ends the process with status 0, any other write error with
/// status 1 and a message.
pub fn stdout(args: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout.write_fmt(args) {
        stdout_failed(error);
    }
}

/// Flushes what is still buffered; called once before the process exits.
pub fn flush() {
    if let Err(error) = std::io::stdout().lock().flush() {
        stdout_failed(error);
    }
}

fn stdout_failed(error: std::io::Error) -> ! {
    if error.kind() == std::io::ErrorKind::BrokenPipe {
        // The reader has what it wanted: stop like `head`'s writer does, without a word.
        std::process::exit(0);
    }
    stderr(format_args!("error: cannot write to stdout: {error}\n"));
    std::process::exit(1);
}

pub fn stderr(args: std::fmt::Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(args);
}
