//! One integration-test binary (ripgrep style): every output is decoded back with `rqrr`.

mod util;

#[cfg(feature = "png")]
mod files;
#[cfg(all(feature = "fb", target_os = "linux"))]
mod framebuffer;
mod panels;
#[cfg(feature = "std")]
mod terminal;
#[cfg(feature = "web")]
mod web;
