//! systemd's notification protocol (`sd_notify`), without libsystemd: one datagram per message
//! to the socket named by `$NOTIFY_SOCKET` (a path, or `@name` for an abstract socket).
//!
//! Messages are sent without blocking; a missing or broken socket is ignored (the agent works
//! the same outside systemd).
//!
//! The agent's status lines are also mirrored into a small state file beside the token file
//! (`token.json.agent`: pid, time, line) so that `zoho-device doctor` can report what the agent
//! last said — its last error included — without systemd. Status lines never hold a secret.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::Duration;

/// A connection to the service manager, or nothing when not run by one.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
    state_file: Option<PathBuf>,
    /// The shape (digits dropped) of the line last written to `state_file`, and when.
    last_state: std::sync::Mutex<Option<(String, std::time::Instant)>>,
}

/// How often a status line whose shape did not change (a countdown, "valid for 52 min") is
/// written to the state file again: an SD card should not see a write a second.
const STATE_REFRESH: Duration = Duration::from_secs(600);

impl Notifier {
    /// From `$NOTIFY_SOCKET`, `$WATCHDOG_USEC` and `$WATCHDOG_PID`.
    pub fn from_env() -> Notifier {
        Notifier::from_vars(&|k| std::env::var(k).ok(), std::process::id())
    }

    /// As [`Notifier::from_env`], with the environment given.
    pub fn from_vars(env: &dyn Fn(&str) -> Option<String>, pid: u32) -> Notifier {
        let target = env("NOTIFY_SOCKET").and_then(|s| match socket_addr(&s) {
            Some(addr) => match UnixDatagram::unbound() {
                Ok(sock) => {
                    let _ = sock.set_nonblocking(true);
                    Some((sock, addr))
                }
                Err(e) => {
                    tracing::warn!("cannot create a socket for NOTIFY_SOCKET: {e}");
                    None
                }
            },
            None => {
                tracing::warn!("NOTIFY_SOCKET={s:?} is not a usable socket address; not notifying systemd");
                None
            }
        });
        let for_us = env("WATCHDOG_PID")
            .map(|p| p.trim().parse::<u32>().ok() == Some(pid))
            .unwrap_or(true);
        let watchdog = env("WATCHDOG_USEC")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|us| *us > 0 && for_us)
            .map(Duration::from_micros);
        Notifier {
            target,
            watchdog,
            state_file: None,
            last_state: std::sync::Mutex::new(None),
        }
    }

    /// Also mirrors every status line into `path` (see the module docs).
    pub fn with_state_file(mut self, path: PathBuf) -> Notifier {
        self.state_file = Some(path);
        self
    }

    /// Whether status lines go anywhere.
    pub fn wants_status(&self) -> bool {
        self.enabled() || self.state_file.is_some()
    }

    /// A notifier that sends nothing.
    pub fn none() -> Notifier {
        Notifier {
            target: None,
            watchdog: None,
            state_file: None,
            last_state: std::sync::Mutex::new(None),
        }
    }

    /// Whether a service manager listens.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// The watchdog timeout systemd asked for (`WatchdogSec=`), if any. Ping at half of it.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Sends `state` (e.g. `READY=1`, `STATUS=...`, newline-separated assignments).
    pub fn notify(&self, state: &str) {
        let Some((sock, addr)) = &self.target else { return };
        if let Err(e) = sock.send_to_addr(state.as_bytes(), addr) {
            tracing::debug!("sd_notify failed: {e}");
        }
    }

    /// Sends `STATUS=<line>` (newlines in `line` become spaces).
    pub fn status(&self, line: &str) {
        let line = line.replace('\n', " ");
        if self.enabled() {
            self.notify(&format!("STATUS={line}"));
        }
        if let Some(path) = &self.state_file
            && self.state_due(&line)
        {
            let state = AgentState {
                pid: std::process::id(),
                updated_unix: crate::clock::now_s(),
                status: line,
            };
            let mut bytes = serde_json::to_vec_pretty(&state).unwrap_or_default();
            bytes.push(b'\n');
            if let Err(e) = crate::store::write_atomically(path, &bytes) {
                tracing::debug!("cannot write the agent state file {}: {e}", path.display());
            }
        }
    }

    /// Whether `line` goes to the state file now: at once when its shape (the line without
    /// digits) changed — a new state, an error — else at most every [`STATE_REFRESH`].
    fn state_due(&self, line: &str) -> bool {
        let shape: String = line.chars().filter(|c| !c.is_ascii_digit()).collect();
        let mut last = self.last_state.lock().unwrap_or_else(|e| e.into_inner());
        let due = match &*last {
            Some((s, at)) => *s != shape || at.elapsed() >= STATE_REFRESH,
            None => true,
        };
        if due {
            *last = Some((shape, std::time::Instant::now()));
        }
        due
    }
}

