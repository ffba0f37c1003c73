//! `zoho-device login`: every event and every outcome against the simulator.

use std::os::unix::fs::PermissionsExt;

use crate::util::*;

const LOGIN: &[&str] = &["login", "--events", "json", "--display", "none"];

#[test]
fn happy_path_events_and_token_file() {
    let w = World::new(auto_config());
    let out = w.run(LOGIN);
    out.code(0);
    assert_eq!(out.event_names(), ["code", "authorized"], "{}", out.stdout);

    let code = out.event("code");
    let user_code = code["user_code"].as_str().unwrap();
    assert!(!user_code.is_empty());
    let us = w.sim.accounts_url("us");
    assert!(code["verification_url"].as_str().unwrap().starts_with(&us), "{code}");
    let complete = code["verification_uri_complete"].as_str().expect("present by default");
    assert!(complete.starts_with(&us), "{code}");
    assert_eq!(code["expires_in_s"], 60, "60 000 ms from the simulator is 60 s: {code}");
    // The simulator's 200 ms is raised to the program's 1 s floor.
    assert_eq!(code["interval_s"].as_f64(), Some(1.0), "{code}");
    assert!(
        code["warning"].is_null(),
        "the simulator's URL is not suspicious: {code}"
    );

    let auth = out.event("authorized");
    assert_eq!(auth["api_domain"].as_str().unwrap(), us);
    assert_eq!(auth["accounts_url"].as_str().unwrap(), us);
    let exp = auth["expires_in_s"].as_u64().unwrap();
    assert!((3590..=3600).contains(&exp), "{auth}");

    // The token file: 0600 in a 0700 directory, holding what the simulator minted.
    let meta = std::fs::metadata(w.token_path()).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let dir = std::fs::metadata(w.token_path().parent().unwrap()).unwrap();
    assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    let t = w.token_json();
    assert_eq!(t["client_id"], CLIENT_ID);
    assert_eq!(t["refresh_token"].as_str().unwrap(), w.sim.refresh_tokens(USER)[0]);
    assert!(w.sim.access_token_live(t["access_token"].as_str().unwrap()));
    // No temp file left next to it.
    let names: Vec<_> = std::fs::read_dir(w.token_path().parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("tmp"))
        .collect();
    assert!(names.is_empty(), "{names:?}");

    // The device-code request asked for offline access with the default scope, as a form.
    let req = &w.sim.requests_to("/oauth/v3/device/code")[0];
    assert_eq!(req.method, "POST");
    assert_eq!(req.param("scope"), Some("ZohoBooks.settings.READ"));
    assert_eq!(req.param("access_type"), Some("offline"));
    assert_eq!(req.param("grant_type"), Some("device_request"));
    let ua = req.header("user-agent").unwrap_or_default();
    assert!(ua.starts_with("zoho-device/"), "user agent {ua:?}");
    w.assert_no_secret_leaked();
}

#[test]
fn pending_then_authorized_and_verification_uri_complete_null() {
    let w = World::new(
        sim_config()
            .omit_verification_uri_complete(true)
            .auto_approve_after_polls(2),
    );
    let out = w.run(LOGIN);
    out.code(0);
    assert_eq!(out.event_names(), ["code", "pending", "authorized"], "{}", out.stdout);
    let code = out.event("code");
    assert!(code.as_object().unwrap().contains_key("verification_uri_complete"));
    assert!(code["verification_uri_complete"].is_null(), "{code}");
    assert_eq!(out.event("pending").as_object().unwrap().len(), 1);
    // Polls were spaced by at least the interval the program announced.
    let polls = w.sim.requests_to("/oauth/v3/device/token");
    assert_eq!(polls.len(), 2);
    assert!(polls[1].at - polls[0].at >= secs(1), "{:?}", polls[1].at - polls[0].at);
    assert!(polls.iter().all(|p| p.method == "POST" && p.param("code").is_some()));
}

#[test]
fn scope_flag_and_errors_as_http_400() {
    // Some Zoho front ends answer OAuth errors with HTTP 400: pending must still be pending.
    let w = World::new(sim_config().errors_as_400(true).auto_approve_after_polls(2));
    let out = w.run(&[
        "login",
        "--events",
        "json",
        "--display",
        "none",
        "--scope",
        "ZohoBooks.settings.READ,ZohoBooks.contacts.READ",
    ]);
    out.code(0);
    assert_eq!(out.event_names(), ["code", "pending", "authorized"]);
    let req = &w.sim.requests_to("/oauth/v3/device/code")[0];
    assert_eq!(
        req.param("scope"),
        Some("ZohoBooks.settings.READ,ZohoBooks.contacts.READ")
    );
}

