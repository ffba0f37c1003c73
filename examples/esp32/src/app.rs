//! The board-independent part of the ESP32 example: restore, refresh or pair, over any
//! `embedded-svc` connection, board clock, embedded-graphics panel and token store.
//!
//! `main.rs` (ESP-IDF only) supplies `EspHttpConnection`, an `Instant`-based clock, an SPI
//! panel and NVS. On the host, `crates/core/tests/esp32_app.rs` includes this very file
//! (`#[path = ...]`) and runs it against a scripted fake connection, so CI type-checks and
//! tests everything here; only the esp-idf-svc glue in `main.rs` needs the ESP toolchain.
//!
//! Dependencies used here: `zoho-device-core` (feature `embedded-svc`), `zoho-device-display`
//! (no default features), `embedded-svc`, `embedded-graphics`, `serde_json`.

use core::cell::Cell;
use core::fmt;
use core::ops::ControlFlow;
use core::time::Duration;

use embedded_graphics::draw_target::DrawTarget;
use embedded_graphics::pixelcolor::BinaryColor;
use embedded_svc::http::client::Connection;
use zoho_device_core::blocking::{self, Clock, Event};
use zoho_device_core::embedded::{self, EmbeddedTransport};
use zoho_device_core::{
    Backoff, ClientCredentials, DataCenter, DeviceFlow, Error, ErrorKind, FlowConfig, Keeper, KeeperConfig,
    KioskPolicy, Notice, Retries, Server, ServerUrl, Timestamp, TokenEndpoint, Tokens, UserPrompt,
};
use zoho_device_display::{Screen, draw_screen};

/// The NVS key (at most 15 characters) the tokens live under.
pub const TOKENS_KEY: &str = "zoho_tokens";

/// Where the tokens persist (NVS on the board). Values are opaque bytes (JSON).
pub trait TokenStore {
    /// The store's error.
    type Error: fmt::Debug;
    /// The stored value, if any.
    fn load(&mut self) -> Result<Option<Vec<u8>>, Self::Error>;
    /// Replaces the stored value.
    fn save(&mut self, value: &[u8]) -> Result<(), Self::Error>;
    /// Forgets the stored value.
    fn clear(&mut self) -> Result<(), Self::Error>;
}

/// Wall-clock time, to persist expiries across reboots (the flow runs on a monotonic clock).
pub trait WallClock {
    /// Milliseconds since the Unix epoch, or `None` while the time is not synchronised.
    fn unix_millis(&mut self) -> Option<u64>;
}

/// What the board is configured with.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Client ID and secret of a "Non-browser Application" client in Zoho's API console.
    pub client: ClientCredentials,
    /// The data centre the client was registered in.
    pub data_centre: DataCenter,
    /// Scopes, e.g. `ZohoBooks.settings.READ`.
    pub scopes: Vec<String>,
    /// Jitter seed for backoff (the board passes a hardware random number).
    pub jitter_seed: u64,
    /// Refresh when the access token has less than this left.
    pub refresh_margin: Duration,
    /// Attempts for a refresh or revoke before giving up for now.
    pub attempts: u32,
}

impl Settings {
    /// Settings with the usual defaults (5-minute refresh margin, 4 attempts).
    pub fn new(client: ClientCredentials, data_centre: DataCenter, scopes: Vec<String>, jitter_seed: u64) -> Self {
        Settings {
            client,
            data_centre,
            scopes,
            jitter_seed,
            refresh_margin: Duration::from_secs(300),
            attempts: 4,
        }
    }

    fn accounts(&self) -> ServerUrl {
        ServerUrl::parse(self.data_centre.accounts_url()).expect("the DC table holds valid URLs")
    }

    fn backoff(&self) -> Backoff {
        let c = FlowConfig::default();
        Backoff::new(c.backoff_base, c.backoff_cap, self.jitter_seed)
    }

