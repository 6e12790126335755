//! A real browser: Debian's headless Chromium, driven over the Chrome DevTools Protocol, opens
//! an auction page, places a bid through the form, sees it accepted and shown as highest, while
//! a second browser (its own profile context: its own cookies) sees the bid arrive live.
//! A second test creates an auction through the form, bids with a secret maximum against a second
//! browser and watches the auction close live. Screenshots are saved under `<target>/artifacts/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use futures::stream::SplitSink;
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Mutex, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::{Backend, BidService, bid_count, gateway_settings, place};

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Pending = Arc<std::sync::Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A Chrome DevTools Protocol connection to the browser.
struct Cdp {
    sink: Mutex<SplitSink<Socket, Message>>,
    next_id: AtomicU64,
    pending: Pending,
    /// Events the browser reported (console errors, exceptions, log entries).
    events: Arc<std::sync::Mutex<Vec<Value>>>,
}

impl Cdp {
    async fn connect(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("cannot open the DevTools socket {url}: {e}"));
        let (sink, mut stream) = socket.split();
        let pending: Pending = Arc::default();
        let events: Arc<std::sync::Mutex<Vec<Value>>> = Arc::default();
        {
            let pending = Arc::clone(&pending);
            let events = Arc::clone(&events);
            tokio::spawn(async move {
                while let Some(Ok(message)) = stream.next().await {
                    let Message::Text(text) = message else {
                        continue;
                    };
                    let Ok(value) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if let Some(id) = value.get("id").and_then(Value::as_u64) {
                        let answer = match value.get("error") {
                            Some(error) => Err(error.to_string()),
                            None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        if let Some(sender) = pending.lock().expect("lock").remove(&id) {
                            let _ = sender.send(answer);
                        }
                    } else {
                        events.lock().expect("lock").push(value);
                    }
                }
            });
        }
        Self {
            sink: Mutex::new(sink),
            next_id: AtomicU64::new(1),
            pending,
            events,
        }
    }

