//! Call Zoho Books with the token that `zoho-device login` (or the agent) stored — the way
//! another program on the device uses the pairing. It refreshes through the same store (under
//! its cross-process lock) when the token is about to expire.
//!
//! ```text
//! ZOHO_CLIENT_SECRET=... cargo run --example books_with_stored_token -- ~/.local/state/zoho-device/token.json
//! cargo run --example books_with_stored_token         # pairs with the built-in simulator first
//! ```

use std::path::PathBuf;
use std::time::Duration;

use zoho_device::app::{Context, REFRESH_MARGIN};
use zoho_device::login::{LoginOptions, login};
use zoho_device::settings::{DcChoice, Endpoint, SecretSource, Settings};
use zoho_device::ui::PairingUi;
use zoho_device_core::{ClientSecret, DataCenter, Profile, ServerUrl};

fn settings(
    token_file: PathBuf,
    client_id: Option<String>,
    secret: Option<String>,
    accounts: Option<ServerUrl>,
) -> Settings {
    Settings {
        profile: Profile::Zoho,
        client_id,
        client_secret: secret.map(ClientSecret::new),
        secret_source: Some(SecretSource::Env),
        dc_secrets: vec![],
        endpoint: Endpoint::Zoho {
            dc: DcChoice::Fixed(DataCenter::Us),
            accounts_override: accounts,
        },
        scopes: vec!["ZohoBooks.settings.READ".into()],
        token_file,
        displays: vec![],
        config_path: None,
        on_needs_pairing: None,
        offline_access: true,
        offline_access_explicit: None,
        client_auth: None,
        organization_id: None,
        serve: Default::default(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut _sim = None;
    let ctx = match std::env::args().nth(1) {
        Some(token_file) => Context::new(settings(
            token_file.into(),
            None,
            std::env::var("ZOHO_CLIENT_SECRET").ok(),
            None,
        ))?,
        None => {
            let sim = zoho_device_sim::Simulator::spawn(
                zoho_device_sim::SimConfig::new()
                    .interval_ms(300)
                    .auto_approve_after(Duration::from_secs(1)),
            )?;
            let accounts = ServerUrl::parse(&sim.accounts_url("us"))?;
            _sim = Some(sim);
            let ctx = Context::new(settings(
                dir.path().join("token.json"),
                Some("1004.SIMCLIENT".into()),
                Some("sim-secret".into()),
                Some(accounts),
            ))?;
            let mut ui = PairingUi::new(vec![], false);
            login(
                &ctx,
                &mut ui,
                &LoginOptions {
                    kiosk: false,
                    min_interval: Some(Duration::from_millis(200)),
                },
            )
            .await?;
            println!(
                "paired with the simulator; token stored in {}",
                ctx.store.path().display()
            );
            ctx
        }
    };
    let stored = ctx.fresh_token(REFRESH_MARGIN).await?;
    println!(
        "token valid for {} s",
        stored.tokens().expires_in(zoho_device::store::wall_now()).as_secs()
    );
    for org in zoho_device::books::organizations(&ctx).await? {
        println!("{} {} ({})", org.organization_id, org.name, org.currency_code);
    }
    Ok(())
}
