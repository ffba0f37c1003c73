//! What every command shares: settings, the token store, the HTTP client, and "a valid token".

use std::time::Duration;

use zoho_device_core::codec::{self, Reply};
use zoho_device_core::reqwest_driver::{self, HttpClient, HttpConfig};
use zoho_device_core::{
    ApiDomainPolicy, Backoff, ClientCredentials, DataCenter, Error, Profile, ServerUrl, TokenEndpoint, Tokens,
};

use crate::exit::{AppError, Exit};
use crate::settings::{DcChoice, Endpoint, Settings};
use crate::store::{StoredToken, TokenStore, wall_now};

/// Refresh when the access token expires within this (the `token` command's rule).
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// Settings, store and HTTP client.
pub struct Context {
    /// Resolved settings.
    pub settings: Settings,
    /// The token file.
    pub store: TokenStore,
    /// HTTP client (rustls, no redirects, timeouts, env proxies).
    pub http: HttpClient,
}

impl Context {
    /// Builds the context.
    pub fn new(settings: Settings) -> Result<Context, AppError> {
        let mut config = HttpConfig {
            user_agent: format!("zoho-device/{}", env!("CARGO_PKG_VERSION")),
            ..HttpConfig::default()
        };
        if let Some(t) = test_override_ms("ZOHO_DEVICE_HTTP_TIMEOUT_MS") {
            config.timeout = t;
            config.connect_timeout = config.connect_timeout.min(t);
        }
        let http = HttpClient::new(&config)
            .map_err(|e| AppError::new(Exit::Unexpected, format!("cannot set up HTTPS: {e}")))?;
        let store = TokenStore::new(settings.token_file.clone());
        Ok(Context { settings, store, http })
    }

    /// The client for a stored token: the configured one, or the stored client ID with the
    /// configured secret. A token of another client is refused (it could not be refreshed).
    pub fn client_for(&self, stored: &StoredToken) -> Result<ClientCredentials, AppError> {
        if let Some(id) = &self.settings.client_id
            && id != &stored.client_id
        {
            return Err(AppError::usage(format!(
                "the token file {} belongs to client {}, but the configured client is {id}",
                self.store.path().display(),
                stored.client_id
            ))
            .hint("use the same client ID, another --token-file, or pair again with `zoho-device login`"));
        }
        // Multi-DC: the token's data centre may have a secret of its own.
        let location = stored
            .tokens
            .location
            .as_deref()
            .filter(|_| stored.profile() == Profile::Zoho);
        let client = ClientCredentials {
            client_id: stored.client_id.clone(),
            client_secret: self.settings.client_secret.clone(),
        }
        .at(&self.settings.dc_secret_map(), location);
        if stored.profile() == Profile::Zoho && client.client_secret.is_none() {
            let own = location
                .and_then(DataCenter::from_location)
                .map(|dc| format!(" (or {})", crate::settings::dc_secret_settings(dc)))
                .unwrap_or_default();
            return Err(
                AppError::usage("no client secret configured (needed to refresh the token)").hint(format!(
                    "set ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE or --client-secret-file{own}"
                )),
            );
        }
        Ok(client)
    }

    /// Where a stored token refreshes and revokes.
    pub fn token_endpoint(&self, stored: &StoredToken) -> Result<TokenEndpoint, AppError> {
        match stored.profile() {
            Profile::Zoho => {
                let accounts = stored.tokens.accounts_url.as_ref().ok_or_else(|| {
                    AppError::new(Exit::NeedsPairing, "the token file has no accounts server")
                        .hint("pair again with `zoho-device login`")
                })?;
                Ok(TokenEndpoint::zoho(accounts))
            }
            Profile::Rfc8628 => {
                let token_url = stored.token_url.as_ref().ok_or_else(|| {
                    AppError::new(Exit::NeedsPairing, "the token file has no token endpoint")
                        .hint("pair again with `zoho-device login`")
                })?;
                Ok(TokenEndpoint::standard(token_url, stored.revocation_url.as_ref()))
            }
        }
    }

    /// Checks a stored token's `api_domain` again before anything is sent there (the file
    /// could have been edited).
    pub fn checked_api_domain(&self, stored: &StoredToken) -> Result<ServerUrl, AppError> {
        let api = stored.tokens.api_domain.as_ref().ok_or_else(|| {
            AppError::new(Exit::NeedsPairing, "the token file has no api_domain")
                .hint("pair again with `zoho-device login`")
        })?;
        let policy = stored
            .tokens
            .accounts_url
            .as_ref()
            .map(ApiDomainPolicy::for_accounts)
            .unwrap_or_default();
        policy
            .check(api.as_str())
            .map_err(|why| AppError::new(Exit::Unsafe, why))
    }

