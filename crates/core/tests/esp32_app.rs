//! The ESP32 example's board-independent code (`examples/esp32/src/app.rs`), compiled and run
//! on the host against the scripted fake connection, a 240×240 RGB565 panel in memory and a
//! store in memory. Only `examples/esp32/src/main.rs` (the esp-idf-svc glue) is not built here.
//!
//! Run with `cargo test -p zoho-device-core --features embedded-svc`.
#![cfg(feature = "embedded-svc")]

#[path = "fixtures/fake_connection.rs"]
mod fake;

#[path = "../../../examples/esp32/src/app.rs"]
mod app;

use std::convert::Infallible;
use std::rc::Rc;

use app::{App, Settings, Source, TokenStore, WallClock};
use embedded_graphics::pixelcolor::{Rgb565, RgbColor};
use embedded_graphics::prelude::*;
use embedded_io::ErrorKind;
use fake::{FakeClock, FakeConnection, Outcome, Server as FakeServer, reply};
use zoho_device_core::blocking::Clock;
use zoho_device_core::embedded::EmbeddedTransport;
use zoho_device_core::*;
use zoho_device_display::Screen;

/// The Unix time at the first boot's clock zero.
const BOOT_UNIX_MS: u64 = 1_750_000_000_000;

/// The board's clocks: the fake monotonic clock, and Unix time = `unix_at_zero` + monotonic.
#[derive(Clone, Debug)]
struct BoardClock {
    mono: FakeClock,
    unix_at_zero: u64,
}

impl Clock for BoardClock {
    fn now(&mut self) -> Timestamp {
        self.mono.now()
    }

    fn sleep_until(&mut self, deadline: Timestamp) {
        self.mono.sleep_until(deadline);
    }
}

impl WallClock for BoardClock {
    fn unix_millis(&mut self) -> Option<u64> {
        Some(self.unix_at_zero + self.mono.0.now.get())
    }
}

/// A 240×240 RGB565 SPI panel, in memory.
struct Panel {
    pixels: Vec<Rgb565>,
}

impl Panel {
    fn new() -> Panel {
        Panel {
            pixels: vec![Rgb565::BLACK; 240 * 240],
        }
    }

    fn count(&self, c: Rgb565) -> usize {
        self.pixels.iter().filter(|&&p| p == c).count()
    }
}

impl OriginDimensions for Panel {
    fn size(&self) -> Size {
        Size::new(240, 240)
    }
}

impl DrawTarget for Panel {
    type Color = Rgb565;
    type Error = Infallible;

    fn draw_iter<I: IntoIterator<Item = Pixel<Rgb565>>>(&mut self, pixels: I) -> Result<(), Infallible> {
        for Pixel(p, c) in pixels {
            if (0..240).contains(&p.x) && (0..240).contains(&p.y) {
                self.pixels[p.y as usize * 240 + p.x as usize] = c;
            }
        }
        Ok(())
    }
}

/// NVS, in memory.
#[derive(Default)]
struct MemoryStore {
    value: Option<Vec<u8>>,
    writes: usize,
}

impl TokenStore for MemoryStore {
    type Error = Infallible;

    fn load(&mut self) -> Result<Option<Vec<u8>>, Infallible> {
        Ok(self.value.clone())
    }

    fn save(&mut self, value: &[u8]) -> Result<(), Infallible> {
        self.value = Some(value.to_vec());
        self.writes += 1;
        Ok(())
    }

    fn clear(&mut self) -> Result<(), Infallible> {
        self.value = None;
        Ok(())
    }
}

type TestApp = App<FakeConnection, BoardClock, Panel, MemoryStore>;

fn settings() -> Settings {
    Settings::new(
        ClientCredentials {
            client_id: "1004.CLIENT".into(),
            client_secret: Some(ClientSecret::new("the-client-secret")),
        },
        DataCenter::Us,
        vec!["ZohoBooks.settings.READ".into()],
        7,
    )
}

fn app(server: &Rc<FakeServer>, stored: Option<Vec<u8>>) -> TestApp {
    app_at(server, stored, BOOT_UNIX_MS)
}

