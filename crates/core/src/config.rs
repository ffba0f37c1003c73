//! Policy: everything a deployment may tune, kept out of the mechanism.

use alloc::string::String;
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::{ClientAuth, Profile};

/// What to do when a code lapses unattended (kiosk mode).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KioskPolicy {
    /// After this many codes lapsed in a row, pause before issuing the next one.
    pub pause_after: u32,
    /// The first pause; each further unattended code doubles it, up to `max_pause`.
    pub pause: Duration,
    /// The longest pause between codes.
    pub max_pause: Duration,
}

impl Default for KioskPolicy {
    /// Three codes back to back (15 minutes of Zoho codes), then pauses of 1, 2, 4… up to 15
    /// minutes, so an unattended kiosk does not mint a code every five minutes forever.
    fn default() -> Self {
        KioskPolicy {
            pause_after: 3,
            pause: Duration::from_secs(60),
            max_pause: Duration::from_secs(900),
        }
    }
}

/// Flow policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowConfig {
    /// Which dialect the server speaks.
    pub profile: Profile,
    /// Scopes to ask for (joined with `,` for Zoho, ` ` for RFC 8628).
    pub scopes: Vec<String>,
    /// Ask for a refresh token (`access_type=offline`; RFC: the `offline_access` scope).
    pub offline_access: bool,
    /// Zoho's `prompt=consent`: a refresh token on every pairing, not only the first.
    pub prompt_consent: bool,
    /// Never poll more often than this, whatever the server says (protects against `interval: 0`).
    pub min_interval: Duration,
    /// Added to the interval on every `slow_down` (RFC 8628 §3.5: 5 s).
    pub slow_down_step: Duration,
    /// First delay after a transient failure.
    pub backoff_base: Duration,
    /// The longest delay after transient failures.
    pub backoff_cap: Duration,
    /// How many times the device-code request is tried before the flow fails with
    /// [`crate::Error::Unavailable`]. Kiosk mode retries forever. Polls and `serverinfo` (which
    /// hold a live device code) are retried until the code lapses instead.
    pub max_attempts: u32,
    /// `Some`: re-issue lapsed codes instead of failing with [`crate::Error::CodeExpired`].
    pub kiosk: Option<KioskPolicy>,
    /// Seed for backoff jitter (drivers pass something random; tests pass a constant).
    pub jitter_seed: u64,
    /// How a confidential client authenticates to a standard server (Zoho: always the body).
    pub client_auth: ClientAuth,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            profile: Profile::Zoho,
            scopes: alloc::vec![String::from("ZohoBooks.settings.READ")],
            offline_access: true,
            prompt_consent: true,
            min_interval: Duration::from_secs(1),
            slow_down_step: Duration::from_secs(5),
            backoff_base: Duration::from_secs(1),
            backoff_cap: Duration::from_secs(60),
            max_attempts: 6,
            kiosk: None,
            jitter_seed: 0x9e37_79b9_7f4a_7c15,
            client_auth: ClientAuth::Auto,
        }
    }
}

/// Capped exponential backoff with "equal jitter": the n-th delay is uniformly in
/// `[d/2, d]` where `d = min(cap, base * 2^(n-1))`. Deterministic for a given seed.
#[derive(Clone, Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    state: u64,
}

impl Backoff {
    /// A backoff with this base, cap and jitter seed.
    pub fn new(base: Duration, cap: Duration, seed: u64) -> Backoff {
        Backoff {
            base,
            cap,
            state: seed | 1,
        }
    }

    /// The first delay and the longest.
    pub fn bounds(&self) -> (Duration, Duration) {
        (self.base, self.cap)
    }

    /// A seed for another random stream, drawn from this one.
    pub fn fork(&mut self) -> u64 {
        self.next()
    }

    /// The delay before attempt `failures + 1`, after `failures` ≥ 1 failures in a row.
    pub fn delay(&mut self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(30);
        let full = self.base.saturating_mul(1u32 << exp).min(self.cap);
        let half = full / 2;
        let ms = crate::time::duration_ms(half);
        let jitter = if ms == 0 { 0 } else { self.next() % (ms + 1) };
        half + Duration::from_millis(jitter)
    }

    /// The delay after `failures` failures in a row for another base and cap, drawing on this
    /// backoff's random stream.
    pub fn delay_between(&mut self, base: Duration, cap: Duration, failures: u32) -> Duration {
        let mut other = Backoff {
            base,
            cap,
            state: self.state,
        };
        let d = other.delay(failures);
        self.state = other.state;
        d
    }

