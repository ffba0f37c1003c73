//! One record of a pairing: whose it is, where its servers are, its tokens, and when it was
//! made and last refreshed.
//!
//! [`Pairing`] is what a login produces ([`Pairing::new`] from the flow's result), what a
//! store saves and loads (serde, the token file's version-1 JSON), what a keeper holds and
//! what [`Pairing::token_endpoint`] turns into the one place refresh and revoke go. Its shape
//! leaves no room for an inconsistent pairing: the servers are a [`Servers`] (Zoho's accounts
//! server *or* a standard server's endpoints, never a mix), and the fields are private, so the
//! tokens' Zoho fields (`accounts_url`, `location`) always say what the servers say.
//!
//! The file format is the one devices already hold (version 1, written by earlier versions as
//! a flat JSON object); reading one that does not hang together (an unknown profile, a Zoho
//! pairing without its accounts server, a standard one naming Zoho's fields) is an error, not
//! a guess.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use crate::codec::{ClientAuth, Profile};
use crate::dc::ServerUrl;
use crate::flow::Server;
use crate::time::Timestamp;
use crate::token::{TokenEndpoint, Tokens};

/// The token file format this module reads and writes.
pub const FORMAT_VERSION: u32 = 1;

/// Where a pairing's tokens are refreshed and revoked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Servers {
    /// Zoho Accounts.
    Zoho {
        /// The user's accounts server (after `other_dc`, the user's DC): refresh and revoke
        /// go there.
        accounts: ServerUrl,
        /// The user's DC location code, when known.
        location: Option<String>,
    },
    /// A standard RFC 8628 server.
    Standard {
        /// The token endpoint (refresh).
        token_url: ServerUrl,
        /// The revocation endpoint, when the server has one.
        revocation_url: Option<ServerUrl>,
        /// How the client authenticated at pairing, reused to refresh and revoke. `None`:
        /// [`ClientAuth::Auto`] (the form body, one retry in HTTP Basic on 401
        /// `invalid_client`).
        client_auth: Option<ClientAuth>,
    },
}

impl Servers {
    /// Where a device flow against `server` that returned `tokens` left the pairing. Zoho: the
    /// accounts server polling ended at (after any `other_dc` move, as the tokens say) and the
    /// user's location. Standard: the server's token endpoint, with the `revocation_url` and
    /// the client authentication that worked (`standard_auth`; both ignored for Zoho, whose
    /// paths and method are fixed).
    pub fn after_flow(
        server: &Server,
        tokens: &Tokens,
        revocation_url: Option<ServerUrl>,
        standard_auth: Option<ClientAuth>,
    ) -> Servers {
        match server {
            Server::Zoho { accounts, .. } => Servers::Zoho {
                accounts: tokens.accounts_url.clone().unwrap_or_else(|| accounts.clone()),
                location: tokens.location.clone(),
            },
            Server::Standard { token_url, .. } => Servers::Standard {
                token_url: token_url.clone(),
                revocation_url,
                client_auth: standard_auth,
            },
        }
    }

    /// The dialect these servers speak.
    pub fn profile(&self) -> Profile {
        match self {
            Servers::Zoho { .. } => Profile::Zoho,
            Servers::Standard { .. } => Profile::Rfc8628,
        }
    }
}

/// A paired device: client, servers, tokens, and when it was paired and last refreshed (Unix
/// time). Serialises as the token file's version-1 JSON.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "FileV1", into = "FileV1")]
pub struct Pairing {
    client_id: String,
    servers: Servers,
    tokens: Tokens,
    paired_at: Timestamp,
    refreshed_at: Timestamp,
}

impl Pairing {
    /// A pairing made at `paired_at` (Unix time), the tokens' `expires_at` on Unix time too.
    /// The tokens' Zoho fields are set from `servers` (a standard pairing has none).
    pub fn new(client_id: String, servers: Servers, tokens: Tokens, paired_at: Timestamp) -> Pairing {
        let mut pairing = Pairing {
            client_id,
            servers,
            tokens,
            paired_at,
            refreshed_at: paired_at,
        };
        pairing.align_tokens();
        pairing
    }

