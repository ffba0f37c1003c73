use crate::util::*;
use zoho_device_sim::Simulator;

#[tokio::test]
async fn the_verification_url_serves_a_form_and_set_code_prefills_it() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let v = device_code(&us, CLIENT).await.json();
    let page = get(&s(&v["verification_url"]), None).await;
    assert_eq!(page.status, 200);
    assert!(page.text.contains(r#"<form method="post" action="/oauth/v3/device">"#));
    assert!(page.text.contains(r#"value="accept""#) && page.text.contains(r#"value="deny""#));
    assert!(page.text.contains(r#"name="user_code" value="""#));
    let page = get(&s(&v["verification_uri_complete"]), None).await;
    let prefilled = format!(r#"name="user_code" value="{}""#, s(&v["user_code"]));
    assert!(page.text.contains(&prefilled), "{}", page.text);
    assert!(page.text.contains("sim.user@example.com"));
}

#[tokio::test]
async fn accept_on_the_page_approves_the_code() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    let r = post(
        &format!("{us}/oauth/v3/device"),
        &[
            ("user_code", &user_code.to_lowercase()),
            ("user", "sim.user@example.com"),
            ("action", "accept"),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("Device connected"), "{}", r.text);
    assert!(poll(&us, &code).await.json()["access_token"].is_string());
}

#[tokio::test]
async fn deny_on_the_page_denies_and_a_bad_code_is_refused() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    let url = format!("{us}/oauth/v3/device");
    let r = post(&url, &[("user_code", &user_code), ("action", "deny")]).await;
    assert_eq!(r.status, 200);
    assert!(r.text.contains("Access denied"));
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("access_denied"));
    let r = post(&url, &[("user_code", "ZZZZ-0000"), ("action", "accept")]).await;
    assert_eq!(r.status, 400);
    assert!(r.text.contains("not valid"));
}
