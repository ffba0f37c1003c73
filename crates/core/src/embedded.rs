//! The blocking driver over `embedded-svc`'s HTTP client traits (ESP-IDF boards).
//!
//! [`EmbeddedTransport`] wraps an [`embedded_svc::http::client::Client`] around any
//! [`Connection`] (on ESP-IDF: `esp_idf_svc::http::client::EspHttpConnection`) and implements
//! the blocking driver's [`Transport`]; [`pair`], [`refresh`] and [`revoke`] run the
//! [`crate::blocking`] loops over it with a clock supplied by the board. `no_std` + `alloc`.
//!
//! What the adapter does for every request (the pitfalls of the real client):
//!
//! * **Always sends `Content-Length`**, `0` included: without it ESP-IDF's client silently
//!   switches a POST to chunked transfer encoding, which Zoho's accounts servers refuse.
//! * **Writes with `write_all` + `flush`**: a connection may take a few bytes per `write`.
//! * **Reads into a bounded buffer**: it stops after [`MAX_RESPONSE_BYTES`]` + 1` bytes and
//!   hands those over (the core reads that as "oversize"), so an HTML error page or a captive
//!   portal cannot exhaust the heap.
//! * **Maps connection errors** to [`TransportError`] through
//!   [`embedded_io::Error::kind`] ([`classify_io_error`]) or a board-specific function
//!   ([`EmbeddedTransport::with_error_map`]: `EspIOError::kind()` is always `Other`, so the
//!   ESP example maps `ESP_ERR_HTTP_*` codes itself). All of them are transient for the flow.
//! * **Never reuses a broken connection.** `EspHttpConnection` *panics* when a new request is
//!   started while the previous one is still in its request phase (e.g. after a timeout while
//!   waiting for the response headers). After any failure, or a body not read to its end, the
//!   adapter replaces the connection through the [`EmbeddedTransport::with_reconnect`] factory;
//!   without a factory, a connection stuck in its request phase is not touched again and every
//!   later request fails with [`TransportError::Other`] instead of panicking.
//!
//! Configure the connection not to follow redirects (`FollowRedirectsPolicy::FollowNone` on
//! ESP-IDF): the core must see every answer itself.
//!
//! ```no_run
//! # fn demo<C: embedded_svc::http::client::Connection + 'static, K: zoho_device_core::blocking::Clock>(
//! #     connection: C, clock: &mut K) -> Result<(), zoho_device_core::Error> {
//! use core::ops::ControlFlow;
//! use zoho_device_core::blocking::Event;
//! use zoho_device_core::embedded::{EmbeddedTransport, pair};
//! use zoho_device_core::*;
//!
//! let client = ClientCredentials { client_id: "1004.ABC".into(), client_secret: Some(ClientSecret::new("s")) };
//! let mut flow = DeviceFlow::new(FlowConfig::default(), client, Server::zoho_dc(DataCenter::Eu), clock.now());
//! let mut transport = EmbeddedTransport::new(connection);
//! let tokens = pair(&mut flow, &mut transport, clock, |event| {
//!     if let Event::Prompt(p) = event {
//!         // show p.user_code and p.verification_url on the panel
//!     }
//!     ControlFlow::Continue(())
//! })?;
//! # let _ = tokens; Ok(()) }
//! ```

use alloc::boxed::Box;
use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;
use core::ops::ControlFlow;

use embedded_io::{ErrorKind, Write};
use embedded_svc::http::client::{Client, Connection};

use crate::blocking::{self, Clock, Event, HttpResponse, Transport};
use crate::codec::ClientCredentials;
use crate::config::Backoff;
use crate::error::{Error, TransportError};
use crate::flow::DeviceFlow;
use crate::http::{HttpRequest, MAX_RESPONSE_BYTES, Method};
use crate::token::{TokenEndpoint, Tokens};

/// The default read chunk: small enough for a task stack-friendly heap growth, large enough
/// that a typical Zoho reply (a few hundred bytes) takes one or two reads.
pub const DEFAULT_READ_CHUNK: usize = 512;

type Reconnect<C> = Box<dyn FnMut() -> Result<C, <C as embedded_io::ErrorType>::Error>>;

