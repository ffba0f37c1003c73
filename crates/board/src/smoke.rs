//! Smoke test of a board binary: run it under qemu-user with the board's CPU model against the
//! Zoho simulator running on the host, and report each step.
//!
//! Steps: `--version`; `demo` must refuse (the simulator never ships to a device); then, once
//! the binary has a `login` subcommand and the workspace has a `zoho-device-sim` binary,
//! `login --events json` (the simulator auto-approves after one poll) → `token` →
//! `books organizations`. Steps that cannot run yet are reported as skipped
//! with the reason, so the same command works while the rest of the project is being written.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use std::{env, fs};

use crate::board::{Board, Libc};
use crate::build::Workspace;

/// The simulator's client, registered by `zoho-device-sim` by default.
pub const SIM_CLIENT_ID: &str = "1004.SIMCLIENT";
/// The simulator client's secret.
pub const SIM_CLIENT_SECRET: &str = "sim-secret";
/// The simulator binary.
pub const SIM_BINARY: &str = "zoho-device-sim";

/// How one step ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It did what it should; the detail says what was seen.
    Passed(String),
    /// It did not; the detail says why.
    Failed(String),
    /// It could not run yet; the detail says what is missing.
    Skipped(String),
}

/// One reported step.
#[derive(Clone, Debug)]
pub struct Step {
    /// What was run (`--version`, `login`, ...).
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How long it took.
    pub elapsed: Duration,
}

impl Step {
    /// One line for the terminal.
    pub fn line(&self) -> String {
        let (tag, detail) = match &self.outcome {
            Outcome::Passed(d) => ("ok  ", d),
            Outcome::Failed(d) => ("FAIL", d),
            Outcome::Skipped(d) => ("skip", d),
        };
        format!(
            "  {tag}  {:<22} {:>6.1} s  {detail}",
            self.name,
            self.elapsed.as_secs_f64()
        )
    }
}

/// Smoke options.
#[derive(Clone, Debug, Default)]
pub struct SmokeOptions {
    /// musl or glibc build.
    pub libc: Libc,
    /// The binary to run (default: the board's built artefact).
    pub binary: Option<PathBuf>,
    /// The simulator binary (default: built from the workspace when it has one).
    pub sim: Option<PathBuf>,
    /// Only `--version`.
    pub version_only: bool,
}

