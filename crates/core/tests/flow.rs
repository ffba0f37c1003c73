//! Scenario tests: the device flow driven with simulated time and scripted replies.
//!
//! Each test scripts the server's replies (one JSON fixture per reply), runs the machine on a
//! simulated clock that jumps straight to each wake-up, and compares the transcript of steps
//! and the elapsed simulated time with what the protocol requires. Minutes of protocol run in
//! microseconds.

use std::collections::VecDeque;
use std::time::Duration;

use zoho_device_core::*;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

enum Reply {
    /// HTTP status + fixture file.
    Http(u16, &'static str),
    /// HTTP status + literal body.
    Raw(u16, &'static str),
    /// HTTP status + built body.
    Owned(u16, String),
    Transport(TransportError),
}
use Reply::*;

struct Run {
    transcript: Vec<String>,
    /// (time sent, request)
    sent: Vec<(u64, HttpRequest)>,
    end: u64,
    result: Result<Tokens, Error>,
}

/// Drives `flow` against the scripted replies. Every exchange takes `latency` ms.
fn drive(mut flow: DeviceFlow, replies: Vec<Reply>, latency: u64) -> Run {
    let mut replies: VecDeque<Reply> = replies.into();
    let mut now = 0u64;
    let mut transcript = Vec::new();
    let mut sent = Vec::new();
    for _ in 0..10_000 {
        match flow.poll(Timestamp::from_millis(now)) {
            Err(e) => {
                transcript.push(format!("error {}", e.code()));
                return Run {
                    transcript,
                    sent,
                    end: now,
                    result: Err(e),
                };
            }
            Ok(Step::Done(t)) => {
                transcript.push("done".into());
                return Run {
                    transcript,
                    sent,
                    end: now,
                    result: Ok(t),
                };
            }
            Ok(Step::Send(req)) => {
                transcript.push(format!("send {:?}", req.purpose));
                sent.push((now, req));
                now += latency;
                match replies.pop_front().expect("the flow sent more requests than scripted") {
                    Http(status, name) => flow.handle_response(Timestamp::from_millis(now), status, &fixture(name)),
                    Raw(status, body) => flow.handle_response(Timestamp::from_millis(now), status, body.as_bytes()),
                    Owned(status, body) => flow.handle_response(Timestamp::from_millis(now), status, body.as_bytes()),
                    Transport(e) => flow.handle_transport_error(Timestamp::from_millis(now), e),
                }
            }
            Ok(Step::Prompt(p)) => transcript.push(format!("prompt {}", p.user_code)),
            Ok(Step::Notice(n)) => transcript.push(match n {
                Notice::Pending => "pending".into(),
                Notice::SlowDown { interval } => format!("slow_down {}", interval.as_millis()),
                Notice::OtherDc { location, accounts_url } => format!("other_dc {location} {accounts_url}"),
                Notice::Retry { reason, .. } => format!("retry {}", reason.code()),
                Notice::CodeExpired { pause } => format!("code_expired pause {}", pause.as_secs()),
                other => format!("{other:?}"),
            }),
            Ok(Step::Wait(t)) => {
                assert!(t.as_millis() >= now, "waits never go back in time");
                now = t.as_millis();
            }
        }
    }
    panic!("the flow did not finish: {transcript:?}");
}

fn client() -> ClientCredentials {
    ClientCredentials {
        client_id: "1004.CLIENT".into(),
        client_secret: Some(ClientSecret::new("the-client-secret")),
    }
}

fn flow_with(config: FlowConfig, server: Server) -> DeviceFlow {
    DeviceFlow::new(config, client(), server, Timestamp::ZERO)
}

fn us_flow() -> DeviceFlow {
    flow_with(FlowConfig::default(), Server::zoho_dc(DataCenter::Us))
}

fn poll_times(run: &Run) -> Vec<u64> {
    run.sent
        .iter()
        .filter(|(_, r)| r.purpose == Purpose::Poll)
        .map(|(t, _)| *t)
        .collect()
}

#[test]
fn pending_then_success() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "pending.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "pending",
            "send Poll",
            "pending",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(
        poll_times(&run),
        [30_000, 60_000, 90_000],
        "polls exactly every interval (30 000 ms = 30 s)"
    );
    let t = run.result.unwrap();
    assert_eq!(t.access_token.expose(), "1000.a3f0e1");
    assert_eq!(t.refresh_token.unwrap().expose(), "1000.8bb7d2");
    assert_eq!(t.api_domain.unwrap().as_str(), "https://www.zohoapis.com");
    assert_eq!(t.accounts_url.unwrap().as_str(), "https://accounts.zoho.com");
    assert_eq!(t.location.as_deref(), Some("us"));
    assert_eq!(t.expires_at.as_millis(), 90_000 + 3_600_000);
}

#[test]
fn requests_speak_zoho_and_keep_secrets_out_of_urls() {
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "token_us.json")],
        0,
    );
    let (_, code) = &run.sent[0];
    assert_eq!(code.url, "https://accounts.zoho.com/oauth/v3/device/code");
    assert_eq!(code.method, Method::Post);
    let body = String::from_utf8(code.body.clone()).unwrap();
    assert_eq!(
        body,
        "client_id=1004.CLIENT&grant_type=device_request&scope=ZohoBooks.settings.READ&access_type=offline&prompt=consent"
    );
    let (_, poll) = &run.sent[1];
    assert_eq!(poll.url, "https://accounts.zoho.com/oauth/v3/device/token");
    assert_eq!(
        String::from_utf8(poll.body.clone()).unwrap(),
        "client_id=1004.CLIENT&client_secret=the-client-secret&grant_type=device_token&code=1004.d8a0c1f7"
    );
    for (_, r) in &run.sent {
        assert!(!r.url.as_str().contains('?'), "no query strings: {}", r.url);
        assert!(
            r.headers
                .contains(&("Content-Type", "application/x-www-form-urlencoded"))
        );
        assert!(!format!("{r:?}").contains("the-client-secret"));
    }
}

