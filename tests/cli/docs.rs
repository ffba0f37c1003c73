//! `--help`, completions and the man page come from the one CLI definition and document the
//! whole contract; `-v`/`-q` work before and after the subcommand; the demo runs end to end.

use std::time::Duration;

use crate::util::*;

const COMMANDS: &[&str] = &[
    "login",
    "token",
    "status",
    "refresh",
    "logout",
    "books",
    "api",
    "doctor",
    "demo",
    "agent",
    "completions",
    "man",
];

const ENV_VARS: &[&str] = &[
    "ZOHO_CLIENT_ID",
    "ZOHO_CLIENT_SECRET",
    "ZOHO_CLIENT_SECRET_FILE",
    "CREDENTIALS_DIRECTORY",
    "ZOHO_DC",
    "ZOHO_ACCOUNTS_URL",
    "ZOHO_SCOPE",
    "ZOHO_TOKEN_FILE",
    "XDG_CONFIG_HOME",
];

#[test]
fn help_documents_every_command_env_var_and_exit_code() {
    let w = World::new(sim_config());
    let out = w.run(&["--help"]);
    out.code(0);
    let help = &out.stdout;
    for c in COMMANDS {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(c)),
            "--help lists no {c}:\n{help}"
        );
    }
    for v in ENV_VARS {
        assert!(help.contains(v), "--help never mentions {v}:\n{help}");
    }
    for (code, what) in [
        ("0", "ok"),
        ("2", "usage/configuration"),
        ("3", "denied"),
        ("4", "code expired"),
        ("5", "client rejected (invalid_client, invalid_client_secret, wrong DC)"),
        ("6", "not paired"),
        ("7", "Zoho or network unavailable, throttled, the clock not set yet"),
        ("8", "unsafe server data refused"),
        ("9", "the token file, its directory or"),
        ("130", "interrupted"),
    ] {
        assert!(
            help.contains(&format!("{code} {what}")),
            "--help lacks exit code {code} {what}:\n{help}"
        );
    }
    for flag in [
        "--client-id",
        "--client-secret-file",
        "--dc",
        "--accounts-url",
        "--scope",
        "--token-file",
        "--config",
        "-v, --verbose",
        "-q, --quiet",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    for dc in ["us, eu, in, au, jp, ca, sa, uk, ae, cn", "auto"] {
        assert!(help.contains(dc), "--help lacks the DCs {dc}");
    }
    // -h is the short form.
    w.run(&["-h"]).code(0);
}

#[test]
fn login_help_documents_displays_events_and_kiosk() {
    let w = World::new(sim_config());
    let out = w.run(&["login", "--help"]);
    out.code(0)
        .stdout_has(&["--display", "terminal", "none", "--events", "json", "--kiosk"]);
    w.run(&["books", "--help"]).code(0).stdout_has(&["organizations"]);
    w.run(&["books", "organizations", "--help"])
        .code(0)
        .stdout_has(&["--json"]);
    w.run(&["status", "--help"]).code(0).stdout_has(&["--json", "secret"]);
    w.run(&["token", "--help"]).code(0).stdout_has(&["5 minutes"]);
}

#[test]
fn version() {
    let w = World::new(sim_config());
    w.run(&["--version"])
        .code(0)
        .stdout_has(&["zoho-device ", env!("CARGO_PKG_VERSION")]);
}

#[test]
fn completions_for_every_shell_come_from_the_cli_definition() {
    let w = World::new(sim_config());
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = w.run(&["completions", shell]);
        out.code(0);
        assert!(out.stdout.len() > 500, "{shell}: {}", out.stdout);
        for c in ["login", "token", "logout", "doctor", "organizations"] {
            assert!(out.stdout.contains(c), "{shell} completions lack {c}");
        }
        for flag in ["--client-id", "--events", "--kiosk"] {
            assert!(
                out.stdout.contains(flag.trim_start_matches('-')),
                "{shell} completions lack {flag}"
            );
        }
    }
    w.run(&["completions", "tcsh"]).code(2);
}

