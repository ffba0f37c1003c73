//! The wire dialects: Zoho's, and standard RFC 8628.
//!
//! Everything that differs between Zoho and the RFC lives here and nowhere else: parameter
//! names, grant types, scope separators, units, error names. The state machine in
//! [`crate::flow`] only sees the normalised results.
//!
//! | | Zoho | RFC 8628 |
//! |---|---|---|
//! | initiation | `grant_type=device_request`, `access_type`, `prompt` | no grant type |
//! | poll grant | `device_token`, code in `code=` | `urn:ietf:params:oauth:grant-type:device_code`, `device_code=` |
//! | scopes | comma-separated | space-separated |
//! | units | milliseconds (decided from `expires_in`, see [`normalize_timing`]) | seconds |
//! | token `expires_in` | seconds; legacy `expires_in_sec` wins, ≥ 360 000 means ms ([`normalize_token_lifetime`]) | seconds |
//! | URL field | `verification_url` | `verification_uri` |
//! | expiry error | `expired` | `expired_token` (both accepted in both) |
//! | `other_dc` location | `user_location`, or `dc` (a code or an accounts URL) | — |
//! | poll spacing | at least 30 s on Zoho's hosts ([`ZOHO_MIN_POLL_INTERVAL`]) | `interval` |
//! | client secret | required | optional (public clients) |

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use serde_json::{Map, Value};

use crate::dc::ServerUrl;
use crate::error::Transient;
use crate::http::{Form, HttpRequest, MAX_RESPONSE_BYTES, Purpose};
use crate::secret::{AccessToken, ClientSecret, DeviceCode, RefreshToken};

/// Which dialect the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Profile {
    /// Zoho Accounts (the default).
    #[default]
    Zoho,
    /// Standard RFC 8628 (Entra, Google, Keycloak, Auth0, oidc-provider, …).
    Rfc8628,
}

impl Profile {
    /// `zoho` or `rfc8628`: the name settings and the token file use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Profile::Zoho => "zoho",
            Profile::Rfc8628 => "rfc8628",
        }
    }

    /// Reads [`Profile::as_str`]'s names, exactly (a token file or a setting naming another
    /// profile is refused, never taken for Zoho).
    pub fn parse(s: &str) -> Option<Profile> {
        [Profile::Zoho, Profile::Rfc8628].into_iter().find(|p| p.as_str() == s)
    }
}

/// How a confidential client proves itself to a standard server (RFC 6749 §2.3.1). Zoho always
/// takes the secret in the form body; public clients (no secret) send only their ID.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// The form body first (`client_secret_post`); on a 401 `invalid_client`, once, HTTP Basic.
    #[default]
    Auto,
    /// `client_secret_post`: `client_id` and `client_secret` in the form body.
    Post,
    /// `client_secret_basic`: `Authorization: Basic`, the ID (and only the ID) also in the body.
    Basic,
}

impl ClientAuth {
    /// `auto`, `post` or `basic`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ClientAuth::Auto => "auto",
            ClientAuth::Post => "post",
            ClientAuth::Basic => "basic",
        }
    }

    /// Reads `auto`, `post`/`client_secret_post` or `basic`/`client_secret_basic`.
    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(ClientAuth::Auto),
            "post" | "client_secret_post" => Some(ClientAuth::Post),
            "basic" | "client_secret_basic" => Some(ClientAuth::Basic),
            _ => None,
        }
    }

    /// The method to use given a server's `token_endpoint_auth_methods_supported`: Basic when
    /// only Basic is listed, the body when only the body is, [`ClientAuth::Auto`] otherwise.
    pub fn from_supported<'a>(methods: impl IntoIterator<Item = &'a str>) -> ClientAuth {
        let (mut post, mut basic) = (false, false);
        for m in methods {
            post |= m == "client_secret_post";
            basic |= m == "client_secret_basic";
        }
        match (post, basic) {
            (false, true) => ClientAuth::Basic,
            (true, false) => ClientAuth::Post,
            _ => ClientAuth::Auto,
        }
    }
}

/// The OAuth client: its ID and (for Zoho, required) secret.
#[derive(Clone, Debug)]
pub struct ClientCredentials {
    /// The client ID (not a secret).
    pub client_id: String,
    /// The client secret; `None` for public clients of standard servers.
    pub client_secret: Option<ClientSecret>,
}

impl ClientCredentials {
    /// The credentials to use at the data centre `location`: its own secret when `secrets`
    /// holds one, else the common [`ClientCredentials::client_secret`]. `None` (a server whose
    /// DC is unknown, a standard server) means the common secret.
    pub fn at(&self, secrets: &DcSecrets, location: Option<&str>) -> ClientCredentials {
        let own = location.and_then(|l| secrets.get(l));
        ClientCredentials {
            client_id: self.client_id.clone(),
            client_secret: own.or(self.client_secret.as_ref()).cloned(),
        }
    }
}

