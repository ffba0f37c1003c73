//! The wall clock's plausibility, for boards without a real-time clock.
//!
//! A Pi boots at 1970 (or at the last `fake-hwclock` save) until NTP answers. Before then no
//! expiry or refresh decision may use the wall clock: the agent waits, `doctor` says so. "Not
//! plausible" means earlier than [`FLOOR_S`]; the servers' `Date` header is the cross-check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Unix seconds no correct clock reads less than: this release's date (2026-11-28). Raise it
/// with each release.
pub const FLOOR_S: u64 = 1_795_824_000;

/// Test hook: shifts the program's reading of the wall clock by this many seconds (or by the
/// number in the file at this absolute path, re-read on every reading), so tests can play a
/// board without a real-time clock. Not for users; removed from hooks' environments.
pub const OFFSET_ENV: &str = "ZOHO_DEVICE_TEST_CLOCK_OFFSET_S";

/// The wall clock in Unix seconds, as every plausibility decision reads it ([`OFFSET_ENV`]).
pub fn now_s() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    real.saturating_add(offset_s())
}

fn offset_s() -> i64 {
    let Ok(v) = std::env::var(OFFSET_ENV) else {
        return 0;
    };
    let text = if v.starts_with('/') {
        std::fs::read_to_string(&v).unwrap_or_default()
    } else {
        v
    };
    text.trim().parse().unwrap_or(0)
}

/// Whether a clock reading `now_s` (Unix seconds) can be trusted for expiry decisions.
pub fn plausible(now_s: i64) -> bool {
    now_s >= FLOOR_S as i64
}

/// "the system clock reads …, before this release (…)": the one wording of an implausible
/// clock, for the CLI's error, the agent's status and `doctor`.
pub fn behind(now_s: i64) -> String {
    format!(
        "the system clock reads {}, before this release ({})",
        display(now_s),
        display(FLOOR_S as i64)
    )
}

/// Refuses wall-clock decisions on a clock that reads earlier than this release (a board
/// without a real-time clock, before NTP): expiry cannot be judged and TLS would fail anyway.
pub fn require_plausible() -> Result<(), crate::exit::AppError> {
    let now = now_s();
    if plausible(now) {
        return Ok(());
    }
    Err(crate::exit::AppError::new(
        crate::exit::Exit::Unavailable,
        format!("{}: token expiry cannot be judged", behind(now)),
    )
    .hint("the board has no real-time clock and NTP has not set the time yet: wait for time sync (`timedatectl status`), then try again"))
}

/// An HTTP `Date` header (IMF-fixdate and the two obsolete forms) as Unix seconds.
pub fn parse_http_date(s: &str) -> Option<u64> {
    let t = httpdate::parse_http_date(s.trim()).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// Unix seconds as an HTTP date (`Sat, 28 Nov 2026 00:00:00 GMT`), for messages; readings
/// outside 1970..=9999 are shown as the nearest end.
pub fn display(unix_s: i64) -> String {
    const LAST_S: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z, httpdate's limit
    let s = unix_s.clamp(0, LAST_S) as u64;
    httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sat, 28 Nov 2026 19:11:07 GMT"), Some(1_795_893_067));
        // RFC 850 and asctime, which RFC 9110 says recipients must accept.
        assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784_111_777));
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784_111_777));
        assert_eq!(parse_http_date("garbage"), None);
    }

    #[test]
    fn floor_and_display() {
        assert_eq!(display(FLOOR_S as i64), "Sat, 28 Nov 2026 00:00:00 GMT");
        assert_eq!(display(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(display(-5), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert!(!plausible(0));
        assert!(plausible(FLOOR_S as i64));
    }
}
