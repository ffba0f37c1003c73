//! `zoho-device demo`: the whole product against the built-in simulator, over real HTTP on
//! loopback — no Zoho account needed.

use std::io::IsTerminal as _;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use zoho_device_sim::{SimConfig, Simulator};

use crate::app::Context;
use crate::cli::{DemoArgs, GlobalArgs};
use crate::exit::{AppError, Exit};
use crate::login::{self, LoginOptions};
use crate::settings::{DcChoice, Endpoint, Settings};
use crate::ui::{PairingUi, Signals, open_displays};

/// The simulator's demo client.
pub const DEMO_CLIENT_ID: &str = "1004.SIMCLIENT";
const DEMO_SECRET: &str = "sim-secret";

/// Runs the demo.
pub async fn run(global: &GlobalArgs, args: &DemoArgs) -> Result<(), AppError> {
    let started = Instant::now();
    let mut config = SimConfig::new()
        .locations(&["us", "eu"])
        .client(DEMO_CLIENT_ID, DEMO_SECRET, &["us", "eu"])
        .user("demo.user@example.com", "eu")
        .interval_ms(1_000)
        .code_lifetime_ms(120_000);
    if !args.manual {
        config = config.auto_approve_after(Duration::from_secs(args.approve_after));
    }
    let sim = Simulator::spawn(config).map_err(|e| {
        AppError::new(
            Exit::Unexpected,
            format!("cannot start the simulator on 127.0.0.1: {e}"),
        )
    })?;
    let us = sim.accounts_url("us");
    let dir = PrivateDir::create()?;

    eprintln!(
        "zoho-device demo: a simulated Zoho (US and EU data centres) runs on {us} and {}",
        sim.accounts_url("eu")
    );
    eprintln!("The client is registered in the US; the user lives in the EU, so Zoho answers other_dc mid-flow.");
    let ignored = ignored_settings(global);
    if !ignored.is_empty() {
        eprintln!(
            "The demo ignores {}: it never reads, writes or revokes a real pairing, only its own temporary token file.",
            ignored.join(", ")
        );
    }
    let events = args.events.is_some();
    // Whether anything shows the code and URL to a person: the terminal by default (not with
    // --events json when stderr is not a terminal), or any display other than `none`.
    let visible = if args.displays.is_empty() {
        !events || std::io::stderr().is_terminal()
    } else {
        args.displays.iter().any(|d| d.trim() != "none")
    };
    if args.manual {
        match (visible, events) {
            (true, _) => eprintln!("Approve in a browser: open the URL shown with the code and press Accept.\n"),
            (false, true) => eprintln!(
                "Approve in a browser: open the verification_uri_complete of the `code` event (stdout) and press Accept.\n"
            ),
            (false, false) => {
                return Err(
                    AppError::usage("--manual with nothing that shows the code (--display none)").hint(
                        "drop --display none, or add --display terminal (or --events json) to see the URL to approve",
                    ),
                );
            }
        }
    } else {
        eprintln!(
            "The simulator approves the code by itself after {} s (use --manual to approve in a browser).\n",
            args.approve_after
        );
    }

    let settings = Settings {
        profile: zoho_device_core::Profile::Zoho,
        client_id: Some(DEMO_CLIENT_ID.into()),
        client_secret: Some(zoho_device_core::ClientSecret::new(DEMO_SECRET)),
        secret_source: Some(crate::settings::SecretSource::Env),
        dc_secrets: Vec::new(),
        endpoint: Endpoint::Zoho {
            dc: DcChoice::Fixed(zoho_device_core::DataCenter::Us),
            accounts_override: Some(zoho_device_core::ServerUrl::parse(&us).expect("the simulator URL is valid")),
        },
        scopes: vec![crate::settings::DEFAULT_SCOPE.into()],
        token_file: dir.0.join("token.json"),
        displays: vec![],
        config_path: None,
        on_needs_pairing: None,
        offline_access: true,
        offline_access_explicit: Some(true),
        client_auth: None,
        organization_id: None,
        serve: Default::default(),
    };
    let ctx = Context::new(settings)?;
    let mut ui = PairingUi::new(open_displays(&args.displays, events, Signals::Display)?, events);
    let opts = LoginOptions {
        kiosk: false,
        min_interval: Some(Duration::from_millis(200)),
    };
    let stored = login::login(&ctx, &mut ui, &opts).await?;
    eprintln!(
        "\n1. Paired: user's data centre {}, accounts server {}, API domain {}",
        stored.tokens().location.as_deref().unwrap_or("?"),
        stored.tokens().accounts_url.as_ref().map(|u| u.as_str()).unwrap_or("?"),
        stored.tokens().api_domain.as_ref().map(|u| u.as_str()).unwrap_or("?"),
    );
    eprintln!("   Token saved (0600, atomically) to {}", ctx.store.path().display());

    let refreshed = ctx.force_refresh(None).await?;
    eprintln!(
        "2. Refreshed the access token at the user's DC: valid for {} min, same refresh token kept",
        refreshed.tokens().expires_in(crate::store::wall_now()).as_secs() / 60
    );

    let orgs = crate::books::organizations(&ctx).await?;
    eprintln!("3. Zoho Books organizations (GET /books/v3/organizations):");
    for o in &orgs {
        eprintln!(
            "   {}  {}  {}{}",
            o.organization_id,
            o.name,
            o.currency_code,
            if o.is_default_org { "  (default)" } else { "" }
        );
    }
    let stats = sim.stats();
    eprintln!(
        "\nDone in {:.1} s: {} code(s), {} poll(s), {} slow_down, {} refresh(es), {} Books call(s) on the simulator.",
        started.elapsed().as_secs_f64(),
        stats.codes_issued,
        stats.polls,
        stats.slow_downs,
        stats.refreshes,
        stats.books_ok
    );
    eprintln!(
        "Next: register a \"Non-browser Application\" at https://api-console.zoho.com and run `zoho-device login` (see --help)."
    );
    Ok(())
}

