//! The device's own state on a bad disk: a directory where the token file should be, a file
//! where its directory should be, a read-only directory or file system, a full disk — before
//! a code is asked for, after the pairing is approved, and when `token` would refresh. Also
//! files that are not regular files (a FIFO, `/dev/zero`) wherever a path is configured.
//!
//! The read-only bind mount and the full tmpfs are made in a user and mount namespace of the
//! binary's own (`unshare -rm`), so nothing outside the test changes; where that is not
//! allowed the test says skipped, unless `ZOHO_DEVICE_REQUIRE_UNSHARE` is set (CI).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

/// `sh -c SCRIPT` (inside `unshare -rm` when `namespace`) with the world's environment,
/// `$ZD` the binary.
pub fn sh(w: &World, script: &str, namespace: bool) -> Command {
    let mut c = if namespace {
        let mut c = w.program("unshare");
        c.args(["-rm", "sh", "-c", script]);
        c
    } else {
        let mut c = w.program("sh");
        c.args(["-c", script]);
        c
    };
    c.env("ZD", BIN);
    c
}

/// Whether a user and mount namespace can be made here (`unshare -rm`); when not, says why
/// the test is skipped — or fails when `ZOHO_DEVICE_REQUIRE_UNSHARE` is set.
pub fn namespaces(test: &str) -> bool {
    let ok = Command::new("unshare")
        .args([
            "-rm",
            "sh",
            "-c",
            "d=$(mktemp -d) && mount -t tmpfs -o size=64k tmpfs \"$d\" && umount \"$d\" && rmdir \"$d\"",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var_os("ZOHO_DEVICE_REQUIRE_UNSHARE").is_none(),
            "`unshare -rm` with a tmpfs mount fails here but ZOHO_DEVICE_REQUIRE_UNSHARE is set (CI runs as root)"
        );
        eprintln!("{test}: skipped: `unshare -rm` (user and mount namespaces) is not available here");
    }
    ok
}

/// Whether this test process runs as root (file permissions do not stop root).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// Mounts a full 256 KiB tmpfs (mode 0700) on `$1`: shell text for a namespace script.
const FILL: &str = r#"full() { mkdir -p "$1" && mount -t tmpfs -o size=256k,mode=0700 tmpfs "$1" && { dd if=/dev/zero of="$1/.fill" bs=4k 2>/dev/null; true; }; }"#;

fn token_dir(w: &World) -> PathBuf {
    w.token_path().parent().unwrap().to_path_buf()
}

#[track_caller]
fn no_code_asked(w: &World, o: &Output) {
    assert_eq!(
        w.sim.stats().codes_issued,
        0,
        "a code was asked for although the token could not be saved:\n{}",
        o.stderr
    );
    assert!(!o.stdout.contains("\"code\""), "a code was shown: {}", o.stdout);
}

#[test]
fn a_directory_at_the_token_path_stops_login_before_a_code() {
    let w = World::new(auto_config());
    std::fs::create_dir_all(w.token_path()).unwrap();
    let o = w.run(LOGIN);
    o.code(9);
    let e = o.error_line();
    assert!(
        e.contains(&w.token_path().display().to_string()) && e.contains("a directory is in its place"),
        "{e}"
    );
    no_code_asked(&w, &o);
}