/// Client secrets per data centre (Zoho's Multi-DC: a client enabled in several DCs keeps its
/// client ID but may have another secret in each). Keyed by location code (`us`, `eu`, …,
/// lower case); a DC without an entry uses the common secret ([`ClientCredentials::at`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DcSecrets {
    secrets: Vec<(String, ClientSecret)>,
}

impl DcSecrets {
    /// No per-DC secret: every DC uses the common one.
    pub fn new() -> DcSecrets {
        DcSecrets::default()
    }

    /// Sets the secret of the DC `location` (case-insensitive), replacing an earlier one.
    pub fn insert(&mut self, location: &str, secret: ClientSecret) {
        let location = location.trim().to_ascii_lowercase();
        match self.secrets.iter_mut().find(|(l, _)| *l == location) {
            Some(entry) => entry.1 = secret,
            None => self.secrets.push((location, secret)),
        }
    }

    /// [`DcSecrets::insert`], as a builder.
    pub fn with(mut self, location: &str, secret: ClientSecret) -> DcSecrets {
        self.insert(location, secret);
        self
    }

    /// The secret of the DC `location` (case-insensitive), when one was given.
    pub fn get(&self, location: &str) -> Option<&ClientSecret> {
        let location = location.trim();
        self.secrets
            .iter()
            .find(|(l, _)| l.eq_ignore_ascii_case(location))
            .map(|(_, s)| s)
    }

    /// The locations with a secret of their own, in the order given.
    pub fn locations(&self) -> impl Iterator<Item = &str> {
        self.secrets.iter().map(|(l, _)| l.as_str())
    }

    /// Whether no DC has a secret of its own.
    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }
}

/// Zoho's default code lifetime when `expires_in` is missing.
pub const DEFAULT_CODE_LIFETIME: Duration = Duration::from_secs(300);
/// The default poll interval when `interval` is missing (Zoho: 30 s; RFC 8628: 5 s).
pub const ZOHO_DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
/// RFC 8628's default interval.
pub const RFC_DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// The longest interval accepted from a server; longer ones are clamped.
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// The longest code lifetime accepted from a server; longer ones are clamped.
pub const MAX_CODE_LIFETIME: Duration = Duration::from_secs(3600);
/// Zoho's polling page: two polls of one device code within 30 seconds are answered with
/// `slow_down`, whatever `interval` said. The flow polls Zoho's own accounts hosts no sooner.
pub const ZOHO_MIN_POLL_INTERVAL: Duration = Duration::from_secs(30);
/// An access token lifetime assumed when the server gives none.
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// The longest access token lifetime accepted; longer ones are clamped.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// A device authorization reply, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceAuthorization {
    /// The secret device code.
    pub device_code: DeviceCode,
    /// The code the user types.
    pub user_code: String,
    /// The page where the user types it.
    pub verification_url: String,
    /// The page with the code filled in, when the server sends one.
    pub verification_uri_complete: Option<String>,
    /// Poll interval.
    pub interval: Duration,
    /// Code lifetime.
    pub expires_in: Duration,
}

/// A token reply, normalised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenGrant {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token (absent on Zoho refreshes, and without `access_type=offline`).
    pub refresh_token: Option<RefreshToken>,
    /// Zoho's `api_domain`, unvalidated.
    pub api_domain: Option<String>,
    /// `token_type`, usually `Bearer`.
    pub token_type: String,
    /// Lifetime of the access token.
    pub expires_in: Duration,
    /// Granted scope, when the server says.
    pub scope: Option<String>,
}

/// An OAuth error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// `error`, verbatim (`authorization_pending`, `Access Denied`, …).
    pub code: String,
    /// `error_description`.
    pub description: Option<String>,
    /// Where `other_dc` says the user's account lives: Zoho's pages name it in `user_location`,
    /// a public Zoho client reads it from `dc`; the first present wins. A location code (`eu`)
    /// or, from some servers, a whole accounts URL.
    pub user_location: Option<String>,
    /// `interval` (seconds), which some servers (GitHub) send with `slow_down`.
    pub interval: Option<u64>,
    /// The body's other fields (not `error`, `error_description`, `user_location`, `dc`) as
    /// name and value text (control characters blanked, long values cut, at most 16 fields),
    /// by name: what a message can quote when the reply says less than expected.
    pub other_fields: Vec<(String, String)>,
}

