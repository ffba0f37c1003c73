//! `zoho-device logout`: revoke at Zoho, then delete locally — even when the revoke fails.

use crate::util::*;

#[test]
fn logout_revokes_the_refresh_token_and_deletes_the_file() {
    let w = World::new(auto_config());
    w.login();
    let refresh = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    let access = w.token_json()["access_token"].as_str().unwrap().to_string();
    assert_eq!(w.sim.refresh_tokens(USER), std::slice::from_ref(&refresh));
    let out = w.run(&["logout"]);
    out.code(0).stderr_has(&["Revoked", "Deleted"]);
    assert!(!w.token_path().exists());
    assert!(
        w.sim.refresh_tokens(USER).is_empty(),
        "the refresh token is dead at Zoho"
    );
    assert!(!w.sim.access_token_live(&access), "and so is its access token");
    let revoke = &w.sim.requests_to("/oauth/v2/token/revoke")[0];
    assert_eq!(revoke.method, "POST");
    assert_eq!(revoke.param("token"), Some(refresh.as_str()));
    assert!(revoke.query.is_none(), "{:?}", revoke.query);
    // Then: not paired.
    w.run(&["status"]).code(6);
    w.run(&["token"]).code(6);
    // Logging out twice is fine.
    w.run(&["logout"]).code(0).stderr_has(&["Not paired"]);
    w.assert_no_secret_leaked();
}

#[test]
fn a_failed_revoke_still_deletes_the_file_and_exits_7() {
    let w = World::new(auto_config());
    w.login();
    w.sim.inject(Fault::new(
        "/oauth/v2/token/revoke",
        FaultKind::Html { status: 503 },
        10,
    ));
    let out = w.run(&["logout"]);
    out.code(7)
        .stderr_has(&["Deleted the token file", "revoking it at Zoho failed", "hint:"]);
    assert!(!w.token_path().exists());
    assert_eq!(
        w.sim.refresh_tokens(USER).len(),
        1,
        "still live at Zoho: that is what was reported"
    );
}

#[test]
fn logout_of_an_already_revoked_token() {
    let w = World::new(auto_config());
    w.login();
    w.sim.revoke_refresh_tokens();
    let out = w.run(&["logout"]);
    out.code(0).stderr_has(&["already invalid", "Deleted"]);
    assert!(!w.token_path().exists());
}

#[test]
fn logout_deletes_a_corrupt_token_file() {
    let w = World::new(auto_config());
    write_file(&w.token_path(), "not json at all");
    let out = w.run(&["logout"]);
    out.stderr_has(&["corrupt", "Deleted"]);
    assert!(!w.token_path().exists());
    assert!(w.sim.requests_to("/oauth/v2/token/revoke").is_empty());
}

#[test]
fn logout_without_a_secret_keeps_the_pairing_and_exits_2() {
    let mut w = World::new(auto_config());
    w.login();
    let before = w.token_bytes();
    w.set("ZOHO_CLIENT_SECRET", None);
    let out = w.run(&["logout"]);
    out.code(2).stderr_has(&[
        "cannot revoke",
        "is kept",
        "no client secret configured",
        "--local-only",
    ]);
    assert!(!out.stderr.contains("needed to refresh the token)"), "{}", out.stderr);
    assert_eq!(w.token_bytes(), before, "the pairing is kept");
    assert_eq!(w.sim.refresh_tokens(USER).len(), 1);
}

#[test]
fn logout_with_another_clients_configuration_keeps_the_pairing_and_exits_2() {
    let mut w = World::new(auto_config());
    w.login();
    let before = w.token_bytes();
    w.set("ZOHO_CLIENT_ID", Some("1004.SOMEONEELSE"));
    let out = w.run(&["logout"]);
    out.code(2)
        .stderr_has(&["is kept", "belongs to client", "--local-only"]);
    assert_eq!(w.token_bytes(), before);
    assert!(w.sim.requests_to("/oauth/v2/token/revoke").is_empty());
}

#[test]
fn logout_local_only_deletes_without_revoking_and_says_so() {
    let mut w = World::new(auto_config());
    w.login();
    let refresh = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    // No secret needed to forget a pairing locally.
    w.set("ZOHO_CLIENT_SECRET", None);
    let out = w.run(&["logout", "--local-only"]);
    out.code(0).stderr_has(&["Deleted the token file", "without revoking"]);
    assert!(!w.token_path().exists());
    assert_eq!(
        w.sim.refresh_tokens(USER),
        [refresh],
        "still live at the server, as said"
    );
    assert!(w.sim.requests_to("/oauth/v2/token/revoke").is_empty());
}