#[test]
fn no_offline_access_asks_for_no_refresh_token_and_says_what_that_means() {
    let w = World::new(sim_config().auto_approve_after_polls(1));
    let out = w.run(&["login", "--events", "json", "--display", "none", "--no-offline-access"]);
    out.code(0);
    out.stderr_has(&["no refresh token"]);
    let req = &w.sim.requests_to("/oauth/v3/device/code")[0];
    assert_eq!(req.param("access_type"), Some("online"));
    assert!(
        w.token_json()
            .get("refresh_token")
            .is_none_or(serde_json::Value::is_null),
        "{}",
        w.token_json()
    );
    // Nothing to revoke at logout: said as such, and the file is gone.
    w.run(&["logout"])
        .code(0)
        .stderr_has(&["There was no refresh token to revoke"]);
    assert!(!w.token_path().exists());
    assert!(w.sim.requests_to("/oauth/v2/token/revoke").is_empty());
}

#[test]
fn slow_down_raises_the_interval() {
    // The program honours the interval, so a second poller of the same code (here: the test,
    // polling once with the program's device code) is what makes the simulator say slow_down.
    let w = World::new(sim_config().interval_ms(1_000));
    let mut run = w.spawn(LOGIN);
    let code = run.event("code", secs(10));
    assert_eq!(code["interval_s"].as_f64(), Some(1.0));
    run.event("pending", secs(10));
    let device_code = w.sim.requests_to("/oauth/v3/device/token")[0]
        .param("code")
        .unwrap()
        .to_string();
    // Half way between the program's polls: the simulator answers slow_down to the test (too
    // soon after the program's poll), and restarts the code's interval clock, so the
    // program's next poll, half an interval later, gets slow_down too.
    sleep_ms(500);
    let reply = poll_directly(&w.sim.accounts_url("us"), &device_code);
    assert!(reply.contains("slow_down"), "{reply}");
    let slow = run.event("slow_down", secs(10));
    assert_eq!(slow["interval_s"].as_f64(), Some(6.0), "1 s + 5 s: {slow}");
    assert!(w.sim.approve(code["user_code"].as_str().unwrap()));
    let out = run.wait();
    out.code(0);
    let names = out.event_names();
    assert_eq!(names.last().unwrap(), "authorized", "{names:?}");
    assert_eq!(w.sim.stats().slow_downs, 2, "the test's poll and the program's");
    // After slow_down the program waited the raised interval.
    let polls: Vec<_> = w
        .sim
        .requests_to("/oauth/v3/device/token")
        .into_iter()
        .filter(|r| r.header("user-agent").is_some_and(|u| u.starts_with("zoho-device/")))
        .collect();
    let n = polls.len();
    assert!(
        polls[n - 1].at - polls[n - 2].at >= secs(6),
        "{:?}",
        polls[n - 1].at - polls[n - 2].at
    );
}

#[test]
fn other_dc_moves_polling_to_the_users_dc() {
    let w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["us", "eu"])
            .user(USER, "eu")
            .auto_approve_after_polls(1),
    );
    let out = w.run(LOGIN);
    out.code(0);
    let eu = w.sim.accounts_url("eu");
    let names = out.event_names();
    assert_eq!(names, ["code", "other_dc", "authorized"], "{names:?}");
    let other = out.event("other_dc");
    assert_eq!(other["location"], "eu");
    assert_eq!(other["accounts_url"].as_str().unwrap(), eu);
    let auth = out.event("authorized");
    assert_eq!(auth["accounts_url"].as_str().unwrap(), eu);
    assert_eq!(auth["api_domain"].as_str().unwrap(), eu);
    assert_eq!(w.token_json()["location"], "eu");
    assert_eq!(w.sim.stats().slow_downs, 0);
    // Refresh goes to the user's DC.
    w.run(&["refresh"]).code(0);
    let refreshes = w.sim.requests_to("/oauth/v2/token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0].location, "eu");
}

