//! `agent --serve`: the local Books gateway against the simulator — coalescing, stale-if-error,
//! the per-minute limiter, the daily budget stretching the TTL, Host and CORS refusals, writes
//! refused by default, and the token never in an answer.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::chromium::{chromium, chromium_missing};
use crate::util::*;

/// A world paired with a scope that reaches every Books module.
fn paired(config: SimConfig) -> World {
    paired_for_books(config, &[("ZOHO_DEVICE_BACKOFF_MS", "20")])
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: BTreeMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn parse_reply(raw: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_string(),
    }
}

/// One request on a fresh connection (`Connection: close`), `head` being the request line and
/// headers without the final blank line.
fn exchange(mut s: impl Read + Write, head: &str, body: &str) -> Reply {
    let req = format!(
        "{head}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    parse_reply(&raw)
}

fn unix(sock: &Path, method: &str, target: &str) -> Reply {
    let s = UnixStream::connect(sock).expect("the gateway's socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange(s, &format!("{method} {target} HTTP/1.1\r\nHost: localhost"), "")
}

fn get(sock: &Path, target: &str) -> Reply {
    unix(sock, "GET", target)
}

fn tcp(port: u16, head: &str) -> Reply {
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("the gateway's port accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange(s, head, "")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts the agent with `extra` gateway flags on a Unix socket in the world's HOME; waits
/// until it answers.
fn agent<'w>(w: &'w World, extra: &[&str]) -> (Running<'w>, PathBuf) {
    let sock = w.path("api.sock");
    let serve = format!("unix:{}", sock.display());
    let mut args = vec!["agent", "--display", "none", "--events", "json", "--serve", &serve];
    args.extend_from_slice(extra);
    let run = w.spawn(&args);
    wait_until(|| UnixStream::connect(&sock).is_ok(), "the gateway's socket");
    (run, sock)
}

#[track_caller]
fn wait_until(mut ok: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "{what} never came");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// No secret of the world (tokens, client secret) in any of `replies`.
#[track_caller]
fn no_secret_in(w: &World, replies: &[&Reply]) {
    let secrets = w.secrets();
    assert!(!secrets.is_empty());
    for r in replies {
        for s in &secrets {
            assert!(!r.body.contains(s.as_str()), "a secret in a gateway answer: {}", r.body);
            for (k, v) in &r.headers {
                assert!(!v.contains(s.as_str()), "a secret in the gateway's header {k}");
            }
        }
        assert!(!r.headers.contains_key("authorization"));
    }
}

fn stop(run: Running<'_>) {
    run.signal("TERM");
    run.wait().code(0);
}

#[test]
fn fifty_concurrent_clients_make_one_upstream_call_and_writes_are_refused_by_default() {
    // Books takes 400 ms per call, so the fifty requests overlap the first one.
    let w = paired(sim_config().books_concurrency(10, Duration::from_millis(400)));
    let (run, sock) = agent(&w, &[]);
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&sock).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o660, "the socket is for the owner and its group");
    w.sim.clear_log();

    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..50)
            .map(|_| s.spawn(|| get(&sock, "/books/v3/invoices?status=overdue")))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let upstream = w.sim.requests_to("/books/v3/invoices");
    assert_eq!(upstream.len(), 1, "fifty identical requests, one call to Books");
    assert_eq!(upstream[0].param("status"), Some("overdue"));
    assert_eq!(upstream[0].param("organization_id"), Some("10234695"));
    for r in &replies {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body, replies[0].body);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{r:?}"
        );
    }
    let kinds: Vec<&str> = replies
        .iter()
        .map(|r| r.header("x-zoho-device-cache").unwrap())
        .collect();
    assert_eq!(kinds.iter().filter(|k| **k == "miss").count(), 1, "{kinds:?}");
    assert!(replies[0].json()["invoices"].as_array().is_some_and(|a| !a.is_empty()));

    // Within the TTL: a hit, no call.
    let again = get(&sock, "/books/v3/invoices?status=overdue");
    assert_eq!(again.header("x-zoho-device-cache"), Some("hit"));
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), 1);

    // Writes are refused without --serve-allow-writes, and nothing reaches Books.
    for method in ["POST", "PUT", "DELETE"] {
        let r = unix(&sock, method, "/books/v3/contacts");
        assert_eq!(r.status, 405, "{method}: {r:?}");
        assert_eq!(r.json()["error"], "writes_refused");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
    }
    assert!(
        w.sim.requests().iter().all(|r| r.method == "GET"),
        "no write reached Books"
    );

    // Paths outside Books, or that could send the token elsewhere, are refused.
    assert_eq!(get(&sock, "/oauth/v2/token").status, 404);
    assert_eq!(get(&sock, "/books/v3/../../oauth/v2/token").status, 400);

    let status = get(&sock, "/_zoho-device/status");
    assert_eq!(status.status, 200);
    let s = status.json();
    assert_eq!(s["upstream_calls"], 2, "one organization look-up, one list: {s}");
    assert_eq!(s["cache"]["misses"], 1);
    assert_eq!(
        s["cache"]["hits"].as_u64().unwrap() + s["cache"]["coalesced"].as_u64().unwrap(),
        50
    );
    assert_eq!(s["token"]["state"], "valid");
    assert_eq!(s["daily_budget"], 1000);
    assert_eq!(s["budget_left"], 998);

    let mut all: Vec<&Reply> = replies.iter().collect();
    all.extend([&again, &status]);
    no_secret_in(&w, &all);
    stop(run);
    assert!(!sock.exists(), "the socket is removed at SIGTERM");
    w.assert_no_secret_leaked();
}

