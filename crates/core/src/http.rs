//! The core's own tiny HTTP request type (the `http` crate needs std).
//!
//! Every request the core asks for is a `POST` with an `application/x-www-form-urlencoded`
//! body (secrets travel only in bodies, never in URLs) or a `GET` without parameters.
//! `Debug` never prints the body.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use crate::dc::ServerUrl;

/// The largest reply body the core parses; drivers should stop reading past it. Zoho's
/// replies are a few hundred bytes; an HTML error page can be anything.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// HTTP method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `GET`.
    Get,
    /// `POST`.
    Post,
}

impl Method {
    /// `"GET"` or `"POST"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
        }
    }
}

/// What a request is for — drivers use it for logs and per-operation timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// `/oauth/v3/device/code` (or the standard device authorization endpoint).
    DeviceCode,
    /// Polling `/oauth/v3/device/token`.
    Poll,
    /// `/oauth/serverinfo`, to map a location to its accounts server.
    ServerInfo,
    /// `/oauth/v2/token` with `grant_type=refresh_token`.
    Refresh,
    /// `/oauth/v2/token/revoke`.
    Revoke,
}

/// A request for the driver to send.
#[derive(Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// Method.
    pub method: Method,
    /// The full URL, parsed and validated once ([`ServerUrl`]); drivers connect to
    /// [`ServerUrl::as_url`], never to a re-parsed string. Never contains a secret.
    pub url: ServerUrl,
    /// Extra headers (`Content-Type`, `Accept`).
    pub headers: Vec<(&'static str, &'static str)>,
    /// Body bytes (a form, possibly holding secrets).
    pub body: Vec<u8>,
    /// What the request is for.
    pub purpose: Purpose,
    /// An `Authorization` header value (`Basic …`: holds the client secret). Never printed.
    pub authorization: Option<String>,
}

impl HttpRequest {
    /// A form POST.
    pub fn post_form(url: ServerUrl, form: &Form, purpose: Purpose) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url,
            headers: alloc::vec![
                ("Content-Type", "application/x-www-form-urlencoded"),
                ("Accept", "application/json"),
            ],
            body: form.as_bytes().to_vec(),
            purpose,
            authorization: None,
        }
    }

    /// A GET without parameters.
    pub fn get(url: ServerUrl, purpose: Purpose) -> HttpRequest {
        HttpRequest {
            method: Method::Get,
            url,
            headers: alloc::vec![("Accept", "application/json")],
            body: Vec::new(),
            purpose,
            authorization: None,
        }
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRequest")
            .field("method", &self.method)
            .field("url", &self.url.as_str())
            .field("purpose", &self.purpose)
            .field("body", &alloc::format!("[{} bytes redacted]", self.body.len()))
            .field("authorization", &self.authorization.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

/// An `application/x-www-form-urlencoded` body under construction (the `url` crate's WHATWG
/// serializer).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Form(String);

impl Form {
    /// An empty form.
    pub fn new() -> Form {
        Form(String::new())
    }

    /// Appends `name=value`, percent-encoded.
    pub fn field(mut self, name: &str, value: &str) -> Form {
        url::form_urlencoded::Serializer::for_suffix(&mut self.0, 0).append_pair(name, value);
        self
    }

    /// The encoded body.
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::format;

    #[test]
    fn form_encoding() {
        let f = Form::new()
            .field("scope", "ZohoBooks.settings.READ,ZohoBooks.contacts.READ")
            .field("x y", "a+b&c=d/é");
        assert_eq!(
            core::str::from_utf8(f.as_bytes()).unwrap(),
            "scope=ZohoBooks.settings.READ%2CZohoBooks.contacts.READ&x+y=a%2Bb%26c%3Dd%2F%C3%A9"
        );
    }

    #[test]
    fn debug_hides_body() {
        let r = HttpRequest::post_form(
            ServerUrl::parse("https://x/y").unwrap(),
            &Form::new().field("client_secret", "s3cr3t"),
            Purpose::Poll,
        );
        let d = format!("{r:?}");
        assert!(!d.contains("s3cr3t"), "{d}");
        assert!(d.contains("redacted"));
    }
}
