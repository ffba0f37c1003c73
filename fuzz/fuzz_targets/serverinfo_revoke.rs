//! `/oauth/serverinfo` and revocation replies, both dialects.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device_core::Profile;
use zoho_device_core::codec;

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 302];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel & 7)];
    let profile = if sel & 8 == 0 { Profile::Zoho } else { Profile::Rfc8628 };
    let _ = codec::parse_serverinfo(status, body);
    let _ = codec::parse_revoke(profile, status, body);
});
