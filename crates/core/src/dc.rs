//! Zoho's data centres, server URLs, and where a token may be sent.
//!
//! A client ID exists only in the data centre (DC) it was registered in (plus the DCs enabled
//! under "Multi-DC"), and a user's tokens live in the user's DC. This module holds the table of
//! the ten DCs, a small validated [`ServerUrl`] (https, or http on loopback only), and the
//! `api_domain` allow-list: an access token is only ever sent to `https://*.zohoapis.<DC>`, or to
//! loopback when the accounts server itself was overridden to loopback (the simulator).
//!
//! `other_dc` moves polling to another accounts server, found in the table or (for a location
//! the table lacks, or an overridden server) in `GET {accounts}/oauth/serverinfo`. Before the
//! flow follows, [`check_accounts_move`] applies the same spirit as the `api_domain` allow-list:
//! from Zoho's own servers only to `https://accounts.zoho.<country>` / `accounts.zohocloud.<country>`
//! hosts, and to loopback only from loopback.

use alloc::string::String;
use core::fmt;

/// One of Zoho's data centres.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DataCenter {
    /// United States (`us`).
    Us,
    /// Europe (`eu`).
    Eu,
    /// India (`in`).
    In,
    /// Australia (`au`).
    Au,
    /// Japan (`jp`).
    Jp,
    /// Canada (`ca`): accounts at zohocloud.ca, not zoho.ca.
    Ca,
    /// Saudi Arabia (`sa`).
    Sa,
    /// United Kingdom (`uk`).
    Uk,
    /// United Arab Emirates (`ae`).
    Ae,
    /// China (`cn`).
    Cn,
}

impl DataCenter {
    /// All ten, in Zoho's usual order.
    pub const ALL: [DataCenter; 10] = [
        DataCenter::Us,
        DataCenter::Eu,
        DataCenter::In,
        DataCenter::Au,
        DataCenter::Jp,
        DataCenter::Ca,
        DataCenter::Sa,
        DataCenter::Uk,
        DataCenter::Ae,
        DataCenter::Cn,
    ];

    /// Zoho's location code (`us`, `eu`, …), as in `other_dc`'s `user_location`.
    pub const fn location(self) -> &'static str {
        match self {
            DataCenter::Us => "us",
            DataCenter::Eu => "eu",
            DataCenter::In => "in",
            DataCenter::Au => "au",
            DataCenter::Jp => "jp",
            DataCenter::Ca => "ca",
            DataCenter::Sa => "sa",
            DataCenter::Uk => "uk",
            DataCenter::Ae => "ae",
            DataCenter::Cn => "cn",
        }
    }

    /// The accounts server as a [`ServerUrl`] (the table's URLs are valid by construction).
    pub fn accounts_server(self) -> ServerUrl {
        ServerUrl::parse(self.accounts_url()).expect("the DC table holds valid URLs")
    }

    /// The accounts server, e.g. `https://accounts.zoho.eu`.
    pub const fn accounts_url(self) -> &'static str {
        match self {
            DataCenter::Us => "https://accounts.zoho.com",
            DataCenter::Eu => "https://accounts.zoho.eu",
            DataCenter::In => "https://accounts.zoho.in",
            DataCenter::Au => "https://accounts.zoho.com.au",
            DataCenter::Jp => "https://accounts.zoho.jp",
            DataCenter::Ca => "https://accounts.zohocloud.ca",
            DataCenter::Sa => "https://accounts.zoho.sa",
            DataCenter::Uk => "https://accounts.zoho.uk",
            DataCenter::Ae => "https://accounts.zoho.ae",
            DataCenter::Cn => "https://accounts.zoho.com.cn",
        }
    }

    /// The API domain Zoho hands out for this DC, e.g. `https://www.zohoapis.eu`.
    pub const fn api_domain(self) -> &'static str {
        match self {
            DataCenter::Us => "https://www.zohoapis.com",
            DataCenter::Eu => "https://www.zohoapis.eu",
            DataCenter::In => "https://www.zohoapis.in",
            DataCenter::Au => "https://www.zohoapis.com.au",
            DataCenter::Jp => "https://www.zohoapis.jp",
            DataCenter::Ca => "https://www.zohoapis.ca",
            DataCenter::Sa => "https://www.zohoapis.sa",
            DataCenter::Uk => "https://www.zohoapis.uk",
            DataCenter::Ae => "https://www.zohoapis.ae",
            DataCenter::Cn => "https://www.zohoapis.com.cn",
        }
    }

    /// The domain suffix after `zohoapis.` (`com`, `eu`, `com.au`, …).
    const fn api_suffix(self) -> &'static str {
        match self {
            DataCenter::Us => "com",
            DataCenter::Eu => "eu",
            DataCenter::In => "in",
            DataCenter::Au => "com.au",
            DataCenter::Jp => "jp",
            DataCenter::Ca => "ca",
            DataCenter::Sa => "sa",
            DataCenter::Uk => "uk",
            DataCenter::Ae => "ae",
            DataCenter::Cn => "com.cn",
        }
    }

    /// The DC with this location code (case-insensitive).
    pub fn from_location(code: &str) -> Option<DataCenter> {
        DataCenter::ALL
            .into_iter()
            .find(|dc| dc.location().eq_ignore_ascii_case(code.trim()))
    }

    /// The DC whose accounts server this is (`https://accounts.zoho.eu` → `Eu`).
    pub fn from_accounts_url(url: &ServerUrl) -> Option<DataCenter> {
        DataCenter::ALL.into_iter().find(|dc| dc.accounts_url() == url.as_str())
    }
}

