//! The device flow as a sans-IO state machine.
//!
//! ```text
//!            ┌──────────── kiosk: code lapsed, maybe pause ─────────────┐
//!            v                                                          │
//!   RequestCode ──Send──> (code reply) ──Prompt──> Polling ──Send──> (poll reply)
//!     ^   │ transient: Wait(backoff)                  ^  │ pending / slow_down: Wait(interval)
//!     └───┘                                           │  │ transient: Wait(max(backoff, interval))
//!                                                     │  │ other_dc: table, else [Send serverinfo]; move DC
//!                                                     └──┘ success: Done(tokens)
//! ```
//!
//! While polling, nothing short of the server's word ends a live code: transport errors, 5xx,
//! non-JSON pages and JSON that is neither a token nor an OAuth error (a proxy's 403
//! `{"message":…}`, a bare `{}`) are [`Notice::Retry`]s, never sooner than the interval; the
//! flow fails only when the code lapses ([`Error::Unavailable`] if the failures were why).
//! `invalid_code` / `invalid_grant` while polling means the device code itself is gone
//! ([`Error::CodeRejected`]; kiosk mode asks for a new one).
//!
//! `other_dc`: the location comes as `user_location` (Zoho's pages) or `dc` (a public Zoho
//! client), a code or a whole accounts URL. Zoho's own servers map a code with the built-in
//! table (no request); a location the table lacks is asked of `GET {current accounts}/oauth/serverinfo`, an
//! overridden server (the simulator) asks its `serverinfo` (once: the answer is kept). A reply
//! naming no location is matched by its other fields' values, else fails saying what it held
//! ([`Error::OtherDcWithoutLocation`]). Either way the answer must pass
//! [`crate::dc::check_accounts_move`], and the device code is kept while resolving. Polling at
//! the new DC sends that DC's secret ([`DeviceFlow::with_dc_secrets`]).
//!
//! Zoho's own accounts hosts are polled no sooner than every 30 s
//! ([`codec::ZOHO_MIN_POLL_INTERVAL`]) whatever `interval` says; overrides keep theirs.
//!
//! The caller loops: `match flow.poll(now)?` — [`Step::Send`]: send it and feed the answer to
//! [`DeviceFlow::handle_response`] (or [`DeviceFlow::handle_transport_error`]);
//! [`Step::Prompt`]: show the code (once per new code); [`Step::Notice`]: report progress;
//! [`Step::Wait`]: sleep until then, re-read the clock, poll again (waking early is harmless);
//! [`Step::Done`]: paired. Errors are sticky.

use alloc::collections::VecDeque;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::{self, ClientAuth, ClientCredentials, DcSecrets, DeviceAuthorization, OAuthError, Profile, Reply};
use crate::config::{Backoff, FlowConfig};
use crate::dc::{self, ApiDomainPolicy, DataCenter, LocationSource, ServerUrl};
use crate::error::{Error, Transient, TransportError};
use crate::http::{HttpRequest, Purpose};
use crate::secret::DeviceCode;
use crate::time::Timestamp;
use crate::token::{self, Tokens};

/// Where the flow talks to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Server {
    /// Zoho Accounts: the accounts server where the client was registered. Polling moves on
    /// `other_dc`; `locations` maps location codes to accounts servers.
    Zoho {
        /// The accounts server to start at.
        accounts: ServerUrl,
        /// How to map `other_dc`'s location to an accounts server.
        locations: LocationSource,
        /// Which `api_domain`s are acceptable.
        api_domains: ApiDomainPolicy,
    },
    /// A standard RFC 8628 server.
    Standard {
        /// The device authorization endpoint.
        device_authorization_url: ServerUrl,
        /// The token endpoint.
        token_url: ServerUrl,
    },
}

impl Server {
    /// A Zoho accounts server, with the location source and `api_domain` policy that fit it
    /// (built-in table and Zoho-only for Zoho's servers; `serverinfo` and loopback for a
    /// loopback override such as the simulator).
    pub fn zoho(accounts: ServerUrl) -> Server {
        Server::Zoho {
            locations: LocationSource::for_accounts(&accounts),
            api_domains: ApiDomainPolicy::for_accounts(&accounts),
            accounts,
        }
    }

    /// Zoho's accounts server of a data centre.
    pub fn zoho_dc(dc: DataCenter) -> Server {
        Server::zoho(dc.accounts_server())
    }
}

/// What the caller must do next.
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Step {
    /// Send this request, then feed the answer back.
    Send(HttpRequest),
    /// Show this code to the user (once per new code).
    Prompt(UserPrompt),
    /// Something happened worth reporting; poll again at once.
    Notice(Notice),
    /// Nothing to do until this time; then poll again.
    Wait(Timestamp),
    /// Paired.
    Done(Tokens),
}

