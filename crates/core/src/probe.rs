//! Asking Zoho's accounts servers about a client, sans-IO: which data centres an accounts
//! server lists (`serverinfo`), whether a data centre knows a client ID (a device-code request
//! nobody will use), and whether it accepts the client secret (one poll with that code:
//! `authorization_pending` proves the secret, not a user). `--dc auto`, the wrong-DC hint and
//! doctor build their requests here and read the replies here, so Zoho's paths and error names
//! stay in the core.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::codec::{self, ClientAuth, ClientCredentials, GrantError, PollError, Profile, Reply, ZohoEndpoint};
use crate::dc::ServerUrl;
use crate::http::{HttpRequest, Purpose};
use crate::secret::DeviceCode;

/// `GET {accounts}/oauth/serverinfo`.
pub fn serverinfo_request(accounts: &ServerUrl) -> HttpRequest {
    HttpRequest::get(ZohoEndpoint::ServerInfo.at(accounts), Purpose::ServerInfo)
}

/// The `(location, accounts server)` pairs a `serverinfo` reply lists (unparsable URLs left
/// out); `None` when the reply is not a list of locations.
pub fn read_serverinfo(status: u16, body: &[u8]) -> Option<Vec<(String, ServerUrl)>> {
    match codec::parse_serverinfo(status, body) {
        Reply::Ok(locs) => Some(
            locs.into_iter()
                .filter_map(|(l, u)| ServerUrl::parse(&u).ok().map(|u| (l, u)))
                .collect(),
        ),
        _ => None,
    }
}

/// A device-code request for `client` at a Zoho accounts server (the secret, when given, in
/// the body as Zoho wants it).
pub fn device_code_request(accounts: &ServerUrl, client: &ClientCredentials, scopes: &[String]) -> HttpRequest {
    codec::device_code_request(
        Profile::Zoho,
        ZohoEndpoint::DeviceCode.at(accounts),
        client,
        scopes,
        true,
        false,
        ClientAuth::Post,
    )
}

/// What an accounts server said about a client ID.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientAnswer {
    /// It knows the client: it issued this (unused) device code.
    Knows(DeviceCode),
    /// `invalid_client`: not registered here.
    Unknown,
    /// Another OAuth error (wrong client type, a bad scope…): its code.
    Error(String),
    /// No usable answer (5xx, a proxy's page, the throttle).
    Unavailable(String),
    /// An answer that is not Zoho's shape.
    Malformed(String),
}

/// Reads the reply to [`device_code_request`].
pub fn read_device_code(status: u16, body: &[u8]) -> ClientAnswer {
    match codec::parse_device_authorization(Profile::Zoho, status, body) {
        Reply::Ok(auth) => ClientAnswer::Knows(auth.device_code),
        Reply::Error(e) if e.grant_error(Profile::Zoho) == GrantError::InvalidClient => ClientAnswer::Unknown,
        Reply::Error(e) => ClientAnswer::Error(e.code),
        Reply::Transient(t) => ClientAnswer::Unavailable(t.to_string()),
        Reply::Malformed(m) => ClientAnswer::Malformed(m),
    }
}

/// One poll with `code`, to learn whether the server accepts `client`'s secret.
pub fn secret_poll_request(accounts: &ServerUrl, client: &ClientCredentials, code: &DeviceCode) -> HttpRequest {
    codec::poll_request(
        Profile::Zoho,
        ZohoEndpoint::DeviceToken.at(accounts),
        client,
        code,
        ClientAuth::Post,
    )
}

/// What the poll of [`secret_poll_request`] proved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretAnswer {
    /// `authorization_pending` or `slow_down`: the secret is right.
    Accepted,
    /// `invalid_client_secret`.
    Rejected,
    /// Another OAuth error: its code.
    Other(String),
    /// No OAuth answer at all.
    Unknown,
}

/// Reads the reply to [`secret_poll_request`].
pub fn read_secret_poll(status: u16, body: &[u8]) -> SecretAnswer {
    match codec::parse_token(status, body) {
        Reply::Error(e) if e.grant_error(Profile::Zoho) == GrantError::InvalidClientSecret => SecretAnswer::Rejected,
        Reply::Error(e) if matches!(e.poll_error(), PollError::Pending | PollError::SlowDown) => SecretAnswer::Accepted,
        Reply::Error(e) => SecretAnswer::Other(e.code),
        _ => SecretAnswer::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_in_zohos_words() {
        assert_eq!(
            read_device_code(200, br#"{"error":"invalid_client"}"#),
            ClientAnswer::Unknown
        );
        assert!(matches!(
            read_device_code(
                200,
                br#"{"user_code":"A-1","device_code":"1004.d","interval":30000,"expires_in":300000,"verification_url":"https://accounts.zoho.com/oauth/v3/device"}"#
            ),
            ClientAnswer::Knows(_)
        ));
        assert_eq!(
            read_secret_poll(200, br#"{"error":"invalid_client_secret"}"#),
            SecretAnswer::Rejected
        );
        assert_eq!(
            read_secret_poll(200, br#"{"error":"authorization_pending"}"#),
            SecretAnswer::Accepted
        );
        assert_eq!(read_secret_poll(502, b"<html>"), SecretAnswer::Unknown);
        let acc = ServerUrl::parse("https://accounts.zoho.com").unwrap();
        assert_eq!(
            serverinfo_request(&acc).url.as_str(),
            "https://accounts.zoho.com/oauth/serverinfo"
        );
        let locs = read_serverinfo(
            200,
            br#"{"locations":{"us":"https://accounts.zoho.com","xx":"not a url"}}"#,
        )
        .unwrap();
        assert_eq!(locs, [("us".into(), acc)]);
    }
}
