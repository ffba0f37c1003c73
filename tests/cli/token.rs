//! `token`, `status`, `refresh`: the stored token, its refresh rule and its failures.

use serde_json::Value;

use crate::util::*;

#[test]
fn token_prints_exactly_the_token_and_reuses_a_fresh_one() {
    let w = World::new(auto_config());
    w.login();
    let stored = w.token_json();
    let access = stored["access_token"].as_str().unwrap().to_string();
    let (code, stdout, stderr) = run_raw(&w, &["token"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!("{access}\n").into_bytes(),
        "exactly the token and a newline"
    );
    assert!(stderr.is_empty(), "nothing else, not even on stderr: {stderr}");
    // Valid for an hour: no refresh, the file is untouched, and the token works at Zoho.
    let (_, again, _) = run_raw(&w, &["token"]);
    assert_eq!(again, stdout);
    assert_eq!(w.sim.stats().refreshes, 0);
    assert!(w.sim.requests_to("/oauth/v2/token").is_empty());
    assert!(w.sim.access_token_live(&access));
    assert_eq!(w.token_json(), stored);
    w.assert_no_secret_leaked();
}

#[test]
fn token_refreshes_when_expiring_within_five_minutes() {
    let w = World::new(auto_config());
    w.login();
    // A one-hour token with 200 s left.
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 200_000).into());
        t.insert("refreshed_at".into(), (now_ms() + 200_000 - 3_600_000).into());
    });
    let old = w.token_json();
    let (code, stdout, stderr) = run_raw(&w, &["token"]);
    assert_eq!(code, Some(0), "{stderr}");
    let printed = String::from_utf8(stdout).unwrap();
    let fresh = w.token_json();
    assert_eq!(w.sim.stats().refreshes, 1);
    assert_ne!(fresh["access_token"], old["access_token"]);
    assert_eq!(printed, format!("{}\n", fresh["access_token"].as_str().unwrap()));
    assert!(w.sim.access_token_live(printed.trim()));
    // The refresh token is kept (Zoho sends none on refresh).
    assert_eq!(fresh["refresh_token"], old["refresh_token"]);
    assert!(fresh["expires_at"].as_u64() > old["expires_at"].as_u64());
    w.assert_no_secret_leaked();
}

#[test]
fn short_lived_tokens_are_refreshed_in_their_last_quarter_not_on_every_call() {
    // Keycloak's default: five-minute access tokens. A fixed 5-minute margin would refresh on
    // every call; the margin is a quarter of the lifetime (75 s) instead.
    let w = World::new(auto_config().token_lifetime_s(300));
    w.login();
    let first = w.run(&["token"]);
    first.code(0);
    w.run(&["token"]).code(0);
    assert_eq!(w.sim.stats().refreshes, 0, "a fresh five-minute token is used as it is");
    // 60 s left of the five minutes: inside the last quarter.
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 60_000).into());
        t.insert("refreshed_at".into(), (now_ms() + 60_000 - 300_000).into());
    });
    w.run(&["token"]).code(0);
    assert_eq!(w.sim.stats().refreshes, 1);
}

#[test]
fn concurrent_token_calls_refresh_once() {
    // One refresh at a time across processes; the waiters re-read the file and use the token
    // the first one minted (Zoho allows 10 mints per 10 minutes).
    let w = World::new(auto_config());
    w.login();
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 60_000).into());
        // A one-hour token near its end (the margin scales with the lifetime).
        t.insert("refreshed_at".into(), (now_ms() + 60_000 - 3_600_000).into());
    });
    let runs: Vec<_> = (0..4).map(|_| w.spawn(&["token"])).collect();
    let outs: Vec<_> = runs.into_iter().map(|r| r.wait()).collect();
    for o in &outs {
        o.code(0);
    }
    assert_eq!(w.sim.stats().refreshes, 1);
    let fresh = format!("{}\n", w.token_json()["access_token"].as_str().unwrap());
    for o in &outs {
        assert_eq!(o.stdout, fresh);
    }
}

#[test]
fn token_not_paired_exits_6() {
    let w = World::new(auto_config());
    let (code, stdout, stderr) = run_raw(&w, &["token"]);
    assert_eq!(code, Some(6));
    assert!(stdout.is_empty());
    assert!(stderr.contains("not paired"), "{stderr}");
    assert!(stderr.contains("zoho-device login"), "{stderr}");
}

#[test]
fn status_shows_the_pairing_and_no_secret() {
    let w = World::new(auto_config());
    let out = w.run(&["status"]);
    out.code(6).stdout_has(&["Not paired"]);
    let out = w.run(&["status", "--json"]);
    out.code(6);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["paired"], false);

    w.login();
    let us = w.sim.accounts_url("us");
    let out = w.run(&["status"]);
    out.code(0).stdout_has(&[
        "Paired:          yes",
        CLIENT_ID,
        &us,
        "ZohoBooks.settings.READ",
        "valid for",
        "Refresh token:   held",
        &w.token_path().display().to_string(),
    ]);
    let out = w.run(&["status", "--json"]);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["paired"], true);
    assert_eq!(v["client_id"], CLIENT_ID);
    assert_eq!(v["accounts_url"].as_str().unwrap(), us);
    assert_eq!(v["api_domain"].as_str().unwrap(), us);
    assert_eq!(v["scope"], "ZohoBooks.settings.READ");
    assert_eq!(v["refresh_token_held"], true);
    assert_eq!(v["access_token_valid"], true);
    let left = v["access_token_expires_in_s"].as_i64().unwrap();
    assert!((3500..=3600).contains(&left), "{v}");
    assert!(v["access_token_expires_at_unix"].as_u64().unwrap() > now_ms() / 1000);
    // status talks to nobody.
    assert!(w.sim.requests_to("/oauth/v2/token").is_empty());
    w.assert_no_secret_leaked();
}