#[test]
fn retry_after_html_503_and_connection_reset() {
    let w = World::new(auto_config());
    w.sim
        .inject(Fault::new("/oauth/v3/device/token", FaultKind::Html { status: 503 }, 1));
    w.sim.inject(Fault::new("/oauth/v3/device/token", FaultKind::Reset, 1));
    let out = w.run(LOGIN);
    out.code(0);
    assert_eq!(
        out.event_names(),
        ["code", "retry", "retry", "authorized"],
        "{}",
        out.stdout
    );
    let retries: Vec<_> = out.events().into_iter().filter(|e| e["event"] == "retry").collect();
    for r in &retries {
        assert!(r["reason"].as_str().is_some_and(|s| !s.is_empty()), "{r}");
        assert!(
            r["delay_s"].as_f64().unwrap() >= 1.0,
            "never sooner than the interval: {r}"
        );
    }
    assert_ne!(retries[0]["reason"], retries[1]["reason"], "a 503 and a reset differ");
    assert_eq!(w.sim.stats().faults_applied, 2);
}

#[test]
fn retry_when_the_code_request_fails_once() {
    let w = World::new(auto_config());
    w.sim.inject(Fault::new("/oauth/v3/device/code", FaultKind::Garbage, 1));
    let out = w.run(LOGIN);
    out.code(0);
    assert_eq!(out.event_names(), ["retry", "code", "authorized"], "{}", out.stdout);
}

#[test]
fn denied_exits_3_and_keeps_the_existing_token_file() {
    let w = World::new(sim_config());
    w.pair_by_hand();
    let before = w.token_bytes();
    // A second pairing, which the user denies.
    let mut run = w.spawn(LOGIN);
    let code = run.event("code", secs(10));
    assert!(w.sim.deny(code["user_code"].as_str().unwrap()));
    let out = run.wait();
    out.code(3);
    let names = out.event_names();
    assert_eq!(&names[names.len() - 2..], ["denied", "error"], "{names:?}");
    let err = out.event("error");
    assert_eq!(err["kind"], "denied");
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()));
    out.stderr_has(&["error:"]);
    assert_eq!(w.token_bytes(), before, "a failed login never changes the token file");
}

#[test]
fn expired_exits_4() {
    let w = World::new(sim_config());
    let mut run = w.spawn(LOGIN);
    run.event("code", secs(10));
    w.sim.expire_codes();
    let out = run.wait();
    out.code(4);
    let names = out.event_names();
    assert_eq!(&names[names.len() - 2..], ["expired", "error"], "{names:?}");
    assert_eq!(out.event("expired")["renewing"], false);
    assert_eq!(out.event("error")["kind"], "expired");
    assert!(!w.token_path().exists());
    out.stderr_has(&["expired"]);
}

#[test]
fn expired_code_of_the_rfc_kind_too() {
    let w = World::new(sim_config().expired_token_error(true));
    let mut run = w.spawn(LOGIN);
    run.event("code", secs(10));
    w.sim.expire_codes();
    run.wait().code(4);
}

#[test]
fn kiosk_issues_a_new_code_after_expiry_then_pairs() {
    let w = World::new(sim_config());
    let mut run = w.spawn(&["login", "--events", "json", "--display", "none", "--kiosk"]);
    let first = run.event("code", secs(10));
    w.sim.expire_codes();
    let expired = run.event("expired", secs(10));
    assert_eq!(expired["renewing"], true, "{expired}");
    assert_eq!(expired["pause_s"], 0, "the first lapses renew at once: {expired}");
    let second = run.event("code", secs(10));
    assert_ne!(first["user_code"], second["user_code"]);
    assert!(w.sim.approve(second["user_code"].as_str().unwrap()));
    let out = run.wait();
    out.code(0);
    assert_eq!(out.event_names().last().unwrap(), "authorized");
    assert_eq!(w.sim.stats().codes_issued, 2);
}

#[test]
fn invalid_client_names_the_dc_that_knows_the_client() {
    // Registered only in the EU; the device asks the US (an accounts override, so the probe
    // finds the other DCs through the override's /oauth/serverinfo).
    let w = World::new(sim_config().client(CLIENT_ID, SECRET, &["eu"]).user(USER, "eu"));
    let out = w.run(&["login", "--events", "json", "--display", "none", "--dc", "us"]);
    out.code(5);
    let err = out.event("error");
    assert_eq!(err["kind"], "client_rejected");
    assert!(err["message"].as_str().unwrap().contains("invalid_client"), "{err}");
    out.stderr_has(&["invalid_client", "hint:", "data centre eu", "--dc eu"]);
    assert!(!w.token_path().exists());
}

#[test]
fn unknown_client_everywhere_exits_5_without_a_dc_hint() {
    let w = World::new(sim_config());
    let mut w = w;
    w.set("ZOHO_CLIENT_ID", Some("1004.NOBODYKNOWSME"));
    let out = w.run(LOGIN);
    out.code(5);
    assert!(
        !out.stderr.contains("--dc eu") && !out.stderr.contains("--dc us"),
        "{}",
        out.stderr
    );
    out.stderr_has(&["hint:"]);
}