#[test]
fn slow_down_raises_the_interval_and_keeps_it() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "slow_down.json"),
            Http(200, "pending.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "slow_down 35000",
            "send Poll",
            "pending",
            "send Poll",
            "pending",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(poll_times(&run), [30_000, 65_000, 100_000, 135_000]);
}

#[test]
fn other_dc_moves_polling_to_the_users_dc() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "other_dc_eu.json"),
            Http(200, "token_eu.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "other_dc eu https://accounts.zoho.eu",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(run.sent[2].1.url, "https://accounts.zoho.eu/oauth/v3/device/token");
    assert_eq!(
        poll_times(&run),
        [30_000, 60_000],
        "one interval per device code, across DCs: no slow_down"
    );
    let t = run.result.unwrap();
    assert_eq!(
        t.accounts_url.unwrap().as_str(),
        "https://accounts.zoho.eu",
        "refresh and revoke go to the user's DC"
    );
    assert_eq!(t.location.as_deref(), Some("eu"));
    assert_eq!(t.api_domain.unwrap().as_str(), "https://www.zohoapis.eu");
}

#[test]
fn other_dc_with_an_overridden_server_asks_serverinfo() {
    let sim = ServerUrl::parse("http://127.0.0.1:7001").unwrap();
    let run = drive(
        flow_with(FlowConfig::default(), Server::zoho(sim)),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "other_dc_eu.json"),
            Http(200, "serverinfo.json"),
            Raw(
                200,
                r#"{"access_token":"a","refresh_token":"r","api_domain":"http://127.0.0.1:7002","expires_in":3600}"#,
            ),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "send ServerInfo",
            "other_dc eu http://127.0.0.1:7002",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(run.sent[2].1.url, "http://127.0.0.1:7001/oauth/serverinfo");
    assert_eq!(run.sent[3].1.url, "http://127.0.0.1:7002/oauth/v3/device/token");
    assert_eq!(
        run.result.unwrap().api_domain.unwrap().as_str(),
        "http://127.0.0.1:7002"
    );
}