#[test]
fn during_an_outage_the_last_good_answer_is_served_with_its_age() {
    let w = paired(sim_config());
    let (run, sock) = agent(&w, &["--cache-ttl", "1s", "--daily-budget", "10000000"]);
    let first = get(&sock, "/books/v3/invoices");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("x-zoho-device-cache"), Some("miss"));
    std::thread::sleep(Duration::from_millis(2100));

    // Books down: an HTML 503 page for every call.
    w.sim
        .inject(Fault::new("/books/v3/invoices", FaultKind::Html { status: 503 }, 1000));
    w.sim
        .inject(Fault::new("/books/v3/contacts", FaultKind::Html { status: 503 }, 1000));
    let stale = get(&sock, "/books/v3/invoices");
    assert_eq!(stale.status, 200, "{stale:?}");
    assert_eq!(stale.header("x-zoho-device-cache"), Some("stale"));
    let age: u64 = stale.header("x-zoho-device-stale").unwrap().parse().unwrap();
    assert!(age >= 2, "the age says how old the answer is: {age}");
    assert_eq!(stale.header("age"), stale.header("x-zoho-device-stale"));
    assert_eq!(stale.body, first.body, "the last good answer");
    let tried = w.sim.requests_to("/books/v3/invoices").len();
    assert!(tried >= 2, "Books was asked again first");

    // Right after a failure, Books is not asked again for the same path.
    let again = get(&sock, "/books/v3/invoices");
    assert_eq!(again.header("x-zoho-device-cache"), Some("stale"));
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), tried);

    // Nothing cached for a path: Books' failure is said, never a made-up answer.
    let none = get(&sock, "/books/v3/contacts");
    assert!(none.status >= 500, "{none:?}");
    assert_eq!(none.json()["error"], "unavailable");

    let s = get(&sock, "/_zoho-device/status").json();
    assert!(s["cache"]["stale_served"].as_u64().unwrap() >= 2);
    assert!(
        s["last_error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{s}"
    );

    // Books back: fresh answers after the failure pause.
    w.sim.clear_faults();
    std::thread::sleep(Duration::from_millis(5200));
    let back = get(&sock, "/books/v3/invoices");
    assert_eq!(back.header("x-zoho-device-cache"), Some("miss"), "{back:?}");
    no_secret_in(&w, &[&first, &stale, &again, &none, &back]);
    stop(run);
    w.assert_no_secret_leaked();
}

