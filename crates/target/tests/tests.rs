//! Integration tests of zoho-device-target: one test binary, one module per subject.

mod catalogue;
mod deb;
mod smoke;
mod util;