    /// The keeper's policy: the margin as it is, transient failures retried for as long as
    /// the board runs (the core's backoff and throttle rules), the store this board's alone.
    fn keeper(&self) -> KeeperConfig {
        KeeperConfig {
            margin: self.refresh_margin,
            jitter: false,
            retries: Retries::Forever,
            check_store: false,
            jitter_seed: self.jitter_seed,
        }
    }
}

/// How [`App::ensure_tokens`] got its tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Restored from the store, still fresh.
    Stored,
    /// Restored and refreshed.
    Refreshed,
    /// Restored, but the refresh failed transiently (network, throttle): the stored tokens
    /// are returned as they are; try again later.
    Stale,
    /// Paired just now.
    Paired,
}

/// Why the app stopped.
#[derive(Debug)]
pub enum AppError<S> {
    /// The flow, refresh or revoke failed.
    Flow(Error),
    /// The token store failed.
    Store(S),
}

impl<S: fmt::Debug> fmt::Display for AppError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Flow(e) => write!(f, "{e}"),
            AppError::Store(e) => write!(f, "token store: {e:?}"),
        }
    }
}

/// The pairing app: everything but the ESP-IDF glue.
pub struct App<C: Connection, K, D, S> {
    /// The HTTP transport (on ESP-IDF: `EspHttpConnection` with the certificate bundle).
    pub transport: EmbeddedTransport<C>,
    /// The board's monotonic clock and wall clock.
    pub clock: K,
    /// The panel.
    pub panel: D,
    /// The token store.
    pub store: S,
    /// Configuration.
    pub settings: Settings,
    /// What the panel shows now.
    pub screen: Option<Screen>,
    /// Frames drawn (for diagnostics).
    pub frames: u32,
    /// Decides when to refresh and how to retry (the core's rules).
    keeper: Keeper,
}

