//! ESP32: pair the board with Zoho through the OAuth device flow.
//!
//! Wi-Fi → SNTP (certificates are checked against the clock) → restore the tokens from NVS,
//! refresh them, or pair: the user code, URL and QR on an ST7789 240×240 SPI panel, HTTPS via
//! `EspHttpConnection` with the ESP x509 certificate bundle. Then it refreshes the access
//! token before it expires, forever.
//!
//! Only the ESP-IDF glue lives here; the logic is in `app.rs`, which CI compiles and tests on
//! the host (`crates/core/tests/esp32_app.rs`).
//!
//! Build-time settings (environment variables): `WIFI_SSID`, `WIFI_PASS`, `ZOHO_CLIENT_ID`,
//! `ZOHO_CLIENT_SECRET`, optional `ZOHO_DC` (`us`, `eu`, `in`, `au`, `jp`, `ca`, `sa`, `cn`;
//! default `us`) and `ZOHO_SCOPES` (comma-separated; default `ZohoBooks.settings.READ`).

mod app;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use esp_idf_svc::eventloop::EspSystemEventLoop;
use esp_idf_svc::hal::delay::FreeRtos;
use esp_idf_svc::hal::gpio::{AnyIOPin, PinDriver};
use esp_idf_svc::hal::peripherals::Peripherals;
use esp_idf_svc::hal::spi::config::{Config as SpiConfig, DriverConfig};
use esp_idf_svc::hal::spi::{Dma, SpiDeviceDriver, SpiDriver};
use esp_idf_svc::hal::units::FromValueType;
use esp_idf_svc::http::client::{Configuration as HttpConfiguration, EspHttpConnection, FollowRedirectsPolicy};
use esp_idf_svc::io::EspIOError;
use esp_idf_svc::nvs::{EspDefaultNvsPartition, EspNvs, NvsDefault};
use esp_idf_svc::sntp::{EspSntp, SyncStatus};
use esp_idf_svc::sys::{self, EspError};
use esp_idf_svc::wifi::{AuthMethod, BlockingWifi, ClientConfiguration, Configuration, EspWifi};
use log::{error, info, warn};
use mipidsi::Builder;
use mipidsi::interface::SpiInterface;
use mipidsi::models::ST7789;
use mipidsi::options::ColorInversion;
use zoho_device_core::blocking::Clock;
use zoho_device_core::embedded::EmbeddedTransport;
use zoho_device_core::{ClientCredentials, ClientSecret, DataCenter, Timestamp, TransportError};

use app::{App, Settings, TOKENS_KEY, TokenStore, WallClock};

const WIFI_SSID: &str = env!("WIFI_SSID");
const WIFI_PASS: &str = env!("WIFI_PASS");
const ZOHO_CLIENT_ID: &str = env!("ZOHO_CLIENT_ID");
const ZOHO_CLIENT_SECRET: &str = env!("ZOHO_CLIENT_SECRET");

/// The HTTP client's configuration: certificate bundle, no redirects (the core must see every
/// answer), a 4 KB receive buffer (Zoho's response headers overflow the default 512 B), and
/// a timeout per read.
fn http_configuration() -> HttpConfiguration {
    HttpConfiguration {
        crt_bundle_attach: Some(sys::esp_crt_bundle_attach),
        buffer_size: Some(4096),
        buffer_size_tx: Some(1024),
        timeout: Some(Duration::from_secs(15)),
        follow_redirects_policy: FollowRedirectsPolicy::FollowNone,
        ..Default::default()
    }
}

/// `EspIOError::kind()` is always `Other`: classify ESP-IDF's HTTP client codes instead.
fn esp_transport_error(e: &EspIOError) -> TransportError {
    match e.0.code() as u32 {
        // esp_http_client_open: DNS, TCP or TLS (a wrong clock fails certificate checks here).
        sys::ESP_ERR_HTTP_CONNECT => TransportError::Connect,
        sys::ESP_ERR_HTTP_EAGAIN | sys::ESP_ERR_TIMEOUT => TransportError::Timeout,
        sys::ESP_ERR_HTTP_CONNECTION_CLOSED | sys::ESP_ERR_HTTP_WRITE_DATA | sys::ESP_ERR_HTTP_FETCH_HEADER => {
            TransportError::Reset
        }
        _ => TransportError::Other,
    }
}

/// Monotonic time since boot (`esp_timer` under `Instant`) and Unix time once SNTP set it.
struct BoardClock {
    boot: Instant,
}

impl Clock for BoardClock {
    fn now(&mut self) -> Timestamp {
        Timestamp::from_millis(self.boot.elapsed().as_millis() as u64)
    }

    fn sleep_until(&mut self, deadline: Timestamp) {
        let d = deadline.saturating_duration_since(self.now());
        if !d.is_zero() {
            std::thread::sleep(d);
        }
    }
}

impl WallClock for BoardClock {
    fn unix_millis(&mut self) -> Option<u64> {
        let ms = SystemTime::now().duration_since(UNIX_EPOCH).ok()?.as_millis() as u64;
        // Before SNTP the RTC counts from 1970.
        (ms > 1_600_000_000_000).then_some(ms)
    }
}

/// The tokens as one NVS blob in the `zoho` namespace (encrypt the NVS partition on devices
/// you ship: it holds a refresh token).
struct NvsStore(EspNvs<NvsDefault>);