    /// Takes the cross-process refresh lock without blocking the async runtime.
    pub async fn lock(&self) -> Result<crate::store::RefreshLock, AppError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.lock())
            .await
            .map_err(|e| AppError::new(Exit::Unexpected, format!("lock task failed: {e}")))?
    }

    /// Revokes `stored`'s refresh token at its server (retried `attempts` times on transient
    /// failures). A token the server already rejects counts as revoked
    /// ([`Revoked::AlreadyInvalid`]); the error is what could not be done.
    pub async fn revoke(&self, stored: &StoredToken, attempts: u32) -> Result<Revoked, AppError> {
        let client = self.client_for(stored)?;
        let endpoint = self.token_endpoint(stored)?;
        if stored.tokens.refresh_token.is_none() {
            return Ok(Revoked::NoRefreshToken);
        }
        let mut backoff = retry_backoff();
        match reqwest_driver::revoke(&self.http, &endpoint, &client, &stored.tokens, attempts, &mut backoff).await {
            Ok(true) => Ok(Revoked::Done),
            Ok(false) => Ok(Revoked::NoEndpoint),
            Err(zoho_device_core::Error::InvalidGrant { .. }) => Ok(Revoked::AlreadyInvalid),
            Err(e) => Err(e.into()),
        }
    }

    /// Refreshes `stored` now (the caller holds the lock) and saves the result.
    pub async fn refresh_and_save(&self, stored: &StoredToken) -> Result<StoredToken, AppError> {
        let client = self.client_for(stored)?;
        let endpoint = self.token_endpoint(stored)?;
        let mut backoff = retry_backoff();
        let tokens = reqwest_driver::refresh(
            &self.http,
            &endpoint,
            &client,
            &stored.tokens,
            &wall_now,
            3,
            &mut backoff,
        )
        .await
        .map_err(|e| self.refresh_error(e, stored))?;
        let fresh = stored.with_tokens(tokens, wall_now());
        self.store.save(&fresh)?;
        tracing::info!(
            expires_in_s = fresh.tokens.expires_in(wall_now()).as_secs(),
            "access token refreshed"
        );
        Ok(fresh)
    }

    /// A refresh failure for the user. Zoho's token endpoint answers a wrong secret with
    /// `invalid_client` too: at a data centre, the hint also names its own secret's settings.
    fn refresh_error(&self, e: Error, stored: &StoredToken) -> AppError {
        let dc = stored.tokens.location.as_deref().and_then(DataCenter::from_location);
        match (e, dc) {
            (e @ Error::InvalidClient { .. }, Some(dc)) if stored.profile() == Profile::Zoho => AppError::from(e).hint(format!(
                "Zoho also says invalid_client for a wrong secret: a client enabled in several data centres may have a separate secret in {dc} ({}); `zoho-device doctor` checks each",
                crate::settings::dc_secret_settings(dc)
            )),
            (e, _) => AppError::from(e),
        }
    }

    /// A token valid for at least `margin`: the stored one, or — under the cross-process
    /// lock, after re-reading the file — a refreshed one. When the refresh fails transiently
    /// but the stored token is still valid, the stored token is returned with a warning.
    pub async fn fresh_token(&self, margin: Duration) -> Result<StoredToken, AppError> {
        let stored = self.store.load_required()?;
        crate::clock::require_plausible()?;
        if !stored.tokens.expires_within(wall_now(), margin) {
            return Ok(stored);
        }
        let _lock = self.lock().await?;
        let stored = self.store.load_required()?;
        if !stored.tokens.expires_within(wall_now(), margin) {
            tracing::debug!("another process refreshed the token while we waited");
            return Ok(stored);
        }
        self.refresh_locked(stored).await
    }

    /// Refreshes unconditionally under the lock (the `refresh` command, Books' retry on 401).
    /// A failed refresh is an error here: the caller asked for a new token (or the current one
    /// was just rejected), so falling back to the stored token would hide the failure.
    ///
    /// `rejected`: the access token a server just refused. When the file (re-read under the
    /// lock) already holds another one, a concurrent process has refreshed meanwhile and that
    /// token is returned instead of minting again (Zoho allows 10 mints per 10 minutes).
    pub async fn force_refresh(&self, rejected: Option<&StoredToken>) -> Result<StoredToken, AppError> {
        crate::clock::require_plausible()?;
        let _lock = self.lock().await?;
        let stored = self.store.load_required()?;
        if let Some(old) = rejected
            && old.tokens.access_token.expose() != stored.tokens.access_token.expose()
            && !stored.tokens.expires_within(wall_now(), Duration::ZERO)
        {
            tracing::info!("another process refreshed the rejected token meanwhile; using its token");
            return Ok(stored);
        }
        if stored.tokens.refresh_token.is_none() {
            return Err(AppError::not_paired("there is no refresh token to refresh with"));
        }
        self.refresh_and_save(&stored).await
    }

    async fn refresh_locked(&self, stored: StoredToken) -> Result<StoredToken, AppError> {
        if stored.tokens.refresh_token.is_none() {
            if stored.tokens.expires_within(wall_now(), Duration::ZERO) {
                return Err(AppError::not_paired(
                    "the access token expired and there is no refresh token",
                ));
            }
            return Ok(stored);
        }
        match self.refresh_and_save(&stored).await {
            Ok(fresh) => Ok(fresh),
            Err(e)
                if e.exit == Exit::Unavailable && !stored.tokens.expires_within(wall_now(), Duration::from_secs(5)) =>
            {
                tracing::warn!(
                    "refresh failed ({}); the current access token is still valid for {} s and is used",
                    e.message,
                    stored.tokens.expires_in(wall_now()).as_secs()
                );
                Ok(stored)
            }
            Err(e) => Err(e),
        }
    }
}