fn app_at(server: &Rc<FakeServer>, stored: Option<Vec<u8>>, unix_at_zero: u64) -> TestApp {
    let s = server.clone();
    let transport = EmbeddedTransport::new(server.connect()).with_reconnect(move || Ok(s.connect()));
    let store = MemoryStore {
        value: stored,
        writes: 0,
    };
    let clock = BoardClock {
        mono: server.clock(),
        unix_at_zero,
    };
    App::new(transport, clock, Panel::new(), store, settings())
}

fn stored_json(app: &TestApp) -> serde_json::Value {
    serde_json::from_slice(app.store.value.as_ref().expect("tokens stored")).unwrap()
}

/// Pairs a fresh board; returns what it stored.
fn paired_store() -> Vec<u8> {
    let server = FakeServer::new(vec![reply(200, "code_ms.json"), reply(200, "token_us.json")]);
    let mut a = app(&server, None);
    a.ensure_tokens().unwrap();
    a.store.value.unwrap()
}

#[test]
fn a_fresh_board_pairs_shows_the_code_and_stores_the_tokens() {
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        reply(200, "pending.json"),
        reply(200, "token_us.json"),
    ]);
    let mut a = app(&server, None);
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Paired);
    assert_eq!(tokens.access_token.expose(), "1000.a3f0e1");
    assert_eq!(
        server.sequence(),
        [
            "Post https://accounts.zoho.com/oauth/v3/device/code",
            "Post https://accounts.zoho.com/oauth/v3/device/token",
            "Post https://accounts.zoho.com/oauth/v3/device/token"
        ]
    );
    assert!(server.requests().iter().all(|r| r.header("Content-Length").is_some()));
    // Waiting (at the prompt), its countdown redrawn before each sleep, then paired.
    assert!(a.frames >= 3, "{} frames", a.frames);
    assert_eq!(
        a.screen,
        Some(Screen::Paired {
            detail: "paired (us)".into()
        })
    );
    assert!(a.panel.count(Rgb565::WHITE) > 10_000, "a light screen was drawn");
    assert!(a.panel.count(Rgb565::BLACK) > 100, "with dark text on it");
    // The stored expiry is wall-clock time: paired at 60 s after boot, valid for an hour.
    let json = stored_json(&a);
    assert_eq!(json["expires_at"], BOOT_UNIX_MS + 60_000 + 3_600_000);
    assert_eq!(json["refresh_token"], "1000.8bb7d2");
    assert_eq!(json["location"], "us");
}

#[test]
fn after_a_reboot_fresh_tokens_are_used_without_a_request() {
    let stored = paired_store();
    // Rebooted 10 minutes later: the monotonic clock starts again at 0.
    let server = FakeServer::new(vec![]);
    let mut a = app_at(&server, Some(stored), BOOT_UNIX_MS + 600_000);
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Stored);
    assert_eq!(server.requests().len(), 0);
    // Paired 30 s after the first boot, valid for an hour: 3 030 s left on the new clock.
    assert_eq!(tokens.expires_at.as_millis(), 30_000 + 3_600_000 - 600_000);
    assert_eq!(a.screen.as_ref().map(Screen::kind), Some("paired"));
}

#[test]
fn after_a_long_sleep_the_tokens_are_refreshed_and_stored_again() {
    let stored = paired_store();
    let server = FakeServer::new(vec![
        Outcome::Reply(503, fake::fixture("html_503.html")),
        reply(200, "refresh_ok.json"),
    ]);
    server.now.set(2 * 3_600_000);
    let mut a = app(&server, Some(stored));
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Refreshed);
    assert_eq!(tokens.access_token.expose(), "1000.fresh");
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "1000.8bb7d2");
    assert_eq!(
        server.sequence(),
        [
            "Post https://accounts.zoho.com/oauth/v2/token",
            "Post https://accounts.zoho.com/oauth/v2/token"
        ]
    );
    assert_eq!(a.store.writes, 1);
    assert_eq!(stored_json(&a)["access_token"], "1000.fresh");
}

#[test]
fn a_revoked_refresh_token_means_pairing_again() {
    let stored = paired_store();
    let server = FakeServer::new(vec![
        reply(400, "invalid_code.json"),
        reply(200, "code_ms.json"),
        reply(200, "token_eu.json"),
    ]);
    server.now.set(2 * 3_600_000);
    let mut a = app(&server, Some(stored));
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Paired);
    assert_eq!(tokens.access_token.expose(), "1000.eu0001");
    assert_eq!(stored_json(&a)["access_token"], "1000.eu0001");
}