#[test]
fn access_denied() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "pending.json"),
            Http(200, "access_denied.json"),
        ],
        0,
    );
    assert_eq!(run.result.unwrap_err(), Error::Denied);
    assert_eq!(run.transcript.last().unwrap(), "error denied");
}

#[test]
fn errors_are_sticky() {
    let mut flow = us_flow();
    let Ok(Step::Send(_)) = flow.poll(Timestamp::ZERO) else {
        panic!()
    };
    flow.handle_response(Timestamp::ZERO, 200, &fixture("invalid_client.json"));
    for t in [0, 1, 1_000_000] {
        assert!(matches!(
            flow.poll(Timestamp::from_millis(t)),
            Err(Error::InvalidClient { .. })
        ));
    }
}

#[test]
fn expired_ends_the_flow_without_kiosk() {
    for name in ["expired.json", "expired_token.json"] {
        let run = drive(us_flow(), vec![Http(200, "code_ms.json"), Http(200, name)], 0);
        assert_eq!(run.result.unwrap_err(), Error::CodeExpired, "{name}");
    }
}

#[test]
fn a_lapsed_code_is_never_polled_after_its_expiry() {
    // Nine pendings at 30 s intervals: the tenth poll would be at 300 s = expiry.
    let mut replies = vec![Http(200, "code_ms.json")];
    replies.extend((0..9).map(|_| Http(200, "pending.json")));
    let run = drive(us_flow(), replies, 0);
    assert_eq!(run.end, 300_000);
    assert!(poll_times(&run).iter().all(|&t| t < 300_000));
    assert_eq!(run.result.unwrap_err(), Error::CodeExpired);
}

#[test]
fn kiosk_reissues_lapsed_codes_with_growing_pauses() {
    let config = FlowConfig {
        kiosk: Some(KioskPolicy {
            pause_after: 2,
            pause: Duration::from_secs(60),
            max_pause: Duration::from_secs(90),
        }),
        ..FlowConfig::default()
    };
    let run = drive(
        flow_with(config, Server::zoho_dc(DataCenter::Us)),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "expired.json"),
            Http(200, "code_second.json"),
            Http(200, "expired.json"),
            Http(200, "code_ms.json"),
            Http(200, "expired.json"),
            Http(200, "code_second.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "code_expired pause 0",
            "send DeviceCode",
            "prompt KIOS-0002",
            "send Poll",
            "code_expired pause 60",
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "code_expired pause 90",
            "send DeviceCode",
            "prompt KIOS-0002",
            "send Poll",
            "pending",
            "send Poll",
            "done"
        ]
    );
    let codes: Vec<u64> = run
        .sent
        .iter()
        .filter(|(_, r)| r.purpose == Purpose::DeviceCode)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(codes, [0, 30_000, 120_000, 240_000]);
}

#[test]
fn kiosk_reissues_when_the_code_lapses_locally() {
    let config = FlowConfig {
        kiosk: Some(KioskPolicy::default()),
        ..FlowConfig::default()
    };
    let mut replies = vec![Http(200, "code_ms.json")];
    replies.extend((0..9).map(|_| Http(200, "pending.json")));
    replies.push(Http(200, "code_second.json"));
    replies.push(Http(200, "token_us.json"));
    let run = drive(flow_with(config, Server::zoho_dc(DataCenter::Us)), replies, 0);
    assert!(run.result.is_ok());
    assert!(run.transcript.contains(&"code_expired pause 0".to_string()));
    assert!(run.transcript.contains(&"prompt KIOS-0002".to_string()));
}

#[test]
fn transport_errors_then_success() {
    let run = drive(
        us_flow(),
        vec![
            Transport(TransportError::Connect),
            Transport(TransportError::Dns),
            Http(200, "code_ms.json"),
            Transport(TransportError::Reset),
            Transport(TransportError::Timeout),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "retry connect",
            "send DeviceCode",
            "retry dns",
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "retry reset",
            "send Poll",
            "retry timeout",
            "send Poll",
            "done"
        ]
    );
    let polls = poll_times(&run);
    for w in polls.windows(2) {
        assert!(
            w[1] - w[0] >= 30_000,
            "a transient failure never makes the next poll sooner than the interval: {polls:?}"
        );
    }
}

