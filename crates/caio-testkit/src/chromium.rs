//! A real headless Chromium (Debian's `chromium` package), driven over the
//! Chrome DevTools Protocol on a loopback WebSocket: open a page, run a
//! script in it, click and wait for the next page, list every request it
//! made, and take a screenshot.
//!
//! Chromium starts with an empty profile and its background services off
//! (no component updates, sync or field trials), so the only requests it
//! makes are the ones the page asks for; [`Chromium::requests`] lists them
//! for tests that must prove a page loads nothing from elsewhere.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

use crate::process::{find_binary, stop, tail};

/// How long a command or a page load may take.
const PATIENCE: Duration = Duration::from_secs(30);

/// A headless Chromium with one page, stopped on drop.
pub struct Chromium {
    child: Child,
    socket: WebSocket<TcpStream>,
    session: String,
    next_id: u64,
    events: Vec<Value>,
    requests: Vec<String>,
    dir: tempfile::TempDir,
}

impl Chromium {
    /// Whether the binary is installed.
    pub fn installed() -> bool {
        find_binary("chromium", &[PathBuf::from("/usr/bin")]).is_some()
    }

    /// Starts Chromium and opens a blank page of 1280×900.
    pub fn start() -> Result<Chromium, String> {
        let binary = find_binary("chromium", &[PathBuf::from("/usr/bin")])
            .ok_or("Chromium is not installed (no chromium; Debian: apt-get install chromium)")?;
        let dir = tempfile::Builder::new().prefix("caio-chromium-").tempdir().map_err(|e| e.to_string())?;
        let log = dir.path().join("chromium.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--disable-field-trial-config",
                "--disable-default-apps",
                "--metrics-recording-only",
                "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1",
            ])
            .arg(format!("--user-data-dir={}", dir.path().join("profile").display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut child = child;
        let endpoint = match devtools_endpoint(&dir.path().join("profile"), &mut child) {
            Ok(endpoint) => endpoint,
            Err(e) => {
                stop(&mut child, "KILL");
                return Err(format!("{e}; its log:\n{}", tail(&log)));
            }
        };
        let (port, path) = endpoint;
        let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("cannot reach DevTools: {e}"))?;
        stream.set_read_timeout(Some(PATIENCE)).map_err(|e| e.to_string())?;
        let (socket, _) = tungstenite::client(format!("ws://127.0.0.1:{port}{path}"), stream)
            .map_err(|e| format!("the DevTools handshake failed: {e}"))?;
        let mut browser = Chromium {
            child,
            socket,
            session: String::new(),
            next_id: 0,
            events: Vec::new(),
            requests: Vec::new(),
            dir,
        };
        let target = browser.call("Target.createTarget", json!({"url": "about:blank"}))?;
        let target = target["targetId"].as_str().ok_or("no target id")?.to_string();
        let attached = browser.call("Target.attachToTarget", json!({"targetId": target, "flatten": true}))?;
        browser.session = attached["sessionId"].as_str().ok_or("no session id")?.to_string();
        browser.call("Page.enable", json!({}))?;
        browser.call("Network.enable", json!({}))?;
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": 1280, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
        )?;
        Ok(browser)
    }

    /// Sends a command (to the page once there is one) and waits for its
    /// result; events that arrive meanwhile are kept.
    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        self.socket.send(Message::text(message.to_string())).map_err(|e| format!("{method}: {e}"))?;
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            let incoming = self.next()?;
            if incoming["id"].as_u64() == Some(id) {
                if let Some(error) = incoming.get("error") {
                    return Err(format!("{method}: {error}"));
                }
                return Ok(incoming["result"].clone());
            }
        }
        Err(format!("{method}: no answer within {PATIENCE:?}"))
    }

    fn next(&mut self) -> Result<Value, String> {
        loop {
            match self.socket.read().map_err(|e| format!("DevTools: {e}"))? {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str()).map_err(|e| e.to_string())?;
                    if value.get("method").is_some() {
                        if value["method"] == "Network.requestWillBeSent" {
                            let url = value["params"]["request"]["url"].as_str().unwrap_or_default();
                            self.requests.push(url.to_string());
                        }
                        self.events.push(value.clone());
                    }
                    return Ok(value);
                }
                Message::Close(_) => return Err("DevTools closed the connection".into()),
                _ => {}
            }
        }
    }

    fn wait_for_load(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(i) = self.events.iter().position(|e| e["method"] == "Page.loadEventFired") {
                self.events.drain(..=i);
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("the page did not load within {PATIENCE:?}"));
            }
            self.next()?;
        }
    }

    /// Opens `url` and waits until it has loaded.
    pub fn open(&mut self, url: &str) -> Result<(), String> {
        self.events.clear();
        let navigated = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(error) = navigated.get("errorText") {
            return Err(format!("{url}: {error}"));
        }
        self.wait_for_load()
    }

    /// Evaluates `script` in the page; its value, as JSON.
    pub fn eval(&mut self, script: &str) -> Result<Value, String> {
        let result =
            self.call("Runtime.evaluate", json!({"expression": script, "returnByValue": true, "awaitPromise": true}))?;
        if let Some(exception) = result.get("exceptionDetails") {
            return Err(format!("{script}: {}", exception["exception"]["description"].as_str().unwrap_or("failed")));
        }
        Ok(result["result"]["value"].clone())
    }

    /// Runs `script` (which clicks a link or submits a form) and waits for
    /// the page it leads to.
    pub fn navigate_by(&mut self, script: &str) -> Result<(), String> {
        self.events.clear();
        self.eval(script)?;
        self.wait_for_load()
    }

    /// The text of the first element `selector` matches (`None`: none does).
    pub fn text(&mut self, selector: &str) -> Result<Option<String>, String> {
        let script = format!(
            "(() => {{ const e = document.querySelector({}); return e ? e.innerText : null; }})()",
            json!(selector)
        );
        Ok(self.eval(&script)?.as_str().map(str::to_string))
    }

    /// The page's address now.
    pub fn location(&mut self) -> Result<String, String> {
        Ok(self.eval("location.href")?.as_str().unwrap_or_default().to_string())
    }

    /// Every URL the page asked for since Chromium started, in order.
    pub fn requests(&self) -> &[String] {
        &self.requests
    }

    /// A PNG screenshot of the whole page, written to `path`.
    pub fn screenshot(&mut self, path: &Path) -> Result<(), String> {
        let shot = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}))?;
        let data = shot["data"].as_str().ok_or("no screenshot data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data).map_err(|e| e.to_string())?;
        std::fs::write(path, png).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Where Chromium keeps its profile and log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// The DevTools port and browser path Chromium writes to
/// `DevToolsActivePort` once it listens.
fn devtools_endpoint(profile: &Path, child: &mut Child) -> Result<(u16, String), String> {
    let file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(&file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                let port = port.trim().parse().map_err(|_| format!("DevToolsActivePort: bad port {port:?}"))?;
                return Ok((port, path.trim().to_string()));
            }
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("Chromium exited at start ({status})"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("Chromium did not open DevTools within {PATIENCE:?}"))
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let _ = self.socket.close(None);
        stop(&mut self.child, "TERM");
    }
}
