//! Hostile or broken server data, end to end through scripted servers on loopback: an
//! `api_domain` elsewhere, redirects, a suspicious verification URL, oversize and endless
//! replies, absurd intervals and expiries.

use std::time::Duration;

use serde_json::json;

use crate::harness::*;

/// A scripted accounts server: the code reply, then `token` for every poll and refresh.
fn accounts(token: impl Fn() -> Reply + Send + Sync + 'static) -> Scripted {
    Scripted::start(move |req, _| match req.path() {
        "/oauth/v3/device/code" => Reply::json(&code_reply("https://accounts.zoho.com")),
        "/oauth/v3/device/token" | "/oauth/v2/token" => token(),
        _ => Reply::Http(404, vec![], b"{}".to_vec()),
    })
}

#[test]
fn api_domain_elsewhere_is_refused_before_a_token_is_sent() {
    // Login: the pairing reply points API calls at another host.
    for evil in [
        "https://evil.example.com",
        "https://www.zohoapis.com.evil.example",
        "http://www.zohoapis.com",
        "https://zohoapis.com@evil.example",
    ] {
        let server = accounts(move || Reply::json(&token_reply(evil)));
        let w = World::bare(&server.url);
        let o = w.run(LOGIN);
        o.code(8);
        assert!(o.error_line().contains("api_domain"), "{evil}: {}", o.stderr);
        assert!(!w.token_path().exists(), "{evil}: nothing saved");
    }

    // Refresh: a stored token for Zoho's US DC whose refresh reply points elsewhere. The
    // accounts server is a loopback stand-in, so the allow-list is the loopback one: a
    // non-loopback, non-Zoho host is still refused, and the file is untouched.
    let server = accounts(|| Reply::json(&token_reply("https://evil.example.com")));
    let w = World::bare(&server.url);
    w.write_token(&token_file(&server.url, &server.url, now_ms() + 3_600_000));
    let before = w.token_bytes();
    let o = w.run(&["refresh"]);
    o.code(8);
    assert_eq!(w.token_bytes(), before, "a refused refresh leaves the file as it was");

    // Books: an edited token file whose api_domain is a listening loopback server, while the
    // accounts server is Zoho's: refused before any byte reaches that server.
    let thief = Scripted::start(|_, _| Reply::Http(200, vec![], b"{}".to_vec()));
    let w = World::bare("https://accounts.zoho.com");
    w.write_token(&token_file(
        "https://accounts.zoho.com",
        &thief.url,
        now_ms() + 3_600_000,
    ));
    let o = w.run(&["books", "organizations"]);
    o.code(8);
    assert!(thief.requests().is_empty(), "the token went to {:?}", thief.requests());
}

#[test]
fn redirects_are_not_followed_and_secrets_not_resent() {
    let thief = Scripted::start(|_, _| Reply::json(&token_reply("http://127.0.0.1:1")));
    let to = format!("{}/steal", thief.url);
    let server = {
        let to = to.clone();
        Scripted::start(move |req, _| match req.path() {
            "/oauth/v3/device/code" => Reply::json(&code_reply("https://accounts.zoho.com")),
            _ => Reply::Http(302, vec![format!("Location: {to}")], Vec::new()),
        })
    };
    let w = World::bare(&server.url);
    // Refresh: a redirect answered to a POST is a configuration error naming where the server
    // points (exit 2), not followed and not retried.
    w.write_token(&token_file(&server.url, &server.url, now_ms() + 3_600_000));
    let before = w.token_bytes();
    let o = w.run(&["refresh"]);
    o.code(2);
    assert!(
        o.error_line().contains("moved") && o.error_line().contains(&to) && o.error_line().contains("HTTP 302"),
        "{}",
        o.stderr
    );
    assert_eq!(w.token_bytes(), before);
    assert_eq!(server.requests().len(), 1, "not retried");
    // Logout's revoke and Books' call: the same.
    let o = w.run(&["books", "organizations"]);
    o.no_panic();
    // Polling: the first redirected poll ends the login the same way.
    let _ = std::fs::remove_file(w.token_path());
    let server2 = Scripted::start({
        let to = to.clone();
        move |req, _| match req.path() {
            "/oauth/v3/device/code" => Reply::json(&json!({
                "user_code": "ABCD-1234", "device_code": "1004.devcode-redirect-0123456789",
                "verification_url": "https://accounts.zoho.com/oauth/v3/device",
                "interval": 1, "expires_in": 3,
            })),
            _ => Reply::Http(307, vec![format!("Location: {to}")], Vec::new()),
        }
    });
    let w2 = World::bare(&server2.url);
    let o = w2.run(LOGIN);
    o.code(2);
    assert!(o.stdout.contains("moved") || o.stderr.contains("moved"), "{o:?}");
    assert!(!w2.token_path().exists());
    assert!(
        thief.requests().is_empty(),
        "the redirect target received {:?}",
        thief.requests()
    );
    assert_eq!(server2.requests().len(), 2, "one code request, one poll");
}

