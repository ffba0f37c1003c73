//! The token reply (poll success, refresh) and its error bodies, through the codec and the
//! refresh classifier (which also checks `api_domain`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device_core::codec::{self, MAX_TOKEN_LIFETIME, Reply};
use zoho_device_core::{ServerUrl, Timestamp, TokenEndpoint};

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 302];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel & 7)];
    if let Reply::Ok(g) = codec::parse_token(status, body) {
        assert!(g.expires_in <= MAX_TOKEN_LIFETIME);
    }
    let accounts = ServerUrl::parse("https://accounts.zoho.eu").unwrap();
    let ep = TokenEndpoint::zoho(&accounts);
    let previous = zoho_device_core::Tokens {
        access_token: zoho_device_core::AccessToken::new("old"),
        refresh_token: Some(zoho_device_core::RefreshToken::new("refresh")),
        api_domain: None,
        accounts_url: Some(accounts),
        location: Some("eu".into()),
        scope: None,
        token_type: "Bearer".into(),
        expires_at: Timestamp::ZERO,
    };
    let now = Timestamp::from_millis(u64::from(sel) * 1_000_000);
    if let Ok(t) = ep.refresh_response(now, status, body, &previous) {
        // An access token is only ever sent to a Zoho API host.
        if let Some(api) = &t.api_domain {
            assert!(api.is_https() && api.host().contains("zohoapis."), "{api:?}");
        }
        assert!(t.refresh_token.is_some());
        assert!(t.expires_at >= now);
    }
    let _ = ep.revoke_response(status, body);
});
