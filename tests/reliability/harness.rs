//! The reliability suite's own small harness: a simulator (or a scripted server) on loopback, a
//! temporary HOME, and the built binary run with a clean environment and a hard time limit.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../common/env.rs"]
mod common_env;
pub use zoho_device_sim::{Fault, FaultKind, SimConfig, Simulator};

/// The test client.
pub const CLIENT_ID: &str = "1004.RELIABILITY";
/// Its secret: long and distinctive, so a leak is found by a substring search.
pub const SECRET: &str = "rel-sEcReT-9d1e7a55-must-never-show";
/// The default user.
pub const USER: &str = "kiosk.owner@example.com";
/// The HTTP timeout given to the binary (hidden test variable `ZOHO_DEVICE_HTTP_TIMEOUT_MS`).
pub const HTTP_TIMEOUT_MS: u64 = 700;
/// The first retry delay given to the binary (hidden test variable `ZOHO_DEVICE_BACKOFF_MS`).
pub const BACKOFF_MS: u64 = 100;
/// Longest a single command may run.
const RUN_LIMIT: Duration = Duration::from_secs(40);

/// Short timings, auto-approval on the first poll, no throttle in the way.
pub fn sim_config() -> SimConfig {
    SimConfig::new()
        .locations(&["us", "eu"])
        .client(CLIENT_ID, SECRET, &["us"])
        .user(USER, "us")
        .interval_ms(200)
        .code_lifetime_ms(60_000)
        .auto_approve_after_polls(1)
}

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// Arguments.
    pub args: Vec<String>,
    /// Exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
    /// Wall time.
    pub elapsed: Duration,
}

impl Output {
    /// Asserts the exit code (and that nothing panicked).
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
        self.no_panic();
        assert_eq!(
            self.code,
            Some(want),
            "zoho-device {:?}: exit {:?}, wanted {want}\n--- stdout\n{}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts no panic: no exit 101, no "panicked" on stderr, not killed by a signal.
    #[track_caller]
    pub fn no_panic(&self) -> &Self {
        assert!(
            self.code.is_some() && self.code != Some(101) && !self.stderr.contains("panicked"),
            "zoho-device {:?} panicked or died: exit {:?}\n--- stderr\n{}",
            self.args,
            self.code,
            self.stderr
        );
        self
    }

    /// Asserts stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Self {
        assert!(
            self.stderr.contains(needle),
            "zoho-device {:?}: stderr lacks {needle:?}\n--- stderr\n{}",
            self.args,
            self.stderr
        );
        self
    }

    /// The `error:` line of stderr (the user-facing message), or "".
    pub fn error_line(&self) -> String {
        self.stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .map(|l| l.trim_start_matches("error: ").to_string())
            .unwrap_or_default()
    }
}

/// One test's world: a server, a temporary HOME, the binary's environment.
pub struct World {
    /// The simulator (absent for worlds around a scripted server).
    pub sim: Option<Simulator>,
    /// Temporary HOME.
    pub home: tempfile::TempDir,
    /// The binary's whole environment.
    pub env: BTreeMap<String, String>,
    /// Every run's output, for the secret checks.
    pub outputs: Mutex<Vec<Output>>,
}

impl World {
    /// A world around a simulator built from `config`.
    pub fn new(config: SimConfig) -> World {
        let sim = Simulator::spawn(config).expect("the simulator starts");
        let url = sim.accounts_url("us");
        let mut w = World::bare(&url);
        w.sim = Some(sim);
        w
    }

    /// A world whose accounts server is `accounts_url` (a scripted server, a closed port, …).
    pub fn bare(accounts_url: &str) -> World {
        let home = tempfile::tempdir().expect("a temporary directory");
        let mut env = common_env::isolated_env(home.path(), accounts_url, CLIENT_ID, SECRET);
        env.insert("ZOHO_DEVICE_HTTP_TIMEOUT_MS".into(), HTTP_TIMEOUT_MS.to_string());
        env.insert("ZOHO_DEVICE_BACKOFF_MS".into(), BACKOFF_MS.to_string());
        World {
            sim: None,
            home,
            env,
            outputs: Mutex::new(Vec::new()),
        }
    }

    /// The simulator.
    pub fn sim(&self) -> &Simulator {
        self.sim.as_ref().expect("this world has a simulator")
    }

