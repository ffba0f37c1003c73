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

mod clock_gate;
mod hook;
mod pairing;
mod report;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::signal::unix::{SignalKind, signal};
use tokio::time::Instant;
use zoho_device_core::keeper::LOCK_RETRY;
use zoho_device_core::reqwest_driver::MonotonicClock;
use zoho_device_core::{Checked, KeepStep, Keeper, KeeperConfig};
use zoho_device_display::Screen;

use crate::app::{self, Context};
use crate::cli::AgentArgs;
use crate::exit::{AppError, Exit};
use crate::notify::Notifier;
use crate::store::{Pairing, wall_now};
use crate::ui::PairingUi;
use clock_gate::CLOCK_RECHECK;
use hook::HookState;
use pairing::{PairingNeeded, build_ui};
use report::{human, paired_status};

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
    // Signals are ours before anything can be seen from outside (the gateway's socket, a
    // status): a SIGTERM in between would otherwise end the process without its clean stop.
    let sig_err = |e: std::io::Error| AppError::new(Exit::Unexpected, format!("cannot handle signals: {e}"));
    let mut sigterm = signal(SignalKind::terminate()).map_err(sig_err)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(sig_err)?;
    // The Books gateway (`--serve`) runs beside the loop, reading the token file it keeps.
    let _gateway = crate::gateway::start(&ctx.settings, &args).await?;
    let notifier = Arc::new(Notifier::from_env().with_state_file(ctx.store.agent_state_path()));
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

struct Agent {
    ctx: Context,
    args: AgentArgs,
    ui: PairingUi,
    hook: Arc<HookState>,
    notifier: Arc<Notifier>,
    clock: MonotonicClock,
    keeper: Keeper,
    /// The token file's record of what the keeper holds (`None`: read the file).
    stored: Option<Pairing>,
    pairing: Option<PairingNeeded>,
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
        let hook = Arc::new(HookState::new(command));
        let ui = build_ui(&ctx.settings, &args, &hook, &notifier)?;
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

    /// Reads the token file: paired, or pairing needed.
    fn load(&mut self) -> Result<(), AppError> {
        match self.ctx.store.load() {
            Ok(Some(stored)) => {
                self.ctx.client_for(&stored)?;
                let (now, wall) = (self.clock.now(), wall_now());
                tracing::info!(
                    valid_s = stored.tokens().expires_in(wall).as_secs(),
                    "paired; keeping the token fresh"
                );
                self.keeper.adopt_pairing(&stored, wall, now);
                self.ui.show(&Screen::Paired {
                    detail: paired_status(&stored),
                });
                self.stored = Some(stored);
                self.status();
            }
            Ok(None) => self.needs_pairing("not_paired", "this device is not paired yet".into()),
            Err(e) => self.needs_pairing("token_file_unreadable", e.message),
        }
        Ok(())
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
        if self.stored.as_ref().is_none_or(|s| s.tokens() != on_file.tokens()) {
            self.ctx.client_for(&on_file)?;
        }
        let now = self.clock.now();
        let checked = self.keeper.handle_stored_pairing(&on_file, wall_now(), now);
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
}
