//! The token file, as the store reads it (serde_json into `Pairing`), and its round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zoho_device::store::Pairing;

fuzz_target!(|data: &[u8]| {
    if let Ok(t) = serde_json::from_slice::<Pairing>(data) {
        let _ = t.profile();
        let again = serde_json::to_vec(&t).expect("a read token writes back");
        let back: Pairing = serde_json::from_slice(&again).expect("and reads again");
        assert_eq!(back, t);
    }
});