impl TokenStore for NvsStore {
    type Error = EspError;

    fn load(&mut self) -> Result<Option<Vec<u8>>, EspError> {
        let Some(len) = self.0.blob_len(TOKENS_KEY)? else {
            return Ok(None);
        };
        let mut buf = vec![0; len];
        Ok(self.0.get_blob(TOKENS_KEY, &mut buf)?.map(<[u8]>::to_vec))
    }

    fn save(&mut self, value: &[u8]) -> Result<(), EspError> {
        self.0.set_blob(TOKENS_KEY, value)
    }

    fn clear(&mut self) -> Result<(), EspError> {
        self.0.remove(TOKENS_KEY).map(|_| ())
    }
}

fn main() -> Result<()> {
    esp_idf_svc::sys::link_patches();
    esp_idf_svc::log::EspLogger::initialize_default();

    let peripherals = Peripherals::take()?;
    let sys_loop = EspSystemEventLoop::take()?;
    let nvs_partition = EspDefaultNvsPartition::take()?;

    // The panel first, so the person sees something while Wi-Fi comes up.
    // ST7789 240×240 on SPI2: SCLK 18, MOSI 23, CS 5, DC 16, RST 17 (adjust to your wiring).
    let pins = peripherals.pins;
    let spi = SpiDriver::new(
        peripherals.spi2,
        pins.gpio18,
        pins.gpio23,
        AnyIOPin::none(),
        &DriverConfig::default().dma(Dma::Auto(4096)),
    )?;
    let spi = SpiDeviceDriver::new(spi, Some(pins.gpio5), &SpiConfig::new().baudrate(40.MHz().into()))?;
    let dc = PinDriver::output(pins.gpio16)?;
    let rst = PinDriver::output(pins.gpio17)?;
    let mut spi_buffer = [0u8; 512];
    let panel = Builder::new(ST7789, SpiInterface::new(spi, dc, &mut spi_buffer))
        .display_size(240, 240)
        .invert_colors(ColorInversion::Inverted)
        .reset_pin(rst)
        .init(&mut FreeRtos)
        .map_err(|e| anyhow::anyhow!("panel init: {e:?}"))?;

    let mut wifi = BlockingWifi::wrap(
        EspWifi::new(peripherals.modem, sys_loop.clone(), Some(nvs_partition.clone()))?,
        sys_loop,
    )?;
    wifi.set_configuration(&Configuration::Client(ClientConfiguration {
        ssid: WIFI_SSID
            .try_into()
            .map_err(|_| anyhow::anyhow!("WIFI_SSID is too long"))?,
        password: WIFI_PASS
            .try_into()
            .map_err(|_| anyhow::anyhow!("WIFI_PASS is too long"))?,
        auth_method: AuthMethod::WPA2Personal,
        ..Default::default()
    }))?;
    wifi.start()?;
    wifi.connect()?;
    wifi.wait_netif_up()?;
    info!("Wi-Fi up");

    // TLS checks certificate dates: wait for SNTP before the first HTTPS request.
    let sntp = EspSntp::new_default()?;
    let started = Instant::now();
    while sntp.get_sync_status() != SyncStatus::Completed {
        if started.elapsed() > Duration::from_secs(60) {
            warn!("no SNTP sync after 60 s; TLS will fail until the clock is set");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    info!("time: {:?}", SystemTime::now());

    let data_centre = option_env!("ZOHO_DC")
        .map(|dc| DataCenter::from_location(dc).context("unknown ZOHO_DC"))
        .transpose()?
        .unwrap_or(DataCenter::Us);
    let scopes = option_env!("ZOHO_SCOPES")
        .unwrap_or("ZohoBooks.settings.READ")
        .split(',')
        .map(|s| s.trim().to_string())
        .collect();
    let client = ClientCredentials {
        client_id: ZOHO_CLIENT_ID.into(),
        client_secret: Some(ClientSecret::new(ZOHO_CLIENT_SECRET)),
    };
    let seed = (u64::from(unsafe { sys::esp_random() }) << 32) | u64::from(unsafe { sys::esp_random() });
    let settings = Settings::new(client, data_centre, scopes, seed);

    let connection = EspHttpConnection::new(&http_configuration())?;
    let transport = EmbeddedTransport::new(connection)
        // A connection stuck mid-request would panic on reuse: start over on a fresh one.
        .with_reconnect(|| EspHttpConnection::new(&http_configuration()).map_err(EspIOError))
        .with_error_map(esp_transport_error);
    let store = NvsStore(EspNvs::new(nvs_partition, "zoho", true)?);
    let clock = BoardClock { boot: Instant::now() };
    let mut app = App::new(transport, clock, panel, store, settings);

    loop {
        match app.ensure_tokens() {
            Ok((tokens, source)) => {
                info!("tokens ready ({source:?}), api domain {:?}", tokens.api_domain);
                break;
            }
            Err(e) => {
                error!("{e}; trying again in a minute");
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    }

    // Keep the access token fresh (the core's keeper decides when, and how to retry). A real
    // application makes its Zoho API calls between refreshes, with
    // `Authorization: Zoho-oauthtoken {access_token}` against `tokens.api_domain`.
    loop {
        match app.next_tokens() {
            Ok(_) => info!("access token refreshed"),
            Err(e) => {
                error!("{e}; trying again in a minute");
                std::thread::sleep(Duration::from_secs(60));
            }
        }
    }
}
