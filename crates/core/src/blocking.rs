//! A blocking driver, generic over a tiny transport and clock.
//!
//! Boards bring their own HTTP client (implement [`Transport`]) and their own time (implement
//! [`Clock`]); this module supplies the loop: ask the flow, send, sleep until the wait, re-read
//! the clock, ask again. `no_std` compatible; the `embedded-svc` adapter is one `Transport`.

use alloc::vec::Vec;
use core::ops::ControlFlow;

use crate::codec::ClientCredentials;
use crate::config::{Backoff, Next, Retry};
use crate::error::{Error, TransportError};
use crate::flow::{DeviceFlow, Notice, Step, UserPrompt};
use crate::http::HttpRequest;
use crate::keeper::{KeepStep, Keeper, PairingNeed, Retries};
use crate::time::Timestamp;
use crate::token::{TokenEndpoint, Tokens};

/// An HTTP answer: status and (size-capped) body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Body bytes; a transport should stop reading past [`crate::http::MAX_RESPONSE_BYTES`]
    /// (and may hand over a body one byte longer, which the core reads as oversize).
    pub body: Vec<u8>,
}

/// A redirect answered to a POST: the endpoint URL is wrong (a missing trailing slash, http for
/// https, a moved path). Never followed — the form holds secrets — and never retried: a
/// configuration error naming where the server points (its `Location`, when the transport
/// kept it), so the user can configure that URL.
pub fn redirect_error(request: &HttpRequest, status: u16, location: Option<&str>) -> Option<Error> {
    if request.method != crate::http::Method::Post || !(300..400).contains(&status) || status == 304 {
        return None;
    }
    let from = request.url.as_str();
    Some(Error::Config(match location.map(crate::error::clean_server_text) {
        Some(to) if !to.is_empty() => {
            // Same origin: paths are enough (`/o/token` to `/o/token/`).
            let origin = url::Url::parse(from).map_or_else(
                |_| alloc::string::String::from(from),
                |u| u.origin().ascii_serialization(),
            );
            let short_from = from.strip_prefix(origin.as_str()).filter(|p| p.starts_with('/'));
            let short_to = to.strip_prefix(origin.as_str()).filter(|p| p.starts_with('/'));
            match (short_from, short_to) {
                (Some(f), Some(t)) => alloc::format!("the server moved {f} to {t} (HTTP {status}): use that URL"),
                (Some(f), None) if to.starts_with('/') => {
                    alloc::format!("the server moved {f} to {to} (HTTP {status}): use that URL")
                }
                _ => alloc::format!("the server moved {from} to {to} (HTTP {status}): use that URL"),
            }
        }
        _ => alloc::format!(
            "the server answered {from} with a redirect (HTTP {status}): configure the URL it redirects to"
        ),
    }))
}

/// Sends one request and returns the answer.
pub trait Transport {
    /// Performs the exchange. Must not follow redirects.
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportError>;
}

impl<F: FnMut(&HttpRequest) -> Result<HttpResponse, TransportError>> Transport for F {
    fn send(&mut self, request: &HttpRequest) -> Result<HttpResponse, TransportError> {
        self(request)
    }
}

/// The board's monotonic clock and sleep.
pub trait Clock {
    /// Milliseconds on a monotonic clock.
    fn now(&mut self) -> Timestamp;
    /// Sleeps until about `deadline` (waking early is fine: the driver re-reads the clock).
    fn sleep_until(&mut self, deadline: Timestamp);
}

