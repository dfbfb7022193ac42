//! A headless Chromium driven through the DevTools protocol (CDP) over its websocket: just
//! enough of the protocol to open a page, run JavaScript in it, collect what it logs as
//! errors and take screenshots. Debian's `chromium` (`scripts/setup.sh --test-tools`
//! installs it; `HOLDFAST_CHROMIUM` names another binary).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long Chromium may take to start and open its DevTools port.
const LAUNCH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one protocol call may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Protocol events kept for [`Page::console_errors`] at most.
const EVENTS_MAX: usize = 10_000;

/// The flags every test browser starts with: headless, no sandbox (tests run as root), no
/// GPU, and nothing that reaches the network by itself (without the background-networking
/// flags Chromium's own connections are refused here and it logs them).
pub const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--mute-audio",
    "--hide-scrollbars",
    "--window-size=1280,900",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
];

/// The Chromium binary: `HOLDFAST_CHROMIUM`, else `chromium` on the `PATH`.
pub fn chromium_binary() -> Result<PathBuf> {
    if let Ok(path) = std::env::var("HOLDFAST_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in ["chromium", "chromium-browser"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "no chromium on the PATH: run ./scripts/setup.sh --test-tools (installs Debian's chromium)"
    )
}

/// One Chromium process with a fresh profile, and its first page.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    /// The first page, attached, with the `Runtime`, `Log` and `Page` domains enabled.
    pub page: Page,
}

