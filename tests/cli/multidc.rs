//! Zoho's dialect as it varies, end to end: a client secret per data centre (Multi-DC), the
//! names `other_dc` gives the user's DC, HTTP 400 for the same answers, legacy token lifetimes.

use crate::util::*;

const EU_SECRET: &str = "eU-sEcReT-81c3d9e0-never-print-me";
const LOGIN: &[&str] = &["login", "--events", "json", "--display", "none"];

/// The test client enabled in us and eu with a secret of its own in eu; the user lives in eu.
fn multi_dc() -> zoho_device_sim::SimConfig {
    sim_config()
        .client(CLIENT_ID, SECRET, &["us", "eu"])
        .dc_secret(CLIENT_ID, "eu", EU_SECRET)
        .user(USER, "eu")
        .auto_approve_after_polls(1)
}

/// The `client_secret` each poll sent, by DC, in order.
fn poll_secrets(w: &World) -> Vec<(String, String)> {
    w.sim
        .requests_to("/oauth/v3/device/token")
        .iter()
        .map(|r| (r.location.clone(), r.param("client_secret").unwrap_or("").to_string()))
        .collect()
}

#[test]
fn after_other_dc_login_refresh_and_logout_use_the_users_dc_secret() {
    let mut w = World::new(multi_dc());
    w.set("ZOHO_CLIENT_SECRET_EU", Some(EU_SECRET));
    let out = w.login();
    assert_eq!(out.event("other_dc")["location"], "eu");
    assert_eq!(
        poll_secrets(&w),
        [
            ("us".to_string(), SECRET.to_string()),
            ("eu".to_string(), EU_SECRET.to_string())
        ]
    );
    assert_eq!(w.token_json()["location"], "eu");
    // Refresh at eu sends eu's secret (the simulator refuses any other there).
    w.run(&["refresh"]).code(0);
    let refreshes = w.sim.requests_to("/oauth/v2/token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].location, "eu");
    assert_eq!(refreshes[0].param("client_secret"), Some(EU_SECRET));
    w.run(&["logout"]).code(0);
    let revokes = w.sim.requests_to("/oauth/v2/token/revoke");
    assert_eq!(revokes.len(), 1);
    assert_eq!(revokes[0].location, "eu");
    assert!(w.sim.refresh_tokens(USER).is_empty(), "revoked at eu");
    w.assert_no_secret_leaked();
    for out in w.outputs.lock().unwrap().iter() {
        assert!(!out.stderr.contains(EU_SECRET) && !out.stdout.contains(EU_SECRET));
    }
}

#[test]
fn without_the_users_dc_secret_the_error_names_the_dc_and_the_variable() {
    let w = World::new(multi_dc());
    let out = w.run(LOGIN);
    out.code(5).stderr_has(&[
        "data centre eu",
        "invalid_client_secret",
        "ZOHO_CLIENT_SECRET_EU",
        "ZOHO_CLIENT_SECRET_FILE_EU",
        "client_secret_files.eu",
    ]);
    assert_eq!(out.event("error")["kind"], "client_rejected");
    assert!(!w.token_path().exists());
    w.assert_no_secret_leaked();
}

#[test]
fn a_dcs_secret_comes_from_a_file_the_config_or_a_systemd_credential() {
    // ZOHO_CLIENT_SECRET_FILE_EU.
    let mut w = World::new(multi_dc());
    let file = write_file(&w.path("secret-eu"), &format!("{EU_SECRET}\n"));
    w.set("ZOHO_CLIENT_SECRET_FILE_EU", Some(file.to_str().unwrap()));
    w.login();
    assert_eq!(poll_secrets(&w).last().unwrap().1, EU_SECRET);

    // client_secret_files = { eu = "…" } in the config file.
    let w = World::new(multi_dc());
    let file = write_file(&w.path("secret-eu"), EU_SECRET);
    write_file(
        &w.path("config/zoho-device/config.toml"),
        &format!("client_secret_files = {{ eu = {:?} }}\n", file.display().to_string()),
    );
    w.login();
    assert_eq!(poll_secrets(&w).last().unwrap().1, EU_SECRET);

    // $CREDENTIALS_DIRECTORY/zoho-client-secret-eu (systemd LoadCredential=).
    let mut w = World::new(multi_dc());
    let dir = w.path("credentials");
    write_file(&dir.join("zoho-client-secret-eu"), EU_SECRET);
    w.set("CREDENTIALS_DIRECTORY", Some(dir.to_str().unwrap()));
    w.login();
    assert_eq!(poll_secrets(&w).last().unwrap().1, EU_SECRET);
}

#[test]
fn bad_per_dc_secret_settings_are_usage_errors() {
    let mut w = World::new(multi_dc());
    write_file(
        &w.path("config/zoho-device/config.toml"),
        "client_secret_files = { mars = \"/nonexistent\" }\n",
    );
    w.run(LOGIN).code(2).stderr_has(&["\"mars\"", "not a data centre"]);
    std::fs::remove_file(w.path("config/zoho-device/config.toml")).unwrap();
    w.set("ZOHO_CLIENT_SECRET_FILE_EU", Some("/nonexistent/secret-eu"));
    w.run(LOGIN)
        .code(2)
        .stderr_has(&["cannot read the client secret file /nonexistent/secret-eu"]);
}

#[test]
fn refresh_at_the_users_dc_without_its_secret_is_refused_there() {
    let mut w = World::new(multi_dc());
    w.set("ZOHO_CLIENT_SECRET_EU", Some(EU_SECRET));
    w.login();
    let before = w.token_bytes();
    // Without eu's secret the common one goes to eu, which refuses it: nothing is lost.
    w.set("ZOHO_CLIENT_SECRET_EU", None);
    w.run(&["refresh"])
        .code(5)
        .stderr_has(&["invalid_client", "separate secret in eu", "ZOHO_CLIENT_SECRET_EU"]);
    assert_eq!(w.token_bytes(), before, "a failed refresh keeps the token file");
    let refreshes = w.sim.requests_to("/oauth/v2/token");
    assert_eq!(refreshes.last().unwrap().param("client_secret"), Some(SECRET));
}

#[test]
fn dc_auto_starts_with_the_found_dcs_own_secret() {
    // The client lives only in eu and only eu's secret is configured (no common one).
    let mut w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["eu"])
            .dc_secret(CLIENT_ID, "eu", EU_SECRET)
            .user(USER, "eu")
            .auto_approve_after_polls(1),
    );
    w.set("ZOHO_CLIENT_SECRET", None);
    w.set("ZOHO_CLIENT_SECRET_EU", Some(EU_SECRET));
    let out = w.run(&["login", "--events", "json", "--display", "none", "--dc", "auto"]);
    out.code(0);
    assert_eq!(poll_secrets(&w), [("eu".to_string(), EU_SECRET.to_string())]);
    assert_eq!(w.token_json()["location"], "eu");
    w.run(&["refresh"]).code(0);
    // Pinned at us instead, with no secret for us: a configuration error before any poll.
    let polls_before = w.sim.requests_to("/oauth/v3/device/token").len();
    let out = w.run(&["login", "--events", "json", "--display", "none", "--dc", "us"]);
    // (Against the simulator the DC of a pinned override is unknown; at Zoho it is named.)
    out.code(2)
        .stderr_has(&["no client secret for", "its data centre is not known"]);
    assert_eq!(w.sim.requests_to("/oauth/v3/device/token").len(), polls_before);
}

