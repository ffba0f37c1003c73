//! The device-code reply (and its error bodies) in both dialects, at any HTTP status.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device_core::Profile;
use zoho_device_core::codec::{self, MAX_CODE_LIFETIME, MAX_INTERVAL, Reply};

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 302];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel & 7)];
    let profile = if sel & 8 == 0 { Profile::Zoho } else { Profile::Rfc8628 };
    if let Reply::Ok(d) = codec::parse_device_authorization(profile, status, body) {
        // Whatever the server says, timings come back clamped.
        assert!(d.interval <= MAX_INTERVAL);
        assert!(d.expires_in <= MAX_CODE_LIFETIME && !d.expires_in.is_zero());
        assert!(!d.user_code.is_empty());
    }
});
