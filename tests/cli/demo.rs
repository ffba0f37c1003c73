//! `zoho-device demo` never touches a real pairing: whatever token file, client or server the
//! environment and flags name, it reads, writes and revokes only its own temporary state.

use crate::util::*;

/// What the demo must leave alone: the paired token file's bytes and its refresh token at the
/// (real, here simulated) server.
fn assert_untouched(w: &World, before: &[u8], refresh: &str, what: &str) {
    assert!(w.token_bytes() == before, "{what}: the real token file changed");
    assert!(
        w.sim.refresh_tokens(USER).iter().any(|t| t == refresh),
        "{what}: the real refresh token was revoked"
    );
    assert!(
        w.sim.requests_to("/oauth/v2/token/revoke").is_empty(),
        "{what}: the demo sent a revoke to the real server"
    );
    w.run(&["refresh"]).code(0);
    // The refresh above is ours; put the file back as it was for the next check.
    std::fs::write(w.token_path(), before).unwrap();
}

#[test]
fn demo_leaves_a_real_pairing_byte_identical_and_unrevoked() {
    let mut w = World::new(auto_config());
    w.login();
    let before = w.token_bytes();
    let refresh = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    let path = w.token_path().display().to_string();
    let requests_before = w.sim.requests().len();

    // The token file by environment (with the rest of a real configuration around it).
    w.set("ZOHO_TOKEN_FILE", Some(&path));
    let out = w.run(&["demo", "--approve-after", "0", "--display", "none"]);
    // First what matters most: the real pairing (then what the demo said about it).
    assert!(
        w.token_bytes() == before,
        "ZOHO_TOKEN_FILE: the real token file changed"
    );
    assert!(
        w.sim.refresh_tokens(USER).iter().any(|t| t == &refresh),
        "ZOHO_TOKEN_FILE: the real refresh token was revoked"
    );
    out.code(0).stderr_has(&[
        "The demo ignores",
        "--token-file/ZOHO_TOKEN_FILE",
        "--client-id/ZOHO_CLIENT_ID",
        "--accounts-url/ZOHO_ACCOUNTS_URL",
        "ZOHO_CLIENT_SECRET",
        "Zoho Books organizations",
    ]);
    assert!(
        !out.stderr.contains(&path),
        "the demo saved nowhere near {path}:\n{}",
        out.stderr
    );
    assert_eq!(
        w.sim.requests().len(),
        requests_before,
        "the demo sent nothing to the configured server"
    );
    assert_untouched(&w, &before, &refresh, "ZOHO_TOKEN_FILE");

    // The token file by flag, before and after the subcommand.
    w.set("ZOHO_TOKEN_FILE", None);
    for args in [
        &[
            "--token-file",
            path.as_str(),
            "demo",
            "--approve-after",
            "0",
            "--display",
            "none",
        ][..],
        &[
            "demo",
            "--token-file",
            path.as_str(),
            "--approve-after",
            "0",
            "--display",
            "none",
        ],
    ] {
        let out = w.run(args);
        assert_untouched(&w, &before, &refresh, "--token-file");
        out.code(0).stderr_has(&["--token-file/ZOHO_TOKEN_FILE"]);
    }

    // Its own state is gone afterwards: nothing left in TMPDIR.
    let left: Vec<_> = std::fs::read_dir(w.path("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?} in TMPDIR");
}

#[test]
fn demo_manual_with_nothing_showing_the_code_is_refused() {
    let w = World::new(auto_config());
    let out = w.run(&["demo", "--manual", "--display", "none"]);
    out.code(2).stderr_has(&["--manual", "--display none", "hint:"]);
    assert!(!out.stderr.contains("shown below"), "{}", out.stderr);
    // With events, the URL is in the `code` event: it says so instead.
    let mut run = w.spawn(&["demo", "--manual", "--display", "none", "--events", "json"]);
    let code = run.event("code", secs(10));
    assert!(code["verification_uri_complete"].is_string());
    run.signal("INT");
    let out = run.wait();
    out.stderr_has(&["`code` event"]);
}