    /// The client the tokens belong to.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// Where refresh and revoke go.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    /// The dialect of the servers.
    pub fn profile(&self) -> Profile {
        self.servers.profile()
    }

    /// The tokens (`expires_at` in Unix time).
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Zoho: the user's accounts server; standard: `None`.
    pub fn accounts(&self) -> Option<&ServerUrl> {
        match &self.servers {
            Servers::Zoho { accounts, .. } => Some(accounts),
            Servers::Standard { .. } => None,
        }
    }

    /// Zoho: the user's DC location code, when known; standard: `None`.
    pub fn location(&self) -> Option<&str> {
        match &self.servers {
            Servers::Zoho { location, .. } => location.as_deref(),
            Servers::Standard { .. } => None,
        }
    }

    /// When the device was paired (Unix time).
    pub fn paired_at(&self) -> Timestamp {
        self.paired_at
    }

    /// When the access token was last minted (Unix time).
    pub fn refreshed_at(&self) -> Timestamp {
        self.refreshed_at
    }

    /// This pairing with freshly minted `tokens`, refreshed at `now` (Unix time). The servers
    /// stay: a refresh never moves a pairing.
    pub fn with_tokens(&self, tokens: Tokens, now: Timestamp) -> Pairing {
        let mut fresh = Pairing {
            tokens,
            refreshed_at: now,
            ..self.clone()
        };
        fresh.align_tokens();
        fresh
    }

    /// How long the access token lived when it was minted (`expires_at − refreshed_at`; a
    /// record without that: what is left at `now`). A keeper scales its margin by it.
    pub fn lifetime(&self, now: Timestamp) -> Duration {
        match self
            .tokens
            .expires_at
            .as_millis()
            .saturating_sub(self.refreshed_at.as_millis())
        {
            0 => self.tokens.expires_in(now),
            ms => Duration::from_millis(ms),
        }
    }

    /// The tokens with `expires_at` moved from Unix time (`wall`) to another clock read at the
    /// same instant (`now`), e.g. the monotonic clock a keeper plans on.
    pub fn tokens_on(&self, wall: Timestamp, now: Timestamp) -> Tokens {
        let mut tokens = self.tokens.clone();
        tokens.expires_at = tokens.expires_at.rebase(wall, now);
        tokens
    }

    /// Where this pairing refreshes and revokes: the one place that decides. Zoho: the
    /// accounts server's v2 paths; standard: the stored endpoints, authenticated with
    /// `client_auth` when given (a configured method wins), else the method that worked at
    /// pairing, else [`ClientAuth::Auto`].
    pub fn token_endpoint(&self, client_auth: Option<ClientAuth>) -> TokenEndpoint {
        match &self.servers {
            Servers::Zoho { accounts, .. } => TokenEndpoint::zoho(accounts),
            Servers::Standard {
                token_url,
                revocation_url,
                client_auth: paired_with,
            } => TokenEndpoint::standard(token_url, revocation_url.as_ref())
                .with_client_auth(client_auth.or(*paired_with).unwrap_or_default()),
        }
    }

    fn align_tokens(&mut self) {
        let (accounts, location) = match &self.servers {
            Servers::Zoho { accounts, location } => (Some(accounts.clone()), location.clone()),
            Servers::Standard { .. } => (None, None),
        };
        self.tokens.accounts_url = accounts;
        self.tokens.location = location;
    }
}

/// The token file as version 1 wrote it: a flat object, the profile as a string, the standard
/// server's fields beside Zoho's. Only [`Pairing`] is built from it, after checking that it
/// hangs together.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct FileV1 {
    version: u32,
    profile: String,
    client_id: String,
    #[serde(flatten)]
    tokens: Tokens,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    token_url: Option<ServerUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revocation_url: Option<ServerUrl>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    client_auth: Option<String>,
    paired_at: Timestamp,
    refreshed_at: Timestamp,
}

