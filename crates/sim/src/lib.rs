//! A local simulator of Zoho Accounts (OAuth device flow) and the Zoho Books API, on loopback.
//!
//! # Design
//!
//! Zoho cannot be reached from build machines, so this crate plays Zoho: a real HTTP/1.1 server
//! on `127.0.0.1` that speaks Zoho's dialect as described in `shared/docs/zoho-protocol.md` —
//! `grant_type=device_request`/`device_token`, the device code in `code`, `interval` and
//! `expires_in` in milliseconds, errors as JSON with HTTP 200, `other_dc`, the refresh throttle
//! (`Access Denied`), the 15-access-token and 20-refresh-token limits, and Books' 401/429 codes.
//!
//! * **One listener per data centre.** Each DC (`us`, `eu`, ...) gets its own port; its base URL
//!   `http://127.0.0.1:PORT` is both that DC's accounts server and its `api_domain`.
//!   `/oauth/serverinfo` maps location codes to those URLs. Device codes are global (any DC can
//!   look them up, which is how `other_dc` works); refresh and access tokens live only in the
//!   user's DC, as in Zoho where each DC has its own database.
//! * **State machine apart from I/O.** The `zoho` module holds all state and takes `now` on every
//!   call; the `server` module decodes HTTP (query string and form body alike), logs, applies
//!   faults, and encodes replies. Everything sits behind one mutex that is never held across an
//!   `.await`.
//! * **Own accept loop.** Routing is axum, but connections are served with hyper directly so a
//!   [`FaultKind::Reset`] can really reset the TCP connection mid-request.
//! * **Own thread and runtime.** [`Simulator::spawn`] binds every port synchronously (errors come
//!   back at once), then serves from a background thread with a current-thread tokio runtime, so
//!   it works from plain `#[test]`s and from inside another runtime alike. Dropping the
//!   [`Simulator`] stops it and closes every socket.
//! * **Observable.** Every request is logged ([`LoggedRequest`]: method, path, raw query,
//!   decoded parameters, headers, DC, time) so tests can assert poll spacing, refresh counts and
//!   that no secret ever travels in a URL. [`Stats`] counts what happened.
//!
//! The simulator never prints; it emits `tracing` events at debug level with paths only, never
//! parameters (they hold secrets).
//!
//! # Choices where Zoho's documentation is silent
//!
//! * Checks run in this order: client known in this DC (`invalid_client`), secret
//!   (`invalid_client_secret` when polling; `invalid_client` on `/oauth/v2/token`), grant type
//!   (`unsupported_grant_type`, also for RFC 8628's `urn:...:device_code`), then the code.
//! * A device code must be polled with the client it was issued to; a spent code, an unknown one,
//!   or one sent as `device_code` instead of `code` gives `invalid_code`.
//! * `slow_down`: a poll less than `interval` after the previous poll of the same code, whatever
//!   that poll's answer was (a `slow_down` poll also restarts the clock). The first poll may come
//!   at once. Expiry is checked before spacing.
//! * Multi-DC secrets: a client may have a secret of its own in a DC
//!   ([`ClientConfig::with_dc_secret`]); there only that one is accepted, elsewhere the common one.
//! * `other_dc` names the DC in `user_location` by default; [`OtherDcField`] switches to `dc`,
//!   both, a whole accounts URL, or nothing.
//! * After `other_dc`, the user's DC must also know the client (Zoho's "Multi-DC" setting);
//!   otherwise that DC answers `invalid_client`.
//! * Refresh at a DC that knows the client but is not the user's: `invalid_code` (each DC has
//!   its own database, so the token does not exist there). At a DC that does not know the client:
//!   `invalid_client`.
//! * The throttle counts refreshes only (not the access token of the pairing itself); the
//!   `Access Denied` reply follows the HTTP-400 switch like every other OAuth error.
//! * Scopes must be comma-separated `Service.scope[.OPERATION]` names: a space-separated list is
//!   `invalid_scope`. `/books/v3/organizations` accepts `ZohoBooks.settings.READ`,
//!   `ZohoBooks.settings.ALL`, `ZohoBooks.settings.*` and `ZohoBooks.fullaccess.all`.
//! * Revoking an unknown token, or a token at a DC other than its own, is HTTP 400
//!   `{"status":"failure","error":"invalid_token"}`.
//! * Auto-approve happens when a code is polled and either condition (time or poll count) holds;
//!   the poll that triggers it already gets the answer (tokens or `other_dc`).
//! * Faults other than delays answer without touching state, so the request is safe to repeat.
//!
//! # Example
//!
//! ```no_run
//! use zoho_device_sim::{SimConfig, Simulator};
//!
//! let sim = Simulator::spawn(SimConfig::default().interval_ms(200).auto_approve_after_polls(2))?;
//! let us = sim.accounts_url("us");
//! // POST {us}/oauth/v3/device/code, then poll {us}/oauth/v3/device/token ...
//! # Ok::<(), std::io::Error>(())
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod books;
mod config;
mod fault;
mod log;
mod page;
mod server;
mod zoho;

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

pub use config::{AutoApprove, ClientConfig, OrgConfig, OtherDcField, SimConfig, UserConfig};
pub use fault::{Fault, FaultKind};
pub use log::{LoggedRequest, Stats};

use server::Shared;

/// A running simulator: one HTTP listener per configured DC. Dropping it shuts it down.
pub struct Simulator {
    shared: Arc<Shared>,
    locations: Vec<String>,
    urls: BTreeMap<String, String>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Simulator").field("urls", &self.urls).finish()
    }
}

