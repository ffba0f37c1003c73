//! `zoho-device agent`: the long-running mode of a kiosk — a thin loop over the core's
//! [`Keeper`], which decides when to refresh, how to back off and when pairing is needed (its
//! docs give the timing rules). This module keeps only what is I/O: the token file and its
//! lock, signals, the clock gate, the hook, systemd's notifications and the JSON events.
//!
//! ```text
//!   start ─> clock plausible? ──no──> waiting_for_clock (re-checked every second, nothing sent)
//!              │yes
//!              v
//!   token file? ──none/unreadable──> needs_pairing ─> kiosk login on the displays (+ hook) ─┐
//!              │yes                        ^                                               │
//!              v                           │ the keeper: refresh token rejected / none      │
//!   paired: Keeper::poll ─ Wait ─> sleep (monotonic)                                        │
//!                        ─ Check ─> the store's lock, re-read the file, send, save ─────────┘
//! ```
//!
//! The `--refresh-margin` (600 s) is the keeper's margin with jitter: Zoho's 1-hour tokens are
//! refreshed 10 to 12.5 minutes before expiry, earlier than the `token` command's 5-minute
//! rule, so other programs never refresh on their own while the agent runs.
//!
//! **Clocks.** The keeper plans on the monotonic clock (tokio's): an NTP step does not move a
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

mod hook;

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use zoho_device_core::keeper::{self, LOCK_RETRY};
use zoho_device_core::reqwest_driver::MonotonicClock;
use zoho_device_core::{Backoff, Checked, Error, KeepStep, Keeper, KeeperConfig, Timestamp, Tokens};
use zoho_device_display::Screen;

use crate::app::{self, Context};
use crate::cli::{AgentArgs, Cli, Command, EventsFormat};
use crate::clock;
use crate::exit::{AppError, Exit};
use crate::login::{self, LoginOptions};
use crate::notify::Notifier;
use crate::settings::Settings;
use crate::store::{StoredToken, wall_now};
use crate::ui::{PairingUi, Signals, open_displays};
use hook::{AgentDisplay, HookState};

/// How often an implausible clock is looked at again.
const CLOCK_RECHECK: Duration = Duration::from_secs(1);
/// How often the agent wakes while idle: the `STATUS=` line, the suspend check.
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// A wall clock moving this much further than the monotonic one means suspend or a clock step.
const JUMP_S: i64 = 30;
/// A local clock further than this from the server's `Date` is reported.
const SKEW_REPORT_S: i64 = 120;

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
    clock: MonotonicClock,
    keeper: Keeper,
    /// The token file's record of what the keeper holds (`None`: read the file).
    stored: Option<StoredToken>,
    pairing: Option<Pairing>,
    pair_failures: u32,
    pair_next: Option<Instant>,
    last_error: Option<String>,
    waiting_for_clock: bool,
    reported_skew: Option<i64>,
}

fn keeper_config(args: &AgentArgs) -> KeeperConfig {
    KeeperConfig::agent(Duration::from_secs(args.refresh_margin), app::seed())
}

impl Agent {
    fn new(ctx: Context, args: AgentArgs, notifier: Arc<Notifier>) -> Result<Agent, AppError> {
        let command = args.on_needs_pairing.clone().or(ctx.settings.on_needs_pairing.clone());
        let hook = Arc::new(HookState::new(notifier.clone(), command));
        let ui = build_ui(&ctx.settings, &args, &hook)?;
        Ok(Agent {
            keeper: Keeper::new(keeper_config(&args)),
            ctx,
            args,
            ui,
            hook,
            notifier,
            clock: MonotonicClock::default(),
            stored: None,
            pairing: None,
            pair_failures: 0,
            pair_next: None,
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
        if self.stored.is_none() {
            return self.load();
        }
        match self.keeper.poll(self.clock.now()) {
            KeepStep::Wait(at) => {
                if !self.sleep_until(at).await {
                    // Suspended, or the clock was set forward: the monotonic plan is stale.
                    self.stored = None;
                }
                Ok(())
            }
            KeepStep::Check => self.refresh().await,
            step => {
                self.report(step);
                Ok(())
            }
        }
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
                let now = self.clock.now();
                let (tokens, lifetime) = on_clock(&stored, now);
                tracing::info!(
                    valid_s = tokens.expires_in(now).as_secs(),
                    "paired; keeping the token fresh"
                );
                self.keeper.adopt_stored(tokens, Some(lifetime), now);
                self.ui.show(&Screen::Paired {
                    detail: paired_detail(&stored),
                });
                self.stored = Some(stored);
                self.status();
            }
            Ok(None) => self.needs_pairing("not_paired", "this device is not paired yet".into()),
            Err(e) => self.needs_pairing("token_file_unreadable", e.message),
        }
        Ok(())
    }

