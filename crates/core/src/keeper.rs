//! Keeping a token fresh, sans-IO: when to refresh, how to back off, what a failure means.
//!
//! [`Keeper`] is to a paired device what [`crate::DeviceFlow`] is to pairing. It holds the
//! current tokens (their `expires_at` on the caller's clock), reads no clock and opens no
//! socket: the caller passes `now`, asks [`Keeper::poll`] what to do, and feeds answers back.
//!
//! ```text
//!   adopt(tokens) ─> Wait(expiry − lead) ─> [Check: the driver re-reads a shared store]
//!                        ^                        │ another process refreshed: adopt it, Wait
//!                        │                        v
//!                        │                      Send(refresh) ─> handle_response / handle_transport_error
//!                        │                        │
//!       Refreshed(tokens)┴── ok ──────────────────┤
//!       Failed{retry_at} ── transient, throttle ──┤ (the current token stays in use)
//!       NeedsPairing ────── refresh token dead ───┘
//! ```
//!
//! **The rules**, for a token of lifetime `L` (what the server granted at the last mint):
//! the margin is `min(margin, L/4)` ([`effective_margin`]), the lead `margin + jitter` with the
//! jitter uniform in `[0, margin/4]` when [`KeeperConfig::jitter`] is on (a fleet spreads out);
//! the refresh is due at `expiry − lead`, and never sooner than [`min_spacing`] after the last
//! mint, nor before a backoff ends. Without a refresh token nothing is sent: at expiry the
//! keeper asks for pairing. A rejected refresh token (`invalid_code`, `invalid_grant`) asks for
//! pairing too. Every other failure keeps the current token:
//!
//! * [`Retries::Forever`] (a long-running agent): transient failures back off between
//!   [`retry_bounds`] of the lead; after Zoho's throttle no sooner than the minimum spacing;
//!   anything else (a rejected client, unsafe data) slowly, from the spacing up to 15 minutes.
//! * [`Retries::Attempts`] (a command, a board's boot): at most `n` tries of transient failures;
//!   the throttle (its window is 10 minutes) and permanent failures give up at once.
//!
//! **Someone else refreshed** — one answer, for every driver that shares a store with other
//! processes ([`KeeperConfig::check_store`]): before sending, the keeper asks the driver to
//! re-read the store under its lock ([`KeepStep::Check`]). A token other than the one held, and
//! not due itself, is adopted and nothing is sent.

use alloc::string::String;
use core::time::Duration;

use crate::codec::ClientCredentials;
use crate::config::Backoff;
use crate::error::{Error, TransportError};
use crate::http::HttpRequest;
use crate::pairing::Pairing;
use crate::time::Timestamp;
use crate::token::{TokenEndpoint, Tokens};

/// How long a refresh waits after another process held the store's lock too long.
pub const LOCK_RETRY: Duration = Duration::from_secs(30);
/// The longest pause between refreshes that keep failing for a reason a retry does not fix.
pub const SLOW_RETRY_CAP: Duration = Duration::from_secs(900);

/// The part of the margin used for a token of `lifetime`: `min(configured, lifetime/4)`.
pub fn effective_margin(configured: Duration, lifetime: Duration) -> Duration {
    configured.min(lifetime / 4)
}

/// The least time between two refreshes: `clamp(lifetime/4, 1 s, 60 s)`.
pub fn min_spacing(lifetime: Duration) -> Duration {
    (lifetime / 4).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// Backoff base and cap for transient refresh failures, from the refresh lead:
/// `(clamp(lead/8, 100 ms, 1 s), clamp(lead/4, 1 s, 120 s))`.
pub fn retry_bounds(lead: Duration) -> (Duration, Duration) {
    (
        (lead / 8).clamp(Duration::from_millis(100), Duration::from_secs(1)),
        (lead / 4).clamp(Duration::from_secs(1), Duration::from_secs(120)),
    )
}

/// How failed refreshes are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retries {
    /// Keep the token for as long as the process runs (the agent).
    Forever,
    /// One refresh of a command: at most `attempts` tries, backing off from `base` up to `cap`.
    Attempts {
        /// Tries in all (at least one).
        attempts: u32,
        /// The first delay.
        base: Duration,
        /// The longest delay.
        cap: Duration,
    },
}

/// Keeper policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeeperConfig {
    /// Refresh this long before expiry (scaled down for short-lived tokens).
    pub margin: Duration,
    /// Add a random `[0, margin/4]` to the lead of each token (spreads a fleet's refreshes).
    pub jitter: bool,
    /// How failures are retried.
    pub retries: Retries,
    /// Other processes share the store: re-read it ([`KeepStep::Check`]) before each refresh.
    pub check_store: bool,
    /// Seed for the jitter (drivers pass something random; tests a constant).
    pub jitter_seed: u64,
}

