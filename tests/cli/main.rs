//! End-to-end tests of the `zoho-device` binary against the Zoho simulator (one test binary).

mod api;
mod bad_input;
mod books;
mod docs;
mod doctor;
mod login;
mod logout;
mod secrets;
mod token;
mod util;
