//! Time without a clock: the caller's millisecond timestamps.
//!
//! The core never reads a clock. Every call takes `now` as a [`Timestamp`]: milliseconds since
//! an epoch the caller chooses. Drivers pass a **monotonic** clock (so a board that sets its
//! wall clock from NTP mid-flow does not see its code "expire" instantly) and convert absolute
//! expiries to wall-clock time only when persisting, with [`Timestamp::rebase`].

use core::time::Duration;

/// A point in time, in milliseconds since an epoch chosen by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// A timestamp `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + d`, saturating at the far future.
    pub fn saturating_add(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_add(duration_ms(d)))
    }

    /// `self - d`, saturating at the epoch.
    pub fn saturating_sub(self, d: Duration) -> Self {
        Timestamp(self.0.saturating_sub(duration_ms(d)))
    }

    /// How long after `earlier` this is; zero when `earlier` is later.
    pub fn saturating_duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Moves `self` from one clock to another: `from` and `to` are the same instant read on
    /// both clocks (e.g. monotonic and Unix time). Used to persist a monotonic expiry.
    pub fn rebase(self, from: Timestamp, to: Timestamp) -> Timestamp {
        if self.0 >= from.0 {
            Timestamp(to.0.saturating_add(self.0 - from.0))
        } else {
            Timestamp(to.0.saturating_sub(from.0 - self.0))
        }
    }
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp::from_millis(1_000);
        assert_eq!(t.saturating_add(Duration::from_secs(2)).as_millis(), 3_000);
        assert_eq!(t.saturating_sub(Duration::from_secs(2)), Timestamp::ZERO);
        assert_eq!(
            t.saturating_duration_since(Timestamp::from_millis(4_000)),
            Duration::ZERO
        );
        assert_eq!(
            Timestamp::from_millis(u64::MAX)
                .saturating_add(Duration::MAX)
                .as_millis(),
            u64::MAX
        );
    }

    #[test]
    fn rebase_moves_between_clocks() {
        let mono_now = Timestamp::from_millis(5_000);
        let wall_now = Timestamp::from_millis(1_700_000_000_000);
        let expiry = Timestamp::from_millis(3_605_000);
        assert_eq!(expiry.rebase(mono_now, wall_now).as_millis(), 1_700_003_600_000);
        let past = Timestamp::from_millis(4_000);
        assert_eq!(past.rebase(mono_now, wall_now).as_millis(), 1_699_999_999_000);
    }
}
