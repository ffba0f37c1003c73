use std::time::Duration;

use crate::util::*;
use zoho_device_sim::{SimConfig, Simulator};

#[tokio::test]
async fn refresh_mints_an_access_token_and_no_refresh_token() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let t = pair(&sim).await;
    let r = refresh(&us, &s(&t["refresh_token"])).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert!(s(&v["access_token"]).starts_with("1000."));
    assert_ne!(v["access_token"], t["access_token"]);
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert_eq!(s(&v["api_domain"]), us);
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(orgs(&us, &s(&v["access_token"])).await.status, 200);
    assert_eq!(sim.stats().refreshes, 1);
}

#[tokio::test]
async fn unknown_refresh_tokens_and_clients_are_refused_with_200() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let r = refresh(&us, "1000.deadbeef.deadbeef").await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("invalid_code")));
    let t = pair(&sim).await;
    let r = post(
        &format!("{us}/oauth/v2/token"),
        &[
            ("client_id", CLIENT),
            ("client_secret", "wrong"),
            ("grant_type", "refresh_token"),
            ("refresh_token", &s(&t["refresh_token"])),
        ],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("invalid_client"));
    // The default client is not known in eu at all.
    let r = refresh(&sim.accounts_url("eu"), &s(&t["refresh_token"])).await;
    assert_eq!(r.error().as_deref(), Some("invalid_client"));
    assert_eq!(sim.stats().refreshes, 0);
}

#[tokio::test]
async fn refresh_at_a_dc_that_knows_the_client_but_not_the_user_is_invalid_code() {
    let sim = Simulator::spawn(fast().client(CLIENT, SECRET, &["us", "eu"])).unwrap();
    let t = pair(&sim).await;
    let r = refresh(&sim.accounts_url("eu"), &s(&t["refresh_token"])).await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("invalid_code")));
}

#[tokio::test]
async fn the_throttle_answers_access_denied_in_a_sliding_window() {
    // A window long enough that four refreshes fit in it even on a loaded machine.
    let sim = Simulator::spawn(fast().throttle(3, Duration::from_millis(3000))).unwrap();
    let us = sim.accounts_url("us");
    let rt = s(&pair(&sim).await["refresh_token"]);
    for _ in 0..3 {
        assert!(refresh(&us, &rt).await.json()["access_token"].is_string());
    }
    let r = refresh(&us, &rt).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["error"], "Access Denied");
    assert!(s(&v["error_description"]).starts_with("Token creation throttle limit reached."));
    tokio::time::sleep(Duration::from_millis(3050)).await;
    assert!(
        refresh(&us, &rt).await.json()["access_token"].is_string(),
        "window slid"
    );
    let st = sim.stats();
    assert_eq!((st.refreshes, st.throttled), (4, 1));
}

#[tokio::test]
async fn the_default_throttle_is_ten_per_refresh_token() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let rt = s(&pair(&sim).await["refresh_token"]);
    for _ in 0..10 {
        assert!(refresh(&us, &rt).await.json()["access_token"].is_string());
    }
    assert_eq!(refresh(&us, &rt).await.error().as_deref(), Some("Access Denied"));
}

#[tokio::test]
async fn fifteen_live_access_tokens_the_oldest_stops_working() {
    let sim = Simulator::spawn(fast().throttle(100, Duration::from_secs(600))).unwrap();
    let us = sim.accounts_url("us");
    let t = pair(&sim).await;
    let rt = s(&t["refresh_token"]);
    let mut tokens = vec![s(&t["access_token"])];
    for _ in 0..14 {
        tokens.push(s(&refresh(&us, &rt).await.json()["access_token"]));
    }
    assert!(tokens.iter().all(|t| sim.access_token_live(t)), "15 live");
    tokens.push(s(&refresh(&us, &rt).await.json()["access_token"]));
    assert!(!sim.access_token_live(&tokens[0]));
    assert_eq!(orgs(&us, &tokens[0]).await.json()["code"], 57);
    assert_eq!(orgs(&us, &tokens[1]).await.status, 200);
    assert_eq!(orgs(&us, &tokens[15]).await.status, 200);
}

#[tokio::test]
async fn the_21st_refresh_token_evicts_the_oldest_silently() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let mut rts = Vec::new();
    for _ in 0..21 {
        rts.push(s(&pair(&sim).await["refresh_token"]));
    }
    let live = sim.refresh_tokens("sim.user@example.com");
    assert_eq!(live.len(), 20);
    assert_eq!(live, rts[1..].to_vec(), "oldest first, first one gone");
    assert_eq!(refresh(&us, &rts[0]).await.error().as_deref(), Some("invalid_code"));
    assert!(refresh(&us, &rts[1]).await.json()["access_token"].is_string());
    assert_eq!(sim.stats().refresh_tokens_evicted, 1);
}

#[tokio::test]
async fn revoke_kills_the_refresh_token_and_its_access_tokens() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let t = pair(&sim).await;
    let (rt, at) = (s(&t["refresh_token"]), s(&t["access_token"]));
    let url = format!("{us}/oauth/v2/token/revoke");
    let r = post(&url, &[("token", &rt)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "success");
    assert_eq!(refresh(&us, &rt).await.error().as_deref(), Some("invalid_code"));
    assert_eq!(orgs(&us, &at).await.json()["code"], 57);
    let r = post(&url, &[("token", &rt)]).await;
    assert_eq!(r.status, 400, "revoking twice: bad token");
    let r = post(&url, &[("token", "garbage")]).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn the_test_can_revoke_like_a_user_removing_the_app() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let a = pair(&sim).await;
    let b = pair(&sim).await;
    assert!(sim.revoke_refresh_token(&s(&a["refresh_token"])));
    assert!(!sim.revoke_refresh_token(&s(&a["refresh_token"])));
    assert_eq!(
        refresh(&us, &s(&a["refresh_token"])).await.error().as_deref(),
        Some("invalid_code")
    );
    assert!(refresh(&us, &s(&b["refresh_token"])).await.json()["access_token"].is_string());
    sim.revoke_refresh_tokens();
    assert_eq!(
        refresh(&us, &s(&b["refresh_token"])).await.error().as_deref(),
        Some("invalid_code")
    );
    assert!(sim.refresh_tokens("sim.user@example.com").is_empty());
    assert_eq!(sim.stats().refresh_tokens_revoked, 2);
}

#[tokio::test]
async fn refresh_honours_errors_as_400() {
    let sim = Simulator::spawn(SimConfig::default().errors_as_400(true)).unwrap();
    let r = refresh(&sim.accounts_url("us"), "1000.nope.nope").await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("invalid_code")));
}