#[test]
fn invalid_client_secret_exits_5() {
    let mut w = World::new(auto_config());
    w.set("ZOHO_CLIENT_SECRET", Some("wrong-secret-value"));
    let out = w.run(LOGIN);
    out.code(5);
    assert_eq!(out.event("error")["kind"], "client_rejected");
    out.stderr_has(&["invalid_client_secret", "hint:"]);
    assert!(!w.token_path().exists());
}

#[test]
fn dc_auto_with_an_override_finds_the_clients_dc() {
    let w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["eu"])
            .user(USER, "eu")
            .auto_approve_after_polls(1),
    );
    let out = w.run(&["login", "--events", "json", "--display", "none", "--dc", "auto"]);
    out.code(0);
    let eu = w.sim.accounts_url("eu");
    let code = out.event("code");
    assert!(code["verification_url"].as_str().unwrap().starts_with(&eu), "{code}");
    assert_eq!(out.event("authorized")["accounts_url"].as_str().unwrap(), eu);
    assert!(!w.sim.requests_to("/oauth/serverinfo").is_empty());
}

#[test]
fn a_corrupt_token_file_is_replaced_only_by_a_new_login() {
    let w = World::new(auto_config());
    write_file(&w.token_path(), "{\"version\":1, \"acc");
    w.run(&["status"]).code(6);
    assert_eq!(w.token_bytes(), b"{\"version\":1, \"acc");
    w.login();
    assert_eq!(w.token_json()["client_id"], CLIENT_ID);
    w.run(&["status"]).code(0);
}

#[test]
fn the_person_facing_output_without_events() {
    let w = World::new(auto_config());
    let out = w.run(&["login", "--display", "terminal"]);
    out.code(0);
    let code = &w.sim.requests_to("/oauth/v3/device/code");
    assert_eq!(code.len(), 1);
    // The code and URL for people are on stderr; stdout stays empty without --events.
    assert!(out.stdout.trim().is_empty(), "{}", out.stdout);
    out.stderr_has(&["Paired", &w.token_path().display().to_string()]);
    out.stderr_has(&[&w.sim.accounts_url("us")]);
}

#[test]
fn network_down_during_polling_exits_7() {
    // Every poll fails until the code lapses: that is the network, not the user (exit 7).
    let w = World::new(sim_config().code_lifetime_ms(10_000));
    w.sim.inject(Fault::new(
        "/oauth/v3/device/token",
        FaultKind::Html { status: 502 },
        1000,
    ));
    let out = w.run(LOGIN);
    out.code(7);
    assert!(out.event_names().contains(&"retry".to_string()));
    assert_eq!(out.event("error")["kind"], "unavailable");
}

#[test]
fn kiosk_pauses_after_several_unattended_codes() {
    let w = World::new(sim_config());
    let mut run = w.spawn(&["login", "--events", "json", "--display", "none", "--kiosk"]);
    let mut pauses = Vec::new();
    for _ in 0..3 {
        run.event("code", secs(10));
        w.sim.expire_codes();
        let e = run.event("expired", secs(10));
        assert_eq!(e["renewing"], true, "{e}");
        pauses.push(e["pause_s"].as_u64().unwrap());
    }
    // Three codes back to back, then a pause (a minute by default) before the fourth.
    assert_eq!(&pauses[..2], [0, 0]);
    assert!(pauses[2] >= 60, "{pauses:?}");
    sleep_ms(1_500);
    assert_eq!(w.sim.stats().codes_issued, 3, "no fourth code during the pause");
    drop(run);
    assert!(!w.token_path().exists());
}

#[test]
fn other_dc_where_the_client_is_not_multi_dc_exits_5() {
    // The user lives in the EU but the client is known only in the US: the EU answers
    // invalid_client after other_dc (Zoho's "Multi-DC" setting is off).
    let w = World::new(sim_config().user(USER, "eu").auto_approve_after_polls(1));
    let out = w.run(LOGIN);
    out.code(5);
    let names = out.event_names();
    assert!(names.contains(&"other_dc".to_string()), "{names:?}");
    assert_eq!(out.event("error")["kind"], "client_rejected");
    assert!(!w.token_path().exists());
    // The hint points at Multi-DC, not at another --dc (the client's DC is the one in use).
    out.stderr_has(&["invalid_client", "hint:", "Multi-DC"]);
    assert!(!out.stderr.contains("--dc"), "{}", out.stderr);
}

