//! `zoho-device login`: the device flow with displays and events, then the token saved.

use std::cell::RefCell;
use std::sync::Mutex;
use std::time::Duration;

use zoho_device_core::reqwest_driver::{self, MonotonicClock};
use zoho_device_core::{DeviceFlow, Error, FlowConfig, KioskPolicy, Pairing, Server, Servers};

use crate::app::{self, Context, Revoked};
use crate::exit::{AppError, Exit};
use crate::settings::Endpoint;
use crate::ui::PairingUi;

/// Login options (from flags, the demo or the agent).
#[derive(Debug, Clone, Default)]
pub struct LoginOptions {
    /// Re-issue lapsed codes forever.
    pub kiosk: bool,
    /// Floor for the poll interval (tests and the demo lower it).
    pub min_interval: Option<Duration>,
}

/// What an interruption (Ctrl-C) now means for the token file and the pairings, when it is not
/// "the token file is unchanged": set once a new pairing is saved, or while an approved pairing
/// that could not be saved is being revoked.
static INTERRUPTED_NOTE: Mutex<Option<String>> = Mutex::new(None);

fn note_for_interrupt(note: Option<String>) {
    *INTERRUPTED_NOTE.lock().unwrap_or_else(|e| e.into_inner()) = note;
}

/// What `main` says when Ctrl-C ends the program: "the token file is unchanged", or what
/// really happened when a login had already saved a new pairing or was revoking one.
pub fn interrupted_message() -> String {
    INTERRUPTED_NOTE
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_else(|| {
            if crate::store::changed_this_run() {
                "interrupted (the token file had already been updated)".to_string()
            } else {
                "interrupted; the token file is unchanged".to_string()
            }
        })
}

/// Runs the device flow and saves the token. The existing token file is untouched unless
/// pairing succeeds. Ctrl-C cancels (exit 130 in `main`).
///
/// Before a code is asked for, the token must be savable ([`crate::store::TokenStore::check_can_save`]):
/// nobody approves a pairing that would then be lost. Should saving still fail after approval,
/// the new refresh token is revoked (best effort; it would count towards Zoho's 20 per user
/// and client) and the error (exit 9) names the path and the cause.
pub async fn login(ctx: &Context, ui: &mut PairingUi, opts: &LoginOptions) -> Result<Pairing, AppError> {
    let result = run(ctx, ui, opts).await;
    if let Err(e) = &result {
        ui.failed(e);
    }
    result
}