#[test]
fn html_503_then_success() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(503, "html_503.html"),
            Http(502, "html_503.html"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "retry not_json",
            "send Poll",
            "retry not_json",
            "send Poll",
            "done"
        ]
    );
}

#[test]
fn the_code_request_gives_up_after_max_attempts() {
    let config = FlowConfig {
        max_attempts: 3,
        ..FlowConfig::default()
    };
    let run = drive(
        flow_with(config, Server::zoho_dc(DataCenter::Us)),
        vec![
            Http(503, "html_503.html"),
            Raw(500, "oops"),
            Transport(TransportError::Connect),
        ],
        0,
    );
    assert_eq!(
        run.result.unwrap_err(),
        Error::Unavailable {
            attempts: 3,
            last: Transient::Transport(TransportError::Connect)
        }
    );
    // Backoff 1 s then 2 s (with equal jitter: between half and all of it).
    let times: Vec<u64> = run.sent.iter().map(|(t, _)| *t).collect();
    assert!((500..=1_000).contains(&(times[1] - times[0])), "{times:?}");
    assert!((1_000..=2_000).contains(&(times[2] - times[1])), "{times:?}");
}

#[test]
fn a_code_that_lapses_while_the_network_is_down_is_reported_as_unavailable() {
    let mut replies = vec![Http(200, "code_ms.json")];
    replies.extend((0..20).map(|_| Transport(TransportError::Connect)));
    let run = drive(us_flow(), replies, 0);
    assert_eq!(run.end, 300_000, "gives up at the code's expiry, not before");
    assert!(matches!(run.result.unwrap_err(), Error::Unavailable { .. }));
}

#[test]
fn pending_answered_with_http_400() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(400, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "pending",
            "send Poll",
            "done"
        ]
    );
}

#[test]
fn missing_interval_means_30_seconds() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_no_interval.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(poll_times(&run), [30_000, 60_000]);
}

/// An overridden accounts server (a test server): it keeps its own interval, where Zoho's
/// hosts are polled no sooner than every 30 s (see tests/zoho_dialect.rs).
fn override_flow(config: FlowConfig) -> DeviceFlow {
    flow_with(config, Server::zoho(ServerUrl::parse("http://127.0.0.1:9").unwrap()))
}

#[test]
fn seconds_units_are_understood() {
    let run = drive(
        override_flow(FlowConfig::default()),
        vec![
            Http(200, "code_seconds.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(poll_times(&run), [5_000, 10_000]);
}

#[test]
fn min_interval_protects_against_zero() {
    let config = FlowConfig {
        min_interval: Duration::from_secs(2),
        ..FlowConfig::default()
    };
    let run = drive(
        override_flow(config),
        vec![
            Raw(
                200,
                r#"{"user_code":"Z","device_code":"d","interval":0,"expires_in":60,"verification_url":"https://accounts.zoho.com/x"}"#,
            ),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(poll_times(&run), [2_000, 4_000]);
}

#[test]
fn latency_never_shortens_the_spacing() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "pending.json"),
            Http(200, "pending.json"),
            Http(200, "token_us.json"),
        ],
        250,
    );
    let polls = poll_times(&run);
    for w in polls.windows(2) {
        assert!(w[1] - w[0] >= 30_000);
    }
}

#[test]
fn api_domain_outside_the_allow_list_is_refused() {
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "token_bad_api_domain.json")],
        0,
    );
    let e = run.result.unwrap_err();
    assert!(matches!(e, Error::Unsafe(_)), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::Unsafe);
    assert!(!e.to_string().contains("1000.evil"), "the token is not in the message");
}

#[test]
fn loopback_api_domain_is_refused_for_real_zoho() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Raw(
                200,
                r#"{"access_token":"a","api_domain":"http://127.0.0.1:9","expires_in":3600}"#,
            ),
        ],
        0,
    );
    assert!(matches!(run.result.unwrap_err(), Error::Unsafe(_)));
}

