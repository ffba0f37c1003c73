//! Zoho's dialect as it varies between Zoho's pages and the clients that ran against Zoho:
//! per-data-centre secrets, the names `other_dc` gives the location, the 30-second polling rule,
//! HTTP statuses that vary for the same answer, and legacy token lifetimes.
//!
//! Each test scripts the server's replies and drives the sans-IO flow on a simulated clock.

use std::collections::VecDeque;
use std::time::Duration;

use zoho_device_core::*;

const CODE_MS: &str = r#"{"user_code":"WLKU-4502","device_code":"1004.dc","interval":30000,"expires_in":300000,
    "verification_url":"https://accounts.zoho.com/oauth/v3/device"}"#;
const PENDING: &str = r#"{"error":"authorization_pending"}"#;
const TOKEN_EU: &str = r#"{"access_token":"1000.eu","refresh_token":"1000.r","api_domain":"https://www.zohoapis.eu",
    "token_type":"Bearer","expires_in":3600}"#;
const TOKEN_US: &str = r#"{"access_token":"1000.us","refresh_token":"1000.r","api_domain":"https://www.zohoapis.com",
    "token_type":"Bearer","expires_in":3600}"#;

struct Run {
    transcript: Vec<String>,
    /// (time sent, request)
    sent: Vec<(u64, HttpRequest)>,
    result: Result<Tokens, Error>,
}

/// Drives `flow` against `(status, body)` replies; every exchange takes no time.
fn drive(mut flow: DeviceFlow, replies: Vec<(u16, String)>) -> Run {
    let mut replies: VecDeque<(u16, String)> = replies.into();
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
                    result: Err(e),
                };
            }
            Ok(Step::Done(t)) => {
                transcript.push("done".into());
                return Run {
                    transcript,
                    sent,
                    result: Ok(t),
                };
            }
            Ok(Step::Send(req)) => {
                transcript.push(format!("send {:?}", req.purpose));
                sent.push((now, req));
                let (status, body) = replies.pop_front().expect("the flow sent more requests than scripted");
                flow.handle_response(Timestamp::from_millis(now), status, body.as_bytes());
            }
            Ok(Step::Prompt(p)) => transcript.push(format!("prompt every {} ms", p.interval.as_millis())),
            Ok(Step::Notice(n)) => transcript.push(match n {
                Notice::Pending => "pending".into(),
                Notice::SlowDown { interval } => format!("slow_down {}", interval.as_millis()),
                Notice::OtherDc { location, accounts_url } => format!("other_dc {location} {accounts_url}"),
                Notice::Retry { reason, .. } => format!("retry {}", reason.code()),
                other => format!("{other:?}"),
            }),
            Ok(Step::Wait(t)) => now = t.as_millis().max(now),
        }
    }
    panic!("the flow did not finish: {transcript:?}");
}

fn r(status: u16, body: &str) -> (u16, String) {
    (status, body.to_string())
}

fn client(secret: Option<&str>) -> ClientCredentials {
    ClientCredentials {
        client_id: "1004.CLIENT".into(),
        client_secret: secret.map(ClientSecret::new),
    }
}

fn flow(server: Server) -> DeviceFlow {
    DeviceFlow::new(FlowConfig::default(), client(Some("common")), server, Timestamp::ZERO)
}

fn body(req: &HttpRequest) -> String {
    String::from_utf8(req.body.clone()).unwrap()
}

fn polls(run: &Run) -> Vec<&(u64, HttpRequest)> {
    run.sent.iter().filter(|(_, r)| r.purpose == Purpose::Poll).collect()
}

fn poll_times(run: &Run) -> Vec<u64> {
    polls(run).iter().map(|(t, _)| *t).collect()
}

fn sim() -> ServerUrl {
    ServerUrl::parse("http://127.0.0.1:9000").unwrap()
}

fn serverinfo(eu: &str) -> String {
    format!(r#"{{"result":"success","locations":{{"us":"http://127.0.0.1:9000","eu":"{eu}"}}}}"#)
}

// ---------------------------------------------------------------------------------------------
// 1. A secret per data centre

#[test]
fn after_other_dc_polls_carry_the_users_dc_secret() {
    let secrets = DcSecrets::new().with("EU", ClientSecret::new("eu-secret"));
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)).with_dc_secrets(secrets),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","user_location":"eu"}"#),
            r(200, TOKEN_EU),
        ],
    );
    let tokens = run.result.as_ref().unwrap();
    assert_eq!(tokens.location.as_deref(), Some("eu"));
    let polls = polls(&run);
    assert!(polls[0].1.url.to_string().starts_with("https://accounts.zoho.com/"));
    assert!(
        body(&polls[0].1).contains("client_secret=common&"),
        "us has no own secret: the common one"
    );
    assert!(polls[1].1.url.to_string().starts_with("https://accounts.zoho.eu/"));
    assert!(
        body(&polls[1].1).contains("client_secret=eu-secret&"),
        "{}",
        body(&polls[1].1)
    );
}