/// The code to show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrompt {
    /// What the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_url: String,
    /// The page with the code filled in (QR content when present).
    pub verification_uri_complete: Option<String>,
    /// When the code lapses (caller's clock).
    pub expires_at: Timestamp,
    /// The code's lifetime.
    pub expires_in: Duration,
    /// The poll interval in force.
    pub interval: Duration,
    /// Set when the verification URL does not look like the accounts server's own (not https,
    /// or another host): show it, but flag it.
    pub warning: Option<String>,
}

impl UserPrompt {
    /// What a QR should encode: the complete URI when the server sent one.
    pub fn qr_url(&self) -> &str {
        self.verification_uri_complete
            .as_deref()
            .unwrap_or(&self.verification_url)
    }
}

/// Progress worth reporting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The user has not approved yet.
    Pending,
    /// The server asked to slow down; the interval is now this (kept for the rest of the code).
    SlowDown {
        /// The new interval.
        interval: Duration,
    },
    /// The user's account lives in another DC; polling moved there.
    OtherDc {
        /// Zoho's location code.
        location: String,
        /// The user's accounts server.
        accounts_url: String,
    },
    /// A transient failure; the next attempt comes after `delay`.
    Retry {
        /// What failed.
        reason: Transient,
        /// How long until the next attempt.
        delay: Duration,
    },
    /// The code lapsed unattended (kiosk mode); a new one comes after `pause`.
    CodeExpired {
        /// How long until the next code is requested.
        pause: Duration,
    },
}

#[derive(Debug)]
struct ActiveCode {
    device_code: DeviceCode,
    expires_at: Timestamp,
    interval: Duration,
}

#[derive(Debug)]
enum State {
    /// Ask for a code at or after `at`.
    RequestCode { at: Timestamp },
    /// Waiting for the code reply.
    AwaitCode,
    /// Poll at or after `at`.
    Polling { code: ActiveCode, at: Timestamp },
    /// Waiting for a poll reply.
    AwaitPoll { code: ActiveCode },
    /// Ask `serverinfo` where `location` lives (`None`: `other_dc` named none; match the
    /// reply's other fields), at or after `at`.
    Resolve {
        code: ActiveCode,
        location: Option<String>,
        at: Timestamp,
    },
    /// Waiting for the serverinfo reply.
    AwaitResolve { code: ActiveCode, location: Option<String> },
    /// Paired.
    Done(alloc::boxed::Box<Tokens>),
    /// Failed (sticky).
    Failed(Error),
    /// Transitional placeholder while a state is being replaced.
    Poisoned,
}

/// A Zoho (or RFC 8628) device flow.
#[derive(Debug)]
pub struct DeviceFlow {
    config: FlowConfig,
    client: ClientCredentials,
    /// Secrets of DCs that have their own (Multi-DC); others use the client's common one.
    dc_secrets: DcSecrets,
    /// Whether the configuration was checked (on the first `poll`, after the builders).
    checked: bool,
    /// The other fields of the last `other_dc` reply that named no location.
    other_dc_fields: Vec<(String, String)>,
    /// The accounts URL the last `other_dc` gave, while `serverinfo` is asked for its location.
    other_dc_url: Option<ServerUrl>,
    server: Server,
    /// The accounts server polls go to (Zoho: moves on `other_dc`).
    accounts: Option<ServerUrl>,
    location: Option<String>,
    state: State,
    out: VecDeque<Step>,
    backoff: Backoff,
    /// Transient failures in a row of the current request kind.
    failures: u32,
    last_transient: Option<Transient>,
    /// Codes that lapsed unattended, in a row.
    lapsed: u32,
    /// Locations learnt from `serverinfo`.
    known_locations: Vec<(String, String)>,
    /// The last request sent, re-sent if the caller polls before answering it.
    in_flight: Option<HttpRequest>,
    /// The client authentication in use (standard profile): [`ClientAuth::Auto`] becomes
    /// [`ClientAuth::Basic`] after a 401 `invalid_client` to the body.
    auth: ClientAuth,
}

impl DeviceFlow {
    /// A new flow; the first `poll` asks for a code (or reports a configuration error).
    pub fn new(config: FlowConfig, client: ClientCredentials, server: Server, now: Timestamp) -> DeviceFlow {
        let backoff = Backoff::new(config.backoff_base, config.backoff_cap, config.jitter_seed);
        let (accounts, location) = match &server {
            Server::Zoho { accounts, .. } => (
                Some(accounts.clone()),
                DataCenter::from_accounts_url(accounts).map(|dc| dc.location().to_string()),
            ),
            Server::Standard { .. } => (None, None),
        };
        let auth = config.client_auth;
        let flow = DeviceFlow {
            state: State::RequestCode { at: now },
            config,
            client,
            dc_secrets: DcSecrets::new(),
            checked: false,
            other_dc_fields: Vec::new(),
            other_dc_url: None,
            server,
            accounts,
            location,
            out: VecDeque::new(),
            backoff,
            failures: 0,
            last_transient: None,
            lapsed: 0,
            known_locations: Vec::new(),
            in_flight: None,
            auth,
        };
        // The configuration is checked at the first poll, once the Multi-DC secrets and the
        // starting location are known.
        flow
    }

