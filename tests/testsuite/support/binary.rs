//! The real `lago-hubspot serve` binary, started, killed and stopped like an operator would.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use lago_hubspot::queue::QueueStats;
use lago_hubspot::store::Store;

use super::{HMAC_KEY, TOKEN, component_path};

/// A temporary directory holding the state database and the service's logs.
pub struct Workspace {
    pub dir: PathBuf,
    /// A PostgreSQL database (`--database`) instead of the state file.
    pub database: Option<String>,
    /// The services' `--rate-limit` (by default far above the emulator's, which then decides).
    pub rate_limit: String,
}

impl Workspace {
    pub fn new(name: &str) -> Workspace {
        let dir = std::env::temp_dir().join(format!("lago-hubspot-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Workspace {
            dir,
            database: None,
            rate_limit: "1000000/1000".into(),
        }
    }

    /// A workspace whose state is the PostgreSQL database `url` (its logs still in a directory).
    pub fn on_database(name: &str, url: String) -> Workspace {
        let mut workspace = Workspace::new(name);
        workspace.database = Some(url);
        workspace
    }

    /// `--state FILE`, or `--database URL` on PostgreSQL.
    pub fn state_args(&self) -> Vec<String> {
        match &self.database {
            Some(url) => vec!["--database".into(), url.clone()],
            None => vec!["--state".into(), self.state().display().to_string()],
        }
    }

    /// The workspace's store, opened as the service opens it.
    pub fn open(&self) -> Store {
        match &self.database {
            Some(url) => Store::open_postgres(url).unwrap(),
            None => Store::open(&self.state()).unwrap(),
        }
    }

    pub fn state(&self) -> PathBuf {
        self.dir.join("state.db")
    }

    /// Everything the service wrote to stderr, over all its runs.
    pub fn log(&self) -> PathBuf {
        self.dir.join("serve.log")
    }

    /// The end of the service's logs, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The queue as `lago-hubspot status` sees it, read while the service may be running.
    pub fn stats(&self) -> QueueStats {
        self.open().queue_stats().unwrap()
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        // Kept when a test fails, for a look at the database and the logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `lago-hubspot` with the component of this checkout and no HubSpot settings from the caller's
/// environment. The binary is this build's, or the one `LAGO_HUBSPOT_BIN` names: benchmarks
/// measure a release binary from this (debug) test harness, since `cargo test --release` cannot
/// build the harness (the guest crate's cdylib and rlib collide there, cargo#6313).
pub fn lago_hubspot_command() -> Command {
    let binary = std::env::var_os("LAGO_HUBSPOT_BIN")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_lago-hubspot").into());
    let mut command = Command::new(binary);
    command
        .env("LAGO_HUBSPOT_COMPONENT", component_path())
        .env_remove("HUBSPOT_ACCESS_TOKEN")
        .env_remove("HUBSPOT_API_URL")
        .env_remove("LAGO_HUBSPOT_STATE")
        .env_remove("LAGO_WEBHOOK_HMAC_KEY")
        .env_remove("RUST_LOG");
    command
}

/// One run of `lago-hubspot serve` on loopback.
pub struct Service {
    pub child: Child,
    pub url: String,
}

impl Service {
    /// Starts the binary on a free port with the test connection settings
    /// (`support::settings`), 8 workers and fast retries, and waits until it answers `/healthz`.
    /// `env` is applied last (e.g. `RUST_LOG`, or another `HUBSPOT_ACCESS_TOKEN`).
    pub async fn start(workspace: &Workspace, hubspot_url: &str, env: &[(&str, &str)]) -> Service {
        Self::start_logging(workspace, hubspot_url, env, true).await
    }

    /// [`Service::start`] with stderr a pipe whose reader is gone (`serve … 2>&1 | head -1`
    /// after its first line): the workspace's log stays empty.
    pub async fn start_with_closed_stderr(
        workspace: &Workspace,
        hubspot_url: &str,
        env: &[(&str, &str)],
    ) -> Service {
        Self::start_logging(workspace, hubspot_url, env, false).await
    }

    async fn start_logging(
        workspace: &Workspace,
        hubspot_url: &str,
        env: &[(&str, &str)],
        logged: bool,
    ) -> Service {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(workspace.log())
                .unwrap();
            let child = lago_hubspot_command()
                .env("HUBSPOT_ACCESS_TOKEN", TOKEN)
                .env("RUST_LOG", "info")
                .envs(env.iter().copied())
                .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
                .args(["--hubspot-url", hubspot_url])
                .args(workspace.state_args())
                .args([
                    "--hmac-key",
                    HMAC_KEY,
                    "--workers",
                    "8",
                    "--retry-base-ms",
                    "20",
                ])
                // The emulator's limit is what matters here, not HubSpot's real one.
                .args(["--rate-limit", &workspace.rate_limit])
                .args([
                    "--connection",
                    "hubspot-test",
                    "--organization-slug",
                    "acme",
                ])
                .args(["--lago-app-url", "https://lago.example.com"])
                .stdout(Stdio::null())
                .stderr(if logged {
                    Stdio::from(log)
                } else {
                    Stdio::piped()
                })
                .spawn()
                .expect("the binary starts");
            // Closed before the service writes its first line.
            let mut child = child;
            drop(child.stderr.take());
            let mut service = Service {
                child,
                url: format!("http://127.0.0.1:{port}"),
            };
            if service.healthy().await {
                return service;
            }
            // Most likely the port was taken in between; try another.
            service.kill();
        }
        panic!("serve never became healthy:\n{}", workspace.log_tail());
    }

    async fn healthy(&mut self) -> bool {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while tokio::time::Instant::now() < deadline {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            let health = client
                .get(format!("{}/healthz", self.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await;
            if health.is_ok_and(|r| r.status() == 200) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    /// SIGKILL: no chance to finish anything.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit status (`None` if it did not exit in time; it is then killed).
    pub async fn terminate(mut self) -> Option<ExitStatus> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(sent.success());
        // The drain may take up to 30 s; leave room on a loaded machine.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
        while tokio::time::Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        None
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
