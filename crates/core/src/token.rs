//! Tokens, and the sans-IO refresh and revoke exchanges.
//!
//! A refresh is one request and one reply; the caller (a driver, the agent) decides when to
//! refresh and how to retry. [`TokenEndpoint::refresh_response`] classifies the reply: a new access token (the
//! old refresh token is kept — Zoho sends none), `invalid_code` (permanent: pair again),
//! `Access Denied` (Zoho's throttle: retry later, the refresh token is fine), or transient.

use alloc::string::String;
use core::time::Duration;

use crate::codec::{self, ClientAuth, ClientCredentials, Profile, Reply, TokenGrant};
use crate::dc::{ApiDomainPolicy, ServerUrl};
use crate::error::{Error, Transient};
use crate::http::HttpRequest;
use crate::secret::{AccessToken, RefreshToken};
use crate::time::Timestamp;

/// The tokens of a paired device.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    /// The access token.
    pub access_token: AccessToken,
    /// The refresh token, when offline access was granted.
    pub refresh_token: Option<RefreshToken>,
    /// Where API calls go (Zoho's `api_domain`, validated against the allow-list).
    pub api_domain: Option<ServerUrl>,
    /// Zoho: the user's accounts server (after `other_dc`, the user's DC) — refresh and
    /// revoke go there. Standard profile: `None`.
    pub accounts_url: Option<ServerUrl>,
    /// Zoho: the user's DC location code, when known.
    pub location: Option<String>,
    /// The granted scope, when the server said; else the scope asked for.
    pub scope: Option<String>,
    /// `token_type` (informational: Zoho's API wants `Zoho-oauthtoken`, not `Bearer`).
    pub token_type: String,
    /// When the access token expires, on the clock of the `now` passed in.
    pub expires_at: Timestamp,
}

impl Tokens {
    /// How long the access token has left at `now`.
    pub fn expires_in(&self, now: Timestamp) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// Whether the access token expires within `margin` of `now`.
    pub fn expires_within(&self, now: Timestamp, margin: Duration) -> bool {
        now.saturating_add(margin) >= self.expires_at
    }
}

/// Where refresh and revoke requests go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenEndpoint {
    /// Dialect.
    pub profile: Profile,
    /// The refresh URL (Zoho: `{accounts}/oauth/v2/token`).
    pub token_url: ServerUrl,
    /// The revocation URL, when there is one.
    pub revoke_url: Option<ServerUrl>,
    /// Which `api_domain`s a refreshed token may point at.
    pub api_domains: ApiDomainPolicy,
    /// How a confidential client authenticates (standard servers; Zoho takes the body).
    pub client_auth: ClientAuth,
}

impl TokenEndpoint {
    /// Zoho: refresh and revoke at the user's accounts server (v2 paths, not v3).
    pub fn zoho(accounts: &ServerUrl) -> TokenEndpoint {
        TokenEndpoint {
            profile: Profile::Zoho,
            token_url: accounts.join("/oauth/v2/token"),
            revoke_url: Some(accounts.join("/oauth/v2/token/revoke")),
            api_domains: ApiDomainPolicy::for_accounts(accounts),
            client_auth: ClientAuth::Post,
        }
    }

    /// A standard server's token and (optional) revocation endpoints.
    pub fn standard(token_url: &ServerUrl, revoke_url: Option<&ServerUrl>) -> TokenEndpoint {
        TokenEndpoint {
            profile: Profile::Rfc8628,
            token_url: token_url.clone(),
            revoke_url: revoke_url.cloned(),
            api_domains: ApiDomainPolicy::for_accounts(token_url),
            client_auth: ClientAuth::Auto,
        }
    }

    /// This endpoint with another client authentication method.
    pub fn with_client_auth(mut self, auth: ClientAuth) -> TokenEndpoint {
        self.client_auth = auth;
        self
    }

    /// [`ClientAuth::Auto`]'s one retry: the same endpoint with HTTP Basic, when `error` is a
    /// rejected client answered with HTTP 401 to a confidential client that sent its secret in
    /// the form body. `None` otherwise (and always for Zoho).
    pub fn basic_retry(&self, client: &ClientCredentials, status: u16, error: &Error) -> Option<TokenEndpoint> {
        (self.profile == Profile::Rfc8628
            && self.client_auth == ClientAuth::Auto
            && client.client_secret.is_some()
            && status == 401
            && matches!(error, Error::ClientRejected { .. }))
        .then(|| self.clone().with_client_auth(ClientAuth::Basic))
    }

    /// The refresh request for `refresh_token`.
    pub fn refresh_request(&self, client: &ClientCredentials, refresh_token: &RefreshToken) -> HttpRequest {
        codec::refresh_request(
            self.profile,
            self.token_url.clone(),
            client,
            refresh_token,
            self.client_auth,
        )
    }

