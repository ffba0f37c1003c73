//! Bad input: each case with its exit code and message. docs/bad-input.md is this file as a
//! table; keep them in step.

use crate::util::*;

const LOGIN: &[&str] = &["login", "--events", "json", "--display", "none"];

/// Runs `args` and checks exit 2, the message and that nothing was sent anywhere.
#[track_caller]
fn usage_error(w: &World, args: &[&str], needles: &[&str]) -> Output {
    let out = w.run(args);
    out.code(2).stderr_has(needles);
    assert!(
        w.sim.requests().is_empty(),
        "a usage error talks to nobody: {:?}",
        w.sim.requests()
    );
    assert!(!w.token_path().exists());
    out
}

#[test]
fn unknown_dc() {
    let w = World::new(sim_config());
    let out = usage_error(
        &w,
        &[LOGIN, &["--dc", "mars"]].concat(),
        &["unknown data centre \"mars\"", "hint:", "us, eu"],
    );
    // With --events json a program learns of it from an error event, the only line on stdout.
    assert_eq!(out.event_names(), ["error"], "{}", out.stdout);
    let err = out.event("error");
    assert_eq!(err["kind"], "usage");
    assert_eq!(err["message"], "unknown data centre \"mars\"");
    let mut w = w;
    w.set("ZOHO_DC", Some("atlantis"));
    usage_error(&w, &["status"], &["unknown data centre \"atlantis\""]);
}

#[test]
fn missing_client_id() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_ID", None);
    let out = usage_error(&w, LOGIN, &["no client ID configured", "--client-id", "ZOHO_CLIENT_ID"]);
    // With --events json a program sees it too.
    let err = out.event("error");
    assert_eq!(err["kind"], "usage", "{err}");
    assert_eq!(err["message"], "no client ID configured");
    w.set("ZOHO_CLIENT_ID", Some("  "));
    usage_error(&w, LOGIN, &["the client ID is empty"]);
}

#[test]
fn missing_client_secret() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_SECRET", None);
    usage_error(&w, LOGIN, &["no client secret configured", "ZOHO_CLIENT_SECRET_FILE"]);
}

#[test]
fn the_secret_is_never_accepted_in_argv() {
    let w = World::new(sim_config());
    let out = usage_error(
        &w,
        &[LOGIN, &["--client-secret", "sekrit"]].concat(),
        &["--client-secret"],
    );
    assert!(
        !out.stderr.contains("sekrit") || out.stderr.contains("unexpected argument"),
        "{}",
        out.stderr
    );
}

#[test]
fn http_accounts_url_on_a_non_loopback_host() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_ACCOUNTS_URL", Some("http://accounts.example.com"));
    usage_error(
        &w,
        LOGIN,
        &[
            "accounts URL \"http://accounts.example.com\" refused",
            "hint:",
            "https://",
        ],
    );
    w.set("ZOHO_ACCOUNTS_URL", None);
    usage_error(
        &w,
        &[LOGIN, &["--accounts-url", "http://10.0.0.1:8080"]].concat(),
        &["refused"],
    );
    usage_error(&w, &[LOGIN, &["--accounts-url", "not a url"]].concat(), &["refused"]);
}

#[test]
fn unreadable_secret_file() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_SECRET", None);
    let missing = w.path("no-such-secret");
    let m = missing.display().to_string();
    usage_error(
        &w,
        &[LOGIN, &["--client-secret-file", &m]].concat(),
        &["cannot read the client secret file", &m],
    );
    // A directory is unreadable as a file, even for root.
    let dir = w.path("config");
    let d = dir.display().to_string();
    w.set("ZOHO_CLIENT_SECRET_FILE", Some(&d));
    usage_error(&w, LOGIN, &["cannot read the client secret file", &d]);
    // An empty one is no secret.
    let empty = write_file(&w.path("empty-secret"), "\n");
    let e = empty.display().to_string();
    w.set("ZOHO_CLIENT_SECRET_FILE", Some(&e));
    usage_error(&w, LOGIN, &["is empty", &e]);
}

#[test]
fn a_secret_file_and_a_systemd_credential_work() {
    let mut w = World::new(auto_config());
    w.set("ZOHO_CLIENT_SECRET", None);
    let f = write_file(&w.path("secret"), &format!("{SECRET}\n"));
    w.set("ZOHO_CLIENT_SECRET_FILE", Some(&f.display().to_string()));
    w.login();
    w.set("ZOHO_CLIENT_SECRET_FILE", None);
    let creds = w.path("creds");
    write_file(&creds.join("zoho-client-secret"), SECRET);
    w.set("CREDENTIALS_DIRECTORY", Some(&creds.display().to_string()));
    w.run(&["refresh"]).code(0);
    w.assert_no_secret_leaked();
}

#[test]
fn corrupt_token_file() {
    let w = World::new(auto_config());
    let bytes: &[u8] = b"{\"version\":1,\"access_token\":";
    let p = w.token_path();
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    let path = p.display().to_string();
    for args in [
        &["token"][..],
        &["status"],
        &["status", "--json"],
        &["refresh"],
        &["books", "organizations"],
    ] {
        let out = w.run(args);
        out.code(6).stderr_has(&["corrupt", &path, "zoho-device login"]);
        assert_eq!(std::fs::read(&p).unwrap(), bytes, "{args:?} left the file as it was");
    }
    assert!(w.sim.requests().is_empty());
}