/// How a reply body reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply<T> {
    /// A success body.
    Ok(T),
    /// A JSON error body (whatever the HTTP status: Zoho sends errors with 200).
    Error(OAuthError),
    /// Not an answer: retry later.
    Transient(Transient),
    /// JSON without the required fields.
    Malformed(String),
}

// ---------------------------------------------------------------------------------------------
// Requests

fn scope_string(profile: Profile, scopes: &[String]) -> String {
    let sep = match profile {
        Profile::Zoho => ",",
        Profile::Rfc8628 => " ",
    };
    let mut out = String::new();
    for s in scopes.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        if !out.is_empty() {
            out.push_str(sep);
        }
        out.push_str(s);
    }
    out
}

/// Adds the client's credentials: the ID always in the body; the secret in the body, or with
/// [`ClientAuth::Basic`] (standard profile only) in the `Authorization` value returned.
fn with_client(profile: Profile, form: Form, client: &ClientCredentials, auth: ClientAuth) -> (Form, Option<String>) {
    let form = form.field("client_id", &client.client_id);
    match &client.client_secret {
        Some(secret) if profile == Profile::Rfc8628 && auth == ClientAuth::Basic => {
            (form, Some(basic_authorization(&client.client_id, secret.expose())))
        }
        Some(secret) => (form.field("client_secret", secret.expose()), None),
        None => (form, None),
    }
}

/// `Basic base64(urlencode(id) ":" urlencode(secret))` (RFC 6749 §2.3.1 form-encodes both first).
fn basic_authorization(id: &str, secret: &str) -> String {
    // A form of one nameless field is "=value", encoded.
    let encoded = |v: &str| {
        let form = Form::new().field("", v);
        String::from_utf8_lossy(&form.as_bytes()[1..]).into_owned()
    };
    let pair = alloc::format!("{}:{}", encoded(id), encoded(secret));
    let mut out = String::from("Basic ");
    base64_into(&mut out, pair.as_bytes());
    out
}

/// Standard base64 with padding (RFC 4648 §4).
fn base64_into(out: &mut String, bytes: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
}

fn post(url: ServerUrl, form: &Form, purpose: Purpose, authorization: Option<String>) -> HttpRequest {
    let mut req = HttpRequest::post_form(url, form, purpose);
    req.authorization = authorization;
    req
}

/// The device authorization request.
pub fn device_code_request(
    profile: Profile,
    url: ServerUrl,
    client: &ClientCredentials,
    scopes: &[String],
    offline: bool,
    consent: bool,
    auth: ClientAuth,
) -> HttpRequest {
    let mut authorization = None;
    let form = match profile {
        Profile::Zoho => {
            let form = Form::new()
                .field("client_id", &client.client_id)
                .field("grant_type", "device_request")
                .field("scope", &scope_string(profile, scopes))
                .field("access_type", if offline { "offline" } else { "online" });
            if consent { form.field("prompt", "consent") } else { form }
        }
        Profile::Rfc8628 => {
            // Confidential clients authenticate here too; public ones send only the ID.
            let (form, basic) = with_client(profile, Form::new(), client, auth);
            authorization = basic;
            let mut scope = scope_string(profile, scopes);
            if offline && !scope.split(' ').any(|s| s == "offline_access") {
                if !scope.is_empty() {
                    scope.push(' ');
                }
                scope.push_str("offline_access");
            }
            form.field("scope", &scope)
        }
    };
    post(url, &form, Purpose::DeviceCode, authorization)
}

/// A poll of the token endpoint.
pub fn poll_request(
    profile: Profile,
    url: ServerUrl,
    client: &ClientCredentials,
    code: &DeviceCode,
    auth: ClientAuth,
) -> HttpRequest {
    let (form, authorization) = with_client(profile, Form::new(), client, auth);
    let form = match profile {
        Profile::Zoho => form.field("grant_type", "device_token").field("code", code.expose()),
        Profile::Rfc8628 => form
            .field("grant_type", "urn:ietf:params:oauth:grant-type:device_code")
            .field("device_code", code.expose()),
    };
    post(url, &form, Purpose::Poll, authorization)
}

/// A refresh request (Zoho: `{accounts}/oauth/v2/token`). `auth` matters only for a
/// standard server ([`ClientAuth::Basic`]); Zoho's token endpoint takes the body.
pub fn refresh_request(
    profile: Profile,
    url: ServerUrl,
    client: &ClientCredentials,
    token: &RefreshToken,
    auth: ClientAuth,
) -> HttpRequest {
    let (form, authorization) = with_client(profile, Form::new(), client, auth);
    let form = form
        .field("grant_type", "refresh_token")
        .field("refresh_token", token.expose());
    post(url, &form, Purpose::Refresh, authorization)
}

