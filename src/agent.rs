//! `zoho-device agent`: the long-running mode of a kiosk (issue 8).
//!
//! ```text
//!   start ─> clock plausible? ──no──> waiting_for_clock (re-checked every second, nothing sent)
//!              │yes
//!              v
//!   token file? ──none/unreadable──> needs_pairing ─> kiosk login on the displays (+ hook) ─┐
//!              │yes                        ^                                               │
//!              v                           │ invalid_code (revoked, evicted, password)     │
//!   paired: sleep (monotonic) until expiry − lead ─> refresh under the store's lock ───────┘
//!              ^                                    │ transient (network, 5xx, throttle):
//!              └──── capped backoff, token kept ────┘ retried, the current token still used
//! ```
//!
//! **Refresh timing.** For a token of lifetime `L` (the server's `expires_in`; for a token read
//! from the file, `expires_at − refreshed_at`) the agent refreshes `lead` before expiry, where
//! `margin = min(--refresh-margin, L/4)` and `lead = margin + jitter`, the jitter uniform in
//! `[0, margin/4]` (so a fleet spreads out). Zoho's 1-hour tokens: refreshed 10 to 12.5 minutes
//! before expiry, which is earlier than the `token` command's 5-minute rule, so other programs
//! never refresh on their own while the agent runs; a 4-second test token: after ~3 s. Two
//! refreshes are never closer than `clamp(L/4, 1 s, 60 s)` (no storm even if a server hands out
//! tokens that are already nearly expired). A failed refresh is retried with capped, jittered
//! backoff (base `clamp(lead/8, 100 ms, 1 s)`, cap `clamp(lead/4, 1 s, 120 s)`; after Zoho's
//! throttle at least the minimum spacing) while the current access token stays in use.
//!
//! **Clocks.** Deadlines live on the monotonic clock (tokio's): an NTP step does not move a
//! planned refresh. Wall-clock time is read only to convert the file's Unix expiry and to write
//! a new one, and not at all while the clock reads earlier than the build date (a board
//! without RTC before NTP): the agent then emits `waiting_for_clock` once and re-checks every
//! second without sending anything. Each refresh reply's `Date` header is compared with the
//! local clock; a skew over two minutes is logged and emitted as `clock_skew`. The monotonic
//! clock stops while the board is suspended: the agent wakes once a minute, and when the wall
//! clock moved more than 30 s further than the monotonic one, reads the expiry again.
//!
//! **Signals.** SIGTERM ends at once and cleanly: a refresh in flight is abandoned (the file is
//! written only after a complete reply, atomically, on this one thread, so it is never half
//! written). SIGHUP re-reads the configuration (command line, environment, config file), reopens
//! the displays and starts over from the token file.
//!
//! For tests only, `ZOHO_DEVICE_TEST_CLOCK_OFFSET_S` shifts the agent's idea of the wall clock
//! (for the plausibility check and the `Date` cross-check): seconds, or the absolute path of a
//! file holding the seconds (re-read at every check, so a test can "set the clock" later).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use zoho_device_core::{Backoff, Error};
use zoho_device_display::{Display, Screen};

use crate::app::{self, Context};
use crate::cli::{AgentArgs, Cli, Command, EventsFormat};
use crate::clock;
use crate::exit::{AppError, Exit};
use crate::login::{self, LoginOptions};
use crate::notify::Notifier;
use crate::settings::Settings;
use crate::store::{StoredToken, wall_now};
use crate::ui::{PairingUi, Signals, open_displays};

/// How soon a refresh is tried again after another process held the lock too long.
const LOCK_RETRY: Duration = Duration::from_secs(30);

/// How often an implausible clock is looked at again.
const CLOCK_RECHECK: Duration = Duration::from_secs(1);
/// How often the agent wakes while idle: the `STATUS=` line, the suspend check.
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// A hook still running after this is killed.
const HOOK_TIMEOUT: Duration = Duration::from_secs(120);
/// A wall clock moving this much further than the monotonic one means suspend or a clock step.
const JUMP_S: i64 = 30;
/// A local clock further than this from the server's `Date` is reported.
const SKEW_REPORT_S: i64 = 120;

