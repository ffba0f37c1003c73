//! The token file, as the store reads it (serde_json into `StoredToken`), and its round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device::store::StoredToken;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = serde_json::from_slice::<StoredToken>(data) {
        let _ = t.profile();
        let again = serde_json::to_vec(&t).expect("a read token writes back");
        let back: StoredToken = serde_json::from_slice(&again).expect("and reads again");
        assert_eq!(back.tokens, t.tokens);
    }
});