impl fmt::Display for DataCenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.location())
    }
}

/// Why a URL was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UrlError {
    /// Not an absolute `scheme://host...` URL, or a part the policy refuses (a fragment).
    Malformed,
    /// `http://` to a host that is not loopback: tokens and secrets would travel in clear.
    InsecureScheme,
    /// A scheme other than http/https.
    UnsupportedScheme,
    /// `user:password@` in the URL.
    UserInfo,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::Malformed => "not a URL of the form https://host[:port][/path][?query]",
            UrlError::InsecureScheme => {
                "http:// is only allowed for loopback hosts (127.0.0.1, ::1, localhost); use https://"
            }
            UrlError::UnsupportedScheme => "only https:// (or http:// on loopback) URLs are allowed",
            UrlError::UserInfo => "credentials in the URL are not allowed",
        })
    }
}

#[cfg(feature = "std")]
impl std::error::Error for UrlError {}

/// A validated server URL: `https://host[:port][/path][?query]`, or `http://` on loopback only.
///
/// Parsed once, by the `url` crate — the WHATWG parser that reqwest itself uses — and every
/// check (scheme, host, loopback, allow-lists) reads *that* parse. The transport is handed the
/// same parsed [`url::Url`] ([`ServerUrl::as_url`]), never the original string, so the host that
/// was approved is the host that is connected to (`https://evil.example\.zohoapis.com` is host
/// `evil.example` for the check too). The path is kept exactly as given: `/o/token/` and
/// `/o/token` are different endpoints (RFC 3986 §6.2.3), and a query is kept. Only an empty
/// path is written without its `/` (`https://accounts.zoho.eu`), which names the same resource.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ServerUrl {
    url: url::Url,
}

impl ServerUrl {
    /// Parses and validates a URL.
    pub fn parse(input: &str) -> Result<ServerUrl, UrlError> {
        let url = url::Url::parse(input.trim()).map_err(|_| UrlError::Malformed)?;
        ServerUrl::from_url(url)
    }

    /// Validates an already parsed URL.
    pub fn from_url(url: url::Url) -> Result<ServerUrl, UrlError> {
        let secure = match url.scheme() {
            "https" => true,
            "http" => false,
            _ => return Err(UrlError::UnsupportedScheme),
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::UserInfo);
        }
        if url.fragment().is_some() || url.host().is_none() {
            return Err(UrlError::Malformed);
        }
        let u = ServerUrl { url };
        if !secure && !u.is_loopback() {
            return Err(UrlError::InsecureScheme);
        }
        Ok(u)
    }

    /// The URL as written: the `url` crate's serialisation, without the `/` of an empty path.
    pub fn as_str(&self) -> &str {
        let s = self.url.as_str();
        if self.url.path() == "/" && self.url.query().is_none() {
            s.strip_suffix('/').unwrap_or(s)
        } else {
            s
        }
    }

    /// The parsed URL: what a transport connects to.
    pub fn as_url(&self) -> &url::Url {
        &self.url
    }

    /// The host as parsed (IPv6 without brackets), lower case.
    pub fn host(&self) -> &str {
        let h = self.url.host_str().unwrap_or_default();
        h.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(h)
    }

    /// Whether this is `https://`.
    pub fn is_https(&self) -> bool {
        self.url.scheme() == "https"
    }

    /// Whether the host is a loopback address (`127.0.0.0/8`, `::1`) or `localhost`, as parsed.
    pub fn is_loopback(&self) -> bool {
        match self.url.host() {
            Some(url::Host::Ipv4(a)) => a.is_loopback(),
            Some(url::Host::Ipv6(a)) => a.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        }
    }

    /// Whether this is `scheme://host` alone: no port, no path, no query.
    pub fn is_bare_origin(&self) -> bool {
        self.url.port().is_none() && self.url.path() == "/" && self.url.query().is_none()
    }

    /// `scheme://host[:port]`, for messages.
    pub fn origin(&self) -> String {
        self.url.origin().ascii_serialization()
    }

    /// This server with its path replaced by `path` (which starts with `/`) and no query.
    pub fn with_path(&self, path: &str) -> ServerUrl {
        let mut url = self.url.clone();
        url.set_path(path);
        url.set_query(None);
        ServerUrl { url }
    }

    /// This URL with `path` (which starts with `/`) appended to its path; a trailing `/` of the
    /// base is not doubled, and the query is kept. The result is valid by construction (same
    /// scheme and host).
    pub fn join(&self, path: &str) -> ServerUrl {
        let mut url = self.url.clone();
        let mut p = String::with_capacity(url.path().len() + path.len());
        p.push_str(url.path().trim_end_matches('/'));
        p.push_str(path);
        url.set_path(&p);
        ServerUrl { url }
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({:?})", self.as_str())
    }
}