#[test]
fn a_phishy_verification_url_is_shown_but_flagged() {
    let mut flow = us_flow();
    let Ok(Step::Send(_)) = flow.poll(Timestamp::ZERO) else {
        panic!()
    };
    flow.handle_response(Timestamp::ZERO, 200, &fixture("code_phishy_url.json"));
    let Ok(Step::Prompt(p)) = flow.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert!(p.warning.is_some());
    let mut flow = us_flow();
    let Ok(Step::Send(_)) = flow.poll(Timestamp::ZERO) else {
        panic!()
    };
    flow.handle_response(Timestamp::ZERO, 200, &fixture("code_ms.json"));
    let Ok(Step::Prompt(p)) = flow.poll(Timestamp::ZERO) else {
        panic!()
    };
    assert_eq!(p.warning, None);
    assert_eq!(
        p.qr_url(),
        "https://accounts.zoho.com/oauth/v3/device/setCode?devcode=WLKU-4502"
    );
}

#[test]
fn client_errors() {
    let run = drive(us_flow(), vec![Http(200, "invalid_client.json")], 0);
    assert_eq!(
        run.result.unwrap_err(),
        Error::InvalidClient {
            accounts_url: "https://accounts.zoho.com".into()
        }
    );
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "invalid_client_secret.json")],
        0,
    );
    assert_eq!(
        run.result.unwrap_err(),
        Error::InvalidClientSecret {
            accounts_url: "https://accounts.zoho.com".into(),
            location: Some("us".into())
        }
    );
    // invalid_code while polling is about the device code, not a refresh token (see
    // invalid_code_while_polling_means_the_device_code_is_gone); on refresh it still means
    // "pair again" (refresh_success_invalid_code_and_throttle).
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "invalid_code.json")],
        0,
    );
    assert_eq!(run.result.unwrap_err().kind(), ErrorKind::Expired);
}

#[test]
fn bad_config_fails_before_any_request() {
    let no_secret = ClientCredentials {
        client_id: "1004.X".into(),
        client_secret: None,
    };
    let mut flow = DeviceFlow::new(
        FlowConfig::default(),
        no_secret,
        Server::zoho_dc(DataCenter::Us),
        Timestamp::ZERO,
    );
    assert!(matches!(flow.poll(Timestamp::ZERO), Err(Error::Config(_))));
}

#[test]
fn refresh_success_invalid_code_and_throttle() {
    let acc = ServerUrl::parse("https://accounts.zoho.com").unwrap();
    let ep = TokenEndpoint::zoho(&acc);
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "token_us.json")],
        0,
    );
    let tokens = run.result.unwrap();
    let now = Timestamp::from_millis(4_000_000);
    let fresh = ep
        .refresh_response(now, 200, &fixture("refresh_ok.json"), &tokens)
        .unwrap();
    assert_eq!(fresh.access_token.expose(), "1000.fresh");
    assert_eq!(
        fresh.refresh_token, tokens.refresh_token,
        "Zoho sends no new refresh token: the old one is kept"
    );
    assert_eq!(fresh.expires_at.as_millis(), 4_000_000 + 3_600_000);
    let e = ep
        .refresh_response(now, 200, &fixture("invalid_code.json"), &tokens)
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NeedsPairing);
    assert!(!e.is_transient());
    let e = ep
        .refresh_response(now, 200, &fixture("throttle.json"), &tokens)
        .unwrap_err();
    assert_eq!(e, Error::Throttled);
    assert!(e.is_transient(), "the throttle is not a revoked token");
    assert!(
        ep.refresh_response(now, 503, &fixture("html_503.html"), &tokens)
            .unwrap_err()
            .is_transient()
    );
}