#[test]
fn a_dcs_own_secret_is_used_from_the_first_poll() {
    let secrets = DcSecrets::new().with("us", ClientSecret::new("us-secret"));
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)).with_dc_secrets(secrets),
        vec![r(200, CODE_MS), r(200, TOKEN_US)],
    );
    assert!(run.result.is_ok());
    assert!(body(&polls(&run)[0].1).contains("client_secret=us-secret&"));
    // The device-code request carries no secret in Zoho's dialect.
    assert!(!body(&run.sent[0].1).contains("secret"));
}

#[test]
fn an_overrides_location_from_the_caller_chooses_its_secret() {
    let secrets = DcSecrets::new().with("eu", ClientSecret::new("eu-secret"));
    let run = drive(
        DeviceFlow::new(
            FlowConfig::default(),
            client(None),
            Server::zoho(sim()),
            Timestamp::ZERO,
        )
        .with_dc_secrets(secrets)
        .with_location(Some("eu".into())),
        vec![r(200, CODE_MS), r(200, TOKEN_EU)],
    );
    let tokens = run.result.as_ref().unwrap();
    assert_eq!(tokens.location.as_deref(), Some("eu"));
    assert!(body(&polls(&run)[0].1).contains("client_secret=eu-secret&"));
}

#[test]
fn invalid_client_secret_names_the_dc_that_refused_it() {
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","user_location":"eu"}"#),
            r(200, r#"{"error":"invalid_client_secret"}"#),
        ],
    );
    let e = run.result.clone().unwrap_err();
    assert_eq!(
        e,
        Error::InvalidClientSecret {
            accounts_url: "https://accounts.zoho.eu".into(),
            location: Some("eu".into())
        }
    );
    assert_eq!(e.kind(), ErrorKind::ClientRejected);
    let msg = e.to_string();
    assert!(msg.contains("data centre eu") && msg.contains("Multi-DC"), "{msg}");
    assert!(!msg.contains("common"), "no secret in messages");
}