#[test]
fn one_limiter_keeps_all_clients_under_books_per_minute_limit() {
    let w = paired(sim_config());
    let (run, sock) = agent(&w, &["--daily-budget", "10000000"]);
    w.sim.clear_log();
    let mut ok = 0;
    let mut limited = 0;
    for page in 1..=120 {
        let r = get(&sock, &format!("/books/v3/invoices?per_page=1&page={page}"));
        match r.status {
            200 => ok += 1,
            429 => {
                limited += 1;
                assert_eq!(r.json()["error"], "budget");
                let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
                assert!((1..=61).contains(&wait), "{wait}");
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    let books: Vec<_> = w
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/books/"))
        .collect();
    assert_eq!(books.len(), 100, "exactly Books' per-minute limit reached Books");
    assert_eq!(ok, 99, "the organization look-up took one call");
    assert_eq!(limited, 21);
    // Cached answers are still served while the window is full.
    let hit = get(&sock, "/books/v3/invoices?per_page=1&page=1");
    assert_eq!(hit.status, 200);
    assert_eq!(hit.header("x-zoho-device-cache"), Some("hit"));
    let s = get(&sock, "/_zoho-device/status").json();
    assert_eq!(s["calls_last_minute"]["10234695"], 100, "{s}");
    stop(run);
}

#[test]
fn a_tight_daily_budget_stretches_the_ttl_instead_of_failing() {
    let w = paired(sim_config());
    // Generous budget: a one-second TTL is a one-second TTL.
    {
        let (run, sock) = agent(&w, &["--cache-ttl", "1", "--daily-budget", "10000000"]);
        w.sim.clear_log();
        assert_eq!(
            get(&sock, "/books/v3/items").header("x-zoho-device-cache"),
            Some("miss")
        );
        std::thread::sleep(Duration::from_millis(1500));
        assert_eq!(
            get(&sock, "/books/v3/items").header("x-zoho-device-cache"),
            Some("miss")
        );
        assert_eq!(w.sim.requests_to("/books/v3/items").len(), 2);
        stop(run);
    }
    // A budget of 3 calls a day: the same TTL stretches to what lasts the day. (The
    // organization is looked up again: one of the three calls. The first run's count, kept
    // across restarts, is removed too.)
    std::fs::remove_file(w.path("state/zoho-device/token.json.org")).unwrap();
    std::fs::remove_file(w.path("state/zoho-device/token.json.budget")).unwrap();
    let (run, sock) = agent(&w, &["--cache-ttl", "1", "--daily-budget", "3"]);
    w.sim.clear_log();
    assert_eq!(
        get(&sock, "/books/v3/items").header("x-zoho-device-cache"),
        Some("miss")
    );
    std::thread::sleep(Duration::from_millis(1500));
    let kept = get(&sock, "/books/v3/items");
    assert_eq!(kept.status, 200);
    assert_eq!(kept.header("x-zoho-device-cache"), Some("hit"), "the TTL stretched");
    assert_eq!(w.sim.requests_to("/books/v3/items").len(), 1);
    let s = get(&sock, "/_zoho-device/status").json();
    assert!(s["cache"]["effective_ttl_s"].as_u64().unwrap() > 60, "{s}");
    // The organization look-up and one list were two of the three calls; the third is spent on
    // a new path; after it the budget is spent: cached paths are still served, new ones wait.
    assert_eq!(get(&sock, "/books/v3/contacts").status, 200);
    let refused = get(&sock, "/books/v3/invoices");
    assert_eq!(refused.status, 429, "{refused:?}");
    let wait: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(wait <= 86_400);
    assert_eq!(get(&sock, "/books/v3/items").status, 200);
    let s = get(&sock, "/_zoho-device/status").json();
    assert_eq!(s["budget_left"], 0, "{s}");
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), 0);
    stop(run);
}

#[test]
fn tcp_needs_a_loopback_host_and_a_configured_origin() {
    let w = paired(sim_config());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = w.spawn(&[
        "agent",
        "--display",
        "none",
        "--serve",
        &addr,
        "--serve-origin",
        "http://localhost:8080",
    ]);
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the gateway's port",
    );
    w.sim.clear_log();

    // DNS rebinding: a page on another name that resolves to 127.0.0.1.
    let r = tcp(port, "GET /books/v3/invoices HTTP/1.1\r\nHost: evil.example:8181");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "host_refused");
    let r = tcp(port, "GET /books/v3/invoices HTTP/1.0");
    assert_eq!(r.status, 403, "no Host at all");
    // A page of another origin.
    let r = tcp(
        port,
        &format!("GET /books/v3/invoices HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nOrigin: http://evil.example"),
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "origin_refused");
    assert!(!r.headers.contains_key("access-control-allow-origin"));
    let r = tcp(
        port,
        &format!(
            "OPTIONS /books/v3/invoices HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://evil.example\r\nAccess-Control-Request-Method: GET"
        ),
    );
    assert_eq!(r.status, 403);
    // An <img> or <script> of another site: no Origin, but Sec-Fetch-Site says so.
    let r = tcp(
        port,
        &format!("GET /books/v3/invoices HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nSec-Fetch-Site: cross-site"),
    );
    assert_eq!(r.status, 403);
    assert!(
        w.sim.requests().iter().all(|r| !r.path.starts_with("/books/")),
        "nothing refused reached Books"
    );

    // The configured origin: CORS headers, the preflight, and the answer.
    let r = tcp(
        port,
        &format!(
            "OPTIONS /books/v3/invoices HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://localhost:8080\r\nAccess-Control-Request-Method: GET"
        ),
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, HEAD"));
    let r = tcp(
        port,
        &format!("GET /books/v3/invoices HTTP/1.1\r\nHost: localhost:{port}\r\nOrigin: http://localhost:8080"),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.header("access-control-allow-origin"), Some("http://localhost:8080"));
    // Overlong targets are refused before anything else.
    let long = "a".repeat(5000);
    let r = tcp(
        port,
        &format!("GET /books/v3/invoices?q={long} HTTP/1.1\r\nHost: localhost"),
    );
    assert_eq!(r.status, 414);
    no_secret_in(&w, &[&r]);
    stop(run);

    // Never on the network.
    let out = w.run(&["agent", "--display", "none", "--serve", "0.0.0.0:8181"]);
    out.code(2).stderr_has(&["not a loopback address"]);
}

