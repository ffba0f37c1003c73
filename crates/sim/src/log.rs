//! What the simulator saw: the request log and counters.

use std::time::{Duration, Instant};

use crate::fault::FaultKind;

/// One request as received by a DC listener.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Sequence number since the simulator started (not reset by `clear_log`).
    pub seq: u64,
    /// HTTP method, e.g. `POST`.
    pub method: String,
    /// Path without query, e.g. `/oauth/v3/device/token`.
    pub path: String,
    /// The raw query string (`None` when the URL has no `?`). Tests assert no secret is here.
    pub query: Option<String>,
    /// Parameters from the query string, then from a form body, in order, percent-decoded.
    pub params: Vec<(String, String)>,
    /// Request headers (names lower-case).
    pub headers: Vec<(String, String)>,
    /// Location code of the DC listener that got the request.
    pub location: String,
    /// When the request's head and body had been read.
    pub at: Instant,
    /// `at` relative to the simulator's start.
    pub elapsed: Duration,
    /// The fault applied to it, if any.
    pub fault: Option<FaultKind>,
    /// HTTP status answered (`None` while in flight, or for a connection reset).
    pub status: Option<u16>,
}

impl LoggedRequest {
    /// The first value of parameter `name` (query or body).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Milliseconds since the simulator started.
    pub fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX)
    }
}

/// Counters since the simulator started.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Device codes issued by `/oauth/v3/device/code`.
    pub codes_issued: u64,
    /// Polls of `/oauth/v3/device/token` that reached the simulated Zoho (any answer).
    pub polls: u64,
    /// Polls answered `slow_down`.
    pub slow_downs: u64,
    /// Pairings completed (tokens handed out by `/oauth/v3/device/token`).
    pub pairings: u64,
    /// Refresh tokens issued.
    pub refresh_tokens_issued: u64,
    /// Refresh tokens evicted because a 21st one was minted for the same user and client.
    pub refresh_tokens_evicted: u64,
    /// Refresh tokens revoked (by the endpoint or by the test).
    pub refresh_tokens_revoked: u64,
    /// Successful refreshes (`/oauth/v2/token` that minted an access token).
    pub refreshes: u64,
    /// Refresh attempts answered `Access Denied` (throttle).
    pub throttled: u64,
    /// Refresh attempts refused for any other reason.
    pub refresh_failures: u64,
    /// Access tokens minted (pairings plus refreshes).
    pub access_tokens_minted: u64,
    /// Books API calls answered 200.
    pub books_ok: u64,
    /// Books API calls refused (401 or 429).
    pub books_refused: u64,
    /// Requests caught by an injected fault.
    pub faults_applied: u64,
}
