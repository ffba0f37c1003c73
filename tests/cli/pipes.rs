//! A reader that goes away (`zoho-device doctor | head -1`, `| true`) ends every command
//! quietly: no panic, no stack trace, not killed by a signal, exit 0 or the command's own code.
//!
//! Each run gets a stdout whose read end is closed before the program starts, so every write
//! to stdout fails with EPIPE, deterministically.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// Runs `zoho-device ARGS` with a closed stdout; with `stop_when`, sends SIGTERM once it holds
/// (the agent runs until stopped). Returns (exit code, stderr).
fn run_with_closed_stdout(w: &World, args: &[&str], stop_when: Option<&dyn Fn() -> bool>) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut child = Command::new(env!("CARGO_BIN_EXE_zoho-device"))
        .env_clear()
        .envs(&w.env)
        .current_dir(w.home.path())
        .args(args)
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(ready) = stop_when {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() && Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    }
    let started = Instant::now();
    let out = loop {
        if child.try_wait().unwrap().is_some() {
            break child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("zoho-device {args:?} did not end with a closed stdout");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.signal().is_none(),
        "zoho-device {args:?} was killed by signal {:?} with a closed stdout\n{stderr}",
        out.status.signal()
    );
    for bad in ["panicked", "stack backtrace", "RUST_BACKTRACE", "Broken pipe"] {
        assert!(
            !stderr.contains(bad),
            "zoho-device {args:?}: {bad:?} on stderr\n{stderr}"
        );
    }
    (out.status.code(), stderr)
}

#[track_caller]
fn quiet(w: &World, args: &[&str], codes: &[i32]) {
    let (code, stderr) = run_with_closed_stdout(w, args, None);
    assert!(
        code.is_some_and(|c| codes.contains(&c)),
        "zoho-device {args:?}: exit {code:?}, wanted one of {codes:?}\n{stderr}"
    );
}

#[test]
fn commands_that_need_no_pairing_end_quietly() {
    let w = World::new(auto_config());
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        quiet(&w, &["completions", shell], &[0]);
    }
    quiet(&w, &["man"], &[0]);
    quiet(&w, &["--help"], &[0]);
    quiet(&w, &["login", "--help"], &[0]);
    quiet(&w, &["--version"], &[0]);
    // Not paired: the answer is on stdout (exit 0 once nobody reads it, or 6).
    quiet(&w, &["status"], &[0, 6]);
    quiet(&w, &["status", "--json"], &[0, 6]);
    // doctor's findings, text and JSON (exit 0, or the code of its first failed check).
    quiet(&w, &["doctor"], &[0, 6]);
    quiet(&w, &["doctor", "--json"], &[0, 6]);
}

#[test]
fn commands_of_a_paired_device_end_quietly() {
    let w = World::new(auto_config());
    // Pairing with events on a closed stdout still pairs (the events have no reader).
    quiet(&w, &["login", "--events", "json", "--display", "none"], &[0]);
    assert!(
        w.token_path().exists(),
        "login paired even though nobody read its events"
    );
    for args in [
        &["token"][..],
        &["status"],
        &["status", "--json"],
        &["books", "organizations"],
        &["books", "organizations", "--json"],
        &["api", "/books/v3/organizations"],
        &["api", "/books/v3/invoices", "--paginate"],
        &["doctor"],
        &["doctor", "--json"],
        &["refresh"],
    ] {
        quiet(&w, args, &[0]);
    }
    // The token file is still good after all of it.
    w.run(&["token"]).code(0);
    quiet(&w, &["logout"], &[0]);
    assert!(!w.token_path().exists());
}

#[test]
fn the_agent_and_the_demo_end_quietly() {
    let w = World::new(auto_config());
    let (code, stderr) = run_with_closed_stdout(
        &w,
        &["agent", "--events", "json", "--display", "none"],
        Some(&|| w.token_path().exists()),
    );
    assert_eq!(code, Some(0), "the agent stops cleanly on SIGTERM\n{stderr}");
    assert!(w.token_path().exists(), "the agent paired\n{stderr}");
    quiet(
        &w,
        &["demo", "--events", "json", "--display", "none", "--approve-after", "0"],
        &[0],
    );
}