impl KeeperConfig {
    /// The long-running agent's policy: `margin` with jitter, retried forever, a shared store.
    pub fn agent(margin: Duration, jitter_seed: u64) -> KeeperConfig {
        KeeperConfig {
            margin,
            jitter: true,
            retries: Retries::Forever,
            check_store: true,
            jitter_seed,
        }
    }

    /// A one-shot refresh: `margin` as it is, `retries`, no shared store.
    pub fn once(margin: Duration, retries: Retries, jitter_seed: u64) -> KeeperConfig {
        KeeperConfig {
            margin,
            jitter: false,
            retries,
            check_store: false,
            jitter_seed,
        }
    }
}

/// Why the device must be paired (again).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PairingNeed {
    /// No token was ever adopted (or it was forgotten).
    NotPaired,
    /// The access token expired and there is no refresh token to get another.
    NoRefreshToken,
    /// The server rejected the refresh token (revoked, evicted, password changed).
    RefreshTokenRejected(Error),
}

impl PairingNeed {
    /// A short machine-readable name (`not_paired`, `no_refresh_token`, `refresh_token_rejected`).
    pub fn code(&self) -> &'static str {
        match self {
            PairingNeed::NotPaired => "not_paired",
            PairingNeed::NoRefreshToken => "no_refresh_token",
            PairingNeed::RefreshTokenRejected(_) => "refresh_token_rejected",
        }
    }
}

/// What the caller does next. Events (`Refreshed`, `Failed`, `GaveUp`) are reported once.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum KeepStep {
    /// Nothing to do until this time; then poll again (waking early is harmless).
    Wait(Timestamp),
    /// A refresh is due and other processes share the store: take its lock, read it, and hand
    /// what it holds to [`Keeper::handle_stored`] (or say why it could not:
    /// [`Keeper::handle_store_busy`], [`Keeper::forget`]). Keep the lock until the refresh ends.
    Check,
    /// Send this request, then feed the answer to [`Keeper::handle_response`] or
    /// [`Keeper::handle_transport_error`].
    Send(HttpRequest),
    /// New tokens (`expires_at` on the caller's clock): persist them, then poll again.
    Refreshed(Tokens),
    /// A refresh failed; the current token stays in use and the next try is at `retry_at`.
    Failed {
        /// What went wrong.
        error: Error,
        /// When the keeper tries again.
        retry_at: Timestamp,
    },
    /// [`Retries::Attempts`]: the refresh failed for good (the current token is unchanged).
    GaveUp(Error),
    /// Nothing more can be done without pairing: until [`Keeper::adopt`], every poll says so.
    NeedsPairing(PairingNeed),
}

/// What [`Keeper::handle_stored`] made of the store's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Checked {
    /// Another process refreshed (or paired): its token is adopted, nothing is sent.
    Adopted,
    /// A refresh is to be sent: give the endpoint ([`Keeper::set_endpoint`]) if it may have
    /// changed, then poll.
    Refresh,
    /// Nothing is sent now (no refresh token: the token is used until it expires).
    Nothing,
}

/// The token held, with its planned lead.
#[derive(Clone, Debug)]
struct Held {
    tokens: Tokens,
    /// `None`: unknown (the margin applies unscaled).
    lifetime: Option<Duration>,
    lead: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Idle,
    Checking,
    Ready,
    InFlight { sent_at: Timestamp },
}

/// The token keeper. See the [module docs](self).
#[derive(Debug)]
pub struct Keeper {
    config: KeeperConfig,
    rng: Backoff,
    endpoint: Option<(TokenEndpoint, ClientCredentials)>,
    held: Option<Held>,
    phase: Phase,
    forced: bool,
    failures: u32,
    next_attempt: Option<Timestamp>,
    last_mint: Option<Timestamp>,
    event: Option<KeepStep>,
    pairing: Option<PairingNeed>,
}