async fn run(ctx: &Context, ui: &mut PairingUi, opts: &LoginOptions) -> Result<Pairing, AppError> {
    let client = ctx.settings.client()?;
    ctx.store.check_can_save()?;
    let mut started_at: Option<String> = None;
    let mut discovered = None;
    let mut start_location = None;
    let server = match &ctx.settings.endpoint {
        Endpoint::Zoho { .. } => {
            let (accounts, location) = app::start_server(ctx, &client.client_id).await?;
            start_location = location;
            started_at = Some(accounts.as_str().to_string());
            Server::zoho(accounts)
        }
        Endpoint::Standard {
            device_authorization_url,
            token_url,
            ..
        } => Server::Standard {
            device_authorization_url: device_authorization_url.clone(),
            token_url: token_url.clone(),
        },
        Endpoint::Issuer { issuer, explicit } => {
            let found = crate::discovery::endpoints(&ctx.http, issuer, explicit).await?;
            tracing::info!(
                device_authorization = %found.device_authorization_url,
                token = %found.token_url,
                "endpoints discovered"
            );
            let server = Server::Standard {
                device_authorization_url: found.device_authorization_url.clone(),
                token_url: found.token_url.clone(),
            };
            discovered = Some(found);
            server
        }
    };
    // Standard servers: `offline_access` only when asked for or listed by the server (plain
    // OAuth servers refuse it, some only after the user approved); the client authentication
    // as configured, else as the discovery document calls for, else auto.
    let (offline_access, client_auth) = match ctx.settings.profile {
        zoho_device_core::Profile::Zoho => (ctx.settings.offline_access, zoho_device_core::ClientAuth::Post),
        zoho_device_core::Profile::Rfc8628 => (
            ctx.settings
                .offline_access_explicit
                .unwrap_or_else(|| discovered.as_ref().is_some_and(|d| d.offline_access_offered)),
            ctx.settings
                .client_auth
                .or_else(|| discovered.as_ref().and_then(|d| d.client_auth))
                .unwrap_or_default(),
        ),
    };
    ui.talking_to(&match &server {
        Server::Zoho { accounts, .. } => vec![accounts.as_str()],
        Server::Standard {
            device_authorization_url,
            token_url,
        } => vec![device_authorization_url.as_str(), token_url.as_str()],
    });
    let mut config = FlowConfig {
        profile: ctx.settings.profile,
        scopes: ctx.settings.scopes.clone(),
        kiosk: opts.kiosk.then(KioskPolicy::default),
        offline_access,
        client_auth,
        jitter_seed: app::seed(),
        ..FlowConfig::default()
    };
    if let Some(min) = opts.min_interval {
        config.min_interval = min;
    }
    if let Some(base) = app::test_override_ms("ZOHO_DEVICE_BACKOFF_MS") {
        config.backoff_base = base;
        config.backoff_cap = base * 16;
    }
    let clock = MonotonicClock::default();
    let mut flow = DeviceFlow::new(config, client.clone(), server.clone(), clock.now())
        .with_dc_secrets(ctx.settings.dc_secret_map())
        .with_location(start_location);

    let ui_cell = RefCell::new(ui);
    let flow_fut = reqwest_driver::run_flow(&mut flow, &ctx.http, &clock, |step| {
        ui_cell.borrow_mut().on_step(step, clock.now())
    });
    let ticker = async {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            every.tick().await;
            ui_cell.borrow_mut().tick(clock.now());
        }
    };
    let result = tokio::select! {
        r = flow_fut => r,
        _ = ticker => unreachable!("the ticker never ends"),
    };
    let ui = ui_cell.into_inner();
    let tokens = match result {
        Ok(t) => t,
        // After other_dc: the user's DC does not know the client; another --dc would not help.
        Err(Error::InvalidClient { accounts_url }) if started_at.as_deref().is_some_and(|s| s != accounts_url) => {
            let hint = format!(
                "the user's account lives in the data centre of {accounts_url}, where this client is not enabled: turn on Multi-DC for the client in https://api-console.zoho.com (Settings), or pair with an account of the client's data centre"
            );
            return Err(AppError::from(Error::InvalidClient { accounts_url }).hint(hint));
        }
        Err(e @ Error::InvalidClient { .. }) => {
            let mut err = AppError::from(e);
            if let Some(hint) = app::wrong_dc_hint(ctx, &client.client_id).await {
                err = err.hint(hint);
            }
            return Err(err);
        }
        Err(e) => return Err(e.into()),
    };
    if tokens.refresh_token.is_none() {
        tracing::warn!(
            "the server issued no refresh token: the device will need pairing again when the access token expires"
        );
    }
    let expires_in = tokens.expires_in(clock.now());
    // The servers the flow ended at; a standard server's revocation endpoint (configured or
    // discovered) and the client authentication that worked (none for a public client, none
    // when it was left to auto).
    let revocation_url = match (&ctx.settings.endpoint, discovered) {
        (_, Some(found)) => found.revocation_url,
        (Endpoint::Standard { revocation_url, .. }, None) => revocation_url.clone(),
        _ => None,
    };
    let standard_auth = (client.client_secret.is_some() && flow.client_auth() != zoho_device_core::ClientAuth::Auto)
        .then(|| flow.client_auth());
    let servers = Servers::after_flow(&server, &tokens, revocation_url, standard_auth);
    let stored = app::paired(&client.client_id, servers, tokens, clock.now());
    // Under the refresh lock, so that a refresh of the old pairing by another process cannot
    // land on top of the new one.
    let saved = async {
        // An approved pairing is never thrown away: if another process has held the lock for
        // over a minute (hung), save without it and say so.
        let _lock = match ctx.lock().await {
            Ok(l) => Some(l),
            Err(e) if e.exit == Exit::Unavailable => {
                tracing::warn!("{}; saving the new pairing without the lock", e.message);
                None
            }
            Err(e) => return Err(e),
        };
        let replaced = ctx.store.load().ok().flatten();
        ctx.store.save(&stored)?;
        Ok(replaced)
    }
    .await;
    let replaced = match saved {
        Ok(r) => r,
        Err(e) => return Err(revoke_unsaved(ctx, &stored, e).await),
    };
    ui.authorized(stored.tokens(), expires_in);
    tracing::info!(path = %ctx.store.path().display(), "token saved");
    note_for_interrupt(Some(format!(
        "interrupted; the new pairing is saved in {}",
        ctx.store.path().display()
    )));
    if let Some(old) = replaced {
        revoke_replaced(ctx, &old, &stored).await;
    }
    Ok(stored)
}