#[test]
fn token_file_of_an_unknown_version() {
    let w = World::new(auto_config());
    w.login();
    w.edit_token(|t| {
        t.insert("version".into(), 99.into());
    });
    let before = w.token_bytes();
    w.run(&["token"])
        .code(6)
        .stderr_has(&["corrupt", "unknown format version 99"]);
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn invalid_config_toml() {
    let w = World::new(sim_config());
    let p = write_file(&w.path("bad.toml"), "client_id = \"1004.X\"\ndc = [unclosed\n");
    let ps = p.display().to_string();
    usage_error(
        &w,
        &["status", "--config", &ps],
        &["the config file", &ps, "is not valid"],
    );
    // The default location is read too.
    write_file(&w.path("config/zoho-device/config.toml"), "this is = = not toml");
    usage_error(&w, &["status"], &["config.toml", "is not valid"]);
}

#[test]
fn unknown_config_key() {
    let w = World::new(sim_config());
    let p = write_file(
        &w.path("c.toml"),
        "client_id = \"1004.X\"\nclient_secret = \"inline\"\n",
    );
    let out = usage_error(
        &w,
        &["status", "--config", &p.display().to_string()],
        &["unknown field", "client_secret", "hint:", "client_secret_file"],
    );
    assert!(!out.stderr.contains("inline"), "{}", out.stderr);
}

#[test]
fn missing_config_file() {
    let w = World::new(sim_config());
    let p = w.path("nope.toml").display().to_string();
    usage_error(&w, &["status", "--config", &p], &["cannot read the config file", &p]);
}

#[test]
fn bad_display_value() {
    let w = World::new(sim_config());
    usage_error(
        &w,
        &["login", "--display", "hologram"],
        &["--display \"hologram\"", "hint:"],
    );
    let out = usage_error(
        &w,
        &[LOGIN, &["--display", "hologram"]].concat(),
        &["--display \"hologram\""],
    );
    assert_eq!(out.event_names(), ["error"], "{}", out.stdout);
    assert_eq!(out.event("error")["kind"], "usage");
}

#[test]
fn rfc8628_profile_without_token_url() {
    let w = World::new(sim_config());
    let dev = format!("{}/oauth/v3/device/code", w.sim.accounts_url("us"));
    usage_error(
        &w,
        &[LOGIN, &["--profile", "rfc8628", "--device-authorization-url", &dev]].concat(),
        &["--profile rfc8628 needs --token-url", "hint:"],
    );
    usage_error(
        &w,
        &[LOGIN, &["--profile", "rfc8628"]].concat(),
        &["needs --device-authorization-url"],
    );
    usage_error(&w, &[LOGIN, &["--profile", "oauth1"]].concat(), &["oauth1"]);
}

#[test]
fn client_auth_takes_basic_or_post() {
    let w = World::new(sim_config());
    let p = write_file(&w.path("auth.toml"), "client_auth = \"digest\"\n");
    let ps = p.display().to_string();
    usage_error(
        &w,
        &["status", "--config", &ps],
        &["client_auth \"digest\" is not basic or post", "hint:"],
    );
    usage_error(&w, &[LOGIN, &["--client-auth", "digest"]].concat(), &["digest"]);
}

#[test]
fn empty_scope_unknown_flags_and_commands() {
    let w = World::new(sim_config());
    usage_error(&w, &[LOGIN, &["--scope", " , "]].concat(), &["the scope is empty"]);
    usage_error(&w, &["pair"], &["unrecognized subcommand"]);
    usage_error(&w, &["login", "--events", "xml"], &["xml"]);
    usage_error(&w, &[], &["Usage"]);
}

#[test]
fn settings_precedence_flag_over_env_over_config() {
    let mut w = World::new(auto_config());
    // Config says eu-only client ID; env overrides it; the flag overrides the env.
    let cfg = write_file(
        &w.path("config/zoho-device/config.toml"),
        "client_id = \"1004.FROMCONFIG\"\ndc = \"mars\"\nscope = \"ZohoBooks.settings.READ\"\n",
    );
    let _ = cfg;
    w.set("ZOHO_CLIENT_ID", None);
    // dc from the config is read (and refused)...
    usage_error(&w, &["status"], &["unknown data centre \"mars\""]);
    // ...unless the environment overrides it.
    w.set("ZOHO_DC", Some("us"));
    let out = w.run(&["doctor"]);
    out.stdout_has(&["1004.FROMCONFIG"]);
    w.set("ZOHO_CLIENT_ID", Some("1004.FROMENV"));
    w.run(&["doctor"]).stdout_has(&["1004.FROMENV"]);
    w.run(&["doctor", "--client-id", CLIENT_ID])
        .stdout_has(&[CLIENT_ID, "knows client"]);
    // A token file path from the flag wins over the default.
    let alt = w.path("alt/token.json");
    w.run(&[
        "login",
        "--events",
        "json",
        "--display",
        "none",
        "--client-id",
        CLIENT_ID,
        "--token-file",
        &alt.display().to_string(),
    ])
    .code(0);
    assert!(alt.exists() && !w.token_path().exists());
}

#[test]
fn a_token_of_another_client_is_refused() {
    let mut w = World::new(auto_config());
    w.login();
    w.set("ZOHO_CLIENT_ID", Some("1004.SOMEONEELSE"));
    let before = w.token_bytes();
    w.run(&["refresh"])
        .code(2)
        .stderr_has(&["belongs to client", CLIENT_ID]);
    assert_eq!(w.token_bytes(), before);
}
