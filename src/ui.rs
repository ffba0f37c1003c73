//! What a person or a program sees while pairing: displays and JSON events, fed from the
//! flow's steps. One place turns a [`Step`] into a [`Screen`] and an event.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use zoho_device_core::{Notice, Step, Tokens, UserPrompt};
use zoho_device_display::{DisplaySpec, Screen, Show};

use crate::exit::{AppError, Exit};

/// Writes a command's result on stdout, all of it, then flushes.
///
/// A reader that went away (`zoho-device doctor | head -1`, `| true`) is not an error: the
/// program ends there, quietly and with exit 0, as `cat` and ripgrep do, since nobody is left
/// to read the rest. (Rust ignores SIGPIPE, so a plain `println!` would panic instead.) Every
/// result on stdout goes through here; any other write error is reported.
pub fn stdout(text: &str) -> Result<(), AppError> {
    stdout_bytes(text.as_bytes())
}

/// [`stdout`] for bytes that need not be text (`api --raw` passes a body on as received).
pub fn stdout_bytes(bytes: &[u8]) -> Result<(), AppError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(e) => Err(AppError::new(Exit::Unexpected, format!("cannot write to stdout: {e}"))),
    }
}

/// Writes one JSON object per line on stdout.
#[derive(Debug, Default)]
pub struct JsonEvents;

impl JsonEvents {
    /// Emits `{"event": name, ...fields}`.
    pub fn emit(&self, name: &str, fields: Value) {
        let mut obj = serde_json::Map::new();
        obj.insert("event".into(), Value::String(name.into()));
        if let Value::Object(f) = fields {
            obj.extend(f);
        }
        let mut out = std::io::stdout().lock();
        // A closed stdout (the reader went away) must not kill a pairing in progress.
        let _ = writeln!(out, "{}", Value::Object(obj));
        let _ = out.flush();
    }
}

/// Who handles SIGTERM/SIGQUIT while a framebuffer display is open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signals {
    /// The display crate: it restores the console, then the process ends (`login`, `demo`;
    /// Ctrl-C is handled by `main` either way).
    Display,
    /// The program: the agent stops cleanly on SIGTERM and reloads on SIGHUP, dropping (and
    /// so restoring) its displays itself.
    Program,
}

/// Opens the displays for `specs` (flags, else config, else the default).
pub fn open_displays(specs: &[String], events: bool, signals: Signals) -> Result<Vec<Box<dyn Show + Send>>, AppError> {
    let specs: Vec<DisplaySpec> = if specs.is_empty() {
        // People see the terminal; with --events json and no terminal, the JSON carries the code.
        if !events || std::io::stderr().is_terminal() {
            vec![DisplaySpec::Terminal]
        } else {
            vec![]
        }
    } else {
        specs
            .iter()
            .map(|s| {
                s.parse::<DisplaySpec>().map_err(|e| {
                    AppError::usage(format!("--display {s:?}: {e}"))
                        .hint("e.g. --display terminal --display png=/run/zoho-device/pair.png")
                })
            })
            .collect::<Result<_, _>>()?
    };
    specs
        .iter()
        .map(|spec| {
            let handling = match signals {
                Signals::Display => zoho_device_display::SignalHandling::RestoreAndExit,
                Signals::Program => zoho_device_display::SignalHandling::Program,
            };
            zoho_device_display::OpenOptions::new()
                .signals(handling)
                .open(spec)
                .map_err(|e| {
                    AppError::new(Exit::Usage, format!("cannot open display {spec}: {e}"))
                        .hint("check the device or path, or choose another --display")
                })
        })
        .collect()
}

/// The pairing UI: displays plus optional JSON events.
pub struct PairingUi {
    displays: Vec<Box<dyn Show + Send>>,
    events: Option<JsonEvents>,
    current: Option<(UserPrompt, Instant)>,
    /// Whether the displays have shown anything yet (an error before pairing started is only
    /// printed by `main`, not drawn as a screen).
    drawn: bool,
    /// The host(s) the flow talks to, named in network warnings.
    server: Option<String>,
}

impl PairingUi {
    /// A UI over these outputs.
    pub fn new(displays: Vec<Box<dyn Show + Send>>, events: bool) -> PairingUi {
        PairingUi {
            displays,
            events: events.then_some(JsonEvents),
            current: None,
            drawn: false,
            server: None,
        }
    }

    /// The server(s) the flow talks to (URLs; only their hosts are kept), so that a network
    /// warning says which host did not resolve or answer.
    pub fn talking_to(&mut self, urls: &[&str]) {
        let mut hosts: Vec<String> = Vec::new();
        for u in urls {
            let host = host_of(u);
            if !host.is_empty() && !hosts.contains(&host) {
                hosts.push(host);
            }
        }
        self.server = (!hosts.is_empty()).then(|| hosts.join(" / "));
    }