#[test]
fn a_network_outage_keeps_the_stored_tokens() {
    let stored = paired_store();
    let server = FakeServer::new(vec![
        Outcome::Connect(ErrorKind::TimedOut),
        Outcome::Headers(ErrorKind::TimedOut),
        Outcome::Read(200, fake::fixture("refresh_ok.json"), 4, ErrorKind::ConnectionReset),
        Outcome::Write(2, ErrorKind::BrokenPipe),
    ]);
    server.now.set(2 * 3_600_000);
    let mut a = app(&server, Some(stored.clone()));
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Stale);
    assert_eq!(tokens.access_token.expose(), "1000.a3f0e1");
    assert_eq!(a.store.value.as_ref(), Some(&stored), "nothing overwritten");
    assert_eq!(server.requests().len(), 4);
    assert_eq!(a.screen.as_ref().map(Screen::kind), Some("error"));
}

#[test]
fn an_unattended_board_gets_a_new_code_when_one_lapses() {
    let mut script = vec![reply(200, "code_ms.json")];
    // Polls at 30 s, 60 s … 270 s; at 300 s the code lapses without another poll.
    script.extend((0..9).map(|_| reply(200, "pending.json")));
    script.push(reply(200, "code_second.json"));
    script.push(reply(200, "token_us.json"));
    let server = FakeServer::new(script);
    let mut a = app(&server, None);
    let (_, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Paired);
    assert_eq!(server.remaining(), 0);
    let codes = server
        .requests()
        .iter()
        .filter(|r| r.uri.ends_with("/device/code"))
        .count();
    assert_eq!(codes, 2);
}

#[test]
fn unpairing_revokes_and_forgets() {
    let stored = paired_store();
    let server = FakeServer::new(vec![Outcome::Reply(200, br#"{"status":"success"}"#.to_vec())]);
    let mut a = app(&server, Some(stored));
    let (tokens, _) = a.ensure_tokens().unwrap();
    a.unpair(&tokens).unwrap();
    assert_eq!(
        server.sequence(),
        ["Post https://accounts.zoho.com/oauth/v2/token/revoke"]
    );
    assert_eq!(server.requests()[0].body_str(), "token=1000.8bb7d2");
    assert_eq!(a.store.value, None);
    assert_eq!(a.screen.as_ref().map(Screen::kind), Some("needs_pairing"));
}

#[test]
fn the_nvs_key_fits_nvs() {
    // NVS keys are at most 15 characters.
    assert!(app::TOKENS_KEY.len() <= 15);
}

#[test]
fn the_board_keeps_its_token_fresh_through_an_outage_at_the_keepers_time() {
    let stored = paired_store();
    let server = FakeServer::new(vec![
        Outcome::Reply(503, fake::fixture("html_503.html")),
        Outcome::Connect(ErrorKind::TimedOut),
        reply(200, "refresh_ok.json"),
    ]);
    let mut a = app(&server, Some(stored));
    let (tokens, source) = a.ensure_tokens().unwrap();
    assert_eq!(source, Source::Stored);
    let fresh = a.next_tokens().unwrap();
    assert_eq!(fresh.access_token.expose(), "1000.fresh");
    // Paired at 60 s after boot for an hour: the first try 5 minutes before expiry, not sooner.
    let first_try = server.sleeps.borrow()[0];
    assert_eq!(first_try, tokens.expires_at.as_millis() - 300_000);
    assert_eq!(server.requests().len(), 3, "two failures retried, then refreshed");
    assert!(
        server.now.get() < tokens.expires_at.as_millis(),
        "refreshed before the old token expired"
    );
    assert_eq!(stored_json(&a)["access_token"], "1000.fresh");
}

#[test]
fn a_board_whose_refresh_token_dies_pairs_again_when_it_is_due() {
    let stored = paired_store();
    let server = FakeServer::new(vec![
        reply(400, "invalid_code.json"),
        reply(200, "code_ms.json"),
        reply(200, "token_eu.json"),
    ]);
    let mut a = app(&server, Some(stored));
    a.ensure_tokens().unwrap();
    let tokens = a.next_tokens().unwrap();
    assert_eq!(tokens.access_token.expose(), "1000.eu0001");
    assert_eq!(stored_json(&a)["access_token"], "1000.eu0001");
    assert_eq!(a.screen.as_ref().map(Screen::kind), Some("paired"));
}