#[test]
fn doctor_checks_each_configured_dcs_secret() {
    let mut w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["us", "eu"])
            .dc_secret(CLIENT_ID, "eu", EU_SECRET),
    );
    w.set("ZOHO_CLIENT_SECRET_EU", Some(EU_SECRET));
    let out = w.run(&["doctor"]);
    out.code(0).stdout_has(&[
        "data centre eu: from ZOHO_CLIENT_SECRET_EU (fingerprint",
        "data centre eu: accepted by Zoho",
    ]);
    w.set("ZOHO_CLIENT_SECRET_EU", Some("a-wrong-eu-secret"));
    let out = w.run(&["doctor"]);
    out.code(5).stdout_has(&[
        "data centre eu: Zoho rejects the client secret",
        "ZOHO_CLIENT_SECRET_EU",
    ]);
    assert!(!out.stdout.contains("a-wrong-eu-secret"));
    w.assert_no_secret_leaked();
}

#[test]
fn other_dc_naming_the_dc_in_dc_or_as_a_url_is_followed() {
    use zoho_device_sim::OtherDcField;
    for field in [OtherDcField::Dc, OtherDcField::Both, OtherDcField::AccountsUrl] {
        let w = World::new(
            sim_config()
                .client(CLIENT_ID, SECRET, &["us", "eu"])
                .user(USER, "eu")
                .auto_approve_after_polls(1)
                .other_dc_field(field),
        );
        let out = w.login();
        assert_eq!(out.event("other_dc")["location"], "eu", "{field:?}");
        assert_eq!(
            w.token_json()["accounts_url"].as_str().unwrap(),
            w.sim.accounts_url("eu"),
            "{field:?}"
        );
    }
}