fn post_json(sock: &Path, target: &str, body: &str) -> Reply {
    let s = UnixStream::connect(sock).expect("the gateway's socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    exchange(
        s,
        &format!("POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"),
        body,
    )
}

#[test]
fn allowed_writes_pass_once_never_repeated_and_refresh_the_modules_cache() {
    let w = paired(sim_config());
    let (run, sock) = agent(&w, &["--serve-allow-writes"]);
    assert_eq!(
        get(&sock, "/books/v3/contacts").header("x-zoho-device-cache"),
        Some("miss")
    );
    assert_eq!(
        get(&sock, "/books/v3/contacts").header("x-zoho-device-cache"),
        Some("hit")
    );
    let made = post_json(&sock, "/books/v3/contacts", r#"{"contact_name":"Gateway Café"}"#);
    assert!((200..300).contains(&made.status), "{made:?}");
    assert_eq!(made.json()["contact"]["contact_name"], "Gateway Café");
    let posts = |w: &World| {
        w.sim
            .requests_to("/books/v3/contacts")
            .into_iter()
            .filter(|r| r.method == "POST")
            .count()
    };
    assert_eq!(posts(&w), 1);
    // The write emptied the module's cache: the new contact is seen at once.
    let after = get(&sock, "/books/v3/contacts");
    assert_eq!(after.header("x-zoho-device-cache"), Some("miss"));
    assert!(after.body.contains("Gateway Café"));

    // A write whose connection is reset after sending may have reached Books: not repeated.
    w.sim.inject(Fault::new("/books/v3/contacts", FaultKind::Reset, 1));
    let lost = post_json(&sock, "/books/v3/contacts", r#"{"contact_name":"Twice?"}"#);
    assert_eq!(lost.status, 502, "{lost:?}");
    assert!(
        lost.json()["message"].as_str().unwrap().contains("not repeated"),
        "{lost:?}"
    );
    assert_eq!(posts(&w), 2, "sent once, never again");
    no_secret_in(&w, &[&made, &after, &lost]);
    stop(run);
    w.assert_no_secret_leaked();
}

#[test]
fn a_401_code_57_is_refreshed_once_through_the_lock_and_answered() {
    // The simulator's token dies after 2 s; the file claims an hour, so only Books' 401 tells.
    let w = paired(sim_config().token_lifetime_s(2));
    let old = outlive_the_access_token(&w);
    let (run, sock) = agent(&w, &[]);
    let r = get(&sock, "/books/v3/organizations");
    assert_eq!(r.status, 200, "{r:?}");
    assert_refreshed_once_and_retried(&w, &old, "/books/v3/organizations");
    no_secret_in(&w, &[&r]);
    stop(run);
    w.assert_no_secret_leaked();
}

/// The DOM of `url` after headless Chromium ran its scripts for a few (virtual) seconds.
fn chromium_dom(profile: &Path, url: &str) -> String {
    let out = chromium(
        profile,
        &["--virtual-time-budget=3000".into(), "--dump-dom".into()],
        url,
    )
    .stderr(std::process::Stdio::null())
    .output()
    .expect("chromium runs");
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn the_example_dashboard_shows_invoices_and_keeps_them_through_an_outage_in_chromium() {
    if chromium_missing("the dashboard test") {
        return;
    }
    let w = paired(sim_config());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let run = w.spawn(&[
        "agent",
        "--display",
        "none",
        "--serve",
        &addr,
        "--cache-ttl",
        "1",
        "--daily-budget",
        "10000000",
    ]);
    wait_until(
        || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "the gateway's port",
    );
    let url = format!("http://127.0.0.1:{port}/?every=600");
    let page = tcp(port, &format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}"));
    assert!(
        page.header("content-security-policy")
            .is_some_and(|c| c.contains("connect-src 'self'"))
    );

    // Paired: the simulator's open invoices, marked live.
    let dom = chromium_dom(&w.path("profile1"), &url);
    assert!(dom.contains("INV-0000"), "no invoice in the dashboard:\n{dom}");
    assert!(dom.contains("Outstanding: "), "{dom}");
    assert!(dom.contains(">live ("), "{dom}");
    assert!(w.sim.requests_to("/books/v3/invoices").len() == 1);

    // Books down: the same invoices, marked stale with their age.
    std::thread::sleep(Duration::from_millis(1500));
    w.sim
        .inject(Fault::new("/books/v3/invoices", FaultKind::Html { status: 503 }, 1000));
    let dom = chromium_dom(&w.path("profile2"), &url);
    assert!(dom.contains("INV-0000"), "the invoices stay up:\n{dom}");
    assert!(dom.contains("stale: Books unreachable, data from"), "{dom}");
    assert!(w.sim.requests_to("/books/v3/invoices").len() > 1, "Books was asked");
    stop(run);
    w.assert_no_secret_leaked();
}

#[test]
fn head_is_a_get_without_the_body_from_the_same_cache() {
    let w = paired(sim_config());
    let (run, sock) = agent(&w, &[]);
    w.sim.clear_log();

    // A miss: Books is asked once (a GET), the answer cached, no body sent.
    let head = unix(&sock, "HEAD", "/books/v3/invoices");
    assert_eq!(head.status, 200, "{head:?}");
    assert_eq!(head.header("x-zoho-device-cache"), Some("miss"));
    assert!(head.body.is_empty(), "{head:?}");
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(len > 0);
    let upstream = w.sim.requests_to("/books/v3/invoices");
    assert_eq!(upstream.len(), 1);
    assert_eq!(upstream[0].method, "GET");

    // The GET after it is a hit of the same length; a HEAD after that too.
    let got = get(&sock, "/books/v3/invoices");
    assert_eq!(got.header("x-zoho-device-cache"), Some("hit"));
    assert_eq!(got.body.len(), len);
    let again = unix(&sock, "HEAD", "/books/v3/invoices");
    assert_eq!(again.header("x-zoho-device-cache"), Some("hit"));
    assert!(again.body.is_empty());
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), 1);

    // The status page and the dashboard answer HEAD too.
    for (target, kind) in [("/_zoho-device/status", "application/json"), ("/", "text/html")] {
        let r = unix(&sock, "HEAD", target);
        assert_eq!(r.status, 200, "{target}: {r:?}");
        assert!(r.body.is_empty(), "{target}");
        assert!(r.header("content-type").is_some_and(|c| c.starts_with(kind)), "{r:?}");
    }

    // On one kept-alive connection a HEAD's answer ends with its head: the next answer follows.
    let mut s = UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(
        b"HEAD /books/v3/invoices HTTP/1.1\r\nHost: localhost\r\n\r\n\
          GET /books/v3/invoices HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (first, second) = text.split_once("\r\n\r\n").unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the second answer right after the HEAD's head: {text}"
    );
    let second = parse_reply(second.as_bytes());
    assert_eq!(second.body, got.body);
    no_secret_in(&w, &[&head, &got, &again, &second]);
    stop(run);
}

#[test]
fn the_days_budget_count_survives_an_agent_restart() {
    let w = paired(sim_config());
    let kept = w.path("state/zoho-device/token.json.budget");
    // A link planted where the count is kept is neither read (it says the day is spent) nor
    // written through.
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 86_400;
    let planted = format!("{{\"version\":1,\"day\":{today},\"used\":3}}\n");
    let elsewhere = write_file(&w.path("elsewhere.json"), &planted);
    std::os::unix::fs::symlink(&elsewhere, &kept).unwrap();

    let (run, sock) = agent(&w, &["--daily-budget", "3"]);
    w.sim.clear_log();
    // The organization look-up and the list: two of the three calls.
    assert_eq!(get(&sock, "/books/v3/items").status, 200);
    let s = get(&sock, "/_zoho-device/status").json();
    assert_eq!(s["calls_today"], 2, "{s}");
    stop(run);
    let meta = std::fs::symlink_metadata(&kept).unwrap();
    assert!(meta.file_type().is_file(), "the link was replaced by a file");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::read_to_string(&elsewhere).unwrap(),
        planted,
        "nothing written through the link"
    );

    // Restarted (an upgrade, a reboot): the day's two calls are still counted.
    let (run, sock) = agent(&w, &["--daily-budget", "3"]);
    let s = get(&sock, "/_zoho-device/status").json();
    assert_eq!(s["calls_today"], 2, "{s}");
    assert_eq!(s["budget_left"], 1, "{s}");
    assert_eq!(get(&sock, "/books/v3/contacts").status, 200, "the third call");
    let refused = get(&sock, "/books/v3/invoices");
    assert_eq!(refused.status, 429, "the budget is spent: {refused:?}");
    assert_eq!(w.sim.requests_to("/books/v3/invoices").len(), 0);
    stop(run);
}

