//! Pair with the blocking driver: bring your own HTTP transport and clock.
//!
//! The transport here is a deliberately tiny HTTP/1.1 client over `std::net::TcpStream` for
//! `http://` loopback URLs (the simulator) — the shape a board's own HTTP stack takes (the
//! `embedded-svc` adapter in the core is the real one for ESP-IDF boards).
//!
//! ```text
//! cargo run --example pair_blocking
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::ops::ControlFlow;
use std::time::Duration;

use zoho_device_core::blocking::{self, Event, HttpResponse, StdClock};
use zoho_device_core::{
    ClientCredentials, ClientSecret, DeviceFlow, FlowConfig, HttpRequest, Server, ServerUrl, TransportError,
};

/// HTTP/1.1 over a fresh TCP connection per request, `http://host:port/path` only.
fn send(req: &HttpRequest) -> Result<HttpResponse, TransportError> {
    // The request's URL is already parsed (and checked by the core): read its parts.
    let url = req.url.as_url();
    if url.scheme() != "http" {
        return Err(TransportError::Other);
    }
    let authority = &url[zoho_device_core::url::Position::BeforeHost..zoho_device_core::url::Position::AfterPort];
    let path = &url[zoho_device_core::url::Position::BeforePath..zoho_device_core::url::Position::AfterQuery];
    let mut stream = TcpStream::connect(authority).map_err(|_| TransportError::Connect)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|_| TransportError::Other)?;
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        req.method.as_str(),
        path,
        req.body.len()
    );
    for (k, v) in &req.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(&req.body))
        .map_err(|_| TransportError::Reset)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|_| TransportError::Reset)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or(TransportError::Reset)?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or(TransportError::Reset)?;
    let mut body = raw[split + 4..].to_vec();
    if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body = dechunk(&body).ok_or(TransportError::Reset)?;
    }
    Ok(HttpResponse { status, body })
}

fn dechunk(mut b: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = b.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(std::str::from_utf8(&b[..line_end]).ok()?.trim(), 16).ok()?;
        b = &b[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(b.get(..size)?);
        b = b.get(size + 2..)?;
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let sim = zoho_device_sim::Simulator::spawn(
        zoho_device_sim::SimConfig::new()
            .interval_ms(500)
            .auto_approve_after(Duration::from_secs(2)),
    )?;
    let client = ClientCredentials {
        client_id: "1004.SIMCLIENT".into(),
        client_secret: Some(ClientSecret::new("sim-secret")),
    };
    let server = Server::zoho(ServerUrl::parse(&sim.accounts_url("us"))?);
    let mut clock = StdClock::default();
    let config = FlowConfig {
        min_interval: Duration::from_millis(200),
        ..FlowConfig::default()
    };
    let now = blocking::Clock::now(&mut clock);
    let mut flow = DeviceFlow::new(config, client, server, now);
    let mut transport = send;
    let tokens = blocking::run(&mut flow, &mut transport, &mut clock, |event| {
        if let Event::Prompt(p) = event {
            println!("Open {} and enter {}", p.verification_url, p.user_code);
        }
        ControlFlow::Continue(())
    })?;
    println!("paired; access token fingerprint {}", tokens.access_token.fingerprint());
    Ok(())
}
