//! The commands in the README are the test: the fenced `sh` blocks of its "Using it" section,
//! and every block with `<!-- tested -->` on the line before it, run in order in one `bash`, in a
//! fresh directory, exactly as written except for what a checkout-less directory needs:
//!
//! - `lago-hubspot` is the binary cargo built for this test, first on `PATH`; `cargo run -q -p
//!   lago-hubspot --` (with or without `-q`) runs it;
//! - `make component` checks that the component is built (the suite needs it already), and
//!   `make install` that `lago-hubspot` is on `PATH`;
//! - each `127.0.0.1:PORT` gets a free port of its own;
//! - `samples/` is the checkout's.
//!
//! Every command must exit 0. A command ending in `&` starts in the background: the next command
//! runs once its `--listen` address accepts connections, and it is stopped (SIGTERM) at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::binary::Workspace;

const README: &str = include_str!("../../README.md");

/// The section whose blocks always run.
const USING_IT: &str = "## Using it";
/// The marker, on the line before a block, of a block that runs wherever it is.
const TESTED: &str = "<!-- tested -->";
/// Longest a whole run may take (a debug build, two services, a few dozen HubSpot requests).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// One command of a block: a line, or lines joined by trailing backslashes.
#[derive(Debug, Clone, PartialEq)]
struct ReadmeCommand {
    /// As the README has it, for messages.
    text: String,
    /// The heading of its section.
    section: String,
}

/// The commands of the blocks that run, in README order.
fn tested_commands(readme: &str) -> Vec<ReadmeCommand> {
    let mut commands = Vec::new();
    let mut section = String::new();
    let mut previous = "";
    let mut lines = readme.lines();
    while let Some(line) = lines.next() {
        if line.starts_with("## ") {
            section = line.trim().to_owned();
        }
        if line.trim_start().starts_with("```") {
            let fence = line.trim();
            let runs = fence == "```sh" && (section == USING_IT || previous.trim() == TESTED);
            let mut pending = String::new();
            for line in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                if !runs {
                    continue;
                }
                let line = if pending.is_empty() {
                    line.trim_end()
                } else {
                    line.trim()
                };
                match line.strip_suffix('\\') {
                    Some(start) => {
                        pending.push_str(start.trim_end());
                        pending.push(' ');
                    }
                    None => {
                        pending.push_str(line);
                        let text = std::mem::take(&mut pending).trim().to_owned();
                        if !text.is_empty() && !text.starts_with('#') {
                            commands.push(ReadmeCommand {
                                text,
                                section: section.clone(),
                            });
                        }
                    }
                }
            }
            previous = "";
            continue;
        }
        if !line.trim().is_empty() {
            previous = line;
        }
    }
    commands
}

/// The command without a trailing `# comment` (a `#` after a blank, outside quotes).
fn without_comment(command: &str) -> &str {
    let (mut single, mut double) = (false, false);
    let mut last = ' ';
    for (at, c) in command.char_indices() {
        match c {
            '\'' if !double => single = !single,
            '"' if !single => double = !double,
            '#' if !single && !double && last.is_whitespace() => return command[..at].trim_end(),
            _ => {}
        }
        last = c;
    }
    command.trim_end()
}

fn is_background(command: &str) -> bool {
    let command = without_comment(command);
    command.ends_with('&') && !command.ends_with("&&")
}

