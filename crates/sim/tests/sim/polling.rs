use std::time::{Duration, Instant};

use crate::util::*;
use zoho_device_sim::{AutoApprove, SimConfig, Simulator};

#[tokio::test]
async fn pending_then_success_then_the_code_is_spent() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    let r = poll(&us, &code).await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("authorization_pending")));
    assert_eq!(sim.pending_user_codes(), vec![user_code.clone()]);
    assert!(sim.approve(&user_code));
    assert!(!sim.approve(&user_code), "a decided code cannot be approved again");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll(&us, &code).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(s(&v["access_token"]).starts_with("1000."));
    assert!(s(&v["refresh_token"]).starts_with("1000."));
    assert_eq!(s(&v["api_domain"]), us);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let r = poll(&us, &code).await;
    assert_eq!(r.error().as_deref(), Some("invalid_code"));
    let st = sim.stats();
    assert_eq!((st.pairings, st.refresh_tokens_issued), (1, 1));
}

#[tokio::test]
async fn polling_sooner_than_the_interval_gets_slow_down() {
    let sim = Simulator::spawn(SimConfig::default().interval_ms(300)).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("authorization_pending"));
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("slow_down"));
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("authorization_pending"));
    assert_eq!(sim.stats().slow_downs, 1);
}

#[tokio::test]
async fn the_secret_is_required_and_checked() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    let r = poll_as(&us, CLIENT, "wrong", &code).await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("invalid_client_secret")));
    let r = post(
        &format!("{us}/oauth/v3/device/token"),
        &[("client_id", CLIENT), ("grant_type", "device_token"), ("code", &code)],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("invalid_client_secret"));
}

#[tokio::test]
async fn rfc_dialect_polls_are_refused() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    let url = format!("{us}/oauth/v3/device/token");
    // The device code must travel as `code`, not `device_code`.
    let r = post(
        &url,
        &[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("grant_type", "device_token"),
            ("device_code", &code),
        ],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("invalid_code"));
    let r = post(
        &url,
        &[
            ("client_id", CLIENT),
            ("client_secret", SECRET),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("code", &code),
        ],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("unsupported_grant_type"));
    let r = poll(&us, "1004.0123456789abcdef").await;
    assert_eq!(r.error().as_deref(), Some("invalid_code"));
}

#[tokio::test]
async fn deny_gives_access_denied() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    assert!(sim.deny(&user_code.to_lowercase().replace('-', "")));
    let r = poll(&us, &code).await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("access_denied")));
}

#[tokio::test]
async fn lapsed_codes_are_expired() {
    let sim = Simulator::spawn(fast().code_lifetime_ms(300)).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("authorization_pending"));
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("expired"));
    assert!(!sim.approve(&user_code), "a lapsed code cannot be approved");
}

#[tokio::test]
async fn expire_codes_lapses_them_now_and_expired_token_is_an_option() {
    let sim = Simulator::spawn(fast().expired_token_error(true)).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    sim.expire_codes();
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("expired_token"));
    assert!(sim.pending_user_codes().is_empty());
}

#[tokio::test]
async fn a_user_in_another_dc_gets_other_dc_then_pairs_there() {
    let cfg = fast()
        .client(CLIENT, SECRET, &["us", "eu"])
        .user("anna@example.eu", "eu")
        .add_user("bob@example.com", "us");
    let sim = Simulator::spawn(cfg).unwrap();
    let (us, eu) = (sim.accounts_url("us"), sim.accounts_url("eu"));
    let (user_code, code) = new_code(&us).await;
    assert!(sim.approve_as(&user_code, "anna@example.eu"));
    let r = poll(&us, &code).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["error"], "other_dc");
    assert_eq!(v["user_location"], "eu");
    tokio::time::sleep(Duration::from_millis(5)).await;
    let v = poll(&eu, &code).await.json();
    assert_eq!(s(&v["api_domain"]), eu, "{v}");
    // Tokens live in the user's DC only.
    assert_eq!(
        refresh(&us, &s(&v["refresh_token"])).await.error().as_deref(),
        Some("invalid_code")
    );
    assert!(refresh(&eu, &s(&v["refresh_token"])).await.json()["access_token"].is_string());
    assert_eq!(sim.refresh_tokens("anna@example.eu").len(), 1);
}

#[tokio::test]
async fn a_refresh_token_needs_offline_and_without_consent_comes_once() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let pair_with = |access_type: &'static str, prompt: Option<&'static str>| {
        let (us, sim) = (us.clone(), &sim);
        async move {
            let mut form = vec![
                ("client_id", CLIENT),
                ("grant_type", "device_request"),
                ("scope", SCOPE),
                ("access_type", access_type),
            ];
            if let Some(p) = prompt {
                form.push(("prompt", p));
            }
            let v = post(&format!("{us}/oauth/v3/device/code"), &form).await.json();
            assert!(sim.approve(&s(&v["user_code"])));
            let v = poll(&us, &s(&v["device_code"])).await.json();
            assert!(v["access_token"].is_string(), "{v}");
            v.get("refresh_token").is_some()
        }
    };
    assert!(!pair_with("online", Some("consent")).await, "online: no refresh token");
    assert!(pair_with("offline", None).await, "first offline pairing: refresh token");
    assert!(!pair_with("offline", None).await, "again without consent: none");
    assert!(pair_with("offline", Some("consent")).await, "with consent: every time");
    assert!(pair_with("offline", Some("consent")).await);
}

#[tokio::test]
async fn auto_approve_after_n_polls() {
    let sim = Simulator::spawn(fast().auto_approve_after_polls(3)).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    for _ in 0..2 {
        assert_eq!(poll(&us, &code).await.error().as_deref(), Some("authorization_pending"));
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    assert!(poll(&us, &code).await.json()["access_token"].is_string());
}

#[tokio::test]
async fn auto_approve_after_a_time_as_a_chosen_user() {
    let cfg = fast()
        .client(CLIENT, SECRET, &["us", "eu"])
        .add_user("eve@example.eu", "eu")
        .auto_approve(AutoApprove {
            after: Some(Duration::from_millis(1000)),
            after_polls: None,
            user: Some("eve@example.eu".into()),
        });
    let sim = Simulator::spawn(cfg).unwrap();
    let us = sim.accounts_url("us");
    let started = Instant::now();
    let (_, code) = new_code(&us).await;
    // The code was made between `started` and now.
    let made_by = Instant::now();
    let first = poll(&us, &code).await.error();
    // Pending before the time is up (on a loaded machine the first poll may come late: then
    // there is nothing to assert about "before").
    if started.elapsed() < Duration::from_millis(900) {
        assert_eq!(first.as_deref(), Some("authorization_pending"));
    }
    tokio::time::sleep(Duration::from_millis(1010).saturating_sub(made_by.elapsed())).await;
    let v = poll(&us, &code).await.json();
    assert!(started.elapsed() >= Duration::from_millis(1000));
    assert_eq!(
        (v["error"].as_str(), v["user_location"].as_str()),
        (Some("other_dc"), Some("eu"))
    );
}