    /// Zoho Multi-DC: the secrets of the DCs that have their own. Polling at a DC (the first
    /// one, and the user's after `other_dc`) sends that DC's secret, else the common one.
    pub fn with_dc_secrets(mut self, secrets: DcSecrets) -> DeviceFlow {
        self.dc_secrets = secrets;
        self
    }

    /// Zoho: the location code of the starting accounts server, when the caller knows it and
    /// the URL does not say (an override found through `serverinfo`, e.g. `--dc auto` against
    /// the simulator). It chooses the DC's secret and is stored with the tokens. Ignored once
    /// the flow has started and for standard servers.
    pub fn with_location(mut self, location: Option<String>) -> DeviceFlow {
        if !self.checked && matches!(self.server, Server::Zoho { .. }) && location.is_some() {
            self.location = location.map(|l| l.trim().to_ascii_lowercase());
        }
        self
    }

    /// The credentials for the server polled now: its DC's own secret, else the common one.
    fn client_here(&self) -> ClientCredentials {
        self.client.at(&self.dc_secrets, self.location.as_deref())
    }

    /// The error when Zoho polling at the current DC would have no secret to send.
    fn missing_secret(&self) -> Option<Error> {
        if self.config.profile != Profile::Zoho || self.client_here().client_secret.is_some() {
            return None;
        }
        if self.client.client_secret.is_none() && self.dc_secrets.is_empty() {
            return Some(Error::Config(
                "Zoho's device flow needs the client secret (a \"Non-browser Application\" client has one)".into(),
            ));
        }
        let here = match (&self.location, &self.accounts) {
            (Some(l), Some(a)) => alloc::format!("data centre {l} ({a})"),
            (Some(l), None) => alloc::format!("data centre {l}"),
            (None, Some(a)) => alloc::format!("{a} (its data centre is not known)"),
            (None, None) => "this server".into(),
        };
        Some(Error::Config(alloc::format!(
            "no client secret for {here}: give that data centre's secret (API console, Settings, Multi-DC) or a common one"
        )))
    }

    fn config_error(&self) -> Option<Error> {
        if self.client.client_id.trim().is_empty() {
            return Some(Error::Config("the client ID is empty".into()));
        }
        if let Some(e) = self.missing_secret() {
            return Some(e);
        }
        if self.config.scopes.iter().all(|s| s.trim().is_empty()) && self.config.profile == Profile::Zoho {
            return Some(Error::Config("no scope given (e.g. ZohoBooks.settings.READ)".into()));
        }
        if matches!(self.server, Server::Zoho { .. }) != (self.config.profile == Profile::Zoho) {
            return Some(Error::Config("the server kind does not match the profile".into()));
        }
        None
    }

    /// The client authentication that worked (or is being tried): what refreshes and
    /// revocations of the resulting tokens should use. Zoho: [`ClientAuth::Post`].
    pub fn client_auth(&self) -> ClientAuth {
        match self.config.profile {
            Profile::Zoho => ClientAuth::Post,
            Profile::Rfc8628 => self.auth,
        }
    }

    /// The accounts server currently polled (Zoho), after any `other_dc` move.
    pub fn accounts_url(&self) -> Option<&ServerUrl> {
        self.accounts.as_ref()
    }

    /// What to do next at `now`.
    pub fn poll(&mut self, now: Timestamp) -> Result<Step, Error> {
        if !self.checked {
            self.checked = true;
            if let Some(err) = self.config_error() {
                self.state = State::Failed(err);
            }
        }
        if let Some(step) = self.out.pop_front() {
            return Ok(step);
        }
        if let Some(req) = &self.in_flight {
            return Ok(Step::Send(req.clone()));
        }
        let state = core::mem::replace(&mut self.state, State::Poisoned);
        let (state, step) = self.advance(state, now);
        self.state = state;
        if let Step::Send(req) = &step {
            self.in_flight = Some(req.clone());
        }
        match &self.state {
            State::Failed(e) => Err(e.clone()),
            _ => Ok(step),
        }
    }