#[test]
fn status_of_an_expired_access_token() {
    let w = World::new(auto_config());
    w.login();
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() - 120_000).into());
    });
    let out = w.run(&["status", "--json"]);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(v["access_token_valid"], false);
    w.run(&["status"]).code(0).stdout_has(&["expired 2 min ago"]);
}

#[test]
fn refresh_mints_a_new_access_token() {
    let w = World::new(auto_config());
    w.login();
    let old = w.token_json();
    let out = w.run(&["refresh"]);
    out.code(0).stderr_has(&["Refreshed"]);
    let new = w.token_json();
    assert_ne!(new["access_token"], old["access_token"]);
    assert_eq!(new["refresh_token"], old["refresh_token"]);
    assert_eq!(w.sim.stats().refreshes, 1);
    let req = &w.sim.requests_to("/oauth/v2/token")[0];
    assert_eq!(req.param("grant_type"), Some("refresh_token"));
    assert!(
        req.query.is_none(),
        "refresh parameters travel in the body: {:?}",
        req.query
    );
}

#[test]
fn a_revoked_refresh_token_exits_6_and_keeps_the_file() {
    let w = World::new(auto_config());
    w.login();
    w.sim.revoke_refresh_tokens();
    let before = w.token_bytes();
    let out = w.run(&["refresh"]);
    out.code(6).stderr_has(&["hint:", "zoho-device login"]);
    assert_eq!(w.token_bytes(), before, "a failed refresh never changes the token file");
    // `token` of an expiring token hits the same wall.
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 60_000).into());
        // A one-hour token near its end (the margin scales with the lifetime).
        t.insert("refreshed_at".into(), (now_ms() + 60_000 - 3_600_000).into());
    });
    let before = w.token_bytes();
    let (code, stdout, _) = run_raw(&w, &["token"]);
    assert_eq!(code, Some(6));
    assert!(stdout.is_empty());
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn refresh_while_zoho_is_down_exits_7_and_keeps_the_file() {
    let w = World::new(auto_config());
    w.login();
    let before = w.token_bytes();
    w.sim
        .inject(Fault::new("/oauth/v2/token", FaultKind::Html { status: 503 }, 10));
    let out = w.run(&["refresh"]);
    out.code(7).stderr_has(&["hint:"]);
    assert!(!out.stderr.contains("Refreshed"), "{}", out.stderr);
    assert_eq!(w.token_bytes(), before);
    assert_eq!(w.sim.requests_to("/oauth/v2/token").len(), 3, "three attempts");
}

#[test]
fn token_throttle_exits_7_and_keeps_the_file() {
    let w = World::new(auto_config().throttle(1, secs(600)));
    w.login();
    w.run(&["refresh"]).code(0);
    let before = w.token_bytes();
    let out = w.run(&["refresh"]);
    out.code(7);
    assert!(out.stderr.to_lowercase().contains("throttle"), "{}", out.stderr);
    assert_eq!(w.token_bytes(), before);
    // One request: a retry seconds later cannot clear a 10-minute window.
    assert_eq!(w.sim.stats().throttled, 1);
    assert_eq!(w.sim.requests_to("/oauth/v2/token").len(), 2);
}

#[test]
fn token_uses_a_still_valid_token_when_a_refresh_fails_transiently() {
    // 4 minutes left: `token` wants a refresh, Zoho is down, the current token still works.
    let w = World::new(auto_config());
    w.login();
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 240_000).into());
        // A one-hour token near its end (the margin scales with the lifetime).
        t.insert("refreshed_at".into(), (now_ms() + 240_000 - 3_600_000).into());
    });
    let before = w.token_bytes();
    w.sim.inject(Fault::new("/oauth/v2/token", FaultKind::Reset, 10));
    let (code, stdout, stderr) = run_raw(&w, &["token"]);
    assert_eq!(code, Some(0), "{stderr}");
    let access = w.token_json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(String::from_utf8(stdout).unwrap(), format!("{access}\n"));
    assert!(stderr.contains("refresh failed"), "a warning on stderr: {stderr}");
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn a_clock_before_this_release_is_refused_with_what_to_do() {
    let mut w = World::new(auto_config());
    w.login();
    let before = w.token_bytes();
    // A board without a real-time clock, booted at 1970.
    let back = -(std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64);
    w.set("ZOHO_DEVICE_TEST_CLOCK_OFFSET_S", Some(&back.to_string()));
    for cmd in [&["token"][..], &["refresh"], &["books", "organizations"]] {
        let out = w.run(cmd);
        out.code(7).stderr_has(&[
            "the system clock reads Thu, 01 Jan 1970",
            "before this release",
            "timedatectl",
        ]);
        assert!(out.stdout.is_empty(), "{cmd:?} printed {}", out.stdout);
    }
    assert_eq!(w.sim.stats().refreshes, 0);
    assert_eq!(w.token_bytes(), before);
}
