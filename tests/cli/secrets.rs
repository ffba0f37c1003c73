//! Secret hygiene: at `-vv`, through every command, no client secret, device code, access or
//! refresh token on stderr, on stdout (except `token`'s own output), or in any URL.

use crate::util::*;

#[test]
fn no_secret_anywhere_at_debug_level() {
    let w = World::new(
        sim_config()
            .client(CLIENT_ID, SECRET, &["us", "eu"])
            .user(USER, "eu")
            .auto_approve_after_polls(2)
            .token_lifetime_s(200),
    );
    // Transient faults make the error paths log too.
    w.sim
        .inject(Fault::new("/oauth/v3/device/token", FaultKind::Html { status: 503 }, 1));
    let out = w.run(&["-vv", "login", "--events", "json", "--display", "terminal"]);
    out.code(0);
    // -vv includes the info logs (debug lines appear where the program has any).
    assert!(out.stderr.contains("token saved"), "-vv logs:\n{}", out.stderr);
    w.run(&["token", "-vv"]).code(0);
    w.run(&["-vv", "status"]).code(0);
    w.run(&["-vv", "status", "--json"]).code(0);
    w.sim.inject(Fault::new("/oauth/v2/token", FaultKind::Truncated, 1));
    w.run(&["-vv", "refresh"]).code(0);
    w.run(&["-vv", "books", "organizations", "--json"]).code(0);
    w.run(&["-vv", "doctor"]).code(0);
    w.run(&["-vv", "doctor", "--json"]).code(0);
    // Failures print errors: still no secret.
    w.sim.inject(Fault::new("/oauth/v2/token", FaultKind::Garbage, 5));
    w.run(&["-vv", "refresh"]).code(7);
    w.sim.clear_faults();
    w.run(&["-vv", "logout"]).code(0);
    // A failed pairing with a wrong secret.
    let mut w = w;
    w.set("ZOHO_CLIENT_SECRET", Some("wrong-but-still-a-secret-77"));
    let out = w.run(&["-vv", "login", "--events", "json", "--display", "none"]);
    out.code(5);
    assert!(!out.stderr.contains("wrong-but-still-a-secret-77"));
    assert!(!out.stdout.contains("wrong-but-still-a-secret-77"));
    w.assert_no_secret_leaked();
}
