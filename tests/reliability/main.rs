//! Reliability and security: faults survived, nothing lost, nothing leaked.
//!
//! One integration-test binary against the built `zoho-device`, the Zoho simulator, scripted
//! hostile servers on loopback, and the core driven with simulated clocks.

#[path = "../common/mod.rs"]
mod common;

mod boundary;
mod clock;
mod concurrency;
mod docs;
mod harness;
mod hostile;
mod local_user;
mod matrix;
mod parsers;
mod power;
mod proxy;
mod secrets;
mod storage;

/// What this suite's worlds add to the shared harness's environment: a short HTTP timeout and
/// first retry delay, so that faults play out in seconds.
fn suite_env() -> Vec<(&'static str, String)> {
    vec![
        ("ZOHO_DEVICE_HTTP_TIMEOUT_MS", harness::HTTP_TIMEOUT_MS.to_string()),
        ("ZOHO_DEVICE_BACKOFF_MS", harness::BACKOFF_MS.to_string()),
    ]
}
