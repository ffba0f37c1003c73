//! Differential: for any string, the host the URL policy approves is the host reqwest (and the
//! `http::Uri` hyper connects with) would connect to — given the parsed URL the core hands the
//! transport, and given the original string too.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zoho_device_core::reqwest_driver::{HttpClient, HttpConfig};
use zoho_device_core::{ApiDomainPolicy, ServerUrl};

fn client() -> &'static HttpClient {
    static CLIENT: OnceLock<HttpClient> = OnceLock::new();
    CLIENT.get_or_init(|| HttpClient::new(&HttpConfig::default()).expect("a client"))
}

/// The host and port reqwest's request for `url` names, as hyper's `http::Uri` reads it — or
/// `None` when hyper cannot read it at all (a host with a backtick: `url` allows it, `http`
/// does not), in which case the request fails before any connection.
fn connects_to(req: &reqwest::Request) -> Option<(String, Option<u16>)> {
    let uri: http::Uri = req.url().as_str().parse().ok()?;
    let host = uri.host().expect("a host").trim_start_matches('[').trim_end_matches(']');
    Some((host.to_ascii_lowercase(), uri.port_u16()))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Ok(approved) = ServerUrl::parse(s) else { return };
    let want = (approved.host().to_string(), approved.as_url().port());
    // What the core hands the transport.
    let req = client().reqwest().get(approved.as_url().clone()).build().expect("a request");
    let Some(got) = connects_to(&req) else { return };
    assert_eq!(got, want, "{s:?}");
    // The original string, had anyone handed it to reqwest instead.
    let req = client().reqwest().get(s.trim()).build().expect("reqwest takes what the policy approved");
    assert_eq!(connects_to(&req), Some(want), "{s:?}");
    // An approved api_domain's host is Zoho's or loopback, as connected to.
    for policy in [ApiDomainPolicy::ZohoOnly, ApiDomainPolicy::ZohoOrLoopback] {
        if let Ok(api) = policy.check(s) {
            let (host, _) = connects_to(&client().reqwest().get(api.as_url().clone()).build().unwrap())
                .expect("read above");
            let zoho = host.contains("zohoapis.");
            let loopback = policy == ApiDomainPolicy::ZohoOrLoopback && api.is_loopback();
            assert!(zoho || loopback, "{s:?} approved for {host}");
        }
    }
});
