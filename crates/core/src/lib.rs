//! # zoho-device-core
//!
//! Zoho's OAuth device flow ("non-browser applications") as a sans-IO state machine, plus
//! refresh, revoke, the data-centre table and secret types — and thin drivers around them.
//!
//! ## How data flows
//!
//! ```text
//!   driver (tokio+reqwest | blocking Transport+Clock | embedded-svc)
//!     │  now ──────────────> DeviceFlow::poll(now) ──> Step::{Send, Prompt, Notice, Wait, Done}
//!     │  HTTP answer ──────> DeviceFlow::handle_response(now, status, body)
//!     │  transport failure > DeviceFlow::handle_transport_error(now, kind)
//!     v
//!   flow (state, timers, backoff, kiosk policy)  ──uses──>  codec (Zoho | RFC 8628 dialect)
//!                                                           dc (DCs, URLs, api_domain allow-list)
//!   token::TokenEndpoint: refresh/revoke request + reply classification (sans-IO too)
//!   pairing::Pairing: the record of a pairing (the token file); event::Event: what happened
//!
//!   driver ── now ─────> Keeper::poll(now) ──> KeepStep::{Wait, Check, Send, Refreshed, Failed, GaveUp, NeedsPairing}
//!          ── answer ──> Keeper::handle_response / handle_transport_error / handle_stored
//! ```
//!
//! * **Keeping the token** ([`keeper`]) is the second machine: when to refresh (margin scaled
//!   by the token's lifetime, jitter, spacing), backoff, Zoho's throttle, "another process
//!   refreshed meanwhile", and when pairing is needed. The agent, the CLI's `token` and
//!   `refresh`, [`blocking::refresh`], [`reqwest_driver::refresh`] and the ESP32 example all
//!   loop over it.
//!
//! * **One record of a pairing** ([`Pairing`]): client, servers ([`Servers`]: Zoho's accounts
//!   server or a standard server's endpoints), tokens, paired/refreshed times; serialisable as
//!   the token file's version-1 JSON, refusing a record that does not hang together.
//!   [`Pairing::token_endpoint`] decides where refresh and revoke go.
//! * **Events** ([`event`]): what happened to a pairing (a code issued or expired, paired,
//!   refreshed, a refresh failed, pairing needed) as an [`Event`]; drivers hand each to every
//!   [`Subscriber`] ([`Fanout`]) — displays, JSON lines, hooks, status lines.
//!
//! * **No sockets, no clock, no sleeping.** The caller passes `now` (milliseconds on a clock it
//!   chooses — drivers use a monotonic one) and gets one [`Step`] back. A timer firing is only
//!   a hint: drivers re-read the clock and ask again, so waking early or late is harmless.
//! * **Zoho's dialect in one place** ([`codec`]): form bodies (no secret in any URL),
//!   `grant_type=device_request`/`device_token`, the device code as `code=`, comma-separated
//!   scopes, `access_type=offline` + `prompt=consent`, milliseconds decided in
//!   [`codec::normalize_timing`] (and Zoho's legacy token lifetimes in [`codec::normalize_token_lifetime`]),
//!   the JSON `error` deciding whatever the HTTP status. The
//!   standard RFC 8628 dialect is the same machine with [`Profile::Rfc8628`].
//! * **Transient vs permanent**: transport errors, 5xx and non-JSON bodies (and, while polling,
//!   JSON that is neither a token nor an OAuth error, e.g. a proxy's 403) back off
//!   exponentially with jitter ([`config::Backoff`]) — polls never sooner than the interval — and
//!   never past the code's expiry: a live device code is never dropped for them. `invalid_code` on
//!   refresh means "pair again"; while polling it means "this device code is used or unknown,
//!   log in again" ([`Error::CodeRejected`]); Zoho's `Access Denied` throttle means "later".
//! * **Data centres** ([`dc`]): `other_dc` moves polling to the user's DC, found in the
//!   built-in table, else in `GET {accounts}/oauth/serverinfo`; the new accounts server must
//!   look like Zoho's (`https://accounts.zoho.<country>`), loopback only from loopback. A client
//!   with a secret per DC (Zoho's Multi-DC) sends each DC its own ([`DcSecrets`]).
//! * **Secrets never print** ([`secret`]); requests' `Debug` hides their bodies.
//! * `#![no_std]` + `alloc`; `std` adds `std::error::Error` and the std clock; `reqwest` adds
//!   the async driver; `embedded-svc` the ESP-IDF adapter for the blocking driver.
//!
//! ```
//! use zoho_device_core::*;
//! let client = ClientCredentials { client_id: "1004.ABC".into(), client_secret: Some(ClientSecret::new("s")) };
//! let mut flow = DeviceFlow::new(FlowConfig::default(), client, Server::zoho_dc(DataCenter::Eu), Timestamp::ZERO);
//! let Ok(Step::Send(req)) = flow.poll(Timestamp::ZERO) else { unreachable!() };
//! assert_eq!(req.url, "https://accounts.zoho.eu/oauth/v3/device/code");
//! flow.handle_response(Timestamp::from_millis(80), 200, br#"{"user_code":"WLKU-4502","device_code":"1004.d8a",
//!     "interval":30000,"expires_in":300000,"verification_url":"https://accounts.zoho.eu/oauth/v3/device"}"#);
//! let Ok(Step::Prompt(p)) = flow.poll(Timestamp::from_millis(80)) else { unreachable!() };
//! assert_eq!(p.user_code, "WLKU-4502");
//! assert_eq!(flow.poll(Timestamp::from_millis(80)), Ok(Step::Wait(Timestamp::from_millis(30_080))));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod blocking;
pub mod codec;
pub mod config;
pub mod dc;
pub mod error;
pub mod event;
pub mod flow;
pub mod http;
pub mod keeper;
pub mod pairing;
pub mod probe;
pub mod secret;
pub mod text;
pub mod time;
pub mod token;

#[cfg(feature = "reqwest")]
pub mod reqwest_driver;

#[cfg(feature = "embedded-svc")]
pub mod embedded;

pub use codec::{ClientAuth, ClientCredentials, DcSecrets, MAX_TOKEN_LIFETIME, Profile};
pub use config::{Backoff, FlowConfig, KioskPolicy, Next, Retry};
pub use dc::{ApiDomainPolicy, DataCenter, LocationSource, ServerUrl};
pub use error::{Error, ErrorKind, Transient, TransportError};
pub use event::{Event, Fanout, Subscriber};
pub use flow::{DeviceFlow, Notice, Server, Step, UserPrompt};
pub use http::{HttpRequest, Method, Purpose};
pub use keeper::{Checked, KeepStep, Keeper, KeeperConfig, PairingNeed, Retries};
pub use pairing::{Pairing, Servers};
pub use secret::{AccessToken, ClientSecret, DeviceCode, RefreshToken};
pub use text::Safe;
pub use time::Timestamp;
pub use token::{TokenEndpoint, Tokens};
/// The URL parser of [`ServerUrl`] (re-exported so drivers read the same parsed URL).
pub use url;