/// `bytes` as they are on a fresh connection to `sock`; the answer read to the end (the
/// gateway closes a connection whose request it could not read).
fn raw(sock: &Path, bytes: &[u8]) -> Reply {
    let mut s = UnixStream::connect(sock).expect("the gateway's socket accepts");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    // The gateway may answer and close before a long head is all written: what it read is
    // enough to refuse it.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_reply(&out)
}

#[test]
fn requests_the_gateway_cannot_frame_are_refused_and_never_reach_books() {
    let w = paired(sim_config());
    let (run, sock) = agent(&w, &[]);
    w.sim.clear_log();
    let head = "GET /books/v3/invoices HTTP/1.1\r\nHost: localhost\r\n";
    let cases: [(&str, Vec<u8>, u16); 10] = [
        // Refused on its head, before a byte of the body is read or a 100 Continue sent.
        (
            "a write to the read-only gateway",
            b"POST /books/v3/invoices HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Type: application/json\r\nContent-Length: 500000\r\n\r\n".to_vec(),
            405,
        ),
        ("a GET with a body", format!("{head}Content-Length: 3\r\n\r\nabc").into_bytes(), 400),
        (
            "two Host headers",
            b"GET /books/v3/invoices HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n".to_vec(),
            400,
        ),
        (
            "an absolute URL",
            b"GET http://evil.example/books/v3/invoices HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        // No chunked bodies: where the next request starts would be this reader's guess.
        (
            "chunked",
            format!("{head}Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n").into_bytes(),
            411,
        ),
        (
            "two lengths",
            format!("{head}Content-Length: 0\r\nContent-Length: 5\r\n\r\n").into_bytes(),
            400,
        ),
        // Content-Length is digits only (RFC 9110), not what Rust's integer parser also takes.
        (
            "signed length",
            format!("{head}Content-Length: +0\r\n\r\n").into_bytes(),
            400,
        ),
        (
            "empty length",
            format!("{head}Content-Length: \r\n\r\n").into_bytes(),
            400,
        ),
        (
            "body over 1 MiB",
            format!("{head}Content-Length: 2000000\r\n\r\n").into_bytes(),
            413,
        ),
        (
            "head over 16 KiB",
            format!("{head}X-Filler: {}\r\n\r\n", "a".repeat(20 * 1024)).into_bytes(),
            431,
        ),
    ];
    for (what, bytes, status) in cases {
        let reply = raw(&sock, &bytes);
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert!(reply.json()["error"].is_string(), "{what}: {reply:?}");
    }
    assert!(
        w.sim.requests_to("/books/v3/invoices").is_empty(),
        "a request the gateway could not read reached Books"
    );
    // The gateway still serves.
    assert_eq!(get(&sock, "/books/v3/invoices").status, 200);
    stop(run);
}

#[test]
fn writes_on_a_loopback_port_are_served_with_a_warning_that_every_local_user_can_write() {
    let w = paired(sim_config());
    let start = |extra: &[&str]| {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut args = vec!["agent", "--display", "none", "--serve", &addr];
        args.extend_from_slice(extra);
        let run = w.spawn(&args);
        wait_until(
            || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(),
            "the gateway's port",
        );
        run.signal("TERM");
        let out = run.wait();
        out.code(0);
        out.stderr
    };
    let read_only = start(&[]);
    assert!(!read_only.contains("every local user"), "{read_only}");
    let writes = start(&["--serve-allow-writes"]);
    assert!(
        writes.contains("is open to every local user") && writes.contains("unix: socket"),
        "{writes}"
    );
}

#[test]
fn stopping_does_not_wait_for_a_refresh_queued_on_the_lock() {
    // Books answers 401 code 57; the gateway's refresh then waits for the token file's lock,
    // which another process (this test) holds. SIGTERM must not wait out that minute.
    let w = paired(sim_config().token_lifetime_s(2));
    outlive_the_access_token(&w);
    let (run, sock) = agent(&w, &[]);
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(w.token_path().with_file_name("token.json.lock"))
        .expect("the lock file exists after pairing");
    lock.lock().unwrap();
    let client = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&sock).unwrap();
        let _ = s.write_all(b"GET /books/v3/organizations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
    });
    wait_until(|| w.sim.requests_to("/books/v3/organizations").len() == 1, "Books' 401");
    std::thread::sleep(Duration::from_millis(500)); // the refresh is waiting for the lock
    assert_eq!(w.sim.stats().refreshes, 0, "the refresh waits for the lock");
    let stopping = Instant::now();
    run.signal("TERM");
    run.wait().code(0);
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "the agent took {:?} to stop behind a refresh waiting for the lock",
        stopping.elapsed()
    );
    drop(lock);
    client.join().unwrap();
}
