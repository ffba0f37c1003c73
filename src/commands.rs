//! The commands: each a small function over [`Context`].

use std::fmt::Write as _;

use serde_json::json;

use zoho_device_core::{MAX_TOKEN_LIFETIME, Profile, Safe};

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
        #[cfg(feature = "docs")]
        Command::Completions { shell } => {
            return crate::ui::stdout(&String::from_utf8_lossy(&crate::cli::completions(*shell)));
        }
        #[cfg(feature = "docs")]
        Command::Man { out_dir } => return man(out_dir.as_deref()),
        #[cfg(not(feature = "docs"))]
        Command::Completions { .. } | Command::Man { .. } => {
            return Err(AppError::usage(
                "this build does not generate man pages or completions (built without the `docs` feature)",
            )
            .hint(
                "the package installs them: man zoho-device; completions under /usr/share/bash-completion, zsh and fish",
            ));
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
    // A client ID that cannot be Zoho's is refused before anything goes to the network;
    // `status` does not use it and `doctor` reports it among its findings.
    if !matches!(cli.command, Command::Status { .. } | Command::Doctor { .. }) {
        check_client_id(&settings, matches!(cli.command, Command::Login(_) | Command::Agent(_)))
            .map_err(early_error)?;
    }
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
                        .tokens()
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
            if stored.tokens().expires_within(wall_now(), std::time::Duration::ZERO) {
                return Err(
                    AppError::new(Exit::Unavailable, "the access token expired and could not be refreshed")
                        .hint("check the network; `zoho-device doctor` helps"),
                );
            }
            crate::ui::stdout(&format!("{}\n", stored.tokens().access_token.expose()))
        }
        Command::Status { json } => status(&ctx, json),
        Command::Refresh => {
            let stored = ctx.force_refresh(None).await?;
            eprintln!(
                "Refreshed: the access token is valid for {} min.",
                stored.tokens().expires_in(wall_now()).as_secs() / 60
            );
            Ok(())
        }
        Command::Logout { local_only } => logout(&ctx, local_only).await,
        Command::Books {
            command: BooksCommand::Organizations { json },
        } => {
            let orgs = crate::books::organizations(&ctx).await?;
            let mut out = String::new();
            if json {
                let _ = writeln!(out, "{}", serde_json::to_string_pretty(&orgs).unwrap_or_default());
            } else if orgs.is_empty() {
                out.push_str("No organizations.\n");
            } else {
                let _ = writeln!(out, "{:<14} {:<32} {:<8} DEFAULT", "ID", "NAME", "CURRENCY");
                for o in orgs {
                    let _ = writeln!(
                        out,
                        "{:<14} {:<32} {:<8} {}",
                        Safe(&o.organization_id).to_string(),
                        Safe(&o.name).to_string(),
                        Safe(&o.currency_code).to_string(),
                        if o.is_default_org { "yes" } else { "" }
                    );
                }
            }
            crate::ui::stdout(&out)
        }
        Command::Api(args) => crate::api::run(&ctx, &args).await,
        Command::Doctor { json } => {
            let findings = crate::doctor::run(&ctx).await;
            crate::ui::stdout(&if json {
                format!(
                    "{}\n",
                    serde_json::to_string_pretty(&crate::doctor::to_json(&findings)).unwrap_or_default()
                )
            } else {
                crate::doctor::render(&findings)
            })?;
            crate::doctor::verdict(&findings)
        }
        Command::Agent(args) => crate::agent::run(ctx, args).await,
        Command::Demo(_) | Command::Completions { .. } | Command::Man { .. } => unreachable!("handled above"),
    }
}