/// The approved pairing `new` could not be saved (`err`): revokes its refresh token so that it
/// does not linger at the server, and returns `err` saying what became of it.
async fn revoke_unsaved(ctx: &Context, new: &Pairing, err: AppError) -> AppError {
    let path = ctx.store.path().display().to_string();
    note_for_interrupt(Some(format!(
        "interrupted while revoking the approved pairing that could not be saved to {path}: the token file is unchanged, and the new refresh token may still be live ({})",
        app::revoke_by_hand_hint(Some(new))
    )));
    let outcome = if new.tokens().refresh_token.is_none() {
        "it holds no refresh token, so nothing lingers at the server".to_string()
    } else {
        match ctx.revoke(new, 2).await {
            Ok(Revoked::Done) => "its new refresh token was revoked at the server".to_string(),
            Ok(Revoked::AlreadyInvalid) => "its new refresh token is already invalid at the server".to_string(),
            Ok(Revoked::NoRefreshToken) => "it holds no refresh token, so nothing lingers at the server".to_string(),
            Ok(Revoked::NoEndpoint) => {
                "the server has no revocation endpoint, so its new refresh token stays live".to_string()
            }
            Err(e) => format!(
                "its new refresh token could not be revoked ({}): {}",
                e.message,
                app::revoke_by_hand_hint(Some(new))
            ),
        }
    };
    note_for_interrupt(None);
    let hint = match &err.hint {
        Some(h) => format!("{h}; then run `zoho-device login` again"),
        None => "fix that, then run `zoho-device login` again".to_string(),
    };
    AppError {
        message: format!(
            "the pairing was approved, but it could not be saved: {}; {outcome}",
            err.message
        ),
        hint: Some(hint),
        ..err
    }
}

/// Revokes the refresh token of the pairing a new login replaced: nobody can use it any more,
/// and Zoho keeps only 20 refresh tokens per user and client, silently deleting the oldest —
/// which may be another kiosk's. Best effort: a failure is a warning, the new pairing stands.
async fn revoke_replaced(ctx: &Context, old: &Pairing, new: &Pairing) {
    let Some(old_refresh) = &old.tokens().refresh_token else {
        return;
    };
    if new.tokens().refresh_token.as_ref().map(|r| r.expose()) == Some(old_refresh.expose()) {
        return;
    }
    note_for_interrupt(Some(format!(
        "interrupted; the new pairing is saved in {}, but the replaced pairing's refresh token may not have been revoked ({})",
        ctx.store.path().display(),
        app::revoke_by_hand_hint(Some(old))
    )));
    let result = ctx.revoke(old, 2).await;
    note_for_interrupt(Some(format!(
        "interrupted; the new pairing is saved in {}",
        ctx.store.path().display()
    )));
    match result {
        Ok(Revoked::Done) => tracing::info!("revoked the refresh token of the pairing this login replaced"),
        Ok(Revoked::AlreadyInvalid) => tracing::debug!("the replaced pairing's refresh token was already invalid"),
        Ok(Revoked::NoRefreshToken | Revoked::NoEndpoint) => {}
        Err(e) => tracing::warn!(
            "the new pairing is saved, but the replaced one's refresh token could not be revoked ({}); {}",
            e.message,
            app::revoke_by_hand_hint(Some(old))
        ),
    }
}