#[test]
fn man_page_is_roff() {
    let w = World::new(sim_config());
    let out = w.run(&["man"]);
    out.code(0);
    let man = &out.stdout;
    assert!(
        man.starts_with(".ie") || man.starts_with(".TH") || man.contains("\n.TH "),
        "{}",
        &man[..200.min(man.len())]
    );
    assert!(man.contains(".TH zoho-device"), "a title header");
    assert!(man.contains(".SH NAME") && man.contains(".SH SYNOPSIS") && man.contains(".SH OPTIONS"));
    for c in [
        "login", "token", "status", "refresh", "logout", "books", "doctor", "demo",
    ] {
        assert!(man.contains(c), "the man page lacks {c}");
    }
    assert!(man.contains("ZOHO_CLIENT_ID") && man.contains("Exit codes"), "{man}");
}

#[test]
fn verbose_and_quiet_before_and_after_the_subcommand() {
    let w = World::new(auto_config());
    // -v before and after: info logs appear (the token-saved line).
    for args in [
        &["-v", "login", "--events", "json", "--display", "none"][..],
        &["login", "--events", "json", "--display", "none", "-v"][..],
    ] {
        let out = w.run(args);
        out.code(0).stderr_has(&["token saved"]);
    }
    // Without -v: no info logs.
    let out = w.run(&["login", "--events", "json", "--display", "none"]);
    out.code(0);
    assert!(!out.stderr.contains("token saved"), "{}", out.stderr);
    // -q before and after: a warning is suppressed (a refresh failure with a valid token).
    for q in [&["-q", "token"][..], &["token", "-q"][..], &["token", "--quiet"][..]] {
        w.edit_token(|t| {
            t.insert("expires_at".into(), (now_ms() + 240_000).into());
            // A one-hour token near its end (the margin scales with the lifetime).
            t.insert("refreshed_at".into(), (now_ms() + 240_000 - 3_600_000).into());
        });
        w.sim
            .inject(Fault::new("/oauth/v2/token", FaultKind::Html { status: 503 }, 3));
        let out = w.run(q);
        out.code(0);
        assert!(out.stderr.is_empty(), "{q:?}: {}", out.stderr);
        w.sim.clear_faults();
    }
    // ... which without -q is on stderr.
    w.edit_token(|t| {
        t.insert("expires_at".into(), (now_ms() + 240_000).into());
        // A one-hour token near its end (the margin scales with the lifetime).
        t.insert("refreshed_at".into(), (now_ms() + 240_000 - 3_600_000).into());
    });
    w.sim
        .inject(Fault::new("/oauth/v2/token", FaultKind::Html { status: 503 }, 3));
    w.run(&["token"]).code(0).stderr_has(&["refresh failed"]);
    // -vv shows debug lines; -v and -q together are a usage error.
    w.run(&["status", "-vv"]).code(0);
    w.run(&["-q", "-v", "status"]).code(2);
    w.run(&["status", "-q", "-v"]).code(2);
    w.assert_no_secret_leaked();
}

#[test]
fn demo_runs_end_to_end_in_under_15_seconds() {
    let w = World::new(sim_config());
    let mut w = w;
    // The demo needs no configuration at all.
    for k in ["ZOHO_CLIENT_ID", "ZOHO_CLIENT_SECRET", "ZOHO_ACCOUNTS_URL"] {
        w.set(k, None);
    }
    let out = w.run(&["demo", "--approve-after", "1"]);
    out.code(0)
        .stderr_has(&["Paired", "Refreshed", "organizations", "Zillum", "Done in"]);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    let out = w.run(&["demo", "--events", "json", "--approve-after", "1"]);
    out.code(0);
    let names = out.event_names();
    assert_eq!(names.first().map(String::as_str), Some("code"), "{names:?}");
    assert!(names.contains(&"other_dc".to_string()), "{names:?}");
    assert_eq!(names.last().map(String::as_str), Some("authorized"), "{names:?}");
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    // It cleans up after itself.
    let left: Vec<_> = std::fs::read_dir(w.path("tmp")).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn demo_with_default_approval_delay() {
    let mut w = World::new(sim_config());
    w.set("ZOHO_CLIENT_ID", None);
    let out = w.run(&["demo"]);
    out.code(0).stderr_has(&["Zillum"]);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
}