    /// Emits a JSON event when events are on.
    pub fn event(&self, name: &str, fields: Value) {
        if let Some(ev) = &self.events {
            ev.emit(name, fields);
        }
    }

    /// Shows a screen on every display; a failing display is reported once per call, not fatal.
    pub fn show(&mut self, screen: &Screen) {
        self.drawn = true;
        for d in &mut self.displays {
            if let Err(e) = d.show(screen) {
                tracing::warn!("display update failed: {e}");
            }
        }
    }

    /// Handles one step of the flow.
    pub fn on_step(&mut self, step: &Step) {
        match step {
            Step::Prompt(p) => {
                // Logged, and shown on every display with the code (see `tick`).
                if let Some(w) = &p.warning {
                    tracing::warn!("{w}");
                }
                self.event(
                    "code",
                    json!({
                        "user_code": p.user_code,
                        "verification_url": p.verification_url,
                        "verification_uri_complete": p.verification_uri_complete,
                        "expires_in_s": p.expires_in.as_secs(),
                        "interval_s": secs_f(p.interval),
                        "warning": p.warning,
                    }),
                );
                self.current = Some((p.clone(), Instant::now() + p.expires_in));
                self.tick();
            }
            Step::Notice(n) => self.on_notice(n),
            Step::Wait(_) => self.tick(),
            Step::Send(_) | Step::Done(_) => {}
        }
    }

    /// Every poll outcome leaves a log line for `-vv` (pending at debug, the rest at info or
    /// warn, which `-vv` includes too); none carries the device code or a token.
    fn on_notice(&mut self, n: &Notice) {
        match n {
            Notice::Pending => {
                tracing::debug!("poll: authorization pending (not approved yet)");
                self.event("pending", json!({}));
            }
            Notice::SlowDown { interval } => {
                tracing::info!(
                    "the server asked to poll more slowly: every {} s now",
                    secs_f(*interval)
                );
                self.event("slow_down", json!({ "interval_s": secs_f(*interval) }));
            }
            Notice::OtherDc { location, accounts_url } => {
                self.talking_to(&[accounts_url]);
                tracing::info!("the account lives in data centre {location}; polling {accounts_url}");
                self.event(
                    "other_dc",
                    json!({ "location": location, "accounts_url": accounts_url }),
                );
            }
            Notice::Retry { reason, delay } => {
                match &self.server {
                    Some(host) => tracing::warn!("{host}: {reason}; retrying in {:.1} s", delay.as_secs_f64()),
                    None => tracing::warn!("{reason}; retrying in {:.1} s", delay.as_secs_f64()),
                }
                self.event("retry", json!({ "reason": reason.code(), "delay_s": secs_f(*delay) }));
            }
            Notice::CodeExpired { pause } => {
                tracing::info!("the code expired unattended; a new one comes in {} s", pause.as_secs());
                self.event("expired", json!({ "renewing": true, "pause_s": pause.as_secs() }));
                self.current = None;
                self.show(&Screen::CodeExpired);
            }
            other => tracing::debug!(?other, "notice"),
        }
    }

    /// Redraws the countdown.
    pub fn tick(&mut self) {
        let Some((p, deadline)) = &self.current else { return };
        let screen = Screen::Waiting {
            user_code: p.user_code.clone(),
            verification_url: p.verification_url.clone(),
            verification_uri_complete: p.verification_uri_complete.clone(),
            seconds_left: deadline.saturating_duration_since(Instant::now()).as_secs(),
            total_seconds: p.expires_in.as_secs(),
            warning: p.warning.clone(),
        };
        self.show(&screen);
    }

    /// Paired.
    pub fn authorized(&mut self, tokens: &Tokens, expires_in: Duration) {
        self.current = None;
        // Under the "Paired" headline on every display.
        let detail = match &tokens.location {
            Some(l) => format!("Zoho data centre: {l}"),
            None => "this device is authorised".to_string(),
        };
        self.show(&Screen::Paired { detail });
        self.event(
            "authorized",
            json!({
                "api_domain": tokens.api_domain.as_ref().map(|u| u.as_str()),
                "accounts_url": tokens.accounts_url.as_ref().map(|u| u.as_str()),
                "expires_in_s": expires_in.as_secs(),
            }),
        );
    }

    /// Failed.
    pub fn failed(&mut self, e: &AppError) {
        self.current = None;
        match e.exit {
            Exit::Denied => self.event("denied", json!({})),
            Exit::Expired => self.event("expired", json!({ "renewing": false })),
            _ => {}
        }
        self.event("error", json!({ "kind": e.exit.name(), "message": e.message }));
        if self.drawn {
            self.show(&Screen::Error {
                message: e.message.clone(),
            });
        }
    }
}

/// `accounts.zoho.eu` of `https://accounts.zoho.eu/oauth/v3/device/code` (with the port when
/// there is one).
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority.rsplit_once('@').map_or(authority, |(_, h)| h).to_string()
}

fn secs_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}
