//! What happened while pairing and keeping a token, as typed events.
//!
//! The machines report steps ([`Step`], [`KeepStep`]); a driver turns the ones a person or a
//! program cares about into [`Event`]s and hands each to its subscribers — displays, a JSON
//! event stream, a hook, a service manager's status line. None of them needs to pose as
//! another to learn what happened, and every one hears the same thing.
//!
//! [`KeepStep`]: crate::keeper::KeepStep

use alloc::string::String;
use core::time::Duration;

use crate::dc::ServerUrl;
use crate::error::{Error, Transient};
use crate::flow::{Notice, Step, UserPrompt};
use crate::token::Tokens;

/// One thing that happened to a pairing.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A code to show until `prompt.expires_at` (on the driver's clock).
    CodeIssued(UserPrompt),
    /// The code is still out, `left` before it expires (drivers say so about once a second,
    /// for countdowns).
    CodeWaiting {
        /// The code shown.
        user_code: String,
        /// How long it stays valid.
        left: Duration,
    },
    /// The user has not approved yet (one poll).
    Pending,
    /// The server asked to poll more slowly: every `interval` now.
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// The user's account lives in another data centre; polling moved there.
    OtherDc {
        /// Zoho's location code.
        location: String,
        /// The user's accounts server.
        accounts_url: String,
    },
    /// A transient failure; the next attempt comes after `delay`.
    Retrying {
        /// What failed.
        reason: Transient,
        /// How long until the next attempt.
        delay: Duration,
    },
    /// The code expired. `renew_in`: a new one comes after this (kiosk mode); `None`: the
    /// pairing ends here.
    CodeExpired {
        /// How long until the next code, when one follows.
        renew_in: Option<Duration>,
    },
    /// The user denied the request.
    Denied,
    /// Pairing failed for good (`kind`: a stable name of what went wrong).
    Failed {
        /// A stable, machine-readable name of the failure.
        kind: &'static str,
        /// What went wrong, for people (no secrets).
        message: String,
    },
    /// Paired.
    Paired {
        /// Zoho: the user's data centre, when known.
        location: Option<String>,
        /// Zoho: the user's accounts server.
        accounts_url: Option<ServerUrl>,
        /// Where API calls go.
        api_domain: Option<ServerUrl>,
        /// How long the first access token lives.
        expires_in: Duration,
    },
    /// A new access token was minted (and saved).
    Refreshed {
        /// How long it lives.
        expires_in: Duration,
        /// When the next refresh is planned, from now.
        next_refresh_in: Duration,
    },
    /// A refresh failed; another attempt comes after `retry_in`.
    RefreshFailed {
        /// What went wrong.
        error: Error,
        /// How long until the next attempt.
        retry_in: Duration,
        /// How long the current access token stays valid.
        token_valid: Duration,
    },
    /// The device must be paired (again).
    NeedsPairing {
        /// A stable name of why ([`crate::keeper::PairingNeed::code`] and the drivers' own).
        reason: &'static str,
        /// Why, for people.
        message: String,
    },
}

impl Event {
    /// The event a flow step carries, if any (`Send`, `Wait` and `Done` carry none: a driver
    /// reports a finished pairing as [`Event::paired`], once it is saved).
    pub fn from_step(step: &Step) -> Option<Event> {
        match step {
            Step::Prompt(p) => Some(Event::CodeIssued(p.clone())),
            Step::Notice(n) => Some(Event::from_notice(n)),
            _ => None,
        }
    }

    /// The event a flow notice carries (every notice carries one).
    pub fn from_notice(notice: &Notice) -> Event {
        match notice {
            Notice::Pending => Event::Pending,
            Notice::SlowDown { interval } => Event::SlowDown { interval: *interval },
            Notice::OtherDc { location, accounts_url } => Event::OtherDc {
                location: location.clone(),
                accounts_url: accounts_url.clone(),
            },
            Notice::Retry { reason, delay } => Event::Retrying {
                reason: reason.clone(),
                delay: *delay,
            },
            Notice::CodeExpired { pause } => Event::CodeExpired { renew_in: Some(*pause) },
        }
    }