#[test]
fn standard_profile_speaks_rfc_8628() {
    let config = FlowConfig {
        profile: Profile::Rfc8628,
        scopes: vec!["openid".into()],
        ..FlowConfig::default()
    };
    let server = Server::Standard {
        device_authorization_url: ServerUrl::parse("https://idp.example/device").unwrap(),
        token_url: ServerUrl::parse("https://idp.example/token").unwrap(),
    };
    let public = ClientCredentials {
        client_id: "tv".into(),
        client_secret: None,
    };
    let flow = DeviceFlow::new(config, public, server, Timestamp::ZERO);
    let run = drive(
        flow,
        vec![
            Raw(
                200,
                r#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://idp.example/device","expires_in":1800,"interval":5}"#,
            ),
            Raw(400, r#"{"error":"authorization_pending"}"#),
            Raw(400, r#"{"error":"slow_down"}"#),
            Raw(
                200,
                r#"{"access_token":"at","refresh_token":"rt","token_type":"Bearer","expires_in":3600}"#,
            ),
        ],
        0,
    );
    assert_eq!(poll_times(&run), [5_000, 10_000, 20_000]);
    assert_eq!(
        String::from_utf8(run.sent[0].1.body.clone()).unwrap(),
        "client_id=tv&scope=openid+offline_access"
    );
    assert_eq!(
        String::from_utf8(run.sent[1].1.body.clone()).unwrap(),
        "client_id=tv&grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=dc"
    );
    let t = run.result.unwrap();
    assert_eq!(t.api_domain, None);
}

// --- other_dc to a location the built-in table does not know ---------------------------------

const OTHER_DC_XX: &str = r#"{"error":"other_dc","user_location":"XX"}"#;

fn serverinfo_xx(xx: &str) -> String {
    format!(
        r#"{{"result":"success","locations":{{"us":"https://accounts.zoho.com","eu":"https://accounts.zoho.eu","xx":"{xx}"}}}}"#
    )
}

fn polls_carry_the_device_code(run: &Run) {
    for (_, r) in run.sent.iter().filter(|(_, r)| r.purpose == Purpose::Poll) {
        assert!(
            String::from_utf8(r.body.clone())
                .unwrap()
                .ends_with("&code=1004.d8a0c1f7"),
            "the same device code is polled: {r:?}"
        );
    }
}

#[test]
fn other_dc_to_a_location_the_table_lacks_asks_serverinfo_at_zoho() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Raw(200, OTHER_DC_XX),
            Owned(200, serverinfo_xx("https://accounts.zoho.xx")),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "send ServerInfo",
            "other_dc xx https://accounts.zoho.xx",
            "send Poll",
            "done"
        ]
    );
    assert_eq!(run.sent[2].1.url, "https://accounts.zoho.com/oauth/serverinfo");
    assert_eq!(run.sent[2].1.method, Method::Get);
    assert_eq!(run.sent[3].1.url, "https://accounts.zoho.xx/oauth/v3/device/token");
    polls_carry_the_device_code(&run);
    assert_eq!(poll_times(&run), [30_000, 60_000]);
    let t = run.result.unwrap();
    assert_eq!(t.accounts_url.unwrap().as_str(), "https://accounts.zoho.xx");
    assert_eq!(t.location.as_deref(), Some("xx"));
}

#[test]
fn serverinfo_failures_keep_the_device_code() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Raw(200, OTHER_DC_XX),
            Http(503, "html_503.html"),
            Raw(403, r#"{"message":"Forbidden"}"#),
            Owned(200, serverinfo_xx("https://accounts.zohocloud.xx")),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "send ServerInfo",
            "retry not_json",
            "send ServerInfo",
            "retry unexpected_json",
            "send ServerInfo",
            "other_dc xx https://accounts.zohocloud.xx",
            "send Poll",
            "done"
        ]
    );
    polls_carry_the_device_code(&run);
    assert!(run.result.is_ok());
}