#[test]
fn logging_in_again_revokes_the_replaced_refresh_token() {
    let w = World::new(auto_config());
    w.login();
    let first = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(w.sim.refresh_tokens(USER), std::slice::from_ref(&first));
    w.run(LOGIN).code(0);
    let second = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    // Only the new pairing holds a slot of the user's 20 at Zoho.
    assert_eq!(w.sim.refresh_tokens(USER), std::slice::from_ref(&second));
    assert_eq!(w.sim.requests_to("/oauth/v2/token/revoke").len(), 1);
    w.assert_no_secret_leaked();
}

#[test]
fn a_failed_revoke_of_the_replaced_token_keeps_the_new_pairing_and_says_what_to_do() {
    let w = World::new(auto_config());
    w.login();
    w.sim.inject(Fault::new(
        "/oauth/v2/token/revoke",
        FaultKind::Html { status: 503 },
        100,
    ));
    let out = w.run(LOGIN);
    out.code(0).stderr_has(&[
        "the new pairing is saved, but the replaced one's refresh token could not be revoked",
        "Connected Apps",
    ]);
    let t = w.token_json();
    assert!(w.sim.access_token_live(t["access_token"].as_str().unwrap()));
    assert_eq!(w.sim.refresh_tokens(USER).len(), 2, "the old one is still live at Zoho");
}

#[test]
fn several_displays_at_once_follow_the_pairing_to_the_end() {
    let w = World::new(auto_config());
    let svg = w.path("screens/pair.svg");
    let png = w.path("screens/pair.png");
    std::fs::create_dir_all(svg.parent().unwrap()).unwrap();
    let out = w.run(&[
        "login",
        "--events",
        "json",
        "--display",
        &format!("svg={}", svg.display()),
        "--display",
        &format!("png:320x240={}", png.display()),
    ]);
    out.code(0);
    let user_code = out.event("code")["user_code"].as_str().unwrap().to_string();
    // Both files end on the paired screen: the code is gone, "Paired" is shown.
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") || text.starts_with("<?xml"), "{text}");
    assert!(text.contains("Paired"), "{text}");
    assert!(!text.contains(&user_code), "the used code stays on screen: {text}");
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // 320x240 as asked: the IHDR chunk's width and height.
    assert_eq!(u32::from_be_bytes(bytes[16..20].try_into().unwrap()), 320);
    assert_eq!(u32::from_be_bytes(bytes[20..24].try_into().unwrap()), 240);
    w.assert_no_secret_leaked();
}

#[test]
fn ctrl_c_while_waiting_exits_130_and_keeps_the_token_file() {
    let w = World::new(sim_config());
    w.pair_by_hand();
    let before = w.token_bytes();
    let mut run = w.spawn(LOGIN);
    run.event("code", secs(10));
    run.signal("INT");
    let out = run.wait();
    out.code(130).stderr_has(&["interrupted", "token file is unchanged"]);
    assert_eq!(w.token_bytes(), before);
}

/// A TCP forwarder to `target` (`127.0.0.1:PORT`) counting connections: an HTTP proxy as the
/// program sees one (absolute-form requests go through unchanged; the simulator accepts them).
fn counting_forwarder(target: String) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("http://{}", listener.local_addr().unwrap());
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            c.fetch_add(1, Ordering::SeqCst);
            for (mut from, mut to) in [
                (client.try_clone().unwrap(), upstream.try_clone().unwrap()),
                (upstream, client),
            ] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    (addr, count)
}

#[test]
fn the_environments_proxy_is_used_and_no_proxy_bypasses_it() {
    use std::sync::atomic::Ordering;
    let mut w = World::new(auto_config());
    let target = w.sim.accounts_url("us").trim_start_matches("http://").to_string();
    let (proxy, used) = counting_forwarder(target);
    w.set("HTTP_PROXY", Some(&proxy)).set("http_proxy", Some(&proxy));
    w.run(LOGIN).code(0);
    assert!(used.load(Ordering::SeqCst) >= 1, "the proxy was not used");
    // NO_PROXY names the host: straight to the server.
    let before = used.load(Ordering::SeqCst);
    w.set("NO_PROXY", Some("127.0.0.1")).set("no_proxy", Some("127.0.0.1"));
    w.run(LOGIN).code(0);
    assert_eq!(used.load(Ordering::SeqCst), before, "NO_PROXY was ignored");
}