impl<C, K, D, S> App<C, K, D, S>
where
    C: Connection,
    K: Clock + WallClock,
    D: DrawTarget,
    D::Color: From<BinaryColor>,
    S: TokenStore,
{
    /// An app over these parts.
    pub fn new(transport: EmbeddedTransport<C>, clock: K, panel: D, store: S, settings: Settings) -> Self {
        App {
            keeper: Keeper::new(settings.keeper()),
            transport,
            clock,
            panel,
            store,
            settings,
            screen: None,
            frames: 0,
        }
    }

    /// Restores the stored tokens (refreshing them when they are about to expire) or pairs.
    /// A refresh token that Zoho no longer accepts means pairing again; a transient refresh
    /// failure keeps the stored tokens ([`Source::Stale`]).
    pub fn ensure_tokens(&mut self) -> Result<(Tokens, Source), AppError<S::Error>> {
        if let Some(tokens) = self.load()? {
            let now = self.clock.now();
            self.keeper
                .set_endpoint(self.endpoint(&tokens), self.settings.client.clone());
            self.keeper.adopt_stored(tokens.clone(), None, now);
            if self.keeper.next_refresh().is_some_and(|at| now < at) {
                self.show_paired(&tokens);
                return Ok((tokens, Source::Stored));
            }
            match self.refresh(&tokens) {
                Ok(fresh) => return Ok((fresh, Source::Refreshed)),
                Err(AppError::Flow(e)) if e.is_transient() => {
                    show(
                        &mut self.panel,
                        &mut self.screen,
                        &mut self.frames,
                        Screen::Error {
                            message: String::from("offline: retrying later"),
                        },
                    );
                    return Ok((tokens, Source::Stale));
                }
                Err(AppError::Flow(e)) if e.kind() == ErrorKind::NeedsPairing => {
                    self.forget("access was revoked")?;
                }
                Err(e) => return Err(e),
            }
        }
        self.pair().map(|t| (t, Source::Paired))
    }

    /// Runs the device flow until someone approves the code, showing each code on the panel,
    /// then stores the tokens. Unattended boards get new codes (kiosk policy) rather than
    /// giving up when one lapses.
    pub fn pair(&mut self) -> Result<Tokens, AppError<S::Error>> {
        let config = FlowConfig {
            scopes: self.settings.scopes.clone(),
            kiosk: Some(KioskPolicy::default()),
            jitter_seed: self.settings.jitter_seed,
            ..FlowConfig::default()
        };
        let now = self.clock.now();
        let mut flow = DeviceFlow::new(
            config,
            self.settings.client.clone(),
            Server::zoho_dc(self.settings.data_centre),
            now,
        );
        let last_now = Cell::new(now);
        let mut clock = Tracked {
            inner: &mut self.clock,
            last: &last_now,
        };
        let mut prompt: Option<UserPrompt> = None;
        let (panel, screen, frames) = (&mut self.panel, &mut self.screen, &mut self.frames);
        let result = embedded::pair(&mut flow, &mut self.transport, &mut clock, |event| {
            match event {
                Event::Prompt(p) => {
                    prompt = Some(p.clone());
                    show(panel, screen, frames, waiting(p, last_now.get()));
                }
                Event::Waiting(_) => {
                    // Redraw the countdown before each sleep (polls are ~30 s apart).
                    if let Some(p) = &prompt {
                        show(panel, screen, frames, waiting(p, last_now.get()));
                    }
                }
                Event::Notice(Notice::CodeExpired { .. }) => {
                    prompt = None;
                    show(panel, screen, frames, Screen::CodeExpired);
                }
                Event::Notice(_) => {}
            }
            ControlFlow::Continue(())
        });
        match result {
            Ok(tokens) => {
                self.save(&tokens)?;
                self.keeper
                    .set_endpoint(self.endpoint(&tokens), self.settings.client.clone());
                self.keeper.adopt(tokens.clone(), self.clock.now());
                self.show_paired(&tokens);
                Ok(tokens)
            }
            Err(e) => {
                show(
                    &mut self.panel,
                    &mut self.screen,
                    &mut self.frames,
                    Screen::Error {
                        message: String::from(e.code()),
                    },
                );
                Err(AppError::Flow(e))
            }
        }
    }

    /// Refreshes `tokens` at the user's accounts server and stores the result.
    pub fn refresh(&mut self, tokens: &Tokens) -> Result<Tokens, AppError<S::Error>> {
        let endpoint = self.endpoint(tokens);
        let mut backoff = self.settings.backoff();
        let fresh = embedded::refresh(
            &endpoint,
            &self.settings.client,
            tokens,
            &mut self.transport,
            &mut self.clock,
            self.settings.attempts,
            &mut backoff,
        )
        .map_err(AppError::Flow)?;
        self.save(&fresh)?;
        self.keeper
            .set_endpoint(self.endpoint(&fresh), self.settings.client.clone());
        self.keeper.adopt(fresh.clone(), self.clock.now());
        Ok(fresh)
    }

    /// Keeps the tokens from [`App::ensure_tokens`] fresh: sleeps until the keeper's next
    /// refresh, retries failures by its rules (the current token stays in use meanwhile), and
    /// returns the next tokens — refreshed, or after pairing again when the refresh token died.
    pub fn next_tokens(&mut self) -> Result<Tokens, AppError<S::Error>> {
        match blocking::drive(&mut self.keeper, &mut self.transport, &mut self.clock) {
            Ok(fresh) => {
                self.save(&fresh)?;
                Ok(fresh)
            }
            Err(e) if e.kind() == ErrorKind::NeedsPairing || matches!(e, Error::Config(_)) => {
                self.forget("access was revoked")?;
                self.pair()
            }
            Err(e) => Err(AppError::Flow(e)),
        }
    }

    /// Revokes the refresh token (best effort when Zoho says it is already dead) and forgets
    /// the stored tokens.
    pub fn unpair(&mut self, tokens: &Tokens) -> Result<(), AppError<S::Error>> {
        let endpoint = self.endpoint(tokens);
        let mut backoff = self.settings.backoff();
        match embedded::revoke(
            &endpoint,
            &self.settings.client,
            tokens,
            &mut self.transport,
            &mut self.clock,
            self.settings.attempts,
            &mut backoff,
        ) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NeedsPairing => {}
            Err(e) => return Err(AppError::Flow(e)),
        }
        self.forget("unpaired")?;
        Ok(())
    }

    /// Forgets the pairing (the stored tokens) and says why on the panel.
    fn forget(&mut self, reason: &str) -> Result<(), AppError<S::Error>> {
        self.store.clear().map_err(AppError::Store)?;
        show(
            &mut self.panel,
            &mut self.screen,
            &mut self.frames,
            Screen::NeedsPairing {
                reason: String::from(reason),
            },
        );
        Ok(())
    }

    fn endpoint(&self, tokens: &Tokens) -> TokenEndpoint {
        embedded::token_endpoint(tokens, &self.settings.accounts())
    }

    fn show_paired(&mut self, tokens: &Tokens) {
        let detail = match &tokens.location {
            Some(loc) => format!("paired ({loc})"),
            None => String::from("paired"),
        };
        show(
            &mut self.panel,
            &mut self.screen,
            &mut self.frames,
            Screen::Paired { detail },
        );
    }

    /// Stores `tokens` with the expiry moved to wall-clock time (0 = "refresh at once" when
    /// the wall clock is unknown).
    fn save(&mut self, tokens: &Tokens) -> Result<(), AppError<S::Error>> {
        let mut persisted = tokens.clone();
        persisted.expires_at = match self.clock.unix_millis() {
            Some(unix) => tokens.expires_at.rebase(self.clock.now(), Timestamp::from_millis(unix)),
            None => Timestamp::ZERO,
        };
        let json = serde_json::to_vec(&persisted).expect("tokens serialise");
        self.store.save(&json).map_err(AppError::Store)
    }

    /// Loads the stored tokens with the expiry moved back onto the monotonic clock. Unreadable
    /// values are dropped (and the device pairs again).
    fn load(&mut self) -> Result<Option<Tokens>, AppError<S::Error>> {
        let Some(bytes) = self.store.load().map_err(AppError::Store)? else {
            return Ok(None);
        };
        let Ok(mut tokens) = serde_json::from_slice::<Tokens>(&bytes) else {
            self.store.clear().map_err(AppError::Store)?;
            return Ok(None);
        };
        let now = self.clock.now();
        tokens.expires_at = match self.clock.unix_millis() {
            Some(unix) => tokens.expires_at.rebase(Timestamp::from_millis(unix), now),
            // Unknown wall time: treat as expired, so it is refreshed before use.
            None => now,
        };
        Ok(Some(tokens))
    }
}