    fn advance(&mut self, state: State, now: Timestamp) -> (State, Step) {
        match state {
            State::Failed(e) => (State::Failed(e), Step::Wait(now)),
            State::Done(t) => {
                let step = Step::Done((*t).clone());
                (State::Done(t), step)
            }
            State::RequestCode { at } if now < at => (State::RequestCode { at }, Step::Wait(at)),
            State::RequestCode { .. } => (State::AwaitCode, Step::Send(self.code_request())),
            State::Polling { code, .. } if now >= code.expires_at => {
                let state = self.code_lapsed(now);
                let step = self.out.pop_front().unwrap_or(Step::Wait(now));
                (state, step)
            }
            State::Polling { code, at } if now < at => {
                let at = at.min(code.expires_at);
                (State::Polling { code, at }, Step::Wait(at))
            }
            State::Polling { code, .. } => {
                let req = self.poll_request(&code.device_code);
                (State::AwaitPoll { code }, Step::Send(req))
            }
            State::Resolve { code, location, at } if now < at => {
                (State::Resolve { code, location, at }, Step::Wait(at))
            }
            State::Resolve { code, location, .. } => {
                let Some(src) = self.serverinfo_base() else {
                    return (State::Failed(self.unresolved(location)), Step::Wait(now));
                };
                let req = HttpRequest::get(src.join("/oauth/serverinfo"), Purpose::ServerInfo);
                (State::AwaitResolve { code, location }, Step::Send(req))
            }
            s @ (State::AwaitCode | State::AwaitPoll { .. } | State::AwaitResolve { .. } | State::Poisoned) => {
                // Unreachable through `poll` (in-flight requests are re-sent above); stay put.
                (s, Step::Wait(now))
            }
        }
    }

    /// Feeds the answer to the last [`Step::Send`]: HTTP status and body.
    pub fn handle_response(&mut self, now: Timestamp, status: u16, body: &[u8]) {
        self.in_flight = None;
        let state = core::mem::replace(&mut self.state, State::Poisoned);
        self.state = match state {
            State::AwaitCode => self.on_code_reply(
                now,
                status,
                codec::parse_device_authorization(self.config.profile, status, body),
            ),
            State::AwaitPoll { code } => {
                let reply = codec::parse_token_for(self.config.profile, status, body);
                self.on_poll_reply(now, code, status, reply)
            }
            State::AwaitResolve { code, location } => {
                self.on_serverinfo(now, code, location, status, codec::parse_serverinfo(status, body))
            }
            other => other,
        };
    }

    /// Reports that the last [`Step::Send`] failed in transport (no HTTP answer).
    pub fn handle_transport_error(&mut self, now: Timestamp, error: TransportError) {
        self.in_flight = None;
        let state = core::mem::replace(&mut self.state, State::Poisoned);
        let t = Transient::Transport(error);
        self.state = match state {
            State::AwaitCode => self.code_transient(now, t),
            State::AwaitPoll { code } => self.poll_transient(now, code, t),
            State::AwaitResolve { code, location } => self.resolve_transient(now, code, location, t),
            other => other,
        };
    }

    fn location_source(&self) -> Option<&LocationSource> {
        match &self.server {
            Server::Zoho { locations, .. } => Some(locations),
            Server::Standard { .. } => None,
        }
    }

    /// Where `serverinfo` is asked: the override's own server, or (built-in table) the accounts
    /// server currently polled.
    fn serverinfo_base(&self) -> Option<ServerUrl> {
        match self.location_source()? {
            LocationSource::ServerInfo(src) => Some(src.clone()),
            LocationSource::BuiltIn => self.accounts.clone(),
        }
    }

    fn api_policy(&self) -> ApiDomainPolicy {
        match &self.server {
            Server::Zoho { api_domains, .. } => *api_domains,
            Server::Standard { token_url, .. } => ApiDomainPolicy::for_accounts(token_url),
        }
    }

    fn code_request(&self) -> HttpRequest {
        let url = match &self.server {
            Server::Zoho { accounts, .. } => self.accounts.as_ref().unwrap_or(accounts).join("/oauth/v3/device/code"),
            Server::Standard {
                device_authorization_url,
                ..
            } => device_authorization_url.clone(),
        };
        codec::device_code_request(
            self.config.profile,
            url,
            &self.client_here(),
            &self.config.scopes,
            self.config.offline_access,
            self.config.prompt_consent,
            self.auth,
        )
    }

    fn poll_request(&self, code: &DeviceCode) -> HttpRequest {
        let url = match &self.server {
            Server::Zoho { accounts, .. } => self
                .accounts
                .as_ref()
                .unwrap_or(accounts)
                .join("/oauth/v3/device/token"),
            Server::Standard { token_url, .. } => token_url.clone(),
        };
        codec::poll_request(self.config.profile, url, &self.client_here(), code, self.auth)
    }

    fn current_endpoint(&self) -> &ServerUrl {
        match &self.server {
            Server::Zoho { accounts, .. } => self.accounts.as_ref().unwrap_or(accounts),
            Server::Standard { token_url, .. } => token_url,
        }
    }

    fn fail(&mut self, e: Error) -> State {
        State::Failed(e)
    }

    fn unavailable(&self) -> Error {
        Error::Unavailable {
            attempts: self.failures,
            last: self
                .last_transient
                .clone()
                .unwrap_or(Transient::Transport(TransportError::Other)),
        }
    }

    // --- code request ------------------------------------------------------------------------

