//! A run of the binary, or of a script around it: its events while it runs, and what it left
//! behind — with a hard time limit, past which it is killed and the test fails.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::world::World;

/// Longest a single command may run before the test fails.
pub const RUN_LIMIT: Duration = Duration::from_secs(40);

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
    /// Asserts the exit code (and that nothing panicked), printing the output when it differs.
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
}

/// A running `zoho-device` (or a script around it); killed when dropped.
pub struct Running<'w> {
    world: &'w World,
    args: Vec<String>,
    child: Option<Child>,
    /// Stdout's lines as they come (closed at the end of stdout).
    lines: Receiver<String>,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stderr_done: Option<JoinHandle<()>>,
    started: Instant,
}

/// Copies `pipe` into `sink` as it comes.
fn drain(mut pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n @ 1..) = pipe.read(&mut buf) {
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    })
}

impl<'w> Running<'w> {
    /// Starts `command` (its stdin closed, stdout and stderr read here) for `world`'s record;
    /// `args` name the run in failure messages.
    pub(super) fn start(world: &'w World, mut command: Command, args: &[&str]) -> Running<'w> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let (tx, lines) = channel();
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let sink = stdout.clone();
        let mut pipe = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            let mut line = Vec::new();
            while let Ok(1..) = pipe.read_until(b'\n', &mut line) {
                sink.lock().unwrap().extend_from_slice(&line);
                let text = String::from_utf8_lossy(&line);
                if tx.send(text.trim_end_matches(['\n', '\r']).to_string()).is_err() {
                    break;
                }
                line.clear();
            }
        });
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stderr_done = drain(child.stderr.take().unwrap(), stderr.clone());
        Running {
            world,
            args: args.iter().map(|s| s.to_string()).collect(),
            child: Some(child),
            lines,
            stdout,
            stderr,
            stderr_done: Some(stderr_done),
            started: Instant::now(),
        }
    }

    fn text(buf: &Mutex<Vec<u8>>) -> String {
        String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
    }

    /// Waits for the next JSON event named `name` on stdout (earlier lines are kept for the
    /// output).
    #[track_caller]
    pub fn event(&mut self, name: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.lines.recv_timeout(left) else {
                panic!(
                    "no {name:?} event from zoho-device {:?} within {timeout:?}\n--- stdout\n{}\n--- stderr\n{}",
                    self.args,
                    Self::text(&self.stdout),
                    Self::text(&self.stderr)
                );
            };
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v["event"] == name
            {
                return v;
            }
        }
    }

    /// The process ID (to signal it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("still running").id()
    }

    /// Sends signal `sig` (e.g. `INT`) to the running program.
    #[allow(dead_code)] // the cli and agent suites signal; the reliability suite kills its own way
    #[track_caller]
    pub fn signal(&self, sig: &str) {
        let pid = self.pid();
        let ok = Command::new("kill")
            .args([format!("-{sig}"), pid.to_string()])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} {pid}");
    }

    /// Every JSON event that arrives within `d` (to prove that nothing happens).
    #[allow(dead_code)] // the cli and reliability suites wait for events, only the agent's proves silence
    pub fn events_within(&mut self, d: Duration) -> Vec<Value> {
        let deadline = Instant::now() + d;
        let mut out = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            out.extend(serde_json::from_str::<Value>(&line).ok());
        }
        out
    }

    /// The JSON events on stdout so far, in order.
    #[allow(dead_code)] // used by the agent's suite
    pub fn events_so_far(&self) -> Vec<Value> {
        Self::text(&self.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .collect()
    }

    /// Stderr so far (the program's log).
    #[allow(dead_code)] // used by the agent's suite
    pub fn stderr_so_far(&self) -> String {
        Self::text(&self.stderr)
    }

    /// Waits for the exit (killing it past [`RUN_LIMIT`]: a failure), records the output in the
    /// world, and returns it.
    #[track_caller]
    pub fn wait(mut self) -> Output {
        let mut child = self.child.take().unwrap();
        let deadline = self.started + RUN_LIMIT;
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        // To the end of stdout, unless something it started keeps the pipe open and quiet.
        while self.lines.recv_timeout(Duration::from_secs(5)).is_ok() {}
        let _ = self.stderr_done.take().unwrap().join();
        let out = Output {
            args: self.args.clone(),
            code: status.and_then(|s| s.code()),
            stdout: Self::text(&self.stdout),
            stderr: Self::text(&self.stderr),
            elapsed,
        };
        self.world.outputs.lock().unwrap().push(out.clone());
        assert!(
            status.is_some(),
            "zoho-device {:?} ran longer than {RUN_LIMIT:?} and was killed\n--- stdout\n{}\n--- stderr\n{}",
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
