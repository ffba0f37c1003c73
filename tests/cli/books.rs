//! `zoho-device books organizations`: the token at work, its refresh on 401, Books' limits,
//! and the api_domain check.

use serde_json::Value;

use crate::util::*;

#[test]
fn organizations_table_and_json() {
    let w = World::new(auto_config());
    w.login();
    let out = w.run(&["books", "organizations"]);
    out.code(0)
        .stdout_has(&["ID", "NAME", "10234695", "Zillum", "USD", "yes"]);
    let out = w.run(&["books", "organizations", "--json"]);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let orgs = v.as_array().unwrap();
    assert_eq!(orgs.len(), 1);
    assert_eq!(orgs[0]["organization_id"], "10234695");
    assert_eq!(orgs[0]["name"], "Zillum");
    assert_eq!(
        orgs[0]["plan_name"], "SIMULATED",
        "the other fields are kept for --json"
    );
    let calls = w.sim.requests_to("/books/v3/organizations");
    assert_eq!(calls.len(), 2);
    let access = w.token_json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(
        calls[0].header("authorization"),
        Some(format!("Zoho-oauthtoken {access}").as_str())
    );
    assert_eq!(w.sim.stats().refreshes, 0);
    w.assert_no_secret_leaked();
}

#[test]
fn a_401_code_57_refreshes_once_and_retries_once() {
    // The simulator's token dies after 2 s; the file is edited to claim an hour, so the
    // program only learns from Books' 401 code 57.
    let w = World::new(auto_config().token_lifetime_s(2));
    w.login();
    sleep_ms(2_200);
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 3_600_000).into());
    });
    let out = w.run(&["books", "organizations"]);
    out.code(0).stdout_has(&["Zillum"]);
    let s = w.sim.stats();
    assert_eq!((s.books_refused, s.refreshes, s.books_ok), (1, 1, 1), "{s:?}");
}

#[test]
fn a_401_after_the_refresh_too_exits_6() {
    // The token lacks the Books scope: Books keeps answering 401 code 57 after the refresh.
    let w = World::new(auto_config());
    let out = w.run(&[
        "login",
        "--events",
        "json",
        "--display",
        "none",
        "--scope",
        "ZohoCRM.modules.READ",
    ]);
    out.code(0);
    let before_refreshes = w.sim.stats().refreshes;
    let out = w.run(&["books", "organizations"]);
    out.code(6).stderr_has(&["401", "57", "ZohoBooks.settings.READ"]);
    let s = w.sim.stats();
    assert_eq!(s.refreshes - before_refreshes, 1, "refreshed once: {s:?}");
    assert_eq!(s.books_refused, 2, "retried once: {s:?}");
}

#[test]
fn books_rate_limit_exits_7_with_an_explanation() {
    // A window far longer than a minute is reported, not waited for (a minute one is waited
    // for: tests/cli/api.rs).
    let w = World::new(auto_config().books_rate_limit(1, secs(600)));
    w.login();
    w.run(&["books", "organizations"]).code(0);
    let out = w.run(&["books", "organizations"]);
    out.code(7).stderr_has(&["429", "code 44", "rate limit", "hint:"]);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
}

#[test]
fn an_unsafe_api_domain_in_the_token_file_exits_8_before_sending_the_token() {
    let w = World::new(auto_config());
    w.login();
    w.edit_token(|t| {
        t.insert("api_domain".into(), "https://evil.example".into());
    });
    let before = w.sim.requests().len();
    let out = w.run(&["books", "organizations"]);
    out.code(8).stderr_has(&["evil.example", "refused"]);
    assert_eq!(w.sim.requests().len(), before, "nothing was sent anywhere");

    // A loopback api_domain is only fine for a loopback accounts server.
    let us = w.sim.accounts_url("us");
    w.edit_token(|t| {
        t.insert("api_domain".into(), us.clone().into());
        t.insert("accounts_url".into(), "https://accounts.zoho.com".into());
    });
    w.run(&["books", "organizations"]).code(8);
    // A plain-http URL does not even load: the file is reported as corrupt (exit 6).
    w.edit_token(|t| {
        t.insert("api_domain".into(), "http://www.zohoapis.com".into());
    });
    w.run(&["books", "organizations"])
        .code(6)
        .stderr_has(&["corrupt", "https://"]);
    assert!(w.sim.requests_to("/books/v3/organizations").is_empty());
}

#[test]
fn books_not_paired_exits_6() {
    let w = World::new(auto_config());
    w.run(&["books", "organizations"]).code(6).stderr_has(&["not paired"]);
}
