//! The kiosk web page: `GET /` is a page with an inline SVG QR, a large code and a countdown;
//! it long-polls `GET /state.json?v=VERSION`, which answers at once when the screen changed
//! and otherwise after up to 25 s, so a new code or "paired" appears within a moment.
//! A waiting screen's warning is `"warning"` in the JSON (`null` without one) and a marked
//! box above the instructions on the page.
//!
//! Why `tiny_http` on std threads rather than axum + tokio: [`Show::show`] is synchronous,
//! the server must run in programs with or without an async runtime (the blocking driver has
//! none), and it serves one kiosk on loopback: four small dependencies, no runtime to start.

use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, Server};

use crate::files::qr_svg;
use crate::layout::warning_text;
use crate::qr::QrMatrix;
use crate::screen::Screen;
use crate::show::Show;

/// How long a long-poll waits for a change before answering with the same version.
const LONG_POLL: Duration = Duration::from_secs(25);
/// At most this many long-polls wait at once; more are answered immediately.
const MAX_WAITING: usize = 16;

struct State {
    version: u64,
    screen: Option<Screen>,
    at: Instant,
    closed: bool,
    dashboard: Option<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    waiting: AtomicUsize,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The kiosk page server. Dropping it stops the server.
pub struct WebDisplay {
    shared: Arc<Shared>,
    server: Arc<Server>,
    addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for WebDisplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebDisplay").field("addr", &self.addr).finish()
    }
}

