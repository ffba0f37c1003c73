//! Headless Chromium for the browser tests (the kiosk pairing page in crates/display, the
//! dashboard behind the gateway here): one launcher, one skip rule. Included by path where
//! needed (`#[path = ".../tests/common/chromium.rs"]`), so it uses nothing but std.

use std::path::Path;
use std::process::{Command, Stdio};

/// Debian's Chromium (`apt-get install chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// Whether `test` must skip: Chromium is missing. Where CI sets `ZOHO_DEVICE_REQUIRE_CHROMIUM`,
/// a missing browser fails instead.
#[track_caller]
pub fn chromium_missing(test: &str) -> bool {
    if Path::new(CHROMIUM).exists() {
        return false;
    }
    assert!(
        std::env::var_os("ZOHO_DEVICE_REQUIRE_CHROMIUM").is_none(),
        "{CHROMIUM} missing but ZOHO_DEVICE_REQUIRE_CHROMIUM is set (apt-get install -y chromium)"
    );
    println!("SKIPPED {test}: {CHROMIUM} missing (apt-get install -y chromium)");
    true
}

/// Headless Chromium on `url` with its own profile in `profile`, talking to nothing but the
/// page (no sync, updates or background traffic), `extra` flags before the URL.
pub fn chromium(profile: &Path, extra: &[String], url: &str) -> Command {
    let mut c = Command::new(CHROMIUM);
    c.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--disable-dev-shm-usage",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(extra)
    .arg(url)
    .stdin(Stdio::null());
    c
}
