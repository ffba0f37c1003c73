//! The agent's clock gate: no decision while the wall clock is implausible (before NTP on a
//! board without RTC), the server's `Date` cross-checked, and sleeps that notice a suspend.

use std::time::Duration;

use serde_json::json;
use tokio::time::Instant;
use zoho_device_core::Timestamp;

use super::Agent;
use crate::clock;
use crate::store::wall_now;

/// How often an implausible clock is looked at again.
pub(super) const CLOCK_RECHECK: Duration = Duration::from_secs(1);
/// How often the agent wakes while idle: the `STATUS=` line, the suspend check.
const STATUS_EVERY: Duration = Duration::from_secs(60);
/// A wall clock moving this much further than the monotonic one means suspend or a clock step.
const JUMP_S: i64 = 30;
/// A local clock further than this from the server's `Date` is reported.
const SKEW_REPORT_S: i64 = 120;
impl Agent {
    pub(super) fn clock_plausible(&mut self) -> bool {
        let now_s = clock::now_s();
        if clock::plausible(now_s) {
            if self.waiting_for_clock {
                self.waiting_for_clock = false;
                tracing::info!("the system clock is plausible now ({})", clock::display(now_s));
                self.ui.event("clock_ok", json!({ "clock_unix": now_s }));
            }
            return true;
        }
        if !self.waiting_for_clock {
            self.waiting_for_clock = true;
            let line = format!(
                "waiting for NTP: {}; no expiry decision until it is set",
                clock::behind(now_s)
            );
            tracing::warn!("{line}");
            self.notifier.status(&line);
            self.ui.event(
                "waiting_for_clock",
                json!({ "clock_unix": now_s, "build_unix": clock::FLOOR_S }),
            );
        }
        false
    }

    /// Sleeps until `at` (monotonic), waking every minute to refresh the `STATUS=` line and to
    /// compare the clocks: `false` when the wall clock moved more than [`JUMP_S`] further than
    /// the monotonic one (the board was suspended — the monotonic clock stops then — or the
    /// clock was set forward), so the token's expiry must be read again.
    pub(super) async fn sleep_until(&self, at: Timestamp) -> bool {
        loop {
            let now = self.clock.now();
            if at <= now {
                return true;
            }
            self.status();
            let (mono_before, wall_before) = (Instant::now(), wall_now().as_millis());
            tokio::time::sleep(at.saturating_duration_since(now).min(STATUS_EVERY)).await;
            let mono = mono_before.elapsed().as_millis() as i64;
            let wall = wall_now().as_millis() as i64 - wall_before as i64;
            if wall - mono > JUMP_S * 1000 {
                tracing::info!(
                    "the wall clock moved {} s more than the monotonic clock (suspend, or the clock was set); reading the token's expiry again",
                    (wall - mono) / 1000
                );
                return false;
            }
        }
    }

    /// The server's `Date` against the local clock.
    pub(super) fn cross_check(&mut self, date: Option<&str>) {
        let Some(server) = date.and_then(clock::parse_http_date) else {
            return;
        };
        let skew = clock::now_s() - server as i64;
        if skew.abs() > SKEW_REPORT_S {
            if self.reported_skew.is_none_or(|r| (r - skew).abs() > 60) {
                self.reported_skew = Some(skew);
                tracing::warn!(
                    "the local clock is {} s {} the server's; token expiries are kept on the monotonic clock",
                    skew.abs(),
                    if skew > 0 { "ahead of" } else { "behind" }
                );
                self.ui.event("clock_skew", json!({ "skew_s": skew }));
            }
        } else if self.reported_skew.take().is_some() {
            tracing::info!("the local clock agrees with the server's again");
        }
    }
}
