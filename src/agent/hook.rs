//! The agent's needs-pairing hook and systemd's `STATUS=` line while pairing: two subscribers
//! to the pairing's events. The hook runs once per new code; the status line follows the
//! countdown.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use zoho_device_core::{Event, Subscriber, UserPrompt};

use crate::clock;
use crate::notify::Notifier;
use crate::ui::paired_detail;

/// A hook still running after this is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);

/// The pairing hook's state, kept across reloads (a reload must not run it again for the
/// same code).
pub(super) struct HookState {
    inner: Mutex<HookInner>,
}

struct HookInner {
    command: Option<String>,
    reason: &'static str,
    prompt: Option<UserPrompt>,
    last_code: Option<String>,
}

impl HookState {
    pub(super) fn new(command: Option<String>) -> HookState {
        HookState {
            inner: Mutex::new(HookInner {
                command,
                reason: "not_paired",
                prompt: None,
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
}

/// Runs the hook once per new code: the first time the code's countdown is heard, with the
/// code, its URLs, the seconds it has left, and why pairing is needed.
pub(super) struct Hook(pub(super) Arc<HookState>);

impl Subscriber for Hook {
    fn on_event(&mut self, event: &Event) {
        let Ok(mut h) = self.0.inner.lock() else { return };
        match event {
            Event::NeedsPairing { reason, .. } => {
                h.reason = reason;
                h.last_code = None;
            }
            Event::Paired { .. } => h.last_code = None,
            Event::CodeIssued(p) => h.prompt = Some(p.clone()),
            Event::CodeWaiting { user_code, left } => {
                if h.last_code.as_deref() == Some(user_code.as_str()) {
                    return;
                }
                // The URLs are this code's own: a countdown heard before its prompt waits.
                let Some(p) = h.prompt.clone().filter(|p| p.user_code == *user_code) else {
                    return;
                };
                h.last_code = Some(user_code.clone());
                let Some(cmd) = &h.command else {
                    return;
                };
                run_hook(
                    cmd,
                    &[
                        ("ZOHO_USER_CODE", user_code.as_str()),
                        ("ZOHO_VERIFICATION_URL", p.verification_url.as_str()),
                        (
                            "ZOHO_VERIFICATION_URI_COMPLETE",
                            p.verification_uri_complete.as_deref().unwrap_or(""),
                        ),
                        ("ZOHO_CODE_EXPIRES_IN", &left.as_secs().to_string()),
                        ("ZOHO_NEEDS_PAIRING_REASON", h.reason),
                    ],
                );
            }
            _ => {}
        }
    }
}

/// systemd's `STATUS=` line while pairing (the paired state's line is the agent's own).
pub(super) struct StatusLine(pub(super) Arc<Notifier>);

impl StatusLine {
    /// The line an event sets, if any.
    pub(super) fn line(event: &Event) -> Option<String> {
        Some(match event {
            Event::NeedsPairing { message, .. } => format!("needs pairing: {message}"),
            Event::CodeWaiting { user_code, left } => {
                let s = left.as_secs();
                format!("waiting for approval: {user_code}, {}:{:02} left", s / 60, s % 60)
            }
            Event::CodeExpired { renew_in: Some(_) } => "the code expired; a new one follows".into(),
            Event::Paired { location, .. } => paired_detail(location.as_deref()),
            _ => return None,
        })
    }
}

impl Subscriber for StatusLine {
    fn on_event(&mut self, event: &Event) {
        if let Some(line) = StatusLine::line(event) {
            self.0.status(&line);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(code: &str) -> UserPrompt {
        UserPrompt {
            user_code: code.into(),
            verification_url: format!("https://accounts.zoho.eu/device/{code}"),
            verification_uri_complete: None,
            expires_at: zoho_device_core::Timestamp::from_millis(300_000),
            expires_in: Duration::from_secs(300),
            interval: Duration::from_secs(30),
            warning: None,
        }
    }

    #[test]
    fn the_hook_takes_a_codes_urls_from_that_codes_prompt() {
        // No runtime here: the hook's command is not spawned; what it would run for is kept.
        let state = Arc::new(HookState::new(Some("true".into())));
        let mut hook = Hook(state.clone());
        let waiting = |code: &str| Event::CodeWaiting {
            user_code: code.into(),
            left: Duration::from_secs(299),
        };
        let ran_for = || state.inner.lock().unwrap().last_code.clone();
        hook.on_event(&Event::CodeIssued(prompt("AAAA-1111")));
        // A countdown of a code whose prompt was not heard: not run with another code's URLs,
        // and not marked as done either.
        hook.on_event(&waiting("BBBB-2222"));
        assert_eq!(ran_for(), None);
        hook.on_event(&Event::CodeIssued(prompt("BBBB-2222")));
        hook.on_event(&waiting("BBBB-2222"));
        assert_eq!(ran_for().as_deref(), Some("BBBB-2222"));
    }

    #[test]
    fn the_status_line_follows_the_pairing() {
        let line = |e: Event| StatusLine::line(&e);
        assert_eq!(
            line(Event::NeedsPairing {
                reason: "not_paired",
                message: "this device is not paired yet".into()
            })
            .as_deref(),
            Some("needs pairing: this device is not paired yet")
        );
        assert_eq!(
            line(Event::CodeWaiting {
                user_code: "WLKU-4502".into(),
                left: Duration::from_millis(125_900)
            })
            .as_deref(),
            Some("waiting for approval: WLKU-4502, 2:05 left")
        );
        assert_eq!(
            line(Event::CodeExpired {
                renew_in: Some(Duration::from_secs(5))
            })
            .as_deref(),
            Some("the code expired; a new one follows")
        );
        assert_eq!(line(Event::CodeExpired { renew_in: None }), None);
        assert_eq!(line(Event::Pending), None);
    }

    #[test]
    fn the_hook_learns_the_reason_and_each_code_once() {
        // No command: nothing runs, but the state follows the events.
        let state = Arc::new(HookState::new(None));
        let mut hook = Hook(state.clone());
        hook.on_event(&Event::NeedsPairing {
            reason: "refresh_token_rejected",
            message: "m".into(),
        });
        let waiting = Event::CodeWaiting {
            user_code: "A".into(),
            left: Duration::from_secs(299),
        };
        hook.on_event(&Event::CodeIssued(prompt("A")));
        hook.on_event(&waiting);
        {
            let h = state.inner.lock().unwrap();
            assert_eq!(h.reason, "refresh_token_rejected");
            assert_eq!(h.last_code.as_deref(), Some("A"));
        }
        hook.on_event(&Event::Paired {
            location: None,
            accounts_url: None,
            api_domain: None,
            expires_in: Duration::from_secs(1),
        });
        assert_eq!(state.inner.lock().unwrap().last_code, None);
    }
}