/// A revocation request (Zoho: `{accounts}/oauth/v2/token/revoke`, `token=`; RFC 7009 adds
/// `token_type_hint` and client authentication).
pub fn revoke_request(
    profile: Profile,
    url: ServerUrl,
    client: &ClientCredentials,
    token: &RefreshToken,
    auth: ClientAuth,
) -> HttpRequest {
    match profile {
        Profile::Zoho => HttpRequest::post_form(url, &Form::new().field("token", token.expose()), Purpose::Revoke),
        Profile::Rfc8628 => {
            let (form, authorization) = with_client(profile, Form::new(), client, auth);
            let form = form
                .field("token", token.expose())
                .field("token_type_hint", "refresh_token");
            post(url, &form, Purpose::Revoke, authorization)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Replies

/// Reads a body as a JSON object, deciding from the body, not the status: a JSON `error`
/// is an error at any status; a non-JSON body is transient at any status.
///
/// Also read: a UTF-8 byte-order mark before the JSON, and a 4xx `{"status":400,"message":…}`
/// whose `message` is one of RFC 8628's polling errors (Twitch's way of saying
/// `authorization_pending`) as that error. Any other `message` body stays "not an answer".
fn object(status: u16, body: &[u8]) -> Result<Map<String, Value>, Reply<()>> {
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(Reply::Transient(Transient::Oversize));
    }
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let map = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) | Err(_) => return Err(Reply::Transient(Transient::NotJson(status))),
    };
    if let Some(err) = map.get("error") {
        let code = match err {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        // Zoho's throttle: `Access Denied` (capitals and a space) — not `access_denied`.
        if code == "Access Denied" {
            return Err(Reply::Transient(Transient::Throttled));
        }
        return Err(Reply::Error(OAuthError {
            code,
            description: str_field(&map, "error_description"),
            user_location: str_field(&map, "user_location").or_else(|| str_field(&map, "dc")),
            interval: num_field(&map, "interval"),
            other_fields: other_fields(&map),
        }));
    }
    if (400..500).contains(&status)
        && let Some(code) = str_field(&map, "message").filter(|m| {
            matches!(
                m.as_str(),
                "authorization_pending" | "slow_down" | "access_denied" | "expired_token"
            )
        })
    {
        return Err(Reply::Error(OAuthError {
            code,
            description: None,
            user_location: None,
            interval: num_field(&map, "interval"),
            other_fields: Vec::new(),
        }));
    }
    if status >= 500 || status == 429 {
        return Err(Reply::Transient(Transient::Status(status)));
    }
    Ok(map)
}

/// An error body's fields beyond the ones [`OAuthError`] names, as printable text.
fn other_fields(map: &Map<String, Value>) -> Vec<(String, String)> {
    const KNOWN: [&str; 4] = ["error", "error_description", "user_location", "dc"];
    const MAX: usize = 80;
    let printable = |s: &str| -> String {
        let mut out: String = s
            .chars()
            .take(MAX)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if s.chars().count() > MAX {
            out.push('…');
        }
        out
    };
    map.iter()
        .filter(|(k, _)| !KNOWN.contains(&k.as_str()))
        .take(16)
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => printable(s),
                other => printable(&other.to_string()),
            };
            (printable(k), text)
        })
        .collect()
}

fn str_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    match map.get(name) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

/// A number that may arrive as a JSON number or a numeric string. Negative, fractional
/// and non-finite values read as absent.
fn num_field(map: &Map<String, Value>, name: &str) -> Option<u64> {
    match map.get(name)? {
        Value::Number(n) => n
            .as_u64()
            .or_else(|| n.as_f64().filter(|f| f.is_finite() && *f >= 0.0).map(|f| f as u64)),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    }
}

fn recast<T>(r: Reply<()>) -> Reply<T> {
    match r {
        Reply::Ok(()) => Reply::Malformed("empty".to_string()),
        Reply::Error(e) => Reply::Error(e),
        Reply::Transient(t) => Reply::Transient(t),
        Reply::Malformed(m) => Reply::Malformed(m),
    }
}

