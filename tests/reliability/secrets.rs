//! Secret hygiene beyond tests/cli/secrets.rs: every command — successes, every phase's
//! permanent failure, login's refusals, Books' refresh-and-retry — at `-vv` *and* with
//! `RUST_LOG=trace` (every crate's most verbose logs: reqwest, hyper, rustls). No client secret,
//! device code, access or refresh token on stderr, on stdout (except `token`'s), in any URL the
//! simulator saw, or in any error message; and the token file is private (0600 in a 0700 dir).

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;

fn check(w: &World) {
    let secrets = w.secrets();
    assert!(secrets.len() >= 4, "the world saw secrets to look for: {secrets:?}");
    for out in w.outputs.lock().unwrap().iter() {
        let token_cmd = out.args.iter().any(|a| a == "token");
        for s in &secrets {
            assert!(
                !out.stderr.contains(s.as_str()),
                "{s:?} on stderr of {:?}:\n{}",
                out.args,
                out.stderr
            );
            assert!(
                token_cmd || !out.stdout.contains(s.as_str()),
                "{s:?} on stdout of {:?}:\n{}",
                out.args,
                out.stdout
            );
        }
    }
    for r in w.sim.requests() {
        let q = r.query.clone().unwrap_or_default();
        for s in &secrets {
            assert!(!q.contains(s.as_str()), "{s:?} in the URL of {} {}", r.method, r.path);
        }
    }
}

fn everything(w: &mut World, verbosity: &[&str]) {
    let run = |w: &World, args: &[&str]| {
        let mut a: Vec<&str> = verbosity.to_vec();
        a.extend_from_slice(args);
        w.run(&a)
    };
    let login = ["login", "--events", "json", "--display", "terminal"];
    run(w, &login).code(0);
    run(w, &["token"]).code(0);
    run(w, &["status"]).code(0);
    run(w, &["status", "--json"]).code(0);
    run(w, &["refresh"]).code(0);
    run(w, &["books", "organizations", "--json"]).code(0);
    run(w, &["doctor"]).no_panic();
    run(w, &["doctor", "--json"]).no_panic();
    // Books' 401 → refresh → retry path, with the access token dead at the simulator.
    w.sim.revoke_refresh_tokens();
    run(w, &["books", "organizations"]).code(6);
    run(w, &["refresh"]).code(6);
    run(w, &login).code(0);
    w.edit_token(|t| {
        t.insert("access_token".into(), "1000.stale-access-token-for-401".into());
    });
    run(w, &["books", "organizations"]).code(0);
    // The token command at expiry (refresh inside `token`).
    w.edit_token(|t| {
        t.insert("expires_at".into(), 0u64.into());
    });
    run(w, &["token"]).code(0);
    // Every phase failing for good.
    for (path, args) in [
        ("/oauth/v2/token", &["refresh"][..]),
        ("/books/v3/organizations", &["books", "organizations"][..]),
        ("/oauth/v3/device/token", &login[..]),
    ] {
        w.sim.inject(Fault::new(path, FaultKind::Truncated, 100_000));
        if path == "/oauth/v3/device/token" {
            // Short code so the failing login ends quickly.
            w.set("ZOHO_DEVICE_BACKOFF_MS", Some("50"));
        }
        let _ = run(w, args);
        w.sim.clear_faults();
    }
    w.sim.inject(Fault::new(
        "/oauth/v2/token/revoke",
        FaultKind::Html { status: 502 },
        100_000,
    ));
    run(w, &["logout"]).code(7);
    w.sim.clear_faults();
    // Login refusals: denied, and a wrong secret.
    let mut wrong = std::mem::take(&mut w.env);
    wrong.insert("ZOHO_CLIENT_SECRET".into(), "wrong-secret-4477-must-not-print".into());
    w.env = wrong;
    let o = run(w, &["login", "--events", "json", "--display", "none"]);
    o.code(5);
    assert!(!o.stderr.contains("wrong-secret-4477") && !o.stdout.contains("wrong-secret-4477"));
    w.set("ZOHO_CLIENT_SECRET", Some(SECRET));
}

#[test]
fn no_secret_anywhere_at_debug_level_and_at_rust_log_trace() {
    for (name, verbosity, env) in [("-vv", vec!["-vv"], None), ("RUST_LOG=trace", vec![], Some("trace"))] {
        let mut w = World::new(
            auto_config()
                .client(CLIENT_ID, SECRET, &["us", "eu"])
                .user(USER, "eu")
                .code_lifetime_ms(10_000)
                .throttle(1000, std::time::Duration::from_secs(600)),
        );
        if let Some(level) = env {
            w.set("RUST_LOG", Some(level));
        }
        everything(&mut w, &verbosity);
        let outputs = w.outputs.lock().unwrap().len();
        check(&w);
        println!("{name}: {outputs} runs, no secret on stdout/stderr/URLs");
    }
}

#[test]
fn the_token_file_is_private() {
    let w = World::new(auto_config());
    w.login();
    let mode = std::fs::metadata(w.token_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    w.run(&["refresh"]).code(0);
    let mode = std::fs::metadata(w.token_path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o600,
        "still private after a refresh (a new file was renamed over it)"
    );
    let dir = std::fs::metadata(w.token_path().parent().unwrap())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir, 0o700);
}