impl Browser {
    /// Starts Chromium on `about:blank` and attaches to its page.
    pub async fn launch() -> Result<Browser> {
        let profile = tempfile::tempdir()?;
        let log = std::fs::File::create(profile.path().join("chromium.log"))?;
        let child = Command::new(chromium_binary()?)
            .args(CHROMIUM_FLAGS)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting chromium")?;
        let mut browser = Browser {
            child,
            page: Page::detached(),
            profile,
        };
        let port = browser.devtools_port().await?;
        let url = first_page_socket(port).await?;
        let (socket, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .context("connecting to the page's DevTools socket")?;
        browser.page.socket = Some(socket);
        for domain in ["Runtime.enable", "Log.enable", "Page.enable"] {
            browser.page.call(domain, json!({})).await?;
        }
        Ok(browser)
    }

    /// Chromium writes the port it chose to `DevToolsActivePort` in its profile.
    async fn devtools_port(&mut self) -> Result<u16> {
        let file = self.profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + LAUNCH_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&file) {
                if let Some(port) = text
                    .lines()
                    .next()
                    .and_then(|line| line.trim().parse().ok())
                {
                    return Ok(port);
                }
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("chromium exited ({status}):\n{}", self.log_tail());
            }
            if Instant::now() > deadline {
                bail!("chromium opened no DevTools port:\n{}", self.log_tail());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end of Chromium's own log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn first_page_socket(port: u16) -> Result<String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        let targets: Result<Value> = async {
            let answer = client
                .get(format!("http://127.0.0.1:{port}/json/list"))
                .send()
                .await?;
            Ok(answer.json().await?)
        }
        .await;
        if let Ok(Value::Array(targets)) = targets {
            let page = targets.iter().find(|target| target["type"] == "page");
            if let Some(url) = page.and_then(|page| page["webSocketDebuggerUrl"].as_str()) {
                return Ok(url.to_string());
            }
        }
        if Instant::now() > deadline {
            bail!("chromium listed no page on port {port}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One page's DevTools session.
pub struct Page {
    socket: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    next_id: u64,
    events: Vec<Value>,
}

impl Page {
    fn detached() -> Page {
        Page {
            socket: None,
            next_id: 0,
            events: Vec::new(),
        }
    }

    fn keep(&mut self, event: Value) {
        if self.events.len() < EVENTS_MAX {
            self.events.push(event);
        }
    }

    /// Sends one protocol command and waits for its answer; events that arrive meanwhile are
    /// kept.
    pub async fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let socket = self.socket.as_mut().ok_or_else(|| anyhow!("no page"))?;
        let command = json!({"id": id, "method": method, "params": params});
        socket.send(Message::text(command.to_string())).await?;
        let deadline = tokio::time::Instant::now() + CALL_TIMEOUT;
        loop {
            let socket = self.socket.as_mut().expect("attached");
            let message = tokio::time::timeout_at(deadline, socket.next())
                .await
                .map_err(|_| anyhow!("{method}: no answer within {CALL_TIMEOUT:?}"))?
                .ok_or_else(|| anyhow!("the DevTools socket closed"))??;
            let Message::Text(text) = message else {
                continue;
            };
            let value: Value = serde_json::from_str(text.as_str())?;
            if value["id"].as_u64() == Some(id) {
                if let Some(error) = value.get("error") {
                    bail!("{method} failed: {error}");
                }
                return Ok(value["result"].clone());
            }
            self.keep(value);
        }
    }

    /// Runs `expression` in the page (awaiting a promise) and returns its value.
    pub async fn eval(&mut self, expression: &str) -> Result<Value> {
        let answer = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await?;
        if let Some(details) = answer.get("exceptionDetails") {
            bail!("{expression} threw: {details}");
        }
        Ok(answer["result"]["value"].clone())
    }

    /// Evaluates `expression` every 100 ms until it gives something other than `null`,
    /// `false` or `undefined`; returns that value.
    pub async fn wait_for(&mut self, expression: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(expression).await?;
            if !value.is_null() && value != Value::Bool(false) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("still not true after {timeout:?}: {expression}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens `url` and waits until the document has loaded.
    pub async fn navigate(&mut self, url: &str) -> Result<()> {
        let answer = self.call("Page.navigate", json!({"url": url})).await?;
        if let Some(error) = answer.get("errorText") {
            bail!("navigating to {url}: {error}");
        }
        self.wait_for(
            "document.readyState === 'complete' && location.href",
            Duration::from_secs(30),
        )
        .await?;
        Ok(())
    }

    /// Everything the page reported as an error since it was opened: uncaught exceptions,
    /// `console.error`, and the browser's own error entries (failed loads, refused
    /// policies). Reads the events waiting on the socket first.
    pub async fn console_errors(&mut self) -> Result<Vec<String>> {
        // A round trip: every event sent before its answer is kept by then.
        self.eval("0").await?;
        Ok(self.events.iter().filter_map(error_text).collect())
    }

    /// Forgets the events seen so far (e.g. before a step that is expected to log errors).
    pub fn clear_events(&mut self) {
        self.events.clear();
    }

    /// A PNG of the whole page, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) -> Result<()> {
        let metrics = self.call("Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let width = size["width"].as_f64().unwrap_or(1280.0).min(4000.0);
        let height = size["height"].as_f64().unwrap_or(900.0).min(8000.0);
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true,
                       "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}}),
            )
            .await?;
        let data = shot["data"]
            .as_str()
            .ok_or_else(|| anyhow!("no screenshot data"))?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
        Ok(())
    }
}

fn error_text(event: &Value) -> Option<String> {
    let params = &event["params"];
    match event["method"].as_str()? {
        "Runtime.exceptionThrown" => Some(format!(
            "exception: {}",
            params["exceptionDetails"]["exception"]["description"]
                .as_str()
                .or(params["exceptionDetails"]["text"].as_str())
                .unwrap_or("?")
        )),
        "Runtime.consoleAPICalled"
            if matches!(params["type"].as_str(), Some("error" | "assert")) =>
        {
            Some(format!("console.error: {}", params["args"]))
        }
        "Log.entryAdded" if params["entry"]["level"] == "error" => Some(format!(
            "{}: {} {}",
            params["entry"]["source"].as_str().unwrap_or("log"),
            params["entry"]["text"].as_str().unwrap_or(""),
            params["entry"]["url"].as_str().unwrap_or("")
        )),
        _ => None,
    }
}
