//! Test harness: a simulator with short timings, the built binary run with a clean
//! environment in a temporary HOME, and helpers to read its output and JSON events.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

#[path = "../common/env.rs"]
mod common_env;
pub use common_env::refusing_url;
pub use zoho_device_sim::{Fault, FaultKind, SimConfig, Simulator};

/// The test client (registered in `us` unless a test says otherwise).
pub const CLIENT_ID: &str = "1004.TESTCLIENT";
/// Its secret. Long and distinctive so a leak anywhere is found by a substring search.
pub const SECRET: &str = "sEcReT-4f9a2b7c-never-print-me";
/// The default user.
pub const USER: &str = "dev.user@example.com";
/// Longest a single command may run before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(40);

/// The simulator configuration most tests start from: US and EU, the test client known in
/// `us`, a user in `us`, 200 ms poll interval (the program polls at least every second), a
/// minute-long code, and approval on the first poll.
pub fn sim_config() -> SimConfig {
    SimConfig::new()
        .locations(&["us", "eu"])
        .client(CLIENT_ID, SECRET, &["us"])
        .user(USER, "us")
        .interval_ms(200)
        .code_lifetime_ms(60_000)
}

/// As [`sim_config`], approving every code on its first poll.
pub fn auto_config() -> SimConfig {
    sim_config().auto_approve_after_polls(1)
}

/// What a finished run left behind.
#[derive(Debug, Clone)]
pub struct Output {
    /// The arguments (for failure messages).
    pub args: Vec<String>,
    /// Exit status (`None`: killed by a signal).
    pub code: Option<i32>,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Asserts the exit code, printing the output when it differs.
    #[track_caller]
    pub fn code(&self, want: i32) -> &Self {
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

    /// Asserts stderr contains every needle.
    #[track_caller]
    pub fn stderr_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stderr.contains(n),
                "zoho-device {:?}: stderr lacks {n:?}\n--- stderr\n{}",
                self.args,
                self.stderr
            );
        }
        self
    }

    /// Asserts stdout contains every needle.
    #[track_caller]
    pub fn stdout_has(&self, needles: &[&str]) -> &Self {
        for n in needles {
            assert!(
                self.stdout.contains(n),
                "zoho-device {:?}: stdout lacks {n:?}\n--- stdout\n{}",
                self.args,
                self.stdout
            );
        }
        self
    }

    /// The JSON events on stdout, in order.
    pub fn events(&self) -> Vec<Value> {
        parse_events(&self.stdout)
    }

    /// The names of the JSON events, in order.
    pub fn event_names(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["event"].as_str().unwrap_or("?").to_string())
            .collect()
    }

    /// The first event named `name`.
    #[track_caller]
    pub fn event(&self, name: &str) -> Value {
        self.events()
            .into_iter()
            .find(|e| e["event"] == name)
            .unwrap_or_else(|| panic!("no {name:?} event in\n{}\n--- stderr\n{}", self.stdout, self.stderr))
    }
}

/// Every stdout line that is a JSON object with an `event` field. Any other line on stdout of
/// `--events json` is a defect, so it fails the test.
#[track_caller]
pub fn parse_events(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l:?}"));
            assert!(v["event"].is_string(), "JSON line without an event name: {l}");
            v
        })
        .collect()
}

/// One test's world: a simulator, a temporary HOME, and the environment of the binary.
pub struct World {
    /// The simulator.
    pub sim: Simulator,
    /// The temporary HOME (also holds XDG dirs and TMPDIR).
    pub home: tempfile::TempDir,
    /// The environment given to the binary (nothing else is inherited).
    pub env: BTreeMap<String, String>,
    /// Every run's output, for [`World::assert_no_secret_leaked`].
    pub outputs: Mutex<Vec<Output>>,
}

impl World {
    /// A world with a simulator built from `config`, configured for the test client in `us`.
    pub fn new(config: SimConfig) -> World {
        let sim = Simulator::spawn(config).expect("the simulator starts");
        let home = tempfile::tempdir().expect("a temporary directory");
        let env = common_env::isolated_env(home.path(), &sim.accounts_url("us"), CLIENT_ID, SECRET);
        World {
            sim,
            home,
            env,
            outputs: Mutex::new(Vec::new()),
        }
    }

