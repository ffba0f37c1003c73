//! What crosses the device's boundary is checked in the form that acts on it: URLs by the
//! parser reqwest connects with, the token file's servers by today's configuration, server
//! strings before a terminal sees them, tokens by the bearer-token grammar.
//!
//! A "thief" here is a scripted server on loopback that also serves as the HTTP(S) proxy of
//! the binary: any connection the binary tries to a host outside loopback (a `CONNECT
//! evil.example:443`) is recorded by it instead of leaving the machine.

use serde_json::json;

use crate::harness::*;

/// A scripted accounts server answering the code request with `code` and every poll/refresh
/// with `token`.
fn accounts(code: serde_json::Value, token: serde_json::Value) -> Scripted {
    Scripted::start(move |req, _| match req.path() {
        "/oauth/v3/device/code" => Reply::json(&code),
        "/oauth/v3/device/token" | "/oauth/v2/token" => Reply::json(&token),
        _ => Reply::Http(404, vec![], b"{}".to_vec()),
    })
}

/// Routes everything the binary sends outside loopback through `thief` (recorded, answered 502).
fn via_thief(w: &mut World, thief: &Scripted) {
    w.set("HTTPS_PROXY", Some(&thief.url));
    w.set("HTTP_PROXY", Some(&thief.url));
    w.set("NO_PROXY", Some("127.0.0.1,localhost,::1"));
}

fn thief() -> Scripted {
    Scripted::start(|_, _| Reply::Http(502, vec![], b"nope".to_vec()))
}

#[test]
fn a_backslash_api_domain_is_checked_as_reqwest_reads_it() {
    let evil = "https://evil.example\\.zohoapis.com";
    // At login: the reply is refused (exit 8) and nothing is saved.
    let server = accounts(code_reply("https://accounts.zoho.com"), token_reply(evil));
    let mut w = World::bare(&server.url);
    let t = thief();
    via_thief(&mut w, &t);
    let o = w.run(LOGIN);
    o.code(8);
    assert!(o.error_line().contains("api_domain"), "{}", o.stderr);
    assert!(!w.token_path().exists());

    // In a token file: Books refuses before connecting anywhere.
    let w2 = {
        let mut w2 = World::bare("https://accounts.zoho.com");
        via_thief(&mut w2, &t);
        w2
    };
    w2.write_token(&token_file("https://accounts.zoho.com", evil, now_ms() + 3_600_000));
    let o = w2.run(&["books", "organizations"]);
    o.code(8);
    assert!(t.requests().is_empty(), "a connection was tried: {:?}", t.requests());
}

#[test]
fn the_token_files_servers_must_pass_todays_policy() {
    let t = thief();
    for (field, value) in [
        ("accounts_url", "https://evil.example".to_string()),
        ("accounts_url", "https://accounts.zoho.com.evil.example".to_string()),
        ("accounts_url", t.url.clone()),
        ("api_domain", t.url.clone()),
    ] {
        let mut w = World::bare("https://accounts.zoho.com");
        via_thief(&mut w, &t);
        // Expired, so `token` must refresh: the client secret and refresh token would go out.
        w.write_token(&token_file(
            "https://accounts.zoho.com",
            "https://www.zohoapis.com",
            now_ms() - 1000,
        ));
        w.edit_token(|m| {
            m.insert(field.into(), value.clone().into());
        });
        let before = w.token_bytes();
        // Refresh and revoke go to the accounts server; the access token goes to api_domain
        // (Books, and whoever uses what `token` prints).
        let cmds: &[&[&str]] = if field == "api_domain" {
            &[&["token"], &["books", "organizations"]]
        } else {
            &[&["token"], &["refresh"], &["logout"], &["books", "organizations"]]
        };
        for cmd in cmds {
            let o = w.run(cmd);
            o.code(8);
            assert!(
                o.stderr.contains(w.token_path().to_str().unwrap()) && o.stderr.contains(value.trim_end_matches('/')),
                "{cmd:?} {field}={value}: the message names the file and the value:\n{}",
                o.stderr
            );
            assert_eq!(w.token_bytes(), before, "{cmd:?}: the file is kept");
        }
        // doctor says so (its exit code is that of its first failed check: here the
        // unreachable Zoho, 7, comes first).
        let o = w.run(&["doctor"]);
        o.no_panic();
        assert!(
            o.stdout
                .lines()
                .any(|l| l.starts_with("[FAIL]") && l.contains(value.trim_end_matches('/'))),
            "{field}={value}:\n{}",
            o.stdout
        );
        // doctor probes the configured Zoho server (through the proxy: recorded); nothing
        // else may have been tried.
        let elsewhere: Vec<_> = t
            .requests()
            .into_iter()
            .filter(|r| r.target != "accounts.zoho.com:443")
            .collect();
        assert!(elsewhere.is_empty(), "{field}={value}: sent {elsewhere:?}");
    }
}

