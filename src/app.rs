//! What every command shares: settings, the token store, the HTTP client, and "a valid token".

use std::time::Duration;

use zoho_device_core::dc::check_accounts_move;
use zoho_device_core::probe::{self, ClientAnswer};
use zoho_device_core::reqwest_driver::{self, HttpClient, HttpConfig};
use zoho_device_core::{
    ApiDomainPolicy, Backoff, Checked, ClientCredentials, DataCenter, Error, KeepStep, Keeper, KeeperConfig, Pairing,
    Profile, Retries, ServerUrl, Servers, TokenEndpoint, Tokens,
};

use crate::exit::{AppError, Exit};
use crate::settings::{DcChoice, Endpoint, Settings};
use crate::store::{TokenStore, wall_now};

/// Refresh when the access token expires within this (the `token` command's rule), scaled
/// down for short-lived tokens by [`refresh_margin`].
pub const REFRESH_MARGIN: Duration = Duration::from_secs(300);

/// The margin actually used for a token: `min(margin, lifetime / 4)`, the lifetime being what
/// the server granted at the last mint (`expires_at - refreshed_at`). Zoho's 1-hour tokens keep
/// the full 5 minutes; Keycloak's 5-minute tokens are refreshed in their last 75 s, not on every
/// call. The agent applies the same quarter rule to its own margin.
pub fn refresh_margin(margin: Duration, stored: &Pairing) -> Duration {
    zoho_device_core::keeper::effective_margin(margin, stored.lifetime(wall_now()))
}

