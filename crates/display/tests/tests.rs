//! One integration-test binary (ripgrep style): every output is decoded back with `rqrr`.

mod util;

/// The browser the kiosk page is tested in, shared with the root crate's dashboard test.
#[cfg(feature = "web")]
#[path = "../../../tests/common/chromium.rs"]
mod chromium;
#[cfg(feature = "png")]
mod files;
#[cfg(all(feature = "fb", target_os = "linux"))]
mod framebuffer;
mod panels;
#[cfg(feature = "std")]
mod terminal;
#[cfg(feature = "web")]
mod web;
