//! Zoho Books' `/organizations` envelope, at any status.
#![no_main]

use libfuzzer_sys::fuzz_target;

const STATUSES: [u16; 8] = [200, 400, 401, 429, 500, 502, 503, 404];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, body)) = data.split_first() else { return };
    let status = STATUSES[usize::from(sel & 7)];
    let _ = zoho_device::books::parse_organizations(status, body);
});
