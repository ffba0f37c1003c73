//! The embedded-svc adapter driven through whole flows against a scripted fake `Connection`:
//! short reads, partial writes, connect/header/read/write errors, oversize bodies, an HTML 503,
//! `slow_down`, `other_dc`, refresh and revoke — on a clock that jumps to each wake-up.
//!
//! Run with `cargo test -p zoho-device-core --features embedded-svc`.
#![cfg(feature = "embedded-svc")]

#[path = "fixtures/fake_connection.rs"]
mod fake;

use std::ops::ControlFlow;
use std::rc::Rc;
use std::time::Duration;

use embedded_io::ErrorKind;
use embedded_svc::http::Method as HttpMethod;
use embedded_svc::http::client::Connection;
use fake::{FakeClock, FakeConnection, Outcome, Server as FakeServer, reply};
use zoho_device_core::ErrorKind as ErrorKind2;
use zoho_device_core::blocking::Event;
use zoho_device_core::embedded::{self, EmbeddedTransport, classify_kind};
use zoho_device_core::http::MAX_RESPONSE_BYTES;
use zoho_device_core::*;

const CODE_URL: &str = "https://accounts.zoho.com/oauth/v3/device/code";
const POLL_URL: &str = "https://accounts.zoho.com/oauth/v3/device/token";

fn client() -> ClientCredentials {
    ClientCredentials {
        client_id: "1004.CLIENT".into(),
        client_secret: Some(ClientSecret::new("the-client-secret")),
    }
}

fn us_flow() -> DeviceFlow {
    DeviceFlow::new(
        FlowConfig::default(),
        client(),
        Server::zoho_dc(DataCenter::Us),
        Timestamp::ZERO,
    )
}

/// A transport whose broken connections are replaced by fresh ones from the same server.
fn transport(server: &Rc<FakeServer>) -> EmbeddedTransport<FakeConnection> {
    let s = server.clone();
    EmbeddedTransport::new(server.connect()).with_reconnect(move || Ok(s.connect()))
}

struct Run {
    events: Vec<String>,
    result: Result<Tokens, Error>,
}

fn pair(server: &Rc<FakeServer>, flow: &mut DeviceFlow, transport: &mut EmbeddedTransport<FakeConnection>) -> Run {
    let mut clock: FakeClock = server.clock();
    let mut events = Vec::new();
    let result = embedded::pair(flow, transport, &mut clock, |e| {
        match e {
            Event::Prompt(p) => events.push(format!("prompt {}", p.user_code)),
            Event::Notice(Notice::Pending) => events.push("pending".into()),
            Event::Notice(Notice::SlowDown { interval }) => events.push(format!("slow_down {}", interval.as_millis())),
            Event::Notice(Notice::OtherDc { location, .. }) => events.push(format!("other_dc {location}")),
            Event::Notice(Notice::Retry { reason, .. }) => events.push(format!("retry {}", reason.code())),
            Event::Notice(n) => events.push(format!("{n:?}")),
            Event::Waiting(_) => {}
        }
        ControlFlow::Continue(())
    });
    Run { events, result }
}

fn poll_times(server: &FakeServer) -> Vec<u64> {
    server
        .requests()
        .iter()
        .filter(|r| r.uri.ends_with("/device/token"))
        .map(|r| r.at)
        .collect()
}

/// Every request carried `Content-Length` (equal to its body when the body was written in
/// full and flushed) and no `Transfer-Encoding`.
fn assert_well_formed(server: &FakeServer) {
    for r in server.requests() {
        let len = r
            .header("Content-Length")
            .unwrap_or_else(|| panic!("no Content-Length: {r:?}"));
        if r.flushed {
            // (A request that failed before its flush may hold only part of its body.)
            assert_eq!(len, r.body.len().to_string(), "{r:?}");
        }
        assert!(r.header("Transfer-Encoding").is_none());
        if r.method == HttpMethod::Post {
            assert_eq!(r.header("Content-Type"), Some("application/x-www-form-urlencoded"));
            assert!(!r.body.is_empty());
            assert!(r.writes >= r.body.len() / 3, "written in partial writes: {r:?}");
        }
        assert!(!r.uri.contains('?'), "no query strings: {}", r.uri);
        assert!(!r.uri.contains("the-client-secret"));
    }
}