#[test]
fn serverinfo_answers_that_are_not_zoho_accounts_servers_are_refused() {
    for bad in [
        "https://accounts.evil.example",
        "https://accounts.zoho.com.evil.example",
        "https://evil.example/accounts.zoho.xx",
        "https://accounts.zoho.xx:8443",
        "https://accounts.zoho.xx/elsewhere",
        "https://accounts.zoho.xyz",
        "http://accounts.zoho.xx",
        "http://127.0.0.1:9",
        "https://127.0.0.1:9",
        "https://localhost",
    ] {
        let run = drive(
            us_flow(),
            vec![
                Http(200, "code_ms.json"),
                Raw(200, OTHER_DC_XX),
                Owned(200, serverinfo_xx(bad)),
            ],
            0,
        );
        let e = run.result.unwrap_err();
        assert!(matches!(e, Error::Unsafe(_)), "{bad}: {e:?}");
        assert_eq!(run.sent.len(), 3, "{bad}: nothing sent there");
    }
    // serverinfo does not list the location either.
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Raw(200, r#"{"error":"other_dc","user_location":"zz"}"#),
            Owned(200, serverinfo_xx("https://accounts.zoho.xx")),
        ],
        0,
    );
    assert_eq!(run.result.unwrap_err(), Error::UnknownLocation("zz".into()));
}

#[test]
fn accounts_moves_follow_the_allow_list_spirit() {
    use zoho_device_core::dc::{check_accounts_move, is_zoho_accounts_host};
    for dc in DataCenter::ALL {
        let url = ServerUrl::parse(dc.accounts_url()).unwrap();
        assert!(is_zoho_accounts_host(url.host()), "{dc}");
    }
    let us = ServerUrl::parse("https://accounts.zoho.com").unwrap();
    let sim = ServerUrl::parse("http://127.0.0.1:7001").unwrap();
    let staging = ServerUrl::parse("https://oauth.staging.example").unwrap();
    let url = |s: &str| ServerUrl::parse(s).unwrap();
    assert!(check_accounts_move(&us, &url("https://accounts.zoho.co.xx")).is_ok());
    assert!(check_accounts_move(&us, &url("https://accounts.zoho.com.xx")).is_ok());
    assert!(check_accounts_move(&us, &url("https://accounts.zoho.evil.example")).is_err());
    assert!(check_accounts_move(&us, &url("https://accounts.zohoapis.com")).is_err());
    assert!(check_accounts_move(&us, &url("http://127.0.0.1:7002")).is_err());
    assert!(check_accounts_move(&sim, &url("http://127.0.0.1:7002")).is_ok());
    assert!(check_accounts_move(&staging, &url("https://eu.staging.example")).is_ok());
    assert!(check_accounts_move(&staging, &url("https://localhost:1")).is_err());
}

// --- invalid_code while polling ---------------------------------------------------------------

