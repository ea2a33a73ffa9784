//! `lago-hubspot`: sync Lago billing data into HubSpot through a sandboxed WebAssembly component.
//!
//! The commands are in [`cli`], one file each; the library (`lago_hubspot`) does the work.

use std::io::IsTerminal as _;
use std::process::ExitCode;

#[macro_use]
mod cli;

use cli::LogFormat;

fn main() -> ExitCode {
    let (global, command) = cli::parse();
    // A service says what it does with each event; one-shot commands print their own results.
    let default_level = match command {
        Some(cli::Command::Serve(_)) => "info",
        _ => "warn",
    };
    init_logging(global.args.log_format, default_level);
    global.warn_about_deprecations();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            errln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(cli::run(global, command)) {
        Ok(code) => code,
        Err(error) => {
            errln!("error: {error:#}");
            ExitCode::FAILURE
        }
    };
    cli::output::flush();
    if cli::output::stdout_lost() {
        return ExitCode::FAILURE;
    }
    code
}

/// Log lines on stderr: `RUST_LOG` picks what (default: `default_level`; `serve` logs every
/// event's outcome at info), `--log-format` how. Text has colours only when stderr is a
/// terminal, so files and pipes get plain lines.
fn init_logging(format: LogFormat, default_level: &str) {
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(error) => {
            if std::env::var_os("RUST_LOG").is_some() {
                errln!(
                    "warning: RUST_LOG is not a valid filter ({error}); logging at {default_level}"
                );
            }
            tracing_subscriber::EnvFilter::new(default_level)
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| cli::output::LogWriter);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => {
            builder.json().with_ansi(false).init();
            cli::output::set_json_logs();
        }
    }
}
