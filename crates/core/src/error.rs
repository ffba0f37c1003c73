//! The one error type of the core.

use alloc::string::String;
use core::fmt;

use crate::text::Safe;

/// Why a device flow, refresh or revoke ended without success.
///
/// Errors are sticky: once a [`crate::DeviceFlow`] returns one, every later `poll` returns it
/// again. Each variant says who is at fault and what to do; [`Error::kind`] groups them for
/// callers that map them to exit codes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The user pressed Deny (`access_denied`). Nobody's fault; pair again to retry.
    Denied,
    /// The user code lapsed before anyone approved it (`expired` / `expired_token`).
    CodeExpired,
    /// While polling, the server no longer accepts the device code (`invalid_code`, RFC
    /// `invalid_grant`): it was already used, or the server does not know it. Not the refresh
    /// token's problem: run the login again for a new code. Grouped with [`ErrorKind::Expired`].
    CodeRejected {
        /// The server's error code (`invalid_code`, `invalid_grant`).
        code: String,
    },
    /// The accounts server does not know this client ID (`invalid_client`): wrong client ID, or
    /// the client was registered in another data centre. `location` names the server's DC.
    InvalidClient {
        /// The accounts server that refused the client.
        accounts_url: String,
    },
    /// The client secret is wrong or was reset in the API console (`invalid_client_secret`). A
    /// client enabled in several data centres (Multi-DC) may have another secret in each:
    /// `location` names the DC whose server refused it, when known.
    InvalidClientSecret {
        /// The accounts server that refused the secret.
        accounts_url: String,
        /// Its DC's location code (`eu`), when known.
        location: Option<String>,
    },
    /// A standard server rejected the client (`invalid_client`): unknown client ID, wrong
    /// secret, or an authentication method the client is not registered for.
    ClientRejected {
        /// The server (`scheme://host[:port]`).
        server: String,
        /// The `error_description`, sanitised.
        description: Option<String>,
    },
    /// A standard server does not allow this client the grant it asked for
    /// (`unauthorized_client`, `unsupported_grant_type`): the device grant (or refresh tokens)
    /// must be enabled for the client on the server.
    GrantNotAllowed {
        /// The `error` field.
        code: String,
        /// The `error_description`, sanitised.
        description: Option<String>,
    },
    /// The server refused the scope asked for (`invalid_scope`): a configuration error.
    InvalidScope {
        /// The scope asked for, space-separated.
        scope: String,
        /// Whether the client added `offline_access` to the scopes configured.
        offline_added: bool,
        /// The `error_description`, sanitised.
        description: Option<String>,
    },
    /// The refresh token is unknown or revoked (`invalid_code` on refresh): revoked by the user,
    /// evicted as the user's 21st refresh token, password changed. Pair again. (A device code
    /// refused while polling is [`Error::CodeRejected`].)
    InvalidGrant {
        /// The server's error code (`invalid_code`, `invalid_grant`, …).
        code: String,
    },
    /// Zoho's token throttle (`Access Denied`: more than 10 access tokens per refresh token in
    /// 10 minutes). Transient: wait and retry; the refresh token is fine.
    Throttled,
    /// The server or the network failed every attempt (transport errors, 5xx, non-JSON pages).
    Unavailable {
        /// How many attempts failed in a row.
        attempts: u32,
        /// The last failure.
        last: Transient,
    },
    /// The server sent data the client refuses to act on (an `api_domain` outside the
    /// allow-list, a non-https URL). Nothing was sent there.
    Unsafe(String),
    /// `other_dc` named a location no table or `serverinfo` maps to an accounts server.
    UnknownLocation(String),
    /// `other_dc` named no location (neither `user_location` nor `dc`), and nothing else in the
    /// reply matched a location `serverinfo` knows. Polling cannot follow the user.
    OtherDcWithoutLocation {
        /// What the reply held besides `error` (names and values, printable), for the message.
        reply: String,
    },
    /// A JSON error the protocol does not define (e.g. `invalid_scope`), passed through.
    Server {
        /// The `error` field.
        code: String,
        /// The `error_description` field, when present.
        description: Option<String>,
    },
    /// A reply that is JSON but misses required fields (no `access_token`, no `user_code`).
    Protocol(String),
    /// The caller's configuration cannot work (no scope, no client secret for Zoho, …).
    Config(String),
    /// The caller cancelled the flow.
    Cancelled,
}

/// A server's words kept in an error, on one line: what [`crate::text::Safe`] would escape
/// (Entra's `\r\n`, escape sequences, bidi overrides) becomes spaces, runs of spaces one, and the text is cut at 300
/// characters.
pub fn clean_server_text(s: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    let mut count = 0;
    let mut space = false;
    for c in s.trim().chars() {
        let c = if crate::text::is_unsafe_char(c) || c.is_whitespace() {
            ' '
        } else {
            c
        };
        if c == ' ' {
            if space {
                continue;
            }
            space = true;
        } else {
            space = false;
        }
        if count == MAX {
            out.push('…');
            break;
        }
        out.push(c);
        count += 1;
    }
    String::from(out.trim_end())
}