/// The part of the margin actually used for a token of `lifetime`: `min(configured, lifetime/4)`.
pub fn effective_margin(configured: Duration, lifetime: Duration) -> Duration {
    configured.min(lifetime / 4)
}

/// The least time between two refreshes: `clamp(lifetime/4, 1 s, 60 s)`.
pub fn min_spacing(lifetime: Duration) -> Duration {
    (lifetime / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Backoff base and cap for transient refresh failures, from the refresh lead.
pub fn retry_bounds(lead: Duration) -> (Duration, Duration) {
    (
        (lead / 8).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        (lead / 4).clamp(Duration::from_secs(1), Duration::from_secs(120)),
    )
}

/// Runs the agent until SIGTERM (exit 0) or a configuration error (exit 2).
pub async fn run(ctx: Context, args: AgentArgs) -> Result<(), AppError> {
    // The state file sits beside the token file, in its 0700 directory. A directory another
    // user owns or others can write stops the agent (a configuration error); a full or
    // read-only disk does not (it may clear; each save says so meanwhile).
    match ctx.store.check_writable() {
        Err(e) if e.exit == Exit::Usage => return Err(e),
        Err(e) => tracing::warn!("{}", e.message),
        Ok(()) => {}
    }
    // The Books gateway (`--serve`) runs beside the loop, reading the token file it keeps.
    let _gateway = crate::gateway::start(&ctx.settings, &args).await?;
    let notifier = Arc::new(Notifier::from_env().with_state_file(ctx.store.agent_state_path()));
    let sig_err = |e: std::io::Error| AppError::new(Exit::Unexpected, format!("cannot handle signals: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(sig_err)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(sig_err)?;
    let mut agent = Agent::new(ctx, args, notifier.clone())?;
    if let Some(timeout) = notifier.watchdog() {
        let n = notifier.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(timeout / 2);
            loop {
                every.tick().await;
                n.notify("WATCHDOG=1");
            }
        });
    }
    notifier.notify("READY=1");
    tracing::info!(token_file = %agent.ctx.store.path().display(), "agent started");
    loop {
        let wake = {
            let step = agent.step();
            tokio::select! {
                biased;
                _ = sigterm.recv() => Wake::Term,
                _ = sighup.recv() => Wake::Hup,
                r = step => Wake::Step(r),
            }
        };
        match wake {
            Wake::Term => {
                notifier.notify("STOPPING=1");
                tracing::info!("SIGTERM: stopping (the token file is complete)");
                notifier.status("stopped (SIGTERM)");
                agent.ui.event("stopping", json!({}));
                return Ok(());
            }
            Wake::Hup => {
                notifier.notify("RELOADING=1");
                agent.reload();
                notifier.notify("READY=1");
            }
            Wake::Step(Ok(())) => {}
            Wake::Step(Err(e)) => {
                notifier.status(&format!("stopped: {}", e.message));
                agent
                    .ui
                    .event("error", json!({ "kind": e.exit.name(), "message": e.message }));
                return Err(e);
            }
        }
    }
}

enum Wake {
    Term,
    Hup,
    Step(Result<(), AppError>),
}

/// The token the agent keeps, with its deadlines on the monotonic clock.
#[derive(Clone, Debug)]
struct Current {
    stored: StoredToken,
    valid_until: Instant,
    lifetime: Duration,
    lead: Duration,
}

/// Why pairing is needed, and whether it was announced.
#[derive(Debug)]
struct Pairing {
    reason: &'static str,
    message: String,
    announced: bool,
}

struct Agent {
    ctx: Context,
    args: AgentArgs,
    ui: PairingUi,
    hook: Arc<HookState>,
    notifier: Arc<Notifier>,
    rng: Backoff,
    current: Option<Current>,
    pairing: Option<Pairing>,
    failures: u32,
    next_attempt: Option<Instant>,
    last_mint: Option<Instant>,
    last_error: Option<String>,
    waiting_for_clock: bool,
    reported_skew: Option<i64>,
}

impl Agent {
    fn new(ctx: Context, args: AgentArgs, notifier: Arc<Notifier>) -> Result<Agent, AppError> {
        let hook = Arc::new(HookState {
            notifier: notifier.clone(),
            inner: Mutex::new(HookInner {
                command: args.on_needs_pairing.clone().or(ctx.settings.on_needs_pairing.clone()),
                reason: "not_paired",
                last_code: None,
            }),
        });
        let ui = build_ui(&ctx.settings, &args, &hook)?;
        Ok(Agent {
            ctx,
            args,
            ui,
            hook,
            notifier,
            rng: Backoff::new(Duration::from_secs(1), Duration::from_secs(1), app::seed()),
            current: None,
            pairing: None,
            failures: 0,
            next_attempt: None,
            last_mint: None,
            last_error: None,
            waiting_for_clock: false,
            reported_skew: None,
        })
    }

    /// One turn of the loop. Cancel-safe: dropped at any `.await` (a signal), the agent's
    /// state and the token file stay consistent.
    async fn step(&mut self) -> Result<(), AppError> {
        if !self.clock_plausible() {
            tokio::time::sleep(CLOCK_RECHECK).await;
            return Ok(());
        }
        if self.pairing.is_some() {
            return self.pair().await;
        }
        let Some(cur) = self.current.clone() else {
            return self.load();
        };
        let at = self.refresh_at(&cur);
        if !self.sleep_until(at).await {
            // Suspended, or the clock was set forward: the monotonic deadline is stale.
            self.current = None;
            return Ok(());
        }
        self.refresh(cur).await
    }

    fn clock_plausible(&mut self) -> bool {
        let now_s = clock::now_s();
        if clock::plausible(now_s) {
            if self.waiting_for_clock {
                self.waiting_for_clock = false;
                tracing::info!("the system clock is plausible now ({})", clock::display(now_s));
                self.ui.event("clock_ok", json!({ "clock_unix": now_s }));
            }
            return true;
        }
        if !self.waiting_for_clock {
            self.waiting_for_clock = true;
            let line = format!(
                "waiting for NTP: {}; no expiry decision until it is set",
                clock::behind(now_s)
            );
            tracing::warn!("{line}");
            self.notifier.status(&line);
            self.ui.event(
                "waiting_for_clock",
                json!({ "clock_unix": now_s, "build_unix": clock::FLOOR_S }),
            );
        }
        false
    }

    /// Reads the token file: paired, or pairing needed.
    fn load(&mut self) -> Result<(), AppError> {
        match self.ctx.store.load() {
            Ok(Some(stored)) => {
                self.ctx.client_for(&stored)?;
                let cur = self.adopt(stored);
                tracing::info!(
                    valid_s = cur.valid_until.saturating_duration_since(Instant::now()).as_secs(),
                    "paired; keeping the token fresh"
                );
                let detail = paired_detail(&cur.stored);
                self.ui.show(&Screen::Paired { detail });
                self.current = Some(cur);
                self.status();
            }
            Ok(None) => self.needs_pairing("not_paired", "this device is not paired yet".into()),
            Err(e) => self.needs_pairing("token_file_unreadable", e.message),
        }
        Ok(())
    }

    /// A token read from the file, its deadlines moved to the monotonic clock.
    fn adopt(&mut self, stored: StoredToken) -> Current {
        let wall = wall_now();
        let remaining = stored.tokens.expires_in(wall);
        let life_ms = stored.tokens.expires_at.as_millis().saturating_sub(stored.refreshed_at);
        let lifetime = if life_ms == 0 {
            remaining
        } else {
            Duration::from_millis(life_ms)
        };
        let lead = self.plan_lead(lifetime);
        Current {
            stored,
            valid_until: Instant::now() + remaining,
            lifetime,
            lead,
        }
    }

    fn plan_lead(&mut self, lifetime: Duration) -> Duration {
        let margin = effective_margin(Duration::from_secs(self.args.refresh_margin), lifetime);
        margin + self.rng.jitter(margin / 4)
    }

    fn refresh_at(&self, cur: &Current) -> Instant {
        let now = Instant::now();
        let mut at = if cur.stored.tokens.refresh_token.is_some() {
            cur.valid_until.checked_sub(cur.lead).unwrap_or(now)
        } else {
            cur.valid_until
        };
        if let Some(last) = self.last_mint {
            at = at.max(last + min_spacing(cur.lifetime));
        }
        if let Some(next) = self.next_attempt {
            at = at.max(next);
        }
        at
    }

    /// Sleeps until `at` (monotonic), waking every minute to refresh the `STATUS=` line and to
    /// compare the clocks: `false` when the wall clock moved more than [`JUMP_S`] further than
    /// the monotonic one (the board was suspended — the monotonic clock stops then — or the
    /// clock was set forward), so the token's expiry must be read again.
    async fn sleep_until(&self, at: Instant) -> bool {
        loop {
            let now = Instant::now();
            if at <= now {
                return true;
            }
            self.status();
            let wall_before = wall_now().as_millis();
            tokio::time::sleep((at - now).min(STATUS_EVERY)).await;
            let mono = now.elapsed().as_millis() as i64;
            let wall = wall_now().as_millis() as i64 - wall_before as i64;
            if wall - mono > JUMP_S * 1000 {
                tracing::info!(
                    "the wall clock moved {} s more than the monotonic clock (suspend, or the clock was set); reading the token's expiry again",
                    (wall - mono) / 1000
                );
                return false;
            }
        }
    }

    /// Refreshes under the store's lock, unless another process already did.
    async fn refresh(&mut self, cur: Current) -> Result<(), AppError> {
        let _lock = match self.ctx.lock().await {
            Ok(l) => l,
            // Another process holds the lock for over a minute (hung): not a reason to stop;
            // try again later while the current token lasts.
            Err(e) if e.exit == Exit::Unavailable => {
                let delay = LOCK_RETRY;
                tracing::warn!("{}; trying again in {}", e.message, human(delay));
                self.last_error = Some(e.message);
                self.next_attempt = Some(Instant::now() + delay);
                self.current = Some(cur);
                self.status();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let cur = match self.ctx.store.load() {
            Ok(Some(on_file)) if same_tokens(&on_file, &cur.stored) => cur,
            Ok(Some(on_file)) => {
                self.ctx.client_for(&on_file)?;
                let other = self.adopt(on_file);
                if other.valid_until.saturating_duration_since(Instant::now()) > other.lead {
                    tracing::info!("another process refreshed or paired; using its token");
                    self.current = Some(other);
                    self.status();
                    return Ok(());
                }
                other
            }
            Ok(None) => {
                self.current = None;
                self.needs_pairing("token_file_deleted", "the token file was deleted".into());
                return Ok(());
            }
            Err(e) => {
                self.current = None;
                self.needs_pairing("token_file_unreadable", e.message);
                return Ok(());
            }
        };
        if cur.stored.tokens.refresh_token.is_none() {
            if Instant::now() >= cur.valid_until {
                self.current = None;
                self.needs_pairing(
                    "no_refresh_token",
                    "the access token expired and there is no refresh token".into(),
                );
            } else {
                self.current = Some(cur);
            }
            return Ok(());
        }
        let client = self.ctx.client_for(&cur.stored)?;
        let endpoint = match self.ctx.token_endpoint(&cur.stored).await {
            Ok(e) => e,
            Err(e) => {
                self.current = None;
                self.needs_pairing("token_file_unreadable", e.message);
                return Ok(());
            }
        };
        let req = endpoint.refresh_request_for(&client, &cur.stored.tokens)?;
        let started = Instant::now();
        let result = match self.ctx.http.send(&req).await {
            Ok(r) => {
                self.cross_check(r.date.as_deref());
                endpoint.refresh_response(wall_now(), r.response.status, &r.response.body, &cur.stored.tokens)
            }
            Err(t) => Err(Error::from(t)),
        };
        match result {
            Ok(tokens) => {
                let wall = wall_now();
                let remaining = tokens.expires_in(wall);
                let fresh = cur.stored.with_tokens(tokens, wall);
                self.last_error = None;
                if let Err(e) = self.ctx.store.save(&fresh) {
                    // Keep the new token in memory; other programs refresh for themselves.
                    tracing::error!("{}", e.message);
                    self.last_error = Some(format!("cannot write the token file: {}", e.message));
                }
                let lead = self.plan_lead(remaining);
                let next = Current {
                    stored: fresh,
                    valid_until: started + remaining,
                    lifetime: remaining,
                    lead,
                };
                self.current = Some(next.clone());
                self.last_mint = Some(started);
                self.failures = 0;
                self.next_attempt = None;
                let next_in = self.refresh_at(&next).saturating_duration_since(Instant::now());
                tracing::info!(
                    expires_in_s = remaining.as_secs(),
                    next_refresh_in_s = next_in.as_secs(),
                    "access token refreshed"
                );
                self.ui.event(
                    "refreshed",
                    json!({ "expires_in_s": remaining.as_secs(), "next_refresh_in_s": secs_f(next_in) }),
                );
                self.status();
            }
            Err(e @ Error::InvalidGrant { .. }) => {
                tracing::warn!("{e}");
                self.current = None;
                self.needs_pairing("refresh_token_rejected", e.to_string());
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let delay = if e.is_transient() {
                    let (base, cap) = retry_bounds(cur.lead);
                    let d = Backoff::new(base, cap, app::seed()).delay(self.failures);
                    if matches!(e, Error::Throttled) {
                        d.max(min_spacing(cur.lifetime))
                    } else {
                        d
                    }
                } else {
                    // The client was rejected, unsafe data, an undocumented reply: nothing a
                    // quick retry fixes. Keep trying slowly (a fix in the API console or a
                    // SIGHUP with new settings is picked up).
                    Backoff::new(min_spacing(cur.lifetime), Duration::from_secs(900), app::seed()).delay(self.failures)
                };
                let valid = cur.valid_until.saturating_duration_since(Instant::now());
                tracing::warn!(
                    "refresh failed ({e}); retrying in {:.1} s; the current access token is valid for {} s",
                    delay.as_secs_f64(),
                    valid.as_secs()
                );
                // Status (and its state file) first: whoever reacts to the event reads it.
                self.last_error = Some(format!("refresh failed ({}), retrying in {}", e.code(), human(delay)));
                self.next_attempt = Some(Instant::now() + delay);
                self.current = Some(cur);
                self.status();
                self.ui.event(
                    "refresh_failed",
                    json!({
                        "kind": e.code(),
                        "message": e.to_string(),
                        "retry_in_s": secs_f(delay),
                        "token_valid_s": valid.as_secs(),
                    }),
                );
            }
        }
        Ok(())
    }

    /// Pairing: announce once, then the kiosk login until approved.
    async fn pair(&mut self) -> Result<(), AppError> {
        let Some(p) = self.pairing.as_mut() else { return Ok(()) };
        if !p.announced {
            p.announced = true;
            let (reason, message) = (p.reason, p.message.clone());
            tracing::warn!(reason, "needs pairing: {message}");
            self.hook.begin(reason);
            self.ui
                .event("needs_pairing", json!({ "reason": reason, "message": message }));
            self.ui.show(&Screen::NeedsPairing {
                reason: message.clone(),
            });
            self.notifier.status(&format!("needs pairing: {message}"));
        }
        if let Some(at) = self.next_attempt {
            tokio::time::sleep_until(at).await;
            self.next_attempt = None;
        }
        let opts = LoginOptions {
            kiosk: true,
            min_interval: None,
        };
        match login::login(&self.ctx, &mut self.ui, &opts).await {
            Ok(stored) => {
                let cur = self.adopt(stored.clone());
                self.current = Some(cur);
                self.pairing = None;
                self.failures = 0;
                self.last_error = None;
                self.last_mint = Some(Instant::now());
                self.hook.end();
                self.status();
                Ok(())
            }
            Err(e) if e.exit == Exit::Usage => Err(e),
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                let delay =
                    Backoff::new(Duration::from_secs(2), Duration::from_secs(900), app::seed()).delay(self.failures);
                tracing::warn!(
                    "pairing failed ({}); trying again in {:.0} s",
                    e.message,
                    delay.as_secs_f64()
                );
                self.notifier.status(&format!(
                    "pairing failed: {}; trying again in {}",
                    e.message,
                    human(delay)
                ));
                self.next_attempt = Some(Instant::now() + delay);
                Ok(())
            }
        }
    }

    fn needs_pairing(&mut self, reason: &'static str, message: String) {
        self.pairing = Some(Pairing {
            reason,
            message,
            announced: false,
        });
        self.next_attempt = None;
        self.failures = 0;
    }

    /// The server's `Date` against the local clock.
    fn cross_check(&mut self, date: Option<&str>) {
        let Some(server) = date.and_then(clock::parse_http_date) else {
            return;
        };
        let skew = clock::now_s() - server as i64;
        if skew.abs() > SKEW_REPORT_S {
            if self.reported_skew.is_none_or(|r| (r - skew).abs() > 60) {
                self.reported_skew = Some(skew);
                tracing::warn!(
                    "the local clock is {} s {} the server's; token expiries are kept on the monotonic clock",
                    skew.abs(),
                    if skew > 0 { "ahead of" } else { "behind" }
                );
                self.ui.event("clock_skew", json!({ "skew_s": skew }));
            }
        } else if self.reported_skew.take().is_some() {
            tracing::info!("the local clock agrees with the server's again");
        }
    }

    /// `STATUS=` for the paired state.
    fn status(&self) {
        if !self.notifier.wants_status() {
            return;
        }
        let Some(cur) = &self.current else { return };
        let left = cur.valid_until.saturating_duration_since(Instant::now());
        let mut line = if left.is_zero() {
            format!("{}, access token expired", paired_detail(&cur.stored))
        } else {
            format!("{}, token valid for {}", paired_detail(&cur.stored), human(left))
        };
        if let Some(err) = &self.last_error {
            line.push_str("; ");
            line.push_str(err);
        }
        self.notifier.status(&line);
    }

    /// SIGHUP: settings again from the command line, environment and config file.
    fn reload(&mut self) {
        let parsed = Cli::try_parse_from(std::env::args_os())
            .map_err(|e| AppError::usage(e.to_string()))
            .and_then(|cli| match cli.command {
                Command::Agent(args) => Ok((Settings::resolve(&cli.global)?, args)),
                _ => Err(AppError::usage("not started as `zoho-device agent`")),
            })
            .and_then(|(settings, args)| Ok((Context::new(settings)?, args)));
        let (ctx, args) = match parsed {
            Ok(x) => x,
            Err(e) => {
                tracing::error!(
                    "SIGHUP: the new configuration is not valid, keeping the old one: {}",
                    e.message
                );
                self.ui
                    .event("error", json!({ "kind": e.exit.name(), "message": e.message }));
                return;
            }
        };
        if let Ok(mut h) = self.hook.inner.lock() {
            h.command = args.on_needs_pairing.clone().or(ctx.settings.on_needs_pairing.clone());
        }
        // Close the old displays first (a web display holds its port).
        self.ui = PairingUi::new(Vec::new(), args.events == Some(EventsFormat::Json));
        self.ui = match build_ui(&ctx.settings, &args, &self.hook) {
            Ok(ui) => ui,
            Err(e) => {
                tracing::error!("SIGHUP: {}; showing nothing", e.message);
                PairingUi::new(
                    vec![Box::new(AgentDisplay {
                        hook: self.hook.clone(),
                    })],
                    args.events == Some(EventsFormat::Json),
                )
            }
        };
        self.ctx = ctx;
        self.args = args;
        self.current = None;
        // A dead refresh token stays dead: keep asking for pairing (the file still holds it).
        // Otherwise the token file decides again (it may be another file now).
        if self
            .pairing
            .as_ref()
            .is_some_and(|p| !matches!(p.reason, "refresh_token_rejected" | "no_refresh_token"))
        {
            self.pairing = None;
        }
        self.failures = 0;
        self.next_attempt = None;
        tracing::info!(token_file = %self.ctx.store.path().display(), "SIGHUP: configuration reloaded");
        self.ui.event("reloaded", json!({}));
    }
}

fn build_ui(settings: &Settings, args: &AgentArgs, hook: &Arc<HookState>) -> Result<PairingUi, AppError> {
    let events = args.events == Some(EventsFormat::Json);
    let specs = if args.displays.is_empty() {
        settings.displays.clone()
    } else {
        args.displays.clone()
    };
    let mut displays = open_displays(&specs, events, Signals::Program)?;
    displays.push(Box::new(AgentDisplay { hook: hook.clone() }));
    Ok(PairingUi::new(displays, events))
}

fn same_tokens(a: &StoredToken, b: &StoredToken) -> bool {
    a.tokens.access_token == b.tokens.access_token && a.tokens.refresh_token == b.tokens.refresh_token
}

fn paired_detail(stored: &StoredToken) -> String {
    match &stored.tokens.location {
        Some(l) => format!("paired ({l})"),
        None => "paired".into(),
    }
}

/// The pairing hook and the `STATUS=` line while a code is out.
struct HookState {
    notifier: Arc<Notifier>,
    inner: Mutex<HookInner>,
}

struct HookInner {
    command: Option<String>,
    reason: &'static str,
    last_code: Option<String>,
}

impl HookState {
    fn begin(&self, reason: &'static str) {
        if let Ok(mut h) = self.inner.lock() {
            h.reason = reason;
            h.last_code = None;
        }
    }

    fn end(&self) {
        if let Ok(mut h) = self.inner.lock() {
            h.last_code = None;
        }
    }
}

/// A display that feeds systemd's `STATUS=` and runs the hook once per new code.
struct AgentDisplay {
    hook: Arc<HookState>,
}

impl Display for AgentDisplay {
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

/// "52 min", "42 s", "3 h 5 min".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min", s / 60)
    } else if s >= 1 {
        format!("{s} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn secs_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_for_zoho_and_test_tokens() {
        let hour = Duration::from_secs(3600);
        let m = effective_margin(Duration::from_secs(600), hour);
        assert_eq!(m, Duration::from_secs(600));
        // Even with full jitter the agent refreshes before `token`'s 5-minute rule.
        assert!(m > crate::app::REFRESH_MARGIN);
        assert_eq!(min_spacing(hour), Duration::from_secs(60));
        let short = Duration::from_secs(4);
        assert_eq!(
            effective_margin(Duration::from_secs(600), short),
            Duration::from_secs(1)
        );
        assert_eq!(min_spacing(short), Duration::from_secs(1));
        assert_eq!(min_spacing(Duration::ZERO), Duration::from_secs(1));
        let (base, cap) = retry_bounds(Duration::from_secs(600));
        assert_eq!((base, cap), (Duration::from_secs(1), Duration::from_secs(120)));
        let (base, cap) = retry_bounds(Duration::from_secs(1));
        assert_eq!((base, cap), (Duration::from_millis(125), Duration::from_secs(1)));
    }

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(52 * 60 + 10)), "52 min");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
    }
}