/// Normalises a device-code reply's `interval` and `expires_in` to durations. With
/// [`normalize_token_lifetime`] beside it, the only place where units are decided.
///
/// Zoho profile: the unit is decided once per reply from `expires_in`: ≥ 10 000 means
/// milliseconds (no code lives 2.8 hours; Zoho's live 300 000 ms), smaller means seconds, and
/// `interval` uses the same unit. Without `expires_in`, an `interval` ≥ 1000 is milliseconds.
/// Missing `interval` means 30 s; missing `expires_in` 300 s. RFC profile: seconds, default
/// interval 5 s. Results are clamped: interval to [`MAX_INTERVAL`], lifetime to
/// [`MAX_CODE_LIFETIME`]; a zero lifetime reads as missing.
pub fn normalize_timing(profile: Profile, interval: Option<u64>, expires_in: Option<u64>) -> (Duration, Duration) {
    let expires_in = expires_in.filter(|&e| e > 0);
    let millis = match profile {
        Profile::Rfc8628 => false,
        Profile::Zoho => match (expires_in, interval) {
            (Some(e), _) => e >= 10_000,
            (None, Some(i)) => i >= 1_000,
            (None, None) => false,
        },
    };
    let to_duration = |v: u64| {
        if millis {
            Duration::from_millis(v)
        } else {
            Duration::from_secs(v.min(u64::MAX / 1000))
        }
    };
    let default_interval = match profile {
        Profile::Zoho => ZOHO_DEFAULT_INTERVAL,
        Profile::Rfc8628 => RFC_DEFAULT_INTERVAL,
    };
    let interval = interval.map(to_duration).unwrap_or(default_interval).min(MAX_INTERVAL);
    let lifetime = expires_in
        .map(to_duration)
        .unwrap_or(DEFAULT_CODE_LIFETIME)
        .min(MAX_CODE_LIFETIME);
    (interval, lifetime)
}

/// Normalises a token reply's lifetime. Zoho profile: a legacy `expires_in_sec` wins, and an
/// `expires_in` of 360 000 or more without it is milliseconds (old Zoho replies sent
/// `expires_in: 3600000` beside `expires_in_sec: 3600`); otherwise seconds. RFC profile: always
/// seconds (a standard server's 30-day token is 2 592 000). Clamped to [`MAX_TOKEN_LIFETIME`];
/// missing or zero means [`DEFAULT_TOKEN_LIFETIME`].
pub fn normalize_token_lifetime(profile: Profile, expires_in_sec: Option<u64>, expires_in: Option<u64>) -> Duration {
    let zoho = profile == Profile::Zoho;
    let lifetime = match (expires_in_sec, expires_in) {
        (Some(s), _) if zoho && s > 0 => Duration::from_secs(s),
        (_, Some(e)) if zoho && e >= 360_000 => Duration::from_millis(e),
        (_, Some(e)) if e > 0 => Duration::from_secs(e),
        _ => DEFAULT_TOKEN_LIFETIME,
    };
    lifetime.min(MAX_TOKEN_LIFETIME)
}

/// The longest `user_code` accepted (Zoho's are 9 characters, the RFC's examples 8).
pub const MAX_USER_CODE: usize = 32;