/// A transient failure: retried with backoff.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Transient {
    /// The driver could not complete the exchange (refused, reset, timeout, DNS, TLS).
    Transport(TransportError),
    /// HTTP 5xx (or 429) without a JSON error body.
    Status(u16),
    /// While polling (or asking `serverinfo`): a JSON body that is neither the expected reply
    /// nor an OAuth error, e.g. a proxy's 403 `{"message":"..."}` or a bare `{}`.
    UnexpectedJson(u16),
    /// A body that is not JSON (an HTML page from a proxy or captive portal, garbage, truncated).
    NotJson(u16),
    /// A body over [`crate::http::MAX_RESPONSE_BYTES`].
    Oversize,
    /// Zoho's token throttle.
    Throttled,
}

/// What the driver saw go wrong with the transport. All are transient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// Could not connect (refused, unreachable).
    Connect,
    /// The name did not resolve.
    Dns,
    /// No answer in time.
    Timeout,
    /// The connection broke mid-exchange.
    Reset,
    /// TLS failed (a stale clock makes certificates "not yet valid").
    Tls,
    /// Anything else.
    Other,
}

/// Groups of [`Error`]s, one per thing the user does next (and one exit code in the CLI).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The user denied access.
    Denied,
    /// The code expired, or the server no longer accepts it: log in again.
    Expired,
    /// Zoho rejected the client: fix the client ID, secret or DC.
    ClientRejected,
    /// The refresh token is gone: pair again.
    NeedsPairing,
    /// Zoho or the network is unavailable, or throttled: try later.
    Unavailable,
    /// Unsafe server data refused.
    Unsafe,
    /// Bad configuration.
    Config,
    /// The caller cancelled.
    Cancelled,
    /// Anything else the server said.
    Other,
}

impl Error {
    /// The group this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Denied => ErrorKind::Denied,
            Error::CodeExpired | Error::CodeRejected { .. } => ErrorKind::Expired,
            Error::InvalidClient { .. }
            | Error::InvalidClientSecret { .. }
            | Error::OtherDcWithoutLocation { .. }
            | Error::ClientRejected { .. }
            | Error::GrantNotAllowed { .. } => ErrorKind::ClientRejected,
            Error::InvalidScope { .. } => ErrorKind::Config,
            Error::InvalidGrant { .. } => ErrorKind::NeedsPairing,
            Error::Throttled | Error::Unavailable { .. } => ErrorKind::Unavailable,
            Error::Unsafe(_) => ErrorKind::Unsafe,
            Error::Config(_) => ErrorKind::Config,
            Error::Cancelled => ErrorKind::Cancelled,
            Error::UnknownLocation(_) | Error::Server { .. } | Error::Protocol(_) => ErrorKind::Other,
        }
    }

    /// Whether retrying the same operation later can succeed (network, 5xx, throttle).
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Throttled | Error::Unavailable { .. })
    }

    /// A short machine-readable name (`denied`, `invalid_client`, …) for JSON events.
    pub fn code(&self) -> &str {
        match self {
            Error::Denied => "denied",
            Error::CodeExpired => "expired",
            Error::CodeRejected { .. } => "code_rejected",
            Error::InvalidClient { .. } => "invalid_client",
            Error::InvalidClientSecret { .. } => "invalid_client_secret",
            Error::ClientRejected { .. } => "client_rejected",
            Error::GrantNotAllowed { .. } => "grant_not_allowed",
            Error::InvalidScope { .. } => "invalid_scope",
            Error::InvalidGrant { .. } => "invalid_grant",
            Error::Throttled => "throttled",
            Error::Unavailable { .. } => "unavailable",
            Error::Unsafe(_) => "unsafe_server_data",
            Error::UnknownLocation(_) => "unknown_location",
            Error::OtherDcWithoutLocation { .. } => "other_dc_without_location",
            Error::Server { code, .. } => code,
            Error::Protocol(_) => "protocol",
            Error::Config(_) => "config",
            Error::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Denied => f.write_str("access was denied on the approval page; run the login again to get a new code"),
            Error::CodeExpired => f.write_str("the code expired before it was approved; run the login again (or use --kiosk to renew codes automatically)"),
            Error::CodeRejected { code } => write!(
                f,
                "the server no longer accepts this device code ({}: already used, or unknown); run the login again for a new code",
                Safe(code)
            ),
            Error::InvalidClient { accounts_url } => write!(
                f,
                "{accounts_url} does not know this client ID (invalid_client): check the client ID, and that the client was registered in this data centre (or enable it under Multi-DC in the API console)"
            ),
            Error::InvalidClientSecret { accounts_url, location: Some(loc) } => write!(
                f,
                "data centre {loc} ({accounts_url}) rejected the client secret (invalid_client_secret): a client enabled in several data centres (Multi-DC) may have a separate secret in each; give {loc}'s secret from the API console (it changes when reset)"
            ),
            Error::InvalidClientSecret { accounts_url, location: None } => write!(
                f,
                "{accounts_url} rejected the client secret (invalid_client_secret): copy it again from the API console (it changes when reset)"
            ),
            Error::ClientRejected { server, description } => {
                write!(f, "{server} rejected the client (invalid_client")?;
                if let Some(d) = description {
                    write!(f, ": {d}")?;
                }
                f.write_str("): check the client ID and secret, and how the server expects the client to authenticate")
            }
            Error::GrantNotAllowed { code, description } => {
                write!(f, "the server does not allow this client the grant it asked for ({code}")?;
                if let Some(d) = description {
                    write!(f, ": {d}")?;
                }
                f.write_str("): enable the device authorization grant (and refresh tokens) for the client on the server")
            }
            Error::InvalidScope { scope, description, .. } => {
                if scope.is_empty() {
                    f.write_str("the server refused the scope (invalid_scope")?;
                } else {
                    write!(f, "the server refused the scope \"{scope}\" (invalid_scope")?;
                }
                if let Some(d) = description {
                    write!(f, ": {d}")?;
                }
                f.write_str(")")
            }
            Error::InvalidGrant { code } => write!(
                f,
                "the refresh token is no longer valid ({}): it was revoked, replaced by newer pairings (Zoho keeps 20 per user and client), or the password changed; pair the device again",
                Safe(code)
            ),
            Error::Throttled => f.write_str("Zoho's token throttle was hit (at most 10 access tokens per refresh token in 10 minutes); try again in a few minutes"),
            Error::Unavailable { attempts, last } => write!(f, "the server could not be reached after {attempts} attempt(s); last failure: {last}"),
            Error::UnknownLocation(loc) => write!(f, "the account lives in data centre \"{}\", which is not known; set the accounts URL explicitly", Safe(loc)),
            Error::Server { code, description: Some(d) } => write!(f, "the server answered {}: {}", Safe(code), Safe(d)),
            Error::Server { code, description: None } => write!(f, "the server answered {}", Safe(code)),
            Error::Protocol(why) => write!(f, "unexpected reply from the server: {}", Safe(why)),
            Error::Unsafe(why) => write!(f, "unsafe server data refused: {}", Safe(why)),
            Error::OtherDcWithoutLocation { reply } => write!(
                f,
                "the server answered other_dc (the account lives in another data centre) without naming it (no user_location, no dc), and serverinfo did not match anything in the reply ({}); start the login at the user's data centre (the domain they sign in at: accounts.zoho.eu is eu), with the client enabled there (Multi-DC)",
                Safe(reply)
            ),
            Error::Config(why) => write!(f, "configuration error: {why}"),
            Error::Cancelled => f.write_str("cancelled"),
        }
    }
}