#[test]
fn pending_then_success_over_short_reads_and_partial_writes() {
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        reply(200, "pending.json"),
        reply(200, "pending.json"),
        reply(200, "token_us.json"),
    ]);
    let mut t = transport(&server);
    let run = pair(&server, &mut us_flow(), &mut t);
    assert_eq!(run.events, ["prompt WLKU-4502", "pending", "pending"]);
    let tokens = run.result.unwrap();
    assert_eq!(tokens.access_token.expose(), "1000.a3f0e1");
    assert_eq!(tokens.refresh_token.as_ref().unwrap().expose(), "1000.8bb7d2");
    assert_eq!(tokens.api_domain.unwrap().as_str(), "https://www.zohoapis.com");
    assert_eq!(tokens.expires_at.as_millis(), 90_000 + 3_600_000);

    assert_eq!(
        server.sequence(),
        [
            format!("Post {CODE_URL}"),
            format!("Post {POLL_URL}"),
            format!("Post {POLL_URL}"),
            format!("Post {POLL_URL}")
        ]
    );
    assert_eq!(poll_times(&server), [30_000, 60_000, 90_000]);
    assert_well_formed(&server);
    let reqs = server.requests();
    assert_eq!(
        reqs[0].body_str(),
        "client_id=1004.CLIENT&grant_type=device_request&scope=ZohoBooks.settings.READ&access_type=offline&prompt=consent"
    );
    assert_eq!(
        reqs[1].body_str(),
        "client_id=1004.CLIENT&client_secret=the-client-secret&grant_type=device_token&code=1004.d8a0c1f7"
    );
    assert!(reqs.iter().all(|r| r.flushed));
    assert!(reqs.iter().all(|r| r.connection == 0), "a healthy connection is reused");
    assert_eq!(server.remaining(), 0);
    assert!(server.largest_read_buf.get() <= embedded::DEFAULT_READ_CHUNK);
}

#[test]
fn slow_down_raises_the_interval() {
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        reply(200, "slow_down.json"),
        reply(200, "pending.json"),
        reply(200, "token_us.json"),
    ]);
    let run = pair(&server, &mut us_flow(), &mut transport(&server));
    assert_eq!(run.events, ["prompt WLKU-4502", "slow_down 35000", "pending"]);
    assert!(run.result.is_ok());
    assert_eq!(poll_times(&server), [30_000, 65_000, 100_000]);
    assert_well_formed(&server);
}

#[test]
fn other_dc_moves_polling_to_the_users_dc() {
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        reply(200, "other_dc_eu.json"),
        reply(200, "token_eu.json"),
    ]);
    let run = pair(&server, &mut us_flow(), &mut transport(&server));
    assert_eq!(run.events, ["prompt WLKU-4502", "other_dc eu"]);
    assert_eq!(
        server.sequence(),
        [
            format!("Post {CODE_URL}"),
            format!("Post {POLL_URL}"),
            "Post https://accounts.zoho.eu/oauth/v3/device/token".to_string()
        ]
    );
    let t = run.result.unwrap();
    assert_eq!(t.accounts_url.as_ref().unwrap().as_str(), "https://accounts.zoho.eu");
    assert_eq!(
        embedded::token_endpoint(&t, &ServerUrl::parse("https://accounts.zoho.com").unwrap()).token_url,
        "https://accounts.zoho.eu/oauth/v2/token"
    );
    assert_well_formed(&server);
}