    /// [`ClientAuth::Auto`]'s one switch to HTTP Basic: a 401 `invalid_client` to a confidential
    /// client of a standard server that sent its secret in the body.
    fn switch_to_basic(&mut self, status: u16, e: &OAuthError) -> bool {
        let switch = self.config.profile == Profile::Rfc8628
            && self.auth == ClientAuth::Auto
            && self.client.client_secret.is_some()
            && status == 401
            && e.code == "invalid_client";
        if switch {
            self.auth = ClientAuth::Basic;
        }
        switch
    }

    /// A standard server's error, with the scope asked for filled into `invalid_scope`.
    fn standard_error(&self, e: OAuthError) -> Error {
        match token::standard_error(e, self.current_endpoint()) {
            Error::InvalidScope { description, .. } => {
                let asked = self.config.scopes.iter().any(|s| s.trim() == "offline_access");
                let offline_added = self.config.offline_access && !asked;
                let mut scope = self.scope_asked();
                if offline_added {
                    scope.push_str(" offline_access");
                }
                Error::InvalidScope {
                    scope: String::from(scope.trim()),
                    offline_added,
                    description,
                }
            }
            other => other,
        }
    }

    fn on_code_reply(&mut self, now: Timestamp, status: u16, reply: Reply<DeviceAuthorization>) -> State {
        match reply {
            Reply::Ok(auth) => {
                self.failures = 0;
                self.last_transient = None;
                let interval = auth.interval.max(self.config.min_interval).max(self.poll_floor());
                let expires_at = now.saturating_add(auth.expires_in);
                let urls = match self.prompt_urls(&auth.verification_url, auth.verification_uri_complete.as_deref()) {
                    Ok(urls) => urls,
                    Err(why) => return self.fail(Error::Protocol(why)),
                };
                self.out.push_back(Step::Prompt(UserPrompt {
                    user_code: auth.user_code,
                    verification_url: urls.0,
                    verification_uri_complete: urls.1,
                    expires_at,
                    expires_in: auth.expires_in,
                    interval,
                    warning: urls.2,
                }));
                State::Polling {
                    at: now.saturating_add(interval),
                    code: ActiveCode {
                        device_code: auth.device_code,
                        expires_at,
                        interval,
                    },
                }
            }
            Reply::Transient(t) => self.code_transient(now, t),
            Reply::Error(e) if self.switch_to_basic(status, &e) => State::RequestCode { at: now },
            Reply::Error(e) if self.config.profile == Profile::Rfc8628 => {
                let err = self.standard_error(e);
                self.fail(err)
            }
            Reply::Error(e) => {
                let err = token::grant_error(self.config.profile, e, self.current_endpoint());
                self.fail(err)
            }
            Reply::Malformed(m) => self.fail(Error::Protocol(m)),
        }
    }

    fn code_transient(&mut self, now: Timestamp, t: Transient) -> State {
        self.failures += 1;
        self.last_transient = Some(t.clone());
        if self.config.kiosk.is_none() && self.failures >= self.config.max_attempts {
            return self.fail(self.unavailable());
        }
        let delay = self.backoff.delay(self.failures);
        self.out.push_back(Step::Notice(Notice::Retry { reason: t, delay }));
        State::RequestCode {
            at: now.saturating_add(delay),
        }
    }

    /// Zoho's one-poll-per-30-seconds rule, on Zoho's own accounts hosts only: an override
    /// (the simulator, loopback, a test server) keeps the interval it sends.
    fn poll_floor(&self) -> Duration {
        match &self.accounts {
            Some(a) if self.config.profile == Profile::Zoho && a.is_https() && dc::is_zoho_accounts_host(a.host()) => {
                codec::ZOHO_MIN_POLL_INTERVAL
            }
            _ => Duration::ZERO,
        }
    }

    /// The verification URL, the QR link and the warning to show, read by the parser a browser
    /// uses (WHATWG, the `url` crate) and shown in that parse's serialisation, so what was
    /// checked is what the phone opens. A `verification_uri_complete` on another origin than
    /// the verification URL is dropped (the QR then carries the verification URL) with a
    /// warning: a reply cannot put a phishing page in the QR beside a genuine text URL.
    fn prompt_urls(
        &self,
        url: &str,
        complete: Option<&str>,
    ) -> Result<(String, Option<String>, Option<String>), String> {
        let web = |u: &str| {
            url::Url::parse(u.trim())
                .ok()
                .filter(|p| matches!(p.scheme(), "https" | "http"))
        };
        let Some(parsed) = web(url) else {
            return Err(alloc::format!(
                "the verification_url {:?} is not a web address",
                crate::text::sanitize(url)
            ));
        };
        let mut warning = self.url_warning(&parsed);
        let complete = match complete {
            None => None,
            Some(c) => match web(c) {
                Some(pc) if pc.origin() == parsed.origin() => Some(String::from(pc.as_str())),
                other => {
                    let seen = other.map(|p| p.origin().ascii_serialization());
                    let note = alloc::format!(
                        "the server's QR link pointed to {}, not to the verification page: the QR shows the verification URL instead",
                        seen.as_deref().unwrap_or("something that is not a web address")
                    );
                    warning = Some(match warning {
                        Some(w) => alloc::format!("{w}; {note}"),
                        None => note,
                    });
                    None
                }
            },
        };
        Ok((String::from(parsed.as_str()), complete, warning))
    }