impl Simulator {
    /// Starts every DC listener on `127.0.0.1` (port 0, or `port_base + i`) on a background
    /// thread with its own tokio runtime.
    ///
    /// Works from synchronous code and from inside another runtime. Fails with
    /// `InvalidInput` for a contradictory [`SimConfig`], or with the bind error.
    pub fn spawn(config: SimConfig) -> io::Result<Simulator> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let mut listeners = Vec::new();
        let mut urls = BTreeMap::new();
        {
            // Register the sockets with this runtime's reactor from this thread, so bind errors
            // surface here.
            let _guard = runtime.enter();
            for (i, location) in config.locations.iter().enumerate() {
                let port = match config.port_base {
                    None => 0,
                    Some(base) => u16::try_from(i)
                        .ok()
                        .and_then(|i| base.checked_add(i))
                        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "port base too high"))?,
                };
                let std_listener = std::net::TcpListener::bind(("127.0.0.1", port))?;
                std_listener.set_nonblocking(true)?;
                let port = std_listener.local_addr()?.port();
                urls.insert(location.clone(), format!("http://127.0.0.1:{port}"));
                listeners.push((location.clone(), tokio::net::TcpListener::from_std(std_listener)?));
            }
        }
        let locations = config.locations.clone();
        let shared = Arc::new(Shared::new(zoho::Zoho::new(config, urls.clone(), Instant::now())));
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("zoho-device-sim".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    for (location, listener) in listeners {
                        tokio::spawn(server::serve_dc(listener, thread_shared.clone(), location));
                    }
                    // Sender dropped or fired: either way, stop.
                    let _ = stopped.await;
                });
                // Dropping the runtime cancels every connection task and closes the sockets.
                drop(runtime);
            })?;
        Ok(Simulator {
            shared,
            locations,
            urls,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The base URL (`http://127.0.0.1:PORT`) of DC `location`: its accounts server and its
    /// `api_domain`.
    ///
    /// # Panics
    ///
    /// If `location` is not one of [`Simulator::locations`] (a test bug).
    pub fn accounts_url(&self, location: &str) -> String {
        match self.urls.get(location) {
            Some(url) => url.clone(),
            None => panic!("the simulator runs no DC {location:?} (it runs {:?})", self.locations),
        }
    }

    /// The base URL of DC `location`, or `None` if it is not run.
    pub fn url(&self, location: &str) -> Option<&str> {
        self.urls.get(location).map(String::as_str)
    }

    /// The location codes of the running DCs, in configuration order.
    pub fn locations(&self) -> Vec<String> {
        self.locations.clone()
    }

    /// Every request received since start or the last [`Simulator::clear_log`], oldest first.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.with(|z| z.requests())
    }

    /// The logged requests to `path`, oldest first.
    pub fn requests_to(&self, path: &str) -> Vec<LoggedRequest> {
        let mut v = self.requests();
        v.retain(|r| r.path == path);
        v
    }

    /// Empties the request log.
    pub fn clear_log(&self) {
        self.shared.with(|z| z.clear_log());
    }

    /// Arms a fault for the next `fault.count` requests to `fault.path`. Faults are applied in
    /// the order armed.
    pub fn inject(&self, fault: Fault) {
        self.shared.with(|z| z.inject(fault));
    }

    /// Disarms every fault.
    pub fn clear_faults(&self) {
        self.shared.with(|z| z.clear_faults());
    }

    /// Approves `user_code` as the default approver, as if on the web page. `false` if the code
    /// is unknown, lapsed, or already decided.
    pub fn approve(&self, user_code: &str) -> bool {
        let now = Instant::now();
        self.shared.with(|z| match z.default_approver() {
            Some(user) => z.approve(user_code, &user, now),
            None => false,
        })
    }

    /// Approves `user_code` as the named user (who decides the DC of the tokens: `other_dc`).
    pub fn approve_as(&self, user_code: &str, user: &str) -> bool {
        let now = Instant::now();
        self.shared.with(|z| z.approve(user_code, user, now))
    }

    /// Denies `user_code` (the device then gets `access_denied`). `false` if unknown, lapsed, or
    /// already decided.
    pub fn deny(&self, user_code: &str) -> bool {
        let now = Instant::now();
        self.shared.with(|z| z.deny(user_code, now))
    }

    /// User codes waiting for a decision, oldest first.
    pub fn pending_user_codes(&self) -> Vec<String> {
        let now = Instant::now();
        self.shared.with(|z| z.pending_user_codes(now))
    }

    /// Lapses every device code now: the next poll of each gets `expired`.
    pub fn expire_codes(&self) {
        let now = Instant::now();
        self.shared.with(|z| z.expire_codes(now));
    }

    /// Revokes every refresh token, as users removing the app would; their access tokens die.
    pub fn revoke_refresh_tokens(&self) {
        self.shared.with(|z| z.revoke_all());
    }

    /// Revokes one refresh token; `false` if it is not live.
    pub fn revoke_refresh_token(&self, token: &str) -> bool {
        self.shared.with(|z| z.revoke_refresh_token(token))
    }

    /// The live refresh tokens of user `user`, oldest first.
    pub fn refresh_tokens(&self, user: &str) -> Vec<String> {
        self.shared.with(|z| z.refresh_tokens_of(user))
    }

    /// Whether `token` is a live access token.
    pub fn access_token_live(&self, token: &str) -> bool {
        let now = Instant::now();
        self.shared.with(|z| z.access_token_live(token, now))
    }

    /// Counters since start.
    pub fn stats(&self) -> Stats {
        self.shared.with(|z| z.stats())
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
