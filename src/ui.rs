//! What a person or a program sees while pairing and keeping: the flow's steps and the keeper's
//! outcomes become [`Event`]s, and the displays ([`Screens`]), the JSON event stream
//! ([`JsonEvents`]) and whoever else subscribes (the agent's hook and status line) hear them.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use serde_json::{Value, json};
use zoho_device_core::{Event, Fanout, Notice, Step, Subscriber, Timestamp, Tokens, UserPrompt};
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

/// Writes one JSON object per line on stdout: the `--events json` stream, a subscriber to
/// [`Event`]s (and the agent's own lifecycle lines through [`JsonEvents::emit`]).
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

/// The JSON line an event is written as (name and fields), if it has one.
pub fn event_json(event: &Event) -> Option<(&'static str, Value)> {
    Some(match event {
        Event::CodeIssued(p) => (
            "code",
            json!({
                "user_code": p.user_code,
                "verification_url": p.verification_url,
                "verification_uri_complete": p.verification_uri_complete,
                "expires_in_s": p.expires_in.as_secs(),
                "interval_s": secs_f(p.interval),
                "warning": p.warning,
            }),
        ),
        Event::Pending => ("pending", json!({})),
        Event::SlowDown { interval } => ("slow_down", json!({ "interval_s": secs_f(*interval) })),
        Event::OtherDc { location, accounts_url } => (
            "other_dc",
            json!({ "location": location, "accounts_url": accounts_url }),
        ),
        Event::Retrying { reason, delay } => ("retry", json!({ "reason": reason.code(), "delay_s": secs_f(*delay) })),
        Event::CodeExpired { renew_in: Some(pause) } => {
            ("expired", json!({ "renewing": true, "pause_s": pause.as_secs() }))
        }
        Event::CodeExpired { renew_in: None } => ("expired", json!({ "renewing": false })),
        Event::Denied => ("denied", json!({})),
        Event::Failed { kind, message } => ("error", json!({ "kind": kind, "message": message })),
        Event::Paired {
            accounts_url,
            api_domain,
            expires_in,
            ..
        } => (
            "authorized",
            json!({
                "api_domain": api_domain.as_ref().map(|u| u.as_str()),
                "accounts_url": accounts_url.as_ref().map(|u| u.as_str()),
                "expires_in_s": expires_in.as_secs(),
            }),
        ),
        Event::Refreshed {
            expires_in,
            next_refresh_in,
        } => (
            "refreshed",
            json!({ "expires_in_s": expires_in.as_secs(), "next_refresh_in_s": secs_f(*next_refresh_in) }),
        ),
        Event::RefreshFailed {
            error,
            retry_in,
            token_valid,
        } => (
            "refresh_failed",
            json!({
                "kind": error.code(),
                "message": error.to_string(),
                "retry_in_s": secs_f(*retry_in),
                "token_valid_s": token_valid.as_secs(),
            }),
        ),
        Event::NeedsPairing { reason, message } => ("needs_pairing", json!({ "reason": reason, "message": message })),
        _ => return None,
    })
}

impl Subscriber for JsonEvents {
    fn on_event(&mut self, event: &Event) {
        if let Some((name, fields)) = event_json(event) {
            self.emit(name, fields);
        }
    }
}

/// What a display says under "Paired" once a pairing is made (and the agent's status line).
pub fn paired_detail(location: Option<&str>) -> String {
    match location {
        Some(l) => format!("Zoho data centre: {l}"),
        None => "this device is authorised".to_string(),
    }
}

/// The displays as a subscriber: each event that changes what a person should see becomes a
/// [`Screen`] on every display.
pub struct Screens {
    displays: Vec<Box<dyn Show + Send>>,
    /// The code out now (for the countdown's screens).
    prompt: Option<UserPrompt>,
    /// Whether the displays have shown anything yet (an error before pairing started is only
    /// printed by `main`, not drawn as a screen).
    drawn: bool,
}