/// Whether a `user_code` is shown as it is: ASCII letters, digits and `-`, 1 to
/// [`MAX_USER_CODE`] characters. Anything else is a malformed reply — it would be shown on a
/// terminal or a panel, and a code nobody can type is no code.
pub fn is_sane_user_code(code: &str) -> bool {
    (1..=MAX_USER_CODE).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Parses a device authorization reply.
pub fn parse_device_authorization(profile: Profile, status: u16, body: &[u8]) -> Reply<DeviceAuthorization> {
    let map = match object(status, body) {
        Ok(m) => m,
        Err(r) => return recast(r),
    };
    let Some(device_code) = str_field(&map, "device_code") else {
        return Reply::Malformed("no device_code in the device authorization reply".into());
    };
    let Some(user_code) = str_field(&map, "user_code") else {
        return Reply::Malformed("no user_code in the device authorization reply".into());
    };
    if !is_sane_user_code(&user_code) {
        return Reply::Malformed(alloc::format!(
            "the user_code {user_code:?} is not a code a person can type (letters, digits and '-', at most {MAX_USER_CODE} characters)"
        ));
    }
    // Zoho says verification_url; the RFC verification_uri. Accept either in both profiles.
    let Some(verification_url) = str_field(&map, "verification_url").or_else(|| str_field(&map, "verification_uri"))
    else {
        return Reply::Malformed("no verification_url in the device authorization reply".into());
    };
    let (interval, expires_in) = normalize_timing(profile, num_field(&map, "interval"), num_field(&map, "expires_in"));
    Reply::Ok(DeviceAuthorization {
        device_code: DeviceCode::new(device_code),
        user_code,
        verification_url,
        verification_uri_complete: str_field(&map, "verification_uri_complete"),
        interval,
        expires_in,
    })
}

/// Parses a token reply (poll success, or refresh) in the Zoho dialect: the same as
/// [`parse_token_for`]`(Profile::Zoho, …)`, kept for callers that only speak Zoho.
pub fn parse_token(status: u16, body: &[u8]) -> Reply<TokenGrant> {
    parse_token_for(Profile::Zoho, status, body)
}

/// Parses a token reply (poll success, or refresh); the lifetime's unit is decided by
/// [`normalize_token_lifetime`].
pub fn parse_token_for(profile: Profile, status: u16, body: &[u8]) -> Reply<TokenGrant> {
    let map = match object(status, body) {
        Ok(m) => m,
        Err(r) => return recast(r),
    };
    // JSON that is neither a token nor an OAuth error (a proxy's 403 `{"message":…}`, `{}`) is
    // not the server's word: retried like an HTML error page, while polling and refreshing.
    // A token that is there but empty, not a string, or not an RFC 6750 `b64token` is the
    // server's answer, and a bad one: malformed.
    let bearer = |name: &str| match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if crate::secret::is_b64token(s) => Ok(Some(s.clone())),
        Some(_) => Err(alloc::format!(
            "the {name} is empty or holds characters a bearer token cannot have"
        )),
    };
    let access_token = match bearer("access_token") {
        Ok(Some(t)) => AccessToken::new(t),
        Ok(None) => return Reply::Transient(Transient::UnexpectedJson(status)),
        Err(m) => return Reply::Malformed(m),
    };
    let refresh_token = match bearer("refresh_token") {
        Ok(t) => t.map(RefreshToken::new),
        Err(m) => return Reply::Malformed(m),
    };
    let lifetime = normalize_token_lifetime(
        profile,
        num_field(&map, "expires_in_sec"),
        num_field(&map, "expires_in"),
    );
    Reply::Ok(TokenGrant {
        access_token,
        refresh_token,
        api_domain: str_field(&map, "api_domain"),
        token_type: str_field(&map, "token_type").unwrap_or_else(|| "Bearer".into()),
        expires_in: lifetime,
        scope: str_field(&map, "scope"),
    })
}

/// Parses `/oauth/serverinfo`: `{"result":"success","locations":{"us":"https://accounts.zoho.com",…}}`.
pub fn parse_serverinfo(status: u16, body: &[u8]) -> Reply<Vec<(String, String)>> {
    let map = match object(status, body) {
        Ok(m) => m,
        Err(r) => return recast(r),
    };
    match map.get("locations") {
        Some(Value::Object(locs)) => Reply::Ok(
            locs.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.to_ascii_lowercase(), v.to_string())))
                .collect(),
        ),
        _ => Reply::Malformed("no locations in the serverinfo reply".into()),
    }
}

