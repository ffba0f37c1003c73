use std::time::Duration;

use crate::util::*;
use zoho_device_sim::Simulator;

#[tokio::test]
async fn organizations_with_a_valid_token() {
    let sim = Simulator::spawn(fast()).unwrap();
    let t = pair(&sim).await;
    let r = orgs(&s(&t["api_domain"]), &s(&t["access_token"])).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!((v["code"].as_i64(), v["message"].as_str()), (Some(0), Some("success")));
    let org = &v["organizations"][0];
    assert_eq!(org["organization_id"], "10234695");
    assert_eq!(org["name"], "Zillum");
    assert_eq!(org["is_default_org"], true);
    assert_eq!(org["currency_code"], "USD");
    assert_eq!(sim.stats().books_ok, 1);
}

#[tokio::test]
async fn missing_or_garbled_authorization_is_401_code_14() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let at = s(&pair(&sim).await["access_token"]);
    let url = format!("{us}/books/v3/organizations");
    for auth in [None, Some(format!("Bearer {at}")), Some("Zoho-oauthtoken ".to_owned())] {
        let r = get(&url, auth.as_deref()).await;
        assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(14)), "{auth:?}");
    }
}

#[tokio::test]
async fn unknown_or_expired_tokens_are_401_code_57() {
    let sim = Simulator::spawn(fast().token_lifetime_s(1)).unwrap();
    let us = sim.accounts_url("us");
    let r = orgs(&us, "1000.unknown.token").await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(57)));
    let at = s(&pair(&sim).await["access_token"]);
    assert_eq!(orgs(&us, &at).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1050)).await;
    let r = orgs(&us, &at).await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(57)));
}

#[tokio::test]
async fn a_token_without_the_settings_scope_is_401_code_57() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let v = post(
        &format!("{us}/oauth/v3/device/code"),
        &[
            ("client_id", CLIENT),
            ("grant_type", "device_request"),
            ("scope", "ZohoBooks.contacts.READ"),
            ("access_type", "offline"),
        ],
    )
    .await
    .json();
    assert!(sim.approve(&s(&v["user_code"])));
    let t = poll(&us, &s(&v["device_code"])).await.json();
    let r = orgs(&us, &s(&t["access_token"])).await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(57)));
}

#[tokio::test]
async fn a_token_at_another_dcs_api_is_401_code_57() {
    let sim = Simulator::spawn(fast()).unwrap();
    let at = s(&pair(&sim).await["access_token"]);
    let r = orgs(&sim.accounts_url("eu"), &at).await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(57)));
}

#[tokio::test]
async fn the_rate_limit_is_429_code_44() {
    let sim = Simulator::spawn(fast().books_rate_limit(3, Duration::from_secs(60))).unwrap();
    let us = sim.accounts_url("us");
    let at = s(&pair(&sim).await["access_token"]);
    for _ in 0..3 {
        assert_eq!(orgs(&us, &at).await.status, 200);
    }
    let r = orgs(&us, &at).await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (429, Some(44)));
    let st = sim.stats();
    assert_eq!((st.books_ok, st.books_refused), (3, 1));
}