/// What [`Context::revoke`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// The server revoked the refresh token.
    Done,
    /// The server already rejected it (revoked, evicted, password changed).
    AlreadyInvalid,
    /// The pairing holds no refresh token (paired without offline access).
    NoRefreshToken,
    /// The server has no revocation endpoint (a standard server without one).
    NoEndpoint,
}

/// Where a person revokes a token by hand when the program could not.
pub fn revoke_by_hand_hint(stored: Option<&StoredToken>) -> String {
    match stored {
        Some(t) if t.profile() != Profile::Zoho => {
            "revoke the grant in the provider's account settings if it matters".to_string()
        }
        _ => {
            let accounts = stored
                .and_then(|t| t.tokens.accounts_url.as_ref())
                .map_or("https://accounts.zoho.com", |u| u.as_str());
            format!("remove the device under Connected Apps at {accounts} if it matters")
        }
    }
}

/// A duration in milliseconds from a hidden environment variable, for tests only:
/// `ZOHO_DEVICE_HTTP_TIMEOUT_MS` (the whole-request timeout, default 30 s) and
/// `ZOHO_DEVICE_BACKOFF_MS` (the first retry delay, default 500 ms for refresh/revoke/Books and
/// 1 s for login) let the reliability tests (tests/reliability) run timeouts and exhausted
/// retries in seconds. Not documented for users; absent or unparsable means the default.
pub fn test_override_ms(name: &str) -> Option<Duration> {
    let ms: u64 = std::env::var(name).ok()?.trim().parse().ok()?;
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// The backoff of one-shot exchanges (refresh, Books): 500 ms doubling to 8 s, jittered
/// (`ZOHO_DEVICE_BACKOFF_MS` overrides the base in tests).
pub fn retry_backoff() -> Backoff {
    let base = test_override_ms("ZOHO_DEVICE_BACKOFF_MS").unwrap_or(Duration::from_millis(500));
    Backoff::new(base, base * 16, seed())
}

/// A seed for jitter: time and pid.
pub fn seed() -> u64 {
    wall_now().as_millis().rotate_left(17) ^ u64::from(std::process::id()).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The accounts servers to try for `--dc auto`: the ten DCs, or the locations an override's
/// `serverinfo` lists.
pub async fn candidate_servers(ctx: &Context) -> Result<Vec<(String, ServerUrl)>, AppError> {
    let Endpoint::Zoho { accounts_override, .. } = &ctx.settings.endpoint else {
        return Ok(Vec::new());
    };
    match accounts_override {
        None => Ok(DataCenter::ALL
            .iter()
            .map(|dc| (dc.location().to_string(), dc.accounts_server()))
            .collect()),
        Some(base) => {
            let req = zoho_device_core::HttpRequest::get(
                base.join("/oauth/serverinfo"),
                zoho_device_core::Purpose::ServerInfo,
            );
            let resp = ctx.http.send(&req).await.map_err(|e| AppError::from(Error::from(e)))?;
            match codec::parse_serverinfo(resp.response.status, &resp.response.body) {
                Reply::Ok(locs) => Ok(locs
                    .into_iter()
                    .filter_map(|(l, u)| ServerUrl::parse(&u).ok().map(|u| (l, u)))
                    .collect()),
                _ => Ok(vec![("override".to_string(), base.clone())]),
            }
        }
    }
}

/// What a probe of one accounts server found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResult {
    /// The server knows the client (it issued a code).
    Knows,
    /// `invalid_client`.
    Unknown,
    /// Another error (e.g. wrong client type, bad scope).
    Error(String),
    /// Unreachable.
    Unreachable(String),
}

/// Asks one accounts server for a device code (no side effect beyond issuing a code that
/// nobody will use) to learn whether it knows the client.
pub async fn probe(http: &HttpClient, accounts: &ServerUrl, client_id: &str, scopes: &[String]) -> ProbeResult {
    let client = ClientCredentials {
        client_id: client_id.to_string(),
        client_secret: None,
    };
    let req = codec::device_code_request(
        Profile::Zoho,
        accounts.join("/oauth/v3/device/code"),
        &client,
        scopes,
        true,
        false,
    );
    let resp = match tokio::time::timeout(Duration::from_secs(10), http.send(&req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return ProbeResult::Unreachable(e.to_string()),
        Err(_) => return ProbeResult::Unreachable("timed out".into()),
    };
    match codec::parse_device_authorization(Profile::Zoho, resp.response.status, &resp.response.body) {
        Reply::Ok(_) => ProbeResult::Knows,
        Reply::Error(e) if e.code == "invalid_client" => ProbeResult::Unknown,
        Reply::Error(e) => ProbeResult::Error(e.code),
        Reply::Transient(t) => ProbeResult::Unreachable(t.to_string()),
        Reply::Malformed(m) => ProbeResult::Error(m),
    }
}

/// Probes every candidate concurrently; the locations that know the client, in table order.
pub async fn find_client_dcs(ctx: &Context, client_id: &str) -> Result<Vec<(String, ServerUrl)>, AppError> {
    let candidates = candidate_servers(ctx).await?;
    let mut set = tokio::task::JoinSet::new();
    for (i, (loc, url)) in candidates.iter().cloned().enumerate() {
        let http = ctx.http.clone();
        let id = client_id.to_string();
        let scopes = ctx.settings.scopes.clone();
        set.spawn(async move { (i, loc, url.clone(), probe(&http, &url, &id, &scopes).await) });
    }
    let mut found = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Ok((i, loc, url, ProbeResult::Knows)) = r {
            found.push((i, loc, url));
        }
    }
    found.sort_by_key(|(i, _, _)| *i);
    Ok(found.into_iter().map(|(_, l, u)| (l, u)).collect())
}

/// The accounts server to start a Zoho login at.
pub async fn start_server(ctx: &Context, client_id: &str) -> Result<(ServerUrl, Option<String>), AppError> {
    let Endpoint::Zoho { dc, accounts_override } = &ctx.settings.endpoint else {
        unreachable!("only called for the Zoho profile");
    };
    match (dc, accounts_override) {
        (DcChoice::Fixed(_), Some(url)) => Ok((url.clone(), None)),
        (DcChoice::Fixed(dc), None) => Ok((dc.accounts_server(), Some(dc.location().to_string()))),
        (DcChoice::Auto, _) => {
            tracing::info!("--dc auto: asking every accounts server whether it knows the client");
            let found = find_client_dcs(ctx, client_id).await?;
            let (loc, url) = found.into_iter().next().ok_or_else(|| {
                AppError::new(Exit::ClientRejected, format!("no data centre knows the client ID {client_id}"))
                    .hint("check the client ID in https://api-console.zoho.com (a \"Non-browser Application\"), and the network")
            })?;
            tracing::info!(location = %loc, accounts = %url, "the client is registered here");
            Ok((url, Some(loc)))
        }
    }
}

/// For an `invalid_client` at a fixed DC: a hint naming the DC that does know the client.
pub async fn wrong_dc_hint(ctx: &Context, client_id: &str) -> Option<String> {
    let found = tokio::time::timeout(Duration::from_secs(15), find_client_dcs(ctx, client_id))
        .await
        .ok()?
        .ok()?;
    let (loc, url) = found.first()?;
    Some(format!(
        "the client is registered in data centre {loc} ({url}): use --dc {loc} (or --dc auto)"
    ))
}

/// Converts flow tokens (monotonic expiry) to a stored token (Unix expiry).
pub fn stored_from(
    tokens: Tokens,
    profile: Profile,
    client_id: &str,
    settings: &Settings,
    mono_now: zoho_device_core::Timestamp,
) -> StoredToken {
    let wall = wall_now();
    let mut tokens = tokens;
    tokens.expires_at = tokens.expires_at.rebase(mono_now, wall);
    let (token_url, revocation_url) = match &settings.endpoint {
        Endpoint::Standard {
            token_url,
            revocation_url,
            ..
        } => (Some(token_url.clone()), revocation_url.clone()),
        // Discovered at login, which sets them on the stored token.
        Endpoint::Issuer { .. } => (None, None),
        Endpoint::Zoho { .. } => (None, None),
    };
    StoredToken {
        version: 1,
        profile: match profile {
            Profile::Rfc8628 => "rfc8628".into(),
            _ => "zoho".into(),
        },
        client_id: client_id.to_string(),
        tokens,
        token_url,
        revocation_url,
        paired_at: wall.as_millis(),
        refreshed_at: wall.as_millis(),
    }
}
