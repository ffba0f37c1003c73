//! `zoho-device doctor`: findings with fixes, no secrets.

use serde_json::Value;

use crate::util::*;

#[test]
fn doctor_on_a_healthy_paired_device() {
    // No auto-approval: the secret check polls a fresh code and must get "pending".
    let w = World::new(sim_config());
    w.pair_by_hand();
    let out = w.run(&["doctor"]);
    out.code(0).stdout_has(&[
        "client id",
        CLIENT_ID,
        "ZOHO_CLIENT_SECRET",
        "fingerprint",
        "knows client",
        "accepted by Zoho",
        "token file",
        "(mode 600)",
        "0 failed",
    ]);
    assert!(!out.stdout.contains("FAIL"), "{}", out.stdout);
    let out = w.run(&["doctor", "--json"]);
    out.code(0);
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    let findings = v.as_array().unwrap();
    assert!(findings.iter().all(|f| f["level"] != "fail"), "{v:#}");
    assert!(findings.iter().any(|f| f["check"] == "registration"));
    w.assert_no_secret_leaked();
}

#[test]
fn doctor_names_the_dc_of_a_wrong_dc_client() {
    let w = World::new(sim_config().client(CLIENT_ID, SECRET, &["eu"]).user(USER, "eu"));
    let out = w.run(&["doctor"]);
    // Exit 5, as `login` would: Zoho rejects the client at this DC.
    out.code(5)
        .stdout_has(&["FAIL", "invalid_client", "registered in data centre eu", "--dc eu"])
        .stderr_has(&["1 check(s) failed: registration", "run `zoho-device doctor` again"]);
    w.assert_no_secret_leaked();
}

#[test]
fn doctor_reports_a_wrong_secret_and_missing_pairing() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_SECRET", Some("a-wrong-secret-value"));
    let out = w.run(&["doctor"]);
    // A missing pairing is only a warning; the rejected secret fails with 5.
    out.code(5).stdout_has(&[
        "FAIL",
        "invalid_client_secret",
        "does not exist: not paired",
        "zoho-device login",
    ]);
    assert!(!out.stdout.contains("a-wrong-secret-value"));
}

#[test]
fn doctor_reports_a_corrupt_token_file_and_loose_permissions() {
    let w = World::new(auto_config());
    let p = write_file(&w.token_path(), "{ corrupt");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = w.run(&["doctor"]);
    // The first failure is the loose mode (a local configuration problem: 2), then the corrupt file.
    out.code(2)
        .stdout_has(&["corrupt", &p.display().to_string(), "other users can read", "chmod 600"])
        .stderr_has(&["2 check(s) failed: token file, token"]);
    assert_eq!(std::fs::read(&p).unwrap(), b"{ corrupt", "doctor leaves the file alone");
}

#[test]
fn doctor_without_configuration() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_ID", None).set("ZOHO_CLIENT_SECRET", None);
    let out = w.run(&["doctor"]);
    out.code(2).stdout_has(&[
        "no client ID configured",
        "no client secret configured",
        "api-console.zoho.com",
    ]);
}

#[test]
fn doctor_reports_an_unreachable_accounts_server() {
    let mut w = World::new(sim_config());
    // A loopback port nobody listens on.
    let (_held, dead) = refusing_url();
    w.set("ZOHO_ACCOUNTS_URL", Some(&dead));
    let out = w.run(&["doctor"]);
    out.code(7).stdout_has(&["FAIL", "reachability", "check the network"]);
}