/// The `PORT` of every `127.0.0.1:PORT` in `text`.
fn loopback_ports(text: &str) -> Vec<u16> {
    const HOST: &str = "127.0.0.1:";
    let mut ports = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(HOST) {
        rest = &rest[at + HOST.len()..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(port) = digits.parse() {
            ports.push(port);
        }
    }
    ports
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// What a command becomes in the test's directory (see the module's doc).
fn rewrite(command: &str, ports: &BTreeMap<u16, u16>, component: &Path) -> String {
    let mut command = command.to_owned();
    for prefix in [
        "cargo run -q -p lago-hubspot --",
        "cargo run --quiet -p lago-hubspot --",
        "cargo run -p lago-hubspot -q --",
        "cargo run -p lago-hubspot --quiet --",
        "cargo run -p lago-hubspot --",
    ] {
        command = command.replace(prefix, "lago-hubspot");
    }
    let component = shell_quote(&component.display().to_string());
    command = command
        .replace("make component", &format!("test -f {component}"))
        .replace("make install", "command -v lago-hubspot >/dev/null");
    for (from, to) in ports {
        command = command.replace(&format!("127.0.0.1:{from}"), &format!("127.0.0.1:{to}"));
    }
    let words: Vec<&str> = without_comment(&command).split_whitespace().collect();
    assert!(
        !words.iter().any(|w| *w == "cargo" || *w == "make"),
        "the README test does not know how to run {command:?}: teach `rewrite` in \
         tests/testsuite/readme.rs, or change the README"
    );
    command
}

fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// One bash script: each command, echoed, then its exit status checked; background commands
/// waited for (their `--listen` port) and stopped at the end.
fn script(commands: &[ReadmeCommand], ports: &BTreeMap<u16, u16>, component: &Path) -> String {
    let mut script = String::from(
        r#"set -o pipefail
background=()
stop_background() {
    for pid in "${background[@]}"; do kill -TERM "$pid" 2>/dev/null; done
    wait
}
trap stop_background EXIT
wait_for_port() { # pid port
    for _ in $(seq 600); do
        if ! kill -0 "$1" 2>/dev/null; then
            echo "README test: the background command stopped before listening on $2" >&2
            exit 1
        fi
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "README test: nothing listens on port $2 after 60 s" >&2
    exit 1
}
"#,
    );
    for command in commands {
        let run = rewrite(&command.text, ports, component);
        let shown = shell_quote(&format!("{}: {}", command.section, command.text));
        script.push_str(&format!("printf '\\n+ %s\\n' {shown} >&2\n{run}\n"));
        if is_background(&run) {
            script.push_str("background+=($!)\n");
            let listen = without_comment(&run)
                .split_once("--listen")
                .map(|(_, rest)| loopback_ports(rest))
                .and_then(|ports| ports.first().copied());
            if let Some(port) = listen {
                script.push_str(&format!("wait_for_port $! {port}\n"));
            }
        } else {
            script.push_str(&format!(
                "status=$?\nif [ $status -ne 0 ]; then printf 'README command failed (exit %s): %s\\n' \
                 $status {shown} >&2; exit 1; fi\n"
            ));
        }
    }
    script
}

#[test]
fn the_blocks_that_run_are_found_with_their_commands_whole() {
    let readme = "intro\n\n## Using it\n\n```sh\nmake component   # build\nlago-hubspot a \\\n    --b c &\n```\n\n```toml\nx = 1\n```\n\n## Other\n\n```sh\nnot run\n```\n\n<!-- tested -->\n```sh\nrun # with a comment\n```\n";
    let texts: Vec<String> = tested_commands(readme)
        .into_iter()
        .map(|c| c.text)
        .collect();
    assert_eq!(
        texts,
        [
            "make component   # build",
            "lago-hubspot a --b c &",
            "run # with a comment"
        ]
    );
    assert!(is_background(
        "lago-hubspot a --b c &   # in the background"
    ));
    assert!(!is_background("a && b"));
    assert!(!is_background("echo '#&'"));
    assert_eq!(
        without_comment("curl -H \"a #b\" x  # c"),
        "curl -H \"a #b\" x"
    );
    let ports = BTreeMap::from([(8090, 40001)]);
    assert_eq!(
        rewrite(
            "cargo run -q -p lago-hubspot -- emulator --listen 127.0.0.1:8090 &",
            &ports,
            Path::new("/c.wasm"),
        ),
        "lago-hubspot emulator --listen 127.0.0.1:40001 &"
    );
}

#[test]
fn the_commands_in_the_readme_run_as_written() {
    let commands = tested_commands(README);
    let all: String = commands.iter().map(|c| format!("{}\n", c.text)).collect();
    // Guards against a README edit that silently leaves nothing (or too little) to run.
    let words: Vec<&str> = all.split_whitespace().collect();
    for expected in ["emulator", "deploy", "sync", "plan", "serve", "status"] {
        assert!(
            words.contains(&expected),
            "no `{expected}` among the README's tested commands:\n{all}"
        );
    }
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_lago-hubspot"));
    // target/debug/lago-hubspot → target/wasm32-wasip2/release/…, where the binary finds it too.
    let component = binary
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("wasm32-wasip2/release/lago_hubspot_guest.wasm");
    assert!(
        component.exists(),
        "the component is not built: run `make component` first; looked for {}",
        component.display()
    );
    let mut ports = BTreeMap::new();
    for port in loopback_ports(&all) {
        ports.entry(port).or_insert_with(free_port);
    }

    let workspace = Workspace::new("readme");
    let dir = &workspace.dir;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(&binary, bin.join("lago-hubspot")).unwrap();
    let checkout = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::os::unix::fs::symlink(checkout.join("samples"), dir.join("samples")).unwrap();
    let script_path = dir.join("readme.sh");
    std::fs::write(&script_path, script(&commands, &ports, &component)).unwrap();
    let output_path = dir.join("output.txt");
    let output = std::fs::File::create(&output_path).unwrap();

    let path = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    )))
    .unwrap();
    let mut command = Command::new("bash");
    command
        .arg(&script_path)
        .current_dir(dir)
        .env("PATH", path)
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output);
    // A README user starts from a clean environment, not from this test run's: nothing the
    // binary reads (`LAGO_*`, `HUBSPOT_*`, `RUST_LOG`).
    for (variable, _) in std::env::vars_os() {
        let name = variable.to_string_lossy();
        if name.starts_with("LAGO_") || name.starts_with("HUBSPOT_") || name == "RUST_LOG" {
            command.env_remove(&variable);
        }
    }
    // Its own process group, so a run that hangs is stopped with everything it started.
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command.spawn().expect("bash runs");
    let deadline = Instant::now() + RUN_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = std::fs::read_to_string(&output_path).unwrap_or_default();
    // Shown with `--nocapture`.
    eprintln!("{output}");
    assert!(
        status.is_some_and(|s| s.success()),
        "the README's commands did not all succeed ({}); output:\n{output}",
        status.map_or("timed out".to_owned(), |s| s.to_string())
    );
}
