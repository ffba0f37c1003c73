//! The commands: each a small function over [`Context`].

use std::io::Write;

use serde_json::json;

use zoho_device_core::codec::MAX_TOKEN_LIFETIME;
use zoho_device_core::{Profile, Safe};

use crate::app::{Context, REFRESH_MARGIN, Revoked};
use crate::cli::{BooksCommand, Cli, Command, EventsFormat};
use crate::exit::{AppError, Exit};
use crate::login::{self, LoginOptions};
use crate::settings::Settings;
use crate::store::wall_now;
use crate::ui::{PairingUi, Signals, open_displays};

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), AppError> {
    match &cli.command {
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "zoho-device", &mut std::io::stdout());
            return Ok(());
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            clap_mangen::Man::new(cmd)
                .render(&mut std::io::stdout())
                .map_err(|e| AppError::new(Exit::Unexpected, format!("cannot write the man page: {e}")))?;
            return Ok(());
        }
        #[cfg(feature = "sim")]
        Command::Demo(args) => return crate::demo::run(&cli.global, args).await,
        #[cfg(not(feature = "sim"))]
        Command::Demo(_) => {
            return Err(
                AppError::usage("this build has no simulator (built without the `sim` feature)")
                    .hint("the demo runs from a host build: cargo run --release -- demo"),
            );
        }
        _ => {}
    }
    // With `login --events json`, a program learns of every failure from an `error` event,
    // also of those found before the pairing UI exists (settings, displays).
    let login_events = matches!(&cli.command, Command::Login(a) if a.events == Some(EventsFormat::Json));
    let early_error = |e: AppError| {
        if login_events {
            crate::ui::JsonEvents.emit("error", json!({ "kind": e.exit.name(), "message": e.message }));
        }
        e
    };
    let settings = Settings::resolve(&cli.global).map_err(early_error)?;
    let ctx = Context::new(settings).map_err(early_error)?;
    match cli.command {
        Command::Login(args) => {
            let events = args.events == Some(EventsFormat::Json);
            let specs = if args.displays.is_empty() {
                ctx.settings.displays.clone()
            } else {
                args.displays.clone()
            };
            let mut ui = PairingUi::new(
                open_displays(&specs, events, Signals::Display).map_err(early_error)?,
                events,
            );
            let opts = LoginOptions {
                kiosk: args.kiosk,
                min_interval: None,
            };
            let stored = login::login(&ctx, &mut ui, &opts).await?;
            if !events {
                eprintln!(
                    "Paired{}. Token saved to {}",
                    stored
                        .tokens
                        .location
                        .as_deref()
                        .map(|l| format!(" (data centre {l})"))
                        .unwrap_or_default(),
                    ctx.store.path().display()
                );
            }
            Ok(())
        }
        Command::Token => {
            let stored = ctx.fresh_token(REFRESH_MARGIN).await?;
            if stored.tokens.expires_within(wall_now(), std::time::Duration::ZERO) {
                return Err(
                    AppError::new(Exit::Unavailable, "the access token expired and could not be refreshed")
                        .hint("check the network; `zoho-device doctor` helps"),
                );
            }
            let mut out = std::io::stdout().lock();
            writeln!(out, "{}", stored.tokens.access_token.expose())
                .and_then(|()| out.flush())
                .map_err(|e| AppError::new(Exit::Unexpected, format!("cannot write to stdout: {e}")))?;
            Ok(())
        }
        Command::Status { json } => status(&ctx, json),
        Command::Refresh => {
            let stored = ctx.force_refresh(None).await?;
            eprintln!(
                "Refreshed: the access token is valid for {} min.",
                stored.tokens.expires_in(wall_now()).as_secs() / 60
            );
            Ok(())
        }
        Command::Logout => logout(&ctx).await,
        Command::Books {
            command: BooksCommand::Organizations { json },
        } => {
            let orgs = crate::books::organizations(&ctx).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&orgs).unwrap_or_default());
            } else if orgs.is_empty() {
                println!("No organizations.");
            } else {
                println!("{:<14} {:<32} {:<8} DEFAULT", "ID", "NAME", "CURRENCY");
                for o in orgs {
                    println!(
                        "{:<14} {:<32} {:<8} {}",
                        Safe(&o.organization_id).to_string(),
                        Safe(&o.name).to_string(),
                        Safe(&o.currency_code).to_string(),
                        if o.is_default_org { "yes" } else { "" }
                    );
                }
            }
            Ok(())
        }
        Command::Api(args) => crate::api::run(&ctx, &args).await,
        Command::Doctor { json } => {
            let findings = crate::doctor::run(&ctx).await;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&crate::doctor::to_json(&findings)).unwrap_or_default()
                );
            } else {
                crate::doctor::print(&findings);
            }
            crate::doctor::verdict(&findings)
        }
        Command::Agent(args) => crate::agent::run(ctx, args).await,
        Command::Demo(_) | Command::Completions { .. } | Command::Man => unreachable!("handled above"),
    }
}

