//! Integration tests of zoho-device-board: one test binary, one module per subject.

mod catalogue;
mod deb;
mod smoke;
mod util;