    /// Sends a command (to a page when `session` is set) and waits for its result.
    async fn try_call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, String> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (sender, receiver) = oneshot::channel();
        self.pending.lock().expect("lock").insert(id, sender);
        let mut command = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            command["sessionId"] = json!(session);
        }
        self.sink
            .lock()
            .await
            .send(Message::text(command.to_string()))
            .await
            .map_err(|e| format!("cannot send {method}: {e}"))?;
        match tokio::time::timeout(Duration::from_secs(30), receiver).await {
            Ok(Ok(answer)) => answer.map_err(|e| format!("{method} failed: {e}")),
            Ok(Err(_)) => Err(format!("the browser closed the connection during {method}")),
            Err(_) => Err(format!("{method} got no answer within 30 s")),
        }
    }

    async fn call(&self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.try_call(session, method, params)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Headless Chromium with a fresh profile, closed (and its profile deleted) when dropped.
struct Chromium {
    child: Child,
    cdp: Cdp,
    _profile: tempfile::TempDir,
}

impl Chromium {
    async fn launch() -> Self {
        let binary =
            auction_testkit::locate_tool("AUCTION_CHROMIUM", "chromium", ".cache/auction/chromium");
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--window-size=1200,900",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e}; run `.ci/test`, which installs Debian's chromium",
                    binary.display()
                )
            });
        // With port 0 Chromium picks a free port and writes it, and the browser's socket path,
        // into DevToolsActivePort in the profile.
        let active_port = profile.path().join("DevToolsActivePort");
        let mut url = None;
        for _ in 0..300 {
            if let Ok(text) = std::fs::read_to_string(&active_port) {
                let mut lines = text.lines();
                if let (Some(port), Some(path)) = (lines.next(), lines.next()) {
                    url = Some(format!("ws://127.0.0.1:{port}{path}"));
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(url) = url else {
            let log =
                std::fs::read_to_string(profile.path().join("chromium.log")).unwrap_or_default();
            panic!("Chromium did not open its DevTools port within 30 s; its output:\n{log}");
        };
        Self {
            child,
            cdp: Cdp::connect(&url).await,
            _profile: profile,
        }
    }

    /// A new page in a new browser context (its own cookies, like a second browser).
    async fn new_page(&self) -> Tab<'_> {
        let context = self
            .cdp
            .call(None, "Target.createBrowserContext", json!({}))
            .await["browserContextId"]
            .clone();
        let target = self
            .cdp
            .call(
                None,
                "Target.createTarget",
                json!({ "url": "about:blank", "browserContextId": context }),
            )
            .await["targetId"]
            .clone();
        let session = self
            .cdp
            .call(
                None,
                "Target.attachToTarget",
                json!({ "targetId": target, "flatten": true }),
            )
            .await["sessionId"]
            .as_str()
            .expect("a session id")
            .to_owned();
        let tab = Tab {
            cdp: &self.cdp,
            session,
        };
        for domain in ["Page.enable", "Runtime.enable", "Log.enable"] {
            tab.call(domain, json!({})).await;
        }
        tab
    }

    /// Console errors, uncaught exceptions and policy violations the pages reported.
    fn problems(&self) -> Vec<String> {
        self.cdp
            .events
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|event| {
                let method = event["method"].as_str().unwrap_or_default();
                let params = &event["params"];
                match method {
                    "Runtime.exceptionThrown" => Some(params["exceptionDetails"].to_string()),
                    "Runtime.consoleAPICalled" if params["type"] == "error" => {
                        Some(params["args"].to_string())
                    }
                    "Log.entryAdded" => {
                        let entry = &params["entry"];
                        let text = entry["text"].as_str().unwrap_or_default();
                        // The browser asks for /favicon.ico by itself; its 404 is not the page's.
                        let favicon = entry["url"]
                            .as_str()
                            .unwrap_or_default()
                            .ends_with("/favicon.ico");
                        (entry["level"] == "error" && !favicon).then(|| text.to_owned())
                    }
                    _ => None,
                }
            })
            .collect()
    }

    async fn close(mut self) {
        let _ = self.cdp.try_call(None, "Browser.close", json!({})).await;
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        // A failed test must not leave the browser running.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One page.
struct Tab<'a> {
    cdp: &'a Cdp,
    session: String,
}

impl Tab<'_> {
    async fn call(&self, method: &str, params: Value) -> Value {
        self.cdp.call(Some(&self.session), method, params).await
    }

    /// Evaluates `expression` in the page; an error while the page is navigating is `Err`.
    async fn try_eval(&self, expression: &str) -> Result<Value, String> {
        let result = self
            .cdp
            .try_call(
                Some(&self.session),
                "Runtime.evaluate",
                json!({ "expression": expression, "returnByValue": true, "awaitPromise": true }),
            )
            .await?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(details.to_string());
        }
        Ok(result["result"]["value"].clone())
    }

    async fn eval(&self, expression: &str) -> Value {
        self.try_eval(expression)
            .await
            .unwrap_or_else(|e| panic!("evaluating {expression:?} failed: {e}"))
    }

    /// Waits until `expression` is `true` in the page.
    async fn wait_for(&self, what: &str, expression: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Value::Bool(true)) = self.try_eval(expression).await {
                return;
            }
            if tokio::time::Instant::now() > deadline {
                let html = self
                    .try_eval("document.body ? document.body.innerText : ''")
                    .await
                    .unwrap_or_default();
                panic!("{what}: not within {within:?}; the page says:\n{html}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn open(&self, url: &str) {
        self.call("Page.navigate", json!({ "url": url })).await;
        let expected = serde_json::to_string(url).expect("json");
        self.wait_for(
            &format!("loading {url}"),
            &format!("location.href === {expected} && document.readyState === 'complete'"),
            Duration::from_secs(20),
        )
        .await;
    }

    /// Types `text` into the field with id `id`, as keyboard input.
    async fn type_into(&self, id: &str, text: &str) {
        let id = serde_json::to_string(id).expect("json");
        self.eval(&format!(
            "(() => {{ const f = document.getElementById({id}); f.value = ''; f.focus(); return true; }})()"
        ))
        .await;
        self.call("Input.insertText", json!({ "text": text })).await;
    }

    async fn text(&self, id: &str) -> String {
        let id = serde_json::to_string(id).expect("json");
        self.eval(&format!("document.getElementById({id}).textContent"))
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true }),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().expect("screenshot data"))
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        std::fs::write(path, png).expect("write the screenshot");
        println!("screenshot: {}", path.display());
    }
}

