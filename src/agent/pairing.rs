//! The agent's pairing: announced once (event, screen, hook, status), then the kiosk login
//! until someone approves; and SIGHUP's reload of the configuration and displays.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use serde_json::json;
use tokio::time::Instant;
use zoho_device_core::{Backoff, Event};

use super::hook::{Hook, HookState, StatusLine};
use super::{Agent, human, keeper_config};
use crate::app::{self, Context};
use crate::cli::{AgentArgs, Cli, Command, EventsFormat};
use crate::exit::{AppError, Exit};
use crate::login::{self, LoginOptions};
use crate::notify::Notifier;
use crate::settings::Settings;
use crate::store::wall_now;
use crate::ui::{PairingUi, Signals, open_displays};

/// Why pairing is needed, and whether it was announced.
#[derive(Debug)]
pub(super) struct PairingNeeded {
    pub(super) reason: &'static str,
    pub(super) message: String,
    pub(super) announced: bool,
}

impl Agent {
    /// Pairing: announce once, then the kiosk login until approved.
    pub(super) async fn pair(&mut self) -> Result<(), AppError> {
        let Some(p) = self.pairing.as_mut() else { return Ok(()) };
        if !p.announced {
            p.announced = true;
            let (reason, message) = (p.reason, p.message.clone());
            tracing::warn!(reason, "needs pairing: {message}");
            self.ui.publish(&Event::NeedsPairing { reason, message });
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

    pub(super) fn needs_pairing(&mut self, reason: &'static str, message: String) {
        self.stored = None;
        self.keeper.forget();
        self.pairing = Some(PairingNeeded {
            reason,
            message,
            announced: false,
        });
        self.pair_next = None;
        self.pair_failures = 0;
    }

    /// SIGHUP: settings again from the command line, environment and config file.
    pub(super) fn reload(&mut self) {
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
        self.ui = match build_ui(&ctx.settings, &args, &self.hook, &self.notifier) {
            Ok(ui) => ui,
            Err(e) => {
                tracing::error!("SIGHUP: {}; showing nothing", e.message);
                let mut ui = PairingUi::new(Vec::new(), args.events == Some(EventsFormat::Json));
                subscribe(&mut ui, &self.hook, &self.notifier);
                ui
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

/// The agent's pairing UI: the configured displays and events, the status line and the hook.
pub(super) fn build_ui(
    settings: &Settings,
    args: &AgentArgs,
    hook: &Arc<HookState>,
    notifier: &Arc<Notifier>,
) -> Result<PairingUi, AppError> {
    let events = args.events == Some(EventsFormat::Json);
    let specs = if args.displays.is_empty() {
        settings.displays.clone()
    } else {
        args.displays.clone()
    };
    let mut ui = PairingUi::new(open_displays(&specs, events, Signals::Program)?, events);
    subscribe(&mut ui, hook, notifier);
    Ok(ui)
}

/// The status line first (the hook's script may read it), then the hook.
fn subscribe(ui: &mut PairingUi, hook: &Arc<HookState>, notifier: &Arc<Notifier>) {
    ui.subscribe(StatusLine(notifier.clone()));
    ui.subscribe(Hook(hook.clone()));
}
