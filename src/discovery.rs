//! Finding a standard server's endpoints from its issuer (OpenID Connect Discovery 1.0,
//! RFC 8414).
//!
//! `--issuer URL` (config key `issuer`) names the server. At login the device reads
//! `{issuer}/.well-known/openid-configuration`, else RFC 8414's
//! `{origin}/.well-known/oauth-authorization-server{path}` (and, for an issuer with a path, the
//! appended form some servers use), and takes `device_authorization_endpoint`,
//! `token_endpoint` and `revocation_endpoint` from the first document found. An OpenID document
//! often lacks the device and revocation endpoints (they are OAuth, not OpenID, metadata):
//! then the RFC 8414 document, when the server has one, fills what is missing.
//!
//! Two more fields steer the login: `token_endpoint_auth_methods_supported` picks how a
//! confidential client sends its secret (only `client_secret_basic` listed: HTTP Basic; only
//! `client_secret_post`: the body; both or neither: the body, retried once in Basic on a 401
//! `invalid_client`), unless `--client-auth` says; and `scopes_supported` decides whether
//! `offline_access` is asked for by default (only when listed: plain OAuth servers refuse it).
//! URLs given
//! explicitly (`--device-authorization-url`, `--token-url`, `--revocation-url`) win over
//! discovered ones; when both required URLs are explicit, a failed discovery only costs the
//! revocation endpoint (a warning).
//!
//! Every discovered URL is validated as a [`ServerUrl`] (https, or http on loopback): a
//! document pointing anywhere else is refused (exit 8). The issuer the document names is
//! compared with the configured one and a mismatch is logged, not refused: the device
//! validates no ID tokens, and multi-tenant servers (Entra's `common`) publish a templated
//! issuer.
//!
//! Discovery runs at login only. The token file records the token and revocation endpoints,
//! so `token`, `refresh` and `logout` work without it.

use serde::Deserialize;
use zoho_device_core::reqwest_driver::HttpClient;
use zoho_device_core::{ClientAuth, HttpRequest, Purpose, ServerUrl};

use crate::exit::{AppError, Exit};

/// Endpoints given explicitly (flags or config); they win over discovered ones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExplicitEndpoints {
    /// Device authorization endpoint.
    pub device_authorization_url: Option<ServerUrl>,
    /// Token endpoint.
    pub token_url: Option<ServerUrl>,
    /// Revocation endpoint.
    pub revocation_url: Option<ServerUrl>,
}

/// A standard server's endpoints, complete enough to pair.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Device authorization endpoint.
    pub device_authorization_url: ServerUrl,
    /// Token endpoint (polling and refresh).
    pub token_url: ServerUrl,
    /// Revocation endpoint, when the server has one.
    pub revocation_url: Option<ServerUrl>,
    /// The client authentication the metadata calls for (`None`: nothing decisive listed).
    pub client_auth: Option<ClientAuth>,
    /// Whether `scopes_supported` lists `offline_access`.
    pub offline_access_offered: bool,
}

