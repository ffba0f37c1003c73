//! End-to-end tests of the `zoho-device` binary against the Zoho simulator (one test binary).

#[path = "../common/chromium.rs"]
mod chromium;
#[path = "../common/mod.rs"]
mod common;

mod api;
mod bad_input;
mod books;
mod completions;
mod demo;
mod docs;
mod doctor;
mod first_hour;
mod gateway;
mod login;
mod logout;
mod multidc;
mod pipes;
mod secrets;
mod token;
mod util;

/// What this suite's worlds add to the shared harness's environment: nothing (the binary's own
/// timeouts and retry delays).
fn suite_env() -> Vec<(&'static str, String)> {
    Vec::new()
}