#[test]
fn a_get_sends_content_length_zero() {
    // A loopback accounts server (the simulator) resolves other_dc through GET /oauth/serverinfo.
    let sim = ServerUrl::parse("http://127.0.0.1:7001").unwrap();
    let mut flow = DeviceFlow::new(FlowConfig::default(), client(), Server::zoho(sim), Timestamp::ZERO);
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        reply(200, "other_dc_eu.json"),
        reply(200, "serverinfo.json"),
        Outcome::Reply(
            200,
            br#"{"access_token":"a","refresh_token":"r","api_domain":"http://127.0.0.1:7002","expires_in":3600}"#
                .to_vec(),
        ),
    ]);
    let run = pair(&server, &mut flow, &mut transport(&server));
    assert!(run.result.is_ok(), "{:?}", run.result);
    let get = &server.requests()[2];
    assert_eq!(get.method, HttpMethod::Get);
    assert_eq!(get.uri, "http://127.0.0.1:7001/oauth/serverinfo");
    assert_eq!(get.header("Content-Length"), Some("0"));
    assert_eq!(get.header("Accept"), Some("application/json"));
    assert_eq!(get.writes, 0);
    assert_well_formed(&server);
}

#[test]
fn html_503_and_connection_errors_in_the_middle() {
    let server = FakeServer::new(vec![
        Outcome::Connect(ErrorKind::ConnectionRefused),
        reply(200, "code_ms.json"),
        Outcome::Reply(503, fake::fixture("html_503.html")),
        Outcome::Headers(ErrorKind::TimedOut),
        Outcome::Read(200, fake::fixture("pending.json"), 7, ErrorKind::ConnectionReset),
        Outcome::Write(5, ErrorKind::BrokenPipe),
        Outcome::Connect(ErrorKind::Other),
        reply(200, "pending.json"),
        reply(200, "token_us.json"),
    ]);
    let run = pair(&server, &mut us_flow(), &mut transport(&server));
    assert_eq!(
        run.events,
        [
            "retry connect",
            "prompt WLKU-4502",
            "retry not_json",
            "retry timeout",
            "retry reset",
            "retry reset",
            "retry transport",
            "pending"
        ]
    );
    assert_eq!(run.result.unwrap().access_token.expose(), "1000.a3f0e1");
    let reqs = server.requests();
    assert_eq!(reqs.len(), 9);
    // After each failure the adapter starts over on a fresh connection; a 503 with a full
    // body is an answer, so its connection is kept.
    let conns: Vec<usize> = reqs.iter().map(|r| r.connection).collect();
    assert_eq!(conns, [0, 1, 1, 1, 2, 3, 4, 5, 5]);
    // The failed write got exactly the bytes the connection took before failing.
    assert_eq!(reqs[5].body.len(), 5);
    // Polls never come sooner than the interval, whatever failed.
    let polls = poll_times(&server);
    for w in polls.windows(2) {
        assert!(w[1] - w[0] >= 30_000, "{polls:?}");
    }
    // Content-Length is the whole body's, even where the exchange failed before it was sent.
    for (i, r) in reqs.iter().enumerate() {
        let expected = match i {
            0 => reqs[1].body.len(), // refused before a byte was written
            5 => reqs[4].body.len(), // the write broke after 5 bytes
            6 => reqs[7].body.len(), // refused again
            _ => r.body.len(),
        };
        assert_eq!(r.header("Content-Length"), Some(expected.to_string().as_str()), "{i}");
    }
}

#[test]
fn an_oversize_body_is_cut_and_its_connection_dropped() {
    let huge = vec![b'x'; 5 * MAX_RESPONSE_BYTES];
    let server = FakeServer::new(vec![
        reply(200, "code_ms.json"),
        Outcome::Reply(502, huge),
        reply(200, "token_us.json"),
    ]);
    let mut t = transport(&server).with_read_chunk(4096);
    let run = pair(&server, &mut us_flow(), &mut t);
    assert_eq!(run.events, ["prompt WLKU-4502", "retry oversize"]);
    assert!(run.result.is_ok());
    let read = server.bytes_read.borrow().clone();
    assert_eq!(read[1], MAX_RESPONSE_BYTES + 1, "reading stops one byte past the cap");
    assert!(server.largest_read_buf.get() <= 4096);
    let conns: Vec<usize> = server.requests().iter().map(|r| r.connection).collect();
    assert_eq!(conns, [0, 0, 1], "a half-read body never precedes the next request");
}

