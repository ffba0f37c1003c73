//! End-to-end tests of the `zoho-device` binary against the Zoho simulator (one test binary).

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