#[test]
fn a_suspicious_verification_url_is_shown_but_flagged() {
    for url in [
        "http://accounts.zoho.com/oauth/v3/device",
        "https://zoho-login.example/device",
    ] {
        let server = Scripted::start(move |req, _| match req.path() {
            "/oauth/v3/device/code" => {
                let mut c = code_reply("https://accounts.zoho.com");
                c["verification_url"] = url.into();
                Reply::json(&c)
            }
            _ => Reply::json(&token_reply("http://127.0.0.1:1")),
        });
        let w = World::bare(&server.url);
        let o = w.run(LOGIN);
        o.no_panic();
        let code_event = o
            .stdout
            .lines()
            .find(|l| l.contains("\"code\""))
            .unwrap_or_else(|| panic!("no code event: {}", o.stdout));
        assert!(code_event.contains(url), "the URL is shown: {code_event}");
        let event: serde_json::Value = serde_json::from_str(code_event).unwrap();
        assert!(
            event["warning"]
                .as_str()
                .is_some_and(|w| w.contains("verification URL")),
            "the code event carries the warning: {code_event}"
        );
        assert!(
            o.stderr.contains("WARN") && o.stderr.contains("verification URL"),
            "{url}: flagged on stderr:\n{}",
            o.stderr
        );
    }
}

#[test]
fn oversize_and_endless_replies_are_refused_without_running_out_of_memory() {
    let padding = "x".repeat(100 * 1024);
    let server = Scripted::start(move |req, _| match req.path() {
        "/oauth/v3/device/code" => {
            let mut c = code_reply("https://accounts.zoho.com");
            c["padding"] = padding.clone().into();
            Reply::json(&c)
        }
        // 512 MiB that never closes the JSON: read up to the cap, then dropped.
        _ => Reply::Endless(512 << 20),
    });
    let w = World::bare(&server.url);
    let o = w.run(LOGIN);
    o.code(7);
    assert!(o.error_line().contains("reply too large"), "{}", o.stderr);

    w.write_token(&token_file(&server.url, &server.url, now_ms() + 3_600_000));
    let before = w.token_bytes();
    let o = w.run(&["refresh"]);
    o.code(7);
    assert!(o.error_line().contains("reply too large"), "{}", o.stderr);
    assert!(o.elapsed < Duration::from_secs(20), "{:?}", o.elapsed);
    let o = w.run(&["books", "organizations"]);
    o.code(7);
    assert!(o.error_line().contains("reply too large"), "{}", o.stderr);
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn absurd_intervals_and_expiries_are_clamped() {
    // interval 0: polled no faster than once a second.
    let polls = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let p2 = polls.clone();
    let start = std::time::Instant::now();
    let server = Scripted::start(move |req, _| match req.path() {
        "/oauth/v3/device/code" => Reply::json(&json!({
            "user_code": "ABCD-1234", "device_code": "1004.devcode-interval0-0123456789",
            "verification_url": "https://accounts.zoho.com/oauth/v3/device",
            "interval": 0, "expires_in": 30_000,
        })),
        _ => {
            let mut p = p2.lock().unwrap();
            p.push(start.elapsed());
            if p.len() < 3 {
                Reply::json(&json!({"error": "authorization_pending"}))
            } else {
                // Expiry 10^12 s: clamped to 7 days.
                let mut t = token_reply("http://127.0.0.1:1");
                t["expires_in"] = 1_000_000_000_000u64.into();
                Reply::json(&t)
            }
        }
    });
    let w = World::bare(&server.url);
    w.run(LOGIN).code(0);
    let p = polls.lock().unwrap().clone();
    for pair in p.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(950),
            "polls too close: {p:?}"
        );
    }
    let expires_at = w.token_json()["expires_at"].as_u64().unwrap();
    let week = 7 * 24 * 3600 * 1000;
    assert!(
        expires_at <= now_ms() + week && expires_at > now_ms() + week - 60_000,
        "{expires_at}"
    );

    // expires_in 0 and negative: the default hour; a fractional, a string: read sensibly.
    for (given, want_s) in [
        (json!(0), 3600),
        (json!(-5), 3600),
        (json!("120"), 120),
        (json!(1e300), 7 * 24 * 3600),
    ] {
        let g = given.clone();
        let server = accounts(move || {
            let mut t = token_reply("http://127.0.0.1:1");
            t["expires_in"] = g.clone();
            Reply::json(&t)
        });
        let w = World::bare(&server.url);
        w.run(LOGIN).code(0);
        let left = (w.token_json()["expires_at"].as_u64().unwrap() as i64 - now_ms() as i64) / 1000;
        assert!((left - want_s).abs() <= 60, "expires_in {given}: {left} s left");
    }

    // interval 10^12 with a 3 s code: clamped to 600 s, so the code lapses first: exit 4,
    // after about 3 s, without any poll.
    let server = Scripted::start(|req, _| match req.path() {
        "/oauth/v3/device/code" => Reply::json(&json!({
            "user_code": "ABCD-1234", "device_code": "1004.devcode-hugeinterval-0123456789",
            "verification_url": "https://accounts.zoho.com/oauth/v3/device",
            "interval": 1_000_000_000_000u64, "expires_in": 3,
        })),
        _ => Reply::json(&json!({"error": "authorization_pending"})),
    });
    let w = World::bare(&server.url);
    let o = w.run(LOGIN);
    o.code(4);
    assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
    assert_eq!(server.requests().len(), 1, "no poll before the clamped interval");
}