impl Screens {
    /// These displays, nothing shown yet.
    pub fn new(displays: Vec<Box<dyn Show + Send>>) -> Screens {
        Screens {
            displays,
            prompt: None,
            drawn: false,
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
}

impl Subscriber for Screens {
    fn on_event(&mut self, event: &Event) {
        match event {
            Event::CodeIssued(p) => self.prompt = Some(p.clone()),
            Event::CodeWaiting { left, .. } => {
                let Some(p) = &self.prompt else { return };
                let screen = Screen::Waiting {
                    user_code: p.user_code.clone(),
                    verification_url: p.verification_url.clone(),
                    verification_uri_complete: p.verification_uri_complete.clone(),
                    seconds_left: left.as_secs(),
                    total_seconds: p.expires_in.as_secs(),
                    warning: p.warning.clone(),
                };
                self.show(&screen);
            }
            Event::CodeExpired { renew_in } => {
                self.prompt = None;
                if renew_in.is_some() {
                    self.show(&Screen::CodeExpired);
                }
            }
            Event::Paired { location, .. } => {
                self.prompt = None;
                self.show(&Screen::Paired {
                    detail: paired_detail(location.as_deref()),
                });
            }
            Event::Failed { message, .. } => {
                self.prompt = None;
                if self.drawn {
                    self.show(&Screen::Error {
                        message: message.clone(),
                    });
                }
            }
            Event::Denied => self.prompt = None,
            Event::NeedsPairing { message, .. } => self.show(&Screen::NeedsPairing {
                reason: message.clone(),
            }),
            _ => {}
        }
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

/// What pairing and keeping tell their audience: every [`Event`] goes to the displays
/// ([`Screens`]), then to the subscribers added with [`PairingUi::subscribe`] (the agent's
/// status line and hook), then to the JSON event stream when it is on. It also keeps the
/// code's countdown ([`Event::CodeWaiting`], once a second from [`PairingUi::tick`]) and logs
/// each flow notice.
pub struct PairingUi {
    screens: Screens,
    subscribers: Fanout<'static>,
    events: Option<JsonEvents>,
    /// The code out and when it expires, on the flow's clock (the prompt's `expires_at`).
    current: Option<(String, Timestamp)>,
    /// The host(s) the flow talks to, named in network warnings.
    server: Option<String>,
}

impl PairingUi {
    /// A UI over these outputs.
    pub fn new(displays: Vec<Box<dyn Show + Send>>, events: bool) -> PairingUi {
        PairingUi {
            screens: Screens::new(displays),
            subscribers: Fanout::new(),
            events: events.then_some(JsonEvents),
            current: None,
            server: None,
        }
    }

    /// Adds a subscriber: it hears every event after the displays and before the JSON stream.
    pub fn subscribe(&mut self, subscriber: impl Subscriber + Send + 'static) {
        self.subscribers.subscribe(subscriber);
    }

    /// Tells every subscriber.
    pub fn publish(&mut self, event: &Event) {
        self.screens.on_event(event);
        self.subscribers.publish(event);
        if let Some(json) = &mut self.events {
            json.on_event(event);
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

    /// Emits a JSON line of the agent's own (`clock_ok`, `reloaded`, `stopping`…) when events
    /// are on. What happens to the pairing goes through [`PairingUi::publish`].
    pub fn event(&self, name: &str, fields: Value) {
        if let Some(ev) = &self.events {
            ev.emit(name, fields);
        }
    }

    /// Shows a screen of the caller's own state on every display (the agent's "paired" at
    /// start-up).
    pub fn show(&mut self, screen: &Screen) {
        self.screens.show(screen);
    }

    /// Handles one step of the flow: logs it, and publishes the event it carries.
    pub fn on_step(&mut self, step: &Step, now: Timestamp) {
        match step {
            Step::Prompt(p) => {
                // Logged, and shown on every display with the code (see `tick`).
                if let Some(w) = &p.warning {
                    tracing::warn!("{w}");
                }
                self.current = Some((p.user_code.clone(), p.expires_at));
            }
            Step::Notice(n) => self.log_notice(n),
            Step::Wait(_) | Step::Send(_) | Step::Done(_) => {}
        }
        if let Some(event) = Event::from_step(step) {
            if matches!(event, Event::CodeExpired { .. }) {
                self.current = None;
            }
            self.publish(&event);
        }
        if matches!(step, Step::Prompt(_) | Step::Wait(_)) {
            self.tick(now);
        }
    }

    /// Every poll outcome leaves a log line for `-vv` (pending at debug, the rest at info or
    /// warn, which `-vv` includes too); none carries the device code or a token.
    fn log_notice(&mut self, n: &Notice) {
        match n {
            Notice::Pending => tracing::debug!("poll: authorization pending (not approved yet)"),
            Notice::SlowDown { interval } => tracing::info!(
                "the server asked to poll more slowly: every {} s now",
                secs_f(*interval)
            ),
            Notice::OtherDc { location, accounts_url } => {
                self.talking_to(&[accounts_url]);
                tracing::info!("the account lives in data centre {location}; polling {accounts_url}");
            }
            Notice::Retry { reason, delay } => match &self.server {
                Some(host) => tracing::warn!("{host}: {reason}; retrying in {:.1} s", delay.as_secs_f64()),
                None => tracing::warn!("{reason}; retrying in {:.1} s", delay.as_secs_f64()),
            },
            Notice::CodeExpired { pause } => {
                tracing::info!("the code expired unattended; a new one comes in {} s", pause.as_secs());
            }
            other => tracing::debug!(?other, "notice"),
        }
    }

    /// The countdown: while a code is out, how long it has left at `now` (the flow's clock, the
    /// one the prompt's `expires_at` is on).
    pub fn tick(&mut self, now: Timestamp) {
        let Some((user_code, expires_at)) = &self.current else {
            return;
        };
        let event = Event::CodeWaiting {
            user_code: user_code.clone(),
            left: expires_at.saturating_duration_since(now),
        };
        self.publish(&event);
    }

    /// Paired.
    pub fn authorized(&mut self, tokens: &Tokens, expires_in: Duration) {
        self.current = None;
        self.publish(&Event::paired(tokens, expires_in));
    }

    /// Failed.
    pub fn failed(&mut self, e: &AppError) {
        self.current = None;
        match e.exit {
            Exit::Denied => self.publish(&Event::Denied),
            Exit::Expired => self.publish(&Event::CodeExpired { renew_in: None }),
            _ => {}
        }
        self.publish(&Event::Failed {
            kind: e.exit.name(),
            message: e.message.clone(),
        });
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use zoho_device_core::{Error, ServerUrl, Transient};

    use super::*;

    /// A display that remembers what it was shown.
    struct Recorder(Arc<Mutex<Vec<Screen>>>);

    impl Show for Recorder {
        fn show(&mut self, screen: &Screen) -> std::io::Result<()> {
            self.0.lock().unwrap().push(screen.clone());
            Ok(())
        }
    }

    /// A subscriber that remembers what it heard.
    struct Heard(Arc<Mutex<Vec<Event>>>);

    impl Subscriber for Heard {
        fn on_event(&mut self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    fn prompt() -> UserPrompt {
        UserPrompt {
            user_code: "WLKU-4502".into(),
            verification_url: "https://accounts.zoho.eu/oauth/v3/device".into(),
            verification_uri_complete: None,
            expires_at: Timestamp::from_millis(300_000),
            expires_in: Duration::from_secs(300),
            interval: Duration::from_secs(30),
            warning: None,
        }
    }

    #[test]
    fn the_displays_and_every_subscriber_hear_the_same_pairing() {
        let screens = Arc::new(Mutex::new(Vec::new()));
        let heard = Arc::new(Mutex::new(Vec::new()));
        let mut ui = PairingUi::new(vec![Box::new(Recorder(screens.clone()))], false);
        ui.subscribe(Heard(heard.clone()));

        let at = Timestamp::from_millis;
        ui.on_step(&Step::Prompt(prompt()), at(0));
        ui.tick(at(120_400)); // the countdown runs on the prompt's expires_at (300 s on the flow's clock)
        ui.on_step(&Step::Notice(Notice::Pending), at(121_000));
        ui.on_step(
            &Step::Notice(Notice::CodeExpired {
                pause: Duration::from_secs(5),
            }),
            at(300_000),
        );
        ui.tick(at(301_000)); // no code out: no countdown
        ui.failed(&AppError::new(Exit::Denied, "the user denied the request"));

        let heard = heard.lock().unwrap().clone();
        assert!(matches!(&heard[0], Event::CodeIssued(p) if p.user_code == "WLKU-4502"));
        assert!(
            matches!(&heard[1], Event::CodeWaiting { user_code, left } if user_code == "WLKU-4502" && left.as_secs() == 300)
        );
        assert!(
            matches!(&heard[2], Event::CodeWaiting { left, .. } if *left == Duration::from_millis(179_600)),
            "{:?}",
            heard[2]
        );
        assert_eq!(
            heard[3..],
            [
                Event::Pending,
                Event::CodeExpired {
                    renew_in: Some(Duration::from_secs(5))
                },
                Event::Denied,
                Event::Failed {
                    kind: "denied",
                    message: "the user denied the request".into()
                },
            ]
        );
        let screens = screens.lock().unwrap().clone();
        assert_eq!(screens.len(), 4, "{screens:?}");
        assert!(
            matches!(&screens[0], Screen::Waiting { user_code, total_seconds: 300, seconds_left: 300, .. } if user_code == "WLKU-4502")
        );
        assert!(matches!(&screens[1], Screen::Waiting { seconds_left: 179, .. }));
        assert_eq!(screens[2], Screen::CodeExpired);
        assert_eq!(
            screens[3],
            Screen::Error {
                message: "the user denied the request".into()
            }
        );
    }

    #[test]
    fn an_error_before_anything_was_drawn_is_not_a_screen() {
        let screens = Arc::new(Mutex::new(Vec::new()));
        let mut ui = PairingUi::new(vec![Box::new(Recorder(screens.clone()))], false);
        ui.failed(&AppError::usage("no client ID"));
        assert!(screens.lock().unwrap().is_empty());
    }

    #[test]
    fn each_event_keeps_its_json_name_and_fields() {
        let line = |e: &Event| event_json(e).map(|(name, v)| format!("{name} {v}"));
        assert_eq!(
            line(&Event::CodeIssued(prompt())).unwrap(),
            r#"code {"expires_in_s":300,"interval_s":30.0,"user_code":"WLKU-4502","verification_uri_complete":null,"verification_url":"https://accounts.zoho.eu/oauth/v3/device","warning":null}"#
        );
        assert_eq!(
            line(&Event::CodeWaiting {
                user_code: "X".into(),
                left: Duration::ZERO
            }),
            None
        );
        assert_eq!(
            line(&Event::Retrying {
                reason: Transient::Status(503),
                delay: Duration::from_millis(1500)
            })
            .unwrap(),
            r#"retry {"delay_s":1.5,"reason":"http_503"}"#
        );
        assert_eq!(
            line(&Event::CodeExpired {
                renew_in: Some(Duration::from_secs(5))
            })
            .unwrap(),
            r#"expired {"pause_s":5,"renewing":true}"#
        );
        assert_eq!(
            line(&Event::CodeExpired { renew_in: None }).unwrap(),
            r#"expired {"renewing":false}"#
        );
        assert_eq!(
            line(&Event::Paired {
                location: Some("eu".into()),
                accounts_url: Some(ServerUrl::parse("https://accounts.zoho.eu").unwrap()),
                api_domain: None,
                expires_in: Duration::from_secs(3600),
            })
            .unwrap(),
            r#"authorized {"accounts_url":"https://accounts.zoho.eu","api_domain":null,"expires_in_s":3600}"#
        );
        assert_eq!(
            line(&Event::Refreshed {
                expires_in: Duration::from_secs(3600),
                next_refresh_in: Duration::from_millis(2_880_250)
            })
            .unwrap(),
            r#"refreshed {"expires_in_s":3600,"next_refresh_in_s":2880.25}"#
        );
        assert_eq!(
            line(&Event::RefreshFailed {
                error: Error::Throttled,
                retry_in: Duration::from_secs(60),
                token_valid: Duration::from_secs(100),
            })
            .unwrap(),
            format!(
                r#"refresh_failed {{"kind":"throttled","message":{},"retry_in_s":60.0,"token_valid_s":100}}"#,
                Value::String(Error::Throttled.to_string())
            )
        );
        assert_eq!(
            line(&Event::NeedsPairing {
                reason: "not_paired",
                message: "this device is not paired yet".into()
            })
            .unwrap(),
            r#"needs_pairing {"message":"this device is not paired yet","reason":"not_paired"}"#
        );
    }
}
