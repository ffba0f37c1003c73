//! The async driver: tokio + reqwest + rustls (ring, bundled Mozilla roots).
//!
//! A thin loop over [`DeviceFlow`]: sleep until the wait (tokio's monotonic clock), re-read
//! the clock, poll. Cancel by dropping the future (e.g. in `tokio::select!` with a signal).
//! HTTP: no redirects (a redirect would carry a form with secrets to another host), timeouts,
//! proxies from `HTTPS_PROXY`/`NO_PROXY`, a size cap on every body, and errors stripped of URLs
//! before anything is logged.

use std::string::{String, ToString};
use std::sync::Arc;
use std::time::{Duration, Instant};
use std::vec::Vec;

use crate::blocking::HttpResponse;
use crate::codec::ClientCredentials;
use crate::config::{Backoff, Next, Retry};
use crate::error::{Error, TransportError};
use crate::flow::{DeviceFlow, Step};
use crate::http::{HttpRequest, MAX_RESPONSE_BYTES, Method};
use crate::time::Timestamp;
use crate::token::{TokenEndpoint, Tokens};

/// A monotonic clock in the core's [`Timestamp`]s (tokio's clock, so paused-time tests work).
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    start: tokio::time::Instant,
}

impl Default for MonotonicClock {
    fn default() -> Self {
        MonotonicClock {
            start: tokio::time::Instant::now(),
        }
    }
}

impl MonotonicClock {
    /// Now, in milliseconds since the clock was made.
    pub fn now(&self) -> Timestamp {
        Timestamp::from_millis(u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// Sleeps until `t` on this clock.
    pub async fn sleep_until(&self, t: Timestamp) {
        let deadline = self.start + Duration::from_millis(t.as_millis());
        tokio::time::sleep_until(deadline).await;
    }
}

/// HTTP settings.
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// `User-Agent`.
    pub user_agent: String,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            user_agent: String::from("zoho-device-core"),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// An HTTP client for the core's requests. Cheap to clone; reuses connections.
#[derive(Clone, Debug)]
pub struct HttpClient {
    inner: reqwest::Client,
}

/// A response with the server's `Date` header (a clock cross-check for boards without RTC).
#[derive(Clone, Debug)]
pub struct Response {
    /// Status and body.
    pub response: HttpResponse,
    /// The `Date` header, verbatim.
    pub date: Option<String>,
    /// When the answer arrived (monotonic).
    pub received: Instant,
    /// The `Location` header of a redirect, verbatim.
    pub location: Option<String>,
}

impl HttpClient {
    /// Builds a client: rustls on ring with the bundled Mozilla roots (works on images without
    /// ca-certificates), redirects off, timeouts, environment proxies.
    pub fn new(config: &HttpConfig) -> Result<HttpClient, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let inner = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(config.user_agent.clone())
            .build()
            .map_err(|e| e.without_url().to_string())?;
        Ok(HttpClient { inner })
    }

    /// The underlying reqwest client (for API calls that share connections and settings).
    pub fn reqwest(&self) -> &reqwest::Client {
        &self.inner
    }

    /// Sends a core request; the body is read up to [`MAX_RESPONSE_BYTES`] + 1 bytes.
    pub async fn send(&self, req: &HttpRequest) -> Result<Response, TransportError> {
        let mut builder = match req.method {
            Method::Get => self.inner.get(req.url.as_url().clone()),
            Method::Post => self.inner.post(req.url.as_url().clone()),
        };
        for (name, value) in &req.headers {
            builder = builder.header(*name, *value);
        }
        if let Some(auth) = &req.authorization {
            let mut value = reqwest::header::HeaderValue::from_str(auth).map_err(|_| TransportError::Other)?;
            value.set_sensitive(true);
            builder = builder.header(reqwest::header::AUTHORIZATION, value);
        }
        if req.method == Method::Post {
            builder = builder.body(req.body.clone());
        }
        let mut resp = builder.send().await.map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let date = resp
            .headers()
            .get("date")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let body = read_capped(&mut resp).await?;
        Ok(Response {
            response: HttpResponse { status, body },
            date,
            received: Instant::now(),
            location,
        })
    }
}

/// Reads a body, stopping one byte past the cap (the core then reads it as oversize).
pub async fn read_capped(resp: &mut reqwest::Response) -> Result<Vec<u8>, TransportError> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
        let room = MAX_RESPONSE_BYTES + 1 - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() > MAX_RESPONSE_BYTES {
            break;
        }
    }
    Ok(body)
}

/// Maps a reqwest error to the core's transport error, without looking at its URL.
pub fn classify(e: &reqwest::Error) -> TransportError {
    if e.is_timeout() {
        return TransportError::Timeout;
    }
    let mut chain = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = src {
        chain.push_str(&s.to_string().to_ascii_lowercase());
        chain.push('|');
        src = s.source();
    }
    if chain.contains("dns error") || chain.contains("failed to lookup") || chain.contains("name or service not known")
    {
        TransportError::Dns
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
        TransportError::Tls
    } else if e.is_connect() {
        TransportError::Connect
    } else if e.is_request() || e.is_body() || e.is_decode() {
        TransportError::Reset
    } else {
        TransportError::Other
    }
}