impl fmt::Display for Transient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transient::Transport(t) => write!(f, "{t}"),
            Transient::Status(s) => write!(f, "HTTP {s}"),
            Transient::NotJson(s) => write!(
                f,
                "HTTP {s} with a non-JSON body (an error page, a proxy or a captive portal)"
            ),
            Transient::UnexpectedJson(s) => write!(
                f,
                "HTTP {s} with JSON that is neither the expected reply nor an OAuth error (a proxy or gateway?)"
            ),
            Transient::Oversize => f.write_str("reply too large"),
            Transient::Throttled => f.write_str("Zoho's token throttle"),
        }
    }
}

impl Transient {
    /// A short machine-readable name for JSON events (`connect`, `http_503`, `not_json`, …).
    pub fn code(&self) -> String {
        match self {
            Transient::Transport(t) => String::from(t.code()),
            Transient::Status(s) => alloc::format!("http_{s}"),
            Transient::NotJson(_) => String::from("not_json"),
            Transient::UnexpectedJson(_) => String::from("unexpected_json"),
            Transient::Oversize => String::from("oversize"),
            Transient::Throttled => String::from("throttled"),
        }
    }
}

impl TransportError {
    /// A short machine-readable name.
    pub fn code(self) -> &'static str {
        match self {
            TransportError::Connect => "connect",
            TransportError::Dns => "dns",
            TransportError::Timeout => "timeout",
            TransportError::Reset => "reset",
            TransportError::Tls => "tls",
            TransportError::Other => "transport",
        }
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransportError::Connect => "could not connect",
            TransportError::Dns => "the host name did not resolve",
            TransportError::Timeout => "timed out",
            TransportError::Reset => "the connection was reset",
            TransportError::Tls => "TLS failed (check the clock: certificates look invalid when the date is wrong)",
            TransportError::Other => "transport error",
        })
    }
}

/// One failed transport attempt: [`Error::Unavailable`] after 1 attempt.
impl From<TransportError> for Error {
    fn from(e: TransportError) -> Error {
        Error::Unavailable {
            attempts: 1,
            last: Transient::Transport(e),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