    fn url_warning(&self, u: &url::Url) -> Option<String> {
        let host = u.host_str().unwrap_or_default();
        let https = u.scheme() == "https";
        let loopback = ServerUrl::from_url(u.clone()).is_ok_and(|s| s.is_loopback());
        let Some(accounts) = &self.accounts else {
            return if https || loopback {
                None
            } else {
                Some("the verification URL is not https".into())
            };
        };
        if accounts.is_loopback() && loopback {
            return None;
        }
        if !https {
            return Some("the verification URL is not https on a Zoho host: check it before entering the code".into());
        }
        let domain = accounts.host().strip_prefix("accounts.").unwrap_or(accounts.host());
        if host == accounts.host() || host == domain || host.strip_suffix(domain).is_some_and(|p| p.ends_with('.')) {
            None
        } else {
            Some(alloc::format!(
                "the verification URL is not on {domain}: check it before entering the code"
            ))
        }
    }

    // --- polling -----------------------------------------------------------------------------

    fn on_poll_reply(
        &mut self,
        now: Timestamp,
        mut code: ActiveCode,
        status: u16,
        reply: Reply<codec::TokenGrant>,
    ) -> State {
        match reply {
            Reply::Ok(grant) => {
                self.failures = 0;
                let scope = Some(self.scope_asked());
                match token::tokens_from_grant(
                    now,
                    grant,
                    self.api_policy(),
                    self.accounts.clone(),
                    self.location.clone(),
                    scope,
                ) {
                    Ok(tokens) => State::Done(alloc::boxed::Box::new(tokens)),
                    Err(e) => self.fail(e),
                }
            }
            Reply::Transient(t) => self.poll_transient(now, code, t),
            // JSON that is neither a token nor an error (a proxy's 403 `{"message":…}`, `{}`) comes
            // back from the codec as transient (above); a token that is not a bearer token is
            // the server's answer, and a bad one.
            Reply::Malformed(m) => self.fail(Error::Protocol(m)),
            Reply::Error(e) => {
                self.failures = 0;
                self.last_transient = None;
                match e.code.as_str() {
                    "authorization_pending" => {
                        self.out.push_back(Step::Notice(Notice::Pending));
                        State::Polling {
                            at: now.saturating_add(code.interval),
                            code,
                        }
                    }
                    "slow_down" => {
                        // Never less than the current interval plus the step; more when the
                        // server names a longer one (GitHub sends the new `interval`).
                        let stepped = code.interval.saturating_add(self.config.slow_down_step);
                        let named = e.interval.map(Duration::from_secs).unwrap_or(Duration::ZERO);
                        code.interval = stepped.max(named.min(codec::MAX_INTERVAL));
                        self.out.push_back(Step::Notice(Notice::SlowDown {
                            interval: code.interval,
                        }));
                        State::Polling {
                            at: now.saturating_add(code.interval),
                            code,
                        }
                    }
                    "other_dc" => self.other_dc(now, code, e),
                    // Entra says `authorization_declined` when the user declines.
                    "access_denied" | "authorization_declined" => self.fail(Error::Denied),
                    "expired" | "expired_token" => self.code_lapsed(now),
                    // A used or unknown device code (not a refresh token): in kiosk mode start
                    // over with a new code, otherwise say so. Entra: `bad_verification_code`;
                    // django-oauth-toolkit: 404 `device_not_found`.
                    "invalid_code" | "invalid_grant" | "bad_verification_code" | "device_not_found"
                        if self.config.kiosk.is_some() =>
                    {
                        self.code_lapsed(now)
                    }
                    "invalid_code" | "invalid_grant" | "bad_verification_code" | "device_not_found" => {
                        self.fail(Error::CodeRejected {
                            code: crate::error::clean_server_text(&e.code),
                        })
                    }
                    _ if self.switch_to_basic(status, &e) => State::Polling { at: now, code },
                    _ if self.config.profile == Profile::Rfc8628 => {
                        let err = self.standard_error(e);
                        self.fail(err)
                    }
                    _ => {
                        let err = match token::grant_error(self.config.profile, e, self.current_endpoint()) {
                            Error::InvalidClientSecret { accounts_url, .. } => Error::InvalidClientSecret {
                                accounts_url,
                                location: self.location.clone(),
                            },
                            other => other,
                        };
                        self.fail(err)
                    }
                }
            }
        }
    }

    fn scope_asked(&self) -> String {
        let sep = if self.config.profile == Profile::Zoho { "," } else { " " };
        self.config.scopes.join(sep)
    }