/// Runs a device flow to completion. `on_step` sees every [`Step::Prompt`] and
/// [`Step::Notice`], and each [`Step::Wait`] before the sleep (redraw a countdown there).
/// Cancel by dropping the future.
pub async fn run_flow(
    flow: &mut DeviceFlow,
    http: &HttpClient,
    clock: &MonotonicClock,
    mut on_step: impl FnMut(&Step),
) -> Result<Tokens, Error> {
    loop {
        let now = clock.now();
        match flow.poll(now)? {
            Step::Send(req) => {
                #[cfg(feature = "tracing")]
                tracing::debug!(url = %req.url, purpose = ?req.purpose, "request");
                match http.send(&req).await {
                    Ok(r) => {
                        if let Some(e) = crate::blocking::redirect_error(&req, r.response.status, r.location.as_deref())
                        {
                            return Err(e);
                        }
                        flow.handle_response(clock.now(), r.response.status, &r.response.body)
                    }
                    Err(e) => flow.handle_transport_error(clock.now(), e),
                }
            }
            Step::Done(tokens) => return Ok(tokens),
            step @ Step::Wait(t) => {
                on_step(&step);
                if t > now {
                    clock.sleep_until(t).await;
                }
            }
            step => on_step(&step),
        }
    }
}

/// Refreshes `tokens` now, a thin loop over a [`crate::Keeper`]: up to `attempts` tries on
/// transient failures (capped, jittered backoff on `backoff`'s bounds). The throttle and
/// permanent failures (`invalid_code`, rejected client, unsafe `api_domain`) return at once. The
/// result's `expires_at` is on the clock `now` reads (e.g. Unix time for a token file, or a
/// [`MonotonicClock`]). Zoho Multi-DC: pass the credentials of the tokens' DC,
/// `client.at(&dc_secrets, tokens.location.as_deref())`.
pub async fn refresh(
    http: &HttpClient,
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    now: &dyn Fn() -> Timestamp,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<Tokens, Error> {
    let mut keeper = crate::blocking::one_shot(endpoint, client, tokens, attempts, backoff, now());
    drive(http, &mut keeper, now).await
}

/// Drives `keeper` through one refresh (its [`crate::KeepStep::Check`]s need no store: the
/// caller holds what the store holds) and returns its result.
pub async fn drive(
    http: &HttpClient,
    keeper: &mut crate::Keeper,
    now: &dyn Fn() -> Timestamp,
) -> Result<Tokens, Error> {
    use crate::keeper::KeepStep;
    loop {
        match keeper.poll(now()) {
            KeepStep::Send(req) => match http.send(&req).await {
                Ok(r) => match crate::blocking::redirect_error(&req, r.response.status, r.location.as_deref()) {
                    Some(e) => keeper.handle_error(now(), e),
                    None => keeper.handle_response(now(), r.response.status, &r.response.body),
                },
                Err(e) => keeper.handle_transport_error(now(), e),
            },
            KeepStep::Wait(t) => tokio::time::sleep(t.saturating_duration_since(now())).await,
            KeepStep::Check => {
                if let Some(held) = keeper.tokens().cloned() {
                    let _ = keeper.handle_stored(now(), held, None);
                }
            }
            step => {
                if let Some(result) = crate::blocking::one_shot_result(step) {
                    return result;
                }
            }
        }
    }
}

/// Revokes the refresh token (retrying transient failures). `Ok(false)`: nothing to revoke,
/// or no revocation endpoint. `client`: as for [`refresh`].
pub async fn revoke(
    http: &HttpClient,
    endpoint: &TokenEndpoint,
    client: &ClientCredentials,
    tokens: &Tokens,
    attempts: u32,
    backoff: &mut Backoff,
) -> Result<bool, Error> {
    let mut endpoint = endpoint.clone();
    loop {
        let Some(req) = endpoint.revoke_request_for(client, tokens) else {
            return Ok(false);
        };
        let mut last_status = 0;
        let result = exchange(http, Retry::new(attempts, backoff), &req, |status, body| {
            last_status = status;
            endpoint.revoke_response(status, body)
        })
        .await;
        // ClientAuth::Auto: once, the same request with HTTP Basic.
        match result {
            Err(e) => match endpoint.basic_retry(client, last_status, &e) {
                Some(basic) => endpoint = basic,
                None => return Err(e),
            },
            Ok(()) => return Ok(true),
        }
    }
}

/// Sends `req` until [`Retry`] says stop, sleeping on tokio's clock in between.
async fn exchange<R>(
    http: &HttpClient,
    mut retry: Retry<'_>,
    req: &HttpRequest,
    mut handle: impl FnMut(u16, &[u8]) -> Result<R, Error>,
) -> Result<R, Error> {
    loop {
        let next = match http.send(req).await {
            Ok(r) => match crate::blocking::redirect_error(req, r.response.status, r.location.as_deref()) {
                Some(e) => return Err(e),
                None => retry.after(handle(r.response.status, &r.response.body)),
            },
            Err(e) => retry.transport_failed(e),
        };
        match next {
            Next::Return(result) => return result,
            Next::Sleep(d) => tokio::time::sleep(d).await,
        }
    }
}