    /// Reads a refresh reply. On success the result keeps `previous`'s refresh token unless
    /// the server sent a new one (standard servers may rotate), and its accounts server.
    pub fn refresh_response(
        &self,
        now: Timestamp,
        status: u16,
        body: &[u8],
        previous: &Tokens,
    ) -> Result<Tokens, Error> {
        match codec::parse_token_for(self.profile, status, body) {
            Reply::Ok(grant) => tokens_from_grant(
                now,
                grant,
                self.api_domains,
                previous.accounts_url.clone(),
                previous.location.clone(),
                previous.scope.clone(),
            )
            .map(|mut t| {
                if t.refresh_token.is_none() {
                    t.refresh_token = previous.refresh_token.clone();
                }
                if t.api_domain.is_none() {
                    t.api_domain = previous.api_domain.clone();
                }
                t
            }),
            Reply::Transient(Transient::Throttled) => Err(Error::Throttled),
            Reply::Transient(t) => Err(Error::Unavailable { attempts: 1, last: t }),
            Reply::Error(e) => Err(match grant_error(self.profile, e, &self.token_url) {
                Error::InvalidClientSecret { accounts_url, .. } => Error::InvalidClientSecret {
                    accounts_url,
                    location: previous.location.clone(),
                },
                other => other,
            }),
            Reply::Malformed(m) => Err(Error::Protocol(m)),
        }
    }

    /// The refresh request for `tokens`, or a configuration error when no refresh token is
    /// held (the device was paired without offline access).
    pub fn refresh_request_for(&self, client: &ClientCredentials, tokens: &Tokens) -> Result<HttpRequest, Error> {
        match &tokens.refresh_token {
            Some(rt) => Ok(self.refresh_request(client, rt)),
            None => Err(Error::Config(
                "no refresh token is stored (pair with offline access)".into(),
            )),
        }
    }

    /// The revocation request for `tokens`, or `None` when there is nothing to revoke or
    /// nowhere to revoke it.
    pub fn revoke_request_for(&self, client: &ClientCredentials, tokens: &Tokens) -> Option<HttpRequest> {
        self.revoke_request(client, tokens.refresh_token.as_ref()?)
    }

    /// The revocation request, or `None` when the server has no revocation endpoint.
    pub fn revoke_request(&self, client: &ClientCredentials, refresh_token: &RefreshToken) -> Option<HttpRequest> {
        let url = self.revoke_url.clone()?;
        Some(codec::revoke_request(
            self.profile,
            url,
            client,
            refresh_token,
            self.client_auth,
        ))
    }

    /// Reads a revocation reply. Zoho's HTTP 400 (an unknown token) comes back as
    /// [`Error::InvalidGrant`]: the token is dead either way.
    pub fn revoke_response(&self, status: u16, body: &[u8]) -> Result<(), Error> {
        match codec::parse_revoke(self.profile, status, body) {
            Reply::Ok(()) => Ok(()),
            Reply::Transient(Transient::Throttled) => Err(Error::Throttled),
            Reply::Transient(t) => Err(Error::Unavailable { attempts: 1, last: t }),
            // A standard server's rejected client is said so (and may call for HTTP Basic).
            Reply::Error(e) if self.profile == Profile::Rfc8628 && e.code != "unsupported_token_type" => {
                Err(standard_error(e, self.revoke_url.as_ref().unwrap_or(&self.token_url)))
            }
            Reply::Error(e) => Err(Error::InvalidGrant { code: e.code }),
            Reply::Malformed(m) => Err(Error::Protocol(m)),
        }
    }
}

/// Maps an OAuth error from a token endpoint to the core's error. A standard server's words
/// are its own: no Zoho advice, and what it said sanitised.
pub(crate) fn grant_error(profile: Profile, e: codec::OAuthError, url: &ServerUrl) -> Error {
    if profile == Profile::Rfc8628 {
        return standard_error(e, url);
    }
    match e.code.as_str() {
        "invalid_code" | "invalid_grant" | "invalid_token" => Error::InvalidGrant { code: e.code },
        "invalid_client" | "unauthorized_client" => Error::InvalidClient {
            accounts_url: url.origin(),
        },
        "invalid_client_secret" => Error::InvalidClientSecret {
            accounts_url: url.origin(),
            location: None,
        },
        _ => Error::Server {
            code: e.code,
            description: e.description,
        },
    }
}

/// A standard server's error at its token (or device authorization) endpoint.
pub(crate) fn standard_error(e: codec::OAuthError, url: &ServerUrl) -> Error {
    use crate::error::clean_server_text as clean;
    let description = e.description.as_deref().map(clean).filter(|d| !d.is_empty());
    match e.code.as_str() {
        "invalid_grant" | "invalid_token" => Error::InvalidGrant { code: clean(&e.code) },
        "invalid_client" => Error::ClientRejected {
            server: url.origin(),
            description,
        },
        "unauthorized_client" | "unsupported_grant_type" => Error::GrantNotAllowed {
            code: e.code,
            description,
        },
        "invalid_scope" => Error::InvalidScope {
            scope: String::new(),
            offline_added: false,
            description,
        },
        _ => Error::Server {
            code: clean(&e.code),
            description,
        },
    }
}