impl PartialEq<str> for ServerUrl {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ServerUrl {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl TryFrom<String> for ServerUrl {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        ServerUrl::parse(&s)
    }
}

impl From<ServerUrl> for String {
    fn from(u: ServerUrl) -> String {
        u.as_str().into()
    }
}

/// Where an access token may be sent (`api_domain`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ApiDomainPolicy {
    /// Only `https://` hosts `zohoapis.<DC suffix>` or under it.
    #[default]
    ZohoOnly,
    /// Also loopback hosts — only when the accounts server itself is a loopback override.
    ZohoOrLoopback,
}

impl ApiDomainPolicy {
    /// The policy that fits an accounts server: loopback accounts servers (the simulator) may
    /// hand out loopback API domains; real ones may not.
    pub fn for_accounts(accounts: &ServerUrl) -> ApiDomainPolicy {
        if accounts.is_loopback() {
            ApiDomainPolicy::ZohoOrLoopback
        } else {
            ApiDomainPolicy::ZohoOnly
        }
    }

    /// Validates an `api_domain` from a token reply. The error says why, for the user.
    pub fn check(self, api_domain: &str) -> Result<ServerUrl, String> {
        let url = ServerUrl::parse(api_domain).map_err(|e| alloc::format!("api_domain {api_domain:?} refused: {e}"))?;
        self.check_url(url)
    }

    /// Validates an already parsed `api_domain` (one read back from the token file).
    pub fn check_url(self, url: ServerUrl) -> Result<ServerUrl, String> {
        let api_domain = url.as_str();
        if url.as_url().query().is_some() {
            return Err(alloc::format!("api_domain {api_domain:?} refused: it carries a query"));
        }
        if self == ApiDomainPolicy::ZohoOrLoopback && url.is_loopback() {
            return Ok(url);
        }
        let host = url.host();
        let zoho = url.is_https()
            && DataCenter::ALL.iter().any(|dc| {
                let apex = alloc::format!("zohoapis.{}", dc.api_suffix());
                host == apex || host.strip_suffix(apex.as_str()).is_some_and(|p| p.ends_with('.'))
            });
        if zoho {
            Ok(url)
        } else {
            Err(alloc::format!(
                "api_domain {api_domain:?} refused: access tokens are only sent to https://*.zohoapis.<Zoho DC> hosts"
            ))
        }
    }
}

/// Whether `host` looks like one of Zoho's accounts hosts: `accounts.zoho.<suffix>` or
/// `accounts.zohocloud.<suffix>`, where the suffix is a country code (`eu`, `jp`), `com`, or
/// `com.<cc>` / `co.<cc>` (`com.au`, `co.uk`). Every server of the [`DataCenter`] table matches;
/// so would the accounts server of a data centre Zoho adds later, but not
/// `accounts.zoho.com.evil.example` or `accounts.evil.example`.
pub fn is_zoho_accounts_host(host: &str) -> bool {
    let Some(rest) = host.strip_prefix("accounts.") else {
        return false;
    };
    let Some(suffix) = rest.strip_prefix("zoho.").or_else(|| rest.strip_prefix("zohocloud.")) else {
        return false;
    };
    let country = |l: &str| l.len() == 2 && l.bytes().all(|b| b.is_ascii_lowercase());
    match suffix.split_once('.') {
        None => suffix == "com" || country(suffix),
        Some((second, cc)) => matches!(second, "com" | "co") && country(cc),
    }
}