/// What the agent last said, as `doctor` reads it back.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AgentState {
    /// The agent's process ID.
    pub pid: u32,
    /// When the line was written (Unix seconds).
    pub updated_unix: i64,
    /// The status line (`STATUS=`), with the last error when there is one.
    pub status: String,
}

impl AgentState {
    /// Reads the state file; `None` when there is none or it is unreadable.
    pub fn read(path: &std::path::Path) -> Option<AgentState> {
        let bytes = crate::settings::read_regular_file(path, 64 * 1024, false).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Whether the process that wrote it still runs (Linux `/proc`).
    pub fn running(&self) -> bool {
        let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", self.pid)) else {
            return false;
        };
        cmdline.split(|b| *b == 0).any(|arg| arg == b"agent")
    }
}

fn socket_addr(s: &str) -> Option<SocketAddr> {
    if let Some(name) = s.strip_prefix('@') {
        abstract_addr(name)
    } else if s.starts_with('/') {
        SocketAddr::from_pathname(s).ok()
    } else {
        None
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_addr(name: &str) -> Option<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name.as_bytes()).ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_addr(_name: &str) -> Option<SocketAddr> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        let p = path.to_str().unwrap();
        let n = Notifier::from_vars(&env(&[("NOTIFY_SOCKET", p), ("WATCHDOG_USEC", "2000000")]), 1);
        assert!(n.enabled());
        assert_eq!(n.watchdog(), Some(Duration::from_secs(2)));
        n.notify("READY=1");
        n.status("paired (eu),\ntoken valid");
        let mut buf = [0u8; 256];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"READY=1");
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"STATUS=paired (eu), token valid");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("zoho-device-test-{}", std::process::id());
        let server = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let n = Notifier::from_vars(&env(&[("NOTIFY_SOCKET", &format!("@{name}"))]), 1);
        n.notify("WATCHDOG=1");
        let mut buf = [0u8; 64];
        let len = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..len], b"WATCHDOG=1");
    }

    #[test]
    fn watchdog_only_for_this_pid_and_nothing_without_a_socket() {
        let n = Notifier::from_vars(&env(&[("WATCHDOG_USEC", "1000"), ("WATCHDOG_PID", "7")]), 8);
        assert_eq!(n.watchdog(), None);
        assert!(!n.enabled());
        n.notify("READY=1"); // no socket: a no-op
        let n = Notifier::from_vars(&env(&[("NOTIFY_SOCKET", "relative")]), 1);
        assert!(!n.enabled());
    }

    #[test]
    fn the_state_file_is_written_on_a_new_state_not_on_every_tick() {
        let dir = std::env::temp_dir().join(format!("zd-notify-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("token.json.agent");
        let n = Notifier::none().with_state_file(path.clone());
        let read = || AgentState::read(&path).map(|s| s.status).unwrap_or_default();
        n.status("waiting for approval: ABCD-1234, 1:59 left");
        assert_eq!(read(), "waiting for approval: ABCD-1234, 1:59 left");
        // A countdown tick: same shape, not written again.
        n.status("waiting for approval: ABCD-1234, 1:58 left");
        assert_eq!(read(), "waiting for approval: ABCD-1234, 1:59 left");
        // A new state, and an error appended: written at once.
        n.status("paired (eu), token valid for 59 min");
        assert_eq!(read(), "paired (eu), token valid for 59 min");
        n.status("paired (eu), token valid for 58 min; refresh failed (unavailable), retrying in 2 s");
        assert!(read().contains("refresh failed"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