/// A [`Transport`] over an `embedded-svc` HTTP client connection.
pub struct EmbeddedTransport<C: Connection> {
    client: Client<C>,
    reconnect: Option<Reconnect<C>>,
    map_error: fn(&C::Error) -> TransportError,
    read_chunk: usize,
    /// The connection must be replaced before it is used again.
    dirty: bool,
}

impl<C: Connection> fmt::Debug for EmbeddedTransport<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedTransport")
            .field("reconnect", &self.reconnect.is_some())
            .field("read_chunk", &self.read_chunk)
            .field("dirty", &self.dirty)
            .finish_non_exhaustive()
    }
}

impl<C: Connection> EmbeddedTransport<C> {
    /// Wraps a fresh connection (one that has not started a request).
    ///
    /// # Panics
    ///
    /// When `connection` is already in a request or response phase (as
    /// [`Client::wrap`] does).
    pub fn new(connection: C) -> Self {
        Self::from_client(Client::wrap(connection))
    }

    /// Wraps an existing client.
    pub fn from_client(client: Client<C>) -> Self {
        EmbeddedTransport {
            client,
            reconnect: None,
            map_error: classify_io_error::<C::Error>,
            read_chunk: DEFAULT_READ_CHUNK,
            dirty: false,
        }
    }

    /// A factory for a fresh connection, used after a failed exchange (strongly advised on
    /// ESP-IDF: see the module docs). On ESP-IDF:
    /// `move || EspHttpConnection::new(&config).map_err(EspIOError)`.
    pub fn with_reconnect(mut self, reconnect: impl FnMut() -> Result<C, C::Error> + 'static) -> Self {
        self.reconnect = Some(Box::new(reconnect));
        self
    }

    /// How connection errors map to [`TransportError`] (default: [`classify_io_error`]).
    pub fn with_error_map(mut self, map_error: fn(&C::Error) -> TransportError) -> Self {
        self.map_error = map_error;
        self
    }

    /// Bytes asked for per `read` (default [`DEFAULT_READ_CHUNK`], at least 1).
    pub fn with_read_chunk(mut self, bytes: usize) -> Self {
        self.read_chunk = bytes.max(1);
        self
    }

    /// The wrapped connection.
    pub fn connection(&mut self) -> &mut C {
        self.client.connection()
    }

    /// Gives the connection back.
    pub fn into_connection(self) -> C {
        self.client.release()
    }

    /// Replaces the connection when it is marked dirty and a factory exists. Returns whether
    /// the connection can be used.
    fn ensure_ready(&mut self) -> Result<(), TransportError> {
        if self.dirty
            && let Some(reconnect) = self.reconnect.as_mut()
        {
            match reconnect() {
                Ok(fresh) => {
                    // Dropping the old client closes the old connection (and its socket).
                    self.client = Client::wrap(fresh);
                    self.dirty = false;
                }
                Err(e) => return Err((self.map_error)(&e)),
            }
        }
        // A connection left in its request phase cannot start another request (ESP-IDF
        // panics); refuse rather than crash.
        if self.client.connection().is_request_initiated() {
            return Err(TransportError::Other);
        }
        Ok(())
    }

    /// One exchange. `Ok((response, complete))`: `complete` is false when the body was not
    /// read to its end (oversize).
    fn exchange(&mut self, request: &HttpRequest) -> Result<(HttpResponse, bool), C::Error> {
        let content_length = request.body.len().to_string();
        let headers = request_headers(request, &content_length);
        let method = match request.method {
            Method::Get => embedded_svc::http::Method::Get,
            Method::Post => embedded_svc::http::Method::Post,
        };
        let mut req = self.client.request(method, request.url.as_str(), &headers)?;
        req.write_all(&request.body)?;
        req.flush()?;
        let mut response = req.submit()?;
        let status = response.status();
        let cap = MAX_RESPONSE_BYTES + 1;
        let hint = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(0)
            .min(cap);
        let mut body = Vec::with_capacity(hint);
        loop {
            let len = body.len();
            if len >= cap {
                // Enough to know it is too large; the rest stays unread.
                return Ok((HttpResponse { status, body }, false));
            }
            let want = self.read_chunk.min(cap - len);
            body.resize(len + want, 0);
            match response.read(&mut body[len..]) {
                Ok(0) => {
                    body.truncate(len);
                    return Ok((HttpResponse { status, body }, true));
                }
                Ok(n) => body.truncate(len + n.min(want)),
                Err(e) => return Err(e),
            }
        }
    }
}