/// What the flow reports to the caller while it runs.
#[derive(Debug)]
pub enum Event<'a> {
    /// A new code to show.
    Prompt(&'a UserPrompt),
    /// Progress.
    Notice(&'a Notice),
    /// About to sleep until this time (a chance to redraw a countdown or cancel).
    Waiting(Timestamp),
}

/// Runs `flow` to completion. `on_event` sees every prompt and notice, and each wait before it
/// starts; returning `ControlFlow::Break(())` cancels with [`Error::Cancelled`].
pub fn run<T: Transport, C: Clock>(
    flow: &mut DeviceFlow,
    transport: &mut T,
    clock: &mut C,
    mut on_event: impl FnMut(Event<'_>) -> ControlFlow<()>,
) -> Result<Tokens, Error> {
    loop {
        let now = clock.now();
        match flow.poll(now)? {
            Step::Send(req) => match transport.send(&req) {
                Ok(resp) => {
                    if let Some(e) = redirect_error(&req, resp.status, None) {
                        return Err(e);
                    }
                    flow.handle_response(clock.now(), resp.status, &resp.body)
                }
                Err(e) => flow.handle_transport_error(clock.now(), e),
            },
            Step::Prompt(p) => {
                if on_event(Event::Prompt(&p)).is_break() {
                    return Err(Error::Cancelled);
                }
            }
            Step::Notice(n) => {
                if on_event(Event::Notice(&n)).is_break() {
                    return Err(Error::Cancelled);
                }
            }
            Step::Wait(t) => {
                if on_event(Event::Waiting(t)).is_break() {
                    return Err(Error::Cancelled);
                }
                if t > now {
                    clock.sleep_until(t);
                }
            }
            Step::Done(tokens) => return Ok(tokens),
        }
    }
}

/// Refreshes `tokens` now: a thin loop over a [`Keeper`] that retries transient failures
/// (network, 5xx) up to `attempts` times with `backoff`'s base and cap; the throttle and
/// permanent failures return at once. Zoho Multi-DC: pass the credentials of the tokens' DC,
/// `client.at(&dc_secrets, tokens.location.as_deref())` (a flow given
/// [`DeviceFlow::with_dc_secrets`] picks its DC's secret itself).
pub fn refresh<T: Transport, C: Clock>(
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    transport: &mut T,
    clock: &mut C,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<Tokens, Error> {
    let mut keeper = one_shot(endpoint, client, tokens, attempts, backoff, clock.now());
    drive(&mut keeper, transport, clock)
}

/// Drives `keeper` until its refresh ends: sends, sleeps through its backoff, and returns the
/// new tokens or the error it gave up with (a rejected refresh token: [`Error::InvalidGrant`]).
/// A [`KeepStep::Check`] is answered with what the keeper holds (no shared store here).
pub fn drive<T: Transport, C: Clock>(keeper: &mut Keeper, transport: &mut T, clock: &mut C) -> Result<Tokens, Error> {
    loop {
        match keeper.poll(clock.now()) {
            KeepStep::Send(req) => match transport.send(&req) {
                Ok(resp) => match redirect_error(&req, resp.status, None) {
                    Some(e) => keeper.handle_error(clock.now(), e),
                    None => keeper.handle_response(clock.now(), resp.status, &resp.body),
                },
                Err(e) => keeper.handle_transport_error(clock.now(), e),
            },
            KeepStep::Wait(t) => clock.sleep_until(t),
            KeepStep::Check => {
                if let Some(held) = keeper.tokens().cloned() {
                    let _ = keeper.handle_stored(clock.now(), held, None);
                }
            }
            step => {
                if let Some(result) = one_shot_result(step) {
                    return result;
                }
            }
        }
    }
}

/// The keeper of one refresh with `attempts` tries on `backoff`'s bounds.
pub(crate) fn one_shot(
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    attempts: u32,
    backoff: &mut Backoff,
    now: Timestamp,
) -> Keeper {
    let (base, cap) = backoff.bounds();
    let retries = Retries::Attempts { attempts, base, cap };
    Keeper::refreshing(
        endpoint.clone(),
        client.clone(),
        tokens.clone(),
        retries,
        backoff.fork(),
        now,
    )
}

/// What a one-shot refresh returns for a keeper's event (`None`: go on).
pub(crate) fn one_shot_result(step: KeepStep) -> Option<Result<Tokens, Error>> {
    match step {
        KeepStep::Refreshed(tokens) => Some(Ok(tokens)),
        KeepStep::GaveUp(e) | KeepStep::NeedsPairing(PairingNeed::RefreshTokenRejected(e)) => Some(Err(e)),
        KeepStep::NeedsPairing(_) => Some(Err(Error::Config(
            "no refresh token is stored (pair with offline access)".into(),
        ))),
        KeepStep::Failed { .. } | KeepStep::Check | KeepStep::Wait(_) | KeepStep::Send(_) => None,
    }
}

/// Revokes the refresh token, retrying transient failures. `Ok(false)` when there is nothing
/// to revoke or the server has no revocation endpoint.
pub fn revoke<T: Transport, C: Clock>(
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    transport: &mut T,
    clock: &mut C,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<bool, Error> {
    let Some(req) = endpoint.revoke_request_for(client, tokens) else {
        return Ok(false);
    };
    let mut last_status = 0;
    let result = exchange(
        transport,
        clock,
        Retry::new(attempts, backoff),
        &req,
        |_, status, body| {
            last_status = status;
            endpoint.revoke_response(status, body)
        },
    );
    match result {
        Err(e) => match endpoint.basic_retry(client, last_status, &e) {
            Some(basic) => revoke(&basic, client, tokens, transport, clock, attempts, backoff),
            None => Err(e),
        },
        Ok(()) => Ok(true),
    }
}

/// Sends `req` until [`Retry`] says stop, sleeping on `clock` in between.
fn exchange<T: Transport, C: Clock, R>(
    transport: &mut T,
    clock: &mut C,
    mut retry: Retry<'_>,
    req: &HttpRequest,
    mut handle: impl FnMut(Timestamp, u16, &[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    loop {
        let next = match transport.send(req) {
            Ok(resp) => match redirect_error(req, resp.status, None) {
                Some(e) => return Err(e),
                None => retry.after(handle(clock.now(), resp.status, &resp.body)),
            },
            Err(e) => retry.transport_failed(e),
        };
        match next {
            Next::Return(result) => return result,
            Next::Sleep(d) => {
                let until = clock.now().saturating_add(d);
                clock.sleep_until(until);
            }
        }
    }
}

/// A [`Clock`] on `std::time::Instant` and `std::thread::sleep`.
#[cfg(feature = "std")]
#[derive(Clone, Debug)]
pub struct StdClock {
    start: std::time::Instant,
}

#[cfg(feature = "std")]
impl Default for StdClock {
    fn default() -> Self {
        StdClock {
            start: std::time::Instant::now(),
        }
    }
}

#[cfg(feature = "std")]
impl Clock for StdClock {
    fn now(&mut self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    fn sleep_until(&mut self, deadline: Timestamp) {
        let d = deadline.saturating_duration_since(self.now());
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}