#[test]
fn a_stuck_connection_without_a_factory_fails_instead_of_panicking() {
    let config = FlowConfig {
        max_attempts: 3,
        ..FlowConfig::default()
    };
    let mut flow = DeviceFlow::new(config, client(), Server::zoho_dc(DataCenter::Us), Timestamp::ZERO);
    let server = FakeServer::new(vec![reply(200, "code_ms.json"), Outcome::Headers(ErrorKind::TimedOut)]);
    let mut t = EmbeddedTransport::new(server.connect());
    let run = pair(&server, &mut flow, &mut t);
    // The connection is left in its request phase; starting another request on it would panic
    // on ESP-IDF, so every later poll fails as a transport error until the code lapses.
    match run.result {
        Err(Error::Unavailable {
            last: Transient::Transport(TransportError::Other),
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(server.requests().len(), 2, "the stuck connection was not used again");
    assert!(server.now.get() >= 300_000, "polled until the code lapsed");
    assert!(t.connection().is_request_initiated());
}

#[test]
fn a_failing_factory_is_a_connect_error() {
    let server = FakeServer::new(vec![Outcome::Headers(ErrorKind::TimedOut)]);
    let mut t =
        EmbeddedTransport::new(server.connect()).with_reconnect(|| Err(fake::FakeError(ErrorKind::ConnectionRefused)));
    let config = FlowConfig {
        max_attempts: 3,
        ..FlowConfig::default()
    };
    let mut flow = DeviceFlow::new(config, client(), Server::zoho_dc(DataCenter::Us), Timestamp::ZERO);
    let run = pair(&server, &mut flow, &mut t);
    assert_eq!(run.events, ["retry timeout", "retry connect"]);
    assert_eq!(
        run.result.unwrap_err(),
        Error::Unavailable {
            attempts: 3,
            last: Transient::Transport(TransportError::Connect)
        }
    );
}

#[test]
fn cancelling_from_the_event_callback() {
    let server = FakeServer::new(vec![reply(200, "code_ms.json")]);
    let mut clock = server.clock();
    let r = embedded::pair(&mut us_flow(), &mut transport(&server), &mut clock, |e| match e {
        Event::Prompt(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert_eq!(r.unwrap_err(), Error::Cancelled);
    assert_eq!(server.requests().len(), 1);
}

fn paired_tokens() -> Tokens {
    let server = FakeServer::new(vec![reply(200, "code_ms.json"), reply(200, "token_us.json")]);
    pair(&server, &mut us_flow(), &mut transport(&server)).result.unwrap()
}

fn backoff() -> Backoff {
    Backoff::new(Duration::from_secs(1), Duration::from_secs(60), 42)
}

#[test]
fn refresh_retries_a_503_and_a_reset_then_succeeds() {
    let tokens = paired_tokens();
    let server = FakeServer::new(vec![
        Outcome::Reply(503, fake::fixture("html_503.html")),
        Outcome::Read(200, fake::fixture("refresh_ok.json"), 10, ErrorKind::ConnectionAborted),
        reply(200, "refresh_ok.json"),
    ]);
    server.now.set(4_000_000);
    let endpoint = TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap());
    let fresh = embedded::refresh(
        &endpoint,
        &client(),
        &tokens,
        &mut transport(&server),
        &mut server.clock(),
        4,
        &mut backoff(),
    )
    .unwrap();
    assert_eq!(fresh.access_token.expose(), "1000.fresh");
    assert_eq!(fresh.refresh_token, tokens.refresh_token, "the refresh token is kept");
    assert_eq!(
        server.sequence(),
        vec!["Post https://accounts.zoho.com/oauth/v2/token".to_string(); 3]
    );
    assert_eq!(
        server.requests()[0].body_str(),
        "client_id=1004.CLIENT&client_secret=the-client-secret&grant_type=refresh_token&refresh_token=1000.8bb7d2"
    );
    assert_eq!(server.sleeps.borrow().len(), 2, "backed off between attempts");
    assert_eq!(fresh.expires_at.as_millis(), server.now.get() + 3_600_000);
    assert_well_formed(&server);
}

#[test]
fn refresh_invalid_code_is_permanent_and_gives_up_after_attempts() {
    let tokens = paired_tokens();
    let endpoint = TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap());
    let server = FakeServer::new(vec![reply(400, "invalid_code.json")]);
    let e = embedded::refresh(
        &endpoint,
        &client(),
        &tokens,
        &mut transport(&server),
        &mut server.clock(),
        4,
        &mut backoff(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind2::NeedsPairing);
    assert_eq!(server.requests().len(), 1, "no retry of a permanent error");

    let server = FakeServer::new(vec![
        Outcome::Connect(ErrorKind::TimedOut),
        Outcome::Connect(ErrorKind::ConnectionReset),
    ]);
    let e = embedded::refresh(
        &endpoint,
        &client(),
        &tokens,
        &mut transport(&server),
        &mut server.clock(),
        2,
        &mut backoff(),
    )
    .unwrap_err();
    assert_eq!(
        e,
        Error::Unavailable {
            attempts: 2,
            last: Transient::Transport(TransportError::Reset)
        }
    );
}

#[test]
fn revoke_sends_the_token_in_the_body() {
    let tokens = paired_tokens();
    let endpoint = TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap());
    let server = FakeServer::new(vec![
        Outcome::Write(3, ErrorKind::ConnectionReset),
        Outcome::Reply(200, br#"{"status":"success"}"#.to_vec()),
    ]);
    let revoked = embedded::revoke(
        &endpoint,
        &client(),
        &tokens,
        &mut transport(&server),
        &mut server.clock(),
        3,
        &mut backoff(),
    )
    .unwrap();
    assert!(revoked);
    let reqs = server.requests();
    assert_eq!(
        server.sequence(),
        vec!["Post https://accounts.zoho.com/oauth/v2/token/revoke".to_string(); 2]
    );
    assert_eq!(reqs[1].body_str(), "token=1000.8bb7d2");
    assert_eq!(reqs[1].header("Content-Length"), Some("17"));
    assert_eq!(reqs[0].connection + 1, reqs[1].connection);
    assert_well_formed(&server);

    // An unknown token: dead either way, not retried.
    let server = FakeServer::new(vec![Outcome::Reply(
        400,
        br#"{"status":"failure","message":"bad token"}"#.to_vec(),
    )]);
    let e = embedded::revoke(
        &endpoint,
        &client(),
        &tokens,
        &mut transport(&server),
        &mut server.clock(),
        3,
        &mut backoff(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind2::NeedsPairing);
    assert_eq!(server.requests().len(), 1);
}

#[test]
fn error_kinds_map_to_transport_errors() {
    for (kind, want) in [
        (ErrorKind::TimedOut, TransportError::Timeout),
        (ErrorKind::ConnectionReset, TransportError::Reset),
        (ErrorKind::ConnectionAborted, TransportError::Reset),
        (ErrorKind::BrokenPipe, TransportError::Reset),
        (ErrorKind::ConnectionRefused, TransportError::Connect),
        (ErrorKind::NotConnected, TransportError::Connect),
        (ErrorKind::Other, TransportError::Other),
        (ErrorKind::InvalidData, TransportError::Other),
    ] {
        assert_eq!(classify_kind(kind), want, "{kind:?}");
        assert_eq!(embedded::classify_io_error(&fake::FakeError(kind)), want);
    }
}

#[test]
fn a_board_specific_error_map_is_used() {
    fn everything_is_tls(_: &fake::FakeError) -> TransportError {
        TransportError::Tls
    }
    let server = FakeServer::new(vec![Outcome::Connect(ErrorKind::Other), reply(200, "code_ms.json")]);
    let mut t = transport(&server).with_error_map(everything_is_tls);
    let mut flow = us_flow();
    let mut clock = server.clock();
    let r = embedded::pair(&mut flow, &mut t, &mut clock, |e| match e {
        Event::Notice(Notice::Retry { reason, .. }) => {
            assert_eq!(reason, &Transient::Transport(TransportError::Tls));
            ControlFlow::Continue(())
        }
        Event::Prompt(_) => ControlFlow::Break(()),
        _ => ControlFlow::Continue(()),
    });
    assert_eq!(r.unwrap_err(), Error::Cancelled);
}