impl<C: Connection> Transport for EmbeddedTransport<C> {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self.ensure_ready()?;
        let result = self.exchange(request);
        let stuck = self.client.connection().is_request_initiated();
        let result = match result {
            Ok((response, complete)) => {
                self.dirty = !complete || stuck;
                Ok(response)
            }
            Err(e) => {
                self.dirty = true;
                Err((self.map_error)(&e))
            }
        };
        // Replace a broken connection at once, so its socket is freed while the flow waits.
        if self.dirty && self.reconnect.is_some() {
            let _ = self.ensure_ready();
        }
        result
    }
}

/// The request's headers plus `Content-Length` (any `Content-Length` or `Transfer-Encoding`
/// of the request's own is dropped: the length is always the body's).
fn request_headers<'a>(request: &'a HttpRequest, content_length: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut headers: Vec<(&str, &str)> = request
        .headers
        .iter()
        .filter(|(name, _)| {
            !name.eq_ignore_ascii_case("content-length") && !name.eq_ignore_ascii_case("transfer-encoding")
        })
        .map(|&(name, value)| (name, value))
        .collect();
    if let Some(auth) = &request.authorization {
        headers.push(("Authorization", auth.as_str()));
    }
    headers.push(("Content-Length", content_length));
    headers
}

/// Maps an `embedded-io` error to a [`TransportError`] by its [`embedded_io::ErrorKind`]:
/// `TimedOut` → `Timeout`; `ConnectionReset`, `ConnectionAborted`, `BrokenPipe` → `Reset`;
/// `ConnectionRefused`, `NotConnected` → `Connect`; anything else → `Other`.
pub fn classify_io_error<E: embedded_io::Error>(error: &E) -> TransportError {
    classify_kind(error.kind())
}

/// [`classify_io_error`] on a bare [`ErrorKind`].
pub fn classify_kind(kind: ErrorKind) -> TransportError {
    match kind {
        ErrorKind::TimedOut => TransportError::Timeout,
        ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => TransportError::Reset,
        ErrorKind::ConnectionRefused | ErrorKind::NotConnected => TransportError::Connect,
        _ => TransportError::Other,
    }
}

/// Runs the device flow to completion over `transport` ([`blocking::run`]): `on_event` sees
/// every prompt and notice and each wait before it starts (`Break` cancels).
pub fn pair<C: Connection, K: Clock>(
    flow: &mut DeviceFlow,
    transport: &mut EmbeddedTransport<C>,
    clock: &mut K,
    on_event: impl FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Tokens, Error> {
    blocking::run(flow, transport, clock, on_event)
}

/// Refreshes `tokens` over `transport` ([`blocking::refresh`]), retrying transient failures up
/// to `attempts` times.
pub fn refresh<C: Connection, K: Clock>(
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    transport: &mut EmbeddedTransport<C>,
    clock: &mut K,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<Tokens, Error> {
    blocking::refresh(endpoint, client, tokens, transport, clock, attempts, backoff)
}

/// Revokes the refresh token over `transport` ([`blocking::revoke`]); `Ok(false)` when there
/// is nothing to revoke or no revocation endpoint.
pub fn revoke<C: Connection, K: Clock>(
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    transport: &mut EmbeddedTransport<C>,
    clock: &mut K,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<bool, Error> {
    blocking::revoke(endpoint, client, tokens, transport, clock, attempts, backoff)
}

/// The accounts-server token endpoint for `tokens` (the user's DC after `other_dc`), falling
/// back to `default` when the tokens carry none.
pub fn token_endpoint(tokens: &Tokens, default: &crate::dc::ServerUrl) -> TokenEndpoint {
    TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap_or(default))
}