/// Runs the steps for `board`; the caller decides what a failure means.
pub fn smoke(ws: &Workspace, board: &Board, opts: &SmokeOptions) -> Vec<Step> {
    let mut steps = Vec::new();
    let target = board.target(opts.libc);
    let Some(binary) = opts.binary.clone().or_else(|| ws.artifact(target)) else {
        steps.push(Step {
            name: "find binary".to_owned(),
            outcome: Outcome::Failed(format!(
                "no binary for {target}: run `cargo board build --board {}` first",
                board.name
            )),
            elapsed: Duration::ZERO,
        });
        return steps;
    };
    let qemu = board.qemu_command(opts.libc);
    if crate::toolchain::which(&qemu[0]).is_none() {
        steps.push(Step {
            name: "find qemu".to_owned(),
            outcome: Outcome::Failed(format!("{} not found: apt-get install qemu-user-static", qemu[0])),
            elapsed: Duration::ZERO,
        });
        return steps;
    }
    let scratch = scratch_dir(board, opts.libc);
    let runner = Runner {
        qemu,
        binary,
        env: base_env(&scratch),
    };

    // 1. --version
    let started = Instant::now();
    let version = runner.run(&["--version"], &[], Duration::from_secs(60));
    let outcome = match &version {
        Ok(out) if out.success && out.stdout.contains("zoho-device") => Outcome::Passed(out.stdout.trim().to_owned()),
        Ok(out) => Outcome::Failed(out.summary()),
        Err(e) => Outcome::Failed(e.clone()),
    };
    let version_ok = matches!(outcome, Outcome::Passed(_));
    steps.push(Step {
        name: format!("--version ({})", board.qemu_cpu),
        outcome,
        elapsed: started.elapsed(),
    });
    if !opts.version_only && version_ok {
        steps.push(no_simulator(&runner));
    }
    const FLOW: [&str; 4] = ["login", "token", "books organizations", "gateway (--serve)"];
    let skip_flow = |steps: &mut Vec<Step>, why: &str| {
        for name in FLOW {
            steps.push(Step {
                name: name.to_owned(),
                outcome: Outcome::Skipped(why.to_owned()),
                elapsed: Duration::ZERO,
            });
        }
    };
    if opts.version_only {
        skip_flow(&mut steps, "--version-only");
        return steps;
    }
    if !version_ok {
        skip_flow(&mut steps, "--version failed");
        return steps;
    }

    // 2. Can this binary pair yet, and is there a simulator?
    let help = runner.run(&["--help"], &[], Duration::from_secs(60));
    let has_login = help
        .as_ref()
        .is_ok_and(|h| h.stdout.lines().any(|l| l.trim_start().starts_with("login")));
    if !has_login {
        skip_flow(&mut steps, "the binary has no `login` subcommand yet");
        return steps;
    }
    let sim_path = match opts.sim.clone().map_or_else(|| build_sim(ws), |p| Ok(Some(p))) {
        Ok(Some(p)) => p,
        Ok(None) => {
            skip_flow(&mut steps, "the workspace has no zoho-device-sim binary yet");
            return steps;
        }
        Err(e) => {
            skip_flow(&mut steps, &format!("cannot build zoho-device-sim: {e}"));
            return steps;
        }
    };

    // 3. login → token → books organizations against the simulator.
    let started = Instant::now();
    let mut sim = match Sim::start(&sim_path) {
        Ok(sim) => sim,
        Err(e) => {
            steps.push(Step {
                name: "start simulator".to_owned(),
                outcome: Outcome::Failed(e),
                elapsed: started.elapsed(),
            });
            return steps;
        }
    };
    steps.push(Step {
        name: "start simulator".to_owned(),
        outcome: Outcome::Passed(sim.url.clone()),
        elapsed: started.elapsed(),
    });
    let sim_env = [
        ("ZOHO_ACCOUNTS_URL", sim.url.as_str()),
        ("ZOHO_CLIENT_ID", SIM_CLIENT_ID),
        ("ZOHO_CLIENT_SECRET", SIM_CLIENT_SECRET),
    ];
    let timeout = Duration::from_secs(120);

    let started = Instant::now();
    let login = runner.run(&["login", "--events", "json"], &sim_env, timeout);
    let outcome = match &login {
        Ok(out) => {
            let events = event_names(&out.stdout);
            if out.success && events.last().is_some_and(|e| e == "authorized") {
                Outcome::Passed(format!("events: {}", events.join(" → ")))
            } else {
                Outcome::Failed(format!("events: [{}]; {}", events.join(", "), out.summary()))
            }
        }
        Err(e) => Outcome::Failed(e.clone()),
    };
    let login_ok = matches!(outcome, Outcome::Passed(_));
    steps.push(Step {
        name: "login".to_owned(),
        outcome,
        elapsed: started.elapsed(),
    });

    if login_ok {
        let started = Instant::now();
        let outcome = match runner.run(&["token"], &sim_env, timeout) {
            // Never print the token itself: report only its shape.
            Ok(out) if out.success && out.stdout.trim().lines().count() == 1 => {
                Outcome::Passed(format!("one line, {} characters", out.stdout.trim().len()))
            }
            Ok(out) => Outcome::Failed(format!(
                "exit {:?}, {} stdout lines",
                out.code,
                out.stdout.lines().count()
            )),
            Err(e) => Outcome::Failed(e),
        };
        steps.push(Step {
            name: "token".to_owned(),
            outcome,
            elapsed: started.elapsed(),
        });

        let started = Instant::now();
        let outcome = match runner.run(&["books", "organizations"], &sim_env, timeout) {
            // The table's first row after the header, or the only line.
            Ok(out) if out.success && !out.stdout.trim().is_empty() => {
                let lines: Vec<&str> = out.stdout.lines().filter(|l| !l.trim().is_empty()).collect();
                Outcome::Passed(lines[lines.len().min(2) - 1].trim().to_owned())
            }
            Ok(out) => Outcome::Failed(out.summary()),
            Err(e) => Outcome::Failed(e),
        };
        steps.push(Step {
            name: "books organizations".to_owned(),
            outcome,
            elapsed: started.elapsed(),
        });

        let started = Instant::now();
        let outcome = match gateway(&runner, &sim_env, &scratch.join("api.sock")) {
            Ok(line) => Outcome::Passed(line),
            Err(e) => Outcome::Failed(e),
        };
        steps.push(Step {
            name: "gateway (--serve)".to_owned(),
            outcome,
            elapsed: started.elapsed(),
        });
    } else {
        for name in &FLOW[1..] {
            steps.push(Step {
                name: (*name).to_owned(),
                outcome: Outcome::Skipped("login failed".to_owned()),
                elapsed: Duration::ZERO,
            });
        }
    }
    sim.stop();
    let _ = fs::remove_dir_all(&scratch);
    steps
}