#[test]
fn the_qr_carries_only_a_link_on_the_verification_pages_origin() {
    for (complete, kept) in [
        (
            "https://accounts.zoho.com/oauth/v3/device/setCode?devcode=ABCD-1234",
            true,
        ),
        ("https://evil.example/oauth/v3/device?code=ABCD-1234", false),
        ("javascript:alert(1)", false),
        ("https://accounts.zoho.com\\@evil.example/x", true),
        ("https://evil.example\\.accounts.zoho.com/x", false),
    ] {
        let mut code = code_reply("https://accounts.zoho.com");
        code["verification_uri_complete"] = complete.into();
        let server = accounts(code, token_reply("http://127.0.0.1:1"));
        let w = World::bare(&server.url);
        let o = w.run(LOGIN);
        o.no_panic();
        let event: serde_json::Value = o
            .stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|e| e["event"] == "code")
            .unwrap_or_else(|| panic!("{complete}: no code event\n{}", o.stdout));
        let qr = event["qr_url"].as_str().or(event["verification_uri_complete"].as_str());
        if kept {
            let shown = event["verification_uri_complete"].as_str().unwrap();
            assert!(shown.starts_with("https://accounts.zoho.com/"), "{complete} -> {shown}");
            // (The scripted accounts server is loopback, so the page's host gets its own warning.)
            assert!(
                !event["warning"].as_str().unwrap_or_default().contains("QR"),
                "{complete}: {event}"
            );
        } else {
            assert!(event["verification_uri_complete"].is_null(), "{complete}: {event}");
            assert_ne!(qr, Some(complete), "{complete}");
            let warning = event["warning"].as_str().unwrap_or_default();
            assert!(warning.contains("QR"), "{complete}: {event}");
        }
    }
    // The backslash trick no longer hides a foreign verification URL.
    let mut code = code_reply("https://accounts.zoho.com");
    code["verification_url"] = "https://evil.example\\.accounts.zoho.com/oauth/v3/device".into();
    let server = accounts(code, token_reply("http://127.0.0.1:1"));
    let o = World::bare(&server.url).run(LOGIN);
    let event = o
        .stdout
        .lines()
        .find(|l| l.contains("\"code\""))
        .unwrap_or_default()
        .to_string();
    assert!(
        event.contains("https://evil.example/.accounts.zoho.com/oauth/v3/device"),
        "{event}"
    );
    assert!(event.contains("is not on"), "{event}");
}