fn status(ctx: &Context, as_json: bool) -> Result<(), AppError> {
    let stored = ctx.store.load()?;
    let now = wall_now();
    let Some(t) = stored else {
        crate::ui::stdout(&if as_json {
            format!("{}\n", json!({ "paired": false, "token_file": ctx.store.path() }))
        } else {
            format!(
                "Not paired (no token file at {}). Run `zoho-device login` to pair this device.\n",
                ctx.store.path().display()
            )
        })?;
        // Said on stdout already: exit 6 without repeating it on stderr.
        return Err(AppError::new(Exit::NeedsPairing, String::new()));
    };
    // Saturating: an edited file's absurd expiry must not wrap around into the past.
    let left = (i128::from(t.tokens().expires_at.as_millis()) - i128::from(now.as_millis()))
        .clamp(i128::from(-i64::MAX), i128::from(i64::MAX)) as i64;
    let v = json!({
        "paired": true,
        "profile": t.profile().as_str(),
        "client_id": t.client_id(),
        "dc": t.tokens().location,
        "accounts_url": t.tokens().accounts_url.as_ref().map(|u| u.as_str()),
        "api_domain": t.tokens().api_domain.as_ref().map(|u| u.as_str()),
        "scope": t.tokens().scope,
        "access_token_expires_at_unix": t.tokens().expires_at.as_millis() / 1000,
        "access_token_expires_in_s": left / 1000,
        "access_token_valid": left > 0,
        "refresh_token_held": t.tokens().refresh_token.is_some(),
        "paired_at_unix": t.paired_at().as_millis() / 1000,
        "refreshed_at_unix": t.refreshed_at().as_millis() / 1000,
        "token_file": ctx.store.path(),
    });
    let mut out = String::new();
    if as_json {
        let _ = writeln!(out, "{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        let _ = writeln!(out, "Paired:          yes ({})", t.profile().as_str());
        let _ = writeln!(out, "Client ID:       {}", Safe(t.client_id()));
        let _ = writeln!(
            out,
            "Data centre:     {}",
            match (t.tokens().location.as_deref(), t.profile()) {
                (Some(loc), _) => Safe(loc).to_string(),
                // An accounts server that is not one of Zoho's DCs (--accounts-url, a proxy, the
                // simulator): its location is never named unless it redirects with other_dc.
                (None, Profile::Zoho) => "- (a custom accounts server, not in the DC table)".into(),
                (None, _) => "- (standard profile: no data centres)".into(),
            }
        );
        let _ = writeln!(
            out,
            "Accounts server: {}",
            t.tokens().accounts_url.as_ref().map(|u| u.as_str()).unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "API domain:      {}",
            t.tokens().api_domain.as_ref().map(|u| u.as_str()).unwrap_or("-")
        );
        let _ = writeln!(
            out,
            "Scope:           {}",
            Safe(t.tokens().scope.as_deref().unwrap_or("-"))
        );
        if left > MAX_TOKEN_LIFETIME.as_millis() as i64 {
            let _ = writeln!(
                out,
                "Access token:    valid, says the file, for {} days — more than any server grants: was the file edited?",
                left / 86_400_000
            );
        } else if left > 0 {
            let _ = writeln!(
                out,
                "Access token:    valid for {} min {} s",
                left / 60_000,
                (left / 1000) % 60
            );
        } else {
            let _ = writeln!(
                out,
                "Access token:    expired {} min ago (refreshed on next use)",
                -left / 60_000
            );
        }
        let _ = writeln!(
            out,
            "Refresh token:   {}",
            if t.tokens().refresh_token.is_some() {
                "held"
            } else {
                "none: pair again when the access token expires"
            }
        );
        let _ = writeln!(out, "Token file:      {}", ctx.store.path().display());
    }
    crate::ui::stdout(&out)
}

async fn logout(ctx: &Context, local_only: bool) -> Result<(), AppError> {
    let _lock = ctx.lock().await?;
    let path = ctx.store.path().display().to_string();
    let stored = match ctx.store.load() {
        Ok(Some(s)) => Some(s),
        Ok(None) => {
            eprintln!("Not paired: nothing to do.");
            return Ok(());
        }
        // A corrupt file holds nothing that could be revoked: deleting it is all there is.
        Err(e) if e.exit == Exit::NeedsPairing => {
            tracing::warn!("{}: deleting it without revoking", e.message);
            None
        }
        Err(e) => return Err(e),
    };
    let mut revoke_error = None;
    match &stored {
        Some(stored) if local_only => {
            delete(ctx)?;
            eprintln!(
                "Deleted the token file {path} without revoking its refresh token (--local-only).\n{}",
                crate::app::revoke_by_hand_hint(Some(stored))
            );
            return Ok(());
        }
        Some(stored) => match ctx.revoke(stored, 3).await {
            Ok(Revoked::Done) => eprintln!("Revoked the refresh token at the server."),
            Ok(Revoked::NoRefreshToken) => {
                eprintln!("There was no refresh token to revoke (paired without offline access).")
            }
            Ok(Revoked::NoEndpoint) => {
                eprintln!("The server has no revocation endpoint; the refresh token was not revoked.")
            }
            Ok(Revoked::AlreadyInvalid) => eprintln!("The refresh token was already invalid at the server."),
            // The configuration cannot revoke (no secret, another client's file, a rejected
            // client), or the file names servers today's configuration refuses (exit 8: nothing
            // was sent): deleting now would leave a live refresh token nobody can revoke from here.
            Err(e) if matches!(e.exit, Exit::Usage | Exit::ClientRejected | Exit::Unsafe) => {
                return Err(AppError {
                    message: format!(
                        "cannot revoke the refresh token, so the token file {path} is kept: {}",
                        e.message
                    ),
                    hint: Some(format!(
                        "{}; or delete the file without revoking: zoho-device logout --local-only",
                        e.hint
                            .as_deref()
                            .unwrap_or("fix the configuration and run logout again")
                    )),
                    ..e
                });
            }
            Err(e) => revoke_error = Some(e),
        },
        None => {}
    }
    delete(ctx)?;
    eprintln!("Deleted the token file {path}.");
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

fn delete(ctx: &Context) -> Result<(), AppError> {
    ctx.store
        .delete()
        .map(|_| ())
        .map_err(|e| crate::store::storage_error("delete", ctx.store.path(), &e))
}

/// `zoho-device man`: the main page on stdout, or every page into `out_dir`.
#[cfg(feature = "docs")]
fn man(out_dir: Option<&std::path::Path>) -> Result<(), AppError> {
    let pages = crate::cli::man_pages()
        .map_err(|e| AppError::new(Exit::Unexpected, format!("cannot render the man pages: {e}")))?;
    let Some(dir) = out_dir else {
        return crate::ui::stdout(&String::from_utf8_lossy(&pages[0].1));
    };
    std::fs::create_dir_all(dir).map_err(|e| AppError::usage(format!("cannot create {}: {e}", dir.display())))?;
    for (name, page) in &pages {
        let path = dir.join(name);
        std::fs::write(&path, page).map_err(|e| AppError::usage(format!("cannot write {}: {e}", path.display())))?;
        eprintln!("{}", path.display());
    }
    Ok(())
}

/// What a Zoho client ID looks like: digits, a dot, then letters and digits
/// (`1004.ABC...`). Anything else cannot be one.
pub fn client_id_problem(id: &str) -> Option<&'static str> {
    let Some((number, rest)) = id.split_once('.') else {
        return Some("it has no dot (Zoho's client IDs look like 1004.ABC123...)");
    };
    if id.chars().any(char::is_whitespace) {
        Some("it contains spaces")
    } else if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
        Some("it does not start with digits and a dot (Zoho's client IDs look like 1004.ABC123...)")
    } else if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Some("after the dot it has characters other than letters and digits")
    } else {
        None
    }
}

/// The device flow's clients (Zoho's "Non-browser Applications") have IDs seen to start
/// with `1004.`; Self Clients and server-based clients (`1000.`) cannot use it.
pub const DEVICE_CLIENT_PREFIX: &str = "1004.";

/// Exit 2 for a Zoho client ID that cannot be one; with `warn`, a warning for an unusual one.
fn check_client_id(settings: &Settings, warn: bool) -> Result<(), AppError> {
    let (Profile::Zoho, Some(id)) = (settings.profile, settings.client_id.as_deref()) else {
        return Ok(());
    };
    if let Some(problem) = client_id_problem(id) {
        return Err(AppError::usage(format!(
            "{id:?} cannot be a Zoho client ID: {problem}"
        ))
        .hint("copy the Client ID of your \"Non-browser Application\" from https://api-console.zoho.com into --client-id or ZOHO_CLIENT_ID"));
    }
    if warn && !id.starts_with(DEVICE_CLIENT_PREFIX) {
        tracing::warn!(
            "the client ID {id} does not start with {DEVICE_CLIENT_PREFIX}: the device flow needs a client of type \"Non-browser Applications\" (create one at https://api-console.zoho.com); Self Client, Server-based and Client-based clients are refused"
        );
    }
    Ok(())
}