/// What [`Context::checked_servers_offline`] found: the token file's servers pass today's
/// configuration, or only the configured issuer's discovery document can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OfflineCheck<'a> {
    /// Every server the file names is allowed.
    Allowed,
    /// The standard servers must be compared with what the issuer's discovery document names
    /// now (its endpoints were not all given explicitly).
    NeedsDiscovery {
        /// The configured issuer.
        issuer: &'a ServerUrl,
        /// The endpoints given explicitly (they win over discovered ones).
        explicit: &'a crate::discovery::ExplicitEndpoints,
        /// The file's token endpoint.
        token_url: &'a ServerUrl,
        /// The file's revocation endpoint.
        revocation_url: Option<&'a ServerUrl>,
    },
}

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
    pub fn client_for(&self, stored: &Pairing) -> Result<ClientCredentials, AppError> {
        if let Some(id) = &self.settings.client_id
            && id != stored.client_id()
        {
            return Err(AppError::usage(format!(
                "the token file {} belongs to client {}, but the configured client is {id}",
                self.store.path().display(),
                stored.client_id()
            ))
            .hint("use the same client ID, another --token-file, or pair again with `zoho-device login`"));
        }
        // Multi-DC: the token's data centre may have a secret of its own.
        let location = stored.location();
        let client = ClientCredentials {
            client_id: stored.client_id().to_string(),
            client_secret: self.settings.client_secret.clone(),
        }
        .at(&self.settings.dc_secret_map(), location);
        if stored.profile() == Profile::Zoho && client.client_secret.is_none() {
            let own = location
                .and_then(DataCenter::from_location)
                .map(|dc| format!(" (or {})", crate::settings::dc_secret_settings(dc)))
                .unwrap_or_default();
            return Err(
                AppError::usage("no client secret configured (needed to refresh or revoke the token)").hint(format!(
                    "set ZOHO_CLIENT_SECRET, ZOHO_CLIENT_SECRET_FILE or --client-secret-file{own}"
                )),
            );
        }
        Ok(client)
    }

    /// Where a stored token refreshes and revokes ([`Pairing::token_endpoint`], a configured
    /// client authentication winning) — only after every server the token file names has
    /// passed the policy the configuration gives *now* ([`Context::checked_servers`]).
    pub async fn token_endpoint(&self, stored: &Pairing) -> Result<TokenEndpoint, AppError> {
        self.checked_servers(stored).await?;
        Ok(stored.token_endpoint(self.settings.client_auth))
    }

    /// The servers of a token file, checked against the configuration as at login: the file
    /// could have been edited, copied from another device, or planted. Zoho profile: the
    /// accounts server must be the configured one (DC or override), or one `other_dc` could
    /// have moved to from it ([`check_accounts_move`]: a Zoho accounts host from Zoho, loopback
    /// only from loopback), its `api_domain` is checked where the access token goes
    /// ([`Context::checked_api_domain`]).
    /// Standard profile: the token and revocation endpoints must be the configured ones, or
    /// those the configured issuer's discovery document names now (one request). A mismatch
    /// sends nothing: exit 8 with the file's path and the value.
    pub async fn checked_servers(&self, stored: &Pairing) -> Result<(), AppError> {
        let OfflineCheck::NeedsDiscovery {
            issuer,
            explicit,
            token_url,
            revocation_url,
        } = self.checked_servers_offline(stored)?
        else {
            return Ok(());
        };
        let found = crate::discovery::endpoints(&self.http, issuer, explicit).await?;
        if token_url != &found.token_url {
            return Err(self.refused(
                "the token endpoint",
                token_url,
                format!("the issuer {issuer} names {}", found.token_url),
            ));
        }
        if let Some(r) = revocation_url
            && Some(r) != found.revocation_url.as_ref()
        {
            return Err(self.refused(
                "the revocation endpoint",
                r,
                format!("the issuer {issuer} does not name it"),
            ));
        }
        Ok(())
    }

    /// [`Context::checked_servers`] without the network: [`OfflineCheck::NeedsDiscovery`] when
    /// only the configured issuer's discovery document can tell (its endpoints were not given
    /// explicitly).
    pub fn checked_servers_offline<'a>(&'a self, stored: &'a Pairing) -> Result<OfflineCheck<'a>, AppError> {
        let path = self.store.path().display();
        let mismatch = |paired: &str, configured: &str| {
            AppError::usage(format!(
                "the token file {path} holds a {paired} pairing, but the configuration is for a {configured} server"
            ))
            .hint("run with the settings you paired with (--profile, --issuer, endpoints), or pair again")
        };
        match (stored.servers(), &self.settings.endpoint) {
            (Servers::Zoho { accounts, .. }, Endpoint::Zoho { dc, accounts_override }) => {
                let configured = match (accounts_override, dc) {
                    (Some(o), _) => o.clone(),
                    (None, DcChoice::Fixed(dc)) => dc.accounts_server(),
                    // Any DC: the file's server must be one of Zoho's.
                    (None, DcChoice::Auto) => DataCenter::Us.accounts_server(),
                };
                if accounts != &configured && check_accounts_move(&configured, accounts).is_err() {
                    return Err(self.refused(
                        "the accounts server",
                        accounts,
                        format!("it is neither the configured {configured} nor a server Zoho's other_dc could move a pairing to from there"),
                    ));
                }
                Ok(OfflineCheck::Allowed)
            }
            (
                Servers::Standard {
                    token_url: stored_token,
                    revocation_url: stored_revocation,
                    ..
                },
                Endpoint::Standard {
                    token_url,
                    revocation_url,
                    ..
                },
            ) => {
                if stored_token != token_url {
                    return Err(self.refused(
                        "the token endpoint",
                        stored_token,
                        format!("the configured one is {token_url}"),
                    ));
                }
                if let Some(r) = stored_revocation
                    && Some(r) != revocation_url.as_ref()
                {
                    return Err(self.refused("the revocation endpoint", r, "it is not the configured one".into()));
                }
                Ok(OfflineCheck::Allowed)
            }
            (
                Servers::Standard {
                    token_url: stored_token,
                    revocation_url: stored_revocation,
                    ..
                },
                Endpoint::Issuer { issuer, explicit },
            ) => {
                let given = |u: &ServerUrl, e: &Option<ServerUrl>| e.as_ref() == Some(u);
                let all_given = given(stored_token, &explicit.token_url)
                    && stored_revocation
                        .as_ref()
                        .is_none_or(|r| given(r, &explicit.revocation_url));
                Ok(if all_given {
                    OfflineCheck::Allowed
                } else {
                    OfflineCheck::NeedsDiscovery {
                        issuer,
                        explicit,
                        token_url: stored_token,
                        revocation_url: stored_revocation.as_ref(),
                    }
                })
            }
            (Servers::Zoho { .. }, _) => Err(mismatch("Zoho", "standard (rfc8628)")),
            (Servers::Standard { .. }, Endpoint::Zoho { .. }) => Err(mismatch("standard (rfc8628)", "Zoho")),
        }
    }

    fn refused(&self, field: &str, value: &ServerUrl, why: String) -> AppError {
        AppError::new(
            Exit::Unsafe,
            format!(
                "the token file {} names {field} {value}, which this configuration does not allow: {why}",
                self.store.path().display()
            ),
        )
        .hint("nothing was sent. If you paired with other settings, use them again (--dc, --accounts-url, --issuer…); otherwise pair again with `zoho-device login` (someone may have edited the file)")
    }

    fn missing(&self, what: &str) -> AppError {
        AppError::new(Exit::NeedsPairing, format!("the token file has no {what}"))
            .hint("pair again with `zoho-device login`")
    }

    /// A stored Zoho token's `api_domain`, checked before the access token is sent there: the
    /// file's accounts server must pass [`Context::checked_servers_offline`], and `api_domain`
    /// the allow-list of that server (loopback API hosts only for a loopback accounts server,
    /// which itself needs a loopback configuration).
    pub fn checked_api_domain(&self, stored: &Pairing) -> Result<ServerUrl, AppError> {
        self.checked_servers_offline(stored)?;
        let Some(accounts) = stored.accounts() else {
            return Err(self.missing("api_domain"));
        };
        let api = stored
            .tokens()
            .api_domain
            .clone()
            .ok_or_else(|| self.missing("api_domain"))?;
        ApiDomainPolicy::for_accounts(accounts)
            .check_url(api.clone())
            .map_err(|why| self.refused("the api_domain", &api, why))
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
    pub async fn revoke(&self, stored: &Pairing, attempts: u32) -> Result<Revoked, AppError> {
        let client = self.client_for(stored)?;
        let endpoint = self.token_endpoint(stored).await?;
        if stored.tokens().refresh_token.is_none() {
            return Ok(Revoked::NoRefreshToken);
        }
        let mut backoff = retry_backoff();
        match reqwest_driver::revoke(&self.http, &endpoint, &client, stored.tokens(), attempts, &mut backoff).await {
            Ok(true) => Ok(Revoked::Done),
            Ok(false) => Ok(Revoked::NoEndpoint),
            Err(zoho_device_core::Error::InvalidGrant { .. }) => Ok(Revoked::AlreadyInvalid),
            Err(e) => Err(e.into()),
        }
    }

    /// Refreshes `stored` now (the caller holds the lock) and saves the result.
    pub async fn refresh_and_save(&self, stored: &Pairing) -> Result<Pairing, AppError> {
        let mut keeper = command_keeper(Duration::ZERO);
        keeper.adopt_stored(stored.tokens().clone(), None, wall_now());
        keeper.force();
        self.refresh_with(&mut keeper, stored).await
    }

    /// Drives `keeper`'s refresh of `stored` (its servers checked first) and saves the result.
    async fn refresh_with(&self, keeper: &mut Keeper, stored: &Pairing) -> Result<Pairing, AppError> {
        let client = self.client_for(stored)?;
        let endpoint = self.token_endpoint(stored).await?;
        keeper.set_endpoint(endpoint, client);
        let tokens = reqwest_driver::drive(&self.http, keeper, &wall_now)
            .await
            .map_err(|e| self.refresh_error(e, stored))?;
        let fresh = stored.with_tokens(tokens, wall_now());
        self.store.save(&fresh)?;
        tracing::info!(
            expires_in_s = fresh.tokens().expires_in(wall_now()).as_secs(),
            "access token refreshed"
        );
        Ok(fresh)
    }

    /// A refresh failure for the user. Zoho's token endpoint answers a wrong secret with
    /// `invalid_client` too: at a data centre, the hint also names its own secret's settings.
    fn refresh_error(&self, e: Error, stored: &Pairing) -> AppError {
        let dc = stored.location().and_then(DataCenter::from_location);
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
    pub async fn fresh_token(&self, margin: Duration) -> Result<Pairing, AppError> {
        let stored = self.store.load_required()?;
        crate::clock::require_plausible()?;
        // Whoever uses the token sends it to the file's api_domain: check the file's servers
        // even when nothing is refreshed (offline; a refresh checks again, with discovery).
        if stored.profile() == Profile::Zoho && stored.tokens().api_domain.is_some() {
            self.checked_api_domain(&stored)?;
        } else {
            self.checked_servers_offline(&stored)?;
        }
        // The keeper decides (the margin scaled by the token's lifetime); the lock, the file
        // and the network are this function's.
        let mut keeper = command_keeper(margin);
        let wall = wall_now();
        keeper.adopt_pairing(&stored, wall, wall);
        if let KeepStep::Wait(_) = keeper.poll(wall) {
            return Ok(stored);
        }
        // Before the lock too: a read-only or unsafe directory is no reason to fail while
        // the stored token is still good.
        if let Err(unsavable) = self.writable_before_refresh(&stored) {
            if !stored.tokens().expires_within(wall_now(), Duration::ZERO) {
                tracing::warn!(
                    "not refreshing, as the new token could not be saved ({}); the stored access token is still valid for {} s and is used",
                    unsavable.message,
                    stored.tokens().expires_in(wall_now()).as_secs()
                );
                return Ok(stored);
            }
            return Err(not_refreshing(unsavable));
        }
        let _lock = self.lock().await?;
        let stored = self.store.load_required()?;
        let wall = wall_now();
        match keeper.handle_stored_pairing(&stored, wall, wall) {
            Checked::Adopted => {
                tracing::debug!("another process refreshed the token while we waited");
                Ok(stored)
            }
            Checked::Nothing if matches!(keeper.poll(wall), KeepStep::NeedsPairing(_)) => Err(AppError::not_paired(
                "the access token expired and there is no refresh token",
            )),
            Checked::Nothing => Ok(stored),
            Checked::Refresh => match self.refresh_with(&mut keeper, &stored).await {
                // A transient failure while the stored token still has a few seconds: used.
                Err(e)
                    if e.exit == Exit::Unavailable
                        && !stored.tokens().expires_within(wall_now(), Duration::from_secs(5)) =>
                {
                    tracing::warn!(
                        "refresh failed ({}); the current access token is still valid for {} s and is used",
                        e.message,
                        stored.tokens().expires_in(wall_now()).as_secs()
                    );
                    Ok(stored)
                }
                other => other,
            },
        }
    }

    /// Refreshes unconditionally under the lock (the `refresh` command, Books' retry on 401).
    /// A failed refresh is an error here: the caller asked for a new token (or the current one
    /// was just rejected), so falling back to the stored token would hide the failure.
    ///
    /// `rejected`: the access token a server just refused. When the file (re-read under the
    /// lock) already holds another one, a concurrent process has refreshed meanwhile and that
    /// token is returned instead of minting again (Zoho allows 10 mints per 10 minutes).
    pub async fn force_refresh(&self, rejected: Option<&Pairing>) -> Result<Pairing, AppError> {
        crate::clock::require_plausible()?;
        // Not paired is said first; then, before the lock and any mint, whether a new token
        // could be saved at all.
        self.store.load_required()?;
        self.store.check_writable().map_err(not_refreshing)?;
        let _lock = self.lock().await?;
        let stored = self.store.load_required()?;
        let wall = wall_now();
        let mut keeper = command_keeper(Duration::ZERO);
        keeper.adopt_stored(rejected.unwrap_or(&stored).tokens().clone(), None, wall);
        keeper.force();
        match keeper.handle_stored(wall, stored.tokens().clone(), None) {
            Checked::Adopted => {
                tracing::info!("another process refreshed the rejected token meanwhile; using its token");
                Ok(stored)
            }
            Checked::Nothing => Err(AppError::not_paired("there is no refresh token to refresh with")),
            Checked::Refresh => self.refresh_with(&mut keeper, &stored).await,
        }
    }

    /// Before minting (Zoho allows 10 per refresh token per 10 minutes): can the new token be
    /// saved? A token that could not be saved would be minted again by the next call.
    fn writable_before_refresh(&self, stored: &Pairing) -> Result<(), AppError> {
        if stored.tokens().refresh_token.is_none() {
            return Ok(());
        }
        self.store.check_writable()
    }
}

/// A refresh refused because its token could not be saved (`e` says why).
fn not_refreshing(e: AppError) -> AppError {
    AppError {
        message: format!("not refreshing, as the new token could not be saved: {}", e.message),
        ..e
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
pub fn revoke_by_hand_hint(stored: Option<&Pairing>) -> String {
    match stored {
        Some(t) if t.profile() != Profile::Zoho => {
            "revoke the grant in the provider's account settings if it matters".to_string()
        }
        _ => {
            let accounts = stored
                .and_then(Pairing::accounts)
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

/// The keeper of a command's refresh: `margin` (scaled by the token's lifetime, no jitter),
/// [`retry_backoff`]'s bounds for three tries, the token file re-read under its lock.
fn command_keeper(margin: Duration) -> Keeper {
    let (base, cap) = retry_backoff().bounds();
    let mut config = KeeperConfig::once(margin, Retries::Attempts { attempts: 3, base, cap }, seed());
    config.check_store = true;
    Keeper::new(config)
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
            let req = probe::serverinfo_request(base);
            let resp = ctx.http.send(&req).await.map_err(|e| AppError::from(Error::from(e)))?;
            match probe::read_serverinfo(resp.response.status, &resp.response.body) {
                Some(locs) => Ok(locs),
                None => Ok(vec![("override".to_string(), base.clone())]),
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
    let req = probe::device_code_request(accounts, &client, scopes);
    let resp = match tokio::time::timeout(Duration::from_secs(10), http.send(&req)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return ProbeResult::Unreachable(e.to_string()),
        Err(_) => return ProbeResult::Unreachable("timed out".into()),
    };
    match probe::read_device_code(resp.response.status, &resp.response.body) {
        ClientAnswer::Knows(_) => ProbeResult::Knows,
        ClientAnswer::Unknown => ProbeResult::Unknown,
        ClientAnswer::Error(code) => ProbeResult::Error(code),
        ClientAnswer::Unavailable(t) => ProbeResult::Unreachable(t),
        ClientAnswer::Malformed(m) => ProbeResult::Error(m),
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
    Some(dc_fix(&ctx.settings, loc, url))
}

/// What to change when the client is registered in data centre `loc` at `url`: the setting the
/// user gave (an accounts server override is fixed by another URL, not by `--dc`).
pub fn dc_fix(settings: &Settings, loc: &str, url: &ServerUrl) -> String {
    match &settings.endpoint {
        Endpoint::Zoho {
            accounts_override: Some(given),
            ..
        } => format!(
            "the client is registered in data centre {loc} ({url}), not at {given}: set --accounts-url (ZOHO_ACCOUNTS_URL) to {url}, or remove it and use --dc {loc}"
        ),
        _ => format!("the client is registered in data centre {loc} ({url}): use --dc {loc} (or --dc auto)"),
    }
}

/// The pairing a finished flow made: the flow's `tokens` (expiry on the monotonic clock read as
/// `mono_now`) moved to Unix time, with the servers the flow ended at ([`Servers`]).
pub fn paired(client_id: &str, servers: Servers, tokens: Tokens, mono_now: zoho_device_core::Timestamp) -> Pairing {
    let wall = wall_now();
    let mut tokens = tokens;
    tokens.expires_at = tokens.expires_at.rebase(mono_now, wall);
    Pairing::new(client_id.to_string(), servers, tokens, wall)
}

#[cfg(test)]
mod tests {
    use super::*;
    use zoho_device_core::{AccessToken, Timestamp};

    fn stored(lifetime_s: u64) -> Pairing {
        Pairing::new(
            "kiosk".into(),
            Servers::Standard {
                token_url: ServerUrl::parse("https://idp.example/token").unwrap(),
                revocation_url: None,
                client_auth: None,
            },
            Tokens {
                access_token: AccessToken::new("a"),
                refresh_token: None,
                api_domain: None,
                accounts_url: None,
                location: None,
                scope: None,
                token_type: "Bearer".into(),
                expires_at: Timestamp::from_millis(1_000_000 + lifetime_s * 1000),
            },
            Timestamp::from_millis(1_000_000),
        )
    }

    #[test]
    fn the_refresh_margin_scales_with_the_token_lifetime() {
        // Zoho's hour: the full 5 minutes. Keycloak's 5 minutes: the last quarter, 75 s.
        assert_eq!(refresh_margin(REFRESH_MARGIN, &stored(3600)), REFRESH_MARGIN);
        assert_eq!(refresh_margin(REFRESH_MARGIN, &stored(300)), Duration::from_secs(75));
        // A Keycloak token fresh from the server is not refreshed again on the next call.
        let t = stored(300);
        let now = t.refreshed_at().saturating_add(Duration::from_secs(10));
        assert!(!t.tokens().expires_within(now, refresh_margin(REFRESH_MARGIN, &t)));
        assert!(
            t.tokens().expires_within(now, REFRESH_MARGIN),
            "the fixed margin would have"
        );
    }
}