#[test]
fn a_file_where_the_directory_should_be_stops_login_before_a_code() {
    let mut w = World::new(auto_config());
    let file = w.home.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let path = file.join("token.json");
    w.set("ZOHO_TOKEN_FILE", Some(&path.display().to_string()));
    let o = w.run(LOGIN);
    o.code(9);
    let e = o.error_line();
    assert!(
        e.contains(&file.display().to_string()) && e.contains("it is not a directory"),
        "{e}"
    );
    no_code_asked(&w, &o);
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn a_read_only_token_directory_stops_login_and_refresh_before_the_server_is_asked() {
    // File permissions: only where they bind (not as root).
    if !is_root() {
        let w = World::new(auto_config());
        let dir = token_dir(&w);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o500)).unwrap();
        let o = w.run(LOGIN);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
        o.code(9);
        assert!(o.error_line().contains("Permission denied"), "{}", o.stderr);
        no_code_asked(&w, &o);
    }
    // A read-only file system: a bind mount of the token directory, read-only, in the
    // binary's own mount namespace.
    if !namespaces("a_read_only_token_directory") {
        return;
    }
    let w = World::new(auto_config());
    let dir = token_dir(&w);
    std::fs::create_dir_all(&dir).unwrap();
    let script = r#"mount --bind -o ro "$D" "$D" && exec "$ZD" "$@""#;
    let mut c = sh(&w, script, true);
    c.env("D", &dir).args(["sh"]).args(LOGIN);
    let o = w.spawn_command(c, LOGIN).wait();
    o.code(9);
    assert!(o.error_line().contains("Read-only file system"), "{}", o.stderr);
    assert!(o.stderr.contains("remount it read-write"), "{}", o.stderr);
    no_code_asked(&w, &o);

    // Paired, then the file system goes read-only: `refresh` does not mint a token it cannot
    // keep, and the file is as it was.
    w.login();
    let before = w.token_bytes();
    let mut c = sh(&w, script, true);
    c.env("D", &dir).args(["sh", "refresh"]);
    let o = w.spawn_command(c, &["refresh"]).wait();
    o.code(9);
    assert!(o.error_line().contains("not refreshing"), "{}", o.stderr);
    assert_eq!(w.sim.stats().refreshes, 0, "a token was minted that could not be saved");
    assert_eq!(w.token_bytes(), before);
}

