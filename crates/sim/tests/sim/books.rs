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

/// A pairing at `us` with `scope`; returns (api_domain, access token).
async fn pair_with_scope(sim: &Simulator, scope: &str) -> (String, String) {
    let us = sim.accounts_url("us");
    let v = post(
        &format!("{us}/oauth/v3/device/code"),
        &[
            ("client_id", CLIENT),
            ("grant_type", "device_request"),
            ("scope", scope),
            ("access_type", "offline"),
        ],
    )
    .await
    .json();
    assert!(sim.approve(&s(&v["user_code"])));
    let t = poll(&us, &s(&v["device_code"])).await.json();
    (s(&t["api_domain"]), s(&t["access_token"]))
}

fn auth(at: &str) -> String {
    format!("Zoho-oauthtoken {at}")
}

#[tokio::test]
async fn lists_page_with_page_context_and_need_the_organization() {
    let sim = Simulator::spawn(fast()).unwrap();
    let (api, at) = pair_with_scope(&sim, "ZohoBooks.invoices.READ").await;
    let r = get(&format!("{api}/books/v3/invoices"), Some(&auth(&at))).await;
    assert_eq!(
        (r.status, r.json()["code"].as_i64()),
        (400, Some(6041)),
        "no organization_id"
    );
    let r = get(&format!("{api}/books/v3/invoices?organization_id=1"), Some(&auth(&at))).await;
    assert_eq!(
        (r.status, r.json()["code"].as_i64()),
        (400, Some(6041)),
        "not the user's"
    );
    let mut seen = 0;
    for page in 1..=3 {
        let r = get(
            &format!("{api}/books/v3/invoices?organization_id=10234695&per_page=20&page={page}"),
            Some(&auth(&at)),
        )
        .await;
        assert_eq!(r.status, 200);
        let v = r.json();
        seen += v["invoices"].as_array().unwrap().len();
        assert_eq!(v["page_context"]["page"], page);
        assert_eq!(v["page_context"]["per_page"], 20);
        assert_eq!(v["page_context"]["has_more_page"], page < 3);
        assert!(
            v["invoices"][0].get("line_items").is_none(),
            "lists leave line items out"
        );
    }
    assert_eq!(seen, 45);
    // The token's scope reads invoices, not contacts.
    let r = get(
        &format!("{api}/books/v3/contacts?organization_id=10234695"),
        Some(&auth(&at)),
    )
    .await;
    assert_eq!((r.status, r.json()["code"].as_i64()), (401, Some(57)));
}

#[tokio::test]
async fn writes_take_jsonstring_or_json_and_create_records() {
    let sim = Simulator::spawn(fast()).unwrap();
    let (api, at) = pair_with_scope(&sim, "ZohoBooks.contacts.ALL").await;
    let url = format!("{api}/books/v3/contacts?organization_id=10234695");
    let r = client()
        .post(&url)
        .header("Authorization", auth(&at))
        .form(&[("JSONString", r#"{"contact_name":"Lighthouse Records"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 201);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], 0);
    let id = s(&v["contact"]["contact_id"]);
    let r = client()
        .put(format!("{api}/books/v3/contacts/{id}?organization_id=10234695"))
        .header("Authorization", auth(&at))
        .json(&serde_json::json!({ "email": "hi@lighthouse.example" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let r = get(
        &format!("{api}/books/v3/contacts/{id}?organization_id=10234695"),
        Some(&auth(&at)),
    )
    .await;
    assert_eq!(r.json()["contact"]["email"], "hi@lighthouse.example");
    let r = get(&url, Some(&auth(&at))).await;
    assert_eq!(r.json()["contacts"].as_array().unwrap().len(), 13);
    // A second contact of the same name, and a body that is not JSON, are refused.
    let r = client()
        .post(&url)
        .header("Authorization", auth(&at))
        .form(&[("JSONString", r#"{"contact_name":"Lighthouse Records"}"#)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let r = client()
        .post(&url)
        .header("Authorization", auth(&at))
        .form(&[("JSONString", "{oops")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn the_daily_budget_is_429_code_45_with_retry_after() {
    let sim = Simulator::spawn(fast().books_daily_limit(2, Duration::from_secs(3600))).unwrap();
    let us = sim.accounts_url("us");
    let at = s(&pair(&sim).await["access_token"]);
    for _ in 0..2 {
        assert_eq!(orgs(&us, &at).await.status, 200);
    }
    let r = client()
        .get(format!("{us}/books/v3/organizations"))
        .header("Authorization", auth(&at))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 429);
    let retry: u64 = r.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], 45);
}
