//! Pair with the async driver (tokio + reqwest), from your own program.
//!
//! ```text
//! cargo run --example pair_async                      # against a built-in simulator
//! ZOHO_CLIENT_ID=1004.XXX ZOHO_CLIENT_SECRET=... ZOHO_DC=eu cargo run --example pair_async
//! ```

use std::time::Duration;

use zoho_device_core::reqwest_driver::{self, HttpClient, HttpConfig, MonotonicClock};
use zoho_device_core::{
    ClientCredentials, ClientSecret, DataCenter, DeviceFlow, FlowConfig, Notice, Server, ServerUrl, Step,
};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Without credentials, run against the simulator (auto-approves after 2 s).
    let (_sim, client, server) = match std::env::var("ZOHO_CLIENT_ID") {
        Ok(id) => {
            let secret = std::env::var("ZOHO_CLIENT_SECRET")?;
            let dc = std::env::var("ZOHO_DC").unwrap_or_else(|_| "us".into());
            let dc = DataCenter::from_location(&dc).ok_or("unknown ZOHO_DC")?;
            let client = ClientCredentials {
                client_id: id,
                client_secret: Some(ClientSecret::new(secret)),
            };
            (None, client, Server::zoho_dc(dc))
        }
        Err(_) => {
            let sim = zoho_device_sim::Simulator::spawn(
                zoho_device_sim::SimConfig::new()
                    .interval_ms(500)
                    .auto_approve_after(Duration::from_secs(2)),
            )?;
            let accounts = ServerUrl::parse(&sim.accounts_url("us"))?;
            let client = ClientCredentials {
                client_id: "1004.SIMCLIENT".into(),
                client_secret: Some(ClientSecret::new("sim-secret")),
            };
            (Some(sim), client, Server::zoho(accounts))
        }
    };

    let http = HttpClient::new(&HttpConfig::default())?;
    let clock = MonotonicClock::default();
    let config = FlowConfig {
        min_interval: Duration::from_millis(200),
        ..FlowConfig::default()
    };
    let mut flow = DeviceFlow::new(config, client, server, clock.now());
    let tokens = reqwest_driver::run_flow(&mut flow, &http, &clock, |step| match step {
        Step::Prompt(p) => println!(
            "Open {} and enter {} (QR: {})",
            p.verification_url,
            p.user_code,
            p.qr_url()
        ),
        Step::Notice(Notice::OtherDc { location, .. }) => println!("the account lives in {location}"),
        Step::Notice(n) => println!("{n:?}"),
        _ => {}
    })
    .await?;
    println!(
        "paired: api_domain {}, valid for {} s, refresh token {}",
        tokens.api_domain.as_ref().map(|u| u.as_str()).unwrap_or("-"),
        tokens.expires_in(clock.now()).as_secs(),
        if tokens.refresh_token.is_some() {
            "held"
        } else {
            "missing"
        },
    );
    Ok(())
}