/// The simulator never ships to a device: `demo` on a board binary must refuse to run
/// instead of starting a simulated Zoho on loopback.
fn no_simulator(runner: &Runner) -> Step {
    let started = Instant::now();
    let outcome = match runner.run(&["demo"], &[], Duration::from_secs(60)) {
        Ok(out) if !out.success && loopback_url(&out.stdout).is_none() => Outcome::Passed(format!(
            "demo refused: {}",
            out.stderr.lines().next().unwrap_or_default().trim()
        )),
        Ok(out) => Outcome::Failed(format!(
            "`demo` ran: the board binary contains the simulator ({})",
            out.summary()
        )),
        // Killed after the timeout: it was serving a simulated Zoho.
        Err(e) => Outcome::Failed(format!("`demo` did not refuse: {e}")),
    };
    Step {
        name: "no simulator (demo)".to_owned(),
        outcome,
        elapsed: started.elapsed(),
    }
}

/// Whether every step passed or was skipped.
pub fn all_passed(steps: &[Step]) -> bool {
    steps.iter().all(|s| !matches!(s.outcome, Outcome::Failed(_)))
}

/// The `event` field of each JSON line of `--events json` output.
pub fn event_names(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("event")?.as_str().map(str::to_owned))
        .collect()
}

/// The first `http://127.0.0.1:PORT` (or `localhost`) URL in `line`, without a path.
pub fn loopback_url(line: &str) -> Option<String> {
    for prefix in ["http://127.0.0.1:", "http://localhost:"] {
        if let Some(at) = line.find(prefix) {
            let rest = &line[at + prefix.len()..];
            let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if !port.is_empty() {
                return Some(format!("http://127.0.0.1:{port}"));
            }
        }
    }
    None
}

/// The result of one run of the binary.
#[derive(Clone, Debug)]
struct RunOutput {
    success: bool,
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl RunOutput {
    fn summary(&self) -> String {
        let last_err = self.stderr.lines().last().unwrap_or_default().trim();
        format!("exit {:?}; stderr: {last_err}", self.code)
    }
}

/// The agent with `--serve unix:SOCK` under qemu: a GET of the organizations through the socket
/// (Books asked: `X-Zoho-Device-Cache: miss`), then a HEAD of the same path (the cache: `hit`).
fn gateway(runner: &Runner, env: &[(&str, &str)], sock: &Path) -> Result<String, String> {
    use std::io::Write;
    use std::os::unix::net::UnixStream;
    let serve = format!("unix:{}", sock.display());
    let mut cmd = Command::new(&runner.qemu[0]);
    cmd.args(&runner.qemu[1..])
        .arg(&runner.binary)
        .args(["agent", "--display", "none", "--serve", &serve])
        .env_clear()
        .envs(&runner.env)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut agent = cmd.spawn().map_err(|e| format!("cannot start the agent: {e}"))?;
    let stderr = drain(agent.stderr.take());
    let ask = |method: &str| -> Result<String, String> {
        let mut s = UnixStream::connect(sock).map_err(|e| format!("the socket: {e}"))?;
        s.set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "{method} /books/v3/organizations HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .map_err(|e| e.to_string())?;
        let mut reply = String::new();
        s.read_to_string(&mut reply).map_err(|e| e.to_string())?;
        Ok(reply)
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(sock).is_err() && Instant::now() < deadline && matches!(agent.try_wait(), Ok(None)) {
        thread::sleep(Duration::from_millis(50));
    }
    let result = ask("GET").and_then(|get| {
        let head = ask("HEAD")?;
        let cache = |r: &str| {
            r.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("x-zoho-device-cache: ")
                        .map(str::to_owned)
                })
                .unwrap_or_default()
        };
        let (_, get_body) = get.split_once("\r\n\r\n").unwrap_or_default();
        let (_, head_body) = head.split_once("\r\n\r\n").unwrap_or((&head, "?"));
        if get.starts_with("HTTP/1.1 200")
            && get_body.contains("organization_id")
            && cache(&get) == "miss"
            && head.starts_with("HTTP/1.1 200")
            && cache(&head) == "hit"
            && head_body.is_empty()
        {
            Ok(format!("GET 200 miss ({} bytes), HEAD 200 hit", get_body.len()))
        } else {
            Err(format!(
                "GET: {:?}; HEAD: {:?}",
                get.lines().next().unwrap_or_default(),
                head.lines().next().unwrap_or_default()
            ))
        }
    });
    let _ = agent.kill();
    let _ = agent.wait();
    let stderr = stderr.join().unwrap_or_default();
    result.map_err(|e| match stderr.lines().last() {
        Some(last) => format!("{e}; agent: {}", last.trim()),
        None => e,
    })
}

/// Runs the board binary under qemu with a clean environment.
struct Runner {
    qemu: Vec<String>,
    binary: PathBuf,
    env: BTreeMap<String, OsString>,
}