#[test]
fn a_dc_without_any_secret_fails_before_polling_there() {
    // Only eu's secret: starting at us there is nothing to send.
    let secrets = DcSecrets::new().with("eu", ClientSecret::new("eu-secret"));
    let mut f = DeviceFlow::new(
        FlowConfig::default(),
        client(None),
        Server::zoho_dc(DataCenter::Us),
        Timestamp::ZERO,
    )
    .with_dc_secrets(secrets);
    match f.poll(Timestamp::ZERO) {
        Err(Error::Config(why)) => assert!(why.contains("data centre us"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Only us's secret, and the user lives in eu: the move fails with a configuration error
    // naming eu instead of polling eu without a secret.
    let secrets = DcSecrets::new().with("us", ClientSecret::new("us-secret"));
    let run = drive(
        DeviceFlow::new(
            FlowConfig::default(),
            client(None),
            Server::zoho_dc(DataCenter::Us),
            Timestamp::ZERO,
        )
        .with_dc_secrets(secrets),
        vec![r(200, CODE_MS), r(200, r#"{"error":"other_dc","user_location":"eu"}"#)],
    );
    match &run.result {
        Err(Error::Config(why)) => assert!(why.contains("data centre eu"), "{why}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(polls(&run).len(), 1, "nothing was sent to eu");
}

#[test]
fn refresh_and_revoke_use_the_secret_of_the_tokens_dc() {
    let secrets = DcSecrets::new().with("eu", ClientSecret::new("eu-secret"));
    let common = client(Some("common"));
    let eu = common.at(&secrets, Some("eu"));
    assert_eq!(eu.client_secret.as_ref().map(ClientSecret::expose), Some("eu-secret"));
    let us = common.at(&secrets, Some("us"));
    assert_eq!(us.client_secret.as_ref().map(ClientSecret::expose), Some("common"));
    assert_eq!(
        common
            .at(&secrets, None)
            .client_secret
            .as_ref()
            .map(ClientSecret::expose),
        Some("common")
    );
    let ep = TokenEndpoint::zoho(&DataCenter::Eu.accounts_server());
    let req = ep.refresh_request(&eu, &RefreshToken::new("1000.r"));
    assert!(body(&req).contains("client_secret=eu-secret&"));
    // A refused secret at refresh names the tokens' DC too.
    let previous = Tokens {
        access_token: AccessToken::new("a"),
        refresh_token: Some(RefreshToken::new("1000.r")),
        api_domain: None,
        accounts_url: Some(DataCenter::Eu.accounts_server()),
        location: Some("eu".into()),
        scope: None,
        token_type: "Bearer".into(),
        expires_at: Timestamp::ZERO,
    };
    assert_eq!(
        ep.refresh_response(Timestamp::ZERO, 200, br#"{"error":"invalid_client_secret"}"#, &previous),
        Err(Error::InvalidClientSecret {
            accounts_url: "https://accounts.zoho.eu".into(),
            location: Some("eu".into())
        })
    );
}

// ---------------------------------------------------------------------------------------------
// 2. other_dc names the location in more than one way

#[test]
fn other_dc_location_in_dc_is_followed_like_user_location() {
    for reply in [
        r#"{"error":"other_dc","user_location":"eu"}"#,
        r#"{"error":"other_dc","dc":"eu"}"#,
        r#"{"error":"other_dc","dc":"EU"}"#,
        r#"{"error":"other_dc","user_location":"eu","dc":"in"}"#,
        r#"{"error":"other_dc","user_location":"https://accounts.zoho.eu"}"#,
        r#"{"error":"other_dc","dc":"https://Accounts.Zoho.EU/"}"#,
    ] {
        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![r(200, CODE_MS), r(200, reply), r(200, TOKEN_EU)],
        );
        assert!(
            run.transcript
                .contains(&"other_dc eu https://accounts.zoho.eu".to_string()),
            "{reply}: {:?}",
            run.transcript
        );
        let t = run.result.as_ref().unwrap();
        assert_eq!(
            t.accounts_url.as_ref().map(ServerUrl::as_str),
            Some("https://accounts.zoho.eu")
        );
        assert_eq!(t.location.as_deref(), Some("eu"), "{reply}");
        assert_eq!(
            polls(&run)[1].1.url.to_string(),
            "https://accounts.zoho.eu/oauth/v3/device/token"
        );
    }
}

#[test]
fn an_accounts_url_in_other_dc_must_pass_the_accounts_host_check() {
    for bad in [
        "https://accounts.zoho.eu.evil.example",
        "https://evil.example",
        "https://accounts.zoho.eu:8443",
        "http://accounts.zoho.eu",
        "http://127.0.0.1:9000",
    ] {
        let reply = format!(r#"{{"error":"other_dc","dc":"{bad}"}}"#);
        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![r(200, CODE_MS), (200, reply)],
        );
        assert_eq!(run.result.clone().unwrap_err().kind(), ErrorKind::Unsafe, "{bad}");
        assert_eq!(polls(&run).len(), 1, "{bad}: nothing sent there");
    }
    // From the simulator (loopback), a loopback URL is fine; serverinfo names its location
    // (which chooses the secret).
    let secrets = DcSecrets::new().with("eu", ClientSecret::new("eu-secret"));
    let run = drive(
        flow(Server::zoho(sim())).with_dc_secrets(secrets.clone()),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","user_location":"http://127.0.0.1:9001"}"#),
            (200, serverinfo("http://127.0.0.1:9001")),
            r(200, TOKEN_EU),
        ],
    );
    assert_eq!(
        run.result.as_ref().unwrap().location.as_deref(),
        Some("eu"),
        "{:?}",
        run.transcript
    );
    assert_eq!(
        polls(&run)[1].1.url.to_string(),
        "http://127.0.0.1:9001/oauth/v3/device/token"
    );
    assert!(body(&polls(&run)[1].1).contains("client_secret=eu-secret&"));
    // A URL serverinfo does not list is still followed, its location unknown (common secret).
    let run = drive(
        flow(Server::zoho(sim())).with_dc_secrets(secrets),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","dc":"http://127.0.0.1:9002/"}"#),
            (200, serverinfo("http://127.0.0.1:9001")),
            r(200, TOKEN_EU),
        ],
    );
    assert!(
        run.transcript
            .contains(&"other_dc 127.0.0.1 http://127.0.0.1:9002".to_string()),
        "{:?}",
        run.transcript
    );
    assert_eq!(run.result.as_ref().unwrap().location, None);
    assert!(body(&polls(&run)[1].1).contains("client_secret=common&"));
}

#[test]
fn other_dc_without_a_location_asks_serverinfo_then_says_what_the_reply_held() {
    // Nothing names a location: serverinfo is asked, nothing matches, and the error quotes
    // the reply (not "unexpected reply").
    let run = drive(
        flow(Server::zoho(sim())),
        vec![
            r(200, CODE_MS),
            r(
                200,
                r#"{"error":"other_dc","error_description":"Account in another DC","hint":"ask\u001b[31m support"}"#,
            ),
            (200, serverinfo("http://127.0.0.1:9001")),
        ],
    );
    let e = run.result.clone().unwrap_err();
    assert!(matches!(e, Error::OtherDcWithoutLocation { .. }), "{e:?}");
    assert_eq!(e.kind(), ErrorKind::ClientRejected);
    let msg = e.to_string();
    assert!(
        msg.contains("hint=\"ask [31m support\""),
        "quoted, control characters blanked: {msg}"
    );
    assert!(msg.contains("error_description=\"Account in another DC\""), "{msg}");
    assert!(!msg.contains('\u{1b}'));
    assert!(msg.contains("user_location") && msg.contains("dc"), "{msg}");
    assert!(run.transcript.contains(&"send ServerInfo".to_string()));
    // A value of another field that serverinfo lists is followed.
    let run = drive(
        flow(Server::zoho(sim())),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","location":"eu"}"#),
            (200, serverinfo("http://127.0.0.1:9001")),
            r(200, TOKEN_EU),
        ],
    );
    assert_eq!(run.result.as_ref().unwrap().location.as_deref(), Some("eu"));
    // At Zoho, a value the table knows needs no request.
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc","region":"eu"}"#),
            r(200, TOKEN_EU),
        ],
    );
    assert_eq!(run.result.as_ref().unwrap().location.as_deref(), Some("eu"));
    assert!(!run.transcript.contains(&"send ServerInfo".to_string()));
    // At Zoho with nothing at all: serverinfo at the current server, then the error.
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![
            r(200, CODE_MS),
            r(200, r#"{"error":"other_dc"}"#),
            r(
                200,
                r#"{"result":"success","locations":{"us":"https://accounts.zoho.com"}}"#,
            ),
        ],
    );
    assert_eq!(
        run.sent[2].1.url.to_string(),
        "https://accounts.zoho.com/oauth/serverinfo"
    );
    let msg = run.result.clone().unwrap_err().to_string();
    assert!(msg.contains("nothing besides the error"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// 3. One poll per 30 seconds on Zoho's own servers

#[test]
fn zoho_hosts_are_polled_no_sooner_than_every_30_seconds() {
    // interval 5000 ms (seen in public clients): 30 s at Zoho, so no slow_down is earned.
    let code = r#"{"user_code":"A","device_code":"d","interval":5000,"expires_in":300000,
        "verification_url":"https://accounts.zoho.com/oauth/v3/device"}"#;
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![r(200, code), r(200, PENDING), r(200, PENDING), r(200, TOKEN_US)],
    );
    assert_eq!(poll_times(&run), [30_000, 60_000, 90_000]);
    assert_eq!(run.transcript[1], "prompt every 30000 ms");
    // Seconds (interval 5, expires_in 60) too, and at every DC.
    let code = r#"{"user_code":"A","device_code":"d","interval":5,"expires_in":120,
        "verification_url":"https://accounts.zoho.com/oauth/v3/device"}"#;
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![
            r(200, code),
            r(200, r#"{"error":"other_dc","dc":"eu"}"#),
            r(200, PENDING),
            r(200, TOKEN_EU),
        ],
    );
    assert_eq!(poll_times(&run), [30_000, 60_000, 90_000]);
    // slow_down still raises it by 5 s.
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![r(200, code), r(200, r#"{"error":"slow_down"}"#), r(200, TOKEN_US)],
    );
    assert_eq!(poll_times(&run), [30_000, 65_000]);
}

#[test]
fn overrides_keep_their_own_interval() {
    let code = r#"{"user_code":"A","device_code":"d","interval":500,"expires_in":20000,
        "verification_url":"http://127.0.0.1:9000/oauth/v3/device"}"#;
    let run = drive(
        flow(Server::zoho(sim())),
        vec![r(200, code), r(200, PENDING), r(200, TOKEN_EU)],
    );
    assert_eq!(
        poll_times(&run),
        [1_000, 2_000],
        "500 ms raised only to the 1 s floor of FlowConfig"
    );
    // An https override that is not a Zoho accounts host keeps it too.
    let staging = ServerUrl::parse("https://accounts.staging.example").unwrap();
    let code = r#"{"user_code":"A","device_code":"d","interval":5,"expires_in":60,
        "verification_url":"https://accounts.staging.example/oauth/v3/device"}"#;
    let run = drive(
        flow(Server::zoho(staging)),
        vec![r(200, code), r(200, PENDING), r(200, TOKEN_US)],
    );
    assert_eq!(poll_times(&run), [5_000, 10_000]);
    // From such a server to one of Zoho's hosts: 30 s there.
    let code = code.replace(r#""expires_in":60"#, r#""expires_in":120"#);
    let run = drive(
        flow(Server::zoho(
            ServerUrl::parse("https://accounts.staging.example").unwrap(),
        )),
        vec![
            r(200, &code),
            r(200, r#"{"error":"other_dc","dc":"https://accounts.zoho.eu"}"#),
            r(200, PENDING),
            r(200, TOKEN_EU),
        ],
    );
    assert_eq!(poll_times(&run), [5_000, 35_000, 65_000]);
}

// ---------------------------------------------------------------------------------------------
// 4. HTTP status varies for the same answer: the body decides

#[test]
fn pending_denial_expiry_decided_from_the_body_at_200_and_400() {
    for status in [200, 400] {
        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![r(200, CODE_MS), r(status, PENDING), r(200, TOKEN_US)],
        );
        assert!(run.result.is_ok(), "{status}");
        assert!(run.transcript.contains(&"pending".to_string()), "{status}");

        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![r(200, CODE_MS), r(status, r#"{"error":"access_denied"}"#)],
        );
        assert_eq!(run.result.clone().unwrap_err(), Error::Denied, "{status}");

        for expired in [r#"{"error":"expired"}"#, r#"{"error":"expired_token"}"#] {
            let run = drive(
                flow(Server::zoho_dc(DataCenter::Us)),
                vec![r(200, CODE_MS), r(status, expired)],
            );
            assert_eq!(
                run.result.clone().unwrap_err(),
                Error::CodeExpired,
                "{status} {expired}"
            );
        }

        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![
                r(200, CODE_MS),
                r(status, r#"{"error":"other_dc","user_location":"eu"}"#),
                r(200, TOKEN_EU),
            ],
        );
        assert_eq!(run.result.as_ref().unwrap().location.as_deref(), Some("eu"), "{status}");
    }
}

#[test]
fn the_access_denied_throttle_is_transient_at_200_and_400() {
    let throttle = r#"{"error":"Access Denied","error_description":"Token creation throttle limit reached."}"#;
    for status in [200, 400] {
        // While polling: retried, the device code kept.
        let run = drive(
            flow(Server::zoho_dc(DataCenter::Us)),
            vec![r(200, CODE_MS), r(status, throttle), r(200, TOKEN_US)],
        );
        assert!(run.result.is_ok(), "{status}: {:?}", run.transcript);
        assert!(run.transcript.contains(&"retry throttled".to_string()), "{status}");
        // At refresh: Throttled (retry later), not a dead refresh token.
        let ep = TokenEndpoint::zoho(&DataCenter::Us.accounts_server());
        let previous = Tokens {
            access_token: AccessToken::new("a"),
            refresh_token: Some(RefreshToken::new("1000.r")),
            api_domain: None,
            accounts_url: Some(DataCenter::Us.accounts_server()),
            location: Some("us".into()),
            scope: None,
            token_type: "Bearer".into(),
            expires_at: Timestamp::ZERO,
        };
        let e = ep
            .refresh_response(Timestamp::ZERO, status, throttle.as_bytes(), &previous)
            .unwrap_err();
        assert_eq!(e, Error::Throttled, "{status}");
        assert!(e.is_transient());
        // And invalid_code at refresh is permanent whatever the status.
        let e = ep
            .refresh_response(Timestamp::ZERO, status, br#"{"error":"invalid_code"}"#, &previous)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NeedsPairing, "{status}");
    }
}

// ---------------------------------------------------------------------------------------------
// 5. Legacy token replies: expires_in in milliseconds beside expires_in_sec

const LEGACY: &str = r#"{"access_token":"1000.l","refresh_token":"1000.r","api_domain":"https://www.zohoapis.com",
    "token_type":"Bearer","expires_in":3600000,"expires_in_sec":3600}"#;

#[test]
fn a_legacy_token_lives_an_hour_at_login() {
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![r(200, CODE_MS), r(200, LEGACY)],
    );
    let t = run.result.as_ref().unwrap();
    let polled_at = poll_times(&run)[0];
    assert_eq!(t.expires_at.as_millis() - polled_at, 3_600_000);
    // Without expires_in_sec, 3 600 000 alone is milliseconds too.
    let run = drive(
        flow(Server::zoho_dc(DataCenter::Us)),
        vec![
            r(200, CODE_MS),
            r(200, &LEGACY.replace(r#","expires_in_sec":3600"#, "")),
        ],
    );
    assert_eq!(
        run.result.as_ref().unwrap().expires_at.as_millis() - polled_at,
        3_600_000
    );
}

#[test]
fn a_legacy_token_lives_an_hour_at_refresh() {
    let ep = TokenEndpoint::zoho(&DataCenter::Us.accounts_server());
    let previous = Tokens {
        access_token: AccessToken::new("a"),
        refresh_token: Some(RefreshToken::new("1000.r")),
        api_domain: Some(ServerUrl::parse("https://www.zohoapis.com").unwrap()),
        accounts_url: Some(DataCenter::Us.accounts_server()),
        location: Some("us".into()),
        scope: None,
        token_type: "Bearer".into(),
        expires_at: Timestamp::ZERO,
    };
    let now = Timestamp::from_millis(5_000);
    for reply in [
        r#"{"access_token":"1000.n","expires_in":3600000,"expires_in_sec":3600,"api_domain":"https://www.zohoapis.com"}"#,
        r#"{"access_token":"1000.n","expires_in":3600000}"#,
        r#"{"access_token":"1000.n","expires_in_sec":"3600"}"#,
    ] {
        let t = ep.refresh_response(now, 200, reply.as_bytes(), &previous).unwrap();
        assert_eq!(t.expires_at.as_millis(), 5_000 + 3_600_000, "{reply}");
        assert_eq!(t.refresh_token.as_ref().map(RefreshToken::expose), Some("1000.r"));
    }
}

#[test]
fn the_blocking_driver_carries_each_dcs_secret_end_to_end() {
    use zoho_device_core::blocking::{self, HttpResponse};
    struct Clock(u64);
    impl blocking::Clock for Clock {
        fn now(&mut self) -> Timestamp {
            Timestamp::from_millis(self.0)
        }
        fn sleep_until(&mut self, deadline: Timestamp) {
            self.0 = self.0.max(deadline.as_millis());
        }
    }
    let mut replies: VecDeque<(u16, &str)> = vec![
        (200, CODE_MS),
        (200, r#"{"error":"other_dc","dc":"eu"}"#),
        (200, TOKEN_EU),
        (
            200,
            r#"{"access_token":"1000.n","expires_in":3600,"api_domain":"https://www.zohoapis.eu"}"#,
        ),
    ]
    .into();
    let mut seen: Vec<(String, String)> = Vec::new();
    let mut transport = |req: &HttpRequest| {
        seen.push((req.url.to_string(), body(req)));
        let (status, body) = replies.pop_front().expect("scripted");
        Ok(HttpResponse {
            status,
            body: body.as_bytes().to_vec(),
        })
    };
    let secrets = DcSecrets::new().with("eu", ClientSecret::new("eu-secret"));
    let mut clock = Clock(0);
    let mut f = flow(Server::zoho_dc(DataCenter::Us)).with_dc_secrets(secrets.clone());
    let tokens = blocking::run(&mut f, &mut transport, &mut clock, |_| {
        core::ops::ControlFlow::Continue(())
    })
    .unwrap();
    let ep = TokenEndpoint::zoho(tokens.accounts_url.as_ref().unwrap());
    let client = client(Some("common")).at(&secrets, tokens.location.as_deref());
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(8), 1);
    blocking::refresh(&ep, &client, &tokens, &mut transport, &mut clock, 1, &mut backoff).unwrap();
    let secrets_sent: Vec<(&str, bool)> = seen
        .iter()
        .map(|(url, b)| (url.as_str(), b.contains("client_secret=eu-secret&")))
        .collect();
    assert_eq!(
        secrets_sent,
        [
            ("https://accounts.zoho.com/oauth/v3/device/code", false),
            ("https://accounts.zoho.com/oauth/v3/device/token", false),
            ("https://accounts.zoho.eu/oauth/v3/device/token", true),
            ("https://accounts.zoho.eu/oauth/v2/token", true),
        ]
    );
}