/// Whether the flow may follow `other_dc` from the accounts server `current` to `next` (found
/// in the table or in `serverinfo`). The error says why not, for the user.
///
/// * loopback only from loopback (the simulator), and plain `http://` only there;
/// * from a Zoho accounts host ([`is_zoho_accounts_host`]), only to another one, as a bare
///   `https://host` (no port, no path);
/// * from any other https override (a test or staging server), to any https server.
pub fn check_accounts_move(current: &ServerUrl, next: &ServerUrl) -> Result<(), String> {
    if next.is_loopback() || !next.is_https() {
        if current.is_loopback() {
            return Ok(());
        }
        return Err(alloc::format!(
            "other_dc pointed to {next}: a non-https or loopback accounts server is only followed from a loopback one"
        ));
    }
    if is_zoho_accounts_host(current.host()) && !(is_zoho_accounts_host(next.host()) && next.is_bare_origin()) {
        return Err(alloc::format!(
            "other_dc pointed to {next}, which is not a Zoho accounts server (https://accounts.zoho.<country> or https://accounts.zohocloud.<country>)"
        ));
    }
    Ok(())
}

/// Where to find the accounts server of a location named by `other_dc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LocationSource {
    /// Zoho's built-in table ([`DataCenter`]); a location the table lacks is asked of
    /// `GET {current accounts server}/oauth/serverinfo` (one request, only then).
    BuiltIn,
    /// Ask `GET {accounts}/oauth/serverinfo` of this server (used when the accounts server was
    /// overridden, e.g. to the simulator).
    ServerInfo(ServerUrl),
}