fn artifacts_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let dir = tmp.parent().unwrap_or(tmp).join("artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_bids_through_the_form_and_another_sees_it_live() {
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    place(&service.url(), "lot-7", "Grace <b>Hopper</b>", 120).await;
    let shutdown = CancellationToken::new();
    let gateway = auction_gateway::spawn(gateway_settings(&service.url()), shutdown.clone())
        .await
        .expect("gateway");
    let page_url = format!("http://{}/auctions/lot-7", gateway.addr);
    let artifacts = artifacts_dir();

    let browser = Chromium::launch().await;
    let bidder = browser.new_page().await;
    let watcher = browser.new_page().await;

    // The watcher is on a phone-sized screen and waits for news.
    watcher
        .call(
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await;
    watcher.open(&page_url).await;
    watcher
        .wait_for(
            "the watcher's live updates connect",
            "document.getElementById('live-status').dataset.state === 'live'",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(watcher.text("highest-price").await, "120");
    assert_eq!(watcher.text("highest-name").await, "Grace <b>Hopper</b>");
    // A reload would lose this mark.
    watcher.eval("window.stillTheSamePage = true").await;

    // The bidder fills in the form and submits it.
    bidder.open(&page_url).await;
    bidder.type_into("name", "Ada Lovelace").await;
    bidder.type_into("price", "150").await;
    bidder
        .eval("document.querySelector('.bid-form button[type=submit]').click(); true")
        .await;
    bidder
        .wait_for(
            "the bid is accepted",
            "!!document.getElementById('flash') && document.getElementById('flash').textContent.includes('Bid accepted: Ada Lovelace bid 150.')",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(
        bidder.eval("location.pathname").await,
        "/auctions/lot-7",
        "post/redirect/get lands back on the auction page"
    );
    assert_eq!(bidder.text("highest-price").await, "150");
    assert_eq!(bidder.text("highest-name").await, "Ada Lovelace");
    assert_eq!(bid_count(&service.url(), "lot-7").await, 2);

    // The watcher sees the new highest bid and the recent list change without a reload.
    watcher
        .wait_for(
            "the watcher sees the new highest bid live",
            "document.getElementById('highest-price').textContent === '150' \
             && document.getElementById('highest-name').textContent === 'Ada Lovelace' \
             && document.querySelector('#recent-bids li .bidder').textContent === 'Ada Lovelace' \
             && document.getElementById('bid-count').textContent === '2'",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(watcher.eval("window.stillTheSamePage === true").await, true);
    // A name with markup stays text on the live path too.
    assert_eq!(
        watcher
            .eval("document.querySelectorAll('#recent-bids b').length")
            .await,
        0
    );
    // It fits a phone: no sideways scrolling.
    assert_eq!(
        watcher
            .eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        true
    );

    bidder
        .screenshot(&artifacts.join("gateway-bid-accepted.png"))
        .await;
    watcher
        .screenshot(&artifacts.join("gateway-live-phone.png"))
        .await;
    bidder.open(&format!("http://{}/", gateway.addr)).await;
    bidder
        .screenshot(&artifacts.join("gateway-auctions.png"))
        .await;

    // With JavaScript off the form still works: a plain post, a redirect, the message.
    let no_script = browser.new_page().await;
    no_script
        .call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": true }),
        )
        .await;
    no_script.open(&page_url).await;
    no_script.type_into("name", "Charles").await;
    no_script.type_into("price", "160").await;
    no_script
        .eval("document.querySelector('.bid-form button[type=submit]').click(); true")
        .await;
    no_script
        .wait_for(
            "the bid without JavaScript is accepted",
            "!!document.getElementById('flash') && document.getElementById('flash').textContent.includes('Bid accepted: Charles bid 160.')",
            Duration::from_secs(20),
        )
        .await;
    assert_eq!(no_script.text("highest-price").await, "160");
    assert_eq!(
        no_script
            .eval("document.getElementById('live-status').hidden")
            .await,
        true,
        "the page's script ran although JavaScript is off"
    );
    watcher
        .wait_for(
            "the watcher sees the bid placed without JavaScript",
            "document.getElementById('highest-price').textContent === '160'",
            Duration::from_secs(20),
        )
        .await;

    let problems = browser.problems();
    assert!(
        problems.is_empty(),
        "the pages reported errors: {problems:#?}"
    );
    browser.close().await;
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), gateway.stopped()).await;
    assert!(
        matches!(stopped, Ok(Ok(()))),
        "the gateway did not stop: {stopped:?}"
    );
    service.stop().await;
}

/// Clicks the submit button of the form `form_selector`.
async fn submit(tab: &Tab<'_>, form_selector: &str) {
    let selector =
        serde_json::to_string(&format!("{form_selector} button[type=submit]")).expect("json");
    tab.eval(&format!("document.querySelector({selector}).click(); true"))
        .await;
}

/// The seller creates an auction through the form; one bidder leaves a secret maximum, a second
/// browser bids against it and is outbid at once by the automatic bid, and both pages see the
/// price move and the auction close live. Screenshots of the open and the closed auction page
/// are saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_auction_takes_a_proxy_bid_and_closes_live_in_two_browsers() {
    let backend = Backend::start().await;
    let service = BidService::start(&backend, "127.0.0.1:0".parse().expect("address")).await;
    let shutdown = CancellationToken::new();
    let gateway = auction_gateway::spawn(gateway_settings(&service.url()), shutdown.clone())
        .await
        .expect("gateway");
    let site = format!("http://{}", gateway.addr);
    let artifacts = artifacts_dir();
    let browser = Chromium::launch().await;

    // The seller fills in the creation form.
    let seller = browser.new_page().await;
    seller.open(&format!("{site}/auctions/new")).await;
    seller.type_into("title", "Brass desk lamp").await;
    seller.type_into("seller", "Sam").await;
    seller.type_into("starting_price", "10").await;
    seller.type_into("reserve_price", "30").await;
    seller.type_into("ends_in", "35").await;
    // A soft-close window longer than the auction: every bid moves the end (to its time plus
    // 40 s).
    seller.type_into("soft_close_seconds", "40").await;
    seller
        .eval("document.getElementById('ends_in_unit').value = 'seconds'; true")
        .await;
    submit(&seller, ".create-form").await;
    seller
        .wait_for(
            "the auction is created",
            "!!document.getElementById('seller-key')",
            Duration::from_secs(20),
        )
        .await;
    let key = seller.text("seller-key").await;
    assert_eq!(key.trim().len(), 32, "a seller key is shown: {key:?}");
    let auction_url = seller
        .eval("document.getElementById('created-link').href")
        .await
        .as_str()
        .expect("link")
        .to_owned();

    // Ada watches on a phone-sized screen; Bob bids from a second browser context.
    let ada = browser.new_page().await;
    ada.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
    )
    .await;
    ada.open(&auction_url).await;
    ada.wait_for(
        "Ada's live updates connect",
        "document.getElementById('live-status').dataset.state === 'live'",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(ada.text("auction-title").await, "Brass desk lamp");
    assert_eq!(ada.text("auction-seller").await, "Sam");
    assert!(ada.text("auction-status").await.contains("Open"));
    ada.wait_for(
        "the countdown runs",
        "/s left/.test(document.getElementById('countdown').textContent)",
        Duration::from_secs(5),
    )
    .await;

    let bob = browser.new_page().await;
    bob.open(&auction_url).await;
    bob.type_into("name", "Bob").await;
    bob.type_into("price", "12").await;
    submit(&bob, ".bid-form").await;
    bob.wait_for(
        "Bob's first bid is accepted",
        "!!document.getElementById('flash') && document.getElementById('flash').textContent.includes('Bid accepted: Bob bid 12.')",
        Duration::from_secs(20),
    )
    .await;
    ada.wait_for(
        "Ada sees the reserve not met",
        "!document.getElementById('reserve').hidden && document.getElementById('highest-price').textContent === '12'",
        Duration::from_secs(20),
    )
    .await;

    // Ada leaves a secret maximum: the service bids the reserve for her.
    ada.type_into("name", "Ada").await;
    ada.type_into("max_price", "50").await;
    submit(&ada, ".bid-form").await;
    ada.wait_for(
        "Ada's maximum is accepted",
        "!!document.getElementById('flash') && document.getElementById('flash').textContent.includes('Bid accepted: Ada bid 30.')",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(
        ada.eval("document.getElementById('reserve').hidden").await,
        true,
        "the reserve is met"
    );
    ada.screenshot(&artifacts.join("gateway-auction-open-phone.png"))
        .await;

    // Bob bids 40; Ada's maximum answers at once.
    bob.type_into("price", "40").await;
    submit(&bob, ".bid-form").await;
    bob.wait_for(
        "Bob learns he was outbid at once",
        "!!document.getElementById('flash') && document.getElementById('flash').textContent.includes('outbid it at once')",
        Duration::from_secs(20),
    )
    .await;
    for tab in [&ada, &bob] {
        tab.wait_for(
            "the automatic bid shows live",
            "document.getElementById('highest-price').textContent === '41' \
             && document.getElementById('highest-name').textContent === 'Ada'",
            Duration::from_secs(20),
        )
        .await;
    }
    ada.wait_for(
        "the extensions show live",
        "!document.getElementById('extensions').hidden \
         && Number(document.getElementById('extension-count').textContent) >= 1",
        Duration::from_secs(20),
    )
    .await;
    bob.screenshot(&artifacts.join("gateway-auction-open.png"))
        .await;
    assert_eq!(
        ada.eval(
            "[...document.querySelectorAll('#recent-bids .price, #highest-price')].some(e => e.textContent === '50')"
        )
        .await,
        false,
        "Ada's maximum is never shown"
    );

    // The auction closes on its own; both pages show the winner without a reload.
    ada.eval("window.stillTheSamePage = true").await;
    for tab in [&ada, &bob] {
        tab.wait_for(
            "the close arrives live",
            "!document.getElementById('result').hidden \
             && document.getElementById('result').textContent === 'Sold to Ada for 41.' \
             && document.getElementById('bid-section').hidden",
            Duration::from_secs(45),
        )
        .await;
    }
    assert_eq!(ada.eval("window.stillTheSamePage === true").await, true);
    assert!(ada.text("auction-status").await.contains("Closed"));
    assert_eq!(
        ada.eval("document.documentElement.scrollWidth <= window.innerWidth")
            .await,
        true,
        "the closed page fits a phone"
    );
    ada.screenshot(&artifacts.join("gateway-auction-closed-phone.png"))
        .await;
    bob.screenshot(&artifacts.join("gateway-auction-closed.png"))
        .await;

    // The list shows it among the recently closed; without JavaScript the result is there too.
    let plain = browser.new_page().await;
    plain
        .call(
            "Emulation.setScriptExecutionDisabled",
            json!({ "value": true }),
        )
        .await;
    plain.open(&format!("{site}/")).await;
    assert!(
        plain
            .text("closed-auctions")
            .await
            .contains("Sold to Ada for 41."),
        "the list shows the result"
    );
    plain.open(&auction_url).await;
    assert_eq!(plain.text("result").await, "Sold to Ada for 41.");
    assert!(
        plain.text("end-time").await.ends_with("UTC"),
        "the plain end time shows without JavaScript"
    );

    let problems = browser.problems();
    assert!(
        problems.is_empty(),
        "the pages reported errors: {problems:#?}"
    );
    browser.close().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), gateway.stopped()).await;
    service.stop().await;
}
