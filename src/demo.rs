//! `zoho-device demo`: the whole product against the built-in simulator, over real HTTP on
//! loopback — no Zoho account needed.

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
    let dir = std::env::temp_dir().join(format!("zoho-device-demo-{}", std::process::id()));

    eprintln!(
        "zoho-device demo: a simulated Zoho (US and EU data centres) runs on {us} and {}",
        sim.accounts_url("eu")
    );
    eprintln!("The client is registered in the US; the user lives in the EU, so Zoho answers other_dc mid-flow.");
    if args.manual {
        eprintln!("Approve in a browser: open the URL shown below and press Accept.\n");
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
        endpoint: Endpoint::Zoho {
            dc: DcChoice::Fixed(zoho_device_core::DataCenter::Us),
            accounts_override: Some(zoho_device_core::ServerUrl::parse(&us).expect("the simulator URL is valid")),
        },
        scopes: vec![crate::settings::DEFAULT_SCOPE.into()],
        token_file: global.token_file.clone().unwrap_or_else(|| dir.join("token.json")),
        displays: vec![],
        config_path: None,
        on_needs_pairing: None,
        offline_access: true,
        organization_id: None,
    };
    let ctx = Context::new(settings)?;
    let events = args.events.is_some();
    let mut ui = PairingUi::new(open_displays(&args.displays, events, Signals::Display)?, events);
    let opts = LoginOptions {
        kiosk: false,
        min_interval: Some(Duration::from_millis(200)),
    };
    let stored = login::login(&ctx, &mut ui, &opts).await?;
    eprintln!(
        "\n1. Paired: user's data centre {}, accounts server {}, API domain {}",
        stored.tokens.location.as_deref().unwrap_or("?"),
        stored.tokens.accounts_url.as_ref().map(|u| u.as_str()).unwrap_or("?"),
        stored.tokens.api_domain.as_ref().map(|u| u.as_str()).unwrap_or("?"),
    );
    eprintln!("   Token saved (0600, atomically) to {}", ctx.store.path().display());

    let refreshed = ctx.force_refresh(None).await?;
    eprintln!(
        "2. Refreshed the access token at the user's DC: valid for {} min, same refresh token kept",
        refreshed.tokens.expires_in(crate::store::wall_now()).as_secs() / 60
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
    if global.token_file.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}