    /// Sets (or with `None` removes) an environment variable of the binary.
    pub fn set(&mut self, key: &str, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.env.insert(key.into(), v.into()),
            None => self.env.remove(key),
        };
        self
    }

    /// The default token file (under `$XDG_STATE_HOME`).
    pub fn token_path(&self) -> PathBuf {
        self.home.path().join("state/zoho-device/token.json")
    }

    /// The token file's bytes (panics when missing).
    #[track_caller]
    pub fn token_bytes(&self) -> Vec<u8> {
        std::fs::read(self.token_path()).expect("the token file exists")
    }

    /// The token file as JSON.
    #[track_caller]
    pub fn token_json(&self) -> Value {
        serde_json::from_slice(&self.token_bytes()).expect("the token file is JSON")
    }

    /// Rewrites fields of the token file (keeping its mode).
    pub fn edit_token(&self, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut v = self.token_json();
        edit(v.as_object_mut().unwrap());
        std::fs::write(self.token_path(), serde_json::to_vec_pretty(&v).unwrap()).unwrap();
    }

    /// A path in the temporary HOME.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.home.path().join(rel)
    }

    /// Runs `zoho-device ARGS` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        self.spawn(args).wait()
    }

    /// Starts `zoho-device ARGS`; read its events while it runs.
    pub fn spawn(&self, args: &[&str]) -> Running<'_> {
        Running::start(self, args)
    }

    /// Pairs with auto-approval expected (the simulator must approve on its own); returns the
    /// output of `login --events json --display none`.
    #[track_caller]
    pub fn login(&self) -> Output {
        let out = self.run(&["login", "--events", "json", "--display", "none"]);
        out.code(0);
        assert!(self.token_path().exists());
        out
    }

    /// The secrets this world has seen: the client secret, every device code the program
    /// polled with, every refresh and access token in the simulator's view and in the file.
    pub fn secrets(&self) -> Vec<String> {
        let mut s = vec![SECRET.to_string()];
        for r in self.sim.requests() {
            for name in ["code", "refresh_token", "token", "client_secret"] {
                if let Some(v) = r.param(name) {
                    s.push(v.to_string());
                }
            }
            if let Some(auth) = r.header("authorization")
                && let Some(t) = auth.strip_prefix("Zoho-oauthtoken ")
            {
                s.push(t.trim().to_string());
            }
        }
        s.extend(self.sim.refresh_tokens(USER));
        if let Ok(bytes) = std::fs::read(self.token_path())
            && let Ok(v) = serde_json::from_slice::<Value>(&bytes)
        {
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

    /// No secret in any output so far (except `token`'s stdout, its job), nor in any URL the
    /// simulator saw.
    #[track_caller]
    pub fn assert_no_secret_leaked(&self) {
        let secrets = self.secrets();
        for out in self.outputs.lock().unwrap().iter() {
            let token_cmd = out.args.iter().any(|a| a == "token");
            for s in &secrets {
                assert!(
                    !out.stderr.contains(s.as_str()),
                    "secret {s:?} on stderr of {:?}:\n{}",
                    out.args,
                    out.stderr
                );
                if !token_cmd {
                    assert!(
                        !out.stdout.contains(s.as_str()),
                        "secret {s:?} on stdout of {:?}:\n{}",
                        out.args,
                        out.stdout
                    );
                }
            }
        }
        for r in self.sim.requests() {
            let q = r.query.clone().unwrap_or_default();
            for s in &secrets {
                assert!(
                    !q.contains(s.as_str()),
                    "secret {s:?} in the URL of {} {}?{q}",
                    r.method,
                    r.path
                );
            }
            for name in ["client_secret", "code", "refresh_token", "token"] {
                assert!(
                    !q.split('&').any(|kv| kv.starts_with(&format!("{name}="))),
                    "{name} in the query of {} {}?{q}",
                    r.method,
                    r.path
                );
            }
        }
    }
}

/// A running `zoho-device`.
pub struct Running<'w> {
    world: &'w World,
    args: Vec<String>,
    child: Option<Child>,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: Option<JoinHandle<String>>,
    stderr_live: Arc<Mutex<String>>,
    started: Instant,
}

