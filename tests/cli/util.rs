//! The cli suite's helpers over the shared harness (tests/common): JSON events on stdout,
//! signals, raw runs, the secret audit, pairing by hand, the Books pairing.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;

pub use crate::common::*;

impl Output {
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

impl World {
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

/// Raw stdout bytes of `zoho-device ARGS` (for `token`, whose exact bytes matter).
pub fn run_raw(world: &World, args: &[&str]) -> (Option<i32>, Vec<u8>, String) {
    let out = world
        .command(args)
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

/// A world paired with a scope that reaches every Books module (`api`, `agent --serve`), with
/// `env` set before the pairing.
pub fn paired_for_books(config: SimConfig, env: &[(&str, &str)]) -> World {
    let mut w = World::new(config.auto_approve_after_polls(1));
    w.set("ZOHO_SCOPE", Some("ZohoBooks.fullaccess.all"));
    for (k, v) in env {
        w.set(k, Some(v));
    }
    w.login();
    w
}

/// After [`outlive_the_access_token`] returned `old` and one request to `path` met Books' 401:
/// one refresh, the new token saved for everyone, and exactly one retry with it.
#[track_caller]
pub fn assert_refreshed_once_and_retried(w: &World, old: &str, path: &str) {
    assert_eq!(w.sim.stats().refreshes, 1);
    let new = w.token_json()["access_token"].as_str().unwrap().to_string();
    assert_ne!(old, new, "the refreshed token was saved for everyone");
    let calls = w.sim.requests_to(path);
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].status, Some(401));
    assert_eq!(
        calls[1].header("authorization"),
        Some(format!("Zoho-oauthtoken {new}").as_str())
    );
}

/// For a world made with `token_lifetime_s(2)`: lets the simulator's access token die while the
/// file still claims an hour, so only Books' 401 tells. Returns the dead access token.
pub fn outlive_the_access_token(w: &World) -> String {
    let old = w.token_json()["access_token"].as_str().unwrap().to_string();
    sleep_ms(2_200);
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 3_600_000).into());
    });
    old
}