    /// A finished pairing: its tokens, the first living `expires_in`.
    pub fn paired(tokens: &Tokens, expires_in: Duration) -> Event {
        Event::Paired {
            location: tokens.location.clone(),
            accounts_url: tokens.accounts_url.clone(),
            api_domain: tokens.api_domain.clone(),
            expires_in,
        }
    }
}

/// Hears events. Drivers hand each event to every subscriber, in order.
pub trait Subscriber {
    /// Called once per event.
    fn on_event(&mut self, event: &Event);
}

impl<S: Subscriber + ?Sized> Subscriber for alloc::boxed::Box<S> {
    fn on_event(&mut self, event: &Event) {
        (**self).on_event(event);
    }
}

/// Every subscriber hears every event, in the order they were added.
#[derive(Default)]
pub struct Fanout<'a> {
    subscribers: alloc::vec::Vec<alloc::boxed::Box<dyn Subscriber + Send + 'a>>,
}

impl<'a> Fanout<'a> {
    /// No subscribers yet.
    pub fn new() -> Fanout<'a> {
        Fanout::default()
    }

    /// Adds a subscriber (it hears events after those added before it).
    pub fn subscribe(&mut self, subscriber: impl Subscriber + Send + 'a) {
        self.subscribers.push(alloc::boxed::Box::new(subscriber));
    }

    /// Hands `event` to every subscriber.
    pub fn publish(&mut self, event: &Event) {
        for s in &mut self.subscribers {
            s.on_event(event);
        }
    }

    /// How many subscribers there are.
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.subscribers.is_empty()
    }
}

impl core::fmt::Debug for Fanout<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Fanout")
            .field("subscribers", &self.subscribers.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::sync::Arc;
    use alloc::vec::Vec;
    use std::sync::Mutex;

    use crate::time::Timestamp;

    struct Recorder {
        name: &'static str,
        log: Arc<Mutex<Vec<(&'static str, Event)>>>,
    }

    impl Subscriber for Recorder {
        fn on_event(&mut self, event: &Event) {
            self.log.lock().unwrap().push((self.name, event.clone()));
        }
    }

    fn prompt() -> UserPrompt {
        UserPrompt {
            user_code: "WLKU-4502".into(),
            verification_url: "https://accounts.zoho.eu/oauth/v3/device".into(),
            verification_uri_complete: None,
            expires_at: Timestamp::from_millis(300_000),
            expires_in: Duration::from_secs(300),
            interval: Duration::from_secs(30),
            warning: None,
        }
    }

    #[test]
    fn every_subscriber_hears_every_event_in_order() {
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut fanout = Fanout::new();
        for name in ["screen", "json", "hook"] {
            fanout.subscribe(Recorder { name, log: log.clone() });
        }
        assert_eq!(fanout.len(), 3);
        let events = [
            Event::CodeIssued(prompt()),
            Event::Pending,
            Event::NeedsPairing {
                reason: "not_paired",
                message: "no token file".into(),
            },
        ];
        for e in &events {
            fanout.publish(e);
        }
        let log = log.lock().unwrap();
        assert_eq!(log.len(), 9);
        for (i, e) in events.iter().enumerate() {
            let heard: Vec<_> = log[i * 3..i * 3 + 3].iter().map(|(n, ev)| (*n, ev)).collect();
            assert_eq!(heard, [("screen", e), ("json", e), ("hook", e)]);
        }
    }

    #[test]
    fn flow_steps_become_events() {
        assert_eq!(
            Event::from_step(&Step::Prompt(prompt())),
            Some(Event::CodeIssued(prompt()))
        );
        assert_eq!(
            Event::from_step(&Step::Notice(Notice::CodeExpired {
                pause: Duration::from_secs(5)
            })),
            Some(Event::CodeExpired {
                renew_in: Some(Duration::from_secs(5))
            })
        );
        assert_eq!(
            Event::from_step(&Step::Notice(Notice::SlowDown {
                interval: Duration::from_secs(35)
            })),
            Some(Event::SlowDown {
                interval: Duration::from_secs(35)
            })
        );
        assert_eq!(Event::from_step(&Step::Wait(Timestamp::ZERO)), None);
    }
}