impl WebDisplay {
    /// Listens on `addr` (e.g. `127.0.0.1:8080`; port 0 picks a free one) and serves the page
    /// from a background thread.
    pub fn bind(addr: impl ToSocketAddrs) -> io::Result<WebDisplay> {
        let addr = addr
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no address to listen on"))?;
        let server = Server::http(addr)
            .map_err(|e| io::Error::new(io::ErrorKind::AddrNotAvailable, format!("web display on {addr}: {e}")))?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| io::Error::other("web display: not an IP listener"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                version: 0,
                screen: None,
                at: Instant::now(),
                closed: false,
                dashboard: None,
            }),
            changed: Condvar::new(),
            waiting: AtomicUsize::new(0),
        });
        let thread = {
            let (server, shared) = (server.clone(), shared.clone());
            std::thread::Builder::new()
                .name("web-display".into())
                .spawn(move || serve(&server, &shared))?
        };
        Ok(WebDisplay {
            shared,
            server,
            addr,
            thread: Some(thread),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Once paired, the page hands over to `url` (an `http(s)://` URL: a kiosk's dashboard).
    pub fn set_dashboard(&self, url: Option<String>) {
        self.shared.lock().dashboard = url;
        self.shared.changed.notify_all();
    }

    /// Shows `screen`: pages waiting on a long-poll get it at once when the content changed;
    /// the countdown alone only updates the time base.
    pub fn update(&self, screen: &Screen) {
        let mut s = self.shared.lock();
        let changed = !s.screen.as_ref().is_some_and(|old| old.same_content(screen));
        if changed {
            s.version += 1;
        }
        if changed || s.screen.as_ref() != Some(screen) {
            s.screen = Some(screen.clone());
            s.at = Instant::now();
        }
        drop(s);
        if changed {
            self.shared.changed.notify_all();
        }
    }

    /// How many pages are waiting on a long-poll right now (tests use it to know a page is
    /// loaded and listening).
    pub fn waiting_clients(&self) -> usize {
        self.shared.waiting.load(Ordering::SeqCst)
    }
}

impl Show for WebDisplay {
    fn show(&mut self, screen: &Screen) -> io::Result<()> {
        self.update(screen);
        Ok(())
    }
}

impl Drop for WebDisplay {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(server: &Server, shared: &Arc<Shared>) {
    while let Ok(req) = server.recv() {
        if shared.lock().closed {
            break;
        }
        let url = req.url().to_string();
        let (path, query) = url.split_once('?').unwrap_or((&url, ""));
        let is_get = matches!(req.method(), Method::Get | Method::Head);
        match (is_get, path) {
            (true, "/") => respond(req, 200, "text/html; charset=utf-8", page(shared)),
            (true, "/state.json") => {
                let seen: Option<u64> = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("v="))
                    .and_then(|v| v.parse().ok());
                let current = shared.lock().version;
                let wait = seen == Some(current) && shared.waiting.load(Ordering::SeqCst) < MAX_WAITING;
                if wait {
                    shared.waiting.fetch_add(1, Ordering::SeqCst);
                    let poller = shared.clone();
                    let spawned = std::thread::Builder::new()
                        .name("web-display-poll".into())
                        .spawn(move || {
                            {
                                let guard = poller.lock();
                                let _unused = poller
                                    .changed
                                    .wait_timeout_while(guard, LONG_POLL, |s| s.version == current && !s.closed);
                            }
                            poller.waiting.fetch_sub(1, Ordering::SeqCst);
                            respond(req, 200, "application/json", state_json(&poller));
                        });
                    // A failed spawn dropped the request (the client retries); undo the count.
                    if spawned.is_err() {
                        shared.waiting.fetch_sub(1, Ordering::SeqCst);
                    }
                } else {
                    respond(req, 200, "application/json", state_json(shared));
                }
            }
            (true, _) => respond(req, 404, "text/plain; charset=utf-8", "not found\n".into()),
            (false, _) => respond(req, 405, "text/plain; charset=utf-8", "method not allowed\n".into()),
        }
    }
}

fn respond(req: Request, status: u16, content_type: &str, body: String) {
    let mut resp = Response::from_string(body).with_status_code(status);
    for (k, v) in [
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ] {
        if let Ok(h) = Header::from_bytes(k, v) {
            resp.add_header(h);
        }
    }
    // The client may have gone away; nothing to do about it.
    let _ = req.respond(resp);
}

/// A JSON string literal; `<`, `>` and `&` escaped too so it can sit inside a `<script>`.
fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 || matches!(c, '<' | '>' | '&' | '\u{2028}' | '\u{2029}') => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn state_json(shared: &Shared) -> String {
    let s = shared.lock();
    let mut out = format!("{{\"version\":{}", s.version);
    match &s.screen {
        None => out.push_str(",\"state\":\"starting\",\"headline\":\"Starting\",\"message\":\"\""),
        Some(screen) => {
            let _ = write!(
                out,
                ",\"state\":{},\"headline\":{},\"message\":{}",
                json_str(screen.kind()),
                json_str(screen.headline()),
                json_str(screen.message())
            );
            if screen.kind() == "paired"
                && let Some(url) = &s.dashboard
            {
                let _ = write!(out, ",\"dashboard\":{}", json_str(url));
            }
            if let Screen::Waiting {
                user_code,
                verification_url,
                seconds_left,
                total_seconds,
                ..
            } = screen
            {
                let left = seconds_left.saturating_sub(s.at.elapsed().as_secs());
                let qr = screen.qr_payload().unwrap_or(verification_url);
                let svg = QrMatrix::encode(qr).map(|m| qr_svg(&m, qr)).unwrap_or_default();
                let warning = screen
                    .warning()
                    .map_or_else(|| "null".to_string(), |w| json_str(&warning_text(w)));
                let _ = write!(
                    out,
                    ",\"user_code\":{},\"verification_url\":{},\"qr_url\":{},\"qr_svg\":{},\"seconds_left\":{left},\"total_seconds\":{total_seconds},\"warning\":{warning}",
                    json_str(user_code),
                    json_str(verification_url),
                    json_str(qr),
                    json_str(&svg)
                );
            }
        }
    }
    out.push('}');
    out
}

fn page(shared: &Shared) -> String {
    PAGE.replace("/*INITIAL*/null", &state_json(shared))
}

const PAGE: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Pair this device</title>
<style>
html,body{margin:0;height:100%;background:#fff;color:#000;font-family:system-ui,sans-serif}
main{box-sizing:border-box;height:100%;display:flex;align-items:center;justify-content:center;gap:4vmin;padding:3vmin;text-align:center;overflow:hidden}
#qr svg{display:block;width:min(80vh,48vw);height:min(80vh,48vw)}
#qr:empty{display:none}
#code{font:bold min(10vmin,7vw)/1.2 ui-monospace,"DejaVu Sans Mono",monospace;letter-spacing:.05em}
#url{font:min(3vmin,1.9vw)/1.4 ui-monospace,"DejaVu Sans Mono",monospace;word-break:break-all}
@media (orientation:portrait){main{flex-direction:column}#qr svg{width:min(55vh,90vw);height:min(55vh,90vw)}#code{font-size:min(8vh,12vw)}#url{font-size:min(3vh,4.5vw)}}
#headline{font-size:min(8vmin,8vw);font-weight:bold}
#message,#time,.hint{font-size:min(4vmin,4vw)}
#warning{margin:0 auto 2vmin;padding:1vmin 2vmin;max-width:40em;background:#000;color:#fff;font-weight:bold;font-size:min(3.2vmin,3.2vw);line-height:1.3;border-radius:.5vmin}
[hidden]{display:none!important}
</style></head>
<body><main>
<div id="qr"></div>
<div>
<div id="headline"></div>
<div id="message"></div>
<div id="waiting" hidden>
<div id="warning" role="alert" hidden></div>
<div class="hint">Scan the code, or open</div>
<div id="url"></div>
<div class="hint">and enter</div>
<div id="code"></div>
<div id="time"></div>
</div>
</div>
</main>
<script>
"use strict";
let state = /*INITIAL*/null;
let deadline = 0;
const $ = (id) => document.getElementById(id);
function fmt(s) {
  s = Math.max(0, Math.round(s));
  const h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, r = String(s % 60).padStart(2, "0");
  return h ? h + ":" + String(m).padStart(2, "0") + ":" + r : m + ":" + r;
}
function tick() {
  if (state && state.state === "waiting") $("time").textContent = "expires in " + fmt((deadline - Date.now()) / 1000);
}
function render(s) {
  state = s;
  // Paired, with a dashboard configured (web=ADDR,dashboard=URL): hand the screen over.
  if (s.state === "paired" && s.dashboard) location.replace(s.dashboard);
  const waiting = s.state === "waiting";
  document.body.dataset.state = s.state;
  $("headline").textContent = waiting ? "" : s.headline;
  $("headline").hidden = waiting;
  $("message").textContent = waiting ? "" : s.message;
  $("waiting").hidden = !waiting;
  if (waiting) {
    // qr_svg is generated by the server from the QR matrix alone (no user text inside).
    $("qr").innerHTML = s.qr_svg;
    $("url").textContent = s.verification_url;
    $("code").textContent = s.user_code;
    $("warning").textContent = s.warning || "";
    $("warning").hidden = !s.warning;
    deadline = Date.now() + s.seconds_left * 1000;
  } else {
    $("qr").innerHTML = "";
  }
  tick();
}
async function poll() {
  let delay = 0;
  try {
    const r = await fetch("/state.json?v=" + state.version, {cache: "no-store"});
    const s = await r.json();
    if (s.version !== state.version) render(s); else if (s.state === "waiting") deadline = Date.now() + s.seconds_left * 1000;
    // Once paired there is nothing to hurry for.
    if (s.state === "paired") delay = 5000;
  } catch (e) {
    delay = 2000;
  }
  setTimeout(poll, delay);
}
render(state);
setInterval(tick, 1000);
poll();
</script>
</body></html>
"#;