/// The fields of a discovery document the device reads (everything else is ignored).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Metadata {
    /// `issuer`.
    pub issuer: Option<String>,
    /// `device_authorization_endpoint`.
    pub device_authorization_endpoint: Option<String>,
    /// `token_endpoint`.
    pub token_endpoint: Option<String>,
    /// `revocation_endpoint`.
    pub revocation_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported` (strings only; anything else reads as absent).
    #[serde(default, deserialize_with = "strings")]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `scopes_supported` (strings only; anything else reads as absent).
    #[serde(default, deserialize_with = "strings")]
    pub scopes_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Whether an endpoint the device may need is missing (worth reading another document).
    fn lacks_something(&self) -> bool {
        self.device_authorization_endpoint.is_none()
            || self.revocation_endpoint.is_none()
            || self.token_endpoint_auth_methods_supported.is_none()
    }

    /// Fills what this document lacks from `other` (an RFC 8414 document of the same server).
    pub fn fill_from(&mut self, other: Metadata) {
        let fill = |mine: &mut Option<String>, theirs: Option<String>| {
            if mine.as_deref().is_none_or(|v| v.trim().is_empty()) {
                *mine = theirs;
            }
        };
        fill(
            &mut self.device_authorization_endpoint,
            other.device_authorization_endpoint,
        );
        fill(&mut self.token_endpoint, other.token_endpoint);
        fill(&mut self.revocation_endpoint, other.revocation_endpoint);
        if self.token_endpoint_auth_methods_supported.is_none() {
            self.token_endpoint_auth_methods_supported = other.token_endpoint_auth_methods_supported;
        }
        if self.scopes_supported.is_none() {
            self.scopes_supported = other.scopes_supported;
        }
    }
}

/// A list of strings, leniently: a value of another shape is ignored, not a broken document.
fn strings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    let v = serde_json::Value::deserialize(d)?;
    Ok(v.as_array()
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()))
}

/// The documents to try, in order: OpenID Connect Discovery's appended form, RFC 8414's
/// inserted form, and (for an issuer with a path) the appended RFC 8414 form.
pub fn document_urls(issuer: &ServerUrl) -> Vec<ServerUrl> {
    let path = issuer.as_url().path().trim_end_matches('/');
    let mut urls = vec![
        issuer.join("/.well-known/openid-configuration"),
        issuer.with_path(&format!("/.well-known/oauth-authorization-server{path}")),
    ];
    if !path.is_empty() {
        urls.push(issuer.join("/.well-known/oauth-authorization-server"));
    }
    urls
}

/// Reads a discovery document.
pub fn parse_metadata(body: &[u8]) -> Result<Metadata, String> {
    serde_json::from_slice::<Metadata>(body).map_err(|e| format!("not a JSON discovery document ({e})"))
}

/// Combines explicit endpoints with a discovered document (`doc_url` names it in errors).
pub fn merge(explicit: &ExplicitEndpoints, doc_url: &str, metadata: &Metadata) -> Result<Endpoints, AppError> {
    let field = |name: &str, value: &Option<String>| -> Result<Option<ServerUrl>, AppError> {
        match value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => ServerUrl::parse(v).map(Some).map_err(|e| {
                AppError::new(Exit::Unsafe, format!("{doc_url}: {name} {v:?} refused: {e}")).hint(format!(
                    "pass the endpoint explicitly, or check that {doc_url} is the server you meant"
                ))
            }),
        }
    };
    let missing = |name: &str, flag: &str| {
        AppError::usage(format!("{doc_url} has no {name}")).hint(format!(
            "the server may not offer the device flow; pass --{flag} URL if it does"
        ))
    };
    let device_authorization_url = match &explicit.device_authorization_url {
        Some(u) => u.clone(),
        None => field("device_authorization_endpoint", &metadata.device_authorization_endpoint)?
            .ok_or_else(|| missing("device_authorization_endpoint", "device-authorization-url"))?,
    };
    let token_url = match &explicit.token_url {
        Some(u) => u.clone(),
        None => {
            field("token_endpoint", &metadata.token_endpoint)?.ok_or_else(|| missing("token_endpoint", "token-url"))?
        }
    };
    let revocation_url = match &explicit.revocation_url {
        Some(u) => Some(u.clone()),
        None => field("revocation_endpoint", &metadata.revocation_endpoint)?,
    };
    let client_auth = metadata
        .token_endpoint_auth_methods_supported
        .as_ref()
        .map(|m| ClientAuth::from_supported(m.iter().map(String::as_str)))
        .filter(|a| *a != ClientAuth::Auto);
    let offline_access_offered = metadata
        .scopes_supported
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == "offline_access"));
    Ok(Endpoints {
        device_authorization_url,
        token_url,
        revocation_url,
        client_auth,
        offline_access_offered,
    })
}

/// Fetches the first discovery document the issuer serves: its URL and contents.
pub async fn fetch(http: &HttpClient, issuer: &ServerUrl) -> Result<(String, Metadata), AppError> {
    let mut tried = Vec::new();
    let mut server_trouble = false;
    let mut found: Option<(String, Metadata)> = None;
    for url in document_urls(issuer) {
        if let Some((first, mut m)) = found.take() {
            // The OpenID document lacked something: an RFC 8414 document may have it.
            if let Ok(more) = fetch_one(http, &url).await {
                tracing::debug!(%url, "completing the OpenID document with this one");
                m.fill_from(more);
            }
            if m.lacks_something() {
                found = Some((first, m));
                continue;
            }
            return Ok((first, m));
        }
        let req = HttpRequest::get(url.clone(), Purpose::ServerInfo);
        let resp = http.send(&req).await.map_err(|e| {
            AppError::new(Exit::Unavailable, format!("cannot reach the issuer {issuer}: {e}"))
                .hint("check the issuer URL and the network (and HTTPS_PROXY)")
        })?;
        let status = resp.response.status;
        if status == 200 {
            match parse_metadata(&resp.response.body) {
                Ok(m) => {
                    if m.issuer.as_deref().map(|i| i.trim_end_matches('/'))
                        != Some(issuer.as_str().trim_end_matches('/'))
                    {
                        tracing::warn!(
                            configured = %issuer,
                            document = %zoho_device_core::Safe(m.issuer.as_deref().unwrap_or("(none)")),
                            "the discovery document names another issuer"
                        );
                    }
                    tracing::debug!(%url, "discovery document found");
                    if m.lacks_something() && url.as_url().path().ends_with("/openid-configuration") {
                        found = Some((url.to_string(), m));
                        continue;
                    }
                    return Ok((url.to_string(), m));
                }
                Err(why) => tried.push(format!("{url}: {why}")),
            }
        } else {
            server_trouble |= status == 429 || status >= 500;
            tried.push(format!("{url}: HTTP {status}"));
        }
    }
    if let Some(found) = found {
        return Ok(found);
    }
    let exit = if server_trouble { Exit::Unavailable } else { Exit::Usage };
    Err(
        AppError::new(exit, format!("no discovery document for the issuer {issuer} ({})", tried.join("; "))).hint(
            "check --issuer (the server's issuer URL, e.g. https://login.microsoftonline.com/TENANT/v2.0), or pass --device-authorization-url and --token-url",
        ),
    )
}

/// One more document (to complete another): its contents, or why not.
async fn fetch_one(http: &HttpClient, url: &ServerUrl) -> Result<Metadata, String> {
    let resp = http
        .send(&HttpRequest::get(url.clone(), Purpose::ServerInfo))
        .await
        .map_err(|e| e.to_string())?;
    if resp.response.status != 200 {
        return Err(format!("HTTP {}", resp.response.status));
    }
    parse_metadata(&resp.response.body)
}

/// The endpoints to pair with: explicit ones, completed from the issuer's discovery document.
pub async fn endpoints(
    http: &HttpClient,
    issuer: &ServerUrl,
    explicit: &ExplicitEndpoints,
) -> Result<Endpoints, AppError> {
    // Everything given: nothing to discover. Discovery failing with the two required URLs
    // given: carry on without a revocation endpoint. Both are `merge` with an empty document.
    let complete = explicit.device_authorization_url.is_some() && explicit.token_url.is_some();
    if complete && explicit.revocation_url.is_some() {
        return merge(explicit, issuer.as_str(), &Metadata::default());
    }
    match fetch(http, issuer).await {
        Ok((url, metadata)) => merge(explicit, &url, &metadata),
        Err(e) if complete => {
            tracing::warn!("{}; continuing without a revocation endpoint", e.message);
            merge(explicit, issuer.as_str(), &Metadata::default())
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> ServerUrl {
        ServerUrl::parse(s).unwrap()
    }

    fn keycloak() -> Metadata {
        parse_metadata(
            br#"{"issuer":"https://kc.example/realms/home",
                "device_authorization_endpoint":"https://kc.example/realms/home/protocol/openid-connect/auth/device",
                "token_endpoint":"https://kc.example/realms/home/protocol/openid-connect/token",
                "revocation_endpoint":"https://kc.example/realms/home/protocol/openid-connect/revoke",
                "grant_types_supported":["urn:ietf:params:oauth:grant-type:device_code"]}"#,
        )
        .unwrap()
    }

    #[test]
    fn document_urls_for_a_bare_host_and_for_a_path() {
        assert_eq!(
            document_urls(&url("https://idp.example/")),
            [
                "https://idp.example/.well-known/openid-configuration",
                "https://idp.example/.well-known/oauth-authorization-server",
            ]
        );
        assert_eq!(
            document_urls(&url("https://login.example/tenant/v2.0")),
            [
                "https://login.example/tenant/v2.0/.well-known/openid-configuration",
                "https://login.example/.well-known/oauth-authorization-server/tenant/v2.0",
                "https://login.example/tenant/v2.0/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn discovered_endpoints_fill_the_gaps_and_explicit_ones_win() {
        let explicit = ExplicitEndpoints {
            token_url: Some(url("https://proxy.example/token")),
            ..ExplicitEndpoints::default()
        };
        let e = merge(&explicit, "doc", &keycloak()).unwrap();
        assert_eq!(
            e.device_authorization_url.as_str(),
            "https://kc.example/realms/home/protocol/openid-connect/auth/device"
        );
        assert_eq!(e.token_url.as_str(), "https://proxy.example/token");
        assert_eq!(
            e.revocation_url.unwrap().as_str(),
            "https://kc.example/realms/home/protocol/openid-connect/revoke"
        );
    }

    #[test]
    fn a_server_without_the_device_flow_is_a_configuration_error() {
        let m = Metadata {
            device_authorization_endpoint: None,
            ..keycloak()
        };
        let e = merge(&ExplicitEndpoints::default(), "doc", &m).unwrap_err();
        assert_eq!(e.exit, Exit::Usage);
        assert!(e.message.contains("device_authorization_endpoint"), "{}", e.message);
    }

    #[test]
    fn plain_http_endpoints_off_loopback_are_refused() {
        let m = Metadata {
            token_endpoint: Some("http://kc.example/token".into()),
            ..keycloak()
        };
        let e = merge(&ExplicitEndpoints::default(), "doc", &m).unwrap_err();
        assert_eq!(e.exit, Exit::Unsafe);
    }

    #[test]
    fn a_missing_revocation_endpoint_is_fine() {
        let m = Metadata {
            revocation_endpoint: None,
            ..keycloak()
        };
        assert_eq!(
            merge(&ExplicitEndpoints::default(), "doc", &m).unwrap().revocation_url,
            None
        );
    }

    /// django-oauth-toolkit's two documents: the OpenID one without the device and revocation
    /// endpoints, the RFC 8414 one with the revocation endpoint and the auth methods.
    #[test]
    fn the_oauth_document_completes_the_openid_one() {
        let mut openid = parse_metadata(
            br#"{"issuer":"http://127.0.0.1:8000/o","token_endpoint":"http://127.0.0.1:8000/o/token/",
                "scopes_supported":["openid","read"]}"#,
        )
        .unwrap();
        assert!(openid.lacks_something());
        let oauth = parse_metadata(
            br#"{"issuer":"http://127.0.0.1:8000/o","token_endpoint":"http://127.0.0.1:8000/o/token/",
                "revocation_endpoint":"http://127.0.0.1:8000/o/revoke_token/",
                "scopes_supported":{"not":"a list"},
                "token_endpoint_auth_methods_supported":["client_secret_post","client_secret_basic"]}"#,
        )
        .unwrap();
        openid.fill_from(oauth);
        assert_eq!(
            openid.revocation_endpoint.as_deref(),
            Some("http://127.0.0.1:8000/o/revoke_token/")
        );
        assert_eq!(
            openid.scopes_supported.as_deref(),
            Some(&["openid".to_string(), "read".to_string()][..])
        );
        let explicit = ExplicitEndpoints {
            device_authorization_url: Some(url("http://127.0.0.1:8000/o/device-authorization/")),
            ..ExplicitEndpoints::default()
        };
        let e = merge(&explicit, "doc", &openid).unwrap();
        assert_eq!(e.client_auth, None, "both methods: auto");
        assert!(!e.offline_access_offered);
    }

    #[test]
    fn auth_methods_and_offline_access_from_the_document() {
        let only_basic = Metadata {
            token_endpoint_auth_methods_supported: Some(vec!["client_secret_basic".into(), "private_key_jwt".into()]),
            scopes_supported: Some(vec!["openid".into(), "offline_access".into()]),
            ..keycloak()
        };
        let e = merge(&ExplicitEndpoints::default(), "doc", &only_basic).unwrap();
        assert_eq!(e.client_auth, Some(ClientAuth::Basic));
        assert!(e.offline_access_offered);
        let only_post = Metadata {
            token_endpoint_auth_methods_supported: Some(vec!["client_secret_post".into(), "none".into()]),
            ..keycloak()
        };
        assert_eq!(
            merge(&ExplicitEndpoints::default(), "doc", &only_post)
                .unwrap()
                .client_auth,
            Some(ClientAuth::Post)
        );
    }

    #[test]
    fn junk_is_not_a_document() {
        assert!(parse_metadata(b"<html>").is_err());
        assert!(parse_metadata(br#"{"token_endpoint":42}"#).is_err());
    }

    /// A one-shot HTTP server on loopback: 404 for the OpenID document, the RFC 8414 one after.
    #[tokio::test]
    async fn falls_back_to_the_oauth_authorization_server_document() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let doc = format!(
            r#"{{"issuer":"{base}","device_authorization_endpoint":"{base}/device","token_endpoint":"{base}/token"}}"#
        );
        let server = tokio::spawn(async move {
            let mut paths = Vec::new();
            for _ in 0..2 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 4096];
                let n = s.read(&mut buf).await.unwrap();
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                let (status, body) = if path.ends_with("oauth-authorization-server") {
                    ("200 OK", doc.clone())
                } else {
                    ("404 Not Found", String::new())
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                s.write_all(reply.as_bytes()).await.unwrap();
                paths.push(path);
            }
            paths
        });
        let http = HttpClient::new(&zoho_device_core::reqwest_driver::HttpConfig::default()).unwrap();
        let e = endpoints(&http, &url(&base), &ExplicitEndpoints::default())
            .await
            .unwrap();
        assert_eq!(e.device_authorization_url.as_str(), format!("{base}/device"));
        assert_eq!(e.revocation_url, None);
        assert_eq!(
            server.await.unwrap(),
            [
                "/.well-known/openid-configuration",
                "/.well-known/oauth-authorization-server"
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_issuer_is_unavailable() {
        // Bound but never listening: refused, and no parallel test can be given the port.
        let held = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        held.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        let base = format!("http://{}", held.local_addr().unwrap().as_socket().unwrap());
        let http = HttpClient::new(&zoho_device_core::reqwest_driver::HttpConfig::default()).unwrap();
        let e = endpoints(&http, &url(&base), &ExplicitEndpoints::default())
            .await
            .unwrap_err();
        assert_eq!(e.exit, Exit::Unavailable);
    }
}