    fn poll_transient(&mut self, now: Timestamp, code: ActiveCode, t: Transient) -> State {
        self.failures += 1;
        self.last_transient = Some(t.clone());
        // Never sooner than the interval, never past the code's expiry.
        let delay = self.backoff.delay(self.failures).max(code.interval);
        let at = now.saturating_add(delay).min(code.expires_at);
        self.out.push_back(Step::Notice(Notice::Retry {
            reason: t,
            delay: at.saturating_duration_since(now),
        }));
        State::Polling { code, at }
    }

    /// `other_dc`: the location comes as `user_location` or `dc` (a code, or a whole accounts
    /// URL); a code is mapped with the table (Zoho's servers), then `serverinfo`. A reply that
    /// names none is matched against the table and `serverinfo` by its other fields' values.
    fn other_dc(&mut self, now: Timestamp, code: ActiveCode, e: OAuthError) -> State {
        self.other_dc_url = None;
        let named = e
            .user_location
            .map(|l| String::from(l.trim()))
            .filter(|l| !l.is_empty());
        if let Some(raw) = named.as_deref().filter(|l| l.contains("://")) {
            let url = match ServerUrl::parse(raw) {
                Ok(url) => url,
                Err(why) => {
                    return self.fail(Error::Unsafe(alloc::format!(
                        "other_dc gave {raw:?} as the user's accounts server: {why}"
                    )));
                }
            };
            // Refused before anything is asked about it.
            if let Some(current) = &self.accounts
                && let Err(why) = dc::check_accounts_move(current, &url)
            {
                return self.fail(Error::Unsafe(why));
            }
            let location = DataCenter::from_accounts_url(&url)
                .map(|dc| String::from(dc.location()))
                .or_else(|| self.location_of_url(&url));
            if location.is_none() && self.known_locations.is_empty() && self.serverinfo_base().is_some() {
                // Its location code (which chooses the secret) is asked of serverinfo first.
                self.other_dc_fields = alloc::vec![(String::from("user_location"), String::from(url.as_str()))];
                self.other_dc_url = Some(url);
                return State::Resolve {
                    code,
                    location: None,
                    at: now,
                };
            }
            return self.move_to(now, code, location, url);
        }
        let location = named.map(|l| l.to_ascii_lowercase());
        if location.is_none() {
            self.other_dc_fields = e.other_fields;
            if let Some(d) = e.description {
                let d: String = d
                    .chars()
                    .take(120)
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect();
                self.other_dc_fields.insert(0, (String::from("error_description"), d));
            }
        }
        // The table first (Zoho's own servers): no request for a known location.
        if self.location_source() == Some(&LocationSource::BuiltIn) {
            let dc = match &location {
                Some(l) => DataCenter::from_location(l),
                None => self
                    .other_dc_fields
                    .iter()
                    .find_map(|(_, v)| DataCenter::from_location(v)),
            };
            if let Some(dc) = dc {
                return self.move_to(now, code, Some(String::from(dc.location())), dc.accounts_server());
            }
        }
        // Then what an earlier serverinfo answer said.
        if let Some((l, raw)) = self.learnt(location.as_deref()) {
            return self.follow(now, code, l, &raw);
        }
        if self.serverinfo_base().is_none() {
            return self.fail(self.unresolved(location));
        }
        // Ask serverinfo (the device code travels along in the state).
        State::Resolve {
            code,
            location,
            at: now,
        }
    }

    /// The error when neither the table nor `serverinfo` knows where `other_dc` points.
    fn unresolved(&self, location: Option<String>) -> Error {
        match location {
            Some(l) => Error::UnknownLocation(l),
            None => {
                let mut reply = String::new();
                for (k, v) in &self.other_dc_fields {
                    if !reply.is_empty() {
                        reply.push_str(", ");
                    }
                    reply.push_str(&alloc::format!("{k}={v:?}"));
                }
                if reply.is_empty() {
                    reply.push_str("nothing besides the error");
                } else {
                    reply.insert_str(0, "it held ");
                }
                Error::OtherDcWithoutLocation { reply }
            }
        }
    }

    /// The location `serverinfo` gave this accounts server, when it did.
    fn location_of_url(&self, url: &ServerUrl) -> Option<String> {
        self.known_locations
            .iter()
            .find(|(_, u)| ServerUrl::parse(u).is_ok_and(|u| u == *url))
            .map(|(l, _)| l.clone())
    }

    /// What `serverinfo` said about `location` — or, for an `other_dc` that named none, about
    /// the first of the reply's values that is a location (or accounts server) it lists.
    fn learnt(&self, location: Option<&str>) -> Option<(String, String)> {
        match location {
            Some(l) => self.learnt_location(l).map(|raw| (String::from(l), raw)),
            None => self.other_dc_fields.iter().find_map(|(_, v)| {
                let v = v.trim();
                self.known_locations
                    .iter()
                    .find(|(l, u)| {
                        l.eq_ignore_ascii_case(v)
                            || u.trim_end_matches('/').eq_ignore_ascii_case(v.trim_end_matches('/'))
                    })
                    .cloned()
            }),
        }
    }

