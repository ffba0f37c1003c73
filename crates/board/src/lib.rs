//! Turns the zoho-device workspace into artefacts for Raspberry Pi boards and proves they run.
//!
//! - [`board`]: the catalogue — for each board its Rust target (static musl by default,
//!   glibc optional), qemu CPU model and Debian architecture.
//! - [`toolchain`]: finds or installs what a cross build needs (rustup target or build-std,
//!   zig + cargo-zigbuild in a private virtualenv), following `shared/docs/cross.md`.
//! - [`build`]: one `cargo zigbuild` per group of targets, into `target/boards/`, with the
//!   workspace's size profile and without the simulator feature.
//! - [`package`]: `.tar.gz` and `.deb` from one list of files; takes a binary path, so tests
//!   can package a fake binary.
//! - [`smoke`]: runs a board binary under qemu-user (always with the board's `-cpu`) against
//!   the simulator on the host.
//! - [`image`]: a flashable Raspberry Pi SD-card image with the `.deb` inside, and the test that
//!   boots it under qemu-system-aarch64 and pairs it through the screen.
//!
//! The binary `zoho-device-board` (`cargo board ...` through the alias in `.cargo/config.toml`)
//! is a thin command line over these modules.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod board;
pub mod build;
pub mod image;
pub mod package;
pub mod smoke;
pub mod toolchain;
