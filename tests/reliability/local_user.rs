//! A second local user against the token store: links planted where the program writes, and
//! token directories that are not the running user's alone.
//!
//! The other user is simulated by planting what they would plant: symbolic links at the temp
//! file names the program used to predict (`.token.json.tmp.PID`: the script plants them for
//! its own PID, then `exec`s the binary, which keeps that PID) and at the lock file. A real
//! second uid is needed only to own a directory: that test `chown`s one to `nobody` (65534)
//! and runs only as root (as CI does), skipping otherwise.

use std::os::unix::fs::PermissionsExt;

use crate::harness::*;
use crate::storage::{is_root, sh};

/// The other user's file, which links point at.
const VICTIM_TEXT: &[u8] = b"the other user's file\n";

fn token_dir(w: &World) -> std::path::PathBuf {
    let d = w.token_path().parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    d
}

#[test]
fn planted_temp_file_links_do_not_redirect_the_token() {
    let w = World::new(auto_config());
    let dir = token_dir(&w);
    let victim = w.home.path().join("victim");
    std::fs::write(&victim, VICTIM_TEXT).unwrap();
    // A link at the temp name the program used to write for this PID.
    let plant = r#"ln -s "$V" "$D/.token.json.tmp.$$" && exec "$ZD" "$@""#;
    for args in [LOGIN, &["refresh"][..]] {
        let mut c = sh(&w, plant, false);
        c.env("V", &victim).env("D", &dir).arg("sh").args(args);
        let o = w.spawn_command(c, args).wait();
        o.code(0);
        assert_eq!(
            std::fs::read(&victim).unwrap(),
            VICTIM_TEXT,
            "{args:?} wrote the token through a planted link"
        );
        let meta = std::fs::symlink_metadata(w.token_path()).unwrap();
        assert!(meta.is_file(), "{args:?}: the token file is a {:?}", meta.file_type());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        w.run(&["status"]).code(0);
        // The planted links are left alone (they are not the program's), nothing else is left.
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let link = entry.file_type().unwrap().is_symlink();
            assert!(
                ["token.json", "token.json.lock"].contains(&name.as_str()) || (link && name.contains(".tmp.")),
                "{args:?} left {name} behind"
            );
            if link {
                std::fs::remove_file(entry.path()).unwrap();
            }
        }
    }
}

#[test]
fn a_planted_lock_link_is_not_followed() {
    let w = World::new(auto_config());
    let dir = token_dir(&w);
    let target = w.home.path().join("created-through-the-link");
    std::os::unix::fs::symlink(&target, dir.join("token.json.lock")).unwrap();
    let o = w.run(LOGIN);
    o.code(9);
    assert!(
        o.error_line().contains("is a symbolic link, which is not followed"),
        "{}",
        o.stderr
    );
    assert!(!target.exists(), "the lock was created through the link");
    assert_eq!(w.sim.stats().codes_issued, 0, "a code was asked for");
}

#[test]
fn a_token_file_link_is_not_read() {
    let w = World::new(auto_config());
    w.login();
    let elsewhere = w.home.path().join("elsewhere.json");
    std::fs::rename(w.token_path(), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, w.token_path()).unwrap();
    let o = w.run(&["token"]);
    o.code(9);
    assert!(o.error_line().contains("is a symbolic link"), "{}", o.stderr);
    assert!(o.stdout.is_empty());
}

#[test]
fn a_token_directory_others_can_write_is_refused_with_the_fix() {
    let w = World::new(auto_config());
    w.login();
    let dir = w.token_path().parent().unwrap().to_path_buf();
    for mode in [0o777, 0o770, 0o1777] {
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = w.token_bytes();
        let o = w.run(&["refresh"]);
        o.code(2);
        assert!(o.error_line().contains(&format!("{mode:04o}")), "{}", o.stderr);
        assert!(
            o.stderr.contains(&format!("chmod go-w {}", dir.display())),
            "{}",
            o.stderr
        );
        assert_eq!(w.sim.stats().refreshes, 0, "mode {mode:o}: a token was minted");
        assert_eq!(w.token_bytes(), before);
        // Due for a refresh (an hour's token in its last 100 s) but valid: `token` prints it
        // with a warning, minting nothing.
        w.edit_token(|m| {
            m.insert("expires_at".into(), (now_ms() + 100_000).into());
            m.insert("refreshed_at".into(), (now_ms() + 100_000 - 3_600_000).into());
        });
        let o = w.run(&["token"]);
        o.code(0)
            .stderr_has(&["not refreshing, as the new token could not be saved"]);
        assert_eq!(o.stdout.trim(), w.token_json()["access_token"].as_str().unwrap());
        assert_eq!(w.sim.stats().refreshes, 0);
    }
    // `doctor` says so (it was a warning), and no code is asked for by a login.
    let o = w.run(&["doctor"]);
    o.code(2);
    assert!(o.stdout.contains("refusing to write in"), "{}", o.stdout);
    let codes = w.sim.stats().codes_issued; // doctor's probes ask for codes too
    let o = w.run(LOGIN);
    o.code(2);
    assert_eq!(w.sim.stats().codes_issued, codes, "login asked for a code");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    w.run(&["refresh"]).code(0);
}

#[test]
fn a_token_directory_of_another_user_is_refused() {
    if !is_root() {
        eprintln!("a_token_directory_of_another_user_is_refused: skipped: chown needs root");
        return;
    }
    let w = World::new(auto_config());
    w.login();
    let dir = w.token_path().parent().unwrap().to_path_buf();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let before = w.token_bytes();
    let o = w.run(&["refresh"]);
    o.code(2);
    assert!(o.error_line().contains("it belongs to another user"), "{}", o.stderr);
    assert!(o.stderr.contains("uid 65534"), "{}", o.stderr);
    assert!(o.stderr.contains("sudo -u"), "{}", o.stderr);
    assert_eq!(w.sim.stats().refreshes, 0);
    assert_eq!(w.token_bytes(), before);
    let o = w.run(LOGIN);
    o.code(2);
    assert_eq!(w.sim.stats().codes_issued, 1, "only the first login's code");
    // `doctor` (root checking a service's token) warns: the owner may refresh there.
    let o = w.run(&["doctor"]);
    assert!(o.stdout.contains("it belongs to another user"), "{}", o.stdout);
    assert!(o.stdout.contains("[warn] token file"), "{}", o.stdout);
    // Reading is not writing: status still works, and so does root's `logout` of a service's
    // token (the lock file exists; the delete follows no link).
    w.run(&["status"]).code(0);
    w.run(&["logout"]).code(0);
    assert!(!w.token_path().exists());
    assert!(w.sim.refresh_tokens(USER).is_empty(), "revoked");
    std::os::unix::fs::chown(&dir, Some(0), Some(0)).unwrap();
    w.login();
}
