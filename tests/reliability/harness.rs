//! The reliability suite's helpers over the shared harness (tests/common): short timeouts and
//! retry delays, runs without a network, scripted HTTP servers, hand-made token files, a seeded
//! generator.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

pub use crate::common::*;
pub use zoho_device_sim::Simulator;

/// The HTTP timeout given to the binary (hidden test variable `ZOHO_DEVICE_HTTP_TIMEOUT_MS`).
pub const HTTP_TIMEOUT_MS: u64 = 700;
/// The first retry delay given to the binary (hidden test variable `ZOHO_DEVICE_BACKOFF_MS`).
pub const BACKOFF_MS: u64 = 100;
/// `login` with JSON events and no display.
pub const LOGIN: &[&str] = &["login", "--events", "json", "--display", "none"];

impl Output {
    /// The `error:` line of stderr (the user-facing message), or "".
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .map(|l| l.trim_start_matches("error: ").to_string())
            .unwrap_or_default()
    }
}

impl World {
    /// Writes a token file by hand.
    pub fn write_token(&self, v: &Value) {
        let p = self.token_path();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    /// Runs `zoho-device ARGS` in a network namespace of its own (`unshare --net`): only a
    /// downed loopback, so name resolution fails at once and no packet leaves the machine.
    #[track_caller]
    pub fn run_offline(&self, args: &[&str]) -> Output {
        let mut c = self.program("unshare");
        c.arg("--net").arg(BIN).args(args);
        self.spawn_command(c, args).wait()
    }
}

/// Whether `unshare --net` works here (root, or user namespaces allowed).
pub fn can_unshare_net() -> bool {
    Command::new("unshare")
        .args(["--net", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A seeded xorshift generator (the suite is deterministic for a seed).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator; `ZOHO_DEVICE_TEST_SEED` overrides `seed` to replay a failure.
    pub fn new(seed: u64) -> Rng {
        let seed = std::env::var("ZOHO_DEVICE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(seed);
        Rng(seed | 1)
    }

    /// The next number.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

// ---------------------------------------------------------------------------------------------
// A scripted HTTP server: answers each request with what a closure says, and records requests.

/// One request as the scripted server read it.
#[derive(Clone, Debug)]
pub struct Req {
    /// Path with query.
    pub target: String,
}

impl Req {
    /// The path without query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// What to answer.
pub enum Reply {
    /// Status, extra header lines, body.
    Http(u16, Vec<String>, Vec<u8>),
    /// A 200 whose body streams `n` bytes of `x` without end in sight (closed when the client goes).
    Endless(usize),
}

impl Reply {
    /// 200 with a JSON body.
    pub fn json(v: &Value) -> Reply {
        Reply::Http(
            200,
            vec!["Content-Type: application/json".into()],
            v.to_string().into_bytes(),
        )
    }
}

/// A local HTTP/1.1 server on 127.0.0.1 answering from a script; stops when dropped.
pub struct Scripted {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    log: Arc<Mutex<Vec<Req>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

type Script = dyn Fn(&Req, usize) -> Reply + Send + Sync;

impl Scripted {
    /// Starts a server; `script(request, index)` decides each answer.
    pub fn start(script: impl Fn(&Req, usize) -> Reply + Send + Sync + 'static) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (l2, s2) = (log.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (log, script) = (l2.clone(), script.clone());
                std::thread::spawn(move || serve(conn, &log, &*script));
            }
        });
        Scripted {
            url: format!("http://127.0.0.1:{port}"),
            log,
            stop,
            thread: Some(thread),
            port,
        }
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(mut conn: TcpStream, log: &Mutex<Vec<Req>>, script: &Script) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut buf = Vec::new();
        let mut byte = [0u8; 1];
        while !buf.ends_with(b"\r\n\r\n") {
            match conn.read(&mut byte) {
                Ok(1) => buf.push(byte[0]),
                _ => return,
            }
            if buf.len() > 64 * 1024 {
                return;
            }
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let len = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            })
            .unwrap_or(0);
        let mut body = vec![0u8; len.min(1 << 20)];
        if conn.read_exact(&mut body).is_err() {
            return;
        }
        let target = head.lines().next().unwrap_or("").split(' ').nth(1).unwrap_or("");
        let req = Req {
            target: target.to_string(),
        };
        let index = {
            let mut l = log.lock().unwrap();
            l.push(req.clone());
            l.len() - 1
        };
        match script(&req, index) {
            Reply::Http(status, headers, body) => {
                let mut out = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n", body.len());
                for h in headers {
                    out.push_str(&h);
                    out.push_str("\r\n");
                }
                out.push_str("\r\n");
                let mut bytes = out.into_bytes();
                bytes.extend_from_slice(&body);
                if conn.write_all(&bytes).is_err() {
                    return;
                }
            }
            Reply::Endless(n) => {
                let _ = conn.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n{\"x\":\"",
                );
                let chunk = vec![b'x'; 16 * 1024];
                let mut sent = 0;
                while sent < n {
                    if conn.write_all(&chunk).is_err() {
                        return;
                    }
                    sent += chunk.len();
                }
                return;
            }
        }
    }
}

/// A minimal valid device-code reply (Zoho units: ms) for scripted servers.
pub fn code_reply(base: &str) -> Value {
    serde_json::json!({
        "user_code": "ABCD-1234",
        "device_code": "1004.devcode-scripted-0123456789",
        "verification_url": format!("{base}/oauth/v3/device"),
        "interval": 200,
        "expires_in": 20_000,
    })
}

/// A token file for a token minted by `accounts` (expiring in `expires_in_s`).
pub fn token_file(accounts: &str, api_domain: &str, expires_at_ms: u64) -> Value {
    serde_json::json!({
        "version": 1,
        "profile": "zoho",
        "client_id": CLIENT_ID,
        "access_token": "1000.handmade-access-token-abcdef",
        "refresh_token": "1000.handmade-refresh-token-abcdef",
        "api_domain": api_domain,
        "accounts_url": accounts,
        "location": "us",
        "scope": "ZohoBooks.settings.READ",
        "token_type": "Bearer",
        "expires_at": expires_at_ms,
        "paired_at": now_ms(),
        "refreshed_at": now_ms(),
    })
}

/// A token reply with this `api_domain`.
pub fn token_reply(api_domain: &str) -> serde_json::Value {
    serde_json::json!({
        "access_token": "1000.scripted-access-token-0123456789",
        "refresh_token": "1000.scripted-refresh-token-0123456789",
        "api_domain": api_domain,
        "token_type": "Bearer",
        "expires_in": 3600,
    })
}