    /// The accounts server `serverinfo` gave for `location`, unvalidated.
    fn learnt_location(&self, location: &str) -> Option<String> {
        self.known_locations
            .iter()
            .find(|(l, _)| l == location)
            .map(|(_, u)| u.clone())
    }

    /// Moves to an accounts server named by `serverinfo`, once it proves a valid, safe URL.
    fn follow(&mut self, now: Timestamp, code: ActiveCode, location: String, raw: &str) -> State {
        match ServerUrl::parse(raw) {
            Ok(url) => self.move_to(now, code, Some(location), url),
            Err(e) => self.fail(Error::Unsafe(alloc::format!(
                "serverinfo gave {raw:?} as the accounts server of {location:?}: {e}"
            ))),
        }
    }

    /// Moves polling to `url`, the accounts server of `location` (`None`: an accounts URL
    /// `other_dc` gave whose location nothing names).
    fn move_to(&mut self, now: Timestamp, code: ActiveCode, location: Option<String>, url: ServerUrl) -> State {
        // A server may only send us to a server of the same kind: Zoho to Zoho accounts hosts,
        // https only, loopback only from loopback (the simulator).
        if let Some(current) = &self.accounts
            && let Err(why) = dc::check_accounts_move(current, &url)
        {
            return self.fail(Error::Unsafe(why));
        }
        self.out.push_back(Step::Notice(Notice::OtherDc {
            location: location.clone().unwrap_or_else(|| String::from(url.host())),
            accounts_url: url.as_str().to_string(),
        }));
        self.accounts = Some(url);
        self.location = location;
        // Multi-DC: this DC may need a secret of its own, and there may be none to send.
        if let Some(e) = self.missing_secret() {
            return self.fail(e);
        }
        // Zoho allows one poll per interval per device code, across DCs: wait one interval
        // (at least 30 s when the new server is one of Zoho's own).
        let mut code = code;
        code.interval = code.interval.max(self.poll_floor());
        let at = now.saturating_add(code.interval).min(code.expires_at);
        State::Polling { code, at }
    }

    fn on_serverinfo(
        &mut self,
        now: Timestamp,
        code: ActiveCode,
        location: Option<String>,
        status: u16,
        reply: Reply<Vec<(String, String)>>,
    ) -> State {
        match reply {
            Reply::Ok(locs) => {
                self.failures = 0;
                self.last_transient = None;
                self.known_locations = locs;
                match (self.learnt(location.as_deref()), self.other_dc_url.take()) {
                    (Some((l, raw)), _) => self.follow(now, code, l, &raw),
                    // An accounts URL serverinfo does not list: followed, its location unknown.
                    (None, Some(url)) if location.is_none() => self.move_to(now, code, None, url),
                    (None, _) => {
                        let e = self.unresolved(location);
                        self.fail(e)
                    }
                }
            }
            Reply::Transient(t) => self.resolve_transient(now, code, location, t),
            Reply::Error(e) => self.fail(Error::Server {
                code: e.code,
                description: e.description,
            }),
            // JSON without `locations` (a proxy's page): like an HTML error page, retry while the
            // code lives.
            Reply::Malformed(_) => self.resolve_transient(now, code, location, Transient::UnexpectedJson(status)),
        }
    }

    fn resolve_transient(&mut self, now: Timestamp, code: ActiveCode, location: Option<String>, t: Transient) -> State {
        self.failures += 1;
        self.last_transient = Some(t.clone());
        if now >= code.expires_at {
            return self.code_lapsed(now);
        }
        let delay = self.backoff.delay(self.failures);
        self.out.push_back(Step::Notice(Notice::Retry { reason: t, delay }));
        let at = now.saturating_add(delay).min(code.expires_at);
        State::Resolve { code, location, at }
    }

    /// The code lapsed: fail, or (kiosk) schedule a new one.
    fn code_lapsed(&mut self, now: Timestamp) -> State {
        let Some(kiosk) = self.config.kiosk.clone() else {
            // The code lapsed while every recent poll failed: the network, not the user, is why.
            if self.failures > 0 && self.last_transient.is_some() {
                return State::Failed(self.unavailable());
            }
            return State::Failed(Error::CodeExpired);
        };
        self.lapsed += 1;
        self.failures = 0;
        self.last_transient = None;
        let pause = if self.lapsed < kiosk.pause_after {
            Duration::ZERO
        } else {
            let doublings = (self.lapsed - kiosk.pause_after).min(20);
            kiosk.pause.saturating_mul(1u32 << doublings).min(kiosk.max_pause)
        };
        self.out.push_back(Step::Notice(Notice::CodeExpired { pause }));
        State::RequestCode {
            at: now.saturating_add(pause),
        }
    }
}