fn status(ctx: &Context, as_json: bool) -> Result<(), AppError> {
    let stored = ctx.store.load()?;
    let now = wall_now();
    let Some(t) = stored else {
        if as_json {
            println!("{}", json!({ "paired": false, "token_file": ctx.store.path() }));
        } else {
            println!(
                "Not paired (no token file at {}). Run `zoho-device login`.",
                ctx.store.path().display()
            );
        }
        return Err(AppError::not_paired("not paired"));
    };
    // Saturating: an edited file's absurd expiry must not wrap around into the past.
    let left = (i128::from(t.tokens.expires_at.as_millis()) - i128::from(now.as_millis()))
        .clamp(i128::from(-i64::MAX), i128::from(i64::MAX)) as i64;
    let v = json!({
        "paired": true,
        "profile": t.profile,
        "client_id": t.client_id,
        "dc": t.tokens.location,
        "accounts_url": t.tokens.accounts_url.as_ref().map(|u| u.as_str()),
        "api_domain": t.tokens.api_domain.as_ref().map(|u| u.as_str()),
        "scope": t.tokens.scope,
        "access_token_expires_at_unix": t.tokens.expires_at.as_millis() / 1000,
        "access_token_expires_in_s": left / 1000,
        "access_token_valid": left > 0,
        "refresh_token_held": t.tokens.refresh_token.is_some(),
        "paired_at_unix": t.paired_at / 1000,
        "refreshed_at_unix": t.refreshed_at / 1000,
        "token_file": ctx.store.path(),
    });
    if as_json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        println!("Paired:          yes ({})", Safe(&t.profile));
        println!("Client ID:       {}", Safe(&t.client_id));
        println!(
            "Data centre:     {}",
            match (t.tokens.location.as_deref(), t.profile()) {
                (Some(loc), _) => Safe(loc).to_string(),
                // An accounts server that is not one of Zoho's DCs (--accounts-url, a proxy, the
                // simulator): its location is never named unless it redirects with other_dc.
                (None, Profile::Zoho) => "- (a custom accounts server, not in the DC table)".into(),
                (None, _) => "- (standard profile: no data centres)".into(),
            }
        );
        println!(
            "Accounts server: {}",
            t.tokens.accounts_url.as_ref().map(|u| u.as_str()).unwrap_or("-")
        );
        println!(
            "API domain:      {}",
            t.tokens.api_domain.as_ref().map(|u| u.as_str()).unwrap_or("-")
        );
        println!("Scope:           {}", Safe(t.tokens.scope.as_deref().unwrap_or("-")));
        if left > MAX_TOKEN_LIFETIME.as_millis() as i64 {
            println!(
                "Access token:    valid, says the file, for {} days — more than any server grants: was the file edited?",
                left / 86_400_000
            );
        } else if left > 0 {
            println!(
                "Access token:    valid for {} min {} s",
                left / 60_000,
                (left / 1000) % 60
            );
        } else {
            println!(
                "Access token:    expired {} min ago (refreshed on next use)",
                -left / 60_000
            );
        }
        println!(
            "Refresh token:   {}",
            if t.tokens.refresh_token.is_some() {
                "held"
            } else {
                "none: pair again when the access token expires"
            }
        );
        println!("Token file:      {}", ctx.store.path().display());
    }
    Ok(())
}

async fn logout(ctx: &Context) -> Result<(), AppError> {
    let _lock = ctx.lock().await?;
    let stored = match ctx.store.load() {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            eprintln!("Not paired: nothing to do.");
            return Ok(());
        }
        Err(e) => {
            tracing::warn!("{}: deleting it without revoking", e.message);
            None
        }
    };
    let mut revoke_error = None;
    if let Some(stored) = &stored {
        match ctx.revoke(stored, 3).await {
            Ok(Revoked::Done) => eprintln!("Revoked the refresh token at the server."),
            Ok(Revoked::NoRefreshToken) => {
                eprintln!("There was no refresh token to revoke (paired without offline access).")
            }
            Ok(Revoked::NoEndpoint) => {
                eprintln!("The server has no revocation endpoint; the refresh token was not revoked.")
            }
            Ok(Revoked::AlreadyInvalid) => eprintln!("The refresh token was already invalid at the server."),
            // A file whose servers today's configuration refuses (exit 8), or a configuration
            // that cannot revoke (exit 2): nothing was sent, and the pairing is kept.
            Err(e) if matches!(e.exit, Exit::Unsafe | Exit::Usage) => {
                return Err(AppError {
                    message: format!("{}; the token file was kept", e.message),
                    ..e
                });
            }
            Err(e) => revoke_error = Some(e),
        }
    }
    ctx.store.delete().map_err(|e| {
        AppError::new(
            Exit::Unexpected,
            format!("cannot delete {}: {e}", ctx.store.path().display()),
        )
    })?;
    eprintln!("Deleted the token file {}.", ctx.store.path().display());
    match revoke_error {
        Some(e) => Err(AppError {
            message: format!(
                "the local token was deleted, but revoking it at Zoho failed: {}",
                e.message
            ),
            hint: Some(crate::app::revoke_by_hand_hint(stored.as_ref())),
            ..e
        }),
        None => Ok(()),
    }
}
