//! Helpers shared by the test modules.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A fresh, empty directory for one test under cargo's per-test-binary temp directory.
pub fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

/// A stand-in for the board binary: the packaging code only copies it.
pub fn fake_binary(dir: &Path) -> PathBuf {
    let path = dir.join("zoho-device");
    fs::write(&path, "#!/bin/sh\necho zoho-device 0.0.0-fake\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Whether `program` is on PATH. When `ZOHO_DEVICE_REQUIRE_TOOLS=1` (CI), a missing tool
/// fails the test instead of skipping it.
pub fn have(program: &str) -> bool {
    let found = zoho_device_board::toolchain::which(program).is_some();
    if !found {
        assert!(
            std::env::var("ZOHO_DEVICE_REQUIRE_TOOLS").as_deref() != Ok("1"),
            "{program} is required (ZOHO_DEVICE_REQUIRE_TOOLS=1)"
        );
        eprintln!("skipped: {program} not installed");
    }
    found
}

/// Runs a command, asserts success, returns stdout.
pub fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