/// The settings given to the demo that it does not use (flags or their environment variables):
/// it runs only against its own simulator with its own client and temporary token file.
fn ignored_settings(g: &GlobalArgs) -> Vec<&'static str> {
    [
        (g.config.is_some(), "--config/ZOHO_DEVICE_CONFIG"),
        (g.client_id.is_some(), "--client-id/ZOHO_CLIENT_ID"),
        (
            g.client_secret_file.is_some(),
            "--client-secret-file/ZOHO_CLIENT_SECRET_FILE",
        ),
        (std::env::var_os("ZOHO_CLIENT_SECRET").is_some(), "ZOHO_CLIENT_SECRET"),
        (g.dc.is_some(), "--dc/ZOHO_DC"),
        (g.accounts_url.is_some(), "--accounts-url/ZOHO_ACCOUNTS_URL"),
        (g.scope.is_some(), "--scope/ZOHO_SCOPE"),
        (g.token_file.is_some(), "--token-file/ZOHO_TOKEN_FILE"),
        (g.profile.is_some(), "--profile/ZOHO_PROFILE"),
        (
            g.issuer.is_some()
                || g.device_authorization_url.is_some()
                || g.token_url.is_some()
                || g.revocation_url.is_some(),
            "the rfc8628 endpoints",
        ),
        (g.no_offline_access, "--no-offline-access"),
    ]
    .into_iter()
    .filter_map(|(given, name)| given.then_some(name))
    .collect()
}

/// The demo's own directory for its token file: created fresh (0700, never an existing path,
/// so nothing planted there is followed) and removed when the demo ends, however it ends.
struct PrivateDir(PathBuf);

impl PrivateDir {
    fn create() -> Result<PrivateDir, AppError> {
        let base = std::env::temp_dir();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let mut last = None;
        for attempt in 0..16u32 {
            let dir = base.join(format!("zoho-device-demo-{}-{nanos:x}-{attempt}", std::process::id()));
            match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => return Ok(PrivateDir(dir)),
                Err(e) => last = Some(e),
            }
        }
        Err(AppError::new(
            Exit::Unexpected,
            format!(
                "cannot create a temporary directory in {}: {}",
                base.display(),
                last.map_or_else(String::new, |e| e.to_string())
            ),
        )
        .hint("set TMPDIR to a writable directory"))
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