/// Parses a revocation reply: Zoho answers `{"status":"success"}` (HTTP 200) and 400 for a
/// bad token; RFC 7009 servers answer 200 with any body.
pub fn parse_revoke(profile: Profile, status: u16, body: &[u8]) -> Reply<()> {
    if profile == Profile::Rfc8628 && status == 200 {
        return Reply::Ok(());
    }
    match object(status, body) {
        Ok(map) => {
            if status == 200
                && (profile == Profile::Rfc8628 || map.get("status").and_then(Value::as_str) == Some("success"))
            {
                Reply::Ok(())
            } else if status >= 400 {
                Reply::Error(OAuthError {
                    code: str_field(&map, "status").unwrap_or_else(|| alloc::format!("http_{status}")),
                    description: str_field(&map, "message"),
                    user_location: None,
                    interval: None,
                    other_fields: Vec::new(),
                })
            } else {
                Reply::Malformed("revocation reply without status success".into())
            }
        }
        Err(r) => recast(r),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> ServerUrl {
        ServerUrl::parse(s).unwrap()
    }
    use alloc::vec;

    fn s(v: u64) -> Duration {
        Duration::from_secs(v)
    }

    #[test]
    fn units_are_decided_from_expires_in() {
        use Profile::*;
        // Zoho's documented reply: milliseconds.
        assert_eq!(normalize_timing(Zoho, Some(30_000), Some(300_000)), (s(30), s(300)));
        // Seconds, as some Zoho replies and every RFC server send.
        assert_eq!(normalize_timing(Zoho, Some(30), Some(300)), (s(30), s(300)));
        // A test server: 500 ms interval, 20 000 ms expiry.
        assert_eq!(
            normalize_timing(Zoho, Some(500), Some(20_000)),
            (Duration::from_millis(500), s(20))
        );
        // Without expires_in, interval ≥ 1000 is milliseconds.
        assert_eq!(normalize_timing(Zoho, Some(5_000), None), (s(5), s(300)));
        assert_eq!(normalize_timing(Zoho, Some(5), None), (s(5), s(300)));
        // Missing interval: 30 s (Zoho), 5 s (RFC).
        assert_eq!(normalize_timing(Zoho, None, Some(300_000)), (s(30), s(300)));
        assert_eq!(normalize_timing(Rfc8628, None, Some(600)), (s(5), s(600)));
        // RFC is always seconds.
        assert_eq!(normalize_timing(Rfc8628, Some(5), Some(1_800)), (s(5), s(1_800)));
        // Absurd values are clamped; zero lifetime reads as missing.
        assert_eq!(
            normalize_timing(Zoho, Some(1_000_000_000_000), Some(1_000_000_000_000)),
            (MAX_INTERVAL, MAX_CODE_LIFETIME)
        );
        assert_eq!(normalize_timing(Zoho, Some(0), Some(0)), (Duration::ZERO, s(300)));
        assert_eq!(
            normalize_timing(Rfc8628, Some(u64::MAX), Some(u64::MAX)),
            (MAX_INTERVAL, MAX_CODE_LIFETIME)
        );
    }

    #[test]
    fn device_authorization_zoho_sample() {
        let body = br#"{"user_code":"WLKU-4502","device_code":"1024.d8a","interval":30000,"expires_in":300000,
            "verification_url":"https://accounts.zoho.com/oauth/v3/device",
            "verification_uri_complete":"https://accounts.zoho.com/oauth/v3/device/setCode?devcode=x","extra":1}"#;
        let Reply::Ok(d) = parse_device_authorization(Profile::Zoho, 200, body) else {
            panic!()
        };
        assert_eq!(d.user_code, "WLKU-4502");
        assert_eq!(d.device_code.expose(), "1024.d8a");
        assert_eq!(d.interval, s(30));
        assert_eq!(d.expires_in, s(300));
        assert!(d.verification_uri_complete.is_some());
    }

    #[test]
    fn errors_are_read_from_the_body_whatever_the_status() {
        for status in [200, 400, 401] {
            let r = parse_token(status, br#"{"error":"authorization_pending"}"#);
            assert!(
                matches!(r, Reply::Error(ref e) if e.code == "authorization_pending"),
                "{status}: {r:?}"
            );
        }
        let r = parse_token(200, br#"{"error":"other_dc","user_location":"eu"}"#);
        assert!(matches!(r, Reply::Error(ref e) if e.user_location.as_deref() == Some("eu")));
        // A public Zoho client reads the location from `dc`; `user_location` wins when both.
        let r = parse_token(400, br#"{"error":"other_dc","dc":"in","x":1}"#);
        assert!(
            matches!(r, Reply::Error(ref e) if e.user_location.as_deref() == Some("in") && e.other_fields == [("x".to_string(), "1".to_string())])
        );
        let r = parse_token(200, br#"{"error":"other_dc","user_location":"eu","dc":"in"}"#);
        assert!(matches!(r, Reply::Error(ref e) if e.user_location.as_deref() == Some("eu")));
        assert_eq!(
            parse_token(
                200,
                br#"{"error":"Access Denied","error_description":"Token creation throttle limit reached."}"#
            ),
            Reply::Transient(Transient::Throttled)
        );
    }

    #[test]
    fn non_json_is_transient() {
        assert_eq!(
            parse_token(503, b"<html>Service Unavailable</html>"),
            Reply::Transient(Transient::NotJson(503))
        );
        assert_eq!(
            parse_token(200, b"{\"access_token\":\"1000.ab"),
            Reply::Transient(Transient::NotJson(200))
        );
        assert_eq!(parse_token(200, b"[1,2]"), Reply::Transient(Transient::NotJson(200)));
        assert_eq!(parse_token(502, b"{}"), Reply::Transient(Transient::Status(502)));
        let big = vec![b' '; MAX_RESPONSE_BYTES + 1];
        assert_eq!(parse_token(200, &big), Reply::Transient(Transient::Oversize));
    }

    #[test]
    fn token_lifetimes() {
        let Reply::Ok(t) = parse_token(
            200,
            br#"{"access_token":"a","expires_in":3600,"api_domain":"https://www.zohoapis.com","token_type":"Bearer"}"#,
        ) else {
            panic!()
        };
        assert_eq!(t.expires_in, s(3600));
        assert_eq!(t.refresh_token, None);
        let Reply::Ok(t) = parse_token(
            200,
            br#"{"access_token":"a","expires_in":3600000,"expires_in_sec":3600}"#,
        ) else {
            panic!()
        };
        assert_eq!(t.expires_in, s(3600));
        let Reply::Ok(t) = parse_token(200, br#"{"access_token":"a","expires_in":3600000}"#) else {
            panic!()
        };
        assert_eq!(t.expires_in, s(3600));
        let Reply::Ok(t) = parse_token(200, br#"{"access_token":"a","expires_in":-5}"#) else {
            panic!()
        };
        assert_eq!(t.expires_in, DEFAULT_TOKEN_LIFETIME);
        let Reply::Ok(t) = parse_token(200, br#"{"access_token":"a","expires_in":"2"}"#) else {
            panic!()
        };
        assert_eq!(t.expires_in, s(2));
        assert_eq!(
            parse_token(200, br#"{"token_type":"Bearer"}"#),
            Reply::Transient(Transient::UnexpectedJson(200)),
            "JSON that is not a token is not the server's word: retried"
        );
        for bad in [
            "",
            "1000.a\r\nX-Injected: yes",
            "1000.a b",
            "1000.\"q\"",
            "==",
            "1000.é",
        ] {
            let body = serde_json::json!({"access_token": bad, "refresh_token": "1000.r"}).to_string();
            assert!(
                matches!(parse_token(200, body.as_bytes()), Reply::Malformed(_)),
                "{bad:?}"
            );
            let body = serde_json::json!({"access_token": "1000.a", "refresh_token": bad}).to_string();
            assert!(
                matches!(parse_token(200, body.as_bytes()), Reply::Malformed(_)),
                "refresh {bad:?}"
            );
        }
        let ok = parse_token(
            200,
            br#"{"access_token":"1000.9f3a.b7c1","refresh_token":"1000.aa~_-+/x=="}"#,
        );
        assert!(matches!(ok, Reply::Ok(_)), "{ok:?}");
    }

    #[test]
    fn zoho_requests_speak_the_dialect() {
        let client = ClientCredentials {
            client_id: "1004.ID".into(),
            client_secret: Some(ClientSecret::new("sec")),
        };
        let scopes = vec![
            "ZohoBooks.settings.READ".to_string(),
            "ZohoBooks.contacts.READ".to_string(),
        ];
        let r = device_code_request(
            Profile::Zoho,
            u("https://a/oauth/v3/device/code"),
            &client,
            &scopes,
            true,
            true,
            ClientAuth::Post,
        );
        assert_eq!(
            core::str::from_utf8(&r.body).unwrap(),
            "client_id=1004.ID&grant_type=device_request&scope=ZohoBooks.settings.READ%2CZohoBooks.contacts.READ&access_type=offline&prompt=consent"
        );
        let p = poll_request(
            Profile::Zoho,
            u("https://a/oauth/v3/device/token"),
            &client,
            &DeviceCode::new("dc"),
            ClientAuth::Post,
        );
        assert_eq!(
            core::str::from_utf8(&p.body).unwrap(),
            "client_id=1004.ID&client_secret=sec&grant_type=device_token&code=dc"
        );
        assert!(!p.url.as_str().contains("sec") && !p.url.as_str().contains("dc"));
        let p = poll_request(
            Profile::Rfc8628,
            u("https://a/token"),
            &client,
            &DeviceCode::new("dc"),
            ClientAuth::Post,
        );
        assert_eq!(
            core::str::from_utf8(&p.body).unwrap(),
            "client_id=1004.ID&client_secret=sec&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=dc"
        );
        let r = device_code_request(
            Profile::Rfc8628,
            u("https://a/dev"),
            &client,
            &scopes,
            true,
            true,
            ClientAuth::Post,
        );
        assert!(
            core::str::from_utf8(&r.body)
                .unwrap()
                .ends_with("scope=ZohoBooks.settings.READ+ZohoBooks.contacts.READ+offline_access")
        );
    }

    #[test]
    fn serverinfo_and_revoke() {
        let Reply::Ok(l) = parse_serverinfo(
            200,
            br#"{"result":"success","locations":{"us":"https://accounts.zoho.com","EU":"https://accounts.zoho.eu"}}"#,
        ) else {
            panic!()
        };
        assert!(l.contains(&("eu".to_string(), "https://accounts.zoho.eu".to_string())));
        assert_eq!(
            parse_revoke(Profile::Zoho, 200, br#"{"status":"success"}"#),
            Reply::Ok(())
        );
        assert!(matches!(
            parse_revoke(Profile::Zoho, 400, br#"{"status":"failure","message":"bad token"}"#),
            Reply::Error(_)
        ));
        assert_eq!(
            parse_revoke(Profile::Zoho, 503, b"<html>"),
            Reply::Transient(Transient::NotJson(503))
        );
        assert_eq!(parse_revoke(Profile::Rfc8628, 200, b""), Reply::Ok(()));
    }
}