impl Keeper {
    /// A keeper holding nothing yet.
    pub fn new(config: KeeperConfig) -> Keeper {
        let rng = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), config.jitter_seed);
        Keeper {
            config,
            rng,
            endpoint: None,
            held: None,
            phase: Phase::Idle,
            forced: false,
            failures: 0,
            next_attempt: None,
            last_mint: None,
            event: None,
            pairing: None,
        }
    }

    /// A keeper that refreshes `tokens` at once (a one-shot exchange: [`Retries::Attempts`]).
    pub fn refreshing(
        endpoint: TokenEndpoint,
        client: ClientCredentials,
        tokens: Tokens,
        retries: Retries,
        jitter_seed: u64,
        now: Timestamp,
    ) -> Keeper {
        let mut k =
            Keeper::new(KeeperConfig::once(Duration::ZERO, retries, jitter_seed)).with_endpoint(endpoint, client);
        k.adopt_stored(tokens, None, now);
        k.force();
        k
    }

    /// This keeper refreshing at `endpoint` as `client`.
    pub fn with_endpoint(mut self, endpoint: TokenEndpoint, client: ClientCredentials) -> Keeper {
        self.set_endpoint(endpoint, client);
        self
    }

    /// Where refreshes go from now on, and as which client (Zoho Multi-DC: the credentials of
    /// the tokens' DC).
    pub fn set_endpoint(&mut self, endpoint: TokenEndpoint, client: ClientCredentials) {
        self.endpoint = Some((endpoint, client));
    }

    /// The policy.
    pub fn config(&self) -> &KeeperConfig {
        &self.config
    }

    /// Replaces the policy (a reloaded configuration): what is held, the backoff and any
    /// pairing need are dropped; the time of the last mint is kept (the spacing still holds).
    pub fn reconfigure(&mut self, config: KeeperConfig) {
        let last_mint = self.last_mint;
        *self = Keeper::new(config);
        self.last_mint = last_mint;
    }

    /// Tokens just minted by a pairing at `now`: held with their full lifetime, the backoff reset.
    pub fn adopt(&mut self, tokens: Tokens, now: Timestamp) {
        self.failures = 0;
        self.next_attempt = None;
        self.last_mint = Some(now);
        let lifetime = tokens.expires_in(now);
        self.hold(tokens, Some(lifetime));
    }

    /// Tokens read from a store (`expires_at` already on the caller's clock), minted `lifetime`
    /// before their expiry (`None`: unknown, the margin applies unscaled). The backoff and the
    /// spacing since the last mint carry on.
    pub fn adopt_stored(&mut self, tokens: Tokens, lifetime: Option<Duration>, _now: Timestamp) {
        self.hold(tokens, lifetime);
    }

    /// A stored [`Pairing`] (its expiry in Unix time, read as `wall`), held on this keeper's
    /// clock (`now`, read at the same instant) with the lifetime its token was minted with.
    pub fn adopt_pairing(&mut self, pairing: &Pairing, wall: Timestamp, now: Timestamp) {
        self.adopt_stored(pairing.tokens_on(wall, now), Some(pairing.lifetime(wall)), now);
    }

    /// [`Keeper::handle_stored`] for the [`Pairing`] the store holds now (read as `wall`, this
    /// keeper's clock reading `now`).
    pub fn handle_stored_pairing(&mut self, pairing: &Pairing, wall: Timestamp, now: Timestamp) -> Checked {
        self.handle_stored(now, pairing.tokens_on(wall, now), Some(pairing.lifetime(wall)))
    }

    fn hold(&mut self, tokens: Tokens, lifetime: Option<Duration>) {
        let lead = self.plan_lead(lifetime);
        self.held = Some(Held { tokens, lifetime, lead });
        self.phase = Phase::Idle;
        self.pairing = None;
        self.event = None;
        self.forced = false;
    }

    /// Forgets the token (the store lost it, or it cannot be used): polls say [`PairingNeed::NotPaired`].
    pub fn forget(&mut self) {
        self.held = None;
        self.phase = Phase::Idle;
        self.event = None;
        self.forced = false;
    }

    /// Refreshes at the next poll, whatever the expiry (the `refresh` command; a token a
    /// server just rejected). Backoff and spacing do not apply to a refresh asked for.
    pub fn force(&mut self) {
        self.forced = true;
        self.next_attempt = None;
    }

    /// The tokens held.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.held.as_ref().map(|h| &h.tokens)
    }

    /// The planned lead of the token held (refreshed this long before its expiry).
    pub fn lead(&self) -> Option<Duration> {
        self.held.as_ref().map(|h| h.lead)
    }

    /// When the token held is refreshed next (no refresh token: when it expires).
    pub fn next_refresh(&self) -> Option<Timestamp> {
        let h = self.held.as_ref()?;
        if self.forced {
            return Some(self.next_attempt.unwrap_or(Timestamp::ZERO));
        }
        let mut at = if h.tokens.refresh_token.is_some() {
            h.tokens.expires_at.saturating_sub(h.lead)
        } else {
            h.tokens.expires_at
        };
        if let Some(last) = self.last_mint {
            at = at.max(last.saturating_add(min_spacing(lifetime_or_long(h.lifetime))));
        }
        if let Some(next) = self.next_attempt {
            at = at.max(next);
        }
        Some(at)
    }

    /// Failed refreshes in a row.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// One step. See [`KeepStep`].
    pub fn poll(&mut self, now: Timestamp) -> KeepStep {
        if let Some(event) = self.event.take() {
            return event;
        }
        if let Some(need) = &self.pairing {
            return KeepStep::NeedsPairing(need.clone());
        }
        let Some(held) = &self.held else {
            return KeepStep::NeedsPairing(PairingNeed::NotPaired);
        };
        match self.phase {
            Phase::InFlight { .. } => KeepStep::Wait(Timestamp::from_millis(u64::MAX)),
            Phase::Checking => KeepStep::Check,
            Phase::Ready => self.send(now),
            Phase::Idle => {
                let at = self.next_refresh().unwrap_or(now);
                if now < at {
                    return KeepStep::Wait(at);
                }
                if self.config.check_store {
                    self.phase = Phase::Checking;
                    return KeepStep::Check;
                }
                if held.tokens.refresh_token.is_none() {
                    return self.without_refresh_token(now);
                }
                self.send(now)
            }
        }
    }

    fn without_refresh_token(&mut self, now: Timestamp) -> KeepStep {
        self.phase = Phase::Idle;
        match self.held.as_ref().map(|h| h.tokens.expires_at) {
            Some(expiry) if now < expiry && !self.forced => KeepStep::Wait(expiry),
            _ => {
                self.forced = false;
                self.pairing = Some(PairingNeed::NoRefreshToken);
                KeepStep::NeedsPairing(PairingNeed::NoRefreshToken)
            }
        }
    }

    fn send(&mut self, now: Timestamp) -> KeepStep {
        let (Some(held), Some((endpoint, client))) = (&self.held, &self.endpoint) else {
            return self.fail(now, Error::Config("no token endpoint to refresh at".into()));
        };
        match endpoint.refresh_request_for(client, &held.tokens) {
            Ok(req) => {
                self.phase = Phase::InFlight { sent_at: now };
                KeepStep::Send(req)
            }
            Err(e) => self.fail(now, e),
        }
    }

    /// What the shared store holds now (after [`KeepStep::Check`], read under its lock), with
    /// `expires_at` on the caller's clock and the lifetime it was minted with.
    pub fn handle_stored(&mut self, now: Timestamp, tokens: Tokens, lifetime: Option<Duration>) -> Checked {
        let Some(held) = &self.held else {
            self.hold(tokens, lifetime);
            return Checked::Adopted;
        };
        let forced = self.forced;
        if tokens.access_token != held.tokens.access_token || tokens.refresh_token != held.tokens.refresh_token {
            let other_access = tokens.access_token != held.tokens.access_token;
            self.hold(tokens, lifetime);
            self.forced = forced;
            let h = self.held.as_ref().map(|h| (h.tokens.expires_in(now), h.lead));
            // Someone else refreshed: their token is used while it is not due itself (a
            // refresh asked for takes any other token that has not expired).
            let need = if forced {
                Duration::ZERO
            } else {
                h.map_or(Duration::ZERO, |(_, lead)| lead)
            };
            if other_access && h.is_some_and(|(left, _)| left > need) {
                self.forced = false;
                return Checked::Adopted;
            }
        }
        let has_refresh = self.held.as_ref().is_some_and(|h| h.tokens.refresh_token.is_some());
        if !has_refresh {
            // Nothing to refresh with: the token is used until it expires, then pairing.
            self.phase = Phase::Idle;
            let expired = self.held.as_ref().is_none_or(|h| now >= h.tokens.expires_at);
            if expired || self.forced {
                self.forced = false;
                self.pairing = Some(PairingNeed::NoRefreshToken);
            }
            return Checked::Nothing;
        }
        self.phase = Phase::Ready;
        Checked::Refresh
    }

    /// After [`KeepStep::Check`]: another process holds the store's lock for too long. The
    /// refresh is tried again after [`LOCK_RETRY`]; nothing counts as a failure.
    pub fn handle_store_busy(&mut self, now: Timestamp) {
        self.phase = Phase::Idle;
        self.next_attempt = Some(now.saturating_add(LOCK_RETRY));
    }

    /// The server's answer to the last [`KeepStep::Send`].
    pub fn handle_response(&mut self, now: Timestamp, status: u16, body: &[u8]) {
        let Phase::InFlight { sent_at } = self.phase else {
            return;
        };
        let (Some(held), Some((endpoint, client))) = (&self.held, &self.endpoint) else {
            return;
        };
        match endpoint.refresh_response(now, status, body, &held.tokens) {
            Ok(tokens) => self.refreshed(sent_at, tokens),
            Err(e) => {
                // ClientAuth::Auto: once, the same request with HTTP Basic, at once.
                if let Some(basic) = endpoint.basic_retry(client, status, &e) {
                    let client = client.clone();
                    self.endpoint = Some((basic, client));
                    self.failures = 0;
                    self.phase = Phase::Ready;
                    return;
                }
                let ev = self.fail(now, e);
                self.event = Some(ev);
            }
        }
    }

    /// The last [`KeepStep::Send`] failed in transport (no answer).
    pub fn handle_transport_error(&mut self, now: Timestamp, error: TransportError) {
        self.handle_error(now, error.into());
    }

    /// The last [`KeepStep::Send`] failed in a way the driver saw (e.g. a redirect, which is
    /// never followed): the same rules as a failure the server stated.
    pub fn handle_error(&mut self, now: Timestamp, error: Error) {
        if !matches!(self.phase, Phase::InFlight { .. }) {
            return;
        }
        let ev = self.fail(now, error);
        self.event = Some(ev);
    }

    fn refreshed(&mut self, sent_at: Timestamp, tokens: Tokens) {
        self.failures = 0;
        self.next_attempt = None;
        self.last_mint = Some(sent_at);
        self.forced = false;
        let lifetime = tokens.expires_in(sent_at);
        self.hold(tokens.clone(), Some(lifetime));
        self.event = Some(KeepStep::Refreshed(tokens));
    }

    /// Applies the failure rules; returns the event to report.
    fn fail(&mut self, now: Timestamp, error: Error) -> KeepStep {
        self.phase = Phase::Idle;
        self.failures = self.failures.saturating_add(1);
        if matches!(error, Error::InvalidGrant { .. }) {
            self.forced = false;
            let need = PairingNeed::RefreshTokenRejected(error);
            self.pairing = Some(need.clone());
            self.held = None;
            return KeepStep::NeedsPairing(need);
        }
        let (lifetime, lead) = self
            .held
            .as_ref()
            .map_or((None, self.config.margin), |h| (h.lifetime, h.lead));
        let spacing = min_spacing(lifetime_or_long(lifetime));
        let delay = match self.config.retries {
            Retries::Attempts { attempts, base, cap } => {
                let retry = matches!(error, Error::Unavailable { .. }) && self.failures < attempts.max(1);
                if !retry {
                    self.forced = false;
                    let failures = self.failures;
                    self.failures = 0;
                    return KeepStep::GaveUp(match error {
                        Error::Unavailable { last, .. } => Error::Unavailable {
                            attempts: failures,
                            last,
                        },
                        other => other,
                    });
                }
                self.rng.delay_between(base, cap, self.failures)
            }
            Retries::Forever if error.is_transient() => {
                let (base, cap) = retry_bounds(lead);
                let d = self.rng.delay_between(base, cap, self.failures);
                if matches!(error, Error::Throttled) {
                    d.max(spacing)
                } else {
                    d
                }
            }
            // A rejected client, unsafe data, an undocumented reply: nothing a quick retry
            // fixes. Keep trying slowly (a fix in the API console or new settings is picked up).
            Retries::Forever => self.rng.delay_between(spacing, SLOW_RETRY_CAP, self.failures),
        };
        let retry_at = now.saturating_add(delay);
        self.next_attempt = Some(retry_at);
        KeepStep::Failed { error, retry_at }
    }

    fn plan_lead(&mut self, lifetime: Option<Duration>) -> Duration {
        let margin = effective_margin(self.config.margin, lifetime_or_long(lifetime));
        if self.config.jitter {
            margin + self.rng.jitter(margin / 4)
        } else {
            margin
        }
    }
}

fn lifetime_or_long(lifetime: Option<Duration>) -> Duration {
    lifetime.unwrap_or(Duration::MAX)
}

/// A one-line reason for pairing, for logs and screens.
pub fn pairing_message(need: &PairingNeed) -> String {
    match need {
        PairingNeed::NotPaired => "this device is not paired yet".into(),
        PairingNeed::NoRefreshToken => "the access token expired and there is no refresh token".into(),
        PairingNeed::RefreshTokenRejected(e) => alloc::format!("{e}"),
    }
}