/// The waiting screen for `p` at `now`.
fn waiting(p: &UserPrompt, now: Timestamp) -> Screen {
    Screen::Waiting {
        user_code: p.user_code.clone(),
        verification_url: p.verification_url.clone(),
        verification_uri_complete: p.verification_uri_complete.clone(),
        seconds_left: p.expires_at.saturating_duration_since(now).as_secs(),
        total_seconds: p.expires_in.as_secs(),
        warning: p.warning.clone(),
    }
}

/// Draws `next` unless the panel already shows exactly that. A panel error is not fatal: the
/// pairing goes on (and the code is in the log as well).
fn show<D>(panel: &mut D, current: &mut Option<Screen>, frames: &mut u32, next: Screen)
where
    D: DrawTarget,
    D::Color: From<BinaryColor>,
{
    if current.as_ref() == Some(&next) {
        return;
    }
    if draw_screen(&next, panel).is_ok() {
        *frames += 1;
    }
    *current = Some(next);
}

/// A clock that remembers the last time it read, so the event callback can compute the
/// countdown without borrowing the clock.
struct Tracked<'a, K> {
    inner: &'a mut K,
    last: &'a Cell<Timestamp>,
}

impl<K: Clock> Clock for Tracked<'_, K> {
    fn now(&mut self) -> Timestamp {
        let now = self.inner.now();
        self.last.set(now);
        now
    }

    fn sleep_until(&mut self, deadline: Timestamp) {
        self.inner.sleep_until(deadline);
    }
}
