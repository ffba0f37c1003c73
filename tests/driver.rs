//! The core's async driver (`zoho_device_core::reqwest_driver`) against the simulator on
//! loopback, as a program that embeds the crate would use it: pair (across an `other_dc` move),
//! refresh, revoke, and the refused refresh after the revoke. The CLI tests drive the same code
//! through the binary; this is the library's own path, without the program around it.

use std::time::Duration;

use zoho_device_core::reqwest_driver::{self, HttpClient, HttpConfig, MonotonicClock};
use zoho_device_core::{
    Backoff, ClientCredentials, ClientSecret, DeviceFlow, Error, FlowConfig, Notice, Server, ServerUrl, Step,
    TokenEndpoint,
};
use zoho_device_sim::{SimConfig, Simulator};

#[tokio::test(flavor = "current_thread")]
async fn pair_across_dcs_refresh_and_revoke_with_the_async_driver() {
    let sim = Simulator::spawn(
        SimConfig::new()
            .locations(&["us", "eu"])
            .client("1004.DRIVER", "driver-secret", &["us", "eu"])
            .user("ana", "eu")
            .interval_ms(200)
            .auto_approve_after_polls(1),
    )
    .unwrap();
    let us = ServerUrl::parse(&sim.accounts_url("us")).unwrap();
    let eu = sim.accounts_url("eu");
    let client = ClientCredentials {
        client_id: "1004.DRIVER".into(),
        client_secret: Some(ClientSecret::new("driver-secret")),
    };
    let http = HttpClient::new(&HttpConfig::default()).unwrap();
    let clock = MonotonicClock::default();
    let config = FlowConfig {
        min_interval: Duration::from_millis(200),
        ..FlowConfig::default()
    };
    let mut flow = DeviceFlow::new(config, client.clone(), Server::zoho(us), clock.now());
    let mut seen = Vec::new();
    let tokens = reqwest_driver::run_flow(&mut flow, &http, &clock, |step| match step {
        Step::Prompt(p) => seen.push(format!("prompt {}", p.user_code)),
        Step::Notice(Notice::OtherDc { location, .. }) => seen.push(format!("other_dc {location}")),
        _ => {}
    })
    .await
    .expect("paired");
    assert!(seen.iter().any(|s| s == "other_dc eu"), "{seen:?}");
    assert_eq!(seen.iter().filter(|s| s.starts_with("prompt")).count(), 1, "{seen:?}");
    assert_eq!(tokens.accounts_url.as_ref().map(|u| u.as_str()), Some(eu.as_str()));
    assert!(sim.access_token_live(tokens.access_token.expose()));
    let refresh_token = tokens.refresh_token.clone().expect("offline access by default");
    assert_eq!(sim.refresh_tokens("ana"), [refresh_token.expose().to_string()]);
    // Polling moved to the user's DC: the first poll went to us, the last to eu.
    let polls = sim.requests_to("/oauth/v3/device/token");
    assert_eq!(polls.first().map(|r| r.location.as_str()), Some("us"), "{polls:?}");
    assert_eq!(polls.last().map(|r| r.location.as_str()), Some("eu"), "{polls:?}");

    // Refresh at the user's DC: a new access token, the same refresh token.
    let endpoint = TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap());
    let now = || clock.now();
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_millis(400), 7);
    let fresh = reqwest_driver::refresh(&http, &endpoint, &client, &tokens, &now, 3, &mut backoff)
        .await
        .expect("refreshed");
    assert_ne!(fresh.access_token.expose(), tokens.access_token.expose());
    assert!(sim.access_token_live(fresh.access_token.expose()));
    assert_eq!(
        fresh.refresh_token.as_ref().map(|r| r.expose()),
        Some(refresh_token.expose())
    );

    // Revoke, then the refresh token is refused as a dead pairing (not a transient failure).
    let revoked = reqwest_driver::revoke(&http, &endpoint, &client, &fresh, 3, &mut backoff)
        .await
        .expect("revoked");
    assert!(revoked, "Zoho has a revocation endpoint");
    assert!(sim.refresh_tokens("ana").is_empty());
    let e = reqwest_driver::refresh(&http, &endpoint, &client, &fresh, &now, 3, &mut backoff)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidGrant { .. }), "{e:?}");
    assert!(!e.is_transient());
    // No secret ever travelled in a URL: everything went in form bodies.
    for path in [
        "/oauth/v3/device/code",
        "/oauth/v3/device/token",
        "/oauth/v2/token",
        "/oauth/v2/token/revoke",
    ] {
        for r in sim.requests_to(path) {
            assert_eq!(r.query, None, "{r:?}");
            assert_eq!(r.method, "POST", "{r:?}");
        }
    }
    assert_eq!(sim.requests_to("/oauth/v2/token/revoke").len(), 1);
}