impl Runner {
    fn run(&self, args: &[&str], extra_env: &[(&str, &str)], timeout: Duration) -> Result<RunOutput, String> {
        let mut cmd = Command::new(&self.qemu[0]);
        cmd.args(&self.qemu[1..])
            .arg(&self.binary)
            .args(args)
            .env_clear()
            .envs(&self.env)
            .envs(extra_env.iter().copied())
            .stdin(Stdio::null());
        run_with_timeout(cmd, timeout)
    }
}

/// PATH, a scratch HOME and XDG directories (so no user or system config is read, and the
/// token goes to the scratch directory), no colours.
fn base_env(scratch: &Path) -> BTreeMap<String, OsString> {
    let mut vars = BTreeMap::new();
    if let Some(path) = env::var_os("PATH") {
        vars.insert("PATH".to_owned(), path);
    }
    for (key, sub) in [
        ("HOME", "home"),
        ("XDG_CONFIG_HOME", "config"),
        ("XDG_STATE_HOME", "state"),
        ("XDG_CACHE_HOME", "cache"),
    ] {
        let dir = scratch.join(sub);
        let _ = fs::create_dir_all(&dir);
        vars.insert(key.to_owned(), dir.into_os_string());
    }
    vars.insert(
        "ZOHO_TOKEN_FILE".to_owned(),
        scratch.join("state/token.json").into_os_string(),
    );
    vars.insert("NO_COLOR".to_owned(), "1".into());
    vars
}

fn scratch_dir(board: &Board, libc: Libc) -> PathBuf {
    let dir = env::temp_dir().join(format!(
        "zoho-device-smoke-{}-{libc}-{}",
        board.name,
        std::process::id()
    ));
    let _ = fs::remove_dir_all(&dir);
    let _ = fs::create_dir_all(&dir);
    dir
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<RunOutput, String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", cmd.get_program().to_string_lossy()))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("timed out after {} s", timeout.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => return Err(e.to_string()),
        }
    };
    Ok(RunOutput {
        success: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    })
}

fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            text = String::from_utf8_lossy(&bytes).into_owned();
        }
        text
    })
}

/// Builds the workspace's simulator for the host (`cargo build -p zoho-device-sim`) when the
/// package has that binary; `Ok(None)` when it does not exist yet.
fn build_sim(ws: &Workspace) -> Result<Option<PathBuf>, String> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let meta = Command::new(&cargo)
        .current_dir(&ws.root)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !meta.status.success() {
        return Err(String::from_utf8_lossy(&meta.stderr).trim().to_owned());
    }
    let meta: serde_json::Value = serde_json::from_slice(&meta.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let has_bin = meta["packages"].as_array().into_iter().flatten().any(|p| {
        p["name"] == SIM_BINARY
            && p["targets"].as_array().into_iter().flatten().any(|t| {
                t["name"] == SIM_BINARY
                    && t["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"))
                    && t["src_path"].as_str().is_some_and(|p| Path::new(p).is_file())
            })
    });
    if !has_bin {
        return Ok(None);
    }
    eprintln!("==> cargo build -p {SIM_BINARY} --bin {SIM_BINARY}");
    let status = Command::new(&cargo)
        .current_dir(&ws.root)
        .args(["build", "-p", SIM_BINARY, "--bin", SIM_BINARY])
        .status()
        .map_err(|e| e.to_string())?;
    if !status.success() {
        return Err("cargo build failed".to_owned());
    }
    let target_dir = meta["target_directory"]
        .as_str()
        .map_or_else(|| ws.root.join("target"), PathBuf::from);
    Ok(Some(target_dir.join("debug").join(SIM_BINARY)))
}

/// The simulator, running on the host.
struct Sim {
    child: Child,
    url: String,
}

impl Sim {
    /// Starts `zoho-device-sim --dc us --auto-approve-after-polls 1 --interval-ms 200` (one DC,
    /// the one the default client `1004.SIMCLIENT` lives in) and waits for the first loopback
    /// URL it prints (`  us: accounts + api_domain http://127.0.0.1:PORT ...`).
    fn start(path: &Path) -> Result<Sim, String> {
        let mut child = Command::new(path)
            .args(["--dc", "us", "--auto-approve-after-polls", "1", "--interval-ms", "200"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", path.display()))?;
        let (tx, rx) = mpsc::channel::<String>();
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        // Keep draining so the simulator never blocks on a full pipe.
                        continue;
                    }
                }
            });
        }
        drop(tx);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = loopback_url(&line) {
                        return Ok(Sim { child, url });
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "no http://127.0.0.1:PORT line from the simulator; it printed: {}",
                        seen.join(" | ")
                    ));
                }
            }
        }
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