    /// A random duration in `[0, max]` (used for refresh jitter).
    pub fn jitter(&mut self, max: Duration) -> Duration {
        let ms = crate::time::duration_ms(max);
        if ms == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(self.next() % (ms + 1))
        }
    }

    /// xorshift64*: small, fast, good enough for spreading retries.
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// What a driver does after one attempt of a one-shot exchange (refresh, revoke).
#[derive(Debug)]
#[must_use]
pub enum Next<R> {
    /// Stop with this result.
    Return(Result<R, crate::Error>),
    /// Sleep this long, then send the same request again.
    Sleep(core::time::Duration),
}

/// The retry decision for one-shot exchanges, sans-IO: transient failures (network, 5xx,
/// non-JSON pages) are retried up to `attempts` times with capped, jittered backoff; anything
/// else returns at once. Zoho's throttle ([`crate::Error::Throttled`]) is transient too, but
/// returns at once: its window is 10 minutes, so a retry seconds later only repeats it — the
/// caller (a person, the agent's long backoff) decides when to come back. Both drivers loop
/// over it.
#[derive(Debug)]
pub struct Retry<'a> {
    attempts: u32,
    tried: u32,
    backoff: &'a mut Backoff,
}

impl<'a> Retry<'a> {
    /// At most `attempts` tries (at least one).
    pub fn new(attempts: u32, backoff: &'a mut Backoff) -> Retry<'a> {
        Retry {
            attempts: attempts.max(1),
            tried: 0,
            backoff,
        }
    }

    /// Decides after an attempt whose reply was read into `result`.
    pub fn after<R>(&mut self, result: Result<R, crate::Error>) -> Next<R> {
        self.tried += 1;
        match result {
            Err(crate::Error::Unavailable { last, .. }) if self.tried >= self.attempts => {
                Next::Return(Err(crate::Error::Unavailable {
                    attempts: self.tried,
                    last,
                }))
            }
            // Only `Unavailable` is retried here: the throttle, transient too, returns at once.
            Err(crate::Error::Unavailable { .. }) if self.tried < self.attempts => {
                Next::Sleep(self.backoff.delay(self.tried))
            }
            other => Next::Return(other),
        }
    }

    /// Decides after an attempt that failed in transport.
    pub fn transport_failed<R>(&mut self, e: crate::TransportError) -> Next<R> {
        self.after(Err(e.into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_retries_only_transient_failures_and_counts_attempts() {
        use crate::{Error, Transient, TransportError};
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let mut r = Retry::new(3, &mut b);
        assert!(matches!(
            r.transport_failed::<()>(TransportError::Reset),
            Next::Sleep(_)
        ));
        assert!(matches!(
            r.transport_failed::<()>(TransportError::Timeout),
            Next::Sleep(_)
        ));
        match r.transport_failed::<()>(TransportError::Dns) {
            Next::Return(Err(Error::Unavailable {
                attempts: 3,
                last: Transient::Transport(TransportError::Dns),
            })) => {}
            other => panic!("{other:?}"),
        }
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let mut r = Retry::new(3, &mut b);
        assert!(
            matches!(
                r.after::<()>(Err(Error::Throttled)),
                Next::Return(Err(Error::Throttled))
            ),
            "the 10-minute throttle is not retried within seconds"
        );
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 1);
        let mut r = Retry::new(3, &mut b);
        let permanent = Error::InvalidGrant {
            code: "invalid_code".into(),
        };
        assert!(matches!(
            r.after::<()>(Err(permanent)),
            Next::Return(Err(Error::InvalidGrant { .. }))
        ));
        assert!(matches!(r.after(Ok(7)), Next::Return(Ok(7))));
    }

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42);
        for n in 1..40 {
            let full = Duration::from_secs(1u64 << (n - 1).min(30)).min(Duration::from_secs(60));
            let d = b.delay(n);
            assert!(d >= full / 2 && d <= full, "{n}: {d:?}");
        }
        let mut a = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 7);
        let mut c = Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 8);
        let xs: Vec<_> = (0..8).map(|_| a.delay(6)).collect();
        let ys: Vec<_> = (0..8).map(|_| c.delay(6)).collect();
        assert_ne!(xs, ys, "different seeds spread differently");
    }
}
