//! The device-flow pairing screen — user code, verification URL, QR and time left, plus the
//! states around it — on whatever a board has.
//!
//! # Design
//!
//! * **One model.** The caller turns the flow's events into a [`Screen`] (this crate does not
//!   depend on the protocol crate) and hands it to an output on every state change and about
//!   once a second for the countdown.
//! * **One QR matrix.** [`QrMatrix`] (via `qrcodegen-no-heap`, which is `no_std`) encodes
//!   `verification_uri_complete` when the server sent it, else `verification_url`; the code is
//!   always shown as text as well. Every output draws the same matrix as horizontal runs.
//! * **One layout.** A pure function picks QR scale, placement (beside or above the text) and
//!   integer-scaled built-in fonts for the surface size. [`draw_screen`] paints it on any
//!   embedded-graphics `DrawTarget` (OLED, e-paper, LCD); the framebuffer and PNG outputs paint
//!   it into memory through [`MemoryFramebuffer`]; the SVG writer turns the same layout into
//!   elements. The terminal and the web page are text outputs with their own arrangement.
//! * **Warnings.** [`Screen::Waiting`] may carry a warning (the core flags a verification URL
//!   that is not on the accounts server's domain). The terminal prints it as a marked
//!   `!! Warning:` line, the web page as a box above the instructions (and `"warning"` in its
//!   JSON), the drawn outputs as light text on a dark bar across the top. Drawn outputs too
//!   small for the bar above a scannable QR and a legible code (panels such as a 128×64 OLED,
//!   and small SVG/PNG files) leave it out.
//! * **`no_std` core.** Without the `std` feature the crate needs only `alloc`: [`Screen`],
//!   [`QrMatrix`], [`draw_screen`], [`MemoryFramebuffer`]. Checked with
//!   `cargo build -p zoho-device-display --no-default-features --target thumbv7em-none-eabihf`.
//! * **std outputs** implement [`Show`] and are opened from the CLI's
//!   `--display terminal[=dark|light]|none|svg=PATH|png=PATH|fb=DEVICE|web=ADDR[,dashboard=URL]` strings
//!   through [`DisplaySpec`] and [`open`] (or [`OpenOptions::open`]). They are cheap to call
//!   repeatedly: files are rewritten (atomically) only when the content changes and at most
//!   every ~10 s for the countdown.
//! * **Terminal QR polarity.** With colours the terminal QR is forced black on white; without
//!   (`NO_COLOR`, `TERM=dumb`) the characters are the light modules on a dark background (the
//!   default) and the dark ones on a light background (`COLORFGBG`, or `terminal=light`).
//!   Without Unicode the QR is plain ASCII (`##`, 4-module quiet zone, at most 80 columns).
//!   See [`TerminalCaps`].
//! * **Signals.** The framebuffer switches the console to graphics mode and switches it back
//!   when dropped. By default ([`SignalHandling::RestoreAndExit`]) it also restores the console
//!   on SIGINT, SIGTERM and SIGQUIT and then lets the signal end the process, for programs
//!   that do not handle signals. A program that handles its termination signals and drops its
//!   displays opens them with `OpenOptions::new().signals(SignalHandling::Program)`: no handler
//!   is installed. SIGHUP is never handled by this crate.
//! * **Tests decode what is drawn** with a QR decoder (`rqrr`), so "it scans" is a test.
//!
//! # Features
//!
//! `std` (default): `Show`, terminal, SVG. `png`, `fb` (Linux only), `web`: each output
//! behind its own default feature.
#![cfg_attr(not(feature = "std"), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod canvas;
mod draw;
mod layout;
mod qr;
mod screen;

pub use canvas::{CanvasError, Channel, MemoryFramebuffer, PixelFormat};
pub use draw::{Theme, draw_screen, draw_screen_with};
pub use qr::{QrMatrix, QrTooLong, Run};
pub use screen::{Screen, TimeLeft};

#[cfg(all(feature = "fb", target_os = "linux"))]
mod fbdev;
#[cfg(feature = "std")]
mod files;
#[cfg(feature = "std")]
mod output;
#[cfg(feature = "std")]
mod show;
#[cfg(feature = "std")]
mod terminal;
#[cfg(feature = "web")]
mod web;

#[cfg(all(feature = "fb", target_os = "linux"))]
pub use fbdev::{FbOptions, FramebufferDisplay};
#[cfg(feature = "png")]
pub use files::render_png;
#[cfg(feature = "std")]
pub use files::{FileDisplay, FileFormat, render_svg, write_atomically};
#[cfg(feature = "std")]
pub use output::{DEFAULT_FILE_SIZE, DisplaySpec, OpenOptions, SpecError, open};
#[cfg(feature = "std")]
pub use show::{NoDisplay, Show, SignalHandling};
#[cfg(feature = "std")]
pub use terminal::{Background, TerminalCaps, TerminalDisplay, ascii_qr, half_block_qr};
#[cfg(feature = "web")]
pub use web::WebDisplay;