/// Builds [`Tokens`] from a grant, validating `api_domain` before anything is sent there.
pub(crate) fn tokens_from_grant(
    now: Timestamp,
    grant: TokenGrant,
    policy: ApiDomainPolicy,
    accounts_url: Option<ServerUrl>,
    location: Option<String>,
    scope_asked: Option<String>,
) -> Result<Tokens, Error> {
    let api_domain = match &grant.api_domain {
        Some(d) => Some(policy.check(d).map_err(Error::Unsafe)?),
        None => None,
    };
    Ok(Tokens {
        access_token: grant.access_token,
        refresh_token: grant.refresh_token,
        api_domain,
        accounts_url,
        location,
        scope: grant.scope.or(scope_asked),
        token_type: grant.token_type,
        expires_at: now.saturating_add(grant.expires_in),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::ClientSecret;

    fn client() -> ClientCredentials {
        ClientCredentials {
            client_id: "1004.ID".into(),
            client_secret: Some(ClientSecret::new("sec")),
        }
    }

    fn previous(accounts: &ServerUrl) -> Tokens {
        Tokens {
            access_token: AccessToken::new("old"),
            refresh_token: Some(RefreshToken::new("refresh")),
            api_domain: Some(ServerUrl::parse("https://www.zohoapis.eu").unwrap()),
            accounts_url: Some(accounts.clone()),
            location: Some("eu".into()),
            scope: Some("ZohoBooks.settings.READ".into()),
            token_type: "Bearer".into(),
            expires_at: Timestamp::from_millis(0),
        }
    }

    #[test]
    fn refresh_success_keeps_the_refresh_token() {
        let acc = ServerUrl::parse("https://accounts.zoho.eu").unwrap();
        let ep = TokenEndpoint::zoho(&acc);
        let req = ep.refresh_request(&client(), &RefreshToken::new("refresh"));
        assert_eq!(req.url, "https://accounts.zoho.eu/oauth/v2/token");
        assert_eq!(
            core::str::from_utf8(&req.body).unwrap(),
            "client_id=1004.ID&client_secret=sec&grant_type=refresh_token&refresh_token=refresh"
        );
        let now = Timestamp::from_millis(10_000);
        let t = ep
            .refresh_response(now, 200, br#"{"access_token":"new","api_domain":"https://www.zohoapis.eu","token_type":"Bearer","expires_in":3600}"#, &previous(&acc))
            .unwrap();
        assert_eq!(t.access_token.expose(), "new");
        assert_eq!(t.refresh_token.as_ref().unwrap().expose(), "refresh");
        assert_eq!(t.expires_at.as_millis(), 3_610_000);
        assert_eq!(t.accounts_url, Some(acc));
    }

    #[test]
    fn refresh_failures_are_classified() {
        let acc = ServerUrl::parse("https://accounts.zoho.eu").unwrap();
        let ep = TokenEndpoint::zoho(&acc);
        let p = previous(&acc);
        let now = Timestamp::ZERO;
        assert_eq!(
            ep.refresh_response(now, 200, br#"{"error":"invalid_code"}"#, &p),
            Err(Error::InvalidGrant {
                code: "invalid_code".into()
            })
        );
        let throttle = br#"{"error":"Access Denied","error_description":"Token creation throttle limit reached. Try again later."}"#;
        let e = ep.refresh_response(now, 200, throttle, &p).unwrap_err();
        assert_eq!(e, Error::Throttled);
        assert!(e.is_transient());
        let e = ep.refresh_response(now, 503, b"<html>down</html>", &p).unwrap_err();
        assert_eq!(
            e,
            Error::Unavailable {
                attempts: 1,
                last: Transient::NotJson(503)
            }
        );
        let e = ep
            .refresh_response(
                now,
                200,
                br#"{"access_token":"x","api_domain":"https://evil.example"}"#,
                &p,
            )
            .unwrap_err();
        assert!(matches!(e, Error::Unsafe(_)));
        assert_eq!(
            ep.refresh_response(now, 200, br#"{"error":"invalid_client"}"#, &p),
            Err(Error::InvalidClient {
                accounts_url: "https://accounts.zoho.eu".into()
            })
        );
    }

    #[test]
    fn revoke() {
        let acc = ServerUrl::parse("https://accounts.zoho.com").unwrap();
        let ep = TokenEndpoint::zoho(&acc);
        let req = ep.revoke_request(&client(), &RefreshToken::new("r")).unwrap();
        assert_eq!(req.url, "https://accounts.zoho.com/oauth/v2/token/revoke");
        assert_eq!(core::str::from_utf8(&req.body).unwrap(), "token=r");
        assert_eq!(ep.revoke_response(200, br#"{"status":"success"}"#), Ok(()));
        assert!(matches!(
            ep.revoke_response(400, br#"{"status":"failure"}"#),
            Err(Error::InvalidGrant { .. })
        ));
        assert!(ep.revoke_response(502, b"bad gateway").unwrap_err().is_transient());
    }
}
