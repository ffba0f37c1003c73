//! What the agent reports: a refreshed token saved to the file, the JSON events, the log,
//! and systemd's `STATUS=` line (and the state file beside the token that doctor reads).

use std::time::Duration;

use zoho_device_core::keeper;
use zoho_device_core::{Error, Event, KeepStep, PairingNeed, Timestamp, Tokens};

use super::Agent;
use crate::store::{Pairing, wall_now};

impl Agent {
    /// What the keeper reported: a new token (saved), a failure, or pairing needed.
    pub(super) fn report(&mut self, step: KeepStep) {
        let now = self.clock.now();
        match step {
            KeepStep::Refreshed(tokens) => self.save(tokens, now),
            KeepStep::Failed { error, retry_at } => self.failed(&error, retry_at.saturating_duration_since(now), now),
            KeepStep::GaveUp(error) => self.failed(&error, Duration::ZERO, now),
            KeepStep::NeedsPairing(need) => {
                if let PairingNeed::RefreshTokenRejected(e) = &need {
                    tracing::warn!("{e}");
                }
                self.needs_pairing(need.code(), keeper::pairing_message(&need));
            }
            KeepStep::Wait(_) | KeepStep::Check | KeepStep::Send(_) => {}
        }
    }

    pub(super) fn save(&mut self, tokens: Tokens, now: Timestamp) {
        let Some(stored) = &self.stored else { return };
        let wall = wall_now();
        let remaining = tokens.expires_in(now);
        let mut on_wall = tokens;
        on_wall.expires_at = on_wall.expires_at.rebase(now, wall);
        let fresh = stored.with_tokens(on_wall, wall);
        self.last_error = None;
        if let Err(e) = self.ctx.store.save(&fresh) {
            // Keep the new token in memory; other programs refresh for themselves.
            tracing::error!("{}", e.message);
            self.last_error = Some(format!("cannot write the token file: {}", e.message));
        }
        self.stored = Some(fresh);
        let next_in = self
            .keeper
            .next_refresh()
            .map_or(Duration::ZERO, |t| t.saturating_duration_since(now));
        tracing::info!(
            expires_in_s = remaining.as_secs(),
            next_refresh_in_s = next_in.as_secs(),
            "access token refreshed"
        );
        self.ui.publish(&Event::Refreshed {
            expires_in: remaining,
            next_refresh_in: next_in,
        });
        self.status();
    }

    pub(super) fn failed(&mut self, e: &Error, delay: Duration, now: Timestamp) {
        let valid = self.keeper.tokens().map_or(Duration::ZERO, |t| t.expires_in(now));
        tracing::warn!(
            "refresh failed ({e}); retrying in {:.1} s; the current access token is valid for {} s",
            delay.as_secs_f64(),
            valid.as_secs()
        );
        // Status (and its state file) first: whoever reacts to the event reads it.
        self.last_error = Some(format!("refresh failed ({}), retrying in {}", e.code(), human(delay)));
        self.status();
        self.ui.publish(&Event::RefreshFailed {
            error: e.clone(),
            retry_in: delay,
            token_valid: valid,
        });
    }

    /// `STATUS=` for the paired state.
    pub(super) fn status(&self) {
        if !self.notifier.wants_status() {
            return;
        }
        let (Some(stored), Some(tokens)) = (&self.stored, self.keeper.tokens()) else {
            return;
        };
        let left = tokens.expires_in(self.clock.now());
        let mut line = if left.is_zero() {
            format!("{}, access token expired", paired_status(stored))
        } else {
            format!("{}, token valid for {}", paired_status(stored), human(left))
        };
        if let Some(err) = &self.last_error {
            line.push_str("; ");
            line.push_str(err);
        }
        self.notifier.status(&line);
    }
}

/// The start of the agent's paired status line: "paired (eu)".
pub(super) fn paired_status(stored: &Pairing) -> String {
    match &stored.tokens().location {
        Some(l) => format!("paired ({l})"),
        None => "paired".into(),
    }
}

/// "52 min", "42 s", "3 h 5 min".
pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{} h {} min", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{} min", s / 60)
    } else if s >= 1 {
        format!("{s} s")
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_secs(52 * 60 + 10)), "52 min");
        assert_eq!(human(Duration::from_secs(42)), "42 s");
    }
}
