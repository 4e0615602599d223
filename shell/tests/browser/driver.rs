//! Debian's headless Chromium driven over WebDriver: `chromedriver` on a free 127.0.0.1 port,
//! a fresh profile, every step bounded. Dropping the [`Browser`] (a failed test included)
//! kills chromedriver and then any Chromium still running on this test's profile, each by its
//! own pid: never a process group, never by name.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};

use crate::support::free_port;

/// The longest one browser step (a navigation, a click, a find) waits.
pub const STEP_WAIT: Duration = Duration::from_secs(30);

/// Without the background-networking flags Chromium reaches out to Google's services, which
/// the closed test network refuses (and which a test has no business calling).
const CHROMIUM_FLAGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1200",
];

/// An executable on `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.is_file())
}

pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

/// Runs one browser step, failing the test with `what` when it errs or takes longer than [`STEP_WAIT`].
pub async fn step<T, E: std::fmt::Debug>(what: &str, work: impl Future<Output = Result<T, E>>) -> T {
    match timeout(STEP_WAIT, work).await {
        Ok(Ok(value)) => value,
        Ok(Err(e)) => panic!("browser step failed: {what}: {e:?}"),
        Err(_) => panic!("browser step took longer than {STEP_WAIT:?}: {what}"),
    }
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; fails (never skips) when either is missing.
    pub async fn start() -> Browser {
        let (Some(chromium), Some(chromedriver)) = (on_path("chromium"), on_path("chromedriver")) else {
            panic!(
                "the browser tests need Debian's chromium and chromium-driver on PATH \
                 (apt-get install -y chromium chromium-driver; scripts/test.sh installs them)"
            );
        };
        let port = free_port();
        let profile = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("chromium-profile-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&profile);
        std::fs::create_dir_all(&profile).expect("create the Chromium profile directory");
        let log = profile.with_extension("chromedriver.log");
        let mut command = Command::new(&chromedriver);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let driver = command.spawn().unwrap_or_else(|e| panic!("start {}: {e}", chromedriver.display()));
        let mut browser_args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        browser_args.push(format!("--user-data-dir={}", profile.display()));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium, "args": browser_args},
            // A confirmation is the test's to accept; nothing answers one behind its back.
            "unhandledPromptBehavior": "ignore",
        });
        let Value::Object(capabilities) = capabilities else { unreachable!() };
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + STEP_WAIT;
        let client = loop {
            let connected = timeout(STEP_WAIT, ClientBuilder::new(HttpConnector::new()).capabilities(capabilities.clone()).connect(&url)).await;
            match connected {
                Ok(Ok(client)) => break client,
                Ok(Err(e)) if Instant::now() >= deadline => {
                    panic!("no WebDriver session from {} at {url}: {e}; see {}", chromedriver.display(), log.display())
                }
                Err(_) => panic!("chromedriver at {url} did not start a session within {STEP_WAIT:?}; see {}", log.display()),
                Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        };
        Browser { client, driver, profile }
    }

    pub async fn goto(&self, url: &str) {
        step(&format!("open {url}"), self.client.goto(url)).await;
    }

    /// The text of the first element matching `css`, or `None` when there is none (yet).
    pub async fn text(&self, css: &str) -> Option<String> {
        let element = timeout(STEP_WAIT, self.client.find(Locator::Css(css))).await.ok()?.ok()?;
        timeout(STEP_WAIT, element.text()).await.ok()?.ok()
    }

    /// Polls (every 200 ms, at most `wait`) until the text of `css` satisfies `ok`; the text.
    pub async fn text_until(&self, css: &str, what: &str, wait: Duration, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + wait;
        loop {
            let text = self.text(css).await;
            if let Some(text) = text.as_deref().filter(|t| ok(t)) {
                return text.to_string();
            }
            assert!(Instant::now() < deadline, "{what}: `{css}` still reads {text:?} after {wait:?}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub async fn click(&self, css: &str) {
        let element = step(&format!("find {css}"), self.client.wait().at_most(STEP_WAIT).for_element(Locator::Css(css))).await;
        step(&format!("click {css}"), element.click()).await;
    }

    /// Runs `script` in the page; its return value.
    pub async fn run(&self, script: &str) -> Value {
        step(&format!("run {script}"), self.client.execute(script, Vec::new())).await
    }

    /// A PNG of the viewport, written under `target/screenshots/`; its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = step(&format!("screenshot {name}"), self.client.screenshot()).await;
        assert!(png.starts_with(b"\x89PNG"), "the screenshot {name} is not a PNG");
        let dir = screenshots_dir();
        std::fs::create_dir_all(&dir).expect("create target/screenshots");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        path
    }

    /// Ends the WebDriver session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let client = self.client.clone();
        let _ = timeout(STEP_WAIT, client.close()).await;
    }
}

/// `target/screenshots/`, beside the tests' `target/tmp`.
pub fn screenshots_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().unwrap_or(Path::new(".")).join("screenshots")
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_browsers_on(&self.profile);
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// SIGKILLs each process started with `--user-data-dir=<profile>` (the Chromium of a session
/// that was not closed: chromedriver's death does not end it), by its pid.
fn kill_browsers_on(profile: &Path) {
    let flag = format!("--user-data-dir={}", profile.display());
    let Ok(entries) = std::fs::read_dir("/proc") else { return };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if pid <= 1 || pid == std::process::id() {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        if cmdline.split(|b| *b == 0).any(|arg| arg == flag.as_bytes()) {
            let _ = Command::new("kill").arg("-KILL").arg(pid.to_string()).status();
        }
    }
}