    /// Sleeps until `at` (monotonic), waking every minute to refresh the `STATUS=` line and to
    /// compare the clocks: `false` when the wall clock moved more than [`JUMP_S`] further than
    /// the monotonic one (the board was suspended — the monotonic clock stops then — or the
    /// clock was set forward), so the token's expiry must be read again.
    async fn sleep_until(&self, at: Timestamp) -> bool {
        loop {
            let now = self.clock.now();
            if at <= now {
                return true;
            }
            self.status();
            let (mono_before, wall_before) = (Instant::now(), wall_now().as_millis());
            tokio::time::sleep(at.saturating_duration_since(now).min(STATUS_EVERY)).await;
            let mono = mono_before.elapsed().as_millis() as i64;
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

    /// One refresh round under the store's lock: the file re-read (another process may have
    /// refreshed: the keeper decides), its servers checked, the request sent, the result saved.
    async fn refresh(&mut self) -> Result<(), AppError> {
        let _lock = match self.ctx.lock().await {
            Ok(l) => l,
            // Another process holds the lock for over a minute (hung): not a reason to stop;
            // try again later while the current token lasts.
            Err(e) if e.exit == Exit::Unavailable => {
                tracing::warn!("{}; trying again in {}", e.message, human(LOCK_RETRY));
                self.last_error = Some(e.message);
                self.keeper.handle_store_busy(self.clock.now());
                self.status();
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let on_file = match self.ctx.store.load() {
            Ok(Some(on_file)) => on_file,
            Ok(None) => {
                self.needs_pairing("token_file_deleted", "the token file was deleted".into());
                return Ok(());
            }
            Err(e) => {
                self.needs_pairing("token_file_unreadable", e.message);
                return Ok(());
            }
        };
        if self.stored.as_ref().is_none_or(|s| s.tokens != on_file.tokens) {
            self.ctx.client_for(&on_file)?;
        }
        let now = self.clock.now();
        let (tokens, lifetime) = on_clock(&on_file, now);
        let checked = self.keeper.handle_stored(now, tokens, Some(lifetime));
        self.stored = Some(on_file);
        match checked {
            Checked::Adopted => {
                tracing::info!("another process refreshed or paired; using its token");
                self.status();
                return Ok(());
            }
            Checked::Nothing => return Ok(()),
            Checked::Refresh => {}
        }
        let Some(stored) = self.stored.clone() else {
            return Ok(());
        };
        let client = self.ctx.client_for(&stored)?;
        match self.ctx.token_endpoint(&stored).await {
            Ok(endpoint) => self.keeper.set_endpoint(endpoint, client),
            Err(e) => {
                self.needs_pairing("token_file_unreadable", e.message);
                return Ok(());
            }
        }
        loop {
            match self.keeper.poll(self.clock.now()) {
                KeepStep::Send(req) => match self.ctx.http.send(&req).await {
                    Ok(r) => {
                        self.cross_check(r.date.as_deref());
                        let (status, body) = (r.response.status, &r.response.body);
                        self.keeper.handle_response(self.clock.now(), status, body);
                    }
                    Err(t) => self.keeper.handle_transport_error(self.clock.now(), t),
                },
                KeepStep::Wait(_) | KeepStep::Check => return Ok(()),
                step => {
                    self.report(step);
                    return Ok(());
                }
            }
        }
    }

    /// What the keeper reported: a new token (saved), a failure, or pairing needed.
    fn report(&mut self, step: KeepStep) {
        let now = self.clock.now();
        match step {
            KeepStep::Refreshed(tokens) => self.save(tokens, now),
            KeepStep::Failed { error, retry_at } => self.failed(&error, retry_at.saturating_duration_since(now), now),
            KeepStep::GaveUp(error) => self.failed(&error, Duration::ZERO, now),
            KeepStep::NeedsPairing(need) => {
                if let zoho_device_core::PairingNeed::RefreshTokenRejected(e) = &need {
                    tracing::warn!("{e}");
                }
                self.needs_pairing(need.code(), keeper::pairing_message(&need));
            }
            KeepStep::Wait(_) | KeepStep::Check | KeepStep::Send(_) => {}
        }
    }

    fn save(&mut self, tokens: Tokens, now: Timestamp) {
        let Some(stored) = &self.stored else { return };
        let wall = wall_now();
        let remaining = tokens.expires_in(now);
        let mut on_wall = tokens;
        on_wall.expires_at = on_wall.expires_at.rebase(now, wall);
        let fresh = stored.with_tokens(on_wall, wall);
        self.last_error = None;
        if let Err(e) = self.ctx.store.save(&fresh) {
            // Keep the new token in memory; other programs refresh for themselves.
            tracing::error!("{}", e.message);
            self.last_error = Some(format!("cannot write the token file: {}", e.message));
        }
        self.stored = Some(fresh);
        let next_in = self
            .keeper
            .next_refresh()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
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

    fn failed(&mut self, e: &Error, delay: Duration, now: Timestamp) {
        let valid = self.keeper.tokens().map_or(Duration::ZERO, |t| t.expires_in(now));
        tracing::warn!(
            "refresh failed ({e}); retrying in {:.1} s; the current access token is valid for {} s",
            delay.as_secs_f64(),
            valid.as_secs()
        );
        // Status (and its state file) first: whoever reacts to the event reads it.
        self.last_error = Some(format!("refresh failed ({}), retrying in {}", e.code(), human(delay)));
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
        if let Some(at) = self.pair_next {
            tokio::time::sleep_until(at).await;
            self.pair_next = None;
        }
        let opts = LoginOptions {
            kiosk: true,
            min_interval: None,
        };
        match login::login(&self.ctx, &mut self.ui, &opts).await {
            Ok(stored) => {
                let now = self.clock.now();
                self.keeper.adopt(stored.tokens_on(wall_now(), now), now);
                self.stored = Some(stored);
                self.pairing = None;
                self.pair_failures = 0;
                self.last_error = None;
                self.hook.end();
                self.status();
                Ok(())
            }
            Err(e) if e.exit == Exit::Usage => Err(e),
            Err(e) => {
                self.pair_failures = self.pair_failures.saturating_add(1);
                let delay = Backoff::new(Duration::from_secs(2), Duration::from_secs(900), app::seed())
                    .delay(self.pair_failures);
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
                self.pair_next = Some(Instant::now() + delay);
                Ok(())
            }
        }
    }

    fn needs_pairing(&mut self, reason: &'static str, message: String) {
        self.stored = None;
        self.keeper.forget();
        self.pairing = Some(Pairing {
            reason,
            message,
            announced: false,
        });
        self.pair_next = None;
        self.pair_failures = 0;
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
        let (Some(stored), Some(tokens)) = (&self.stored, self.keeper.tokens()) else {
            return;
        };
        let left = tokens.expires_in(self.clock.now());
        let mut line = if left.is_zero() {
            format!("{}, access token expired", paired_detail(stored))
        } else {
            format!("{}, token valid for {}", paired_detail(stored), human(left))
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
        self.hook
            .set_command(args.on_needs_pairing.clone().or(ctx.settings.on_needs_pairing.clone()));
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
        self.keeper.reconfigure(keeper_config(&args));
        self.ctx = ctx;
        self.args = args;
        self.stored = None;
        // A dead refresh token stays dead: keep asking for pairing (the file still holds it).
        // Otherwise the token file decides again (it may be another file now).
        if self
            .pairing
            .as_ref()
            .is_some_and(|p| !matches!(p.reason, "refresh_token_rejected" | "no_refresh_token"))
        {
            self.pairing = None;
        }
        self.pair_failures = 0;
        self.pair_next = None;
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

/// A token file's tokens on the agent's clock, and the lifetime they were minted with.
fn on_clock(stored: &StoredToken, now: Timestamp) -> (Tokens, Duration) {
    let wall = wall_now();
    (stored.tokens_on(wall, now), stored.lifetime(wall))
}

fn paired_detail(stored: &StoredToken) -> String {
    match &stored.tokens.location {
        Some(l) => format!("paired ({l})"),
        None => "paired".into(),
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
    use zoho_device_core::keeper::effective_margin;

    #[test]
    fn the_agents_margin_comes_before_the_token_commands() {
        let hour = Duration::from_secs(3600);
        let m = effective_margin(Duration::from_secs(600), hour);
        assert_eq!(m, Duration::from_secs(600));
        // Even with full jitter the agent refreshes before `token`'s 5-minute rule.
        assert!(m > crate::app::REFRESH_MARGIN);
    }

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(52 * 60 + 10)), "52 min");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
    }
}
