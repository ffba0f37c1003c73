use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;
use zoho_device_sim::{Fault, FaultKind, SimConfig, Simulator};

const TOKEN: &str = "/oauth/v3/device/token";

#[tokio::test]
async fn html_5xx_for_count_requests_then_normal_and_no_state_change() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (user_code, code) = new_code(&us).await;
    assert!(sim.approve(&user_code));
    sim.inject(Fault::new(TOKEN, FaultKind::Html { status: 503 }, 2));
    for _ in 0..2 {
        let r = poll(&us, &code).await;
        assert_eq!(r.status, 503);
        assert!(r.text.contains("<html>"), "{}", r.text);
        assert!(serde_json::from_str::<serde_json::Value>(&r.text).is_err());
    }
    // The faulted polls did not consume the code.
    assert!(poll(&us, &code).await.json()["access_token"].is_string());
    assert_eq!(sim.stats().faults_applied, 2);
}

#[tokio::test]
async fn faults_match_their_path_only() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    sim.inject(Fault::new(TOKEN, FaultKind::Html { status: 500 }, 1));
    assert_eq!(device_code(&us, CLIENT).await.status, 200);
    sim.clear_faults();
    let (_, code) = new_code(&us).await;
    assert_eq!(poll(&us, &code).await.status, 200);
}

/// Sends a raw HTTP request and returns what reading the answer gave.
fn raw_exchange(base: &str, path: &str) -> std::io::Result<Vec<u8>> {
    let addr = base.strip_prefix("http://").unwrap();
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let body = format!("client_id={CLIENT}&client_secret={SECRET}&grant_type=device_token&code=x");
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn reset_drops_the_connection_with_an_rst_and_no_response() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    sim.inject(Fault::new(TOKEN, FaultKind::Reset, 1));
    let got = raw_exchange(&us, TOKEN);
    match got {
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
        Ok(bytes) => panic!("expected a reset, got {:?}", String::from_utf8_lossy(&bytes)),
    }
    // The request was logged, without a status.
    let logged = sim.requests_to(TOKEN);
    assert_eq!(logged.len(), 1);
    assert_eq!((logged[0].fault, logged[0].status), (Some(FaultKind::Reset), None));
    // The next request is answered.
    let ok = raw_exchange(&us, TOKEN).unwrap();
    assert!(String::from_utf8_lossy(&ok).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn reset_is_a_transport_error_for_an_http_client() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    sim.inject(Fault::new("*", FaultKind::Reset, 1));
    let r = client()
        .post(format!("{us}/oauth/v3/device/code"))
        .form(&[("client_id", CLIENT)])
        .send()
        .await;
    assert!(r.is_err(), "{r:?}");
    assert_eq!(device_code(&us, CLIENT).await.status, 200);
}

#[tokio::test]
async fn delay_answers_late_but_normally() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    sim.inject(Fault::new("/oauth/v3/device/code", FaultKind::Delay { ms: 300 }, 1));
    let t = Instant::now();
    let r = device_code(&us, CLIENT).await;
    assert!(t.elapsed() >= Duration::from_millis(300));
    assert!(r.json()["device_code"].is_string());
    let t = Instant::now();
    device_code(&us, CLIENT).await;
    assert!(t.elapsed() < Duration::from_millis(300), "only once");
}

#[tokio::test]
async fn garbage_and_truncated_bodies_are_200_and_not_json() {
    let sim = Simulator::spawn(fast()).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    sim.inject(Fault::new(TOKEN, FaultKind::Garbage, 1));
    sim.inject(Fault::new(TOKEN, FaultKind::Truncated, 1));
    let garbage = poll(&us, &code).await;
    let truncated = poll(&us, &code).await;
    for r in [&garbage, &truncated] {
        assert_eq!(r.status, 200);
        assert!(
            serde_json::from_str::<serde_json::Value>(&r.text).is_err(),
            "{}",
            r.text
        );
    }
    assert!(truncated.text.starts_with('{'));
    assert_eq!(poll(&us, &code).await.error().as_deref(), Some("authorization_pending"));
}

#[tokio::test]
async fn faults_can_be_armed_from_the_config_in_flag_syntax() {
    let fault: Fault = "/oauth/v3/device/token:html502:2".parse().unwrap();
    assert_eq!(fault, Fault::new(TOKEN, FaultKind::Html { status: 502 }, 2));
    assert_eq!(
        "/x:delay150".parse::<Fault>().unwrap().kind,
        FaultKind::Delay { ms: 150 }
    );
    assert_eq!("*:reset:3".parse::<Fault>().unwrap().count, 3);
    assert!("/x:explode:1".parse::<Fault>().is_err());
    assert!("nopath:reset".parse::<Fault>().is_err());
    let sim = Simulator::spawn(SimConfig::default().fault(fault)).unwrap();
    let us = sim.accounts_url("us");
    let (_, code) = new_code(&us).await;
    assert_eq!(poll(&us, &code).await.status, 502);
}