#[test]
fn invalid_code_while_polling_means_the_device_code_is_gone() {
    let run = drive(
        us_flow(),
        vec![Http(200, "code_ms.json"), Http(200, "invalid_code.json")],
        0,
    );
    let e = run.result.unwrap_err();
    assert_eq!(
        e,
        Error::CodeRejected {
            code: "invalid_code".into()
        }
    );
    assert_eq!(e.kind(), ErrorKind::Expired);
    assert!(!e.is_transient());
    let msg = e.to_string();
    assert!(msg.contains("device code") && msg.contains("login again"), "{msg}");
    assert!(!msg.contains("refresh token") && !msg.contains("pair"), "{msg}");
    // Kiosk mode: a new code instead.
    let config = FlowConfig {
        kiosk: Some(KioskPolicy::default()),
        ..FlowConfig::default()
    };
    let run = drive(
        flow_with(config, Server::zoho_dc(DataCenter::Us)),
        vec![
            Http(200, "code_ms.json"),
            Http(200, "invalid_code.json"),
            Http(200, "code_second.json"),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert!(run.result.is_ok());
    assert!(run.transcript.contains(&"prompt KIOS-0002".to_string()));
}

// --- JSON that is neither a token nor an error while polling ----------------------------------

#[test]
fn json_without_token_or_error_while_polling_is_retried() {
    let run = drive(
        us_flow(),
        vec![
            Http(200, "code_ms.json"),
            Raw(403, r#"{"message":"Forbidden by policy"}"#),
            Raw(200, "{}"),
            Raw(200, r#"{"token_type":"Bearer"}"#),
            Http(200, "token_us.json"),
        ],
        0,
    );
    assert_eq!(
        run.transcript,
        [
            "send DeviceCode",
            "prompt WLKU-4502",
            "send Poll",
            "retry unexpected_json",
            "send Poll",
            "retry unexpected_json",
            "send Poll",
            "retry unexpected_json",
            "send Poll",
            "done"
        ]
    );
    let polls = poll_times(&run);
    for w in polls.windows(2) {
        assert!(w[1] - w[0] >= 30_000, "never sooner than the interval: {polls:?}");
    }
    polls_carry_the_device_code(&run);
    assert!(run.result.is_ok());
}

#[test]
fn json_without_token_or_error_until_the_code_lapses_is_unavailable() {
    let mut replies = vec![Http(200, "code_ms.json")];
    replies.extend((0..20).map(|_| Raw(200, "{}")));
    let run = drive(us_flow(), replies, 0);
    assert_eq!(run.end, 300_000, "gives up at the code's expiry, not before");
    assert!(poll_times(&run).iter().all(|&t| t < 300_000));
    match run.result.unwrap_err() {
        Error::Unavailable {
            last: Transient::UnexpectedJson(200),
            attempts,
        } => assert!(attempts >= 2),
        e => panic!("{e:?}"),
    }
}

#[test]
fn a_malformed_device_code_reply_still_fails_at_once() {
    // Unchanged: the code request has no live code to protect.
    let run = drive(us_flow(), vec![Raw(200, "{}")], 0);
    assert!(matches!(run.result.unwrap_err(), Error::Protocol(_)));
}

// --- token lifetimes: the milliseconds heuristic is Zoho's only -------------------------------

#[test]
fn standard_profile_token_lifetimes_are_seconds() {
    let config = FlowConfig {
        profile: Profile::Rfc8628,
        scopes: vec!["openid".into()],
        ..FlowConfig::default()
    };
    let token_url = ServerUrl::parse("https://idp.example/token").unwrap();
    let server = Server::Standard {
        device_authorization_url: ServerUrl::parse("https://idp.example/device").unwrap(),
        token_url: token_url.clone(),
    };
    let flow = DeviceFlow::new(config, client(), server, Timestamp::ZERO);
    let run = drive(
        flow,
        vec![
            Raw(
                200,
                r#"{"device_code":"dc","user_code":"WDJB-MJHT","verification_uri":"https://idp.example/device","expires_in":1800,"interval":5}"#,
            ),
            Raw(
                200,
                r#"{"access_token":"at","refresh_token":"rt","token_type":"Bearer","expires_in":432000}"#,
            ),
        ],
        0,
    );
    let t = run.result.unwrap();
    assert_eq!(t.expires_at.as_millis(), 5_000 + 432_000_000, "5 days, not 432 s");

    // Refresh through a standard endpoint: 30 days is seconds too (clamped to the maximum).
    let ep = TokenEndpoint::standard(&token_url, None);
    let now = Timestamp::from_millis(1_000);
    let fresh = ep
        .refresh_response(
            now,
            200,
            br#"{"access_token":"at2","token_type":"Bearer","expires_in":2592000}"#,
            &t,
        )
        .unwrap();
    assert_eq!(fresh.expires_in(now), codec::MAX_TOKEN_LIFETIME);

    // The codec: RFC seconds, Zoho's legacy milliseconds heuristic unchanged.
    let body = br#"{"access_token":"a","expires_in":432000}"#;
    let rfc = codec::parse_token_for(Profile::Rfc8628, 200, body);
    assert!(
        matches!(rfc, codec::Reply::Ok(ref g) if g.expires_in == Duration::from_secs(432_000)),
        "{rfc:?}"
    );
    let zoho = codec::parse_token_for(Profile::Zoho, 200, body);
    assert!(
        matches!(zoho, codec::Reply::Ok(ref g) if g.expires_in == Duration::from_secs(432)),
        "{zoho:?}"
    );
    assert_eq!(codec::parse_token(200, body), zoho, "parse_token is the Zoho profile");
    let legacy = br#"{"access_token":"a","expires_in":3600000,"expires_in_sec":3600}"#;
    assert!(matches!(
        codec::parse_token_for(Profile::Zoho, 200, legacy),
        codec::Reply::Ok(ref g) if g.expires_in == Duration::from_secs(3600)
    ));
}