/// A value read from the file, for an error message: sanitised, at most 40 characters.
fn shown(s: &str) -> String {
    let cut: String = s.chars().take(40).collect();
    let more = if cut.len() < s.len() { "…" } else { "" };
    alloc::format!("{}{more}", crate::text::Safe(&cut))
}

impl From<Pairing> for FileV1 {
    fn from(p: Pairing) -> FileV1 {
        let profile = p.profile().as_str();
        let (token_url, revocation_url, client_auth) = match p.servers {
            Servers::Zoho { .. } => (None, None, None),
            Servers::Standard {
                token_url,
                revocation_url,
                client_auth,
            } => (
                Some(token_url),
                revocation_url,
                client_auth.map(|a| a.as_str().to_string()),
            ),
        };
        FileV1 {
            version: FORMAT_VERSION,
            profile: profile.to_string(),
            client_id: p.client_id,
            tokens: p.tokens,
            token_url,
            revocation_url,
            client_auth,
            paired_at: p.paired_at,
            refreshed_at: p.refreshed_at,
        }
    }
}

impl TryFrom<FileV1> for Pairing {
    type Error = String;

    fn try_from(f: FileV1) -> Result<Pairing, String> {
        if f.version != FORMAT_VERSION {
            return Err(alloc::format!("unknown format version {}", f.version));
        }
        let servers = match Profile::parse(&f.profile) {
            Some(Profile::Zoho) => {
                let foreign: Vec<&str> = [
                    ("token_url", f.token_url.is_some()),
                    ("revocation_url", f.revocation_url.is_some()),
                    ("client_auth", f.client_auth.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, set)| set.then_some(name))
                .collect();
                if !foreign.is_empty() {
                    return Err(alloc::format!(
                        "a zoho pairing with a standard server's {}",
                        foreign.join(", ")
                    ));
                }
                let accounts = f
                    .tokens
                    .accounts_url
                    .clone()
                    .ok_or_else(|| String::from("a zoho pairing without accounts_url"))?;
                Servers::Zoho {
                    accounts,
                    location: f.tokens.location.clone(),
                }
            }
            Some(Profile::Rfc8628) => {
                if f.tokens.accounts_url.is_some() || f.tokens.location.is_some() {
                    return Err("a standard (rfc8628) pairing with Zoho's accounts_url or location".into());
                }
                let token_url = f
                    .token_url
                    .ok_or_else(|| String::from("a standard (rfc8628) pairing without token_url"))?;
                let client_auth = match f.client_auth.as_deref() {
                    None => None,
                    Some(s) => Some(ClientAuth::parse(s).ok_or_else(|| {
                        alloc::format!("unknown client_auth \"{}\" (expected post or basic)", shown(s))
                    })?),
                };
                Servers::Standard {
                    token_url,
                    revocation_url: f.revocation_url,
                    client_auth,
                }
            }
            None => {
                return Err(alloc::format!(
                    "unknown profile \"{}\" (expected zoho or rfc8628)",
                    shown(&f.profile)
                ));
            }
        };
        Ok(Pairing {
            client_id: f.client_id,
            servers,
            tokens: f.tokens,
            paired_at: f.paired_at,
            refreshed_at: f.refreshed_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::{AccessToken, RefreshToken};

    fn url(s: &str) -> ServerUrl {
        ServerUrl::parse(s).unwrap()
    }

    fn tokens() -> Tokens {
        Tokens {
            access_token: AccessToken::new("1000.access"),
            refresh_token: Some(RefreshToken::new("1000.refresh")),
            api_domain: Some(url("https://www.zohoapis.eu")),
            accounts_url: None,
            location: None,
            scope: Some("ZohoBooks.settings.READ".into()),
            token_type: "Bearer".into(),
            expires_at: Timestamp::from_millis(1_800_000_000_000),
        }
    }

    /// A Zoho token file exactly as version 1 (`StoredToken`, serde_json's pretty printer)
    /// wrote it.
    const ZOHO_V1: &str = r#"{
  "version": 1,
  "profile": "zoho",
  "client_id": "1004.X",
  "access_token": "1000.access",
  "refresh_token": "1000.refresh",
  "api_domain": "https://www.zohoapis.eu",
  "accounts_url": "https://accounts.zoho.eu",
  "location": "eu",
  "scope": "ZohoBooks.settings.READ",
  "token_type": "Bearer",
  "expires_at": 1800000000000,
  "paired_at": 1,
  "refreshed_at": 2
}"#;

    /// A standard server's token file as version 1 wrote it.
    const STANDARD_V1: &str = r#"{
  "version": 1,
  "profile": "rfc8628",
  "client_id": "kiosk",
  "access_token": "at",
  "refresh_token": null,
  "api_domain": null,
  "accounts_url": null,
  "location": null,
  "scope": "openid offline_access",
  "token_type": "Bearer",
  "expires_at": 1800000000000,
  "token_url": "https://idp.example/token",
  "revocation_url": "https://idp.example/revoke",
  "client_auth": "basic",
  "paired_at": 1700000000000,
  "refreshed_at": 1700000000000
}"#;

    fn read(json: &str) -> Result<Pairing, String> {
        serde_json::from_str::<Pairing>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn version_1_files_load_and_write_back_byte_for_byte() {
        for file in [ZOHO_V1, STANDARD_V1] {
            let p = read(file).unwrap();
            assert_eq!(serde_json::to_string_pretty(&p).unwrap(), file);
        }
        let zoho = read(ZOHO_V1).unwrap();
        assert_eq!(
            zoho.servers(),
            &Servers::Zoho {
                accounts: url("https://accounts.zoho.eu"),
                location: Some("eu".into())
            }
        );
        assert_eq!((zoho.paired_at().as_millis(), zoho.refreshed_at().as_millis()), (1, 2));
        let standard = read(STANDARD_V1).unwrap();
        assert_eq!(standard.profile(), Profile::Rfc8628);
        assert_eq!(
            standard.servers(),
            &Servers::Standard {
                token_url: url("https://idp.example/token"),
                revocation_url: Some(url("https://idp.example/revoke")),
                client_auth: Some(ClientAuth::Basic),
            }
        );
    }

    #[test]
    fn a_new_pairing_round_trips_and_keeps_the_tokens_in_line_with_its_servers() {
        let mut t = tokens();
        // Whatever the tokens said, the servers decide.
        t.accounts_url = Some(url("https://accounts.zoho.com"));
        t.location = Some("us".into());
        let servers = Servers::Standard {
            token_url: url("https://idp.example/token"),
            revocation_url: None,
            client_auth: None,
        };
        let p = Pairing::new("kiosk".into(), servers, t, Timestamp::from_millis(5));
        assert_eq!((p.tokens().accounts_url.as_ref(), p.location()), (None, None));
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(read(&json).unwrap(), p);
        // A refresh keeps the servers and moves refreshed_at.
        let q = p.with_tokens(tokens(), Timestamp::from_millis(9));
        assert_eq!((q.paired_at().as_millis(), q.refreshed_at().as_millis()), (5, 9));
        assert_eq!(q.tokens().accounts_url, None);
        assert_eq!(read(&serde_json::to_string(&q).unwrap()).unwrap(), q);
    }

    #[test]
    fn inconsistent_files_are_refused_with_what_is_wrong() {
        let cases = [
            (ZOHO_V1.replace("\"zoho\"", "\"Zoho\""), "unknown profile \"Zoho\""),
            (ZOHO_V1.replace("\"zoho\"", "\"oidc\""), "unknown profile \"oidc\""),
            (
                ZOHO_V1.replace("\"version\": 1", "\"version\": 2"),
                "unknown format version 2",
            ),
            (
                ZOHO_V1.replace("\"https://accounts.zoho.eu\"", "null"),
                "a zoho pairing without accounts_url",
            ),
            (
                ZOHO_V1.replace(
                    "\"paired_at\"",
                    "\"token_url\": \"https://idp.example/t\", \"paired_at\"",
                ),
                "a zoho pairing with a standard server's token_url",
            ),
            (
                STANDARD_V1.replace("\"token_url\": \"https://idp.example/token\",", ""),
                "a standard (rfc8628) pairing without token_url",
            ),
            (
                STANDARD_V1.replace("\"location\": null", "\"location\": \"eu\""),
                "a standard (rfc8628) pairing with Zoho's accounts_url or location",
            ),
            (
                STANDARD_V1.replace("\"basic\"", "\"magic\""),
                "unknown client_auth \"magic\"",
            ),
            (
                ZOHO_V1.replace("\"zoho\"", "\"\\u001b[2J\""),
                "unknown profile \"\\x1b[2J\"",
            ),
        ];
        for (file, why) in cases {
            let e = read(&file).unwrap_err();
            assert!(e.contains(why), "{e} (wanted {why})");
        }
    }

    #[test]
    fn the_pairing_decides_where_refresh_and_revoke_go() {
        let zoho = read(ZOHO_V1).unwrap();
        let ep = zoho.token_endpoint(Some(ClientAuth::Basic));
        assert_eq!(ep, TokenEndpoint::zoho(&url("https://accounts.zoho.eu")));
        let standard = read(STANDARD_V1).unwrap();
        let ep = standard.token_endpoint(None);
        assert_eq!(ep.token_url, url("https://idp.example/token"));
        assert_eq!(ep.revoke_url, Some(url("https://idp.example/revoke")));
        assert_eq!(ep.client_auth, ClientAuth::Basic, "the method that worked at pairing");
        assert_eq!(
            standard.token_endpoint(Some(ClientAuth::Post)).client_auth,
            ClientAuth::Post
        );
    }

    #[test]
    fn a_flow_result_becomes_the_servers_it_ended_at() {
        let mut t = tokens();
        t.accounts_url = Some(url("https://accounts.zoho.in"));
        t.location = Some("in".into());
        let s = Servers::after_flow(
            &Server::zoho(url("https://accounts.zoho.com")),
            &t,
            None,
            Some(ClientAuth::Basic),
        );
        assert_eq!(
            s,
            Servers::Zoho {
                accounts: url("https://accounts.zoho.in"),
                location: Some("in".into())
            }
        );
        let server = Server::Standard {
            device_authorization_url: url("https://idp.example/device"),
            token_url: url("https://idp.example/token"),
        };
        let s = Servers::after_flow(&server, &tokens(), None, Some(ClientAuth::Post));
        assert_eq!(
            s,
            Servers::Standard {
                token_url: url("https://idp.example/token"),
                revocation_url: None,
                client_auth: Some(ClientAuth::Post)
            }
        );
    }

    #[test]
    fn lifetime_and_clock_moves() {
        let mut t = tokens();
        t.expires_at = Timestamp::from_millis(1_003_600_000);
        let p = Pairing::new(
            "c".into(),
            Servers::Zoho {
                accounts: url("https://accounts.zoho.eu"),
                location: None,
            },
            t,
            Timestamp::from_millis(1_000_000_000),
        );
        assert_eq!(
            p.lifetime(Timestamp::from_millis(1_000_000_000)),
            Duration::from_secs(3600)
        );
        let on = p.tokens_on(Timestamp::from_millis(1_000_000_000), Timestamp::from_millis(10));
        assert_eq!(on.expires_at.as_millis(), 3_600_010);
    }
}