impl<'w> Running<'w> {
    fn start(world: &'w World, args: &[&str]) -> Running<'w> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_zoho-device"))
            .env_clear()
            .envs(&world.env)
            .current_dir(world.home.path())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (tx, lines) = channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr_live = Arc::new(Mutex::new(String::new()));
        let live = stderr_live.clone();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match stderr_pipe.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => live.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n])),
                }
            }
            live.lock().unwrap().clone()
        });
        Running {
            world,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: Some(child),
            lines,
            seen: Vec::new(),
            stderr: Some(stderr),
            stderr_live,
            started: Instant::now(),
        }
    }

    /// Waits for the next JSON event named `name` (earlier events are kept for the output).
    #[track_caller]
    pub fn event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<Value>(&line)
                        && v["event"] == name
                    {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    let stderr = self.stderr_live.lock().unwrap().clone();
                    panic!(
                        "no {name:?} event from zoho-device {:?} within {timeout:?}\n--- stdout\n{}\n--- stderr\n{stderr}",
                        self.args,
                        self.seen.join("\n")
                    );
                }
            }
        }
    }

    /// Waits for the exit (killing it after a generous timeout) and returns the output.
    #[track_caller]
    /// Sends signal `sig` (e.g. `INT`) to the running program.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("still running").id();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    pub fn wait(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = self.started + RUN_TIMEOUT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let elapsed = self.started.elapsed();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self.stderr.take().unwrap().join().unwrap_or_default();
        let mut stdout = self.seen.join("\n");
        if !stdout.is_empty() {
            stdout.push('\n');
        }
        let out = Output {
            args: self.args.clone(),
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
            elapsed,
        };
        self.world.outputs.lock().unwrap().push(out.clone());
        assert!(
            status.is_some(),
            "zoho-device {:?} ran longer than {RUN_TIMEOUT:?} and was killed\n--- stdout\n{}\n--- stderr\n{}",
            out.args,
            out.stdout,
            out.stderr
        );
        out
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Raw stdout bytes of `zoho-device ARGS` (for `token`, whose exact bytes matter).
pub fn run_raw(world: &World, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_zoho-device"))
        .env_clear()
        .envs(&world.env)
        .current_dir(world.home.path())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    world.outputs.lock().unwrap().push(Output {
        args: args.iter().map(|s| s.to_string()).collect(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: stderr.clone(),
        elapsed: Duration::ZERO,
    });
    (out.status.code(), out.stdout, stderr)
}

/// Polls the simulator's token endpoint directly, as a second device would (used to provoke
/// `slow_down`: a poll of the same code restarts the simulator's interval clock).
pub fn poll_directly(accounts_url: &str, device_code: &str) -> String {
    use std::io::Write;
    let addr = accounts_url.strip_prefix("http://").unwrap();
    let body = format!("client_id={CLIENT_ID}&client_secret={SECRET}&grant_type=device_token&code={device_code}");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST /oauth/v3/device/token HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    reply
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// Writes `text` to `path` (creating parents) and returns the path.
pub fn write_file(path: &Path, text: &str) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// A short pause for the simulator's clock.
pub fn sleep_ms(ms: u64) {
    std::thread::sleep(Duration::from_millis(ms));
}

/// Seconds.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl World {
    /// Pairs through a simulator without auto-approval: waits for the code, approves it.
    #[track_caller]
    pub fn pair_by_hand(&self) -> Output {
        let mut run = self.spawn(&["login", "--events", "json", "--display", "none"]);
        let code = run.event("code", secs(10));
        assert!(self.sim.approve(code["user_code"].as_str().unwrap()));
        let out = run.wait();
        out.code(0);
        out
    }
}
