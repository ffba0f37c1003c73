//! The agent's needs-pairing hook, and systemd's `STATUS=` line while a code is out: a
//! display that learns each new code and runs the hook once per code.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zoho_device_display::{Screen, Show};

use crate::clock;
use crate::notify::Notifier;

/// A hook still running after this is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// The pairing hook and the `STATUS=` line while a code is out.
pub(super) struct HookState {
    notifier: Arc<Notifier>,
    inner: Mutex<HookInner>,
}

struct HookInner {
    command: Option<String>,
    reason: &'static str,
    last_code: Option<String>,
}

impl HookState {
    pub(super) fn new(notifier: Arc<Notifier>, command: Option<String>) -> HookState {
        HookState {
            notifier,
            inner: Mutex::new(HookInner {
                command,
                reason: "not_paired",
                last_code: None,
            }),
        }
    }

    /// The hook's command from a reloaded configuration.
    pub(super) fn set_command(&self, command: Option<String>) {
        if let Ok(mut h) = self.inner.lock() {
            h.command = command;
        }
    }

    pub(super) fn begin(&self, reason: &'static str) {
        if let Ok(mut h) = self.inner.lock() {
            h.reason = reason;
            h.last_code = None;
        }
    }

    pub(super) fn end(&self) {
        if let Ok(mut h) = self.inner.lock() {
            h.last_code = None;
        }
    }
}

/// A display that feeds systemd's `STATUS=` and runs the hook once per new code.
pub(super) struct AgentDisplay {
    pub(super) hook: Arc<HookState>,
}

impl Show for AgentDisplay {
    fn show(&mut self, screen: &Screen) -> std::io::Result<()> {
        match screen {
            Screen::Waiting {
                user_code,
                verification_url,
                verification_uri_complete,
                seconds_left,
                ..
            } => {
                self.hook.notifier.status(&format!(
                    "waiting for approval: {user_code}, {}:{:02} left",
                    seconds_left / 60,
                    seconds_left % 60
                ));
                let Ok(mut h) = self.hook.inner.lock() else {
                    return Ok(());
                };
                if h.last_code.as_deref() == Some(user_code.as_str()) {
                    return Ok(());
                }
                h.last_code = Some(user_code.clone());
                if let Some(cmd) = &h.command {
                    run_hook(
                        cmd,
                        &[
                            ("ZOHO_USER_CODE", user_code.as_str()),
                            ("ZOHO_VERIFICATION_URL", verification_url.as_str()),
                            (
                                "ZOHO_VERIFICATION_URI_COMPLETE",
                                verification_uri_complete.as_deref().unwrap_or(""),
                            ),
                            ("ZOHO_CODE_EXPIRES_IN", &seconds_left.to_string()),
                            ("ZOHO_NEEDS_PAIRING_REASON", h.reason),
                        ],
                    );
                }
            }
            Screen::CodeExpired => self.hook.notifier.status("the code expired; a new one follows"),
            Screen::Paired { detail } => self.hook.notifier.status(detail),
            _ => {}
        }
        Ok(())
    }
}

/// Runs `/bin/sh -c CMD` with `vars` (no secrets: the client secrets, common and per data
/// centre, are removed from its environment), its output on stderr (stdout carries JSON events), killed after two minutes.
fn run_hook(cmd: &str, vars: &[(&str, &str)]) {
    if tokio::runtime::Handle::try_current().is_err() {
        return;
    }
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg("-c").arg(cmd).stdin(std::process::Stdio::null());
    for var in [
        "ZOHO_CLIENT_SECRET",
        "NOTIFY_SOCKET",
        "WATCHDOG_USEC",
        "WATCHDOG_PID",
        clock::OFFSET_ENV,
    ] {
        c.env_remove(var);
    }
    // Multi-DC: each data centre's own secret value too.
    for dc in zoho_device_core::DataCenter::ALL {
        c.env_remove(format!("ZOHO_CLIENT_SECRET_{}", dc.location().to_ascii_uppercase()));
    }
    c.envs(vars.iter().copied());
    if let Ok(fd) = std::os::fd::AsFd::as_fd(&std::io::stderr()).try_clone_to_owned() {
        c.stdout(std::process::Stdio::from(fd));
    }
    match c.spawn() {
        Ok(mut child) => {
            tracing::info!("running the needs-pairing hook");
            tokio::spawn(async move {
                match tokio::time::timeout(HOOK_TIMEOUT, child.wait()).await {
                    Ok(Ok(s)) if s.success() => {}
                    Ok(Ok(s)) => tracing::warn!("the needs-pairing hook failed ({s})"),
                    Ok(Err(e)) => tracing::warn!("the needs-pairing hook: {e}"),
                    Err(_) => {
                        tracing::warn!("the needs-pairing hook ran for {} s; killed", HOOK_TIMEOUT.as_secs());
                        let _ = child.kill().await;
                    }
                }
            });
        }
        Err(e) => tracing::warn!("cannot run the needs-pairing hook: {e}"),
    }
}