#[test]
fn a_full_disk_stops_login_before_a_code() {
    if !namespaces("a_full_disk_stops_login_before_a_code") {
        return;
    }
    let w = World::new(auto_config());
    let script = format!(r#"{FILL}; full "$D" && exec "$ZD" login --events json --display none"#);
    let mut c = sh(&w, &script, true);
    c.env("D", token_dir(&w));
    let o = w.spawn_command(c, LOGIN).wait();
    o.code(9);
    let e = o.error_line();
    assert!(
        e.contains("No space left on device") && e.contains(&token_dir(&w).display().to_string()),
        "{e}"
    );
    assert!(o.stderr.contains("the disk is full"), "{}", o.stderr);
    no_code_asked(&w, &o);
}

/// The sim approves on the fifth poll (a second after the code), time enough to break the disk.
fn slow_approval() -> SimConfig {
    auto_config().auto_approve_after_polls(5)
}

#[track_caller]
fn approved_but_unsaved(w: &World, o: &Output, cause: &str) {
    o.code(9);
    let e = o.error_line();
    assert!(
        e.contains("the pairing was approved, but it could not be saved")
            && e.contains(cause)
            && e.contains("its new refresh token was revoked at the server"),
        "{e}"
    );
    let stats = w.sim.stats();
    assert_eq!(stats.pairings, 1, "{}", o.stderr);
    assert_eq!(
        stats.refresh_tokens_revoked, 1,
        "the unsaved refresh token was not revoked"
    );
    assert!(w.sim.refresh_tokens(USER).is_empty(), "a refresh token is still live");
}

#[test]
fn an_approved_pairing_that_cannot_be_saved_is_revoked_and_exits_9() {
    // A directory appears where the token file goes, between the code and the approval.
    let w = World::new(slow_approval());
    let mut run = w.spawn(LOGIN);
    run.event("code", Duration::from_secs(20));
    std::fs::create_dir_all(w.token_path()).unwrap();
    let o = run.wait();
    approved_but_unsaved(&w, &o, &w.token_path().display().to_string());
    assert!(w.token_path().is_dir(), "what was in the way is left alone");

    // The disk fills up between the code and the approval.
    if !namespaces("an_approved_pairing_that_cannot_be_saved (full disk)") {
        return;
    }
    let w = World::new(slow_approval());
    let script = r#"mkdir -p "$D" && mount -t tmpfs -o size=256k,mode=0700 tmpfs "$D" || exit 90
"$ZD" login --events json --display none > "$OUT" &
pid=$!
i=0; until grep -q '"event":"code"' "$OUT" 2>/dev/null; do i=$((i+1)); [ $i -lt 400 ] || break; sleep 0.05; done
dd if=/dev/zero of="$D/.fill" bs=4k 2>/dev/null
wait $pid"#;
    let mut c = sh(&w, script, true);
    c.env("D", token_dir(&w)).env("OUT", w.home.path().join("events"));
    let o = w.spawn_command(c, LOGIN).wait();
    approved_but_unsaved(&w, &o, "No space left on device");
}

#[test]
fn token_on_a_full_disk_never_mints_and_uses_the_stored_token_while_it_lasts() {
    if !namespaces("token_on_a_full_disk_never_mints") {
        return;
    }
    let w = World::new(auto_config());
    w.login();
    // Due for a refresh (within `token`'s margin: an hour's token, minted an hour ago) but still
    // valid for 100 s.
    w.edit_token(|m| {
        m.insert("expires_at".into(), (now_ms() + 100_000).into());
        m.insert("refreshed_at".into(), (now_ms() + 100_000 - 3_600_000).into());
    });
    let access = w.token_json()["access_token"].as_str().unwrap().to_string();
    std::fs::copy(w.token_path(), w.home.path().join("valid.json")).unwrap();
    w.edit_token(|m| {
        m.insert("expires_at".into(), (now_ms() - 1_000).into());
    });
    std::fs::copy(w.token_path(), w.home.path().join("expired.json")).unwrap();
    let script = r#"mkdir -p "$F" && mount -t tmpfs -o size=256k,mode=0700 tmpfs "$F" || exit 90
cp "$HOME/valid.json" "$F/token.json" && cp "$HOME/expired.json" "$F/expired.json" || exit 91
dd if=/dev/zero of="$F/.fill" bs=4k 2>/dev/null
for i in 1 2 3 4 5; do "$ZD" token --token-file "$F/token.json"; echo "rc=$?" >&2; done
"$ZD" token --token-file "$F/expired.json"; echo "rc=$?" >&2
"$ZD" refresh --token-file "$F/expired.json"; echo "rc=$?" >&2"#;
    let mut c = sh(&w, script, true);
    c.env("F", w.home.path().join("full"));
    let o = w.spawn_command(c, &["token (full disk)"]).wait();
    let rcs: Vec<&str> = o.stderr.lines().filter(|l| l.starts_with("rc=")).collect();
    assert_eq!(
        rcs,
        ["rc=0", "rc=0", "rc=0", "rc=0", "rc=0", "rc=9", "rc=9"],
        "{}",
        o.stderr
    );
    assert_eq!(
        o.stdout.lines().filter(|l| *l == access).count(),
        5,
        "the stored access token is printed while it is valid:\n{}",
        o.stdout
    );
    assert_eq!(
        o.stderr
            .matches("not refreshing, as the new token could not be saved")
            .count(),
        7,
        "{}",
        o.stderr
    );
    assert!(o.stderr.contains("No space left on device"), "{}", o.stderr);
    assert_eq!(w.sim.stats().refreshes, 0, "a token was minted on a full disk");
}

#[test]
fn special_files_are_refused_at_once_wherever_a_path_is_configured() {
    let w = World::new(auto_config());
    w.login();
    let fifo = w.home.path().join("fifo");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let fifo_s = fifo.display().to_string();

    // The token file: exit 9, whatever the command, and no hang on a FIFO.
    for (path, what) in [
        (fifo_s.as_str(), "a FIFO (named pipe)"),
        ("/dev/zero", "a character device"),
    ] {
        for cmd in ["token", "status"] {
            let o = w.run(&[cmd, "--token-file", path]);
            o.code(9);
            assert!(
                o.error_line().contains(&format!("it is {what}, not a regular file")),
                "{cmd} {path}: {}",
                o.stderr
            );
            assert!(o.elapsed < Duration::from_secs(10), "{cmd} {path} took {:?}", o.elapsed);
        }
    }
    // A directory at the token path, for a command that reads it.
    let o = w.run(&["token", "--token-file", w.home.path().to_str().unwrap()]);
    o.code(9);
    assert!(o.error_line().contains("it is a directory"), "{}", o.stderr);

    // The client secret file and the config file: exit 2.
    for (path, what) in [(fifo_s.as_str(), "a FIFO"), ("/dev/zero", "a character device")] {
        let o = w.run(&["status", "--client-secret-file", path]);
        o.code(2);
        assert!(
            o.error_line().contains("client secret file") && o.error_line().contains(what),
            "{}",
            o.stderr
        );
        let o = w.run(&["status", "--config", path]);
        o.code(2);
        assert!(
            o.error_line().contains("config file") && o.error_line().contains(what),
            "{}",
            o.stderr
        );
    }
    // Oversize: a 1 MiB config file and a 64 KiB secret file.
    let big = w.home.path().join("big.toml");
    std::fs::write(&big, vec![b'#'; 1 << 20]).unwrap();
    let o = w.run(&["status", "--config", big.to_str().unwrap()]);
    o.code(2);
    assert!(o.error_line().contains("more than the 65536 allowed"), "{}", o.stderr);
    let big = w.home.path().join("big-secret");
    std::fs::write(&big, vec![b'x'; 64 * 1024]).unwrap();
    let o = w.run(&["status", "--client-secret-file", big.to_str().unwrap()]);
    o.code(2);
    assert!(o.error_line().contains("more than the 4096 allowed"), "{}", o.stderr);
    // The token file's own cap: over it is corrupt (exit 6), and kept.
    let huge = w.home.path().join("huge.json");
    std::fs::write(&huge, vec![b' '; 300 * 1024]).unwrap();
    let o = w.run(&["token", "--token-file", huge.to_str().unwrap()]);
    o.code(6);
    assert!(o.error_line().contains("corrupt"), "{}", o.stderr);
}

#[test]
fn a_non_utf8_client_secret_is_reported_as_such() {
    use std::os::unix::ffi::OsStrExt;
    let w = World::new(auto_config());
    let mut c = w.command(LOGIN);
    c.env("ZOHO_CLIENT_SECRET", std::ffi::OsStr::from_bytes(b"abc\xff\xfe"));
    let o = w.spawn_command(c, LOGIN).wait();
    o.code(2);
    assert!(
        o.error_line()
            .contains("ZOHO_CLIENT_SECRET is set but is not valid UTF-8"),
        "{}",
        o.stderr
    );
    assert!(!o.stderr.contains("no client secret configured"), "{}", o.stderr);
    no_code_asked(&w, &o);
}

#[test]
fn a_tilde_in_configured_paths_is_home() {
    let mut w = World::new(auto_config());
    let home = w.home.path().to_path_buf();
    // The config file's token_file and client_secret_file, and --config itself.
    std::fs::write(home.join("secret"), format!("{SECRET}\n")).unwrap();
    std::fs::write(
        home.join("config.toml"),
        "token_file = \"~/custom/token.json\"\nclient_secret_file = \"~/secret\"\n",
    )
    .unwrap();
    w.set("ZOHO_CLIENT_SECRET", None);
    let o = w.run(&[
        "login",
        "--events",
        "json",
        "--display",
        "none",
        "--config",
        "~/config.toml",
    ]);
    o.code(0);
    assert!(home.join("custom/token.json").is_file(), "{}", o.stderr);
    assert!(!Path::new("~").exists() && !home.join("~").exists());
    // The environment (as a systemd Environment= line would give it).
    w.set("ZOHO_TOKEN_FILE", Some("~/custom/token.json"));
    w.set("ZOHO_CLIENT_SECRET", Some(SECRET));
    w.run(&["status"]).code(0);
    // ~user is refused, not taken literally.
    w.set("ZOHO_TOKEN_FILE", Some("~root/token.json"));
    let o = w.run(&["status"]);
    o.code(2);
    assert!(o.error_line().contains("~user"), "{}", o.stderr);
}

#[test]
fn ctrl_c_while_the_replaced_pairing_is_revoked_says_the_new_one_is_saved() {
    let mut w = World::new(auto_config());
    w.login();
    let old = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    // The revocation hangs long enough to be interrupted.
    w.set("ZOHO_DEVICE_HTTP_TIMEOUT_MS", Some("20000"));
    w.sim
        .inject(Fault::new("/oauth/v2/token/revoke", FaultKind::Delay { ms: 15_000 }, 1));
    let mut run = w.spawn(LOGIN);
    run.event("authorized", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(300));
    let killed = Command::new("kill")
        .args(["-INT", &run.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let o = run.wait();
    o.code(130);
    assert!(
        o.stderr.contains("the new pairing is saved in")
            && o.stderr.contains("may not have been revoked")
            && !o.stderr.contains("the token file is unchanged"),
        "{}",
        o.stderr
    );
    let new = w.token_json()["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(new, old, "the new pairing is in the file");
    assert!(
        w.sim.refresh_tokens(USER).contains(&old),
        "the old one was in fact not revoked"
    );
}