#[test]
fn server_strings_reach_the_terminal_escaped() {
    // An OAuth error description with escape sequences.
    let server = Scripted::start(|req, _| match req.path() {
        "/oauth/v3/device/code" => Reply::json(&json!({
            "error": "weird\u{1b}]0;pwned\u{7}",
            "error_description": "\u{1b}[2J\u{1b}[1;1HPaired!\r\nOpen https://evil.example\u{202e}",
        })),
        _ => Reply::Http(404, vec![], b"{}".to_vec()),
    });
    let w = World::bare(&server.url);
    let o = w.run(&["login", "--display", "none"]);
    o.no_panic();
    assert!(!o.stderr.contains('\u{1b}') && !o.stderr.contains('\u{7}') && !o.stderr.contains('\u{202e}'));
    assert!(!o.stderr.contains("\r\n"), "{:?}", o.stderr);
    assert!(o.stderr.contains("\\x1b[2J"), "shown, escaped: {}", o.stderr);

    // A user_code that is not a code: a malformed reply, never shown.
    let mut code = code_reply("https://accounts.zoho.com");
    code["user_code"] = "\u{1b}[2JABCD".into();
    let server = accounts(code, token_reply("http://127.0.0.1:1"));
    let w = World::bare(&server.url);
    let o = w.run(&["login", "--display", "terminal"]);
    o.code(1);
    assert!(
        !o.stderr.contains('\u{1b}') && !o.stdout.contains('\u{1b}'),
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("user_code"), "{}", o.stderr);

    // Books organization names.
    let books = Scripted::start(|_, _| {
        Reply::json(&json!({"code": 0, "message": "success", "organizations": [
            {"organization_id": "1", "name": "Shop\u{1b}[2J\u{1b}]0;x\u{7}", "currency_code": "EUR", "is_default_org": true}
        ]}))
    });
    let w = World::bare(&books.url);
    w.write_token(&token_file(&books.url, &books.url, now_ms() + 3_600_000));
    let o = w.run(&["books", "organizations"]);
    o.code(0);
    assert!(o.stdout.contains("Shop\\x1b[2J"), "{}", o.stdout);
    assert!(!o.stdout.contains('\u{1b}') && !o.stdout.contains('\u{7}'));
}

#[test]
fn tokens_must_be_bearer_tokens() {
    // At login: a token that would add a header is a malformed reply; nothing is saved.
    let mut reply = token_reply("http://127.0.0.1:1");
    reply["access_token"] = "1000.abc\r\nX-Injected: yes".into();
    let server = accounts(code_reply("https://accounts.zoho.com"), reply);
    let w = World::bare(&server.url);
    let o = w.run(LOGIN);
    o.code(1);
    assert!(!w.token_path().exists());
    assert!(o.error_line().contains("bearer token"), "{}", o.stderr);

    // In the token file: a corrupt file, never printed.
    let w = World::bare("https://accounts.zoho.com");
    let mut f = token_file(
        "https://accounts.zoho.com",
        "https://www.zohoapis.com",
        now_ms() + 3_600_000,
    );
    f["access_token"] = "1000.abc\r\nX-Injected: yes".into();
    w.write_token(&f);
    let o = w.run(&["token"]);
    assert_ne!(o.code, Some(0), "{}", o.stdout);
    assert!(o.stdout.is_empty(), "nothing printed: {:?}", o.stdout);
    assert!(!o.stderr.contains("X-Injected"), "{}", o.stderr);
}

#[test]
fn a_refresh_answered_with_foreign_json_is_retried() {
    // A proxy's JSON without access_token: transient (3 tries, then exit 7), like polling.
    let server = Scripted::start(|req, _| match req.path() {
        "/oauth/v2/token" => Reply::Http(403, vec![], br#"{"message":"blocked by policy"}"#.to_vec()),
        _ => Reply::Http(404, vec![], b"{}".to_vec()),
    });
    let w = World::bare(&server.url);
    w.write_token(&token_file(&server.url, &server.url, now_ms() - 1000));
    let before = w.token_bytes();
    let o = w.run(&["refresh"]);
    o.code(7);
    assert_eq!(server.requests().len(), 3, "retried: {:?}", server.requests().len());
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn status_survives_an_absurd_expiry() {
    let w = World::bare("https://accounts.zoho.com");
    w.write_token(&token_file(
        "https://accounts.zoho.com",
        "https://www.zohoapis.com",
        u64::MAX / 2,
    ));
    let o = w.run(&["status"]);
    o.code(0);
    assert!(!o.stdout.contains("expired"), "{}", o.stdout);
    assert!(o.stdout.contains("was the file edited"), "{}", o.stdout);
}