#[test]
fn other_dc_naming_no_dc_says_what_the_reply_held() {
    let w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["us", "eu"])
            .user(USER, "eu")
            .auto_approve_after_polls(1)
            .other_dc_field(zoho_device_sim::OtherDcField::None),
    );
    let out = w.run(LOGIN);
    out.code(5)
        .stderr_has(&["other_dc", "without naming it", "user's data centre"]);
    assert!(!out.stderr.contains("unexpected reply"), "{}", out.stderr);
    assert!(
        !w.sim.requests_to("/oauth/serverinfo").is_empty(),
        "serverinfo was asked"
    );
    assert!(!w.token_path().exists());
}

#[test]
fn http_400_for_pending_and_other_dc_changes_nothing() {
    let w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["us", "eu"])
            .user(USER, "eu")
            .auto_approve_after_polls(2)
            .errors_as_400(true),
    );
    let out = w.login();
    let names = out.event_names();
    assert!(names.contains(&"other_dc".to_string()), "{names:?}");
    let statuses: Vec<Option<u16>> = w
        .sim
        .requests_to("/oauth/v3/device/token")
        .iter()
        .map(|r| r.status)
        .collect();
    assert!(statuses.contains(&Some(400)), "{statuses:?}");
}

#[test]
fn a_legacy_token_reply_lives_an_hour_at_login_and_at_refresh() {
    let w = World::new(auto_config().legacy_token_expiry(true));
    w.login();
    let left = w.token_json()["expires_at"].as_u64().unwrap() as i64 - now_ms() as i64;
    assert!((3_590_000..=3_600_000).contains(&left), "expires in {left} ms");
    w.run(&["refresh"]).code(0);
    let left = w.token_json()["expires_at"].as_u64().unwrap() as i64 - now_ms() as i64;
    assert!((3_590_000..=3_600_000).contains(&left), "expires in {left} ms");
    let r = &w.sim.requests_to("/oauth/v2/token")[0];
    assert_eq!(r.status, Some(200));
}

#[test]
fn http_400_for_denial_expiry_and_the_throttle_gives_the_same_exit_codes() {
    let w = World::new(
        sim_config()
            .errors_as_400(true)
            .throttle(1, std::time::Duration::from_secs(600)),
    );
    // Denied with HTTP 400: exit 3.
    let mut run = w.spawn(LOGIN);
    let code = run.event("code", secs(10));
    assert!(w.sim.deny(code["user_code"].as_str().unwrap()));
    run.wait().code(3);
    // Expired with HTTP 400: exit 4.
    let mut run = w.spawn(LOGIN);
    run.event("code", secs(10));
    w.sim.expire_codes();
    run.wait().code(4);
    // The Access Denied throttle with HTTP 400: exit 7, the token file kept.
    w.pair_by_hand();
    w.run(&["refresh"]).code(0);
    let before = w.token_bytes();
    w.run(&["refresh"]).code(7).stderr_has(&["throttle"]);
    assert_eq!(w.token_bytes(), before);
    let throttled = w.sim.requests_to("/oauth/v2/token");
    assert_eq!(throttled.last().unwrap().status, Some(400));
    assert_eq!(w.sim.stats().throttled, 1);
}

#[test]
fn doctor_with_dc_auto_checks_the_found_dcs_own_secret() {
    let mut w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["eu"])
            .dc_secret(CLIENT_ID, "eu", EU_SECRET),
    );
    w.set("ZOHO_CLIENT_SECRET", None);
    w.set("ZOHO_CLIENT_SECRET_EU", Some(EU_SECRET));
    let out = w.run(&["doctor", "--dc", "auto"]);
    out.code(0).stdout_has(&[
        "no common secret; data centres with their own: eu",
        "registered in eu",
        "data centre eu: accepted by Zoho",
    ]);
    // The found DC's secret is checked once, not again among the other DCs.
    assert_eq!(
        out.stdout.matches("data centre eu: accepted").count(),
        1,
        "{}",
        out.stdout
    );
    w.assert_no_secret_leaked();
}
