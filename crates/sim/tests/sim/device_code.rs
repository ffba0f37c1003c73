use crate::util::*;
use zoho_device_sim::{SimConfig, Simulator};

#[tokio::test]
async fn issues_a_code_in_milliseconds_with_both_urls() {
    let sim = Simulator::spawn(SimConfig::default()).unwrap();
    let us = sim.accounts_url("us");
    let r = device_code(&us, CLIENT).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let user_code = s(&v["user_code"]);
    let (letters, digits) = user_code.split_once('-').unwrap();
    assert!(letters.len() == 4 && letters.chars().all(|c| c.is_ascii_uppercase()));
    assert!(digits.len() == 4 && digits.chars().all(|c| c.is_ascii_digit()));
    let device = s(&v["device_code"]);
    let hex = device.strip_prefix("1004.").unwrap();
    assert!(hex.len() >= 16 && hex.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(v["interval"], 30_000);
    assert_eq!(v["expires_in"], 300_000);
    assert_eq!(s(&v["verification_url"]), format!("{us}/oauth/v3/device"));
    assert_eq!(
        s(&v["verification_uri_complete"]),
        format!("{us}/oauth/v3/device/setCode?devcode={user_code}")
    );
    assert_eq!(sim.stats().codes_issued, 1);
}

#[tokio::test]
async fn timings_are_configurable() {
    let sim = Simulator::spawn(SimConfig::default().interval_ms(200).code_lifetime_ms(20_000)).unwrap();
    let v = device_code(&sim.accounts_url("us"), CLIENT).await.json();
    assert_eq!(v["interval"], 200);
    assert_eq!(v["expires_in"], 20_000);
}

#[tokio::test]
async fn parameters_may_come_in_the_query_string() {
    let sim = Simulator::spawn(SimConfig::default()).unwrap();
    let us = sim.accounts_url("us");
    let url = format!(
        "{us}/oauth/v3/device/code?client_id={CLIENT}&grant_type=device_request&scope=ZohoBooks.settings.READ&access_type=offline"
    );
    let r = post(&url, &[]).await;
    assert!(r.json()["device_code"].is_string(), "{}", r.text);
}

#[tokio::test]
async fn a_dc_that_does_not_know_the_client_says_invalid_client_with_200() {
    let sim = Simulator::spawn(SimConfig::default()).unwrap();
    let r = device_code(&sim.accounts_url("eu"), CLIENT).await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("invalid_client")));
    let r = device_code(&sim.accounts_url("us"), "1004.NOSUCH").await;
    assert_eq!((r.status, r.error().as_deref()), (200, Some("invalid_client")));
    assert_eq!(sim.stats().codes_issued, 0);
}

#[tokio::test]
async fn a_multi_dc_client_is_known_in_each_of_its_dcs() {
    let sim = Simulator::spawn(SimConfig::default().client(CLIENT, SECRET, &["us", "eu"])).unwrap();
    for dc in ["us", "eu"] {
        let v = device_code(&sim.accounts_url(dc), CLIENT).await.json();
        assert!(s(&v["verification_url"]).starts_with(&sim.accounts_url(dc)), "{v}");
    }
}

#[tokio::test]
async fn wrong_grant_type_and_space_separated_scopes_are_refused() {
    let sim = Simulator::spawn(SimConfig::default()).unwrap();
    let url = format!("{}/oauth/v3/device/code", sim.accounts_url("us"));
    let r = post(
        &url,
        &[
            ("client_id", CLIENT),
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("scope", SCOPE),
        ],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("unsupported_grant_type"));
    let r = post(
        &url,
        &[
            ("client_id", CLIENT),
            ("grant_type", "device_request"),
            ("scope", "ZohoBooks.settings.READ ZohoBooks.contacts.READ"),
        ],
    )
    .await;
    assert_eq!(r.error().as_deref(), Some("invalid_scope"));
}

#[tokio::test]
async fn verification_uri_complete_can_be_left_out() {
    let sim = Simulator::spawn(SimConfig::default().omit_verification_uri_complete(true)).unwrap();
    let v = device_code(&sim.accounts_url("us"), CLIENT).await.json();
    assert!(v.get("verification_uri_complete").is_none(), "{v}");
    assert!(v["verification_url"].is_string());
}

#[tokio::test]
async fn errors_can_be_sent_with_http_400() {
    let sim = Simulator::spawn(SimConfig::default().errors_as_400(true)).unwrap();
    let r = device_code(&sim.accounts_url("eu"), CLIENT).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("invalid_client")));
    let (_, code) = new_code(&sim.accounts_url("us")).await;
    let r = poll(&sim.accounts_url("us"), &code).await;
    assert_eq!((r.status, r.error().as_deref()), (400, Some("authorization_pending")));
}

#[tokio::test]
async fn serverinfo_maps_every_location() {
    let sim = Simulator::spawn(SimConfig::default().locations(&["us", "eu", "in"])).unwrap();
    let r = get(&format!("{}/oauth/serverinfo", sim.accounts_url("eu")), None).await;
    let v = r.json();
    assert_eq!(v["result"], "success");
    for dc in ["us", "eu", "in"] {
        assert_eq!(s(&v["locations"][dc]), sim.accounts_url(dc));
    }
    assert_eq!(v["locations"].as_object().unwrap().len(), 3);
}