impl LocationSource {
    /// The right source for an accounts server: the built-in table (then `serverinfo` for an
    /// unknown location) for Zoho's own servers, `serverinfo` only for an override.
    pub fn for_accounts(accounts: &ServerUrl) -> LocationSource {
        if DataCenter::from_accounts_url(accounts).is_some() {
            LocationSource::BuiltIn
        } else {
            LocationSource::ServerInfo(accounts.clone())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_complete_and_consistent() {
        assert_eq!(DataCenter::ALL.len(), 10);
        for dc in DataCenter::ALL {
            assert_eq!(DataCenter::from_location(dc.location()), Some(dc));
            let url = ServerUrl::parse(dc.accounts_url()).unwrap();
            assert_eq!(DataCenter::from_accounts_url(&url), Some(dc));
            assert!(ApiDomainPolicy::ZohoOnly.check(dc.api_domain()).is_ok(), "{dc}");
        }
        assert_eq!(DataCenter::Ca.accounts_url(), "https://accounts.zohocloud.ca");
        assert_eq!(DataCenter::from_location("EU"), Some(DataCenter::Eu));
        assert_eq!(DataCenter::from_location("xx"), None);
    }

    #[test]
    fn server_urls() {
        let u = ServerUrl::parse("https://Accounts.Zoho.EU/").unwrap();
        assert_eq!(u.as_str(), "https://accounts.zoho.eu");
        assert_eq!(u.host(), "accounts.zoho.eu");
        assert!(!u.is_loopback());
        let l = ServerUrl::parse("http://127.0.0.1:8080").unwrap();
        assert!(l.is_loopback());
        assert_eq!(l.host(), "127.0.0.1");
        assert_eq!(
            l.join("/oauth/v3/device/code").as_str(),
            "http://127.0.0.1:8080/oauth/v3/device/code"
        );
        let v6 = ServerUrl::parse("http://[::1]:9/base/").unwrap();
        assert_eq!(v6.host(), "::1");
        assert_eq!(v6.as_str(), "http://[::1]:9/base/", "paths are kept as given");
        assert_eq!(v6.join("/x").as_str(), "http://[::1]:9/base/x");
        assert!(ServerUrl::parse("http://localhost:1").unwrap().is_loopback());
        assert_eq!(
            ServerUrl::parse("http://accounts.zoho.com"),
            Err(UrlError::InsecureScheme)
        );
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1.evil.com"),
            Err(UrlError::InsecureScheme)
        );
        assert_eq!(ServerUrl::parse("ftp://x"), Err(UrlError::UnsupportedScheme));
        assert_eq!(ServerUrl::parse("https://u:p@x.com"), Err(UrlError::UserInfo));
        assert_eq!(ServerUrl::parse("accounts.zoho.com"), Err(UrlError::Malformed));
        assert_eq!(ServerUrl::parse("https://x.com:99999"), Err(UrlError::Malformed));
        assert_eq!(ServerUrl::parse("https://x.com/#frag"), Err(UrlError::Malformed));
        assert_eq!(ServerUrl::parse("https://"), Err(UrlError::Malformed));
    }

    #[test]
    fn endpoints_are_kept_exactly_with_slash_and_query() {
        let t = ServerUrl::parse("http://127.0.0.1:8000/o/token/").unwrap();
        assert_eq!(t.as_str(), "http://127.0.0.1:8000/o/token/");
        let q = ServerUrl::parse("https://idp.example/token?tenant=a").unwrap();
        assert_eq!(q.as_str(), "https://idp.example/token?tenant=a");
        assert_eq!(q.join("/x").as_str(), "https://idp.example/token/x?tenant=a");
        // Round trip through the token file's serde form.
        let back: ServerUrl = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn the_host_checked_is_the_host_parsed() {
        // WHATWG: `\` is `/` in special schemes, so the host ends before it.
        let u = ServerUrl::parse("https://evil.example\\.zohoapis.com").unwrap();
        assert_eq!(u.host(), "evil.example");
        assert!(
            ApiDomainPolicy::ZohoOnly
                .check("https://evil.example\\.zohoapis.com")
                .is_err()
        );
        // ... and here the host is Zoho's (what follows `\` is path), whatever it looks like.
        let z = ApiDomainPolicy::ZohoOnly
            .check("https://www.zohoapis.com\\@evil.example")
            .unwrap();
        assert_eq!(z.host(), "www.zohoapis.com");
        // Tabs and newlines are removed by the parser, so the checked host is the real one.
        let t = ServerUrl::parse("https://www.zoho\tapis.com").unwrap();
        assert_eq!(t.host(), "www.zohoapis.com");
        // Loopback is decided on the parsed address: 127.1 and 0x7f.0.0.1 are 127.0.0.1.
        assert!(ServerUrl::parse("http://127.1:9").unwrap().is_loopback());
        assert!(ServerUrl::parse("http://0x7f.0.0.1:9").unwrap().is_loopback());
        assert_eq!(
            ServerUrl::parse("http://[::ffff:7f00:1]:9").map(|u| u.is_loopback()),
            Err(UrlError::InsecureScheme)
        );
        assert_eq!(
            ServerUrl::parse("http://127.0.0.1@evil.example"),
            Err(UrlError::UserInfo)
        );
    }

    #[test]
    fn api_domain_allow_list() {
        let p = ApiDomainPolicy::ZohoOnly;
        assert!(p.check("https://www.zohoapis.com").is_ok());
        assert!(p.check("https://zohoapis.com.au").is_ok());
        assert!(p.check("https://www.zohoapis.com.cn").is_ok());
        assert!(p.check("http://www.zohoapis.com").is_err());
        assert!(p.check("https://www.zohoapis.com.evil.net").is_err());
        assert!(p.check("https://evilzohoapis.com").is_err());
        assert!(p.check("https://www.zohoapis.org").is_err());
        assert!(p.check("http://127.0.0.1:9000").is_err());
        assert!(ApiDomainPolicy::ZohoOrLoopback.check("http://127.0.0.1:9000").is_ok());
        assert!(ApiDomainPolicy::ZohoOrLoopback.check("https://example.com").is_err());
    }

    #[test]
    fn location_source() {
        let zoho = ServerUrl::parse("https://accounts.zoho.com").unwrap();
        assert_eq!(LocationSource::for_accounts(&zoho), LocationSource::BuiltIn);
        let sim = ServerUrl::parse("http://127.0.0.1:1").unwrap();
        assert_eq!(
            LocationSource::for_accounts(&sim),
            LocationSource::ServerInfo(sim.clone())
        );
        assert_eq!(ApiDomainPolicy::for_accounts(&sim), ApiDomainPolicy::ZohoOrLoopback);
        assert_eq!(ApiDomainPolicy::for_accounts(&zoho), ApiDomainPolicy::ZohoOnly);
    }

    #[test]
    fn hosts_are_ascii_or_refused() {
        // The binary pins url's IDNA back end to the ASCII-only one: a host with non-ASCII
        // letters (typed, or percent-encoded) is refused; punycode is taken as it is.
        assert_eq!(ServerUrl::parse("https://zöho.com"), Err(UrlError::Malformed));
        assert_eq!(ServerUrl::parse("https://a%e2.com"), Err(UrlError::Malformed));
        assert_eq!(
            ServerUrl::parse("https://xn--zho-qla.com").unwrap().host(),
            "xn--zho-qla.com"
        );
        assert_eq!(ServerUrl::parse("https://a%41.com").unwrap().host(), "aa.com");
    }
}