    /// Sets or removes an environment variable of the binary.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.env.insert(key.into(), v.into()),
            None => self.env.remove(key),
        };
        self
    }

    /// The token file.
    pub fn token_path(&self) -> PathBuf {
        self.home.path().join("state/zoho-device/token.json")
    }

    /// The token file's bytes, or empty when missing.
    pub fn token_bytes(&self) -> Vec<u8> {
        std::fs::read(self.token_path()).unwrap_or_default()
    }

    /// The token file as JSON.
    #[track_caller]
    pub fn token_json(&self) -> Value {
        serde_json::from_slice(&self.token_bytes()).expect("the token file is JSON")
    }

    /// Rewrites fields of the token file.
    pub fn edit_token(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut v = self.token_json();
        edit(v.as_object_mut().unwrap());
        std::fs::write(self.token_path(), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// Writes a token file by hand.
    pub fn write_token(&self, v: &Value) {
        let p = self.token_path();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    }

    /// A command ready to run the binary in this world.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_zoho-device"));
        c.env_clear()
            .envs(&self.env)
            .current_dir(self.home.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        c
    }

    /// Runs `zoho-device ARGS` to completion (killed past a hard limit: a failure).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.command(args), args)
    }

    /// Runs `zoho-device ARGS` in a network namespace of its own (`unshare --net`): only a
    /// downed loopback, so name resolution fails at once and no packet leaves the machine.
    #[track_caller]
    pub fn run_offline(&self, args: &[&str]) -> Output {
        let mut c = Command::new("unshare");
        c.arg("--net")
            .arg(env!("CARGO_BIN_EXE_zoho-device"))
            .env_clear()
            .envs(&self.env)
            .current_dir(self.home.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        self.run_with(c, args)
    }

    #[track_caller]
    fn run_with(&self, mut command: Command, args: &[&str]) -> Output {
        let started = Instant::now();
        let child = command.spawn().expect("the binary starts");
        let out = wait_output(child, args, started, RUN_LIMIT);
        self.outputs.lock().unwrap().push(out.clone());
        assert!(
            out.code.is_some(),
            "zoho-device {args:?} was killed after {RUN_LIMIT:?}\n--- stderr\n{}",
            out.stderr
        );
        out
    }

    /// Pairs through the simulator (auto-approval); asserts success.
    #[track_caller]
    pub fn login(&self) -> Output {
        let out = self.run(&["login", "--events", "json", "--display", "none"]);
        out.code(0);
        assert!(self.token_path().exists());
        out
    }

    /// Every secret this world has seen (client secret, device codes, tokens).
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![SECRET.to_string()];
        if let Some(sim) = &self.sim {
            for r in sim.requests() {
                for name in ["code", "refresh_token", "token", "client_secret"] {
                    if let Some(v) = r.param(name) {
                        s.push(v.to_string());
                    }
                }
                if let Some(t) = r
                    .header("authorization")
                    .and_then(|a| a.strip_prefix("Zoho-oauthtoken "))
                {
                    s.push(t.trim().to_string());
                }
            }
            s.extend(sim.refresh_tokens(USER));
        }
        if let Ok(v) = serde_json::from_slice::<Value>(&self.token_bytes()) {
            for k in ["access_token", "refresh_token"] {
                if let Some(t) = v[k].as_str() {
                    s.push(t.to_string());
                }
            }
        }
        s.retain(|x| x.len() >= 8);
        s.sort();
        s.dedup();
        s
    }
}

fn wait_output(mut child: Child, args: &[&str], started: Instant, limit: Duration) -> Output {
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: status.and_then(|s| s.code()),
        stdout: String::from_utf8_lossy(&t_out.join().unwrap_or_default()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap_or_default()).into_owned(),
        elapsed: started.elapsed(),
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

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
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
    /// Method.
    pub method: String,
    /// Path with query.
    pub target: String,
    /// Raw head (request line and headers).
    pub head: String,
    /// Body.
    pub body: String,
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
        let mut first = head.lines().next().unwrap_or("").split(' ');
        let req = Req {
            method: first.next().unwrap_or("").to_string(),
            target: first.next().unwrap_or("").to_string(),
            head: head.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
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
