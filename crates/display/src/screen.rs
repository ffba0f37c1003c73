//! The screen model: what a pairing display shows, filled by the caller from the flow's events.

use alloc::string::String;
use core::fmt;

/// One state of the pairing screen.
///
/// The caller builds it from the device flow's events (this crate does not depend on the
/// protocol crate) and hands it to an output on every change, and about once a second while
/// [`Screen::Waiting`] so the countdown moves.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Screen {
    /// A user code is out: show the code, the URL and a QR, and the time left.
    Waiting {
        /// The code the person types (shown as text on every output).
        user_code: String,
        /// The short URL a person types by hand.
        verification_url: String,
        /// The URL that already carries the code, when the server sent one; the QR encodes
        /// it when present.
        verification_uri_complete: Option<String>,
        /// Seconds until the code expires.
        seconds_left: u64,
        /// The code's whole lifetime in seconds (for progress indicators).
        total_seconds: u64,
        /// A caution to show with the code, e.g. that the verification URL is not on the
        /// accounts server's domain (`None` for the usual screen). Every output shows it as a
        /// marked line, except that drawn outputs too small for the bar above a scannable QR
        /// (panels and small SVG/PNG files) leave it out (see [`draw_screen`](crate::draw_screen)).
        warning: Option<String>,
    },
    /// The code expired; a new one is being requested.
    CodeExpired,
    /// Pairing finished; `detail` says where, e.g. `"paired (eu)"`.
    Paired {
        /// A short line shown under the headline.
        detail: String,
    },
    /// The device is not paired and is not currently showing a code.
    NeedsPairing {
        /// Why, in a few words.
        reason: String,
    },
    /// Something went wrong that the person should see.
    Error {
        /// The message, in a few words.
        message: String,
    },
}

impl Screen {
    /// The text the QR encodes: `verification_uri_complete` when present, else
    /// `verification_url`; `None` for screens without a QR.
    pub fn qr_payload(&self) -> Option<&str> {
        match self {
            Screen::Waiting {
                verification_url,
                verification_uri_complete,
                ..
            } => Some(
                verification_uri_complete
                    .as_deref()
                    .filter(|s| !s.is_empty())
                    .unwrap_or(verification_url),
            ),
            _ => None,
        }
    }

    /// The warning of a `Waiting` screen, when it has a non-empty one.
    pub fn warning(&self) -> Option<&str> {
        match self {
            Screen::Waiting { warning, .. } => warning.as_deref().filter(|w| !w.trim().is_empty()),
            _ => None,
        }
    }

    /// A short machine name of the state: `waiting`, `code_expired`, `paired`,
    /// `needs_pairing`, `error`.
    pub fn kind(&self) -> &'static str {
        match self {
            Screen::Waiting { .. } => "waiting",
            Screen::CodeExpired => "code_expired",
            Screen::Paired { .. } => "paired",
            Screen::NeedsPairing { .. } => "needs_pairing",
            Screen::Error { .. } => "error",
        }
    }

    /// The big line of a screen without a code (`Waiting` returns `"Pair this device"`).
    pub fn headline(&self) -> &'static str {
        match self {
            Screen::Waiting { .. } => "Pair this device",
            Screen::CodeExpired => "Code expired",
            Screen::Paired { .. } => "Paired",
            Screen::NeedsPairing { .. } => "Needs pairing",
            Screen::Error { .. } => "Error",
        }
    }

    /// The smaller line under the headline (empty for `Waiting`).
    pub fn message(&self) -> &str {
        match self {
            Screen::Waiting { .. } => "",
            Screen::CodeExpired => "getting a new one...",
            Screen::Paired { detail } => detail,
            Screen::NeedsPairing { reason } => reason,
            Screen::Error { message } => message,
        }
    }

    /// True when `self` and `other` show the same thing apart from the countdown; outputs use
    /// it to redraw only the time left (or nothing) on repeated calls.
    pub fn same_content(&self, other: &Screen) -> bool {
        match (self, other) {
            (
                Screen::Waiting {
                    user_code: a,
                    verification_url: b,
                    verification_uri_complete: c,
                    total_seconds: d,
                    warning: e,
                    ..
                },
                Screen::Waiting {
                    user_code: a2,
                    verification_url: b2,
                    verification_uri_complete: c2,
                    total_seconds: d2,
                    warning: e2,
                    ..
                },
            ) => a == a2 && b == b2 && c == c2 && d == d2 && e == e2,
            _ => self == other,
        }
    }

    /// Seconds left for `Waiting`, `None` otherwise.
    pub fn seconds_left(&self) -> Option<u64> {
        match self {
            Screen::Waiting { seconds_left, .. } => Some(*seconds_left),
            _ => None,
        }
    }
}

/// Formats seconds as `m:ss` (or `h:mm:ss` from an hour up), e.g. `4:05`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeLeft(pub u64);

impl fmt::Display for TimeLeft {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        if s >= 3600 {
            write!(f, "{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60)
        } else {
            write!(f, "{}:{:02}", s / 60, s % 60)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn payload_prefers_complete_uri() {
        let mut s = Screen::Waiting {
            user_code: "ABCD".into(),
            verification_url: "https://x/d".into(),
            verification_uri_complete: Some("https://x/d?c=ABCD".into()),
            seconds_left: 5,
            total_seconds: 10,
            warning: None,
        };
        assert_eq!(s.qr_payload(), Some("https://x/d?c=ABCD"));
        if let Screen::Waiting {
            verification_uri_complete,
            ..
        } = &mut s
        {
            *verification_uri_complete = None;
        }
        assert_eq!(s.qr_payload(), Some("https://x/d"));
        assert_eq!(Screen::CodeExpired.qr_payload(), None);
        assert_eq!(s.warning(), None);
        let mut warned = s.clone();
        if let Screen::Waiting { warning, .. } = &mut warned {
            *warning = Some("check the URL".into());
        }
        assert_eq!(warned.warning(), Some("check the URL"));
        assert!(!s.same_content(&warned), "a new warning is new content");
        if let Screen::Waiting { warning, .. } = &mut warned {
            *warning = Some("  ".into());
        }
        assert_eq!(warned.warning(), None, "blank warnings are not shown");
    }

    #[test]
    fn time_left_format() {
        assert_eq!(TimeLeft(0).to_string(), "0:00");
        assert_eq!(TimeLeft(299).to_string(), "4:59");
        assert_eq!(TimeLeft(3723).to_string(), "1:02:03");
    }
}
